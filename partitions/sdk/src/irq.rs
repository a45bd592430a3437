//! Interrupts for partitions: the virtual GIC the hypervisor gives every partition, found in
//! the guest device tree — a GICv3 (distributor and redistributor emulated, the CPU interface
//! the hardware's virtual one, through system registers) or a GICv2 (distributor emulated, the
//! CPU interface the hardware's memory-mapped virtual one) — and handlers per interrupt ID.

pub use crate::hypercall::send_ipi;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tantalum_core::gic_regs::{CpuInterface, Distributor, Redistributor, GICD_CTLR, GICR_WAKER, SGIR};
use tock_registers::interfaces::{Readable, Writeable};

/// A GICv3 redistributor's SGI/PPI frame (same per-INTID layout as the distributor's).
const GICR_SGI_FRAME: usize = tantalum_core::gic_regs::GICR_SGI_OFFSET as usize;
/// INTIDs handlers can be registered for.
const MAX_INTID: usize = 128;
/// INTIDs from here on are special: nothing pending.
const SPURIOUS: u32 = 1020;

/// A handler, called in interrupt context with the INTID.
pub type Handler = fn(u32);

static HANDLERS: [AtomicUsize; MAX_INTID] = [const { AtomicUsize::new(0) }; MAX_INTID];

/// The distributor, and the redistributor (GICv3) or the CPU interface (GICv2), from the guest
/// device tree ([`init`]; no board's addresses are assumed).
static GICD: AtomicUsize = AtomicUsize::new(0);
static SECOND: AtomicUsize = AtomicUsize::new(0);
static V2: AtomicBool = AtomicBool::new(false);

/// PMU instruction count just before the last WFI of [`wait_unless`] (0: not sleeping).
static WFI_AT: AtomicU64 = AtomicU64::new(0);

/// Instructions retired on this CPU since it last went to sleep in [`wait_unless`], and forgets
/// that sleep: called first thing in a handler, it measures the cost of delivering the
/// interrupt that woke the CPU (WFI retires nothing while asleep). `None` when the CPU was not
/// asleep.
pub fn instructions_since_wfi() -> Option<u64> {
    let at = WFI_AT.swap(0, Ordering::Relaxed);
    (at != 0).then(|| crate::instructions().wrapping_sub(at))
}

fn distributor_at(base: usize) -> &'static Distributor {
    // SAFETY: `base` is the partition's own virtual GIC distributor (or a GICv3 redistributor's
    // SGI frame, which has the same per-INTID layout), device memory of its identity map for
    // the whole run; the register block only performs volatile accesses.
    unsafe { &*(base as *const Distributor) }
}

fn gicd() -> &'static Distributor {
    distributor_at(GICD.load(Ordering::Relaxed))
}

fn gicr() -> &'static Redistributor {
    // SAFETY: on a GICv3 `SECOND` is vCPU 0's redistributor in the partition's own virtual GIC
    // (its RD frame), device memory of its identity map for the whole run.
    unsafe { &*(SECOND.load(Ordering::Relaxed) as *const Redistributor) }
}

fn gicc() -> &'static CpuInterface {
    // SAFETY: on a GICv2 `SECOND` is the partition's virtual CPU interface (the GICV the
    // hypervisor maps at the GIC's CPU interface address), device memory of its identity map.
    unsafe { &*(SECOND.load(Ordering::Relaxed) as *const CpuInterface) }
}

/// Reads the GIC's version and frames from the guest device tree.
fn locate() {
    let Some(fdt) = crate::dt::get() else { return };
    let gic = fdt.all_nodes().find(|n| {
        n.property("interrupt-controller").is_some()
            && n.compatible().is_some_and(|c| {
                c.all().any(|s| matches!(s, "arm,gic-v3" | "arm,cortex-a15-gic" | "arm,gic-400"))
            })
    });
    let Some(gic) = gic else { return };
    let v2 = gic.compatible().is_some_and(|c| c.all().all(|s| s != "arm,gic-v3"));
    let Some(mut reg) = gic.property("reg").map(|p| crate::dt::numbers(p.value, 2).step_by(2)) else {
        return;
    };
    if let (Some(d), Some(second)) = (reg.next(), reg.next()) {
        GICD.store(d as usize, Ordering::Relaxed);
        SECOND.store(second as usize, Ordering::Relaxed);
        V2.store(v2, Ordering::Relaxed);
    }
}

/// Turns the GIC on for this vCPU: distributor enabled, (GICv3) redistributor awake, CPU
/// interface accepting every priority. Interrupts stay masked until [`enable`]. Panics if the
/// guest device tree describes no GIC (every one the build generates does).
pub fn init() {
    locate();
    assert!(GICD.load(Ordering::Relaxed) != 0, "irq: no GIC in the guest device tree");
    if V2.load(Ordering::Relaxed) {
        // Group 0 and 1 on; the guest's interrupts stay in group 0, signalled as IRQs.
        gicd().ctlr.write(GICD_CTLR::ENABLE_GRP0::SET + GICD_CTLR::ENABLE_GRP1::SET);
        gicc().pmr.set(0xff);
        gicc().ctlr.set(1);
        return;
    }
    gicd().ctlr.write(GICD_CTLR::ENABLE_GRP1::SET);
    // Awake.
    gicr().waker.write(GICR_WAKER::PROCESSOR_SLEEP::CLEAR);
    // SAFETY: programming this vCPU's (virtual) CPU interface only affects its interrupts.
    unsafe {
        asm!(
            "msr icc_sre_el1, {sre}",
            "isb",
            "msr icc_pmr_el1, {pmr}",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            sre = in(reg) 1u64,
            pmr = in(reg) 0xffu64,
            one = in(reg) 1u64,
            options(nostack)
        );
    }
}

/// Registers `handler` for `intid` and enables it (routed to vCPU 0). On a GICv3 the
/// interrupt goes to group 1 and SGIs/PPIs are programmed in the redistributor; on a GICv2 it
/// stays in group 0 and the distributor banks them.
pub fn set_handler(intid: u32, handler: Handler) {
    let Some(slot) = HANDLERS.get(intid as usize) else { return };
    slot.store(handler as usize, Ordering::Release);
    let (reg, bit) = ((intid / 32) as usize, 1u32 << (intid % 32));
    if V2.load(Ordering::Relaxed) {
        if intid >= 32 {
            gicd().itargetsr[intid as usize].set(1); // vCPU 0
        }
        gicd().isenabler[reg].set(bit);
        return;
    }
    let frame =
        if intid < 32 { distributor_at(SECOND.load(Ordering::Relaxed) + GICR_SGI_FRAME) } else { gicd() };
    frame.igroupr[reg].set(frame.igroupr[reg].get() | bit);
    if intid >= 32 {
        gicd().irouter[intid as usize].set(0); // vCPU 0 (Aff0 = 0)
    }
    frame.isenabler[reg].set(bit);
}

/// The frame with `intid`'s per-INTID registers (this vCPU's SGI frame for its SGIs and PPIs on a
/// GICv3), and its register index and bit there.
pub fn state_frame(intid: u32) -> (&'static Distributor, usize, u32) {
    let (reg, bit) = ((intid / 32) as usize, 1u32 << (intid % 32));
    let frame = if intid < 32 && !V2.load(Ordering::Relaxed) {
        distributor_at(SECOND.load(Ordering::Relaxed) + GICR_SGI_FRAME)
    } else {
        gicd()
    };
    (frame, reg, bit)
}

/// On a GICv2, this CPU's bit in the SGI registers (`GICD_ITARGETSR0` reads it) when `intid` is
/// an SGI: its pending state is set and cleared per sender there, not in ISPENDR0/ICPENDR0.
fn v2_sgi_sender(intid: u32) -> Option<u8> {
    // A uniprocessor GICv2's ITARGETSRs read as zero: the one CPU is interface 0.
    (V2.load(Ordering::Relaxed) && intid < 16).then(|| gicd().itargetsr[0].get().max(1))
}

/// Makes `intid` pending from software (GICD/GICR_ISPENDR; a GICv2 SGI through GICD_SPENDSGIR,
/// as sent by this CPU), as a device raising it would.
pub fn set_pending(intid: u32) {
    if let Some(me) = v2_sgi_sender(intid) {
        gicd().spendsgir[intid as usize].set(me);
        return;
    }
    let (frame, reg, bit) = state_frame(intid);
    frame.ispendr[reg].set(bit);
}

/// Withdraws `intid`'s pending state (GICD/GICR_ICPENDR; a GICv2 SGI's from this CPU through
/// GICD_CPENDSGIR).
pub fn clear_pending(intid: u32) {
    if let Some(me) = v2_sgi_sender(intid) {
        gicd().cpendsgir[intid as usize].set(me);
        return;
    }
    let (frame, reg, bit) = state_frame(intid);
    frame.icpendr[reg].set(bit);
}

/// On a GICv2, the CPUs SGI `intid` is pending from at this CPU: its `GICD_SPENDSGIR` byte, a
/// bit per sending CPU interface (a GICv2 keeps an SGI pending per sender). 0 on a GICv3, whose
/// SGIs keep no sender.
pub fn sgi_senders(intid: u32) -> u8 {
    if V2.load(Ordering::Relaxed) && intid < 16 {
        gicd().spendsgir[intid as usize].get()
    } else {
        0
    }
}

/// On a GICv2, withdraws SGI `intid`'s pending state from the CPUs `senders` (a bit per CPU
/// interface, `GICD_CPENDSGIR`); the other senders' stays.
pub fn clear_sgi_from(intid: u32, senders: u8) {
    if V2.load(Ordering::Relaxed) && intid < 16 {
        gicd().cpendsgir[intid as usize].set(senders);
    }
}

/// On a GICv2, the address of `GICD_SGIR`, for code that sends SGIs itself (another vCPU's
/// assembly); `None` on a GICv3.
pub fn sgir_address() -> Option<usize> {
    V2.load(Ordering::Relaxed).then(|| &gicd().sgir as *const _ as usize)
}

/// Whether `intid` is pending (GICD/GICR_ISPENDR).
pub fn is_pending(intid: u32) -> bool {
    let (frame, reg, bit) = state_frame(intid);
    frame.ispendr[reg].get() & bit != 0
}

/// Whether `intid` is active (GICD/GICR_ISACTIVER): inside its handler, it is.
pub fn is_active(intid: u32) -> bool {
    let (frame, reg, bit) = state_frame(intid);
    frame.isactiver[reg].get() & bit != 0
}

/// The GICv2 (virtual) CPU interface's address, `None` on a GICv3 (system registers): for code
/// that drives the CPU interface itself, such as a secondary vCPU's assembly.
pub fn cpu_interface() -> Option<usize> {
    V2.load(Ordering::Relaxed).then(|| SECOND.load(Ordering::Relaxed))
}

/// Ends `intid`'s active state (GICD/GICR_ICACTIVER), as a GIC driver cleaning up does.
pub fn clear_active(intid: u32) {
    let (frame, reg, bit) = state_frame(intid);
    frame.icactiver[reg].set(bit);
}

/// Routes SPI `intid` to vCPU `vcpu` (GICv3 `IROUTER` affinity 0, GICv2 `ITARGETSR`).
pub fn set_target(intid: u32, vcpu: u8) {
    if intid < 32 {
        return;
    }
    if V2.load(Ordering::Relaxed) {
        gicd().itargetsr[intid as usize].set(1 << vcpu);
    } else {
        gicd().irouter[intid as usize].set(u64::from(vcpu));
    }
}

/// Sets `intid`'s priority (lower is more urgent; 0xa0 until set).
pub fn set_priority(intid: u32, priority: u8) {
    let (frame, _, _) = state_frame(intid);
    if let Some(p) = frame.ipriorityr.get(intid as usize) {
        p.set(priority);
    }
}

/// Sets this CPU's priority mask: only interrupts more urgent than `mask` (a lower priority
/// value) are signalled, and wake a WFI; 0xff lets every one through.
pub fn set_priority_mask(mask: u8) {
    if V2.load(Ordering::Relaxed) {
        gicc().pmr.set(u32::from(mask));
        return;
    }
    // SAFETY: the mask only affects which of this vCPU's virtual interrupts are signalled.
    unsafe { asm!("msr icc_pmr_el1, {}", "isb", in(reg) u64::from(mask), options(nostack)) };
}

/// Enables (GICD/GICR_ISENABLER) or disables (ICENABLER) `intid` at the GIC.
pub fn set_enabled(intid: u32, enabled: bool) {
    let (frame, reg, bit) = state_frame(intid);
    if enabled {
        frame.isenabler[reg].set(bit);
    } else {
        frame.icenabler[reg].set(bit);
    }
}

/// `intid`'s priority as the GIC reads it back.
pub fn priority(intid: u32) -> u8 {
    let (frame, _, _) = state_frame(intid);
    frame.ipriorityr.get(intid as usize).map_or(0, |p| p.get())
}

/// Makes `intid` edge-triggered or level-sensitive (GICD/GICR_ICFGR).
pub fn set_edge(intid: u32, edge: bool) {
    let (frame, _, _) = state_frame(intid);
    let (reg, bit) = ((intid / 16) as usize, 2u32 << (2 * (intid % 16)));
    let value = frame.icfgr[reg].get();
    frame.icfgr[reg].set(if edge { value | bit } else { value & !bit });
}

/// Whether `intid` is configured edge-triggered (GICD/GICR_ICFGR).
pub fn is_edge(intid: u32) -> bool {
    let (frame, _, _) = state_frame(intid);
    frame.icfgr[(intid / 16) as usize].get() & (2u32 << (2 * (intid % 16))) != 0
}

/// Puts `intid` in group 1 (GICD/GICR_IGROUPR), which a GICv3 signals as IRQ. Nothing on a
/// GICv2, where the SDK keeps every interrupt in group 0 (signalled as IRQ there).
pub fn set_group1(intid: u32) {
    if V2.load(Ordering::Relaxed) {
        return;
    }
    let (frame, reg, bit) = state_frame(intid);
    frame.igroupr[reg].set(frame.igroupr[reg].get() | bit);
}

/// The virtual GIC this partition found in its guest DT (after [`init`]): the distributor's
/// address, the first redistributor's (GICv3) or the CPU interface's (GICv2), and whether it is
/// a GICv2. For code that programs the GIC itself (a benchmark, another vCPU's redistributor).
pub fn frames() -> (usize, usize, bool) {
    (GICD.load(Ordering::Relaxed), SECOND.load(Ordering::Relaxed), V2.load(Ordering::Relaxed))
}

/// The address of the virtual GIC's `GICD_TYPER` (after [`init`]), for code that loads it with
/// instructions of its own choosing (a conformance case).
pub fn typer_address() -> usize {
    &gicd().typer as *const _ as usize
}

/// Unmasks IRQs at the CPU.
pub fn enable() {
    // SAFETY: unmasking IRQs lets registered handlers run; the vector saves what they clobber.
    unsafe { asm!("msr daifclr, #2", options(nomem, nostack)) };
}

/// Runs `check` with IRQs masked and, if it returns false, sleeps (WFI) until an interrupt is
/// pending; then unmasks, so the interrupt's handler runs. Masking first means a doorbell that
/// rings between the check and the WFI still ends the sleep.
pub fn wait_unless(check: impl FnOnce() -> bool) {
    // SAFETY: masking IRQs around the check; WFI wakes on a pending interrupt even when masked.
    unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
    if !check() {
        WFI_AT.store(crate::instructions(), Ordering::Relaxed);
        // SAFETY: WFI only waits.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
    enable();
}

/// Acknowledges the highest-priority pending interrupt: its IAR value (INTID in bits 9:0, 1023
/// when nothing is pending; on a GICv2 an SGI's sender in bits 12:10). For code that takes
/// interrupts by polling, with IRQs masked; handlers registered with [`set_handler`] do it.
pub fn acknowledge() -> u64 {
    if V2.load(Ordering::Relaxed) {
        return u64::from(gicc().iar.get());
    }
    let iar: u64;
    // SAFETY: acknowledging the highest-priority pending virtual interrupt.
    unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) iar, options(nostack)) };
    iar
}

/// Ends (and deactivates) the interrupt `iar` acknowledged.
pub fn end(iar: u64) {
    if V2.load(Ordering::Relaxed) {
        gicc().eoir.set(iar as u32);
        return;
    }
    // SAFETY: ending (and deactivating) the interrupt just acknowledged.
    unsafe { asm!("msr icc_eoir1_el1, {}", in(reg) iar, options(nostack)) };
}

/// Sends SGI `intid` (0-15) to this vCPU alone (`ICC_SGI1R_EL1` on a GICv3, `GICD_SGIR` on a
/// GICv2).
pub fn send_sgi_to_self(intid: u32) {
    if V2.load(Ordering::Relaxed) {
        gicd().sgir.write(SGIR::INTID.val(intid & 0xf) + SGIR::FILTER::OnlySelf);
        return;
    }
    let mpidr: u64;
    // SAFETY: reading this CPU's affinity has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
    let value = (1u64 << (mpidr & 0xf))
        | ((mpidr >> 8) & 0xff) << 16
        | ((mpidr >> 16) & 0xff) << 32
        | ((mpidr >> 32) & 0xff) << 48
        | u64::from(intid & 0xf) << 24;
    // SAFETY: an SGI to this vCPU only makes one of its own interrupts pending.
    unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) value, options(nostack)) };
}

#[unsafe(no_mangle)]
extern "C" fn __tantalum_irq() {
    loop {
        let iar = acknowledge();
        let intid = (iar & 0x3ff) as u32;
        if intid >= SPURIOUS {
            return;
        }
        let handler = HANDLERS.get(intid as usize).map_or(0, |h| h.load(Ordering::Acquire));
        if handler != 0 {
            // SAFETY: only `set_handler` stores into HANDLERS, and only `Handler` values.
            let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(handler) };
            f(intid);
        }
        end(iar);
    }
}
