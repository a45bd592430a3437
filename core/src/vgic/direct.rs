//! Reads of the virtual GIC's registers with state in one step (issue 14): the trapped-MMIO fast
//! path asks [`VirtualGic::read_direct`], which finds the register from its offset with one
//! dispatch on the 128-byte block it lies in and reads the bitmaps, `GICD_CTLR`, `GICR_WAKER` or
//! the priorities, instead of `access_listed` -> `access` -> `emulate` -> `intid_registers`; and
//! for a pending or active register it says which list register entries show ([`Shows`]), so the
//! arch ORs their bits in as it reads its list registers, without the 16-entry array. Wherever
//! it answers, [`VirtualGic::access_listed`] answers the same (host-tested for every offset,
//! size, frame and vCPU, in random states with random list register entries); elsewhere it
//! answers `None` and the caller takes the general path.
#![forbid(unsafe_code)]

use super::bitmaps::Kept;
use super::offsets::{
    GICD_CTLR, GICR_WAKER, ICACTIVER, ICENABLER, ICPENDR, IGROUPR, IPRIORITYR, IPRIORITYR_LAST, ISACTIVER,
    ISENABLER, ISPENDR,
};
use super::{Access, Bank, Frame, Listed, VirtualGic, GICR_SGI_OFFSET, SPI_BASE};

/// A read answered by [`VirtualGic::read_direct`].
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shows {
    first: u32,
    active: bool,
    private_of: Option<usize>,
}

impl Shows {
    /// The bit list register entry `e` adds to the value read.
    #[inline]
    pub fn bit(&self, e: &Listed) -> u64 {
        let Some(n) = e.intid.checked_sub(self.first).filter(|&n| n < 32) else { return 0 };
        let shown = match e.intid < SPI_BASE {
            true => self.first == 0 && self.private_of == Some(usize::from(e.vcpu)),
            false => self.first >= SPI_BASE,
        };
        let state = if self.active { e.active } else { e.pending };
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

impl VirtualGic {
    /// A read by `vcpu` of `frame` answered from the state at once, as
    /// [`VirtualGic::access_listed`] answers it once the entries [`DirectRead::shows`] are ORed
    /// in: a 4-byte aligned read of `GICD_CTLR`, `GICR_WAKER` or a per-INTID group, enable,
    /// pending, active or priority register. `None` for anything else (writes included).
    #[inline(always)]
    pub fn read_direct(&mut self, vcpu: usize, frame: Frame, access: Access) -> Option<DirectRead> {
        if access.write.is_some() || !access.offset.is_multiple_of(4) {
            return None;
        }
        let plain = |value: u64| Some(DirectRead { value, shows: None });
        let (bank, offset, private_of) = match frame {
            Frame::Distributor if access.offset == GICD_CTLR => return plain(u64::from(self.ctlr)),
            Frame::Distributor if self.v2 => (Bank::V2(vcpu), access.offset, Some(vcpu)),
            Frame::Distributor => (Bank::Distributor, access.offset, None),
            Frame::Redistributor(n) if n < self.redists.len() => {
                match access.offset.checked_sub(GICR_SGI_OFFSET) {
                    Some(offset) => (Bank::Redistributor(n), offset, Some(n)),
                    None if access.offset == GICR_WAKER => {
                        let asleep = u64::from(self.redists[n].asleep);
                        return plain((asleep << 1) | (asleep << 2));
                    }
                    None => return None,
                }
            }
            Frame::Redistributor(_) => return None,
        };
        let first = ((offset & 0x7f) * 8) as u32;
        let (value, active) = match offset >> 7 {
            block::GROUP => (self.read_kept(bank, first, Kept::Group1), None),
            block::SET_ENABLE | block::CLEAR_ENABLE => (self.read_kept(bank, first, Kept::Enabled), None),
            block::SET_PENDING | block::CLEAR_PENDING => (self.read_pending(bank, first), Some(false)),
            block::SET_ACTIVE | block::CLEAR_ACTIVE => {
                (self.read_kept(bank, first, Kept::Active), Some(true))
            }
            block::PRIORITY_FIRST..=block::PRIORITY_LAST if access.size <= 4 => {
                let mask = u32::MAX >> (8 * (4 - u32::from(access.size)));
                (self.priority_word(bank, (offset - IPRIORITYR) as u32) & u64::from(mask), None)
            }
            block::PRIORITY_FIRST..=block::PRIORITY_LAST => {
                (self.priorities(bank, (offset - IPRIORITYR) as u32, access), None)
            }
            _ => return None,
        };
        let shows = active.map(|active| Shows { first, active, private_of });
        Some(DirectRead { value, shows })
    }

    /// The priorities of the four INTIDs from `intid` (a multiple of 4) that `bank` shows, from
    /// the priority mirrors (0 for those it does not hold or the partition does not own).
    fn priority_word(&self, bank: Bank, intid: u32) -> u64 {
        let bytes = match (bank, intid.checked_sub(SPI_BASE)) {
            (Bank::Distributor | Bank::V2(_), Some(n)) => self.spi_priorities.get(n as usize..),
            (Bank::Redistributor(vcpu) | Bank::V2(vcpu), None) => {
                self.redists.get(vcpu).and_then(|r| r.priorities.get(intid as usize..))
            }
            _ => None,
        };
        bytes.and_then(|b| b.first_chunk::<4>()).map_or(0, |w| u64::from(u32::from_le_bytes(*w)))
    }

    /// After a guest's write set the priority of `intid` (owned, held by `bank`): the same in
    /// the priority mirrors, which [`VirtualGic::read_direct`] reads.
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
    use alloc::vec::Vec;

    use super::super::GICD_SIZE;
    use super::*;

    use crate::test_random::Random;

    /// Random guest writes to every per-INTID register, the control registers and the routes, and
    /// interrupts raised: a state to read.
    fn scramble(gic: &mut VirtualGic, vcpus: usize, r: &mut Random) {
        for _ in 0..200 {
            let x = r.next();
            let vcpu = (x >> 8) as usize % vcpus;
            let frame = match x % 3 {
                0 if !gic.v2 => Frame::Redistributor(vcpu),
                _ => Frame::Distributor,
            };
            let offset = match frame {
                Frame::Distributor => {
                    [0u64, 0x80, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0x400, 0xc00, 0x6000]
                        [(x >> 16) as usize % 11]
                }
                _ => [GICR_SGI_OFFSET + 0x80, GICR_SGI_OFFSET + 0x100, GICR_SGI_OFFSET + 0x200, GICR_WAKER]
                    [(x >> 16) as usize % 4],
            };
            let offset = offset + ((x >> 24) % 0x20) * 4;
            let access = Access { offset, size: 4, write: Some(r.next()) };
            gic.access(vcpu, frame, access);
            gic.set_pending((x >> 40) as usize % vcpus, (x >> 48) as u32 % 128);
        }
    }

    /// Wherever `read_direct` answers, `access_listed` answers the same with the same list
    /// register entries: every offset of the distributor and of each redistributor (both frames),
    /// every size, every vCPU, both front ends, in random states.
    #[test]
    fn direct_reads_are_what_access_listed_reads() {
        let mut r = Random(0x9e37_79b9_7f4a_7c15);
        let mut answered = 0usize;
        for (version, vcpus) in [(3, 1), (3, 2), (3, 3), (2, 1), (2, 2)] {
            for round in 0..3 {
                let mut gic = VirtualGic::for_version(version, vcpus, &[33, 40, 63, 64, 100, 127]);
                if round > 0 {
                    scramble(&mut gic, vcpus, &mut r);
                }
                let frames: Vec<Frame> = core::iter::once(Frame::Distributor)
                    .chain((0..vcpus + 1).filter(|_| version == 3).map(Frame::Redistributor))
                    .collect();
                for frame in frames {
                    let offsets: Vec<u64> = match frame {
                        Frame::Distributor => (0..GICD_SIZE).step_by(4).chain([1, 2, 0x102, 0x203]).collect(),
                        _ => (0..0x100u64)
                            .step_by(4)
                            .chain((GICR_SGI_OFFSET..GICR_SGI_OFFSET + 0x1000).step_by(4))
                            .chain([0x15, GICR_SGI_OFFSET + 0x101])
                            .collect(),
                    };
                    for vcpu in 0..vcpus {
                        // This vCPU's list registers: a few of its SGIs/PPIs and SPIs, in any state.
                        let entries: Vec<Listed> = (0..4)
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
                            .collect();
                        let before = format!("{gic:?}");
                        for &offset in &offsets {
                            for size in [1u8, 2, 4, 8] {
                                let access = Access { offset, size, write: None };
                                let Some(direct) = gic.read_direct(vcpu, frame, access) else { continue };
                                answered += 1;
                                let value = direct.value
                                    | entries
                                        .iter()
                                        .map(|e| direct.shows.map_or(0, |s| s.bit(e)))
                                        .fold(0, |a, b| a | b);
                                let mut listed = entries.clone();
                                let expected = gic.clone().access_listed(vcpu, frame, access, &mut listed);
                                assert_eq!(
                                    value, expected,
                                    "v{version} {vcpus} {frame:?} {offset:#x} {size} {vcpu}"
                                );
                                assert_eq!(listed, entries, "a read changes no entry");
                            }
                        }
                        assert_eq!(format!("{gic:?}"), before, "direct reads change nothing");
                    }
                }
            }
        }
        assert!(answered > 50_000, "{answered}");
        // Writes, unaligned reads and the registers without a direct read take the general path.
        let mut gic = VirtualGic::new(2, &[40]);
        let read = |offset| Access { offset, size: 4, write: None };
        assert_eq!(gic.read_direct(0, Frame::Distributor, Access { write: Some(1), ..read(0x100) }), None);
        assert_eq!(gic.read_direct(0, Frame::Distributor, read(0x101)), None);
        assert_eq!(gic.read_direct(0, Frame::Distributor, read(0x6100)), None, "IROUTER");
        assert_eq!(gic.read_direct(0, Frame::Distributor, read(0xc08)), None, "ICFGR");
        assert_eq!(gic.read_direct(0, Frame::Redistributor(2), read(0x14)), None, "no such vCPU");
        assert!(gic
            .read_direct(1, Frame::Redistributor(1), read(GICR_SGI_OFFSET + 0x200))
            .unwrap()
            .shows
            .is_some());
    }
}
