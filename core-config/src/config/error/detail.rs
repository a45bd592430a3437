//! The pieces [`super::ErrorKind`] variants carry, each with its own wording.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::addr::{GuestPhys, HostRange};

/// How a DTB is broken (`parse` refuses it before looking at any node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtbDefect {
    BadMagic,
    /// The buffer is shorter than the header or than the header's `totalsize`.
    Truncated,
    UnsupportedVersion {
        version: u32,
    },
    /// The structure or strings block lies outside `totalsize`.
    BlockOutOfBounds {
        block: &'static str,
    },
    /// An unexpected token at this offset of the structure block.
    BadToken {
        offset: usize,
        token: u32,
    },
    /// A node name that is unterminated, not UTF-8, empty or contains `/`.
    BadNodeName {
        offset: usize,
    },
    /// A property whose name offset or value lies outside its block.
    BadProperty {
        offset: usize,
    },
    /// A property after a child node (properties come first).
    PropertyAfterChild {
        offset: usize,
    },
    /// Nodes nested deeper than this.
    TooDeep {
        max: usize,
    },
    /// The structure block ends before `FDT_END`, or nodes are unbalanced.
    Unterminated,
}

/// The shape a property should have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Exactly this many 32-bit cells.
    Cells(usize),
    /// One or more groups of this many cells.
    CellGroups(usize),
    /// Exactly one phandle.
    Phandle,
    /// One or more phandles.
    Phandles,
    /// Exactly one 2-cell address per memory region.
    AddressPerRegion { regions: usize },
    /// Exactly one 2-cell address per channel endpoint.
    AddressPerEndpoint { endpoints: usize },
    /// One or more `<&device index>` pairs.
    PhandleIndexPairs,
    /// One NUL-terminated UTF-8 string.
    String,
    /// Exactly this many bytes.
    Bytes(usize),
    /// No value at all (a flag such as `virtual-uart;`).
    Empty,
}

/// Why a partition name is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    TooLong { max: usize },
    BadChar(char),
}

/// Why a `devices` / `device-regions` phandle's target cannot be passed through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotDevice {
    /// `/hypervisor` or a node under it (a partition, a channel).
    Hypervisor,
    /// `/cpus` or a CPU.
    Cpu,
    /// A `/memory` node: RAM is given out with `memory`, not as a device.
    Memory,
    /// The root node.
    Root,
    /// A node without `reg`: nothing to map.
    NoReg,
}

/// Why a passed-through device's `interrupts` cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterruptProblem {
    /// Neither the node nor an ancestor has `interrupt-parent`.
    NoParent,
    /// The interrupt parent is not the board's GICv3 (or the board has none).
    ParentNotGic { parent: String },
    /// The GIC's `#interrupt-cells` is not 3.
    Cells { cells: Option<u32> },
    /// `interrupts` is not a whole number of 3-cell specifiers.
    Malformed { len: usize },
    /// `interrupts-extended` is not supported in v1.
    Extended,
}

/// Why a device's `reg` has no CPU address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangesProblem {
    /// The bus has no `ranges`: its children's addresses are not memory-mapped.
    NoRanges,
    /// No `ranges` entry of the bus covers the range; `ranges` lists what it translates, as
    /// (child range, parent address).
    NotCovered { ranges: Vec<(HostRange, u64)> },
}

/// Which window of the hypervisor's EL2 map a device must lie in, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapWindow {
    /// The hypervisor's console UART.
    Console,
    /// The GIC distributor.
    GicDistributor,
    /// The GIC redistributors.
    GicRedistributors,
    /// A GICv2's CPU interface or virtual interface control frame.
    GicV2Frame,
}

/// A range of guest-physical addresses, `[start, start + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestSpan {
    pub start: GuestPhys,
    pub size: u64,
}

impl GuestSpan {
    pub const fn new(start: u64, size: u64) -> Self {
        Self { start: GuestPhys(start), size }
    }
    /// One past the last byte, saturating.
    pub const fn end(&self) -> u64 {
        self.start.0.saturating_add(self.size)
    }
    pub const fn overlaps(&self, other: &GuestSpan) -> bool {
        self.start.0 < other.end() && other.start.0 < self.end()
    }
}

/// Something mapped into a partition's guest-physical address space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestUse {
    /// Memory region `region` (index into `memory`).
    Memory { region: usize },
    /// The pages of a passed-through device (mapped at its host address).
    Device { path: String },
    /// A channel's shared memory.
    Channel { path: String },
    /// The partition's virtual PL011.
    VirtualUart,
    /// The channel doorbell pages ([`crate::vplatform::Emulated::Doorbells`]).
    Doorbells,
    /// The virtio-mmio devices' pages ([`crate::vplatform::Emulated::Virtio`]).
    Virtio,
    /// The virtual GIC (distributor, and one redistributor per vCPU), at the board GIC's place.
    Gic,
}

/// Something in host-physical memory that device MMIO must stay clear of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostUse {
    Ram,
    Hypervisor,
    Partition { path: String },
    Channel { path: String },
}

impl fmt::Display for DtbDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadMagic => write!(f, "bad magic (expected 0xd00dfeed)"),
            Self::Truncated => write!(f, "truncated (shorter than its header says)"),
            Self::UnsupportedVersion { version } => {
                write!(f, "version {version} is not supported (need 17, as dtc writes)")
            }
            Self::BlockOutOfBounds { block } => write!(f, "{block} block lies outside the blob"),
            Self::BadToken { offset, token } => {
                write!(f, "unexpected token {token:#x} at structure offset {offset:#x}")
            }
            Self::BadNodeName { offset } => {
                write!(f, "bad node name at structure offset {offset:#x}")
            }
            Self::BadProperty { offset } => {
                write!(f, "property at structure offset {offset:#x} has a bad name or length")
            }
            Self::PropertyAfterChild { offset } => {
                write!(f, "property after a child node at structure offset {offset:#x}")
            }
            Self::TooDeep { max } => write!(f, "nodes nested deeper than {max} levels"),
            Self::Unterminated => write!(f, "structure block unterminated or unbalanced"),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Cells(1) => write!(f, "one 32-bit cell"),
            Self::Cells(4) => write!(f, "4 cells (<base-hi base-lo size-hi size-lo>)"),
            Self::Cells(n) => write!(f, "{n} cells ({} bytes)", n * 4),
            Self::CellGroups(4) => {
                write!(f, "one or more <base-hi base-lo size-hi size-lo> groups of 4 cells")
            }
            Self::CellGroups(n) => write!(f, "one or more groups of {n} cells"),
            Self::Phandle => write!(f, "one phandle (<&label>)"),
            Self::Phandles => write!(f, "one or more phandles (<&label ...>)"),
            Self::AddressPerRegion { regions } => {
                write!(f, "one 2-cell address per memory region ({regions} regions: {} cells)", regions * 2)
            }
            Self::AddressPerEndpoint { endpoints } => {
                write!(f, "one 2-cell address per endpoint ({endpoints} endpoints: {} cells)", endpoints * 2)
            }
            Self::PhandleIndexPairs => write!(f, "one or more <&device index> pairs of 2 cells"),
            Self::String => write!(f, "a string"),
            Self::Bytes(n) => write!(f, "{n} bytes"),
            Self::Empty => write!(f, "no value (write it as a flag: `name;`)"),
        }
    }
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => write!(f, "is empty"),
            Self::TooLong { max } => write!(f, "is longer than {max} characters"),
            Self::BadChar(c) => write!(f, "contains '{}' (use only a-z, 0-9, _ and -)", c.escape_debug()),
        }
    }
}

impl fmt::Display for NotDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hypervisor => "which is part of the hypervisor configuration, not a board device",
            Self::Cpu => "which is a CPU node (give CPUs with 'cpus')",
            Self::Memory => "which is a memory node (give RAM with 'memory')",
            Self::Root => "which is the root node",
            Self::NoReg => "which has no 'reg' (no MMIO to pass through)",
        })
    }
}

impl fmt::Display for InterruptProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoParent => write!(
                f,
                "it has 'interrupts' but no 'interrupt-parent' (nor does any ancestor); \
                 set interrupt-parent = <&gic>"
            ),
            Self::ParentNotGic { parent } => write!(
                f,
                "its interrupt parent {parent} is not the board's GIC (the node with \
                 'interrupt-controller' and compatible \"arm,gic-v3\", \"arm,gic-400\" or \"arm,cortex-a15-gic\"); \
                 only GIC interrupts can be passed through"
            ),
            Self::Cells { cells: Some(cells) } => {
                write!(f, "the GIC's #interrupt-cells is {cells}, expected 3 (<type number flags>)")
            }
            Self::Cells { cells: None } => {
                write!(f, "the GIC has no valid #interrupt-cells, expected <3> (<type number flags>)")
            }
            Self::Malformed { len } => write!(
                f,
                "'interrupts' ({len} bytes) is not a list of 3-cell <type number flags> specifiers"
            ),
            Self::Extended => write!(
                f,
                "'interrupts-extended' is not supported; use 'interrupts' with the GIC as interrupt-parent"
            ),
        }
    }
}

impl fmt::Display for GuestSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.start.0, self.end())
    }
}

impl fmt::Display for GuestUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory { region } => write!(f, "memory region {region}"),
            Self::Device { path } => write!(f, "the pages of device {path}"),
            Self::Channel { path } => write!(f, "channel {path}"),
            Self::VirtualUart => write!(f, "the virtual UART"),
            Self::Doorbells => write!(f, "the channel doorbell pages"),
            Self::Virtio => write!(f, "the virtio devices"),
            Self::Gic => write!(f, "the virtual GIC"),
        }
    }
}

impl fmt::Display for HostUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ram => write!(f, "RAM"),
            Self::Hypervisor => write!(f, "the hypervisor's memory"),
            Self::Partition { path } => write!(f, "memory of {path}"),
            Self::Channel { path } => write!(f, "memory of channel {path}"),
        }
    }
}

impl fmt::Display for RangesProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRanges => write!(
                f,
                "the bus has no 'ranges', so its children are not memory-mapped; add 'ranges;' \
                 (same addresses) or a translation to the bus node"
            ),
            Self::NotCovered { ranges } => {
                write!(f, "no 'ranges' entry of the bus covers it (ranges:")?;
                for (child, parent) in ranges {
                    write!(f, " {child} -> {parent:#x}")?;
                }
                write!(f, "); fix the device's reg or the bus's ranges")
            }
        }
    }
}

impl fmt::Display for MapWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Console => "the hypervisor console",
            Self::GicDistributor => "the GIC distributor",
            Self::GicRedistributors => "the GIC redistributors",
            Self::GicV2Frame => "the GICv2 CPU interface or virtual interface control",
        })
    }
}
