//! Synchronous external aborts at EL1: what a load or store outside the partition's memory
//! gives a partition whose `outside-memory` is `external-abort` (docs/config.md), as a bus
//! error would on hardware. Without a hook, such an abort is fatal (the SDK prints it and
//! exits); with one, the hook sees it and the partition goes on after the faulting instruction.

use core::sync::atomic::{AtomicUsize, Ordering};

/// A data abort taken at EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    /// ESR_EL1 as the exception set it.
    pub esr: u64,
    /// The faulting virtual address (FAR_EL1).
    pub address: u64,
    /// The faulting instruction.
    pub pc: u64,
}

impl Abort {
    /// ESR.EC 0x25: a Data Abort without a change of exception level.
    const DATA_ABORT_SAME_EL: u64 = 0x25;
    /// DFSC 0b010000: synchronous external abort, not on a translation table walk.
    const EXTERNAL: u64 = 0b01_0000;

    /// Whether it is a synchronous external abort (DFSC 0b010000).
    pub const fn is_external(&self) -> bool {
        self.esr & 0x3f == Self::EXTERNAL
    }
    /// Whether the access was a write (ESR.WnR).
    pub const fn is_write(&self) -> bool {
        self.esr & (1 << 6) != 0
    }
}

/// Called for each data abort at EL1; returns whether to go on after the faulting instruction.
pub type Hook = fn(Abort) -> bool;

static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Sets the hook that data aborts call.
pub fn set_hook(hook: Hook) {
    HOOK.store(hook as usize, Ordering::Release);
}

/// Handles a synchronous exception taken at EL1 if it is a data abort and a hook is set that
/// accepts it: the partition resumes after the (4-byte A64) faulting instruction.
pub(crate) fn on_exception(esr: u64, far: u64, resume: &mut crate::debug::Resume) -> bool {
    let hook = HOOK.load(Ordering::Acquire);
    if hook == 0 || esr >> 26 != Abort::DATA_ABORT_SAME_EL {
        return false;
    }
    // SAFETY: only `set_hook` stores into HOOK, and only `Hook` values.
    let hook: Hook = unsafe { core::mem::transmute::<usize, Hook>(hook) };
    if !hook(Abort { esr, address: far, pc: resume.elr }) {
        return false;
    }
    resume.elr += 4;
    true
}
