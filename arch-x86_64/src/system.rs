//! The system the boot image describes: the checked config, and per partition its EPT, its
//! console line and its run state. [`System::load`] puts a partition into its memory (image and
//! guest DTB verified against their SHA-256, the rest zeroed, the boot area built): at boot and
//! at every restart.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use spin::{Mutex, Once};
use tantalum_core::addr::GuestPhys;
use tantalum_core::addr::{HostPhys, HostRange};
use tantalum_core::bootimage::{check_x86_partition_image, ImageProblem};
use tantalum_core::channel::layout::{channel_layout, LayoutError};
use tantalum_core::config::{Blob, PartitionConfig, SystemConfig, GUEST_DTB_RESERVE};
use tantalum_core::console::LineBuffer;
use tantalum_core::partition::doorbell_targets::DoorbellTargets;
use tantalum_core::partition::power::{Power, VcpuSlot};
use tantalum_core::stage2::{MapAttrs, Mappings, Stage2};
use tantalum_x86_64::ept::{self, EptFormat};
use tantalum_x86_64::io_bitmap;
use tantalum_x86_64::linux_boot::{self, BootArea, BootAreaError, BzImageError, BOOT_AREA_SIZE};
use tantalum_x86_64::pending::PendingVectors;
use tantalum_x86_64::pic::{self, MasterPic};
use tantalum_x86_64::vuart::VirtualUart16550;

use crate::vmx::HeapTables;

/// Why a partition could not be loaded.
#[derive(Clone, Copy, Debug)]
pub enum LoadError {
    /// The blob's SHA-256 differs from the one in the system DTB.
    HashMismatch {
        what: &'static str,
    },
    /// The blob lies outside the payload (the config checks make this unreachable).
    OutOfBounds {
        what: &'static str,
    },
    /// Memory outside what the hypervisor maps (its boot map's RAM).
    Unmapped,
    /// The image, the boot area and the guest DTB do not fit in region 0.
    TooBig {
        needed: u64,
        room: u64,
    },
    Image(ImageProblem),
    Boot(BootAreaError),
    /// An initrd beside an image that is not a Linux bzImage.
    Initrd,
    /// The image looks like a bzImage but cannot be started.
    BzImage(BzImageError),
    /// A bzImage's region 0 is not aligned as the kernel needs (`kernel_alignment`).
    KernelMisaligned {
        alignment: u64,
    },
    /// The hypervisor heap cannot hold the EPT.
    OutOfMemory,
    /// A channel's memory cannot hold its rings.
    Channel(LayoutError),
}

impl core::fmt::Display for LoadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::HashMismatch { what } => write!(f, "its {what} does not match its SHA-256"),
            Self::OutOfBounds { what } => write!(f, "its {what} lies outside the boot image"),
            Self::Unmapped => write!(f, "its memory is outside the hypervisor's map"),
            Self::TooBig { needed, room } => {
                write!(f, "image, boot area and guest DTB need {needed:#x} bytes, region 0 has {room:#x}")
            }
            Self::Image(p) => write!(f, "{p}"),
            Self::Boot(e) => write!(f, "boot area: {e:?}"),
            Self::Initrd => write!(f, "an initrd needs a Linux bzImage as the image"),
            Self::BzImage(e) => write!(f, "its bzImage cannot be started: {e:?}"),
            Self::KernelMisaligned { alignment } => {
                write!(f, "its bzImage must be loaded at a multiple of {alignment:#x}: region 0 is not")
            }
            Self::OutOfMemory => write!(f, "the hypervisor heap is full"),
            Self::Channel(e) => write!(f, "channel layout: {e}"),
        }
    }
}

/// Run-time state of one partition.
pub struct Partition {
    /// The EPT pointer (VMCS field), built once: the memory never changes.
    pub eptp: u64,
    pub console: Mutex<LineBuffer>,
    pub restarts: AtomicU32,
    pub stopped: AtomicBool,
    /// Per vCPU, the events pending for it and not yet injected: doorbells (vector = the
    /// doorbell's INTID), IPIs from its other vCPUs, a PC guest's PIC interrupts (vCPU 0).
    pub pending: Vec<PendingVectors>,
    /// Which vCPU each doorbell goes to (`HYP_INTERRUPT_TARGET`; vCPU 0 until set).
    pub doorbell_targets: DoorbellTargets,
    /// Its I/O bitmaps: its devices' ports pass through, every other port exits.
    pub io_bitmaps: HostPhys,
    /// Its virtual 16550 (`virtual-uart;`), at COM1 in its port space.
    pub vuart: Mutex<VirtualUart16550>,
    /// The power state of each vCPU (PSCI CPU_ON, CPU_OFF, AFFINITY_INFO).
    pub vcpus: Vec<VcpuSlot>,
    /// The run the partition is in: bumped when a run ends (restart or stop), whichever vCPU
    /// ends it; the others leave the guest when they see it change.
    pub generation: AtomicU32,
    /// How the last ended run ended ([`Ending`]).
    ending: AtomicU8,
    /// A PC guest: its image is a Linux bzImage (docs/x86.md, "Linux on x86"). It sees the
    /// legacy BIOS area as zeros, the PIC's interrupts that reach its CPU are injected into it,
    /// and HLT with interrupts masked switches it off.
    pub pc_guest: bool,
    /// A PC guest's master PIC as its (forwarded) writes set it up.
    pub pic: Mutex<MasterPic>,
}

/// How a partition's run ended, for the vCPUs that did not end it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Restart,
    Stop,
}

impl Partition {
    /// Ends the current run as `how`: every start not yet taken is withdrawn and the CPUs of
    /// the partition's other vCPUs (`cpus`, by local APIC ID) are kicked out of the guest.
    pub fn end_run(&self, how: Ending, me: usize, cpus: impl Iterator<Item = u32>) {
        self.ending.store(how as u8, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        for (vcpu, apic) in cpus.enumerate() {
            if vcpu != me {
                self.vcpus[vcpu].cancel_start();
                crate::smp::kick(apic);
            }
        }
    }

    /// How the last ended run ended.
    pub fn ending(&self) -> Ending {
        if self.ending.load(Ordering::Acquire) == Ending::Restart as u8 {
            Ending::Restart
        } else {
            Ending::Stop
        }
    }

    /// Waits until every vCPU but vCPU 0 is off (they leave the guest when the run ends).
    pub fn wait_secondaries_off(&self) {
        while self.vcpus.iter().skip(1).any(|v| v.power() != Power::Off) {
            core::hint::spin_loop();
        }
    }
}

pub struct System {
    pub config: SystemConfig,
    payload: &'static [u8],
    pub partitions: Vec<Partition>,
    /// Partitions that have stopped for good (or never started).
    stopped: AtomicUsize,
    /// Who has the console input (`tantalum_core::console::input::Focus::to_word`).
    pub input_focus: AtomicUsize,
}

static SYSTEM: Once<System> = Once::new();

pub fn get() -> &'static System {
    SYSTEM.get().expect("the system is set up before any CPU runs a partition")
}

/// Builds every partition's EPT (its memory, and its channels with the access the channel
/// layout gives its end), zeroes the channels and publishes the system.
pub fn init(config: SystemConfig, payload: &'static [u8], map_ram: HostRange) -> Result<(), LoadError> {
    for c in &config.channels {
        if !map_ram.contains_range(&c.memory) {
            return Err(LoadError::Unmapped);
        }
        // SAFETY: channel memory is inside the boot map's RAM (checked), belongs to no
        // partition's own memory (config rules), and no endpoint runs yet.
        unsafe { core::ptr::write_bytes(c.memory.start.as_u64() as *mut u8, 0, c.memory.size as usize) };
    }
    let mut partitions = Vec::new();
    for p in &config.partitions {
        let mut tables = HeapTables;
        let ept =
            Stage2::new(&mut tables, ept::GEOMETRY, Mappings::Blocks).map_err(|_| LoadError::OutOfMemory)?;
        let mut mappings: Vec<(u64, u64, u64, MapAttrs)> = Vec::new();
        for r in &p.memory {
            if !map_ram.contains_range(&r.host_range()) {
                return Err(LoadError::Unmapped);
            }
            mappings.push((r.guest.as_u64(), r.host.as_u64(), r.size, MapAttrs::RAM));
        }
        for c in config.channels_of(p.id) {
            let endpoint = c.endpoints.iter().position(|&e| e == p.id).unwrap_or(0);
            let writer = c.writer.and_then(|w| c.endpoints.iter().position(|&e| e == w));
            let layout = channel_layout(c.memory.size, writer).map_err(LoadError::Channel)?;
            let ipa = c.guest_address(p.id).unwrap_or(GuestPhys(c.memory.start.as_u64())).as_u64();
            for (offset, len, writable) in layout.permissions(endpoint) {
                let attrs = MapAttrs { read: true, write: writable, execute: false, device: false };
                mappings.push((ipa + offset, c.memory.start.as_u64() + offset, len, attrs));
            }
        }
        let pc_guest = match p.image.as_ref().map(|b| (b, payload_slice(payload, b))) {
            Some((_, Some(image))) => linux_boot::parse_bzimage(image).is_ok(),
            _ => false,
        };
        if pc_guest {
            // The legacy BIOS area and page 0 read as zeros (one shared read-only page) where
            // the partition has no memory: a PC OS scans them for the BIOS data area, ROMs,
            // SMBIOS and ACPI, and finds nothing. Writes are EPT violations.
            let zero = *ZERO_PAGE.call_once(|| crate::vmx::alloc_pages(1).map(|p| p.as_u64()));
            let zero = zero.ok_or(LoadError::OutOfMemory)?;
            let read_only = MapAttrs { read: true, write: false, execute: false, device: false };
            let legacy = (0xa_0000u64..0x10_0000).step_by(4096);
            for page in core::iter::once(0u64).chain(legacy) {
                if !p.memory.iter().any(|r| r.guest.0 <= page && page - r.guest.0 < r.size) {
                    mappings.push((page, zero, 4096, read_only));
                }
            }
        }
        for (ipa, pa, size, attrs) in mappings {
            ept.map::<EptFormat>(&mut tables, GuestPhys(ipa), HostPhys(pa), size, attrs)
                .map_err(|_| LoadError::OutOfMemory)?;
        }
        let io_bitmaps = crate::vmx::alloc_pages(io_bitmap::SIZE / 4096).ok_or(LoadError::OutOfMemory)?;
        // SAFETY: two fresh heap pages, identity-mapped, that nothing else uses yet.
        let bitmaps = unsafe { &mut *(io_bitmaps.as_u64() as *mut [u8; io_bitmap::SIZE]) };
        let x86 = config.board.x86.as_ref();
        let owned = p.devices.iter().flat_map(|d| x86.map_or(&[][..], |x| x.ports_of(&d.path))).copied();
        io_bitmap::build(bitmaps, owned);
        // The machine's reset registers exit even inside a partition's own ports (0xcf9 is in
        // the PCI configuration ports): owned accesses around them are forwarded on exit
        // (`vcpu::forward_owned_port`), a reset is the partition's `outside-memory` choice.
        for port in io_bitmap::MACHINE_RESET_PORTS {
            io_bitmap::trap(bitmaps, port);
        }
        if pc_guest {
            // A PC guest's master PIC ports exit: the hypervisor forwards and follows them.
            io_bitmap::trap(bitmaps, pic::COMMAND);
            io_bitmap::trap(bitmaps, pic::DATA);
        }
        partitions.push(Partition {
            eptp: ept::eptp(ept.root),
            console: Mutex::new(LineBuffer::new()),
            restarts: AtomicU32::new(0),
            stopped: AtomicBool::new(false),
            pending: p.cpus.iter().map(|_| PendingVectors::new()).collect(),
            doorbell_targets: DoorbellTargets::new(),
            io_bitmaps,
            vuart: Mutex::new(VirtualUart16550::new()),
            vcpus: p.cpus.iter().map(|_| VcpuSlot::new()).collect(),
            generation: AtomicU32::new(0),
            ending: AtomicU8::new(Ending::Stop as u8),
            pc_guest,
            pic: Mutex::new(MasterPic::new()),
        });
    }
    let input_focus = AtomicUsize::new(usize::MAX);
    SYSTEM.call_once(|| System { config, payload, partitions, stopped: AtomicUsize::new(0), input_focus });
    Ok(())
}

/// The shared zero page PC guests see in the legacy BIOS area.
static ZERO_PAGE: Once<Option<u64>> = Once::new();

fn payload_slice(payload: &'static [u8], blob: &Blob) -> Option<&'static [u8]> {
    let start = usize::try_from(blob.offset).ok()?;
    let size = usize::try_from(blob.size).ok()?;
    payload.get(start..start.checked_add(size)?)
}

impl System {
    fn blob(&self, blob: &Blob, what: &'static str) -> Result<&'static [u8], LoadError> {
        payload_slice(self.payload, blob).ok_or(LoadError::OutOfBounds { what })
    }

    /// Where partition `id`'s vCPU 0 starts: a bzImage's 64-bit entry (0x200 into the kernel,
    /// loaded at the start of region 0), otherwise the config's `entry`.
    pub fn entry(&self, id: usize) -> u64 {
        // (the 64-bit entry of the protected-mode kernel: Documentation/arch/x86/boot.rst)
        let p = &self.config.partitions[id];
        match (self.partitions[id].pc_guest, p.memory.first()) {
            (true, Some(region)) => region.guest.0 + linux_boot::ENTRY_64,
            _ => p.entry.0,
        }
    }

    /// Loads partition `id` into its memory: verifies its image and guest DTB, zeroes its
    /// memory, copies them in and builds the boot area. Returns the boot area (the vCPU's
    /// entry state).
    pub fn load(&self, id: usize) -> Result<BootArea, LoadError> {
        let p: &PartitionConfig = &self.config.partitions[id];
        for pending in &self.partitions[id].pending {
            pending.clear();
        }
        self.partitions[id].doorbell_targets.reset();
        *self.partitions[id].vuart.lock() = VirtualUart16550::new();
        *self.partitions[id].pic.lock() = MasterPic::new();
        let image_blob = p.image.as_ref().ok_or(LoadError::OutOfBounds { what: "image" })?;
        let image = self.blob(image_blob, "image")?;
        check_x86_partition_image(image).map_err(LoadError::Image)?;
        let linux = match linux_boot::parse_bzimage(image) {
            Ok(kernel) => Some(kernel),
            Err(BzImageError::NotBzImage) if p.initrd.is_none() => None,
            Err(BzImageError::NotBzImage) => return Err(LoadError::Initrd),
            Err(e) => return Err(LoadError::BzImage(e)),
        };
        let initrd = match &p.initrd {
            Some(b) => Some((self.blob(b, "initrd")?, b.sha256)),
            None => None,
        };
        let dtb = match &p.guest_dtb {
            Some(b) => Some((self.blob(b, "guest DTB")?, b.sha256)),
            None => None,
        };
        let region = p.memory.first().ok_or(LoadError::OutOfBounds { what: "memory" })?;
        // A bzImage: the protected-mode kernel at the start of region 0, room for init_size
        // there, the initrd just below the boot area.
        let (loaded, footprint) = match &linux {
            Some(k) => (k.kernel, k.init_size.max(k.kernel.len() as u64)),
            None => (image, image.len() as u64),
        };
        let initrd_size = initrd.map_or(0, |(b, _)| (b.len() as u64).next_multiple_of(4096));
        let needed = footprint
            .saturating_add(initrd_size)
            .saturating_add(BOOT_AREA_SIZE)
            .saturating_add(GUEST_DTB_RESERVE);
        if needed > region.size {
            return Err(LoadError::TooBig { needed, room: region.size });
        }
        if let Some(k) = &linux {
            if !region.guest.0.is_multiple_of(k.alignment) {
                return Err(LoadError::KernelMisaligned { alignment: k.alignment });
            }
        }
        if let Some((bytes, sha)) = initrd {
            if <[u8; 32]>::from(Sha256::digest(bytes)) != sha {
                return Err(LoadError::HashMismatch { what: "initrd" });
            }
        }
        if <[u8; 32]>::from(Sha256::digest(image)) != image_blob.sha256 {
            return Err(LoadError::HashMismatch { what: "image" });
        }
        if let Some((bytes, sha)) = dtb {
            if <[u8; 32]>::from(Sha256::digest(bytes)) != sha {
                return Err(LoadError::HashMismatch { what: "guest DTB" });
            }
        }
        let dtb_ipa = p.guest_dtb_address().ok_or(LoadError::OutOfBounds { what: "guest DTB" })?;
        let area_ipa = dtb_ipa.0 - BOOT_AREA_SIZE;
        let regions: Vec<(u64, u64)> = p.memory.iter().map(|r| (r.guest.0, r.size)).collect();
        // On the heap from the start: a 32 KiB array would not fit the CPU's stack.
        let mut area = alloc::vec![0u8; BOOT_AREA_SIZE as usize];
        let dtb_len = dtb.map_or(0, |(b, _)| b.len() as u64);
        let boot = linux_boot::build(&mut area, area_ipa, &regions, dtb_len).map_err(LoadError::Boot)?;
        let initrd_ipa = area_ipa - initrd_size;
        if let Some(k) = &linux {
            let cmdline = p.bootargs.as_deref().unwrap_or("").as_bytes();
            let placed = initrd.map(|(b, _)| (initrd_ipa, b.len() as u64));
            linux_boot::set_linux(&mut area, area_ipa, k, cmdline, placed).map_err(LoadError::Boot)?;
        }
        for r in &p.memory {
            // SAFETY: the partition's own memory (checked against the boot map's RAM in `init`),
            // identity-mapped; the partition does not run while it is loaded.
            unsafe { core::ptr::write_bytes(r.host.as_u64() as *mut u8, 0, r.size as usize) };
        }
        let translate = |ipa: u64, len: u64| region.translate(GuestPhys(ipa), len);
        copy_to(region.host, loaded);
        if let Some((bytes, _)) = initrd {
            let to =
                translate(initrd_ipa, bytes.len() as u64).ok_or(LoadError::OutOfBounds { what: "initrd" })?;
            copy_to(to, bytes);
        }
        let area_pa =
            translate(area_ipa, BOOT_AREA_SIZE).ok_or(LoadError::OutOfBounds { what: "boot area" })?;
        copy_to(area_pa, &area[..]);
        if let Some((bytes, _)) = dtb {
            let to = translate(dtb_ipa.0, bytes.len() as u64)
                .ok_or(LoadError::OutOfBounds { what: "guest DTB" })?;
            copy_to(to, bytes);
        }
        Ok(boot)
    }

    /// Partition `id`'s boot area (page tables, GDT, `boot_params`; `load` builds it) in its
    /// guest-physical space: every vCPU enters on its page tables.
    pub fn boot_area(&self, id: usize) -> Option<BootArea> {
        let dtb = self.config.partitions[id].guest_dtb_address()?;
        Some(BootArea { base: dtb.0.checked_sub(BOOT_AREA_SIZE)? })
    }

    /// The local APIC ID of the CPU that runs vCPU `vcpu` of partition `id`.
    pub fn apic_id(&self, id: usize, vcpu: usize) -> Option<u32> {
        let cpu = *self.config.partitions.get(id)?.cpus.get(vcpu)?;
        Some(self.config.board.cpus.get(cpu)?.hwid as u32)
    }

    /// The local APIC IDs of partition `id`'s CPUs, vCPU 0 first.
    pub fn apic_ids(&self, id: usize) -> impl Iterator<Item = u32> + '_ {
        self.config.partitions[id].cpus.iter().map(|&c| self.config.board.cpus[c].hwid as u32)
    }

    /// Records that partition `id` stopped for good; returns whether it was the last one.
    pub fn stop(&self, id: usize) -> bool {
        if self.partitions[id].stopped.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.stopped.fetch_add(1, Ordering::AcqRel) + 1 == self.partitions.len()
    }
}

/// Copies `bytes` to `to`, inside partition memory that `load` zeroed.
fn copy_to(to: HostPhys, bytes: &[u8]) {
    // SAFETY: `to..to + len` lies in the partition's region 0 (checked by the caller's size and
    // translation checks), identity-mapped and not in use by the stopped partition.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), to.as_u64() as *mut u8, bytes.len()) };
}
