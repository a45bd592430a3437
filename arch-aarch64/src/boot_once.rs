//! A value set once, at boot, and read by every CPU afterwards: what `spin::Once` gives without
//! its waiting, which nothing here needs (the boot CPU sets each such value before any reader
//! runs; a reader before that sees nothing) and which cost 200-870 bytes of code per instance
//! (docs/performance.md, "The hypervisor's `.text`").

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

/// A value set at most once; [`BootOnce::get`] sees it from the moment [`BootOnce::set`] returns.
pub struct BootOnce<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written only by the one `set` that moved `state` from EMPTY to WRITING,
// and read (shared) only after that `set` published READY with Release and the reader saw it
// with Acquire; `T: Send` since the value may be set on one CPU and dropped on another, `T: Sync`
// since every CPU reads it at once.
unsafe impl<T: Send + Sync> Sync for BootOnce<T> {}

impl<T> Default for BootOnce<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> BootOnce<T> {
    pub const fn new() -> Self {
        BootOnce { state: AtomicU8::new(EMPTY), value: UnsafeCell::new(MaybeUninit::uninit()) }
    }

    /// Sets the value and returns it; `Err(value)`, untouched, if it is set (or being set)
    /// already.
    pub fn set(&self, value: T) -> Result<&T, T> {
        if self.state.compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return Err(value);
        }
        // SAFETY: winning the exchange makes this call the only one that touches the value until
        // it publishes READY below; no reader looks at it before that.
        let value: &T = unsafe { (*self.value.get()).write(value) };
        self.state.store(READY, Ordering::Release);
        Ok(value)
    }

    /// The value, once set.
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY, seen with Acquire, means the value was written and never is again.
            Some(unsafe { (*self.value.get()).assume_init_ref() })
        } else {
            None
        }
    }
}

impl<T> Drop for BootOnce<T> {
    fn drop(&mut self) {
        if *self.state.get_mut() == READY {
            // SAFETY: READY means the value was written; `&mut self` means no reader is left.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn empty_until_set_then_fixed() {
        let once = BootOnce::new();
        assert_eq!(once.get(), None);
        assert_eq!(once.set(7u32), Ok(&7));
        assert_eq!(once.get(), Some(&7));
        assert_eq!(once.set(8), Err(8));
        assert_eq!(once.get(), Some(&7));
    }

    #[test]
    fn drops_its_value_once_and_only_if_set() {
        let value = Arc::new(());
        let once = BootOnce::new();
        drop(BootOnce::<Arc<()>>::new());
        assert!(once.set(Arc::clone(&value)).is_ok());
        let refused = once.set(Arc::clone(&value));
        assert_eq!(Arc::strong_count(&value), 3);
        drop(refused);
        drop(once);
        assert_eq!(Arc::strong_count(&value), 1);
    }

    #[test]
    fn racing_setters_one_wins_readers_see_it_whole() {
        for _ in 0..200 {
            let once = Arc::new(BootOnce::<[u64; 8]>::new());
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let once = Arc::clone(&once);
                    std::thread::spawn(move || {
                        let won = once.set([t; 8]).is_ok();
                        // A loser may look before the winner has published: it waits,
                        // as a reader after boot never has to.
                        let seen = loop {
                            match once.get() {
                                Some(v) => break *v,
                                None => std::hint::spin_loop(),
                            }
                        };
                        assert!(seen.iter().all(|&w| w == seen[0]), "torn value {seen:?}");
                        (won, seen[0])
                    })
                })
                .collect();
            let results: Vec<(bool, u64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            let winners: Vec<u64> = results.iter().filter(|r| r.0).map(|r| r.1).collect();
            assert_eq!(winners.len(), 1);
            assert!(results.iter().all(|r| r.1 == winners[0]));
        }
    }
}
