//! Counting instructions with the PMU. Counter 0 counts retired instructions at every exception
//! level (the hypervisor programs it so at boot when the system has `benchmark-pmu`); counter 1,
//! set here, counts them at EL2 only. A sample of an operation therefore says both what it costs
//! the guest in all and how much of that the hypervisor executed. Under QEMU `-icount` both are
//! exact, but machine-wide: while this CPU waits or traps, another CPU's instructions count too.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Samples per figure (after [`WARM_UP`] unrecorded ones). Each figure is the smallest sample:
/// on a busy system, a sample during which QEMU ran another CPU is larger, never smaller.
pub const SAMPLES: usize = 32;
const WARM_UP: usize = 4;

/// Instructions one operation took: in all (every EL, machine-wide) and at EL2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub all: u64,
    pub el2: u64,
}

/// The smallest and largest of a figure's samples (equal when the figure is exact).
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub min: Sample,
    pub max: Sample,
}

/// Makes PMU counter 1 of this CPU count retired instructions at EL2 only (PMEVTYPER1_EL0: P and
/// U set, so not at EL1 or EL0; NSH set, so at EL2), and enables it.
pub fn count_el2_on_counter_1() {
    const P: u64 = 1 << 31;
    const U: u64 = 1 << 30;
    const NSH: u64 = 1 << 27;
    const INST_RETIRED: u64 = 0x08;
    // SAFETY: PMU counter 1 of this CPU belongs to this partition (`benchmark-pmu`: the
    // hypervisor does not trap or use it); only what it counts changes.
    unsafe {
        asm!(
            "msr pmevtyper1_el0, {t}",
            "msr pmcntenset_el0, {e}",
            "isb",
            t = in(reg) P | U | NSH | INST_RETIRED,
            e = in(reg) 2u64,
            options(nostack)
        )
    };
}

/// A pause in a polling loop: `yield`, on which QEMU's round-robin scheduler (the one `-icount`
/// uses) runs the next CPU. A loop that polls without one keeps its CPU for a whole time slice
/// (millions of instructions) while the CPU it waits for does not run at all; and the kick an
/// interrupt sends does not end that slice.
#[inline(always)]
pub fn relax() {
    // SAFETY: a hint instruction.
    unsafe { asm!("yield", options(nomem, nostack)) };
}

/// Counters 0 and 1 now.
#[inline(always)]
pub fn counters() -> Sample {
    let (all, el2): (u64, u64);
    // SAFETY: reading PMU counters has no side effect.
    unsafe {
        asm!("isb", "mrs {a}, pmevcntr0_el0", "mrs {e}, pmevcntr1_el0", a = out(reg) all, e = out(reg) el2,
            options(nomem, nostack))
    };
    Sample { all, el2 }
}

impl Sample {
    /// What was counted from `earlier` to `self`.
    pub fn since(self, earlier: Sample) -> Sample {
        Sample { all: self.all.wrapping_sub(earlier.all), el2: self.el2.wrapping_sub(earlier.el2) }
    }
}

/// Counters 0 and 1 around one instruction (`$op`, with its asm operands after it), read with
/// nothing else in between: subtracting the same around a `nop` leaves what `$op` costs beyond
/// one instruction, i.e. the trap's round trip as the guest sees it.
#[macro_export]
macro_rules! around {
    ($op:literal $(, $($operands:tt)+)?) => {{
        let (a0, a1, b0, b1): (u64, u64, u64, u64);
        // SAFETY: reading PMU counters has no side effect; `$op` is a hypercall or an access to
        // this partition's own virtual devices, whose effects the caller wants.
        // The metavariables are the instruction and its asm operands: nothing to evaluate outside.
        #[allow(clippy::macro_metavars_in_unsafe)]
        unsafe {
            core::arch::asm!(
                "isb",
                "mrs {a1}, pmevcntr1_el0",
                "mrs {a0}, pmevcntr0_el0",
                $op,
                "isb",
                "mrs {b0}, pmevcntr0_el0",
                "mrs {b1}, pmevcntr1_el0",
                a0 = out(reg) a0,
                a1 = out(reg) a1,
                b0 = out(reg) b0,
                b1 = out(reg) b1,
                $($($operands)+,)?
                options(nostack)
            );
        }
        $crate::measure::Sample { all: b0.wrapping_sub(a0), el2: b1.wrapping_sub(a1) }
    }};
}

/// Runs `f` [`WARM_UP`] + [`SAMPLES`] times; the smallest and largest of the recorded samples.
pub fn sample(mut f: impl FnMut() -> Sample) -> Stats {
    for _ in 0..WARM_UP {
        f();
    }
    let first = f();
    let (mut min, mut max) = (first, first);
    for _ in 1..SAMPLES {
        let s = f();
        min = Sample { all: min.all.min(s.all), el2: min.el2.min(s.el2) };
        max = Sample { all: max.all.max(s.all), el2: max.el2.max(s.el2) };
    }
    Stats { min, max }
}

/// Prints one figure as `cargo xtask bench` reads it: `bench: NAME=VALUE max=MAX`.
pub fn report(name: &str, value: u64, max: u64) {
    tantalum_guest::println!("bench: {name}={value} max={max}");
}

/// Prints the round trip of a trapped instruction: its samples minus a `nop`'s. (Its EL2 part,
/// `op.min.el2`, is the same figure give or take the one instruction the trap replaces.)
pub fn report_trap(name: &str, op: Stats, nop: Stats) {
    report(name, op.min.all - nop.min.all, op.max.all - nop.min.all);
}

/// Where an interrupt's delivery was measured: the counters just before the CPU went to sleep
/// and in the handler.
pub struct Delivery {
    at_wfi: [AtomicU64; 2],
    at_handler: [AtomicU64; 2],
    reached: AtomicBool,
}

impl Default for Delivery {
    fn default() -> Self {
        Self::new()
    }
}

impl Delivery {
    pub const fn new() -> Self {
        Self {
            at_wfi: [const { AtomicU64::new(0) }; 2],
            at_handler: [const { AtomicU64::new(0) }; 2],
            reached: AtomicBool::new(false),
        }
    }

    /// In the handler, first thing: records the counters.
    #[inline(always)]
    pub fn handler_reached(&self) {
        let now = counters();
        self.at_handler[0].store(now.all, Ordering::Relaxed);
        self.at_handler[1].store(now.el2, Ordering::Relaxed);
        self.reached.store(true, Ordering::Release);
    }

    /// With IRQs masked: reads the counters, runs `arm` (which makes the interrupt come: soon,
    /// or from another CPU once this one sleeps) and sleeps (WFI); then unmasks, so the handler
    /// runs. Returns what the delivery took, from before `arm` to the handler. The counters are
    /// read first so that however early the interrupt comes, its whole delivery is counted (a
    /// sample can only be too large, when QEMU runs another CPU meanwhile, never too small).
    pub fn deliver(&self, arm: impl FnOnce()) -> Sample {
        self.reached.store(false, Ordering::Relaxed);
        // SAFETY: masking IRQs around the check; WFI wakes on a pending interrupt even when masked.
        unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
        let before = counters();
        self.at_wfi[0].store(before.all, Ordering::Relaxed);
        self.at_wfi[1].store(before.el2, Ordering::Relaxed);
        arm();
        // SAFETY: WFI only waits.
        unsafe { asm!("wfi", options(nomem, nostack)) };
        tantalum_guest::irq::enable();
        while !self.reached.load(Ordering::Acquire) {
            // Woken by something else, or the handler has not run yet: sleep again (the figure
            // then counts from the first sleep).
            // SAFETY: as above.
            unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
            if !self.reached.load(Ordering::Acquire) {
                // SAFETY: as above.
                unsafe { asm!("wfi", options(nomem, nostack)) };
            }
            tantalum_guest::irq::enable();
        }
        let handler = Sample {
            all: self.at_handler[0].load(Ordering::Relaxed),
            el2: self.at_handler[1].load(Ordering::Relaxed),
        };
        handler.since(Sample {
            all: self.at_wfi[0].load(Ordering::Relaxed),
            el2: self.at_wfi[1].load(Ordering::Relaxed),
        })
    }
}
