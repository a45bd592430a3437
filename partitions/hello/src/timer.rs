//! `role=timer` (x86_64): sleeps in HLT three times, each woken by the vCPU's one-shot timer
//! (IA32_TSC_DEADLINE, injected as `irq::TIMER_VECTOR`) 20 ms after arming it, and reports how
//! long each sleep took: never less than asked (docs/x86.md, "Timer").

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use tantalum_guest::irq;
use tantalum_guest::println;
use tantalum_guest::time;

static FIRED: AtomicU32 = AtomicU32::new(0);

fn on_timer(_vector: u32) {
    FIRED.fetch_add(1, Ordering::AcqRel);
}

pub fn run() {
    irq::init();
    irq::set_handler(irq::TIMER_VECTOR, on_timer);
    irq::enable();
    let asked = Duration::from_millis(20);
    let mut early = 0;
    for round in 1..=3 {
        let before = FIRED.load(Ordering::Acquire);
        let start = time::now();
        irq::set_timer_deadline((start + asked).ticks());
        while FIRED.load(Ordering::Acquire) == before {
            irq::wait_unless(|| FIRED.load(Ordering::Acquire) != before);
        }
        let slept = time::now().duration_since(start);
        if slept < asked {
            early += 1;
        }
        println!(
            "timer: round {round}: woke by the timer after {} us (asked {} us)",
            slept.as_micros(),
            asked.as_micros()
        );
    }
    println!("timer: {} interrupts, {early} early", FIRED.load(Ordering::Acquire));
}
