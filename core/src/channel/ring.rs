//! The ring: a single-producer/single-consumer queue of variable-length messages in shared
//! memory, and its ABI.
//!
//! # Format (version 1)
//! All fields are `u32`, little-endian (the byte order of every supported architecture).
//! - Producer page, written only by the producer: [`ProducerHeader`] (64 bytes, one cache line).
//! - Consumer page, written only by the consumer: [`ConsumerHeader`] (64 bytes).
//! - Data area, written only by the producer: `capacity` bytes, a power of two.
//!
//! `head` and `tail` are free-running byte counts (they wrap at 2^32, which `capacity` divides);
//! byte `i` of the stream lives at `data + i % capacity`. Both are always multiples of 8, and
//! `head - tail` (wrapping) is the number of bytes in flight, never more than `capacity`. A
//! message is a record: a `u32` length at an 8-aligned position, the payload, then padding to the
//! next multiple of 8 ([`record_size`]). A record may wrap around the end of the data area; the
//! length word never does. Zero-length messages are allowed (an 8-byte record).
//!
//! # Memory ordering
//! - The producer writes the length word and payload, then stores `head` with Release.
//! - The consumer loads `head` with Acquire, reads the record, then stores `tail` with Release.
//! - The producer loads `tail` with Acquire before it reuses the space `tail` freed.
//! - [`Producer::init`] writes the header fields, then `magic` with Release; the consumer loads
//!   `magic` with Acquire before it trusts the other fields.
//!
//! # Trust
//! Each side keeps its own index locally and only ever writes its own page; it reads the peer's
//! index, checks it, and caches the last valid value. Bounds never come from shared memory: the
//! capacity and maximum message size come from the [`RingLayout`] both sides compute, and the
//! header copies are only checked against them (once, at attach). Anything impossible becomes a
//! sticky [`Corruption`]; no value the peer writes makes a side panic or access memory outside
//! the ring.
#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};

use super::error::{AttachError, Corruption, RecvError, SendError};
use super::layout::RingLayout;
use super::shmem::SharedMemory;

/// `magic` of an initialised ring: the bytes `"TaRg"`.
pub const RING_MAGIC: u32 = u32::from_le_bytes(*b"TaRg");
/// `version` of this format.
pub const RING_VERSION: u32 = 1;
/// Alignment of records, `head` and `tail`.
pub const RECORD_ALIGN: u32 = 8;
/// Bytes of a record's length word.
pub const LENGTH_SIZE: u32 = 4;

/// Start of the producer page (offset 0 of the page).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerHeader {
    /// Offset 0: [`RING_MAGIC`] once initialised, 0 before.
    pub magic: u32,
    /// Offset 4: [`RING_VERSION`].
    pub version: u32,
    /// Offset 8: bytes in the data area.
    pub capacity: u32,
    /// Offset 12: largest payload.
    pub max_message: u32,
    /// Offset 16: bytes produced so far (free-running).
    pub head: u32,
    /// Offsets 20..64: zero.
    pub reserved: [u32; 11],
}

/// Start of the consumer page (offset 0 of the page).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerHeader {
    /// Offset 0: bytes consumed so far (free-running).
    pub tail: u32,
    /// Offsets 4..64: zero.
    pub reserved: [u32; 15],
}

const _: () = assert!(size_of::<ProducerHeader>() == 64 && size_of::<ConsumerHeader>() == 64);

/// Offsets of the fields inside their page.
pub const MAGIC_OFFSET: usize = offset_of!(ProducerHeader, magic);
pub const VERSION_OFFSET: usize = offset_of!(ProducerHeader, version);
pub const CAPACITY_OFFSET: usize = offset_of!(ProducerHeader, capacity);
pub const MAX_MESSAGE_OFFSET: usize = offset_of!(ProducerHeader, max_message);
pub const HEAD_OFFSET: usize = offset_of!(ProducerHeader, head);
pub const TAIL_OFFSET: usize = offset_of!(ConsumerHeader, tail);

/// Bytes a record with a `len`-byte payload takes: length word + payload, rounded up to 8.
/// `len` must be at most `u32::MAX - 11`.
pub const fn record_size(len: u32) -> u32 {
    (LENGTH_SIZE + len + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// A ring's offsets inside the shared memory, checked against its length.
#[derive(Debug)]
struct Ring<M> {
    mem: M,
    producer_page: usize,
    consumer_page: usize,
    data: usize,
    capacity: u32,
    max_message: u32,
}

impl<M: SharedMemory> Ring<M> {
    fn new(mem: M, layout: &RingLayout) -> Result<Self, AttachError> {
        let cap = layout.capacity;
        let aligned = |o: u64| o.is_multiple_of(u64::from(RECORD_ALIGN));
        if !cap.is_power_of_two()
            || cap < RECORD_ALIGN
            || layout.max_message > cap / 2
            || ![layout.producer_page, layout.consumer_page, layout.data].into_iter().all(aligned)
        {
            return Err(AttachError::BadLayout);
        }
        let header = size_of::<ProducerHeader>() as u64;
        let fits = |o: u64, n: u64| o.checked_add(n).is_some_and(|end| end <= mem.len() as u64);
        if !fits(layout.producer_page, header)
            || !fits(layout.consumer_page, header)
            || !fits(layout.data, u64::from(cap))
        {
            return Err(AttachError::RegionTooSmall);
        }
        // All three fit below `mem.len()`, a usize.
        Ok(Self {
            mem,
            producer_page: layout.producer_page as usize,
            consumer_page: layout.consumer_page as usize,
            data: layout.data as usize,
            capacity: cap,
            max_message: layout.max_message,
        })
    }

    fn head_at(&self) -> usize {
        self.producer_page + HEAD_OFFSET
    }

    fn tail_at(&self) -> usize {
        self.consumer_page + TAIL_OFFSET
    }

    /// Offset in `mem` of stream byte `index`.
    fn data_at(&self, index: u32) -> usize {
        self.data + (index & (self.capacity - 1)) as usize
    }

    /// Checks the header against the layout; `magic` is loaded with Acquire.
    fn check_header(&self) -> Result<(), Corruption> {
        let field = |offset| self.mem.read_u32(self.producer_page + offset);
        let magic = self.mem.load_u32_acquire(self.producer_page + MAGIC_OFFSET);
        if magic != RING_MAGIC {
            return Err(Corruption::BadMagic { found: magic });
        }
        let version = field(VERSION_OFFSET);
        if version != RING_VERSION {
            return Err(Corruption::BadVersion { found: version });
        }
        let capacity = field(CAPACITY_OFFSET);
        if capacity != self.capacity {
            return Err(Corruption::CapacityMismatch { found: capacity, expected: self.capacity });
        }
        let max = field(MAX_MESSAGE_OFFSET);
        if max != self.max_message {
            return Err(Corruption::MaxMessageMismatch { found: max, expected: self.max_message });
        }
        Ok(())
    }

    /// The `(offset, len)` pieces of the `len` stream bytes from `index`: one, or two when they
    /// wrap around the end of the data area (`len <= capacity`).
    fn pieces(&self, index: u32, len: usize) -> [(usize, usize); 2] {
        let pos = (index & (self.capacity - 1)) as usize;
        let first = len.min(self.capacity as usize - pos);
        [(self.data + pos, first), (self.data, len - first)]
    }
}

/// The sending side of a ring.
#[derive(Debug)]
pub struct Producer<M> {
    ring: Ring<M>,
    /// Bytes produced; the shared `head` is a copy of it.
    head: u32,
    /// The last valid `tail` read from the consumer page.
    tail: u32,
    corrupt: Option<Corruption>,
}

impl<M: SharedMemory> Producer<M> {
    /// Initialises a fresh ring: writes the header with `head = 0`, `magic` last (Release). The
    /// consumer page must be zero (the hypervisor zeroes channel memory at boot).
    pub fn init(mem: M, layout: &RingLayout) -> Result<Self, AttachError> {
        let ring = Ring::new(mem, layout)?;
        let page = ring.producer_page;
        ring.mem.write_u32(page + MAGIC_OFFSET, 0);
        for offset in (VERSION_OFFSET..size_of::<ProducerHeader>()).step_by(4) {
            ring.mem.write_u32(page + offset, 0);
        }
        ring.mem.write_u32(page + VERSION_OFFSET, RING_VERSION);
        ring.mem.write_u32(page + CAPACITY_OFFSET, ring.capacity);
        ring.mem.write_u32(page + MAX_MESSAGE_OFFSET, ring.max_message);
        ring.mem.store_u32_release(page + MAGIC_OFFSET, RING_MAGIC);
        Ok(Self { ring, head: 0, tail: 0, corrupt: None })
    }

    /// Takes over a ring that [`init`](Self::init) already set up (e.g. after the producer's own
    /// restart): checks the header, takes `head` from the producer page and checks `tail`.
    pub fn attach(mem: M, layout: &RingLayout) -> Result<Self, AttachError> {
        let ring = Ring::new(mem, layout)?;
        ring.check_header()?;
        let head = ring.mem.read_u32(ring.head_at());
        if head % RECORD_ALIGN != 0 {
            return Err(Corruption::Misaligned { index: head }.into());
        }
        let tail = ring.mem.load_u32_acquire(ring.tail_at());
        if tail % RECORD_ALIGN != 0 {
            return Err(Corruption::Misaligned { index: tail }.into());
        }
        if head.wrapping_sub(tail) > ring.capacity {
            return Err(Corruption::IndexOutOfRange { head, tail }.into());
        }
        Ok(Self { ring, head, tail, corrupt: None })
    }

    /// [`attach`](Self::attach) if the ring was initialised (a restarted producer carries on after
    /// its last message, which the consumer may still be reading), [`init`](Self::init) if it is
    /// fresh (`magic` 0, as the hypervisor leaves channel memory at boot).
    pub fn open(mem: M, layout: &RingLayout) -> Result<Self, AttachError> {
        let ring = Ring::new(mem, layout)?;
        if ring.mem.read_u32(ring.producer_page + MAGIC_OFFSET) == 0 {
            Self::init(ring.mem, layout)
        } else {
            Self::attach(ring.mem, layout)
        }
    }

    /// Appends `msg` as one message, or reports why not (then nothing was written).
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        if let Some(c) = self.corrupt {
            return Err(SendError::Corrupt(c));
        }
        let max = self.ring.max_message;
        let len = match u32::try_from(msg.len()) {
            Ok(len) if len <= max => len,
            _ => return Err(SendError::TooLarge { len: msg.len(), max }),
        };
        let need = record_size(len);
        if self.free() < need {
            self.refresh_tail().map_err(SendError::Corrupt)?;
            if self.free() < need {
                return Err(SendError::Full);
            }
        }
        let ring = &self.ring;
        ring.mem.write_u32(ring.data_at(self.head), len);
        let [(at0, n0), (at1, n1)] = ring.pieces(self.head.wrapping_add(LENGTH_SIZE), msg.len());
        ring.mem.copy_in(at0, &msg[..n0]);
        ring.mem.copy_in(at1, &msg[n0..n0 + n1]);
        self.head = self.head.wrapping_add(need);
        ring.mem.store_u32_release(ring.head_at(), self.head);
        Ok(())
    }

    /// Whether messages sent are still unconsumed (a hint, e.g. for doorbell logic). False once
    /// corrupt.
    pub fn pending(&self) -> bool {
        self.corrupt.is_none() && self.ring.mem.load_u32_acquire(self.ring.tail_at()) != self.head
    }

    /// The largest payload [`send`](Self::send) accepts.
    pub fn max_message(&self) -> u32 {
        self.ring.max_message
    }

    /// The corruption that killed the ring, if any.
    pub fn corruption(&self) -> Option<Corruption> {
        self.corrupt
    }

    /// Free bytes as far as the cached tail says (invariant: `head - tail <= capacity`).
    fn free(&self) -> u32 {
        self.ring.capacity - self.head.wrapping_sub(self.tail)
    }

    /// Reloads `tail` (Acquire): it must be 8-aligned and lie between the last one and `head`.
    fn refresh_tail(&mut self) -> Result<(), Corruption> {
        let (head, tail) = (self.head, self.ring.mem.load_u32_acquire(self.ring.tail_at()));
        let bad = if tail % RECORD_ALIGN != 0 {
            Corruption::Misaligned { index: tail }
        } else if tail.wrapping_sub(self.tail) > head.wrapping_sub(self.tail) {
            Corruption::IndexOutOfRange { head, tail }
        } else {
            self.tail = tail;
            return Ok(());
        };
        self.corrupt = Some(bad);
        Err(bad)
    }
}

/// The receiving side of a ring.
#[derive(Debug)]
pub struct Consumer<M> {
    ring: Ring<M>,
    /// Bytes consumed; the shared `tail` is a copy of it.
    tail: u32,
    /// The last valid `head` read from the producer page.
    head: u32,
    /// Whether the header has been seen initialised and checked.
    ready: bool,
    corrupt: Option<Corruption>,
}

impl<M: SharedMemory> Consumer<M> {
    /// Sets up the receiving side; the producer may initialise the ring before or after (until
    /// it has, [`try_recv`](Self::try_recv) returns `Empty`). Takes `tail` from the consumer page,
    /// so a restarted consumer carries on where it stopped.
    pub fn attach(mem: M, layout: &RingLayout) -> Result<Self, AttachError> {
        let ring = Ring::new(mem, layout)?;
        let tail = ring.mem.read_u32(ring.tail_at());
        if tail % RECORD_ALIGN != 0 {
            return Err(Corruption::Misaligned { index: tail }.into());
        }
        Ok(Self { ring, tail, head: tail, ready: false, corrupt: None })
    }

    /// Takes the next message into `buf` and returns its length.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        if let Some(c) = self.corrupt {
            return Err(RecvError::Corrupt(c));
        }
        if self.head == self.tail {
            match self.refresh_head() {
                Ok(true) => {}
                Ok(false) => return Err(RecvError::Empty),
                Err(c) => return Err(self.fail(c)),
            }
            if self.head == self.tail {
                return Err(RecvError::Empty);
            }
        }
        let ring = &self.ring;
        let in_flight = self.head.wrapping_sub(self.tail);
        let len = ring.mem.read_u32(ring.data_at(self.tail));
        if len > ring.max_message || record_size(len) > in_flight {
            return Err(self.fail(Corruption::LengthOutOfRange { len }));
        }
        let n = len as usize;
        let Some(dst) = buf.get_mut(..n) else { return Err(RecvError::BufferTooSmall { needed: n }) };
        let [(at0, n0), (at1, n1)] = ring.pieces(self.tail.wrapping_add(LENGTH_SIZE), n);
        ring.mem.copy_out(at0, &mut dst[..n0]);
        ring.mem.copy_out(at1, &mut dst[n0..n0 + n1]);
        self.tail = self.tail.wrapping_add(record_size(len));
        ring.mem.store_u32_release(ring.tail_at(), self.tail);
        Ok(n)
    }

    /// Whether a message seems to be waiting (a hint: `try_recv` decides). False once corrupt.
    pub fn pending(&self) -> bool {
        self.corrupt.is_none() && self.ring.mem.load_u32_acquire(self.ring.head_at()) != self.tail
    }

    /// The largest payload a message can have: a buffer this long never gets `BufferTooSmall`.
    pub fn max_message(&self) -> u32 {
        self.ring.max_message
    }

    /// The corruption that killed the ring, if any.
    pub fn corruption(&self) -> Option<Corruption> {
        self.corrupt
    }

    fn fail(&mut self, c: Corruption) -> RecvError {
        self.corrupt = Some(c);
        RecvError::Corrupt(c)
    }

    /// Reloads `head` (Acquire), checking the header first if not done yet. `Ok(false)` while the
    /// producer has not initialised the ring. A valid head is 8-aligned and lies between the last
    /// one seen and `tail + capacity`.
    fn refresh_head(&mut self) -> Result<bool, Corruption> {
        if !self.ready {
            if self.ring.mem.load_u32_acquire(self.ring.producer_page + MAGIC_OFFSET) == 0 {
                return Ok(false);
            }
            self.ring.check_header()?;
            self.ready = true;
        }
        let (head, tail) = (self.ring.mem.load_u32_acquire(self.ring.head_at()), self.tail);
        if head % RECORD_ALIGN != 0 {
            return Err(Corruption::Misaligned { index: head });
        }
        let in_flight = head.wrapping_sub(tail);
        if in_flight > self.ring.capacity || in_flight < self.head.wrapping_sub(tail) {
            return Err(Corruption::IndexOutOfRange { head, tail });
        }
        self.head = head;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
