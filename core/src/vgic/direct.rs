//! Reads of the virtual GIC's registers with state in one step and without its lock (issue 14):
//! the trapped-MMIO fast path asks [`Mirror::read`], which finds the register from its offset
//! with one dispatch on the 128-byte block it lies in and loads its word from the mirror
//! (`GICD_CTLR`, `GICR_WAKER`, the bitmaps, the priorities), instead of taking the lock for
//! `access_listed` -> `access` -> `emulate` -> `intid_registers`; and for a pending or active
//! register it says which list register entries show ([`Shows`]), so the arch ORs their bits in
//! as it reads its list registers, without the 16-entry array. Wherever it answers,
//! [`VirtualGic::access_listed`] answers the same (host-tested for every offset, size, frame and
//! vCPU, in random states with random list register entries, and between any two stores of a
//! change made by another vCPU); elsewhere it answers `None` and the caller takes the lock.
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::Relaxed;

use super::mirror::{state, Mirror, PRIVATE_PRIORITY_WORDS};
use super::offsets::{
    GICD_CTLR, GICR_WAKER, ICACTIVER, ICENABLER, ICPENDR, IGROUPR, IPRIORITYR, IPRIORITYR_LAST, ISACTIVER,
    ISENABLER, ISPENDR,
};
use super::{Access, Bank, Frame, Listed, VirtualGic, GICR_SGI_OFFSET, SPI_BASE};

/// A read answered by [`Mirror::read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectRead {
    /// The value from the virtual distributor's state.
    pub value: u64,
    /// For a pending or active register: which entries of the accessing vCPU's list registers
    /// the value shows too ([`Shows::bit`]).
    pub shows: Option<Shows>,
}

/// The list register entries a read of a pending or active register shows: those of its 32
/// INTIDs from `first` that this frame shows (SPIs from INTID 32 on; SGIs and PPIs in the
/// register of INTIDs 0-31, those of `private_of`).
///
/// One word (the arch passes it in a register): `first` in bits 0..32, whether the register is
/// an active one in bit 32, the vCPU in bits 40..48 and bit 48 set if there is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shows(u64);

impl Shows {
    const ACTIVE: u64 = 1 << 32;
    const PRIVATE: u64 = 1 << 48;

    fn new(first: u32, active: bool, private_of: Option<usize>) -> Self {
        let private = private_of.map_or(0, |v| Self::PRIVATE | (v as u64 & 0xff) << 40);
        Self(u64::from(first) | u64::from(active) << 32 | private)
    }

    /// The bit list register entry `e` adds to the value read.
    #[inline]
    pub fn bit(&self, e: &Listed) -> u64 {
        let first = self.0 as u32;
        let Some(n) = e.intid.checked_sub(first).filter(|&n| n < 32) else { return 0 };
        let shown = match e.intid < SPI_BASE {
            true => first == 0 && self.0 >> 40 == (Self::PRIVATE | u64::from(e.vcpu) << 40) >> 40,
            false => first >= SPI_BASE,
        };
        let state = if self.0 & Self::ACTIVE != 0 { e.active } else { e.pending };
        u64::from(shown && state) << n
    }
}

/// The 128-byte blocks of the distributor's (and SGI frame's) per-INTID registers the direct
/// read serves: `offset >> 7`.
mod block {
    use super::*;
    pub const GROUP: u64 = IGROUPR >> 7;
    pub const SET_ENABLE: u64 = ISENABLER >> 7;
    pub const CLEAR_ENABLE: u64 = ICENABLER >> 7;
    pub const SET_PENDING: u64 = ISPENDR >> 7;
    pub const CLEAR_PENDING: u64 = ICPENDR >> 7;
    pub const SET_ACTIVE: u64 = ISACTIVER >> 7;
    pub const CLEAR_ACTIVE: u64 = ICACTIVER >> 7;
    pub const PRIORITY_FIRST: u64 = IPRIORITYR >> 7;
    pub const PRIORITY_LAST: u64 = IPRIORITYR_LAST >> 7;
    // Each bit register is one block of its own, the priorities whole blocks.
    const _: () = assert!(
        GROUP == 1
            && SET_ENABLE == 2
            && CLEAR_ENABLE == 3
            && SET_PENDING == 4
            && CLEAR_PENDING == 5
            && SET_ACTIVE == 6
            && CLEAR_ACTIVE == 7
            && PRIORITY_FIRST == 8
            && IPRIORITYR.is_multiple_of(128)
            && (IPRIORITYR_LAST + 1).is_multiple_of(128)
    );
}

impl Mirror {
    /// A read by `vcpu` of `frame` answered from the mirror without the virtual GIC's lock, as
    /// [`VirtualGic::access_listed`] answers it once the entries [`DirectRead::shows`] are ORed
    /// in: a 4-byte aligned read of `GICD_CTLR`, `GICR_WAKER`, a per-INTID group, enable,
    /// pending or active register, or (4 bytes at most) of a priority register; in the
    /// access's `size` bytes (above them the value holds the rest of the register's word: the
    /// arch's load extension drops it). `None` for anything else (writes included). Each
    /// register is one atomic word: a read while another CPU writes (under the lock) sees its
    /// old or its new value.
    ///
    /// The pending registers read as the state is, without re-sampling: the caller asks
    /// [`Mirror::quiet`] first.
    #[inline(always)]
    pub fn read(&self, vcpu: usize, frame: Frame, access: Access) -> Option<DirectRead> {
        if access.write.is_some() || !access.offset.is_multiple_of(4) {
            return None;
        }
        let plain = |value: u32| Some(DirectRead { value: u64::from(value), shows: None });
        // The vCPU whose SGIs and PPIs the frame shows, and whether it shows the SPIs.
        let (private_of, spis, offset) = match frame {
            Frame::Distributor if access.offset == GICD_CTLR => return plain(self.ctlr.load(Relaxed)),
            Frame::Distributor if self.v2() => (Some(vcpu), true, access.offset),
            Frame::Distributor => (None, true, access.offset),
            Frame::Redistributor(n) => {
                let private = self.vcpus.get(n)?;
                match access.offset.checked_sub(GICR_SGI_OFFSET) {
                    Some(offset) => (Some(n), false, offset),
                    None if access.offset == GICR_WAKER => return plain(private.waker.load(Relaxed)),
                    None => return None,
                }
            }
        };
        let private = private_of.and_then(|v| self.vcpus.get(v));
        let word = ((offset & 0x7f) / 4) as usize;
        let value = match offset >> 7 {
            block @ block::GROUP..=block::CLEAR_ACTIVE => {
                let s = (block >> 1) as usize;
                let value = match word.checked_sub(1) {
                    None => private.map_or(0, |p| p.words[s].load(Relaxed)),
                    Some(w) if spis => {
                        let pair = self.spis[s].get(w / 2).map_or(0, |a| a.load(Relaxed));
                        (pair >> (32 * (w % 2))) as u32
                    }
                    Some(_) => 0,
                };
                let shows = (s >= state::PENDING)
                    .then(|| Shows::new(32 * word as u32, s == state::ACTIVE, private_of));
                return Some(DirectRead { value: u64::from(value), shows });
            }
            block::PRIORITY_FIRST..=block::PRIORITY_LAST if access.size <= 4 => {
                let word = ((offset - IPRIORITYR) / 4) as usize;
                let value = match word.checked_sub(PRIVATE_PRIORITY_WORDS) {
                    None => private.map_or(0, |p| p.priorities[word].load(Relaxed)),
                    Some(w) if spis => self.spi_priorities.get(w).map_or(0, |a| a.load(Relaxed)),
                    Some(_) => 0,
                };
                value
            }
            _ => return None,
        };
        plain(value)
    }

    /// Whether nothing is pending for `vcpu` or among the SPIs: nothing a read must re-sample
    /// first (`VirtualGic::resample_held`), so [`Mirror::read`] may answer. (A pending register
    /// read after it is one of the atomics it loaded: at least as new as what it found.)
    #[inline(always)]
    pub fn quiet(&self, vcpu: usize) -> bool {
        let [low, high] = &self.spis[state::PENDING];
        (low.load(Relaxed) | high.load(Relaxed)) == 0
            && self.vcpus.get(vcpu).is_some_and(|p| p.words[state::PENDING].load(Relaxed) == 0)
    }
}

impl VirtualGic {
    /// After a guest's write set the priority of `intid` (owned, held by `bank`): the same in
    /// the priority mirrors (published to the [`Mirror`] once the write is done).
    pub(super) fn mirror_priority(&mut self, bank: Bank, intid: u32, priority: u8) {
        let slot = match (bank, intid.checked_sub(SPI_BASE)) {
            (Bank::Distributor | Bank::V2(_), Some(n)) => self.spi_priorities.get_mut(n as usize),
            (Bank::Redistributor(vcpu) | Bank::V2(vcpu), None) => {
                self.redists.get_mut(vcpu).and_then(|r| r.priorities.get_mut(intid as usize))
            }
            _ => None,
        };
        if let Some(slot) = slot {
            *slot = priority;
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::{listed::reaches_other_vcpus, GICD_SIZE};
    use super::*;

    use crate::test_random::Random;

    const OWNED: [u32; 9] = [33, 40, 41, 42, 43, 63, 64, 100, 127];

    /// A random register write by a random vCPU (with its list register entries): a change.
    fn random_write(gic: &mut VirtualGic, vcpus: usize, x: u64, value: u64, entries: &mut [Listed]) -> usize {
        let vcpu = (x >> 8) as usize % vcpus;
        let frame = match x % 3 {
            0 if !gic.v2() => Frame::Redistributor(vcpu),
            _ => Frame::Distributor,
        };
        let offset = match frame {
            Frame::Distributor => [
                0u64, 0x80, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0x400, 0xc00, 0x6000, 0x800, 0xf10,
                0xf20,
            ][(x >> 16) as usize % 14],
            _ => [0x80, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0x400, 0x400, 0xc00]
                .map(|o| GICR_SGI_OFFSET + o)
                .into_iter()
                .chain([GICR_WAKER])
                .nth((x >> 16) as usize % 11)
                .unwrap_or(0),
        };
        let offset = offset + ((x >> 24) % 0x20) * 4 * u64::from(offset != GICR_WAKER);
        let size = [4u8, 4, 1, 2, 8][(x >> 36) as usize % 5];
        let access = Access { offset: offset & !(u64::from(size) - 1), size, write: Some(value) };
        for e in entries.iter_mut() {
            e.vcpu = vcpu as u8;
        }
        gic.access_listed(vcpu, frame, access, entries);
        vcpu
    }

    /// One random change of any kind, made by the vCPU it returns (`None`: by another CPU, a
    /// doorbell's sender or a restart).
    fn random_change(gic: &mut VirtualGic, vcpus: usize, r: &mut Random) -> Option<usize> {
        let x = r.next();
        let vcpu = (x >> 40) as usize % vcpus;
        let intid = [1u32, 7, 16, 27, 31, 33, 40, 63, 64, 100, 127, 5][(x >> 48) as usize % 12];
        match x % 16 {
            0..=6 => {
                let mut entries = random_entries(vcpu, r);
                return Some(random_write(gic, vcpus, x, r.next(), &mut entries));
            }
            7..=9 => {
                gic.set_pending(vcpu, intid);
                return None;
            }
            10 => drop(gic.set_pending_hw(vcpu, intid)),
            11 if x & (1 << 22) != 0 => drop(gic.take_alone(vcpu)),
            11 => drop(gic.take_next(vcpu)),
            12 => drop(gic.resample_held(vcpu, |i| i % 2 == 0)),
            13 => drop(gic.take_hw_pending(vcpu)),
            14 => drop(gic.set_level(vcpu, intid, x & (1 << 20) != 0)),
            _ if x & (1 << 21) != 0 => {
                gic.reset();
                return None;
            }
            _ => drop(gic.take_deliverable(vcpu)),
        }
        Some(vcpu)
    }

    /// Four entries of `vcpu`'s list registers: a few of its SGIs/PPIs and SPIs, in any state.
    fn random_entries(vcpu: usize, r: &mut Random) -> Vec<Listed> {
        (0..4)
            .map(|_| {
                let x = r.next();
                let intid = [1u32, 7, 16, 27, 31, 33, 40, 64, 100, 127][(x % 10) as usize];
                Listed {
                    vcpu: vcpu as u8,
                    lr: (x >> 8) as u8 % 16,
                    intid,
                    pending: x & (1 << 20) != 0,
                    active: x & (1 << 21) != 0,
                    hw: x & (1 << 22) != 0,
                    priority: (x >> 24) as u8,
                    source: (x >> 32) as u8 % 2,
                }
            })
            .collect()
    }

    /// The value of a read the mirror answers, with `entries` ORed in where it shows them.
    fn read_with(
        mirror: &Mirror,
        vcpu: usize,
        frame: Frame,
        access: Access,
        entries: &[Listed],
    ) -> Option<u64> {
        let direct = mirror.read(vcpu, frame, access)?;
        let shown = entries.iter().map(|e| direct.shows.map_or(0, |s| s.bit(e))).fold(0, |a, b| a | b);
        Some(direct.value | shown)
    }

    fn frames(gic: &VirtualGic, vcpus: usize) -> Vec<Frame> {
        let v3 = !gic.v2();
        core::iter::once(Frame::Distributor)
            .chain((0..vcpus + 1).filter(|_| v3).map(Frame::Redistributor))
            .collect()
    }

    /// Wherever the mirror answers a read, `access_listed` answers the same with the same list
    /// register entries: every offset of the distributor and of each redistributor (both frames),
    /// every size, every vCPU, both front ends, in random states (quiet or not) reached by every
    /// kind of change; and the mirror holds what the state says after each change.
    #[test]
    fn mirror_reads_are_what_access_listed_reads() {
        let mut r = Random(0x9e37_79b9_7f4a_7c15);
        let mut answered = 0usize;
        let mut quiet = 0usize;
        for (version, vcpus) in [(3, 1), (3, 2), (3, 3), (2, 1), (2, 2)] {
            for round in 0..4 {
                let mut gic = VirtualGic::for_version(version, vcpus, &OWNED);
                for _ in 0..[0, 200, 30, 5][round] {
                    random_change(&mut gic, vcpus, &mut r);
                    assert!(gic.mirror_agrees() && gic.bitmaps_agree(), "v{version} {vcpus}");
                }
                let mirror = gic.mirror();
                for frame in frames(&gic, vcpus) {
                    let offsets: Vec<u64> = match frame {
                        Frame::Distributor => (0..GICD_SIZE).step_by(4).chain([1, 2, 0x102, 0x203]).collect(),
                        _ => (0..0x100u64)
                            .step_by(4)
                            .chain((GICR_SGI_OFFSET..GICR_SGI_OFFSET + 0x1000).step_by(4))
                            .chain([0x15, GICR_SGI_OFFSET + 0x101])
                            .collect(),
                    };
                    for vcpu in 0..vcpus {
                        quiet += usize::from(mirror.quiet(vcpu));
                        let entries = random_entries(vcpu, &mut r);
                        let before = format!("{gic:?}");
                        for &offset in &offsets {
                            for size in [1u8, 2, 4, 8] {
                                let access = Access { offset, size, write: None };
                                let Some(value) = read_with(&mirror, vcpu, frame, access, &entries) else {
                                    continue;
                                };
                                answered += 1;
                                let mut listed = entries.clone();
                                let expected = gic.clone().access_listed(vcpu, frame, access, &mut listed);
                                // What the guest's load of `size` bytes takes.
                                let bytes = |v: u64| v & (u64::MAX >> (64 - 8 * u32::from(size)));
                                assert_eq!(
                                    bytes(value),
                                    bytes(expected),
                                    "v{version} {vcpus} {frame:?} {offset:#x} {size} {vcpu}"
                                );
                                assert_eq!(listed, entries, "a read changes no entry");
                            }
                        }
                        assert_eq!(format!("{gic:?}"), before, "mirror reads change nothing");
                    }
                }
                // `quiet` is `any_pending`'s negation.
                for vcpu in 0..vcpus {
                    assert_eq!(mirror.quiet(vcpu), !gic.any_pending(vcpu));
                }
            }
        }
        assert!(answered > 50_000 && quiet > 10, "{answered} {quiet}");
        // Writes, unaligned reads and the registers without a direct read take the lock.
        let gic = VirtualGic::new(2, &[40]);
        let mirror = gic.mirror();
        let read = |offset| Access { offset, size: 4, write: None };
        assert_eq!(mirror.read(0, Frame::Distributor, Access { write: Some(1), ..read(0x100) }), None);
        assert_eq!(mirror.read(0, Frame::Distributor, read(0x101)), None);
        assert_eq!(mirror.read(0, Frame::Distributor, read(0x6100)), None, "IROUTER");
        assert_eq!(mirror.read(0, Frame::Distributor, read(0xc08)), None, "ICFGR");
        assert_eq!(
            mirror.read(0, Frame::Distributor, Access { size: 8, ..read(0x400) }),
            None,
            "8 priorities"
        );
        assert_eq!(mirror.read(0, Frame::Redistributor(2), read(0x14)), None, "no such vCPU");
        assert!(mirror
            .read(1, Frame::Redistributor(1), read(GICR_SGI_OFFSET + 0x200))
            .unwrap()
            .shows
            .is_some());
    }

    /// The list registers' fast case, which takes the one pending interrupt in place, leaves
    /// the mirror quiet as well (an SPI and an SGI, both front ends).
    #[test]
    fn taking_the_one_pending_interrupt_alone_empties_the_mirror_too() {
        for version in [3, 2] {
            for intid in [40u32, 3] {
                let mut gic = VirtualGic::for_version(version, 2, &OWNED);
                let write = |gic: &mut VirtualGic, frame, offset, value| {
                    gic.access(0, frame, Access { offset, size: 4, write: Some(value) });
                };
                write(&mut gic, Frame::Distributor, 0, 3);
                let (frame, base) = match (version, intid) {
                    (3, 3) => (Frame::Redistributor(0), GICR_SGI_OFFSET),
                    _ => (Frame::Distributor, 0),
                };
                let reg = u64::from(intid / 32) * 4;
                write(&mut gic, frame, base + 0x80 + reg, 1 << (intid % 32));
                write(&mut gic, frame, base + 0x100 + reg, 1 << (intid % 32));
                gic.set_pending(0, intid);
                assert!(!gic.mirror().quiet(0));
                assert_eq!(gic.take_alone(0).map(|d| d.intid), Some(intid), "v{version} {intid}");
                assert!(gic.mirror().quiet(0) && gic.mirror_agrees(), "v{version} {intid}");
            }
        }
    }

    /// A read without the lock while another CPU changes the virtual GIC under it sees each
    /// register as it was before the change or as it is after, never anything else: for random
    /// changes of every kind, after each of the change's stores into the mirror in turn, every
    /// register a vCPU other than the changing one reads without the lock (the fast path's:
    /// nothing pending when it looked, at that store or an earlier one; no other vCPU's list
    /// registers involved) reads its value before or after the change, with its own list
    /// register entries.
    #[test]
    fn a_read_during_a_change_sees_each_register_old_or_new() {
        let mut r = Random(0x2545_f491_4f6c_dd1d);
        let (mut checked, mut between) = (0usize, 0usize);
        for (version, vcpus) in [(3, 1), (3, 2), (3, 3), (2, 1), (2, 2)] {
            let mut gic = VirtualGic::for_version(version, vcpus, &OWNED);
            let entries: Vec<Vec<Listed>> = (0..vcpus).map(|v| random_entries(v, &mut r)).collect();
            for change in 0..300 {
                // Mostly quiet states: a reader then answers without the lock.
                if change % 4 == 0 {
                    for v in 0..vcpus {
                        gic.take_hw_pending(v);
                        while gic.take_deliverable(v).is_some() {}
                    }
                    gic.access(0, Frame::Distributor, Access { offset: 0x280, size: 4, write: Some(!0) });
                    gic.access(0, Frame::Distributor, Access { offset: 0x284, size: 4, write: Some(!0) });
                    gic.access(0, Frame::Distributor, Access { offset: 0x288, size: 4, write: Some(!0) });
                    gic.access(0, Frame::Distributor, Access { offset: 0x28c, size: 4, write: Some(!0) });
                    for v in 0..vcpus {
                        let frame = if gic.v2() { Frame::Distributor } else { Frame::Redistributor(v) };
                        let offset = if gic.v2() { 0x280 } else { GICR_SGI_OFFSET + 0x280 };
                        gic.access(v, frame, Access { offset, size: 4, write: Some(!0) });
                        gic.access(v, Frame::Distributor, Access { offset: 0xf10, size: 4, write: Some(!0) });
                    }
                }
                let before = gic.clone();
                *gic.mirror.0.journal.lock().unwrap() = Some(Vec::new());
                let writer = random_change(&mut gic, vcpus, &mut r);
                let stores = gic.mirror.0.journal.lock().unwrap().take().unwrap();
                assert!(gic.mirror_agrees(), "v{version} {vcpus} change {change}");
                let during = before.mirror.0.copy();
                let mut looked_quiet = vec![false; vcpus];
                for (n, &(slot, value)) in stores.iter().enumerate() {
                    during.store(slot, value);
                    if n + 1 == stores.len() {
                        break; // the state after: the test above
                    }
                    for reader in (0..vcpus).filter(|&v| Some(v) != writer) {
                        looked_quiet[reader] |= during.quiet(reader);
                        if !looked_quiet[reader] {
                            continue;
                        }
                        between += 1;
                        for frame in frames(&gic, vcpus) {
                            let offsets = match frame {
                                Frame::Distributor => (0..0x800u64).step_by(4).collect::<Vec<_>>(),
                                _ => (GICR_SGI_OFFSET..GICR_SGI_OFFSET + 0x420)
                                    .step_by(4)
                                    .chain([GICR_WAKER])
                                    .collect(),
                            };
                            for offset in offsets {
                                if reaches_other_vcpus(vcpus, reader, frame, offset) {
                                    continue;
                                }
                                let access = Access { offset, size: 4, write: None };
                                let mine = &entries[reader];
                                let Some(value) = read_with(&during, reader, frame, access, mine) else {
                                    continue;
                                };
                                let old =
                                    before.clone().access_listed(reader, frame, access, &mut mine.clone());
                                let new = gic.clone().access_listed(reader, frame, access, &mut mine.clone());
                                assert!(
                                    value == old || value == new,
                                    "v{version} {vcpus} change {change} by {writer:?}, store {n} {slot:?}: \
                                     vCPU {reader} {frame:?} {offset:#x} read {value:#x}, {old:#x} before, {new:#x} after"
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(between > 500 && checked > 100_000, "{between} {checked}");
    }
}
