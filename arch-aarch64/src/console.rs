//! The hypervisor console: one UART behind a lock, whole lines at a time.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;
use tantalum_core::console::LineSink;

use crate::pl011::Pl011;

static CONSOLE: Mutex<Option<Pl011>> = Mutex::new(None);

/// Whether the terminal's cursor is in the middle of a line written by [`write_raw`] (guarded
/// by the console lock: only read or written while holding it).
static MID_LINE: AtomicBool = AtomicBool::new(false);

/// Ends a line [`write_raw`] left open, so that a whole line from elsewhere starts on its own.
fn end_raw_line(uart: &mut Pl011) {
    if MID_LINE.swap(false, Ordering::Relaxed) {
        uart.write_bytes(b"\n");
    }
}

/// Starts the console on the PL011 at `base`.
///
/// # Safety
/// As [`Pl011::new`]: `base` is a PL011 mapped as device memory that nothing else drives.
pub unsafe fn init(base: usize) {
    // SAFETY: forwarded contract.
    *CONSOLE.lock() = Some(unsafe { Pl011::new(base) });
}

/// Writes `tantalum: <message>\n` as one line.
pub fn print_line(args: fmt::Arguments<'_>) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        end_raw_line(uart);
        let _ = uart.write_str("tantalum: ");
        let _ = uart.write_fmt(args);
        let _ = uart.write_str("\n");
    }
}

/// Writes a line for the panic path even if a CPU died holding the lock.
pub fn print_line_forced(args: fmt::Arguments<'_>) {
    let mut guard = CONSOLE.try_lock();
    for _ in 0..1_000_000 {
        if guard.is_some() {
            break;
        }
        core::hint::spin_loop();
        guard = CONSOLE.try_lock();
    }
    match guard {
        Some(mut g) => {
            if let Some(uart) = g.as_mut() {
                let _ = uart.write_fmt(format_args!("tantalum: {args}\n"));
            }
        }
        None => {
            // SAFETY: the holder is stuck; the system is going down and this is its last word.
            unsafe { CONSOLE.force_unlock() };
            print_line(args);
        }
    }
}

/// Console lines from partitions: `[name] text`.
pub struct PartitionSink;

impl LineSink for PartitionSink {
    fn write_line(&mut self, prefix: &str, text: &[u8]) {
        if let Some(uart) = CONSOLE.lock().as_mut() {
            end_raw_line(uart);
            uart.write_byte(b'[');
            uart.write_bytes(prefix.as_bytes());
            uart.write_bytes(b"] ");
            uart.write_bytes(text);
            uart.write_bytes(b"\n");
        }
    }
}

/// `info!("...")`: one hypervisor console line.
macro_rules! info {
    ($($arg:tt)*) => { $crate::console::print_line(format_args!($($arg)*)) };
}
pub(crate) use info;

/// Key that moves console input to the next partition with a virtual UART: Ctrl-\\ (0x1c).
pub const SWITCH_KEY: u8 = 0x1c;

/// Drains bytes the operator typed; `deliver` gets them in order.
pub fn read_input(mut deliver: impl FnMut(u8)) {
    let mut guard = CONSOLE.lock();
    let Some(uart) = guard.as_mut() else { return };
    let mut buf = [0u8; 32];
    let mut n = 0;
    while n < buf.len() {
        match uart.read_byte() {
            Some(b) => {
                buf[n] = b;
                n += 1;
            }
            None => break,
        }
    }
    drop(guard);
    for &b in &buf[..n] {
        deliver(b);
    }
}

/// Starts interrupts for console input.
pub fn enable_input() {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        uart.enable_rx_interrupt();
    }
}

/// Writes bytes of the partition that has the console input as they come (an interactive shell's
/// prompt has no newline), with the `[name] ` prefix at the start of each line. Printable
/// characters, tab, backspace, escape (the operator chose to talk to this partition: its line
/// editing may drive the terminal) and newline pass; anything else shows as `?`.
pub fn write_raw(prefix: &str, bytes: &[u8]) {
    let mut guard = CONSOLE.lock();
    let Some(uart) = guard.as_mut() else { return };
    for &b in bytes {
        match b {
            b'\r' => {}
            b'\n' => {
                uart.write_bytes(b"\n");
                MID_LINE.store(false, Ordering::Relaxed);
            }
            _ => {
                if !MID_LINE.swap(true, Ordering::Relaxed) {
                    uart.write_byte(b'[');
                    uart.write_bytes(prefix.as_bytes());
                    uart.write_bytes(b"] ");
                }
                let shown =
                    if matches!(b, b'\t' | 0x08 | 0x1b) || (0x20..0x7f).contains(&b) { b } else { b'?' };
                uart.write_byte(shown);
            }
        }
    }
}
