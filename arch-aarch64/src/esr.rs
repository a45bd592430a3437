//! Decoding ESR_EL2 (exception syndrome) into the arch-neutral [`Exit`].

use tantalum_core::addr::GuestPhys;
use tantalum_core::exit::{Access, Exit, MmioAccess, RegisterClass, VcpuSet};

use crate::{psci, sysreg};

/// Exception classes (ESR_EL2.EC) that Tantalum handles.
pub mod ec {
    pub const WFX: u64 = 0x01;
    pub const HVC64: u64 = 0x16;
    pub const SMC64: u64 = 0x17;
    pub const SYSREG: u64 = 0x18;
    pub const IABT_LOWER: u64 = 0x20;
    pub const DABT_LOWER: u64 = 0x24;
}

/// The registers that describe a synchronous exception from a lower EL.
#[derive(Clone, Copy, Debug, Default)]
pub struct Syndrome {
    pub esr: u64,
    pub far: u64,
    pub hpfar: u64,
}

impl Syndrome {
    pub const fn class(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }
    const fn iss(&self) -> u64 {
        self.esr & 0x1ff_ffff
    }
    /// Faulting IPA of a stage-2 abort: HPFAR_EL2.FIPA (bits 43:4 = IPA 51:12) plus the page
    /// offset from FAR_EL2.
    pub const fn fault_ipa(&self) -> GuestPhys {
        GuestPhys(((self.hpfar & 0x0000_0FFF_FFFF_FFF0) << 8) | (self.far & 0xfff))
    }
}

/// Data abort ISS bits (the vectors test S1PTW and the DFSC with these: `boot.rs`).
pub mod dabt {
    /// ISV: the syndrome describes the access (SAS, SSE, SRT, SF, WnR are valid).
    pub const ISV: u64 = 1 << 24;
    /// S1PTW: the fault came from a stage-1 page-table walk.
    pub const S1PTW_BIT: u32 = 7;
    pub const S1PTW: u64 = 1 << S1PTW_BIT;
    pub const WNR: u64 = 1 << 6;
    /// The DFSC bits that tell the fault's type from its level.
    pub const DFSC_TYPE: u64 = 0x3c;
    /// DFSC values 0b0001LL: translation fault at level LL.
    pub const DFSC_TRANSLATION: u64 = 0b00_0100;
}

/// Whether a data abort with syndrome `esr` is a stage-2 translation fault on a single load or
/// store that the hardware decoded for us (ISV): something to emulate. Permission faults,
/// page-table walks and multi-register accesses are not. The vectors make these same three
/// tests before the MMIO fast path (`boot.rs`, with the constants of [`dabt`]).
#[inline(always)]
pub const fn emulable(esr: u64) -> bool {
    esr & dabt::ISV != 0 && esr & dabt::S1PTW == 0 && esr & dabt::DFSC_TYPE == dabt::DFSC_TRANSLATION
}

/// ESR_EL2 bits 31:24 of a data abort from a lower EL ([`ec::DABT_LOWER`]) by a 32-bit
/// instruction (IL) with a valid syndrome (ISV): the vectors compare them at once.
pub const DABT_IL_ISV: u64 = ec::DABT_LOWER << 2 | 1 << 1 | 1;

/// Whether a synchronous exception with syndrome `esr` goes to the MMIO fast path: an
/// [`emulable`] data abort from a lower EL by a 32-bit instruction (a 16-bit T32 one, from an
/// AArch32 EL0, takes the full path: the fast path advances the PC by 4). The vectors make
/// these tests in assembly (`boot.rs`: bits 31:24 against [`DABT_IL_ISV`], then S1PTW and the
/// DFSC's type).
pub const fn takes_fast_mmio(esr: u64) -> bool {
    (esr >> 24) & 0xff == DABT_IL_ISV && emulable(esr)
}

/// The access a data abort with syndrome `esr` describes, if [`emulable`].
#[inline(always)]
pub fn decoded_access(s: &Syndrome, x: &[u64; 31]) -> Option<MmioAccess> {
    if !emulable(s.esr) {
        return None;
    }
    let write = decoded_store(s.esr, x);
    Some(MmioAccess { size: access_size(s.esr), register: transfer_register(s.esr), write })
}

/// The value an [`emulable`] data abort with syndrome `esr` stores (`None`: a load), from the
/// guest's registers `x`: its transfer register (0 for the zero register) cut to the access's size.
#[inline(always)]
pub fn decoded_store(esr: u64, x: &[u64; 31]) -> Option<u64> {
    if esr & dabt::WNR == 0 {
        return None;
    }
    let register = transfer_register(esr);
    let value = if register == 31 { 0 } else { x[register as usize] };
    let size = access_size(esr);
    let mask = if size == 8 { u64::MAX } else { (1u64 << (8 * u32::from(size))) - 1 };
    Some(value & mask)
}

/// Whether a data abort with syndrome `esr` is a load (ISS.WnR clear).
#[inline(always)]
pub const fn is_load(esr: u64) -> bool {
    esr & dabt::WNR == 0
}

/// The bytes a data abort with a valid syndrome (ISV) moved: 1 << ISS.SAS.
#[inline(always)]
pub const fn access_size(esr: u64) -> u8 {
    1u8 << ((esr >> 22) & 3)
}

/// The general register a data abort with a valid syndrome (ISV) moved: ISS.SRT (31: the zero
/// register).
#[inline(always)]
pub const fn transfer_register(esr: u64) -> u8 {
    ((esr >> 16) & 0x1f) as u8
}

/// Sign-extends a value loaded by an emulated access if the instruction asked for it
/// (ESR_EL2.ISS.SSE, to 64 bits when SF is set, else 32). Only a data abort's ISS has those
/// fields: an emulated `MRS` (a trapped system register) loads all 64 bits as they are.
#[inline(always)]
pub fn extend_load(s: &Syndrome, value: u64) -> u64 {
    if s.class() != ec::DABT_LOWER {
        return value;
    }
    extend_data_load(s.esr, value)
}

/// [`extend_load`] for a data abort's syndrome `esr` (whose ISS has SAS, SSE and SF): the
/// value cut to the access's size (1 << ISS.SAS bytes), then, with SSE, sign-extended to 64 bits
/// (SF set) or to 32 (SF clear; a 64-bit access is never extended).
#[inline(always)]
pub fn extend_data_load(esr: u64, value: u64) -> u64 {
    // The bits above the access: 56, 48, 32 or 0.
    let above = 64 - (8u64 << ((esr >> 22) & 3));
    let shifted = value << above;
    if esr & SSE == 0 {
        return shifted >> above;
    }
    let extended = ((shifted as i64) >> above) as u64;
    match esr & SF == 0 && esr & (3 << 22) != 3 << 22 {
        true => extended & 0xffff_ffff,
        false => extended,
    }
}

/// ISS.SSE of a data abort: the load sign-extends.
const SSE: u64 = 1 << 21;
/// ISS.SF of a data abort: the transfer register is 64 bits wide.
const SF: u64 = 1 << 15;

/// The vCPU that trapped, for what depends on it (an SGI to "all but self").
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// Its number in its partition.
    pub vcpu: usize,
    /// How many vCPUs its partition has.
    pub vcpus: usize,
}

/// The vCPUs an `ICC_SGI1R_EL1` value names among the caller's partition's: the target list
/// (affinity 0.0.0.n, n < 16) or, with IRM, all but the caller.
fn sgi_targets(sgi1r: u64, caller: Caller) -> VcpuSet {
    let all_but_self = sgi1r & (1 << 40) != 0;
    let higher_affinity = (sgi1r >> 16) & 0xff | (sgi1r >> 32) & 0xff | (sgi1r >> 48) & 0xff;
    let mut set = 0u64;
    for vcpu in 0..caller.vcpus.min(64) {
        let named = higher_affinity == 0 && vcpu < 16 && sgi1r & (1 << vcpu) != 0;
        if if all_but_self { vcpu != caller.vcpu } else { named } {
            set |= 1 << vcpu;
        }
    }
    VcpuSet(set)
}

/// Whether the exception is a trapped access to a group 1 CPU interface register
/// ([`sysreg::is_icc_group1`]: `ICH_HCR_EL2.TALL1` traps them).
pub const fn is_icc_group1_access(s: &Syndrome) -> bool {
    s.class() == ec::SYSREG && sysreg::is_icc_group1((s.iss() & 0x3f_fc1e) as u32)
}

/// A trapped `MSR`/`MRS`: an SGI, or a register access core classifies by [`sysreg::classify`].
fn system_register(s: &Syndrome, x: &[u64; 31], caller: Caller) -> Exit {
    // ISS: Op0[21:20] Op2[19:17] Op1[16:14] CRn[13:10] Rt[9:5] CRm[4:1] Direction[0].
    let encoding = (s.iss() & 0x3f_fc1e) as u32;
    let register = ((s.iss() >> 5) & 0x1f) as u8;
    let value = if register == 31 { 0 } else { x[register as usize] };
    let write = s.iss() & 1 == 0;
    if encoding == sysreg::ICC_SGI1R_EL1 && write {
        return Exit::SendIpi { targets: sgi_targets(value, caller), intid: ((value >> 24) & 0xf) as u32 };
    }
    let class = sysreg::classify(encoding);
    // A PMU write never reaches the bits that would count the hypervisor's work.
    let mask = if class == RegisterClass::Pmu { sysreg::pmu_write_mask(encoding) } else { u64::MAX };
    Exit::Register { class, name: sysreg::name(encoding), register, write: write.then_some(value & mask) }
}

/// Decodes a synchronous exception; `x` holds the guest's x0..x30.
pub fn decode(s: &Syndrome, x: &[u64; 31], caller: Caller) -> Exit {
    let args = [x[1], x[2], x[3], x[4], x[5], x[6]];
    match s.class() {
        ec::HVC64 | ec::SMC64 if s.iss() & 0xffff == 0 && psci::is_psci(x[0]) => psci::decode(x[0], &args),
        ec::HVC64 if s.iss() & 0xffff == 0 => Exit::Hypercall { function: x[0], args },
        // SMCs reach the firmware on real hardware: only PSCI is emulated, the rest is refused.
        ec::SMC64 if s.iss() & 0xffff == 0 => Exit::ForbiddenCall { via: "SMC", function: x[0] },
        ec::DABT_LOWER => match decoded_access(s, x) {
            Some(access) => Exit::Mmio { addr: s.fault_ipa(), access },
            None => {
                let access = if s.iss() & dabt::WNR != 0 { Access::Write } else { Access::Read };
                Exit::Stage2Fault { addr: s.fault_ipa(), access }
            }
        },
        ec::IABT_LOWER => Exit::Stage2Fault { addr: s.fault_ipa(), access: Access::Execute },
        ec::SYSREG => system_register(s, x, caller),
        ec::WFX => Exit::WaitForInterrupt,
        _ => Exit::Unhandled { syndrome: s.esr },
    }
}

/// ESR_EL2 of an `hvc #0` from AArch64 (EC 0x16, IL set, imm16 0): the hypercall conduit.
/// (Its low 16 bits are zero: the vectors compare with one `movz`.)
pub const HVC64_IMM0: u64 = (ec::HVC64 << 26) | (1 << 25);
const _: () = assert!(HVC64_IMM0 & 0xffff == 0 && HVC64_IMM0 >> 32 == 0);

/// The value in x0 that answers a synchronous exception with syndrome `esr` and `function` in
/// x0, when that is all it takes: an `hvc #0` call that returns at once and changes nothing
/// (PSCI_VERSION, HYP_VERSION, a function nobody implements), exactly as [`decode`] and core's
/// `handle_exit` would answer it. `None` for anything else. The vectors' fast path answers these
/// without saving the whole frame (`vcpu::guest_fast_call`).
pub fn answered_at_once(esr: u64, function: u64) -> Option<u64> {
    if esr != HVC64_IMM0 {
        return None;
    }
    if psci::is_psci(function) {
        psci::answered_at_once(function)
    } else {
        tantalum_core::hypercall::answered_at_once(function)
    }
}

/// Whether the trapping instruction must be skipped on return (SMC, WFx and data aborts report
/// the instruction itself in ELR_EL2; HVC reports the next one).
pub const fn needs_pc_advance(s: &Syndrome) -> bool {
    matches!(s.class(), ec::SMC64 | ec::WFX | ec::DABT_LOWER)
}

/// Length of the trapped instruction: ESR_EL2.IL is 0 for a 16-bit T32 instruction (an
/// AArch32 EL0 process under a 64-bit guest), 1 for every 32-bit one.
#[inline(always)]
pub const fn instruction_length(s: &Syndrome) -> u64 {
    // ESR_EL2.IL is bit 25: 2 + 2 * IL.
    2 + ((s.esr >> 24) & 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Caller = Caller { vcpu: 0, vcpus: 1 };

    fn esr(class: u64, iss: u64) -> u64 {
        (class << 26) | (1 << 25) | iss
    }

    #[test]
    fn hypercalls() {
        let mut x = [0u64; 31];
        x[..7].copy_from_slice(&[0xC600_0003, 1, 2, 3, 4, 5, 6]);
        let s = Syndrome { esr: esr(ec::HVC64, 0), ..Default::default() };
        assert_eq!(decode(&s, &x, ONE), Exit::Hypercall { function: 0xC600_0003, args: [1, 2, 3, 4, 5, 6] });
        assert!(!needs_pc_advance(&s));
        let s = Syndrome { esr: esr(ec::SMC64, 0), ..Default::default() };
        assert_eq!(decode(&s, &x, ONE), Exit::ForbiddenCall { via: "SMC", function: 0xC600_0003 });
        assert!(needs_pc_advance(&s));
        // PSCI over either conduit.
        x[0] = tantalum_core::hypercall::psci::SYSTEM_OFF;
        assert_eq!(decode(&s, &x, ONE), Exit::SystemOff { via: "PSCI SYSTEM_OFF" });
        let s = Syndrome { esr: esr(ec::HVC64, 0), ..Default::default() };
        assert_eq!(decode(&s, &x, ONE), Exit::SystemOff { via: "PSCI SYSTEM_OFF" });
        // hvc #1 is not our conduit.
        let s = Syndrome { esr: esr(ec::HVC64, 1), ..Default::default() };
        assert!(matches!(decode(&s, &x, ONE), Exit::Unhandled { .. }));
    }

    /// Services for calls that must not need any: every method panics.
    struct NoServices;
    impl tantalum_core::partition::Services for NoServices {
        fn read_memory(&mut self, _: tantalum_core::addr::HostPhys, _: &mut [u8]) {
            unreachable!()
        }
        fn console_write(&mut self, _: &[u8]) {
            unreachable!()
        }
        fn wait(&mut self, _: u64) {
            unreachable!()
        }
        fn gic_access(&mut self, _: tantalum_core::vgic::Frame, _: tantalum_core::vgic::Access) -> u64 {
            unreachable!()
        }
        fn notify(&mut self, _: tantalum_core::config::PartitionId, _: u32) {
            unreachable!()
        }
        fn send_ipi(&mut self, _: VcpuSet, _: u32) -> bool {
            unreachable!()
        }
        fn cpu_on(&mut self, _: usize, _: GuestPhys, _: u64) -> tantalum_core::hypercall::Status {
            unreachable!()
        }
        fn vcpu_power(&mut self, _: usize) -> Option<tantalum_core::partition::power::Power> {
            unreachable!()
        }
        fn uart_access(&mut self, _: u64, _: Option<u64>) -> u64 {
            unreachable!()
        }
        fn partition_running(&mut self, _: tantalum_core::config::PartitionId) -> bool {
            unreachable!()
        }
        fn pmu_access(&mut self, _: u32, _: Option<u64>) -> u64 {
            unreachable!()
        }
    }

    /// The fast path's answers are the slow path's: for every function the fast path answers,
    /// decoding the exit and handling it in core returns that value in x0 alone (and calls no
    /// service); the calls that change or read anything are never answered fast.
    #[test]
    fn calls_answered_at_once_get_the_slow_paths_answer() {
        use tantalum_core::addr::{HostPhys, HostRange};
        use tantalum_core::config::{Board, HypervisorConfig, PartitionConfig, SystemConfig};
        use tantalum_core::hypercall::{self as h, psci as p};
        use tantalum_core::partition::{handle_exit, Outcome, PartitionState};
        let system = SystemConfig {
            board: Board::default(),
            hypervisor: HypervisorConfig {
                memory: HostRange::new(HostPhys(0x4000_0000), 0x200_0000),
                console: None,
                benchmark_pmu: false,
            },
            partitions: vec![PartitionConfig { name: "p".into(), cpus: vec![0], ..Default::default() }],
            channels: vec![],
            virtio: vec![],
            disks: vec![],
        };
        let mut functions = vec![0, 1, u64::MAX, 0x8600_0000, 0xC600_00FF, 0xC600_FF00, 0xC700_0000];
        functions.extend((0..0x20).map(|n| h::VENDOR_HYP_BASE + n));
        functions.extend((0..0x20).flat_map(|n| [0x8400_0000 + n, 0xC400_0000 + n]));
        let mut answered = 0;
        for f in functions {
            let Some(value) = answered_at_once(HVC64_IMM0, f) else { continue };
            answered += 1;
            let mut x = [0u64; 31];
            x[0] = f;
            let exit = decode(&Syndrome { esr: HVC64_IMM0, ..Default::default() }, &x, ONE);
            let outcome = handle_exit(&system, 0, &PartitionState::default(), exit, &mut NoServices);
            assert_eq!(outcome, Outcome::Return { values: [value, 0, 0, 0, 0], count: 1 }, "{f:#x}");
        }
        assert!(answered > 3);
        for f in [p::VERSION, h::HYP_VERSION, 0xC600_00FF] {
            assert!(answered_at_once(HVC64_IMM0, f).is_some(), "{f:#x}");
        }
        let slow = [
            p::CPU_ON_64,
            p::SYSTEM_OFF,
            p::SYSTEM_RESET,
            p::FEATURES,
            p::CPU_OFF,
            p::AFFINITY_INFO_64,
            h::HYP_PARTITION_INFO,
            h::HYP_CONSOLE_WRITE,
            h::HYP_WAIT,
            h::HYP_EXIT,
            h::HYP_CHANNEL_NOTIFY,
            h::HYP_PARTITION_STATE,
            h::HYP_SEND_IPI,
            h::HYP_INTERRUPT_TARGET,
            h::HYP_YIELD,
        ];
        for f in slow {
            assert_eq!(answered_at_once(HVC64_IMM0, f), None, "{f:#x}");
        }
        // Only `hvc #0`: not an SMC, not another immediate, not another class.
        for esr in [esr(ec::SMC64, 0), esr(ec::HVC64, 1), esr(ec::SYSREG, 0), HVC64_IMM0 & !(1 << 25)] {
            assert_eq!(answered_at_once(esr, p::VERSION), None, "{esr:#x}");
        }
    }

    #[test]
    fn stage2_aborts() {
        let s =
            Syndrome { esr: esr(ec::DABT_LOWER, 1 << 6), far: 0xdead_beef_0123, hpfar: 0x43_0000 << 4 >> 8 };
        // HPFAR holds IPA[47:12] in bits [43:4].
        let s = Syndrome { hpfar: (0x4300_0000u64 >> 12) << 4, ..s };
        assert_eq!(
            decode(&s, &[0; 31], ONE),
            Exit::Stage2Fault { addr: GuestPhys(0x4300_0123), access: Access::Write }
        );
        let s = Syndrome { esr: esr(ec::IABT_LOWER, 0), far: 0, hpfar: 0x10 };
        assert_eq!(
            decode(&s, &[0; 31], ONE),
            Exit::Stage2Fault { addr: GuestPhys(0x1000), access: Access::Execute }
        );
    }

    /// The ESR of an `msr`/`mrs` of `encoding` with general register `rt`.
    fn sysreg_esr(encoding: u32, rt: u64, read: bool) -> Syndrome {
        Syndrome {
            esr: esr(ec::SYSREG, u64::from(encoding) | (rt << 5) | u64::from(read)),
            ..Default::default()
        }
    }

    #[test]
    fn system_register_direction() {
        let read = Syndrome { esr: esr(ec::SYSREG, 0x30_0001), ..Default::default() };
        assert!(matches!(decode(&read, &[0; 31], ONE), Exit::Register { write: None, .. }));
        let write = Syndrome { esr: esr(ec::SYSREG, 0x30_0000), ..Default::default() };
        assert!(matches!(decode(&write, &[0; 31], ONE), Exit::Register { write: Some(0), .. }));
    }

    #[test]
    fn system_registers_are_classified() {
        let mut x = [0u64; 31];
        x[4] = (1 << 27) | 0x11;
        let actlr = sysreg::encode(3, 0, 1, 0, 1);
        assert_eq!(
            decode(&sysreg_esr(actlr, 4, false), &x, ONE),
            Exit::Register {
                class: RegisterClass::Forbidden,
                name: sysreg::name(actlr),
                register: 4,
                write: Some(x[4])
            }
        );
        let dbgbvr0 = sysreg::encode(2, 0, 0, 0, 4);
        assert!(matches!(
            decode(&sysreg_esr(dbgbvr0, 4, true), &x, ONE),
            Exit::Register { class: RegisterClass::Hidden, write: None, .. }
        ));
        // An event filter write loses NSH; a read of PMCR is a PMU access.
        let filter = sysreg::encode(3, 3, 14, 12, 0);
        assert!(matches!(
            decode(&sysreg_esr(filter, 4, false), &x, ONE),
            Exit::Register { class: RegisterClass::Pmu, write: Some(0x11), .. }
        ));
    }

    #[test]
    fn sgis_become_ipis_to_the_named_vcpus() {
        let four = |vcpu| Caller { vcpu, vcpus: 4 };
        let send = |value: u64, caller| {
            let mut x = [0u64; 31];
            x[2] = value;
            decode(&sysreg_esr(sysreg::ICC_SGI1R_EL1, 2, false), &x, caller)
        };
        // SGI 1 to vCPUs 1 and 5 (which does not exist).
        assert_eq!(send((1 << 24) | 0b10_0010, four(0)), Exit::SendIpi { targets: VcpuSet(0b10), intid: 1 });
        // IRM: all but the caller.
        assert_eq!(
            send((1 << 40) | (3 << 24), four(2)),
            Exit::SendIpi { targets: VcpuSet(0b1011), intid: 3 }
        );
        // A higher affinity level names no vCPU of ours.
        assert_eq!(send((1 << 16) | 1, four(0)), Exit::SendIpi { targets: VcpuSet(0), intid: 0 });
        // A read of the (write-only) register is no IPI.
        assert!(matches!(
            decode(&sysreg_esr(sysreg::ICC_SGI1R_EL1, 2, true), &[0; 31], ONE),
            Exit::Register { class: RegisterClass::Forbidden, .. }
        ));
    }

    #[test]
    fn decoded_loads_and_stores_become_mmio() {
        let mut x = [0u64; 31];
        x[3] = 0x1122_3344_5566_7788;
        // str w3, [..]: ISV, SAS = 2 (4 bytes), SRT = 3, WnR, translation fault level 3.
        let iss = dabt::ISV | (2 << 22) | (3 << 16) | dabt::WNR | 0b000111;
        let s = Syndrome { esr: esr(ec::DABT_LOWER, iss), far: 0x14, hpfar: (0x80a_0000u64 >> 12) << 4 };
        let access = MmioAccess { size: 4, register: 3, write: Some(0x5566_7788) };
        assert_eq!(decode(&s, &x, ONE), Exit::Mmio { addr: GuestPhys(0x80a_0014), access });
        assert!(needs_pc_advance(&s));
        // A permission fault (writing a read-only page) is never emulated.
        let perm = Syndrome { esr: esr(ec::DABT_LOWER, dabt::ISV | dabt::WNR | 0b001111), ..s };
        assert!(matches!(decode(&perm, &x, ONE), Exit::Stage2Fault { access: Access::Write, .. }));
        // ldrsb x1: sign extension to 64 bits.
        let ldrsb = Syndrome {
            esr: esr(ec::DABT_LOWER, dabt::ISV | (1 << 21) | (1 << 15) | (1 << 16) | 0b000111),
            ..s
        };
        assert_eq!(extend_load(&ldrsb, 0x80), 0xffff_ffff_ffff_ff80);
        let ldr = Syndrome { esr: esr(ec::DABT_LOWER, dabt::ISV | (2 << 22) | 0b000111), ..s };
        assert_eq!(extend_load(&ldr, 0x1_8000_0000), 0x8000_0000);
    }

    #[test]
    fn an_emulated_system_register_read_keeps_all_64_bits() {
        // MRS x0, PMCR_EL0: ISS Op0 = 3 sits where a data abort has SSE, and bits 23:22 (a data
        // abort's size) are 0: read as a sign-extended byte, QEMU's 0x41013000 became 0.
        let mrs = Syndrome {
            esr: esr(ec::SYSREG, u64::from(sysreg::encode(3, 3, 9, 12, 0)) | 1),
            ..Default::default()
        };
        assert_eq!(extend_load(&mrs, 0x4101_3000), 0x4101_3000);
        assert_eq!(extend_load(&mrs, 0x2_0001), 0x2_0001, "PMCEID0_EL0: CPU_CYCLES stays");
    }

    /// A small xorshift generator for the randomized checks below.
    fn random(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// `emulable` (the tests the vectors make in assembly) is the full path's condition for an
    /// `Exit::Mmio`, written out as it was: every combination of ISV, S1PTW, WnR and the DFSC,
    /// under random other bits.
    #[test]
    fn emulable_is_the_full_paths_decoded_access() {
        let reference = |iss: u64| iss & (1 << 24) != 0 && iss & (1 << 7) == 0 && iss & 0x3c == 0b000100;
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let (mut yes, mut no) = (0, 0);
        for low in 0..0x100u64 {
            for isv in [0, dabt::ISV] {
                for _ in 0..8 {
                    let other = random(&mut seed) & 0x1ff_ffff & !0xff & !dabt::ISV;
                    let esr = esr(ec::DABT_LOWER, other | isv | low);
                    let s = Syndrome { esr, far: 0, hpfar: 0 };
                    assert_eq!(emulable(esr), reference(esr & 0x1ff_ffff), "{esr:#x}");
                    assert_eq!(decoded_access(&s, &[7; 31]).is_some(), emulable(esr), "{esr:#x}");
                    let decoded = matches!(decode(&s, &[7; 31], ONE), Exit::Mmio { .. });
                    assert_eq!(decoded, emulable(esr), "{esr:#x}");
                    if emulable(esr) {
                        yes += 1
                    } else {
                        no += 1
                    }
                }
            }
        }
        assert_eq!((yes, no), (64, 4032));
    }

    /// The vectors' tests for the MMIO fast path (bits 31:24, S1PTW, the DFSC's type) are a
    /// data abort from a lower EL that the full path decodes as an `Exit::Mmio`, by a 32-bit
    /// instruction: every class, IL and ISV, with every S1PTW, WnR and DFSC under random bits.
    #[test]
    fn the_fast_mmio_path_takes_32_bit_emulable_data_aborts() {
        let mut seed = 0x1234_5678_9abc_def1;
        let mut taken = 0;
        for top in 0..0x100u64 {
            for low in 0..0x100u64 {
                let other = random(&mut seed) & 0x00ff_ff00;
                let esr = top << 24 | other | low;
                let s = Syndrome { esr, far: 0, hpfar: 0 };
                let mmio =
                    s.class() == ec::DABT_LOWER && matches!(decode(&s, &[0; 31], ONE), Exit::Mmio { .. });
                let wide = instruction_length(&s) == 4;
                assert_eq!(takes_fast_mmio(esr), mmio && wide, "{esr:#x}");
                taken += u32::from(takes_fast_mmio(esr));
            }
        }
        assert_eq!(taken, 8, "one EC, IL and ISV; 8 S1PTW, WnR and DFSC combinations");
    }

    /// `extend_data_load` (shifts, no size branch) is the extension it replaced, for every
    /// size, SSE and SF, on random values.
    #[test]
    fn extension_by_shifts_is_the_masked_extension() {
        fn reference(iss: u64, value: u64) -> u64 {
            let size_bits = 8u32 << ((iss >> 22) & 3);
            if size_bits >= 64 {
                return value;
            }
            let value = value & ((1u64 << size_bits) - 1);
            if iss & (1 << 21) == 0 {
                return value;
            }
            let shift = 64 - size_bits;
            let extended = (((value << shift) as i64) >> shift) as u64;
            if iss & (1 << 15) != 0 {
                extended
            } else {
                extended & 0xffff_ffff
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1d;
        for sas in 0..4u64 {
            for sse in [0, SSE] {
                for sf in [0, SF] {
                    let iss = dabt::ISV | sas << 22 | sse | sf | 0b000111;
                    let esr = esr(ec::DABT_LOWER, iss);
                    let edges = [0, 1, 0x7f, 0x80, 0xff, 0x8000, 0xffff, 0x8000_0000, 0xffff_ffff, u64::MAX];
                    for value in edges.into_iter().chain((0..256).map(|_| random(&mut seed))) {
                        assert_eq!(
                            extend_data_load(esr, value),
                            reference(iss, value),
                            "{esr:#x} {value:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sixteen_bit_t32_instructions_are_skipped_by_two() {
        let wide = Syndrome { esr: esr(ec::WFX, 0), ..Default::default() };
        assert_eq!(instruction_length(&wide), 4);
        let narrow = Syndrome { esr: ec::WFX << 26, ..Default::default() };
        assert_eq!(instruction_length(&narrow), 2);
    }
}
