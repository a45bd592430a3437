//! Decoding guests' PSCI calls (over HVC or SMC) into the arch-neutral [`Exit`]: core decides
//! what starting, stopping or resetting means; the PSCI numbers stay here. Queries about
//! PSCI itself (VERSION, FEATURES, MIGRATE_INFO_TYPE) are answered here.

use tantalum_core::addr::GuestPhys;
use tantalum_core::exit::Exit;
use tantalum_core::hypercall::psci::*;
use tantalum_core::hypercall::Status;

/// Whether `function` is in the PSCI range (owner 4 of SMCCC, either calling convention).
pub const fn is_psci(function: u64) -> bool {
    matches!(function & 0xBFFF_FFE0, 0x8400_0000)
}

/// The vCPU number a PSCI target affinity names: vCPU `n` has MPIDR affinity 0.0.0.n.
fn vcpu_of(mpidr: u64) -> Option<usize> {
    let affinity = mpidr & 0xff_00ff_ffff;
    (affinity <= 0xff).then_some(affinity as usize)
}

const fn answer(status: Status) -> Exit {
    Exit::Answered { value: status.to_reg() }
}

/// The answer to a PSCI call that returns at once with a value and changes nothing
/// (PSCI_VERSION), as [`decode`] answers it; `None` for every other call.
pub const fn answered_at_once(function: u64) -> Option<u64> {
    match function {
        VERSION => Some(IMPLEMENTED_VERSION),
        _ => None,
    }
}

/// Decodes PSCI call `function` (an [`is_psci`] one) with arguments `args` (x1..x6).
pub fn decode(function: u64, args: &[u64; 6]) -> Exit {
    // PSCI's SMC32 calls take 32-bit arguments.
    let arg = |i: usize| if function & (1 << 30) == 0 { args[i] & 0xffff_ffff } else { args[i] };
    match function {
        VERSION => Exit::Answered { value: IMPLEMENTED_VERSION },
        FEATURES => {
            let supported = matches!(
                args[0],
                VERSION
                    | FEATURES
                    | SYSTEM_OFF
                    | SYSTEM_RESET
                    | MIGRATE_INFO_TYPE
                    | CPU_ON_32
                    | CPU_ON_64
                    | CPU_OFF
                    | AFFINITY_INFO_32
                    | AFFINITY_INFO_64
            );
            answer(if supported { Status::Success } else { Status::NotSupported })
        }
        MIGRATE_INFO_TYPE => Exit::Answered { value: MIGRATE_NOT_REQUIRED },
        SYSTEM_OFF => Exit::SystemOff { via: "PSCI SYSTEM_OFF" },
        SYSTEM_RESET => Exit::SystemReset { via: "PSCI SYSTEM_RESET" },
        CPU_ON_32 | CPU_ON_64 => match vcpu_of(arg(0)) {
            Some(vcpu) => Exit::CpuOn { vcpu, entry: GuestPhys(arg(1)), context: arg(2) },
            None => answer(Status::InvalidParameters),
        },
        CPU_OFF => Exit::CpuOff,
        AFFINITY_INFO_32 | AFFINITY_INFO_64 => match (vcpu_of(arg(0)), arg(1)) {
            (Some(vcpu), 0) => Exit::CpuState { vcpu },
            _ => answer(Status::InvalidParameters),
        },
        _ => answer(Status::NotSupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range() {
        assert!(is_psci(SYSTEM_OFF));
        assert!(is_psci(CPU_ON_64));
        assert!(!is_psci(tantalum_core::hypercall::HYP_VERSION));
        assert!(!is_psci(0x8600_0000));
    }

    #[test]
    fn power_requests() {
        assert_eq!(decode(SYSTEM_OFF, &[0; 6]), Exit::SystemOff { via: "PSCI SYSTEM_OFF" });
        assert_eq!(decode(SYSTEM_RESET, &[0; 6]), Exit::SystemReset { via: "PSCI SYSTEM_RESET" });
        assert_eq!(decode(CPU_OFF, &[0; 6]), Exit::CpuOff);
        assert_eq!(
            decode(CPU_ON_64, &[1, 0x4008_0000, 0x77, 0, 0, 0]),
            Exit::CpuOn { vcpu: 1, entry: GuestPhys(0x4008_0000), context: 0x77 }
        );
        // SMC32 form: arguments are 32-bit.
        assert_eq!(
            decode(CPU_ON_32, &[0xffff_ffff_0000_0001, 0x1_4008_0000, 5, 0, 0, 0]),
            Exit::CpuOn { vcpu: 1, entry: GuestPhys(0x4008_0000), context: 5 }
        );
        // Higher affinity levels name no vCPU; a vCPU beyond the partition's is core's to refuse.
        assert_eq!(
            decode(CPU_ON_64, &[2, 0, 0, 0, 0, 0]),
            Exit::CpuOn { vcpu: 2, entry: GuestPhys(0), context: 0 }
        );
        for bad in [0x100, 0x1_0000_0000, u64::MAX] {
            assert_eq!(
                decode(CPU_ON_64, &[bad, 0, 0, 0, 0, 0]),
                answer(Status::InvalidParameters),
                "{bad:#x}"
            );
        }
        assert_eq!(decode(AFFINITY_INFO_64, &[1, 0, 0, 0, 0, 0]), Exit::CpuState { vcpu: 1 });
        assert_eq!(decode(AFFINITY_INFO_64, &[1, 1, 0, 0, 0, 0]), answer(Status::InvalidParameters));
    }

    #[test]
    fn queries_are_answered_here() {
        assert_eq!(decode(VERSION, &[0; 6]), Exit::Answered { value: IMPLEMENTED_VERSION });
        let features = |f| decode(FEATURES, &[f, 0, 0, 0, 0, 0]);
        assert_eq!(features(SYSTEM_OFF), Exit::Answered { value: 0 });
        assert_eq!(features(CPU_ON_64), Exit::Answered { value: 0 });
        assert_eq!(features(CPU_SUSPEND_64), answer(Status::NotSupported));
        assert_eq!(decode(MIGRATE_INFO_TYPE, &[0; 6]), Exit::Answered { value: 2 });
    }
}
