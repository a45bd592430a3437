//! `role=self-ipi`, on both architectures with the same code: the SDK's `irq::send_ipi`
//! (`HYP_SEND_IPI`) interrupts the calling vCPU itself, and the calls a one-vCPU partition may
//! not make are refused: an IPI to a vCPU it lacks, an interrupt number that is not an IPI on
//! the architecture. (On x86 `role=ring` runs it first: docs/x86.md, "Channels, doorbells and
//! IPIs".)

use core::sync::atomic::{AtomicU32, Ordering};

use tantalum_guest::{irq, println, wait_ns};

/// The IPI sent: an SGI on aarch64, an interrupt vector on x86_64.
#[cfg(target_arch = "aarch64")]
const IPI: u32 = 3;
#[cfg(target_arch = "x86_64")]
const IPI: u32 = 0x42;
/// A number that is not an IPI: a PPI on aarch64, the page-fault exception's vector on x86_64.
#[cfg(target_arch = "aarch64")]
const NOT_IPI: u32 = 16;
#[cfg(target_arch = "x86_64")]
const NOT_IPI: u32 = 14;

static TAKEN: AtomicU32 = AtomicU32::new(0);

fn took(_: u32) {
    TAKEN.fetch_add(1, Ordering::AcqRel);
}

pub fn run() {
    irq::init();
    irq::set_handler(IPI, took);
    irq::enable();
    let sent = irq::send_ipi(0b1, IPI);
    for _ in 0..100 {
        if TAKEN.load(Ordering::Acquire) > 0 {
            break;
        }
        wait_ns(10_000_000);
    }
    println!("self-ipi: IPI {IPI} to itself: {sent:?}, taken: {}", TAKEN.load(Ordering::Acquire));
    println!("self-ipi: to vCPU 1 (it has one): {:?}", irq::send_ipi(0b10, IPI));
    println!("self-ipi: of {NOT_IPI}, not an IPI here: {:?}", irq::send_ipi(0b1, NOT_IPI));
    wait_ns(20_000_000);
    println!("self-ipi: taken after the refused ones: {}", TAKEN.load(Ordering::Acquire));
}
