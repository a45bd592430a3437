//! Property tests with a hostile peer: random values written into the shared pages between
//! operations, and random values seen by reads of the peer's memory during them. Whatever
//! happens, each side returns `Ok` or an error, never panics, never touches memory outside the
//! region, and never writes a byte its stage-2 permissions would refuse.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::cell::RefCell;

use proptest::prelude::*;

use super::*;

/// One endpoint's view of the region. Any access outside the region, misaligned word access or
/// write outside the endpoint's writable ranges fails the test. Each 32-bit read of memory the
/// endpoint cannot write takes the next value of `lies` when it is `Some`: what a peer writing
/// concurrently could make it see.
struct Guarded<'a> {
    mem: &'a VecRegion,
    writable: Vec<(usize, usize)>,
    lies: RefCell<VecDeque<Option<u32>>>,
}

impl<'a> Guarded<'a> {
    fn new(mem: &'a VecRegion, layout: &ChannelLayout, endpoint: usize, lies: Vec<Option<u32>>) -> Self {
        let writable = layout
            .permissions(endpoint)
            .into_iter()
            .filter(|p| p.2)
            .map(|(o, l, _)| (o as usize, (o + l) as usize))
            .collect();
        Self { mem, writable, lies: RefCell::new(lies.into()) }
    }

    fn inside(&self, offset: usize, n: usize) {
        assert!(
            offset.checked_add(n).is_some_and(|e| e <= self.mem.len()),
            "access {offset:#x}+{n} out of the region"
        );
    }

    fn may_write(&self, offset: usize, n: usize) -> bool {
        self.writable.iter().any(|&(s, e)| s <= offset && offset + n <= e)
    }

    fn word(&self, offset: usize, real: impl FnOnce() -> u32) -> u32 {
        self.inside(offset, 4);
        assert_eq!(offset % 4, 0, "misaligned word at {offset:#x}");
        let real = real();
        if self.may_write(offset, 4) {
            return real;
        }
        self.lies.borrow_mut().pop_front().flatten().unwrap_or(real)
    }

    fn write(&self, offset: usize, n: usize) {
        self.inside(offset, n);
        assert!(n == 0 || self.may_write(offset, n), "write {offset:#x}+{n} to a read-only page");
    }
}

impl SharedMemory for Guarded<'_> {
    fn len(&self) -> usize {
        self.mem.len()
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        self.word(offset, || self.mem.load_u32_acquire(offset))
    }
    fn store_u32_release(&self, offset: usize, value: u32) {
        assert_eq!(offset % 4, 0);
        self.write(offset, 4);
        self.mem.store_u32_release(offset, value)
    }
    fn read_u32(&self, offset: usize) -> u32 {
        self.word(offset, || self.mem.read_u32(offset))
    }
    fn write_u32(&self, offset: usize, value: u32) {
        assert_eq!(offset % 4, 0);
        self.write(offset, 4);
        self.mem.write_u32(offset, value)
    }
    fn copy_in(&self, offset: usize, src: &[u8]) {
        self.write(offset, src.len());
        self.mem.copy_in(offset, src)
    }
    fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        self.inside(offset, dst.len());
        self.mem.copy_out(offset, dst)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Send(usize),
    Recv(usize),
    /// Write a word anywhere in the ring's pages: header, indices, data.
    Poke {
        offset: usize,
        value: u32,
    },
    ReattachProducer,
    OpenProducer,
    ReattachConsumer,
}

/// A ring in a one-way or duplex channel, with a random maximum message size.
fn ring_strategy() -> impl Strategy<Value = (ChannelLayout, usize)> {
    let layout = (3u64..7, prop::option::of(0usize..2), 0u32..4).prop_map(|(pages, writer, max)| {
        let pages = if writer.is_none() { 2 * pages } else { pages };
        let layout = channel_layout(pages * 4096, writer).unwrap();
        let cap = layout.rings()[0].capacity;
        layout.with_max_message([cap / 4, cap / 2, 0, 13][max as usize]).unwrap()
    });
    (layout, 0usize..2).prop_map(|(l, r)| {
        let ring = r % l.rings().len();
        (l, ring)
    })
}

fn value() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        (0u32..20_000).prop_map(|v| v & !7),
        (0u32..64).prop_map(|v| v.wrapping_sub(32)),
        Just(RING_MAGIC),
        Just(RING_VERSION),
        (12u32..17).prop_map(|s| 1 << s),
    ]
}

fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    let offset = prop_oneof![
        (0usize..5).prop_map(|i| i * 4),
        Just(4096 + TAIL_OFFSET),
        (0usize..64).prop_map(|i| 8192 + i * 4),
        (0usize..16384 / 4).prop_map(|i| i * 4),
    ];
    let op = prop_oneof![
        4 => (0..max_len).prop_map(Op::Send),
        4 => (0..max_len).prop_map(Op::Recv),
        2 => (offset, value()).prop_map(|(offset, value)| Op::Poke { offset, value }),
        1 => Just(Op::ReattachProducer),
        1 => Just(Op::OpenProducer),
        1 => Just(Op::ReattachConsumer),
    ];
    prop::collection::vec(op, 0..160)
}

fn lies() -> impl Strategy<Value = Vec<Option<u32>>> {
    prop::collection::vec(prop::option::weighted(0.2, value()), 0..200)
}

/// Checks one call's result against the side's state before it: a dead side stays dead with the
/// same corruption, a live one dies only by reporting it.
fn check_sticky<T: core::fmt::Debug>(
    before: Option<Corruption>,
    after: Option<Corruption>,
    corrupt: Option<Corruption>,
    result: &T,
) {
    if before.is_some() {
        assert_eq!(corrupt, before, "sticky: {result:?}");
    }
    assert_eq!(after, corrupt.or(before), "{result:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hostile_peer_never_breaks_either_side(
        (layout, r) in ring_strategy(),
        ops in ops(2200),
        p_lies in lies(),
        c_lies in lies(),
    ) {
        let ring = layout.rings()[r];
        let mem = VecRegion::new(layout.size as usize);
        let p_mem = Guarded::new(&mem, &layout, ring.producer, p_lies);
        let c_mem = Guarded::new(&mem, &layout, ring.consumer, c_lies);
        let mut producer = Producer::init(&p_mem, &ring).ok();
        let mut consumer = Consumer::attach(&c_mem, &ring).ok();
        let max = ring.max_message as usize;
        let base = ring.producer_page as usize;
        let mut buf = alloc::vec![0u8; 4096];
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Send(len) => if let Some(p) = producer.as_mut() {
                    let before = p.corruption();
                    let result = p.send(&payload(i as u32, len));
                    let corrupt = match result {
                        Err(SendError::Corrupt(c)) => Some(c),
                        Err(SendError::TooLarge { len: l, max: m }) => {
                            prop_assert!(l > max && l == len && m as usize == max);
                            None
                        }
                        _ => None,
                    };
                    check_sticky(before, p.corruption(), corrupt, &result);
                },
                Op::Recv(len) => if let Some(c) = consumer.as_mut() {
                    let before = c.corruption();
                    let result = c.try_recv(&mut buf[..len]);
                    let corrupt = match result {
                        Ok(n) => {
                            prop_assert!(n <= len && n <= max);
                            None
                        }
                        Err(RecvError::BufferTooSmall { needed }) => {
                            prop_assert!(needed > len && needed <= max);
                            None
                        }
                        Err(RecvError::Corrupt(c)) => Some(c),
                        Err(RecvError::Empty) => None,
                    };
                    check_sticky(before, c.corruption(), corrupt, &result);
                    let _ = c.pending();
                },
                Op::Poke { offset, value } => mem.write_u32((base + offset) % mem.len(), value),
                Op::ReattachProducer => producer = Producer::attach(&p_mem, &ring).ok(),
                Op::OpenProducer => producer = Producer::open(&p_mem, &ring).ok(),
                Op::ReattachConsumer => consumer = Consumer::attach(&c_mem, &ring).ok(),
            }
            if let Some(p) = producer.as_ref() {
                let _ = p.pending();
            }
        }
    }

    /// Without a hostile peer the ring behaves exactly like a queue of byte strings bounded by
    /// the capacity, and each side writes only its own pages.
    #[test]
    fn honest_ring_is_a_bounded_queue(
        (layout, r) in ring_strategy(),
        ops in prop::collection::vec((any::<bool>(), 0usize..2200), 0..400),
    ) {
        let ring = layout.rings()[r];
        let mem = VecRegion::new(layout.size as usize);
        let p_mem = Guarded::new(&mem, &layout, ring.producer, Vec::new());
        let c_mem = Guarded::new(&mem, &layout, ring.consumer, Vec::new());
        let mut producer = Producer::init(&p_mem, &ring).unwrap();
        let mut consumer = Consumer::attach(&c_mem, &ring).unwrap();
        let (cap, max) = (ring.capacity as usize, ring.max_message as usize);
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let in_flight = |m: &VecDeque<Vec<u8>>| m.iter().map(|v| record_size(v.len() as u32) as usize).sum::<usize>();
        let mut buf = alloc::vec![0u8; 4096];
        for (i, (send, len)) in ops.into_iter().enumerate() {
            if send {
                let msg = payload(i as u32, len);
                let expected = if len > max {
                    Err(SendError::TooLarge { len, max: max as u32 })
                } else if in_flight(&model) + record_size(len as u32) as usize > cap {
                    Err(SendError::Full)
                } else {
                    model.push_back(msg.clone());
                    Ok(())
                };
                prop_assert_eq!(producer.send(&msg), expected);
            } else {
                let result = consumer.try_recv(&mut buf[..len]);
                match model.front() {
                    None => prop_assert_eq!(result, Err(RecvError::Empty)),
                    Some(m) if m.len() > len => {
                        prop_assert_eq!(result, Err(RecvError::BufferTooSmall { needed: m.len() }))
                    }
                    Some(m) => {
                        prop_assert_eq!(result, Ok(m.len()));
                        prop_assert_eq!(&buf[..m.len()], &m[..]);
                        model.pop_front();
                    }
                }
            }
            prop_assert_eq!(producer.pending(), !model.is_empty());
            prop_assert_eq!(consumer.pending(), !model.is_empty());
        }
    }
}
