//! The PSCI calls of Tantalum's ABI over VMCALL (docs/hypercalls.md, "PSCI"): the same function
//! IDs as on Arm (`tantalum_core::hypercall::psci`), decoded into the neutral [`Exit`] that core
//! decides on. x86 has no MPIDR: a target is the vCPU's number `n`, which is also what Arm's
//! affinity 0.0.0.n says. Only the SMC64 forms exist on x86 (there is no 32-bit caller).

use tantalum_core::addr::GuestPhys;
use tantalum_core::exit::Exit;
use tantalum_core::hypercall::psci::*;
use tantalum_core::hypercall::Status;

/// Whether `function` (rax) is in the PSCI range (SMCCC owner 4).
pub const fn is_psci(function: u64) -> bool {
    matches!(function & 0xBFFF_FFE0, 0x8400_0000)
}

const fn answer(status: Status) -> Exit {
    Exit::Answered { value: status.to_reg() }
}

/// The vCPU a target argument names (0..=255).
fn vcpu_of(target: u64) -> Option<usize> {
    (target <= 0xff).then_some(target as usize)
}

/// Decodes PSCI call `function` with arguments rdi, rsi, rdx, r10, r8, r9.
pub fn decode(function: u64, args: &[u64; 6]) -> Exit {
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
                    | CPU_ON_64
                    | CPU_OFF
                    | AFFINITY_INFO_64
            );
            answer(if supported { Status::Success } else { Status::NotSupported })
        }
        MIGRATE_INFO_TYPE => Exit::Answered { value: MIGRATE_NOT_REQUIRED },
        SYSTEM_OFF => Exit::SystemOff { via: "PSCI SYSTEM_OFF" },
        SYSTEM_RESET => Exit::SystemReset { via: "PSCI SYSTEM_RESET" },
        CPU_ON_64 => match vcpu_of(args[0]) {
            Some(vcpu) => Exit::CpuOn { vcpu, entry: GuestPhys(args[1]), context: args[2] },
            None => answer(Status::InvalidParameters),
        },
        CPU_OFF => Exit::CpuOff,
        AFFINITY_INFO_64 => match (vcpu_of(args[0]), args[1]) {
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
    fn power_calls_become_neutral_exits() {
        assert!(is_psci(CPU_ON_64) && is_psci(SYSTEM_OFF) && !is_psci(tantalum_core::hypercall::HYP_VERSION));
        assert_eq!(
            decode(CPU_ON_64, &[1, 0x100_2000, 0x77, 0, 0, 0]),
            Exit::CpuOn { vcpu: 1, entry: GuestPhys(0x100_2000), context: 0x77 }
        );
        for bad in [0x100, u64::MAX] {
            assert_eq!(decode(CPU_ON_64, &[bad, 0, 0, 0, 0, 0]), answer(Status::InvalidParameters));
        }
        assert_eq!(decode(CPU_OFF, &[0; 6]), Exit::CpuOff);
        assert_eq!(decode(AFFINITY_INFO_64, &[1, 0, 0, 0, 0, 0]), Exit::CpuState { vcpu: 1 });
        assert_eq!(decode(AFFINITY_INFO_64, &[1, 1, 0, 0, 0, 0]), answer(Status::InvalidParameters));
        assert_eq!(decode(SYSTEM_RESET, &[0; 6]), Exit::SystemReset { via: "PSCI SYSTEM_RESET" });
        // The 32-bit forms and CPU_SUSPEND are not part of the x86 ABI.
        assert_eq!(decode(CPU_ON_32, &[1, 0, 0, 0, 0, 0]), answer(Status::NotSupported));
        assert_eq!(decode(FEATURES, &[CPU_SUSPEND_64, 0, 0, 0, 0, 0]), answer(Status::NotSupported));
        assert_eq!(decode(FEATURES, &[CPU_ON_64, 0, 0, 0, 0, 0]), Exit::Answered { value: 0 });
        assert_eq!(decode(VERSION, &[0; 6]), Exit::Answered { value: IMPLEMENTED_VERSION });
    }
}
