//! The hypervisor's console on COM1.

use core::fmt::{self, Write};

use spin::Mutex;

use crate::serial::Uart16550;

/// The PC's first serial port.
pub const COM1: u16 = 0x3f8;

static CONSOLE: Mutex<Option<Uart16550>> = Mutex::new(None);

pub fn init() {
    // SAFETY: COM1 is the hypervisor's console; no partition is given its ports.
    let uart = unsafe { Uart16550::new(COM1) };
    *CONSOLE.lock() = Some(uart);
}

/// Writes one line, prefixed like the aarch64 hypervisor's: `[tantalum] ...`.
pub fn line(args: fmt::Arguments) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = writeln!(uart, "[tantalum] {args}");
    }
}

/// Writes one partition console line: `[name] text`.
pub fn partition_line(prefix: &str, text: &[u8]) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = write!(uart, "[{prefix}] ");
        for &b in text {
            uart.write_byte(b);
        }
        let _ = uart.write_str("\n");
    }
}

/// Bytes the operator typed since the last call (up to `buf.len()`), unless another CPU is
/// using the console right now (then none: they wait in the UART's FIFO).
pub fn read_input(buf: &mut [u8]) -> usize {
    let Some(guard) = CONSOLE.try_lock() else { return 0 };
    let Some(uart) = guard.as_ref() else { return 0 };
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
    n
}

/// Writes a line whether or not the console lock is free (panics).
pub fn emergency(args: fmt::Arguments) {
    // SAFETY: COM1 is ours; at worst the line interleaves with another CPU's.
    let mut uart = unsafe { Uart16550::new(COM1) };
    let _ = writeln!(uart, "[tantalum] {args}");
}

/// Powers the machine off: the ACPI PM1a control register of the PIIX4 that Bochs's BIOS (and
/// QEMU's i440fx) set up at port 0xb004, S5. Emulators exit; elsewhere the CPU halts.
pub fn power_off() -> ! {
    line(format_args!("system off"));
    // SAFETY: writing SLP_EN with SLP_TYP 0 (S5) to the PM1a control port ends the machine;
    // on a machine without it, the write goes nowhere.
    unsafe {
        core::arch::asm!("out dx, ax", in("dx") 0xb004u16, in("ax") 0x2000u16, options(nomem, nostack))
    };
    halt()
}

/// Stops this CPU for good.
pub fn halt() -> ! {
    loop {
        // SAFETY: interrupts are off: `hlt` only stops this CPU.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}

macro_rules! info {
    ($($arg:tt)*) => { $crate::console::line(format_args!($($arg)*)) };
}
pub(crate) use info;
