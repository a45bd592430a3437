//! Per-CPU EL2 state for running a vCPU, and the cache/TLB maintenance it needs.

use core::arch::asm;

use aarch64_cpu::registers::*;
use tantalum_aarch64::regs;
use tantalum_core::stage2::Stage2;
use tock_registers::interfaces::{Readable, Writeable};

/// Prepares this CPU's EL2 controls to run one vCPU of the partition with `vmid` and stage-2
/// tables `stage2`, as vCPU number `vcpu_index`.
///
/// # Safety
/// `stage2` must be complete stage-2 tables for this partition, kept alive while the partition
/// runs; no guest may be running on this CPU.
pub unsafe fn configure_vcpu(vmid: u8, stage2: &Stage2, vcpu_index: u64, benchmark_pmu: bool) {
    let pmu_counters = (pmcr_el0() >> 11) & 0x1f;
    VTCR_EL2.set(regs::vtcr_el2(stage2.geometry));
    VTTBR_EL2.set(regs::vttbr_el2(vmid, stage2.root.as_u64()));
    let features = regs::Features::of(ID_AA64PFR0_EL1.get());
    HCR_EL2.set(regs::hcr_el2() | regs::hcr_el2_feature_traps(features));
    MDCR_EL2.set(regs::mdcr_el2(pmu_counters, benchmark_pmu));
    CNTHCTL_EL2.set(regs::cnthctl_el2());
    CNTVOFF_EL2.set(0);
    CPTR_EL2.set(regs::cptr_el2(features));
    VMPIDR_EL2.set(regs::vmpidr_el2(vcpu_index));
    let midr = MIDR_EL1.get();
    // SAFETY: VPIDR_EL2 and HSTR_EL2 only change what the guest reads as its MIDR and which
    // AArch32 CP15 accesses trap; neither affects the hypervisor.
    unsafe {
        asm!("msr vpidr_el2, {}", "msr hstr_el2, xzr", in(reg) midr, options(nostack));
    }
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    // Stale translations of this VMID from a previous run of the partition must go.
    // SAFETY: invalidating TLB entries is always safe; VTTBR_EL2 selects the VMID.
    unsafe { asm!("dsb ishst", "tlbi vmalls12e1is", "dsb ish", "isb", options(nostack)) };
}

/// Drops every TLB entry, on every CPU, that translates the page at `ipa` for the current VMID
/// (its stage-2 descriptor was withdrawn), including combined stage 1 and 2 entries.
///
/// # Safety
/// VTTBR_EL2 must hold the VMID of the partition whose stage 2 changed.
pub unsafe fn invalidate_guest_page(ipa: tantalum_core::addr::GuestPhys) {
    // SAFETY: TLB invalidation only makes the MMU walk the tables again (the caller's contract
    // names the VMID).
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi ipas2e1is, {page}",
            "dsb ish",
            "tlbi vmalle1is",
            "dsb ish",
            "isb",
            page = in(reg) ipa.as_u64() >> 12,
            options(nostack)
        )
    };
}

fn pmcr_el0() -> u64 {
    let v: u64;
    // SAFETY: reading PMCR_EL0 at EL2 has no side effects.
    unsafe { asm!("mrs {}, pmcr_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// Zeroes the FP/SIMD registers, FPCR and FPSR: a started vCPU finds none of what the CPU held
/// before (its partition's previous run). The hypervisor itself never uses FP (soft-float).
pub fn reset_fp_state() {
    // SAFETY: only FP/SIMD state, which belongs to the guest about to start on this CPU
    // (CPTR_EL2 does not trap it). `movi vN.2d, #0` is written as its encoding: the hypervisor's
    // soft-float target has no FP registers for the assembler.
    unsafe {
        asm!(
            ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
            ".inst 0x6f00e400 + \\n",
            ".endr",
            "msr S3_3_C4_C4_0, xzr", // FPCR
            "msr S3_3_C4_C4_1, xzr", // FPSR
            options(nomem, nostack),
        );
    }
}

/// Clears the breakpoint (`dbgb`) or watchpoint (`dbgw`) control and value registers
/// `$kind{c,v}r<n>_el1` for every listed `n` below `$count`.
macro_rules! clear_debug_pairs {
    ($kind:literal, $count:expr; $($n:literal)*) => {$(
        if $n < $count {
            // SAFETY: a self-hosted breakpoint or watchpoint of the vCPU about to start; the
            // debug target is EL1 (MDCR_EL2.TDE clear), so nothing it holds reaches EL2.
            unsafe {
                asm!(
                    concat!("msr ", $kind, "cr", stringify!($n), "_el1, xzr"),
                    concat!("msr ", $kind, "vr", stringify!($n), "_el1, xzr"),
                    options(nomem, nostack),
                )
            };
        }
    )*};
}

/// Puts the self-hosted debug state back to reset for a vCPU that starts: no breakpoint or
/// watchpoint armed, the OS lock set (as after a cold reset: a guest clears it to debug, as
/// Linux does at boot). MDSCR_EL1 is reset with the other EL1 registers.
pub fn reset_debug_state() {
    let dfr0 = ID_AA64DFR0_EL1.get();
    let (breakpoints, watchpoints) = (((dfr0 >> 12) & 0xf) + 1, ((dfr0 >> 20) & 0xf) + 1);
    clear_debug_pairs!("dbgb", breakpoints; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    clear_debug_pairs!("dbgw", watchpoints; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    // SAFETY: the OS lock of the vCPU about to start; it only gates debug exceptions to EL1.
    unsafe { asm!("msr oslar_el1, {}", "isb", in(reg) 1u64, options(nostack)) };
}

/// Puts the EL1 system registers a guest can see back to their reset values, so that a
/// restarted partition starts as from power-on (MMU off, no vectors, timers off).
pub fn reset_el1_state() {
    SCTLR_EL1.set(regs::SCTLR_EL1_RESET);
    TCR_EL1.set(0);
    TTBR0_EL1.set(0);
    TTBR1_EL1.set(0);
    MAIR_EL1.set(0);
    AMAIR_EL1.set(0);
    VBAR_EL1.set(0);
    CONTEXTIDR_EL1.set(0);
    CPACR_EL1.set(0);
    CNTKCTL_EL1.set(0);
    CNTV_CTL_EL0.set(0);
    CNTV_CVAL_EL0.set(0);
    CNTP_CTL_EL0.set(0);
    CNTP_CVAL_EL0.set(0);
    TPIDR_EL0.set(0);
    TPIDR_EL1.set(0);
    TPIDRRO_EL0.set(0);
    SP_EL0.set(0);
    SP_EL1.set(0);
    ELR_EL1.set(0);
    SPSR_EL1.set(0);
    ESR_EL1.set(0);
    FAR_EL1.set(0);
    AFSR0_EL1.set(0);
    AFSR1_EL1.set(0);
    PAR_EL1.set(0);
    MDSCR_EL1.set(0);
}

/// Cleans and invalidates `[start, start + len)` to the point of coherency, so that a guest
/// that starts with its MMU (and so its caches) off sees what the hypervisor wrote.
pub fn clean_to_poc(start: usize, len: usize) {
    const LINE: usize = 64;
    let mut addr = start & !(LINE - 1);
    let end = start + len;
    // Four lines per iteration: whole partitions are cleaned at every (re)start.
    while addr + 4 * LINE <= end {
        // SAFETY: DC CIVAC on mapped addresses only moves data between cache and memory.
        unsafe {
            asm!(
                "dc civac, {a}", "add {a}, {a}, #64", "dc civac, {a}", "add {a}, {a}, #64",
                "dc civac, {a}", "add {a}, {a}, #64", "dc civac, {a}", "add {a}, {a}, #64",
                a = inout(reg) addr, options(nostack)
            )
        };
    }
    while addr < end {
        // SAFETY: as above.
        unsafe { asm!("dc civac, {}", in(reg) addr, options(nostack)) };
        addr += LINE;
    }
    // SAFETY: barriers and I-cache invalidation have no memory-safety effect.
    unsafe { asm!("dsb sy", "ic iallu", "dsb sy", "isb", options(nostack)) };
}

/// This CPU's affinity (MPIDR_EL1 Aff3..Aff0, without the flag bits).
pub fn current_mpidr() -> u64 {
    MPIDR_EL1.get() & 0xff_00ff_ffff
}

/// The physical counter and its frequency.
pub fn counter() -> (u64, u64) {
    (CNTPCT_EL0.get(), CNTFRQ_EL0.get())
}

/// Arms the EL2 physical timer (its interrupt, PPI 10, only wakes a WFI: EL2 runs with IRQs
/// masked) to fire when the counter reaches `deadline`.
pub fn arm_wakeup(deadline: u64) {
    // SAFETY: the EL2 physical timer belongs to the hypervisor; programming it affects only
    // this CPU's wake-ups.
    unsafe {
        asm!("msr cnthp_cval_el2, {}", "msr cnthp_ctl_el2, {}", "isb", in(reg) deadline, in(reg) 1u64, options(nostack))
    };
}

/// Disarms the EL2 physical timer (its interrupt line drops).
pub fn disarm_wakeup() {
    // SAFETY: as in `arm_wakeup`.
    unsafe { asm!("msr cnthp_ctl_el2, xzr", "isb", options(nostack)) };
}

/// Whether a physical IRQ is pending at this CPU (ISR_EL1.I), masked or not.
pub fn irq_pending() -> bool {
    let isr: u64;
    // SAFETY: reading ISR_EL1 has no side effects.
    unsafe { asm!("mrs {}, isr_el1", out(reg) isr, options(nomem, nostack)) };
    isr & (1 << 7) != 0
}
