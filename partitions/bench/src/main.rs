//! Benchmark partition: instruction counts from the PMU (exact under QEMU `-icount`).
//! `cargo xtask bench` boots it alone on CPU 0 and reads the `bench:` lines.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use tantalum_guest::hypercall::{hvc, HYP_VERSION};
use tantalum_guest::{boot_instructions, instructions, println};

tantalum_guest::entry!(main);

const ROUNDS: u64 = 1000;

/// Instructions per iteration of `f`, over [`ROUNDS`] iterations.
fn per_round(mut f: impl FnMut()) -> u64 {
    for _ in 0..10 {
        f();
    }
    let start = instructions();
    for _ in 0..ROUNDS {
        f();
    }
    (instructions() - start) / ROUNDS
}

/// The PL031 RTC passed through to this partition (QEMU virt), and its interrupt (SPI 2).
const RTC: usize = 0x0901_0000;
const RTC_INTID: u32 = 34;
static DELIVERY: AtomicU64 = AtomicU64::new(0);

fn rtc(offset: usize) -> *mut u32 {
    (RTC + offset) as *mut u32
}

fn on_rtc_alarm(_intid: u32) {
    if let Some(n) = tantalum_guest::irq::instructions_since_wfi() {
        DELIVERY.store(n, Ordering::Relaxed);
    }
    // SAFETY: RTCICR of the passed-through RTC: clears the alarm interrupt.
    unsafe { rtc(0x1c).write_volatile(1) };
}

/// Instructions from the RTC alarm interrupt to its handler here, while this CPU sleeps in WFI
/// (the only CPU running): the hypervisor's whole forwarding path.
fn device_interrupt_delivery() -> Option<u64> {
    tantalum_guest::irq::init();
    tantalum_guest::irq::set_handler(RTC_INTID, on_rtc_alarm);
    tantalum_guest::irq::enable();
    let mut best = None;
    for _ in 0..2 {
        DELIVERY.store(0, Ordering::Relaxed);
        // SAFETY: PL031 registers of the RTC passed through to this partition: data (0x0),
        // match (0x4), interrupt mask (0x10).
        unsafe {
            let now = rtc(0).read_volatile();
            rtc(0x4).write_volatile(now.wrapping_add(1));
            rtc(0x10).write_volatile(1);
        }
        tantalum_guest::irq::wait_unless(|| DELIVERY.load(Ordering::Relaxed) != 0);
        while DELIVERY.load(Ordering::Relaxed) == 0 {
            tantalum_guest::irq::wait_unless(|| DELIVERY.load(Ordering::Relaxed) != 0);
        }
        let n = DELIVERY.load(Ordering::Relaxed);
        best = Some(best.map_or(n, |b: u64| b.min(n)));
    }
    best
}

fn main() {
    let boot = boot_instructions();
    let with_call = per_round(|| {
        hvc(HYP_VERSION, [0; 6]);
    });
    // The same loop with the `hvc` replaced by a `nop`: what the guest side itself costs.
    let baseline = per_round(|| {
        // SAFETY: a nop with the same register set-up as the hypercall.
        unsafe {
            core::arch::asm!("nop", inout("x0") HYP_VERSION => _, inout("x1") 0u64 => _, inout("x2") 0u64 => _,
                inout("x3") 0u64 => _, inout("x4") 0u64 => _, in("x5") 0u64, in("x6") 0u64, options(nostack));
        }
    });
    println!("bench: boot_instructions={boot}");
    println!("bench: hypercall_round_trip_instructions={}", with_call - baseline);
    println!("bench: hypercall_loop_instructions={with_call} baseline={baseline}");
    if let Some(n) = device_interrupt_delivery() {
        println!("bench: device_interrupt_to_handler_instructions={n}");
    }
}
