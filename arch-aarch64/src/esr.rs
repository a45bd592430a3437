//! Decoding ESR_EL2 (exception syndrome) into the arch-neutral [`Exit`].

use tantalum_core::addr::GuestPhys;
use tantalum_core::exit::{Access, Conduit, Exit};

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

/// Decodes a synchronous exception; `x` holds the guest's x0..x6.
pub fn decode(s: &Syndrome, x: &[u64; 7]) -> Exit {
    let args = [x[1], x[2], x[3], x[4], x[5], x[6]];
    match s.class() {
        ec::HVC64 if s.iss() & 0xffff == 0 => Exit::Hypercall { conduit: Conduit::Hvc, function: x[0], args },
        ec::SMC64 if s.iss() & 0xffff == 0 => Exit::Hypercall { conduit: Conduit::Smc, function: x[0], args },
        ec::DABT_LOWER => {
            let write = s.iss() & (1 << 6) != 0;
            let access = if write { Access::Write } else { Access::Read };
            Exit::Stage2Fault { addr: s.fault_ipa(), access }
        }
        ec::IABT_LOWER => Exit::Stage2Fault { addr: s.fault_ipa(), access: Access::Execute },
        ec::SYSREG => {
            // ISS: Op0[21:20] Op2[19:17] Op1[16:14] CRn[13:10] Rt[9:5] CRm[4:1] Direction[0].
            let encoding = (s.iss() & 0x3f_fc1e) as u32;
            Exit::SystemRegister { encoding, write: s.iss() & 1 == 0 }
        }
        ec::WFX => Exit::WaitForInterrupt,
        _ => Exit::Unhandled { syndrome: s.esr },
    }
}

/// Whether the trapping instruction must be skipped on return (SMC and WFx report the
/// instruction itself in ELR_EL2; HVC reports the next one).
pub const fn needs_pc_advance(s: &Syndrome) -> bool {
    matches!(s.class(), ec::SMC64 | ec::WFX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esr(class: u64, iss: u64) -> u64 {
        (class << 26) | (1 << 25) | iss
    }

    #[test]
    fn hypercalls() {
        let x = [0xC600_0003, 1, 2, 3, 4, 5, 6];
        let s = Syndrome { esr: esr(ec::HVC64, 0), ..Default::default() };
        assert_eq!(
            decode(&s, &x),
            Exit::Hypercall { conduit: Conduit::Hvc, function: 0xC600_0003, args: [1, 2, 3, 4, 5, 6] }
        );
        assert!(!needs_pc_advance(&s));
        let s = Syndrome { esr: esr(ec::SMC64, 0), ..Default::default() };
        assert!(matches!(decode(&s, &x), Exit::Hypercall { conduit: Conduit::Smc, .. }));
        assert!(needs_pc_advance(&s));
        // hvc #1 is not our conduit.
        let s = Syndrome { esr: esr(ec::HVC64, 1), ..Default::default() };
        assert!(matches!(decode(&s, &x), Exit::Unhandled { .. }));
    }

    #[test]
    fn stage2_aborts() {
        let s =
            Syndrome { esr: esr(ec::DABT_LOWER, 1 << 6), far: 0xdead_beef_0123, hpfar: 0x43_0000 << 4 >> 8 };
        // HPFAR holds IPA[47:12] in bits [43:4].
        let s = Syndrome { hpfar: (0x4300_0000u64 >> 12) << 4, ..s };
        assert_eq!(
            decode(&s, &[0; 7]),
            Exit::Stage2Fault { addr: GuestPhys(0x4300_0123), access: Access::Write }
        );
        let s = Syndrome { esr: esr(ec::IABT_LOWER, 0), far: 0, hpfar: 0x10 };
        assert_eq!(
            decode(&s, &[0; 7]),
            Exit::Stage2Fault { addr: GuestPhys(0x1000), access: Access::Execute }
        );
    }

    #[test]
    fn system_register_direction() {
        let read = Syndrome { esr: esr(ec::SYSREG, 0x30_0001), ..Default::default() };
        assert!(matches!(decode(&read, &[0; 7]), Exit::SystemRegister { write: false, .. }));
        let write = Syndrome { esr: esr(ec::SYSREG, 0x30_0000), ..Default::default() };
        assert!(matches!(decode(&write, &[0; 7]), Exit::SystemRegister { write: true, .. }));
    }
}
