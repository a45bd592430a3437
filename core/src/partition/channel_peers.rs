//! Which doorbells each partition's `HYP_CHANNEL_NOTIFY` rings, by the caller's channel number:
//! the answer of the configuration's channels (the caller's n-th channel, each other endpoint of
//! it, the channel's local number there) worked out once at boot, so that the notify fast path
//! ([`super::channel_notify_at_once`]) looks it up instead of walking the channels at each call.
//! The configuration does not change while the system runs (a partition restarts with the same
//! channels), so neither does the table.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::config::{PartitionId, SystemConfig};
use crate::vplatform;

/// One doorbell to ring: interrupt `intid` (the channel's doorbell by its local number there) in
/// partition `peer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Doorbell {
    pub peer: PartitionId,
    pub intid: u32,
}

/// Every partition's channels, by its local channel numbers, and the doorbells each rings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChannelPeers {
    /// Per partition (by id), per channel in its local order: the doorbells it rings.
    partitions: Vec<Vec<Vec<Doorbell>>>,
}

impl ChannelPeers {
    /// The table of `system`'s channels: for each partition and each of its channels (in
    /// [`SystemConfig::endpoint_channels`]'s order, its local numbers), each other endpoint in
    /// the channel's order and the channel's local number there.
    #[cfg_attr(target_os = "none", unsafe(link_section = ".text.boot_only"))]
    pub fn new(system: &SystemConfig) -> Self {
        let mut partitions = Vec::with_capacity(system.partitions.len());
        for index in 0..system.partitions.len() {
            let Ok(id) = PartitionId::try_from(index) else { break };
            let mut channels = Vec::new();
            for c in system.endpoint_channels(id) {
                let mut doorbells = Vec::new();
                for &peer in c.endpoints.iter().filter(|&&e| e != id) {
                    if let Some(local) = system.endpoint_channels(peer).position(|pc| pc.id == c.id) {
                        doorbells.push(Doorbell { peer, intid: vplatform::doorbell_intid(local) });
                    }
                }
                channels.push(doorbells);
            }
            partitions.push(channels);
        }
        Self { partitions }
    }

    /// The channels of partition `id`; `None` if there is no such partition.
    #[inline(always)]
    pub fn of(&self, id: PartitionId) -> Option<Channels<'_>> {
        Some(Channels(self.partitions.get(usize::from(id))?))
    }
}

/// One partition's channels ([`ChannelPeers::of`]).
#[derive(Clone, Copy, Debug)]
pub struct Channels<'a>(&'a [Vec<Doorbell>]);

impl<'a> Channels<'a> {
    /// The doorbells the partition's channel number `channel` rings; `None` if it has no such
    /// channel (any number a guest may pass).
    #[inline(always)]
    pub fn doorbells(self, channel: u64) -> Option<&'a [Doorbell]> {
        Some(self.0.get(usize::try_from(channel).ok()?)?)
    }

    /// How many channels the partition has.
    pub fn len(self) -> usize {
        self.0.len()
    }

    /// Whether the partition has no channel.
    pub fn is_empty(self) -> bool {
        self.0.is_empty()
    }
}
