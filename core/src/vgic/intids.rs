//! A set of INTIDs below [`MAX_INTID`] as two bitmaps: what the virtual GIC hands the arch
//! to deactivate, without allocating (the hypervisor allocates nothing after boot).

use super::{MAX_INTID, SPI_BASE};

const _: () = assert!(SPI_BASE == 32 && MAX_INTID - SPI_BASE <= 128, "the two bitmaps hold every INTID");

/// INTIDs: the SGIs and PPIs (bit `n` of `local`: INTID `n`) and the SPIs (bit `n` of `spis`:
/// INTID `32 + n`). Iterates in ascending order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Intids {
    local: u32,
    spis: u128,
}

impl Intids {
    /// The INTIDs whose bits are set: `local`'s bit `n` is INTID `n`, `spis`' INTID `32 + n`
    /// (bits of INTIDs at or above [`MAX_INTID`] are dropped).
    pub fn from_bitmaps(local: u32, spis: u128) -> Self {
        Self { local, spis: spis & ((1 << (MAX_INTID - SPI_BASE)) - 1) }
    }

    /// Adds `intid` (one at or above [`MAX_INTID`] is ignored).
    pub fn insert(&mut self, intid: u32) {
        match intid.checked_sub(SPI_BASE) {
            None => self.local |= 1 << intid,
            Some(n) if intid < MAX_INTID => self.spis |= 1 << n,
            Some(_) => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.local == 0 && self.spis == 0
    }
}

impl Iterator for Intids {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.local != 0 {
            let n = self.local.trailing_zeros();
            self.local &= self.local - 1;
            Some(n)
        } else if self.spis != 0 {
            let n = self.spis.trailing_zeros();
            self.spis &= self.spis - 1;
            Some(SPI_BASE + n)
        } else {
            None
        }
    }
}

/// For tests: `assert_eq!(taken, [27, 40])`.
impl<const N: usize> PartialEq<[u32; N]> for Intids {
    fn eq(&self, other: &[u32; N]) -> bool {
        Iterator::eq(*self, other.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_in_ascending_order_and_ignores_intids_out_of_range() {
        let mut set = Intids::default();
        assert!(set.is_empty());
        for intid in [127, 0, 40, 31, 32, 27, MAX_INTID, 159, u32::MAX] {
            set.insert(intid);
        }
        assert!(!set.is_empty());
        assert_eq!(set, [0, 27, 31, 32, 40, 127]);
        set.insert(27);
        assert_eq!(set.count(), 6);
        assert_eq!(Intids::from_bitmaps(1 << 27 | 1, 1 << 8 | u128::MAX << 96), [0, 27, 40]);
    }
}
