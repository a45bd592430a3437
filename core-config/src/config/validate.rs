//! The rules a parsed [`SystemConfig`] must obey (numbered as in `docs/config.md`).
//!
//! `validate` runs at the end of the build (with good diagnostics) and again in the hypervisor at
//! boot. It trusts nothing in the config: indices, sizes and sums are all checked, and it reports
//! every violation rather than the first.
//!
//! Rules 1 to 11 are here; `devices` has rule 12 (passed-through devices and their interrupts),
//! `channels` rule 14 (channel memory and endpoints) and `guest` rules 13 and 14's guest side
//! (what each partition sees where: memory, devices, the virtual GIC and UART, channels).

mod channels;
mod devices;
mod disks;
mod dma;
mod guest;
#[cfg(feature = "x86")]
mod x86;

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use super::error::{ConfigError, ErrorKind, GuestSpan, MapWindow, NameProblem};
use super::{
    Blob, MemoryRegion, PartitionConfig, SystemConfig, CONSOLE_UARTS, GUEST_DTB_RESERVE, IPA_LIMIT, MAX_CPUS,
    MAX_NAME_LEN, MAX_PARTITIONS,
};
use crate::addr::{align_up, HostPhys, HostRange, PAGE_SIZE};

/// What is known about the boot image outside the DTB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildFacts {
    /// Host-physical range the loaded boot image plus the hypervisor's bss occupies.
    pub boot_image: Option<HostRange>,
    /// Size of the payload that blob offsets (`tantalum,image`, ...) are relative to.
    pub payload_size: Option<u64>,
    /// What the hypervisor's own (EL2) address map reaches: on aarch64
    /// [`HypervisorMap::for_system`], which the build puts in BootInfo and the boot code maps.
    pub map: Option<HypervisorMap>,
}

/// The host-physical windows the hypervisor's own translation map covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypervisorMap {
    /// Mapped as device memory: the console UART and the GIC must lie here.
    pub devices: HostRange,
    /// Mapped as normal memory: the hypervisor's, every partition's and every channel's memory
    /// must lie here (the hypervisor loads, zeroes and copies it).
    pub ram: HostRange,
}

/// Granule of the aarch64 hypervisor's boot-time identity map: level-1 blocks of 1 GiB.
pub const BOOT_MAP_BLOCK: u64 = 1 << 30;
/// The boot-time map's reach: one level-1 table (39-bit addresses).
pub const BOOT_MAP_LIMIT: u64 = 1 << 39;

impl Default for HypervisorMap {
    /// Maps nothing.
    fn default() -> Self {
        let none = HostRange::new(HostPhys(0), 0);
        HypervisorMap { devices: none, ram: none }
    }
}

impl HypervisorMap {
    /// The aarch64 hypervisor's boot-time identity map for `cfg`'s board, in whole GiB: the RAM
    /// the board describes as normal memory, and the devices the hypervisor itself drives (its
    /// console, the GIC's frames, the SMMUs) as device memory. A GiB holding both is RAM: a
    /// device there is then outside the device window, which the checker reports.
    pub fn for_system(cfg: &super::SystemConfig) -> HypervisorMap {
        let hull = |ranges: &mut dyn Iterator<Item = HostRange>| -> HostRange {
            let (mut lo, mut hi) = (u64::MAX, 0u64);
            for r in ranges.filter(|r| r.size > 0) {
                lo = lo.min(r.start.as_u64());
                hi = hi.max(r.start.as_u64().saturating_add(r.size));
            }
            let lo = lo.min(BOOT_MAP_LIMIT) & !(BOOT_MAP_BLOCK - 1);
            let hi = align_up(hi.min(BOOT_MAP_LIMIT), BOOT_MAP_BLOCK).unwrap_or(BOOT_MAP_LIMIT);
            HostRange::new(HostPhys(lo), hi.saturating_sub(lo))
        };
        let ram = hull(&mut cfg.board.ram.iter().copied());
        let console = cfg.hypervisor.console.iter().map(|c| c.mmio);
        let gic = cfg.board.gic.iter().flat_map(|g| g.hypervisor_frames());
        let smmus = cfg.board.iommus.iter().map(|i| i.mmio);
        let mut devices = hull(&mut console.chain(gic).chain(smmus));
        let (ds, de, rs, re) = (devices.start.as_u64(), devices.end(), ram.start.as_u64(), ram.end());
        if devices.size > 0 && ram.size > 0 && ds < re && rs < de {
            // Device GiBs on either side of the RAM: keep the larger side, the rest is RAM.
            let (below, above) = (rs.saturating_sub(ds), de.saturating_sub(re.max(ds)));
            devices = if below >= above {
                HostRange::new(HostPhys(ds), below)
            } else {
                HostRange::new(HostPhys(re.max(ds)), above)
            };
        }
        HypervisorMap { devices, ram }
    }
}

/// Checks every rule; `Err` holds one error per violation.
pub fn validate(cfg: &SystemConfig, facts: &BuildFacts) -> Result<(), Vec<ConfigError>> {
    let mut v = Checker { cfg, errors: Vec::new() };
    v.counts();
    v.names();
    v.hypervisor_memory(facts);
    v.hypervisor_map(facts);
    for p in &cfg.partitions {
        v.partition_memory(p);
    }
    v.overlaps();
    v.channel_memory();
    v.overcommit();
    v.cpus();
    #[cfg(feature = "x86")]
    v.x86();
    for p in &cfg.partitions {
        v.image_fit(p);
        v.entry(p);
        v.entry_in_image(p);
        v.blobs(p, facts);
        v.console(p);
    }
    v.console_uart();
    v.devices();
    v.dma();
    v.channels();
    v.virtio_links();
    v.virtio_disks();
    v.emulated_windows();
    for p in &cfg.partitions {
        v.emulated_placed(p);
        v.guest_space(p);
    }
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

const HYPERVISOR: &str = "/hypervisor";

struct Checker<'c> {
    cfg: &'c SystemConfig,
    errors: Vec<ConfigError>,
}

/// Whether `range` has a size and does not wrap (the other rules only look at such ranges).
fn usable(range: &HostRange) -> bool {
    range.size > 0 && range.start.0.checked_add(range.size).is_some()
}

fn aligned(value: u64) -> bool {
    value.is_multiple_of(PAGE_SIZE)
}

impl Checker<'_> {
    fn report(&mut self, node: &str, kind: ErrorKind) {
        self.errors.push(ConfigError::new(node, kind));
    }

    /// Rule 1.
    fn counts(&mut self) {
        let (partitions, cpus) = (self.cfg.partitions.len(), self.cfg.board.cpus.len());
        if partitions == 0 {
            self.report(HYPERVISOR, ErrorKind::NoPartitions);
        } else if partitions > MAX_PARTITIONS {
            let kind = ErrorKind::TooManyPartitions { count: partitions, max: MAX_PARTITIONS };
            self.report(HYPERVISOR, kind);
        }
        if cpus > MAX_CPUS {
            self.report("/cpus", ErrorKind::TooManyCpus { count: cpus, max: MAX_CPUS });
        }
        if self.cfg.board.ram.is_empty() {
            self.report("/", ErrorKind::NoRam);
        }
        for (index, p) in self.cfg.partitions.iter().enumerate() {
            if usize::from(p.id) != index {
                self.report(&p.path, ErrorKind::IdMismatch { id: p.id, index });
            }
        }
    }

    /// Rule 2.
    fn names(&mut self) {
        for (index, p) in self.cfg.partitions.iter().enumerate() {
            let problem = if p.name.is_empty() {
                Some(NameProblem::Empty)
            } else if p.name.len() > MAX_NAME_LEN {
                Some(NameProblem::TooLong { max: MAX_NAME_LEN })
            } else {
                let bad = |c: &char| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-');
                p.name.chars().find(bad).map(NameProblem::BadChar)
            };
            if let Some(problem) = problem {
                let kind = ErrorKind::InvalidName { name: p.name.clone(), problem };
                self.report(&p.path, kind);
            }
            let earlier = self.cfg.partitions.iter().take(index);
            if let Some(other) = earlier.into_iter().find(|o| o.name == p.name) {
                let kind = ErrorKind::DuplicateName { name: p.name.clone(), other: other.path.clone() };
                self.report(&p.path, kind);
            }
        }
    }

    /// Size, wrap-around, alignment and RAM containment of one host range (rules 3 and 4).
    fn host_range(&mut self, node: &str, range: HostRange) {
        let (base, size) = (range.start.0, range.size);
        if size == 0 {
            return self.report(node, ErrorKind::EmptyMemory { base });
        }
        if base.checked_add(size).is_none() {
            return self.report(node, ErrorKind::MemoryOverflow { guest: false, base, size });
        }
        if !aligned(base) || !aligned(size) {
            self.report(node, ErrorKind::UnalignedMemory { range });
        }
        let ram = &self.cfg.board.ram;
        if !ram.iter().any(|r| r.contains_range(&range)) {
            self.report(node, ErrorKind::OutsideRam { range, ram: ram.clone() });
        }
    }

    /// Rule 4.
    fn hypervisor_memory(&mut self, facts: &BuildFacts) {
        let memory = self.cfg.hypervisor.memory;
        self.host_range(HYPERVISOR, memory);
        if let Some(boot_image) = facts.boot_image {
            if !memory.contains_range(&boot_image) {
                self.report(HYPERVISOR, ErrorKind::BootImageOutside { boot_image, memory });
            }
        }
    }

    /// Rule 4: everything the hypervisor reaches lies in its own map.
    fn hypervisor_map(&mut self, facts: &BuildFacts) {
        let Some(map) = facts.map else {
            return;
        };
        // Loops, not chains of iterators: their adapters were most of this rule's code.
        let cfg = self.cfg;
        let mut memory = cfg.partition_regions();
        memory.insert(0, (HYPERVISOR, cfg.hypervisor.memory));
        for c in &cfg.channels {
            memory.push((c.path.as_str(), c.memory));
        }
        for (node, range) in memory {
            if usable(&range) && !map.ram.contains_range(&range) {
                self.report(node, ErrorKind::OutsideHypervisorMap { range, map: map.ram });
            }
        }
        if let Some(c) = &cfg.hypervisor.console {
            self.device_in_map(map.devices, MapWindow::Console, &c.path, c.mmio);
        }
        if let Some(g) = &cfg.board.gic {
            self.device_in_map(map.devices, MapWindow::GicDistributor, &g.path, g.distributor);
            let what = if g.v2.is_some() { MapWindow::GicV2Frame } else { MapWindow::GicRedistributors };
            for frame in g.hypervisor_frames().skip(1) {
                self.device_in_map(map.devices, what, &g.path, frame);
            }
        }
    }

    /// Rule 4, for one device the hypervisor drives: `mmio` lies in the map's device window.
    fn device_in_map(&mut self, window: HostRange, what: MapWindow, device: &str, mmio: HostRange) {
        if usable(&mmio) && !window.contains_range(&mmio) {
            let kind =
                ErrorKind::DeviceOutsideHypervisorMap { device: device.to_string(), what, mmio, map: window };
            self.report(device, kind);
        }
    }

    /// Rule 3, for one partition (the pairwise host overlaps are in [`Self::overlaps`]).
    fn partition_memory(&mut self, p: &PartitionConfig) {
        if p.memory.is_empty() {
            self.report(&p.path, ErrorKind::NoMemory);
        }
        let hypervisor = self.cfg.hypervisor.memory;
        for (i, r) in p.memory.iter().enumerate() {
            let range = r.host_range();
            self.host_range(&p.path, range);
            if usable(&range) && usable(&hypervisor) && range.overlaps(&hypervisor) {
                self.report(&p.path, ErrorKind::OverlapsHypervisor { range, hypervisor });
            }
            // Identity-mapped regions: the host checks above already cover alignment and wrap.
            let (guest, size) = (r.guest, r.size);
            let Some(end) = guest.0.checked_add(size) else {
                if guest.0 != r.host.0 {
                    let kind = ErrorKind::MemoryOverflow { guest: true, base: guest.0, size };
                    self.report(&p.path, kind);
                }
                continue;
            };
            if !aligned(guest.0) && guest.0 != r.host.0 {
                self.report(&p.path, ErrorKind::UnalignedGuest { region: i, guest });
            }
            if end > IPA_LIMIT {
                let kind = ErrorKind::AboveIpaLimit { region: i, end, limit: IPA_LIMIT };
                self.report(&p.path, kind);
            }
            let guest_range = HostRange::new(HostPhys(guest.0), size);
            for (j, other) in p.memory.iter().enumerate().skip(i + 1) {
                let identity = guest.0 == r.host.0 && other.guest.0 == other.host.0;
                let other_range = HostRange::new(HostPhys(other.guest.0), other.size);
                if !identity && size > 0 && other.size > 0 && guest_range.overlaps(&other_range) {
                    let kind = ErrorKind::GuestOverlap {
                        region: j,
                        other_region: i,
                        guest: other.guest,
                        other_guest: guest,
                    };
                    self.report(&p.path, kind);
                }
            }
        }
    }

    /// Rule 3: no two partition regions overlap; each pair reported once, on the later region.
    fn overlaps(&mut self) {
        let mut regions = self.cfg.partition_regions();
        regions.retain(|(_, r)| usable(r));
        for (j, &(node, range)) in regions.iter().enumerate() {
            for &(other, other_range) in regions.iter().take(j) {
                self.overlap(node, range, other, other_range);
            }
        }
    }

    /// `Overlap` on `node` if its `range` overlaps `other`'s usable `other_range`.
    fn overlap(&mut self, node: &str, range: HostRange, other: &str, other_range: HostRange) {
        if usable(&other_range) && range.overlaps(&other_range) {
            self.report(node, ErrorKind::Overlap { range, other: other.to_string(), other_range });
        }
    }

    /// Rule 5: partitions, channels and the hypervisor within RAM.
    fn overcommit(&mut self) {
        let cfg = self.cfg;
        let (mut partitions, mut channels, mut ram) = (0u64, 0u64, 0u64);
        for p in &cfg.partitions {
            for r in &p.memory {
                partitions = partitions.saturating_add(r.size);
            }
        }
        for c in &cfg.channels {
            channels = channels.saturating_add(c.memory.size);
        }
        for r in &cfg.board.ram {
            ram = ram.saturating_add(r.size);
        }
        let hypervisor = cfg.hypervisor.memory.size;
        if partitions.saturating_add(channels).saturating_add(hypervisor) > ram {
            self.report(HYPERVISOR, ErrorKind::Overcommit { partitions, channels, hypervisor, ram });
        }
    }

    /// Rule 6 (the phandle checks are done by `parse`, which stores CPU indices).
    fn cpus(&mut self) {
        let cfg = self.cfg;
        let cpus = &cfg.board.cpus;
        let mut owner: Vec<Option<&str>> = vec![None; cpus.len()];
        for p in &cfg.partitions {
            if p.cpus.is_empty() {
                self.report(&p.path, ErrorKind::NoCpus);
            }
            for (i, &cpu) in p.cpus.iter().enumerate() {
                let (Some(slot), Some(board_cpu)) = (owner.get_mut(cpu), cpus.get(cpu)) else {
                    self.report(&p.path, ErrorKind::UnknownCpu { index: cpu, count: cpus.len() });
                    continue;
                };
                let path = board_cpu.path.clone();
                match p.cpus.iter().take(i).filter(|&&c| c == cpu).count() {
                    0 => {}
                    // The second listing is reported; further ones add nothing.
                    1 => {
                        self.report(&p.path, ErrorKind::DuplicateCpu { cpu: path });
                        continue;
                    }
                    _ => continue,
                }
                match slot {
                    Some(other) => {
                        let kind = ErrorKind::CpuTaken { cpu: path, owner: other.to_string() };
                        self.report(&p.path, kind);
                    }
                    None => *slot = Some(p.path.as_str()),
                }
            }
        }
    }

    /// Rule 7: the image at the start of region 0, the guest DTB in its top reserve.
    fn image_fit(&mut self, p: &PartitionConfig) {
        let Some(region) = p.memory.first() else {
            return;
        };
        let initrd = p.initrd_size().map_or(Some(0), |s| align_up(s, PAGE_SIZE));
        if let Some(image) = p.image.map(|b| b.size).or(p.image_size_hint) {
            let need =
                initrd.and_then(|i| image.checked_add(i)).and_then(|n| n.checked_add(GUEST_DTB_RESERVE));
            if need.is_none_or(|need| need > region.size) {
                let kind = match p.initrd_size() {
                    None => ErrorKind::ImageTooBig { image, region: region.size },
                    Some(initrd) => ErrorKind::ImageAndInitrdTooBig { image, initrd, region: region.size },
                };
                self.report(&p.path, kind);
            }
        }
        if let Some(dtb) = p.guest_dtb {
            if dtb.size > GUEST_DTB_RESERVE {
                self.report(&p.path, ErrorKind::GuestDtbTooBig { size: dtb.size });
            }
        }
    }

    /// Rule 8.
    fn entry(&mut self, p: &PartitionConfig) {
        let Some(first) = p.memory.first() else {
            return;
        };
        let entry = p.entry;
        if first.size == 0 && entry == first.guest {
            return; // The default entry of an empty region 0: `EmptyMemory` says it all.
        }
        let inside = |r: &MemoryRegion| entry.0 >= r.guest.0 && entry.0 - r.guest.0 < r.size;
        if !p.memory.iter().any(inside) {
            self.report(&p.path, ErrorKind::EntryOutsideMemory { entry });
        }
    }

    /// Rule 8, with the image known: the vCPU starts on an instruction of the image.
    fn entry_in_image(&mut self, p: &PartitionConfig) {
        let entry = p.entry;
        if !entry.0.is_multiple_of(4) {
            self.report(&p.path, ErrorKind::EntryUnaligned { entry });
        }
        let (Some(first), Some(image)) = (p.memory.first(), p.image) else {
            return;
        };
        let inside_memory = p.memory.iter().any(|r| entry.0 >= r.guest.0 && entry.0 - r.guest.0 < r.size);
        let in_image = entry.0 >= first.guest.0 && entry.0 - first.guest.0 < image.size;
        if inside_memory && !in_image {
            let image = GuestSpan::new(first.guest.0, image.size);
            self.report(&p.path, ErrorKind::EntryOutsideImage { entry, image });
        }
    }

    /// Rule 9.
    fn blobs(&mut self, p: &PartitionConfig, facts: &BuildFacts) {
        let Some(payload) = facts.payload_size else {
            return;
        };
        let blobs: [(&'static str, Option<Blob>); 3] =
            [("tantalum,image", p.image), ("tantalum,guest-dtb", p.guest_dtb), ("tantalum,initrd", p.initrd)];
        for (property, blob) in blobs {
            let Some(Blob { offset, size, .. }) = blob else {
                continue;
            };
            if offset.checked_add(size).is_none_or(|end| end > payload) {
                let kind = ErrorKind::BlobOutOfBounds { property, offset, size, payload };
                self.report(&p.path, kind);
            }
        }
        if p.image.is_none() {
            self.report(&p.path, ErrorKind::ImageNotBuilt);
        }
    }

    /// Rule 11: the hypervisor has a console it can drive.
    fn console_uart(&mut self) {
        let Some(console) = &self.cfg.hypervisor.console else {
            return self.report(HYPERVISOR, ErrorKind::NoConsole);
        };
        // Without the x86 rules, `parse` never gives a board an x86 platform.
        #[cfg(feature = "x86")]
        if let Some(x86) = &self.cfg.board.x86 {
            return self.x86_console(x86, console);
        }
        if !console.compatible.iter().any(|c| CONSOLE_UARTS.contains(&c.as_str())) {
            let kind = ErrorKind::ConsoleNotUart {
                console: console.path.clone(),
                compatible: console.compatible.clone(),
            };
            self.report(HYPERVISOR, kind);
        }
    }

    /// Rule 11.
    fn console(&mut self, p: &PartitionConfig) {
        let Some(console) = &self.cfg.hypervisor.console else {
            return;
        };
        for r in &p.memory {
            let range = r.host_range();
            if usable(&range) && console.mmio.size > 0 && range.overlaps(&console.mmio) {
                let kind = ErrorKind::ConsoleInPartition {
                    console: console.path.clone(),
                    mmio: console.mmio,
                    range,
                };
                self.report(&p.path, kind);
            }
        }
    }
}

#[cfg(test)]
mod tests;
