//! Interrupts for partitions: the virtual GICv3 the hypervisor gives every partition (its
//! distributor and redistributor are emulated, its CPU interface is the hardware's virtual
//! one), and handlers per interrupt ID.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Where the virtual GIC sits (the board's GIC addresses, QEMU virt).
const GICD: usize = 0x0800_0000;
const GICR: usize = 0x080a_0000;
const GICR_SGI: usize = GICR + 0x1_0000;
/// INTIDs handlers can be registered for.
const MAX_INTID: usize = 128;
const SPURIOUS: u32 = 1023;

/// A handler, called in interrupt context with the INTID.
pub type Handler = fn(u32);

static HANDLERS: [AtomicUsize; MAX_INTID] = [const { AtomicUsize::new(0) }; MAX_INTID];

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

fn write32(addr: usize, value: u32) {
    // SAFETY: `addr` is a register of the partition's own virtual GIC (device memory of its
    // identity map); the hypervisor emulates it.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

fn read32(addr: usize) -> u32 {
    // SAFETY: as in `write32`.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Turns the GIC on for this vCPU: distributor group 1, redistributor awake, CPU interface
/// accepting every priority. Interrupts stay masked until [`enable`].
pub fn init() {
    write32(GICD, 1 << 1); // GICD_CTLR.EnableGrp1
    write32(GICR + 0x14, 0); // GICR_WAKER: awake
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

/// Registers `handler` for `intid` and enables it (group 1, routed to vCPU 0). SPIs are
/// programmed in the distributor, PPIs in the redistributor.
pub fn set_handler(intid: u32, handler: Handler) {
    let Some(slot) = HANDLERS.get(intid as usize) else { return };
    slot.store(handler as usize, Ordering::Release);
    let (reg, bit) = ((intid / 32) as usize * 4, 1u32 << (intid % 32));
    let frame = if intid < 32 { GICR_SGI } else { GICD };
    write32(frame + 0x80 + reg, read32(frame + 0x80 + reg) | bit); // IGROUPR: group 1
    if intid >= 32 {
        let router = GICD + 0x6000 + 8 * intid as usize;
        write32(router, 0);
        write32(router + 4, 0);
    }
    write32(frame + 0x100 + reg, bit); // ISENABLER
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

#[unsafe(no_mangle)]
extern "C" fn __tantalum_irq() {
    loop {
        let iar: u64;
        // SAFETY: acknowledging the highest-priority pending virtual interrupt.
        unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) iar, options(nostack)) };
        let intid = (iar & 0xff_ffff) as u32;
        if intid >= SPURIOUS {
            return;
        }
        let handler = HANDLERS.get(intid as usize).map_or(0, |h| h.load(Ordering::Acquire));
        if handler != 0 {
            // SAFETY: only `set_handler` stores into HANDLERS, and only `Handler` values.
            let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(handler) };
            f(intid);
        }
        // SAFETY: ending (and deactivating) the interrupt just acknowledged.
        unsafe { asm!("msr icc_eoir1_el1, {}", in(reg) iar, options(nostack)) };
    }
}
