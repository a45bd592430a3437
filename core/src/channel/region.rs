//! [`VecRegion`]: shared memory on the heap, in safe code, for tests and host tools.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use super::shmem::{word_accessors, SharedMemory};

/// A zeroed region on the heap made of atomic words, so it is safe to share between threads.
/// Byte writes are atomic read-modify-writes of their word: slow, but exact.
#[derive(Debug)]
pub struct VecRegion {
    words: Vec<AtomicU32>,
    len: usize,
}

impl VecRegion {
    /// A zeroed region of `len` bytes.
    pub fn new(len: usize) -> Self {
        Self { words: (0..len.div_ceil(4)).map(|_| AtomicU32::new(0)).collect(), len }
    }

    fn word(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset.checked_add(4).is_none_or(|end| end > self.len) {
            return None;
        }
        self.words.get(offset / 4)
    }

    fn fits(&self, offset: usize, n: usize) -> bool {
        offset.checked_add(n).is_some_and(|end| end <= self.len)
    }

    fn read_byte(&self, at: usize) -> u8 {
        self.words[at / 4].load(Ordering::Relaxed).to_ne_bytes()[at % 4]
    }

    fn write_byte(&self, at: usize, value: u8) {
        let update = |w: u32| {
            let mut bytes = w.to_ne_bytes();
            bytes[at % 4] = value;
            Some(u32::from_ne_bytes(bytes))
        };
        // The closure never returns `None`, so this cannot fail.
        let _ = self.words[at / 4].fetch_update(Ordering::Relaxed, Ordering::Relaxed, update);
    }
}

impl SharedMemory for VecRegion {
    fn len(&self) -> usize {
        self.len
    }

    word_accessors!();

    fn copy_in(&self, offset: usize, src: &[u8]) {
        if !self.fits(offset, src.len()) {
            return;
        }
        for (i, &b) in src.iter().enumerate() {
            self.write_byte(offset + i, b);
        }
    }

    fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        if !self.fits(offset, dst.len()) {
            dst.fill(0);
            return;
        }
        for (i, b) in dst.iter_mut().enumerate() {
            *b = self.read_byte(offset + i);
        }
    }
}
