//! The virtual GIC distributor (and, on a GICv3, redistributors) of one partition: the register
//! state a guest programs through trapped MMIO, and which virtual interrupts are ready to
//! deliver. The interrupt state is the same for both versions; two front ends decode the guest's
//! accesses: the GICv3 one (distributor with affinity routing, a redistributor per vCPU) and the
//! GICv2 one (one distributor that banks SGIs and PPIs per vCPU, CPU targets, GICD_SGIR).
//!
//! Only interrupts the partition owns exist: its channel doorbells and passed-through SPIs, and
//! the SGIs/PPIs of its own vCPUs. Everything else reads as zero and ignores writes, so a guest
//! can neither see nor touch another partition's interrupts. The CPU interface is the hardware's
//! (ICH list registers); the arch layer moves [`VirtualGic::take_deliverable`] results there.
#![forbid(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;

use crate::gic_regs::{GICD_CTLR, SGIR};
use bitmaps::{Kept, StateBits};
use offsets::*;
use tock_registers::LocalRegisterCopy;

pub use crate::gic_regs::GICR_SGI_OFFSET;
pub use intids::Intids;
pub use tantalum_config::vgic::{GICD_SIZE, MAX_INTID, SPI_BASE};
// The configuration's frame sizes are the register blocks' (declared in `gic_regs`).
const _: () = assert!(GICD_SIZE == core::mem::size_of::<crate::gic_regs::Distributor>() as u64);
const _: () = assert!(GICR_SGI_OFFSET == tantalum_config::vgic::GICR_SGI_OFFSET);
/// GICD/GICR_PIDR2: architecture revision 3 (GICv3).
const PIDR2_GICV3: u64 = 0x3b;
/// GICD_PIDR2 of a GICv2.
const PIDR2_GICV2: u64 = 0x2b;
/// Value of IIDR registers: implementer "Tantalum" is not registered; use Arm's code 0x43b.
const IIDR: u64 = 0x0000_043b;
/// Default priority of an interrupt until the guest sets one.
const DEFAULT_PRIORITY: u8 = 0xa0;

const CTLR_ENABLE_GRP0: u32 = GICD_CTLR::ENABLE_GRP0::SET.value;
const CTLR_ENABLE_GRP1: u32 = GICD_CTLR::ENABLE_GRP1::SET.value;
const CTLR_ARE: u32 = GICD_CTLR::ARE::SET.value;
const CTLR_DS: u32 = GICD_CTLR::DS::SET.value;

/// A register access from a guest: `size` in bytes (1, 2, 4 or 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub offset: u64,
    pub size: u8,
    /// `Some(value)` for a write.
    pub write: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default)]
struct IrqState {
    owned: bool,
    enabled: bool,
    pending: bool,
    active: bool,
    group1: bool,
    edge: bool,
    priority: u8,
    /// IROUTER (SPIs only): the target vCPU's affinity.
    route: u64,
    /// The vCPU `route` names, worked out when it is written ([`IrqState::set_route`]): the
    /// interrupt paths compare it without asking how many vCPUs there are.
    target: u8,
    /// The pending state mirrors a physical interrupt of the same INTID that the hypervisor
    /// acknowledged and left active: the list register links them (the guest's EOI deactivates
    /// the physical interrupt).
    hw: bool,
    /// GICv2 SGIs: bit `n`, pending from sender vCPU `n`. A GICv2 keeps an SGI pending per
    /// sender (`GICD_SPENDSGIR`, a bit per sender): each is a distinct interrupt, delivered with
    /// its sender in `GICC_IAR`. `pending` is set while any bit is. Unused on a GICv3.
    sources: u8,
    /// A list register of this vCPU holds the interrupt and asks for a maintenance interrupt
    /// when the guest ends it (see [`VirtualGic::watch`]).
    watched_by: Option<u8>,
}

impl IrqState {
    fn new() -> Self {
        Self { priority: DEFAULT_PRIORITY, ..Self::default() }
    }

    /// Routes this SPI to `route` (IROUTER, or a GICv2 target's vCPU number) in a partition of
    /// `vcpus` vCPUs: to its affinity 0, vCPU 0 when out of range.
    fn set_route(&mut self, route: u64, vcpus: usize) {
        let aff0 = (route & 0xff) as usize;
        self.route = route;
        self.target = if aff0 < vcpus { aff0 as u8 } else { 0 };
    }
}

/// Per-vCPU state: its redistributor and its banked SGIs/PPIs.
#[derive(Clone, Debug)]
struct Redistributor {
    asleep: bool,
    local: [IrqState; SPI_BASE as usize],
    /// Bit `n`: INTID `n` is pending (mirrors `local[n].pending`, for a fast scan).
    pending: u32,
    /// Bit `n`: INTID `n` is group 1, enabled, active (mirrors, see `bitmaps`).
    bits: StateBits<u32>,
    /// Byte `n`: INTID `n`'s priority (mirrors `local[n].priority`, see `direct`).
    priorities: [u8; SPI_BASE as usize],
}

impl Redistributor {
    /// A vCPU's at power-on: asleep, its SGIs edge-triggered, its PPIs level-sensitive.
    fn at_reset() -> Self {
        let mut local = [IrqState::new(); SPI_BASE as usize];
        for (intid, irq) in local.iter_mut().enumerate() {
            irq.owned = true;
            irq.edge = intid < 16;
        }
        let priorities = [DEFAULT_PRIORITY; SPI_BASE as usize];
        Redistributor { asleep: true, local, pending: 0, bits: StateBits::default(), priorities }
    }
}

/// A virtual interrupt ready for a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deliverable {
    pub intid: u32,
    pub priority: u8,
    pub group1: bool,
    /// Linked to the physical interrupt with the same INTID (see [`VirtualGic::set_pending_hw`]).
    pub hw: bool,
    /// GICv2 SGIs: the sending vCPU.
    pub source: u8,
}

/// The vCPUs a GICv2 names in its per-sender SGI registers (CPU interfaces 0-7).
const V2_SENDERS: usize = 8;

/// One partition's virtual distributor and redistributors.
#[derive(Clone, Debug)]
pub struct VirtualGic {
    /// The GICv2 front end (else GICv3).
    v2: bool,
    ctlr: u32,
    spis: Vec<IrqState>,
    /// Bit `n`: SPI INTID `32 + n` is pending (mirrors `spis[n].pending`).
    pending_spis: u128,
    /// Bit `n`: SPI INTID `32 + n` belongs to the partition (mirrors `spis[n].owned`).
    owned_spis: u128,
    /// The SPIs' group, enable and active bits (mirrors, see `bitmaps`).
    spi_bits: StateBits<u128>,
    redists: Vec<Redistributor>,
    /// Bit `n`: SPI INTID `32 + n` is level-sensitive at reset (a device's line, as the board
    /// describes it); the others are edge-triggered (doorbells).
    level_spis: u128,
    /// Byte `n`: SPI INTID `32 + n`'s priority, 0 when the partition does not own it (mirrors
    /// `spis[n]`, see `direct`).
    spi_priorities: Vec<u8>,
    /// The registers with state as atomics, for reads without the lock (see `mirror`).
    mirror: mirror::Shared,
}

/// Where per-INTID registers live: SPIs in the distributor, SGIs and PPIs banked per vCPU in
/// its redistributor's SGI frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bank {
    Distributor,
    Redistributor(usize),
    /// A GICv2 distributor as vCPU `n` sees it: its own SGIs and PPIs, and the SPIs.
    V2(usize),
}

/// What [`VirtualGic::set_pending_hw`] did with a physical interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latched {
    /// Pending and enabled: deliverable.
    Ready,
    /// Pending, but the guest has it disabled: its physical interrupt stays active until the
    /// guest enables and ends it.
    Held,
    /// Not the partition's: the caller deactivates the physical interrupt.
    NotOwned,
}

/// Which registers an MMIO access hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    Distributor,
    /// Redistributor of vCPU `n` (its RD_base frame, then its SGI_base frame).
    Redistributor(usize),
}

impl VirtualGic {
    /// A distributor for `vcpus` vCPUs that owns the SPIs `owned_spis` (INTIDs ≥ 32; others
    /// are ignored).
    pub fn new(vcpus: usize, owned_spis: &[u32]) -> Self {
        Self::for_version(3, vcpus, owned_spis)
    }

    /// Whether this is the GICv2 front end. Never without the `gic-v2` feature: a hypervisor
    /// built without it refuses a GICv2 board at boot, and the optimiser drops the GICv2 paths.
    #[inline(always)]
    fn v2(&self) -> bool {
        cfg!(feature = "gic-v2") && self.v2
    }

    /// As [`VirtualGic::new`], for the board's GIC `version` (2 or 3).
    pub fn for_version(version: u8, vcpus: usize, owned_spis: &[u32]) -> Self {
        let v2 = version == 2;
        let vcpus = vcpus.max(1);
        let spis = (MAX_INTID - SPI_BASE) as usize;
        let mut gic = Self {
            v2,
            ctlr: 0,
            spis: vec![IrqState::new(); spis],
            pending_spis: 0,
            owned_spis: 0,
            spi_bits: StateBits::default(),
            mirror: mirror::Shared::new(v2, vcpus),
            redists: vec![Redistributor::at_reset(); vcpus],
            level_spis: 0,
            spi_priorities: vec![0; spis],
        };
        for n in owned_spis.iter().filter_map(|i| i.checked_sub(SPI_BASE)).filter(|&n| (n as usize) < spis) {
            gic.owned_spis |= 1 << n;
        }
        gic.power_on();
        gic
    }

    /// The power-on state, in place (nothing allocated): what the partition owns and which
    /// SPIs are level-sensitive at reset stay.
    fn power_on(&mut self) {
        self.ctlr = if self.v2() { 0 } else { CTLR_ARE | CTLR_DS };
        let (owned, level) = (self.owned_spis, self.level_spis);
        for (n, (s, priority)) in self.spis.iter_mut().zip(self.spi_priorities.iter_mut()).enumerate() {
            let owned = owned >> n & 1 != 0;
            // Doorbells are edge-triggered; a device's line as the board describes it.
            *s = IrqState { owned, edge: owned && level >> n & 1 == 0, ..IrqState::new() };
            *priority = if owned { s.priority } else { 0 };
        }
        self.pending_spis = 0;
        self.spi_bits = StateBits::default();
        self.redists.fill(Redistributor::at_reset());
        self.publish_all();
    }

    /// The state of `intid` as seen through `bank`; `None` for INTIDs that bank does not hold
    /// or that the partition does not own.
    fn banked_irq(&mut self, bank: Bank, intid: u32) -> Option<&mut IrqState> {
        match bank {
            Bank::Distributor if intid >= SPI_BASE => self.irq(0, intid),
            Bank::Redistributor(vcpu) if intid < SPI_BASE => self.irq(vcpu, intid),
            Bank::V2(vcpu) => self.irq(vcpu, intid),
            _ => None,
        }
    }

    fn irq(&mut self, vcpu: usize, intid: u32) -> Option<&mut IrqState> {
        let irq = if intid < SPI_BASE {
            self.redists.get_mut(vcpu)?.local.get_mut(intid as usize)?
        } else {
            self.spis.get_mut((intid - SPI_BASE) as usize)?
        };
        irq.owned.then_some(irq)
    }

    fn irq_ref(&self, vcpu: usize, intid: u32) -> Option<&IrqState> {
        let irq = if intid < SPI_BASE {
            self.redists.get(vcpu)?.local.get(intid as usize)?
        } else {
            self.spis.get((intid - SPI_BASE) as usize)?
        };
        irq.owned.then_some(irq)
    }

    /// The vCPU an SPI is delivered to (vCPU 0 for anything else).
    pub fn spi_target(&self, intid: u32) -> usize {
        intid.checked_sub(SPI_BASE).and_then(|i| self.spis.get(i as usize)).map_or(0, target_of)
    }

    /// Whether `intid` (an SPI) belongs to this partition.
    pub fn owns(&self, intid: u32) -> bool {
        intid.checked_sub(SPI_BASE).and_then(|i| self.spis.get(i as usize)).is_some_and(|s| s.owned)
    }

    /// Marks `intid` pending (a doorbell rang, a device raised its line). Returns whether the
    /// target vCPU must now take a look (so the caller kicks its CPU): not when the partition
    /// does not own it, nor when it was already pending (whoever raised it then kicked, and the
    /// vCPU has not taken it yet: a flood of notifies to a pending doorbell costs the peer
    /// nothing), nor while the guest has it disabled (enabling it is a trapped write that looks).
    ///
    /// Nor while a list register of the target vCPU holds it and will call the hypervisor when
    /// the guest ends it ([`VirtualGic::watch`]): it is delivered again then.
    pub fn set_pending(&mut self, vcpu: usize, intid: u32) -> bool {
        let v2_sgi = self.v2() && intid < 16;
        match self.irq(vcpu, intid) {
            Some(irq) => {
                let news = !irq.pending && irq.enabled && irq.watched_by != u8::try_from(vcpu).ok();
                irq.pending = true;
                if v2_sgi && vcpu < V2_SENDERS {
                    irq.sources |= 1 << vcpu; // a GICv2 SGI raised on a vCPU's own behalf
                }
                self.mark(vcpu, intid, true);
                news
            }
            None => false,
        }
    }

    /// Marks `intid` pending on behalf of the physical interrupt with the same INTID, which the
    /// hypervisor acknowledged and keeps active until the guest's EOI deactivates it through the
    /// list register.
    ///
    /// An interrupt the guest has disabled is held pending too, its physical interrupt kept
    /// active: a level interrupt still asserted (a timer whose condition is met) cannot fire
    /// again meanwhile, so it does not storm the CPU, and it is delivered once the guest enables
    /// it, as on hardware. Only one the partition does not own is refused (the caller then
    /// deactivates it).
    pub fn set_pending_hw(&mut self, vcpu: usize, intid: u32) -> Latched {
        match self.irq(vcpu, intid) {
            Some(irq) => {
                irq.pending = true;
                irq.hw = true;
                let ready = irq.enabled;
                self.mark(vcpu, intid, true);
                if ready {
                    Latched::Ready
                } else {
                    Latched::Held
                }
            }
            None => Latched::NotOwned,
        }
    }

    /// Withdraws the hardware-linked interrupts still pending (acknowledged, not yet in a list
    /// register) for `vcpu`: its private ones and the SPIs routed to it (whose physical
    /// interrupts follow the routing, so its CPU acknowledged them). Their physical interrupts are
    /// active, and nothing else would end them: the caller deactivates them. For a vCPU leaving
    /// the guest (stop, restart).
    pub fn take_hw_pending(&mut self, vcpu: usize) -> Intids {
        let mut taken = Intids::default();
        let mut take = |irq: &mut IrqState, intid: u32| {
            if irq.hw && irq.pending {
                (irq.hw, irq.pending) = (false, false);
                taken.insert(intid);
            }
        };
        if let Some(r) = self.redists.get_mut(vcpu) {
            r.local.iter_mut().zip(0..).for_each(|(irq, intid)| take(irq, intid));
        }
        for (irq, intid) in self.spis.iter_mut().zip(SPI_BASE..) {
            if target_of(irq) == vcpu {
                take(irq, intid);
            }
        }
        self.recompute_pending();
        taken
    }

    /// The SPIs whose trigger (`ICFGR`, two bits an INTID) a write by the guest to the
    /// distributor sets, for the arch to configure their physical interrupts the same way;
    /// empty for any other access.
    pub fn trigger_written(&self, frame: Frame, access: Access) -> core::ops::Range<u32> {
        let (Frame::Distributor, Some(_)) = (frame, access.write) else { return 0..0 };
        match access.offset {
            o @ offsets::ICFGR..=offsets::ICFGR_LAST => {
                let first = ((o - offsets::ICFGR) * 4) as u32;
                first..first + 4 * u32::from(access.size)
            }
            _ => 0..0,
        }
    }

    /// The SPIs whose target an access by the guest at `offset` of `frame` writes (`IROUTER`,
    /// eight bytes an INTID; GICv2 `ITARGETSR`, one byte), for the arch to route their physical
    /// interrupts the same way; empty for any other access.
    pub fn routing_written(&self, frame: Frame, access: Access) -> core::ops::Range<u32> {
        let (Frame::Distributor, Some(_)) = (frame, access.write) else { return 0..0 };
        let size = u64::from(access.size);
        let (first, count) = match access.offset {
            o @ offsets::IROUTER..=offsets::IROUTER_LAST if !self.v2() => {
                ((o - offsets::IROUTER) / 8, size.div_ceil(8))
            }
            o @ offsets::ITARGETSR..=offsets::ITARGETSR_LAST if self.v2() => (o - offsets::ITARGETSR, size),
            _ => return 0..0,
        };
        let (first, end) = (first as u32, (first + count) as u32);
        first.max(SPI_BASE)..end.max(SPI_BASE)
    }

    /// Notes that a list register of `vcpu` holds `intid` (a software interrupt raised again
    /// while the guest had it: the raise was merged into that list register) and will raise a
    /// maintenance interrupt when the guest ends it. Until [`VirtualGic::end_watch`], raising
    /// it again only marks it pending, to be delivered after that end, and wakes nobody: a
    /// flood of notifies to a doorbell the guest has not finished with costs the guest nothing
    /// (issue 11). Without the mark every such raise would have to interrupt the guest's CPU, as
    /// the hypervisor cannot see that CPU's list registers from another.
    pub fn watch(&mut self, vcpu: usize, intid: u32) {
        let watcher = u8::try_from(vcpu).ok();
        if let Some(irq) = self.irq(vcpu, intid) {
            irq.watched_by = watcher;
        }
    }

    /// Ends [`VirtualGic::watch`] of `intid` by `vcpu`, whose CPU found the list register ended:
    /// raises wake the target again; one that came meanwhile is pending and delivered now.
    pub fn end_watch(&mut self, vcpu: usize, intid: u32) {
        let watcher = u8::try_from(vcpu).ok();
        if let Some(irq) = self.irq(vcpu, intid).filter(|irq| irq.watched_by == watcher) {
            irq.watched_by = None;
        }
    }

    /// Ends every watch of `vcpu`, whose list registers were emptied (it starts afresh).
    pub fn end_watches(&mut self, vcpu: usize) {
        let watcher = u8::try_from(vcpu).ok();
        let local = self.redists.get_mut(vcpu).map(|r| &mut r.local[..]).unwrap_or_default();
        for irq in local.iter_mut().chain(self.spis.iter_mut()).filter(|irq| irq.watched_by == watcher) {
            irq.watched_by = None;
        }
    }

    /// Follows a level-triggered line (the virtual UART's): high makes the interrupt pending,
    /// low withdraws it if it was not delivered yet. Returns whether it is pending now.
    pub fn set_level(&mut self, vcpu: usize, intid: u32, high: bool) -> bool {
        let Some(irq) = self.irq(vcpu, intid) else { return false };
        irq.pending = high;
        self.mark(vcpu, intid, high);
        high
    }

    /// Keeps the pending bitmaps and their mirror in step with `IrqState::pending`.
    fn mark(&mut self, vcpu: usize, intid: u32, pending: bool) {
        if intid < SPI_BASE {
            if let Some(r) = self.redists.get_mut(vcpu) {
                let bit = 1u32 << intid;
                r.pending = if pending { r.pending | bit } else { r.pending & !bit };
                let word = u64::from(r.pending);
                self.mirror.0.store(mirror::Slot::Private(vcpu, mirror::state::PENDING), word);
            }
        } else if intid - SPI_BASE < 128 {
            let bit = 1u128 << (intid - SPI_BASE);
            self.pending_spis = if pending { self.pending_spis | bit } else { self.pending_spis & !bit };
            self.publish_pending_spi(intid - SPI_BASE);
        }
    }

    /// Rebuilds the pending bitmaps from the per-interrupt state (after a guest's register
    /// write, which may set or clear pending bits).
    fn recompute_pending(&mut self) {
        self.pending_spis =
            self.spis.iter().enumerate().filter(|(_, s)| s.pending).fold(0u128, |acc, (i, _)| acc | (1 << i));
        for r in &mut self.redists {
            r.pending = r
                .local
                .iter()
                .enumerate()
                .filter(|(_, s)| s.pending)
                .fold(0u32, |acc, (i, _)| acc | (1 << i));
        }
        self.publish_pending();
    }

    #[inline(always)]
    fn group_enabled(&self, group1: bool) -> bool {
        // EnableGrp0 is bit 0 and EnableGrp1 bit 1 (GICv3 with DS set, and GICv2): a shift.
        const _: () = assert!(CTLR_ENABLE_GRP0 == 1 && CTLR_ENABLE_GRP1 == 2);
        (self.ctlr >> u32::from(group1)) & 1 != 0
    }

    /// The highest-priority interrupt ready for `vcpu`: (INTID, priority). Only pending
    /// interrupts are looked at (the bitmaps), so the common case of nothing pending is cheap.
    fn best(&self, vcpu: usize) -> Option<(u32, u8)> {
        self.scan(vcpu).0
    }

    /// [`VirtualGic::best`], and whether another interrupt is ready for `vcpu` too (one pass).
    fn scan(&self, vcpu: usize) -> (Option<(u32, u8)>, bool) {
        let mut best: Option<(u32, u8)> = None;
        let mut others = false;
        let mut consider = |intid: u32, irq: &IrqState| {
            let ready = irq.owned && irq.pending && irq.enabled && self.group_enabled(irq.group1);
            if !ready {
                return;
            }
            others |= best.is_some();
            if best.is_none_or(|(_, p)| irq.priority < p) {
                best = Some((intid, irq.priority));
            }
        };
        if let Some(r) = self.redists.get(vcpu) {
            let mut bits = r.pending;
            while bits != 0 {
                let intid = bits.trailing_zeros();
                bits &= bits - 1;
                consider(intid, &r.local[intid as usize]);
            }
        }
        let mut bits = self.pending_spis;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(irq) = self.spis.get(i).filter(|irq| target_of(irq) == vcpu) {
                consider(SPI_BASE + i as u32, irq);
            }
        }
        (best, others)
    }

    /// Takes the highest-priority interrupt ready for `vcpu` and clears its pending state (the
    /// list register holds it from now on). `None` when nothing is ready.
    pub fn take_deliverable(&mut self, vcpu: usize) -> Option<Deliverable> {
        let (intid, priority) = self.best(vcpu)?;
        self.take(vcpu, intid, priority)
    }

    /// [`VirtualGic::take_deliverable`], and whether anything is still ready for `vcpu` after it
    /// (what [`VirtualGic::has_deliverable`] would say then), from one evaluation.
    #[inline]
    pub fn take_next(&mut self, vcpu: usize) -> (Option<Deliverable>, bool) {
        let (Some((intid, priority)), others) = self.scan(vcpu) else { return (None, false) };
        let taken = self.take(vcpu, intid, priority);
        // Still ready after it was taken: only a GICv2 SGI, pending from another sender (`take`).
        let again = || {
            self.irq_ref(vcpu, intid)
                .is_some_and(|irq| irq.pending && irq.enabled && self.group_enabled(irq.group1))
        };
        let more = others || (taken.is_some() && self.v2() && intid < 16 && again());
        (taken, more)
    }

    /// The physical interrupt `intid` for `vcpu` as a list register takes it at once, when
    /// nothing else is pending for `vcpu` and it is ready (owned, enabled, its group enabled, an
    /// SPI routed to `vcpu`): it is then what [`VirtualGic::take_deliverable`] would give after
    /// [`VirtualGic::set_pending_hw`], and the state after both is the state now. `None`
    /// otherwise: the caller latches it with [`VirtualGic::set_pending_hw`]. The interrupt
    /// path's fast case: no pending bit set and cleared, no scan.
    #[inline]
    pub fn deliver_hw_at_once(&self, vcpu: usize, intid: u32) -> Option<Deliverable> {
        let alone = self.pending_spis == 0 && self.redists.get(vcpu).is_some_and(|r| r.pending == 0);
        let irq = self.irq_ref(vcpu, intid).filter(|_| alone)?;
        let routed_here = intid < SPI_BASE || target_of(irq) == vcpu;
        if !irq.enabled || !self.group_enabled(irq.group1) || !routed_here {
            return None;
        }
        Some(Deliverable { intid, priority: irq.priority, group1: irq.group1, hw: true, source: 0 })
    }

    /// The interrupt ready for `vcpu`, taken, when it is the only one pending in this virtual GIC
    /// (one pending bit among `vcpu`'s SGIs and PPIs and every SPI) and ready for `vcpu` (owned,
    /// enabled, its group enabled, an SPI routed to `vcpu`; a GICv2 SGI from one sender at
    /// most): then [`VirtualGic::take_next`] gives it and nothing more, `(Some(d), false)`, and
    /// leaves the same state. `None`, having changed nothing, otherwise (the caller takes the
    /// general path). The list registers' loaders' fast case (a doorbell, a kick's SGI): no
    /// scan. Always inlined: each GIC's loader has its copy (outlined, the call and its frame
    /// cost the doorbell about 20 instructions).
    #[inline(always)]
    pub fn take_alone(&mut self, vcpu: usize) -> Option<Deliverable> {
        let local = self.redists.get(vcpu)?.pending;
        let intid = match (local, self.pending_spis) {
            (bits, 0) if bits.is_power_of_two() => bits.trailing_zeros(),
            (0, bits) if bits.is_power_of_two() => SPI_BASE + bits.trailing_zeros(),
            _ => return None,
        };
        let (v2_sgi, ctlr) = (self.v2() && intid < 16, self.ctlr);
        let irq = match intid.checked_sub(SPI_BASE) {
            None => self.redists.get_mut(vcpu)?.local.get_mut(intid as usize)?,
            Some(spi) => self.spis.get_mut(spi as usize)?,
        };
        let routed_here = intid < SPI_BASE || target_of(irq) == vcpu;
        let one_sender = !v2_sgi || irq.sources & irq.sources.wrapping_sub(1) == 0;
        let group_enabled = (ctlr >> u32::from(irq.group1)) & 1 != 0; // as `group_enabled`
        if !(irq.owned && irq.pending && irq.enabled && group_enabled && routed_here && one_sender) {
            return None;
        }
        // What `take` does, with its pending bit the only one set: that bitmap is now empty.
        let source = if v2_sgi { irq.sources.trailing_zeros().min(7) as u8 } else { 0 };
        irq.sources &= !(1u8 << source);
        let d = Deliverable { intid, priority: irq.priority, group1: irq.group1, hw: irq.hw, source };
        (irq.pending, irq.hw) = (false, false);
        if intid >= SPI_BASE {
            self.pending_spis = 0;
            self.publish_pending_spi(intid - SPI_BASE);
        } else if let Some(r) = self.redists.get_mut(vcpu) {
            r.pending = 0;
            self.mirror.0.store(mirror::Slot::Private(vcpu, mirror::state::PENDING), 0);
        }
        Some(d)
    }

    /// Clears the pending state of `intid` for `vcpu`, found ready with `priority`, and returns
    /// it as a list register takes it.
    fn take(&mut self, vcpu: usize, intid: u32, priority: u8) -> Option<Deliverable> {
        let v2_sgi = self.v2() && intid < 16;
        let irq = self.irq(vcpu, intid)?;
        // A GICv2 SGI from several senders: the lowest sender's now, the others stay pending.
        let source = if v2_sgi { irq.sources.trailing_zeros().min(7) as u8 } else { 0 };
        irq.sources &= !(1u8 << source);
        irq.pending = v2_sgi && irq.sources != 0;
        let (group1, hw, still) = (irq.group1, irq.hw, irq.pending);
        irq.hw = false;
        self.mark(vcpu, intid, still);
        Some(Deliverable { intid, priority, group1, hw, source })
    }

    /// Puts back a deliverable that [`VirtualGic::take_deliverable`] gave and the caller could
    /// not load: pending again as it was (hardware-linked, or from its GICv2 SGI sender).
    pub fn put_back(&mut self, vcpu: usize, d: &Deliverable) {
        if d.hw {
            self.set_pending_hw(vcpu, d.intid);
            return;
        }
        let v2_sgi = self.v2() && d.intid < 16;
        if let Some(irq) = self.irq(vcpu, d.intid) {
            irq.pending = true;
            if v2_sgi {
                irq.sources |= 1 << (d.source % 8);
            }
            self.mark(vcpu, d.intid, true);
        }
    }

    /// Whether anything is ready for `vcpu`.
    pub fn has_deliverable(&self, vcpu: usize) -> bool {
        self.best(vcpu).is_some()
    }

    /// Emulates one access of vCPU `vcpu`; returns the value for a read (0 for a write or an
    /// unimplemented register: reads as zero, writes ignored).
    pub fn access(&mut self, vcpu: usize, frame: Frame, access: Access) -> u64 {
        let value = match frame {
            Frame::Distributor if self.v2() => self.distributor_v2(vcpu, access),
            _ => self.emulate(frame, access),
        };
        if access.write.is_some() {
            self.recompute_pending();
        }
        value
    }

    fn emulate(&mut self, frame: Frame, access: Access) -> u64 {
        match frame {
            Frame::Distributor => self.distributor(access),
            Frame::Redistributor(vcpu) if vcpu < self.redists.len() => {
                if access.offset >= GICR_SGI_OFFSET {
                    let a = Access { offset: access.offset - GICR_SGI_OFFSET, ..access };
                    self.banked(vcpu, a)
                } else {
                    self.redistributor(vcpu, access)
                }
            }
            Frame::Redistributor(_) => 0,
        }
    }

    fn distributor(&mut self, a: Access) -> u64 {
        match (a.offset, a.write) {
            (GICD_CTLR, None) => u64::from(self.ctlr),
            (GICD_CTLR, Some(v)) => {
                self.ctlr = (v as u32 & (CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1)) | CTLR_ARE | CTLR_DS;
                self.publish_ctlr();
                0
            }
            // ITLinesNumber = 3 (128 INTIDs), IDbits = 9 (10-bit INTIDs), no LPIs or MBIs.
            (GICD_TYPER, None) => ((MAX_INTID / 32 - 1) | (9 << 19)) as u64,
            (GICD_IIDR, None) => IIDR,
            (GICD_PIDR2, None) => PIDR2_GICV3,
            (IROUTER..=IROUTER_LAST, _) if a.offset.is_multiple_of(8) || a.size == 4 => self.irouter(a),
            (IGROUPR..=ICFGR_LAST, _) => self.intid_registers(Bank::Distributor, a),
            _ => 0,
        }
    }

    /// The GICv2 distributor, as vCPU `vcpu` sees it.
    fn distributor_v2(&mut self, vcpu: usize, a: Access) -> u64 {
        let vcpus = self.redists.len() as u64;
        match (a.offset, a.write) {
            (GICD_CTLR, None) => u64::from(self.ctlr),
            (GICD_CTLR, Some(v)) => {
                self.ctlr = v as u32 & (CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1);
                self.publish_ctlr();
                0
            }
            // ITLinesNumber (128 INTIDs), CPUNumber = vCPUs - 1, no security extensions.
            (GICD_TYPER, None) => u64::from(MAX_INTID / 32 - 1) | ((vcpus - 1) << 5),
            (GICD_IIDR, None) => IIDR,
            (GICD_PIDR2_V2, None) => PIDR2_GICV2,
            (GICD_SGIR, Some(v)) => {
                self.send_sgi_v2(vcpu, v as u32);
                0
            }
            (ITARGETSR..=ITARGETSR_LAST, _) => self.targets(vcpu, (a.offset - ITARGETSR) as u32, a),
            (CPENDSGIR..=CPENDSGIR_LAST, _) => {
                self.sgi_pending_v2(vcpu, (a.offset - CPENDSGIR) as u32, a, false)
            }
            (SPENDSGIR..=SPENDSGIR_LAST, _) => {
                self.sgi_pending_v2(vcpu, (a.offset - SPENDSGIR) as u32, a, true)
            }
            // ISPENDR0/ICPENDR0 ignore writes to SGI bits on a GICv2 (SPENDSGIR/CPENDSGIR set them).
            (ISPENDR | ICPENDR, Some(v)) => {
                self.intid_registers(Bank::V2(vcpu), Access { write: Some(v & !0xffff), ..a })
            }
            (IGROUPR..=ICFGR_LAST, _) => self.intid_registers(Bank::V2(vcpu), a),
            _ => 0,
        }
    }

    /// GICD_ITARGETSR: a byte per INTID with a bit per vCPU (RAZ/WI with one vCPU, as on a
    /// uniprocessor GICv2). SGIs and PPIs read as their own vCPU's; an SPI goes to the lowest vCPU named (kept as its route).
    fn targets(&mut self, vcpu: usize, first: u32, a: Access) -> u64 {
        let vcpus = self.redists.len();
        // A uniprocessor GICv2's ITARGETSRs are RAZ/WI (everything targets the one CPU).
        if vcpus == 1 {
            return 0;
        }
        let mut value = 0u64;
        for byte in 0..u32::from(a.size.min(4)) {
            let intid = first + byte;
            let Some(irq) = self.irq(vcpu, intid) else { continue };
            match a.write {
                None if intid < SPI_BASE => value |= (1u64 << vcpu) << (8 * byte),
                None => value |= (1u64 << (irq.route & 7)) << (8 * byte),
                Some(v) if intid >= SPI_BASE => {
                    let mask = (v >> (8 * byte)) as u8 & ((1u16 << vcpus.min(8)) - 1) as u8;
                    if mask != 0 {
                        irq.set_route(u64::from(mask.trailing_zeros()), vcpus);
                    }
                }
                Some(_) => {}
            }
        }
        value
    }

    /// GICD_CPENDSGIR (`set` false) and GICD_SPENDSGIR: a byte per SGI from `first`, a bit per
    /// sending vCPU (those the partition has): a set makes the SGI pending from each sender
    /// named, a clear withdraws it from each; the others' stay.
    fn sgi_pending_v2(&mut self, vcpu: usize, first: u32, a: Access, set: bool) -> u64 {
        let senders_here = ((1u16 << self.redists.len().min(V2_SENDERS)) - 1) as u8;
        let mut value = 0u64;
        for byte in 0..u32::from(a.size.min(4)) {
            let intid = first + byte;
            let Some(irq) = self.irq(vcpu, intid).filter(|_| intid < 16) else { continue };
            match a.write.map(|v| (v >> (8 * byte)) as u8 & senders_here) {
                None => value |= u64::from(irq.sources) << (8 * byte),
                Some(senders) if set => irq.sources |= senders,
                Some(senders) => irq.sources &= !senders,
            }
            irq.pending = irq.sources != 0;
        }
        value
    }

    /// GICD_SGIR: SGI `value[3:0]` to the vCPUs of the target list `value[23:16]`, every other
    /// vCPU (filter 1) or the sender itself (filter 2).
    fn send_sgi_v2(&mut self, vcpu: usize, value: u32) {
        let value = LocalRegisterCopy::<u32, SGIR::Register>::new(value);
        let intid = value.read(SGIR::INTID);
        let list = value.read(SGIR::TARGETS);
        for target in 0..self.redists.len().min(8) {
            let chosen = match value.read_as_enum(SGIR::FILTER) {
                Some(SGIR::FILTER::Value::List) => list & (1 << target) != 0,
                Some(SGIR::FILTER::Value::AllButSelf) => target != vcpu,
                Some(SGIR::FILTER::Value::OnlySelf) => target == vcpu,
                None => false,
            };
            if let Some(irq) = self.irq(target, intid).filter(|_| chosen) {
                irq.pending = true;
                irq.sources |= 1 << (vcpu % V2_SENDERS);
            }
        }
    }

    fn irouter(&mut self, a: Access) -> u64 {
        let intid = ((a.offset - IROUTER) / 8) as u32;
        let high = a.offset % 8 == 4;
        let vcpus = self.redists.len();
        let Some(irq) = self.irq(0, intid).filter(|_| intid >= SPI_BASE) else { return 0 };
        match a.write {
            None if high => irq.route >> 32,
            None => irq.route,
            Some(v) if high => {
                irq.set_route((irq.route & 0xffff_ffff) | (v << 32), vcpus);
                0
            }
            Some(v) => {
                let route = if a.size == 8 { v } else { (irq.route & !0xffff_ffff) | (v & 0xffff_ffff) };
                irq.set_route(route, vcpus);
                0
            }
        }
    }

    fn redistributor(&mut self, vcpu: usize, a: Access) -> u64 {
        let last = vcpu + 1 == self.redists.len();
        match (a.offset, a.write) {
            (GICR_IIDR, None) => IIDR,
            // TYPER: Affinity_Value = vCPU number (Aff0), Processor_Number, Last.
            (GICR_TYPER, None) => {
                let typer = ((vcpu as u64) << 32) | ((vcpu as u64) << 8) | (u64::from(last) << 4);
                if a.size == 4 {
                    typer & 0xffff_ffff
                } else {
                    typer
                }
            }
            (GICR_TYPER_HIGH, None) => vcpu as u64,
            (GICR_WAKER, None) => {
                let asleep = u64::from(self.redists[vcpu].asleep);
                (asleep << 1) | (asleep << 2)
            }
            (GICR_WAKER, Some(v)) => {
                self.redists[vcpu].asleep = v & (1 << 1) != 0;
                self.publish_waker(vcpu);
                0
            }
            (GICR_PIDR2, None) => PIDR2_GICV3,
            _ => 0,
        }
    }

    fn banked(&mut self, vcpu: usize, a: Access) -> u64 {
        match a.offset {
            IGROUPR..=SGI_FRAME_ICFGR_LAST => self.intid_registers(Bank::Redistributor(vcpu), a),
            _ => 0,
        }
    }

    /// The registers with a bit, two bits or a byte per INTID: the same offsets in the
    /// distributor (SPIs) and in a redistributor's SGI frame (its SGIs and PPIs).
    fn intid_registers(&mut self, bank: Bank, a: Access) -> u64 {
        let offset = a.offset;
        let bit_reg = |base: u64| (offset - base) as u32 * 8;
        match offset {
            // Reads of the bit-per-INTID registers: from the bitmaps, a word at a time.
            IGROUPR..=IGROUPR_LAST if a.write.is_none() => {
                self.read_kept(bank, bit_reg(IGROUPR), Kept::Group1)
            }
            ISENABLER..=ISENABLER_LAST if a.write.is_none() => {
                self.read_kept(bank, bit_reg(ISENABLER), Kept::Enabled)
            }
            ICENABLER..=ICENABLER_LAST if a.write.is_none() => {
                self.read_kept(bank, bit_reg(ICENABLER), Kept::Enabled)
            }
            ISPENDR..=ISPENDR_LAST if a.write.is_none() => self.read_pending(bank, bit_reg(ISPENDR)),
            ICPENDR..=ICPENDR_LAST if a.write.is_none() => self.read_pending(bank, bit_reg(ICPENDR)),
            ISACTIVER..=ISACTIVER_LAST if a.write.is_none() => {
                self.read_kept(bank, bit_reg(ISACTIVER), Kept::Active)
            }
            ICACTIVER..=ICACTIVER_LAST if a.write.is_none() => {
                self.read_kept(bank, bit_reg(ICACTIVER), Kept::Active)
            }
            IGROUPR..=IGROUPR_LAST => self.bits_kept(bank, bit_reg(IGROUPR), a.write, Kept::Group1, Op::Set),
            ISENABLER..=ISENABLER_LAST => {
                self.bits_kept(bank, bit_reg(ISENABLER), a.write, Kept::Enabled, Op::Or)
            }
            ICENABLER..=ICENABLER_LAST => {
                self.bits_kept(bank, bit_reg(ICENABLER), a.write, Kept::Enabled, Op::Clear)
            }
            ISPENDR..=ISPENDR_LAST => self.bits(bank, bit_reg(ISPENDR), a.write, |i| &mut i.pending, Op::Or),
            ICPENDR..=ICPENDR_LAST => {
                self.bits(bank, bit_reg(ICPENDR), a.write, |i| &mut i.pending, Op::Clear)
            }
            ISACTIVER..=ISACTIVER_LAST => {
                self.bits_kept(bank, bit_reg(ISACTIVER), a.write, Kept::Active, Op::Or)
            }
            ICACTIVER..=ICACTIVER_LAST => {
                self.bits_kept(bank, bit_reg(ICACTIVER), a.write, Kept::Active, Op::Clear)
            }
            IPRIORITYR..=IPRIORITYR_LAST => self.priorities(bank, (offset - IPRIORITYR) as u32, a),
            ICFGR..=ICFGR_LAST => self.config(bank, (offset - ICFGR) as u32 * 4, a.write),
            _ => 0,
        }
    }

    /// A write to a register of a mirrored state (`kept`): the per-INTID states, then the
    /// bitmaps.
    fn bits_kept(&mut self, bank: Bank, first: u32, write: Option<u64>, kept: Kept, op: Op) -> u64 {
        let field: fn(&mut IrqState) -> &mut bool = match kept {
            Kept::Group1 => |i| &mut i.group1,
            Kept::Enabled => |i| &mut i.enabled,
            Kept::Active => |i| &mut i.active,
        };
        let value = self.bits(bank, first, write, field, op);
        if let Some(v) = write {
            self.write_kept(bank, first, v, kept, op);
        }
        value
    }

    fn bits(
        &mut self,
        bank: Bank,
        first: u32,
        write: Option<u64>,
        field: impl Fn(&mut IrqState) -> &mut bool,
        op: Op,
    ) -> u64 {
        let mut value = 0u64;
        let mut apply = |bit: u32, irq: &mut IrqState| {
            let f = field(irq);
            match write {
                None => value |= u64::from(*f) << bit,
                Some(v) => {
                    let set = v & (1 << bit) != 0;
                    match op {
                        Op::Set => *f = set,
                        Op::Or if set => *f = true,
                        Op::Clear if set => *f = false,
                        _ => {}
                    }
                }
            }
        };
        if (first < SPI_BASE) == (first + 31 < SPI_BASE) {
            // All 32 in one bank (the aligned case): walk its states directly.
            for (bit, irq) in (0..).zip(self.banked_irqs(bank, first, 32)) {
                if irq.owned {
                    apply(bit, irq);
                }
            }
        } else {
            for bit in 0..32 {
                if let Some(irq) = self.banked_irq(bank, first + bit) {
                    apply(bit, irq);
                }
            }
        }
        value
    }

    /// The states of the `count` INTIDs from `first` on that `bank` holds, when they all lie in
    /// one part of it (all SGIs and PPIs, or all SPIs): what [`VirtualGic::banked_irq`] gives
    /// one by one, owned or not (the caller skips those not owned), without the INTIDs beyond
    /// the implemented ones.
    fn banked_irqs(&mut self, bank: Bank, first: u32, count: u32) -> &mut [IrqState] {
        let private = first < SPI_BASE;
        let irqs: &mut [IrqState] = match bank {
            Bank::Distributor if !private => &mut self.spis,
            Bank::Redistributor(vcpu) | Bank::V2(vcpu) if private => match self.redists.get_mut(vcpu) {
                Some(r) => &mut r.local,
                None => return &mut [],
            },
            Bank::V2(_) => &mut self.spis,
            _ => return &mut [],
        };
        let start = if private { first } else { first - SPI_BASE } as usize;
        let start = start.min(irqs.len());
        let end = start.saturating_add(count as usize).min(irqs.len());
        &mut irqs[start..end]
    }

    fn priorities(&mut self, bank: Bank, first: u32, a: Access) -> u64 {
        let count = u32::from(a.size.min(8));
        let one_part = count > 0 && (first < SPI_BASE) == (first + count - 1 < SPI_BASE);
        if a.write.is_none() && one_part {
            // A read within one part of the bank (the usual, aligned case): its states at once.
            let irqs = self.banked_irqs(bank, first, count);
            let owned = irqs.iter().zip(0..).filter(|(irq, _)| irq.owned);
            return owned.fold(0u64, |value, (irq, byte)| value | u64::from(irq.priority) << (8 * byte));
        }
        let mut value = 0u64;
        for byte in 0..count {
            let Some(irq) = self.banked_irq(bank, first + byte) else { continue };
            match a.write {
                None => value |= u64::from(irq.priority) << (8 * byte),
                Some(v) => {
                    let priority = (v >> (8 * byte)) as u8;
                    irq.priority = priority;
                    self.mirror_priority(bank, first + byte, priority);
                }
            }
        }
        if a.write.is_some() {
            self.publish_priorities(bank, first, count);
        }
        value
    }

    fn config(&mut self, bank: Bank, first: u32, write: Option<u64>) -> u64 {
        let mut value = 0u64;
        for i in 0..16 {
            let intid = first + i;
            let Some(irq) = self.banked_irq(bank, intid) else { continue };
            match write {
                None => value |= u64::from(irq.edge) << (2 * i + 1),
                // SGIs are always edge-triggered.
                Some(v) if intid >= 16 => irq.edge = v & (1 << (2 * i + 1)) != 0,
                Some(_) => {}
            }
        }
        value
    }

    /// Makes SPI `intid` level-sensitive from reset on (ICFGR reads it so until the guest writes
    /// it): a passed-through device's level line, the virtual UART's.
    pub fn set_level_at_reset(&mut self, intid: u32) {
        let Some(n) = intid.checked_sub(SPI_BASE).filter(|&n| n < 128) else { return };
        self.level_spis |= 1 << n;
        if let Some(irq) = self.spis.get_mut(n as usize) {
            irq.edge = false;
        }
    }

    /// Resets to the power-on state (partition restart), keeping ownership and the reset
    /// triggers.
    pub fn reset(&mut self) {
        self.power_on();
    }
}

/// The vCPU an SPI is routed to: its route's affinity 0, vCPU 0 when out of range
/// ([`IrqState::set_route`]).
fn target_of(irq: &IrqState) -> usize {
    usize::from(irq.target)
}

#[derive(Clone, Copy)]
enum Op {
    /// The register holds the value (IGROUPR).
    Set,
    /// Writing 1 sets (ISENABLER, ISPENDR, ISACTIVER).
    Or,
    /// Writing 1 clears (ICENABLER, ICPENDR, ICACTIVER).
    Clear,
}

mod bitmaps;
mod constants;
mod direct;
mod intids;
mod listed;
mod mirror;
mod offsets;
mod resample;
#[cfg(test)]
mod transitions;
pub use constants::constant;
pub use direct::{DirectRead, Shows};
pub use listed::{involves_listed, reaches_other_vcpus, Listed};
pub use mirror::Mirror;

#[cfg(test)]
mod tests;
