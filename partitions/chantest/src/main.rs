//! Channel test partition. Its role comes from `bootargs` (`role=... count=...`):
//!
//! - `ping` / `pong`: `count` round trips of 64-byte messages with sequence numbers and
//!   checksums; `ping` checks every reply and reports the instructions per round trip;
//! - `flood` / `slow`: `flood` sends `count` messages as fast as it can, retrying on `Full`;
//!   `slow` reads them with pauses and checks none is lost, duplicated or altered;
//! - `scribbler` / `honest`: `scribbler` sends a few good messages, then writes garbage over its
//!   ring header and index; `honest` must report the corruption and keep running; then
//!   `scribbler` tries to write the consumer's index page, which it may only read;
//! - `outsider`: reads the memory of a channel it is not an endpoint of (`addr=`);
//! - `reader`: tries to write into the data of a one-way channel it only receives on.
//! - `ringer` / `bell`: a doorbell flood (channel 0 duplex for control, channel 1 one-way from
//!   `ringer`): `bell` keeps its doorbell pending but masked (priority below its mask) and
//!   sleeps, `ringer` rings it `count` times; `bell` counts how often the flood woke its CPU,
//!   then unmasks (the flood is one or two interrupts) and checks that the next message after
//!   the flood still wakes it.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tantalum_guest::dt::bootarg;
use tantalum_guest::{println, wait_ns, Channel, ChannelError};

tantalum_guest::entry!(main);

const MESSAGE: usize = 64;

fn number(key: &str, default: u64) -> u64 {
    bootarg(key)
        .and_then(|v| match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        })
        .unwrap_or(default)
}

/// A message: sequence number, then payload bytes derived from it, then a checksum.
fn message(seq: u64) -> [u8; MESSAGE] {
    let mut m = [0u8; MESSAGE];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in m[8..MESSAGE - 8].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    let sum = checksum(&m[..MESSAGE - 8]);
    m[MESSAGE - 8..].copy_from_slice(&sum.to_le_bytes());
    m
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The sequence number of a well-formed message, or `None`.
fn check(m: &[u8]) -> Option<u64> {
    if m.len() != MESSAGE {
        return None;
    }
    let seq = u64::from_le_bytes(m[..8].try_into().ok()?);
    (m == message(seq)).then_some(seq)
}

fn open(n: usize) -> Channel {
    match Channel::open(n) {
        Ok(c) => c,
        Err(e) => {
            println!("cannot open channel {n}: {e}");
            tantalum_guest::exit(2)
        }
    }
}

fn send_retrying(ch: &mut Channel, msg: &[u8]) -> u64 {
    let mut full = 0;
    loop {
        match ch.send(msg) {
            Ok(()) => return full,
            Err(ChannelError::Full) => {
                full += 1;
                ch.notify();
                wait_ns(50_000);
            }
            Err(e) => {
                println!("send failed: {e}");
                tantalum_guest::exit(3)
            }
        }
    }
}

fn receive(ch: &mut Channel, buf: &mut [u8]) -> usize {
    match ch.recv(buf) {
        Ok(n) => n,
        Err(e) => {
            println!("receive failed: {e}");
            tantalum_guest::exit(4)
        }
    }
}

/// Whether to build and check full checksummed messages (`verify=0` turns it off, so a
/// benchmark measures the channel rather than the checksums: only sequence numbers are checked).
fn verify() -> bool {
    number("verify", 1) != 0
}

/// The sequence number in the first 8 bytes of a message.
fn sequence(m: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(m.get(..8)?.try_into().ok()?))
}

fn ping(count: u64) {
    let mut ch = open(0);
    let mut buf = [0u8; 256];
    let verify = verify();
    let mut plain = [0u8; MESSAGE];
    // Measured from the second round trip: the first waits for the peer to come up (partitions
    // load in parallel, and machine-wide instruction counts would include its loading).
    let (mut bad, mut start) = (0u64, 0);
    for seq in 0..count {
        if seq == 1 {
            start = tantalum_guest::instructions();
        }
        let msg = if verify {
            message(seq)
        } else {
            plain[..8].copy_from_slice(&seq.to_le_bytes());
            plain
        };
        send_retrying(&mut ch, &msg);
        let n = receive(&mut ch, &mut buf);
        let ok =
            if verify { check(&buf[..n]) == Some(seq) } else { n == MESSAGE && sequence(&buf) == Some(seq) };
        if !ok {
            bad += 1;
        }
        if (seq + 1) % 25_000 == 0 {
            println!("{} round trips", seq + 1);
        }
    }
    let per = (tantalum_guest::instructions() - start) / count.saturating_sub(1).max(1);
    println!("ping-pong done: {count} round trips, {bad} bad replies");
    println!("bench: pingpong_round_trip_instructions={per}");
}

/// Doorbell deliveries that woke this CPU from WFI, and the instructions they took.
static WAKEUPS: AtomicU64 = AtomicU64::new(0);
static WAKEUP_INSTRUCTIONS: AtomicU64 = AtomicU64::new(0);

fn on_doorbell(_intid: u32) {
    if let Some(n) = tantalum_guest::irq::instructions_since_wfi() {
        WAKEUPS.fetch_add(1, Ordering::Relaxed);
        WAKEUP_INSTRUCTIONS.fetch_add(n, Ordering::Relaxed);
    }
}

fn pong(count: u64) {
    let mut ch = open(0);
    tantalum_guest::irq::set_handler(ch.doorbell_intid(), on_doorbell);
    let mut buf = [0u8; 256];
    let mut bad = 0u64;
    let mut start = 0;
    let verify = verify();
    for expected in 0..count {
        let n = receive(&mut ch, &mut buf);
        if expected == 0 {
            // Measured from the first message on (before it, the peer may still be loading).
            start = tantalum_guest::instructions();
        }
        let seq = if verify { check(&buf[..n]) } else { sequence(&buf[..n]) };
        if seq != Some(expected) {
            bad += 1;
        }
        send_retrying(&mut ch, &buf[..n]);
    }
    let per = (tantalum_guest::instructions() - start) / count.max(1);
    println!("pong done: echoed {count} messages, {bad} out of order or corrupted");
    println!("bench: pong_instructions_per_message={per}");
    let wakeups = WAKEUPS.load(Ordering::Relaxed);
    if let Some(avg) = WAKEUP_INSTRUCTIONS.load(Ordering::Relaxed).checked_div(wakeups) {
        println!("bench: doorbell_wfi_to_handler_instructions={avg} wakeups={wakeups}");
    }
}

fn flood(count: u64) {
    let mut ch = open(0);
    let mut full = 0;
    for seq in 0..count {
        full += send_retrying(&mut ch, &message(seq));
    }
    println!("flood done: sent {count} messages, ring full {full} times (back-pressure)");
}

fn slow(count: u64) {
    let mut ch = open(0);
    let mut buf = [0u8; 256];
    let (mut lost, mut corrupt) = (0u64, 0u64);
    for expected in 0..count {
        if expected % 500 == 0 {
            wait_ns(2_000_000); // let the ring fill up
        }
        let n = receive(&mut ch, &mut buf);
        match check(&buf[..n]) {
            Some(seq) if seq == expected => {}
            Some(seq) => lost += seq.abs_diff(expected),
            None => corrupt += 1,
        }
    }
    println!("slow reader done: {count} messages in order, {lost} lost, {corrupt} corrupted");
}

fn scribbler() {
    let mut ch = open(0);
    for seq in 0..3 {
        send_retrying(&mut ch, &message(seq));
    }
    // Only once `honest` has taken all three (however late it started, however slow the host):
    // the scenario expects exactly 3 good messages before the corruption.
    let mut waited = 0;
    while ch.unconsumed() && waited < 10_000 {
        wait_ns(1_000_000);
        waited += 1;
    }
    if ch.unconsumed() {
        println!("the peer did not take the 3 messages within 10 s");
    }
    // Garbage over our own producer page: magic, version, capacity and head.
    let base = channel_base(0);
    println!("scribbling over the ring header and head index at {base:#x}");
    for (i, word) in [0xdead_beefu32, 7, 3, 0x7fff_fff1].iter().enumerate() {
        // SAFETY: deliberately hostile: our own (writable) producer page.
        unsafe { core::ptr::write_volatile((base as *mut u32).add(i), *word) };
    }
    // SAFETY: as above: the head index, far beyond anything published.
    unsafe { core::ptr::write_volatile((base as *mut u32).add(4), 0x7fff_fff1) };
    ch.notify();
    wait_ns(20_000_000);
    println!("now writing the consumer's index page (read-only here)");
    // SAFETY: deliberately hostile: the hypervisor maps this page read-only for us.
    unsafe { core::ptr::write_volatile((base + 0x1000) as *mut u32, 0) };
    println!("BREACH: wrote the consumer's index page");
}

fn honest() {
    let mut ch = open(0);
    let mut buf = [0u8; 256];
    let mut good = 0;
    loop {
        match ch.recv(&mut buf) {
            Ok(n) if check(&buf[..n]).is_some() => good += 1,
            Ok(_) => println!("a malformed message"),
            Err(ChannelError::Corrupt(c)) => {
                println!("channel reported corrupt after {good} good messages: {c}");
                break;
            }
            Err(e) => {
                println!("unexpected: {e}");
                break;
            }
        }
    }
    // Keep running: the corruption is contained to the ring.
    for i in 1..=3 {
        wait_ns(10_000_000);
        println!("still running ({i})");
    }
    println!("honest done");
}

fn ringer(count: u64) {
    let mut ctl = open(0);
    let mut bells = open(1);
    let mut buf = [0u8; 64];
    receive(&mut ctl, &mut buf); // the peer's doorbell is pending and masked
    for _ in 0..count {
        bells.notify();
    }
    println!("rang the peer's doorbell {count} times");
    send_retrying(&mut ctl, b"done");
    receive(&mut ctl, &mut buf); // the peer took what the flood left pending
    send_retrying(&mut bells, b"after the flood");
    receive(&mut ctl, &mut buf);
    println!("ringer done");
}

/// Doorbell interrupts of the `bells` channel taken by `bell`.
static BELLS_TAKEN: AtomicU64 = AtomicU64::new(0);

fn on_bell(_intid: u32) {
    BELLS_TAKEN.fetch_add(1, Ordering::Relaxed);
}

/// The control channel's doorbell rang (the flood is over).
static CONTROL_RANG: AtomicBool = AtomicBool::new(false);

fn on_control(_intid: u32) {
    CONTROL_RANG.store(true, Ordering::Release);
}

/// At most this many wake-ups of `bell`'s CPU for a whole flood: the first notify loads the
/// doorbell into a list register, the next finds it there (the CPU merges it and watches),
/// and the control message that ends the flood wakes it once more.
const FLOOD_WAKEUPS_BOUND: u64 = 8;

fn bell() {
    use tantalum_guest::irq;
    let mut ctl = open(0);
    let mut bells = open(1);
    irq::set_handler(bells.doorbell_intid(), on_bell);
    irq::set_priority(bells.doorbell_intid(), 0xf0);
    // Signalled: only interrupts more urgent than 0xe0; the control doorbell is (0xa0).
    irq::set_priority_mask(0xe0);
    irq::set_handler(ctl.doorbell_intid(), on_control);
    send_retrying(&mut ctl, b"masked");
    let mut wakeups = 0u64;
    while !CONTROL_RANG.load(Ordering::Acquire) {
        irq::wait_unless(|| CONTROL_RANG.load(Ordering::Acquire));
        wakeups += 1;
    }
    let mut buf = [0u8; 64];
    receive(&mut ctl, &mut buf); // "done"
    if wakeups <= FLOOD_WAKEUPS_BOUND {
        println!("the flood woke this CPU {wakeups} times (at most {FLOOD_WAKEUPS_BOUND})");
    } else {
        println!("FLOOD TAX: the flood woke this CPU {wakeups} times (more than {FLOOD_WAKEUPS_BOUND})");
    }
    irq::set_priority_mask(0xff);
    wait_ns(10_000_000);
    let taken = BELLS_TAKEN.load(Ordering::Relaxed);
    println!("unmasked: took {taken} doorbell interrupt(s) for the flood");
    send_retrying(&mut ctl, b"again");
    let n = receive(&mut bells, &mut buf);
    let after = BELLS_TAKEN.load(Ordering::Relaxed) - taken;
    println!(
        "after the flood: {:?} woke it ({after} more interrupt)",
        core::str::from_utf8(&buf[..n]).unwrap_or("?")
    );
    send_retrying(&mut ctl, b"bye");
    println!("bell done");
}

/// Guest-physical base of this partition's channel `n`, from its guest DT.
fn channel_base(n: u64) -> u64 {
    let fdt = tantalum_guest::dt::get().expect("guest DT");
    fdt.find_node("/")
        .and_then(|root| {
            root.children()
                .filter(|c| c.name.starts_with("channel@"))
                .find(|c| {
                    c.property("tantalum,channel")
                        .and_then(|p| tantalum_guest::dt::numbers(p.value, 1).next())
                        == Some(n)
                })
                .and_then(|c| tantalum_guest::dt::numbers(c.property("reg")?.value, 2).next())
        })
        .unwrap_or(0)
}

fn outsider() {
    let addr = number("addr", 0);
    println!("reading channel memory at {addr:#x}, which is not ours");
    // SAFETY: deliberately hostile: the hypervisor contains it.
    let v = unsafe { core::ptr::read_volatile(addr as *const u64) };
    println!("BREACH: read {v:#x}");
}

fn reader() {
    let ch = open(0);
    let base = channel_base(0);
    println!("writing into the data of channel '{}', which only {} may write", ch.name(), ch.peer());
    // SAFETY: deliberately hostile: the data pages of a one-way channel are read-only here.
    unsafe { core::ptr::write_volatile((base + 0x2000) as *mut u64, 1) };
    println!("BREACH: wrote a read-only channel");
}

fn main() {
    let count = number("count", 1000);
    match bootarg("role").unwrap_or("") {
        "ping" => ping(count),
        "pong" => pong(count),
        "flood" => flood(count),
        "slow" => slow(count),
        "scribbler" => scribbler(),
        "honest" => honest(),
        "outsider" => outsider(),
        "reader" => reader(),
        "ringer" => ringer(count),
        "bell" => bell(),
        other => println!("unknown role '{other}'"),
    }
}
