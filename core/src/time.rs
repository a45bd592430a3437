//! Counter arithmetic for the Arm generic timer (a monotonic count at a fixed frequency, the same
//! on every CPU), shared by the hypervisor (`HYP_WAIT`) and the guest SDK's clock
//! (`tantalum_guest::time`), so that both round the same way.
#![forbid(unsafe_code)]

use core::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Counter ticks in `d` at `freq` Hz, rounded down (saturating).
///
/// Whole seconds and the rest apart, in 64-bit arithmetic: a 128-bit division would link
/// compiler-builtins' (800 bytes of the hypervisor, docs/performance.md `.text`).
pub fn ticks(d: Duration, freq: u64) -> u64 {
    let Some(whole) = d.as_secs().checked_mul(freq) else {
        return u64::MAX;
    };
    whole.saturating_add(subsec_ticks(d.subsec_nanos(), freq))
}

/// `floor(nanos * freq / 10^9)` for `nanos` < 10^9 (so the result is below `freq`), with `freq`
/// in 32-bit halves: `nanos * (high half)` and `nanos * (low half)` are below 2^62.
fn subsec_ticks(nanos: u32, freq: u64) -> u64 {
    const G: u64 = 1_000_000_000;
    let nanos = u64::from(nanos);
    let high = nanos * (freq >> 32);
    let low = nanos * (freq & 0xffff_ffff);
    // floor((high * 2^32 + low) / G) = floor(high / G) * 2^32 + floor(((high % G) * 2^32 + low) / G)
    ((high / G) << 32) + (((high % G) << 32) + low) / G
}

/// The time `ticks` counter ticks take at `freq` Hz, rounded up to a nanosecond: waiting that
/// long never ends before the ticks have passed. A frequency of 0 (a broken counter) gives 0.
pub fn duration(ticks: u64, freq: u64) -> Duration {
    if freq == 0 {
        return Duration::ZERO;
    }
    let nanos = (u128::from(ticks) * NANOS_PER_SEC).div_ceil(u128::from(freq));
    Duration::new((nanos / NANOS_PER_SEC) as u64, (nanos % NANOS_PER_SEC) as u32)
}

/// Deadlines of a periodic activity: the `n`-th is `start + n * period`, computed from the start
/// each time, so rounding never accumulates and the activity does not drift however long it
/// runs or however long each round's work takes.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    start: u64,
    period: Duration,
    freq: u64,
    /// The round whose deadline was handed out last.
    round: u64,
}

impl Schedule {
    /// Rounds of `period` from counter value `start` at `freq` Hz (a zero period counts as 1 ns).
    pub fn new(start: u64, period: Duration, freq: u64) -> Self {
        Self { start, period: period.max(Duration::from_nanos(1)), freq, round: 0 }
    }

    /// The counter value at which round `n` is due.
    pub fn deadline(&self, n: u64) -> u64 {
        let nanos = self.period.as_nanos() * u128::from(n);
        let ticks = nanos * u128::from(self.freq) / NANOS_PER_SEC;
        self.start.saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
    }

    /// The next deadline after counter value `now`, and how many rounds were skipped to reach
    /// it (rounds whose deadlines passed while the caller was busy: late rounds are dropped,
    /// not run in a burst).
    pub fn next(&mut self, now: u64) -> (u64, u64) {
        let due = self.round + 1;
        let round = if self.deadline(due) > now || self.freq == 0 {
            due
        } else {
            // The first n with start + floor(n * period * freq / 1e9) > now.
            let wanted = (u128::from(now) + 1 - u128::from(self.start)) * NANOS_PER_SEC;
            let per_round = self.period.as_nanos() * u128::from(self.freq);
            u64::try_from(wanted.div_ceil(per_round)).unwrap_or(u64::MAX).max(due)
        };
        self.round = round;
        (self.deadline(round), round - due)
    }

    /// Rounds handed out so far.
    pub fn rounds(&self) -> u64 {
        self.round
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_HZ: u64 = 62_500_000;

    #[test]
    fn conversions_round_safely() {
        assert_eq!(ticks(Duration::from_millis(500), QEMU_HZ), 31_250_000);
        assert_eq!(ticks(Duration::from_nanos(15), QEMU_HZ), 0);
        assert_eq!(ticks(Duration::MAX, QEMU_HZ), u64::MAX);
        assert_eq!(duration(31_250_000, QEMU_HZ), Duration::from_millis(500));
        assert_eq!(duration(1, QEMU_HZ), Duration::from_nanos(16));
        assert_eq!(duration(5, 0), Duration::ZERO);
        // Waiting the rounded-up duration covers the ticks, at awkward frequencies too.
        for freq in [1, 3, 19_200_000, 24_000_000, QEMU_HZ, 1_000_000_007] {
            for t in [0, 1, 2, 7, 1_000, 123_456_789] {
                assert!(ticks(duration(t, freq), freq) >= t, "{t} ticks at {freq} Hz");
            }
        }
    }

    /// `ticks` against the exact 128-bit formula, on random durations and frequencies (small,
    /// counter-like and up to 2^64 - 1) and the edges.
    #[test]
    fn ticks_are_the_exact_quotient() {
        // A product past 2^128 is a quotient past u64::MAX.
        let exact = |d: Duration, freq: u64| {
            let product = d.as_nanos().checked_mul(u128::from(freq));
            product.map_or(u64::MAX, |p| u64::try_from(p / NANOS_PER_SEC).unwrap_or(u64::MAX))
        };
        let mut random = crate::test_random::Random(0x9e37_79b9_7f4a_7c15);
        let edges = [0, 1, 999_999_999, 1_000_000_000, u64::MAX / 1_000_000_000, u64::MAX];
        for i in 0..200_000u32 {
            let (a, b) = (random.next(), random.next());
            let d = match i % 4 {
                0 => Duration::from_nanos(a),
                1 => Duration::new(a % 1_000_000, (b % 1_000_000_000) as u32),
                2 => Duration::new(a, (b % 1_000_000_000) as u32),
                _ => Duration::new(edges[(a % 6) as usize], (b % 1_000_000_000) as u32),
            };
            let freq = match i % 3 {
                0 => b >> (a % 64),
                1 => b % 2_000_000_000,
                _ => edges[(b % 6) as usize],
            };
            assert_eq!(ticks(d, freq), exact(d, freq), "{d:?} at {freq} Hz");
        }
    }

    #[test]
    fn deadlines_do_not_drift() {
        // 1/3 s at 19.2 MHz is 6.4 million ticks exactly; at 1 GHz+7 it is not whole.
        let s = Schedule::new(1000, Duration::from_nanos(333_333_333), 1_000_000_007);
        let after_a_million = s.deadline(1_000_000);
        let exact = 1000 + 333_333_333u128 * 1_000_000 * 1_000_000_007 / 1_000_000_000;
        assert_eq!(u128::from(after_a_million), exact);
    }

    #[test]
    fn on_time_rounds_follow_each_other() {
        let mut s = Schedule::new(100, Duration::from_millis(500), QEMU_HZ);
        assert_eq!(s.next(100), (100 + 31_250_000, 0));
        // Woken a little late: the next deadline is still start + 2 periods.
        assert_eq!(s.next(100 + 31_250_000 + 5_000), (100 + 62_500_000, 0));
        assert_eq!(s.rounds(), 2);
    }

    #[test]
    fn late_rounds_are_skipped() {
        let mut s = Schedule::new(0, Duration::from_millis(500), QEMU_HZ);
        // Busy for 1.7 s after start: rounds 1, 2 and 3 passed; round 4 (2 s) is next.
        let (deadline, skipped) = s.next(ticks(Duration::from_millis(1700), QEMU_HZ));
        assert_eq!((deadline, skipped), (ticks(Duration::from_secs(2), QEMU_HZ), 3));
        // Exactly on a deadline counts as passed.
        let (deadline, skipped) = s.next(ticks(Duration::from_millis(2500), QEMU_HZ));
        assert_eq!((deadline, skipped), (ticks(Duration::from_secs(3), QEMU_HZ), 1));
        let mut tiny = Schedule::new(0, Duration::ZERO, 1);
        assert_eq!(tiny.next(10).0, 11);
    }
}
