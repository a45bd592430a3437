//! A synchronous external abort injected into a guest at EL1: what an access outside the
//! partition's memory becomes when its `outside-memory` choice is `external-abort` (core
//! decides; this computes the register values, `vcpu` writes them).
//!
//! The guest sees what a bus error on real hardware would give it (Arm ARM D1.3 "Exception
//! entry", D17.2 ESR_EL1): an Instruction or Data Abort with the fault status code 0b010000
//! (synchronous external abort, not on a translation table walk), FAR_EL1 = the faulting
//! virtual address, ELR_EL1 and SPSR_EL1 = the faulting instruction and its PSTATE, and it runs
//! next at VBAR_EL1 + the offset of a synchronous exception from the EL and stack it was at.

use crate::esr::{ec, Syndrome};

/// ESR_ELx.EC of an abort taken without a change of EL (from EL1 to EL1): one more than the
/// lower-EL class.
const SAME_EL: u64 = 1;
/// ESR_ELx.IL: RES1 for aborts whose ISV is 0.
const IL: u64 = 1 << 25;
/// DFSC / IFSC: synchronous external abort, not on a translation table walk.
const FSC_EXTERNAL: u64 = 0b01_0000;
/// Data abort ISS bits kept from the trapped access: WnR (a write) and CM (cache maintenance).
const DABT_KEEP: u64 = (1 << 6) | (1 << 8);

/// SPSR_ELx fields.
mod spsr {
    /// M[4]: the exception came from AArch32 (at EL0: this hypervisor runs EL1 in AArch64).
    pub const AARCH32: u64 = 1 << 4;
    /// M[3:0] of AArch64 EL0t, EL1t and EL1h.
    pub const M: u64 = 0xf;
    pub const EL0T: u64 = 0b0000;
    pub const EL1T: u64 = 0b0100;
    pub const EL1H: u64 = 0b0101;
    /// D, A, I and F: all masked on exception entry.
    pub const DAIF: u64 = 0xf << 6;
    /// N, Z, C, V and DIT are kept on exception entry.
    pub const KEPT: u64 = (0xf << 28) | (1 << 24);
    pub const PAN: u64 = 1 << 22;
    pub const SSBS: u64 = 1 << 12;
}

/// SCTLR_EL1.SPAN: 0 sets PSTATE.PAN on an exception taken to EL1.
const SCTLR_SPAN: u64 = 1 << 23;
/// SCTLR_EL1.DSSBS: PSTATE.SSBS on an exception taken to EL1.
const SCTLR_DSSBS: u64 = 1 << 44;

/// What the CPU implements that exception entry depends on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// FEAT_PAN (ID_AA64MMFR1_EL1.PAN != 0).
    pub pan: bool,
    /// FEAT_SSBS (ID_AA64PFR1_EL1.SSBS != 0).
    pub ssbs: bool,
}

/// The guest's EL1 registers that the abort sets, and where it resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
    pub spsr: u64,
    /// The guest's PC next: its VBAR_EL1 plus the vector's offset.
    pub pc: u64,
    /// The guest's PSTATE next.
    pub pstate: u64,
}

/// The abort for the trapped access `trap` (a stage-2 Instruction or Data Abort from EL0 or
/// EL1) made by the instruction at `elr` with PSTATE `spsr`, for a guest whose VBAR_EL1 and
/// SCTLR_EL1 are `vbar` and `sctlr`.
pub fn external_abort(
    trap: &Syndrome,
    elr: u64,
    spsr: u64,
    vbar: u64,
    sctlr: u64,
    cpu: Features,
) -> Injection {
    let from_el0 = spsr & spsr::AARCH32 != 0 || spsr & spsr::M == spsr::EL0T;
    let lower = if trap.class() == ec::IABT_LOWER { ec::IABT_LOWER } else { ec::DABT_LOWER };
    let class = if from_el0 { lower } else { lower + SAME_EL };
    let kept = if lower == ec::DABT_LOWER { trap.esr & DABT_KEEP } else { 0 };
    let esr = (class << 26) | IL | kept | FSC_EXTERNAL;
    let offset = match (from_el0, spsr & spsr::AARCH32 != 0, spsr & spsr::M) {
        (true, true, _) => 0x600,
        (true, false, _) => 0x400,
        (false, _, spsr::EL1T) => 0x000,
        _ => 0x200,
    };
    let mut pstate = (spsr & spsr::KEPT) | spsr::DAIF | spsr::EL1H;
    if cpu.pan && (spsr & spsr::PAN != 0 || sctlr & SCTLR_SPAN == 0) {
        pstate |= spsr::PAN;
    }
    if cpu.ssbs && sctlr & SCTLR_DSSBS != 0 {
        pstate |= spsr::SSBS;
    }
    Injection { esr, far: trap.far, elr, spsr, pc: vbar.wrapping_add(offset), pstate }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VBAR: u64 = 0x4008_0800;

    fn trap(class: u64, iss: u64) -> Syndrome {
        Syndrome { esr: (class << 26) | (1 << 25) | iss, far: 0xffff_0000_dead_b000, hpfar: 0x4400_00 }
    }

    #[test]
    fn a_data_abort_from_el0_goes_to_the_lower_el_vector() {
        // A 32-bit store by user space (EL0t, interrupts unmasked, Z set), decoded (ISV, SAS, SRT).
        let store = trap(ec::DABT_LOWER, (1 << 24) | (2 << 22) | (3 << 16) | (1 << 6) | 0b00_0101);
        let spsr = 0x4000_0000;
        let i = external_abort(&store, 0x40_1234, spsr, VBAR, 0, Features::default());
        assert_eq!(i.esr, (0x24 << 26) | (1 << 25) | (1 << 6) | 0x10);
        assert_eq!((i.far, i.elr, i.spsr), (0xffff_0000_dead_b000, 0x40_1234, spsr));
        assert_eq!(i.pc, VBAR + 0x400);
        assert_eq!(i.pstate, 0x4000_03c5);
    }

    #[test]
    fn a_data_abort_at_el1_stays_at_el1() {
        let load = trap(ec::DABT_LOWER, (1 << 24) | 0b00_0110);
        let at = |m: u64| external_abort(&load, 0x4008_1000, m, VBAR, 0, Features::default());
        assert_eq!(at(spsr::EL1H).esr, (0x25 << 26) | (1 << 25) | 0x10);
        assert_eq!(at(spsr::EL1H).pc, VBAR + 0x200);
        assert_eq!(at(spsr::EL1T).pc, VBAR);
        // From AArch32 user space (M = 0b10000, usr).
        assert_eq!(at(0b1_0000).pc, VBAR + 0x600);
        assert_eq!(at(0b1_0000).esr >> 26, 0x24);
    }

    #[test]
    fn an_instruction_abort_keeps_no_data_abort_bits() {
        let fetch = trap(ec::IABT_LOWER, (1 << 6) | (1 << 8) | 0b00_0111);
        let i = external_abort(&fetch, 0x1000, spsr::EL1H, VBAR, 0, Features::default());
        assert_eq!(i.esr, (0x21 << 26) | (1 << 25) | 0x10);
        let i = external_abort(&fetch, 0x1000, spsr::EL0T, VBAR, 0, Features::default());
        assert_eq!(i.esr >> 26, 0x20);
    }

    #[test]
    fn exception_entry_sets_pan_and_ssbs_as_sctlr_says() {
        let load = trap(ec::DABT_LOWER, 0b00_0100);
        let cpu = Features { pan: true, ssbs: true };
        let entry = |spsr: u64, sctlr: u64| external_abort(&load, 0, spsr, VBAR, sctlr, cpu).pstate;
        // SPAN = 0: PAN set; SPAN = 1: PAN as it was.
        assert_ne!(entry(spsr::EL0T, 0) & spsr::PAN, 0);
        assert_eq!(entry(spsr::EL0T, SCTLR_SPAN) & spsr::PAN, 0);
        assert_ne!(entry(spsr::EL1H | spsr::PAN, SCTLR_SPAN) & spsr::PAN, 0);
        assert_ne!(entry(spsr::EL0T, SCTLR_DSSBS) & spsr::SSBS, 0);
        // Without the features, neither bit (they are RES0).
        let bare = external_abort(&load, 0, spsr::EL0T, VBAR, SCTLR_DSSBS, Features::default());
        assert_eq!(bare.pstate & (spsr::PAN | spsr::SSBS), 0);
        // Single step (SS), IL and the old mode do not survive entry.
        assert_eq!(entry(spsr::EL0T | (1 << 21) | (1 << 20), SCTLR_SPAN), 0x3c5);
    }
}
