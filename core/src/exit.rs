//! Why a vCPU stopped running guest code: produced by `arch-*`, consumed by [`crate::partition`].

use crate::addr::GuestPhys;

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

/// The vCPUs of the calling partition that an IPI goes to: bit `n` is vCPU `n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSet(pub u64);

impl VcpuSet {
    pub const fn contains(self, vcpu: usize) -> bool {
        vcpu < 64 && self.0 & (1 << vcpu) != 0
    }
    /// The vCPUs of the set, lowest first (its set bits only: an SGI to one vCPU is one step).
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            let vcpu = bits.trailing_zeros() as usize;
            bits &= bits.wrapping_sub(1);
            (vcpu < 64).then_some(vcpu)
        })
    }
}

/// What the hypervisor does with a trapped register access, as the arch classified it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterClass {
    /// A register a partition may touch but must not see the real one of (debug, trace, RAS,
    /// activity monitors): reads as zero, writes are ignored.
    Hidden,
    /// A performance-monitor register: carried out on this CPU's own counters, by the arch
    /// (which keeps them from counting the hypervisor's work).
    Pmu,
    /// Any other register the hypervisor traps: a fault.
    Forbidden,
}

/// An arch-specific register number with the arch's way of naming it in reports
/// (`S3_1_C15_C2_0` on Arm, `MSR 0x1b` on x86).
#[derive(Clone, Copy)]
pub struct RegisterName {
    pub id: u32,
    pub format: fn(u32, &mut core::fmt::Formatter<'_>) -> core::fmt::Result,
}

impl RegisterName {
    /// A name printed as `fmt`'s output for `id`.
    pub const fn new(id: u32, format: fn(u32, &mut core::fmt::Formatter<'_>) -> core::fmt::Result) -> Self {
        Self { id, format }
    }
}

impl PartialEq for RegisterName {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for RegisterName {}

impl core::fmt::Debug for RegisterName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RegisterName({self})")
    }
}

impl core::fmt::Display for RegisterName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (self.format)(self.id, f)
    }
}

/// A decoded exit from the guest. It says what the guest did, never how an architecture
/// encodes it: each `arch-*` decodes its traps (ESR classes, PSCI calls, VMX exit reasons)
/// into these variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A Tantalum hypercall (`hvc #0` / `vmcall`): function ID in x0 / rax, arguments in
    /// x1..x6 / rdi, rsi, rdx, r10, r8, r9.
    Hypercall { function: u64, args: [u64; 6] },
    /// A call the platform does not let partitions make (on Arm, an SMC that is not PSCI);
    /// `via` names the instruction for the report.
    ForbiddenCall { via: &'static str, function: u64 },
    /// A query about the arch's own firmware interface that the arch answered (PSCI_VERSION,
    /// PSCI_FEATURES, or a malformed argument): `value` goes back to the guest.
    Answered { value: u64 },
    /// Start vCPU `vcpu` of the calling partition at `entry`, with `context` in its first
    /// argument register (PSCI CPU_ON; INIT-SIPI on x86).
    CpuOn { vcpu: usize, entry: GuestPhys, context: u64 },
    /// The calling vCPU turns itself off (PSCI CPU_OFF).
    CpuOff,
    /// The power state of vCPU `vcpu` of the calling partition (PSCI AFFINITY_INFO).
    CpuState { vcpu: usize },
    /// The partition powers itself off; `via` names how, for the report ("PSCI SYSTEM_OFF").
    SystemOff { via: &'static str },
    /// The partition resets itself; `via` names how ("PSCI SYSTEM_RESET").
    SystemReset { via: &'static str },
    /// An inter-processor interrupt `intid` to `targets`, vCPUs of the calling partition
    /// (`ICC_SGI1R_EL1` on Arm, an ICR write on x86).
    SendIpi { targets: VcpuSet, intid: u32 },
    /// An access outside the partition's stage-2 / EPT mappings that the hardware decoded
    /// (a single load or store of one register): a candidate for device emulation.
    Mmio { addr: GuestPhys, access: MmioAccess },
    /// An I/O port access (x86 IN/OUT) to a port none of the partition's devices has (those
    /// pass through without an exit): `size` bytes (1, 2 or 4) at `port`; `write` is what an OUT
    /// stores. What an IN reads goes to the arch's accumulator (register 0).
    PortIo { port: u16, size: u8, write: Option<u32> },
    /// An access outside the partition's stage-2 / EPT mappings.
    Stage2Fault { addr: GuestPhys, access: Access },
    /// A trapped register access (Arm system register, x86 MSR) that the arch classified;
    /// `register` is the general register read into, `write` what a write stores.
    Register { class: RegisterClass, name: RegisterName, register: u8, write: Option<u64> },
    /// The guest executed WFI / HLT.
    WaitForInterrupt,
    /// A physical interrupt arrived while the guest ran.
    Interrupt,
    /// Anything else the hypervisor does not emulate; `syndrome` is arch-specific (ESR_EL2,
    /// a VMX exit reason), printed in the report.
    Unhandled { syndrome: u64 },
    /// The IOMMU refused a DMA access by one of the partition's devices.
    DmaFault(crate::iommu::DmaFault),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_sets() {
        let set = VcpuSet(0b1010);
        assert!(set.contains(1) && set.contains(3) && !set.contains(0) && !set.contains(64));
        assert_eq!(set.iter().collect::<alloc::vec::Vec<_>>(), [1, 3]);
        assert_eq!(VcpuSet(1 << 63).iter().collect::<alloc::vec::Vec<_>>(), [63]);
        assert_eq!(VcpuSet(0).iter().next(), None);
        assert!(VcpuSet(u64::MAX).iter().eq(0..64));
    }

    #[test]
    fn register_names_use_the_arch_format() {
        fn msr(id: u32, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            write!(f, "MSR {id:#x}")
        }
        let name = RegisterName::new(0x1b, msr);
        assert_eq!(alloc::format!("{name}"), "MSR 0x1b");
        assert_eq!(name, RegisterName::new(0x1b, msr));
    }
}
