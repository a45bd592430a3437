//! Minimal PL011 UART driver: transmit only, polled.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_bitfields! [u32,
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ]
];

register_structs! {
    Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x38 => imsc: ReadWrite<u32>),
        (0x3c => _reserved2),
        (0x44 => icr: ReadWrite<u32>),
        (0x48 => @END),
    }
}

/// A PL011 the hypervisor owns.
pub struct Pl011 {
    regs: *const Registers,
}

// SAFETY: the UART is only ever used behind the console lock (or by the panic path, which
// takes the lock or steals it when the system is going down anyway).
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must be the MMIO base of a PL011 mapped as device memory for the rest of the
    /// program, and nothing else may drive it.
    pub const unsafe fn new(base: usize) -> Self {
        Self { regs: base as *const Registers }
    }

    fn regs(&self) -> &Registers {
        // SAFETY: `new`'s contract: `regs` points at the device for the program's lifetime.
        unsafe { &*self.regs }
    }

    pub fn write_byte(&mut self, byte: u8) {
        while self.regs().fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.regs().dr.set(u32::from(byte));
    }

    /// A received byte, if one waits.
    pub fn read_byte(&mut self) -> Option<u8> {
        (!self.regs().fr.is_set(FR::RXFE)).then(|| self.regs().dr.get() as u8)
    }

    /// Raises the UART's interrupt when bytes arrive (receive and receive-timeout).
    pub fn enable_rx_interrupt(&mut self) {
        self.regs().icr.set(0x7ff);
        self.regs().imsc.set((1 << 4) | (1 << 6));
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
