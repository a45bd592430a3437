//! Time: a counter monotonic and the same on every CPU (aarch64: the generic timer's virtual
//! counter at `CNTFRQ_EL0` Hz; x86_64: the TSC at the frequency the hypervisor reports); sleeping until a deadline; drift-free periodic loops.
//!
//! ```ignore
//! use core::time::Duration;
//! use tantalum_guest::time::{self, Periodic};
//!
//! let t0 = time::now();
//! let mut every = Periodic::new(Duration::from_millis(10));
//! loop {
//!     control_step();
//!     every.wait(); // the n-th round starts at t0 + n * 10 ms, however long the step took
//! }
//! ```
//! `sleep(d)` after each round's work would drift by the work's time every round; a
//! [`Periodic`] computes each deadline from the start instead (`tantalum_core::time::Schedule`).

use core::ops::Add;
use core::time::Duration;

use tantalum_core::time::{self as counter, Schedule};

use crate::hypercall::WAIT_MAX_NS;
use crate::wait_ns;

/// A moment on the partition's monotonic clock (a counter value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

/// The clock now.
#[inline]
pub fn now() -> Instant {
    Instant(crate::arch::counter())
}

/// The counter's frequency in Hz.
#[inline]
pub fn frequency() -> u64 {
    crate::arch::counter_frequency()
}

impl Instant {
    /// The raw counter value.
    pub fn ticks(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to this moment (zero if `earlier` is later).
    pub fn duration_since(self, earlier: Instant) -> Duration {
        counter::duration(self.0.saturating_sub(earlier.0), frequency())
    }

    /// The time since this moment.
    pub fn elapsed(self) -> Duration {
        now().duration_since(self)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(counter::ticks(d, frequency())))
    }
}

/// Sleeps (in the hypervisor's `HYP_WAIT`, the CPU idle) until `deadline` has passed. Returns
/// at once if it already has.
pub fn sleep_until(deadline: Instant) {
    loop {
        let now = now();
        if now >= deadline {
            return;
        }
        // HYP_WAIT may end early (an interrupt for this partition): the loop goes on.
        let left = counter::duration(deadline.0 - now.0, frequency());
        wait_ns(u64::try_from(left.as_nanos()).unwrap_or(u64::MAX).min(WAIT_MAX_NS));
    }
}

/// Sleeps for `d`.
pub fn sleep(d: Duration) {
    sleep_until(now() + d);
}

/// A periodic loop without drift: the `n`-th [`wait`](Periodic::wait) returns at
/// `start + n * period`, whatever each round's work took.
#[derive(Clone, Copy, Debug)]
pub struct Periodic {
    schedule: Schedule,
}

impl Periodic {
    /// Rounds of `period` from now.
    pub fn new(period: Duration) -> Self {
        Self::starting_at(now(), period)
    }

    /// Rounds of `period` from `start`.
    pub fn starting_at(start: Instant, period: Duration) -> Self {
        Self { schedule: Schedule::new(start.0, period, frequency()) }
    }

    /// Sleeps until the next round is due. If the work overran one or more rounds, they are
    /// skipped (not run back to back) and their number returned.
    pub fn wait(&mut self) -> u64 {
        let (deadline, skipped) = self.schedule.next(now().0);
        sleep_until(Instant(deadline));
        skipped
    }

    /// Rounds waited for so far (skipped ones included).
    pub fn rounds(&self) -> u64 {
        self.schedule.rounds()
    }
}
