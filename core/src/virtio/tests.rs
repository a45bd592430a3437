//! Host tests of the transport, the queue walker and the net link, over a fake memory that
//! panics on any access outside the two partitions (so a test fails if the hypervisor would
//! have touched anything else).

use alloc::vec;
use alloc::vec::Vec;

use super::mmio::{self, reg, Transport, DEVICE_NET, F_VERSION_1, NET_F_MAC, STATUS_NEEDS_RESET};
use super::net::{mac, Link, RECEIVEQ, TRANSMITQ};
use super::queue::{QueueError, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use super::{GuestMemory, Owner};
use crate::addr::{GuestPhys, HostPhys};
use crate::config::{MemoryRegion, PartitionConfig, VirtioKind};

const HOST: u64 = 0x4000_0000;
const SIZE: u64 = 0x10_0000; // Each partition: 1 MiB at guest 0x4000_0000.
const GUEST: u64 = 0x4000_0000;
/// Partitions the tests have (a two-port link uses the first two, a switch all three).
const PORTS: usize = 3;

struct Fake {
    bytes: Vec<u8>,
}

impl Fake {
    fn new() -> Self {
        Fake { bytes: vec![0; PORTS * SIZE as usize] }
    }
    fn index(&self, pa: HostPhys, len: usize) -> usize {
        let off = pa.as_u64().checked_sub(HOST).expect("below the partitions") as usize;
        assert!(off + len <= self.bytes.len(), "access past the partitions at {pa:?}+{len}");
        off
    }
    /// Guest `addr` of partition `side`.
    fn at(side: usize, addr: u64) -> HostPhys {
        HostPhys(HOST + side as u64 * SIZE + (addr - GUEST))
    }
    fn put(&mut self, side: usize, addr: u64, data: &[u8]) {
        let i = self.index(Self::at(side, addr), data.len());
        self.bytes[i..i + data.len()].copy_from_slice(data);
    }
    fn get(&self, side: usize, addr: u64, len: usize) -> Vec<u8> {
        let i = self.index(Self::at(side, addr), len);
        self.bytes[i..i + len].to_vec()
    }
    fn u16(&self, side: usize, addr: u64) -> u16 {
        let b = self.get(side, addr, 2);
        u16::from_le_bytes([b[0], b[1]])
    }
}

impl GuestMemory for Fake {
    fn read(&mut self, pa: HostPhys, buf: &mut [u8]) {
        let i = self.index(pa, buf.len());
        buf.copy_from_slice(&self.bytes[i..i + buf.len()]);
    }
    fn write(&mut self, pa: HostPhys, data: &[u8]) {
        let i = self.index(pa, data.len());
        self.bytes[i..i + data.len()].copy_from_slice(data);
    }
    fn copy(&mut self, dst: HostPhys, src: HostPhys, len: usize) {
        let (s, d) = (self.index(src, len), self.index(dst, len));
        self.bytes.copy_within(s..s + len, d);
    }
}

fn partitions() -> [PartitionConfig; PORTS] {
    let p = |side: u64| PartitionConfig {
        memory: vec![MemoryRegion {
            host: HostPhys(HOST + side * SIZE),
            guest: GuestPhys(GUEST),
            size: SIZE,
        }],
        ..PartitionConfig::default()
    };
    [p(0), p(1), p(2)]
}

/// Where a test driver keeps queue `q` (guest addresses): descriptors, driver ring, device ring,
/// buffers.
const NUM: u16 = 8;
fn desc(q: usize) -> u64 {
    GUEST + 0x1_0000 * (q as u64 + 1)
}
fn avail(q: usize) -> u64 {
    desc(q) + 0x1000
}
fn used(q: usize) -> u64 {
    desc(q) + 0x2000
}
fn buffer(q: usize, i: u64) -> u64 {
    desc(q) + 0x4000 + i * 0x800
}

/// A minimal driver over the link, as Linux's virtio_mmio + virtio_net would do it.
struct Setup {
    link: Link,
    mem: Fake,
    parts: [PartitionConfig; PORTS],
    /// Per side, per queue: next driver-ring index.
    next: [[u16; 2]; PORTS],
    /// Feature bits 0-31 the driver accepts (virtio-net: the MAC; virtio-vsock: none).
    features_low: u64,
}

impl Setup {
    fn new() -> Self {
        Setup {
            link: Link::new(3, VirtioKind::Net, &[0, 1]),
            mem: Fake::new(),
            parts: partitions(),
            next: [[0; 2]; PORTS],
            features_low: NET_F_MAC,
        }
    }
    /// A vsock link between partitions 5 and 9 (CIDs 8 and 12).
    fn vsock() -> Self {
        Setup { link: Link::new(0, VirtioKind::Vsock, &[5, 9]), features_low: 0, ..Setup::new() }
    }
    fn access(&mut self, side: usize, offset: u64, write: Option<u64>) -> super::net::Answer {
        let owners: Vec<Owner<'_>> = self.parts.iter().map(Owner).collect();
        self.link.access(side, &owners, &mut self.mem, offset, 4, write)
    }
    /// A register write; which ports' interrupts it raised.
    fn w(&mut self, side: usize, offset: u64, value: u64) -> Vec<bool> {
        let ports = self.link.devices.len();
        self.access(side, offset, Some(value)).interrupt[..ports].to_vec()
    }
    fn r(&mut self, side: usize, offset: u64) -> u64 {
        self.access(side, offset, None).value
    }
    /// Probes side `side` the way Linux does.
    fn probe(&mut self, side: usize) {
        assert_eq!(self.r(side, reg::MAGIC), u64::from(mmio::MAGIC));
        assert_eq!(self.r(side, reg::VERSION), 2);
        self.w(side, reg::STATUS, 0);
        self.w(side, reg::STATUS, 1);
        self.w(side, reg::STATUS, 3);
        self.w(side, reg::DRIVER_FEATURES_SEL, 0);
        self.w(side, reg::DRIVER_FEATURES, self.features_low);
        self.w(side, reg::DRIVER_FEATURES_SEL, 1);
        self.w(side, reg::DRIVER_FEATURES, 1);
        self.w(side, reg::STATUS, 0xb);
        assert_eq!(self.r(side, reg::STATUS), 0xb, "FEATURES_OK taken");
        for q in 0..2 {
            self.w(side, reg::QUEUE_SEL, q as u64);
            assert_eq!(self.r(side, reg::QUEUE_READY), 0);
            self.w(side, reg::QUEUE_NUM, u64::from(NUM));
            self.w(side, reg::QUEUE_DESC_LOW, desc(q));
            self.w(side, reg::QUEUE_DESC_HIGH, 0);
            self.w(side, reg::QUEUE_DRIVER_LOW, avail(q));
            self.w(side, reg::QUEUE_DEVICE_LOW, used(q));
            self.w(side, reg::QUEUE_READY, 1);
            assert_eq!(self.r(side, reg::QUEUE_READY), 1);
        }
        self.w(side, reg::STATUS, 0xf);
    }
    /// Writes descriptor `i` of queue `q` of `side`: its four fields as the ring holds them.
    #[allow(clippy::too_many_arguments)]
    fn desc(&mut self, side: usize, q: usize, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = Vec::new();
        d.extend_from_slice(&addr.to_le_bytes());
        d.extend_from_slice(&len.to_le_bytes());
        d.extend_from_slice(&flags.to_le_bytes());
        d.extend_from_slice(&next.to_le_bytes());
        self.mem.put(side, desc(q) + 16 * u64::from(i), &d);
    }
    /// Makes chain `head` available in queue `q` of `side` (no kick).
    fn offer(&mut self, side: usize, q: usize, head: u16) {
        let n = self.next[side][q];
        self.mem.put(side, avail(q) + 4 + 2 * u64::from(n % NUM), &head.to_le_bytes());
        self.next[side][q] = n.wrapping_add(1);
        self.mem.put(side, avail(q) + 2, &self.next[side][q].to_le_bytes());
    }
    fn kick(&mut self, side: usize, q: usize) -> Vec<bool> {
        self.w(side, reg::QUEUE_NOTIFY, q as u64)
    }
    /// Side `side` posts receive buffer `i` (one descriptor, `len` bytes).
    fn post_rx(&mut self, side: usize, i: u16, len: u32) {
        self.desc(side, RECEIVEQ, i, buffer(RECEIVEQ, u64::from(i)), len, DESC_F_WRITE, 0);
        self.offer(side, RECEIVEQ, i);
    }
    /// Side `side` queues `packet` (header then payload, two descriptors) as chain `i`.
    fn send(&mut self, side: usize, i: u16, packet: &[u8]) -> Vec<bool> {
        let (hdr, data) = (buffer(TRANSMITQ, u64::from(i)), buffer(TRANSMITQ, u64::from(i)) + 0x40);
        self.mem.put(side, hdr, &[0; 12]);
        self.mem.put(side, data, packet);
        let j = i + NUM / 2;
        self.desc(side, TRANSMITQ, i, hdr, 12, DESC_F_NEXT, j);
        self.desc(side, TRANSMITQ, j, data, packet.len() as u32, 0, 0);
        self.offer(side, TRANSMITQ, i);
        self.kick(side, TRANSMITQ)
    }
    fn used_idx(&self, side: usize, q: usize) -> u16 {
        self.mem.u16(side, used(q) + 2)
    }
    fn used_len(&self, side: usize, q: usize, n: u16) -> u32 {
        let b = self.mem.get(side, used(q) + 4 + 8 * u64::from(n % NUM) + 4, 4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    fn broken(&mut self, side: usize) -> bool {
        self.r(side, reg::STATUS) & u64::from(STATUS_NEEDS_RESET) != 0
    }
}

#[test]
fn interrupts_come_after_the_doorbells() {
    assert!(
        super::virtio_spi(0) >= crate::vplatform::doorbell_spi(crate::config::MAX_CHANNELS_PER_PARTITION)
    );
}

#[test]
fn identification_and_features() {
    let t = Transport::new(DEVICE_NET, F_VERSION_1 | NET_F_MAC, &mac(3, 1));
    assert_eq!(t.read(reg::MAGIC, 4), 0x7472_6976);
    assert_eq!(t.read(reg::VERSION, 4), 2);
    assert_eq!(t.read(reg::DEVICE_ID, 4), 1);
    assert_eq!(t.read(reg::DEVICE_FEATURES, 4), NET_F_MAC);
    assert_eq!(t.read(reg::MAGIC, 2), 0, "registers are 32-bit only");
    // The MAC, byte by byte as Linux reads it, and as a word.
    let bytes: Vec<u64> = (0..6).map(|i| t.read(reg::CONFIG + i, 1)).collect();
    assert_eq!(bytes, [0x52, 0x54, 0x00, 0x74, 3, 1]);
    assert_eq!(t.read(reg::CONFIG, 4), 0x7400_5452);
    assert_eq!(t.read(reg::CONFIG + 6, 2), 0, "past the configuration reads as zero");
    let [a, _, _] = partitions();
    let mut t = t;
    t.write(Owner(&a), reg::DEVICE_FEATURES_SEL, 4, 1);
    assert_eq!(t.read(reg::DEVICE_FEATURES, 4), 1, "VERSION_1 is bit 32");
    t.write(Owner(&a), reg::QUEUE_SEL, 4, 2);
    assert_eq!(t.read(reg::QUEUE_NUM_MAX, 4), 0, "no third queue");
    t.write(Owner(&a), reg::QUEUE_SEL, 4, 1);
    assert_eq!(t.read(reg::QUEUE_NUM_MAX, 4), 256);
}

#[test]
fn features_ok_needs_version_1_and_only_offered_bits() {
    let [a, _, _] = partitions();
    for (low, high, ok) in [(NET_F_MAC, 1, true), (NET_F_MAC, 0, false), (NET_F_MAC | 1 << 6, 1, false)] {
        let mut t = Transport::new(DEVICE_NET, F_VERSION_1 | NET_F_MAC, &[]);
        t.write(Owner(&a), reg::DRIVER_FEATURES, 4, low);
        t.write(Owner(&a), reg::DRIVER_FEATURES_SEL, 4, 1);
        t.write(Owner(&a), reg::DRIVER_FEATURES, 4, high);
        t.write(Owner(&a), reg::STATUS, 4, 0xb);
        assert_eq!(t.read(reg::STATUS, 4) & 8 != 0, ok, "{low:#x} {high}");
    }
}

#[test]
fn status_zero_resets() {
    let mut s = Setup::new();
    s.probe(0);
    s.w(0, reg::STATUS, 0);
    assert_eq!(s.r(0, reg::STATUS), 0);
    s.w(0, reg::QUEUE_SEL, 0);
    assert_eq!(s.r(0, reg::QUEUE_READY), 0);
    s.probe(0);
}

#[test]
fn rings_outside_the_partition_are_refused() {
    for (what, offset, value) in [
        ("descriptor table past the end", reg::QUEUE_DESC_LOW, GUEST + SIZE - 64),
        ("misaligned descriptor table", reg::QUEUE_DESC_LOW, desc(0) + 8),
        ("driver ring below the partition", reg::QUEUE_DRIVER_LOW, 0x1000),
        ("device ring in the other partition's host range", reg::QUEUE_DEVICE_HIGH, 1),
    ] {
        let mut s = Setup::new();
        s.w(0, reg::STATUS, 0xb);
        s.w(0, reg::QUEUE_SEL, 0);
        s.w(0, reg::QUEUE_NUM, u64::from(NUM));
        s.w(0, reg::QUEUE_DESC_LOW, desc(0));
        s.w(0, reg::QUEUE_DRIVER_LOW, avail(0));
        s.w(0, reg::QUEUE_DEVICE_LOW, used(0));
        s.w(0, offset, value);
        let raised = s.w(0, reg::QUEUE_READY, 1);
        assert_eq!(s.r(0, reg::QUEUE_READY), 0, "{what}");
        assert!(s.broken(0) && raised[0], "{what}");
        assert!(matches!(s.link.devices[0].error, Some(QueueError::BadRing { .. })), "{what}");
    }
    let mut s = Setup::new();
    s.w(0, reg::QUEUE_NUM, 6);
    s.w(0, reg::QUEUE_READY, 1);
    assert_eq!(s.link.devices[0].error, Some(QueueError::BadSize(6)));
}

#[test]
fn a_packet_crosses_the_link() {
    let mut s = Setup::new();
    s.probe(0);
    s.probe(1);
    s.post_rx(1, 0, 1526);
    assert_eq!(s.kick(1, RECEIVEQ), [false, false], "nothing to move yet");
    let raised = s.send(0, 0, b"hello, beta");
    assert_eq!(raised, [true, true], "the sender's transmit and the receiver's receive completed");
    assert_eq!(s.used_idx(0, TRANSMITQ), 1);
    assert_eq!(s.used_idx(1, RECEIVEQ), 1);
    assert_eq!(s.used_len(1, RECEIVEQ, 0), 12 + 11);
    let got = s.mem.get(1, buffer(RECEIVEQ, 0), 23);
    assert_eq!(&got[12..], b"hello, beta");
    assert_eq!(&got[10..12], &[1, 0], "num_buffers = 1");
    assert_eq!(s.r(1, reg::INTERRUPT_STATUS), 1);
    s.w(1, reg::INTERRUPT_ACK, 1);
    assert_eq!(s.r(1, reg::INTERRUPT_STATUS), 0);
    assert_eq!(s.link.packets, [1, 0]);
}

#[test]
fn packets_wait_for_receive_buffers() {
    let mut s = Setup::new();
    s.probe(0);
    s.probe(1);
    assert_eq!(s.send(0, 0, b"one"), [false, false]);
    assert_eq!(s.send(0, 1, b"two"), [false, false]);
    s.post_rx(1, 0, 64);
    assert_eq!(s.kick(1, RECEIVEQ), [true, true]);
    assert_eq!((s.used_idx(0, TRANSMITQ), s.used_idx(1, RECEIVEQ)), (1, 1));
    s.post_rx(1, 1, 64);
    s.kick(1, RECEIVEQ);
    assert_eq!(&s.mem.get(1, buffer(RECEIVEQ, 1), 15)[12..], b"two");
}

#[test]
fn no_interrupt_while_the_driver_polls() {
    let mut s = Setup::new();
    s.probe(0);
    s.probe(1);
    s.mem.put(1, avail(RECEIVEQ), &1u16.to_le_bytes()); // VIRTQ_AVAIL_F_NO_INTERRUPT
    s.post_rx(1, 0, 64);
    assert_eq!(s.send(0, 0, b"x"), [true, false]);
    assert_eq!(s.used_idx(1, RECEIVEQ), 1, "delivered all the same");
}

#[test]
fn a_peer_without_a_driver_drops_and_short_buffers_drop() {
    let mut s = Setup::new();
    s.probe(0);
    assert_eq!(s.send(0, 0, b"nobody"), [true, false]);
    assert_eq!(s.used_idx(0, TRANSMITQ), 1, "the sender gets its buffer back");
    assert_eq!(s.link.dropped, [1, 0]);
    s.probe(1);
    s.post_rx(1, 0, 16);
    s.send(0, 1, b"longer than sixteen");
    assert_eq!(s.link.dropped, [2, 0]);
    assert_eq!(s.used_idx(1, RECEIVEQ), 0, "the short buffer stays the receiver's");
    s.send(0, 2, b"fits");
    assert_eq!(s.used_idx(1, RECEIVEQ), 1);
}

/// Linux 6.1's virtio_net without MRG_RXBUF or GSO ("small" buffers): each receive chain is one
/// writable descriptor of `hdr_len + GOOD_PACKET_LEN` = 12 + 1518 bytes. A transmit chain holds
/// the 12-byte header pushed in front of the frame in one descriptor (VERSION_1 implies
/// ANY_LAYOUT), or the header, the linear part and page fragments in several.
const LINUX_RX_BUFFER: u32 = 12 + 1518;

#[test]
fn full_size_frames_fit_linux_small_receive_buffers() {
    let mut s = Setup::new();
    s.probe(0);
    s.probe(1);
    for i in 0..NUM {
        s.post_rx(1, i, LINUX_RX_BUFFER);
    }
    s.kick(1, RECEIVEQ);
    // A 1514-byte frame (MTU 1500 and the Ethernet header), header pushed into its descriptor.
    let frame: Vec<u8> = (0..1514u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut packet = vec![0u8; 12];
    packet.extend_from_slice(&frame);
    let at = buffer(TRANSMITQ, 0);
    s.mem.put(0, at, &packet);
    s.desc(0, TRANSMITQ, 0, at, packet.len() as u32, 0, 0);
    s.offer(0, TRANSMITQ, 0);
    assert_eq!(s.kick(0, TRANSMITQ), [true, true]);
    assert_eq!(s.used_len(1, RECEIVEQ, 0), 1526);
    assert_eq!(s.mem.get(1, buffer(RECEIVEQ, 0) + 12, 1514), frame);
    // The same frame as header, linear part (Ethernet, IP, TCP headers) and two fragments.
    let parts = [(0u64, 12u32), (0x100, 66), (0x800, 1000), (0xe00, 448)];
    let mut offset = 0usize;
    for (k, &(off, len)) in parts.iter().enumerate() {
        let data = if k == 0 { vec![0u8; 12] } else { frame[offset..offset + len as usize].to_vec() };
        if k > 0 {
            offset += len as usize;
        }
        let next = if k + 1 < parts.len() { 4 + k as u16 } else { 0 };
        let flags = if k + 1 < parts.len() { DESC_F_NEXT } else { 0 };
        let index = if k == 0 { 1 } else { 3 + k as u16 };
        s.mem.put(0, buffer(TRANSMITQ, 1) + off, &data);
        s.desc(0, TRANSMITQ, index, buffer(TRANSMITQ, 1) + off, len, flags, next);
    }
    s.offer(0, TRANSMITQ, 1);
    assert_eq!(s.kick(0, TRANSMITQ), [true, true]);
    assert_eq!(s.used_len(1, RECEIVEQ, 1), 1526);
    assert_eq!(s.mem.get(1, buffer(RECEIVEQ, 1) + 12, 1514), frame);
    assert_eq!(&s.mem.get(1, buffer(RECEIVEQ, 1), 12)[10..], &[1, 0], "num_buffers = 1");
    assert_eq!(s.link.dropped, [0, 0]);
    // One byte more than GOOD_PACKET_LEN does not fit: dropped, counted, the buffer kept.
    let long = vec![0u8; 12 + 1519];
    s.mem.put(0, at, &long);
    s.desc(0, TRANSMITQ, 0, at, long.len() as u32, 0, 0);
    s.offer(0, TRANSMITQ, 0);
    assert_eq!(s.kick(0, TRANSMITQ), [true, false]);
    assert_eq!((&s.link.packets[..], &s.link.dropped[..]), (&[2, 0][..], &[1, 0][..]));
    assert_eq!(s.used_idx(1, RECEIVEQ), 2);
}

#[test]
fn a_long_stream_wraps_the_rings() {
    // More packets than the rings hold and than a 16-bit index counts, refilled the way
    // Linux's NAPI poll does: the receiver takes used buffers and posts them again.
    let mut s = Setup::new();
    s.probe(0);
    s.probe(1);
    for i in 0..NUM {
        s.post_rx(1, i, LINUX_RX_BUFFER);
    }
    s.kick(1, RECEIVEQ);
    for n in 0..70_000u32 {
        let packet = n.to_le_bytes();
        s.send(0, (n % u32::from(NUM / 2)) as u16, &packet);
        let slot = (n % u32::from(NUM)) as u16;
        let b = s.mem.get(1, used(RECEIVEQ) + 4 + 8 * u64::from(slot), 4);
        let head = u16::from_le_bytes([b[0], b[1]]);
        assert_eq!(s.mem.get(1, buffer(RECEIVEQ, u64::from(head)) + 12, 4), packet, "packet {n}");
        s.post_rx(1, head, LINUX_RX_BUFFER);
        s.kick(1, RECEIVEQ);
    }
    assert_eq!(s.link.packets, [70_000, 0]);
    assert_eq!(s.used_idx(0, TRANSMITQ), 70_000u32 as u16);
    assert_eq!(s.used_idx(1, RECEIVEQ), 70_000u32 as u16);
}

/// A hostile transmit chain breaks the sender's device only; the receiver's buffers stay untouched.
fn hostile_tx(build: impl Fn(&mut Setup), expect: QueueError) {
    let mut s = Setup::new();
    s.probe(0);
    s.probe(1);
    s.post_rx(1, 0, 1526);
    build(&mut s);
    s.offer(0, TRANSMITQ, 0);
    let raised = s.kick(0, TRANSMITQ);
    assert!(raised[0], "the sender hears of its error");
    assert!(s.broken(0));
    assert_eq!(s.link.devices[0].error, Some(expect));
    assert!(!s.broken(1), "the receiver is unaffected");
    assert_eq!(s.used_idx(1, RECEIVEQ), 0);
    // Once broken, kicks do nothing; a reset and a new probe bring it back.
    assert_eq!(s.kick(0, TRANSMITQ), [false, false]);
    s.next = [[0; 2]; PORTS];
    s.probe(0);
    s.probe(1);
    s.post_rx(1, 0, 1526);
    s.send(0, 1, b"clean again");
    assert_eq!(s.used_idx(1, RECEIVEQ), 1);
}

#[test]
fn descriptor_loops_are_cut_at_the_queue_size() {
    hostile_tx(
        |s| s.desc(0, TRANSMITQ, 0, buffer(TRANSMITQ, 0), 12, DESC_F_NEXT, 0),
        QueueError::ChainTooLong,
    );
    hostile_tx(
        |s| {
            s.desc(0, TRANSMITQ, 0, buffer(TRANSMITQ, 0), 12, DESC_F_NEXT, 1);
            s.desc(0, TRANSMITQ, 1, buffer(TRANSMITQ, 1), 12, DESC_F_NEXT, 0);
        },
        QueueError::ChainTooLong,
    );
}

#[test]
fn indexes_past_the_queue_are_refused() {
    hostile_tx(
        |s| s.desc(0, TRANSMITQ, 0, buffer(TRANSMITQ, 0), 12, DESC_F_NEXT, NUM),
        QueueError::BadIndex(NUM),
    );
}

#[test]
fn buffers_outside_the_partition_are_refused() {
    let outside =
        [(GUEST + SIZE - 8, 12), (GUEST - 0x1000, 12), (GUEST, u32::MAX), (u64::MAX - 4, 12), (0, 12)];
    for (addr, len) in outside {
        hostile_tx(|s| s.desc(0, TRANSMITQ, 0, addr, len, 0, 0), QueueError::BadBuffer { addr, len });
    }
}

#[test]
fn indirect_and_wrong_direction_descriptors_are_refused() {
    hostile_tx(
        |s| s.desc(0, TRANSMITQ, 0, buffer(TRANSMITQ, 0), 16, DESC_F_INDIRECT, 0),
        QueueError::Indirect,
    );
    hostile_tx(
        |s| s.desc(0, TRANSMITQ, 0, buffer(TRANSMITQ, 0), 16, DESC_F_WRITE, 0),
        QueueError::WrongDirection,
    );
}

#[test]
fn a_hostile_receiver_is_contained() {
    let mut s = Setup::new();
    s.probe(0);
    s.probe(1);
    // Beta's receive buffer points into memory it does not have.
    s.desc(1, RECEIVEQ, 0, GUEST + SIZE, 1526, DESC_F_WRITE, 0);
    s.offer(1, RECEIVEQ, 0);
    let raised = s.send(0, 0, b"to a liar");
    assert!(raised[1] && s.broken(1) && !s.broken(0));
    assert_eq!(s.used_idx(0, TRANSMITQ), 0, "the packet waits; the sender is not blamed");
    // The driver-ring index running far ahead is refused too.
    let mut s = Setup::new();
    s.probe(0);
    s.mem.put(0, avail(TRANSMITQ) + 2, &(NUM + 1).to_le_bytes());
    s.kick(0, TRANSMITQ);
    assert_eq!(s.link.devices[0].error, Some(QueueError::IndexJump { avail: NUM + 1, next: 0 }));
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        /// Any descriptor table and ring contents: no panic, no access outside the partitions
        /// (the fake memory panics), and the receiver's memory changes only in its posted buffer
        /// and its device ring.
        #[test]
        fn random_transmit_queues(
            descs in prop::collection::vec((any::<u64>(), any::<u32>(), 0u16..8, any::<u16>()), 8),
            heads in prop::collection::vec(any::<u16>(), 1..4),
            near in any::<bool>(),
        ) {
            let mut s = Setup::new();
            s.probe(0);
            s.probe(1);
            s.post_rx(1, 0, 1526);
            for (i, &(addr, len, flags, next)) in descs.iter().enumerate() {
                let addr = if near { GUEST + addr % (SIZE + 0x100) } else { addr };
                let len = if near { len % 0x900 } else { len };
                s.desc(0, TRANSMITQ, i as u16, addr, len, flags, next % 10);
            }
            let before = s.mem.get(1, GUEST, SIZE as usize);
            for &h in &heads {
                s.offer(0, TRANSMITQ, h % 10);
            }
            s.kick(0, TRANSMITQ);
            let after = s.mem.get(1, GUEST, SIZE as usize);
            for (i, (x, y)) in before.iter().zip(&after).enumerate() {
                if x != y {
                    let a = GUEST + i as u64;
                    let rx_buffer = (buffer(RECEIVEQ, 0)..buffer(RECEIVEQ, 0) + 1526).contains(&a);
                    let rx_used = (used(RECEIVEQ)..used(RECEIVEQ) + 6 + 8 * u64::from(NUM)).contains(&a);
                    prop_assert!(rx_buffer || rx_used, "receiver byte {a:#x} changed");
                }
            }
        }
    }
}

/// A vsock packet: header (source and destination CID and port, `len`, stream type, op RW)
/// and payload.
fn vsock_packet(src: u64, dst: u64, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src.to_le_bytes());
    p.extend_from_slice(&dst.to_le_bytes());
    p.extend_from_slice(&1000u32.to_le_bytes());
    p.extend_from_slice(&2000u32.to_le_bytes());
    p.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    p.extend_from_slice(&1u16.to_le_bytes()); // VIRTIO_VSOCK_TYPE_STREAM
    p.extend_from_slice(&5u16.to_le_bytes()); // VIRTIO_VSOCK_OP_RW
    p.extend_from_slice(&[0; 12]); // flags, buf_alloc, fwd_cnt
    assert_eq!(p.len(), 44);
    p.extend_from_slice(payload);
    p
}

impl Setup {
    /// Side `side` queues `packet` as chain `i`, one descriptor.
    fn send_one(&mut self, side: usize, i: u16, packet: &[u8]) -> Vec<bool> {
        let addr = buffer(TRANSMITQ, u64::from(i));
        self.mem.put(side, addr, packet);
        self.desc(side, TRANSMITQ, i, addr, packet.len() as u32, 0, 0);
        self.offer(side, TRANSMITQ, i);
        self.kick(side, TRANSMITQ)
    }
}

#[test]
fn a_vsock_device_has_three_queues_and_its_cid() {
    let mut s = Setup::vsock();
    assert_eq!(s.r(0, reg::DEVICE_ID), u64::from(mmio::DEVICE_VSOCK));
    let cid = |s: &mut Setup, side| {
        s.access(side, reg::CONFIG, None).value | s.access(side, reg::CONFIG + 4, None).value << 32
    };
    assert_eq!((cid(&mut s, 0), cid(&mut s, 1)), (8, 12), "3 + the partition's id");
    for (setup, queues) in [(Setup::vsock(), 3), (Setup::new(), 2)] {
        let mut setup = setup;
        for q in 0..4u64 {
            setup.w(0, reg::QUEUE_SEL, q);
            let max = setup.r(0, reg::QUEUE_NUM_MAX);
            assert_eq!(max != 0, q < queues, "queue {q} of a device with {queues}");
        }
    }
}

#[test]
fn vsock_packets_carry_the_senders_cid_and_reach_only_the_peer() {
    let mut s = Setup::vsock();
    s.probe(0);
    s.probe(1);
    s.post_rx(1, 0, 0x400);
    s.post_rx(1, 1, 0x400);
    // Partition 5 claims to be CID 99: it arrives as 8, its own.
    assert_eq!(s.send_one(0, 0, &vsock_packet(99, 12, b"hello")), [true, true]);
    assert_eq!(s.used_idx(1, RECEIVEQ), 1);
    assert_eq!(s.used_len(1, RECEIVEQ, 0), 49);
    let got = s.mem.get(1, buffer(RECEIVEQ, 0), 49);
    assert_eq!(got, vsock_packet(8, 12, b"hello"), "source rewritten, the rest untouched");
    // To a CID that is not the peer's (the host's, another partition's): dropped, the receive
    // buffer stays the receiver's.
    for (i, dst) in [(1, 2), (2, 8), (3, 13)] {
        s.send_one(0, i, &vsock_packet(8, dst, b"elsewhere"));
        assert_eq!(s.used_idx(0, TRANSMITQ), i + 1, "the sender gets its buffer back");
    }
    assert_eq!(s.used_idx(1, RECEIVEQ), 1, "nothing delivered");
    assert_eq!(s.link.dropped[0], 3);
    // Shorter than a header: dropped too.
    s.send_one(0, 4, &[0; 20]);
    assert_eq!((s.used_idx(1, RECEIVEQ), s.link.dropped[0]), (1, 4));
    // And the other way.
    s.post_rx(0, 0, 0x400);
    s.send_one(1, 0, &vsock_packet(12, 8, b"back"));
    assert_eq!(s.used_idx(0, RECEIVEQ), 1);
    assert_eq!(s.mem.get(0, buffer(RECEIVEQ, 0), 48), vsock_packet(12, 8, b"back"));
}

impl Setup {
    /// A three-port virtio-net switch between partitions 0, 1 and 2 (link 5).
    fn switch() -> Self {
        let mut s = Setup { link: Link::new(5, VirtioKind::Net, &[0, 1, 2]), ..Setup::new() };
        for port in 0..3 {
            s.probe(port);
        }
        s
    }
    /// The Ethernet frame `s.send` carries.
    fn received(&self, side: usize, n: u16, len: usize) -> Vec<u8> {
        self.mem.get(side, buffer(RECEIVEQ, u64::from(n)) + 12, len)
    }
}

fn frame(dst: [u8; 6], src: [u8; 6], body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(body);
    f
}

const BROADCAST: [u8; 6] = [0xff; 6];

#[test]
fn a_switch_floods_broadcasts_and_forwards_by_learned_address() {
    let mut s = Setup::switch();
    for port in 0..3 {
        for i in 0..4 {
            s.post_rx(port, i, 0x400);
        }
    }
    // A broadcast from port 0 reaches 1 and 2, not itself.
    let hello = frame(BROADCAST, mac(5, 0), b"hello all");
    assert_eq!(s.send(0, 0, &hello), [true, true, true]);
    assert_eq!([s.used_idx(0, RECEIVEQ), s.used_idx(1, RECEIVEQ), s.used_idx(2, RECEIVEQ)], [0, 1, 1]);
    assert_eq!(s.received(2, 0, hello.len()), hello);
    // To port 2's own address: only port 2.
    let to_two = frame(mac(5, 2), mac(5, 0), b"for two");
    s.send(0, 1, &to_two);
    assert_eq!([s.used_idx(1, RECEIVEQ), s.used_idx(2, RECEIVEQ)], [1, 2]);
    assert_eq!(s.received(2, 1, to_two.len()), to_two);
    // An address nobody sent from yet: everywhere; once port 1 sends from it, only there.
    let other = [0x02, 0, 0, 0, 0, 0x42];
    s.send(0, 2, &frame(other, mac(5, 0), b"who?"));
    assert_eq!([s.used_idx(1, RECEIVEQ), s.used_idx(2, RECEIVEQ)], [2, 3]);
    s.send(1, 0, &frame(mac(5, 0), other, b"me"));
    assert_eq!(s.used_idx(0, RECEIVEQ), 1, "to port 0's address");
    s.send(0, 3, &frame(other, mac(5, 0), b"now I know"));
    assert_eq!([s.used_idx(1, RECEIVEQ), s.used_idx(2, RECEIVEQ)], [3, 3], "learned behind port 1");
    assert_eq!(&s.link.packets[..], &[4, 1, 0][..]);
}

#[test]
fn a_busy_switch_port_holds_up_only_frames_for_it() {
    let mut s = Setup::switch();
    s.post_rx(1, 0, 0x400);
    // Port 2 has no receive buffer: a broadcast still reaches port 1, and is dropped for 2.
    s.send(0, 0, &frame(BROADCAST, mac(5, 0), b"to all"));
    assert_eq!([s.used_idx(0, TRANSMITQ), s.used_idx(1, RECEIVEQ)], [1, 1]);
    // A frame for port 2 alone waits for its buffer...
    s.send(0, 1, &frame(mac(5, 2), mac(5, 0), b"wait for me"));
    assert_eq!(s.used_idx(0, TRANSMITQ), 1, "waiting");
    // ... and moves once port 2 posts one.
    s.post_rx(2, 0, 0x400);
    assert_eq!(s.kick(2, RECEIVEQ), [true, false, true]);
    assert_eq!([s.used_idx(0, TRANSMITQ), s.used_idx(2, RECEIVEQ)], [2, 1]);
    // A port without a driver loses what is sent to it alone, without holding anything up.
    let mut s = Setup { link: Link::new(5, VirtioKind::Net, &[0, 1, 2]), ..Setup::new() };
    s.probe(0);
    s.send(0, 0, &frame(mac(5, 1), mac(5, 0), b"nobody home"));
    assert_eq!((s.used_idx(0, TRANSMITQ), s.link.dropped[0]), (1, 1));
}
