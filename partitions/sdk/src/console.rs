//! `print!` / `println!` through the hypervisor console (`HYP_CONSOLE_WRITE`), or the machine's
//! UART when the image runs without the hypervisor ([`crate::bare`]).

use core::fmt::{self, Write};

use crate::hypercall::{hvc, CONSOLE_WRITE_MAX, HYP_CONSOLE_WRITE};

/// Writes bytes to the console; the hypervisor prefixes each line with the partition name.
pub fn write_bytes(mut bytes: &[u8]) {
    if crate::bare::bare() {
        crate::bare::write_bytes(bytes);
        return;
    }
    while !bytes.is_empty() {
        let n = bytes.len().min(CONSOLE_WRITE_MAX as usize);
        // The identity map makes a virtual address a guest-physical one.
        let written = hvc(HYP_CONSOLE_WRITE, [bytes.as_ptr() as u64, n as u64, 0, 0, 0, 0])[0];
        if written == 0 || written > n as u64 {
            return; // refused: drop the rest rather than loop
        }
        bytes = &bytes[written as usize..];
    }
}

/// Collects formatted text and sends it in as few hypercalls as possible.
struct Buffered {
    buf: [u8; CONSOLE_WRITE_MAX as usize],
    len: usize,
}

impl Buffered {
    fn flush(&mut self) {
        write_bytes(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for Buffered {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut out = Buffered { buf: [0; CONSOLE_WRITE_MAX as usize], len: 0 };
    let _ = out.write_fmt(args);
    out.flush();
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the hypervisor console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
