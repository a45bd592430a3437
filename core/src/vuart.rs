//! A virtual PL011 UART: the register model a partition's unmodified driver (Linux's
//! `amba-pl011`, ttyAMA0) sees. Transmitted bytes go to the hypervisor console; received bytes
//! come from it when the operator gives the partition the console input.
//!
//! Transmission is instantaneous (the FIFO is always empty), so the TX interrupt is asserted
//! whenever the guest unmasks it; the RX and receive-timeout interrupts are asserted while bytes
//! wait. The interrupt line is level: [`VirtualUart::line`] says whether it is high, and
//! [`VirtualUart::follow`] when the virtual GIC must be told. A [`Mirror`] beside the UART answers
//! the console's two hot accesses (a write of UARTDR, a read of UARTFR) without its lock while
//! its line is low.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU32, Ordering};

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
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VirtualUart {
    imsc: u32,
    cr: u32,
    lcr_h: u32,
    ibrd: u32,
    fbrd: u32,
    ifls: u32,
    dmacr: u32,
    rx: heapless::Deque<u8, RX_CAPACITY>,
    /// The level the virtual GIC was last told ([`Self::follow`]).
    followed: bool,
}

impl VirtualUart {
    pub fn new() -> Self {
        // What the virtual GIC was last told is not known (a partition restarts with a fresh
        // one, but its line may have been followed meanwhile): the first access follows it.
        Self { cr: 0x300, ifls: 0x12, followed: true, ..Self::default() }
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

    /// The line's level when the virtual GIC must follow it after an access or a receive: while
    /// it is high, at every one (the level re-pends the interrupt there, which is how a TX
    /// interrupt the guest took comes back), and once when it falls. `None` while it stays low:
    /// telling the virtual GIC again would change nothing the line set (its last word was low).
    pub fn follow(&mut self) -> Option<bool> {
        let high = self.line();
        let was = core::mem::replace(&mut self.followed, high);
        (high || was).then_some(high)
    }

    /// Queues input bytes from the console; returns how many fit.
    pub fn receive(&mut self, bytes: &[u8]) -> usize {
        let room = RX_CAPACITY.saturating_sub(self.rx.len()).min(bytes.len());
        for &b in &bytes[..room] {
            let _ = self.rx.push_back(b); // there is room: counted above
        }
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
            (FR, None) => read(FR_TXFE | if self.rx.is_empty() { FR_RXFE } else { 0 }),
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

/// UARTFR's offset.
const FR: u64 = 0x018;
/// Set in a [`Mirror`] while an access must take the UART's lock (its line to follow).
const LOCKED: u32 = 1 << 31;

/// What a read of UARTFR answers and whether the UART's line must be followed, in one word kept
/// beside the UART: [`Mirror::keep`] after every change, under the UART's lock. While the line is
/// low (and was when last followed), a write of UARTDR or a read of UARTFR changes nothing and
/// follows nothing: [`Mirror::access`] answers them without the lock, as [`VirtualUart::access`]
/// and [`VirtualUart::follow`] would.
#[derive(Debug)]
pub struct Mirror(AtomicU32);

impl Mirror {
    /// The mirror of [`VirtualUart::new`] (whose line is followed at its first access).
    pub const fn new() -> Self {
        Self(AtomicU32::new(FR_TXFE | FR_RXFE | LOCKED))
    }

    /// Mirrors `uart` (under its lock, after a change and its [`VirtualUart::follow`]).
    pub fn keep(&self, uart: &VirtualUart) {
        let fr = FR_TXFE | if uart.rx.is_empty() { FR_RXFE } else { 0 };
        let locked = if uart.line() || uart.followed { LOCKED } else { 0 };
        self.0.store(fr | locked, Ordering::Release);
    }

    /// An access at `offset` answered without the UART's lock, as [`VirtualUart::access`] would
    /// (the value read, the byte sent), if it is a write of UARTDR or a read of UARTFR while the
    /// line is quiet; `None`: take the lock.
    #[inline]
    pub fn access(&self, offset: u64, write: Option<u64>) -> Option<(u64, Option<u8>)> {
        let word = self.0.load(Ordering::Acquire);
        if word & LOCKED != 0 {
            return None;
        }
        // The write first: a console's byte is the hotter access.
        match write {
            Some(byte) => (offset == 0x000).then_some((0, Some(byte as u8))),
            None => (offset == FR).then_some((u64::from(word), None)),
        }
    }
}

impl Default for Mirror {
    fn default() -> Self {
        Self::new()
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

    use crate::test_random::Random;

    /// A random guest access or console input (the interrupt masks, the data, the flags, the
    /// status and clear registers, anything else).
    fn step(u: &mut VirtualUart, r: &mut Random) {
        let x = r.next();
        let offset =
            [0x000u64, 0x018, 0x038, 0x03c, 0x040, 0x044, 0x030, (x >> 40) % 0x1004][(x % 8) as usize];
        let write = (x & 0x100 != 0).then(|| r.next() & 0xffff);
        match (x >> 9) % 6 {
            0 => {
                u.receive(&[x as u8; 3][..(x >> 12) as usize % 4]);
            }
            _ => {
                u.access(offset, write);
            }
        }
    }

    /// The mirror answers a UARTDR write and a UARTFR read exactly as the UART and its line's
    /// follow would under the lock, and only when they change nothing and follow nothing.
    #[test]
    fn the_mirror_answers_as_the_locked_uart() {
        let mut r = Random(0x9e37_79b9_7f4a_7c15);
        let (mut u, mirror) = (VirtualUart::new(), Mirror::new());
        assert_eq!(mirror.access(FR, None), None, "a new UART's line is followed once");
        mirror.keep(&u);
        assert_eq!(mirror.access(FR, None), None);
        assert_eq!(u.access(FR, None).0, u64::from(FR_TXFE | FR_RXFE));
        assert_eq!(u.follow(), Some(false));
        mirror.keep(&u);
        assert_eq!(mirror.access(FR, None), Some((u64::from(FR_TXFE | FR_RXFE), None)));
        let (mut answered, mut locked) = (0, 0);
        for _ in 0..20_000 {
            step(&mut u, &mut r);
            u.follow();
            mirror.keep(&u);
            let byte = r.next() & 0xff;
            for (offset, write) in
                [(0x000, Some(byte)), (FR, None), (0x000, None), (0x038, None), (0x004, None)]
            {
                let mut locked_uart = u.clone();
                let slow = locked_uart.access(offset, write);
                let follow = locked_uart.follow();
                match mirror.access(offset, write) {
                    Some(fast) => {
                        answered += 1;
                        assert_eq!(fast, slow, "offset {offset:#x}");
                        assert_eq!(follow, None, "the line needed following");
                        assert_eq!(locked_uart, u, "the access changed the UART");
                    }
                    None => {
                        locked += 1;
                        assert!(
                            follow.is_some() || !matches!((offset, write), (0x000, Some(_)) | (FR, None))
                        );
                    }
                }
            }
        }
        assert!(answered > 1000 && locked > 1000, "{answered} answered, {locked} locked");
    }

    /// Following the line only when [`VirtualUart::follow`] says so leaves the virtual GIC's
    /// state of the UART's interrupt as following it at every access and every input does: a
    /// taken (active) or cleared interrupt comes back at the next access while the line is
    /// high, and is no longer pending once it fell.
    #[test]
    fn following_when_told_is_following_always() {
        use crate::vgic::{Access, Frame, VirtualGic};
        const UART: u32 = 33;
        let word = 4 * u64::from(UART / 32);
        let bit = 1u64 << (UART % 32);
        let write = |g: &mut VirtualGic, offset: u64, value: u64| {
            g.access(0, Frame::Distributor, Access { offset, size: 4, write: Some(value) });
        };
        let read = |g: &mut VirtualGic, offset: u64| {
            g.access(0, Frame::Distributor, Access { offset, size: 4, write: None })
        };
        let mut gics = [0, 1].map(|_| {
            let mut g = VirtualGic::new(1, &[UART]);
            g.set_level_at_reset(UART);
            write(&mut g, 0, 0x12); // GICD_CTLR: group 1 (affinity routing), enabled
            write(&mut g, 0x080 + word, bit); // IGROUPR: group 1
            write(&mut g, 0x100 + word, bit); // ISENABLER
            g
        });
        let mut r = Random(0x2545_f491_4f6c_dd1d);
        let (mut always, mut told) = (VirtualUart::new(), VirtualUart::new());
        let (mut taken, mut skipped) = (0, 0);
        for _ in 0..20_000 {
            let x = r.next();
            let mut r1 = Random(x | 1);
            let mut r2 = Random(x | 1);
            step(&mut always, &mut r1);
            step(&mut told, &mut r2);
            assert_eq!(always.line(), told.line());
            let level = always.line();
            gics[0].set_level(0, UART, level);
            match told.follow() {
                Some(high) => {
                    gics[1].set_level(0, UART, high);
                }
                None => skipped += 1,
            }
            // The guest takes the interrupt, completes it or clears it.
            match (x >> 56) % 4 {
                0 => {
                    for g in &mut gics {
                        if g.take_deliverable(0).is_some_and(|d| d.intid == UART) {
                            taken += 1;
                        }
                    }
                }
                1 => gics.iter_mut().for_each(|g| write(g, 0x380 + word, bit)), // ICACTIVER
                2 => gics.iter_mut().for_each(|g| write(g, 0x280 + word, bit)), // ICPENDR
                _ => {}
            }
            for offset in [0x200 + word, 0x300 + word] {
                let [a, b] = [read(&mut gics[0], offset), read(&mut gics[1], offset)];
                assert_eq!(a, b, "offset {offset:#x}");
            }
        }
        assert!(taken > 1000 && skipped > 1000, "{taken} taken, {skipped} skipped");
    }
}
