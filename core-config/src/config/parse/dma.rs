//! Board facts about DMA: the IOMMUs the hypervisor drives, every device with MMIO (so the
//! checker knows what shares a page), which devices master DMA and through which streams
//! (`iommus`, `iommu-map`, `tantalum,dma-master`), and PCI host bridges' windows and INTx wiring.

use alloc::string::String;
use alloc::vec::Vec;

use super::tree::{as_string, read_cells, u32_cells};
use super::Parser;
use crate::addr::{HostPhys, HostRange};
use crate::config::dtb_check::be_u32;
use crate::config::error::{ErrorKind, Expected, InterruptProblem};
use crate::config::{
    BoardDevice, Dma, Interrupt, Iommu, PciHost, PciWindow, StreamRange, DMA_MASTER, SMMU_V3,
};

impl Parser<'_, '_> {
    /// Every board node compatible with [`SMMU_V3`], in tree order.
    pub(super) fn iommus(&mut self) -> Vec<Iommu> {
        let tree = self.tree;
        let mut iommus = Vec::new();
        for index in 1..tree.nodes.len() {
            if self.not_device(index).is_some() || !self.is_compatible(index, SMMU_V3) {
                continue;
            }
            let Some(&(base, size)) = self.device_reg(index).first() else {
                continue; // Reported on the node.
            };
            let interrupts = self.interrupts(index, index);
            let names: Vec<&str> = self
                .value(index, "interrupt-names")
                .map(|v| v.split(|&b| b == 0).filter_map(|s| core::str::from_utf8(s).ok()).collect())
                .unwrap_or_default();
            let named =
                |name: &str| names.iter().position(|&n| n == name).and_then(|i| interrupts.get(i).copied());
            iommus.push(Iommu {
                path: self.owned_path(index),
                phandle: tree.phandle_of(index),
                mmio: HostRange::new(HostPhys(base), size),
                event_irq: named("eventq").or_else(|| {
                    if names.is_empty() {
                        interrupts.first().copied()
                    } else {
                        None
                    }
                }),
                gerror_irq: named("gerror"),
            });
        }
        iommus
    }

    /// Every board node with a `reg` that translates to CPU addresses (problems with nodes no
    /// partition takes are not reported: only what a partition takes must be well-formed).
    pub(super) fn board_devices(&mut self) -> Vec<BoardDevice> {
        let mut devices = Vec::new();
        for index in 1..self.tree.nodes.len() {
            if self.not_device(index).is_some() {
                continue;
            }
            let (errors, warnings) = (self.errors.len(), self.warnings.len());
            let regs = self.device_reg(index);
            self.errors.truncate(errors);
            self.warnings.truncate(warnings);
            if !regs.is_empty() {
                let mmio = regs.into_iter().map(|(a, s)| HostRange::new(HostPhys(a), s)).collect();
                devices.push(BoardDevice { path: self.owned_path(index), mmio });
            }
        }
        devices
    }

    /// How board device `target` masters DMA: through the streams its `iommus` / `iommu-map`
    /// give on a board SMMUv3, with nothing in front (`tantalum,dma-master`, or an IOMMU the
    /// hypervisor does not drive), or not at all.
    pub(super) fn dma(&mut self, target: usize, iommus: &[Iommu]) -> Dma {
        let iommu_of = |p: &Self, node: usize| iommus.iter().position(|i| i.path == p.path(node));
        let mut streams = Vec::new();
        let mut foreign = None;
        let mut master = false;
        // `iommus = <&iommu sid>, ...`: the target's `#iommu-cells` (1 for an SMMUv3) per entry.
        if let Some(value) = self.value(target, "iommus") {
            master = true;
            let cells: Vec<u32> = u32_cells(value).collect();
            let mut at = 0;
            while let Some(&phandle) = cells.get(at) {
                let Some(node) = self.resolve(target, "iommus", phandle) else { break };
                let n = self.value(node, "#iommu-cells").and_then(|v| be_u32(v, 0)).unwrap_or(0) as usize;
                match (iommu_of(self, node), n, cells.get(at + 1)) {
                    (Some(i), 1, Some(&sid)) => streams.push((i, StreamRange { first: sid, count: 1 })),
                    _ => foreign = Some(self.owned_path(node)),
                }
                at += 1 + n;
            }
        }
        // `iommu-map = <rid-base &iommu sid-base length>, ...` (PCI host bridges).
        if let Some(value) = self.value(target, "iommu-map") {
            master = true;
            if value.is_empty() || !value.len().is_multiple_of(16) {
                self.malformed(target, "iommu-map", value.len(), Expected::CellGroups(4));
                foreign = Some(String::from(self.path(target)));
            }
            let cells: Vec<u32> = u32_cells(value).collect();
            for entry in cells.chunks_exact(4) {
                let Some(node) = self.resolve(target, "iommu-map", entry[1]) else { continue };
                match iommu_of(self, node) {
                    Some(i) => streams.push((i, StreamRange { first: entry[2], count: entry[3] })),
                    None => foreign = Some(self.owned_path(node)),
                }
            }
        }
        master |= self.value(target, DMA_MASTER).is_some();
        let one_iommu = streams.first().map(|&(i, _)| i).filter(|&i| streams.iter().all(|&(j, _)| j == i));
        match (master, foreign, one_iommu) {
            (false, _, _) => Dma::None,
            (true, None, Some(iommu)) => {
                Dma::Streams { iommu, streams: streams.into_iter().map(|(_, s)| s).collect() }
            }
            (true, foreign, _) => Dma::Unconfined { iommu: foreign },
        }
    }

    /// A PCI host bridge's windows (`ranges`, translated to CPU addresses), bus range and
    /// INTx wiring (`interrupt-map`, which must lead to the board's GIC); `None` for any other
    /// node.
    pub(super) fn pci_host(&mut self, owner: usize, target: usize) -> Option<PciHost> {
        if self.value(target, "device_type").and_then(as_string) != Some("pci") {
            return None;
        }
        let mut host = PciHost::default();
        let cells = |p: &Self, node: usize, name: &str, default: u32| {
            p.value(node, name).and_then(|v| be_u32(v, 0)).unwrap_or(default) as usize
        };
        let (child_ac, child_sc) =
            (cells(self, target, "#address-cells", 3), cells(self, target, "#size-cells", 2));
        let (parent_ac, _) = self.parent_cells(target)?;
        if let Some(v) = self.value(target, "bus-range").filter(|v| v.len() == 8) {
            host.buses = (be_u32(v, 0)?, be_u32(v, 4)?);
        }
        let entry = child_ac + parent_ac + child_sc;
        let ranges = self.value(target, "ranges").unwrap_or_default();
        if child_ac != 3 || !ranges.len().is_multiple_of(entry * 4) {
            self.malformed(target, "ranges", ranges.len(), Expected::CellGroups(entry));
            return None;
        }
        for c in ranges.chunks_exact(entry * 4) {
            let space = be_u32(c, 0)?;
            let pci = read_cells(c, 1, 2)?;
            let parent = read_cells(c, 3, parent_ac)?;
            let size = read_cells(c, 3 + parent_ac, child_sc)?;
            let cpu = self.cpu_address(target, parent, size)?;
            host.windows.push(PciWindow { space, pci, cpu: HostRange::new(HostPhys(cpu), size) });
        }
        if let Some(v) = self.value(target, "interrupt-map-mask").filter(|v| v.len() == 16) {
            for (i, cell) in u32_cells(v).enumerate() {
                host.interrupt_map_mask[i] = cell;
            }
        }
        host.interrupt_map = self.interrupt_map(owner, target)?;
        Some(host)
    }

    /// `interrupt-map` entries of a PCI host bridge: `<unit(3) pin(1) &gic gic-unit(#address-cells
    /// of the GIC) spec(3)>`.
    fn interrupt_map(&mut self, owner: usize, target: usize) -> Option<Vec<([u32; 4], Interrupt)>> {
        let Some(value) = self.value(target, "interrupt-map") else {
            return Some(Vec::new());
        };
        let problem = |p: &mut Self, problem| {
            let kind = ErrorKind::DeviceInterrupts { device: p.owned_path(target), problem };
            p.report(p.path(owner), kind);
            None
        };
        let cells: Vec<u32> = u32_cells(value).collect();
        let mut map = Vec::new();
        let mut at = 0;
        while at < cells.len() {
            let (Some(child), Some(&phandle)) = (cells.get(at..at + 4), cells.get(at + 4)) else {
                return problem(self, InterruptProblem::Malformed { len: value.len() });
            };
            let parent = self.resolve(owner, "interrupt-map", phandle)?;
            if self.gic != Some(parent) {
                return problem(self, InterruptProblem::ParentNotGic { parent: self.owned_path(parent) });
            }
            let unit = self.value(parent, "#address-cells").and_then(|v| be_u32(v, 0)).unwrap_or(0) as usize;
            let Some(spec) = cells.get(at + 5 + unit..at + 8 + unit) else {
                return problem(self, InterruptProblem::Malformed { len: value.len() });
            };
            let child = [child[0], child[1], child[2], child[3]];
            map.push((child, Interrupt { kind: spec[0], number: spec[1], flags: spec[2] }));
            at += 8 + unit;
        }
        Some(map)
    }
}

/// The distinct GIC interrupts a PCI host bridge's INTx lines use.
pub(super) fn intx_interrupts(host: &PciHost) -> Vec<Interrupt> {
    let mut interrupts: Vec<Interrupt> = host.interrupt_map.iter().map(|&(_, i)| i).collect();
    crate::sort::sort(&mut interrupts);
    interrupts.dedup();
    interrupts
}
