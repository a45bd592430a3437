use proptest::prelude::*;

use super::*;

const KIB: u64 = 1024;

/// Per byte-range access of `endpoint`, checked to cover `0..size` exactly, in order.
fn checked_permissions(layout: &ChannelLayout, endpoint: usize) -> Vec<(u64, u64, bool)> {
    let perms = layout.permissions(endpoint);
    let mut at = 0;
    for &(offset, len, _) in &perms {
        assert_eq!(offset, at, "ranges must be adjacent: {perms:x?}");
        assert!(len > 0 && offset % PAGE_SIZE == 0 && len % PAGE_SIZE == 0, "{perms:x?}");
        at = offset + len;
    }
    assert_eq!(at, layout.size, "ranges must cover the region: {perms:x?}");
    for pair in perms.windows(2) {
        assert_ne!(pair[0].2, pair[1].2, "equal neighbours are merged: {perms:x?}");
    }
    perms
}

fn writable(perms: &[(u64, u64, bool)], offset: u64) -> bool {
    perms.iter().any(|&(o, l, w)| w && (o..o + l).contains(&offset))
}

fn writable_bytes(perms: &[(u64, u64, bool)], start: u64, len: u64) -> u64 {
    perms.iter().filter(|p| p.2).map(|&(o, l, _)| (o + l).min(start + len).saturating_sub(o.max(start))).sum()
}

#[test]
fn duplex_16_pages() {
    let layout = channel_layout(64 * KIB, None).unwrap();
    let [r0, r1] = layout.rings() else { panic!("two rings") };
    assert_eq!((r0.producer, r0.consumer, r1.producer, r1.consumer), (0, 1, 1, 0));
    assert_eq!((r0.producer_page, r0.consumer_page, r0.data), (0, 4 * KIB, 8 * KIB));
    assert_eq!((r1.producer_page, r1.consumer_page, r1.data), (32 * KIB, 36 * KIB, 40 * KIB));
    // 24 KiB of room per half: a 16 KiB data area, 8 KiB left over.
    assert_eq!((r0.capacity, r1.capacity), (16 * 1024, 16 * 1024));
    assert_eq!(r0.max_message, 4096);
    assert_eq!(layout.tx_ring(0), Some(r0));
    assert_eq!(layout.rx_ring(0), Some(r1));
    assert_eq!(layout.tx_ring(1), Some(r1));
    assert_eq!(layout.tx_ring(2), None);
    assert_eq!(
        checked_permissions(&layout, 0),
        vec![
            (0, 4 * KIB, true),
            (4 * KIB, 4 * KIB, false),
            (8 * KIB, 16 * KIB, true),
            (24 * KIB, 12 * KIB, false),
            (36 * KIB, 4 * KIB, true),
            (40 * KIB, 24 * KIB, false)
        ]
    );
    assert_eq!(
        checked_permissions(&layout, 1),
        vec![
            (0, 4 * KIB, false),
            (4 * KIB, 4 * KIB, true),
            (8 * KIB, 24 * KIB, false),
            (32 * KIB, 4 * KIB, true),
            (36 * KIB, 4 * KIB, false),
            (40 * KIB, 16 * KIB, true),
            (56 * KIB, 8 * KIB, false)
        ]
    );
}

#[test]
fn one_way_reader_writes_only_its_consumer_page() {
    for writer in [0, 1] {
        let layout = channel_layout(12 * KIB, Some(writer)).unwrap();
        let [ring] = layout.rings() else { panic!("one ring") };
        assert_eq!((ring.producer, ring.consumer), (writer, 1 - writer));
        assert_eq!((ring.producer_page, ring.consumer_page, ring.data, ring.capacity), (0, 4096, 8192, 4096));
        assert_eq!(ring.max_message, 1024);
        assert_eq!(
            checked_permissions(&layout, 1 - writer),
            vec![(0, 4096, false), (4096, 4096, true), (8192, 4096, false)]
        );
        assert_eq!(
            checked_permissions(&layout, writer),
            vec![(0, 4096, true), (4096, 4096, false), (8192, 4096, true)]
        );
        assert_eq!(layout.rx_ring(writer), None);
        assert_eq!(layout.tx_ring(1 - writer), None);
    }
}

#[test]
fn other_endpoints_get_read_only() {
    let layout = channel_layout(64 * KIB, None).unwrap();
    assert_eq!(layout.permissions(2), vec![(0, 64 * KIB, false)]);
}

#[test]
fn errors() {
    assert_eq!(channel_layout(12 * KIB + 1, Some(0)), Err(LayoutError::Unaligned { size: 12 * KIB + 1 }));
    assert_eq!(channel_layout(0, Some(0)), Err(LayoutError::TooSmall { size: 0, min: 12 * KIB }));
    assert_eq!(channel_layout(8 * KIB, Some(1)), Err(LayoutError::TooSmall { size: 8 * KIB, min: 12 * KIB }));
    assert_eq!(channel_layout(20 * KIB, None), Err(LayoutError::TooSmall { size: 20 * KIB, min: 24 * KIB }));
    // An odd page count: each half rounds down to 12 KiB, still enough.
    assert!(channel_layout(28 * KIB, None).is_ok());
    assert_eq!(channel_layout(64 * KIB, Some(2)), Err(LayoutError::BadWriter { writer: 2 }));
    let layout = channel_layout(64 * KIB, None).unwrap();
    assert_eq!(
        layout.with_max_message(8193),
        Err(LayoutError::MaxMessageTooLarge { max_message: 8193, limit: 8192 })
    );
    let big = layout.with_max_message(8192).unwrap();
    assert!(big.rings().iter().all(|r| r.max_message == 8192));
    let text = alloc::format!("{}", LayoutError::TooSmall { size: 0x2000, min: 0x3000 });
    assert!(text.contains("0x2000") && text.contains("0x3000"), "{text}");
}

#[test]
fn huge_regions_cap_the_capacity() {
    let layout = channel_layout(1 << 40, Some(0)).unwrap();
    assert_eq!(layout.rings()[0].capacity, MAX_CAPACITY);
    checked_permissions(&layout, 0);
    checked_permissions(&layout, 1);
}

proptest! {
    #[test]
    fn any_size_lays_out_soundly(pages in 0u64..4096, writer in prop::option::of(0usize..2)) {
        let size = pages * PAGE_SIZE;
        let min = if writer.is_some() { MIN_RING_SIZE } else { 2 * MIN_RING_SIZE };
        let Ok(layout) = channel_layout(size, writer) else {
            prop_assert!(size < min);
            return Ok(());
        };
        prop_assert!(size >= min);
        prop_assert_eq!(layout.rings().len(), if writer.is_some() { 1 } else { 2 });
        let perms = [checked_permissions(&layout, 0), checked_permissions(&layout, 1)];
        for ring in layout.rings() {
            prop_assert!(ring.capacity.is_power_of_two() && ring.capacity >= MIN_CAPACITY);
            prop_assert!(ring.end() <= size);
            // The capacity is the largest power of two that fits the ring's share.
            let share = if writer.is_some() { size } else { size / 2 / PAGE_SIZE * PAGE_SIZE };
            prop_assert!(2 * u64::from(ring.capacity) > share - 2 * PAGE_SIZE);
            let (p, c) = (ring.producer, ring.consumer);
            prop_assert_eq!(p + c, 1);
            let cap = u64::from(ring.capacity);
            // The producer writes its page and the data; the consumer neither.
            prop_assert_eq!(writable_bytes(&perms[p], ring.producer_page, PAGE_SIZE), PAGE_SIZE);
            prop_assert_eq!(writable_bytes(&perms[p], ring.data, cap), cap);
            prop_assert_eq!(writable_bytes(&perms[c], ring.producer_page, PAGE_SIZE), 0);
            prop_assert_eq!(writable_bytes(&perms[c], ring.data, cap), 0);
            // The consumer writes its page; the producer does not.
            prop_assert_eq!(writable_bytes(&perms[c], ring.consumer_page, PAGE_SIZE), PAGE_SIZE);
            prop_assert_eq!(writable_bytes(&perms[p], ring.consumer_page, PAGE_SIZE), 0);
        }
        // No page is writable by both endpoints, and the rings do not overlap.
        for page in 0..pages {
            let at = page * PAGE_SIZE;
            prop_assert!(!(writable(&perms[0], at) && writable(&perms[1], at)), "page {} shared", page);
        }
        if let [a, b] = layout.rings() {
            prop_assert!(a.end() <= b.producer_page);
        }
    }
}
