//! Rule 14: channels — their memory on the host side and their endpoints. Where each endpoint
//! sees a channel is checked with the rest of its guest space (`guest`).

use alloc::format;
use alloc::string::{String, ToString};

use super::{aligned, usable, Checker};
use crate::channel::layout::{channel_layout, LayoutError};
use crate::config::error::ErrorKind;
use crate::config::{ChannelConfig, PartitionId, VirtioKind, IPA_LIMIT, MAX_CHANNELS_PER_PARTITION};
use crate::virtio::net::MAX_PORTS;
use crate::virtio::MAX_VIRTIO_PER_PARTITION;

impl Checker<'_> {
    /// Channel memory: a usable RAM range that nothing else owns.
    pub(super) fn channel_memory(&mut self) {
        let cfg = self.cfg;
        let partitions = cfg.partition_regions();
        for (k, c) in cfg.channels.iter().enumerate() {
            let range = c.memory;
            self.host_range(&c.path, range);
            if !usable(&range) {
                continue;
            }
            let hypervisor = cfg.hypervisor.memory;
            if usable(&hypervisor) && range.overlaps(&hypervisor) {
                self.report(&c.path, ErrorKind::OverlapsHypervisor { range, hypervisor });
            }
            for &(other, other_range) in &partitions {
                self.overlap(&c.path, range, other, other_range);
            }
            for o in cfg.channels.iter().take(k) {
                self.overlap(&c.path, range, &o.path, o.memory);
            }
        }
    }

    /// A partition's path for messages, or its id if there is no such partition.
    fn partition_name(&self, id: PartitionId) -> String {
        match self.cfg.partitions.get(usize::from(id)) {
            Some(p) => p.path.clone(),
            None => format!("partition id {id}"),
        }
    }

    /// Endpoints, writer, guest addresses, and channels per partition.
    pub(super) fn channels(&mut self) {
        let cfg = self.cfg;
        for (index, c) in cfg.channels.iter().enumerate() {
            if c.id != index {
                self.report(&c.path, ErrorKind::ChannelIdMismatch { id: c.id, index });
            }
            self.endpoints(c);
            if let Some(writer) = c.writer {
                if !c.endpoints.contains(&writer) {
                    let kind = ErrorKind::WriterNotEndpoint { writer: self.partition_name(writer) };
                    self.report(&c.path, kind);
                }
            }
            self.channel_guest(c);
            self.channel_size(c);
        }
        for p in &cfg.partitions {
            let count = cfg.channels_of(p.id).len();
            if count > MAX_CHANNELS_PER_PARTITION {
                let kind = ErrorKind::TooManyChannels { count, max: MAX_CHANNELS_PER_PARTITION };
                self.report(&p.path, kind);
            }
        }
    }

    fn endpoints(&mut self, c: &ChannelConfig) {
        self.two_endpoints(&c.path, &c.endpoints);
    }

    /// Exactly two distinct, existing partitions (a channel's).
    fn two_endpoints(&mut self, path: &str, endpoints: &[PartitionId]) {
        let count = endpoints.len();
        if count != 2 {
            self.report(path, ErrorKind::ChannelEndpointCount { count });
        }
        self.distinct_endpoints(path, endpoints);
    }

    /// Distinct, existing partitions.
    fn distinct_endpoints(&mut self, path: &str, endpoints: &[PartitionId]) {
        let partitions = self.cfg.partitions.len();
        for (i, &id) in endpoints.iter().enumerate() {
            if usize::from(id) >= partitions {
                self.report(path, ErrorKind::UnknownEndpoint { id, count: partitions });
            } else if endpoints.iter().take(i).filter(|&&e| e == id).count() == 1 {
                let kind = ErrorKind::DuplicateEndpoint { partition: self.partition_name(id) };
                self.report(path, kind);
            }
        }
    }

    /// Virtio links: two endpoints each, a bounded number of devices per partition, and at most
    /// one vsock link per partition (its CID is the partition's; a Linux guest drives one
    /// virtio-vsock device).
    pub(super) fn virtio_links(&mut self) {
        let cfg = self.cfg;
        for l in &cfg.virtio {
            // A virtio-net link of more than two is a switch; a vsock link joins two.
            let max = if l.kind == VirtioKind::Net { MAX_PORTS } else { 2 };
            let count = l.endpoints.len();
            if !(2..=max).contains(&count) {
                self.report(&l.path, ErrorKind::LinkEndpointCount { count, kind: l.kind.name(), max });
            }
            self.distinct_endpoints(&l.path, &l.endpoints);
        }
        for p in &cfg.partitions {
            let mut vsock = cfg.virtio_of(p.id).filter(|l| l.kind == VirtioKind::Vsock);
            if let (Some(first), Some(second)) = (vsock.next(), vsock.next()) {
                self.report(
                    &second.path,
                    ErrorKind::SecondVsockLink { partition: p.name.clone(), first: first.path.clone() },
                );
            }
            let count = cfg.virtio_device_count(p.id);
            if count > MAX_VIRTIO_PER_PARTITION {
                self.report(
                    &p.path,
                    ErrorKind::TooManyVirtioDevices { count, max: MAX_VIRTIO_PER_PARTITION },
                );
            }
        }
    }

    /// Room for the rings (only for a channel whose size and endpoints are otherwise right).
    fn channel_size(&mut self, c: &ChannelConfig) {
        let writer = match c.writer {
            None => None,
            Some(w) => match c.endpoints.iter().position(|&e| e == w) {
                Some(endpoint) => Some(endpoint),
                None => return, // `WriterNotEndpoint`.
            },
        };
        if c.endpoints.len() != 2 || !usable(&c.memory) {
            return;
        }
        if let Err(LayoutError::TooSmall { size, min }) = channel_layout(c.memory.size, writer) {
            let kind = ErrorKind::ChannelTooSmall { size, min, one_way: writer.is_some() };
            self.report(&c.path, kind);
        }
    }

    /// Each endpoint's guest address: one per endpoint, aligned, inside the IPA space.
    fn channel_guest(&mut self, c: &ChannelConfig) {
        if c.guest.len() != c.endpoints.len() {
            let kind =
                ErrorKind::ChannelGuestCount { addresses: c.guest.len(), endpoints: c.endpoints.len() };
            self.report(&c.path, kind);
            return;
        }
        for (&id, &guest) in c.endpoints.iter().zip(&c.guest) {
            // An identity address is the host address, whose alignment `host_range` reports.
            if !aligned(guest.0) && guest.0 != c.memory.start.0 {
                let endpoint = self.partition_name(id);
                self.report(&c.path, ErrorKind::ChannelGuestUnaligned { endpoint, guest });
            }
            let end = guest.0.saturating_add(c.memory.size);
            if end > IPA_LIMIT {
                let endpoint = self.partition_name(id).to_string();
                self.report(&c.path, ErrorKind::ChannelAboveIpaLimit { endpoint, end, limit: IPA_LIMIT });
            }
        }
    }
}
