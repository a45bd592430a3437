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
    /// A trapped system-register (or MSR) access; `encoding` is arch-specific.
    SystemRegister { encoding: u32, write: bool },
    /// The guest executed WFI / HLT.
    WaitForInterrupt,
    /// A physical interrupt arrived while the guest ran.
    Interrupt,
    /// Anything else the hypervisor does not emulate; `syndrome` is arch-specific.
    Unhandled { syndrome: u64 },
}
