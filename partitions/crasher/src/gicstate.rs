//! `gicstate`: the virtual GIC's pending and active registers see interrupts already in list
//! registers (issue 13 item 1), as a GIC does: inside its handler an SGI reads active in
//! `GICR_ISACTIVER0`; an SGI made pending while IRQs are masked (the hypervisor loads it into a
//! list register at once) reads pending, and `GICR_ICPENDR0` cancels it: it is never taken.
//!
//! `gicremote` (two vCPUs, two channels for two SPIs): the same for SPIs in the *other* vCPU's
//! list registers (see [`run_across`]).

use core::sync::atomic::{AtomicU64, Ordering};

use tantalum_guest::{irq, println};

/// The SGI whose handler checks its own active state.
const HANDLED: u32 = 4;
/// The SGI that is cancelled before it is taken.
const CANCELLED: u32 = 5;

/// Bit n: SGI n was taken; bit 8: SGI 4 read itself active in its handler.
static SEEN: AtomicU64 = AtomicU64::new(0);

fn on_sgi(intid: u32) {
    let active = if intid == HANDLED && irq::is_active(HANDLED) { 1 << 8 } else { 0 };
    SEEN.fetch_or((1 << intid) | active, Ordering::Relaxed);
}

fn masked() {
    // SAFETY: masking IRQs at this vCPU only delays its own handlers.
    unsafe { core::arch::asm!("msr daifset, #2", "isb", options(nomem, nostack)) };
}

fn wait_ms(ms: u64) {
    let until = tantalum_guest::time::now() + core::time::Duration::from_millis(ms);
    while tantalum_guest::time::now() < until {}
}

pub fn run() {
    irq::init();
    irq::set_handler(HANDLED, on_sgi);
    irq::set_handler(CANCELLED, on_sgi);
    masked();
    irq::set_pending(HANDLED);
    irq::enable();
    wait_ms(5);
    masked();
    irq::set_pending(CANCELLED);
    let pending = irq::is_pending(CANCELLED);
    irq::clear_pending(CANCELLED);
    let still = irq::is_pending(CANCELLED);
    irq::enable();
    wait_ms(5);
    let seen = SEEN.load(Ordering::Relaxed);
    let (taken, active, cancelled) =
        (seen & (1 << HANDLED) != 0, seen & (1 << 8) != 0, seen & (1 << CANCELLED) == 0);
    if taken && active && pending && !still && cancelled {
        println!(
            "list-register state: active in its handler, pending until ICPENDR cancelled it (never taken)"
        );
    } else {
        println!(
            "BREACH: list-register state: taken {taken}, active in handler {active}, pending {pending}, \
             after ICPENDR {still}, cancelled {cancelled}"
        );
    }
}

// vCPU 1 of `gicremote`, started with its MMU off and no stack; x0 = the `Shared` block, whose
// word 4 is the GICv2 CPU interface (0 on a GICv3: system registers). It turns its GIC CPU
// interface on, says it is ready, and waits in WFI with IRQs unmasked. Its IRQ vector counts the
// interrupt, records its INTID, and holds it active (no EOI) until `release` is set; then it
// ends it and returns.
core::arch::global_asm!(
    ".global gicremote_second",
    "gicremote_second:",
    "mov x3, x0",
    "ldr x9, [x3, #32]",
    "cbnz x9, 5f",
    "mov x2, #1",
    "msr icc_sre_el1, x2",
    "isb",
    "mov x2, #0xff",
    "msr icc_pmr_el1, x2",
    "mov x2, #1",
    "msr icc_igrpen1_el1, x2",
    "b 6f",
    "5: mov w2, #0xff",
    "str w2, [x9, #4]", // GICC_PMR
    "mov w2, #1",
    "str w2, [x9]", // GICC_CTLR: group 0 on
    "6: adr x2, gicremote_vectors",
    "msr vbar_el1, x2",
    "isb",
    "mov x2, #1",
    "str x2, [x3]",
    "dsb sy",
    "msr daifclr, #2",
    "1: wfi",
    "b 1b",
    ".balign 2048",
    "gicremote_vectors:",
    ".skip 0x280",
    "cbnz x9, 7f",
    "mrs x5, icc_iar1_el1",
    "b 8f",
    "7: ldr w5, [x9, #12]", // GICC_IAR
    "8: ldr x6, [x3, #8]",
    "add x6, x6, #1",
    "str x6, [x3, #8]",
    "str x5, [x3, #16]",
    "dsb sy",
    "2: ldr x7, [x3, #24]",
    "cbz x7, 2b",
    "cbnz x9, 9f",
    "msr icc_eoir1_el1, x5",
    "b 10f",
    "9: str w5, [x9, #16]", // GICC_EOIR
    "10: isb",
    "eret",
);

unsafe extern "C" {
    fn gicremote_second();
}

/// Words vCPU 1 (MMU off) and vCPU 0 share: ready, interrupts taken, last INTID, release, and
/// the GICv2 CPU interface's address (0 on a GICv3).
#[repr(C, align(64))]
struct Shared([u64; 5]);

static mut SHARED: Shared = Shared([0; 5]);

fn shared(i: usize) -> *mut u64 {
    // SAFETY: only a pointer is formed; accesses go through `get`/`put`.
    unsafe { core::ptr::addr_of_mut!(SHARED.0[i]) }
}

/// Reads a shared word; vCPU 1 writes it with its MMU off (uncached), so clean and invalidate
/// the cached copy first.
fn get(i: usize) -> u64 {
    let p = shared(i);
    // SAFETY: cache maintenance of a word of this partition's own memory, then a read of it.
    unsafe {
        core::arch::asm!("dc civac, {}", "dsb sy", in(reg) p, options(nostack));
        core::ptr::read_volatile(p)
    }
}

fn put(i: usize, value: u64) {
    let p = shared(i);
    // SAFETY: a write of a word of this partition's own memory, cleaned to where vCPU 1 reads.
    unsafe {
        core::ptr::write_volatile(p, value);
        core::arch::asm!("dc civac, {}", "dsb sy", in(reg) p, options(nostack));
    }
}

/// Waits up to `ms` for `done`.
fn until(ms: u64, done: impl Fn() -> bool) -> bool {
    let end = tantalum_guest::time::now() + core::time::Duration::from_millis(ms);
    while tantalum_guest::time::now() < end {
        if done() {
            return true;
        }
    }
    done()
}

/// Pending and active state of SPIs in vCPU 1's list registers, read and changed from vCPU 0:
/// SPI `held` is active there (vCPU 1 is in its handler), SPI `loaded` pending behind it (lower
/// priority: not taken). vCPU 0 must read both, cancel `loaded` with ICPENDR and end `held` with
/// ICACTIVER; once released, vCPU 1 must take nothing more.
pub fn run_across() {
    use tantalum_guest::hypercall::{hvc, psci};
    let (Ok(a), Ok(b)) = (tantalum_guest::Channel::open(0), tantalum_guest::Channel::open(1)) else {
        println!("BREACH: gicremote needs two channels");
        return;
    };
    let (held, loaded) = (a.doorbell_intid(), b.doorbell_intid());
    irq::set_priority(held, 0x80);
    irq::set_priority(loaded, 0xa0);
    irq::set_target(held, 1);
    irq::set_target(loaded, 1);
    put(4, irq::cpu_interface().unwrap_or(0) as u64);
    let status =
        hvc(psci::CPU_ON_64, [1, gicremote_second as *const () as usize as u64, shared(0) as u64, 0, 0, 0])
            [0];
    if status != 0 || !until(1000, || get(0) == 1) {
        println!("BREACH: vCPU 1 did not start ({status})");
        return;
    }
    irq::set_pending(held);
    if !until(1000, || get(1) == 1 && get(2) as u32 == held) {
        println!("BREACH: vCPU 1 did not take SPI {held}");
        return;
    }
    let active = irq::is_active(held);
    irq::set_pending(loaded);
    wait_ms(20); // vCPU 1's CPU loads it behind the one it handles
    let pending = irq::is_pending(loaded);
    irq::clear_pending(loaded);
    let cancelled = !irq::is_pending(loaded);
    irq::clear_active(held);
    let ended = !irq::is_active(held);
    put(3, 1);
    wait_ms(20);
    let taken = get(1);
    if active && pending && cancelled && ended && taken == 1 {
        println!(
            "another vCPU's list registers: active and pending seen, ICPENDR and ICACTIVER reached them, nothing more taken"
        );
    } else {
        println!(
            "BREACH: across vCPUs: active {active}, pending {pending}, cancelled {cancelled}, ended {ended}, taken {taken}"
        );
    }
    device_routed_to_vcpu_1();
}

/// The PL031 RTC passed through to `gicremote` (QEMU virt), and its interrupt (SPI 2).
const RTC: usize = 0x0901_0000;
const RTC_INTID: u32 = 34;

fn rtc(offset: usize) -> *mut u32 {
    (RTC + offset) as *mut u32
}

fn ignore(_intid: u32) {}

/// The guest routes its device's interrupt to vCPU 1 (`IROUTER`, GICv2 `ITARGETSR`): the RTC's
/// alarm must be taken there, the physical interrupt following the routing.
fn device_routed_to_vcpu_1() {
    irq::set_handler(RTC_INTID, ignore);
    irq::set_target(RTC_INTID, 1);
    let before = get(1);
    // SAFETY: PL031 registers of the RTC passed through to this partition: data (0x0), match
    // (0x4), interrupt mask (0x10).
    unsafe {
        let now = rtc(0).read_volatile();
        rtc(0x4).write_volatile(now.wrapping_add(1));
        rtc(0x10).write_volatile(1);
    }
    let took = until(3000, || get(1) > before && get(2) as u32 == RTC_INTID);
    // SAFETY: as above: mask the alarm, clear it (0x1c).
    unsafe {
        rtc(0x10).write_volatile(0);
        rtc(0x1c).write_volatile(1);
    }
    if took {
        println!("a passed-through device's interrupt routed to vCPU 1 was taken there");
    } else {
        println!(
            "BREACH: the RTC's alarm routed to vCPU 1 never reached it (taken {}, last {})",
            get(1),
            get(2)
        );
    }
}
