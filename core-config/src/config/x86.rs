//! What an x86 board adds to the binding: the local APIC and IOAPICs (which the hypervisor
//! keeps), I/O port ranges of devices on an ISA bus, and the rules that come with them (a
//! partition's memory clear of the legacy hole and of the interrupt controllers; each port in
//! at most one partition). See `docs/config.md` ("x86 boards") and `docs/x86.md`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::addr::{HostPhys, HostRange};

/// `compatible` of the local APIC node (the Linux x86 DT binding's name for it).
pub const LAPIC: &str = "intel,ce4100-lapic";
/// `compatible` of an IOAPIC node (the Linux x86 DT binding).
pub const IOAPIC: &str = "intel,ce4100-ioapic";
/// `compatible` of an ISA bus: its children's `reg` is `<space address size>`, where bit 0 of
/// `space` set means I/O ports (the Open Firmware ISA binding).
pub const ISA_BUS: &str = "isa";
/// Bytes of a partition's region 0, just below its guest DTB reserve, where the x86 hypervisor
/// writes the partition's boot area (identity page tables, GDT, `boot_params`: docs/x86.md).
pub const BOOT_AREA: u64 = 32 * 1024;

/// The legacy hole: VGA memory, option ROMs and the BIOS (0xA0000..0x100000). No partition
/// memory may cover it: real PCs decode it as devices and firmware.
pub const LEGACY_HOLE: HostRange = HostRange::new(HostPhys(0xA_0000), 0x6_0000);
/// `compatible` strings of the UARTs the x86 hypervisor's console drives (a 16550 on I/O ports).
pub const X86_CONSOLE_UARTS: &[&str] = &["ns16550a", "ns16550"];
/// The 8259 PIC, whose output (virtual wire, LINT0) reaches only the boot CPU.
pub const LEGACY_PIC: &str = "intel,8259";
/// Where a partition with `virtual-uart;` finds its virtual 16550 on an x86 board: COM1's
/// ports in its own port space (the hypervisor's console is on the board's ports, which no
/// partition is given), where a PC operating system looks for its first serial port (Linux's
/// ttyS0).
pub const VIRTUAL_UART_PORTS: IoPorts = IoPorts { base: 0x3f8, count: 8 };
/// Number of x86 I/O ports.
pub const IO_PORTS: u32 = 0x1_0000;
/// The board's mark on a device that reaches the whole machine's configuration, not only its
/// own registers (PCI configuration mechanism #1: CONFIG_DATA reprograms every PCI function).
pub const PLATFORM_WIDE: &str = "tantalum,platform-wide";

/// A range of I/O ports `base..base + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IoPorts {
    pub base: u32,
    pub count: u32,
}

impl IoPorts {
    /// One past the last port (saturating).
    pub const fn end(&self) -> u64 {
        self.base as u64 + self.count as u64
    }
    pub const fn overlaps(&self, other: &IoPorts) -> bool {
        self.count > 0
            && other.count > 0
            && (self.base as u64) < other.end()
            && (other.base as u64) < self.end()
    }
    pub const fn contains(&self, port: u16) -> bool {
        port as u32 >= self.base && (port as u64) < self.end()
    }
}

impl fmt::Display for IoPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ports {:#x}..{:#x}", self.base, self.end())
    }
}

/// A board device with I/O ports (a child of an ISA bus).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoDevice {
    pub path: String,
    pub ports: Vec<IoPorts>,
}

/// A board interrupt controller the hypervisor keeps (the local APIC or an IOAPIC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Apic {
    pub path: String,
    pub mmio: HostRange,
}

/// What makes a board an x86 board: its local APIC (present), IOAPICs and port devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct X86Platform {
    pub lapic: Apic,
    pub ioapics: Vec<Apic>,
    /// Every ISA device with I/O ports, in tree order.
    pub io_devices: Vec<IoDevice>,
    /// Paths of the devices the board marks [`PLATFORM_WIDE`], in tree order.
    pub platform_wide: Vec<String>,
}

impl X86Platform {
    /// The I/O ports of board device `path` (empty if it has none).
    pub fn ports_of(&self, path: &str) -> &[IoPorts] {
        self.io_devices.iter().find(|d| d.path == path).map_or(&[], |d| d.ports.as_slice())
    }
    /// Whether the board marks device `path` [`PLATFORM_WIDE`].
    pub fn is_platform_wide(&self, path: &str) -> bool {
        self.platform_wide.iter().any(|p| p == path)
    }
    /// The local APIC and every IOAPIC.
    pub fn apics(&self) -> impl Iterator<Item = &Apic> {
        core::iter::once(&self.lapic).chain(&self.ioapics)
    }
}

/// A broken x86 rule (`ErrorKind::X86`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum X86Problem {
    /// Partition or channel memory covers the legacy hole.
    LegacyHole { range: HostRange },
    /// Partition or channel memory covers the local APIC or an IOAPIC.
    MemoryOverApic { range: HostRange, apic: String, mmio: HostRange },
    /// A partition takes the local APIC or an IOAPIC (or a device in one of their pages).
    ApicPassthrough { device: String, apic: String },
    /// Two board devices claim the same I/O ports.
    PortsOverlap { ports: IoPorts, other: String, other_ports: IoPorts },
    /// A device's I/O ports run past port 0xffff.
    PortsOutOfRange { ports: IoPorts },
    /// A partition takes I/O ports another partition owns (through another device).
    PortsTaken { device: String, ports: IoPorts, owner: String, other: String },
    /// A partition with a virtual UART takes a device whose ports overlap the virtual UART's.
    VirtualUartPorts { device: String, ports: IoPorts },
    /// The hypervisor console is not a 16550 on I/O ports.
    ConsoleNotPortUart { console: String },
    /// The image, the boot area and the guest DTB reserve do not fit in region 0.
    NoRoomForBootArea { image: u64, region: u64 },
    /// A partition takes an 8259 PIC but its vCPU 0 is not on the boot CPU, the only one the
    /// PIC's interrupts reach.
    PicOffBootCpu { device: String, boot_cpu: String },
    /// A partition takes a device the board marks [`PLATFORM_WIDE`] without `owns-platform;`.
    PlatformWideDevice { device: String },
    /// An x86 board (it has a local APIC) checked by a build without the x86 rules: the aarch64
    /// hypervisor, booted with a system DTB built for x86 (reported at the local APIC).
    NoX86Rules,
}

impl fmt::Display for X86Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRoomForBootArea { image, region } => write!(
                f,
                "image ({image:#x} bytes) does not fit in memory region 0 ({region:#x} bytes, less \
                 {BOOT_AREA:#x} for the x86 boot area and {:#x} reserved for the guest DTB)",
                crate::config::GUEST_DTB_RESERVE
            ),
            Self::LegacyHole { range } => write!(
                f,
                "memory {range} covers the x86 legacy hole {LEGACY_HOLE} (VGA, option ROMs, BIOS); \
                 place partition memory at or above 1 MiB"
            ),
            Self::MemoryOverApic { range, apic, mmio } => write!(
                f,
                "memory {range} covers the interrupt controller {apic} ({mmio}), which the \
                 hypervisor keeps"
            ),
            Self::ApicPassthrough { device, apic } => write!(
                f,
                "devices: {device} is (or shares a page with) the interrupt controller {apic}; \
                 the local APIC and the IOAPICs stay the hypervisor's"
            ),
            Self::PortsOverlap { ports, other, other_ports } => {
                write!(f, "{ports} overlap {other} ({other_ports}): each I/O port belongs to one device")
            }
            Self::PortsOutOfRange { ports } => {
                write!(f, "{ports} run past the last I/O port 0xffff")
            }
            Self::PortsTaken { device, ports, owner, other } => write!(
                f,
                "devices: {device} ({ports}) shares I/O ports with {other}, which {owner} owns: \
                 a port belongs to at most one partition"
            ),
            Self::VirtualUartPorts { device, ports } => write!(
                f,
                "devices: {device} ({ports}) overlaps the virtual UART's {VIRTUAL_UART_PORTS} (COM1 \
                 in the partition's port space, virtual-uart;): drop one of them"
            ),
            Self::PicOffBootCpu { device, boot_cpu } => write!(
                f,
                "devices: {device} is an 8259 PIC, whose interrupts reach only the boot CPU \
                 {boot_cpu}: make it the partition's first CPU (its vCPU 0)"
            ),
            Self::PlatformWideDevice { device } => write!(
                f,
                "devices: {device} reaches the whole machine's configuration ({PLATFORM_WIDE} on \
                 the board: every PCI device, other partitions' and the platform's), so whoever \
                 has it can undo isolation; give it only to a trusted partition that declares \
                 'owns-platform;'"
            ),
            Self::NoX86Rules => write!(
                f,
                "an x86 board (it has a local APIC) in a system the aarch64 hypervisor boots, which \
                 has no x86 rules: build the system for the x86 hypervisor"
            ),
            Self::ConsoleNotPortUart { console } => write!(
                f,
                "console: {console} is not a 16550 on I/O ports (compatible {} on an ISA bus, \
                 reg = <1 port 8>), the only console the x86 hypervisor drives",
                X86_CONSOLE_UARTS.join(" or ")
            ),
        }
    }
}
