//! A vCPU's one-shot timer: the guest arms it by writing IA32_TSC_DEADLINE (MSR 0x6e0, the
//! TSC-deadline mode of the local APIC timer, which CPUID.1:ECX[24] advertises) with a TSC
//! value; once the TSC reaches it, the hypervisor injects [`TIMER_VECTOR`] and disarms it, as the
//! local APIC would. Writing 0 disarms it; reading it gives the armed deadline (0 once fired).
//! There is no virtual local APIC: the vector is fixed (docs/x86.md, "Timer").
//!
//! The VMX preemption timer makes the guest exit at the deadline (or the hypervisor's tick,
//! whichever is first); a halted vCPU waits for it as for a doorbell.

/// The vector the timer injects.
pub const TIMER_VECTOR: u8 = 0xec;
/// IA32_TSC_DEADLINE.
pub const TSC_DEADLINE_MSR: u32 = 0x6e0;

/// The armed deadline (a TSC value), or none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timer {
    deadline: u64,
}

impl Timer {
    /// WRMSR IA32_TSC_DEADLINE: arms it at `deadline`, or disarms it (0).
    pub fn write(&mut self, deadline: u64) {
        self.deadline = deadline;
    }
    /// RDMSR IA32_TSC_DEADLINE.
    pub const fn read(&self) -> u64 {
        self.deadline
    }
    /// Whether it is armed and due at TSC `now`.
    pub const fn due(&self, now: u64) -> bool {
        self.deadline != 0 && now >= self.deadline
    }
    /// Fires it if due at `now`: true once (it is disarmed), then false.
    pub fn fire(&mut self, now: u64) -> bool {
        let due = self.due(now);
        if due {
            self.deadline = 0;
        }
        due
    }
    /// TSC ticks from `now` to the deadline (0 if due), or `None` if disarmed.
    pub const fn ticks_left(&self, now: u64) -> Option<u64> {
        if self.deadline == 0 {
            None
        } else {
            Some(self.deadline.saturating_sub(now))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_at_its_deadline() {
        let mut t = Timer::default();
        assert!(!t.fire(u64::MAX) && t.ticks_left(5).is_none());
        t.write(1000);
        assert_eq!((t.read(), t.ticks_left(400)), (1000, Some(600)));
        assert!(!t.fire(999));
        assert!(t.fire(1000));
        assert!(!t.fire(5000), "one shot");
        assert_eq!(t.read(), 0);
        // A deadline in the past fires at once; 0 disarms.
        t.write(1);
        assert_eq!(t.ticks_left(10), Some(0));
        t.write(0);
        assert!(!t.due(u64::MAX));
    }
}
