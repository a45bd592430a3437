//! Configuration errors: one value per broken rule, printed as `node: rule: values: fix`.
//!
//! The enum is here; the pieces its variants carry are in `error/detail.rs` and every message
//! is in `error/display.rs`.

mod codes;
mod detail;
#[cfg(feature = "messages")]
mod display;

use alloc::string::String;
use alloc::vec::Vec;
#[cfg(feature = "messages")]
use core::fmt;

use crate::addr::{GuestPhys, HostRange};
use crate::bootimage::ImageProblem;
use crate::vplatform::Emulated;

pub use detail::{
    DtbDefect, Expected, GuestSpan, GuestUse, HostUse, InterruptProblem, MapWindow, NameProblem, NotDevice,
    RangesProblem,
};

use super::Interrupt;

#[cfg(feature = "messages")]
pub use codes::explain;
pub use codes::{parse_code, rule_name, Coded, RULE_CODES};

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

#[cfg(feature = "messages")]
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.kind)
    }
}

#[cfg(feature = "messages")]
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
    /// A child of `/hypervisor` that is not a partition (nor the `channels` container).
    UnknownNode {
        compatible: Option<String>,
    },
    /// A child of `/hypervisor/channels` that is not a channel.
    UnknownChannelNode {
        compatible: Option<String>,
    },
    /// `on-fault` names no known policy.
    UnknownFaultPolicy {
        value: String,
    },
    /// `outside-memory` names no known choice.
    UnknownOutsideMemory {
        value: String,
    },
    /// The board root's `tantalum,stage2-mappings` names no known choice.
    UnknownStage2Mappings {
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
    /// A `devices` / `device-regions` phandle refers to a node that cannot be passed through.
    NotADevice {
        property: &'static str,
        phandle: u32,
        target: String,
        reason: NotDevice,
    },
    /// A `device-regions` index beyond the device's `reg` entries.
    NoSuchRegion {
        device: String,
        index: u32,
        count: usize,
    },
    /// The interrupts of a passed-through device cannot be read as GIC interrupts.
    DeviceInterrupts {
        device: String,
        problem: InterruptProblem,
    },
    /// An `endpoints` / `writer` phandle refers to a node that is not a partition.
    NotAPartition {
        property: &'static str,
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
    /// The board's GIC node has too few `reg` entries (a GICv3 needs 2, a GICv2 4).
    GicReg {
        version: u8,
        entries: usize,
    },
    /// A board device's `reg` cannot be translated to a CPU address through its parents'
    /// `ranges` (reported on the device node).
    RegNotTranslatable {
        bus: String,
        reg: HostRange,
        problem: RangesProblem,
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
    /// Host base or size not a multiple of [`crate::addr::PAGE_SIZE`].
    UnalignedMemory {
        range: HostRange,
    },
    /// Guest base not a multiple of [`crate::addr::PAGE_SIZE`].
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
    /// A partition or channel range overlaps the hypervisor's memory.
    OverlapsHypervisor {
        range: HostRange,
        hypervisor: HostRange,
    },
    /// Two partition or channel ranges overlap (reported once per pair, on the later one).
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
    /// Memory the hypervisor must reach (to load, zero or run from it) lies outside the RAM its
    /// EL2 map covers ([`super::BuildFacts::map`]).
    OutsideHypervisorMap {
        range: HostRange,
        map: HostRange,
    },
    /// A device the hypervisor itself drives (its console, the GIC) lies outside the device
    /// window of its EL2 map.
    DeviceOutsideHypervisorMap {
        device: String,
        what: MapWindow,
        mmio: HostRange,
        map: HostRange,
    },
    /// A guest memory region overlaps something else the partition sees (a device, the GIC).
    GuestMemoryOverlap {
        region: usize,
        guest: GuestSpan,
        with: GuestUse,
        range: GuestSpan,
    },

    // ---- Rule 5 ----
    Overcommit {
        partitions: u64,
        channels: u64,
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
    /// The image, the initrd below the guest DTB and the DTB reserve do not fit in region 0.
    ImageAndInitrdTooBig {
        image: u64,
        initrd: u64,
        region: u64,
    },
    GuestDtbTooBig {
        size: u64,
    },

    // ---- Rule 8 ----
    EntryOutsideMemory {
        entry: GuestPhys,
    },
    /// The entry point is not an instruction address (aarch64 instructions are 4 bytes).
    EntryUnaligned {
        entry: GuestPhys,
    },
    /// The entry point is not inside the image as loaded (start of region 0, the file's size).
    EntryOutsideImage {
        entry: GuestPhys,
        image: GuestSpan,
    },
    /// The image is not something the loader boots.
    BadImage {
        problem: ImageProblem,
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
    /// `/hypervisor` has no `console`: the hypervisor would have nowhere to print.
    NoConsole,
    /// The console is not a UART the hypervisor's console driver drives.
    ConsoleNotUart {
        console: String,
        compatible: Vec<String>,
    },
    ConsoleInPartition {
        console: String,
        mmio: HostRange,
        range: HostRange,
    },

    // ---- Rule 12: devices ----
    /// The interrupt controller itself is passed through.
    GicPassthrough {
        device: String,
        gic: String,
    },
    /// The hypervisor's console UART (or a device in its page) is passed through.
    ConsolePassthrough {
        device: String,
        console: String,
    },
    /// A device, or one region of it, listed twice in one partition.
    DuplicateDevice {
        device: String,
        region: Option<u32>,
    },
    /// A device, or one region of it, already given to another partition.
    DeviceTaken {
        device: String,
        region: Option<u32>,
        owner: String,
        owner_region: Option<u32>,
    },
    /// A partition takes an IOMMU the hypervisor drives (or a device in its page).
    IommuPassthrough {
        device: String,
        iommu: String,
    },
    /// A DMA master with no IOMMU stream the hypervisor drives, in a partition without
    /// `dma-unconfined`; `iommu` is an IOMMU it names that the hypervisor does not drive.
    DmaNotConfined {
        device: String,
        iommu: Option<String>,
    },
    /// IOMMU streams of devices of two partitions overlap.
    StreamTaken {
        device: String,
        streams: super::StreamRange,
        other: String,
        owner: String,
    },
    /// MMIO of a passed-through device shares a page with a board device the partition was not
    /// given (and no other partition has).
    MmioPageUnassigned {
        device: String,
        mmio: HostRange,
        other: String,
        other_mmio: HostRange,
        page: u64,
    },
    /// MMIO of devices of two partitions in one 4 KiB page.
    MmioPageShared {
        device: String,
        mmio: HostRange,
        other: String,
        other_mmio: HostRange,
        owner: String,
        page: u64,
    },
    /// A device MMIO range that is empty or wraps.
    DeviceMmioInvalid {
        device: String,
        base: u64,
        size: u64,
    },
    /// A device MMIO range that ends above the IPA space (it is mapped at its host address).
    DeviceAboveIpaLimit {
        device: String,
        end: u64,
        limit: u64,
    },
    /// Device MMIO overlaps RAM, the hypervisor, or partition or channel memory.
    DeviceMmioOverlap {
        device: String,
        mmio: HostRange,
        with: HostUse,
        range: HostRange,
    },
    /// An SPI already given (with another device) to another partition.
    InterruptTaken {
        device: String,
        spi: u32,
        other: String,
        owner: String,
    },
    /// A PPI is per CPU: it cannot be passed through.
    PpiPassthrough {
        device: String,
        ppi: u32,
    },
    /// An interrupt specifier that is neither an SPI (0..=987) nor a PPI (0..=15).
    UnsupportedInterrupt {
        device: String,
        interrupt: Interrupt,
    },
    /// A passed-through SPI beyond the SPIs the partition's virtual GIC implements.
    SpiBeyondVirtualGic {
        device: String,
        spi: u32,
        max: u32,
    },
    /// A passed-through SPI that the partition's virtual UART or a channel doorbell also uses.
    SpiReserved {
        device: String,
        spi: u32,
        by: GuestUse,
    },

    // ---- Rule 13: virtual UART ----
    VirtualUartOverlap {
        uart: GuestSpan,
        with: GuestUse,
        range: GuestSpan,
    },
    /// A partition uses emulated pages (a virtual UART, channels, virtio links) that its board
    /// places nowhere (no root property [`Emulated::property`]).
    EmulatedNotPlaced {
        what: Emulated,
    },
    /// A board's window of emulated pages is not page-aligned or ends above the IPA limit.
    EmulatedWindowInvalid {
        what: Emulated,
        window: GuestSpan,
    },
    /// Two of a board's windows of emulated pages overlap, or one overlaps the virtual GIC's
    /// frames (which sit at the board GIC's addresses).
    EmulatedWindowOverlap {
        what: Emulated,
        window: GuestSpan,
        with: GuestUse,
        range: GuestSpan,
    },
    /// A passed-through device's pages overlap emulated pages the partition uses: the
    /// hypervisor would trap and emulate accesses meant for the device, or the reverse.
    DeviceOverEmulated {
        device: String,
        pages: GuestSpan,
        what: Emulated,
        range: GuestSpan,
    },

    // ---- Rule 16: x86 boards (`config/x86.rs`) ----
    X86(super::x86::X86Problem),

    // ---- Rule 14: channels ----
    /// A channel's id is not its index in tree order.
    ChannelIdMismatch {
        id: usize,
        index: usize,
    },
    /// A channel without exactly two endpoints.
    ChannelEndpointCount {
        count: usize,
    },
    /// An endpoint listed twice.
    DuplicateEndpoint {
        partition: String,
    },
    /// An endpoint id that is no partition.
    UnknownEndpoint {
        id: u16,
        count: usize,
    },
    /// `guest-addresses` count differs from the endpoints'.
    ChannelGuestCount {
        addresses: usize,
        endpoints: usize,
    },
    ChannelGuestUnaligned {
        endpoint: String,
        guest: GuestPhys,
    },
    ChannelAboveIpaLimit {
        endpoint: String,
        end: u64,
        limit: u64,
    },
    /// A channel's guest range overlaps something else its endpoint sees.
    ChannelGuestOverlap {
        endpoint: String,
        guest: GuestSpan,
        with: GuestUse,
        range: GuestSpan,
    },
    /// `writer` is not one of the endpoints.
    WriterNotEndpoint {
        writer: String,
    },
    /// Channel memory too small for its rings (`core::channel::layout`).
    ChannelTooSmall {
        size: u64,
        min: u64,
        one_way: bool,
    },
    /// A partition is an endpoint of too many channels.
    TooManyChannels {
        count: usize,
        max: usize,
    },
    /// A partition is on too many virtio links (`core::virtio::MAX_VIRTIO_PER_PARTITION`).
    TooManyVirtioDevices {
        count: usize,
        max: usize,
    },
    /// A virtio link with too few or too many endpoints (`kind`: its name).
    LinkEndpointCount {
        count: usize,
        kind: &'static str,
        max: usize,
    },
    /// A partition on a second vsock link (reported on that link).
    SecondVsockLink {
        partition: String,
        first: String,
    },

    // ---- Rule 14: virtio disks ----
    /// The driver partition is not given the disk's device.
    DiskDeviceNotOwned {
        driver: String,
        device: String,
    },
    /// A disk without frontends, or with more than `virtio::blk::MAX_FRONTENDS`.
    DiskFrontendCount {
        count: usize,
        max: usize,
    },
    /// A frontend that is the disk's driver partition.
    DiskFrontendIsDriver {
        partition: String,
    },
    /// A region that is empty or ends past the disk.
    DiskRegionOutside {
        start: u64,
        sectors: u64,
        disk: u64,
    },
    /// Two frontends' regions share sectors.
    DiskRegionOverlap {
        start: u64,
        sectors: u64,
        other: String,
    },
}
