//! Where the rings of a channel lie in its region, and which pages each endpoint may write.
//!
//! A pure function of the region's size and the channel's direction: both endpoints, the
//! hypervisor (which builds stage 2 from [`ChannelLayout::permissions`]) and the tests compute
//! the same layout independently, so nothing about it is ever read from shared memory.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;

use crate::addr::PAGE_SIZE;

/// Bytes of a ring's producer page and of its consumer page (one 4 KiB page each).
pub const INDEX_PAGE_SIZE: u64 = PAGE_SIZE;
/// Smallest data area of a ring.
pub const MIN_CAPACITY: u32 = PAGE_SIZE as u32;
/// Largest data area of a ring: indices are free-running `u32` byte counts, so the capacity must
/// divide 2^32 and leave `head - tail` unambiguous.
pub const MAX_CAPACITY: u32 = 1 << 31;
/// Smallest share of a region one ring needs: producer page, consumer page, one data page.
pub const MIN_RING_SIZE: u64 = 2 * INDEX_PAGE_SIZE + MIN_CAPACITY as u64;

/// One single-producer/single-consumer ring inside a channel region. Offsets are from the start
/// of the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Endpoint (0 or 1) that sends on this ring and alone writes its producer page and data.
    pub producer: usize,
    /// Endpoint that receives and alone writes the consumer page.
    pub consumer: usize,
    /// The producer page: `ProducerHeader` (`tantalum_core::channel::ring`), then zeros.
    pub producer_page: u64,
    /// The consumer page: `ConsumerHeader`, then zeros.
    pub consumer_page: u64,
    /// The data area, `capacity` bytes.
    pub data: u64,
    /// Bytes in the data area: a power of two in `MIN_CAPACITY..=MAX_CAPACITY`.
    pub capacity: u32,
    /// Largest payload a message may carry; at most `capacity / 2`. Default `capacity / 4`.
    pub max_message: u32,
}

impl RingLayout {
    /// One past the last byte the ring uses.
    pub const fn end(&self) -> u64 {
        self.data + self.capacity as u64
    }

    /// The same ring with another maximum message size. Both endpoints must use the same value:
    /// the producer writes it into the header and the consumer refuses a header that differs.
    pub fn with_max_message(self, max_message: u32) -> Result<Self, LayoutError> {
        let limit = self.capacity / 2;
        if max_message > limit {
            return Err(LayoutError::MaxMessageTooLarge { max_message, limit });
        }
        Ok(Self { max_message, ..self })
    }
}

/// The rings of one channel region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLayout {
    /// Bytes in the region.
    pub size: u64,
    rings: [RingLayout; 2],
    ring_count: usize,
}

/// Why a region cannot hold a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The size is not a whole number of pages.
    Unaligned { size: u64 },
    /// The region cannot hold its rings (`min` bytes at least).
    TooSmall { size: u64, min: u64 },
    /// A one-way writer that is not endpoint 0 or 1.
    BadWriter { writer: usize },
    /// A maximum message size above `capacity / 2`.
    MaxMessageTooLarge { max_message: u32, limit: u32 },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unaligned { size } => write!(f, "channel size {size:#x} is not a multiple of 4 KiB"),
            Self::TooSmall { size, min } => {
                write!(f, "channel size {size:#x} is too small: the rings need at least {min:#x}")
            }
            Self::BadWriter { writer } => write!(f, "channel writer {writer} is not endpoint 0 or 1"),
            Self::MaxMessageTooLarge { max_message, limit } => {
                write!(
                    f,
                    "maximum message {} is above half the ring ({})",
                    u64::from(max_message),
                    u64::from(limit)
                )
            }
        }
    }
}

/// Lays out a channel region of `size` bytes.
///
/// `one_way_writer: None` makes a duplex channel: ring 0 carries endpoint 0 → endpoint 1 in the
/// first half of the region, ring 1 carries endpoint 1 → endpoint 0 in the second half (each half
/// rounded down to whole pages). `Some(w)` makes a one-way channel: one ring from endpoint `w`
/// over the whole region. Inside its share a ring is: producer page, consumer page, data area of
/// the largest power of two that fits (at most [`MAX_CAPACITY`]). Bytes left over at the end of
/// a share belong to no ring and are read-only for both endpoints.
pub fn channel_layout(size: u64, one_way_writer: Option<usize>) -> Result<ChannelLayout, LayoutError> {
    if !size.is_multiple_of(PAGE_SIZE) {
        return Err(LayoutError::Unaligned { size });
    }
    match one_way_writer {
        Some(writer) if writer > 1 => Err(LayoutError::BadWriter { writer }),
        Some(writer) => {
            if size < MIN_RING_SIZE {
                return Err(LayoutError::TooSmall { size, min: MIN_RING_SIZE });
            }
            let ring = ring_at(0, size, writer);
            Ok(ChannelLayout { size, rings: [ring, ring], ring_count: 1 })
        }
        None => {
            let share = size / 2 / PAGE_SIZE * PAGE_SIZE;
            if share < MIN_RING_SIZE {
                return Err(LayoutError::TooSmall { size, min: 2 * MIN_RING_SIZE });
            }
            let rings = [ring_at(0, share, 0), ring_at(share, share, 1)];
            Ok(ChannelLayout { size, rings, ring_count: 2 })
        }
    }
}

/// A ring from `producer` in the `share` bytes at `base` (`share >= MIN_RING_SIZE`).
fn ring_at(base: u64, share: u64, producer: usize) -> RingLayout {
    let room = (share - 2 * INDEX_PAGE_SIZE).min(u64::from(MAX_CAPACITY));
    // The largest power of two <= room; room >= MIN_CAPACITY, so this fits a u32.
    let capacity = 1u32 << (63 - room.leading_zeros());
    RingLayout {
        producer,
        consumer: 1 - producer,
        producer_page: base,
        consumer_page: base + INDEX_PAGE_SIZE,
        data: base + 2 * INDEX_PAGE_SIZE,
        capacity,
        max_message: capacity / 4,
    }
}

impl ChannelLayout {
    /// The rings: two for a duplex channel (ring `i` sent by endpoint `i`), one for a one-way one.
    pub fn rings(&self) -> &[RingLayout] {
        &self.rings[..self.ring_count]
    }

    /// The ring `endpoint` sends on, if any.
    pub fn tx_ring(&self, endpoint: usize) -> Option<&RingLayout> {
        self.rings().iter().find(|r| r.producer == endpoint)
    }

    /// The ring `endpoint` receives on, if any.
    pub fn rx_ring(&self, endpoint: usize) -> Option<&RingLayout> {
        self.rings().iter().find(|r| r.consumer == endpoint)
    }

    /// Maximum message sizes of every ring set to `max_message` (see
    /// [`RingLayout::with_max_message`]).
    pub fn with_max_message(mut self, max_message: u32) -> Result<Self, LayoutError> {
        for ring in &mut self.rings {
            *ring = ring.with_max_message(max_message)?;
        }
        Ok(self)
    }

    /// The access `endpoint` (0 or 1) needs, as `(offset, len, writable)` ranges that cover the
    /// region exactly, in order, page-aligned, adjacent ranges of equal access merged. An
    /// endpoint writes only the producer page and data of the ring it sends on and the consumer
    /// page of the ring it receives on; everything else is read-only. Any other endpoint index
    /// gets the whole region read-only.
    pub fn permissions(&self, endpoint: usize) -> Vec<(u64, u64, bool)> {
        let mut writable: Vec<(u64, u64)> = Vec::new();
        for ring in self.rings() {
            if ring.producer == endpoint {
                writable.push((ring.producer_page, INDEX_PAGE_SIZE));
                writable.push((ring.data, u64::from(ring.capacity)));
            }
            if ring.consumer == endpoint {
                writable.push((ring.consumer_page, INDEX_PAGE_SIZE));
            }
        }
        crate::sort::sort(&mut writable);
        let mut out: Vec<(u64, u64, bool)> = Vec::new();
        let mut push = |offset: u64, len: u64, write: bool| {
            if len == 0 {
                return;
            }
            match out.last_mut() {
                Some(last) if last.2 == write && last.0 + last.1 == offset => last.1 += len,
                _ => out.push((offset, len, write)),
            }
        };
        let mut at = 0;
        for (offset, len) in writable {
            push(at, offset - at, false);
            push(offset, len, true);
            at = offset + len;
        }
        push(at, self.size - at, false);
        out
    }
}

#[cfg(test)]
mod tests;
