//! Configuration errors: one value per broken rule, printed as `node: rule: values: fix`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::addr::{GuestPhys, HostRange, PAGE_SIZE};

use super::{FaultPolicy, GUEST_DTB_RESERVE, PARTITION_COMPATIBLE};

/// One problem in a system configuration, found by [`super::parse`] or [`super::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the node the problem is in, e.g. `/hypervisor/ping`.
    pub node: String,
    pub kind: ErrorKind,
}

impl ConfigError {
    pub fn new(node: impl Into<String>, kind: ErrorKind) -> Self {
        Self { node: node.into(), kind }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.kind)
    }
}

impl core::error::Error for ConfigError {}

/// What is wrong. Each rule of `docs/config.md` has its own variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    // ---- Structure of the blob and the tree (from `parse`) ----
    /// The blob is not a well-formed flattened device tree.
    InvalidDtb(DtbDefect),
    /// A node the binding requires does not exist (the error's node is its path).
    MissingNode,
    /// A required property is absent.
    MissingProperty {
        property: &'static str,
    },
    /// A known property has the wrong length or type.
    MalformedProperty {
        property: &'static str,
        len: usize,
        expected: Expected,
    },
    /// A node's `compatible` does not name the expected binding.
    BadCompatible {
        expected: &'static str,
        found: Option<String>,
    },
    /// A child of `/hypervisor` that is not a partition.
    UnknownNode {
        compatible: Option<String>,
    },
    /// `on-fault` names no known policy.
    UnknownFaultPolicy {
        value: String,
    },
    /// A phandle refers to no node.
    UnresolvedPhandle {
        property: &'static str,
        phandle: u32,
    },
    /// A `cpus` phandle refers to a node that is not one of the board's CPUs.
    NotACpu {
        phandle: u32,
        target: String,
    },
    /// A built-blob property without its companion (`tantalum,image` without `-sha256`, ...).
    IncompleteBlob {
        present: &'static str,
        missing: &'static str,
    },
    /// `#address-cells` / `#size-cells` of a board node's parent: not 1..=2 / 0..=2.
    UnsupportedCells {
        address_cells: u32,
        size_cells: u32,
    },

    // ---- Rule 1: counts ----
    NoPartitions,
    TooManyPartitions {
        count: usize,
        max: usize,
    },
    TooManyCpus {
        count: usize,
        max: usize,
    },
    /// The board describes no RAM at all.
    NoRam,
    /// A partition's id is not its index in tree order.
    IdMismatch {
        id: u16,
        index: usize,
    },

    // ---- Rule 2: names ----
    InvalidName {
        name: String,
        problem: NameProblem,
    },
    DuplicateName {
        name: String,
        other: String,
    },

    // ---- Rules 3 and 4: memory ----
    /// A partition has no memory region.
    NoMemory,
    /// A memory range of size zero.
    EmptyMemory {
        base: u64,
    },
    /// Host base or size not a multiple of [`PAGE_SIZE`].
    UnalignedMemory {
        range: HostRange,
    },
    /// Guest base not a multiple of [`PAGE_SIZE`].
    UnalignedGuest {
        region: usize,
        guest: GuestPhys,
    },
    /// `base + size` does not fit in 64 bits.
    MemoryOverflow {
        guest: bool,
        base: u64,
        size: u64,
    },
    /// A memory range is not wholly inside one RAM range of the board.
    OutsideRam {
        range: HostRange,
        ram: Vec<HostRange>,
    },
    /// A partition region overlaps the hypervisor's memory.
    OverlapsHypervisor {
        range: HostRange,
        hypervisor: HostRange,
    },
    /// Two partition regions overlap (reported once per pair, on the later one).
    Overlap {
        range: HostRange,
        other: String,
        other_range: HostRange,
    },
    /// Two guest ranges of one partition overlap.
    GuestOverlap {
        region: usize,
        other_region: usize,
        guest: GuestPhys,
        other_guest: GuestPhys,
    },
    /// A guest range ends above the IPA space.
    AboveIpaLimit {
        region: usize,
        end: u64,
        limit: u64,
    },
    /// The boot image and hypervisor do not fit in the hypervisor's memory.
    BootImageOutside {
        boot_image: HostRange,
        memory: HostRange,
    },

    // ---- Rule 5 ----
    Overcommit {
        partitions: u64,
        hypervisor: u64,
        ram: u64,
    },

    // ---- Rule 6: CPUs ----
    NoCpus,
    /// A CPU index that is not one of the board's CPUs.
    UnknownCpu {
        index: usize,
        count: usize,
    },
    DuplicateCpu {
        cpu: String,
    },
    CpuTaken {
        cpu: String,
        owner: String,
    },

    // ---- Rule 7: image fit ----
    ImageTooBig {
        image: u64,
        region: u64,
    },
    GuestDtbTooBig {
        size: u64,
    },

    // ---- Rule 8 ----
    EntryOutsideMemory {
        entry: GuestPhys,
    },

    // ---- Rule 9: boot image ----
    BlobOutOfBounds {
        property: &'static str,
        offset: u64,
        size: u64,
        payload: u64,
    },
    ImageNotBuilt,

    // ---- Rule 11 ----
    ConsoleInPartition {
        console: String,
        mmio: HostRange,
        range: HostRange,
    },
}

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
    /// One NUL-terminated UTF-8 string.
    String,
    /// Exactly this many bytes.
    Bytes(usize),
}

/// Why a partition name is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    TooLong { max: usize },
    BadChar(char),
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
            Self::String => write!(f, "a string"),
            Self::Bytes(n) => write!(f, "{n} bytes"),
        }
    }
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => write!(f, "is empty"),
            Self::TooLong { max } => write!(f, "is longer than {max} characters"),
            Self::BadChar(c) => write!(f, "contains {c:?} (use only a-z, 0-9, _ and -)"),
        }
    }
}

fn show_opt(f: &mut fmt::Formatter<'_>, s: &Option<String>) -> fmt::Result {
    match s {
        Some(s) => write!(f, "{s:?}"),
        None => write!(f, "absent"),
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidDtb(d) => write!(f, "not a valid device tree blob: {d}"),
            Self::MissingNode => write!(f, "required node is missing"),
            Self::MissingProperty { property } => {
                write!(f, "missing required property '{property}'")
            }
            Self::MalformedProperty { property, len, expected } => {
                write!(f, "malformed property '{property}' ({len} bytes): expected {expected}")
            }
            Self::BadCompatible { expected, found } => {
                write!(f, "compatible is ")?;
                show_opt(f, found)?;
                write!(f, ", expected {expected:?}")
            }
            Self::UnknownNode { compatible } => {
                write!(f, "unknown node under /hypervisor (compatible ")?;
                show_opt(f, compatible)?;
                write!(f, "); a partition needs compatible = {PARTITION_COMPATIBLE:?}")
            }
            Self::UnknownFaultPolicy { value } => write!(
                f,
                "on-fault = {value:?} is not one of {:?}, {:?}, {:?}",
                FaultPolicy::Stop.name(),
                FaultPolicy::Restart.name(),
                FaultPolicy::HaltSystem.name()
            ),
            Self::UnresolvedPhandle { property, phandle } => {
                write!(f, "{property}: phandle {phandle:#x} refers to no node")
            }
            Self::NotACpu { phandle, target } => write!(
                f,
                "cpus: phandle {phandle:#x} refers to {target}, which is not a CPU under /cpus"
            ),
            Self::IncompleteBlob { present, missing } => write!(
                f,
                "'{present}' without '{missing}' (the build adds both or neither)"
            ),
            Self::UnsupportedCells { address_cells, size_cells } => write!(
                f,
                "#address-cells = {address_cells}, #size-cells = {size_cells}: children need 1 or 2 \
                 address cells and at most 2 size cells"
            ),
            Self::NoPartitions => write!(
                f,
                "no partitions (add a child node with compatible = {PARTITION_COMPATIBLE:?})"
            ),
            Self::TooManyPartitions { count, max } => {
                write!(f, "{count} partitions, more than the maximum of {max}")
            }
            Self::TooManyCpus { count, max } => {
                write!(f, "{count} CPUs, more than the {max} the hypervisor supports")
            }
            Self::NoRam => write!(
                f,
                "the board has no RAM (add a /memory@... node with device_type = \"memory\" and reg)"
            ),
            Self::IdMismatch { id, index } => {
                write!(f, "partition id {id} is not its index {index} in tree order")
            }
            Self::InvalidName { name, problem } => {
                write!(f, "partition name {name:?} {problem}; it prefixes the partition's console lines")
            }
            Self::DuplicateName { name, other } => {
                write!(f, "partition name {name:?} is also the name of {other}")
            }
            Self::NoMemory => write!(f, "no memory regions (memory needs at least one)"),
            Self::EmptyMemory { base } => write!(
                f,
                "memory at {base:#x} has size 0 (sizes must be positive multiples of {PAGE_SIZE:#x})"
            ),
            Self::UnalignedMemory { range } => write!(
                f,
                "memory {range} is not 4 KiB aligned (base and size must be multiples of {PAGE_SIZE:#x})"
            ),
            Self::UnalignedGuest { region, guest } => write!(
                f,
                "guest-addresses: region {region} at guest {guest} is not 4 KiB aligned \
                 (must be a multiple of {PAGE_SIZE:#x})"
            ),
            Self::MemoryOverflow { guest, base, size } => write!(
                f,
                "{}memory at {base:#x} with size {size:#x} wraps past the end of the 64-bit address space",
                if *guest { "guest " } else { "" }
            ),
            Self::OutsideRam { range, ram } => {
                write!(f, "memory {range} is not inside the board's RAM (RAM:")?;
                if ram.is_empty() {
                    write!(f, " none")?;
                }
                for r in ram {
                    write!(f, " {r}")?;
                }
                write!(f, ")")
            }
            Self::OverlapsHypervisor { range, hypervisor } => {
                write!(f, "memory {range} overlaps the hypervisor's memory (/hypervisor {hypervisor})")
            }
            Self::Overlap { range, other, other_range } => {
                write!(f, "memory {range} overlaps {other} ({other_range})")
            }
            Self::GuestOverlap { region, other_region, guest, other_guest } => write!(
                f,
                "guest range of region {region} (at {guest}) overlaps region {other_region} (at {other_guest})"
            ),
            Self::AboveIpaLimit { region, end, limit } => write!(
                f,
                "region {region} ends at guest {end:#x}, above the IPA limit {limit:#x}"
            ),
            Self::BootImageOutside { boot_image, memory } => {
                let start = memory.start.0.min(boot_image.start.0);
                let needed = boot_image.end().saturating_sub(start);
                write!(
                    f,
                    "the hypervisor and boot image ({boot_image}) do not fit in memory {memory}: \
                     memory must cover {start:#x}..{:#x} ({needed:#x} bytes)",
                    boot_image.end()
                )
            }
            Self::Overcommit { partitions, hypervisor, ram } => write!(
                f,
                "overcommit: partitions ({partitions:#x} bytes) plus hypervisor ({hypervisor:#x} bytes) \
                 need more than the board's RAM ({ram:#x} bytes)"
            ),
            Self::NoCpus => write!(f, "cpus: no CPUs (list at least one)"),
            Self::UnknownCpu { index, count } => write!(
                f,
                "cpus: CPU index {index} is not a board CPU (the board has {count})"
            ),
            Self::DuplicateCpu { cpu } => write!(f, "cpus: {cpu} is listed more than once"),
            Self::CpuTaken { cpu, owner } => write!(
                f,
                "cpus: {cpu} is already assigned to {owner} (a CPU belongs to at most one partition)"
            ),
            Self::ImageTooBig { image, region } => write!(
                f,
                "image ({image:#x} bytes) does not fit in memory region 0 ({region:#x} bytes, \
                 less {GUEST_DTB_RESERVE:#x} reserved for the guest DTB)"
            ),
            Self::GuestDtbTooBig { size } => write!(
                f,
                "guest DTB ({size:#x} bytes) is larger than the {GUEST_DTB_RESERVE:#x} bytes reserved for it"
            ),
            Self::EntryOutsideMemory { entry } => write!(
                f,
                "entry {entry} is not inside any guest memory region of the partition"
            ),
            Self::BlobOutOfBounds { property, offset, size, payload } => write!(
                f,
                "{property}: blob out of bounds of the boot image \
                 (offset {offset:#x} + size {size:#x} > payload {payload:#x} bytes)"
            ),
            Self::ImageNotBuilt => write!(
                f,
                "image was not built into the boot image (no 'tantalum,image'; build with cargo xtask)"
            ),
            Self::ConsoleInPartition { console, mmio, range } => write!(
                f,
                "memory {range} contains the hypervisor console {console} ({mmio})"
            ),
        }
    }
}
