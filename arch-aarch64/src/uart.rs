//! The hypervisor console's UART: whichever kind the board's console node is (BootInfo says).

use core::fmt;

use tantalum_core::bootimage::ConsoleKind;

use crate::cadence::Cadence;
use crate::pl011::Pl011;

pub enum Uart {
    Pl011(Pl011),
    Cadence(Cadence),
}

impl Uart {
    /// # Safety
    /// `base` must be the MMIO base of a UART of kind `kind`, mapped as device memory for the
    /// rest of the program, that nothing else drives.
    pub unsafe fn new(kind: ConsoleKind, base: usize) -> Self {
        match kind {
            // SAFETY: forwarded contract.
            ConsoleKind::Pl011 => Uart::Pl011(unsafe { Pl011::new(base) }),
            // SAFETY: forwarded contract.
            ConsoleKind::Cadence => Uart::Cadence(unsafe { Cadence::new(base) }),
        }
    }

    pub fn write_byte(&mut self, byte: u8) {
        match self {
            Uart::Pl011(u) => u.write_byte(byte),
            Uart::Cadence(u) => u.write_byte(byte),
        }
    }

    /// A received byte, if one waits.
    pub fn read_byte(&mut self) -> Option<u8> {
        match self {
            Uart::Pl011(u) => u.read_byte(),
            Uart::Cadence(u) => u.read_byte(),
        }
    }

    /// Raises the UART's interrupt when bytes arrive.
    pub fn enable_rx_interrupt(&mut self) {
        match self {
            Uart::Pl011(u) => u.enable_rx_interrupt(),
            Uart::Cadence(u) => u.enable_rx_interrupt(),
        }
    }

    /// Writes `bytes`, each `\n` as `\r\n`.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
    }
}

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}
