//! How much console output a partition may send: a token bucket per partition, so one
//! partition flooding the console cannot fill it (or hold it) at the others' expense. Output
//! over the budget is dropped and counted, never silently: the next line that fits is preceded
//! by `[name] ... N bytes dropped`.

use core::fmt;

/// Bytes a partition may send at once after a quiet spell (a Linux boot log with `quiet` is a
/// few KiB; one with every message, some 40 KiB).
pub const BURST: u64 = 32 * 1024;
/// Bytes per second a partition may send for as long as it likes: a sixth of what the console
/// takes under QEMU (about 50 KB/s), so no partition can take it over.
pub const RATE: u64 = 8 * 1024;

/// One partition's console budget. Time is in ticks of a counter of `freq` Hz.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Bytes it may send now, times `freq` (so refills never round to nothing).
    credit: u128,
    /// When the credit was last brought up to date.
    updated: u64,
    /// Bytes dropped since the last report.
    dropped: u64,
    /// When dropped output was last reported (at most once a second, so a flood's report is
    /// not itself a flood).
    reported: Option<u64>,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new()
    }
}

/// What to do with output that asked for the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Send it, after a line reporting this many bytes dropped before it.
    SendAfterDropped(u64),
    /// Drop it (counted).
    Drop,
}

impl Budget {
    /// A full budget (a partition's first output may be a burst).
    pub const fn new() -> Self {
        Self { credit: u128::MAX, updated: 0, dropped: 0, reported: None }
    }

    /// Asks to send `bytes` at time `now`.
    pub fn take(&mut self, bytes: usize, now: u64, freq: u64) -> Verdict {
        let freq = u128::from(freq.max(1));
        let full = u128::from(BURST) * freq;
        let refill = u128::from(now.saturating_sub(self.updated)) * u128::from(RATE);
        self.credit = self.credit.min(full).saturating_add(refill).min(full);
        self.updated = now;
        let cost = bytes as u128 * freq;
        if cost > self.credit {
            self.dropped += bytes as u64;
            return Verdict::Drop;
        }
        self.credit -= cost;
        let due = self.reported.is_none_or(|at| now.saturating_sub(at) >= freq as u64);
        if self.dropped == 0 || !due {
            return Verdict::Send;
        }
        self.reported = Some(now);
        Verdict::SendAfterDropped(core::mem::take(&mut self.dropped))
    }
}

/// The line reporting dropped output: `... 1234 bytes dropped (console budget: 32 KiB/s)`.
pub struct Dropped(pub u64);

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "... {} bytes dropped (console budget: {} KiB/s, bursts of {} KiB)",
            self.0,
            RATE / 1024,
            BURST / 1024
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 1_000_000;

    #[test]
    fn a_burst_then_the_rate_then_a_report() {
        let mut b = Budget::new();
        assert_eq!(b.take(BURST as usize, 0, HZ), Verdict::Send);
        assert_eq!(b.take(100, 0, HZ), Verdict::Drop);
        assert_eq!(b.take(50, 0, HZ), Verdict::Drop);
        // 10 ms later: RATE / 100 bytes of credit (81).
        assert_eq!(b.take(80, 10_000, HZ), Verdict::SendAfterDropped(150));
        assert_eq!(b.take(80, 10_000, HZ), Verdict::Drop);
        // The next report waits a second; what is dropped meanwhile is counted for it.
        assert_eq!(b.take(1, 10_000, HZ), Verdict::Send);
        assert_eq!(b.take(8000, 1_010_000, HZ), Verdict::SendAfterDropped(80));
    }

    #[test]
    fn a_flood_gets_burst_plus_rate_and_no_more() {
        let mut b = Budget::new();
        let (mut sent, mut dropped) = (0u64, 0u64);
        // 256-byte writes every 100 us for 2 s: 5 MB asked for.
        for i in 0..20_000u64 {
            match b.take(256, i * 100, HZ) {
                Verdict::Drop => dropped += 256,
                _ => sent += 256,
            }
        }
        let allowed = BURST + 2 * RATE;
        assert!(sent <= allowed && sent + 256 * 4 >= allowed, "sent {sent}, allowed {allowed}");
        assert_eq!(sent + dropped, 20_000 * 256);
    }

    #[test]
    fn a_quiet_partition_keeps_its_burst_and_time_going_back_is_harmless() {
        let mut b = Budget::new();
        assert_eq!(b.take(1000, 5 * HZ, HZ), Verdict::Send);
        assert_eq!(b.take(1000, HZ, HZ), Verdict::Send, "a counter read on another CPU, a little behind");
        assert!(Dropped(5).to_string().starts_with("... 5 bytes dropped"));
    }
}
