//! `stepcount`: what `gdb`'s `stepi`, `break` and `watch` do to a process, with `ptrace`, for an
//! initramfs without gdb or strace. Three trials, each on a fresh child that calls
//! `PTRACE_TRACEME`, stops itself with `SIGSTOP` and then runs a known instruction sequence
//! ([`TAIL`]: a store, eight adds, a [`LOOP`]-round loop, `exit_group`):
//! - single step: `PTRACE_SINGLESTEP` from the stop until the child exits; every stop is a
//!   `SIGTRAP` (`TRAP_TRACE`) whose PC (`PTRACE_GETREGSET` `NT_PRSTATUS`) is the next instruction
//!   of the sequence: 4 on across straight-line code, back at the loop's head on a taken branch;
//! - hardware breakpoint (`PTRACE_SETREGSET` `NT_ARM_HW_BREAK`) on the third add: one
//!   `SIGTRAP` (`TRAP_HWBKPT`) with the PC there, then disarmed, the child runs to its end;
//! - watchpoint (`NT_ARM_HW_WATCH`) on the stored-to variable: one `TRAP_HWBKPT` with the
//!   variable's address, at the store, which has not happened yet.
//!
//! Prints `stepcount: N single steps, pc advanced as expected, hw breakpoint hit, watchpoint hit`
//! and exits 0, or says which trial failed at which step and exits 1.
//!
//! Built with chanping (the same static, libc-free way).
#![no_std]
#![no_main]

use core::arch::global_asm;
use core::fmt::Write;
use core::sync::atomic::AtomicU64;

/// Rounds of the sequence's loop (two instructions each).
const LOOP: u64 = 5;
/// The adds before the loop.
const ADDS: u64 = 8;

#[path = "../linux_rt.rs"]
mod linux_rt;
use linux_rt::{exit, syscall, Out};

global_asm!(
    r#"
.section .text.start, "ax"
.global _start
_start:
    bl      stepcount_main
"#
);

// The traced child's last code: stops itself, then runs the sequence the tracer checks and
// exits with 0 if the eight adds all ran. x0: the watched variable, x1: the child's pid.
global_asm!(
    r#"
.text
.balign 4
.global stepcount_tail, stepcount_start, stepcount_store, stepcount_seq, stepcount_loop
stepcount_tail:
    mov     x19, x0
    mov     x0, x1
    mov     x1, #19                 // kill(pid, SIGSTOP)
    mov     x8, #129
    svc     #0
stepcount_start:
    mov     x9, #0
stepcount_store:
    str     x9, [x19]
    mov     x10, #{rounds}
stepcount_seq:
    add     x9, x9, #1
    add     x9, x9, #1
    add     x9, x9, #1
    add     x9, x9, #1
    add     x9, x9, #1
    add     x9, x9, #1
    add     x9, x9, #1
    add     x9, x9, #1
stepcount_loop:
    subs    x10, x10, #1
    b.ne    stepcount_loop
    sub     x0, x9, #{adds}
    mov     x8, #94                 // exit_group(x9 - 8)
    svc     #0
    b       .
"#,
    rounds = const LOOP,
    adds = const ADDS,
);

unsafe extern "C" {
    fn stepcount_tail(watched: *mut u64, pid: u64) -> !;
    static stepcount_start: u32;
    static stepcount_store: u32;
    static stepcount_seq: u32;
    static stepcount_loop: u32;
}

/// The variable the sequence stores to (the watchpoint's target).
static WATCHED: AtomicU64 = AtomicU64::new(u64::MAX);

const SYS_PTRACE: u64 = 117;
const SYS_KILL: u64 = 129;
const SYS_CLONE: u64 = 220;
const SYS_WAIT4: u64 = 260;
const SIGKILL: u64 = 9;
const SIGTRAP: u64 = 5;
const SIGSTOP: u64 = 19;
const SIGCHLD: u64 = 17;
const PTRACE_TRACEME: u64 = 0;
const PTRACE_CONT: u64 = 7;
const PTRACE_SINGLESTEP: u64 = 9;
const PTRACE_GETSIGINFO: u64 = 0x4202;
const PTRACE_GETREGSET: u64 = 0x4204;
const PTRACE_SETREGSET: u64 = 0x4205;
const NT_PRSTATUS: u64 = 1;
const NT_ARM_HW_BREAK: u64 = 0x402;
const NT_ARM_HW_WATCH: u64 = 0x403;
/// si_code of a single-step trap and of a hardware breakpoint or watchpoint.
const TRAP_TRACE: i32 = 2;
const TRAP_HWBKPT: i32 = 4;
/// Breakpoint control (`struct user_hwdebug_state`'s ctrl): enabled, EL0, execute, 4 bytes.
const BREAK_CTRL: u32 = (0xf << 5) | (2 << 1) | 1;
/// Watchpoint control: enabled, EL0, store, 8 bytes.
const WATCH_CTRL: u32 = (0xff << 5) | (2 << 3) | (2 << 1) | 1;

/// `struct iovec`, as `PTRACE_GETREGSET`/`SETREGSET` take it.
#[repr(C)]
struct Iovec {
    base: u64,
    len: u64,
}

/// How a `wait4` found the child.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Stopped(u64),
    Exited(u64),
    Killed(u64),
}

impl core::fmt::Display for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            State::Stopped(sig) => write!(f, "stopped by signal {sig}"),
            State::Exited(code) => write!(f, "exited with status {code}"),
            State::Killed(sig) => write!(f, "killed by signal {sig}"),
        }
    }
}

/// A traced child, stopped at `stepcount_start` by its own `SIGSTOP`.
struct Child {
    pid: u64,
    done: bool,
}

impl Child {
    fn start() -> Result<Child, ()> {
        let pid = syscall(SYS_CLONE, [SIGCHLD, 0, 0, 0, 0]);
        if pid == 0 {
            if syscall(SYS_PTRACE, [PTRACE_TRACEME, 0, 0, 0, 0]) != 0 {
                exit(3);
            }
            let me = syscall(172, [0; 5]) as u64; // getpid
                                                  // SAFETY: the tail only stores to WATCHED (a static 8-byte atomic) and exits.
            unsafe { stepcount_tail(WATCHED.as_ptr(), me) }
        }
        if pid < 0 {
            let _ = writeln!(Out, "stepcount: clone failed: errno {}", -pid);
            return Err(());
        }
        let mut child = Child { pid: pid as u64, done: false };
        match child.wait() {
            State::Stopped(SIGSTOP) => Ok(child),
            other => {
                let _ = writeln!(Out, "stepcount: the child {other} instead of stopping itself with SIGSTOP");
                Err(())
            }
        }
    }

    fn wait(&mut self) -> State {
        let mut status = 0u32;
        let r = syscall(SYS_WAIT4, [self.pid, &mut status as *mut u32 as u64, 0, 0, 0]);
        if r != self.pid as i64 {
            self.done = true;
            return State::Killed(0);
        }
        let status = u64::from(status);
        if status & 0xff == 0x7f {
            State::Stopped((status >> 8) & 0xff)
        } else {
            self.done = true;
            match status & 0x7f {
                0 => State::Exited((status >> 8) & 0xff),
                sig => State::Killed(sig),
            }
        }
    }

    fn ptrace(&self, request: u64, addr: u64, data: u64) -> i64 {
        syscall(SYS_PTRACE, [request, self.pid, addr, data, 0])
    }

    /// Resumes the child (with single step or not) and waits for its next stop or its end.
    fn resume(&mut self, step: bool) -> State {
        let request = if step { PTRACE_SINGLESTEP } else { PTRACE_CONT };
        let r = self.ptrace(request, 0, 0);
        if r != 0 {
            return State::Killed(0);
        }
        self.wait()
    }

    fn pc(&self) -> Result<u64, i64> {
        let mut regs = [0u64; 34]; // struct user_pt_regs: x0..x30, sp, pc, pstate
        let mut iov = Iovec { base: regs.as_mut_ptr() as u64, len: 8 * 34 };
        match self.ptrace(PTRACE_GETREGSET, NT_PRSTATUS, &mut iov as *mut Iovec as u64) {
            0 => Ok(regs[32]),
            e => Err(-e),
        }
    }

    /// The stop's si_code and si_addr.
    fn siginfo(&self) -> Result<(i32, u64), i64> {
        let mut info = [0u64; 16]; // siginfo_t: signo, errno, code (i32 each), pad, then si_addr
        match self.ptrace(PTRACE_GETSIGINFO, 0, info.as_mut_ptr() as u64) {
            0 => Ok(((info[1] & 0xffff_ffff) as u32 as i32, info[2])),
            e => Err(-e),
        }
    }

    /// Sets slot 0 of the breakpoint (`NT_ARM_HW_BREAK`) or watchpoint (`NT_ARM_HW_WATCH`)
    /// registers: `struct user_hwdebug_state`'s dbg_info and pad, then one (addr, ctrl, pad).
    fn set_slot0(&self, note: u64, addr: u64, ctrl: u32) -> i64 {
        let mut state = [0u64, addr, u64::from(ctrl)];
        let mut iov = Iovec { base: state.as_mut_ptr() as u64, len: 24 };
        -self.ptrace(PTRACE_SETREGSET, note, &mut iov as *mut Iovec as u64)
    }

    /// `dbg_info` of the breakpoint or watchpoint registers: slots (bits 7:0), debug architecture (15:8).
    fn dbg_info(&self, note: u64) -> Result<u64, i64> {
        let mut state = [0u64; 33];
        let mut iov = Iovec { base: state.as_mut_ptr() as u64, len: 8 * 33 };
        match self.ptrace(PTRACE_GETREGSET, note, &mut iov as *mut Iovec as u64) {
            0 => Ok(state[0] & 0xffff_ffff),
            e => Err(-e),
        }
    }

    /// Lets a child that passed its checks run to its end: it must exit with 0.
    fn finish(mut self, trial: &str) -> Result<(), ()> {
        match self.resume(false) {
            State::Exited(0) => Ok(()),
            other => {
                let _ = writeln!(Out, "stepcount: {trial}: the child {other} instead of exiting with 0");
                Err(())
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.done {
            syscall(SYS_KILL, [self.pid, SIGKILL, 0, 0, 0]);
            self.wait();
        }
    }
}

fn addr(symbol: &u32) -> u64 {
    symbol as *const u32 as u64
}

/// The PC after single step `k` (from 1) from `stepcount_start`, or `None` after the last
/// (which runs exit_group).
fn expected_pc(k: u64) -> Option<u64> {
    // SAFETY: labels of the sequence's code; only their addresses are taken.
    let (start, seq, head) = unsafe { (addr(&stepcount_start), addr(&stepcount_seq), addr(&stepcount_loop)) };
    let before_loop = (seq - start) / 4 + ADDS; // mov, str, mov, the adds
    let rounds = 2 * LOOP;
    Some(match k {
        k if k <= before_loop => start + 4 * k,
        // In the loop: after subs the branch, after a taken branch the head, the last falls through.
        k if k <= before_loop + rounds => {
            let j = k - before_loop;
            if j % 2 == 1 {
                head + 4
            } else if j < rounds {
                head
            } else {
                head + 8
            }
        }
        // sub, mov, then svc (exit_group: no stop).
        k if k <= before_loop + rounds + 2 => head + 8 + 4 * (k - before_loop - rounds),
        _ => return None,
    })
}

/// Single-steps a child from its stop to its end; returns the number of single-step stops.
fn single_step() -> Result<u64, ()> {
    let mut child = Child::start()?;
    let mut k = 0;
    loop {
        let state = child.resume(true);
        k += 1;
        let expected = expected_pc(k);
        match (state, expected) {
            (State::Exited(0), None) => return Ok(k - 1),
            (State::Stopped(SIGTRAP), Some(want)) => {
                let code = child.siginfo().map(|(code, _)| code);
                if code != Ok(TRAP_TRACE) {
                    let _ = writeln!(
                        Out,
                        "stepcount: single step {k}: SIGTRAP with si_code {code:?}, not TRAP_TRACE"
                    );
                    return Err(());
                }
                let pc = child.pc();
                if pc != Ok(want) {
                    let _ = writeln!(Out, "stepcount: single step {k}: pc {pc:x?}, expected Ok({want:#x})");
                    return Err(());
                }
            }
            (state, Some(want)) => {
                let _ = writeln!(
                    Out,
                    "stepcount: single step {k}: the child {state} instead of stopping at {want:#x}"
                );
                return Err(());
            }
            (state, None) => {
                let _ =
                    writeln!(Out, "stepcount: single step {k}: the child {state} instead of exiting with 0");
                return Err(());
            }
        }
    }
}

/// Arms slot 0 of `note` at `at` with `ctrl`, continues the child and expects one
/// `TRAP_HWBKPT` with the PC at `pc` and si_addr `si_addr`; disarms it and lets the child end.
fn hardware_trap(trial: &str, note: u64, ctrl: u32, at: u64, pc: u64, si_addr: u64) -> Result<(), ()> {
    let mut child = Child::start()?;
    match child.dbg_info(note) {
        Ok(info) if info & 0xff == 0 => {
            let _ = writeln!(Out, "stepcount: {trial}: Linux found no slots (dbg_info {info:#x})");
            return Err(());
        }
        Ok(_) => {}
        Err(e) => {
            let _ = writeln!(Out, "stepcount: {trial}: PTRACE_GETREGSET failed: errno {e}");
            return Err(());
        }
    }
    let e = child.set_slot0(note, at, ctrl);
    if e != 0 {
        let _ = writeln!(Out, "stepcount: {trial}: PTRACE_SETREGSET at {at:#x} failed: errno {e}");
        return Err(());
    }
    match child.resume(false) {
        State::Stopped(SIGTRAP) => {}
        other => {
            let _ = writeln!(Out, "stepcount: {trial}: not hit at {at:#x}: the child {other}");
            return Err(());
        }
    }
    let info = child.siginfo();
    let at_pc = child.pc();
    if info != Ok((TRAP_HWBKPT, si_addr)) || at_pc != Ok(pc) {
        let _ = writeln!(
            Out,
            "stepcount: {trial}: SIGTRAP with (si_code, si_addr) {info:x?} at pc {at_pc:x?}, expected ({TRAP_HWBKPT}, {si_addr:#x}) at {pc:#x}"
        );
        return Err(());
    }
    let e = child.set_slot0(note, at, 0);
    if e != 0 {
        let _ = writeln!(Out, "stepcount: {trial}: disarming failed: errno {e}");
        return Err(());
    }
    child.finish(trial)
}

#[unsafe(no_mangle)]
extern "C" fn stepcount_main() -> ! {
    // SAFETY: labels of the sequence's code; only their addresses are taken.
    let (seq, store) = unsafe { (addr(&stepcount_seq), addr(&stepcount_store)) };
    let watched = WATCHED.as_ptr() as u64;
    let steps = single_step();
    // The third add; a breakpoint stops before its instruction runs.
    let breakpoint = hardware_trap("hw breakpoint", NT_ARM_HW_BREAK, BREAK_CTRL, seq + 8, seq + 8, seq + 8);
    // A watchpoint stops before the store completes: the PC at the store, si_addr the variable.
    let watchpoint = hardware_trap("watchpoint", NT_ARM_HW_WATCH, WATCH_CTRL, watched, store, watched);
    match (steps, breakpoint, watchpoint) {
        (Ok(n), Ok(()), Ok(())) => {
            let _ = writeln!(
                Out,
                "stepcount: {n} single steps, pc advanced as expected, hw breakpoint hit, watchpoint hit"
            );
            exit(0)
        }
        _ => {
            let _ = writeln!(Out, "stepcount: FAILED");
            exit(1)
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    exit(2)
}
