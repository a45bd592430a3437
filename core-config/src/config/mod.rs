//! The system configuration: the board and the partitions, read from the system device tree.
//!
//! One code path serves both the build tool (on the host, with good diagnostics) and the
//! hypervisor at boot (which never trusts the image blindly). See `docs/config.md`.
//!
//! - [`parse`] turns a DTB into a [`SystemConfig`], collecting every problem it finds;
//!   [`parse_with_warnings`] also returns [`ConfigWarning`]s (unknown properties and nodes).
//! - [`validate`] checks the rules (overlap, alignment, CPUs, image fit, devices, interrupts,
//!   channels, ...) on a parsed config.

mod crosscheck;
mod dma;
mod dtb_check;
mod error;
mod parse;
mod validate;
mod warning;
pub mod x86;

use alloc::string::String;
use alloc::vec::Vec;

use crate::addr::{align_up, GuestPhys, HostPhys, HostRange, PAGE_SIZE};

pub use crosscheck::{ram_not_reported, NotRam, Owner};
pub use dma::{stream_owner, streams_of, unconfined_devices, unconfined_devices_in};
#[cfg(feature = "messages")]
pub use error::explain;
pub use error::{parse_code, rule_name, Coded, RULE_CODES};
pub use error::{
    ConfigError, DtbDefect, ErrorKind, Expected, GuestSpan, GuestUse, HostUse, InterruptProblem, MapWindow,
    NameProblem, NotDevice, RangesProblem,
};
pub use parse::{parse, parse_board, parse_reporting, parse_with_warnings};
pub use validate::{validate, BuildFacts, HypervisorMap};
pub use warning::{ConfigWarning, WarningKind};

/// Property of the board's root node choosing stage-2 leaves: "blocks" (default) or "pages".
pub const STAGE2_MAPPINGS: &str = "tantalum,stage2-mappings";

/// Compatible string of the `/hypervisor` node.
pub const HYPERVISOR_COMPATIBLE: &str = "tantalum,hypervisor-v1";
/// Compatible string of a partition node.
pub const PARTITION_COMPATIBLE: &str = "tantalum,partition-v1";
/// Longest partition name (it prefixes every console line of the partition).
pub const MAX_NAME_LEN: usize = 31;
/// Most partitions in one system.
pub const MAX_PARTITIONS: usize = 16;
/// Most physical CPUs the hypervisor drives.
pub const MAX_CPUS: usize = 8;
/// Guest-physical addresses must be below this (39-bit IPA space, 4 KiB granule, 3 levels).
pub const IPA_LIMIT: u64 = 1 << 39;
/// Room reserved at the top of a partition's first memory region for its guest device tree.
pub const GUEST_DTB_RESERVE: u64 = 64 * 1024;
/// Size of the virtual PL011's MMIO window (one page); the board places it
/// ([`crate::vplatform::EmulatedPages`]).
pub const VIRTUAL_UART_SIZE: u64 = crate::vplatform::EMULATED_PAGE;
/// SPI number (INTID - 32) of the virtual PL011 in the partition's virtual GIC.
pub const VIRTUAL_UART_SPI: u32 = 1;
/// `compatible` strings of the UARTs the hypervisor's console drivers drive (the PL011 of
/// `arch-aarch64/src/pl011.rs`, the Cadence UART of `arch-aarch64/src/cadence.rs`: the kinds of
/// [`crate::bootimage::ConsoleKind`]); `/hypervisor` `console` must name one of them.
pub const CONSOLE_UARTS: &[&str] = &["arm,pl011", "cdns,uart-r1p12"];
/// Most channels one partition may be an endpoint of.
pub const MAX_CHANNELS_PER_PARTITION: usize = 8;

/// A whole system: the board and what runs on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemConfig {
    pub board: Board,
    pub hypervisor: HypervisorConfig,
    pub partitions: Vec<PartitionConfig>,
    /// Shared-memory channels between partitions.
    pub channels: Vec<ChannelConfig>,
    /// Virtio-net links between partitions (docs/virtio.md).
    pub virtio: Vec<VirtioLinkConfig>,
    /// Disks a driver partition serves to virtio-blk frontends (docs/virtio.md).
    pub disks: Vec<VirtioDiskConfig>,
}

/// The hardware, as the board's device tree describes it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Board {
    /// Every `/memory*` node's `reg` ranges, in tree order.
    pub ram: Vec<HostRange>,
    /// Every `/cpus/cpu@N` node, in tree order; partitions refer to them by index here.
    pub cpus: Vec<Cpu>,
    /// The interrupt controller (the node with `interrupt-controller` and a `arm,gic-v3`
    /// compatible), if the board has one.
    pub gic: Option<Gic>,
    /// How partitions' stage-2 tables map memory (root `tantalum,stage2-mappings`).
    pub stage2_mappings: crate::stage2::Mappings,
    /// The IOMMUs the hypervisor drives (nodes compatible with [`SMMU_V3`]), in tree order.
    pub iommus: Vec<Iommu>,
    /// Every board device with MMIO (outside `/hypervisor`, `/cpus` and memory), so that the
    /// checker knows what else lies in a page it maps.
    pub devices: Vec<BoardDevice>,
    /// An x86 board (one with a local APIC): its APICs and I/O-port devices (`x86.rs`).
    pub x86: Option<x86::X86Platform>,
    /// Where each partition's emulated pages go in guest-physical space (root
    /// `tantalum,virtual-uart`, `tantalum,doorbells`, `tantalum,virtio`).
    pub emulated: crate::vplatform::EmulatedPages,
}

/// `compatible` of the IOMMU the hypervisor drives.
pub const SMMU_V3: &str = "arm,smmu-v3";
/// Board property marking a device that masters DMA with no IOMMU in front of it.
pub const DMA_MASTER: &str = "tantalum,dma-master";

/// An SMMUv3 of the board: the hypervisor's own, never a partition's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iommu {
    pub path: String,
    pub phandle: Option<u32>,
    /// Its register frame (`reg` entry 0: pages 0 and 1).
    pub mmio: HostRange,
    /// Its event-queue interrupt (`interrupt-names` "eventq", else the first), if wired.
    pub event_irq: Option<Interrupt>,
    /// Its global-error interrupt (`interrupt-names` "gerror"), if wired.
    pub gerror_irq: Option<Interrupt>,
}

/// A board node with MMIO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardDevice {
    pub path: String,
    pub mmio: Vec<HostRange>,
}

/// How a passed-through device reaches memory on its own.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Dma {
    /// Not a DMA master (the board marks none).
    #[default]
    None,
    /// A DMA master with no IOMMU stream the hypervisor drives (`tantalum,dma-master`, or
    /// `iommus` / `iommu-map` naming something that is not a board SMMUv3): it can reach all of
    /// physical memory.
    Unconfined {
        /// The IOMMU node it names that the hypervisor does not drive, if any.
        iommu: Option<String>,
    },
    /// Its DMA goes through board IOMMU `iommu` (index in [`Board::iommus`]) as these streams.
    Streams { iommu: usize, streams: Vec<StreamRange> },
}

/// Consecutive IOMMU stream IDs (`first..first + count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamRange {
    pub first: u32,
    pub count: u32,
}

impl StreamRange {
    /// One past the last stream (saturating).
    pub const fn end(&self) -> u64 {
        self.first as u64 + self.count as u64
    }
    pub const fn contains(&self, stream: u32) -> bool {
        stream >= self.first && (stream as u64) < self.end()
    }
    pub const fn overlaps(&self, other: &StreamRange) -> bool {
        self.count > 0
            && other.count > 0
            && (self.first as u64) < other.end()
            && (other.first as u64) < self.end()
    }
}

/// A PCI host bridge passed through: what the guest DT needs besides ECAM (`mmio[0]`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PciHost {
    /// `bus-range`.
    pub buses: (u32, u32),
    /// The windows of `ranges`, translated to CPU addresses (they are also in `mmio`).
    pub windows: Vec<PciWindow>,
    /// `interrupt-map-mask` (4 cells: 3 of unit address, 1 of pin).
    pub interrupt_map_mask: [u32; 4],
    /// `interrupt-map`: child unit address + pin, and the GIC interrupt it is wired to.
    pub interrupt_map: Vec<([u32; 4], Interrupt)>,
}

/// One window of a PCI host bridge: the first cell of its PCI address (space code), the
/// PCI address, and where the CPU sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciWindow {
    pub space: u32,
    pub pci: u64,
    pub cpu: HostRange,
}

/// The board's GIC (v3, or v2 with the virtualization extensions): what a partition's virtual
/// GIC copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gic {
    pub path: String,
    pub phandle: Option<u32>,
    /// Distributor MMIO (`reg` entry 0).
    pub distributor: HostRange,
    /// GICv3: the redistributor region (`reg` entry 1). GICv2: empty.
    pub redistributors: HostRange,
    /// GICv2 only: its other frames.
    pub v2: Option<GicV2>,
}

/// The frames of a GICv2 besides its distributor (`reg` entries 1-3 of an `arm,gic-400` /
/// `arm,cortex-a15-gic` node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicV2 {
    /// GICC: the hypervisor's physical CPU interface.
    pub cpu: HostRange,
    /// GICH: the virtual interface control (list registers), the hypervisor's.
    pub hyp: HostRange,
    /// GICV: the virtual CPU interface, mapped into each partition at its GICC address.
    pub vcpu: HostRange,
}

impl Gic {
    /// The architecture version: 2 or 3.
    pub const fn version(&self) -> u8 {
        if self.v2.is_some() {
            2
        } else {
            3
        }
    }

    /// Every frame the hypervisor itself drives (the GICV is the partitions').
    pub fn hypervisor_frames(&self) -> impl Iterator<Item = HostRange> + '_ {
        self.frame_list(false)
    }

    /// Every frame of the GIC (no partition may take a page of one).
    pub fn frames(&self) -> impl Iterator<Item = HostRange> + '_ {
        self.frame_list(true)
    }

    /// The distributor and the redistributors (those with a size), a GICv2's CPU interface and
    /// hypervisor frames and, with `vcpu`, its virtual CPU interface: gathered in an array (a
    /// chain of adapters was ten times the code).
    fn frame_list(&self, vcpu: bool) -> impl Iterator<Item = HostRange> {
        let mut frames = [HostRange::new(HostPhys(0), 0); 5];
        let mut n = 0;
        for r in [self.distributor, self.redistributors] {
            if r.size > 0 {
                frames[n] = r;
                n += 1;
            }
        }
        if let Some(v2) = self.v2 {
            frames[n] = v2.cpu;
            frames[n + 1] = v2.hyp;
            frames[n + 2] = v2.vcpu;
            n += if vcpu { 3 } else { 2 };
        }
        frames.into_iter().take(n)
    }
}

/// One physical CPU of the board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// Node path, e.g. `/cpus/cpu@1`.
    pub path: String,
    /// The node's phandle, if anything refers to it.
    pub phandle: Option<u32>,
    /// Affinity value from `reg` (MPIDR affinity bits on Arm, APIC ID on x86).
    pub hwid: u64,
}

/// The `/hypervisor` node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HypervisorConfig {
    /// Host-physical memory reserved for the hypervisor and the boot image (`memory`).
    pub memory: HostRange,
    /// The hypervisor's own console UART (`console` phandle): node path and first MMIO range.
    pub console: Option<DeviceRef>,
    /// `benchmark-pmu`: PMU accesses are not trapped and counter 0 counts instructions at every
    /// EL, the hypervisor's included (for `cargo xtask bench`; a warning).
    pub benchmark_pmu: bool,
}

/// A board device referred to by phandle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRef {
    pub path: String,
    pub mmio: HostRange,
    /// Its interrupts (the hypervisor console's receive interrupt).
    pub interrupts: Vec<Interrupt>,
    /// The node's `compatible` strings.
    pub compatible: Vec<String>,
}

/// An interrupt of a board device, from its 3-cell GIC specifier (`interrupts = <type num flags>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interrupt {
    /// 0 = SPI, 1 = PPI (the specifier's first cell).
    pub kind: u32,
    /// SPI or PPI number (INTID = number + 32 for an SPI, + 16 for a PPI).
    pub number: u32,
    /// Trigger flags (the third cell: 1 = edge rising, 4 = level high, ...).
    pub flags: u32,
}

impl Interrupt {
    /// Largest SPI number (INTID 1019).
    pub const MAX_SPI: u32 = 987;
    /// Largest PPI number (INTID 31).
    pub const MAX_PPI: u32 = 15;
    /// Whether the specifier is an SPI or PPI in range (so that [`Self::intid`] cannot overflow).
    pub const fn is_valid(&self) -> bool {
        match self.kind {
            Self::SPI => self.number <= Self::MAX_SPI,
            Self::PPI => self.number <= Self::MAX_PPI,
            _ => false,
        }
    }
}

impl Interrupt {
    /// SPI kind in a specifier.
    pub const SPI: u32 = 0;
    /// PPI kind in a specifier.
    pub const PPI: u32 = 1;
    /// The GIC interrupt ID (saturating: an unvalidated number cannot overflow it).
    pub const fn intid(&self) -> u32 {
        if self.kind == Self::PPI {
            self.number.saturating_add(16)
        } else {
            self.number.saturating_add(32)
        }
    }

    /// Whether the specifier's trigger is edge-rising (else a level line).
    pub const fn is_edge(&self) -> bool {
        self.flags & 0xf == 1
    }
}

/// A board device, or one `reg` region of it, passed through to a partition (`devices` /
/// `device-regions`). Guest addresses equal host addresses.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeviceAssignment {
    /// Path of the board node, e.g. `/virtio_mmio@a000000`.
    pub path: String,
    /// The MMIO ranges given to the partition: all of the node's `reg`, or the one region named.
    pub mmio: Vec<HostRange>,
    /// The node's interrupts (none when only a region of the device is assigned).
    pub interrupts: Vec<Interrupt>,
    /// `Some(index)` when only `reg` entry `index` is assigned (`device-regions`).
    pub region: Option<u32>,
    /// The board node's `compatible` strings, copied into the guest DT.
    pub compatible: Vec<String>,
    /// Whether and how it masters DMA.
    pub dma: Dma,
    /// Set for a PCI host bridge (`device_type = "pci"`): its windows and INTx wiring.
    pub pci: Option<PciHost>,
}

/// A shared-memory channel between partitions (`/hypervisor/channels/*`,
/// `compatible = "tantalum,channel-v1"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Index in [`SystemConfig::channels`] (tree order).
    pub id: usize,
    /// The node name, e.g. `sensor-to-controller`.
    pub name: String,
    pub path: String,
    /// The partitions that map the channel (`endpoints`, phandles to partition nodes), ≥ 2.
    pub endpoints: Vec<PartitionId>,
    /// Host-physical memory of the channel (`memory = <base size>`).
    pub memory: HostRange,
    /// Where each endpoint sees the channel (`guest-addresses`, one per endpoint; default: the
    /// host address).
    pub guest: Vec<GuestPhys>,
    /// The only endpoint that may write the data area (`writer`); `None`: every endpoint may.
    pub writer: Option<PartitionId>,
}

impl ChannelConfig {
    /// The guest address endpoint partition `id` sees the channel at.
    pub fn guest_address(&self, id: PartitionId) -> Option<GuestPhys> {
        let i = self.endpoints.iter().position(|&e| e == id)?;
        self.guest.get(i).copied()
    }
    /// Whether endpoint `id` may send on the channel (write its data; every endpoint writes its
    /// own index pages, see `channel::ChannelLayout::permissions`).
    pub fn may_write(&self, id: PartitionId) -> bool {
        self.endpoints.contains(&id) && self.writer.is_none_or(|w| w == id)
    }
}

/// A virtio link between two partitions (`/hypervisor/channels/*`): each endpoint gets a virtio
/// device of the link's kind, and what one sends the other receives (docs/virtio.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtioLinkConfig {
    /// Index in [`SystemConfig::virtio`] (tree order).
    pub id: usize,
    pub kind: VirtioKind,
    /// The node name, e.g. `net0`.
    pub name: String,
    pub path: String,
    /// The two partitions (`endpoints`, phandles to partition nodes).
    pub endpoints: Vec<PartitionId>,
}

/// What a virtio link carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioKind {
    /// Ethernet frames (`tantalum,virtio-net-v1`): a virtio-net device each.
    Net,
    /// Socket packets (`tantalum,virtio-vsock-v1`): a virtio-vsock device each, the endpoint's
    /// address its CID (`tantalum_core::virtio::vsock::cid`).
    Vsock,
}

impl VirtioKind {
    /// The link node's compatible string.
    pub const fn compatible(self) -> &'static str {
        match self {
            VirtioKind::Net => VIRTIO_NET_COMPATIBLE,
            VirtioKind::Vsock => VIRTIO_VSOCK_COMPATIBLE,
        }
    }

    /// Its name in messages and `config show`.
    pub const fn name(self) -> &'static str {
        match self {
            VirtioKind::Net => "virtio-net",
            VirtioKind::Vsock => "virtio-vsock",
        }
    }
}

/// Compatible string of a virtio-net link node.
pub const VIRTIO_NET_COMPATIBLE: &str = "tantalum,virtio-net-v1";
/// Compatible string of a virtio-vsock link node.
pub const VIRTIO_VSOCK_COMPATIBLE: &str = "tantalum,virtio-vsock-v1";

/// A disk that a driver partition owns and serves to frontends, each a virtio-blk device over its
/// own region (`/hypervisor/channels/*`, `compatible = "tantalum,virtio-blk-v1"`; docs/virtio.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtioDiskConfig {
    /// Index in [`SystemConfig::disks`] (tree order).
    pub id: usize,
    /// The node name, e.g. `disk0`.
    pub name: String,
    pub path: String,
    /// The driver partition (`driver`, a phandle).
    pub driver: Option<PartitionId>,
    /// Path of the board device the disk is on (`device`, a phandle): the driver must own it.
    pub device: Option<String>,
    /// Sectors of 512 bytes the disk has (`sectors`, 2 cells).
    pub sectors: u64,
    /// The frontends (child nodes), in tree order.
    pub frontends: Vec<DiskFrontendConfig>,
}

/// One frontend of a disk: a partition and its region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskFrontendConfig {
    pub name: String,
    pub path: String,
    /// The frontend partition (`partition`, a phandle).
    pub partition: Option<PartitionId>,
    /// Its region (`region = <start sectors>`, 2 cells each).
    pub region: crate::virtio::blk::Region,
}

/// Compatible string of a disk node.
pub const VIRTIO_BLK_COMPATIBLE: &str = "tantalum,virtio-blk-v1";

/// What a partition's virtio page `n` is: its local devices are its links (tree order), then its
/// disk frontends, then the backend pages of the disks it drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioDevice<'a> {
    Net(&'a VirtioLinkConfig),
    /// Frontend `frontend` of `disk`.
    Disk {
        disk: &'a VirtioDiskConfig,
        frontend: usize,
    },
    /// The backend page of a disk the partition drives (not a virtio device).
    DiskBackend(&'a VirtioDiskConfig),
}

/// Compatible string of a channel node.
pub const CHANNEL_COMPATIBLE: &str = "tantalum,channel-v1";

/// Index of a partition in [`SystemConfig::partitions`] (tree order); also its hypercall id.
pub type PartitionId = u16;

/// One partition node (`compatible = "tantalum,partition-v1"`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PartitionConfig {
    pub id: PartitionId,
    /// The node name, e.g. `sensor`.
    pub name: String,
    /// The node path, e.g. `/hypervisor/sensor`.
    pub path: String,
    /// Indices into [`Board::cpus`]; the first is the boot vCPU (vCPU 0).
    pub cpus: Vec<usize>,
    /// Memory regions; the image is loaded at the start of the first one.
    pub memory: Vec<MemoryRegion>,
    /// Build-time image path (`image`), as written in the source DTS.
    pub image_path: Option<String>,
    /// Where the built image sits in the boot image (`tantalum,image` + `tantalum,image-sha256`).
    pub image: Option<Blob>,
    /// Where the generated guest DTB sits in the boot image (`tantalum,guest-dtb` + `-sha256`).
    pub guest_dtb: Option<Blob>,
    /// Image size known to the build tool before the boot image exists (from the file).
    pub image_size_hint: Option<u64>,
    /// Build-time path of an initial ramdisk (`initrd`), for Linux partitions.
    pub initrd_path: Option<String>,
    /// Where the initrd sits in the boot image (`tantalum,initrd` + `tantalum,initrd-sha256`).
    pub initrd: Option<Blob>,
    /// Initrd size known to the build tool before the boot image exists.
    pub initrd_size_hint: Option<u64>,
    /// Guest-physical entry point (`entry`, default: start of the first region).
    pub entry: GuestPhys,
    pub on_fault: FaultPolicy,
    /// What an access outside its memory does (`outside-memory`); `None` when the config does
    /// not say: see [`PartitionConfig::outside_memory`].
    pub outside_memory: Option<OutsideMemory>,
    /// Lower boots first (`boot-order`, default 0); ties keep tree order.
    pub boot_order: u32,
    /// Kernel command line for `chosen/bootargs` of the guest DT (`bootargs`).
    pub bootargs: Option<String>,
    /// Board devices passed through (`devices`, `device-regions`).
    pub devices: Vec<DeviceAssignment>,
    /// A virtual PL011 console (`virtual-uart;`), the guest's `ttyAMA0`, multiplexed onto the
    /// hypervisor console with the partition's name.
    pub virtual_uart: bool,
    /// `dma-unconfined;`: its DMA masters may go without an IOMMU (a loud warning everywhere).
    pub dma_unconfined: bool,
    /// `owns-platform;`: it may be given devices that reach the whole machine's configuration
    /// (on x86, those the board marks `tantalum,platform-wide`: rule 16).
    pub owns_platform: bool,
}

/// A piece of the boot image: offset from the start of the payload, size, and SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blob {
    pub offset: u64,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// One partition memory region: host-physical backing and where the guest sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub host: HostPhys,
    pub guest: GuestPhys,
    pub size: u64,
}

impl MemoryRegion {
    pub const fn host_range(&self) -> HostRange {
        HostRange::new(self.host, self.size)
    }
    /// Translates a guest-physical range inside this region to host-physical. Inlined (this
    /// crate is built for size): the hypervisor's paths that copy guest buffers call it.
    #[inline]
    pub fn translate(&self, ipa: GuestPhys, len: u64) -> Option<HostPhys> {
        let offset = ipa.0.checked_sub(self.guest.0)?;
        let end = offset.checked_add(len)?;
        (end <= self.size).then(|| HostPhys(self.host.0 + offset))
    }
}

/// What the hypervisor does when a partition faults (`on-fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FaultPolicy {
    /// Stop the partition; the others keep running.
    #[default]
    Stop,
    /// Reload the partition from its image into fresh memory and start it again.
    Restart,
    /// Power the whole machine off.
    HaltSystem,
}

impl FaultPolicy {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "stop" => Some(Self::Stop),
            "restart" => Some(Self::Restart),
            "halt-system" => Some(Self::HaltSystem),
            _ => None,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::HaltSystem => "halt-system",
        }
    }
}

/// What the hypervisor does when a partition accesses an address outside its memory and its
/// virtual devices (`outside-memory`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutsideMemory {
    /// Apply the partition's `on-fault` policy.
    Fault,
    /// Give the guest a synchronous external abort on the access, as a bus error would on real
    /// hardware; the partition keeps running (Linux sends SIGBUS to a process that did it).
    ExternalAbort,
}

impl OutsideMemory {
    pub const NAMES: [&'static str; 2] = ["fault", "external-abort"];
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "fault" => Some(Self::Fault),
            "external-abort" => Some(Self::ExternalAbort),
            _ => None,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::Fault => Self::NAMES[0],
            Self::ExternalAbort => Self::NAMES[1],
        }
    }
}

impl PartitionConfig {
    /// The SPIs of the devices passed through to the partition.
    pub fn device_spis(&self) -> impl Iterator<Item = &Interrupt> {
        self.devices.iter().flat_map(|d| &d.interrupts).filter(|i| i.kind == Interrupt::SPI)
    }

    /// What an access outside the partition's memory does: the config's `outside-memory`, by
    /// default an external abort for a Linux partition (one with an `initrd`, whose kernel
    /// turns it into SIGBUS for the process that made it) and the `on-fault` policy otherwise.
    pub fn outside_memory(&self) -> OutsideMemory {
        let linux = self.initrd_path.is_some() || self.initrd.is_some();
        self.outside_memory.unwrap_or(if linux { OutsideMemory::ExternalAbort } else { OutsideMemory::Fault })
    }
    /// Translates a guest-physical range that lies wholly inside one memory region (inlined,
    /// as [`MemoryRegion::translate`]).
    #[inline]
    pub fn translate(&self, ipa: GuestPhys, len: u64) -> Option<HostPhys> {
        self.memory.iter().find_map(|r| r.translate(ipa, len))
    }
    /// Size of the initrd, from the boot image or the build tool.
    pub fn initrd_size(&self) -> Option<u64> {
        self.initrd.map(|b| b.size).or(self.initrd_size_hint)
    }
    /// Guest-physical address of the initrd: just below the guest DTB, page aligned.
    pub fn initrd_address(&self) -> Option<GuestPhys> {
        let size = align_up(self.initrd_size()?, PAGE_SIZE)?;
        self.guest_dtb_address()?.0.checked_sub(size).map(GuestPhys)
    }
    /// Guest-physical address of the guest DTB: the top [`GUEST_DTB_RESERVE`] of region 0.
    pub fn guest_dtb_address(&self) -> Option<GuestPhys> {
        let first = self.memory.first()?;
        let top = first.guest.0.checked_add(first.size)?;
        top.checked_sub(GUEST_DTB_RESERVE).map(GuestPhys)
    }
}

impl SystemConfig {
    /// Partition ids by `boot-order`, ties in tree order: the order in which the hypervisor
    /// powers their CPUs on (they then load in parallel; see [`SystemConfig::waits_for`]).
    #[cfg_attr(target_os = "none", unsafe(link_section = ".text.boot_only"))]
    pub fn boot_sequence(&self) -> Vec<PartitionId> {
        let mut ids: Vec<PartitionId> = self.partitions.iter().map(|p| p.id).collect();
        crate::sort::sort_by_key(&mut ids, |&id| (self.partitions[id as usize].boot_order, id));
        ids
    }
    /// Whether partition `id`, loaded, must wait for partition `other` to start (or to fail
    /// to load) before it starts: `other` has a lower `boot-order`. Equal orders do not wait.
    pub fn waits_for(&self, id: PartitionId, other: PartitionId) -> bool {
        let order = |i: PartitionId| self.partitions.get(usize::from(i)).map(|p| p.boot_order);
        matches!((order(id), order(other)), (Some(mine), Some(theirs)) if theirs < mine)
    }
    /// The virtio links partition `id` is on, in tree order: its local virtio device numbers.
    pub fn virtio_of(&self, id: PartitionId) -> impl Iterator<Item = &VirtioLinkConfig> {
        self.virtio.iter().filter(move |l| l.endpoints.contains(&id))
    }
    /// Every emulated device page of partition `id`, in local order (page `n` of its virtio
    /// window; see [`VirtioDevice`]).
    pub fn virtio_devices(&self, id: PartitionId) -> impl Iterator<Item = VirtioDevice<'_>> {
        let nets = self.virtio_of(id).map(VirtioDevice::Net);
        let fronts = self.disks.iter().flat_map(move |d| {
            let mine = d.frontends.iter().enumerate().filter(move |(_, f)| f.partition == Some(id));
            mine.map(move |(frontend, _)| VirtioDevice::Disk { disk: d, frontend })
        });
        let backs = self.disks.iter().filter(move |d| d.driver == Some(id)).map(VirtioDevice::DiskBackend);
        nets.chain(fronts).chain(backs)
    }
    /// How many [`virtio_devices`](Self::virtio_devices) partition `id` has (one compiled copy
    /// of the count for the boot code, which asks it per partition).
    #[cfg_attr(target_os = "none", unsafe(link_section = ".text.boot_only"))]
    pub fn virtio_device_count(&self, id: PartitionId) -> usize {
        self.virtio_devices(id).count()
    }
    /// Every partition's memory regions in host memory, with the partition's node path, in tree
    /// order (one compiled walk for the rules that look at all of them).
    pub fn partition_regions(&self) -> Vec<(&str, HostRange)> {
        let mut all = Vec::new();
        for p in &self.partitions {
            for r in &p.memory {
                all.push((p.path.as_str(), r.host_range()));
            }
        }
        all
    }
    /// The channels partition `id` is an endpoint of, in tree order: its local channel numbers.
    #[cfg_attr(target_os = "none", unsafe(link_section = ".text.boot_only"))]
    pub fn channels_of(&self, id: PartitionId) -> Vec<&ChannelConfig> {
        self.endpoint_channels(id).collect()
    }
    /// The channels partition `id` is an endpoint of, in tree order, without allocating (the
    /// doorbell hypercall's path).
    pub fn endpoint_channels(&self, id: PartitionId) -> impl Iterator<Item = &ChannelConfig> {
        self.channels.iter().filter(move |c| c.endpoints.contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, size: u64) -> HostRange {
        HostRange::new(HostPhys(start), size)
    }

    /// The frames in order: the distributor and redistributors with a size, then a GICv2's GICC
    /// and GICH, and its GICV only among all the frames.
    #[test]
    fn gic_frames_in_order() {
        let (d, r) = (range(0x800_0000, 0x1_0000), range(0x80a_0000, 0xf6_0000));
        let v3 = Gic { path: "/gic".into(), phandle: None, distributor: d, redistributors: r, v2: None };
        assert_eq!(v3.hypervisor_frames().collect::<Vec<_>>(), [d, r]);
        assert_eq!(v3.frames().collect::<Vec<_>>(), [d, r]);
        let (c, h, v) = (range(0x801_0000, 0x2000), range(0x803_0000, 0x2000), range(0x804_0000, 0x2000));
        let v2 =
            Gic { redistributors: range(0, 0), v2: Some(GicV2 { cpu: c, hyp: h, vcpu: v }), ..v3.clone() };
        assert_eq!(v2.hypervisor_frames().collect::<Vec<_>>(), [d, c, h]);
        assert_eq!(v2.frames().collect::<Vec<_>>(), [d, c, h, v]);
        let no_distributor = Gic { distributor: range(0x800_0000, 0), ..v2 };
        assert_eq!(no_distributor.frames().collect::<Vec<_>>(), [c, h, v]);
    }
}
