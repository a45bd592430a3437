//! The board: RAM, CPUs and the GIC; and board devices as partitions take them (`devices`,
//! `device-regions`), with their interrupts read as 3-cell GIC specifiers.

use alloc::string::ToString;
use alloc::vec::Vec;

use super::tree::{as_string, read_cells, u32_cells};
use super::Parser;
use crate::addr::{GuestPhys, HostPhys, HostRange};
use crate::config::dtb_check::be_u32;
use crate::config::error::{ErrorKind, Expected, InterruptProblem, NotDevice, RangesProblem};
use crate::config::{Board, Cpu, DeviceAssignment, Gic, GicV2, Interrupt, STAGE2_MAPPINGS};
use crate::stage2::Mappings;
use crate::vplatform::{Emulated, EmulatedPages};

/// `compatible` of the GICv3, which Tantalum virtualises.
const GIC_V3: &str = "arm,gic-v3";
/// `compatible` strings of a GICv2 (with the virtualization extensions: GICH and GICV frames).
const GIC_V2: &[&str] = &["arm,gic-400", "arm,cortex-a15-gic"];

impl Parser<'_, '_> {
    pub(super) fn board(&mut self) -> Board {
        let tree = self.tree;
        let mut board = Board::default();
        for index in tree.children(0) {
            let name = tree.nodes.get(index).map_or("", |e| e.name);
            if name == "memory" || name.starts_with("memory@") {
                let regs = self.reg(index);
                board.ram.extend(regs.into_iter().map(|(a, s)| HostRange::new(HostPhys(a), s)));
            }
        }
        board.gic = self.gic();
        board.stage2_mappings = self.stage2_mappings();
        board.emulated = self.emulated_pages();
        board.iommus = self.iommus();
        board.devices = self.board_devices();
        board.x86 = self.x86_platform();
        let Some(cpus) = tree.child(0, "cpus") else {
            self.report("/cpus", ErrorKind::MissingNode);
            return board;
        };
        for index in tree.children(cpus) {
            let Some(e) = tree.nodes.get(index) else {
                continue;
            };
            let device_type = self.value(index, "device_type").and_then(as_string);
            if device_type == Some("cpu") || e.name.starts_with("cpu@") {
                let hwid = self.reg(index).first().map_or(0, |&(a, _)| a);
                let phandle = tree.phandle_of(index);
                board.cpus.push(Cpu { path: e.path.clone(), phandle, hwid });
            }
        }
        board
    }

    /// The root's `tantalum,stage2-mappings` (absent: blocks).
    fn stage2_mappings(&mut self) -> Mappings {
        let Some(name) = self.string(0, STAGE2_MAPPINGS) else {
            return Mappings::default();
        };
        Mappings::from_name(name).unwrap_or_else(|| {
            self.report("/", ErrorKind::UnknownStage2Mappings { value: name.to_string() });
            Mappings::default()
        })
    }

    /// The root's `tantalum,virtual-uart`, `tantalum,doorbells`, `tantalum,virtio`: where
    /// partitions' emulated pages go (each a 2-cell guest-physical address, like every address
    /// the hypervisor binding takes).
    fn emulated_pages(&mut self) -> EmulatedPages {
        let mut pages = EmulatedPages::default();
        for what in Emulated::ALL {
            if let Some(value) = self.fixed(0, what.property(), Expected::Cells(2)) {
                pages.set(what, GuestPhys(read_cells(value, 0, 2).unwrap_or_default()));
            }
        }
        pages
    }

    /// The first node (in tree order, outside `/hypervisor`) with `interrupt-controller` and a
    /// GICv3 or GICv2 compatible.
    fn gic(&mut self) -> Option<Gic> {
        let tree = self.tree;
        let hypervisor = tree.child(0, "hypervisor");
        let is_gic = |p: &Self, i| p.is_compatible(i, GIC_V3) || GIC_V2.iter().any(|c| p.is_compatible(i, c));
        let index = (1..tree.nodes.len()).find(|&i| {
            hypervisor.is_none_or(|h| !tree.is_within(i, h))
                && self.value(i, "interrupt-controller").is_some()
                && is_gic(self, i)
        })?;
        self.gic = Some(index);
        let v2 = !self.is_compatible(index, GIC_V3);
        let regs: Vec<HostRange> =
            self.device_reg(index).into_iter().map(|(a, s)| HostRange::new(HostPhys(a), s)).collect();
        let gic = |distributor, redistributors, v2| Gic {
            path: self.owned_path(index),
            phandle: tree.phandle_of(index),
            distributor,
            redistributors,
            v2,
        };
        match (v2, regs.as_slice()) {
            (_, []) => None, // The `reg` problem is reported.
            (false, [d, r, ..]) => Some(gic(*d, *r, None)),
            (true, [d, cpu, hyp, vcpu, ..]) => {
                let frames = GicV2 { cpu: *cpu, hyp: *hyp, vcpu: *vcpu };
                Some(gic(*d, HostRange::new(HostPhys(0), 0), Some(frames)))
            }
            (v2, regs) => {
                let kind = ErrorKind::GicReg { version: if v2 { 2 } else { 3 }, entries: regs.len() };
                self.report(self.path(index), kind);
                None
            }
        }
    }

    /// Every `(address, size)` of a board device's `reg`, translated to CPU addresses through
    /// the `ranges` of each bus between it and the root. Empty (and reported on the device) if
    /// any entry cannot be translated.
    pub(super) fn device_reg(&mut self, index: usize) -> Vec<(u64, u64)> {
        if let Some(regs) = self.isa_memory_reg(index) {
            return regs; // An x86 ISA device: its I/O ports are no CPU address.
        }
        let mut regs = self.reg(index);
        for (address, size) in &mut regs {
            match self.cpu_address(index, *address, *size) {
                Some(translated) => *address = translated,
                None => return Vec::new(),
            }
        }
        regs
    }

    /// Translates an address in the space of node `index`'s parent to a CPU address, through
    /// the `ranges` of every bus up to the root; `None` (reported on `index`) if one cannot.
    pub(super) fn cpu_address(&mut self, index: usize, mut address: u64, size: u64) -> Option<u64> {
        let mut node = index;
        while let Some(bus) = self.entry(node).and_then(|e| e.parent).filter(|&b| b != 0 && b < node) {
            match self.translate(bus, address, size) {
                Ok(translated) => address = translated,
                Err(Some(problem)) => {
                    let reg = HostRange::new(HostPhys(address), size);
                    let kind = ErrorKind::RegNotTranslatable { bus: self.owned_path(bus), reg, problem };
                    self.report(self.path(index), kind);
                    return None;
                }
                Err(None) => return None, // A malformed `ranges` or cells, reported.
            }
            node = bus;
        }
        Some(address)
    }

    /// Translates a child address of `bus` into the address space of the bus's parent.
    fn translate(&mut self, bus: usize, address: u64, size: u64) -> Result<u64, Option<RangesProblem>> {
        let Some(value) = self.value(bus, "ranges") else {
            return Err(Some(RangesProblem::NoRanges));
        };
        if value.is_empty() {
            return Ok(address); // `ranges;`: the same addresses on both sides.
        }
        let (child, size_cells) = self.child_cells(bus).ok_or(None)?;
        let (parent, _) = self.parent_cells(bus).ok_or(None)?;
        let entry = (child + parent + size_cells) * 4;
        if !value.len().is_multiple_of(entry) {
            self.malformed(bus, "ranges", value.len(), Expected::CellGroups(child + parent + size_cells));
            return Err(None);
        }
        let entries: Vec<(u64, u64, u64)> = value
            .chunks_exact(entry)
            .filter_map(|c| {
                Some((
                    read_cells(c, 0, child)?,
                    read_cells(c, child, parent)?,
                    read_cells(c, child + parent, size_cells)?,
                ))
            })
            .collect();
        let end = address.checked_add(size).ok_or(None)?;
        for &(from, to, len) in &entries {
            if address >= from && from.checked_add(len).is_some_and(|e| end <= e) {
                return to.checked_add(address - from).ok_or(None);
            }
        }
        let ranges =
            entries.iter().map(|&(from, to, len)| (HostRange::new(HostPhys(from), len), to)).collect();
        Err(Some(RangesProblem::NotCovered { ranges }))
    }

    /// Why node `target` cannot be passed through, if it cannot.
    pub(super) fn not_device(&self, target: usize) -> Option<NotDevice> {
        let tree = self.tree;
        let within = |name| tree.child(0, name).is_some_and(|n| tree.is_within(target, n));
        let device_type = self.value(target, "device_type").and_then(as_string);
        let parent = self.entry(target).and_then(|e| e.parent);
        if target == 0 {
            Some(NotDevice::Root)
        } else if within("hypervisor") {
            Some(NotDevice::Hypervisor)
        } else if within("cpus") {
            Some(NotDevice::Cpu)
        } else if device_type == Some("memory") || (parent == Some(0) && self.name(target) == "memory") {
            Some(NotDevice::Memory)
        } else if self.value(target, "reg").is_none() {
            Some(NotDevice::NoReg)
        } else {
            None
        }
    }

    /// The board device a `devices` / `device-regions` phandle names, with its `reg` entries.
    fn device(
        &mut self,
        owner: usize,
        property: &'static str,
        phandle: u32,
    ) -> Option<(usize, Vec<HostRange>)> {
        let target = self.resolve(owner, property, phandle)?;
        if let Some(reason) = self.not_device(target) {
            let kind = ErrorKind::NotADevice { property, phandle, target: self.owned_path(target), reason };
            self.report(self.path(owner), kind);
            return None;
        }
        let regs = self.device_reg(target);
        // An empty list means a malformed or untranslatable `reg`, reported on the board node.
        (!regs.is_empty() || self.on_isa_bus(target))
            .then(|| (target, regs.into_iter().map(|(a, s)| HostRange::new(HostPhys(a), s)).collect()))
    }

    fn assignment(
        &mut self,
        target: usize,
        mmio: Vec<HostRange>,
        region: Option<u32>,
        board: &Board,
    ) -> DeviceAssignment {
        let compatible = self.compatibles(target).unwrap_or_default();
        DeviceAssignment {
            path: self.owned_path(target),
            mmio,
            interrupts: Vec::new(),
            region,
            compatible: compatible.into_iter().map(ToString::to_string).collect(),
            dma: self.dma(target, &board.iommus),
            pci: None,
        }
    }

    /// A partition's `devices` (whole devices) and `device-regions` (one `reg` entry each).
    pub(super) fn devices(&mut self, owner: usize, board: &Board) -> Vec<DeviceAssignment> {
        let mut devices = Vec::new();
        if let Some(value) = self.list(owner, "devices", 4, Expected::Phandles) {
            for phandle in u32_cells(value) {
                if let Some((target, mmio)) = self.device(owner, "devices", phandle) {
                    let mut d = self.assignment(target, mmio, None, board);
                    d.interrupts = self.interrupts(owner, target);
                    // A PCI host bridge: its windows are MMIO too, its INTx lines its interrupts.
                    if let Some(host) = self.pci_host(owner, target) {
                        d.mmio.extend(host.windows.iter().map(|w| w.cpu));
                        d.interrupts.extend(super::dma::intx_interrupts(&host));
                        d.pci = Some(host);
                    }
                    devices.push(d);
                }
            }
        }
        if let Some(value) = self.list(owner, "device-regions", 8, Expected::PhandleIndexPairs) {
            for pair in value.chunks_exact(8) {
                let (Some(phandle), Some(index)) = (be_u32(pair, 0), be_u32(pair, 4)) else {
                    continue;
                };
                let Some((target, mmio)) = self.device(owner, "device-regions", phandle) else {
                    continue;
                };
                match usize::try_from(index).ok().and_then(|i| mmio.get(i)) {
                    Some(&range) => {
                        let d = self.assignment(target, alloc::vec![range], Some(index), board);
                        devices.push(d);
                    }
                    None => {
                        let device = self.owned_path(target);
                        let kind = ErrorKind::NoSuchRegion { device, index, count: mmio.len() };
                        self.report(self.path(owner), kind);
                    }
                }
            }
        }
        devices
    }

    /// The interrupts of board device `device`, as partition `owner` takes it.
    pub(super) fn interrupts(&mut self, owner: usize, device: usize) -> Vec<Interrupt> {
        let problem = |p: &mut Self, problem| {
            let kind = ErrorKind::DeviceInterrupts { device: p.owned_path(device), problem };
            p.report(p.path(owner), kind);
            Vec::new()
        };
        if self.value(device, "interrupts-extended").is_some() {
            return problem(self, InterruptProblem::Extended);
        }
        let Some(value) = self.value(device, "interrupts") else {
            return Vec::new();
        };
        let Some(parent) = self.interrupt_parent(owner, device) else {
            return Vec::new();
        };
        if self.is_ioapic(parent) {
            return Vec::new(); // x86: IOAPIC lines are not passed through (docs/x86.md).
        }
        if self.gic != Some(parent) {
            return problem(self, InterruptProblem::ParentNotGic { parent: self.owned_path(parent) });
        }
        let cells =
            self.value(parent, "#interrupt-cells").filter(|v| v.len() == 4).and_then(|v| be_u32(v, 0));
        if cells != Some(3) {
            return problem(self, InterruptProblem::Cells { cells });
        }
        if value.is_empty() || !value.len().is_multiple_of(12) {
            return problem(self, InterruptProblem::Malformed { len: value.len() });
        }
        let cells: Vec<u32> = u32_cells(value).collect();
        cells.chunks_exact(3).map(|c| Interrupt { kind: c[0], number: c[1], flags: c[2] }).collect()
    }

    /// The node's own `interrupt-parent`, or the nearest ancestor's.
    fn interrupt_parent(&mut self, owner: usize, device: usize) -> Option<usize> {
        let mut at = Some(device);
        while let Some(index) = at {
            if self.value(index, "interrupt-parent").is_some() {
                let value = self.fixed(index, "interrupt-parent", Expected::Phandle)?;
                return self.resolve(index, "interrupt-parent", be_u32(value, 0)?);
            }
            at = self.entry(index).and_then(|e| e.parent).filter(|&p| p < index);
        }
        let kind = ErrorKind::DeviceInterrupts {
            device: self.owned_path(device),
            problem: InterruptProblem::NoParent,
        };
        self.report(self.path(owner), kind);
        None
    }
}
