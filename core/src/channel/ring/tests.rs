//! Sequential tests of the ring over a [`VecRegion`]; the hostile-peer property tests and the
//! two-thread stress test live beside.

use alloc::vec::Vec;

use super::*;
use crate::channel::layout::{channel_layout, ChannelLayout};
use crate::channel::{RawRegion, VecRegion};

mod hostile;
mod stress;

/// A one-way channel with a 4 KiB ring (3 pages), max message 1024.
fn small() -> (VecRegion, RingLayout) {
    let layout = channel_layout(3 * 4096, Some(0)).unwrap();
    (VecRegion::new(layout.size as usize), layout.rings()[0])
}

fn pair<'a>(mem: &'a VecRegion, ring: &RingLayout) -> (Producer<&'a VecRegion>, Consumer<&'a VecRegion>) {
    (Producer::init(mem, ring).unwrap(), Consumer::attach(mem, ring).unwrap())
}

/// A payload of `len` bytes that depends on `seed`.
fn payload(seed: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seed as usize * 31 + i * 7) as u8).collect()
}

fn recv(c: &mut Consumer<impl SharedMemory>) -> Result<Vec<u8>, RecvError> {
    let mut buf = [0u8; 4096];
    c.try_recv(&mut buf).map(|n| buf[..n].to_vec())
}

#[test]
fn header_bytes_match_the_documented_abi() {
    let (mem, ring) = small();
    let mut p = Producer::init(&mem, &ring).unwrap();
    let mut page = [0u8; 64];
    mem.copy_out(0, &mut page);
    assert_eq!(&page[0..4], b"TaRg");
    assert_eq!(page[4..8], 1u32.to_le_bytes());
    assert_eq!(page[8..12], 4096u32.to_le_bytes());
    assert_eq!(page[12..16], 1024u32.to_le_bytes());
    assert_eq!(page[16..20], 0u32.to_le_bytes());
    assert!(page[20..].iter().all(|&b| b == 0));
    assert_eq!(
        (MAGIC_OFFSET, VERSION_OFFSET, CAPACITY_OFFSET, MAX_MESSAGE_OFFSET, HEAD_OFFSET),
        (0, 4, 8, 12, 16)
    );
    assert_eq!(TAIL_OFFSET, 0);

    p.send(b"abc").unwrap();
    let mut record = [0u8; 16];
    mem.copy_out(8192, &mut record);
    assert_eq!(&record[..7], b"\x03\0\0\0abc");
    assert_eq!(mem.read_u32(HEAD_OFFSET), 8);
    p.send(b"12345").unwrap();
    assert_eq!(mem.read_u32(HEAD_OFFSET), 8 + 16);
    mem.copy_out(8192 + 8, &mut record);
    assert_eq!(&record[..9], b"\x05\0\0\x0012345");

    let mut c = Consumer::attach(&mem, &ring).unwrap();
    assert_eq!(recv(&mut c).unwrap(), b"abc");
    assert_eq!(mem.read_u32(4096 + TAIL_OFFSET), 8);
}

#[test]
fn record_sizes() {
    assert_eq!([0, 1, 4, 5, 12, 13, 1020, 1021].map(record_size), [8, 8, 8, 16, 16, 24, 1024, 1032]);
}

#[test]
fn many_messages_of_every_size_wrap_around() {
    let (mem, ring) = small();
    let (mut p, mut c) = pair(&mem, &ring);
    let mut sent = 0u32;
    // 1025 sizes, several laps of the 4 KiB ring, records landing across the end at every offset.
    for round in 0..3u32 {
        for len in 0..=1024usize {
            let msg = payload(sent, len);
            p.send(&msg).unwrap();
            if (len + round as usize).is_multiple_of(3) {
                p.send(&msg[..len / 2]).unwrap();
                assert_eq!(recv(&mut c).unwrap(), msg);
                assert_eq!(recv(&mut c).unwrap(), &msg[..len / 2]);
            } else {
                assert_eq!(recv(&mut c).unwrap(), msg);
            }
            sent += 1;
        }
    }
    assert_eq!(recv(&mut c), Err(RecvError::Empty));
    assert!(!c.pending() && !p.pending());
}

#[test]
fn full_empty_and_exact_fit() {
    let (mem, ring) = small();
    let (mut p, mut c) = pair(&mem, &ring);
    assert_eq!(recv(&mut c), Err(RecvError::Empty));
    // Four 1020-byte messages are four 1024-byte records: exactly the capacity.
    for i in 0..4 {
        p.send(&payload(i, 1020)).unwrap();
    }
    assert!(p.pending() && c.pending());
    assert_eq!(p.send(&[]), Err(SendError::Full));
    assert_eq!(p.send(&[]), Err(SendError::Full), "Full is not sticky but stays until space frees");
    assert_eq!(recv(&mut c).unwrap(), payload(0, 1020));
    // 1024 bytes free again: one 1020-byte message fits exactly, then nothing.
    p.send(&payload(4, 1020)).unwrap();
    assert_eq!(p.send(&[]), Err(SendError::Full));
    for i in 1..5 {
        assert_eq!(recv(&mut c).unwrap(), payload(i, 1020));
    }
    assert_eq!(recv(&mut c), Err(RecvError::Empty));
    // Zero-length messages are allowed: 8-byte records, 512 of them fill the ring.
    for _ in 0..512 {
        p.send(&[]).unwrap();
    }
    assert_eq!(p.send(&[]), Err(SendError::Full));
    for _ in 0..512 {
        assert_eq!(c.try_recv(&mut []), Ok(0));
    }
    assert_eq!(c.try_recv(&mut []), Err(RecvError::Empty));
}

#[test]
fn full_writes_nothing() {
    let (mem, ring) = small();
    let (mut p, _c) = pair(&mem, &ring);
    for i in 0..4 {
        p.send(&payload(i, 1020)).unwrap();
    }
    let snapshot = |m: &VecRegion| {
        let mut b = alloc::vec![0u8; m.len()];
        m.copy_out(0, &mut b);
        b
    };
    let before = snapshot(&mem);
    assert_eq!(p.send(&[1; 8]), Err(SendError::Full));
    assert_eq!(snapshot(&mem), before);
}

#[test]
fn too_large_and_buffer_too_small() {
    let (mem, ring) = small();
    let (mut p, mut c) = pair(&mem, &ring);
    assert_eq!(p.max_message(), 1024);
    assert_eq!(c.max_message(), 1024);
    assert_eq!(p.send(&[0; 1025]), Err(SendError::TooLarge { len: 1025, max: 1024 }));
    p.send(&[7; 1024]).unwrap();
    assert_eq!(c.try_recv(&mut [0; 1023]), Err(RecvError::BufferTooSmall { needed: 1024 }));
    let mut buf = [0; 1024];
    assert_eq!(c.try_recv(&mut buf), Ok(1024), "the message stayed");
    assert_eq!(buf, [7; 1024]);
    assert!(p.corruption().is_none() && c.corruption().is_none());
}

#[test]
fn consumer_before_producer_sees_empty_until_init() {
    let (mem, ring) = small();
    let mut c = Consumer::attach(&mem, &ring).unwrap();
    assert_eq!(recv(&mut c), Err(RecvError::Empty));
    assert!(!c.pending());
    let mut p = Producer::init(&mem, &ring).unwrap();
    assert_eq!(recv(&mut c), Err(RecvError::Empty));
    p.send(b"hello").unwrap();
    assert_eq!(recv(&mut c).unwrap(), b"hello");
}

#[test]
fn either_side_reattaches_where_it_stopped() {
    let (mem, ring) = small();
    let mut p = Producer::init(&mem, &ring).unwrap();
    for i in 0..3 {
        p.send(&payload(i, 500)).unwrap();
    }
    let mut c = Consumer::attach(&mem, &ring).unwrap();
    assert_eq!(recv(&mut c).unwrap(), payload(0, 500));
    let mut p = Producer::attach(&mem, &ring).unwrap();
    let mut c = Consumer::attach(&mem, &ring).unwrap();
    p.send(&payload(3, 500)).unwrap();
    for i in 1..4 {
        assert_eq!(recv(&mut c).unwrap(), payload(i, 500));
    }
}

#[test]
fn open_inits_a_fresh_ring_and_resumes_an_initialised_one() {
    let (mem, ring) = small();
    let mut c = Consumer::attach(&mem, &ring).unwrap();
    let mut p = Producer::open(&mem, &ring).unwrap();
    p.send(b"one").unwrap();
    p.send(b"two").unwrap();
    assert_eq!(recv(&mut c).unwrap(), b"one");
    // The producer restarts: `init` would rewind head under the consumer; `open` carries on.
    let mut p = Producer::open(&mem, &ring).unwrap();
    p.send(b"three").unwrap();
    assert_eq!(recv(&mut c).unwrap(), b"two");
    assert_eq!(recv(&mut c).unwrap(), b"three");
    let mut p = Producer::init(&mem, &ring).unwrap();
    p.send(b"four").unwrap();
    assert_eq!(recv(&mut c), Err(RecvError::Corrupt(Corruption::IndexOutOfRange { head: 8, tail: 32 })));
    poke(&mem, MAGIC_OFFSET, 7);
    assert_eq!(
        Producer::open(&mem, &ring).err(),
        Some(AttachError::Corrupt(Corruption::BadMagic { found: 7 }))
    );
}

#[test]
fn duplex_rings_are_independent() {
    let layout: ChannelLayout = channel_layout(64 * 1024, None).unwrap();
    let mem = VecRegion::new(layout.size as usize);
    let mut p0 = Producer::init(&mem, layout.tx_ring(0).unwrap()).unwrap();
    let mut p1 = Producer::init(&mem, layout.tx_ring(1).unwrap()).unwrap();
    let mut c0 = Consumer::attach(&mem, layout.rx_ring(0).unwrap()).unwrap();
    let mut c1 = Consumer::attach(&mem, layout.rx_ring(1).unwrap()).unwrap();
    p0.send(b"ping").unwrap();
    p1.send(b"pong").unwrap();
    assert_eq!(recv(&mut c1).unwrap(), b"ping");
    assert_eq!(recv(&mut c0).unwrap(), b"pong");
}

#[test]
fn raw_region_carries_a_ring() {
    let layout = channel_layout(5 * 4096, Some(1)).unwrap();
    let mem = RawRegion::leak_zeroed(layout.size as usize);
    let ring = layout.rings()[0];
    let mut p = Producer::init(mem, &ring).unwrap();
    let mut c = Consumer::attach(mem, &ring).unwrap();
    for i in 0..10_000u32 {
        let msg = payload(i, (i % 300) as usize);
        p.send(&msg).unwrap();
        assert_eq!(recv(&mut c).unwrap(), msg);
    }
}

#[test]
fn bad_layouts_and_small_regions_are_refused() {
    let (mem, ring) = small();
    let short = VecRegion::new(3 * 4096 - 8);
    assert_eq!(Producer::init(&short, &ring).err(), Some(AttachError::RegionTooSmall));
    assert_eq!(Consumer::attach(&short, &ring).err(), Some(AttachError::RegionTooSmall));
    let far = RingLayout { data: u64::MAX - 7, ..ring };
    assert_eq!(Consumer::attach(&mem, &far).err(), Some(AttachError::RegionTooSmall));
    for bad in [
        RingLayout { capacity: 3000, ..ring },
        RingLayout { capacity: 4, max_message: 0, ..ring },
        RingLayout { max_message: 2049, ..ring },
        RingLayout { data: 8196, ..ring },
        RingLayout { consumer_page: 4097, ..ring },
    ] {
        assert_eq!(Producer::init(&mem, &bad).err(), Some(AttachError::BadLayout), "{bad:?}");
        assert_eq!(Consumer::attach(&mem, &bad).err(), Some(AttachError::BadLayout), "{bad:?}");
    }
}

/// Writes `value` at `offset` of the region: what a hostile peer can do to its own pages.
fn poke(mem: &VecRegion, offset: usize, value: u32) {
    mem.write_u32(offset, value);
}

#[test]
fn consumer_reports_each_corruption_and_stays_dead() {
    let data = 8192;
    let cases: [(usize, u32, Corruption); 7] = [
        (MAGIC_OFFSET, 0x1234, Corruption::BadMagic { found: 0x1234 }),
        (VERSION_OFFSET, 2, Corruption::BadVersion { found: 2 }),
        (CAPACITY_OFFSET, 8192, Corruption::CapacityMismatch { found: 8192, expected: 4096 }),
        (MAX_MESSAGE_OFFSET, 2048, Corruption::MaxMessageMismatch { found: 2048, expected: 1024 }),
        (HEAD_OFFSET, 4104, Corruption::IndexOutOfRange { head: 4104, tail: 0 }),
        (HEAD_OFFSET, 12, Corruption::Misaligned { index: 12 }),
        (data, 1025, Corruption::LengthOutOfRange { len: 1025 }),
    ];
    for (offset, value, expected) in cases {
        let (mem, ring) = small();
        let mut p = Producer::init(&mem, &ring).unwrap();
        p.send(b"x").unwrap();
        poke(&mem, offset, value);
        let mut c = Consumer::attach(&mem, &ring).unwrap();
        assert_eq!(recv(&mut c), Err(RecvError::Corrupt(expected)), "poke {offset:#x} = {value:#x}");
        poke(&mem, offset, 0);
        assert_eq!(recv(&mut c), Err(RecvError::Corrupt(expected)), "sticky");
        assert_eq!(c.corruption(), Some(expected));
        assert!(!c.pending());
    }
}

#[test]
fn consumer_refuses_a_length_beyond_the_published_bytes() {
    let (mem, ring) = small();
    let mut p = Producer::init(&mem, &ring).unwrap();
    let mut c = Consumer::attach(&mem, &ring).unwrap();
    p.send(b"12345").unwrap();
    // "12345" took a 16-byte record; a peer may claim up to 12 bytes of it, no more.
    poke(&mem, 8192, 12);
    assert_eq!(recv(&mut c).unwrap().len(), 12);
    p.send(b"1").unwrap();
    poke(&mem, 8192 + 16, 5);
    assert_eq!(recv(&mut c), Err(RecvError::Corrupt(Corruption::LengthOutOfRange { len: 5 })));
}

#[test]
fn head_moving_backwards_is_corrupt() {
    let (mem, ring) = small();
    let mut p = Producer::init(&mem, &ring).unwrap();
    let mut c = Consumer::attach(&mem, &ring).unwrap();
    p.send(b"a").unwrap();
    p.send(b"b").unwrap();
    assert_eq!(recv(&mut c).unwrap(), b"a");
    assert_eq!(recv(&mut c).unwrap(), b"b");
    poke(&mem, HEAD_OFFSET, 8);
    assert_eq!(recv(&mut c), Err(RecvError::Corrupt(Corruption::IndexOutOfRange { head: 8, tail: 16 })));
}

#[test]
fn producer_reports_an_impossible_tail_and_stays_dead() {
    let tail_at = 4096 + TAIL_OFFSET;
    for (tail, expected) in [
        (4104, Corruption::IndexOutOfRange { head: 4096, tail: 4104 }),
        (u32::MAX - 7, Corruption::IndexOutOfRange { head: 4096, tail: u32::MAX - 7 }),
        (4, Corruption::Misaligned { index: 4 }),
    ] {
        let (mem, ring) = small();
        let mut p = Producer::init(&mem, &ring).unwrap();
        for i in 0..4 {
            p.send(&payload(i, 1020)).unwrap();
        }
        poke(&mem, tail_at, tail);
        assert_eq!(p.send(b""), Err(SendError::Corrupt(expected)), "tail {tail:#x}");
        poke(&mem, tail_at, 0);
        assert_eq!(p.send(b""), Err(SendError::Corrupt(expected)), "sticky");
        assert_eq!(p.corruption(), Some(expected));
        assert!(Consumer::attach(&mem, &ring).is_ok());
    }
}

#[test]
fn producer_only_looks_at_the_tail_when_it_needs_space() {
    let (mem, ring) = small();
    let (mut p, mut c) = pair(&mem, &ring);
    p.send(b"x").unwrap();
    poke(&mem, 4096 + TAIL_OFFSET, 4);
    // The cached tail still leaves room: nothing is read, nothing is wrong yet.
    p.send(&[0; 1000]).unwrap();
    poke(&mem, 4096 + TAIL_OFFSET, 0);
    assert_eq!(recv(&mut c).unwrap(), b"x");
}

#[test]
fn tail_moving_backwards_is_corrupt() {
    let (mem, ring) = small();
    let (mut p, mut c) = pair(&mem, &ring);
    for i in 0..4 {
        p.send(&payload(i, 1020)).unwrap();
    }
    assert_eq!(recv(&mut c).unwrap(), payload(0, 1020));
    assert_eq!(recv(&mut c).unwrap(), payload(1, 1020));
    for i in 4..6 {
        p.send(&payload(i, 1020)).unwrap();
    }
    poke(&mem, 4096 + TAIL_OFFSET, 1024);
    assert_eq!(p.send(b""), Err(SendError::Corrupt(Corruption::IndexOutOfRange { head: 6144, tail: 1024 })));
}

#[test]
fn producer_attach_checks_its_header_and_indices() {
    let (mem, ring) = small();
    assert_eq!(
        Producer::attach(&mem, &ring).err(),
        Some(AttachError::Corrupt(Corruption::BadMagic { found: 0 }))
    );
    let _ = Producer::init(&mem, &ring).unwrap();
    poke(&mem, HEAD_OFFSET, 4);
    assert_eq!(
        Producer::attach(&mem, &ring).err(),
        Some(AttachError::Corrupt(Corruption::Misaligned { index: 4 }))
    );
    poke(&mem, HEAD_OFFSET, 8);
    poke(&mem, 4096 + TAIL_OFFSET, 16);
    assert_eq!(
        Producer::attach(&mem, &ring).err(),
        Some(AttachError::Corrupt(Corruption::IndexOutOfRange { head: 8, tail: 16 }))
    );
    poke(&mem, 4096 + TAIL_OFFSET, 12);
    assert_eq!(
        Producer::attach(&mem, &ring).err(),
        Some(AttachError::Corrupt(Corruption::Misaligned { index: 12 }))
    );
    assert_eq!(
        Consumer::attach(&mem, &ring).err(),
        Some(AttachError::Corrupt(Corruption::Misaligned { index: 12 }))
    );
    poke(&mem, CAPACITY_OFFSET, 1);
    assert_eq!(
        Producer::attach(&mem, &ring).err(),
        Some(AttachError::Corrupt(Corruption::CapacityMismatch { found: 1, expected: 4096 }))
    );
}

#[test]
fn errors_print_for_people() {
    let text = alloc::format!("{}", SendError::Corrupt(Corruption::IndexOutOfRange { head: 8, tail: 16 }));
    assert_eq!(text, "corrupt ring: ring indices out of range: head 0x8, tail 0x10");
    assert_eq!(
        alloc::format!("{}", RecvError::BufferTooSmall { needed: 9 }),
        "next message needs a 9-byte buffer"
    );
    assert_eq!(alloc::format!("{}", Corruption::BadMagic { found: 1 }), "bad ring magic 0x00000001");
}
