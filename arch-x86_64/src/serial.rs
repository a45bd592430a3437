//! The hypervisor console: a 16550 UART at an I/O port base (COM1, 0x3f8, on a PC).

use core::arch::asm;
use core::fmt;

/// Register offsets from the base port.
mod reg {
    pub const DATA: u16 = 0;
    pub const IER: u16 = 1;
    pub const FCR: u16 = 2;
    pub const LCR: u16 = 3;
    pub const MCR: u16 = 4;
    pub const LSR: u16 = 5;
    /// LSR: a received byte is waiting.
    pub const LSR_DR: u8 = 1 << 0;
    /// LSR: the transmit holding register is empty.
    pub const LSR_THRE: u8 = 1 << 5;
}

/// A 16550 at an I/O port base.
#[derive(Clone, Copy, Debug)]
pub struct Uart16550 {
    base: u16,
}

/// Writes `value` to I/O port `port`.
///
/// # Safety
/// `port` must be a port the hypervisor owns, and the write must not break the device's state.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller owns the port.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}

/// Reads I/O port `port`.
///
/// # Safety
/// `port` must be a port the hypervisor owns; reading it must have no effect others rely on.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller owns the port.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags)) };
    value
}

impl Uart16550 {
    /// Programs 115200 8N1, FIFOs on, no interrupts.
    ///
    /// # Safety
    /// `base` must be the port base of a 16550 that nothing else drives.
    pub unsafe fn new(base: u16) -> Self {
        // SAFETY: the caller gives us the UART; these program its line settings.
        unsafe {
            outb(base + reg::IER, 0);
            outb(base + reg::LCR, 0x80);
            outb(base + reg::DATA, 1);
            outb(base + reg::IER, 0);
            outb(base + reg::LCR, 0x03);
            outb(base + reg::FCR, 0xc7);
            outb(base + reg::MCR, 0x0b);
        }
        Self { base }
    }

    /// A received byte, if one is waiting.
    pub fn read_byte(&self) -> Option<u8> {
        // SAFETY: `new`'s contract: the UART is ours.
        let ready = unsafe { inb(self.base + reg::LSR) } & reg::LSR_DR != 0;
        // SAFETY: as above.
        ready.then(|| unsafe { inb(self.base + reg::DATA) })
    }

    pub fn write_byte(&self, byte: u8) {
        // SAFETY: `new`'s contract: the UART is ours.
        while unsafe { inb(self.base + reg::LSR) } & reg::LSR_THRE == 0 {}
        // SAFETY: as above.
        unsafe { outb(self.base + reg::DATA, byte) };
    }
}

impl fmt::Write for Uart16550 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        Ok(())
    }
}
