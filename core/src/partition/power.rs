//! The PSCI power state of one vCPU, shared by the partition's CPUs: who may start it, with
//! what, and how a restart takes back a start that was asked for but not yet taken.

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Power state of one vCPU, as PSCI `AFFINITY_INFO` (or its x86 equivalent) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    Off,
    /// CPU_ON (or the partition's start) asked for it; its CPU has not picked it up yet.
    Starting,
    On,
}

impl Power {
    /// The value a guest reads for this state: PSCI `AFFINITY_INFO`'s, which Tantalum's ABI
    /// uses on every architecture (0 on, 1 off, 2 on pending).
    pub const fn to_reg(self) -> u64 {
        match self {
            Power::On => 0,
            Power::Off => 1,
            Power::Starting => 2,
        }
    }
}

/// Raw states: `CLAIMED` is a start being written (entry and context not yet complete).
const OFF: u8 = 0;
const CLAIMED: u8 = 1;
const STARTING: u8 = 2;
const ON: u8 = 3;

/// One vCPU's power state and pending start. Every transition is one atomic step, so a CPU_ON
/// racing another, or a restart, can neither lose a start nor change the entry point of one
/// already asked for.
#[derive(Debug)]
pub struct VcpuSlot {
    state: AtomicU8,
    entry: AtomicU64,
    context: AtomicU64,
}

impl Default for VcpuSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl VcpuSlot {
    pub const fn new() -> Self {
        Self { state: AtomicU8::new(OFF), entry: AtomicU64::new(0), context: AtomicU64::new(0) }
    }

    pub fn power(&self) -> Power {
        match self.state.load(Ordering::Acquire) {
            OFF => Power::Off,
            ON => Power::On,
            _ => Power::Starting,
        }
    }

    /// Asks for the vCPU to start at `entry` with x0 = `context`. Fails with its state unless it
    /// is off; a refused request changes nothing (the pending start keeps its entry point).
    pub fn request_start(&self, entry: u64, context: u64) -> Result<(), Power> {
        if let Err(state) = self.state.compare_exchange(OFF, CLAIMED, Ordering::Acquire, Ordering::Acquire) {
            return Err(if state == ON { Power::On } else { Power::Starting });
        }
        self.entry.store(entry, Ordering::Relaxed);
        self.context.store(context, Ordering::Relaxed);
        self.state.store(STARTING, Ordering::Release);
        Ok(())
    }

    /// Takes a pending start request, turning the vCPU on: (entry, context).
    pub fn take_start(&self) -> Option<(u64, u64)> {
        self.state.compare_exchange(STARTING, ON, Ordering::AcqRel, Ordering::Acquire).ok()?;
        Some((self.entry.load(Ordering::Relaxed), self.context.load(Ordering::Relaxed)))
    }

    /// Withdraws a start that was asked for and not taken (a restart: the partition's memory is
    /// about to be reloaded, the entry point may not even exist any more). Returns whether
    /// there was one. A start still being written is waited for, then withdrawn.
    pub fn cancel_start(&self) -> bool {
        loop {
            match self.state.compare_exchange(STARTING, OFF, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(CLAIMED) => core::hint::spin_loop(),
                Err(_) => return false,
            }
        }
    }

    pub fn set_off(&self) {
        self.state.store(OFF, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_cpu_on_keeps_the_pending_entry_point() {
        let slot = VcpuSlot::new();
        assert_eq!(slot.power(), Power::Off);
        assert_eq!(slot.request_start(0x1000, 1), Ok(()));
        assert_eq!(slot.request_start(0x2000, 2), Err(Power::Starting));
        assert_eq!(slot.power(), Power::Starting);
        assert_eq!(slot.take_start(), Some((0x1000, 1)));
        assert_eq!(slot.request_start(0x3000, 3), Err(Power::On));
        assert_eq!(slot.take_start(), None, "taken once");
        slot.set_off();
        assert_eq!(slot.request_start(0x4000, 4), Ok(()));
    }

    #[test]
    fn a_restart_withdraws_a_start_not_yet_taken() {
        let slot = VcpuSlot::new();
        assert!(!slot.cancel_start(), "nothing pending");
        slot.request_start(0x1000, 0).unwrap();
        assert!(slot.cancel_start());
        assert_eq!(slot.power(), Power::Off);
        assert_eq!(slot.take_start(), None, "a withdrawn start never runs");
        slot.request_start(0x2000, 0).unwrap();
        slot.take_start().unwrap();
        assert!(!slot.cancel_start(), "a vCPU already on is stopped another way (a kick)");
        assert_eq!(slot.power(), Power::On);
    }

    #[test]
    fn racing_requests_start_the_vcpu_once_with_one_complete_entry() {
        use std::sync::Arc;
        for _ in 0..200 {
            let slot = Arc::new(VcpuSlot::new());
            let requesters: Vec<_> = (1..=4u64)
                .map(|n| {
                    let slot = slot.clone();
                    std::thread::spawn(move || slot.request_start(n * 0x1000, n).is_ok())
                })
                .collect();
            let taker = {
                let slot = slot.clone();
                std::thread::spawn(move || loop {
                    if let Some(start) = slot.take_start() {
                        return start;
                    }
                    std::thread::yield_now();
                })
            };
            let granted = requesters.into_iter().map(|t| t.join().unwrap()).filter(|&ok| ok).count();
            let (entry, context) = taker.join().unwrap();
            assert_eq!(granted, 1);
            assert_eq!(entry, context * 0x1000, "entry and context of the same request");
        }
    }
}
