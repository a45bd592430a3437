//! The aarch64 pieces the shared SDK code calls: the hypercall instructions, waiting, the
//! generic timer's counter.

use core::arch::asm;

/// The hypercall instructions: `hvc #0` and (for PSCI) `smc #0`.
pub mod calls {
    use core::arch::asm;

    /// Issues `hvc #0` with `function` and six arguments; returns x0..x4.
    #[inline(always)]
    pub fn hvc(function: u64, args: [u64; 6]) -> [u64; 5] {
        let (r0, r1, r2, r3, r4): (u64, u64, u64, u64, u64);
        // SAFETY: the hypervisor's ABI preserves every register except x0..x4 (results) and
        // touches no memory the Rust program did not hand it by address.
        unsafe {
            asm!(
                "hvc #0",
                inout("x0") function => r0,
                inout("x1") args[0] => r1,
                inout("x2") args[1] => r2,
                inout("x3") args[2] => r3,
                inout("x4") args[3] => r4,
                in("x5") args[4],
                in("x6") args[5],
                options(nostack)
            );
        }
        [r0, r1, r2, r3, r4]
    }

    /// Issues `smc #0` (only PSCI calls are allowed; anything else is a fault).
    #[inline(always)]
    pub fn smc(function: u64, args: [u64; 3]) -> u64 {
        let r0: u64;
        // SAFETY: as for `hvc`: the hypervisor handles or refuses the call.
        unsafe {
            asm!(
                "smc #0",
                inout("x0") function => r0,
                inout("x1") args[0] => _,
                inout("x2") args[1] => _,
                inout("x3") args[2] => _,
                options(nostack)
            );
        }
        r0
    }
}

/// Waits for an interrupt (WFI).
pub fn wait_for_interrupt() {
    // SAFETY: WFI only waits.
    unsafe { asm!("wfi", options(nomem, nostack)) };
}

/// The virtual counter (`CNTVCT_EL0`).
#[inline]
pub fn counter() -> u64 {
    let ticks: u64;
    // SAFETY: reading the virtual counter has no side effects; the ISB keeps the read from
    // being taken early.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack)) };
    ticks
}

/// The counter's frequency in Hz (`CNTFRQ_EL0`).
#[inline]
pub fn counter_frequency() -> u64 {
    let freq: u64;
    // SAFETY: reading the counter frequency has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) freq, options(nomem, nostack)) };
    freq
}
