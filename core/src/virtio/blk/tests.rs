//! Host tests of the block relay: a driver partition (0) and two frontends (1, 2) over a fake
//! memory that panics on any access outside the three partitions, a RAM disk in the test playing
//! the physical disk.

use alloc::vec;
use alloc::vec::Vec;

use super::backend_reg as b;
use super::*;
use crate::addr::GuestPhys;
use crate::config::{MemoryRegion, PartitionConfig};
use crate::virtio::mmio::{reg, STATUS_NEEDS_RESET};
use crate::virtio::queue::{DESC_F_NEXT, DESC_F_WRITE};

const HOST: u64 = 0x4000_0000;
const SIZE: u64 = 0x10_0000;
const GUEST: u64 = 0x4000_0000;
const NUM: u16 = 8;
const DESC: u64 = GUEST + 0x1_0000;
const AVAIL: u64 = DESC + 0x1000;
const USED: u64 = DESC + 0x2000;
/// Frontend buffers: header, data, status of chain `i`.
fn hdr(i: u16) -> u64 {
    GUEST + 0x2_0000 + u64::from(i) * 0x100
}
fn data(i: u16) -> u64 {
    GUEST + 0x4_0000 + u64::from(i) * 0x1_0000
}
fn status(i: u16) -> u64 {
    hdr(i) + 0x80
}
/// The driver's buffer area.
const BUFFER: u64 = GUEST + 0x8_0000;
const DISK_SECTORS: u64 = 64;
const REGIONS: [Region; 2] = [Region { start: 0, sectors: 32 }, Region { start: 32, sectors: 32 }];

struct Fake(Vec<u8>);

impl Fake {
    fn index(&self, pa: HostPhys, len: usize) -> usize {
        let off = pa.as_u64().checked_sub(HOST).expect("below the partitions") as usize;
        assert!(off + len <= self.0.len(), "access past the partitions at {pa:?}+{len}");
        off
    }
    fn at(p: usize, addr: u64) -> HostPhys {
        HostPhys(HOST + p as u64 * SIZE + (addr - GUEST))
    }
    fn put(&mut self, p: usize, addr: u64, bytes: &[u8]) {
        let i = self.index(Self::at(p, addr), bytes.len());
        self.0[i..i + bytes.len()].copy_from_slice(bytes);
    }
    fn get(&self, p: usize, addr: u64, len: usize) -> Vec<u8> {
        let i = self.index(Self::at(p, addr), len);
        self.0[i..i + len].to_vec()
    }
}

impl GuestMemory for Fake {
    fn read(&mut self, pa: HostPhys, buf: &mut [u8]) {
        let i = self.index(pa, buf.len());
        buf.copy_from_slice(&self.0[i..i + buf.len()]);
    }
    fn write(&mut self, pa: HostPhys, bytes: &[u8]) {
        let i = self.index(pa, bytes.len());
        self.0[i..i + bytes.len()].copy_from_slice(bytes);
    }
    fn copy(&mut self, dst: HostPhys, src: HostPhys, len: usize) {
        let (s, d) = (self.index(src, len), self.index(dst, len));
        self.0.copy_within(s..s + len, d);
    }
}

struct Setup {
    disk: Disk,
    mem: Fake,
    parts: [PartitionConfig; 3],
    /// The physical disk the test's driver serves.
    platter: Vec<u8>,
    /// Per frontend: next driver-ring index.
    next: [u16; 2],
    /// Per frontend: device-ring entries seen.
    seen: [u16; 2],
}

impl Setup {
    fn new() -> Self {
        let p = |n: u64| PartitionConfig {
            memory: vec![MemoryRegion {
                host: HostPhys(HOST + n * SIZE),
                guest: GuestPhys(GUEST),
                size: SIZE,
            }],
            ..PartitionConfig::default()
        };
        let mut s = Setup {
            disk: Disk::new(DISK_SECTORS, &REGIONS),
            mem: Fake(vec![0; 3 * SIZE as usize]),
            parts: [p(0), p(1), p(2)],
            platter: vec![0; (DISK_SECTORS * SECTOR) as usize],
            next: [0; 2],
            seen: [0; 2],
        };
        s.probe(0);
        s.probe(1);
        s.backend_w(b::BUFFER_LOW, BUFFER);
        s.backend_w(b::BUFFER_LEN, u64::from(MAX_DATA));
        s
    }
    fn front(&mut self, f: usize, offset: u64, write: Option<u64>) -> Answer {
        let owner = Owner(&self.parts[f + 1]);
        self.disk.frontend_access(f, owner, &mut self.mem, offset, 4, write)
    }
    fn backend(&mut self, offset: u64, write: Option<u64>) -> Answer {
        let [d, a, bb] = &self.parts;
        self.disk.backend_access(Owner(d), &[Owner(a), Owner(bb)], &mut self.mem, offset, 4, write)
    }
    fn backend_r(&mut self, offset: u64) -> u64 {
        self.backend(offset, None).value
    }
    fn backend_w(&mut self, offset: u64, value: u64) -> Answer {
        self.backend(offset, Some(value))
    }
    /// Frontend `f` probes its device as Linux's virtio_blk does.
    fn probe(&mut self, f: usize) {
        assert_eq!(self.front(f, reg::DEVICE_ID, None).value, 2);
        for (o, v) in [(reg::STATUS, 0), (reg::STATUS, 3), (reg::DRIVER_FEATURES_SEL, 0)] {
            self.front(f, o, Some(v));
        }
        self.front(f, reg::DRIVER_FEATURES, Some(BLK_F_SEG_MAX | BLK_F_SIZE_MAX | BLK_F_FLUSH));
        self.front(f, reg::DRIVER_FEATURES_SEL, Some(1));
        self.front(f, reg::DRIVER_FEATURES, Some(1));
        self.front(f, reg::STATUS, Some(0xb));
        assert_eq!(self.front(f, reg::STATUS, None).value, 0xb, "FEATURES_OK taken");
        let setup = [
            (reg::QUEUE_SEL, 0),
            (reg::QUEUE_NUM, u64::from(NUM)),
            (reg::QUEUE_DESC_LOW, DESC),
            (reg::QUEUE_DRIVER_LOW, AVAIL),
            (reg::QUEUE_DEVICE_LOW, USED),
            (reg::QUEUE_READY, 1),
            (reg::STATUS, 0xf),
        ];
        for (o, v) in setup {
            self.front(f, o, Some(v));
        }
        self.next[f] = 0;
        self.seen[f] = 0;
    }
    fn desc(&mut self, f: usize, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = Vec::new();
        d.extend_from_slice(&addr.to_le_bytes());
        d.extend_from_slice(&len.to_le_bytes());
        d.extend_from_slice(&flags.to_le_bytes());
        d.extend_from_slice(&next.to_le_bytes());
        self.mem.put(f + 1, DESC + 16 * u64::from(i), &d);
    }
    fn offer(&mut self, f: usize, head: u16) -> Answer {
        let n = self.next[f];
        self.mem.put(f + 1, AVAIL + 4 + 2 * u64::from(n % NUM), &head.to_le_bytes());
        self.next[f] = n.wrapping_add(1);
        self.mem.put(f + 1, AVAIL + 2, &self.next[f].to_le_bytes());
        self.front(f, reg::QUEUE_NOTIFY, Some(0))
    }
    /// Frontend `f` queues a request as Linux does: header, data, status, three descriptors
    /// (`i`, `i + 1`, `i + 2`); `bytes` are the data written (OUT) or the room to read into (IN).
    fn request(&mut self, f: usize, i: u16, kind: u32, sector: u64, bytes: &[u8]) -> Answer {
        let mut h = Vec::new();
        h.extend_from_slice(&kind.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&sector.to_le_bytes());
        self.mem.put(f + 1, hdr(i), &h);
        self.mem.put(f + 1, data(i), bytes);
        self.mem.put(f + 1, status(i), &[0xff]);
        let dir = if kind == T_OUT { 0 } else { DESC_F_WRITE };
        self.desc(f, i, hdr(i), 16, DESC_F_NEXT, i + 1);
        self.desc(f, i + 1, data(i), bytes.len() as u32, dir | DESC_F_NEXT, i + 2);
        self.desc(f, i + 2, status(i), 1, DESC_F_WRITE, 0);
        self.offer(f, i)
    }
    /// The test's driver partition: takes one request, carries it out on the platter, completes
    /// it. Returns the request, or `None` if FETCH had none.
    fn serve_one(&mut self) -> Option<(u64, u64, u64, u64)> {
        if self.backend_r(b::FETCH) != u64::from(FETCH_REQUEST) {
            return None;
        }
        let req = (
            self.backend_r(b::FRONTEND),
            u64::from(self.backend_r(b::TYPE) as u32),
            self.backend_r(b::SECTOR_LOW) | self.backend_r(b::SECTOR_HIGH) << 32,
            self.backend_r(b::LEN),
        );
        let (_, kind, sector, len) = req;
        let at = (sector * SECTOR) as usize;
        match kind as u32 {
            T_IN => {
                let bytes = self.platter[at..at + len as usize].to_vec();
                self.mem.put(0, BUFFER, &bytes);
            }
            T_OUT => {
                let bytes = self.mem.get(0, BUFFER, len as usize);
                self.platter[at..at + len as usize].copy_from_slice(&bytes);
            }
            _ => {}
        }
        self.backend_w(b::COMPLETE, u64::from(S_OK));
        Some(req)
    }
    /// Frontend `f`'s next completion: (head, bytes written, status byte of chain `head`).
    fn used(&mut self, f: usize) -> Option<(u16, u32, u8)> {
        let idx = self.mem.get(f + 1, USED + 2, 2);
        if u16::from_le_bytes([idx[0], idx[1]]) == self.seen[f] {
            return None;
        }
        let e = self.mem.get(f + 1, USED + 4 + 8 * u64::from(self.seen[f] % NUM), 8);
        self.seen[f] = self.seen[f].wrapping_add(1);
        let head = u16::from_le_bytes([e[0], e[1]]);
        let written = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        Some((head, written, self.mem.get(f + 1, status(head), 1)[0]))
    }
    fn broken(&mut self, f: usize) -> bool {
        self.front(f, reg::STATUS, None).value & u64::from(STATUS_NEEDS_RESET) != 0
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
}

#[test]
fn capacity_is_the_region() {
    let mut s = Setup::new();
    let c = |s: &mut Setup, o| s.front(1, reg::CONFIG + o, None).value;
    assert_eq!(c(&mut s, 0), 32);
    assert_eq!(c(&mut s, 8), u64::from(SIZE_MAX));
    assert_eq!(c(&mut s, 12), u64::from(SEG_MAX));
    assert_eq!(s.backend_r(b::MAGIC), u64::from(BACKEND_MAGIC));
    assert_eq!(s.backend_r(b::FRONTENDS), 2);
    assert_eq!(s.backend_r(b::CAPACITY_LOW), DISK_SECTORS);
    assert_eq!(s.backend_r(b::LIVE), 0b11);
    s.disk.reset_frontend(0);
    assert_eq!(s.backend_r(b::LIVE), 0b10, "frontend 0's partition restarts");
}

#[test]
fn writes_land_in_the_frontends_region_and_read_back() {
    let mut s = Setup::new();
    let kicked = s.request(1, 0, T_OUT, 3, &pattern(1, 1024));
    assert!(kicked.backend, "a kick raises the driver's interrupt");
    assert_eq!(s.front(1, reg::INTERRUPT_STATUS, None).value, 0);
    assert_eq!(s.serve_one(), Some((1, u64::from(T_OUT), 32 + 3, 1024)), "sector moved into region 1");
    assert_eq!(s.used(1), Some((0, 1, S_OK)));
    assert_eq!(s.front(1, reg::INTERRUPT_STATUS, None).value, 1, "used buffer");
    s.front(1, reg::INTERRUPT_ACK, Some(1));
    assert_eq!(&s.platter[35 * 512..37 * 512], &pattern(1, 1024)[..]);
    s.request(1, 3, T_IN, 3, &[0; 1024]);
    assert_eq!(s.serve_one(), Some((1, u64::from(T_IN), 35, 1024)));
    assert_eq!(s.used(1), Some((3, 1025, S_OK)));
    assert_eq!(s.mem.get(2, data(3), 1024), pattern(1, 1024));
    // Frontend 0's sector 3 is another sector of the disk: nothing there.
    s.request(0, 0, T_IN, 3, &[0xaa; 512]);
    assert_eq!(s.serve_one(), Some((0, u64::from(T_IN), 3, 512)));
    assert_eq!(s.mem.get(1, data(0), 512), vec![0; 512]);
    assert_eq!(s.serve_one(), None);
}

#[test]
fn requests_outside_the_region_fail_without_reaching_the_driver() {
    let mut s = Setup::new();
    for (i, sector, len) in
        [(0u16, 32u64, 512usize), (3, 31, 1024), (0, u64::MAX, 512), (3, u64::MAX - 1, 1024)]
    {
        s.request(0, i, T_OUT, sector, &pattern(2, len));
        assert_eq!(s.serve_one(), None, "sector {sector} was relayed");
        assert_eq!(s.used(0), Some((i, 1, S_IOERR)));
    }
    // A read past the end, and data that is not whole sectors.
    s.request(0, 0, T_IN, 32, &[0; 512]);
    assert_eq!(s.serve_one(), None);
    assert_eq!(s.used(0), Some((0, 1, S_IOERR)));
    s.request(0, 3, T_OUT, 0, &[1; 100]);
    assert_eq!(s.serve_one(), None);
    assert_eq!(s.used(0), Some((3, 1, S_IOERR)));
    assert!(s.platter.iter().all(|&b| b == 0), "nothing written");
    assert_eq!(s.disk.frontends[0].refused, 6);
    // The last sector of the region is fine.
    s.request(0, 0, T_OUT, 31, &pattern(3, 512));
    assert_eq!(s.serve_one(), Some((0, u64::from(T_OUT), 31, 512)));
    assert!(!s.broken(0));
}

#[test]
fn requests_larger_than_the_buffer_area_fail() {
    let mut s = Setup::new();
    s.backend_w(b::BUFFER_LEN, 1024);
    s.request(0, 0, T_OUT, 0, &pattern(4, 1536));
    assert_eq!(s.serve_one(), None);
    assert_eq!(s.used(0), Some((0, 1, S_IOERR)));
    s.request(0, 3, T_OUT, 0, &pattern(4, 1024));
    assert!(s.serve_one().is_some());
}

#[test]
fn unsupported_types_are_answered_by_the_hypervisor() {
    let mut s = Setup::new();
    s.request(0, 0, 8, 0, &[0; 20]); // GET_ID
    assert_eq!(s.serve_one(), None);
    assert_eq!(s.used(0), Some((0, 1, S_UNSUPP)));
    s.request(0, 3, T_FLUSH, 99, &[]);
    assert_eq!(s.serve_one(), Some((0, u64::from(T_FLUSH), 0, 0)), "a flush reaches the driver");
}

#[test]
fn malformed_chains_stop_only_that_frontend() {
    let cases: [&dyn Fn(&mut Setup); 6] = [
        // A header of 8 bytes only.
        &|s| {
            s.desc(0, 0, hdr(0), 8, DESC_F_NEXT, 1);
            s.desc(0, 1, status(0), 1, DESC_F_WRITE, 0);
        },
        // No status byte: nothing writable.
        &|s| s.desc(0, 0, hdr(0), 16, 0, 0),
        // Readable data after writable data.
        &|s| {
            s.desc(0, 0, hdr(0), 16, DESC_F_NEXT, 1);
            s.desc(0, 1, status(0), 1, DESC_F_WRITE | DESC_F_NEXT, 2);
            s.desc(0, 2, data(0), 512, 0, 0);
        },
        // A buffer outside the frontend's memory (the driver's).
        &|s| {
            s.desc(0, 0, hdr(0), 16, DESC_F_NEXT, 1);
            s.desc(0, 1, GUEST + SIZE, 512, DESC_F_NEXT, 2);
            s.desc(0, 2, status(0), 1, DESC_F_WRITE, 0);
        },
        // A loop.
        &|s| {
            s.desc(0, 0, hdr(0), 16, DESC_F_NEXT, 1);
            s.desc(0, 1, data(0), 512, DESC_F_NEXT, 0);
        },
        // An index past the queue.
        &|s| s.desc(0, 0, hdr(0), 16, DESC_F_NEXT, NUM),
    ];
    for (n, make) in cases.iter().enumerate() {
        let mut s = Setup::new();
        s.mem.put(1, hdr(0), &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        make(&mut s);
        s.offer(0, 0);
        s.request(1, 0, T_OUT, 0, &pattern(5, 512));
        assert_eq!(
            s.serve_one(),
            Some((1, u64::from(T_OUT), 32, 512)),
            "case {n}: the other frontend is served"
        );
        assert!(s.broken(0), "case {n}: the bad frontend needs a reset");
        assert!(!s.broken(1), "case {n}");
        assert!(s.platter[..32 * 512].iter().all(|&b| b == 0), "case {n}: nothing of frontend 0 written");
        // A reset brings it back.
        s.probe(0);
        s.request(0, 0, T_OUT, 0, &pattern(6, 512));
        assert_eq!(s.serve_one(), Some((0, u64::from(T_OUT), 0, 512)), "case {n}: after the reset");
    }
}

#[test]
fn a_driver_that_never_answers_holds_the_requests_and_a_restart_fails_them() {
    let mut s = Setup::new();
    s.request(0, 0, T_OUT, 0, &pattern(7, 512));
    s.request(1, 0, T_OUT, 0, &pattern(8, 512));
    assert_eq!(s.backend_r(b::FETCH), u64::from(FETCH_REQUEST));
    // The driver says nothing more; the frontends keep working their devices.
    for _ in 0..5 {
        s.request(0, 3, T_IN, 1, &[0; 512]);
        assert_eq!(s.front(0, reg::STATUS, None).value, 0xf);
        assert_eq!(s.used(0), None, "waits");
    }
    // Fetching again gives the same request, nothing else moves.
    assert_eq!(s.backend_r(b::FETCH), u64::from(FETCH_REQUEST));
    assert_eq!(s.backend_r(b::FRONTEND), 0);
    // The driver partition restarts: the request it held fails, the queue moves on.
    let [_, a, bb] = &s.parts;
    let out = s.disk.reset_backend(&[Owner(a), Owner(bb)], &mut s.mem);
    assert_eq!(out.frontends, 1);
    assert_eq!(s.used(0), Some((0, 1, S_IOERR)));
    assert_eq!(s.backend_r(b::FETCH), u64::from(FETCH_NO_BUFFER), "the new driver names its buffer first");
    s.backend_w(b::BUFFER_LOW, BUFFER);
    s.backend_w(b::BUFFER_LEN, u64::from(MAX_DATA));
    let served: Vec<u64> = core::iter::from_fn(|| s.serve_one()).map(|r| r.0).collect();
    assert_eq!(served.len(), 6, "frontend 1's write, then frontend 0's reads");
    assert_eq!(served[0], 1);
}

#[test]
fn garbage_from_the_driver_is_an_io_error_or_ignored() {
    let mut s = Setup::new();
    // Completing with nothing taken.
    s.backend_w(b::COMPLETE, 0);
    assert_eq!(s.disk.garbage, 1);
    // A status that is not one.
    s.request(0, 0, T_IN, 0, &[0x55; 512]);
    assert_eq!(s.backend_r(b::FETCH), u64::from(FETCH_REQUEST));
    s.backend_w(b::COMPLETE, 0x1234);
    assert_eq!(s.used(0), Some((0, 1, S_IOERR)));
    assert_eq!(s.disk.garbage, 2);
    // A buffer area outside the driver's memory, or crossing its end: nothing is taken.
    for (at, len) in [(GUEST + SIZE, 512u64), (GUEST + SIZE - 256, 512), (0, 4096), (u64::MAX - 100, 512)] {
        s.backend_w(b::BUFFER_LOW, at & 0xffff_ffff);
        s.backend_w(b::BUFFER_HIGH, at >> 32);
        s.backend_w(b::BUFFER_LEN, len);
        s.request(0, 3, T_OUT, 0, &pattern(9, 512));
        assert_eq!(s.backend_r(b::FETCH), u64::from(FETCH_NO_BUFFER));
        s.next[0] -= 1; // Offer the same chain again next time.
    }
    // The buffer moved away between the fetch and the completion of a read.
    s.backend_w(b::BUFFER_LOW, BUFFER);
    s.backend_w(b::BUFFER_HIGH, 0);
    s.backend_w(b::BUFFER_LEN, 512);
    s.next[0] += 1;
    s.request(0, 0, T_IN, 0, &[0x55; 512]);
    assert_eq!(s.backend_r(b::FETCH), u64::from(FETCH_REQUEST));
    assert_eq!(s.backend_r(b::TYPE), u64::from(T_OUT), "the write offered before");
    s.backend_w(b::COMPLETE, 0);
    assert_eq!(s.used(0), Some((3, 1, S_OK)));
    assert_eq!(s.backend_r(b::FETCH), u64::from(FETCH_REQUEST));
    s.backend_w(b::BUFFER_LOW, GUEST + SIZE - 256);
    s.backend_w(b::COMPLETE, 0);
    assert_eq!(s.used(0), Some((0, 1, S_IOERR)));
    assert_eq!(s.mem.get(1, data(0), 512), vec![0x55; 512], "nothing copied");
}

#[test]
fn a_read_never_returns_stale_bytes_of_another_request() {
    let mut s = Setup::new();
    s.request(1, 0, T_OUT, 0, &pattern(10, 4096));
    assert!(s.serve_one().is_some());
    // A driver that completes a read without putting anything in its buffer.
    s.request(0, 0, T_IN, 0, &[0x55; 4096]);
    assert_eq!(s.backend_r(b::FETCH), u64::from(FETCH_REQUEST));
    s.backend_w(b::COMPLETE, 0);
    assert_eq!(s.used(0), Some((0, 4097, S_OK)));
    assert_eq!(s.mem.get(1, data(0), 4096), vec![0; 4096]);
}

#[test]
fn a_completion_for_a_reset_frontend_is_dropped() {
    let mut s = Setup::new();
    s.request(0, 0, T_IN, 0, &[0x55; 512]);
    assert_eq!(s.backend_r(b::FETCH), u64::from(FETCH_REQUEST));
    // Frontend 0 restarts (a rebooting Linux) and sets its queue up again.
    s.disk.reset_frontend(0);
    s.probe(0);
    s.mem.put(1, USED + 2, &[0, 0]);
    s.backend_w(b::COMPLETE, 0);
    assert_eq!(s.used(0), None, "nothing completed into the new queue");
    assert_eq!(s.mem.get(1, status(0), 1), [0xff]);
    s.request(0, 0, T_IN, 0, &[0x55; 512]);
    assert!(s.serve_one().is_some());
    assert_eq!(s.used(0), Some((0, 513, S_OK)));
}

#[test]
fn frontends_take_turns() {
    let mut s = Setup::new();
    for i in [0u16, 3] {
        s.request(0, i, T_IN, 0, &[0; 512]);
        s.request(1, i, T_IN, 0, &[0; 512]);
    }
    let order: Vec<u64> = core::iter::from_fn(|| s.serve_one()).map(|r| r.0).collect();
    assert_eq!(order, [0, 1, 0, 1]);
}

#[test]
fn a_stopped_driver_fails_every_request_at_once() {
    let mut s = Setup::new();
    s.request(0, 0, T_OUT, 0, &pattern(11, 512));
    s.request(0, 3, T_IN, 0, &[0x55; 512]);
    assert_eq!(s.backend_r(b::FETCH), u64::from(FETCH_REQUEST));
    // The driver partition stops with one request taken and one waiting.
    let [_, a, bb] = &s.parts;
    let out = s.disk.detach_backend(&[Owner(a), Owner(bb)], &mut s.mem);
    assert_eq!(out.frontends, 1);
    assert_eq!(s.used(0), Some((0, 1, S_IOERR)));
    assert_eq!(s.used(0), Some((3, 1, S_IOERR)));
    // Later requests fail as they are made, without the driver.
    let kicked = s.request(1, 0, T_IN, 0, &[0x55; 512]);
    assert!(!kicked.backend);
    assert_eq!(kicked.frontends, 0b10);
    assert_eq!(s.used(1), Some((0, 1, S_IOERR)));
    assert_eq!(s.mem.get(2, data(0), 512), vec![0x55; 512], "nothing copied");
    // A driver partition that restarts takes requests again.
    let out = s.disk.reset_backend(&[Owner(&s.parts[1]), Owner(&s.parts[2])], &mut s.mem);
    assert_eq!(out.frontends, 0);
    s.backend_w(b::BUFFER_LOW, BUFFER);
    s.backend_w(b::BUFFER_LEN, u64::from(MAX_DATA));
    assert!(s.request(1, 3, T_IN, 0, &[0; 512]).backend);
    assert!(s.serve_one().is_some());
    assert_eq!(s.used(1), Some((3, 513, S_OK)));
}
