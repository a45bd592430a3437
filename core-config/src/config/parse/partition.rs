//! `/hypervisor` and its partitions.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::tree::{ranges, read_cells, u32_cells};
use super::Parser;
use crate::addr::{GuestPhys, HostPhys, HostRange};
use crate::config::dtb_check::be_u32;
use crate::config::error::{ErrorKind, Expected};
use crate::config::warning::{WarningKind, HYPERVISOR_PROPERTIES, PARTITION_PROPERTIES};
use crate::config::{
    Blob, Board, DeviceRef, FaultPolicy, HypervisorConfig, MemoryRegion, OutsideMemory, PartitionConfig,
    PartitionId, HYPERVISOR_COMPATIBLE, PARTITION_COMPATIBLE,
};

/// The children of `/hypervisor`: partitions (with their node indices) and channel containers.
pub(super) type Children = (Vec<PartitionConfig>, Vec<usize>, Vec<usize>);

impl Parser<'_, '_> {
    pub(super) fn hypervisor(&mut self, h: usize) -> Option<HypervisorConfig> {
        self.check_properties(h, HYPERVISOR_PROPERTIES);
        if self.value(h, "compatible").is_none() {
            self.required(h, "compatible");
        } else if !self.is_compatible(h, HYPERVISOR_COMPATIBLE) {
            let found = self.compatible_text(h);
            self.report(self.path(h), ErrorKind::BadCompatible { expected: HYPERVISOR_COMPATIBLE, found });
        }
        let console = self.console(h);
        self.required(h, "memory")?;
        let memory = self.fixed(h, "memory", Expected::Cells(4))?;
        let (base, size) = ranges(memory).next()?;
        let benchmark_pmu = self.fixed(h, "benchmark-pmu", Expected::Empty).is_some();
        if benchmark_pmu {
            self.warn(h, WarningKind::BenchmarkPmu);
        }
        Some(HypervisorConfig { memory: HostRange::new(HostPhys(base), size), console, benchmark_pmu })
    }

    fn console(&mut self, h: usize) -> Option<DeviceRef> {
        let value = self.fixed(h, "console", Expected::Phandle)?;
        let target = self.resolve(h, "console", be_u32(value, 0)?)?;
        // An x86 console is a 16550 on I/O ports: no MMIO.
        let isa = self.on_isa_bus(target).then_some((0, 0));
        let (base, size) = self.device_reg(target).first().copied().or(isa)?;
        // The console's interrupt is optional (it only serves console input): a board that does
        // not describe it usably is not an error.
        let reported = self.errors.len();
        let interrupts = self.interrupts(h, target);
        self.errors.truncate(reported);
        Some(DeviceRef {
            path: self.owned_path(target),
            mmio: HostRange::new(HostPhys(base), size),
            interrupts,
            compatible: self.compatibles(target).unwrap_or_default().into_iter().map(String::from).collect(),
        })
    }

    /// Every child of `/hypervisor`: a partition, a `channels` container, or an error.
    pub(super) fn partitions(&mut self, h: usize, board: &Board) -> Children {
        let (mut partitions, mut nodes, mut containers) = (Vec::new(), Vec::new(), Vec::new());
        let children: Vec<usize> = self.tree.children(h).collect();
        for index in children {
            if self.is_compatible(index, PARTITION_COMPATIBLE) {
                let id = PartitionId::try_from(partitions.len()).unwrap_or(PartitionId::MAX);
                partitions.push(self.partition(index, id, board));
                nodes.push(index);
            } else if self.name(index) == "channels" && self.value(index, "compatible").is_none() {
                containers.push(index);
            } else {
                let compatible = self.compatible_text(index);
                self.report(self.path(index), ErrorKind::UnknownNode { compatible });
            }
        }
        (partitions, nodes, containers)
    }

    /// One partition; problems are reported and replaced by defaults so that parsing goes on.
    fn partition(&mut self, index: usize, id: PartitionId, board: &Board) -> PartitionConfig {
        self.check_properties(index, PARTITION_PROPERTIES);
        self.no_children(index);
        let memory = self.memory(index);
        let image_path = self.string(index, "image").map(String::from);
        let image = self.blob(index, "tantalum,image", "tantalum,image-sha256");
        let guest_dtb = self.blob(index, "tantalum,guest-dtb", "tantalum,guest-dtb-sha256");
        let initrd_path = self.string(index, "initrd").map(String::from);
        let initrd = self.blob(index, "tantalum,initrd", "tantalum,initrd-sha256");
        if image_path.is_none() && self.value(index, "tantalum,image").is_none() {
            self.required(index, "image");
        }
        let entry = match self.fixed(index, "entry", Expected::Cells(2)) {
            Some(v) => GuestPhys(read_cells(v, 0, 2).unwrap_or_default()),
            None => memory.first().map_or(GuestPhys(0), |r| r.guest),
        };
        let on_fault = match self.string(index, "on-fault") {
            None => FaultPolicy::default(),
            Some(name) => FaultPolicy::from_name(name).unwrap_or_else(|| {
                let kind = ErrorKind::UnknownFaultPolicy { value: name.to_string() };
                self.report(self.path(index), kind);
                FaultPolicy::default()
            }),
        };
        let outside_memory = self.string(index, "outside-memory").and_then(|name| {
            let policy = OutsideMemory::from_name(name);
            if policy.is_none() {
                let kind = ErrorKind::UnknownOutsideMemory { value: name.to_string() };
                self.report(self.path(index), kind);
            }
            policy
        });
        let boot_order = self.fixed(index, "boot-order", Expected::Cells(1));
        let devices = self.devices(index, board);
        let dma_unconfined = self.fixed(index, "dma-unconfined", Expected::Empty).is_some();
        if dma_unconfined {
            let devices = crate::config::unconfined_devices_in(&devices).map(|d| d.path.clone()).collect();
            self.warn(index, WarningKind::DmaUnconfined { devices });
        }
        let owns_platform = self.fixed(index, "owns-platform", Expected::Empty).is_some();
        if owns_platform {
            let x86 = board.x86.as_ref();
            let devices = devices.iter().filter(|d| x86.is_some_and(|x| x.is_platform_wide(&d.path)));
            let devices = devices.map(|d| d.path.clone()).collect();
            self.warn(index, WarningKind::OwnsPlatform { devices });
        }
        PartitionConfig {
            id,
            name: self.name(index).to_string(),
            path: self.owned_path(index),
            cpus: self.cpus(index, board),
            memory,
            image_path,
            image,
            guest_dtb,
            image_size_hint: None,
            initrd_path,
            initrd,
            initrd_size_hint: None,
            entry,
            on_fault,
            outside_memory,
            boot_order: boot_order.and_then(|v| be_u32(v, 0)).unwrap_or_default(),
            bootargs: self.string(index, "bootargs").map(String::from),
            devices,
            virtual_uart: self.fixed(index, "virtual-uart", Expected::Empty).is_some(),
            dma_unconfined,
            owns_platform,
        }
    }

    fn cpus(&mut self, index: usize, board: &Board) -> Vec<usize> {
        if self.required(index, "cpus").is_none() {
            return Vec::new();
        }
        let Some(value) = self.list(index, "cpus", 4, Expected::Phandles) else {
            return Vec::new();
        };
        let mut cpus = Vec::new();
        for phandle in u32_cells(value) {
            let Some(target) = self.resolve(index, "cpus", phandle) else {
                continue;
            };
            let target = self.path(target);
            match board.cpus.iter().position(|c| c.path == target) {
                Some(cpu) => cpus.push(cpu),
                None => {
                    let kind = ErrorKind::NotACpu { phandle, target: target.to_string() };
                    self.report(self.path(index), kind);
                }
            }
        }
        cpus
    }

    fn memory(&mut self, index: usize) -> Vec<MemoryRegion> {
        if self.required(index, "memory").is_none() {
            return Vec::new();
        }
        let Some(value) = self.list(index, "memory", 16, Expected::CellGroups(4)) else {
            return Vec::new();
        };
        let mut regions: Vec<MemoryRegion> = ranges(value)
            .map(|(base, size)| MemoryRegion { host: HostPhys(base), guest: GuestPhys(base), size })
            .collect();
        if let Some(guest) = self.value(index, "guest-addresses") {
            if guest.len() != regions.len() * 8 {
                let expected = Expected::AddressPerRegion { regions: regions.len() };
                self.malformed(index, "guest-addresses", guest.len(), expected);
            } else {
                for (region, chunk) in regions.iter_mut().zip(guest.chunks_exact(8)) {
                    region.guest = GuestPhys(read_cells(chunk, 0, 2).unwrap_or_default());
                }
            }
        }
        regions
    }

    /// `offset size` (2 + 2 cells) plus the SHA-256 in its companion property.
    fn blob(&mut self, index: usize, name: &'static str, hash_name: &'static str) -> Option<Blob> {
        let location = self.fixed(index, name, Expected::Cells(4));
        let hash = self.fixed(index, hash_name, Expected::Bytes(32));
        let (has_location, has_hash) =
            (self.value(index, name).is_some(), self.value(index, hash_name).is_some());
        if has_location != has_hash {
            let (present, missing) = if has_location { (name, hash_name) } else { (hash_name, name) };
            self.report(self.path(index), ErrorKind::IncompleteBlob { present, missing });
        }
        let (offset, size) = ranges(location?).next()?;
        Some(Blob { offset, size, sha256: hash?.try_into().ok()? })
    }
}
