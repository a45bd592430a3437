//! `/hypervisor/channels/*` with `compatible = "tantalum,virtio-blk-v1"`: a disk a driver
//! partition serves, one child node per frontend.

use alloc::vec::Vec;

use super::tree::read_cells;
use super::Parser;
use crate::config::dtb_check::be_u32;
use crate::config::error::Expected;
use crate::config::warning::{DISK_FRONTEND_PROPERTIES, VIRTIO_DISK_PROPERTIES};
use crate::config::{DiskFrontendConfig, VirtioDiskConfig};
use crate::virtio::blk::Region;

impl Parser<'_, '_> {
    /// The disk at node `index`, the `id`-th of the system.
    pub(super) fn virtio_disk(&mut self, index: usize, id: usize, partitions: &[usize]) -> VirtioDiskConfig {
        self.check_properties(index, VIRTIO_DISK_PROPERTIES);
        let driver = match self.required(index, "driver") {
            Some(_) => self
                .fixed(index, "driver", Expected::Phandle)
                .and_then(|v| be_u32(v, 0))
                .and_then(|phandle| self.partition_ref(index, "driver", phandle, partitions)),
            None => None,
        };
        let device = match self.required(index, "device") {
            Some(_) => self
                .fixed(index, "device", Expected::Phandle)
                .and_then(|v| be_u32(v, 0))
                .and_then(|phandle| self.resolve(index, "device", phandle))
                .map(|node| self.owned_path(node)),
            None => None,
        };
        let sectors = match self.required(index, "sectors") {
            Some(_) => self.fixed(index, "sectors", Expected::Cells(2)).and_then(|v| read_cells(v, 0, 2)),
            None => None,
        };
        let children: Vec<usize> = self.tree.children(index).collect();
        let frontends = children.into_iter().map(|child| self.disk_frontend(child, partitions)).collect();
        VirtioDiskConfig {
            id,
            name: self.entry(index).map(|e| e.name).unwrap_or_default().into(),
            path: self.owned_path(index),
            driver,
            device,
            sectors: sectors.unwrap_or(0),
            frontends,
        }
    }

    fn disk_frontend(&mut self, index: usize, partitions: &[usize]) -> DiskFrontendConfig {
        self.check_properties(index, DISK_FRONTEND_PROPERTIES);
        self.no_children(index);
        let partition = match self.required(index, "partition") {
            Some(_) => self
                .fixed(index, "partition", Expected::Phandle)
                .and_then(|v| be_u32(v, 0))
                .and_then(|phandle| self.partition_ref(index, "partition", phandle, partitions)),
            None => None,
        };
        let region = match self.required(index, "region") {
            Some(_) => self
                .fixed(index, "region", Expected::Cells(4))
                .and_then(|v| Some(Region { start: read_cells(v, 0, 2)?, sectors: read_cells(v, 2, 2)? })),
            None => None,
        };
        DiskFrontendConfig {
            name: self.entry(index).map(|e| e.name).unwrap_or_default().into(),
            path: self.owned_path(index),
            partition,
            region: region.unwrap_or(Region { start: 0, sectors: 0 }),
        }
    }
}
