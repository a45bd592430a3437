//! The virtual GIC's registers with state, mirrored as atomics for reads without its lock (issue
//! 14): `GICD_CTLR`, `GICR_WAKER`, the group, enable, pending and active bitmaps a 32-bit word a
//! register, and the priority bytes a word a register. [`VirtualGic`] stores into its [`Mirror`]
//! under its lock wherever it changes one of them (the same places that keep its bitmaps and
//! priority mirror), each register's word once with its new value, so that a read without the
//! lock ([`Mirror::read`], in `direct`) sees each register's old or new value, never a mix. The
//! arch keeps a reference to the mirror beside the lock ([`VirtualGic::mirror`]).
//!
//! The per-INTID state behind the lock stays the truth; a host test holds the mirror equal to it
//! after every change, and `direct`'s tests check the reads, between any two stores too.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use super::{Bank, VirtualGic, MAX_INTID, SPI_BASE};

/// The 64-bit atomics of a bitmap over the SPIs (INTIDs 32..`MAX_INTID`): two registers each.
pub(super) const SPI_PAIRS: usize = (MAX_INTID - SPI_BASE).div_ceil(64) as usize;
const _: () = assert!(SPI_PAIRS == 2);
/// The words of the SPIs' priority bytes.
pub(super) const SPI_PRIORITY_WORDS: usize = ((MAX_INTID - SPI_BASE) / 4) as usize;
/// The words of a vCPU's SGIs' and PPIs' priority bytes.
pub(super) const PRIVATE_PRIORITY_WORDS: usize = (SPI_BASE / 4) as usize;

/// The bitmap states, in the order of their registers' 128-byte blocks (`offset >> 8` of
/// `IGROUPR`, `IS/ICENABLER`, `IS/ICPENDR`, `IS/ICACTIVER`).
pub(super) mod state {
    pub const GROUP1: usize = 0;
    pub const ENABLED: usize = 1;
    pub const PENDING: usize = 2;
    pub const ACTIVE: usize = 3;
    pub const COUNT: usize = 4;
}

/// A vCPU's banked registers (64 bytes: found with a shift).
#[derive(Debug, Default)]
#[repr(align(64))]
pub(super) struct Private {
    /// Per [`state`]: its SGIs' and PPIs' bits.
    pub words: [AtomicU32; state::COUNT],
    pub priorities: [AtomicU32; PRIVATE_PRIORITY_WORDS],
    /// `GICR_WAKER` as read.
    pub waker: AtomicU32,
}

/// The registers with state of one partition's virtual GIC, as atomics (see the module).
#[derive(Debug)]
pub struct Mirror {
    /// The GICv2 front end.
    pub(super) v2: bool,
    pub(super) ctlr: AtomicU32,
    /// Per [`state`]: the SPIs' bits, two registers an atomic (those the partition does not own
    /// are 0). Whether any SPI is pending is two loads.
    pub(super) spis: [[AtomicU64; SPI_PAIRS]; state::COUNT],
    /// The SPIs' priorities (0 for those the partition does not own).
    pub(super) spi_priorities: [AtomicU32; SPI_PRIORITY_WORDS],
    pub(super) vcpus: Box<[Private]>,
    /// Host tests: every store, in order, while recording.
    #[cfg(test)]
    pub(super) journal: std::sync::Mutex<Option<alloc::vec::Vec<(Slot, u64)>>>,
}

/// One word of a [`Mirror`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Ctlr,
    /// A [`state`] and a pair of registers of the SPIs' bitmap.
    Spi(usize, usize),
    SpiPriority(usize),
    /// A vCPU and a [`state`].
    Private(usize, usize),
    PrivatePriority(usize, usize),
    Waker(usize),
}

impl Mirror {
    /// Whether this mirrors a GICv2 front end (see `VirtualGic::v2`).
    #[inline(always)]
    pub(super) fn v2(&self) -> bool {
        cfg!(feature = "gic-v2") && self.v2
    }

    fn new(v2: bool, vcpus: usize) -> Self {
        Self {
            v2,
            ctlr: AtomicU32::new(0),
            spis: Default::default(),
            spi_priorities: Default::default(),
            vcpus: (0..vcpus).map(|_| Private::default()).collect(),
            #[cfg(test)]
            journal: std::sync::Mutex::new(None),
        }
    }

    /// The 32-bit word of `slot` (any but `Slot::Spi`).
    #[inline(always)]
    fn word(&self, slot: Slot) -> Option<&AtomicU32> {
        match slot {
            Slot::Ctlr => Some(&self.ctlr),
            Slot::Spi(..) => None,
            Slot::SpiPriority(w) => self.spi_priorities.get(w),
            Slot::Private(v, s) => self.vcpus.get(v)?.words.get(s),
            Slot::PrivatePriority(v, w) => self.vcpus.get(v)?.priorities.get(w),
            Slot::Waker(v) => self.vcpus.get(v).map(|p| &p.waker),
        }
    }

    /// Stores `value` in `slot` (under the virtual GIC's lock).
    #[inline(always)]
    pub(super) fn store(&self, slot: Slot, value: u64) {
        #[cfg(test)]
        if let Some(journal) = self.journal.lock().unwrap().as_mut() {
            journal.push((slot, value));
        }
        match slot {
            Slot::Spi(s, pair) => {
                if let Some(a) = self.spis.get(s).and_then(|p| p.get(pair)) {
                    a.store(value, Relaxed);
                }
            }
            _ => {
                if let Some(a) = self.word(slot) {
                    a.store(value as u32, Relaxed);
                }
            }
        }
    }

    /// The value of `slot` (host tests).
    #[cfg(test)]
    pub(super) fn load(&self, slot: Slot) -> u64 {
        match slot {
            Slot::Spi(s, pair) => self.spis.get(s).and_then(|p| p.get(pair)).map_or(0, |a| a.load(Relaxed)),
            _ => self.word(slot).map_or(0, |a| u64::from(a.load(Relaxed))),
        }
    }

    /// Every slot, for copies and comparisons (host tests).
    #[cfg(test)]
    pub(super) fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        let states = 0..state::COUNT;
        [Slot::Ctlr]
            .into_iter()
            .chain(states.clone().flat_map(|s| (0..SPI_PAIRS).map(move |w| Slot::Spi(s, w))))
            .chain((0..SPI_PRIORITY_WORDS).map(Slot::SpiPriority))
            .chain((0..self.vcpus.len()).flat_map(move |v| {
                states.clone().map(move |s| Slot::Private(v, s)).chain(
                    (0..PRIVATE_PRIORITY_WORDS)
                        .map(move |w| Slot::PrivatePriority(v, w))
                        .chain([Slot::Waker(v)]),
                )
            }))
    }

    /// A copy with the same values.
    pub(super) fn copy(&self) -> Self {
        let copy = Self::new(self.v2, self.vcpus.len());
        let load = |w: &AtomicU32| AtomicU32::new(w.load(Relaxed));
        let load64 = |w: &AtomicU64| AtomicU64::new(w.load(Relaxed));
        Self {
            ctlr: load(&self.ctlr),
            spis: self.spis.each_ref().map(|pairs| pairs.each_ref().map(load64)),
            spi_priorities: self.spi_priorities.each_ref().map(load),
            vcpus: self
                .vcpus
                .iter()
                .map(|p| Private {
                    words: p.words.each_ref().map(load),
                    priorities: p.priorities.each_ref().map(load),
                    waker: load(&p.waker),
                })
                .collect(),
            ..copy
        }
    }
}

/// A shared mirror ([`VirtualGic`] and the arch's fast path hold it).
pub(super) struct Shared(pub Arc<Mirror>);

impl Shared {
    pub(super) fn new(v2: bool, vcpus: usize) -> Self {
        Self(Arc::new(Mirror::new(v2, vcpus)))
    }
}

/// A copy of a virtual GIC has a mirror of its own, with the same values.
impl Clone for Shared {
    fn clone(&self) -> Self {
        Self(Arc::new(self.0.copy()))
    }
}

impl core::fmt::Debug for Shared {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl VirtualGic {
    /// The mirror of the registers with state, for reads without the lock ([`Mirror::read`]).
    pub fn mirror(&self) -> Arc<Mirror> {
        self.mirror.0.clone()
    }

    /// Stores every register of the mirror (after construction and reset).
    pub(super) fn publish_all(&self) {
        self.publish_ctlr();
        for s in 0..state::COUNT {
            self.publish_spi_bits(s);
        }
        self.publish_spi_priorities(0..SPI_PRIORITY_WORDS);
        for vcpu in 0..self.redists.len() {
            for s in [state::GROUP1, state::ENABLED, state::ACTIVE] {
                self.publish_private_bits(vcpu, s);
            }
            self.publish_private_priorities(vcpu, 0..PRIVATE_PRIORITY_WORDS);
            self.publish_waker(vcpu);
        }
        self.publish_pending();
    }

    pub(super) fn publish_ctlr(&self) {
        self.mirror.0.store(Slot::Ctlr, u64::from(self.ctlr));
    }

    pub(super) fn publish_waker(&self, vcpu: usize) {
        let asleep = self.redists.get(vcpu).map_or(0, |r| u32::from(r.asleep));
        self.mirror.0.store(Slot::Waker(vcpu), u64::from((asleep << 1) | (asleep << 2)));
    }

    /// The SPIs' words of the state `s` (group 1, enabled or active).
    fn publish_spi_bits(&self, s: usize) {
        let bits = match s {
            state::GROUP1 => self.spi_bits.group1,
            state::ENABLED => self.spi_bits.enabled,
            state::ACTIVE => self.spi_bits.active,
            _ => self.pending_spis,
        } & self.owned_spis;
        for pair in 0..SPI_PAIRS {
            self.mirror.0.store(Slot::Spi(s, pair), (bits >> (64 * pair)) as u64);
        }
    }

    fn publish_private_bits(&self, vcpu: usize, s: usize) {
        let Some(r) = self.redists.get(vcpu) else { return };
        let bits = match s {
            state::GROUP1 => r.bits.group1,
            state::ENABLED => r.bits.enabled,
            state::ACTIVE => r.bits.active,
            _ => r.pending,
        };
        self.mirror.0.store(Slot::Private(vcpu, s), u64::from(bits));
    }

    /// After a write to the bitmap of the state `s` through `bank`.
    pub(super) fn publish_bits(&self, bank: Bank, s: usize) {
        match bank {
            Bank::Distributor => self.publish_spi_bits(s),
            Bank::Redistributor(vcpu) => self.publish_private_bits(vcpu, s),
            Bank::V2(vcpu) => {
                self.publish_private_bits(vcpu, s);
                self.publish_spi_bits(s);
            }
        }
    }

    /// After the pending bitmaps changed anywhere.
    pub(super) fn publish_pending(&self) {
        for vcpu in 0..self.redists.len() {
            self.publish_private_bits(vcpu, state::PENDING);
        }
        self.publish_spi_bits(state::PENDING);
    }

    /// After the pending bit of SPI `n` (INTID 32 + `n`) changed ([`VirtualGic::mark`],
    /// [`VirtualGic::take_alone`]): its pair of registers, the half of the pending bitmap it
    /// lies in.
    #[inline(always)]
    pub(super) fn publish_pending_spi(&self, n: u32) {
        let pair = (n / 64) as usize % SPI_PAIRS;
        let half = if pair == 0 { self.pending_spis as u64 } else { (self.pending_spis >> 64) as u64 };
        self.mirror.0.store(Slot::Spi(state::PENDING, pair), half);
    }

    /// The SPIs' priority words `words`.
    fn publish_spi_priorities(&self, words: core::ops::Range<usize>) {
        for w in words.start..words.end.min(SPI_PRIORITY_WORDS) {
            let bytes = self.spi_priorities.get(4 * w..).and_then(|b| b.first_chunk::<4>());
            self.mirror.0.store(Slot::SpiPriority(w), bytes.map_or(0, |b| u64::from(u32::from_le_bytes(*b))));
        }
    }

    fn publish_private_priorities(&self, vcpu: usize, words: core::ops::Range<usize>) {
        let Some(r) = self.redists.get(vcpu) else { return };
        for w in words.start..words.end.min(PRIVATE_PRIORITY_WORDS) {
            let bytes = r.priorities.get(4 * w..).and_then(|b| b.first_chunk::<4>());
            let word = bytes.map_or(0, |b| u64::from(u32::from_le_bytes(*b)));
            self.mirror.0.store(Slot::PrivatePriority(vcpu, w), word);
        }
    }

    /// After a write to the priorities of the `count` INTIDs from `first` through `bank`: each
    /// register's word once.
    pub(super) fn publish_priorities(&self, bank: Bank, first: u32, count: u32) {
        // Words of the INTIDs first..end: the private ones' (below 32), the SPIs' (from 32).
        let (first, end) = (first as usize / 4, (first + count).div_ceil(4) as usize);
        let spi_base = PRIVATE_PRIORITY_WORDS;
        match bank {
            Bank::Redistributor(vcpu) | Bank::V2(vcpu) if first < spi_base => {
                self.publish_private_priorities(vcpu, first..end.min(spi_base))
            }
            _ => {}
        }
        if matches!(bank, Bank::Distributor | Bank::V2(_)) && end > spi_base {
            self.publish_spi_priorities(first.max(spi_base) - spi_base..end - spi_base);
        }
    }

    /// Whether the mirror holds what the state says (host tests).
    #[cfg(test)]
    pub(super) fn mirror_agrees(&self) -> bool {
        let fresh = Self { mirror: Shared::new(self.v2, self.redists.len()), ..self.clone() };
        fresh.publish_all();
        let (a, b) = (&self.mirror.0, &fresh.mirror.0);
        a.slots().all(|s| a.load(s) == b.load(s))
    }
}
