//! The CPU side: the CPU interface through the SDK (acknowledge, end, send an SGI), IRQ
//! masking, time from the virtual counter, and the EL1 virtual timer.

use core::arch::asm;

/// INTIDs from here on are special: nothing to acknowledge.
const SPURIOUS: u32 = 1020;

/// Acknowledges the highest-priority pending interrupt, if any (GICv3 or GICv2: the SDK's).
pub fn ack() -> Option<u32> {
    let intid = tantalum_guest::irq::acknowledge() as u32 & 0x3ff;
    (intid < SPURIOUS).then_some(intid)
}

/// Ends (drops the priority of and deactivates) an interrupt [`ack`] returned. SGIs on a GICv2
/// carry their sender in the IAR value: this vCPU sends them to itself, so it is vCPU 0 as the
/// bare CPU 0 is.
pub fn eoi(intid: u32) {
    tantalum_guest::irq::end(u64::from(intid));
}

/// Sends SGI `intid` to this CPU alone.
pub fn send_sgi(intid: u32) {
    tantalum_guest::irq::send_sgi_to_self(intid);
}

/// Masks IRQs at the CPU (the cases poll for interrupts instead).
pub fn mask_irqs() {
    // SAFETY: masking IRQs only delays this CPU's own handlers.
    unsafe { asm!("msr daifset, #2", "isb", options(nomem, nostack)) };
}

fn counter() -> u64 {
    tantalum_guest::time::now().ticks()
}

fn ticks(us: u64) -> u64 {
    tantalum_guest::time::frequency() * us / 1_000_000
}

/// The counter value `us` microseconds from now.
pub fn deadline(us: u64) -> u64 {
    counter() + ticks(us)
}

/// Whether the counter has not reached `deadline` yet.
pub fn before(deadline: u64) -> bool {
    counter() < deadline
}

/// Busy-waits `us` microseconds (no hypercall: the image also runs without the hypervisor).
pub fn spin_us(us: u64) {
    let until = deadline(us);
    while before(until) {}
}

/// The EL1 virtual timer (`CNTV_*_EL0`): its output is a level interrupt, asserted while it is
/// enabled, unmasked and its condition is met.
pub mod timer {
    use core::arch::asm;

    const ENABLE: u64 = 1 << 0;
    const ISTATUS: u64 = 1 << 2;

    /// Arms the timer to fire `us` microseconds from now.
    pub fn fire_in_us(us: u64) {
        let ticks = super::ticks(us);
        // SAFETY: programming this CPU's EL1 virtual timer only affects its own interrupt.
        unsafe {
            asm!("msr cntv_tval_el0, {}", "msr cntv_ctl_el0, {}", "isb", in(reg) ticks, in(reg) ENABLE, options(nostack))
        };
    }

    /// Whether its condition is met and it asserts its interrupt.
    pub fn asserted() -> bool {
        let ctl: u64;
        // SAFETY: reading the timer's control register has no side effects.
        unsafe { asm!("isb", "mrs {}, cntv_ctl_el0", out(reg) ctl, options(nomem, nostack)) };
        ctl & (ENABLE | ISTATUS) == ENABLE | ISTATUS
    }

    /// Silences it: disabled, so its interrupt is no longer asserted.
    pub fn off() {
        // SAFETY: as in `fire_in_us`.
        unsafe { asm!("msr cntv_ctl_el0, xzr", "isb", options(nostack)) };
    }
}

/// The PMU's identification as the guest reads it: `PMCR_EL0` (IMP, IDCODE, N) and the common
/// event bitmaps `PMCEID0_EL0`/`PMCEID1_EL0`, which decide the events Linux's perf offers.
pub fn pmu_identification() -> (u64, u64, u64) {
    let (pmcr, ceid0, ceid1): (u64, u64, u64);
    // SAFETY: reading PMU identification registers has no side effects.
    unsafe {
        asm!(
            "mrs {}, pmcr_el0",
            "mrs {}, pmceid0_el0",
            "mrs {}, pmceid1_el0",
            out(reg) pmcr,
            out(reg) ceid0,
            out(reg) ceid1,
            options(nomem, nostack)
        )
    };
    (pmcr, ceid0, ceid1)
}
