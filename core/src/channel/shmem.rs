//! Access to a channel's shared memory: the [`SharedMemory`] trait the rings are written against,
//! and [`RawRegion`], its implementation over a raw mapping.
//!
//! This is the only module of `tantalum-core` that contains `unsafe` code. The peer may write the
//! region at any time, so no Rust reference to plain data in it is ever created: 32-bit index
//! words go through [`AtomicU32::from_ptr`] (an atomic view, which tolerates concurrent writers),
//! and payload bytes are copied with volatile accesses. Every access is bounds-checked here, so a
//! wrong offset can at worst read zeros or lose a write, never touch memory outside the region.
#![allow(unsafe_code)]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

/// Memory shared with the other endpoint of a channel, addressed by byte offsets.
///
/// Implementations must bounds-check every access: a 32-bit access whose offset is not a multiple
/// of 4 or does not fit reads 0 / is ignored, a copy that does not fit reads zeros / is ignored.
/// Methods take `&self`: the memory is shared, and the other side writes it anyway.
pub trait SharedMemory {
    /// Bytes in the region.
    fn len(&self) -> usize;
    /// Whether the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Atomic load with Acquire ordering: later reads see what the writer wrote before its
    /// matching Release store.
    fn load_u32_acquire(&self, offset: usize) -> u32;
    /// Atomic store with Release ordering: earlier writes are visible to whoever Acquire-loads it.
    fn store_u32_release(&self, offset: usize, value: u32);
    /// Atomic load, Relaxed ordering.
    fn read_u32(&self, offset: usize) -> u32;
    /// Atomic store, Relaxed ordering.
    fn write_u32(&self, offset: usize, value: u32);
    /// Copies `src` into the region at `offset`.
    fn copy_in(&self, offset: usize, src: &[u8]);
    /// Copies `dst.len()` bytes at `offset` out of the region.
    fn copy_out(&self, offset: usize, dst: &mut [u8]);
}

/// The four 32-bit accessors of [`SharedMemory`] for a type with
/// `fn word(&self, offset: usize) -> Option<&AtomicU32>` (a bounds-checked, aligned word).
macro_rules! word_accessors {
    () => {
        fn load_u32_acquire(&self, offset: usize) -> u32 {
            self.word(offset).map_or(0, |w| w.load(Ordering::Acquire))
        }

        fn store_u32_release(&self, offset: usize, value: u32) {
            if let Some(w) = self.word(offset) {
                w.store(value, Ordering::Release);
            }
        }

        fn read_u32(&self, offset: usize) -> u32 {
            self.word(offset).map_or(0, |w| w.load(Ordering::Relaxed))
        }

        fn write_u32(&self, offset: usize, value: u32) {
            if let Some(w) = self.word(offset) {
                w.store(value, Ordering::Relaxed);
            }
        }
    };
}
pub(super) use word_accessors;

impl<M: SharedMemory + ?Sized> SharedMemory for &M {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        (**self).load_u32_acquire(offset)
    }
    fn store_u32_release(&self, offset: usize, value: u32) {
        (**self).store_u32_release(offset, value)
    }
    fn read_u32(&self, offset: usize) -> u32 {
        (**self).read_u32(offset)
    }
    fn write_u32(&self, offset: usize, value: u32) {
        (**self).write_u32(offset, value)
    }
    fn copy_in(&self, offset: usize, src: &[u8]) {
        (**self).copy_in(offset, src)
    }
    fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        (**self).copy_out(offset, dst)
    }
}

/// A shared region given by a raw pointer and a length: a partition's mapping of its channel, or
/// (in host tests) leaked heap memory. Copies are further views of the same memory.
#[derive(Clone, Copy, Debug)]
pub struct RawRegion {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a `RawRegion` is a pointer into memory that, by the contract of `RawRegion::new`, stays
// valid and is only ever accessed atomically or volatilely, from any thread or partition; moving
// the view to another thread adds no access that the contract does not already allow.
unsafe impl Send for RawRegion {}
// SAFETY: every method takes `&self` and uses only atomic or volatile accesses, which the contract
// of `RawRegion::new` allows to race with any other thread or partition.
unsafe impl Sync for RawRegion {}

impl RawRegion {
    /// A view of the `len` bytes at `base`; `None` if `base` is null or not 8-byte aligned.
    ///
    /// # Safety
    /// For as long as the returned value or any copy of it is alive:
    /// - `base..base + len` is mapped readable and writable memory (normal memory, not device
    ///   memory: atomics need it) that the Rust allocator does not hand out to anyone else;
    /// - this program accesses those bytes only through `RawRegion`s or other atomic or volatile
    ///   accesses, never through Rust references. Writes by another partition or device are fine.
    pub unsafe fn new(base: *mut u8, len: usize) -> Option<Self> {
        let base = NonNull::new(base)?;
        if !(base.as_ptr() as usize).is_multiple_of(8) || (base.as_ptr() as usize).checked_add(len).is_none()
        {
            return None;
        }
        Some(Self { base, len })
    }

    /// A zeroed, 8-byte-aligned region of `len` bytes on the heap, leaked (host tests).
    #[cfg(test)]
    pub(crate) fn leak_zeroed(len: usize) -> Self {
        let words: &'static mut [u64] = alloc::vec![0u64; len.div_ceil(8)].leak();
        // SAFETY: the leaked allocation is never freed and, once the `&mut` above is dropped, is
        // reachable only through this pointer, so only `RawRegion`s access it. It is `len` bytes
        // long at least and 8-aligned; a `Vec`'s pointer is never null.
        unsafe { Self::new(words.as_mut_ptr().cast(), len) }.expect("a Vec<u64> pointer is 8-aligned")
    }

    /// Pointer to the `n` bytes at `offset`, if they lie inside the region.
    fn span(&self, offset: usize, n: usize) -> Option<*mut u8> {
        let end = offset.checked_add(n)?;
        (end <= self.len).then(|| self.base.as_ptr().wrapping_add(offset))
    }

    /// The 32-bit word at `offset`, if it is 4-aligned and inside the region.
    fn word(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) {
            return None;
        }
        let ptr = self.span(offset, 4)?.cast::<u32>();
        // SAFETY: `ptr` is inside the region (checked by `span`) and 4-aligned (base is 8-aligned,
        // offset a multiple of 4). By the contract of `new` the memory stays valid while `self`
        // lives, which outlives the returned reference, and is accessed only atomically or
        // volatilely: the ring protocol orders the volatile payload copies against the atomic
        // accesses to the same bytes (Release/Acquire on head and tail), and a peer partition is
        // outside this program. An `&AtomicU32` is an atomic view, which concurrent writers do not
        // invalidate (unlike `&u32`).
        Some(unsafe { AtomicU32::from_ptr(ptr) })
    }
}

impl SharedMemory for RawRegion {
    fn len(&self) -> usize {
        self.len
    }

    word_accessors!();

    fn copy_in(&self, offset: usize, src: &[u8]) {
        let Some(dst) = self.span(offset, src.len()) else { return };
        let mut i = 0;
        while i < src.len() {
            let at = dst.wrapping_add(i);
            if (at as usize).is_multiple_of(8) && src.len() - i >= 8 {
                let mut word = [0u8; 8];
                word.copy_from_slice(&src[i..i + 8]);
                // SAFETY: `at..at + 8` lies inside the region (`span` checked `dst..dst + len`)
                // and is 8-aligned; the contract of `new` keeps it valid and lets volatile writes
                // race only with a peer outside this program.
                unsafe { at.cast::<u64>().write_volatile(u64::from_ne_bytes(word)) };
                i += 8;
            } else {
                // SAFETY: `at` lies inside the region, as above; bytes need no alignment.
                unsafe { at.write_volatile(src[i]) };
                i += 1;
            }
        }
    }

    fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        let Some(src) = self.span(offset, dst.len()) else {
            dst.fill(0);
            return;
        };
        let mut i = 0;
        while i < dst.len() {
            let at = src.wrapping_add(i);
            if (at as usize).is_multiple_of(8) && dst.len() - i >= 8 {
                // SAFETY: `at..at + 8` lies inside the region (`span` checked `src..src + len`)
                // and is 8-aligned; the contract of `new` keeps it valid, and a volatile read of
                // bytes a peer partition may be changing yields some value, never UB for us.
                let word = unsafe { at.cast::<u64>().read_volatile() };
                dst[i..i + 8].copy_from_slice(&word.to_ne_bytes());
                i += 8;
            } else {
                // SAFETY: `at` lies inside the region, as above; bytes need no alignment.
                dst[i] = unsafe { at.read_volatile() };
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
