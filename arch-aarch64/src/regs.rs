//! Values of the EL2 control registers, composed from named fields. Plain arithmetic: the
//! binary writes them, the host tests check them.

use aarch64_cpu::registers::{HCR_EL2, MDCR_EL2, VTCR_EL2};
use tantalum_core::stage2::Geometry;
use tock_registers::fields::FieldValue;
use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// CPTR_EL2 without VHE (aarch64-cpu declares only `TAM`).
    pub CPTR_EL2 [
        /// Trap activity-monitor accesses (FEAT_AMUv1).
        TAM OFFSET(30) NUMBITS(1) [],
        /// Trap trace-register accesses.
        TTA OFFSET(20) NUMBITS(1) [],
        /// Trap FP/SIMD.
        TFP OFFSET(10) NUMBITS(1) [],
        /// Bits 13:12 and 9:0 read as one.
        RES1_13_12 OFFSET(12) NUMBITS(2) [All = 0b11],
        RES1_9_0 OFFSET(0) NUMBITS(10) [All = 0x3ff],
    ]
}

/// HCR_EL2 for a partition's vCPU: stage 2 on, EL1 is AArch64, SMC and implementation-defined
/// or cache-by-set/way operations trapped, interrupts routed to EL2 (guests see the virtual CPU
/// interface), barriers upgraded to inner shareable. No forced broadcast of TLB maintenance
/// (`FB`): a vCPU never moves to another physical CPU, so its local invalidations are enough
/// (and broadcasting every one is expensive).
pub fn hcr_el2() -> u64 {
    let fields: FieldValue<u64, HCR_EL2::Register> = HCR_EL2::VM::Enable
        + HCR_EL2::RW::EL1IsAarch64
        + HCR_EL2::TSC::EnableTrapEl1SmcToEl2
        + HCR_EL2::IMO::EnableVirtualIRQ
        + HCR_EL2::FMO::EnableVirtualFIQ
        + HCR_EL2::AMO::SET
        + HCR_EL2::TACR::SET
        + HCR_EL2::TIDCP::SET
        + HCR_EL2::TSW::SET
        + HCR_EL2::TLOR::SET
        + HCR_EL2::BSU::InnerShareable
        + HCR_EL2::API::DisableTrapPointerAuthInstToEl2
        + HCR_EL2::APK::DisableTrapPointerAuthKeyRegsToEl2;
    fields.value
}

/// VTCR_EL2 for a partition's stage 2: 4 KiB granule, `geometry`'s IPA size and start level
/// (level 2 with concatenated tables, or level 1), 40-bit output, write-back inner-shareable
/// table walks.
pub fn vtcr_el2(geometry: Geometry) -> u64 {
    let start = match geometry.start_level {
        2 => VTCR_EL2::SL0::Granule4KBLevel2,
        _ => VTCR_EL2::SL0::Granule4KBLevel1,
    };
    let fields: FieldValue<u64, VTCR_EL2::Register> = VTCR_EL2::RES1::SET
        + VTCR_EL2::T0SZ.val(64 - u64::from(geometry.ipa_bits))
        + start
        + VTCR_EL2::IRGN0::NormalWBRAWA
        + VTCR_EL2::ORGN0::NormalWBRAWA
        + VTCR_EL2::SH0::Inner
        + VTCR_EL2::TG0::Granule4KB
        + VTCR_EL2::PS::PA_40B_1TB
        + VTCR_EL2::VS::Bits8;
    fields.value
}

/// VTTBR_EL2 for a partition: VMID in bits 55:48, stage-2 root below.
pub const fn vttbr_el2(vmid: u8, root: u64) -> u64 {
    ((vmid as u64) << 48) | root
}

/// MDCR_EL2: every PMU counter stays with the guest (`pmu_counters` = PMCR_EL0.N), but every
/// PMU access traps (`TPM`, `TPMCR`) so that core can keep its event filters off EL2 (a
/// partition counts only its own EL0/EL1 work; `HPMD` would do it without traps, but only from
/// PMUv3p1 on). The self-hosted debug registers are the partition's own (breakpoints,
/// watchpoints, single step, the OS lock): no `TDA`/`TDOSA`; with `TDE` clear the debug target
/// is EL1, so no debug exception is ever taken at or about EL2. Only the debug ROM address
/// (`MDRAR_EL1`, external debug) traps (`TDRA`) and reads as zero. With `benchmark_pmu` (the config's `benchmark-pmu`), PMU accesses do not trap and counter 0
/// goes on counting every EL from the hypervisor's entry, for `cargo xtask bench`.
pub fn mdcr_el2(pmu_counters: u64, benchmark_pmu: bool) -> u64 {
    let mut fields: FieldValue<u64, MDCR_EL2::Register> =
        MDCR_EL2::HPMN.val(pmu_counters & 0x1f) + MDCR_EL2::TDRA::SET;
    if !benchmark_pmu {
        fields += MDCR_EL2::TPM::SET + MDCR_EL2::TPMCR::SET;
    }
    fields.value
}

/// Optional CPU features whose registers a partition must not reach, from ID_AA64PFR0_EL1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// FEAT_RAS: error records (`ERR*`), trapped with `HCR_EL2.TERR`.
    pub ras: bool,
    /// FEAT_AMUv1: activity monitors (`AM*`), trapped with `CPTR_EL2.TAM`.
    pub amu: bool,
}

impl Features {
    pub const fn of(id_aa64pfr0: u64) -> Features {
        Features { ras: (id_aa64pfr0 >> 28) & 0xf != 0, amu: (id_aa64pfr0 >> 44) & 0xf != 0 }
    }
}

/// HCR_EL2 bits that exist only with a feature: `TERR` (bit 36) with RAS.
pub const fn hcr_el2_feature_traps(features: Features) -> u64 {
    if features.ras {
        1 << 36
    } else {
        0
    }
}

/// CPTR_EL2: no traps of FP/SIMD (a partition owns its CPU's FP state); trace registers trap
/// (`TTA`: they read as zero), and so do activity monitors where the CPU has them (`TAM`).
pub fn cptr_el2(features: Features) -> u64 {
    let mut fields: FieldValue<u64, CPTR_EL2::Register> =
        CPTR_EL2::RES1_13_12::All + CPTR_EL2::RES1_9_0::All + CPTR_EL2::TTA::SET;
    if features.amu {
        fields += CPTR_EL2::TAM::SET;
    }
    fields.value
}

/// CNTHCTL_EL2: EL1 uses the physical counter and its physical timer freely (each CPU belongs
/// to one partition; the timers' interrupts are forwarded to it). No event stream: waits in the
/// hypervisor sleep in WFI until the EL2 timer or an interrupt.
pub const fn cnthctl_el2() -> u64 {
    const EL1PCTEN: u64 = 1 << 0;
    const EL1PCEN: u64 = 1 << 1;
    EL1PCTEN | EL1PCEN
}

/// SCTLR_EL1 at reset: MMU and caches off, RES1 bits set.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// SPSR_EL2 to enter a guest: EL1h, all of DAIF masked.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;

/// VMPIDR_EL2 for vCPU `index` of a partition (bit 31 is RES1).
pub const fn vmpidr_el2(index: u64) -> u64 {
    (1 << 31) | (index & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcr_traps_what_we_need() {
        let hcr = hcr_el2();
        for bit in [0, 31, 19, 4, 3, 5, 22, 20, 21] {
            assert_ne!(hcr & (1 << bit), 0, "bit {bit}");
        }
        // No WFI trap (a waiting guest sleeps on its own CPU), no TGE/E2H.
        for bit in [13, 27, 34] {
            assert_eq!(hcr & (1 << bit), 0, "bit {bit}");
        }
    }

    #[test]
    fn vtcr_for_39_bit_ipa_from_level_1() {
        let v = vtcr_el2(Geometry { start_level: 1, root_tables: 1, ipa_bits: 39 });
        assert_eq!(v & 0x3f, 25);
        assert_eq!((v >> 6) & 3, 1);
        assert_eq!((v >> 16) & 7, 0b010);
        assert_ne!(v & (1 << 31), 0);
    }

    #[test]
    fn vtcr_for_31_bit_ipa_from_level_2() {
        // QEMU virt partitions: two concatenated level-2 tables.
        let v = vtcr_el2(Geometry::covering(0x5800_0000).unwrap());
        assert_eq!(v & 0x3f, 33);
        assert_eq!((v >> 6) & 3, 0);
    }

    #[test]
    fn vttbr_packs_vmid() {
        assert_eq!(vttbr_el2(3, 0x4010_0000), 0x0003_0000_4010_0000);
    }

    #[test]
    fn mdcr_keeps_pmu_counters_traps_pmu_gives_self_hosted_debug() {
        let m = mdcr_el2(6, false);
        assert_eq!(m & 0x1f, 6);
        assert_ne!(m & (1 << 6), 0, "TPM");
        assert_ne!(m & (1 << 5), 0, "TPMCR");
        assert_eq!(m & (1 << 9 | 1 << 10), 0, "no TDA, no TDOSA: the partition's debug");
        assert_eq!(m & (1 << 8), 0, "no TDE: the debug target stays EL1");
        assert_ne!(m & (1 << 11), 0, "TDRA: the debug ROM address reads as zero");
        let bench = mdcr_el2(6, true);
        assert_eq!(bench & (1 << 6 | 1 << 5), 0, "benchmark-pmu: no PMU traps");
    }

    #[test]
    fn trace_always_traps_ras_and_amu_where_present() {
        let none = Features::of(0x0000_0000_0000_2222);
        assert_eq!(none, Features::default());
        assert_eq!(cptr_el2(none), 0x33ff | 1 << 20);
        assert_eq!(hcr_el2_feature_traps(none), 0);
        let both = Features::of(0x0000_1000_1000_2222);
        assert_eq!(both, Features { ras: true, amu: true });
        assert_eq!(cptr_el2(both), 0x33ff | 1 << 20 | 1 << 30);
        assert_eq!(hcr_el2_feature_traps(both), 1 << 36);
    }
}
