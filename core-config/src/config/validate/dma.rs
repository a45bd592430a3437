//! Rule 15: DMA. A device that masters DMA goes to a partition only behind an IOMMU stream the
//! hypervisor drives (each stream in one partition), or with the partition's explicit
//! `dma-unconfined`; a passed-through device shares no page with a board device the partition
//! was not given (it would reach that device's registers, and through them its DMA).

use alloc::vec::Vec;

use super::devices::pages;
use super::{usable, Checker};
use crate::config::error::ErrorKind;
use crate::config::{DeviceAssignment, Dma, PartitionConfig};

impl Checker<'_> {
    pub(super) fn dma(&mut self) {
        let cfg = self.cfg;
        for p in &cfg.partitions {
            for d in &p.devices {
                if let Dma::Unconfined { iommu } = &d.dma {
                    if !p.dma_unconfined {
                        let kind = ErrorKind::DmaNotConfined { device: d.path.clone(), iommu: iommu.clone() };
                        self.report(&p.path, kind);
                    }
                }
            }
        }
        self.streams();
        self.unassigned_neighbours();
    }

    /// Each stream of an IOMMU belongs to one partition.
    fn streams(&mut self) {
        let cfg = self.cfg;
        let mut seen: Vec<(&PartitionConfig, &DeviceAssignment)> = Vec::new();
        for p in &cfg.partitions {
            for d in &p.devices {
                let Dma::Streams { iommu, streams } = &d.dma else { continue };
                let clash = seen.iter().find_map(|&(q, e)| {
                    let Dma::Streams { iommu: other_iommu, streams: others } = &e.dma else { return None };
                    if q.id == p.id || other_iommu != iommu {
                        return None;
                    }
                    let s = streams.iter().find(|s| others.iter().any(|o| o.overlaps(s)))?;
                    Some((*s, q, e))
                });
                if let Some((streams, q, e)) = clash {
                    let kind = ErrorKind::StreamTaken {
                        device: d.path.clone(),
                        streams,
                        other: e.path.clone(),
                        owner: q.path.clone(),
                    };
                    self.report(&p.path, kind);
                }
                seen.push((p, d));
            }
        }
    }

    /// No page of a partition's device holds a board device no partition was given. (Pages
    /// shared with another partition's device are `MmioPageShared`; with the GIC, the console or
    /// an IOMMU, the passthrough rules.)
    fn unassigned_neighbours(&mut self) {
        let cfg = self.cfg;
        let assigned = |path: &str| cfg.partitions.iter().flat_map(|p| &p.devices).any(|d| d.path == path);
        let reserved = |path: &str| {
            cfg.board.gic.as_ref().is_some_and(|g| g.path == path)
                || cfg.hypervisor.console.as_ref().is_some_and(|c| c.path == path)
                || cfg.board.iommus.iter().any(|i| i.path == path)
        };
        for p in &cfg.partitions {
            for d in &p.devices {
                let hit = d.mmio.iter().find_map(|&mmio| {
                    let mine = pages(&mmio)?;
                    cfg.board.devices.iter().filter(|b| !assigned(&b.path) && !reserved(&b.path)).find_map(
                        |b| {
                            let other = b.mmio.iter().find(|r| usable(r) && r.overlaps(&mine))?;
                            Some((mmio, b, *other, mine.start.0.max(other.start.0 & !0xfff)))
                        },
                    )
                });
                if let Some((mmio, b, other_mmio, page)) = hit {
                    let kind = ErrorKind::MmioPageUnassigned {
                        device: d.path.clone(),
                        mmio,
                        other: b.path.clone(),
                        other_mmio,
                        page,
                    };
                    self.report(&p.path, kind);
                }
            }
        }
    }
}
