//! `gicconf`: GIC and timer conformance cases (issue 13), one result line each. The same image
//! runs bare on QEMU (EL1, the emulated GICv3 itself, the machine's own device tree) and as a
//! Tantalum partition (the virtual GIC, the PL031 passed through); `cargo xtask test` compares
//! the lines of both runs, so each line states what the guest observed, never a verdict.
//!
//! Interrupts are taken by polling `ICC_IAR1_EL1` with IRQs masked at the CPU, so each case
//! controls exactly when it acknowledges, silences the source and ends the interrupt. The
//! cases: SGI state inside its handler, an SGI active and pending at once, `ICPENDR` of a loaded
//! SGI, a priority change of a pending SGI, a GICv2 SGI pending from two senders (CPU 1 sends
//! too: the GICv2 comparison runs two CPUs); the virtual timer (a level PPI) and the PL031 alarm
//! (a level SPI, passed through) ended after and before their source is silenced, asserted while
//! disabled at the GIC, asserted and silenced while disabled; the alarm configured edge; the
//! timer with IRQs unmasked through the SDK's handler; a constant register loaded into other
//! general registers than x0 (`registers.rs`).
#![no_std]
#![no_main]

extern crate alloc;

mod cpu;
mod registers;
mod rtc;
mod senders;

use core::sync::atomic::{AtomicU32, Ordering};

use tantalum_guest::{irq, println};
use tock_registers::interfaces::Writeable;

use cpu::{ack, eoi, send_sgi, spin_us, timer};

tantalum_guest::entry!(main);

/// The EL1 virtual timer's PPI.
const TIMER: u32 = 27;
/// Rounds of the repeated cases.
const ROUNDS: u32 = 5;
/// How long an interrupt that should come may take (µs).
const COMES_WITHIN: u64 = 100_000;
/// How long to watch for an interrupt that should not come (µs).
const WATCH: u64 = 10_000;
/// Between ending an interrupt and silencing its source (µs): long enough for a hypervisor
/// to see the physical interrupt fire again.
const GAP: u64 = 300;
/// Default priority of the interrupts used (lower is more urgent).
const PRIORITY: u8 = 0x80;

fn report(case: &str, facts: core::fmt::Arguments<'_>) {
    println!("gicconf: {case}: {facts}");
}

/// Acknowledges and ends everything that comes within `window_us`; returns how many of them
/// were `intid` (others are reported).
fn drain(intid: u32, window_us: u64) -> u32 {
    let mut seen = 0;
    let until = cpu::deadline(window_us);
    while cpu::before(until) {
        if let Some(got) = ack() {
            if got != intid {
                println!("gicconf: stray interrupt {got}");
            }
            seen += u32::from(got == intid);
            eoi(got);
        }
    }
    seen
}

/// Acknowledges the next interrupt within `within_us` (without ending it).
fn take(within_us: u64) -> Option<u32> {
    let until = cpu::deadline(within_us);
    while cpu::before(until) {
        if let Some(got) = ack() {
            return Some(got);
        }
    }
    None
}

fn prepare(intid: u32) {
    // To CPU 0 (a GICv2 with several CPUs delivers an SPI only to the CPUs its ITARGETSR names).
    irq::set_target(intid, 0);
    irq::set_group1(intid);
    irq::set_priority(intid, PRIORITY);
    irq::set_enabled(intid, true);
}

fn sgi_in_handler() {
    prepare(4);
    send_sgi(4);
    let taken = take(COMES_WITHIN);
    let (active, pending) = (irq::is_active(4), irq::is_pending(4));
    if let Some(got) = taken {
        eoi(got);
    }
    let after = irq::is_active(4);
    report(
        "SGI read inside its handler",
        format_args!("taken {taken:?}, active {active}, pending {pending}; after EOI active {after}"),
    );
}

fn sgi_active_and_pending() {
    prepare(4);
    send_sgi(4);
    let first = take(COMES_WITHIN);
    send_sgi(4);
    spin_us(WATCH);
    let (active, pending) = (irq::is_active(4), irq::is_pending(4));
    if let Some(got) = first {
        eoi(got);
    }
    let again = drain(4, WATCH);
    report(
        "SGI sent again while active",
        format_args!("taken {first:?}, active {active}, pending {pending}; taken again after EOI {again}"),
    );
}

fn sgi_icpendr_loaded() {
    prepare(5);
    send_sgi(5);
    spin_us(WATCH);
    let pending = irq::is_pending(5);
    // The register itself (a GICv2 ignores SGI bits there; the SDK's clear_pending does not).
    let (frame, reg, bit) = irq::state_frame(5);
    frame.icpendr[reg].set(bit);
    let after = irq::is_pending(5);
    let taken = drain(5, WATCH);
    report("SGI pending, ICPENDR", format_args!("pending {pending}, after ICPENDR {after}, taken {taken}"));
    // The SDK's way: ICPENDR on a GICv3, GICD_CPENDSGIR on a GICv2.
    send_sgi(5);
    spin_us(WATCH);
    irq::clear_pending(5);
    let after = irq::is_pending(5);
    let taken = drain(5, WATCH);
    report("SGI pending, cleared by the SDK", format_args!("after clearing {after}, taken {taken}"));
}

fn sgi_priority_while_pending() {
    prepare(6);
    prepare(7);
    irq::set_priority(7, 0x90);
    send_sgi(6);
    send_sgi(7);
    spin_us(WATCH);
    irq::set_priority(7, 0x40);
    let reads = irq::priority(7);
    let first = take(COMES_WITHIN);
    first.inspect(|&i| eoi(i));
    let second = take(COMES_WITHIN);
    second.inspect(|&i| eoi(i));
    report(
        "SGIs 6 (0x80) and 7 (0x90) pending, 7 raised to 0x40",
        format_args!("reads {reads:#x}, taken {first:?} then {second:?}"),
    );
}

/// A level interrupt source the cases drive: raise it, silence it, see whether it is asserted.
trait Source {
    fn intid(&self) -> u32;
    fn raise(&self);
    fn silence(&self);
}

struct Timer;

impl Source for Timer {
    fn intid(&self) -> u32 {
        TIMER
    }
    fn raise(&self) {
        timer::fire_in_us(50);
        let until = cpu::deadline(COMES_WITHIN);
        while !timer::asserted() && cpu::before(until) {}
    }
    fn silence(&self) {
        timer::off();
    }
}

impl Source for rtc::Rtc {
    fn intid(&self) -> u32 {
        self.intid
    }
    fn raise(&self) {
        self.alarm_now();
    }
    fn silence(&self) {
        self.clear();
    }
}

/// `ROUNDS` times: raise, acknowledge, then end and silence in the order given.
fn eoi_order(name: &str, source: &dyn Source, eoi_first: bool) {
    let intid = source.intid();
    prepare(intid);
    let (mut taken, mut more) = (0, 0);
    for _ in 0..ROUNDS {
        source.raise();
        let got = take(COMES_WITHIN);
        taken += u32::from(got == Some(intid));
        if eoi_first {
            got.inspect(|&i| eoi(i));
            spin_us(GAP);
            source.silence();
        } else {
            source.silence();
            got.inspect(|&i| eoi(i));
        }
        more += drain(intid, WATCH);
    }
    let order = if eoi_first { "EOI before silencing" } else { "EOI after silencing" };
    report(
        &alloc::format!("{name}, {order}"),
        format_args!("{ROUNDS} raised, {taken} taken, {more} taken again"),
    );
}

/// Raised while disabled at the GIC; `silenced`: and silenced before it is enabled again.
fn while_disabled(name: &str, source: &dyn Source, silenced: bool) {
    let intid = source.intid();
    prepare(intid);
    irq::set_enabled(intid, false);
    source.raise();
    spin_us(WATCH);
    if silenced {
        source.silence();
        spin_us(GAP);
    }
    let pending = irq::is_pending(intid);
    irq::set_enabled(intid, true);
    let got = take(if silenced { WATCH } else { COMES_WITHIN });
    source.silence();
    got.inspect(|&i| eoi(i));
    let more = drain(intid, WATCH);
    let what = if silenced { "raised and silenced while disabled" } else { "raised while disabled" };
    report(
        &alloc::format!("{name}, {what}"),
        format_args!("pending {pending}; on enable taken {got:?}, then {more} more"),
    );
}

/// The alarm configured edge-triggered at the GIC: one interrupt per rising edge, however long
/// the line stays high.
fn edge(alarm: &rtc::Rtc) {
    let intid = alarm.intid;
    prepare(intid);
    irq::set_edge(intid, true);
    let reads = irq::is_edge(intid);
    alarm.alarm_now();
    let got = take(COMES_WITHIN);
    got.inspect(|&i| eoi(i));
    spin_us(GAP);
    alarm.clear();
    let more = drain(intid, WATCH);
    // Raised while disabled: the edge is remembered.
    irq::set_enabled(intid, false);
    alarm.alarm_now();
    spin_us(GAP);
    alarm.clear();
    let pending = irq::is_pending(intid);
    irq::set_enabled(intid, true);
    let late = drain(intid, WATCH);
    irq::set_edge(intid, false);
    report(
        "PL031 alarm configured edge",
        format_args!(
            "reads edge {reads}, taken {got:?}, {more} taken again after EOI; raised while disabled: pending {pending}, taken on enable {late}"
        ),
    );
}

/// Raised while the CPU's priority mask hides it (IRQs unmasked at the CPU), silenced, then the
/// mask lifted: a level interrupt whose line fell is not taken.
fn priority_masked(name: &str, source: &dyn Source) {
    let intid = source.intid();
    prepare(intid);
    HANDLED.store(0, Ordering::Relaxed);
    irq::set_handler(intid, count_and_silence);
    irq::set_priority_mask(PRIORITY); // only more urgent than PRIORITY: hides it
    irq::enable();
    source.raise();
    spin_us(WATCH);
    let pending = irq::is_pending(intid);
    source.silence();
    spin_us(GAP);
    irq::set_priority_mask(0xff);
    spin_us(WATCH);
    cpu::mask_irqs();
    report(
        &alloc::format!("{name}, raised under the priority mask, silenced, then unmasked"),
        format_args!("pending {pending}, taken {}", HANDLED.load(Ordering::Relaxed)),
    );
}

fn count_and_silence(intid: u32) {
    if intid == TIMER {
        timer::off();
    }
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

static HANDLED: AtomicU32 = AtomicU32::new(0);

fn on_timer(_intid: u32) {
    timer::off();
    HANDLED.fetch_add(1, Ordering::Relaxed);
}

/// The timer through the SDK's interrupt handler, with IRQs unmasked at the CPU.
fn timer_unmasked() {
    prepare(TIMER);
    irq::set_handler(TIMER, on_timer);
    HANDLED.store(0, Ordering::Relaxed);
    irq::enable();
    for round in 1..=ROUNDS {
        timer::fire_in_us(50);
        let until = cpu::deadline(COMES_WITHIN);
        while HANDLED.load(Ordering::Relaxed) < round && cpu::before(until) {}
        spin_us(GAP);
    }
    cpu::mask_irqs();
    report(
        "timer, IRQs unmasked, handler silences it",
        format_args!("{ROUNDS} raised, {} taken", HANDLED.load(Ordering::Relaxed)),
    );
}

fn main() {
    cpu::mask_irqs();
    irq::init();
    let mode = if tantalum_guest::bare::bare() { "bare on the machine" } else { "a Tantalum partition" };
    println!("gicconf: running as {mode}");
    let (pmcr, ceid0, ceid1) = cpu::pmu_identification();
    report(
        "PMU identification",
        format_args!(
            "PMCR_EL0 IMP {:#x} IDCODE {:#x} N {}, PMCEID0_EL0 {ceid0:#x}, PMCEID1_EL0 {ceid1:#x}",
            pmcr >> 24 & 0xff,
            pmcr >> 16 & 0xff,
            pmcr >> 11 & 0x1f
        ),
    );
    let alarm = rtc::Rtc::from_dt();
    registers::loads_into_every_register();
    sgi_in_handler();
    sgi_active_and_pending();
    sgi_icpendr_loaded();
    sgi_priority_while_pending();
    senders::two_senders();
    eoi_order("timer (level PPI)", &Timer, false);
    eoi_order("timer (level PPI)", &Timer, true);
    while_disabled("timer (level PPI)", &Timer, false);
    while_disabled("timer (level PPI)", &Timer, true);
    timer_unmasked();
    priority_masked("timer (level PPI)", &Timer);
    let mut ran = 13;
    match &alarm {
        Some(alarm) => {
            eoi_order("PL031 alarm (level SPI)", alarm, false);
            eoi_order("PL031 alarm (level SPI)", alarm, true);
            while_disabled("PL031 alarm (level SPI)", alarm, false);
            while_disabled("PL031 alarm (level SPI)", alarm, true);
            edge(alarm);
            priority_masked("PL031 alarm (level SPI)", alarm);
            alarm.quiet();
            ran += 6;
        }
        None => println!("gicconf: no PL031 in the device tree: its cases skipped"),
    }
    println!("gicconf: {ran} cases done");
}
