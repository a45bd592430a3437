//! What can go wrong on a ring: errors are values, and a corrupt ring says what was wrong.
#![forbid(unsafe_code)]

use core::fmt;

/// Something the peer wrote into shared memory that a well-behaved peer never writes. Once an
/// endpoint has seen one, it reports the same `Corruption` on every later call (sticky): the ring
/// is dead until the system resets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// The producer header's magic is not [`RING_MAGIC`](super::ring::RING_MAGIC).
    BadMagic { found: u32 },
    /// The header's version is not [`RING_VERSION`](super::ring::RING_VERSION).
    BadVersion { found: u32 },
    /// The header's capacity differs from the layout's.
    CapacityMismatch { found: u32, expected: u32 },
    /// The header's maximum message size differs from the layout's.
    MaxMessageMismatch { found: u32, expected: u32 },
    /// The indices are impossible: more than `capacity` bytes in flight, or an index moved
    /// backwards (a tail beyond the head, a head behind what was already seen).
    IndexOutOfRange { head: u32, tail: u32 },
    /// A record's length word is above the maximum message size or beyond the bytes published.
    LengthOutOfRange { len: u32 },
    /// An index is not a multiple of 8.
    Misaligned { index: u32 },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadMagic { found } => write!(f, "bad ring magic {found:#010x}"),
            Self::BadVersion { found } => write!(f, "unsupported ring version {found}"),
            Self::CapacityMismatch { found, expected } => {
                write!(f, "ring capacity {found:#x} in the header, {expected:#x} in the layout")
            }
            Self::MaxMessageMismatch { found, expected } => {
                write!(f, "ring maximum message {found} in the header, {expected} in the layout")
            }
            Self::IndexOutOfRange { head, tail } => {
                write!(f, "ring indices out of range: head {head:#x}, tail {tail:#x}")
            }
            Self::LengthOutOfRange { len } => write!(f, "ring record length {len:#x} out of range"),
            Self::Misaligned { index } => write!(f, "ring index {index:#x} is not a multiple of 8"),
        }
    }
}

/// Why [`Producer::send`](super::ring::Producer::send) did not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Not enough free space now (back-pressure); nothing was written. Retry later.
    Full,
    /// The message is longer than the ring's maximum message size; nothing was written.
    TooLarge { len: usize, max: u32 },
    /// The consumer's index is impossible; nothing was written, and the ring stays dead.
    Corrupt(Corruption),
}

/// Why [`Consumer::try_recv`](super::ring::Consumer::try_recv) returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// No message (or the producer has not initialised the ring yet).
    Empty,
    /// The next message has `needed` bytes, more than the buffer; it stays in the ring.
    BufferTooSmall { needed: usize },
    /// The producer's header, index or a length is impossible; the ring stays dead.
    Corrupt(Corruption),
}

/// Why a [`Producer`](super::ring::Producer) or [`Consumer`](super::ring::Consumer) could not be
/// set up over a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// The ring does not fit in the shared memory given.
    RegionTooSmall,
    /// The [`RingLayout`](super::layout::RingLayout) is not one `channel_layout` makes: capacity
    /// not a power of two, offsets not 8-aligned, or maximum message above half the capacity.
    BadLayout,
    /// The ring's header or indices are impossible.
    Corrupt(Corruption),
}

impl From<Corruption> for AttachError {
    fn from(c: Corruption) -> Self {
        Self::Corrupt(c)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("ring full"),
            Self::TooLarge { len, max } => write!(f, "message of {len} bytes exceeds the maximum {max}"),
            Self::Corrupt(c) => write!(f, "corrupt ring: {c}"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("ring empty"),
            Self::BufferTooSmall { needed } => write!(f, "next message needs a {needed}-byte buffer"),
            Self::Corrupt(c) => write!(f, "corrupt ring: {c}"),
        }
    }
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RegionTooSmall => f.write_str("ring does not fit in the shared region"),
            Self::BadLayout => f.write_str("invalid ring layout"),
            Self::Corrupt(c) => write!(f, "corrupt ring: {c}"),
        }
    }
}
