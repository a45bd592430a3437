//! The physical GICv2 (GIC-400) as the hypervisor uses it: the distributor and the memory-mapped
//! CPU interface (GICC) for the hypervisor's own interrupts, and the virtual interface control
//! (GICH) whose list registers hold a partition's interrupts; the partition reaches its
//! interrupts through the virtual CPU interface (GICV), mapped in its stage 2.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use spin::Mutex;
use tantalum_aarch64::boot_once::BootOnce;
use tantalum_core::config::MAX_CPUS;
use tantalum_core::gic_regs::{
    CpuInterface, Distributor, VirtualControl, GICC_IAR, GICH_HCR, GICH_LR, GICH_VMCR, GICH_VTR, SGIR,
};
use tantalum_core::vgic::{self, Deliverable, Listed, VirtualGic};
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::LocalRegisterCopy;

use super::{FORWARDED_PPIS, KICK_SGI, MAINTENANCE_INTID, SPURIOUS, WAKEUP_INTID};

/// The MMIO bases of the GIC's frames (addresses: register blocks are not `Sync`).
struct Frames {
    gicd: usize,
    gicc: usize,
    gich: usize,
    /// The virtual CPU interface: the guest's, reached from EL2 only for its trapped accesses.
    gicv: usize,
}

impl Frames {
    fn gicd(&self) -> &'static Distributor {
        // SAFETY: `init_distributor`'s caller guarantees the frame is the GIC's, mapped for
        // good; the register block only performs volatile accesses.
        unsafe { &*(self.gicd as *const Distributor) }
    }

    fn gicc(&self) -> &'static CpuInterface {
        // SAFETY: as in `gicd`.
        unsafe { &*(self.gicc as *const CpuInterface) }
    }

    fn gich(&self) -> &'static VirtualControl {
        // SAFETY: as in `gicd`; each CPU's GICH frame is its own (the GIC banks it).
        unsafe { &*(self.gich as *const VirtualControl) }
    }
}

static FRAMES: BootOnce<Frames> = BootOnce::new();

/// What the fast paths read of the GIC, side by side: one address computed for all of them.
struct Fast {
    /// The CPU interface's and the virtual interface control's bases again: a plain load each
    /// instead of [`FRAMES`]' readiness check. Stored before `FRAMES` is published (Release) and
    /// read by a CPU only once its `init_cpu` saw `FRAMES` (Acquire), so a relaxed load sees
    /// them; 0 before that.
    gicc: AtomicUsize,
    gich: AtomicUsize,
    /// `GICH_ELRSR0`'s bits of the list registers (a bit each), as every started CPU's
    /// `GICH_VTR` gives them; [`UNKNOWN_ELRSR`] while unknown, when CPUs disagree, or with more
    /// than 32 list registers: then the fast cases that look for all empty list registers are
    /// not taken.
    all_empty_elrsr: AtomicU64,
}

/// [`Fast::all_empty_elrsr`] when no mask is agreed: a bit no 32-bit `GICH_ELRSR0` has, so
/// the test that every list register is empty fails without a test of its own.
const UNKNOWN_ELRSR: u64 = 1 << 32;

static FAST: Fast = Fast {
    gicc: AtomicUsize::new(0),
    gich: AtomicUsize::new(0),
    all_empty_elrsr: AtomicU64::new(UNKNOWN_ELRSR),
};

/// What the started CPUs agreed on for [`Fast::all_empty_elrsr`] (`None`: no CPU yet).
static LEARNED_ELRSR: Mutex<Option<u32>> = Mutex::new(None);

/// Each started CPU's `mpidr << 8 | CPU interface mask` (a GICv2 names CPUs by interface
/// number, not affinity); 0: free.
static CPU_MASKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// An SPI routed to a CPU that had not started yet (its interface number unknown until it
/// reads its own): `init_cpu` of that CPU programs it.
#[derive(Clone, Copy)]
struct Deferred {
    intid: u32,
    mpidr: u64,
    edge: bool,
}

/// SPIs waiting for their target CPU to start (passed-through devices, console input, the
/// SMMU's: routed at boot, before the boot CPU starts the others).
static DEFERRED: Mutex<heapless::Vec<Deferred, 64>> = Mutex::new(heapless::Vec::new());

/// GICC_CTLR: group 0 and group 1 enabled, EOImode 1 (EOI drops priority, GICC_DIR
/// deactivates: an interrupt forwarded to a guest stays active until the guest ends it). With
/// the Security Extensions, the non-secure view reads bit 0 as group 1 and bit 9 as EOImodeNS.
const GICC_CTLR_VALUE: u32 = 0b11 | (1 << 9);

/// Records the frames and enables the distributor.
///
/// # Safety
/// `gicd`, `gicc`, `gich` and `gicv` must be the MMIO bases of the board GIC's distributor,
/// CPU interface, virtual interface control and virtual CPU interface, mapped as device memory
/// for the rest of the program, and programmed by nothing else (the GICV: but the guests).
#[unsafe(link_section = ".text.boot_only")]
pub unsafe fn init_distributor(gicd: usize, gicc: usize, gich: usize, gicv: usize) {
    FAST.gicc.store(gicc, Ordering::Relaxed);
    FAST.gich.store(gich, Ordering::Relaxed);
    let _ = FRAMES.set(Frames { gicd, gicc, gich, gicv });
    frames().gicd().ctlr.set(0b11);
}

fn frames() -> &'static Frames {
    // init_cpu refuses to run before init_distributor; nothing else runs before init_cpu.
    FRAMES.get().unwrap_or_else(|| panic!("GICv2 used before init_distributor"))
}

/// This CPU's interface, for the interrupt fast path ([`Fast::gicc`]); `None` before
/// `init_distributor`.
#[inline(always)]
fn gicc_fast() -> Option<&'static CpuInterface> {
    let base = FAST.gicc.load(Ordering::Relaxed);
    // SAFETY: non-zero, it is the frame `init_distributor`'s caller vouched for (see `Frames`).
    (base != 0).then(|| unsafe { &*(base as *const CpuInterface) })
}

/// This CPU's virtual interface control, for the fast paths ([`Fast::gich`]).
#[inline(always)]
fn gich_fast() -> Option<&'static VirtualControl> {
    let base = FAST.gich.load(Ordering::Relaxed);
    // SAFETY: as in `gicc_fast`.
    (base != 0).then(|| unsafe { &*(base as *const VirtualControl) })
}

/// Records this CPU's list registers in [`Fast::all_empty_elrsr`], before it runs any guest. Once
/// a CPU disagrees it stays unknown; a CPU sees only its own agreed value or
/// [`UNKNOWN_ELRSR`] after this.
fn learn_all_empty(gich: &VirtualControl) {
    let mut learned = LEARNED_ELRSR.lock();
    let agreed = tantalum_aarch64::list_registers::agreed_all_empty(*learned, list_registers(gich));
    *learned = Some(agreed);
    let all = if agreed == 0 { UNKNOWN_ELRSR } else { u64::from(agreed) };
    FAST.all_empty_elrsr.store(all, Ordering::Relaxed);
}

/// This CPU's virtual interface control when every one of its list registers is empty
/// (`GICH_ELRSR0`); `None` otherwise or while that is not known ([`Fast::all_empty_elrsr`]).
#[inline(always)]
fn gich_all_empty() -> Option<&'static VirtualControl> {
    let all = FAST.all_empty_elrsr.load(Ordering::Relaxed);
    gich_fast().filter(|gich| u64::from(gich.elrsr[0].get()) & all == all)
}

/// Loads `d` into the first list register of `gich`, whose list registers are all empty, with
/// no maintenance interrupt asked for.
#[inline(always)]
fn load_first(gich: &VirtualControl, d: &Deliverable) {
    gich.lr[0].set(lr_value(d));
    gich.hcr.set(GICH_HCR::EN::SET.value);
}

/// This CPU's interface mask, its private interrupts and its CPU interface.
pub fn init_cpu(mpidr: u64) -> Result<(), &'static str> {
    let f = FRAMES.get().ok_or("GIC not initialised")?;
    // ITARGETSR0..7 read as this CPU's own interface bit.
    let mask = match f.gicd().itargetsr[0].get() {
        0 => 1, // A uniprocessor GIC reads as zero.
        m => m,
    };
    let entry = (mpidr << 8) | u64::from(mask);
    let slot = CPU_MASKS.iter().find(|s| {
        let old = s.load(Ordering::Acquire);
        old >> 8 == mpidr && old != 0
            || s.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Acquire).is_ok()
    });
    slot.ok_or("too many CPUs")?.store(entry, Ordering::Release);
    // The SPIs routed here before this CPU had a known interface number.
    DEFERRED.lock().retain(|d| {
        if d.mpidr == mpidr {
            program_spi(f, d.intid, mask, d.edge);
        }
        d.mpidr != mpidr
    });
    let ours = [KICK_SGI, MAINTENANCE_INTID, WAKEUP_INTID].into_iter().chain(FORWARDED_PPIS);
    for intid in ours.clone() {
        f.gicd().ipriorityr[intid as usize].set(0x80);
    }
    f.gicd().isenabler[0].set(ours.fold(0, |bits, intid| bits | (1 << intid)));
    f.gicc().pmr.set(0xff);
    f.gicc().bpr.set(0);
    f.gicc().ctlr.set(GICC_CTLR_VALUE);
    learn_all_empty(f.gich());
    Ok(())
}

/// The CPU interface mask of the CPU with affinity `mpidr` (0 if it has not started).
fn mask_of(mpidr: u64) -> u8 {
    CPU_MASKS
        .iter()
        .map(|s| s.load(Ordering::Acquire))
        .find(|&e| e != 0 && e >> 8 == mpidr)
        .map_or(0, |e| e as u8)
}

/// Sends the kick SGI to the CPU with affinity `mpidr`.
pub fn kick(mpidr: u64) {
    let mask = mask_of(mpidr);
    if mask == 0 {
        return; // Not started: it looks at its partition's interrupts when it does.
    }
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISH);
    frames().gicd().sgir.write(SGIR::INTID.val(KICK_SGI) + SGIR::TARGETS.val(u32::from(mask)));
}

/// Acknowledges the physical interrupts pending at this CPU (see [`super::acknowledge`]). SGIs
/// (only the kick) are ended here and now: their deactivation needs the sender's CPU number.
pub fn acknowledge(out: &mut [u32]) -> usize {
    let mut n = 0;
    while n < out.len() {
        let Some(intid) = acknowledge_one() else { break };
        out[n] = intid;
        n += 1;
    }
    n
}

/// Acknowledges the highest-priority interrupt pending at this CPU, if any (see
/// [`acknowledge`]). Inlined: the interrupt fast path's first step.
#[inline(always)]
pub fn acknowledge_one() -> Option<u32> {
    let gicc = gicc_fast()?;
    let iar = gicc.iar.extract();
    let intid = iar.read(GICC_IAR::INTERRUPT_ID);
    let iar = iar.get();
    if intid >= SPURIOUS {
        return None;
    }
    gicc.eoir.set(iar);
    if intid < 16 {
        gicc.dir.set(iar);
    }
    Some(intid)
}

/// Deactivates a physical interrupt that [`acknowledge`] returned (SGIs already are).
pub fn deactivate(intid: u32) {
    if intid >= 16 {
        frames().gicc().dir.set(intid);
    }
}

/// Routes SPI `intid` to the CPU with affinity `mpidr` (see [`super::route_spi`]). A CPU that
/// has not started yet has no known interface number: the SPI stays disabled until it starts
/// (`init_cpu`), rather than going to CPU interface 0, whose CPU may never take it.
pub fn route_spi(intid: u32, mpidr: u64, edge: bool) {
    let Some(f) = FRAMES.get() else { return };
    let mut deferred = DEFERRED.lock();
    match mask_of(mpidr) {
        // Under the lock: `init_cpu` of that CPU cannot have drained the list meanwhile.
        0 => {
            if deferred.push(Deferred { intid, mpidr, edge }).is_err() {
                drop(deferred);
                crate::console::info!(
                    "GIC: too many SPIs routed before their CPUs start: SPI {intid} dropped"
                );
            }
        }
        mask => program_spi(f, intid, mask, edge),
    }
}

/// Targets SPI `intid` at the CPU with affinity `mpidr` (see [`super::retarget_spi`]); a CPU
/// whose interface is not known yet (not started) leaves the target as it was.
pub fn retarget_spi(intid: u32, mpidr: u64) {
    let Some(f) = FRAMES.get() else { return };
    match (mask_of(mpidr), f.gicd().itargetsr.get(intid as usize)) {
        (0, _) | (_, None) => {}
        (mask, Some(target)) => target.set(mask),
    }
}

/// Targets SPI `intid` at the CPU interfaces `mask`, sets its priority and trigger, enables it.
fn program_spi(f: &Frames, intid: u32, mask: u8, edge: bool) {
    let n = intid as usize;
    let (Some(target), Some(priority)) = (f.gicd().itargetsr.get(n), f.gicd().ipriorityr.get(n)) else {
        return;
    };
    target.set(mask);
    priority.set(0xa0);
    if let Some(cfg) = f.gicd().icfgr.get(n / 16) {
        let bit = 2 << (2 * (n % 16));
        cfg.set(if edge { cfg.get() | bit } else { cfg.get() & !bit });
    }
    if let Some(enable) = f.gicd().isenabler.get(n / 32) {
        enable.set(1 << (n % 32));
    }
}

/// The highest-priority interrupt pending at this CPU, without acknowledging it.
pub fn highest_pending() -> u32 {
    frames().gicc().hppir.read(GICC_IAR::INTERRUPT_ID)
}

fn list_registers(gich: &VirtualControl) -> usize {
    (gich.vtr.read(GICH_VTR::LIST_REGS) as usize + 1).min(64)
}

fn lr_value(d: &Deliverable) -> u32 {
    let mut lr = GICH_LR::VIRTUAL_ID.val(d.intid)
        + GICH_LR::STATE::Pending
        + GICH_LR::PRIORITY.val(u32::from(d.priority >> 3))
        + GICH_LR::GROUP1.val(u32::from(d.group1));
    if d.hw {
        lr += GICH_LR::HW::SET + GICH_LR::PHYSICAL_ID.val(d.intid);
    } else if d.intid < 16 {
        lr += GICH_LR::CPUID.val(u32::from(d.source));
    }
    lr.value
}

/// Resets the virtual CPU interface for a vCPU that starts from scratch.
pub fn reset_virtual_interface() {
    let gich = frames().gich();
    for lr in gich.lr.iter().take(list_registers(gich)) {
        let value = LocalRegisterCopy::<u32, GICH_LR::Register>::new(lr.get());
        // A hardware-linked interrupt the guest never finished stays active at the physical
        // interface: end it, or it never fires again.
        if value.is_set(GICH_LR::HW) && value.read(GICH_LR::STATE) != 0 {
            deactivate(value.read(GICH_LR::PHYSICAL_ID));
        }
        lr.set(0);
    }
    gich.vmcr.set(0);
    gich.apr.set(0);
    gich.hcr.write(GICH_HCR::EN::SET);
}

/// Whether no list register holds an interrupt ([`for_each_listed`] would give nothing):
/// `GICH_ELRSR0` names every one empty (an entry it does not name may be an ended one, which
/// holds nothing either: then the walk finds that). False while that cannot be told.
#[inline]
pub fn lists_nothing() -> bool {
    gich_all_empty().is_some()
}

/// Calls `f` with each interrupt this CPU's list registers hold (see
/// [`super::for_each_listed`]).
pub fn for_each_listed(vcpu: u8, mut f: impl FnMut(Listed)) {
    let gich = frames().gich();
    for (lr, reg) in gich.lr.iter().take(list_registers(gich)).enumerate() {
        let value = LocalRegisterCopy::<u32, GICH_LR::Register>::new(reg.get());
        let state = value.read(GICH_LR::STATE);
        if state == 0 {
            continue;
        }
        f(Listed {
            vcpu,
            lr: lr as u8,
            intid: value.read(GICH_LR::VIRTUAL_ID),
            pending: state & 1 != 0,
            active: state & 2 != 0,
            hw: value.is_set(GICH_LR::HW),
            priority: (value.read(GICH_LR::PRIORITY) << 3) as u8,
            source: value.read(GICH_LR::CPUID) as u8,
        });
    }
}

/// Writes back what a guest's register write changed in entries of [`for_each_listed`] (see
/// [`super::write_listed`]).
pub fn write_listed(listed: &[Listed]) {
    let gich = frames().gich();
    for e in listed {
        let Some(reg) = gich.lr.get(usize::from(e.lr)) else { continue };
        let value = LocalRegisterCopy::<u32, GICH_LR::Register>::new(reg.get());
        let state = u32::from(e.pending) | (u32::from(e.active) << 1);
        let priority = u32::from(e.priority >> 3);
        if value.read(GICH_LR::STATE) == state && value.read(GICH_LR::PRIORITY) == priority {
            continue;
        }
        if state == 0 {
            reg.set(0);
            if e.hw {
                deactivate(value.read(GICH_LR::PHYSICAL_ID));
            }
        } else {
            reg.modify(GICH_LR::STATE.val(state) + GICH_LR::PRIORITY.val(priority));
        }
    }
}

/// Loads `d` alone into a list register when all of them are empty (`GICH_ELRSR`), with no
/// maintenance interrupt asked for (see [`super::CpuInterface::load_at_once`]), returning the
/// virtual interface control it loaded; `None` otherwise.
#[inline(always)]
pub fn load_at_once(d: &Deliverable) -> Option<&'static VirtualControl> {
    let gich = gich_all_empty()?;
    load_first(gich, d);
    Some(gich)
}

/// Moves interrupts that `gic` has ready for `vcpu` into free list registers (see
/// [`super::load_list_registers`]). The common case first, as on a GICv3: every list register
/// empty (so none is an ended entry to clear either: `GICH_ELRSR` does not count those) and one
/// interrupt pending, ready for `vcpu` (a doorbell, an SGI from one sender), which goes into the
/// first, as the general case would put it there, with nothing left to ask a maintenance
/// interrupt for; no scan. Out of line: the GICv3's common case, inlined beside it in the
/// callers, then needs no frame.
#[inline(never)]
pub fn load_list_registers(gic: &mut VirtualGic, vcpu: usize) -> super::Loaded {
    if let Some(gich) = gich_all_empty() {
        if let Some(d) = gic.take_alone(vcpu) {
            load_first(gich, &d);
            return super::Loaded { hw_priority: d.hw.then_some(d.priority), more: false };
        }
    }
    load_in_use(gic, vcpu)
}

/// [`load_list_registers`] when list registers are in use or more than one interrupt is
/// pending (out of line: the common case above needs no frame).
#[inline(never)]
fn load_in_use(gic: &mut VirtualGic, vcpu: usize) -> super::Loaded {
    let gich = frames().gich();
    let count = list_registers(gich);
    let lrs = &gich.lr[..count];
    let all = if count == 64 { u64::MAX } else { (1u64 << count) - 1 };
    let pair = |regs: &[tock_registers::registers::ReadOnly<u32>; 2]| {
        u64::from(regs[0].get()) | if count > 32 { u64::from(regs[1].get()) << 32 } else { 0 }
    };
    let field = |v: u32, f| LocalRegisterCopy::<u32, GICH_LR::Register>::new(v).read(f);
    let each = |mut mask: u64| {
        core::iter::from_fn(move || {
            let n = mask.trailing_zeros() as usize;
            mask &= mask.wrapping_sub(1);
            (n < 64).then_some(n)
        })
    };
    // Ended entries that asked for an EOI maintenance interrupt (GICH_EISR): clear them.
    for n in each(pair(&gich.eisr) & all) {
        gic.end_watch(vcpu, field(lrs[n].get(), GICH_LR::VIRTUAL_ID));
        lrs[n].set(0);
    }
    // Only the list registers in use are read (GICH_ELRSR names the empty ones).
    let mut free = pair(&gich.elrsr) & all;
    let (mut more, mut deferred, mut loaded_hw) = (None, false, None);
    while free != 0 {
        let (taken, rest) = gic.take_next(vcpu);
        more = Some(rest);
        let Some(d) = taken else { break };
        // The same interrupt already in a list register (the guest is handling it): the same
        // INTID and, for an SGI, the same sender (a GICv2 SGI is distinct per sender).
        let same = |v: u32| {
            field(v, GICH_LR::VIRTUAL_ID) == d.intid
                && (d.intid >= 16 || field(v, GICH_LR::CPUID) == u32::from(d.source))
        };
        let Some(n) = each(all & !free).find(|&n| same(lrs[n].get())) else {
            let n = free.trailing_zeros() as usize;
            lrs[n].set(lr_value(&d));
            free &= !(1 << n);
            if d.hw {
                loaded_hw = loaded_hw.max(Some(d.priority));
            }
            if !rest {
                break;
            }
            continue;
        };
        let lr = &lrs[n];
        let (state, hw) = (field(lr.get(), GICH_LR::STATE), field(lr.get(), GICH_LR::HW) != 0);
        match tantalum_aarch64::list_registers::merge(hw, state & 2 != 0, d.hw) {
            tantalum_aarch64::list_registers::Merge::AddPending => {
                lr.modify(GICH_LR::STATE.val(state | 1) + GICH_LR::EOI::SET);
                gic.watch(vcpu, d.intid);
            }
            tantalum_aarch64::list_registers::Merge::Replace => {
                lr.set(lr_value(&d));
                loaded_hw = loaded_hw.max(Some(d.priority));
            }
            tantalum_aarch64::list_registers::Merge::Defer { eoi_maintenance } => {
                if eoi_maintenance {
                    lr.modify(GICH_LR::EOI::SET);
                }
                gic.put_back(vcpu, &d);
                (deferred, more) = (true, Some(true));
                break;
            }
        }
        if !rest {
            break;
        }
    }
    let more = more.unwrap_or_else(|| gic.has_deliverable(vcpu));
    // A deferred interrupt waits for its EOI maintenance interrupt (or the next exit).
    let any_pending = each(all & !free).any(|n| field(lrs[n].get(), GICH_LR::STATE) & 1 != 0);
    let trigger = super::refill_trigger(
        more && !deferred,
        any_pending,
        GICH_HCR::NPIE::SET.value,
        GICH_HCR::UIE::SET.value,
    );
    gich.hcr.set(GICH_HCR::EN::SET.value | trigger);
    super::Loaded { hw_priority: loaded_hw, more }
}

/// Whether the guest's priority mask (`GICH_VMCR`, its `GICV_PMR`) hides an interrupt of
/// `priority` (as a list register holds it: bits [7:3]).
#[inline(always)]
pub fn masked_by_priority(priority: u8) -> bool {
    // Before `init_distributor` (never on a path that loaded an interrupt): masked, the
    // cautious answer.
    gich_fast().is_none_or(|g| masked_in(g, priority))
}

/// [`masked_by_priority`] with this CPU's virtual interface control `gich` at hand.
#[inline(always)]
pub fn masked_in(gich: &VirtualControl, priority: u8) -> bool {
    u32::from(priority >> 3) >= gich.vmcr.read(GICH_VMCR::PRIORITY_MASK)
}

/// Ends the hardware-linked list registers that are only pending (not taken yet) and whose
/// physical interrupt is no longer pending (a level line that fell since it was loaded).
pub fn resample_listed() {
    let gich = frames().gich();
    for reg in gich.lr.iter().take(list_registers(gich)) {
        let lr = reg.extract();
        let physical = lr.read(GICH_LR::PHYSICAL_ID);
        if lr.is_set(GICH_LR::HW) && lr.read(GICH_LR::STATE) == 1 && !still_pending(physical) {
            reg.set(0);
            deactivate(physical);
        }
    }
}

/// Whether a list register holds a hardware-linked interrupt only pending that the guest's
/// priority mask hides: lowering the mask must re-sample it first.
pub fn holds_masked_hw() -> bool {
    let gich = frames().gich();
    gich.lr.iter().take(list_registers(gich)).map(|reg| reg.extract()).any(|lr| {
        lr.is_set(GICH_LR::HW)
            && lr.read(GICH_LR::STATE) == 1
            && masked_by_priority((lr.read(GICH_LR::PRIORITY) << 3) as u8)
    })
}

/// The registers of the GICV's first page a guest access may reach: offset and bytes (arrays
/// of four for the active priority registers). The others there are reserved: RAZ/WI.
const GICV_REGISTERS: [(usize, usize); 13] = {
    use core::mem::offset_of;
    [
        (offset_of!(CpuInterface, ctlr), 4),
        (offset_of!(CpuInterface, pmr), 4),
        (offset_of!(CpuInterface, bpr), 4),
        (offset_of!(CpuInterface, iar), 4),
        (offset_of!(CpuInterface, eoir), 4),
        (offset_of!(CpuInterface, rpr), 4),
        (offset_of!(CpuInterface, hppir), 4),
        (offset_of!(CpuInterface, abpr), 4),
        (offset_of!(CpuInterface, aiar), 4),
        (offset_of!(CpuInterface, aeoir), 4),
        (offset_of!(CpuInterface, ahppir), 4),
        (offset_of!(CpuInterface, apr), 32), // APR0-3 and NSAPR0-3
        (offset_of!(CpuInterface, iidr), 4),
    ]
};

/// Carries out a guest's trapped 32-bit access to its CPU interface (`access.offset` in the
/// GICV's first page) on this CPU's GICV, which the GIC banks to the vCPU this CPU runs: the
/// same effect as the guest's own access (an `IAR` read acknowledges, a `PMR` write masks).
pub fn cpu_interface_access(access: vgic::Access) -> u64 {
    let offset = access.offset as usize;
    let known = GICV_REGISTERS.iter().any(|&(at, len)| (at..at + len).contains(&offset));
    if access.size != 4 || !offset.is_multiple_of(4) || !known {
        return 0;
    }
    let register = frames().gicv as *mut u32;
    // SAFETY: `offset` is that of a 32-bit register of the GICV frame (mapped as device memory
    // by `init_distributor`'s contract); accessing it is what the guest itself would have done
    // on this CPU, and affects only the vCPU this CPU runs.
    unsafe {
        let register = register.byte_add(offset);
        match access.write {
            Some(value) => {
                register.write_volatile(value as u32);
                0
            }
            None => u64::from(register.read_volatile()),
        }
    }
}

/// Whether the physical interrupt `intid` (acknowledged by this CPU) is still pending: a
/// level-sensitive one's line asserted; an edge-triggered one counts as pending (see
/// [`super::still_pending`]). The distributor banks PPIs per CPU, so this CPU's are read.
pub fn still_pending(intid: u32) -> bool {
    let d = frames().gicd();
    let n = intid as usize;
    let edge = d.icfgr.get(n / 16).is_some_and(|r| r.get() & (2 << (2 * (n % 16))) != 0);
    edge || d.ispendr.get(n / 32).is_none_or(|r| r.get() & (1 << (n % 32)) != 0)
}

/// Makes the physical SPI `intid` edge-triggered or level-sensitive, disabled meanwhile (see
/// [`super::set_trigger`]).
pub fn set_trigger(intid: u32, edge: bool) {
    let d = frames().gicd();
    let (n, bit) = (intid as usize, 1u32 << (intid % 32));
    let (Some(set), Some(clear), Some(cfg)) =
        (d.isenabler.get(n / 32), d.icenabler.get(n / 32), d.icfgr.get(n / 16))
    else {
        return;
    };
    let enabled = set.get() & bit != 0;
    clear.set(bit);
    let cfg_bit = 2 << (2 * (n % 16));
    cfg.set(if edge { cfg.get() | cfg_bit } else { cfg.get() & !cfg_bit });
    if enabled {
        set.set(bit);
    }
}
