//! A virtual PL011 UART: the register model a partition's unmodified driver (Linux's
//! `amba-pl011`, ttyAMA0) sees. Transmitted bytes go to the hypervisor console; received bytes
//! come from it when the operator gives the partition the console input.
//!
//! Transmission is instantaneous (the FIFO is always empty), so the TX interrupt is asserted
//! whenever the guest unmasks it; the RX and receive-timeout interrupts are asserted while bytes
//! wait. The interrupt line is level: [`VirtualUart::line`] says whether it is high.
#![forbid(unsafe_code)]

use alloc::collections::VecDeque;

/// Bytes of input kept at most; more are dropped (as a real FIFO overruns).
pub const RX_CAPACITY: usize = 256;

const FR_RXFE: u32 = 1 << 4;
const FR_TXFE: u32 = 1 << 7;
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
const INT_ALL: u32 = 0x7ff;
/// Peripheral and PrimeCell identification (offsets 0xfe0..0xffc), as a PL011 r1p5.
const ID: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// One virtual PL011.
#[derive(Debug, Default)]
pub struct VirtualUart {
    imsc: u32,
    cr: u32,
    lcr_h: u32,
    ibrd: u32,
    fbrd: u32,
    ifls: u32,
    dmacr: u32,
    rx: VecDeque<u8>,
}

impl VirtualUart {
    pub fn new() -> Self {
        Self { cr: 0x300, ifls: 0x12, ..Self::default() }
    }

    /// Raw interrupt status.
    fn ris(&self) -> u32 {
        let rx = if self.rx.is_empty() { 0 } else { INT_RX | INT_RT };
        INT_TX | rx
    }

    /// Whether the interrupt line is asserted.
    pub fn line(&self) -> bool {
        self.ris() & self.imsc != 0
    }

    /// Queues input bytes from the console; returns how many fit.
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        let room = RX_CAPACITY.saturating_sub(self.rx.len()).min(bytes.len());
        self.rx.extend(&bytes[..room]);
        room
    }

    /// A guest access at `offset`. A write's transmitted byte, if any, is returned in the second
    /// element; the first is the value read (0 for writes).
    pub fn access(&mut self, offset: u64, write: Option<u64>) -> (u64, Option<u8>) {
        let value = write.unwrap_or(0) as u32;
        let read = |v: u32| (u64::from(v), None);
        match (offset, write) {
            (0x000, Some(_)) => (0, Some(value as u8)),
            (0x000, None) => read(self.rx.pop_front().map_or(0, u32::from)),
            (0x004, _) => read(0), // RSR/ECR: no errors
            (0x018, None) => read(FR_TXFE | if self.rx.is_empty() { FR_RXFE } else { 0 }),
            (0x024, Some(_)) => {
                self.ibrd = value & 0xffff;
                (0, None)
            }
            (0x024, None) => read(self.ibrd),
            (0x028, Some(_)) => {
                self.fbrd = value & 0x3f;
                (0, None)
            }
            (0x028, None) => read(self.fbrd),
            (0x02c, Some(_)) => {
                self.lcr_h = value & 0xff;
                (0, None)
            }
            (0x02c, None) => read(self.lcr_h),
            (0x030, Some(_)) => {
                self.cr = value & 0xffff;
                (0, None)
            }
            (0x030, None) => read(self.cr),
            (0x034, Some(_)) => {
                self.ifls = value & 0x3f;
                (0, None)
            }
            (0x034, None) => read(self.ifls),
            (0x038, Some(_)) => {
                self.imsc = value & INT_ALL;
                (0, None)
            }
            (0x038, None) => read(self.imsc),
            (0x03c, None) => read(self.ris()),
            (0x040, None) => read(self.ris() & self.imsc),
            (0x048, Some(_)) => {
                self.dmacr = value & 0x7;
                (0, None)
            }
            (0x048, None) => read(self.dmacr),
            (0xfe0..=0xffc, None) if offset.is_multiple_of(4) => read(ID[((offset - 0xfe0) / 4) as usize]),
            // ICR and everything else: the model has no state to clear or keep.
            _ => (0, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_as_a_pl011() {
        let mut u = VirtualUart::new();
        let id: alloc::vec::Vec<u64> = (0..8).map(|i| u.access(0xfe0 + 4 * i, None).0).collect();
        assert_eq!(id, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
    }

    #[test]
    fn transmit_and_tx_interrupt() {
        let mut u = VirtualUart::new();
        assert_eq!(u.access(0, Some(u64::from(b'A'))), (0, Some(b'A')));
        assert!(!u.line(), "masked");
        u.access(0x38, Some(u64::from(INT_TX)));
        assert!(u.line(), "an empty TX FIFO asserts TXIM");
        assert_eq!(u.access(0x40, None).0, u64::from(INT_TX));
        u.access(0x38, Some(0));
        assert!(!u.line());
    }

    #[test]
    fn receive_fills_and_drains() {
        let mut u = VirtualUart::new();
        u.access(0x38, Some(u64::from(INT_RX | INT_RT)));
        assert!(!u.line());
        assert_eq!(u.access(0x18, None).0 & u64::from(FR_RXFE), u64::from(FR_RXFE));
        assert_eq!(u.receive(b"hi"), 2);
        assert!(u.line());
        assert_eq!(u.access(0, None).0, u64::from(b'h'));
        assert_eq!(u.access(0, None).0, u64::from(b'i'));
        assert!(!u.line());
        assert_eq!(u.receive(&[0; 300]), RX_CAPACITY);
    }

    #[test]
    fn hostile_offsets_are_harmless() {
        let mut u = VirtualUart::new();
        for offset in (0..0x1000u64).step_by(4).chain([u64::MAX, 0xffd, 0x1001]) {
            u.access(offset, Some(u64::MAX));
            u.access(offset, None);
        }
    }
}
