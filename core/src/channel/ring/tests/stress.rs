//! Two threads, one ring over a `RawRegion` on the heap: 10 million messages, each carrying its
//! sequence number and a checksum, received in order and intact.

use std::time::Instant;

use super::*;

const MESSAGES: u64 = 10_000_000;

/// FNV-1a.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Message `seq`: 12..=32 bytes of sequence number, filler and checksum of the rest.
fn message(seq: u64, buf: &mut [u8; 32]) -> usize {
    let len = 12 + (seq % 21) as usize;
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[8..len - 4].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    let sum = checksum(&buf[..len - 4]);
    buf[len - 4..len].copy_from_slice(&sum.to_le_bytes());
    len
}

/// Spins, and gives the CPU away now and then: the test machine may be busy.
fn back_off(spins: &mut u32) {
    *spins += 1;
    if (*spins).is_multiple_of(64) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

#[test]
fn ten_million_messages_between_two_threads() {
    let layout = channel_layout(64 * 1024, Some(0)).unwrap();
    let ring = layout.rings()[0];
    let mem = RawRegion::leak_zeroed(layout.size as usize);
    let mut producer = Producer::init(mem, &ring).unwrap();
    let mut consumer = Consumer::attach(mem, &ring).unwrap();
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            let (mut buf, mut spins) = ([0u8; 32], 0);
            for seq in 0..MESSAGES {
                let len = message(seq, &mut buf);
                loop {
                    match producer.send(&buf[..len]) {
                        Ok(()) => break,
                        Err(SendError::Full) => back_off(&mut spins),
                        Err(e) => panic!("send {seq}: {e}"),
                    }
                }
            }
        });
        s.spawn(move || {
            let (mut got, mut want, mut spins) = ([0u8; 64], [0u8; 32], 0);
            for seq in 0..MESSAGES {
                let n = loop {
                    match consumer.try_recv(&mut got) {
                        Ok(n) => break n,
                        Err(RecvError::Empty) => back_off(&mut spins),
                        Err(e) => panic!("recv {seq}: {e}"),
                    }
                };
                let len = message(seq, &mut want);
                let sum = u32::from_le_bytes(got[n.max(4) - 4..n.max(4)].try_into().unwrap());
                assert_eq!(u64::from_le_bytes(got[..8].try_into().unwrap()), seq, "order");
                assert_eq!(sum, checksum(&got[..n - 4]), "checksum of message {seq}");
                assert_eq!(&got[..n], &want[..len], "content of message {seq}");
            }
            assert_eq!(consumer.try_recv(&mut got), Err(RecvError::Empty));
        });
    });
    std::eprintln!("ring stress: {MESSAGES} messages in {:?}", start.elapsed());
}
