//! A virtual 16550 UART: the register model a partition's driver sees at its virtual UART's
//! ports (COM1 in its own port space, `tantalum_core::config::x86::VIRTUAL_UART_PORTS`).
//! Transmitted bytes go to the hypervisor console (core's line buffer, prefixed with the
//! partition's name); received bytes come from it when the operator gives the partition the
//! console input (core's `console::input`).
//!
//! Transmission is instantaneous (THR and the shifter are always empty), so the
//! transmitter-empty interrupt is pending whenever the guest enables it, until it reads IIR or
//! writes THR; received data is pending while bytes wait. Loopback (MCR bit 4) sends written
//! bytes to the receiver and mirrors the modem-control outputs in MSR, as Linux's 8250 probe
//! expects. [`VirtualUart16550::line`] says whether the interrupt output (gated by OUT2, as on
//! a PC) is asserted.

extern crate alloc;

use alloc::collections::VecDeque;

/// Bytes of input kept at most; more are dropped (as a real FIFO overruns).
pub const RX_CAPACITY: usize = 256;

const LCR_DLAB: u8 = 1 << 7;
const IER_RX: u8 = 1 << 0;
const IER_TX: u8 = 1 << 1;
const FCR_ENABLE: u8 = 1 << 0;
const MCR_OUT2: u8 = 1 << 3;
const MCR_LOOP: u8 = 1 << 4;
const LSR_DR: u8 = 1 << 0;
const LSR_THRE: u8 = 1 << 5;
const LSR_TEMT: u8 = 1 << 6;
/// MSR without loopback: carrier detect, data set ready and clear to send.
const MSR_LINES_UP: u8 = 0xb0;
const IIR_NONE: u8 = 0x01;
const IIR_TX: u8 = 0x02;
const IIR_RX: u8 = 0x04;
const IIR_FIFOS: u8 = 0xc0;

/// One virtual 16550.
#[derive(Debug, Default)]
pub struct VirtualUart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fifos: bool,
    divisor: u16,
    /// The transmitter-empty interrupt is due (cleared by reading IIR or writing THR).
    tx_due: bool,
    rx: VecDeque<u8>,
}

impl VirtualUart16550 {
    pub fn new() -> Self {
        Self { divisor: 1, ..Self::default() }
    }

    /// Queues input bytes from the console; returns how many fit.
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        let room = RX_CAPACITY.saturating_sub(self.rx.len()).min(bytes.len());
        self.rx.extend(&bytes[..room]);
        room
    }

    /// The highest-priority pending interrupt's IIR code.
    fn pending(&self) -> u8 {
        if self.ier & IER_RX != 0 && !self.rx.is_empty() {
            IIR_RX
        } else if self.ier & IER_TX != 0 && self.tx_due {
            IIR_TX
        } else {
            IIR_NONE
        }
    }

    /// Whether the interrupt output is asserted (an interrupt pending and OUT2 set).
    pub fn line(&self) -> bool {
        self.pending() != IIR_NONE && self.mcr & MCR_OUT2 != 0
    }

    /// A guest access to register `offset` (0..=7; others read as all ones and ignore writes).
    /// Returns the value read (0 for writes) and the byte transmitted, if any.
    pub fn access(&mut self, offset: u64, write: Option<u64>) -> (u8, Option<u8>) {
        let dlab = self.lcr & LCR_DLAB != 0;
        let Some(value) = write.map(|v| v as u8) else {
            return (self.read(offset, dlab), None);
        };
        match (offset, dlab) {
            (0, true) => self.divisor = (self.divisor & 0xff00) | u16::from(value),
            (1, true) => self.divisor = (self.divisor & 0x00ff) | (u16::from(value) << 8),
            (0, false) => {
                self.tx_due = true;
                if self.mcr & MCR_LOOP != 0 {
                    self.receive(&[value]);
                } else {
                    return (0, Some(value));
                }
            }
            (1, false) => {
                // Enabling the transmitter interrupt raises it at once (THR is empty).
                if value & IER_TX != 0 && self.ier & IER_TX == 0 {
                    self.tx_due = true;
                }
                self.ier = value & 0x0f;
            }
            (2, _) => {
                self.fifos = value & FCR_ENABLE != 0;
                if value & 0b10 != 0 {
                    self.rx.clear();
                }
            }
            (3, _) => self.lcr = value,
            (4, _) => self.mcr = value & 0x1f,
            (7, _) => self.scr = value,
            // LSR and MSR are read-only; anything else is no register.
            _ => {}
        }
        (0, None)
    }

    fn read(&mut self, offset: u64, dlab: bool) -> u8 {
        match (offset, dlab) {
            (0, true) => self.divisor as u8,
            (1, true) => (self.divisor >> 8) as u8,
            (0, false) => self.rx.pop_front().unwrap_or(0),
            (1, false) => self.ier,
            (2, _) => {
                let code = self.pending();
                if code == IIR_TX {
                    self.tx_due = false;
                }
                code | if self.fifos { IIR_FIFOS } else { 0 }
            }
            (3, _) => self.lcr,
            (4, _) => self.mcr,
            (5, _) => LSR_THRE | LSR_TEMT | if self.rx.is_empty() { 0 } else { LSR_DR },
            (6, _) if self.mcr & MCR_LOOP != 0 => {
                // DTR, RTS, OUT1, OUT2 come back as DSR, CTS, RI, DCD.
                let m = self.mcr;
                ((m & 0b10) << 3) | ((m & 0b01) << 5) | ((m & 0b100) << 4) | ((m & 0b1000) << 4)
            }
            (6, _) => MSR_LINES_UP,
            (7, _) => self.scr,
            _ => 0xff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(u: &mut VirtualUart16550, offset: u64, value: u8) -> Option<u8> {
        u.access(offset, Some(u64::from(value))).1
    }
    fn read(u: &mut VirtualUart16550, offset: u64) -> u8 {
        u.access(offset, None).0
    }

    #[test]
    fn transmits_at_once_and_the_divisor_latch_is_separate() {
        let mut u = VirtualUart16550::new();
        assert_eq!(read(&mut u, 5) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
        assert_eq!(write(&mut u, 0, b'A'), Some(b'A'));
        // 115200 baud: DLAB, divisor 1, 8N1; the divisor writes transmit nothing.
        write(&mut u, 3, 0x80);
        assert_eq!(write(&mut u, 0, 1), None);
        assert_eq!(write(&mut u, 1, 0), None);
        assert_eq!((read(&mut u, 0), read(&mut u, 1)), (1, 0));
        write(&mut u, 3, 0x03);
        assert_eq!((read(&mut u, 3), read(&mut u, 1)), (0x03, 0));
    }

    #[test]
    fn receives_and_interrupts() {
        let mut u = VirtualUart16550::new();
        assert_eq!(read(&mut u, 5) & LSR_DR, 0);
        assert_eq!(u.receive(b"hi"), 2);
        assert_eq!(read(&mut u, 5) & LSR_DR, LSR_DR);
        assert!(!u.line(), "no interrupt enabled");
        write(&mut u, 1, IER_RX);
        assert_eq!(read(&mut u, 2), IIR_RX);
        assert!(!u.line(), "OUT2 gates the line");
        write(&mut u, 4, MCR_OUT2);
        assert!(u.line());
        assert_eq!((read(&mut u, 0), read(&mut u, 0)), (b'h', b'i'));
        assert!(!u.line());
        assert_eq!(read(&mut u, 2), IIR_NONE);
        assert_eq!(u.receive(&[0; 300]), RX_CAPACITY);
        write(&mut u, 2, 0b11);
        assert_eq!(read(&mut u, 5) & LSR_DR, 0, "FCR clears the receive FIFO");
        assert_eq!(read(&mut u, 2), IIR_NONE | IIR_FIFOS);
    }

    #[test]
    fn the_transmitter_interrupt_fires_once_per_write() {
        let mut u = VirtualUart16550::new();
        write(&mut u, 4, MCR_OUT2);
        write(&mut u, 1, IER_TX);
        assert!(u.line());
        assert_eq!(read(&mut u, 2), IIR_TX);
        assert!(!u.line(), "reading IIR acknowledges it");
        write(&mut u, 0, b'x');
        assert!(u.line());
    }

    #[test]
    fn loopback_as_linux_probes_it() {
        let mut u = VirtualUart16550::new();
        // serial8250: MCR = LOOP | OUT2 | RTS, expects MSR & 0xf0 == DCD | CTS.
        write(&mut u, 4, MCR_LOOP | MCR_OUT2 | 0b10);
        assert_eq!(read(&mut u, 6) & 0xf0, 0x90);
        assert_eq!(write(&mut u, 0, b'z'), None, "looped back, not transmitted");
        assert_eq!(read(&mut u, 0), b'z');
        write(&mut u, 4, 0);
        assert_eq!(read(&mut u, 6), MSR_LINES_UP);
        write(&mut u, 7, 0x5a);
        assert_eq!(read(&mut u, 7), 0x5a);
    }

    #[test]
    fn hostile_offsets_are_harmless() {
        let mut u = VirtualUart16550::new();
        for offset in (0..16u64).chain([u64::MAX, 0x1_0000]) {
            u.access(offset, Some(u64::MAX));
            u.access(offset, None);
        }
        assert_eq!(read(&mut u, 8), 0xff);
    }
}
