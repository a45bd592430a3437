//! Why a vCPU stopped running guest code: produced by `arch-*`, consumed by [`crate::partition`].

use crate::addr::GuestPhys;

/// How a guest asked for a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc #0` on Arm, `vmcall` on x86.
    Hvc,
    /// `smc #0` on Arm (trapped by the hypervisor).
    Smc,
}

/// Kind of memory access that faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

impl Access {
    pub const fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Execute => "execute",
        }
    }
}

/// A decoded load or store to an emulated device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// 1, 2, 4 or 8 bytes.
    pub size: u8,
    /// The general register read or written (31 = the zero register).
    pub register: u8,
    /// `Some(value)` for a store.
    pub write: Option<u64>,
}

impl MmioAccess {
    /// The plain access kind, for fault reports.
    pub const fn kind(&self) -> Access {
        if self.write.is_some() {
            Access::Write
        } else {
            Access::Read
        }
    }
}

/// A decoded exit from the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A hypercall or firmware call: function ID in x0 / rax, arguments in x1..x6.
    Hypercall { conduit: Conduit, function: u64, args: [u64; 6] },
    /// An access outside the partition's stage-2 / EPT mappings that the hardware decoded
    /// (a single load or store of one register): a candidate for device emulation.
    Mmio { addr: GuestPhys, access: MmioAccess },
    /// An access outside the partition's stage-2 / EPT mappings.
    Stage2Fault { addr: GuestPhys, access: Access },
    /// A trapped system-register (or MSR) access; `encoding` is arch-specific (on Arm,
    /// [`sysreg`]); `register` is the general register written to or read from, `value` what
    /// a write stores.
    SystemRegister { encoding: u32, write: bool, register: u8, value: u64 },
    /// The guest executed WFI / HLT.
    WaitForInterrupt,
    /// A physical interrupt arrived while the guest ran.
    Interrupt,
    /// Anything else the hypervisor does not emulate; `syndrome` is arch-specific.
    Unhandled { syndrome: u64 },
}

/// Arm system-register encodings as trapped accesses report them (the ESR ISS layout without
/// the register number: Op0[21:20] Op2[19:17] Op1[16:14] CRn[13:10] CRm[4:1]).
pub mod sysreg {
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

    /// `S<op0>_<op1>_C<crn>_C<crm>_<op2>`, the assembler's generic name of an encoding.
    pub struct Name(pub u32);

    impl core::fmt::Display for Name {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let e = self.0;
            let field = |shift: u32, bits: u32| (e >> shift) & ((1 << bits) - 1);
            write!(
                f,
                "S{}_{}_C{}_C{}_{}",
                field(20, 2),
                field(14, 3),
                field(10, 4),
                field(1, 4),
                field(17, 3)
            )
        }
    }
}
