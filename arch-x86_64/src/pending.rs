//! Interrupt vectors pending for a vCPU (doorbells, IPIs from its partition's other vCPUs, a PC
//! guest's PIC interrupts), set by any CPU and taken by the one that runs the vCPU, which
//! injects them at VM entry (docs/x86.md, "Doorbells and IPIs").

use core::sync::atomic::{AtomicU64, Ordering};

/// The lowest vector that may be pending: 0..31 are the CPU's exceptions.
pub const FIRST_VECTOR: u32 = 32;

/// A set of pending vectors (32..=255).
#[derive(Debug, Default)]
pub struct PendingVectors([AtomicU64; 4]);

impl PendingVectors {
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; 4])
    }

    /// Makes `vector` pending; false (and nothing changes) if it is not an interrupt vector.
    pub fn set(&self, vector: u32) -> bool {
        if !(FIRST_VECTOR..256).contains(&vector) {
            return false;
        }
        self.0[(vector / 64) as usize].fetch_or(1 << (vector % 64), Ordering::AcqRel);
        true
    }

    /// The lowest pending vector (x86 would take the highest-priority class first; doorbells
    /// have no priorities, so the lowest number goes first), without taking it.
    #[inline(always)]
    pub fn first(&self) -> Option<u8> {
        // Every VM entry asks, nearly always of an empty set: four loads, no loop then.
        if self.0.iter().fold(0, |any, w| any | w.load(Ordering::Acquire)) == 0 {
            return None;
        }
        self.0.iter().enumerate().find_map(|(i, w)| {
            let bits = w.load(Ordering::Acquire);
            (bits != 0).then(|| (i as u32 * 64 + bits.trailing_zeros()) as u8)
        })
    }

    /// Takes `vector` (it is no longer pending).
    pub fn take(&self, vector: u8) {
        self.0[usize::from(vector / 64)].fetch_and(!(1 << (vector % 64)), Ordering::AcqRel);
    }

    /// Takes `vector` if it is pending; whether it was (so exactly one caller moves it).
    pub fn remove(&self, vector: u8) -> bool {
        let bit = 1 << (vector % 64);
        self.0[usize::from(vector / 64)].fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Follows a level-triggered line that interrupts at `vector`: pending while `high`,
    /// withdrawn (if not yet injected) once it drops, so a guest that drained the device by
    /// polling takes no interrupt for it. Whether `vector` is pending now.
    pub fn follow_line(&self, vector: u32, high: bool) -> bool {
        if high {
            self.set(vector)
        } else {
            if let Ok(v) = u8::try_from(vector) {
                self.take(v);
            }
            false
        }
    }

    pub fn any(&self) -> bool {
        self.first().is_some()
    }

    /// Forgets every pending vector (a restart).
    pub fn clear(&self) {
        for w in &self.0 {
            w.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_first_take() {
        let p = PendingVectors::new();
        assert_eq!(p.first(), None);
        for bad in [0, 31, 256, u32::MAX] {
            assert!(!p.set(bad), "{bad}");
        }
        assert!(!p.any());
        assert!(p.set(200) && p.set(97) && p.set(96));
        assert!(p.set(96)); // twice: still one
        assert_eq!(p.first(), Some(96));
        p.take(96);
        assert_eq!(p.first(), Some(97));
        p.take(97);
        assert_eq!(p.first(), Some(200));
        assert!(p.remove(200) && !p.remove(200) && !p.remove(96));
        assert!(p.set(200));
        p.clear();
        assert!(!p.any());
        assert!(p.set(255) && p.first() == Some(255));
    }

    #[test]
    fn a_level_line_is_pending_while_high() {
        let p = PendingVectors::new();
        assert!(p.set(96));
        assert!(p.follow_line(33, true));
        assert!(p.follow_line(33, true), "still high: still pending, once");
        assert_eq!(p.first(), Some(33));
        assert!(!p.follow_line(33, false));
        assert_eq!(p.first(), Some(96), "the line dropped: withdrawn, other vectors kept");
        assert!(!p.follow_line(7, true), "not an interrupt vector");
        assert!(!p.follow_line(300, false));
        assert_eq!(p.first(), Some(96));
    }
}
