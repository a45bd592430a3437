//! Split virtqueues (virtio 1.2 §2.7), walked by the hypervisor on behalf of a device. Every
//! field the driver wrote is hostile: indexes are checked against the queue size, chains are
//! bounded by it, and each buffer is translated through the owner's map before a byte moves.
#![forbid(unsafe_code)]

use core::sync::atomic::{fence, Ordering};

use super::{GuestMemory, Owner};
use crate::addr::HostPhys;

/// `base + offset` inside a range already translated (cannot overflow: `translate` checked the end).
fn at(base: HostPhys, offset: u64) -> HostPhys {
    HostPhys(base.as_u64() + offset)
}

/// Largest queue the devices offer (QueueNumMax).
pub const QUEUE_MAX: u16 = 256;
/// Descriptor flags.
pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;
pub const DESC_F_INDIRECT: u16 = 4;
/// Driver-ring flag: the driver does not want used-buffer interrupts now.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Why a queue can no longer be used: the device reports it (NEEDS_RESET).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// QueueNum is zero, above the maximum, or not a power of two.
    BadSize(u16),
    /// A ring lies (partly) outside the owner's memory or is misaligned.
    BadRing { what: &'static str, addr: u64 },
    /// The driver ring's index ran more than a queue ahead of the device.
    IndexJump { avail: u16, next: u16 },
    /// A descriptor index at or past the queue size.
    BadIndex(u16),
    /// A chain longer than the queue (a loop).
    ChainTooLong,
    /// An indirect descriptor (not negotiated).
    Indirect,
    /// A buffer outside the owner's memory (or overflowing).
    BadBuffer { addr: u64, len: u32 },
    /// A device-writable buffer where a readable one belongs, or the reverse.
    WrongDirection,
    /// A block request without its 16-byte header or its status byte.
    BadRequest,
}

impl core::fmt::Display for QueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            QueueError::BadSize(n) => {
                write!(f, "a queue of {n} entries (not a power of two up to the maximum)")
            }
            QueueError::BadRing { what, addr } => {
                write!(f, "its {what} at guest {addr:#x} is misaligned or outside its memory")
            }
            QueueError::IndexJump { avail, next } => {
                write!(f, "its driver ring's index {avail} ran more than a queue ahead of {next}")
            }
            QueueError::BadIndex(i) => write!(f, "descriptor index {i} is past the queue"),
            QueueError::ChainTooLong => write!(f, "a descriptor chain longer than the queue (a loop)"),
            QueueError::Indirect => write!(f, "an indirect descriptor (not negotiated)"),
            QueueError::BadBuffer { addr, len } => {
                write!(f, "a buffer at guest {addr:#x} ({len} bytes) outside its memory")
            }
            QueueError::WrongDirection => {
                write!(f, "a buffer the device may write where it may only read, or the reverse")
            }
            QueueError::BadRequest => write!(f, "a block request without its header or status byte"),
        }
    }
}

/// A queue the driver made ready: its rings, translated once, and the device's positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    pub num: u16,
    desc: HostPhys,
    avail: HostPhys,
    used: HostPhys,
    /// The next driver-ring entry the device takes.
    next_avail: u16,
    /// The next device-ring entry the device writes.
    next_used: u16,
}

/// One buffer of a chain, translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub pa: HostPhys,
    pub len: u32,
}

/// A chain being walked: the next descriptor and how many were taken.
#[derive(Clone, Copy, Debug)]
pub struct Chain {
    pub head: u16,
    next: Option<u16>,
    taken: u16,
}

impl Chain {
    /// The chain starting at `head` (taken earlier, walked again: every descriptor is checked
    /// again, so a driver that rewrote it meanwhile only confuses its own request).
    pub fn at(head: u16) -> Chain {
        Chain { head, next: Some(head), taken: 0 }
    }
}

impl Ring {
    /// Checks a queue's configuration (guest-physical addresses of its three areas) against the
    /// owner's memory and the alignment rules.
    pub fn new(owner: Owner<'_>, num: u16, desc: u64, avail: u64, used: u64) -> Result<Ring, QueueError> {
        if num == 0 || num > QUEUE_MAX || !num.is_power_of_two() {
            return Err(QueueError::BadSize(num));
        }
        let n = u64::from(num);
        let area = |what, addr: u64, len: u64, align: u64| {
            if !addr.is_multiple_of(align) {
                return Err(QueueError::BadRing { what, addr });
            }
            owner.translate(addr, len).ok_or(QueueError::BadRing { what, addr })
        };
        Ok(Ring {
            num,
            desc: area("descriptor table", desc, 16 * n, 16)?,
            avail: area("driver ring", avail, 6 + 2 * n, 2)?,
            used: area("device ring", used, 6 + 8 * n, 4)?,
            next_avail: 0,
            next_used: 0,
        })
    }

    /// The head of the next available chain, without taking it; `None` if the driver has made
    /// nothing more available.
    pub fn peek(&mut self, mem: &mut dyn GuestMemory) -> Result<Option<Chain>, QueueError> {
        let avail = mem.read_u16(at(self.avail, 2));
        if avail == self.next_avail {
            return Ok(None);
        }
        if avail.wrapping_sub(self.next_avail) > self.num {
            return Err(QueueError::IndexJump { avail, next: self.next_avail });
        }
        // The ring entry is read after the index that published it.
        fence(Ordering::Acquire);
        let slot = u64::from(self.next_avail % self.num);
        let head = mem.read_u16(at(self.avail, 4 + 2 * slot));
        if head >= self.num {
            return Err(QueueError::BadIndex(head));
        }
        Ok(Some(Chain::at(head)))
    }

    /// Takes the chain [`peek`](Self::peek) returned.
    pub fn take(&mut self) {
        self.next_avail = self.next_avail.wrapping_add(1);
    }

    /// The next buffer of `chain`: device-readable ones if `!writable`, device-writable ones
    /// otherwise (a chain has no mixed directions here: virtio-net transmit chains are all
    /// readable, receive chains all writable).
    pub fn next_segment(
        &self,
        owner: Owner<'_>,
        mem: &mut dyn GuestMemory,
        chain: &mut Chain,
        writable: bool,
    ) -> Result<Option<Segment>, QueueError> {
        match self.next_buffer(owner, mem, chain)? {
            Some((_, w)) if w != writable => Err(QueueError::WrongDirection),
            next => Ok(next.map(|(segment, _)| segment)),
        }
    }

    /// The next buffer of `chain`, either direction, and whether it is device-writable (a
    /// virtio-blk request: readable header and data, then writable data and status).
    pub fn next_buffer(
        &self,
        owner: Owner<'_>,
        mem: &mut dyn GuestMemory,
        chain: &mut Chain,
    ) -> Result<Option<(Segment, bool)>, QueueError> {
        let Some(index) = chain.next else { return Ok(None) };
        if index >= self.num {
            return Err(QueueError::BadIndex(index));
        }
        if chain.taken >= self.num {
            return Err(QueueError::ChainTooLong);
        }
        chain.taken += 1;
        let mut d = [0u8; 16];
        mem.read(at(self.desc, 16 * u64::from(index)), &mut d);
        let addr = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let len = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
        let flags = u16::from_le_bytes([d[12], d[13]]);
        let next = u16::from_le_bytes([d[14], d[15]]);
        if flags & DESC_F_INDIRECT != 0 {
            return Err(QueueError::Indirect);
        }
        chain.next = (flags & DESC_F_NEXT != 0).then_some(next);
        let pa = owner.translate(addr, u64::from(len)).ok_or(QueueError::BadBuffer { addr, len })?;
        Ok(Some((Segment { pa, len }, flags & DESC_F_WRITE != 0)))
    }

    /// Returns chain `head` to the driver with `written` bytes written into it.
    pub fn complete(&mut self, mem: &mut dyn GuestMemory, head: u16, written: u32) {
        let slot = u64::from(self.next_used % self.num);
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        elem[4..].copy_from_slice(&written.to_le_bytes());
        mem.write(at(self.used, 4 + 8 * slot), &elem);
        self.next_used = self.next_used.wrapping_add(1);
        // The element is visible before the index that publishes it.
        fence(Ordering::Release);
        mem.write(at(self.used, 2), &self.next_used.to_le_bytes());
    }

    /// Whether the driver wants an interrupt for the chains just completed.
    pub fn wants_interrupt(&self, mem: &mut dyn GuestMemory) -> bool {
        // The device-ring index store is ordered before the flags load (virtio 1.2 §2.7.7.2).
        fence(Ordering::SeqCst);
        mem.read_u16(self.avail) & AVAIL_F_NO_INTERRUPT == 0
    }
}
