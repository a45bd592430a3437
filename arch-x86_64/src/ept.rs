//! Extended page tables (Intel SDM vol. 3C, 29.3): the x86 second-stage format that core's
//! stage-2 builder ([`tantalum_core::stage2`]) fills, beside the VMSA one on Arm. 4-level walks
//! from the PML4 (level 0), 2 MiB pages where alignment allows (level 2), 4 KiB pages (level 3).

use tantalum_core::addr::HostPhys;
use tantalum_core::stage2::{Format, Geometry, MapAttrs};

const READ: u64 = 1 << 0;
const WRITE: u64 = 1 << 1;
/// Supervisor-mode execute (user-mode execute is the same bit without mode-based control).
const EXECUTE: u64 = 1 << 2;
/// Memory type of a leaf, bits 5:3.
const MEMTYPE_SHIFT: u64 = 3;
const MEMTYPE_UC: u64 = 0;
const MEMTYPE_WB: u64 = 6;
/// A PDPTE or PDE maps a large page.
const LARGE: u64 = 1 << 7;
/// Bits 51:12.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The walk every EPT uses: 4 levels, one PML4 (48-bit guest-physical addresses).
pub const GEOMETRY: Geometry = Geometry { start_level: 0, root_tables: 1, ipa_bits: 48 };

/// The EPT entry format.
#[derive(Clone, Copy, Debug)]
pub struct EptFormat;

impl Format for EptFormat {
    fn block_allowed(level: usize) -> bool {
        level == 2
    }

    fn table(table: HostPhys) -> u64 {
        (table.as_u64() & ADDR_MASK) | READ | WRITE | EXECUTE
    }

    fn leaf(level: usize, pa: HostPhys, attrs: MapAttrs) -> u64 {
        let large = if level == 3 { 0 } else { LARGE };
        let memtype = if attrs.device { MEMTYPE_UC } else { MEMTYPE_WB };
        let read = if attrs.read { READ } else { 0 };
        let write = if attrs.write { WRITE } else { 0 };
        let execute = if attrs.execute && !attrs.device { EXECUTE } else { 0 };
        (pa.as_u64() & ADDR_MASK) | large | (memtype << MEMTYPE_SHIFT) | read | write | execute
    }

    fn is_valid(desc: u64) -> bool {
        desc & (READ | WRITE | EXECUTE) != 0
    }

    fn next_table(level: usize, desc: u64) -> Option<HostPhys> {
        let is_table = level < 3 && Self::is_valid(desc) && desc & LARGE == 0;
        is_table.then_some(HostPhys(desc & ADDR_MASK))
    }
}

/// The EPT pointer (VMCS field 0x201A) of tables rooted at `root`: write-back walks of 4 levels,
/// accessed and dirty flags off.
pub const fn eptp(root: HostPhys) -> u64 {
    (root.as_u64() & ADDR_MASK) | (3 << 3) | MEMTYPE_WB
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tantalum_core::addr::GuestPhys;
    use tantalum_core::stage2::{Mappings, Stage2, TableMemory};

    use super::*;

    #[derive(Default)]
    struct Fake {
        next: u64,
        tables: HashMap<(u64, usize), u64>,
    }

    impl TableMemory for Fake {
        fn alloc_tables(&mut self, count: usize) -> Option<HostPhys> {
            self.next += 0x1000 * count as u64;
            Some(HostPhys(0x10_0000 + self.next))
        }
        fn read(&self, table: HostPhys, index: usize) -> u64 {
            self.tables.get(&(table.as_u64(), index)).copied().unwrap_or(0)
        }
        fn write(&mut self, table: HostPhys, index: usize, desc: u64) {
            self.tables.insert((table.as_u64(), index), desc);
        }
    }

    /// Walks the tables like the CPU: the leaf entry for `gpa` and its level.
    fn walk(mem: &Fake, s2: &Stage2, gpa: u64) -> Option<(usize, u64)> {
        let mut table = s2.root;
        for level in 0..=3 {
            let index = ((gpa >> (39 - 9 * level)) & 0x1ff) as usize;
            let desc = mem.read(table, index);
            if !EptFormat::is_valid(desc) {
                return None;
            }
            match EptFormat::next_table(level, desc) {
                Some(next) => table = next,
                None => return Some((level, desc)),
            }
        }
        None
    }

    #[test]
    fn ram_uses_2mib_pages_where_aligned_and_4kib_elsewhere() {
        let mut mem = Fake::default();
        let s2 = Stage2::new(&mut mem, GEOMETRY, Mappings::Blocks).unwrap();
        // 4 MiB + 4 KiB at GPA 0x20_0000 -> HPA 0x4020_0000.
        s2.map::<EptFormat>(&mut mem, GuestPhys(0x20_0000), HostPhys(0x4020_0000), 0x40_1000, MapAttrs::RAM)
            .unwrap();
        let (level, desc) = walk(&mem, &s2, 0x30_0123).unwrap();
        assert_eq!(level, 2);
        assert_eq!(desc, 0x4020_0000 | LARGE | (MEMTYPE_WB << 3) | 7);
        let (level, desc) = walk(&mem, &s2, 0x60_0000).unwrap();
        assert_eq!((level, desc & ADDR_MASK), (3, 0x4060_0000));
        assert!(walk(&mem, &s2, 0x60_1000).is_none());
        assert!(walk(&mem, &s2, 0x1f_f000).is_none());
    }

    #[test]
    fn devices_are_uncached_and_never_executable() {
        let mut mem = Fake::default();
        let s2 = Stage2::new(&mut mem, GEOMETRY, Mappings::Pages).unwrap();
        let device = MapAttrs { read: true, write: true, execute: true, device: true };
        s2.map::<EptFormat>(&mut mem, GuestPhys(0xfec0_0000), HostPhys(0xfec0_0000), 0x1000, device).unwrap();
        let (level, desc) = walk(&mem, &s2, 0xfec0_0010).unwrap();
        assert_eq!((level, desc), (3, 0xfec0_0000 | READ | WRITE));
    }

    #[test]
    fn the_pointer_says_four_levels_write_back() {
        assert_eq!(eptp(HostPhys(0x12_3000)), 0x12_3000 | 0x1e);
    }
}
