//! Self-hosted debug for unikernels: hardware breakpoints, watchpoints and single step at EL1.
//! The hypervisor gives each partition its CPUs' debug registers (docs/hypercalls.md): they
//! are the partition's own, reset at each start with the OS lock set.
//!
//! A debug exception calls the hook set with [`set_hook`], which must disarm what fired (a
//! breakpoint or watchpoint fires again at once otherwise) and says whether to go on stepping.

use core::arch::asm;
use core::sync::atomic::{AtomicUsize, Ordering};

/// What stopped the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Breakpoint `n` at `pc`.
    Breakpoint { pc: u64 },
    /// A watched access to `address` by the instruction at `pc` (it runs after the hook).
    Watchpoint { address: u64, pc: u64 },
    /// One instruction stepped; `pc` is the next one.
    Step { pc: u64 },
}

/// Called for each debug exception; returns whether to step the next instruction.
pub type Hook = fn(Event) -> bool;

static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Sets the hook that debug exceptions call.
pub fn set_hook(hook: Hook) {
    HOOK.store(hook as usize, Ordering::Release);
}

/// Turns self-hosted debug on for this vCPU: the OS lock cleared, debug exceptions enabled at
/// EL1 (`MDSCR_EL1.MDE`, `KDE`) and unmasked (`PSTATE.D`).
pub fn enable() {
    const MDE: u64 = 1 << 15;
    const KDE: u64 = 1 << 13;
    // SAFETY: this vCPU's own debug configuration (the hypervisor leaves it to the partition).
    unsafe {
        asm!(
            "msr oslar_el1, xzr",
            "isb",
            "mrs {t}, mdscr_el1",
            "orr {t}, {t}, {bits}",
            "msr mdscr_el1, {t}",
            "isb",
            "msr daifclr, #8",
            t = out(reg) _,
            bits = in(reg) MDE | KDE,
            options(nostack),
        );
    }
}

/// Arms breakpoint 0 at `pc` (EL1 execution).
pub fn set_breakpoint(pc: u64) {
    // DBGBCR: E, PMC = 0b01 (EL1), BAS = 0b1111 (A64 instruction).
    let control: u64 = 1 | (0b01 << 1) | (0b1111 << 5);
    // SAFETY: breakpoint 0 of this vCPU; the exception it raises is taken at EL1.
    unsafe {
        asm!("msr dbgbvr0_el1, {v}", "msr dbgbcr0_el1, {c}", "isb", v = in(reg) pc, c = in(reg) control, options(nostack))
    };
}

/// Disarms breakpoint 0.
pub fn clear_breakpoint() {
    // SAFETY: as in `set_breakpoint`.
    unsafe { asm!("msr dbgbcr0_el1, xzr", "isb", options(nostack)) };
}

/// Arms watchpoint 0 on stores to the 8 bytes at `address` (8-byte aligned) at EL1.
pub fn set_watchpoint(address: u64) {
    // DBGWCR: E, PAC = 0b01 (EL1), LSC = 0b10 (store), BAS = 0xff (8 bytes).
    let control: u64 = 1 | (0b01 << 1) | (0b10 << 3) | (0xff << 5);
    // SAFETY: watchpoint 0 of this vCPU; the exception it raises is taken at EL1.
    unsafe {
        asm!("msr dbgwvr0_el1, {v}", "msr dbgwcr0_el1, {c}", "isb", v = in(reg) address, c = in(reg) control, options(nostack))
    };
}

/// Disarms watchpoint 0.
pub fn clear_watchpoint() {
    // SAFETY: as in `set_watchpoint`.
    unsafe { asm!("msr dbgwcr0_el1, xzr", "isb", options(nostack)) };
}

/// Turns software step on or off (`MDSCR_EL1.SS`); a hook returning true arms the next step.
fn set_stepping(on: bool) {
    const SS: u64 = 1;
    // SAFETY: this vCPU's own debug configuration.
    unsafe {
        asm!(
            "mrs {t}, mdscr_el1",
            "bic {t}, {t}, {ss}",
            "orr {t}, {t}, {on}",
            "msr mdscr_el1, {t}",
            "isb",
            t = out(reg) _,
            ss = in(reg) SS,
            on = in(reg) if on { SS } else { 0 },
            options(nostack),
        );
    }
}

/// The saved state of the interrupted code that a debug exception returns to.
#[repr(C)]
pub(crate) struct Resume {
    pub elr: u64,
    pub spsr: u64,
}

/// Handles a synchronous exception taken at EL1 if it is a debug one (breakpoint, watchpoint,
/// software step: EC 0x31, 0x35, 0x33) and a hook is set: returns whether it was handled.
pub(crate) fn on_exception(esr: u64, far: u64, resume: &mut Resume) -> bool {
    const SPSR_SS: u64 = 1 << 21;
    let hook = HOOK.load(Ordering::Acquire);
    if hook == 0 {
        return false;
    }
    let event = match esr >> 26 {
        0x31 => Event::Breakpoint { pc: resume.elr },
        0x35 => Event::Watchpoint { address: far, pc: resume.elr },
        0x33 => Event::Step { pc: resume.elr },
        _ => return false,
    };
    // SAFETY: only `set_hook` stores into HOOK, and only `Hook` values.
    let hook: Hook = unsafe { core::mem::transmute::<usize, Hook>(hook) };
    let step = hook(event);
    set_stepping(step);
    if step {
        resume.spsr |= SPSR_SS;
    } else {
        resume.spsr &= !SPSR_SS;
    }
    true
}
