//! A real-time partition's stand-in: prints a heartbeat at a fixed period (bootargs
//! `period_ms=`, default 250) for `beats=` beats (default 40), then exits. Beside a Linux
//! partition it shows that Linux booting, rebooting or misbehaving does not disturb it.
#![no_std]
#![no_main]

use tantalum_guest::dt::bootarg;
use tantalum_guest::{println, wait_ns};

tantalum_guest::entry!(main);

fn main() {
    let period_ms: u64 = bootarg("period_ms").and_then(|v| v.parse().ok()).unwrap_or(250);
    let beats: u64 = bootarg("beats").and_then(|v| v.parse().ok()).unwrap_or(40);
    for beat in 1..=beats {
        println!("heartbeat {beat}");
        // HYP_WAIT takes at most 1 s per call.
        let mut left = period_ms * 1_000_000;
        while left > 0 {
            let step = left.min(1_000_000_000);
            wait_ns(step);
            left -= step;
        }
    }
    println!("heartbeat done");
}
