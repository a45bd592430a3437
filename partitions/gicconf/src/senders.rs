//! SGIs from two senders (GICv2): a GICv2 keeps an SGI pending per sending CPU
//! (`GICD_SPENDSGIR`/`CPENDSGIR`, a bit per sender) and reports the sender in `GICC_IAR`. CPU 1
//! (started with PSCI `CPU_ON`, MMU off, running the few instructions below) sends SGIs to CPU 0
//! through `GICD_SGIR` when CPU 0 asks; CPU 0 reads and clears their pending state per sender
//! and takes them. A GICv3 has no per-sender state (and the comparison on it runs one CPU).

use tantalum_guest::hypercall::{hvc, psci};
use tantalum_guest::irq;

use crate::{cpu, prepare, report, COMES_WITHIN, WATCH};

/// INTIDs from here on are special: nothing to acknowledge.
const SPURIOUS: u32 = 1020;

/// The SGI the case uses.
const SGI: u32 = 8;

// CPU 1: x0 = the shared words (below). Says it is ready, then forever: waits for a command
// word (a GICD_SGIR value + 1), writes it to GICD_SGIR, clears the command. With its MMU off
// its accesses are uncached: CPU 0 cleans and invalidates the words around its own.
core::arch::global_asm!(
    ".global gicconf_second",
    "gicconf_second:",
    "mov x3, x0",
    "mov x2, #1",
    "str x2, [x3]",
    "dsb sy",
    "1: ldr x4, [x3, #8]",
    "cbz x4, 1b",
    "ldr x5, [x3, #16]",
    "sub x4, x4, #1",
    "str w4, [x5]",
    "dsb sy",
    "str xzr, [x3, #8]",
    "dsb sy",
    "b 1b",
);

extern "C" {
    fn gicconf_second();
}

/// Words CPU 0 and CPU 1 share: ready, command, the address of `GICD_SGIR`.
#[repr(C, align(64))]
struct Shared([u64; 3]);

static mut SHARED: Shared = Shared([0; 3]);

fn word(i: usize) -> *mut u64 {
    // SAFETY: only a pointer is formed; accesses go through `get`/`put`.
    unsafe { core::ptr::addr_of_mut!(SHARED.0[i]) }
}

/// Reads a shared word that CPU 1 may have written with its MMU off (uncached).
fn get(i: usize) -> u64 {
    let p = word(i);
    // SAFETY: cache maintenance of a word of this image's own memory, then a read of it.
    unsafe {
        core::arch::asm!("dc civac, {}", "dsb sy", in(reg) p, options(nostack));
        core::ptr::read_volatile(p)
    }
}

/// Writes a shared word, cleaned to memory where CPU 1 reads it.
fn put(i: usize, value: u64) {
    let p = word(i);
    // SAFETY: a write of a word of this image's own memory, then cache maintenance of it.
    unsafe {
        core::ptr::write_volatile(p, value);
        core::arch::asm!("dc civac, {}", "dsb sy", in(reg) p, options(nostack));
    }
}

/// Waits up to `us` for `done`.
fn until(us: u64, done: impl Fn() -> bool) -> bool {
    let end = cpu::deadline(us);
    while cpu::before(end) {
        if done() {
            return true;
        }
    }
    done()
}

/// Asks CPU 1 to send the SGI to CPU 0 (`GICD_SGIR` target list: CPU interface 0) and waits
/// until it has.
fn second_sends() -> bool {
    let sgir = (1u64 << 16) | u64::from(SGI);
    put(1, sgir + 1);
    until(COMES_WITHIN, || get(1) == 0)
}

pub fn two_senders() {
    let name = "SGI 8 from CPUs 0, 1";
    let Some(sgir) = irq::sgir_address() else {
        report(name, format_args!("not kept per sender on a GICv3"));
        return;
    };
    put(2, sgir as u64);
    let entry = gicconf_second as *const () as usize as u64;
    let status = hvc(psci::CPU_ON_64, [1, entry, word(0) as u64, 0, 0, 0])[0] as i64;
    if status != 0 || !until(COMES_WITHIN, || get(0) == 1) {
        report(name, format_args!("CPU 1 did not start ({status})"));
        return;
    }
    prepare(SGI);
    irq::send_sgi_to_self(SGI);
    let mut sent = second_sends();
    cpu::spin_us(WATCH);
    let both = irq::sgi_senders(SGI);
    // Each sender's again: still one pending interrupt per sender.
    irq::send_sgi_to_self(SGI);
    sent &= second_sends();
    cpu::spin_us(WATCH);
    let both_again = irq::sgi_senders(SGI);
    // CPU 1's withdrawn, CPU 0's stays; then CPU 1's again.
    irq::clear_sgi_from(SGI, 0b10);
    let cleared = irq::sgi_senders(SGI);
    sent &= second_sends();
    cpu::spin_us(WATCH);
    let restored = irq::sgi_senders(SGI);
    // One taken per sender, with the sender in GICC_IAR bits 12:10, ended with that value.
    // Sorted: the order between equal priorities is the GIC's choice.
    let (mut taken, mut n) = ([(0u32, 0u64); 4], 0);
    let end = cpu::deadline(WATCH);
    while cpu::before(end) {
        let iar = irq::acknowledge();
        let intid = (iar & 0x3ff) as u32;
        if intid >= SPURIOUS {
            continue;
        }
        irq::end(iar);
        if let Some(slot) = taken.get_mut(n) {
            *slot = (intid, (iar >> 10) & 7);
            n += 1;
        }
    }
    let taken = &mut taken[..n];
    taken.sort_unstable();
    let left = irq::sgi_senders(SGI);
    report(
        name,
        format_args!(
            "sent {sent}, SPENDSGIR {both:#b}, again {both_again:#b}, CPENDSGIR(1) {cleared:#b}, CPU 1 again {restored:#b}; (INTID, CPUID) taken {taken:?}, left {left:#b}"
        ),
    );
}
