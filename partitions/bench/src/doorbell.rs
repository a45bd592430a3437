//! A doorbell between two partitions over channel 0 (duplex): `role=doorbell-recv` sleeps in
//! WFI; its peer (`role=doorbell-send`) polls a word the receiver stores to just before it
//! sleeps, then rings the receiver's doorbell (`HYP_CHANNEL_NOTIFY`). The receiver measures from
//! just before that store to its doorbell handler (machine-wide: that includes the end of the
//! sender's poll and its notify hypercall up to the point where the hypervisor kicks the
//! receiver's CPU, which QEMU then runs first).
//!
//! The word is not a ring message (a ring's send would add its own cost): it lies in the
//! receiver's producer page past the ring header, which only the receiver may write and the
//! sender may read (`tantalum_core::channel::layout`); the rings themselves are not used.

use core::sync::atomic::{AtomicU64, Ordering};

use tantalum_guest::hypercall::HYP_CHANNEL_NOTIFY;
use tantalum_guest::{dt, irq, println};

use crate::around;
use crate::measure::{self, report, Delivery, Sample, SAMPLES};

const ROUNDS: u64 = SAMPLES as u64 + 4;
/// Where the word lies in the receiver's producer page (past the ring header).
const WORD_OFFSET: u64 = 0x800;

static DELIVERY: Delivery = Delivery::new();

fn on_doorbell(_intid: u32) {
    DELIVERY.handler_reached();
}

/// Channel 0 from the guest DT: its base, size, this partition's endpoint and its doorbell.
pub fn channel() -> Option<(u64, u64, u64, u32)> {
    let fdt = dt::get()?;
    let node = fdt.find_node("/")?.children().find(|n| {
        n.name.starts_with("channel@")
            && n.property("tantalum,channel").and_then(|p| dt::numbers(p.value, 1).next()) == Some(0)
    })?;
    let mut reg = dt::numbers(node.property("reg")?.value, 2);
    let (base, size) = (reg.next()?, reg.next()?);
    let endpoint = dt::numbers(node.property("tantalum,endpoint")?.value, 1).next()?;
    let spi = dt::numbers(node.property("interrupts")?.value, 1).nth(1)?;
    Some((base, size, endpoint, spi as u32 + 32))
}

/// The word in the producer page of the ring that `endpoint` sends on (duplex: endpoint 0's in
/// the first half of the region, endpoint 1's in the second).
fn word(base: u64, size: u64, endpoint: u64) -> &'static AtomicU64 {
    let page = if endpoint == 0 { base } else { base + size / 2 / 0x1000 * 0x1000 };
    // SAFETY: inside channel 0's region, mapped for the whole run (readable by both endpoints,
    // writable by `endpoint`), 8-byte aligned; only this module touches it.
    unsafe { &*((page + WORD_OFFSET) as *const AtomicU64) }
}

pub fn receive() {
    let Some((base, size, endpoint, doorbell)) = channel() else {
        println!("no channel 0");
        return;
    };
    irq::init();
    irq::set_handler(doorbell, on_doorbell);
    irq::enable();
    let armed = word(base, size, endpoint);
    let (mut best, mut worst) = (Sample { all: u64::MAX, el2: u64::MAX }, Sample::default());
    for round in 1..=ROUNDS {
        let took = DELIVERY.deliver(|| armed.store(round, Ordering::Release));
        if round > ROUNDS - SAMPLES as u64 {
            best = Sample { all: best.all.min(took.all), el2: best.el2.min(took.el2) };
            worst = Sample { all: worst.all.max(took.all), el2: worst.el2.max(took.el2) };
        }
    }
    report("doorbell_wfi_to_handler", best.all, worst.all);
    report("doorbell_receiver_el2", best.el2, worst.el2);
}

pub fn send() {
    let Some((base, size, endpoint, _)) = channel() else {
        println!("no channel 0");
        return;
    };
    let armed = word(base, size, 1 - endpoint.min(1));
    let nop = measure::sample(|| {
        around!("nop", inout("x0") HYP_CHANNEL_NOTIFY => _, inout("x1") 0u64 => _, inout("x2") 0u64 => _,
            inout("x3") 0u64 => _, inout("x4") 0u64 => _, in("x5") 0u64, in("x6") 0u64)
    });
    let (mut best, mut worst) = (u64::MAX, 0);
    for round in 1..=ROUNDS {
        while armed.load(Ordering::Acquire) != round {
            measure::relax();
        }
        let s = around!("hvc #0", inout("x0") HYP_CHANNEL_NOTIFY => _, inout("x1") 0u64 => _,
            inout("x2") 0u64 => _, inout("x3") 0u64 => _, inout("x4") 0u64 => _, in("x5") 0u64, in("x6") 0u64);
        if round > ROUNDS - SAMPLES as u64 {
            best = best.min(s.all - nop.min.all);
            worst = worst.max(s.all - nop.min.all);
        }
    }
    report("doorbell_sender_notify", best, worst);
}
