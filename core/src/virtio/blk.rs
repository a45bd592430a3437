//! A disk served by a driver partition (docs/virtio.md, "Block"). Each frontend partition has a
//! virtio-blk device over its own region of the disk; the driver partition, which owns the
//! physical disk, takes requests through its backend page and completes them. The hypervisor
//! walks the frontends' queues, checks each request against the frontend's region, rewrites its
//! sector into a disk sector and moves the data between the frontend's buffers and a buffer area
//! the driver named: the driver sees only in-region sectors and never a frontend's addresses.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::mmio::{reg, Effect, Transport, DEVICE_BLK, F_VERSION_1, INT_USED_BUFFER};
use super::queue::{Chain, QueueError, Ring, Segment};
use super::{GuestMemory, Owner};
use crate::addr::HostPhys;

/// Bytes of a sector: the unit of `sector` in a request and of a region.
pub const SECTOR: u64 = 512;
/// The device's only queue.
pub const REQUESTQ: usize = 0;
/// Feature bits (virtio 1.2 §5.2.3).
pub const BLK_F_SIZE_MAX: u64 = 1 << 1;
pub const BLK_F_SEG_MAX: u64 = 1 << 2;
pub const BLK_F_FLUSH: u64 = 1 << 9;
/// Largest data buffer (`size_max`) and most data buffers (`seg_max`) of one request: together
/// the largest request, which the driver's buffer area should hold ([`MAX_DATA`]).
pub const SIZE_MAX: u32 = 4096;
pub const SEG_MAX: u32 = 32;
pub const MAX_DATA: u32 = SIZE_MAX * SEG_MAX;
/// Request types (`virtio_blk_req.type`).
pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
/// Request status (the last byte of a request).
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;
/// Bytes of a request's header (type, reserved, sector).
const HDR: u64 = 16;
pub use tantalum_config::virtio::blk::{Region, MAX_FRONTENDS};

/// The backend page of the driver partition: Tantalum's own register layout (not virtio), one
/// 4 KiB trapped page like a virtio device's. All registers are 32-bit.
pub mod backend_reg {
    /// [`super::BACKEND_MAGIC`].
    pub const MAGIC: u64 = 0x00;
    pub const VERSION: u64 = 0x04;
    /// How many frontends the disk has.
    pub const FRONTENDS: u64 = 0x08;
    /// Guest address and length of the driver's buffer area (its own memory).
    pub const BUFFER_LOW: u64 = 0x10;
    pub const BUFFER_HIGH: u64 = 0x14;
    pub const BUFFER_LEN: u64 = 0x18;
    /// Load: takes the next request ([`super::FETCH_REQUEST`]) or says why there is none.
    pub const FETCH: u64 = 0x20;
    /// The request taken: frontend, type, bytes of data, disk sector.
    pub const FRONTEND: u64 = 0x24;
    pub const TYPE: u64 = 0x28;
    pub const LEN: u64 = 0x2c;
    pub const SECTOR_LOW: u64 = 0x30;
    pub const SECTOR_HIGH: u64 = 0x34;
    /// Sectors of the disk, as the system description declares it.
    pub const CAPACITY_LOW: u64 = 0x38;
    pub const CAPACITY_HIGH: u64 = 0x3c;
    /// Store: completes the request taken with a status ([`super::S_OK`], ...).
    pub const COMPLETE: u64 = 0x40;
    /// Bit `n` set while frontend `n`'s driver runs its device (DRIVER_OK, no error): a driver
    /// partition can tell when nobody uses the disk any more.
    pub const LIVE: u64 = 0x44;
}

/// "TNbk", little-endian.
pub const BACKEND_MAGIC: u32 = u32::from_le_bytes(*b"TNbk");
/// FETCH values.
pub const FETCH_NONE: u32 = 0;
pub const FETCH_REQUEST: u32 = 1;
pub const FETCH_NO_BUFFER: u32 = 2;

/// A request given to the driver, until it completes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub frontend: usize,
    pub kind: u32,
    /// Disk sector (the frontend's, moved into its region).
    pub sector: u64,
    /// Bytes of data: written into the buffer area (OUT), expected there (IN).
    pub len: u32,
    head: u16,
    /// The frontend's device incarnation the request came from.
    epoch: u32,
}

/// One frontend's device and its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    pub device: Transport,
    pub region: Region,
    /// Bumped whenever the device or its queue is reset: a completion for an older request is
    /// dropped (its chain belongs to a queue that no longer exists).
    epoch: u32,
    /// Requests given to the driver, and refused by the hypervisor (outside the region,
    /// larger than the driver's buffer, not a multiple of a sector).
    pub forwarded: u64,
    pub refused: u64,
}

/// What the caller must do after an access: the value read, and which interrupts to raise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub value: u64,
    /// Frontends (bit `n`: frontend `n`) whose device interrupt to raise.
    pub frontends: u32,
    /// Raise the backend page's interrupt (a frontend made requests available).
    pub backend: bool,
    /// A frontend device that failed during this access (for the console report).
    pub failed: Option<(usize, QueueError)>,
}

/// A disk: its frontends and the backend's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    pub frontends: Vec<Frontend>,
    /// Sectors of the disk (the system description's).
    pub capacity: u64,
    buffer: u64,
    buffer_len: u32,
    pub current: Option<Request>,
    /// The frontend the next FETCH looks at first (round robin).
    next: usize,
    /// Completions the driver got wrong: no request taken, or a status that is not one.
    pub garbage: u64,
    /// The driver partition has stopped: requests fail at once.
    detached: bool,
}

/// A chain as [`parse`] found it.
struct Parsed {
    header: [u8; HDR as usize],
    readable: u64,
    writable: u64,
}

impl Disk {
    /// A disk of `capacity` sectors with one frontend per region, every device reset.
    pub fn new(capacity: u64, regions: &[Region]) -> Self {
        let frontends = regions.iter().take(MAX_FRONTENDS).map(|&region| Frontend {
            device: Transport::new(DEVICE_BLK, FEATURES, &config_space(region.sectors)),
            region,
            epoch: 0,
            forwarded: 0,
            refused: 0,
        });
        Disk {
            frontends: frontends.collect(),
            capacity,
            buffer: 0,
            buffer_len: 0,
            current: None,
            next: 0,
            garbage: 0,
            detached: false,
        }
    }

    /// Resets frontend `f`'s device (its partition stops or restarts). A request of it the
    /// driver holds is dropped when it completes.
    pub fn reset_frontend(&mut self, f: usize) {
        if let Some(fe) = self.frontends.get_mut(f) {
            fe.device.reset();
            fe.epoch = fe.epoch.wrapping_add(1);
        }
    }

    /// Forgets the driver (its partition restarts): its buffer area, and the request it held,
    /// which fails with an I/O error so that the frontend does not wait for it forever. The
    /// frontends' other requests wait for the new driver.
    pub fn reset_backend(&mut self, frontends: &[Owner<'_>], mem: &mut dyn GuestMemory) -> Answer {
        self.buffer = 0;
        self.buffer_len = 0;
        self.detached = false;
        let mut out = Answer::default();
        if let Some(req) = self.current.take() {
            self.finish(req, S_IOERR, None, frontends, mem, &mut out);
        }
        self.mark_used(&out);
        out
    }

    /// The driver partition stopped for good: as [`reset_backend`](Self::reset_backend), and
    /// from now on every request fails at once with an I/O error (a disk unplugged), the ones
    /// waiting too, so that no frontend waits for a driver that will not come back.
    pub fn detach_backend(&mut self, frontends: &[Owner<'_>], mem: &mut dyn GuestMemory) -> Answer {
        let mut out = self.reset_backend(frontends, mem);
        self.detached = true;
        for (f, &owner) in frontends.iter().enumerate().take(self.frontends.len()) {
            self.fail_waiting(f, owner, mem, &mut out);
        }
        self.mark_used(&out);
        out
    }

    /// Completes every request frontend `f` has made available with an I/O error.
    fn fail_waiting(&mut self, f: usize, owner: Owner<'_>, mem: &mut dyn GuestMemory, out: &mut Answer) {
        let fe = &mut self.frontends[f];
        let Some(ring) = fe.device.ring(REQUESTQ) else { return };
        let result = (|| loop {
            let Some(chain) = ring.peek(mem)? else { return Ok(()) };
            ring.take();
            parse(ring, owner, mem, chain.head)?;
            finish_chain(ring, owner, mem, chain.head, S_IOERR, None)?;
            out.frontends |= u32::from(ring.wants_interrupt(mem)) << f;
        })();
        if let Err(e) = result {
            fe.device.fail(e);
            out.failed = Some((f, e));
            out.frontends |= 1 << f;
        }
    }

    /// An access by frontend `f` to its device's window; `owner` is its partition.
    pub fn frontend_access(
        &mut self,
        f: usize,
        owner: Owner<'_>,
        mem: &mut dyn GuestMemory,
        offset: u64,
        size: u8,
        write: Option<u64>,
    ) -> Answer {
        let mut out = Answer::default();
        let Some(fe) = self.frontends.get_mut(f) else { return out };
        let Some(value) = write else {
            out.value = fe.device.read(offset, size);
            return out;
        };
        if matches!(offset, reg::STATUS | reg::QUEUE_READY) && value == 0 {
            fe.epoch = fe.epoch.wrapping_add(1);
        }
        let before = fe.device.error;
        match fe.device.write(owner, offset, size, value) {
            Effect::None => {}
            Effect::Interrupt => out.frontends |= 1 << f,
            Effect::Notify(q) => out.backend = usize::from(q) == REQUESTQ,
        }
        out.failed = fe.device.error.filter(|_| fe.device.error != before).map(|e| (f, e));
        if out.backend && self.detached {
            out.backend = false;
            self.fail_waiting(f, owner, mem, &mut out);
            self.mark_used(&out);
        }
        out
    }

    /// An access by the driver partition (`driver`) to its backend page; `frontends` are the
    /// frontends' partitions, in order.
    pub fn backend_access(
        &mut self,
        driver: Owner<'_>,
        frontends: &[Owner<'_>],
        mem: &mut dyn GuestMemory,
        offset: u64,
        size: u8,
        write: Option<u64>,
    ) -> Answer {
        use backend_reg as r;
        let mut out = Answer::default();
        if size != 4 {
            return out;
        }
        let req = self.current;
        let field = |f: fn(&Request) -> u64| req.as_ref().map_or(0, f);
        match write {
            None => {
                out.value = match offset {
                    r::MAGIC => u64::from(BACKEND_MAGIC),
                    r::VERSION => 1,
                    r::FRONTENDS => self.frontends.len() as u64,
                    r::BUFFER_LOW => self.buffer & 0xffff_ffff,
                    r::BUFFER_HIGH => self.buffer >> 32,
                    r::BUFFER_LEN => u64::from(self.buffer_len),
                    r::FETCH => u64::from(self.fetch(driver, frontends, mem, &mut out)),
                    r::FRONTEND => field(|q| q.frontend as u64),
                    r::TYPE => field(|q| u64::from(q.kind)),
                    r::LEN => field(|q| u64::from(q.len)),
                    r::SECTOR_LOW => field(|q| q.sector & 0xffff_ffff),
                    r::SECTOR_HIGH => field(|q| q.sector >> 32),
                    r::CAPACITY_LOW => self.capacity & 0xffff_ffff,
                    r::CAPACITY_HIGH => self.capacity >> 32,
                    r::LIVE => {
                        let live = self.frontends.iter().enumerate().filter(|(_, f)| f.device.live());
                        live.fold(0, |bits, (n, _)| bits | 1 << n)
                    }
                    _ => 0,
                };
            }
            Some(value) => {
                let value32 = value & 0xffff_ffff;
                match offset {
                    r::BUFFER_LOW => self.buffer = (self.buffer & !0xffff_ffff) | value32,
                    r::BUFFER_HIGH => self.buffer = (self.buffer & 0xffff_ffff) | value32 << 32,
                    r::BUFFER_LEN => self.buffer_len = value32 as u32,
                    r::COMPLETE => self.complete(value32, driver, frontends, mem, &mut out),
                    _ => {}
                }
            }
        }
        self.mark_used(&out);
        out
    }

    /// The driver's buffer area, if it lies wholly in the driver's own memory.
    fn buffer(&self, driver: Owner<'_>, len: u32) -> Option<HostPhys> {
        if len > self.buffer_len {
            return None;
        }
        driver.translate(self.buffer, u64::from(len))
    }

    /// FETCH: presents the next request the driver must carry out. Requests the hypervisor can
    /// answer itself (refused, unsupported) are completed on the way.
    fn fetch(
        &mut self,
        driver: Owner<'_>,
        frontends: &[Owner<'_>],
        mem: &mut dyn GuestMemory,
        out: &mut Answer,
    ) -> u32 {
        if self.current.is_some() {
            return FETCH_REQUEST; // Still the one taken: the driver asked twice.
        }
        if self.buffer_len == 0 || self.buffer(driver, self.buffer_len).is_none() {
            return FETCH_NO_BUFFER;
        }
        let n = self.frontends.len().min(frontends.len());
        for i in 0..n {
            let f = (self.next + i) % n;
            match self.pop(f, driver, frontends[f], mem, out) {
                Ok(Some(req)) => {
                    self.current = Some(req);
                    self.frontends[f].forwarded += 1;
                    self.next = (f + 1) % n;
                    return FETCH_REQUEST;
                }
                Ok(None) => {}
                Err(e) => {
                    self.frontends[f].device.fail(e);
                    out.failed = Some((f, e));
                    out.frontends |= 1 << f;
                }
            }
        }
        FETCH_NONE
    }

    /// Takes frontend `f`'s next chain: `Ok(Some)` a request for the driver (its data copied
    /// into the buffer area), `Ok(None)` nothing more available. A request the hypervisor
    /// refuses is completed here, and the next one taken.
    fn pop(
        &mut self,
        f: usize,
        driver: Owner<'_>,
        owner: Owner<'_>,
        mem: &mut dyn GuestMemory,
        out: &mut Answer,
    ) -> Result<Option<Request>, QueueError> {
        let buffer_len = self.buffer_len;
        let buffer = self.buffer;
        let fe = &mut self.frontends[f];
        let region = fe.region;
        let epoch = fe.epoch;
        let Some(ring) = fe.device.ring(REQUESTQ) else { return Ok(None) };
        loop {
            let Some(chain) = ring.peek(mem)? else { return Ok(None) };
            ring.take();
            let head = chain.head;
            let p = parse(ring, owner, mem, head)?;
            let kind = u32::from_le_bytes([p.header[0], p.header[1], p.header[2], p.header[3]]);
            let mut s = [0; 8];
            s.copy_from_slice(&p.header[8..]);
            let sector = u64::from_le_bytes(s);
            let data = match kind {
                T_IN => p.writable - 1,
                T_OUT => p.readable - HDR,
                T_FLUSH => 0,
                _ => {
                    finish_chain(ring, owner, mem, head, S_UNSUPP, None)?;
                    out.frontends |= u32::from(ring.wants_interrupt(mem)) << f;
                    continue;
                }
            };
            let placed = match kind {
                T_FLUSH => Some(0),
                _ if data % SECTOR != 0 || data > u64::from(buffer_len.min(MAX_DATA)) => None,
                _ => region.place(sector, data / SECTOR),
            };
            let Some(disk_sector) = placed else {
                fe.refused += 1;
                finish_chain(ring, owner, mem, head, S_IOERR, None)?;
                out.frontends |= u32::from(ring.wants_interrupt(mem)) << f;
                continue;
            };
            let len = data as u32; // ≤ MAX_DATA.
            let Some(dst) = driver.translate(buffer, u64::from(len)) else { return Ok(None) };
            let ok = match kind {
                T_OUT => gather(ring, owner, mem, head, dst, len)?,
                // No stale bytes of an earlier request (maybe another frontend's) can come back
                // as this one's data, whatever the driver does.
                T_IN => {
                    zero(mem, dst, len);
                    true
                }
                _ => true,
            };
            if !ok {
                // The chain shrank since it was parsed: the driver would write stale bytes.
                fe.refused += 1;
                finish_chain(ring, owner, mem, head, S_IOERR, None)?;
                out.frontends |= u32::from(ring.wants_interrupt(mem)) << f;
                continue;
            }
            return Ok(Some(Request { frontend: f, kind, sector: disk_sector, len, head, epoch }));
        }
    }

    /// COMPLETE: the driver finished the request it took with `status`.
    fn complete(
        &mut self,
        status: u64,
        driver: Owner<'_>,
        frontends: &[Owner<'_>],
        mem: &mut dyn GuestMemory,
        out: &mut Answer,
    ) {
        let Some(req) = self.current.take() else {
            self.garbage += 1;
            return;
        };
        let status = match status {
            0 => S_OK,
            1 => S_IOERR,
            2 => S_UNSUPP,
            _ => {
                self.garbage += 1;
                S_IOERR
            }
        };
        let src = (req.kind == T_IN && status == S_OK).then(|| self.buffer(driver, req.len));
        let (status, src) = match src {
            None => (status, None),
            Some(None) => (S_IOERR, None), // The driver moved its buffer away meanwhile.
            Some(Some(pa)) => (status, Some((pa, req.len))),
        };
        self.finish(req, status, src, frontends, mem, out);
    }

    /// Returns `req`'s chain to its frontend with `status`, and for a read `data` copied in.
    fn finish(
        &mut self,
        req: Request,
        status: u8,
        data: Option<(HostPhys, u32)>,
        frontends: &[Owner<'_>],
        mem: &mut dyn GuestMemory,
        out: &mut Answer,
    ) {
        let f = req.frontend;
        let (Some(fe), Some(&owner)) = (self.frontends.get_mut(f), frontends.get(f)) else { return };
        if fe.epoch != req.epoch {
            return; // The frontend was reset since: the chain is not in its queue any more.
        }
        let Some(ring) = fe.device.ring(REQUESTQ) else { return };
        match finish_chain(ring, owner, mem, req.head, status, data) {
            Ok(()) => out.frontends |= u32::from(ring.wants_interrupt(mem)) << f,
            Err(e) => {
                fe.device.fail(e);
                out.failed = Some((f, e));
                out.frontends |= 1 << f;
            }
        }
    }

    /// Marks the used-buffer cause on every frontend `out` interrupts (its driver reads it).
    fn mark_used(&mut self, out: &Answer) {
        for (f, fe) in self.frontends.iter_mut().enumerate() {
            if out.frontends & 1 << f != 0 {
                fe.device.interrupt_status |= INT_USED_BUFFER;
            }
        }
    }
}

/// The device features: virtio 1, the request size limits, and flush (so that a frontend's
/// `sync` reaches the disk's cache through the driver).
const FEATURES: u64 = F_VERSION_1 | BLK_F_SIZE_MAX | BLK_F_SEG_MAX | BLK_F_FLUSH;

/// `struct virtio_blk_config` up to `seg_max`: capacity (the region's sectors), size_max, seg_max.
fn config_space(sectors: u64) -> [u8; 16] {
    let mut c = [0; 16];
    c[..8].copy_from_slice(&sectors.to_le_bytes());
    c[8..12].copy_from_slice(&SIZE_MAX.to_le_bytes());
    c[12..].copy_from_slice(&SEG_MAX.to_le_bytes());
    c
}

/// Walks chain `head` once: its header (the first 16 readable bytes) and how many bytes it has
/// in each direction. Readable buffers come first; a request needs its header and a status byte.
fn parse(ring: &Ring, owner: Owner<'_>, mem: &mut dyn GuestMemory, head: u16) -> Result<Parsed, QueueError> {
    let mut p = Parsed { header: [0; HDR as usize], readable: 0, writable: 0 };
    let mut chain = Chain::at(head);
    while let Some((seg, writable)) = ring.next_buffer(owner, mem, &mut chain)? {
        if writable {
            p.writable += u64::from(seg.len);
            continue;
        }
        if p.writable > 0 {
            return Err(QueueError::WrongDirection);
        }
        if p.readable < HDR {
            let at = p.readable as usize;
            let n = (HDR as usize - at).min(seg.len as usize);
            mem.read(seg.pa, &mut p.header[at..at + n]);
        }
        p.readable += u64::from(seg.len);
    }
    if p.readable < HDR || p.writable == 0 {
        return Err(QueueError::BadRequest);
    }
    Ok(p)
}

/// Copies the `len` data bytes of write request `head` (after its header) to `dst`; false if
/// the chain holds fewer (the driver rewrote it since [`parse`]).
fn gather(
    ring: &Ring,
    owner: Owner<'_>,
    mem: &mut dyn GuestMemory,
    head: u16,
    dst: HostPhys,
    len: u32,
) -> Result<bool, QueueError> {
    let mut chain = Chain::at(head);
    let (mut skip, mut done) = (HDR, 0u64);
    while let Some((seg, writable)) = ring.next_buffer(owner, mem, &mut chain)? {
        if writable || done == u64::from(len) {
            break;
        }
        let from = skip.min(u64::from(seg.len));
        skip -= from;
        let n = (u64::from(seg.len) - from).min(u64::from(len) - done);
        if n > 0 {
            mem.copy(HostPhys(dst.as_u64() + done), HostPhys(seg.pa.as_u64() + from), n as usize);
            done += n;
        }
    }
    Ok(done == u64::from(len))
}

/// Zeroes `len` bytes at `pa`.
fn zero(mem: &mut dyn GuestMemory, pa: HostPhys, len: u32) {
    const ZEROS: [u8; 512] = [0; 512];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(ZEROS.len() as u32);
        mem.write(HostPhys(pa.as_u64() + u64::from(done)), &ZEROS[..n as usize]);
        done += n;
    }
}

/// Completes chain `head`: `data` (a read's bytes) copied into its writable buffers, at most
/// all but their last byte, which takes `status`.
fn finish_chain(
    ring: &mut Ring,
    owner: Owner<'_>,
    mem: &mut dyn GuestMemory,
    head: u16,
    status: u8,
    data: Option<(HostPhys, u32)>,
) -> Result<(), QueueError> {
    // Pass 1: where the status byte is, and how much room precedes it.
    let mut chain = Chain::at(head);
    let mut last: Option<Segment> = None;
    let mut room = 0u64;
    while let Some((seg, writable)) = ring.next_buffer(owner, mem, &mut chain)? {
        if writable && seg.len > 0 {
            room += u64::from(seg.len);
            last = Some(seg);
        }
    }
    let Some(last) = last else { return Err(QueueError::BadRequest) };
    room -= 1;
    // Pass 2: the data, into the writable buffers in order.
    let mut copied = 0u64;
    if let Some((src, len)) = data {
        let want = u64::from(len).min(room);
        let mut chain = Chain::at(head);
        while let Some((seg, writable)) = ring.next_buffer(owner, mem, &mut chain)? {
            if !writable || copied == want {
                continue;
            }
            let n = u64::from(seg.len).min(want - copied);
            mem.copy(seg.pa, HostPhys(src.as_u64() + copied), n as usize);
            copied += n;
        }
    }
    mem.write(HostPhys(last.pa.as_u64() + u64::from(last.len) - 1), &[status]);
    ring.complete(mem, head, copied as u32 + 1);
    Ok(())
}

#[cfg(test)]
mod tests;
