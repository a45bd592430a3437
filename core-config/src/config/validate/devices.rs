//! Rule 12: passed-through devices. Stage 2 maps whole pages, so every MMIO comparison with
//! something another party owns is made on the 4 KiB pages the range touches.

use alloc::string::ToString;
use alloc::vec::Vec;
use core::ptr;

use super::{usable, Checker};
use crate::addr::{align_up, HostPhys, HostRange, PAGE_SIZE};
use crate::config::error::{ErrorKind, GuestUse, HostUse};
use crate::config::{DeviceAssignment, Interrupt, PartitionConfig, IPA_LIMIT, VIRTUAL_UART_SPI};
use crate::vplatform::doorbell_spi;

/// The whole pages `range` touches; `None` if it is empty or wraps.
pub(super) fn pages(range: &HostRange) -> Option<HostRange> {
    let end = align_up(range.start.0.checked_add(range.size)?, PAGE_SIZE)?;
    let start = range.start.0 & !(PAGE_SIZE - 1);
    (range.size > 0).then(|| HostRange::new(HostPhys(start), end - start))
}

/// Whether two assignments of the same device claim the same MMIO: a whole device includes
/// every region.
fn same_selection(a: &DeviceAssignment, b: &DeviceAssignment) -> bool {
    a.path == b.path && (a.region.is_none() || b.region.is_none() || a.region == b.region)
}

type Assigned<'c> = (&'c PartitionConfig, &'c DeviceAssignment);

impl<'c> Checker<'c> {
    pub(super) fn devices(&mut self) {
        let cfg = self.cfg;
        // The GIC and the console are reported once and not looked at further.
        let mut devices: Vec<Assigned<'c>> = Vec::new();
        for p in &cfg.partitions {
            for d in &p.devices {
                if !self.reserved_device(p, d) {
                    devices.push((p, d));
                }
            }
        }
        for (k, &(p, d)) in devices.iter().enumerate() {
            let earlier = devices.get(..k).unwrap_or_default();
            self.device_mmio(p, d);
            self.device_owner(p, d, earlier);
            self.page_sharing(p, d, earlier);
            self.device_interrupts(p, d, earlier);
        }
    }

    /// The interrupt controller and the hypervisor's console stay the hypervisor's.
    fn reserved_device(&mut self, p: &PartitionConfig, d: &DeviceAssignment) -> bool {
        let touches = |r: &HostRange| d.mmio.iter().filter_map(pages).any(|m| usable(r) && m.overlaps(r));
        if let Some(gic) = &self.cfg.board.gic {
            if d.path == gic.path || gic.frames().any(|f| touches(&f)) {
                let kind = ErrorKind::GicPassthrough { device: d.path.clone(), gic: gic.path.clone() };
                self.report(&p.path, kind);
                return true;
            }
        }
        if let Some(iommu) = self.cfg.board.iommus.iter().find(|i| d.path == i.path || touches(&i.mmio)) {
            let kind = ErrorKind::IommuPassthrough { device: d.path.clone(), iommu: iommu.path.clone() };
            self.report(&p.path, kind);
            return true;
        }
        if let Some(console) = &self.cfg.hypervisor.console {
            if d.path == console.path || touches(&console.mmio) {
                let kind =
                    ErrorKind::ConsolePassthrough { device: d.path.clone(), console: console.path.clone() };
                self.report(&p.path, kind);
                return true;
            }
        }
        false
    }

    /// Each MMIO range: sane, inside the IPA space, and clear of memory.
    fn device_mmio(&mut self, p: &PartitionConfig, d: &DeviceAssignment) {
        for &mmio in &d.mmio {
            let Some(page_range) = pages(&mmio) else {
                let kind = ErrorKind::DeviceMmioInvalid {
                    device: d.path.clone(),
                    base: mmio.start.0,
                    size: mmio.size,
                };
                self.report(&p.path, kind);
                continue;
            };
            if page_range.end() > IPA_LIMIT {
                let kind = ErrorKind::DeviceAboveIpaLimit {
                    device: d.path.clone(),
                    end: mmio.end(),
                    limit: IPA_LIMIT,
                };
                self.report(&p.path, kind);
            }
            if let Some((with, range)) = self.memory_over(&page_range) {
                let kind = ErrorKind::DeviceMmioOverlap { device: d.path.clone(), mmio, with, range };
                self.report(&p.path, kind);
            }
        }
    }

    /// The first memory that overlaps `pages`: a partition's, a channel's, the hypervisor's, then
    /// any RAM (loops, not a chain of iterators: their adapters were most of this rule's code).
    fn memory_over(&self, pages: &HostRange) -> Option<(HostUse, HostRange)> {
        let cfg = self.cfg;
        let hits = |r: &HostRange| usable(r) && r.overlaps(pages);
        for q in &cfg.partitions {
            for r in &q.memory {
                let range = r.host_range();
                if hits(&range) {
                    return Some((HostUse::Partition { path: q.path.clone() }, range));
                }
            }
        }
        for c in &cfg.channels {
            if hits(&c.memory) {
                return Some((HostUse::Channel { path: c.path.clone() }, c.memory));
            }
        }
        let hypervisor = cfg.hypervisor.memory;
        if hits(&hypervisor) {
            return Some((HostUse::Hypervisor, hypervisor));
        }
        cfg.board.ram.iter().find(|r| hits(r)).map(|&r| (HostUse::Ram, r))
    }

    /// A device, or a region of it, belongs to one partition and is listed there once.
    fn device_owner(&mut self, p: &PartitionConfig, d: &DeviceAssignment, earlier: &[Assigned<'_>]) {
        let Some(&(q, e)) = earlier.iter().find(|(_, e)| same_selection(d, e)) else {
            return;
        };
        let kind = if ptr::eq(p, q) {
            ErrorKind::DuplicateDevice { device: d.path.clone(), region: d.region }
        } else {
            ErrorKind::DeviceTaken {
                device: d.path.clone(),
                region: d.region,
                owner: q.path.clone(),
                owner_region: e.region,
            }
        };
        self.report(&p.path, kind);
    }

    /// Devices of different partitions never share a page.
    fn page_sharing(&mut self, p: &PartitionConfig, d: &DeviceAssignment, earlier: &[Assigned<'_>]) {
        for &(q, e) in earlier {
            if ptr::eq(p, q) || same_selection(d, e) {
                continue; // Same partition, or already reported as `DeviceTaken`.
            }
            let shared = d.mmio.iter().find_map(|&mmio| {
                let mine = pages(&mmio)?;
                e.mmio.iter().find_map(|&other_mmio| {
                    let theirs = pages(&other_mmio)?;
                    mine.overlaps(&theirs).then_some((mmio, other_mmio, mine.start.0.max(theirs.start.0)))
                })
            });
            if let Some((mmio, other_mmio, page)) = shared {
                let kind = ErrorKind::MmioPageShared {
                    device: d.path.clone(),
                    mmio,
                    other: e.path.clone(),
                    other_mmio,
                    owner: q.path.clone(),
                    page,
                };
                self.report(&p.path, kind);
            }
        }
    }

    /// SPIs only, each in one partition, none that the partition's virtual devices use.
    fn device_interrupts(&mut self, p: &PartitionConfig, d: &DeviceAssignment, earlier: &[Assigned<'_>]) {
        let device = || d.path.clone();
        for &interrupt in &d.interrupts {
            if !interrupt.is_valid() {
                self.report(&p.path, ErrorKind::UnsupportedInterrupt { device: device(), interrupt });
                continue;
            }
            let spi = interrupt.number;
            if interrupt.kind == Interrupt::PPI {
                self.report(&p.path, ErrorKind::PpiPassthrough { device: device(), ppi: spi });
                continue;
            }
            let max = crate::vgic::MAX_INTID - crate::vgic::SPI_BASE - 1;
            if spi > max {
                self.report(&p.path, ErrorKind::SpiBeyondVirtualGic { device: device(), spi, max });
            }
            let is_spi = |i: &Interrupt| i.kind == Interrupt::SPI && i.number == spi;
            let taken = earlier
                .iter()
                .find(|&&(q, e)| !ptr::eq(p, q) && !same_selection(d, e) && e.interrupts.iter().any(is_spi));
            if let Some(&(q, e)) = taken {
                let kind = ErrorKind::InterruptTaken {
                    device: device(),
                    spi,
                    other: e.path.clone(),
                    owner: q.path.clone(),
                };
                self.report(&p.path, kind);
            }
            if p.virtual_uart && spi == VIRTUAL_UART_SPI {
                let kind = ErrorKind::SpiReserved { device: device(), spi, by: GuestUse::VirtualUart };
                self.report(&p.path, kind);
            }
            let channels = self.cfg.channels_of(p.id);
            if let Some(c) = channels.iter().enumerate().find(|&(local, _)| doorbell_spi(local) == spi) {
                let by = GuestUse::Channel { path: c.1.path.to_string() };
                self.report(&p.path, ErrorKind::SpiReserved { device: device(), spi, by });
            }
        }
    }
}
