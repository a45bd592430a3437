//! Building second-stage translation tables (Arm stage 2, Intel EPT): the walk and the choice
//! of block sizes. The descriptor format is the arch layer's ([`Format`]); tables live wherever
//! the [`TableMemory`] puts them, so tests run over a fake allocator.

use crate::addr::{GuestPhys, HostPhys, PAGE_SIZE};

/// Entries per table (4 KiB granule, 8-byte descriptors).
pub const ENTRIES: usize = 512;

/// Access rights and memory type of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapAttrs {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
    /// Device memory (no speculation, no caching) instead of normal write-back memory.
    pub device: bool,
}

impl MapAttrs {
    /// Normal memory, readable, writable and executable: a partition's RAM.
    pub const RAM: MapAttrs = MapAttrs { read: true, write: true, execute: true, device: false };
}

/// The architecture's descriptor encoding.
pub trait Format {
    /// Translation levels in a full walk (4 for 48-bit, levels 0..=3); leaves at `LEAF_LEVEL`.
    const LEAF_LEVEL: usize = 3;
    /// Whether a level can hold block (large page) leaves.
    fn block_allowed(level: usize) -> bool;
    /// A descriptor pointing to the next-level table at `table`.
    fn table(table: HostPhys) -> u64;
    /// A leaf (block or page) descriptor mapping `pa` at `level`.
    fn leaf(level: usize, pa: HostPhys, attrs: MapAttrs) -> u64;
    /// Whether `desc` is valid at all.
    fn is_valid(desc: u64) -> bool;
    /// If `desc` at `level` points to a next-level table, that table's address.
    fn next_table(level: usize, desc: u64) -> Option<HostPhys>;
}

/// Where page tables live.
pub trait TableMemory {
    /// A zeroed, 4 KiB-aligned table; `None` when out of memory.
    fn alloc_table(&mut self) -> Option<HostPhys>;
    fn read(&self, table: HostPhys, index: usize) -> u64;
    fn write(&mut self, table: HostPhys, index: usize, desc: u64);
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    Unaligned,
    /// The range wraps or leaves the address space of the tables.
    OutOfRange,
    /// Part of the range is already mapped.
    AlreadyMapped(GuestPhys),
    OutOfMemory,
}

/// Bytes covered by one entry at `level` (level 3 = 4 KiB).
pub const fn entry_size(level: usize) -> u64 {
    PAGE_SIZE << (9 * (3 - level))
}

const fn index_at(level: usize, ipa: u64) -> usize {
    ((ipa / entry_size(level)) % ENTRIES as u64) as usize
}

/// Which leaves a mapping may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mappings {
    /// The largest blocks that alignment allows (fewest TLB entries on hardware).
    #[default]
    Blocks,
    /// 4 KiB pages only. For emulators whose TLB treats a two-stage entry as large when either
    /// stage is, and then flushes everything on any by-address invalidation inside it (QEMU).
    Pages,
}

impl Mappings {
    /// The names the system DT uses.
    pub const NAMES: [&'static str; 2] = ["blocks", "pages"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "blocks" => Some(Self::Blocks),
            "pages" => Some(Self::Pages),
            _ => None,
        }
    }
}

/// Second-stage tables rooted at one table, walked from `start_level`.
#[derive(Clone, Copy, Debug)]
pub struct Stage2 {
    pub root: HostPhys,
    pub start_level: usize,
    pub mappings: Mappings,
}

impl Stage2 {
    /// Allocates an empty root table; later mappings use `mappings`' leaves.
    pub fn new(mem: &mut dyn TableMemory, start_level: usize, mappings: Mappings) -> Result<Self, MapError> {
        let root = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
        Ok(Self { root, start_level, mappings })
    }

    /// Bytes of guest-physical space the tables cover.
    pub const fn span(&self) -> u64 {
        entry_size(self.start_level) * ENTRIES as u64
    }

    /// Maps `[ipa, ipa + size)` to `[pa, pa + size)`, using the largest blocks that alignment
    /// of both addresses allows (or pages only, as the tables' [`Mappings`] say).
    pub fn map<F: Format>(
        &self,
        mem: &mut dyn TableMemory,
        ipa: GuestPhys,
        pa: HostPhys,
        size: u64,
        attrs: MapAttrs,
    ) -> Result<(), MapError> {
        if !ipa.is_aligned(PAGE_SIZE) || !pa.is_aligned(PAGE_SIZE) || !size.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned);
        }
        let end = ipa.0.checked_add(size).ok_or(MapError::OutOfRange)?;
        if end > self.span() || pa.0.checked_add(size).is_none() {
            return Err(MapError::OutOfRange);
        }
        let (mut ipa, mut pa) = (ipa.0, pa.0);
        while ipa < end {
            let step = self.map_one::<F>(mem, ipa, pa, end - ipa, attrs)?;
            ipa += step;
            pa += step;
        }
        Ok(())
    }

    /// Maps the largest blocks possible from `ipa`, as many as fit in the table it reaches
    /// (one walk for a whole table of pages); returns the size mapped.
    fn map_one<F: Format>(
        &self,
        mem: &mut dyn TableMemory,
        ipa: u64,
        pa: u64,
        remaining: u64,
        attrs: MapAttrs,
    ) -> Result<u64, MapError> {
        let mut table = self.root;
        let mut level = self.start_level;
        loop {
            let size = entry_size(level);
            let index = index_at(level, ipa);
            let desc = mem.read(table, index);
            let fits = ipa.is_multiple_of(size) && pa.is_multiple_of(size) && remaining >= size;
            let blocks = self.mappings == Mappings::Blocks && F::block_allowed(level);
            let can_leaf = level == F::LEAF_LEVEL || blocks;
            if fits && can_leaf && !F::is_valid(desc) {
                let mut done = 0;
                for i in index..ENTRIES {
                    if remaining - done < size || F::is_valid(mem.read(table, i)) {
                        break;
                    }
                    mem.write(table, i, F::leaf(level, HostPhys(pa + done), attrs));
                    done += size;
                }
                return Ok(done);
            }
            if level == F::LEAF_LEVEL {
                return Err(MapError::AlreadyMapped(GuestPhys(ipa)));
            }
            table = match F::next_table(level, desc) {
                Some(next) => next,
                None if F::is_valid(desc) => return Err(MapError::AlreadyMapped(GuestPhys(ipa))),
                None => {
                    let next = mem.alloc_table().ok_or(MapError::OutOfMemory)?;
                    mem.write(table, index, F::table(next));
                    next
                }
            };
            level += 1;
        }
    }

    /// Walks the tables: the host-physical address `ipa` maps to, if any.
    pub fn translate<F: Format>(&self, mem: &dyn TableMemory, ipa: GuestPhys) -> Option<(HostPhys, u64)> {
        let mut table = self.root;
        let mut level = self.start_level;
        loop {
            let desc = mem.read(table, index_at(level, ipa.0));
            if !F::is_valid(desc) {
                return None;
            }
            match F::next_table(level, desc) {
                Some(next) if level < F::LEAF_LEVEL => table = next,
                _ => {
                    let size = entry_size(level);
                    let out = leaf_output(desc) + ipa.0 % size;
                    return Some((HostPhys(out), desc));
                }
            }
            level += 1;
        }
    }
}

/// Output address bits [47:12] of a leaf descriptor (same place on Arm VMSAv8 and Intel EPT),
/// with the in-block offset bits cleared by the caller's level.
fn leaf_output(desc: u64) -> u64 {
    desc & 0x0000_FFFF_FFFF_F000
}

#[cfg(test)]
pub(crate) mod tests {
    use alloc::collections::BTreeMap;

    use super::*;

    /// A simple format for tests: bit 0 valid, bit 1 table, bit 2 write, block at levels 1-2.
    pub struct TestFormat;
    impl Format for TestFormat {
        fn block_allowed(level: usize) -> bool {
            level == 1 || level == 2
        }
        fn table(table: HostPhys) -> u64 {
            table.0 | 0b11
        }
        fn leaf(level: usize, pa: HostPhys, attrs: MapAttrs) -> u64 {
            let page = if level == 3 { 0b10 } else { 0 };
            pa.0 | 0b1 | page | (u64::from(attrs.write) << 2)
        }
        fn is_valid(desc: u64) -> bool {
            desc & 1 == 1
        }
        fn next_table(level: usize, desc: u64) -> Option<HostPhys> {
            (level < 3 && desc & 0b11 == 0b11).then_some(HostPhys(desc & !0xfff))
        }
    }

    #[derive(Default)]
    pub struct FakeMemory {
        tables: BTreeMap<u64, [u64; ENTRIES]>,
        pub limit: Option<usize>,
    }
    impl TableMemory for FakeMemory {
        fn alloc_table(&mut self) -> Option<HostPhys> {
            if self.limit.is_some_and(|l| self.tables.len() >= l) {
                return None;
            }
            let addr = 0x1000_0000 + self.tables.len() as u64 * PAGE_SIZE;
            self.tables.insert(addr, [0; ENTRIES]);
            Some(HostPhys(addr))
        }
        fn read(&self, table: HostPhys, index: usize) -> u64 {
            self.tables[&table.0][index]
        }
        fn write(&mut self, table: HostPhys, index: usize, desc: u64) {
            self.tables.get_mut(&table.0).unwrap()[index] = desc;
        }
    }
    impl FakeMemory {
        pub fn table_count(&self) -> usize {
            self.tables.len()
        }
    }

    const G: u64 = 1 << 30;
    const M2: u64 = 2 << 20;

    #[test]
    fn uses_blocks_where_aligned() {
        let mut mem = FakeMemory::default();
        let s2 = Stage2::new(&mut mem, 1, Mappings::Blocks).unwrap();
        // 1 GiB aligned on both sides: a single level-1 block, no extra table.
        s2.map::<TestFormat>(&mut mem, GuestPhys(G), HostPhys(2 * G), G, MapAttrs::RAM).unwrap();
        assert_eq!(mem.table_count(), 1);
        assert_eq!(
            s2.translate::<TestFormat>(&mem, GuestPhys(G + 0x1234)).unwrap().0,
            HostPhys(2 * G + 0x1234)
        );
        // 2 MiB aligned: level-2 blocks in one new table.
        s2.map::<TestFormat>(&mut mem, GuestPhys(3 * G), HostPhys(0x4200_0000), 8 * M2, MapAttrs::RAM)
            .unwrap();
        assert_eq!(mem.table_count(), 2);
        let (pa, _) = s2.translate::<TestFormat>(&mem, GuestPhys(3 * G + 7 * M2 + 5)).unwrap();
        assert_eq!(pa, HostPhys(0x4200_0000 + 7 * M2 + 5));
    }

    #[test]
    fn page_mappings_never_use_blocks() {
        let mut mem = FakeMemory::default();
        let s2 = Stage2::new(&mut mem, 1, Mappings::Pages).unwrap();
        // 1 GiB aligned on both sides, yet pages: root, one L2, 512 L3 tables.
        s2.map::<TestFormat>(&mut mem, GuestPhys(G), HostPhys(2 * G), G, MapAttrs::RAM).unwrap();
        assert_eq!(mem.table_count(), 1 + 1 + 512);
        for off in [0, 0x1000, M2, G - 0x1000] {
            let (pa, desc) = s2.translate::<TestFormat>(&mem, GuestPhys(G + off)).unwrap();
            assert_eq!(pa, HostPhys(2 * G + off));
            assert_eq!(desc & 0b11, 0b11, "a level-3 page descriptor, not a block");
        }
    }

    #[test]
    fn falls_back_to_pages_when_only_one_side_is_aligned() {
        let mut mem = FakeMemory::default();
        let s2 = Stage2::new(&mut mem, 1, Mappings::Blocks).unwrap();
        // IPA 2 MiB aligned, PA only 4 KiB aligned: pages.
        s2.map::<TestFormat>(
            &mut mem,
            GuestPhys(0x4000_0000),
            HostPhys(0x4200_1000),
            M2 + 0x3000,
            MapAttrs::RAM,
        )
        .unwrap();
        assert_eq!(mem.table_count(), 4); // root, L2, two L3
        for off in [0, 0x1000, M2 - 0x1000, M2, M2 + 0x2000] {
            let (pa, _) = s2.translate::<TestFormat>(&mem, GuestPhys(0x4000_0000 + off)).unwrap();
            assert_eq!(pa, HostPhys(0x4200_1000 + off));
        }
        assert_eq!(s2.translate::<TestFormat>(&mem, GuestPhys(0x4000_0000 + M2 + 0x3000)), None);
        assert_eq!(s2.translate::<TestFormat>(&mem, GuestPhys(0x3fff_f000)), None);
    }

    #[test]
    fn refuses_overlap_misalignment_and_overflow() {
        let mut mem = FakeMemory::default();
        let s2 = Stage2::new(&mut mem, 1, Mappings::Blocks).unwrap();
        let map = |mem: &mut FakeMemory, ipa, pa, size| {
            s2.map::<TestFormat>(mem, GuestPhys(ipa), HostPhys(pa), size, MapAttrs::RAM)
        };
        map(&mut mem, 0x4000_0000, 0x4000_0000, M2).unwrap();
        assert_eq!(
            map(&mut mem, 0x4010_0000, 0x5000_0000, 0x1000),
            Err(MapError::AlreadyMapped(GuestPhys(0x4010_0000)))
        );
        assert_eq!(map(&mut mem, 0x4000_0800, 0, 0x1000), Err(MapError::Unaligned));
        assert_eq!(map(&mut mem, 0, 0, 0x800), Err(MapError::Unaligned));
        assert_eq!(map(&mut mem, !0xfff, 0, 0x2000), Err(MapError::OutOfRange));
        assert_eq!(map(&mut mem, 512 * G - 0x1000, 0, 0x2000), Err(MapError::OutOfRange));
        mem.limit = Some(mem.table_count());
        assert_eq!(map(&mut mem, 0x8000_1000, 0x8000_1000, 0x1000), Err(MapError::OutOfMemory));
    }
}
