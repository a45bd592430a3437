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

/// The PC chipset's reset control register (PIIX/ICH, byte port 0xcf9: writing 6 resets the
/// whole machine). It sits inside the PCI configuration ports 0xcf8..0xcff, which a partition
/// may own, so it stays trapped for every partition ([`machine_reset`]).
pub const RESET_CONTROL: u16 = 0xcf9;
/// System control port A (0x92: bit 0 is a fast reset of the machine).
pub const SYSTEM_CONTROL_A: u16 = 0x92;
/// The ports that reset the machine, trapped whoever owns them.
pub const MACHINE_RESET_PORTS: [u16; 2] = [RESET_CONTROL, SYSTEM_CONTROL_A];

/// Whether an access of `size` bytes at `port` reaches a machine-reset register: a byte or word
/// access that covers 0xcf9 (a dword at 0xcf8 is PCI CONFIG_ADDRESS, not the reset register),
/// or any access that covers port 0x92.
pub fn machine_reset(port: u16, size: u8) -> bool {
    let covers = |p: u16| (u32::from(port)..u32::from(port) + u32::from(size)).contains(&u32::from(p));
    (covers(RESET_CONTROL) && size < 4) || covers(SYSTEM_CONTROL_A)
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
    fn the_machine_reset_registers_are_told_apart_from_pci_configuration() {
        assert!(machine_reset(0xcf9, 1), "the reset control register");
        assert!(machine_reset(0xcf8, 2), "a word covering it");
        assert!(!machine_reset(0xcf8, 4), "CONFIG_ADDRESS");
        assert!(!machine_reset(0xcfc, 4) && !machine_reset(0xcfd, 1) && !machine_reset(0xcf8, 1));
        assert!(machine_reset(0x92, 1) && machine_reset(0x91, 2) && machine_reset(0x90, 4));
        assert!(!machine_reset(0x93, 1) && !machine_reset(0xffff, 4));
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
