//! The CPU's PMU on behalf of the partition that owns the CPU. Every guest access traps
//! (`MDCR_EL2.TPM`, `TPMCR`); core's policy masks what a write may set (no counting at EL2) and
//! this module carries the access out. Event counters and filters by number go through
//! `PMSELR_EL0`, which is put back afterwards.

use core::arch::asm;

/// Reads (`write` = `None`) or writes the system register named by the string literal.
macro_rules! access {
    ($name:literal, $write:expr) => {
        match $write {
            Some(value) => {
                // SAFETY: a PMU register write at EL2: it changes only what the PMU counts, and
                // the PMU belongs to the partition on this CPU (core masked the value).
                unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) value, options(nomem, nostack)) };
                0
            }
            None => {
                let value: u64;
                // SAFETY: reading a PMU register has no side effect.
                unsafe { asm!(concat!("mrs {}, ", $name), out(reg) value, options(nomem, nostack)) };
                value
            }
        }
    };
}

/// Counter `n` (0..=30) or the cycle counter's filter (31) through `PMSELR_EL0`.
fn selected(n: u64, counter: bool, write: Option<u64>) -> u64 {
    let saved = access!("pmselr_el0", None::<u64>);
    access!("pmselr_el0", Some(n));
    // SAFETY: an ISB so the selection applies to the accesses below.
    unsafe { asm!("isb", options(nostack)) };
    let value = if counter { access!("pmxevcntr_el0", write) } else { access!("pmxevtyper_el0", write) };
    access!("pmselr_el0", Some(saved));
    value
}

/// Carries out an access to the PMU register `encoding` (`sysreg::is_pmu`, a write already
/// masked by `sysreg::pmu_write_mask`); returns the
/// value read, 0 for writes and for encodings that name no PMU register.
pub fn access(encoding: u32, write: Option<u64>) -> u64 {
    let (op1, crn, crm, op2) =
        ((encoding >> 14) & 7, (encoding >> 10) & 0xf, (encoding >> 1) & 0xf, (encoding >> 17) & 7);
    let n = u64::from((crm & 3) << 3 | op2);
    match (op1, crn, crm, op2) {
        (3, 9, 12, 0) => access!("pmcr_el0", write),
        (3, 9, 12, 1) => access!("pmcntenset_el0", write),
        (3, 9, 12, 2) => access!("pmcntenclr_el0", write),
        (3, 9, 12, 3) => access!("pmovsclr_el0", write),
        // Write-only: reads as zero here instead of UNDEFINED.
        (3, 9, 12, 4) => write.map_or(0, |v| access!("pmswinc_el0", Some(v))),
        (3, 9, 12, 5) => access!("pmselr_el0", write),
        // Read-only: writes are ignored.
        (3, 9, 12, 6) => access!("pmceid0_el0", None::<u64>),
        (3, 9, 12, 7) => access!("pmceid1_el0", None::<u64>),
        (3, 9, 13, 0) => access!("pmccntr_el0", write),
        (3, 9, 13, 1) => access!("pmxevtyper_el0", write),
        (3, 9, 13, 2) => access!("pmxevcntr_el0", write),
        (3, 9, 14, 0) => access!("pmuserenr_el0", write),
        (3, 9, 14, 3) => access!("pmovsset_el0", write),
        (0, 9, 14, 1) => access!("pmintenset_el1", write),
        (0, 9, 14, 2) => access!("pmintenclr_el1", write),
        (3, 14, 8..=11, _) => selected(n, true, write),
        (3, 14, 15, 7) => access!("pmccfiltr_el0", write),
        (3, 14, 12..=15, _) => selected(n, false, write),
        _ => 0,
    }
}

/// Puts the PMU back to its reset state for a restarted partition: counters disabled and
/// zeroed, no overflow interrupts, no EL0 access, filters cleared.
pub fn reset() {
    let all = Some(u64::MAX);
    access!("pmcntenclr_el0", all);
    access!("pmintenclr_el1", all);
    access!("pmovsclr_el0", all);
    access!("pmuserenr_el0", Some(0u64));
    access!("pmccfiltr_el0", Some(0u64));
    let counters = (access!("pmcr_el0", None::<u64>) >> 11) & 0x1f;
    for n in 0..counters {
        selected(n, false, Some(0));
    }
    // PMCR_EL0: E off; P and C reset every event counter and the cycle counter.
    access!("pmcr_el0", Some(0b110u64));
}
