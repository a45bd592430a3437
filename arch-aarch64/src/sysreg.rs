//! Arm system-register encodings as trapped accesses report them (the ESR ISS layout without
//! the register number: Op0[21:20] Op2[19:17] Op1[16:14] CRn[13:10] CRm[4:1]), and how each
//! trapped one is classified for core.

use tantalum_core::exit::{RegisterClass, RegisterName};

/// The encoding of `S<op0>_<op1>_C<crn>_C<crm>_<op2>`.
pub const fn encode(op0: u32, op1: u32, crn: u32, crm: u32, op2: u32) -> u32 {
    (op0 << 20) | (op2 << 17) | (op1 << 14) | (crn << 10) | (crm << 1)
}

/// `ICC_SGI1R_EL1`: a guest sends an SGI to its vCPUs (trapped with `HCR_EL2.IMO`).
pub const ICC_SGI1R_EL1: u32 = encode(3, 0, 12, 11, 5);

/// Whether an encoding is in the debug space (Op0 = 2: breakpoints, watchpoints, OS lock,
/// MDSCR...): trapped so that partitions cannot use the real ones.
pub const fn is_debug(encoding: u32) -> bool {
    (encoding >> 20) & 3 == 2
}

const fn fields(e: u32) -> (u32, u32, u32, u32, u32) {
    ((e >> 20) & 3, (e >> 14) & 7, (e >> 10) & 0xf, (e >> 1) & 0xf, (e >> 17) & 7)
}

/// Whether an encoding is a PMU register (trapped with `MDCR_EL2.TPM`): `PMCR_EL0` to
/// `PMUSERENR_EL0` (Op1 3, CRn 9, CRm 12..14), `PMINTENSET/CLR_EL1` and `PMMIR_EL1` (Op1 0,
/// CRn 9, CRm 14), the event counters and filters (Op1 3, CRn 14, CRm 8..15).
pub const fn is_pmu(encoding: u32) -> bool {
    matches!(fields(encoding), (3, 3, 9, 12..=14, _) | (3, 0, 9, 14, 1 | 2 | 6) | (3, 3, 14, 8..=15, _))
}

/// The bits of a PMU register that a partition may write: all, except in an event filter
/// (`PMEVTYPER<n>_EL0`, `PMXEVTYPER_EL0`, `PMCCFILTR_EL0`) the NSH bit, which would count
/// events at EL2: the work the hypervisor does for other partitions on this CPU.
pub const fn pmu_write_mask(encoding: u32) -> u64 {
    const NSH: u64 = 1 << 27;
    match fields(encoding) {
        (3, 3, 14, 12..=15, _) | (3, 3, 9, 13, 1) => !NSH,
        _ => u64::MAX,
    }
}

/// Whether an encoding is a group 1 CPU interface register that `ICH_HCR_EL2.TALL1` traps:
/// `ICC_IAR1_EL1`, `ICC_EOIR1_EL1`, `ICC_HPPIR1_EL1`, `ICC_BPR1_EL1`, `ICC_IGRPEN1_EL1` (CRm 12)
/// and `ICC_AP1R<n>_EL1` (CRm 9).
pub const fn is_icc_group1(encoding: u32) -> bool {
    matches!(fields(encoding), (3, 0, 12, 12, 0..=3 | 7) | (3, 0, 12, 9, 0..=3))
}

/// RAS error records (`ERR*`, `ERX*`: Op1 0, CRn 5, CRm 3..5; `DISR_EL1`) and activity
/// monitors (`AM*`: Op1 3, CRn 13, CRm 2..7), trapped where the CPU has them: they read as
/// zero and ignore writes (a partition sees neither the machine's errors nor its activity).
pub const fn is_hidden(encoding: u32) -> bool {
    matches!(fields(encoding), (3, 0, 5, 3..=5, _) | (3, 0, 12, 1, 1) | (3, 3, 13, 2..=7, _))
}

/// How core treats a trapped access to `encoding` (`ICC_SGI1R_EL1` is decoded before, into
/// an IPI).
pub const fn classify(encoding: u32) -> RegisterClass {
    if is_debug(encoding) || is_hidden(encoding) {
        RegisterClass::Hidden
    } else if is_pmu(encoding) {
        RegisterClass::Pmu
    } else {
        RegisterClass::Forbidden
    }
}

/// `S<op0>_<op1>_C<crn>_C<crm>_<op2>`, the assembler's generic name of an encoding.
fn format(e: u32, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let field = |shift: u32, bits: u32| u64::from((e >> shift) & ((1 << bits) - 1));
    write!(f, "S{}_{}_C{}_C{}_{}", field(20, 2), field(14, 3), field(10, 4), field(1, 4), field(17, 3))
}

/// The name core prints for `encoding` in a fault report.
pub const fn name(encoding: u32) -> RegisterName {
    RegisterName::new(encoding, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(encode(2, 0, 0, 0, 4)), RegisterClass::Hidden, "DBGBVR0_EL1");
        assert_eq!(classify(encode(3, 3, 9, 12, 0)), RegisterClass::Pmu, "PMCR_EL0");
        assert!(is_icc_group1(encode(3, 0, 12, 12, 0)), "ICC_IAR1_EL1");
        assert!(is_icc_group1(encode(3, 0, 12, 12, 1)), "ICC_EOIR1_EL1");
        assert!(is_icc_group1(encode(3, 0, 12, 9, 0)), "ICC_AP1R0_EL1");
        assert!(!is_icc_group1(ICC_SGI1R_EL1));
        assert!(!is_icc_group1(encode(3, 0, 12, 8, 0)), "ICC_IAR0_EL1");
        assert_eq!(classify(encode(3, 1, 15, 2, 0)), RegisterClass::Forbidden, "IMPDEF");
        assert_eq!(classify(encode(3, 0, 1, 0, 1)), RegisterClass::Forbidden, "ACTLR_EL1");
        for e in
            [encode(3, 0, 9, 14, 1), encode(3, 0, 9, 14, 2), encode(3, 3, 9, 14, 0), encode(3, 3, 9, 12, 5)]
        {
            assert!(is_pmu(e), "{e:#x}");
        }
        assert!(!is_pmu(ICC_SGI1R_EL1));
        // RAS error records and activity monitors read as zero.
        for hidden in
            [encode(3, 0, 5, 3, 0), encode(3, 0, 5, 4, 2), encode(3, 0, 12, 1, 1), encode(3, 3, 13, 2, 0)]
        {
            assert_eq!(classify(hidden), RegisterClass::Hidden, "{hidden:#x}");
        }
    }

    #[test]
    fn event_filters_never_count_at_el2() {
        let nsh = 1u64 << 27;
        for filter in [
            encode(3, 3, 14, 12, 0),
            encode(3, 3, 14, 15, 6),
            encode(3, 3, 14, 15, 7),
            encode(3, 3, 9, 13, 1),
        ] {
            assert_eq!((nsh | 0x11) & pmu_write_mask(filter), 0x11, "{filter:#x}");
        }
        // A counter keeps every bit.
        assert_eq!(pmu_write_mask(encode(3, 3, 14, 8, 3)), u64::MAX);
    }

    #[test]
    fn names() {
        assert_eq!(format!("{}", name(encode(3, 1, 15, 2, 0))), "S3_1_C15_C2_0");
        assert_eq!(format!("{}", name(encode(3, 0, 1, 0, 1))), "S3_0_C1_C0_1");
    }
}
