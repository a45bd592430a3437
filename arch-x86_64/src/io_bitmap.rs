//! The VMX I/O bitmaps of a partition (Intel SDM vol. 3C, 25.6.4): bitmap A covers ports
//! 0x0000..0x8000, B 0x8000..0x10000, one bit per port; a set bit makes an access exit. The
//! ports of the partition's own devices pass through; every other access exits and core
//! decides (the virtual UART, or its `outside-memory` choice).

use tantalum_core::config::x86::IoPorts;

/// Both bitmaps, A then B: 8 KiB, each bitmap 4 KiB-aligned when the whole is.
pub const SIZE: usize = 8192;

/// Fills `bitmaps` so that every port exits except those in `owned`.
pub fn build(bitmaps: &mut [u8; SIZE], owned: impl IntoIterator<Item = IoPorts>) {
    bitmaps.fill(0xff);
    for ports in owned {
        let end = ports.end().min(SIZE as u64 * 8);
        for port in u64::from(ports.base)..end {
            bitmaps[(port / 8) as usize] &= !(1 << (port % 8));
        }
    }
}

/// Makes accesses to `port` exit, owned or not.
pub fn trap(bitmaps: &mut [u8; SIZE], port: u16) {
    bitmaps[usize::from(port / 8)] |= 1 << (port % 8);
}

/// Whether an access to `port` exits under `bitmaps`.
pub fn exits(bitmaps: &[u8; SIZE], port: u16) -> bool {
    bitmaps[usize::from(port / 8)] & (1 << (port % 8)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_ports_pass_everything_else_exits() {
        let mut b = [0u8; SIZE];
        build(&mut b, [IoPorts { base: 0x2f8, count: 8 }, IoPorts { base: 0xfffe, count: 8 }]);
        assert!(exits(&b, 0x2f7) && !exits(&b, 0x2f8) && !exits(&b, 0x2ff) && exits(&b, 0x300));
        // Past the last port is clipped, not a panic; bitmap B holds the high ports.
        assert!(!exits(&b, 0xfffe) && !exits(&b, 0xffff) && exits(&b, 0xfffd));
        assert!(exits(&b, 0x3f8) && exits(&b, 0x8000) && exits(&b, 0));
        build(&mut b, []);
        assert!(b.iter().all(|&x| x == 0xff));
    }

    #[test]
    fn trapped_owned_ports_exit() {
        let mut b = [0u8; SIZE];
        build(&mut b, [IoPorts { base: 0x20, count: 2 }]);
        trap(&mut b, 0x21);
        assert!(!exits(&b, 0x20) && exits(&b, 0x21) && exits(&b, 0x22));
        trap(&mut b, 0xffff);
        assert!(exits(&b, 0xffff));
    }
}
