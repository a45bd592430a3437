//! The physical GICv3 as the hypervisor uses it: the distributor and this CPU's redistributor
//! set up for the hypervisor's own SGI (a kick between CPUs) and the maintenance interrupt, and
//! the virtual CPU interface's list registers (ICH_*_EL2), through which partitions get their
//! interrupts.

use core::arch::asm;

use aarch64_cpu::registers::{ICH_HCR_EL2, ICH_LR0_EL2 as ICH_LR};
use tantalum_aarch64::boot_once::BootOnce;
use tantalum_core::gic_regs::{
    Distributor, Redistributor, GICD_CTLR, GICR_SGI_OFFSET, GICR_TYPER, GICR_WAKER,
};
use tantalum_core::vgic::{Deliverable, Listed, VirtualGic};
use tantalum_core::vplatform::GICR_STRIDE;
use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};

use super::{FORWARDED_PPIS, KICK_SGI, MAINTENANCE_INTID, SPURIOUS, WAKEUP_INTID};

/// Most redistributor frames searched for this CPU's.
const MAX_REDISTRIBUTORS: usize = 64;

/// ICH_HCR_EL2 bits.
const ICH_HCR_EN: u64 = ICH_HCR_EL2::En::SET.value;
/// Underflow maintenance interrupt: fires when at most one list register is in use.
const ICH_HCR_UIE: u64 = ICH_HCR_EL2::UIE::SET.value;
/// No-pending maintenance interrupt: fires when no list register holds a pending interrupt,
/// so more can be loaded (more pending than list registers).
const ICH_HCR_NPIE: u64 = ICH_HCR_EL2::NPIE::SET.value;

struct Layout {
    gicd: usize,
    /// Base of the redistributor region.
    gicr: usize,
}

static LAYOUT: BootOnce<Layout> = BootOnce::new();

/// The distributor at `base`, or a redistributor's SGI frame (the same per-INTID banks).
fn distributor(base: usize) -> &'static Distributor {
    // SAFETY: `base` is the board GIC's distributor or one of its redistributors' SGI frames
    // (from the validated config), device memory of the EL2 identity map for the whole run;
    // only the hypervisor programs the physical GIC, with volatile accesses.
    unsafe { &*(base as *const Distributor) }
}

/// The RD frame of the redistributor at `base`.
fn rd_frame(base: usize) -> &'static Redistributor {
    // SAFETY: as in `distributor`: a redistributor of the board's GIC.
    unsafe { &*(base as *const Redistributor) }
}

/// The SGI frame of the redistributor at `base`.
fn sgi_frame(base: usize) -> &'static Distributor {
    distributor(base + GICR_SGI_OFFSET as usize)
}

/// Enables the distributor (boot CPU, once). `gicd`/`gicr` are the board GIC's frames.
#[unsafe(link_section = ".text.boot_only")]
pub fn init_distributor(gicd: usize, gicr: usize) {
    let _ = LAYOUT.set(Layout { gicd, gicr });
    // One security state (DS = 1): affinity routing, both groups.
    let d = distributor(gicd);
    d.ctlr.write(GICD_CTLR::ARE::SET + GICD_CTLR::ENABLE_GRP1::SET + GICD_CTLR::ENABLE_GRP0::SET);
    while d.ctlr.is_set(GICD_CTLR::RWP) {
        core::hint::spin_loop();
    }
}

/// The redistributor frame of the CPU with affinity `mpidr`.
fn redistributor(mpidr: u64) -> Option<usize> {
    let layout = LAYOUT.get()?;
    let affinity = (mpidr & 0xff_ffff) | ((mpidr >> 8) & 0xff00_0000);
    for i in 0..MAX_REDISTRIBUTORS {
        let f = layout.gicr + i * GICR_STRIDE as usize;
        let typer = rd_frame(f).typer.extract();
        if typer.read(GICR_TYPER::AFFINITY) == affinity {
            return Some(f);
        }
        if typer.is_set(GICR_TYPER::LAST) {
            return None;
        }
    }
    None
}

/// Wakes this CPU's redistributor, enables the kick SGI and the maintenance interrupt, and
/// turns on the system-register CPU interface and the virtual CPU interface.
pub fn init_cpu(mpidr: u64) -> Result<(), &'static str> {
    let frame = redistributor(mpidr).ok_or("no redistributor for this CPU")?;
    let rd = rd_frame(frame);
    rd.waker.modify(GICR_WAKER::PROCESSOR_SLEEP::CLEAR);
    while rd.waker.is_set(GICR_WAKER::CHILDREN_ASLEEP) {
        core::hint::spin_loop();
    }
    let sgi = sgi_frame(frame);
    sgi.igroupr[0].set(u32::MAX);
    let ours = [KICK_SGI, MAINTENANCE_INTID, WAKEUP_INTID].into_iter().chain(FORWARDED_PPIS);
    for intid in ours.clone() {
        sgi.ipriorityr[intid as usize].set(0x80);
    }
    sgi.isenabler[0].set(ours.fold(0, |bits, intid| bits | (1 << intid)));
    // SAFETY: turning on the system-register interface (ICC_SRE_EL2.SRE, and Enable so EL1 may
    // use it), unmasking all priorities and enabling group 1 only affect interrupt delivery to
    // this CPU; EL2 runs with IRQs masked, so they are taken only from guests (HCR_EL2.IMO).
    unsafe {
        asm!(
            "msr icc_sre_el2, {sre}",
            "isb",
            "msr icc_pmr_el1, {pmr}",
            "msr icc_bpr1_el1, xzr",
            "msr icc_ctlr_el1, {eoimode}",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            sre = in(reg) 0b1001u64,
            pmr = in(reg) 0xffu64,
            one = in(reg) 1u64,
            // EOImode 1: EOI only drops priority; deactivation is separate (ICC_DIR_EL1), so an
            // interrupt forwarded to a guest stays active until the guest's EOI deactivates it.
            eoimode = in(reg) 1u64 << 1,
            options(nostack)
        );
    }
    Ok(())
}

/// Sends the kick SGI to the CPU with affinity `mpidr`.
pub fn kick(mpidr: u64) {
    let aff0 = mpidr & 0xf;
    let value = ((mpidr >> 8) & 0xff) << 16 // Aff1
        | ((mpidr >> 16) & 0xff) << 32 // Aff2
        | ((mpidr >> 32) & 0xff) << 48 // Aff3
        | u64::from(KICK_SGI) << 24
        | (1 << aff0);
    // SAFETY: sending an SGI only raises an interrupt on another CPU; the barrier makes the
    // pending state written before it visible first.
    unsafe { asm!("dsb ish", "msr icc_sgi1r_el1, {}", "isb", in(reg) value, options(nostack)) };
}

/// Acknowledges the physical interrupts pending at this CPU (at most `out.len()`), dropping
/// their priority; returns how many. Each must then be deactivated ([`deactivate`]) or handed
/// to a guest through a hardware-linked list register.
pub fn acknowledge(out: &mut [u32]) -> usize {
    let mut n = 0;
    while n < out.len() {
        let Some(intid) = acknowledge_one() else { break };
        out[n] = intid;
        n += 1;
    }
    n
}

/// Acknowledges the highest-priority interrupt pending at this CPU, if any, dropping its
/// priority (see [`acknowledge`]).
pub fn acknowledge_one() -> Option<u32> {
    let iar: u64;
    // SAFETY: reading IAR acknowledges the highest-priority pending interrupt of this CPU.
    unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) iar, options(nostack)) };
    let intid = iar as u32 & 0xff_ffff;
    if intid >= SPURIOUS {
        return None;
    }
    // SAFETY: EOI of the interrupt just acknowledged (EOImode 1: priority drop only).
    unsafe { asm!("msr icc_eoir1_el1, {}", in(reg) iar, options(nostack)) };
    Some(intid)
}

/// Deactivates a physical interrupt that [`acknowledge`] returned.
pub fn deactivate(intid: u32) {
    // SAFETY: deactivating an interrupt this CPU acknowledged only ends its active state.
    unsafe { asm!("msr icc_dir_el1, {}", in(reg) u64::from(intid), options(nostack)) };
}

/// Routes the physical SPI `intid` to the CPU with affinity `mpidr` and enables it (a device
/// passed through to the partition that runs there). `edge` selects edge triggering.
pub fn route_spi(intid: u32, mpidr: u64, edge: bool) {
    let Some(layout) = LAYOUT.get() else { return };
    let (d, n) = (distributor(layout.gicd), intid as usize);
    let (Some(router), Some(group), Some(enable)) =
        (d.irouter.get(n), d.igroupr.get(n / 32), d.isenabler.get(n / 32))
    else {
        return;
    };
    router.set((mpidr & 0xff_ffff) | ((mpidr >> 8) & 0xff_0000_0000));
    let bit = 1u32 << (n % 32);
    group.set(group.get() | bit); // group 1
    d.ipriorityr[n].set(0xa0);
    configure(d, n, edge);
    enable.set(bit);
}

/// Routes SPI `intid` to the CPU with affinity `mpidr` (see [`super::retarget_spi`]).
pub fn retarget_spi(intid: u32, mpidr: u64) {
    let Some(layout) = LAYOUT.get() else { return };
    if let Some(router) = distributor(layout.gicd).irouter.get(intid as usize) {
        router.set((mpidr & 0xff_ffff) | ((mpidr >> 8) & 0xff_0000_0000));
    }
}

/// Sets GICD_ICFGR's bit of SPI `n`.
fn configure(d: &Distributor, n: usize, edge: bool) {
    let Some(cfg) = d.icfgr.get(n / 16) else { return };
    let cfg_bit = 2 << (2 * (n % 16));
    cfg.set(if edge { cfg.get() | cfg_bit } else { cfg.get() & !cfg_bit });
}

/// Makes the physical SPI `intid` edge-triggered or level-sensitive, disabled meanwhile (changing
/// an enabled interrupt's configuration is UNPREDICTABLE).
pub fn set_trigger(intid: u32, edge: bool) {
    let Some(layout) = LAYOUT.get() else { return };
    let (d, n) = (distributor(layout.gicd), intid as usize);
    let (Some(set), Some(clear)) = (d.isenabler.get(n / 32), d.icenabler.get(n / 32)) else { return };
    let bit = 1u32 << (n % 32);
    let enabled = set.get() & bit != 0;
    clear.set(bit);
    while d.ctlr.is_set(GICD_CTLR::RWP) {
        core::hint::spin_loop();
    }
    configure(d, n, edge);
    if enabled {
        set.set(bit);
    }
}

macro_rules! lr_access {
    ($($n:literal),*) => {
        fn read_lr(n: usize) -> u64 {
            let v: u64;
            match n {
                // SAFETY: reading a list register has no side effects.
                $($n => unsafe { asm!(concat!("mrs {}, ich_lr", $n, "_el2"), out(reg) v, options(nomem, nostack)) },)*
                _ => v = 0,
            }
            v
        }
        fn write_lr(n: usize, value: u64) {
            match n {
                // SAFETY: list registers only hold this CPU's vCPU's virtual interrupts.
                $($n => unsafe { asm!(concat!("msr ich_lr", $n, "_el2, {}"), in(reg) value, options(nomem, nostack)) },)*
                _ => {}
            }
        }
    };
}
lr_access!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

fn list_registers() -> usize {
    ((ich_vtr() & 0x1f) + 1) as usize
}

fn ich_vtr() -> u64 {
    let vtr: u64;
    // SAFETY: reading ICH_VTR_EL2 has no side effects.
    unsafe { asm!("mrs {}, ich_vtr_el2", out(reg) vtr, options(nomem, nostack)) };
    vtr
}

/// Whether every list register is empty, without the mask of the implemented ones
/// ([`tantalum_aarch64::list_registers::all_empty`]).
#[inline(always)]
fn all_list_registers_empty() -> bool {
    tantalum_aarch64::list_registers::all_empty(empty_list_registers(), ich_vtr())
}

fn set_ich_hcr(value: u64) {
    // SAFETY: ICH_HCR_EL2 controls the virtual CPU interface of this CPU's vCPU only.
    unsafe { asm!("msr ich_hcr_el2, {}", "isb", in(reg) value, options(nostack)) };
}

const LR_PENDING: u64 = ICH_LR::State::Pending.value;
const LR_ACTIVE: u64 = ICH_LR::State::Active.value;
/// Both state bits: pending, active or both.
const LR_STATE: u64 = ICH_LR::State::PendingAndActive.value;
const LR_GROUP1: u64 = ICH_LR::Group::SET.value;
const LR_PRIORITY: u64 = ICH_LR::Priority::SET.value;
const LR_HW: u64 = ICH_LR::HW::SET.value;
/// Maintenance interrupt when the guest ends this (software) entry.
const LR_EOI: u64 = ICH_LR::EOI::SET.value;

fn lr_value(d: &Deliverable) -> u64 {
    let group = u64::from(d.group1) * LR_GROUP1; // a shift, not a select
                                                 // A hardware-linked entry names the physical INTID (the same number).
    let hw = if d.hw { LR_HW | ICH_LR::pINTID.val(u64::from(d.intid)).value } else { 0 };
    LR_PENDING | group | hw | ICH_LR::Priority.val(u64::from(d.priority)).value | u64::from(d.intid)
}

/// The highest-priority interrupt pending at this CPU, without acknowledging it.
pub fn highest_pending() -> u32 {
    let intid: u64;
    // SAFETY: reading the highest-priority pending interrupt does not acknowledge it.
    unsafe { asm!("mrs {}, icc_hppir1_el1", out(reg) intid, options(nomem, nostack)) };
    intid as u32 & 0xff_ffff
}

/// Resets the virtual CPU interface for a vCPU that starts from scratch: list registers
/// empty, interface enabled.
pub fn reset_virtual_interface() {
    for n in 0..list_registers() {
        // A hardware-linked interrupt the guest never finished stays active at the physical
        // interface: end it, or it never fires again.
        let lr = read_lr(n);
        if lr & LR_HW != 0 && lr & LR_STATE != 0 {
            deactivate(ICH_LR::pINTID.read(lr) as u32);
        }
        write_lr(n, 0);
    }
    // SAFETY: clearing the virtual machine control and active-priority registers only affects
    // the vCPU about to start on this CPU.
    unsafe {
        asm!("msr ich_vmcr_el2, xzr", "msr ich_ap1r0_el2, xzr", "msr ich_ap0r0_el2, xzr", options(nostack))
    };
    set_ich_hcr(ICH_HCR_EN);
}

/// Calls `f` with each interrupt this CPU's list registers hold (pending, active or both), in
/// list register order.
#[inline]
pub fn for_each_listed(vcpu: u8, mut f: impl FnMut(Listed)) {
    // Only the list registers in use are read (ICH_ELRSR_EL2 names the empty ones; an entry with
    // no state that still asks for its EOI maintenance interrupt is in use, and skipped below).
    let all = (1u32 << list_registers()) - 1;
    let mut used = !empty_list_registers() & all;
    while used != 0 {
        let lr = used.trailing_zeros() as usize;
        used &= used - 1;
        let value = read_lr(lr);
        if value & LR_STATE == 0 {
            continue;
        }
        f(Listed {
            vcpu,
            lr: lr as u8,
            intid: value as u32,
            pending: value & LR_PENDING != 0,
            active: value & LR_ACTIVE != 0,
            hw: value & LR_HW != 0,
            priority: ICH_LR::Priority.read(value) as u8,
            source: 0,
        });
    }
}

/// Whether no list register holds an interrupt ([`for_each_listed`] would give nothing):
/// `ICH_ELRSR_EL2` names every one empty.
#[inline]
pub fn lists_nothing() -> bool {
    all_list_registers_empty()
}

/// Writes back the state and priority of entries [`for_each_listed`] gave and a guest's
/// register write changed. A hardware-linked entry left with no state ends its physical interrupt (nothing
/// else would: the guest will not EOI it); a level one still asserted fires again.
pub fn write_listed(listed: &[Listed]) {
    for e in listed {
        let old = read_lr(usize::from(e.lr));
        let state = if e.pending { LR_PENDING } else { 0 } | if e.active { LR_ACTIVE } else { 0 };
        let value =
            (old & !(LR_STATE | LR_PRIORITY)) | state | ICH_LR::Priority.val(u64::from(e.priority)).value;
        if value == old {
            continue;
        }
        if state == 0 {
            write_lr(usize::from(e.lr), 0);
            if e.hw {
                deactivate(ICH_LR::pINTID.read(old) as u32);
            }
        } else {
            write_lr(usize::from(e.lr), value);
        }
    }
}

/// `ICH_ELRSR_EL2`: bit `n` set when list register `n` is empty (no state), so free.
fn empty_list_registers() -> u32 {
    let v: u64;
    // SAFETY: reading ICH_ELRSR_EL2 has no side effects.
    unsafe { asm!("mrs {}, ich_elrsr_el2", out(reg) v, options(nomem, nostack)) };
    v as u32
}

/// `ICH_EISR_EL2`: bit `n` set when list register `n` is a software entry the guest ended that
/// asked for an EOI maintenance interrupt (no state, EOI set, HW clear).
fn ended_eoi_list_registers() -> u32 {
    let v: u64;
    // SAFETY: reading ICH_EISR_EL2 has no side effects.
    unsafe { asm!("mrs {}, ich_eisr_el2", out(reg) v, options(nomem, nostack)) };
    v as u32
}

/// The list registers of `mask`, lowest first.
fn each(mut mask: u32) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        let n = mask.trailing_zeros() as usize;
        mask &= mask.wrapping_sub(1);
        (n < 32).then_some(n)
    })
}

/// Loads `d` alone into a list register when all of them are empty (`ICH_ELRSR_EL2`: then none
/// is an ended entry waiting to be cleared either), with no maintenance interrupt asked for
/// (the acknowledge trap kept); false otherwise (see [`super::CpuInterface::load_at_once`]).
pub fn load_at_once(d: &Deliverable) -> bool {
    if !all_list_registers_empty() {
        return false;
    }
    write_lr(0, lr_value(d));
    ask_no_maintenance();
    true
}

/// `ICH_HCR_EL2` with no maintenance interrupt asked for (the acknowledge trap kept), written
/// only when that changes it.
#[inline(always)]
fn ask_no_maintenance() {
    let hcr = ich_hcr();
    let wanted = ICH_HCR_EN | hcr & ICH_HCR_TALL1;
    if hcr != wanted {
        set_ich_hcr(wanted);
    }
}

/// Moves interrupts that `gic` has ready for `vcpu` into free list registers. When more are
/// ready than fit, asks for a maintenance interrupt once the list registers drain. Only the
/// list registers in use are read (`ICH_ELRSR_EL2` names the free ones, `ICH_EISR_EL2` the
/// ended ones to clear): with all of them free, loading one interrupt reads none.
pub fn load_list_registers(gic: &mut VirtualGic, vcpu: usize) -> super::Loaded {
    let all = (1u32 << list_registers()) - 1;
    // The common case: every list register empty (so none is an ended entry to clear either:
    // `ICH_ELRSR_EL2` does not count those) and one interrupt pending, ready for `vcpu` (a
    // doorbell, an SGI). It goes into the first, as the loop below would put it there, with
    // nothing left to ask a maintenance interrupt for; no scan.
    if empty_list_registers() & all == all {
        if let Some(d) = gic.take_alone(vcpu) {
            write_lr(0, lr_value(&d));
            ask_no_maintenance();
            return super::Loaded { hw_priority: d.hw.then_some(d.priority), more: false };
        }
    }
    load_in_use(gic, vcpu, all)
}

/// [`load_list_registers`] when list registers are in use or more than one interrupt is
/// pending (out of line: the common case above needs no frame).
#[inline(never)]
fn load_in_use(gic: &mut VirtualGic, vcpu: usize, all: u32) -> super::Loaded {
    // Ended entries that asked for an EOI maintenance interrupt: clear them, or it goes on.
    for n in each(ended_eoi_list_registers() & all) {
        gic.end_watch(vcpu, read_lr(n) as u32);
        write_lr(n, 0);
    }
    let mut free = empty_list_registers() & all;
    let mut loaded = super::Loaded { hw_priority: None, more: false };
    let mut more = None;
    let mut deferred = false;
    while free != 0 {
        let (taken, rest) = gic.take_next(vcpu);
        more = Some(rest);
        let Some(d) = taken else { break };
        // The same INTID already in a list register (the guest is handling it).
        let Some(n) = each(all & !free).find(|&n| read_lr(n) as u32 == d.intid) else {
            let n = free.trailing_zeros() as usize;
            write_lr(n, lr_value(&d));
            free &= !(1 << n);
            if d.hw {
                loaded.hw_priority = loaded.hw_priority.max(Some(d.priority));
            }
            if !rest {
                break;
            }
            continue;
        };
        let lr = read_lr(n);
        match tantalum_aarch64::list_registers::merge(lr & LR_HW != 0, lr & LR_ACTIVE != 0, d.hw) {
            tantalum_aarch64::list_registers::Merge::AddPending => {
                write_lr(n, lr | LR_PENDING | LR_EOI);
                gic.watch(vcpu, d.intid);
            }
            tantalum_aarch64::list_registers::Merge::Replace => {
                write_lr(n, lr_value(&d));
                loaded.hw_priority = loaded.hw_priority.max(Some(d.priority));
            }
            tantalum_aarch64::list_registers::Merge::Defer { eoi_maintenance } => {
                if eoi_maintenance {
                    write_lr(n, lr | LR_EOI);
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
    loaded.more = more.unwrap_or_else(|| gic.has_deliverable(vcpu));
    // A deferred interrupt waits for its EOI maintenance interrupt (or the next exit), not for
    // an underflow, which one active entry would raise at once, again and again.
    let refill = loaded.more && !deferred;
    let any_pending = refill && each(all & !free).any(|n| read_lr(n) & LR_PENDING != 0);
    let hcr = ich_hcr();
    let wanted = ICH_HCR_EN
        | hcr & ICH_HCR_TALL1
        | super::refill_trigger(refill, any_pending, ICH_HCR_NPIE, ICH_HCR_UIE);
    if hcr != wanted {
        set_ich_hcr(wanted);
    }
    loaded
}

/// Whether the physical interrupt `intid` (acknowledged by this CPU, so active) is still
/// pending: for a level-sensitive one, whether its line is asserted (the GIC's pending state
/// follows the line); an edge-triggered one counts as pending (its event is latched).
pub fn still_pending(intid: u32) -> bool {
    let n = intid as usize;
    let frame = if n < 32 {
        let mpidr: u64;
        // SAFETY: reading this CPU's affinity has no side effects.
        unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
        redistributor(mpidr).map(sgi_frame)
    } else {
        LAYOUT.get().map(|l| distributor(l.gicd))
    };
    let (Some(cfg), Some(pending)) =
        frame.map_or((None, None), |f| (f.icfgr.get(n / 16), f.ispendr.get(n / 32)))
    else {
        return true;
    };
    let edge = cfg.get() & (2 << (2 * (n % 16))) != 0;
    edge || pending.get() & (1 << (n % 32)) != 0
}

/// `ICH_HCR_EL2.TALL1`: the guest's group 1 CPU interface registers (`ICC_IAR1_EL1`,
/// `ICC_EOIR1_EL1`, ...) trap to EL2.
/// (aarch64-cpu's ICH_HCR_EL2 has no field for it.)
const ICH_HCR_TALL1: u64 = 1 << 12;

fn ich_hcr() -> u64 {
    let v: u64;
    // SAFETY: reading ICH_HCR_EL2 has no side effects.
    unsafe { asm!("mrs {}, ich_hcr_el2", out(reg) v, options(nomem, nostack)) };
    v
}

/// Ends the hardware-linked list registers that are only pending (not taken yet) and whose
/// physical interrupt is no longer pending (a level line that fell since it was loaded): the
/// guest would take an interrupt its source no longer asserts. Returns how many.
pub fn resample_listed() -> usize {
    let mut ended = 0;
    for n in 0..list_registers() {
        let lr = read_lr(n);
        let physical = ICH_LR::pINTID.read(lr) as u32;
        if lr & LR_HW != 0 && lr & LR_STATE == LR_PENDING && !still_pending(physical) {
            write_lr(n, 0);
            deactivate(physical);
            ended += 1;
        }
    }
    ended
}

/// Whether the guest's priority mask (`ICH_VMCR_EL2.VPMR`) hides an interrupt of `priority`:
/// the guest cannot take it before it lowers the mask.
pub fn masked_by_priority(priority: u8) -> bool {
    let vmcr: u64;
    // SAFETY: reading ICH_VMCR_EL2 has no side effects.
    unsafe { asm!("mrs {}, ich_vmcr_el2", out(reg) vmcr, options(nomem, nostack)) };
    u64::from(priority) >= (vmcr >> 24) & 0xff
}

/// Traps the guest's next acknowledge (any group 1 CPU interface register), so that
/// [`resample_listed`] runs before the guest can take a hardware-linked entry.
pub fn trap_before_acknowledge() {
    set_ich_hcr(ich_hcr() | ICH_HCR_TALL1);
}

/// Whether the acknowledge trap is set; clears it.
pub fn take_acknowledge_trap() -> bool {
    let hcr = ich_hcr();
    if hcr & ICH_HCR_TALL1 != 0 {
        set_ich_hcr(hcr & !ICH_HCR_TALL1);
    }
    hcr & ICH_HCR_TALL1 != 0
}
