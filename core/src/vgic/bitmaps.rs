//! The registers with a bit per INTID, a word at a time (issue 14): the group, enable and active
//! states are mirrored in bitmaps (bit `n`: the bank's INTID `n`, SPIs counted from 32), as the
//! pending state is, so that a read is a shift and a mask instead of 32 per-INTID lookups. The
//! per-INTID state stays the truth that delivery reads; a register write updates both (the only
//! place these three states change), and a host test holds them equal.
#![forbid(unsafe_code)]

use super::mirror::state;
use super::{Bank, Op, VirtualGic, SPI_BASE};

/// The states with a bit per INTID that are mirrored as bitmaps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct StateBits<T> {
    pub group1: T,
    pub enabled: T,
    pub active: T,
}

/// Which of the mirrored states.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kept {
    Group1,
    Enabled,
    Active,
}

impl<T: Copy> StateBits<T> {
    fn get(&self, kept: Kept) -> T {
        match kept {
            Kept::Group1 => self.group1,
            Kept::Enabled => self.enabled,
            Kept::Active => self.active,
        }
    }

    fn get_mut(&mut self, kept: Kept) -> &mut T {
        match kept {
            Kept::Group1 => &mut self.group1,
            Kept::Enabled => &mut self.enabled,
            Kept::Active => &mut self.active,
        }
    }
}

/// The 32 bits from INTID `first` of a bank whose INTIDs 0..32 are `local`'s bits and whose
/// SPIs (INTID 32 on) are `spis`' bits.
fn window(local: u32, spis: u128, first: u32) -> u32 {
    match first.checked_sub(SPI_BASE) {
        Some(n) => spis.checked_shr(n).unwrap_or(0) as u32,
        // SPI bit 0 lands at window bit 32 - first.
        None => (u64::from(local) >> first) as u32 | (spis << (SPI_BASE - first)) as u32,
    }
}

/// The inverse of [`window`]: where the 32 bits `bits` from INTID `first` lie in a bank's private
/// word and its SPIs' bitmap.
fn unwindow(bits: u32, first: u32) -> (u32, u128) {
    match first.checked_sub(SPI_BASE) {
        Some(n) => (0, u128::from(bits).checked_shl(n).unwrap_or(0)),
        None => ((u64::from(bits) << first) as u32, u128::from(bits) >> (SPI_BASE - first)),
    }
}

impl VirtualGic {
    /// The vCPU whose private INTIDs `bank` shows (vCPU 0's for the distributor, which shows
    /// none: [`VirtualGic::bank_owned`] masks them).
    fn bank_vcpu(bank: Bank) -> usize {
        match bank {
            Bank::Redistributor(vcpu) | Bank::V2(vcpu) => vcpu,
            Bank::Distributor => 0,
        }
    }

    /// The INTIDs `bank` shows that the partition owns: (its vCPU's private ones, the SPIs).
    fn bank_owned(&self, bank: Bank) -> (u32, u128) {
        match bank {
            Bank::Distributor => (0, self.owned_spis),
            Bank::Redistributor(vcpu) if vcpu < self.redists.len() => (u32::MAX, 0),
            Bank::V2(vcpu) if vcpu < self.redists.len() => (u32::MAX, self.owned_spis),
            _ => (0, 0),
        }
    }

    /// A read of the register with a bit per INTID from `first` for the state `kept`.
    pub(super) fn read_kept(&self, bank: Bank, first: u32, kept: Kept) -> u64 {
        let (local_owned, spis_owned) = self.bank_owned(bank);
        let local = self.redists.get(Self::bank_vcpu(bank)).map_or(0, |r| r.bits.get(kept));
        u64::from(window(local & local_owned, self.spi_bits.get(kept) & spis_owned, first))
    }

    /// After a write `value` to that register, which changed the per-INTID states with `op`: the
    /// same change in the bitmaps.
    pub(super) fn write_kept(&mut self, bank: Bank, first: u32, value: u64, kept: Kept, op: Op) {
        let (local_owned, spis_owned) = self.bank_owned(bank);
        let owned = window(local_owned, spis_owned, first);
        let (wl, ws) = unwindow(value as u32 & owned, first);
        let (ml, ms) = unwindow(owned, first);
        let apply = |old: u128, written: u128, mask: u128| match op {
            Op::Set => (old & !mask) | written,
            Op::Or => old | written,
            Op::Clear => old & !written,
        };
        if let Some(r) = self.redists.get_mut(Self::bank_vcpu(bank)) {
            let local = r.bits.get_mut(kept);
            *local = apply(u128::from(*local), u128::from(wl), u128::from(ml)) as u32;
        }
        let spis = self.spi_bits.get_mut(kept);
        *spis = apply(*spis, ws, ms);
        let s = match kept {
            Kept::Group1 => state::GROUP1,
            Kept::Enabled => state::ENABLED,
            Kept::Active => state::ACTIVE,
        };
        self.publish_bits(bank, s);
    }

    /// A read of the pending register with a bit per INTID from `first`, from the pending
    /// bitmaps.
    pub(super) fn read_pending(&self, bank: Bank, first: u32) -> u64 {
        let (local_owned, spis_owned) = self.bank_owned(bank);
        let local = self.redists.get(Self::bank_vcpu(bank)).map_or(0, |r| r.pending);
        u64::from(window(local & local_owned, self.pending_spis & spis_owned, first))
    }

    /// Whether the bitmaps and the priority mirrors say what the per-INTID states say (host
    /// tests).
    #[cfg(test)]
    pub(super) fn bitmaps_agree(&self) -> bool {
        let bits = |irqs: &[super::IrqState]| {
            irqs.iter().zip(0..).fold(StateBits::<u128>::default(), |b, (irq, n)| StateBits {
                group1: b.group1 | u128::from(irq.group1) << n,
                enabled: b.enabled | u128::from(irq.enabled) << n,
                active: b.active | u128::from(irq.active) << n,
            })
        };
        let pending = |irqs: &[super::IrqState]| {
            irqs.iter().zip(0..).fold(0u128, |p, (irq, n)| p | u128::from(irq.pending) << n)
        };
        let owned = self.spis.iter().zip(0..).fold(0u128, |o, (irq, n)| o | u128::from(irq.owned) << n);
        let local_agree = self.redists.iter().all(|r| {
            let b = bits(&r.local);
            let b = StateBits { group1: b.group1 as u32, enabled: b.enabled as u32, active: b.active as u32 };
            let priorities = r.local.iter().zip(r.priorities).all(|(irq, p)| irq.priority == p);
            b == r.bits && pending(&r.local) as u32 == r.pending && priorities
        });
        let spi_priorities = self.spis.len() == self.spi_priorities.len()
            && self
                .spis
                .iter()
                .zip(&self.spi_priorities)
                .all(|(irq, &p)| p == if irq.owned { irq.priority } else { 0 });
        local_agree
            && spi_priorities
            && bits(&self.spis) == self.spi_bits
            && pending(&self.spis) == self.pending_spis
            && owned == self.owned_spis
    }
}

#[cfg(test)]
mod tests {
    use super::super::offsets::*;
    use super::super::{Access, Frame, IrqState, VirtualGic, GICR_SGI_OFFSET};
    use super::*;

    #[test]
    fn windows_over_the_private_intids_and_the_spis() {
        assert_eq!(window(0xffff_0000, 0, 0), 0xffff_0000);
        assert_eq!(window(0x8000_0000, 0b11, 8), 0x0380_0000, "INTID 31, then 32 and 33");
        assert_eq!(window(u32::MAX, 1 << 95, 96), 0x8000_0000);
        assert_eq!(window(u32::MAX, u128::MAX, 1016), 0);
        for first in [0, 1, 8, 31, 32, 33, 64, 96, 127, 128, 129, 159, 160, 1016] {
            for bits in [0u32, 1, 0x8000_0001, u32::MAX] {
                let (l, s) = unwindow(bits, first);
                // The bitmaps hold INTIDs 0..160.
                let held = 160u32.saturating_sub(first);
                let expected = if held >= 32 { bits } else { bits & ((1u32 << held) - 1) };
                assert_eq!(window(l, s, first), expected, "{first} {bits:#x}");
            }
        }
    }

    /// Every register write, aligned or not, of any size, on either front end, leaves the bitmaps
    /// equal to the per-INTID states, and reads through the bitmaps give what the per-INTID
    /// states give.
    #[test]
    fn the_bitmaps_follow_every_register_write() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        for (version, vcpus) in [(3, 1), (3, 3), (2, 1), (2, 2)] {
            let mut gic = VirtualGic::for_version(version, vcpus, &[33, 40, 63, 64, 100, 127]);
            for _ in 0..4000 {
                let r = next();
                let frame = match (version, r % 3) {
                    (3, 1) => Frame::Redistributor((r >> 8) as usize % (vcpus + 1)),
                    _ => Frame::Distributor,
                };
                let base = [0x80u64, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0x400][(r >> 16) as usize % 8];
                let offset = base + (r >> 24) % 0x84;
                let offset =
                    if let Frame::Redistributor(_) = frame { offset + GICR_SGI_OFFSET } else { offset };
                let size = [1u8, 2, 4, 8][(r >> 40) as usize % 4];
                let vcpu = (r >> 44) as usize % vcpus;
                let write = (r >> 48) % 3 != 0;
                let access = Access { offset, size, write: write.then(&mut next) };
                let expected =
                    if write { None } else { reference_read(&mut gic.clone(), vcpu, frame, offset) };
                let value = gic.access(vcpu, frame, access);
                if let Some(expected) = expected {
                    assert_eq!(value, expected, "v{version} {frame:?} {offset:#x} {access:?}");
                    checked += 1;
                }
                assert!(gic.bitmaps_agree(), "v{version} {frame:?} {access:?}");
            }
        }
        assert!(checked > 2000, "{checked}");
    }

    /// A read of a group, enable, pending or active register the way the virtual GIC made it
    /// before the bitmaps: INTID by INTID from the per-INTID states. `None` elsewhere.
    fn reference_read(gic: &mut VirtualGic, vcpu: usize, frame: Frame, offset: u64) -> Option<u64> {
        type Field = fn(&mut IrqState) -> &mut bool;
        let (bank, offset) = match frame {
            Frame::Distributor if gic.v2() => (Bank::V2(vcpu), offset),
            Frame::Distributor => (Bank::Distributor, offset),
            Frame::Redistributor(n) if n < gic.redists.len() && offset >= GICR_SGI_OFFSET => {
                (Bank::Redistributor(n), offset - GICR_SGI_OFFSET)
            }
            Frame::Redistributor(_) => return None,
        };
        let (base, field): (u64, Field) = match offset {
            IGROUPR..=IGROUPR_LAST => (IGROUPR, |i| &mut i.group1),
            ISENABLER..=ISENABLER_LAST => (ISENABLER, |i| &mut i.enabled),
            ICENABLER..=ICENABLER_LAST => (ICENABLER, |i| &mut i.enabled),
            ISPENDR..=ISPENDR_LAST => (ISPENDR, |i| &mut i.pending),
            ICPENDR..=ICPENDR_LAST => (ICPENDR, |i| &mut i.pending),
            ISACTIVER..=ISACTIVER_LAST => (ISACTIVER, |i| &mut i.active),
            ICACTIVER..=ICACTIVER_LAST => (ICACTIVER, |i| &mut i.active),
            _ => return None,
        };
        Some(gic.bits(bank, (offset - base) as u32 * 8, None, field, Op::Or))
    }
}
