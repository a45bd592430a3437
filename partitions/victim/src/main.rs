//! The victim of the isolation scenario: keeps a known pattern in its memory and checks, for a
//! few seconds while the attacker works, that nothing changed it.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut};

use tantalum_guest::{println, wait_ns};

tantalum_guest::entry!(main);

const WORDS: usize = 8192;
static mut PATTERN: [u64; WORDS] = [0; WORDS];

fn expected(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5a5a_5a5a
}

/// Checksum of the first page of the victim's image (its code), which the attacker targets.
fn code_checksum() -> u64 {
    let code = tantalum_guest::image_base() as *const u64;
    (0..512).fold(0u64, |acc, i| {
        // SAFETY: the first page of our own memory is mapped and holds our image.
        let word = unsafe { code.add(i).read_volatile() };
        acc.rotate_left(5) ^ word
    })
}

fn main() {
    // On a virtio-net link (the virtio attack scenario), it also sends a frame each round, so a
    // hostile peer's receive buffers get used, and takes whatever comes.
    let mut net = tantalum_guest::net::Net::open(0).ok();
    let (mut sent, mut frames) = (0u64, [0u8; 1514]);
    // SAFETY: single-threaded; PATTERN is only used in this function.
    let pattern = unsafe { &mut *addr_of_mut!(PATTERN) };
    for (i, w) in pattern.iter_mut().enumerate() {
        *w = expected(i);
    }
    let code = code_checksum();
    println!("pattern written ({} KiB); checking while the attacker runs", WORDS * 8 / 1024);
    const ROUNDS: u32 = 30;
    for round in 1..=ROUNDS {
        wait_ns(100_000_000);
        if let Some(net) = net.as_mut() {
            while net.recv(&mut frames).is_some() {}
            let mut frame = [0u8; 60];
            frame[..6].fill(0xff); // broadcast
            frame[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
            sent += u64::from(net.send(&frame));
        }
        // SAFETY: as above; read through a fresh shared borrow.
        let now = unsafe { &*addr_of!(PATTERN) };
        let bad = now.iter().enumerate().filter(|&(i, &w)| w != expected(i)).count();
        if bad != 0 || code_checksum() != code {
            println!("CORRUPTED: {bad} words changed in round {round}");
            tantalum_guest::exit(1);
        }
        if round % 10 == 0 {
            println!("memory intact after {round} checks");
        }
    }
    if net.is_some() {
        println!("virtio peer: sent {sent} frames");
    }
    println!("victim done: memory intact");
}
