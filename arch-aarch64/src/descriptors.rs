//! VMSAv8-64 translation-table descriptors (4 KiB granule): stage 2 for partitions, and the
//! hypervisor's own EL2 stage 1.

use tantalum_core::addr::HostPhys;
use tantalum_core::config::HypervisorMap;
use tantalum_core::stage2::{Format, MapAttrs, ENTRIES};

pub(crate) const VALID: u64 = 1 << 0;
/// Bit 1: table (levels 0-2) or page (level 3); clear for a block.
pub(crate) const TABLE_OR_PAGE: u64 = 1 << 1;
pub(crate) const AF: u64 = 1 << 10;
pub(crate) const SH_INNER: u64 = 0b11 << 8;
pub(crate) const ADDR_MASK: u64 = 0x0000_FFFF_FFFF_F000;

/// What every VMSAv8-64 format (stage 2, the EL2 map, an SMMU's DMA map) shares: how a table
/// descriptor looks, what is valid, where a table descriptor points, how a leaf is marked.
pub(crate) mod vmsa {
    use super::{ADDR_MASK, TABLE_OR_PAGE, VALID};
    use tantalum_core::addr::HostPhys;

    pub fn table(table: HostPhys) -> u64 {
        (table.as_u64() & ADDR_MASK) | TABLE_OR_PAGE | VALID
    }

    pub fn is_valid(desc: u64) -> bool {
        desc & VALID != 0
    }

    pub fn next_table(level: usize, desc: u64) -> Option<HostPhys> {
        let is_table = level < 3 && desc & (VALID | TABLE_OR_PAGE) == (VALID | TABLE_OR_PAGE);
        is_table.then_some(HostPhys(desc & ADDR_MASK))
    }

    /// A leaf's type bits at `level`: a page at level 3, a block above, with its output address.
    pub fn leaf(level: usize, pa: HostPhys) -> u64 {
        let kind = if level == 3 { TABLE_OR_PAGE | VALID } else { VALID };
        (pa.as_u64() & ADDR_MASK) | kind
    }
}

/// Stage-2 MemAttr[5:2]: Normal, outer and inner write-back.
const S2_MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
/// Stage-2 MemAttr[5:2]: Device-nGnRE.
const S2_MEMATTR_DEVICE: u64 = 0b0001 << 2;
const S2AP_READ: u64 = 1 << 6;
const S2AP_WRITE: u64 = 1 << 7;
/// Stage-2 XN[54:53] = 0b10: not executable at EL1 or EL0.
const S2_XN: u64 = 0b10 << 53;

/// The stage-2 descriptor format (Arm ARM D8.3, "VMSAv8-64 translation table format").
#[derive(Debug)]
pub struct Stage2Format;

impl Format for Stage2Format {
    fn block_allowed(level: usize) -> bool {
        level == 1 || level == 2
    }

    fn table(table: HostPhys) -> u64 {
        vmsa::table(table)
    }

    fn leaf(level: usize, pa: HostPhys, attrs: MapAttrs) -> u64 {
        let memattr = if attrs.device { S2_MEMATTR_DEVICE } else { S2_MEMATTR_NORMAL_WB | SH_INNER };
        let read = if attrs.read { S2AP_READ } else { 0 };
        let write = if attrs.write { S2AP_WRITE } else { 0 };
        let xn = if attrs.execute && !attrs.device { 0 } else { S2_XN };
        vmsa::leaf(level, pa) | memattr | read | write | AF | xn
    }

    fn is_valid(desc: u64) -> bool {
        vmsa::is_valid(desc)
    }

    fn next_table(level: usize, desc: u64) -> Option<HostPhys> {
        vmsa::next_table(level, desc)
    }
}

/// MAIR_EL2 index of normal write-back memory.
pub const MAIR_IDX_NORMAL: u64 = 0;
/// MAIR_EL2 index of Device-nGnRnE memory.
pub const MAIR_IDX_DEVICE: u64 = 1;
/// MAIR_EL2 value: attr0 = Normal WB RA/WA (0xff), attr1 = Device-nGnRnE (0x00).
pub const MAIR_EL2_VALUE: u64 = 0xff;

/// EL2 stage-1 AP[2]: read-only (EL2 has one privilege level: AP[1] does not apply).
const S1_AP_READ_ONLY: u64 = 1 << 7;

/// The hypervisor's own EL2 stage-1 descriptor format, for the map built at boot from the
/// system's layout: normal memory write-back and inner shareable, devices Device-nGnRnE; a
/// mapping is writable or executable, never both (W^X); devices never execute.
#[derive(Debug)]
pub struct El2Format;

impl Format for El2Format {
    fn block_allowed(level: usize) -> bool {
        level == 1 || level == 2
    }

    fn table(table: HostPhys) -> u64 {
        vmsa::table(table)
    }

    fn leaf(level: usize, pa: HostPhys, attrs: MapAttrs) -> u64 {
        let memattr = if attrs.device { MAIR_IDX_DEVICE << 2 } else { (MAIR_IDX_NORMAL << 2) | SH_INNER };
        let ap = if attrs.write { 0 } else { S1_AP_READ_ONLY };
        let xn = if attrs.execute && !attrs.write && !attrs.device { 0 } else { S1_XN };
        vmsa::leaf(level, pa) | memattr | ap | AF | xn
    }

    fn is_valid(desc: u64) -> bool {
        vmsa::is_valid(desc)
    }

    fn next_table(level: usize, desc: u64) -> Option<HostPhys> {
        vmsa::next_table(level, desc)
    }
}

/// A level-1 table of the hypervisor's EL2 identity map: 1 GiB blocks, 39-bit VA.
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct El2Table(pub [u64; ENTRIES]);

/// Stage-1 (EL2) block descriptor XN bit.
const S1_XN: u64 = 1 << 54;

/// Block descriptor attributes of the boot-time EL2 identity map (1 GiB blocks, built by the
/// boot code from BootInfo's [`HypervisorMap`] before the MMU goes on): RAM normal,
/// write-back, executable (the hypervisor runs from it until its own W^X map replaces this one).
pub const EL2_BOOT_RAM_BLOCK: u64 = VALID | AF | SH_INNER | (MAIR_IDX_NORMAL << 2);
/// The same for the device window: Device-nGnRnE, never executable.
pub const EL2_BOOT_DEVICE_BLOCK: u64 = VALID | AF | (MAIR_IDX_DEVICE << 2) | S1_XN;

/// Entry `index` (the GiB at `index << 30`) of the boot-time EL2 identity map for `map`: what
/// the boot code computes in assembly (RAM first, then devices, else invalid).
pub fn el2_boot_block(map: &HypervisorMap, index: u64) -> u64 {
    let addr = index << 30;
    let (rs, re) = (map.ram.start.as_u64(), map.ram.start.as_u64() + map.ram.size);
    let (ds, de) = (map.devices.start.as_u64(), map.devices.start.as_u64() + map.devices.size);
    if addr >= rs && addr < re {
        addr | EL2_BOOT_RAM_BLOCK
    } else if addr >= ds && addr < de {
        addr | EL2_BOOT_DEVICE_BLOCK
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantalum_core::addr::HostRange;

    #[test]
    fn stage2_ram_block_and_page() {
        let block = Stage2Format::leaf(1, HostPhys(0x4000_0000), MapAttrs::RAM);
        assert_eq!(block, 0x4000_0000 | 0x7fd);
        let page = Stage2Format::leaf(3, HostPhys(0x4200_1000), MapAttrs::RAM);
        assert_eq!(page, 0x4200_1000 | 0x7ff);
        assert!(Stage2Format::next_table(3, page).is_none());
        assert!(Stage2Format::next_table(1, block).is_none());
    }

    #[test]
    fn el2_map_is_write_xor_execute() {
        let text = MapAttrs { write: false, ..MapAttrs::RAM };
        let t = El2Format::leaf(3, HostPhys(0x4008_0000), text);
        assert_eq!(t & (S1_XN | S1_AP_READ_ONLY), S1_AP_READ_ONLY, "text: read-only, executable");
        // RAM attributes ask for write and execute: write wins, execution is refused.
        let data = El2Format::leaf(3, HostPhys(0x4010_0000), MapAttrs::RAM);
        assert_eq!(data & (S1_XN | S1_AP_READ_ONLY), S1_XN);
        let rodata = MapAttrs { write: false, execute: false, ..MapAttrs::RAM };
        assert_eq!(
            El2Format::leaf(2, HostPhys(0x4020_0000), rodata) & (S1_XN | S1_AP_READ_ONLY | 3),
            S1_XN | S1_AP_READ_ONLY | VALID
        );
        let device = MapAttrs { device: true, execute: true, ..MapAttrs::RAM };
        let d = El2Format::leaf(3, HostPhys(0x900_0000), device);
        assert_eq!((d & S1_XN, (d >> 2) & 7), (S1_XN, MAIR_IDX_DEVICE));
    }

    #[test]
    fn stage2_read_only_device_and_table() {
        let ro = MapAttrs { write: false, ..MapAttrs::RAM };
        assert_eq!(Stage2Format::leaf(3, HostPhys(0x1000), ro) & (S2AP_READ | S2AP_WRITE), S2AP_READ);
        let dev = MapAttrs { device: true, execute: false, ..MapAttrs::RAM };
        let d = Stage2Format::leaf(3, HostPhys(0x900_0000), dev);
        assert_eq!(d & (0xf << 2), S2_MEMATTR_DEVICE);
        assert_eq!(d & S2_XN, S2_XN);
        let t = Stage2Format::table(HostPhys(0x4010_2000));
        assert_eq!(Stage2Format::next_table(0, t), Some(HostPhys(0x4010_2000)));
    }

    #[test]
    fn el2_boot_map_follows_the_board() {
        // A ZCU102: RAM in the first two GiB, devices in the fourth.
        let map = HypervisorMap {
            ram: HostRange::new(HostPhys(0), 2 << 30),
            devices: HostRange::new(HostPhys(3 << 30), 1 << 30),
        };
        let t: [u64; 5] = core::array::from_fn(|i| el2_boot_block(&map, i as u64));
        assert_eq!(t[0], EL2_BOOT_RAM_BLOCK);
        assert_eq!(t[1] & ADDR_MASK, 1 << 30);
        assert_eq!(t[1] & S1_XN, 0, "RAM executes (the hypervisor runs there)");
        assert_eq!(t[2], 0);
        assert_eq!(t[3], (3 << 30) | EL2_BOOT_DEVICE_BLOCK);
        assert_eq!(t[3] & S1_XN, S1_XN);
        assert_eq!(t[4], 0);
    }
}
