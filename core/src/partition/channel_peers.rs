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

/// A run of a table: `len` entries from `start`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// The run in `table`, empty if it is not there (never: [`ChannelPeers::new`] makes both).
    #[inline(always)]
    fn of<T>(self, table: &[T]) -> &[T] {
        let start = self.start as usize;
        table.get(start..start + self.len as usize).unwrap_or(&[])
    }
}

/// Every partition's channels, by its local channel numbers, and the doorbells each rings.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChannelPeers {
    /// Per partition (by id): its channels' spans in `channels`.
    partitions: Vec<Span>,
    /// Per channel of a partition, in its local order: its doorbells' span in `doorbells`.
    channels: Vec<Span>,
    doorbells: Vec<Doorbell>,
}

impl ChannelPeers {
    /// The table of `system`'s channels: for each partition and each of its channels (in
    /// [`SystemConfig::endpoint_channels`]'s order, its local numbers), each other endpoint in
    /// the channel's order and the channel's local number there.
    pub fn new(system: &SystemConfig) -> Self {
        let mut table = Self::default();
        for index in 0..system.partitions.len() {
            let Ok(id) = PartitionId::try_from(index) else { break };
            let first = table.channels.len();
            for c in system.endpoint_channels(id) {
                let start = table.doorbells.len();
                for &peer in c.endpoints.iter().filter(|&&e| e != id) {
                    if let Some(local) = system.endpoint_channels(peer).position(|pc| pc.id == c.id) {
                        table.doorbells.push(Doorbell { peer, intid: vplatform::doorbell_intid(local) });
                    }
                }
                table.channels.push(span(start, table.doorbells.len()));
            }
            table.partitions.push(span(first, table.channels.len()));
        }
        table
    }

    /// The channels of partition `id`; `None` if there is no such partition.
    #[inline(always)]
    pub fn of(&self, id: PartitionId) -> Option<Channels<'_>> {
        let channels = self.partitions.get(usize::from(id))?.of(&self.channels);
        Some(Channels { channels, doorbells: &self.doorbells })
    }
}

/// The span from `start` to `end` (the tables are far smaller than 4 G entries).
fn span(start: usize, end: usize) -> Span {
    Span { start: start as u32, len: (end - start) as u32 }
}

/// One partition's channels ([`ChannelPeers::of`]).
#[derive(Clone, Copy, Debug)]
pub struct Channels<'a> {
    channels: &'a [Span],
    doorbells: &'a [Doorbell],
}

impl<'a> Channels<'a> {
    /// The doorbells the partition's channel number `channel` rings; `None` if it has no such
    /// channel (any number a guest may pass).
    #[inline(always)]
    pub fn doorbells(self, channel: u64) -> Option<&'a [Doorbell]> {
        let span = self.channels.get(usize::try_from(channel).ok()?)?;
        Some(span.of(self.doorbells))
    }

    /// How many channels the partition has.
    pub fn len(self) -> usize {
        self.channels.len()
    }

    /// Whether the partition has no channel.
    pub fn is_empty(self) -> bool {
        self.channels.is_empty()
    }
}
