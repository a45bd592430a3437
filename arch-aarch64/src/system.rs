//! The partitioned system at run time: built once by the primary CPU, then shared read-mostly
//! by every CPU.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};

use spin::Mutex;
use tantalum_aarch64::boot_once::BootOnce;
use tantalum_aarch64::descriptors::Stage2Format;
use tantalum_core::addr::{GuestPhys, HostPhys, HostRange};
use tantalum_core::bootimage::ImageProblem;
use tantalum_core::channel::layout::{channel_layout, LayoutError};
use tantalum_core::config::VIRTUAL_UART_SPI;
use tantalum_core::config::{PartitionConfig, SystemConfig, MAX_CPUS};
use tantalum_core::console::budget::Budget;
use tantalum_core::console::LineBuffer;
use tantalum_core::partition::power::VcpuSlot;
use tantalum_core::partition::ChannelPeers;
use tantalum_core::stage2::{covering_pages, Geometry, MapAttrs, MapError, Stage2};
use tantalum_core::vgic::{self, VirtualGic};
use tantalum_core::virtio::blk::{Disk, Region};
use tantalum_core::virtio::{self, net::Link};
use tantalum_core::vplatform;
use tantalum_core::vuart::{Mirror, VirtualUart};

use crate::console::info;
use crate::fast_mmio::WindowPlan;
use crate::gicv_trap::GicvTrap;
use crate::listed_sync::ListedMailbox;
use crate::loader::{LoadPlan, LoadProgress};
use crate::memory::{self, mapped_ram, HeapTables};

/// Lifecycle of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Refused at boot (bad image) or stopped: its CPUs are parked.
    Stopped = 0,
    Running = 1,
    /// Its CPUs are loading it (boot); it starts once every partition with a lower boot order
    /// has.
    Loading = 2,
}

/// Where a vCPU runs: its board CPU (index in the board's CPUs) and that CPU's hardware ID.
#[derive(Clone, Copy)]
pub struct Placement {
    pub cpu: usize,
    pub hwid: u64,
}

/// A partition's run-time state. In declaration order (`repr(C)`): what the exits read first,
/// within a load pair's reach of the start (504 bytes); the console's line buffer and the
/// virtual UART's 256-byte input queue last.
#[repr(C)]
pub struct Partition {
    /// Its entry of [`System::config`] (shared, not copied).
    pub config: &'static PartitionConfig,
    pub vmid: u8,
    status: AtomicU8,
    /// How many times it has been restarted (read on every exit: an atomic, not a lock).
    pub restarts: AtomicU32,
    /// Bumped when the partition stops or restarts: a vCPU that finds it changed since it
    /// entered leaves the guest for good.
    pub generation: AtomicU32,
    /// Per vCPU: set when a virtual interrupt may have become ready for it (a doorbell rang, an
    /// SGI, the guest programmed its GIC): its CPU then loads its list registers before resuming.
    pub irq_hints: Vec<AtomicBool>,
    /// Per vCPU: its power state and, while it starts, where.
    pub vcpus: Vec<VcpuSlot>,
    /// Per vCPU: its board CPU and that CPU's MPIDR affinity, for kicks (one lookup).
    pub placement: Vec<Placement>,
    /// Per vCPU: what its list registers hold, when another vCPU's GIC access asks.
    pub listed: Vec<ListedMailbox>,
    /// Its virtual distributor and redistributors.
    pub vgic: Mutex<VirtualGic>,
    /// Their registers with state, kept under `vgic`'s lock for reads without it.
    pub vgic_mirror: Arc<vgic::Mirror>,
    /// Its UARTFR and whether an access must take `vuart`'s lock, kept under that lock.
    pub vuart_mirror: Mirror,
    /// On a GICv2 board: its CPU interface page, withdrawn while a vCPU must re-sample
    /// hardware-linked interrupts before its guest acknowledges them.
    pub gicv_trap: Option<GicvTrap>,
    pub stage2: Stage2,
    /// Where its guest DTB lies (its address space), vCPU 0's x0 at every start; 0: none.
    pub guest_dtb: u64,
    /// Its devices' SPIs (INTIDs), passed through.
    pub device_spis: Vec<u32>,
    /// The first bus of each generic ECAM host bridge among its devices (`pci`).
    pub pci_buses: Vec<HostRange>,
    /// Where the MMIO fast path emulates for its vCPUs (`fast_mmio`).
    pub windows: WindowPlan,
    /// What loading its memory writes where, checked at boot (or why it cannot be loaded).
    pub plan: Result<LoadPlan, LoadError>,
    /// Progress of loading its memory, shared by its CPUs.
    pub load: LoadProgress,
    pub console: Mutex<LineBuffer>,
    /// How much more console output it may send (`core::console::budget`).
    pub console_budget: Mutex<Budget>,
    /// Its virtual PL011 (used if the config gives it one).
    pub vuart: Mutex<VirtualUart>,
}

/// Everything the CPUs share.
pub struct System {
    /// The checked configuration, for as long as the hypervisor runs ([`System::new`] leaks it).
    pub config: &'static SystemConfig,
    pub partitions: Vec<Partition>,
    /// The doorbells each partition's `HYP_CHANNEL_NOTIFY` rings, by its channel number (from
    /// `config`, for the notify fast path).
    pub channel_peers: ChannelPeers,
    /// Each virtio link's two devices, behind the lock both endpoints' CPUs take.
    pub links: Vec<Mutex<Link>>,
    /// Each virtio disk's frontends and backend state, behind the lock all their CPUs take.
    pub disks: Vec<Mutex<Disk>>,
    /// The hypervisor console's receive interrupt, if the board describes one.
    pub console_intid: Option<u32>,
    /// The hypervisor's own interrupts, a bit per INTID (`vcpu::hypervisor_spis`).
    pub hypervisor_spis: [u64; crate::vcpu::INTID_WORDS],
    /// Partitions still running; the last one to stop powers the machine off.
    running: AtomicUsize,
    /// Top of each board CPU's hypervisor stack (0 until that CPU starts).
    pub stack_tops: [AtomicUsize; MAX_CPUS],
    /// The partition that gets console input (one with a virtual UART), or `usize::MAX`.
    pub input_focus: AtomicUsize,
    /// Set once the operator has typed: from then on the partition with the input prints
    /// unbuffered (a prompt shows at once); before, every partition is line-buffered, so
    /// unattended runs keep whole lines.
    pub interactive: AtomicBool,
}

static SYSTEM: BootOnce<System> = BootOnce::new();

/// The system, once the primary CPU has built it.
pub fn get() -> &'static System {
    SYSTEM.get().expect("system used before boot finished")
}

/// Why a partition could not be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The blob's SHA-256 differs from the one in the system DTB.
    HashMismatch {
        what: &'static str,
    },
    /// The blob lies outside the payload (the config checks make this unreachable).
    OutOfBounds {
        what: &'static str,
    },
    /// Memory outside what the hypervisor can reach.
    Unmapped,
    /// The image (with the BSS its header declares) and the guest DTB do not fit in region 0.
    TooBig {
        needed: u64,
        room: u64,
    },
    Stage2(MapError),
    /// A channel's memory cannot hold its rings.
    Channel(LayoutError),
    /// The image is not an arm64 Image (`bootimage::check_partition_image`).
    Image(ImageProblem),
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LoadError::HashMismatch { what } => {
                write!(f, "{what} SHA-256 does not match the system DTB: refusing it")
            }
            LoadError::OutOfBounds { what } => write!(f, "{what} lies outside the boot image"),
            LoadError::Unmapped => {
                write!(f, "memory lies outside the RAM the hypervisor maps ({})", mapped_ram())
            }
            LoadError::TooBig { needed, room } => {
                write!(f, "image needs {needed:#x} bytes with its guest DTB, region 0 has {room:#x}")
            }
            LoadError::Stage2(e) => write!(f, "building stage-2 tables failed: {e}"),
            LoadError::Channel(e) => write!(f, "channel layout: {e}"),
            LoadError::Image(problem) => write!(f, "image: {problem}"),
        }
    }
}

impl Partition {
    /// Asks every vCPU to look at its interrupts.
    pub fn hint_all(&self) {
        for hint in &self.irq_hints {
            hint.store(true, Ordering::Release);
        }
    }

    /// MPIDR affinity of the CPU of vCPU `vcpu` (where its interrupts are routed).
    pub fn hwid_of(&self, vcpu: usize) -> Option<u64> {
        self.placement.get(vcpu).map(|p| p.hwid)
    }

    pub fn status(&self) -> Status {
        match self.status.load(Ordering::Acquire) {
            1 => Status::Running,
            2 => Status::Loading,
            _ => Status::Stopped,
        }
    }
}

impl System {
    /// Installs the system for all CPUs.
    #[unsafe(link_section = ".text.boot_only")]
    pub fn install(self) -> &'static System {
        match SYSTEM.set(self) {
            Ok(system) => system,
            Err(_) => panic!("system installed twice"),
        }
    }

    /// Builds the run-time state of every partition, stage-2 tables and load plan included (the
    /// partitions' own CPUs load their memory later, by that plan: `loader`). Fails with the
    /// first partition whose tables cannot be built.
    #[unsafe(link_section = ".text.boot_only")]
    pub fn new(config: SystemConfig, payload: &'static [u8]) -> Result<System, (String, LoadError)> {
        // The system lives as long as the hypervisor (`install`): its configuration too, which
        // each partition then shares instead of holding a copy.
        let config: &'static SystemConfig = Box::leak(Box::new(config));
        let mut partitions = Vec::with_capacity(config.partitions.len());
        let gic_version = config.board.gic.as_ref().map_or(3, |g| g.version());
        for (i, p) in config.partitions.iter().enumerate() {
            let stage2 = build_stage2(config, p).map_err(|e| (p.name.clone(), e))?;
            let channels = config.channels_of(p.id).len();
            let mut owned: Vec<u32> = (0..channels).map(vplatform::doorbell_intid).collect();
            let device_spis: Vec<u32> = p.device_spis().map(|i| i.intid()).collect();
            owned.extend(&device_spis);
            if p.virtual_uart {
                owned.push(VIRTUAL_UART_SPI + 32);
            }
            owned.extend((0..config.virtio_device_count(p.id)).map(virtio::virtio_intid));
            let mut vgic = VirtualGic::for_version(gic_version, p.cpus.len(), &owned);
            // Level lines read level (ICFGR) as on the board: devices' (DT flags other than
            // edge-rising) and the virtual UART's.
            for irq in p.device_spis().filter(|i| !i.is_edge()) {
                vgic.set_level_at_reset(irq.intid());
            }
            if p.virtual_uart {
                vgic.set_level_at_reset(VIRTUAL_UART_SPI + 32);
            }
            let gicv_trap = GicvTrap::new(config, &stage2);
            partitions.push(Partition {
                gicv_trap,
                config: p,
                vmid: (i + 1) as u8,
                stage2,
                restarts: AtomicU32::new(0),
                console: Mutex::new(LineBuffer::new()),
                console_budget: Mutex::new(Budget::new()),
                vgic_mirror: vgic.mirror(),
                vgic: Mutex::new(vgic),
                vuart: Mutex::new(VirtualUart::new()),
                vuart_mirror: Mirror::new(),
                irq_hints: p.cpus.iter().map(|_| AtomicBool::new(false)).collect(),
                vcpus: p.cpus.iter().map(|_| VcpuSlot::new()).collect(),
                placement: p
                    .cpus
                    .iter()
                    .map(|&cpu| Placement { cpu, hwid: config.board.cpus[cpu].hwid })
                    .collect(),
                listed: p.cpus.iter().map(|_| ListedMailbox::default()).collect(),
                generation: AtomicU32::new(0),
                plan: LoadPlan::new(p, payload),
                windows: WindowPlan::new(config, p),
                guest_dtb: p.guest_dtb_address().map_or(0, |a| a.as_u64()),
                device_spis,
                pci_buses: p.devices.iter().filter_map(tantalum_core::pci::first_bus_window).collect(),
                load: LoadProgress::new(),
                status: AtomicU8::new(Status::Stopped as u8),
            });
        }
        let links = config.virtio.iter().map(|l| Mutex::new(Link::new(l.id, l.kind, &l.endpoints))).collect();
        let disks = config
            .disks
            .iter()
            .map(|d| {
                let regions: Vec<Region> = d.frontends.iter().map(|f| f.region).collect();
                Mutex::new(Disk::new(d.sectors, &regions))
            })
            .collect();
        Ok(System {
            channel_peers: ChannelPeers::new(config),
            config,
            partitions,
            links,
            disks,
            console_intid: crate::vcpu::console_intid(config),
            hypervisor_spis: crate::vcpu::hypervisor_spis(config),
            running: AtomicUsize::new(0),
            stack_tops: [const { AtomicUsize::new(0) }; MAX_CPUS],
            input_focus: AtomicUsize::new(usize::MAX),
            interactive: AtomicBool::new(false),
        })
    }

    /// Zeroes every channel's memory (at boot, before any endpoint runs).
    #[unsafe(link_section = ".text.boot_only")]
    pub fn clear_channels(&self) -> Result<(), LoadError> {
        for c in &self.config.channels {
            if !mapped_ram().contains_range(&c.memory) {
                return Err(LoadError::Unmapped);
            }
            // SAFETY: channel memory is inside mapped_ram() (checked above), belongs to no
            // partition's own memory (config rules), and no endpoint runs yet.
            unsafe { memory::zero(c.memory) };
            crate::el2::clean_to_poc(c.memory.start.as_u64() as usize, c.memory.size as usize);
        }
        Ok(())
    }

    /// Marks partition `id` loading, at boot: it counts as running from now on, and its CPUs
    /// join the load as they come up.
    pub fn mark_loading(&self, id: usize) {
        self.partitions[id].load.open();
        self.partitions[id].status.store(Status::Loading as u8, Ordering::Release);
        self.running.fetch_add(1, Ordering::AcqRel);
    }

    /// Marks partition `id`, loaded, running; false if it was stopped while it loaded (one of
    /// its CPUs could not be powered on), which it then stays.
    pub fn mark_running(&self, id: usize) -> bool {
        let (loading, running) = (Status::Loading as u8, Status::Running as u8);
        self.partitions[id]
            .status
            .compare_exchange(loading, running, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks running partition `id` loading again for a restart; false if it is not running
    /// (stopped, or another of its vCPUs is restarting it already: restarts never overlap).
    pub fn begin_restart(&self, id: usize) -> bool {
        let (running, loading) = (Status::Running as u8, Status::Loading as u8);
        self.partitions[id]
            .status
            .compare_exchange(running, loading, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks partition `id` stopped; returns how many partitions are still running.
    pub fn mark_stopped(&self, id: usize) -> usize {
        let was = self.partitions[id].status.swap(Status::Stopped as u8, Ordering::AcqRel);
        if was != Status::Stopped as u8 {
            self.running.fetch_sub(1, Ordering::AcqRel) - 1
        } else {
            self.running.load(Ordering::Acquire)
        }
    }

    /// Resets partition `id`'s virtio devices (it stops or restarts: its queues were in the
    /// memory of the run that ended), and reports each of its links' counters so far.
    pub fn reset_virtio(&self, id: usize) {
        if !tantalum_aarch64::built::BUILT.virtio {
            return;
        }
        for (link, l) in self.config.virtio.iter().zip(&self.links) {
            if let Some(side) = link.endpoints.iter().position(|&e| usize::from(e) == id) {
                let mut l = l.lock();
                l.reset(side);
                let name = |s: usize| &self.partitions[usize::from(link.endpoints[s])].config.name;
                if link.endpoints.len() == 2 {
                    info!(
                        "virtio link '{}': {} -> {}: {} packets, {} dropped; {} -> {}: {} packets, {} dropped",
                        link.name,
                        name(0),
                        name(1),
                        l.packets[0],
                        l.dropped[0],
                        name(1),
                        name(0),
                        l.packets[1],
                        l.dropped[1],
                    );
                } else {
                    // On the stack: nothing is allocated after boot (a longer line is cut).
                    let mut line = heapless::String::<512>::new();
                    let _ = write!(line, "virtio switch '{}':", link.name);
                    for (s, (sent, dropped)) in l.packets.iter().zip(&l.dropped).enumerate() {
                        let _ = write!(line, " {} sent {sent}, dropped {dropped};", name(s));
                    }
                    info!("{}", line.trim_end_matches(';'));
                }
            }
        }
    }

    /// The partition and vCPU that board CPU `cpu` runs.
    pub fn vcpu_on_cpu(&self, cpu: usize) -> Option<(usize, usize)> {
        self.partitions
            .iter()
            .enumerate()
            .find_map(|(id, p)| p.config.cpus.iter().position(|&c| c == cpu).map(|vcpu| (id, vcpu)))
    }
}

/// Device memory a partition may read and write but not execute.
const DEVICE: MapAttrs = MapAttrs { read: true, write: true, execute: false, device: true };

/// Stage 2 of partition `p`: its memory, its passed-through devices (whole pages, merged where
/// its devices share one; the config rules keep other partitions' devices out of those pages)
/// and its channels, each page with
/// the access the channel layout gives this endpoint.
#[unsafe(link_section = ".text.boot_only")]
fn build_stage2(config: &SystemConfig, p: &PartitionConfig) -> Result<Stage2, LoadError> {
    let mut mappings: Vec<(u64, u64, u64, MapAttrs)> = Vec::new();
    for r in &p.memory {
        mappings.push((r.guest.as_u64(), r.host.as_u64(), r.size, MapAttrs::RAM));
    }
    let mut mmio = Vec::new();
    for d in &p.devices {
        mmio.extend_from_slice(&d.mmio);
    }
    for page in covering_pages(&mmio) {
        mappings.push((page.start.as_u64(), page.start.as_u64(), page.size, DEVICE));
    }
    // A GICv2's virtual CPU interface, where the guest expects the CPU interface.
    if let Some((gic, v2)) = config.board.gic.as_ref().and_then(|g| Some((g, g.v2?))) {
        let [_, (cpu, size)] = vplatform::gic_guest_frames(gic, p.cpus.len());
        mappings.push((cpu, v2.vcpu.start.as_u64(), size, DEVICE));
    }
    let channels = config.channels_of(p.id);
    for c in &channels {
        let endpoint = c.endpoints.iter().position(|&e| e == p.id).unwrap_or(0);
        let writer = c.writer.and_then(|w| c.endpoints.iter().position(|&e| e == w));
        let layout = channel_layout(c.memory.size, writer).map_err(LoadError::Channel)?;
        let ipa = c.guest_address(p.id).unwrap_or(GuestPhys(c.memory.start.as_u64())).as_u64();
        for (offset, len, writable) in layout.permissions(endpoint) {
            let attrs = MapAttrs { read: true, write: writable, execute: false, device: false };
            mappings.push((ipa + offset, c.memory.start.as_u64() + offset, len, attrs));
        }
    }
    // The shortest walk that reaches every mapping and every emulated frame.
    let emulated = [usize::from(p.virtual_uart), channels.len(), config.virtio_device_count(p.id)];
    let end = mappings
        .iter()
        .map(|&(ipa, _, size, _)| ipa.saturating_add(size))
        .fold(vplatform::emulated_end(&config.board, p.cpus.len(), emulated), u64::max);
    let geometry = Geometry::covering(end).ok_or(LoadError::Stage2(MapError::OutOfRange))?;
    let mut tables = HeapTables;
    let s2 = Stage2::new(&mut tables, geometry, config.board.stage2_mappings).map_err(LoadError::Stage2)?;
    for (ipa, pa, size, attrs) in mappings {
        s2.map::<Stage2Format>(&mut tables, GuestPhys(ipa), HostPhys(pa), size, attrs)
            .map_err(LoadError::Stage2)?;
    }
    Ok(s2)
}
