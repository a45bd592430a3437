//! `role=ipi` and `role=ring` (x86_64): IPIs between a partition's vCPUs and a doorbell routed to
//! its vCPU 1 (docs/x86.md, "Doorbells and IPIs").
//!
//! `ipi` (two vCPUs, its channel 0 to a `ring` partition): vCPU 0 routes the channel's doorbell
//! to vCPU 1 (`irq::set_target`) and starts vCPU 1 (CPU_ON); each sends the other an IPI
//! (`irq::send_ipi`) and sleeps in `sti; hlt` until the other's arrives; then vCPU 0 tries IPIs
//! and routes the partition may not have (a vCPU it lacks, an exception vector, an interrupt
//! that is not its doorbell): each refused, nothing delivered. Then it asks `ring` over the
//! channel to ring, and the doorbell wakes vCPU 1, never vCPU 0. Every handler checks, by its
//! stack, on which vCPU it runs. `ring` answers the request with a message (its doorbell) and
//! reports any IPI vector reaching it (none may: another partition's IPIs are not its).

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tantalum_guest::hypercall::{hvc, psci, Status};
use tantalum_guest::time::{frequency, now};
use tantalum_guest::{irq, println, wait_ns, Channel};

/// vCPU 0 to vCPU 1.
const TO_VCPU1: u32 = 0x40;
/// vCPU 1 to vCPU 0.
const TO_VCPU0: u32 = 0x41;

#[repr(C, align(16))]
struct Stack([u8; 16 * 1024]);
static mut STACK: Stack = Stack([0; 16 * 1024]);

/// Interrupts taken, by what and where.
static TO1_ON_1: AtomicU32 = AtomicU32::new(0);
static TO0_ON_0: AtomicU32 = AtomicU32::new(0);
static BELL_ON_1: AtomicU32 = AtomicU32::new(0);
/// Anything taken on the wrong vCPU.
static MISPLACED: AtomicU32 = AtomicU32::new(0);
static VCPU1_READY: AtomicBool = AtomicBool::new(false);

// vCPU 1's entry: long mode on the boot area's page tables, rdi = its stack top.
global_asm!(
    ".global hello_ipi_secondary",
    "hello_ipi_secondary:",
    "mov rsp, rdi",
    "call hello_ipi_vcpu1",
    "2: hlt",
    "jmp 2b"
);

unsafe extern "C" {
    fn hello_ipi_secondary();
}

/// Whether the code runs on vCPU 1 (its stack is [`STACK`]).
fn on_vcpu1() -> bool {
    let sp: u64;
    // SAFETY: reads the stack pointer.
    unsafe { asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
    let base = core::ptr::addr_of!(STACK) as u64;
    (base..base + core::mem::size_of::<Stack>() as u64).contains(&sp)
}

fn count(on_vcpu1_expected: bool, counter: &AtomicU32) {
    if on_vcpu1() == on_vcpu1_expected {
        counter.fetch_add(1, Ordering::AcqRel);
    } else {
        MISPLACED.fetch_add(1, Ordering::AcqRel);
    }
}

fn to_vcpu1(_: u32) {
    count(true, &TO1_ON_1);
}

fn to_vcpu0(_: u32) {
    count(false, &TO0_ON_0);
}

fn doorbell(_: u32) {
    count(true, &BELL_ON_1);
}

/// Sleeps (`sti; hlt`) until `counter` reaches `n`, at most two seconds (the vCPU's timer ends
/// the sleep, so a lost interrupt shows as a line, not a hang).
fn sleep_until(counter: &AtomicU32, n: u32) {
    let deadline = now().ticks() + 2 * frequency();
    irq::set_timer_deadline(deadline);
    while counter.load(Ordering::Acquire) < n && now().ticks() < deadline {
        irq::wait_unless(|| counter.load(Ordering::Acquire) >= n);
    }
    irq::set_timer_deadline(0);
}

#[unsafe(no_mangle)]
extern "C" fn hello_ipi_vcpu1() {
    irq::init();
    irq::enable();
    VCPU1_READY.store(true, Ordering::Release);
    sleep_until(&TO1_ON_1, 1);
    let took = TO1_ON_1.load(Ordering::Acquire) > 0;
    println!(
        "ipi: vCPU 1 took IPI {TO_VCPU1:#x} from vCPU 0: {took} (on vCPU 1: {})",
        MISPLACED.load(Ordering::Acquire) == 0
    );
    println!("ipi: vCPU 1 sends IPI {TO_VCPU0:#x} to vCPU 0: {:?}", irq::send_ipi(0b01, TO_VCPU0));
    sleep_until(&BELL_ON_1, 1);
    let took = BELL_ON_1.load(Ordering::Acquire) > 0;
    println!("ipi: vCPU 1 took the doorbell: {took} (on vCPU 1: {})", MISPLACED.load(Ordering::Acquire) == 0);
    loop {
        irq::wait_unless(|| false);
    }
}

/// Waits up to two seconds for `done`.
fn until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        wait_ns(10_000_000);
    }
    done()
}

/// `role=ipi`: vCPU 0's part (see the module documentation).
pub fn run() {
    let mut ch = match Channel::open(0) {
        Ok(ch) => ch,
        Err(e) => return println!("ipi: no channel: {e:?}"),
    };
    irq::set_handler(TO_VCPU1, to_vcpu1);
    irq::set_handler(TO_VCPU0, to_vcpu0);
    let bell = ch.doorbell_intid();
    irq::set_handler(bell, doorbell);
    println!("ipi: doorbell {bell} to vCPU 1: {:?}", irq::set_target(bell, 1));
    let stack_top = core::ptr::addr_of!(STACK) as u64 + core::mem::size_of::<Stack>() as u64;
    let on = hvc(psci::CPU_ON_64, [1, hello_ipi_secondary as *const () as u64, stack_top, 0, 0, 0])[0] as i64;
    let ready = until(|| VCPU1_READY.load(Ordering::Acquire));
    println!("ipi: CPU_ON vCPU 1: {on}, ready: {ready}");
    println!("ipi: vCPU 0 sends IPI {TO_VCPU1:#x} to vCPU 1: {:?}", irq::send_ipi(0b10, TO_VCPU1));
    sleep_until(&TO0_ON_0, 1);
    let took = TO0_ON_0.load(Ordering::Acquire) > 0;
    println!(
        "ipi: vCPU 0 took IPI {TO_VCPU0:#x} from vCPU 1: {took} (on vCPU 0: {})",
        MISPLACED.load(Ordering::Acquire) == 0
    );

    // Hostile: each refused, none delivered anywhere.
    let refused = |r: Result<(), Status>| r == Err(Status::InvalidParameters);
    let tries = [
        ("to vCPU 2 (it has two)", irq::send_ipi(0b100, TO_VCPU1)),
        ("to vCPUs 1 and 63", irq::send_ipi(1 << 63 | 0b10, TO_VCPU1)),
        ("to every vCPU number", irq::send_ipi(u64::MAX, TO_VCPU1)),
        ("to nobody", irq::send_ipi(0, TO_VCPU1)),
        ("of exception vector 14 (#PF)", irq::send_ipi(0b10, 14)),
        ("of vector 256", irq::send_ipi(0b10, 256)),
        ("doorbell to vCPU 2", irq::set_target(bell, 2)),
        ("another channel's doorbell", irq::set_target(bell + 1, 1)),
        ("IPI vector as a doorbell", irq::set_target(TO_VCPU1, 1)),
    ];
    for (what, result) in tries {
        println!("ipi: refused {what}: {}", refused(result));
    }
    wait_ns(50_000_000);
    println!(
        "ipi: after the refused ones, vCPU 1 took IPIs: {}, misplaced: {}",
        TO1_ON_1.load(Ordering::Acquire),
        MISPLACED.load(Ordering::Acquire)
    );

    // The doorbell: `ring` rings it on request; vCPU 1 takes it, vCPU 0 (awake here) does not.
    if let Err(e) = ch.send(b"ring") {
        return println!("ipi: send: {e:?}");
    }
    let rang = until(|| BELL_ON_1.load(Ordering::Acquire) > 0);
    let mut buf = [0u8; 16];
    let answer = until(|| ch.try_recv(&mut buf).is_ok());
    println!(
        "ipi: doorbell on vCPU 1: {rang}; ring answered: {answer}; misplaced: {}",
        MISPLACED.load(Ordering::Acquire)
    );
}

fn breach(vector: u32) {
    println!("BREACH: IPI vector {vector:#x} reached another partition");
}

/// `role=ring`: rings `ipi`'s doorbell when asked (see the module documentation), after
/// `role=self-ipi`'s checks.
pub fn ring() {
    crate::self_ipi::run();
    let mut ch = match Channel::open(0) {
        Ok(ch) => ch,
        Err(e) => return println!("ring: no channel: {e:?}"),
    };
    irq::set_handler(TO_VCPU1, breach);
    irq::set_handler(TO_VCPU0, breach);
    let mut buf = [0u8; 16];
    match ch.recv(&mut buf) {
        Ok(n) => println!("ring: asked ({}); ringing", core::str::from_utf8(&buf[..n]).unwrap_or("?")),
        Err(e) => return println!("ring: recv: {e:?}"),
    }
    if let Err(e) = ch.send(b"rung") {
        println!("ring: send: {e:?}");
    }
}
