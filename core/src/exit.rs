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
    /// The IOMMU refused a DMA access by one of the partition's devices.
    DmaFault(crate::iommu::DmaFault),
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

    /// RAS error records (`ERR*`, `ERX*`: Op1 0, CRn 5, CRm 3..5; `DISR_EL1`) and activity
    /// monitors (`AM*`: Op1 3, CRn 13, CRm 2..7), trapped where the CPU has them: they read as
    /// zero and ignore writes (a partition sees neither the machine's errors nor its activity).
    pub const fn is_hidden(encoding: u32) -> bool {
        matches!(fields(encoding), (3, 0, 5, 3..=5, _) | (3, 0, 12, 1, 1) | (3, 3, 13, 2..=7, _))
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
