//! A real-time partition's stand-in: prints a heartbeat at a fixed period (bootargs
//! `period_ms=`, default 250), on a drift-free schedule (`tantalum_guest::time::Periodic`: beat
//! n is due at start + n periods). It stops after `beats=` beats (default 40) or, with
//! `watch=ID`, three beats after partition ID has stopped (so a demo ends when its Linux powers
//! off). Beside a Linux partition it shows that Linux booting, rebooting, misbehaving or
//! powering off does not disturb it.
#![no_std]
#![no_main]

use core::time::Duration;

use tantalum_guest::dt::bootarg;
use tantalum_guest::hypercall::partition_running;
use tantalum_guest::println;
use tantalum_guest::time::Periodic;

tantalum_guest::entry!(main);

fn main() {
    let period_ms: u64 = bootarg("period_ms").and_then(|v| v.parse().ok()).unwrap_or(250);
    let beats: u64 = bootarg("beats").and_then(|v| v.parse().ok()).unwrap_or(40);
    let watch: Option<u64> = bootarg("watch").and_then(|v| v.parse().ok());
    let mut after_stop = None;
    let mut every = Periodic::new(Duration::from_millis(period_ms));
    for beat in 1.. {
        println!("heartbeat {beat}");
        match watch.map(partition_running) {
            Some(Some(false)) if after_stop.is_none() => {
                println!("partition {} has stopped; three more beats", watch.unwrap_or(0));
                after_stop = Some(beat);
            }
            Some(_) => {}
            None if beat >= beats => break,
            None => {}
        }
        if after_stop.is_some_and(|at| beat >= at + 3) {
            break;
        }
        let skipped = every.wait();
        if skipped > 0 {
            println!("late: skipped {skipped} beat(s)");
        }
    }
    println!("heartbeat done");
}
