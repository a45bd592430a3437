//! The default demo: a small industrial pipeline. Its role comes from `bootargs`:
//!
//! - `sensor` measures a (simulated) tank temperature every 20 ms and sends each reading to the
//!   controller;
//! - `controller` runs a PI controller toward the set point and sends a heater command to the
//!   actuator;
//! - `actuator` applies each command.
//!
//! After `count` readings (bootargs `count=`, default 12) each stage says so and exits.
#![no_std]
#![no_main]

use tantalum_guest::dt::bootarg;
use tantalum_guest::{println, wait_ns, Channel, ChannelError};

tantalum_guest::entry!(main);

/// Set point, in millidegrees Celsius.
const SET_POINT: i32 = 60_000;

/// A reading: sequence number and temperature (millidegrees).
fn encode(seq: u32, value: i32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[..4].copy_from_slice(&seq.to_le_bytes());
    m[4..].copy_from_slice(&value.to_le_bytes());
    m
}

fn decode(m: &[u8]) -> Option<(u32, i32)> {
    let seq = u32::from_le_bytes(m.get(..4)?.try_into().ok()?);
    let value = i32::from_le_bytes(m.get(4..8)?.try_into().ok()?);
    Some((seq, value))
}

fn open(n: usize) -> Channel {
    Channel::open(n).unwrap_or_else(|e| {
        println!("cannot open channel {n}: {e}");
        tantalum_guest::exit(2)
    })
}

fn send(ch: &mut Channel, msg: &[u8]) {
    loop {
        match ch.send(msg) {
            Ok(()) => return,
            Err(ChannelError::Full) => wait_ns(1_000_000),
            Err(e) => {
                println!("send to {} failed: {e}", ch.peer());
                tantalum_guest::exit(3)
            }
        }
    }
}

fn receive(ch: &mut Channel) -> (u32, i32) {
    let mut buf = [0u8; 16];
    match ch.recv(&mut buf).map(|n| decode(&buf[..n])) {
        Ok(Some(m)) => m,
        Ok(None) => {
            println!("malformed message from {}", ch.peer());
            tantalum_guest::exit(4)
        }
        Err(e) => {
            println!("receive from {} failed: {e}", ch.peer());
            tantalum_guest::exit(4)
        }
    }
}

fn sensor(count: u32) {
    let mut out = open(0);
    // A tank warming from 20 °C, with a slow disturbance.
    let mut temperature = 20_000i32;
    for seq in 0..count {
        let disturbance = [0, 300, 500, 300, 0, -300, -500, -300][seq as usize % 8];
        temperature += (SET_POINT + 5_000 - temperature) / 5 + disturbance;
        println!("reading {seq}: {}.{:03} C", temperature / 1000, temperature % 1000);
        send(&mut out, &encode(seq, temperature));
        wait_ns(20_000_000);
    }
    println!("sensor done");
}

fn controller(count: u32) {
    let mut readings = open(0);
    let mut commands = open(1);
    let mut integral = 0i32;
    for _ in 0..count {
        let (seq, temperature) = receive(&mut readings);
        let error = SET_POINT - temperature;
        integral = (integral + error / 10).clamp(-50_000, 50_000);
        // Heater power in per mille: proportional plus integral term, clamped.
        let power = (error / 20 + integral / 40).clamp(0, 1000);
        println!("reading {seq}: error {error:+} mC -> heater {}.{}%", power / 10, power % 10);
        send(&mut commands, &encode(seq, power));
    }
    println!("controller done");
}

fn actuator(count: u32) {
    let mut commands = open(0);
    for _ in 0..count {
        let (seq, power) = receive(&mut commands);
        println!("command {seq}: heater at {}.{}%", power / 10, power % 10);
    }
    println!("actuator done");
}

fn main() {
    let count = bootarg("count").and_then(|c| c.parse().ok()).unwrap_or(12);
    match bootarg("role").unwrap_or("") {
        "sensor" => sensor(count),
        "controller" => controller(count),
        "actuator" => actuator(count),
        other => println!("unknown role '{other}'"),
    }
}
