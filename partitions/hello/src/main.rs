//! The demo partition: says hello a few times, with its identity, then exits. With
//! `role=echo` in its bootargs it instead reads lines typed on its virtual UART (PL011 at
//! guest 0x9000000, `virtual-uart;`) and prints each, until `quit`.
#![no_std]
#![no_main]

use core::ptr::read_volatile;

use tantalum_guest::dt::bootarg;
use tantalum_guest::{println, wait_ns};

tantalum_guest::entry!(main);

fn main() {
    let name = tantalum_guest::partition_name();
    let info = tantalum_guest::partition_info();
    println!(
        "hello from partition '{}' (id {}, {} vCPU), guest DTB at {:#x}",
        name,
        info.id,
        info.vcpus,
        tantalum_guest::dtb_address()
    );
    if bootarg("role") == Some("echo") {
        echo();
        return;
    }
    for i in 1..=3 {
        println!("{} tick {}", name, i);
        wait_ns(20_000_000);
    }
    println!("{} done", name);
}

/// The virtual PL011: data and flag registers.
const UART_DR: *const u32 = 0x0900_0000 as *const u32;
const UART_FR: *const u32 = 0x0900_0018 as *const u32;
const FR_RX_EMPTY: u32 = 1 << 4;

/// Prints every line typed on the virtual UART (`got: ...`) until `quit`.
fn echo() {
    let mut line = [0u8; 64];
    let mut len = 0;
    println!("echo: type a line");
    loop {
        // SAFETY: the hypervisor emulates a PL011 at this guest address (`virtual-uart;`); the
        // SDK maps the first GiB as device memory.
        let empty = unsafe { read_volatile(UART_FR) } & FR_RX_EMPTY != 0;
        if empty {
            wait_ns(1_000_000);
            continue;
        }
        // SAFETY: as above.
        let byte = unsafe { read_volatile(UART_DR) } as u8;
        match byte {
            b'\r' | b'\n' if len > 0 => {
                let text = core::str::from_utf8(&line[..len]).unwrap_or("?");
                println!("got: {text}");
                if text == "quit" {
                    return;
                }
                len = 0;
            }
            b'\r' | b'\n' => {}
            _ if len < line.len() => {
                line[len] = byte;
                len += 1;
            }
            _ => {}
        }
    }
}
