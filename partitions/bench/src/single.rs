//! The figures one vCPU measures on its own: boot, hypercalls, trapped GIC and virtual UART
//! accesses, and the delivery of its virtual timer's and its passed-through RTC's interrupts.

use core::sync::atomic::{AtomicU64, Ordering};

use tantalum_guest::hypercall::{psci, HYP_VERSION, VENDOR_HYP_BASE};
use tantalum_guest::{boot_instructions, irq};

use crate::around;
use crate::measure::{self, report, report_trap, sample, Delivery, Stats};

/// A vendor-hypervisor function Tantalum does not implement: answered NOT_SUPPORTED at once.
const UNKNOWN_VENDOR_CALL: u64 = VENDOR_HYP_BASE + 0xff;

/// `hvc #0` with `function`, the registers set up as the SDK's `hvc` does.
macro_rules! hvc_around {
    ($op:literal, $function:expr) => {
        around!($op, inout("x0") $function => _, inout("x1") 0u64 => _, inout("x2") 0u64 => _,
            inout("x3") 0u64 => _, inout("x4") 0u64 => _, in("x5") 0u64, in("x6") 0u64)
    };
}

/// A 32-bit load from `addr` (`$op` is the load or a `nop`).
macro_rules! load_around {
    ($op:literal, $addr:expr) => {
        around!($op, a = in(reg) $addr, v = out(reg) _)
    };
}

fn hypercalls() {
    let nop = sample(|| hvc_around!("nop", HYP_VERSION));
    let calls: [(&str, u64); 3] = [
        ("hvc_hyp_version", HYP_VERSION),
        ("hvc_psci_version", psci::VERSION),
        ("hvc_vendor_unknown", UNKNOWN_VENDOR_CALL),
    ];
    for (name, function) in calls {
        report_trap(name, sample(|| hvc_around!("hvc #0", function)), nop);
    }
}

/// A trapped 32-bit read of `addr`, as `name`.
fn read(name: &str, addr: usize, nop: Stats) {
    report_trap(name, sample(|| load_around!("ldr {v:w}, [{a}]", addr)), nop);
}

fn gic_registers() {
    let (gicd, gicr, v2) = irq::frames();
    let nop = sample(|| load_around!("nop // {a} {v:w}", gicd));
    // GICD_TYPER: a constant; the others read state.
    read("gicd_typer_read", gicd + 0x0004, nop);
    read("gicd_ctlr_read", gicd, nop);
    read("gicd_isenabler1_read", gicd + 0x0104, nop);
    read("gicd_ipriorityr8_read", gicd + 0x0420, nop);
    // Pending state: the virtual distributor's and the list registers'.
    read("gicd_ispendr1_read", gicd + 0x0204, nop);
    if !v2 {
        read("gicr_typer_read", gicr + 0x0008, nop);
        read("gicr_isenabler0_read", gicr + 0x1_0000 + 0x0100, nop);
    }
}

/// The virtual PL011's address, from the guest DT (none without `virtual-uart`).
fn virtual_uart() -> Option<usize> {
    let fdt = tantalum_guest::dt::get()?;
    let node = fdt.all_nodes().find(|n| n.compatible().is_some_and(|c| c.all().any(|s| s == "arm,pl011")))?;
    let reg = node.property("reg")?;
    Some(tantalum_guest::dt::numbers(reg.value, 2).next()? as usize)
}

fn uart() {
    let Some(base) = virtual_uart() else { return };
    let nop = sample(|| around!("nop // {a} {v:w}", a = in(reg) base, v = in(reg) u64::from(b'.')));
    // UARTDR: one byte out (a '.', of a line the '\r' below throws away: the console's line
    // buffer restarts at the next character after a carriage return).
    let write = sample(|| around!("str {v:w}, [{a}]", a = in(reg) base, v = in(reg) u64::from(b'.')));
    // SAFETY: UARTDR of this partition's own virtual UART (a plain `str`: the hypervisor
    // emulates single loads and stores without writeback only).
    unsafe {
        core::arch::asm!("str {v:w}, [{a}]", a = in(reg) base, v = in(reg) u32::from(b'\r'), options(nostack))
    };
    report_trap("vuart_dr_write", write, nop);
    // UARTFR, as a driver polls it before each byte.
    read("vuart_fr_read", base + 0x18, nop);
}

/// The EL1 virtual timer's PPI.
const VTIMER_INTID: u32 = 27;
static VTIMER: Delivery = Delivery::new();
/// CNTVCT_EL0 in the handler.
static VTIMER_COUNT: AtomicU64 = AtomicU64::new(0);

fn cntvct() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effect.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

fn on_vtimer(_intid: u32) {
    VTIMER.handler_reached();
    VTIMER_COUNT.store(cntvct(), Ordering::Relaxed);
    // SAFETY: this vCPU's own virtual timer: disabled, its interrupt line drops.
    unsafe { core::arch::asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack)) };
}

/// The virtual timer fires while this vCPU sleeps: instructions from the WFI to the handler (all
/// and the hypervisor's), and the counter ticks from the compare value to the handler. On a busy
/// system only the hypervisor's part means anything: while this CPU sleeps QEMU runs the others
/// for a whole time slice, which the machine-wide count and the counter's ticks then include.
fn vtimer(busy: bool) {
    irq::set_handler(VTIMER_INTID, on_vtimer);
    let mut ticks = (u64::MAX, 0);
    let stats = sample(|| {
        let mut cval = 0;
        let took = VTIMER.deliver(|| {
            // Far enough ahead that the vCPU sleeps first: 64 ticks are 1,024 instructions at
            // QEMU virt's 62.5 MHz under -icount shift=0.
            cval = cntvct() + 64;
            // SAFETY: this vCPU's own virtual timer, enabled with its interrupt unmasked.
            unsafe {
                core::arch::asm!("msr cntv_cval_el0, {}", "msr cntv_ctl_el0, {}", "isb", in(reg) cval,
                    in(reg) 1u64, options(nomem, nostack))
            };
        });
        let late = VTIMER_COUNT.load(Ordering::Relaxed).wrapping_sub(cval);
        ticks = (ticks.0.min(late), ticks.1.max(late));
        took
    });
    report("vtimer_irq_el2", stats.min.el2, stats.max.el2);
    if !busy {
        report("vtimer_irq_wfi_to_handler", stats.min.all, stats.max.all);
        report("vtimer_irq_ticks", ticks.0, ticks.1);
    }
}

/// The PL031 RTC passed through to this partition (QEMU virt), and its interrupt (SPI 2).
const RTC: usize = 0x0901_0000;
const RTC_INTID: u32 = 34;
static RTC_ALARM: Delivery = Delivery::new();

fn rtc(offset: usize) -> *mut u32 {
    (RTC + offset) as *mut u32
}

fn on_rtc_alarm(_intid: u32) {
    RTC_ALARM.handler_reached();
    // SAFETY: RTCICR of the passed-through RTC: clears the alarm interrupt.
    unsafe { rtc(0x1c).write_volatile(1) };
}

/// The RTC's alarm fires while this vCPU sleeps: a passed-through SPI's delivery. Fewer samples
/// than the others: each waits for the RTC's next second.
fn device_interrupt() {
    irq::set_handler(RTC_INTID, on_rtc_alarm);
    let mut best: Option<measure::Sample> = None;
    let mut worst = measure::Sample::default();
    for _ in 0..3 {
        let took = RTC_ALARM.deliver(|| {
            // SAFETY: PL031 registers of the RTC passed through to this partition: data (0x0),
            // match (0x4), interrupt mask (0x10).
            unsafe {
                let now = rtc(0).read_volatile();
                rtc(0x4).write_volatile(now.wrapping_add(1));
                rtc(0x10).write_volatile(1);
            }
        });
        best = Some(
            best.map_or(took, |b| measure::Sample { all: b.all.min(took.all), el2: b.el2.min(took.el2) }),
        );
        worst = measure::Sample { all: worst.all.max(took.all), el2: worst.el2.max(took.el2) };
    }
    if let Some(b) = best {
        report("device_irq_el2", b.el2, worst.el2);
        report("device_irq_wfi_to_handler", b.all, worst.all);
    }
}

/// Every single-vCPU figure; `with_rtc` when the RTC is passed through; `busy` beside busy
/// partitions (no boot figure: they load at the same time).
pub fn run(with_rtc: bool, busy: bool) {
    if !busy {
        report("boot", boot_instructions(), boot_instructions());
    }
    irq::init();
    irq::enable();
    hypercalls();
    gic_registers();
    uart();
    vtimer(busy);
    if with_rtc {
        device_interrupt();
    }
}
