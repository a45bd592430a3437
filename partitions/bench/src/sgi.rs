//! An SGI between two vCPUs of this partition (`role=sgi`, two CPUs): vCPU 1 sleeps in WFI,
//! vCPU 0 sends it SGI 1 (a trapped `ICC_SGI1R_EL1` write); vCPU 1 measures from its WFI to its
//! handler (machine-wide: that includes vCPU 0's trap up to the point where the hypervisor kicks
//! vCPU 1's CPU, which QEMU then runs), vCPU 0 the trap as it sees it.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use tantalum_guest::hypercall::{hvc, psci};
use tantalum_guest::{irq, println};

use crate::around;
use crate::measure::{self, report, Delivery, Sample, SAMPLES};

const SGI: u32 = 1;
/// GICv3: bytes from one redistributor to the next, and the SGI frame inside one.
const GICR_STRIDE: usize = 0x2_0000;
const GICR_SGI_FRAME: usize = 0x1_0000;

/// What vCPU 1 needs to run Rust code: vCPU 0's EL1 set-up (same stage-1 tables, same vectors)
/// and a stack of its own. Read by `bench_secondary` with its MMU still off.
#[repr(C, align(64))]
struct SecondaryBoot {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    sctlr: u64,
    vbar: u64,
    stack_top: u64,
    cpacr: u64,
}

static mut BOOT: SecondaryBoot =
    SecondaryBoot { mair: 0, tcr: 0, ttbr0: 0, sctlr: 0, vbar: 0, stack_top: 0, cpacr: 0 };

#[repr(C, align(16))]
struct Stack([u8; 16 * 1024]);
static mut STACK: Stack = Stack([0; 16 * 1024]);

global_asm!(
    ".global bench_secondary",
    "bench_secondary:",
    "ldr x1, [x0, #0]",
    "msr mair_el1, x1",
    "ldr x1, [x0, #8]",
    "msr tcr_el1, x1",
    "ldr x1, [x0, #16]",
    "msr ttbr0_el1, x1",
    "ldr x1, [x0, #32]",
    "msr vbar_el1, x1",
    "ldr x1, [x0, #48]",
    "msr cpacr_el1, x1",
    "ldr x1, [x0, #40]",
    "mov sp, x1",
    "isb",
    "tlbi vmalle1",
    "dsb nsh",
    "isb",
    "ldr x1, [x0, #24]",
    "msr sctlr_el1, x1",
    "isb",
    "bl bench_secondary_main",
    "1: wfi",
    "b 1b",
);

unsafe extern "C" {
    fn bench_secondary();
}

/// Round vCPU 1 is ready for (it is about to sleep), and the last round it finished.
static ARMED: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);
/// vCPU 1's last delivery.
static TOOK: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
static DELIVERY: Delivery = Delivery::new();

fn on_sgi(_intid: u32) {
    DELIVERY.handler_reached();
}

#[unsafe(no_mangle)]
extern "C" fn bench_secondary_main() -> ! {
    measure::count_el2_on_counter_1();
    // SAFETY: this vCPU's own (virtual) CPU interface: system registers on, every priority,
    // group 1 enabled.
    unsafe {
        asm!("msr icc_sre_el1, {one}", "isb", "msr icc_pmr_el1, {pmr}", "msr icc_igrpen1_el1, {one}", "isb",
            one = in(reg) 1u64, pmr = in(reg) 0xffu64, options(nostack))
    };
    let mut round = 0;
    loop {
        round += 1;
        let took = DELIVERY.deliver(|| ARMED.store(round, Ordering::Release));
        TOOK[0].store(took.all, Ordering::Relaxed);
        TOOK[1].store(took.el2, Ordering::Relaxed);
        DONE.store(round, Ordering::Release);
    }
}

fn write32(addr: usize, value: u32) {
    // SAFETY: a register of this partition's own virtual GIC.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// Starts vCPU 1 with its redistributor awake and SGI 1 enabled in group 1 there.
fn start_vcpu1() -> bool {
    irq::init();
    irq::set_handler(SGI, on_sgi);
    let (_, gicr, v2) = irq::frames();
    if v2 {
        println!("role=sgi needs a GICv3");
        return false;
    }
    let r1 = gicr + GICR_STRIDE;
    write32(r1 + 0x14, 0); // GICR_WAKER: awake
    write32(r1 + GICR_SGI_FRAME + 0x0080, 1 << SGI); // IGROUPR0: group 1
    write32(r1 + GICR_SGI_FRAME + 0x0100, 1 << SGI); // ISENABLER0
    let read = |v: &mut u64, f: fn() -> u64| *v = f();
    // SAFETY: only vCPU 0 runs; BOOT is read by vCPU 1 after CPU_ON below.
    let boot = unsafe { &mut *core::ptr::addr_of_mut!(BOOT) };
    macro_rules! sysreg {
        ($name:literal) => {
            || {
                let v: u64;
                // SAFETY: reading an EL1 system register has no side effect.
                unsafe { asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
                v
            }
        };
    }
    read(&mut boot.mair, sysreg!("mair_el1"));
    read(&mut boot.tcr, sysreg!("tcr_el1"));
    read(&mut boot.ttbr0, sysreg!("ttbr0_el1"));
    read(&mut boot.sctlr, sysreg!("sctlr_el1"));
    read(&mut boot.vbar, sysreg!("vbar_el1"));
    read(&mut boot.cpacr, sysreg!("cpacr_el1"));
    boot.stack_top = core::ptr::addr_of!(STACK) as u64 + core::mem::size_of::<Stack>() as u64;
    // vCPU 1 reads BOOT with its caches off: clean it to the point of coherency.
    // SAFETY: cache maintenance of our own static.
    unsafe { asm!("dc cvac, {}", "dsb sy", in(reg) core::ptr::addr_of!(BOOT), options(nostack)) };
    let status = hvc(
        psci::CPU_ON_64,
        [1, bench_secondary as *const () as u64, core::ptr::addr_of!(BOOT) as u64, 0, 0, 0],
    )[0];
    if status != 0 {
        println!("CPU_ON vCPU 1: {}", status as i64);
        return false;
    }
    true
}

pub fn run() {
    if !start_vcpu1() {
        return;
    }
    // SGI 1 to vCPU 1 (target list bit 1, affinity 0.0.0).
    let sgi1r = (u64::from(SGI) << 24) | (1 << 1);
    let (mut best, mut worst) = ([u64::MAX; 2], [0u64; 2]);
    let (mut sender, mut sender_max) = (Sample { all: u64::MAX, el2: u64::MAX }, Sample::default());
    let nop = measure::sample(|| around!("nop // {v}", v = in(reg) sgi1r));
    for round in 1..=(SAMPLES as u64 + 4) {
        while ARMED.load(Ordering::Acquire) != round {
            measure::relax();
        }
        let s = around!("msr icc_sgi1r_el1, {v}", v = in(reg) sgi1r);
        while DONE.load(Ordering::Acquire) != round {
            measure::relax();
        }
        if round <= 4 {
            continue; // warming up
        }
        for (i, took) in TOOK.iter().enumerate() {
            let took = took.load(Ordering::Relaxed);
            best[i] = best[i].min(took);
            worst[i] = worst[i].max(took);
        }
        sender = Sample { all: sender.all.min(s.all), el2: sender.el2.min(s.el2) };
        sender_max = Sample { all: sender_max.all.max(s.all), el2: sender_max.el2.max(s.el2) };
    }
    report("sgi_wfi_to_handler", best[0], worst[0]);
    report("sgi_receiver_el2", best[1], worst[1]);
    report("sgi_sender_trap", sender.all - nop.min.all, sender_max.all - nop.min.all);
}
