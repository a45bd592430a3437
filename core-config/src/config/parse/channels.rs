//! `/hypervisor/channels`: shared-memory channels between partitions, virtio links and disks.

use alloc::vec::Vec;

use super::tree::{ranges, read_cells, u32_cells};
use super::Parser;
use crate::addr::{GuestPhys, HostPhys, HostRange};
use crate::config::dtb_check::be_u32;
use crate::config::error::{ErrorKind, Expected};
use crate::config::warning::{CHANNELS_PROPERTIES, CHANNEL_PROPERTIES, VIRTIO_LINK_PROPERTIES};
use crate::config::{
    ChannelConfig, PartitionId, VirtioDiskConfig, VirtioKind, VirtioLinkConfig, CHANNEL_COMPATIBLE,
    VIRTIO_BLK_COMPATIBLE, VIRTIO_NET_COMPATIBLE, VIRTIO_VSOCK_COMPATIBLE,
};

impl Parser<'_, '_> {
    /// Every channel and virtio link in the `containers`, in tree order; `partitions` are the
    /// partitions' node indices (a partition's id is its position there).
    pub(super) fn channels(
        &mut self,
        containers: &[usize],
        partitions: &[usize],
    ) -> (Vec<ChannelConfig>, Vec<VirtioLinkConfig>, Vec<VirtioDiskConfig>) {
        let mut channels = Vec::new();
        let mut links = Vec::new();
        let mut disks = Vec::new();
        for &container in containers {
            self.check_properties(container, CHANNELS_PROPERTIES);
            let children: Vec<usize> = self.tree.children(container).collect();
            for index in children {
                if self.is_compatible(index, CHANNEL_COMPATIBLE) {
                    let channel = self.channel(index, channels.len(), partitions);
                    channels.push(channel);
                } else if self.is_compatible(index, VIRTIO_NET_COMPATIBLE) {
                    let link = self.virtio_link(index, links.len(), VirtioKind::Net, partitions);
                    links.push(link);
                } else if self.is_compatible(index, VIRTIO_VSOCK_COMPATIBLE) {
                    let link = self.virtio_link(index, links.len(), VirtioKind::Vsock, partitions);
                    links.push(link);
                } else if self.is_compatible(index, VIRTIO_BLK_COMPATIBLE) {
                    let disk = self.virtio_disk(index, disks.len(), partitions);
                    disks.push(disk);
                } else {
                    let compatible = self.compatible_text(index);
                    self.report(self.path(index), ErrorKind::UnknownChannelNode { compatible });
                }
            }
        }
        (channels, links, disks)
    }

    fn virtio_link(
        &mut self,
        index: usize,
        id: usize,
        kind: VirtioKind,
        partitions: &[usize],
    ) -> VirtioLinkConfig {
        self.check_properties(index, VIRTIO_LINK_PROPERTIES);
        self.no_children(index);
        let mut endpoints = Vec::new();
        if self.required(index, "endpoints").is_some() {
            if let Some(value) = self.list(index, "endpoints", 4, Expected::Phandles) {
                for phandle in u32_cells(value) {
                    endpoints.extend(self.partition_ref(index, "endpoints", phandle, partitions));
                }
            }
        }
        VirtioLinkConfig {
            id,
            kind,
            name: self.entry(index).map(|e| e.name).unwrap_or_default().into(),
            path: self.owned_path(index),
            endpoints,
        }
    }

    fn channel(&mut self, index: usize, id: usize, partitions: &[usize]) -> ChannelConfig {
        self.check_properties(index, CHANNEL_PROPERTIES);
        self.no_children(index);
        let mut endpoints = Vec::new();
        let mut listed = 0;
        if self.required(index, "endpoints").is_some() {
            if let Some(value) = self.list(index, "endpoints", 4, Expected::Phandles) {
                listed = value.len() / 4;
                for phandle in u32_cells(value) {
                    endpoints.extend(self.partition_ref(index, "endpoints", phandle, partitions));
                }
            }
        }
        let memory = match self.required(index, "memory") {
            Some(_) => self.fixed(index, "memory", Expected::Cells(4)).and_then(|v| ranges(v).next()),
            None => None,
        };
        let memory = memory.map_or(HostRange::new(HostPhys(0), 0), |(b, s)| HostRange::new(HostPhys(b), s));
        let mut guest = Vec::new();
        match self.value(index, "guest-addresses") {
            None => guest.resize(endpoints.len(), GuestPhys(memory.start.0)),
            Some(value) if value.len() == listed * 8 => {
                let addresses = value.chunks_exact(8).filter_map(|c| read_cells(c, 0, 2));
                guest.extend(addresses.map(GuestPhys));
            }
            Some(value) => {
                let expected = Expected::AddressPerEndpoint { endpoints: listed };
                self.malformed(index, "guest-addresses", value.len(), expected);
            }
        }
        let writer = self
            .fixed(index, "writer", Expected::Phandle)
            .and_then(|v| be_u32(v, 0))
            .and_then(|phandle| self.partition_ref(index, "writer", phandle, partitions));
        ChannelConfig {
            id,
            name: self.entry(index).map(|e| e.name).unwrap_or_default().into(),
            path: self.owned_path(index),
            endpoints,
            memory,
            guest,
            writer,
        }
    }

    /// The id of the partition a phandle of `property` names, or an error reported.
    pub(super) fn partition_ref(
        &mut self,
        owner: usize,
        property: &'static str,
        phandle: u32,
        partitions: &[usize],
    ) -> Option<PartitionId> {
        let target = self.resolve(owner, property, phandle)?;
        match partitions.iter().position(|&p| p == target) {
            Some(id) => PartitionId::try_from(id).ok(),
            None => {
                let kind = ErrorKind::NotAPartition { property, phandle, target: self.owned_path(target) };
                self.report(self.path(owner), kind);
                None
            }
        }
    }
}
