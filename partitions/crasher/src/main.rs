//! A partition that faults on purpose, for the fault-policy scenarios. Its behaviour follows its
//! name: `phoenix` faults, is restarted, resets itself through PSCI, and exits on its third
//! boot; `racer` (two vCPUs) races PSCI calls against its own restarts (see [`racer`]); `hog`
//! takes interrupts and never ends them (see [`hog`]); `ticker` makes its timer interrupt pending
//! by software just as the timer fires (see [`ticker`]); `debugger` uses its CPU's hardware
//! breakpoints, watchpoints and single step (see [`debugger`]); `bus` takes the external aborts
//! its `outside-memory` choice gives it (see [`bus_errors`]); `counter` takes PMU overflow
//! interrupts (see [`counter`]); `gicstate` and `gicremote` read loaded interrupts' state (see
//! [`gicstate`]);
//! any other name faults once at
//! once (its policy decides what happens next).
#![no_std]
#![no_main]

mod counter;
mod gicstate;

use core::ptr::{addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use tantalum_guest::hypercall::{hvc, psci};
use tantalum_guest::{partition_info, partition_name, println};

tantalum_guest::entry!(main);

static mut MARKER: u64 = 0;

/// Offsets into the partition's 4 MiB, beyond its image and below its guest DTB, that each boot
/// marks: the next boot must find them zero again (the hypervisor reloads into zeroed memory).
/// Two straddle the hypervisor's 2 MiB loading chunks.
const MARKED: [u64; 4] = [0x10_0000, 0x1f_fff8, 0x20_0000, 0x3e_0000];

/// Whether the marked words are zero; then marks them.
fn memory_untouched_then_mark() -> bool {
    let base = tantalum_guest::image_base();
    MARKED.iter().fold(true, |fresh, &offset| {
        let word = (base + offset) as *mut u64;
        // SAFETY: the offsets lie inside this partition's 4 MiB (configs/tests/faults.dts and
        // halt.dts), identity-mapped by the SDK, and nothing else uses them.
        let was = unsafe { read_volatile(word) };
        // SAFETY: as above.
        unsafe { write_volatile(word, 0x5a5a_5a5a_5a5a_5a5a) };
        fresh && was == 0
    })
}

fn fault() {
    // Guest-physical 0x1000 is outside every partition's memory: a stage-2 abort.
    // SAFETY: deliberately faulting; the hypervisor applies the partition's policy.
    unsafe { write_volatile(0x1000 as *mut u64, 1) };
    println!("BREACH: the fault returned");
}

fn main() {
    let name = partition_name();
    let boot = partition_info().restarts;
    // SAFETY: single-threaded; MARKER is only used here.
    let fresh = unsafe { read_volatile(addr_of_mut!(MARKER)) } == 0 && memory_untouched_then_mark();
    // SAFETY: as above.
    unsafe { write_volatile(addr_of_mut!(MARKER), 1) };
    println!("boot {boot}, memory {}", if fresh { "fresh" } else { "NOT fresh" });
    if name.as_str() == "racer" {
        racer(boot);
        return;
    }
    if name.as_str() == "hog" {
        hog();
        return;
    }
    if name.as_str() == "ticker" {
        ticker();
        return;
    }
    if name.as_str() == "debugger" {
        debugger();
        return;
    }
    if name.as_str() == "gicstate" {
        gicstate::run();
        return;
    }
    if name.as_str() == "gicremote" {
        gicstate::run_across();
        return;
    }
    if name.as_str() == "counter" {
        counter::run();
        return;
    }
    if name.as_str() == "bus" {
        bus_errors();
        return;
    }
    if name.as_str() != "phoenix" {
        println!("faulting now");
        fault();
        return;
    }
    match boot {
        0 => {
            println!("faulting (expect a restart)");
            fault();
        }
        1 => {
            println!("resetting through PSCI SYSTEM_RESET");
            hvc(psci::SYSTEM_RESET, [0; 6]);
            println!("BREACH: SYSTEM_RESET returned");
        }
        _ => println!("third boot: done"),
    }
}

// Code for the racer's second vCPU, which starts with its MMU off (guest-physical addresses,
// which the SDK's identity map makes the same as ours) and no stack:
// `racer_spin` writes x0 to the word at x0 forever, calling PSCI_VERSION between two writes
// (a call the hypervisor answers on its vectors' fast path: a restart must take this vCPU out of
// the guest from there too); `racer_mmio_spin` does the same with two trapped reads of the
// virtual GIC between its writes (GICD_TYPER, a constant, and GICD_ISENABLER1, both answered on
// the MMIO fast path), the distributor's address in the word at x0 first; `racer_sleep` writes
// x0 to the word at x0 once and sleeps in WFI for good (only an interrupt, the reset's kick,
// takes it out of the guest: the vectors' interrupt fast path must see the restart);
// `racer_notify_spin` does the same with HYP_CHANNEL_NOTIFY(0) between its writes (rung on the
// vectors' notify fast path); `racer_reset` asks for SYSTEM_RESET.
core::arch::global_asm!(
    ".global racer_spin",
    "racer_spin:",
    "mov x9, x0",
    "1: str x9, [x9]",
    "dsb sy",
    "movz x0, #0x0000",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b 1b",
    ".global racer_mmio_spin",
    "racer_mmio_spin:",
    "ldr x10, [x0]",
    "mov x9, x0",
    "1: str x9, [x9]",
    "dsb sy",
    "ldr w11, [x10, #4]",
    "ldr w11, [x10, #0x104]",
    "b 1b",
    ".global racer_notify_spin",
    "racer_notify_spin:",
    "mov x9, x0",
    "1: str x9, [x9]",
    "dsb sy",
    "movz x0, #0x0007",
    "movk x0, #0xC600, lsl #16",
    "mov x1, #0",
    "hvc #0",
    "b 1b",
    ".global racer_sleep",
    "racer_sleep:",
    "str x0, [x0]",
    "dsb sy",
    "2: wfi",
    "b 2b",
    ".global racer_reset",
    "racer_reset:",
    "movz x0, #0x0009",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b .",
);

unsafe extern "C" {
    fn racer_spin();
    fn racer_mmio_spin();
    fn racer_notify_spin();
    fn racer_sleep();
    fn racer_reset();
}

/// Starts vCPU 1 at `entry` with x0 = `context` (PSCI CPU_ON); returns PSCI's status.
fn cpu_on(entry: unsafe extern "C" fn(), context: u64) -> i64 {
    hvc(psci::CPU_ON_64, [1, entry as usize as u64, context, 0, 0, 0])[0] as i64
}

/// HYP_CHANNEL_NOTIFY on this partition's channel `channel`; returns the status.
fn notify(channel: u64) -> i64 {
    hvc(tantalum_guest::hypercall::HYP_CHANNEL_NOTIFY, [channel, 0, 0, 0, 0, 0])[0] as i64
}

fn word(offset: u64) -> *mut u64 {
    (tantalum_guest::image_base() + offset) as *mut u64
}

/// Races around restarts, one per boot:
/// 0. CPU_ON vCPU 1 (which would write a marked word forever), then at once SYSTEM_RESET: the
///    start must be withdrawn, not run in the reloaded memory.
/// 1. The marked words stay zero; a CPU_ON refused while another is pending must not change
///    the pending one's entry; then SYSTEM_RESET with vCPU 1 running (writing a marked word
///    between fast-path hypercalls: boot 2 finds the memory fresh only if it left the guest).
/// 2. The same with vCPU 1 spinning on trapped virtual GIC reads (the MMIO fast path).
/// 3. Both vCPUs ask for SYSTEM_RESET at once: exactly one restart follows.
/// 4. SYSTEM_RESET while vCPU 1 sleeps in WFI: it leaves the guest through its kick, an
///    interrupt exit, or the restart gives up ("cannot restart") and stops the partition.
/// 5. Its doorbell to `bystander` answers HYP_CHANNEL_NOTIFY (its only channel: 0; channel 1 is
///    refused); then SYSTEM_RESET with vCPU 1 spinning on doorbell notifies (the notify fast
///    path): boot 6 finds the memory fresh only if it left the guest.
/// 6. Done.
fn racer(boot: u64) {
    use tantalum_guest::wait_ns;
    let spun = MARKED[3];
    match boot {
        0 => {
            let status = cpu_on(racer_spin, word(spun) as u64);
            println!("CPU_ON vCPU 1: {status}; resetting at once");
            hvc(psci::SYSTEM_RESET, [0; 6]);
            println!("BREACH: SYSTEM_RESET returned");
        }
        1 => {
            wait_ns(50_000_000);
            // SAFETY: a word of this partition's own memory (see MARKED).
            let survivor = unsafe { read_volatile(word(spun)) } != 0x5a5a_5a5a_5a5a_5a5a;
            if survivor {
                println!("BREACH: a vCPU of the previous run wrote the reloaded memory");
            } else {
                println!("no vCPU of the previous run survived the reset");
            }
            // `a` is a marked word: were vCPU 1 still running after the reset below, boot 2
            // would find it written in the reloaded memory.
            let (a, b) = (word(MARKED[2]), word(0x30_1000));
            let first = cpu_on(racer_spin, a as u64);
            let second = cpu_on(racer_spin, b as u64);
            wait_ns(20_000_000);
            // SAFETY: words of this partition's own memory, beyond its image.
            let (wa, wb) = unsafe { (read_volatile(a), read_volatile(b)) };
            // The second is refused as ALREADY_ON (-4) or ON_PENDING (-5): whether vCPU 1's
            // CPU took the first start yet is a matter of timing.
            if first == 0 && (second == -4 || second == -5) && wa == a as u64 && wb == 0 {
                println!("a refused CPU_ON left the pending start alone");
            } else {
                println!("BREACH: CPU_ON {first} then {second}: words {wa:#x} {wb:#x}");
            }
            hvc(psci::SYSTEM_RESET, [0; 6]);
            println!("BREACH: SYSTEM_RESET returned");
        }
        2 => {
            tantalum_guest::irq::init();
            let (gicd, _, _) = tantalum_guest::irq::frames();
            let spun = word(MARKED[1]);
            // SAFETY: a word of this partition's own memory (see MARKED).
            unsafe { write_volatile(spun, gicd as u64) };
            let status = cpu_on(racer_mmio_spin, spun as u64);
            wait_ns(20_000_000);
            // SAFETY: as above.
            match unsafe { read_volatile(spun) } == spun as u64 {
                true => println!("vCPU 1 spins on trapped GIC reads; resetting"),
                false => println!("BREACH: vCPU 1 (CPU_ON {status}) does not spin"),
            }
            hvc(psci::SYSTEM_RESET, [0; 6]);
            println!("BREACH: SYSTEM_RESET returned");
        }
        3 => {
            // Said first: vCPU 1's reset may win the race and take this vCPU out of the guest.
            println!("both vCPUs reset at once");
            cpu_on(racer_reset, 0);
            while hvc(psci::AFFINITY_INFO_64, [1, 0, 0, 0, 0, 0])[0] != psci::AFFINITY_ON {}
            hvc(psci::SYSTEM_RESET, [0; 6]);
            // vCPU 1's reset may have won: this vCPU is then taken out of the guest instead.
        }
        4 => {
            let c = word(MARKED[1]);
            let status = cpu_on(racer_sleep, c as u64);
            let deadline = tantalum_guest::time::now() + core::time::Duration::from_millis(500);
            // SAFETY: a marked word of this partition's own memory (see MARKED).
            while unsafe { read_volatile(c) } != c as u64 && tantalum_guest::time::now() < deadline {}
            println!("CPU_ON vCPU 1: {status}; it sleeps in WFI; resetting");
            hvc(psci::SYSTEM_RESET, [0; 6]);
            println!("BREACH: SYSTEM_RESET returned");
        }
        5 => {
            let (ours, other) = (notify(0), notify(1));
            let spun = word(MARKED[3]);
            let status = cpu_on(racer_notify_spin, spun as u64);
            wait_ns(20_000_000);
            // SAFETY: a word of this partition's own memory (see MARKED).
            let spinning = unsafe { read_volatile(spun) } == spun as u64;
            match (ours, other, spinning) {
                (0, -2, true) => println!("vCPU 1 spins on doorbell notifies; resetting"),
                _ => {
                    println!("BREACH: notify {ours}, {other}; vCPU 1 (CPU_ON {status}) spinning: {spinning}")
                }
            }
            hvc(psci::SYSTEM_RESET, [0; 6]);
            println!("BREACH: SYSTEM_RESET returned");
        }
        _ => println!("racer done after {boot} restarts"),
    }
}

/// Loop rounds this vCPU gets through in 200 ms.
fn rounds_in_200_ms() -> u64 {
    let deadline = tantalum_guest::time::now() + core::time::Duration::from_millis(200);
    let mut rounds = 0u64;
    while tantalum_guest::time::now() < deadline {
        rounds += 1;
    }
    rounds
}

/// A guest that never ends its interrupts: with EOImode 1 it acknowledges eight SGIs to itself
/// and drops their priority, but never deactivates them, so every list register stays active
/// while more wait. The hypervisor must not then take maintenance interrupts over and over (a
/// livelock of this CPU): the vCPU must keep its speed (within what a loaded host takes away).
fn hog() {
    const GICR_SGI: usize = 0x080b_0000;
    tantalum_guest::irq::init();
    // SAFETY: this vCPU's own (virtual) GIC: EOImode 1 in its CPU interface, SGIs 0-7 group 1
    // and enabled in its redistributor. IRQs stay masked: nothing is handled, only acknowledged.
    unsafe {
        core::arch::asm!(
            "mrs {t}, icc_ctlr_el1",
            "orr {t}, {t}, #2",
            "msr icc_ctlr_el1, {t}",
            "isb",
            t = out(reg) _,
            options(nostack),
        );
        write_volatile((GICR_SGI + 0x80) as *mut u32, 0xff);
        write_volatile((GICR_SGI + 0x100) as *mut u32, 0xff);
    }
    let before = rounds_in_200_ms();
    for sgi in 0..8u64 {
        // SAFETY: an SGI to this vCPU (target list: vCPU 0), trapped and sent by the hypervisor.
        unsafe {
            core::arch::asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) (sgi << 24) | 1, options(nostack))
        };
    }
    let mut acked = 0;
    for _ in 0..8 {
        let iar: u64;
        // SAFETY: acknowledging, then dropping the priority of, this vCPU's own interrupt;
        // deliberately never deactivated (no ICC_DIR_EL1).
        unsafe {
            core::arch::asm!("mrs {iar}, icc_iar1_el1", "msr icc_eoir1_el1, {iar}", "isb", iar = out(reg) iar, options(nostack));
        }
        if iar & 0xff_ffff < 1020 {
            acked += 1;
        }
    }
    let after = rounds_in_200_ms();
    let kept = after * 100 / before.max(1);
    // A livelock leaves it next to nothing; a loaded host can take half of it in either window.
    if kept < 10 {
        println!("BREACH: with {acked} interrupts never ended, this vCPU ran at {kept} % of its speed");
    } else {
        println!(
            "{acked} interrupts acknowledged and never ended; this vCPU still runs ({kept} % of its speed)"
        );
    }
}

/// Virtual timer interrupts taken by [`ticker`].
static TICKS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

fn on_timer(_intid: u32) {
    TICKS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: turning this vCPU's own virtual timer off (its interrupt line drops).
    unsafe { core::arch::asm!("msr cntv_ctl_el0, xzr", "isb", options(nostack)) };
}

/// Arms this vCPU's virtual timer to fire in about a millisecond.
fn arm_timer() {
    let ticks = tantalum_guest::time::frequency() / 1000;
    // SAFETY: this vCPU's own virtual timer: enabled, its interrupt unmasked.
    unsafe {
        core::arch::asm!("msr cntv_tval_el0, {t}", "msr cntv_ctl_el0, {on}", "isb", t = in(reg) ticks, on = in(reg) 1u64, options(nostack));
    }
}

/// The virtual timer's interrupt (PPI 27) made pending by software (GICR_ISPENDR0) and then,
/// with IRQs masked, by the timer itself: the hypervisor must keep the hardware link (so the
/// guest's EOI ends the physical interrupt), or the timer never fires again.
fn ticker() {
    use tantalum_guest::irq;
    // Busy, not HYP_WAIT (which returns early while an interrupt is ready but masked).
    let wait_ns = |ns: u64| {
        let until = tantalum_guest::time::now() + core::time::Duration::from_nanos(ns);
        while tantalum_guest::time::now() < until {}
    };
    irq::init();
    irq::set_handler(27, on_timer);
    // SAFETY: masking IRQs at this vCPU; nothing but the timer handler is registered.
    unsafe { core::arch::asm!("msr daifset, #2", options(nomem, nostack)) };
    irq::set_pending(27);
    arm_timer();
    wait_ns(5_000_000);
    irq::enable();
    wait_ns(5_000_000);
    let first = TICKS.load(core::sync::atomic::Ordering::Relaxed);
    arm_timer();
    wait_ns(20_000_000);
    let second = TICKS.load(core::sync::atomic::Ordering::Relaxed);
    if first >= 1 && second > first {
        println!("the timer fired again after a software-pending merge ({first}, then {second} interrupts)");
    } else {
        println!(
            "BREACH: the timer is dead after a software-pending merge ({first}, then {second} interrupts)"
        );
    }
}

/// What the debug hook saw, for [`debugger`]: the last breakpoint's and watchpoint's addresses
/// and how many instructions were stepped.
static BREAK_PC: AtomicU64 = AtomicU64::new(0);
static WATCHED_AT: AtomicU64 = AtomicU64::new(0);
static STEPS: AtomicU64 = AtomicU64::new(0);
/// Set: a breakpoint starts stepping (five instructions).
static STEP_AFTER_BREAK: AtomicU64 = AtomicU64::new(0);
static mut WATCHED: u64 = 0;

fn on_debug(event: tantalum_guest::debug::Event) -> bool {
    use tantalum_guest::debug::{clear_breakpoint, clear_watchpoint, Event};
    match event {
        Event::Breakpoint { pc } => {
            clear_breakpoint();
            BREAK_PC.store(pc, Ordering::Relaxed);
            STEP_AFTER_BREAK.load(Ordering::Relaxed) != 0
        }
        Event::Watchpoint { address, .. } => {
            clear_watchpoint();
            WATCHED_AT.store(address, Ordering::Relaxed);
            false
        }
        Event::Step { .. } => STEPS.fetch_add(1, Ordering::Relaxed) + 1 < 5,
    }
}

#[inline(never)]
fn breakpoint_target(x: u64) -> u64 {
    core::hint::black_box(x.wrapping_mul(3).wrapping_add(1))
}

/// Hardware breakpoints, watchpoints and single step, at EL1, on its own CPU: the partition
/// owns its self-hosted debug (the hypervisor only resets it at each start).
fn debugger() {
    use tantalum_guest::debug;
    debug::set_hook(on_debug);
    debug::enable();
    let target = breakpoint_target as *const () as u64;
    debug::set_breakpoint(target);
    breakpoint_target(1);
    let hit = BREAK_PC.load(Ordering::Relaxed);
    let watched = core::ptr::addr_of_mut!(WATCHED);
    debug::set_watchpoint(watched as u64);
    // SAFETY: this partition's own static; single-threaded.
    unsafe { write_volatile(watched, 42) };
    let seen = WATCHED_AT.load(Ordering::Relaxed);
    // SAFETY: as above.
    let value = unsafe { read_volatile(watched) };
    STEP_AFTER_BREAK.store(1, Ordering::Relaxed);
    debug::set_breakpoint(target);
    breakpoint_target(2);
    let steps = STEPS.load(Ordering::Relaxed);
    if hit == target && seen == watched as u64 && value == 42 && steps == 5 {
        println!("breakpoint at {target:#x}, watchpoint on {seen:#x} (the store completed), 5 single steps: debug works");
    } else {
        println!("BREACH: debug: breakpoint {hit:#x} (want {target:#x}), watchpoint {seen:#x} value {value}, {steps} steps");
    }
}

/// The last data abort `bus_errors` saw: (ESR, FAR, PC), and how many.
static ABORT: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static ABORTS: AtomicU64 = AtomicU64::new(0);

fn on_abort(abort: tantalum_guest::abort::Abort) -> bool {
    for (slot, value) in ABORT.iter().zip([abort.esr, abort.address, abort.pc]) {
        slot.store(value, Ordering::Relaxed);
    }
    ABORTS.fetch_add(1, Ordering::Relaxed);
    true
}

/// A load and a store outside the partition's memory: with `outside-memory = "external-abort"`
/// each becomes a synchronous external abort at EL1 (EC 0x25, DFSC 0x10, FAR the address), which
/// the hook takes, and the partition goes on.
fn bus_errors() {
    tantalum_guest::abort::set_hook(on_abort);
    let outside = 0x1000 as *mut u32;
    let mut seen = [[0u64; 3]; 2];
    // SAFETY: deliberately outside this partition's memory: the abort comes back to `on_abort`.
    let _ = unsafe { read_volatile(outside) };
    seen[0] = ABORT.each_ref().map(|a| a.load(Ordering::Relaxed));
    // SAFETY: as above.
    unsafe { write_volatile(outside, 1) };
    seen[1] = ABORT.each_ref().map(|a| a.load(Ordering::Relaxed));
    let n = ABORTS.load(Ordering::Relaxed);
    let [load, store] = seen;
    let external = |esr: u64| esr >> 26 == 0x25 && esr & 0x3f == 0x10;
    let ok = n == 2
        && external(load[0])
        && external(store[0])
        && load[0] & (1 << 6) == 0
        && store[0] & (1 << 6) != 0
        && load[1] == 0x1000
        && store[1] == 0x1000
        && store[2] > load[2];
    if ok {
        println!("{n} synchronous external aborts (load ESR {:#x}, store ESR {:#x}, FAR 0x1000): bus errors reach the partition", load[0], store[0]);
    } else {
        println!("BREACH: external aborts: {n} taken, load {load:x?}, store {store:x?}");
    }
}
