//! Time from the time-stamp counter, calibrated once at boot against the PIT (channel 2, the
//! PC speaker's gate, which drives no interrupt): `HYP_WAIT` and the frequency partitions read
//! from CPUID leaf 0x40000010.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::serial::{inb, outb};

/// The PIT's input clock.
const PIT_HZ: u64 = 1_193_182;
/// Calibration interval: 10 ms of PIT ticks.
const PIT_TICKS: u16 = 11_932;

static FREQUENCY: AtomicU64 = AtomicU64::new(0);

/// The counter now.
pub fn now() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Counter ticks per second (0 before [`calibrate`]).
pub fn frequency() -> u64 {
    FREQUENCY.load(Ordering::Relaxed)
}

/// Measures the counter's frequency over 10 ms of PIT channel 2 (boot CPU, once).
pub fn calibrate() -> u64 {
    // SAFETY: ports 0x42/0x43/0x61 are the PIT and its gate, which the hypervisor owns (the
    // board's PIT is never passed through: core's port rules); channel 2 drives no interrupt.
    let elapsed = unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01);
        // Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count), binary.
        outb(0x43, 0b1011_0000);
        outb(0x42, PIT_TICKS as u8);
        outb(0x42, (PIT_TICKS >> 8) as u8);
        // Restart the count: gate low then high.
        outb(0x61, inb(0x61) & !0x01);
        outb(0x61, inb(0x61) | 0x01);
        let start = now();
        let mut spins = 0u64;
        while inb(0x61) & 0x20 == 0 && spins < 100_000_000 {
            spins += 1;
        }
        outb(0x61, gate);
        now() - start
    };
    let freq = elapsed * PIT_HZ / u64::from(PIT_TICKS);
    FREQUENCY.store(freq, Ordering::Relaxed);
    freq
}

/// `ticks` of the TSC in nanoseconds (saturating).
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let freq = frequency().max(1);
    (u128::from(ticks) * 1_000_000_000 / u128::from(freq)).min(u128::from(u64::MAX)) as u64
}

/// Spins for `ns` nanoseconds (at least one pause).
pub fn spin_ns(ns: u64) {
    spin_ns_unless(ns, || false);
}

/// Spins for `ns` nanoseconds or until `done` says so, whichever comes first.
pub fn spin_ns_unless(ns: u64, done: impl Fn() -> bool) {
    let ticks = tantalum_core::time::ticks(core::time::Duration::from_nanos(ns), frequency());
    let deadline = now().saturating_add(ticks);
    loop {
        core::hint::spin_loop();
        if done() || now() >= deadline {
            break;
        }
    }
}
