//! `perfcount`: what `perf stat -e cycles` does, for an initramfs without Debian's `perf` (a
//! dynamically linked program with many libraries): opens a CPU-cycles counter with
//! `perf_event_open` on itself (user space only), runs a fixed loop, reads the count; with a
//! sample period, so the kernel programs the PMU to overflow and takes its overflow interrupt.
//! Prints `perfcount: cycles N (sample period P)`, then counts the same loop's instructions
//! (`perf stat -e instructions`) and prints them, and exits 0, or says why it could not.
//!
//! Built with chanping (the same static, libc-free way).
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::fmt::Write;

#[path = "../linux_rt.rs"]
mod linux_rt;
use linux_rt::{exit, syscall, Out};

global_asm!(
    r#"
.section .text.start, "ax"
.global _start
_start:
    bl      perfcount_main
"#
);

const SYS_IOCTL: u64 = 29;
const SYS_READ: u64 = 63;
const SYS_PERF_EVENT_OPEN: u64 = 241;
const PERF_EVENT_IOC_ENABLE: u64 = 0x2400;
const PERF_EVENT_IOC_DISABLE: u64 = 0x2401;
const PERF_EVENT_IOC_RESET: u64 = 0x2403;
/// PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES.
const HARDWARE: u32 = 0;
const CPU_CYCLES: u64 = 0;
/// PERF_COUNT_HW_INSTRUCTIONS.
const INSTRUCTIONS: u64 = 1;
/// Rounds of the measured loop.
const LOOP: u64 = 20_000_000;
/// perf_event_attr flags: disabled, exclude_kernel, exclude_hv.
const DISABLED: u64 = 1 << 0;
const EXCLUDE_KERNEL: u64 = 1 << 5;
const EXCLUDE_HV: u64 = 1 << 6;
const SAMPLE_PERIOD: u64 = 10_000_000;
const ENOENT: i64 = 2;
/// PERF_TYPE_RAW and the Armv8 PMU's CPU_CYCLES event number.
const RAW: u32 = 4;
const CPU_CYCLES_EVENT: u64 = 0x11;

/// `struct perf_event_attr` up to PERF_ATTR_SIZE_VER7 (128 bytes); the rest stays zero.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Attr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    rest: [u64; 10],
}

#[unsafe(no_mangle)]
extern "C" fn perfcount_main() -> ! {
    let attr = Attr {
        kind: HARDWARE,
        size: core::mem::size_of::<Attr>() as u32,
        config: CPU_CYCLES,
        sample_period: SAMPLE_PERIOD,
        flags: DISABLED | EXCLUDE_KERNEL | EXCLUDE_HV,
        ..Attr::default()
    };
    // pid 0 (this process), cpu -1 (any), no group, no flags.
    let open =
        |attr: &Attr| syscall(SYS_PERF_EVENT_OPEN, [attr as *const Attr as u64, 0, u64::MAX, u64::MAX, 0]);
    let mut fd = open(&attr);
    if fd == -ENOENT {
        // The PMU does not list the common event (PMCEID0): ask for it by number.
        let _ = writeln!(Out, "perfcount: no generic cycles event; raw event {CPU_CYCLES_EVENT:#x}");
        fd = open(&Attr { kind: RAW, config: CPU_CYCLES_EVENT, ..attr });
    }
    if fd < 0 {
        let _ = writeln!(Out, "perfcount: perf_event_open failed: errno {}", -fd);
        exit(1);
    }
    let fd = fd as u64;
    syscall(SYS_IOCTL, [fd, PERF_EVENT_IOC_RESET, 0, 0, 0]);
    syscall(SYS_IOCTL, [fd, PERF_EVENT_IOC_ENABLE, 0, 0, 0]);
    let mut n: u64 = LOOP;
    // SAFETY: a register-only loop.
    unsafe { asm!("1: subs {n}, {n}, #1", "b.ne 1b", n = inout(reg) n, options(nomem, nostack)) };
    let _ = n;
    syscall(SYS_IOCTL, [fd, PERF_EVENT_IOC_DISABLE, 0, 0, 0]);
    let mut count = 0u64;
    let read = syscall(SYS_READ, [fd, &mut count as *mut u64 as u64, 8, 0, 0]);
    if read != 8 {
        let _ = writeln!(Out, "perfcount: read failed: {read}");
        exit(1);
    }
    let _ = writeln!(Out, "perfcount: cycles {count} (sample period {SAMPLE_PERIOD})");
    instructions();
    exit(0)
}

/// `perf stat -e instructions` of the same loop: prints `perfcount: instructions N (the loop's
/// M)`, or why the event cannot be counted (QEMU has INST_RETIRED only under `-icount`).
fn instructions() {
    let attr = Attr {
        kind: HARDWARE,
        size: core::mem::size_of::<Attr>() as u32,
        config: INSTRUCTIONS,
        flags: DISABLED | EXCLUDE_KERNEL | EXCLUDE_HV,
        ..Attr::default()
    };
    let fd = syscall(SYS_PERF_EVENT_OPEN, [&attr as *const Attr as u64, 0, u64::MAX, u64::MAX, 0]);
    if fd < 0 {
        let _ = writeln!(Out, "perfcount: instructions not counted: errno {}", -fd);
        return;
    }
    let fd = fd as u64;
    syscall(SYS_IOCTL, [fd, PERF_EVENT_IOC_RESET, 0, 0, 0]);
    syscall(SYS_IOCTL, [fd, PERF_EVENT_IOC_ENABLE, 0, 0, 0]);
    let mut n: u64 = LOOP;
    // SAFETY: a register-only loop: two instructions per round.
    unsafe { asm!("1: subs {n}, {n}, #1", "b.ne 1b", n = inout(reg) n, options(nomem, nostack)) };
    let _ = n;
    syscall(SYS_IOCTL, [fd, PERF_EVENT_IOC_DISABLE, 0, 0, 0]);
    let mut count = 0u64;
    if syscall(SYS_READ, [fd, &mut count as *mut u64 as u64, 8, 0, 0]) == 8 {
        let _ = writeln!(Out, "perfcount: instructions {count} (the loop's {})", 2 * LOOP);
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    exit(2)
}
