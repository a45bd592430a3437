//! `gicstate`: the virtual GIC's pending and active registers see interrupts already in list
//! registers (issue 13 item 1), as a GIC does: inside its handler an SGI reads active in
//! `GICR_ISACTIVER0`; an SGI made pending while IRQs are masked (the hypervisor loads it into a
//! list register at once) reads pending, and `GICR_ICPENDR0` cancels it: it is never taken.

use core::sync::atomic::{AtomicU64, Ordering};

use tantalum_guest::{irq, println};

/// The SGI whose handler checks its own active state.
const HANDLED: u32 = 4;
/// The SGI that is cancelled before it is taken.
const CANCELLED: u32 = 5;

/// Bit n: SGI n was taken; bit 8: SGI 4 read itself active in its handler.
static SEEN: AtomicU64 = AtomicU64::new(0);

fn on_sgi(intid: u32) {
    let active = if intid == HANDLED && irq::is_active(HANDLED) { 1 << 8 } else { 0 };
    SEEN.fetch_or((1 << intid) | active, Ordering::Relaxed);
}

fn masked() {
    // SAFETY: masking IRQs at this vCPU only delays its own handlers.
    unsafe { core::arch::asm!("msr daifset, #2", "isb", options(nomem, nostack)) };
}

fn wait_ms(ms: u64) {
    let until = tantalum_guest::time::now() + core::time::Duration::from_millis(ms);
    while tantalum_guest::time::now() < until {}
}

pub fn run() {
    irq::init();
    irq::set_handler(HANDLED, on_sgi);
    irq::set_handler(CANCELLED, on_sgi);
    masked();
    irq::set_pending(HANDLED);
    irq::enable();
    wait_ms(5);
    masked();
    irq::set_pending(CANCELLED);
    let pending = irq::is_pending(CANCELLED);
    irq::clear_pending(CANCELLED);
    let still = irq::is_pending(CANCELLED);
    irq::enable();
    wait_ms(5);
    let seen = SEEN.load(Ordering::Relaxed);
    let (taken, active, cancelled) =
        (seen & (1 << HANDLED) != 0, seen & (1 << 8) != 0, seen & (1 << CANCELLED) == 0);
    if taken && active && pending && !still && cancelled {
        println!(
            "list-register state: active in its handler, pending until ICPENDR cancelled it (never taken)"
        );
    } else {
        println!(
            "BREACH: list-register state: taken {taken}, active in handler {active}, pending {pending}, \
             after ICPENDR {still}, cancelled {cancelled}"
        );
    }
}
