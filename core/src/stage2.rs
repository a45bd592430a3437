//! Building second-stage translation tables (Arm stage 2, Intel EPT): the walk and the choice
//! of block sizes. The descriptor format is the arch layer's ([`Format`]); tables live wherever
//! the [`TableMemory`] puts them, so tests run over a fake allocator.

use alloc::vec::Vec;

use crate::addr::{align_up, GuestPhys, HostPhys, HostRange, PAGE_SIZE};

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
    /// `count` zeroed, contiguous tables aligned to their total size (a concatenated root, at
    /// most [`MAX_ROOT_TABLES`]); `None` when out of memory.
    fn alloc_tables(&mut self, count: usize) -> Option<HostPhys>;
    /// One zeroed, 4 KiB-aligned table.
    fn alloc_table(&mut self) -> Option<HostPhys> {
        self.alloc_tables(1)
    }
    /// Entry `index` of the table at `table` (past [`ENTRIES`] only in a concatenated root).
    fn read(&self, table: HostPhys, index: usize) -> u64;
    fn write(&mut self, table: HostPhys, index: usize, desc: u64);
}

/// Most tables the architecture concatenates at the first level of a stage-2 walk.
pub const MAX_ROOT_TABLES: usize = 16;

/// Where stage-2 walks start (4 KiB granule): the level, and how many tables are concatenated
/// there. Starting a level lower saves one memory access per step of every nested walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub start_level: usize,
    /// Tables concatenated at the start level: 1, 2, 4, 8 or 16.
    pub root_tables: usize,
    /// Bits of guest-physical address translated (VTCR_EL2.T0SZ = 64 - this).
    pub ipa_bits: u32,
}

impl Geometry {
    /// The shortest walk that translates every guest-physical address below `end`: from
    /// level 2 with up to 16 tables concatenated (up to 16 GiB), else from level 1 (512 GiB,
    /// [`crate::config::IPA_LIMIT`]); `None` beyond that.
    pub fn covering(end: u64) -> Option<Geometry> {
        let bits = (u64::BITS - end.saturating_sub(1).leading_zeros()).max(30);
        match bits {
            30..=34 => Some(Geometry { start_level: 2, root_tables: 1 << (bits - 30), ipa_bits: bits }),
            35..=39 => Some(Geometry { start_level: 1, root_tables: 1, ipa_bits: 39 }),
            _ => None,
        }
    }
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

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapError::Unaligned => write!(f, "a mapping is not 4 KiB aligned"),
            MapError::OutOfRange => write!(f, "a mapping lies outside the address space of the tables"),
            MapError::AlreadyMapped(at) => {
                write!(f, "address {at} is mapped twice (two things share that page)")
            }
            MapError::OutOfMemory => write!(f, "the hypervisor heap has no room for the tables"),
        }
    }
}

/// Bytes covered by one entry at `level` (level 3 = 4 KiB).
pub const fn entry_size(level: usize) -> u64 {
    PAGE_SIZE << (9 * (3 - level))
}

pub use tantalum_config::stage2::Mappings;

/// Second-stage tables rooted at `root`, walked as `geometry` says.
#[derive(Clone, Copy, Debug)]
pub struct Stage2 {
    pub root: HostPhys,
    pub geometry: Geometry,
    pub mappings: Mappings,
}

impl Stage2 {
    /// Allocates an empty root; later mappings use `mappings`' leaves.
    pub fn new(mem: &mut dyn TableMemory, geometry: Geometry, mappings: Mappings) -> Result<Self, MapError> {
        let root = mem.alloc_tables(geometry.root_tables).ok_or(MapError::OutOfMemory)?;
        Ok(Self { root, geometry, mappings })
    }

    /// Bytes of guest-physical space the tables cover.
    pub const fn span(&self) -> u64 {
        entry_size(self.geometry.start_level) * self.entries(self.geometry.start_level) as u64
    }

    /// Entries of a table at `level` (the root may be several tables).
    const fn entries(&self, level: usize) -> usize {
        if level == self.geometry.start_level {
            ENTRIES * self.geometry.root_tables
        } else {
            ENTRIES
        }
    }

    /// Index of `ipa`'s entry in its table at `level`.
    const fn index(&self, level: usize, ipa: u64) -> usize {
        ((ipa / entry_size(level)) % self.entries(level) as u64) as usize
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
        let mut level = self.geometry.start_level;
        loop {
            let size = entry_size(level);
            let index = self.index(level, ipa);
            let desc = mem.read(table, index);
            let fits = ipa.is_multiple_of(size) && pa.is_multiple_of(size) && remaining >= size;
            let blocks = self.mappings == Mappings::Blocks && F::block_allowed(level);
            let can_leaf = level == F::LEAF_LEVEL || blocks;
            if fits && can_leaf && !F::is_valid(desc) {
                let mut done = 0;
                for i in index..self.entries(level) {
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

    /// Where the 4 KiB page descriptor that maps `ipa` lives (its table and index), for a caller
    /// that withdraws and restores that one page's mapping; `None` if `ipa` is unmapped or lies
    /// in a block (which maps more than the page).
    pub fn page_entry<F: Format>(&self, mem: &dyn TableMemory, ipa: GuestPhys) -> Option<(HostPhys, usize)> {
        let mut table = self.root;
        for level in self.geometry.start_level..=F::LEAF_LEVEL {
            let index = self.index(level, ipa.0);
            let desc = mem.read(table, index);
            if !F::is_valid(desc) {
                return None;
            }
            if level == F::LEAF_LEVEL {
                return Some((table, index));
            }
            table = F::next_table(level, desc)?;
        }
        None
    }

    /// Walks the tables: the host-physical address `ipa` maps to, if any.
    pub fn translate<F: Format>(&self, mem: &dyn TableMemory, ipa: GuestPhys) -> Option<(HostPhys, u64)> {
        let mut table = self.root;
        let mut level = self.geometry.start_level;
        loop {
            let desc = mem.read(table, self.index(level, ipa.0));
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

/// The whole pages that hold `ranges` (devices' MMIO windows, which stage 2 can only map by
/// the page), sorted and merged: two devices of one partition that share a page map it once.
pub fn covering_pages(ranges: &[HostRange]) -> Vec<HostRange> {
    let mut pages: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for r in ranges.iter().filter(|r| r.size > 0) {
        pages.push((r.start.0 & !(PAGE_SIZE - 1), align_up(r.end(), PAGE_SIZE).unwrap_or(!(PAGE_SIZE - 1))));
    }
    crate::sort::sort(&mut pages);
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(pages.len());
    for (start, end) in pages {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged.into_iter().map(|(start, end)| HostRange::new(HostPhys(start), end - start)).collect()
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
        fn alloc_tables(&mut self, count: usize) -> Option<HostPhys> {
            if self.limit.is_some_and(|l| self.tables.len() + count > l) {
                return None;
            }
            let next = self.tables.keys().next_back().map_or(0x1000_0000, |&a| a + PAGE_SIZE);
            let addr = next.next_multiple_of(count as u64 * PAGE_SIZE);
            for i in 0..count as u64 {
                self.tables.insert(addr + i * PAGE_SIZE, [0; ENTRIES]);
            }
            Some(HostPhys(addr))
        }
        fn read(&self, table: HostPhys, index: usize) -> u64 {
            self.tables[&(table.0 + (index / ENTRIES) as u64 * PAGE_SIZE)][index % ENTRIES]
        }
        fn write(&mut self, table: HostPhys, index: usize, desc: u64) {
            let at = table.0 + (index / ENTRIES) as u64 * PAGE_SIZE;
            self.tables.get_mut(&at).unwrap()[index % ENTRIES] = desc;
        }
    }
    impl FakeMemory {
        pub fn table_count(&self) -> usize {
            self.tables.len()
        }
    }

    const G: u64 = 1 << 30;
    const M2: u64 = 2 << 20;
    /// A 39-bit walk from level 1 (one root table).
    const LEVEL1: Geometry = Geometry { start_level: 1, root_tables: 1, ipa_bits: 39 };

    #[test]
    fn geometry_is_the_shortest_walk_that_covers() {
        let at = |end| Geometry::covering(end).map(|g| (g.start_level, g.root_tables, g.ipa_bits));
        assert_eq!(at(0), Some((2, 1, 30)));
        assert_eq!(at(G), Some((2, 1, 30)));
        assert_eq!(at(G + 1), Some((2, 2, 31)));
        assert_eq!(at(0x5800_0000), Some((2, 2, 31))); // QEMU virt: RAM at 1 GiB
        assert_eq!(at(16 * G), Some((2, 16, 34)));
        assert_eq!(at(16 * G + 0x1000), Some((1, 1, 39)));
        assert_eq!(at(512 * G), Some((1, 1, 39)));
        assert_eq!(at(512 * G + 1), None);
    }

    #[test]
    fn a_concatenated_root_maps_across_its_tables() {
        let mut mem = FakeMemory::default();
        let geometry = Geometry::covering(4 * G).unwrap();
        let s2 = Stage2::new(&mut mem, geometry, Mappings::Pages).unwrap();
        assert_eq!((geometry.start_level, geometry.root_tables, s2.span()), (2, 4, 4 * G));
        assert!(s2.root.0.is_multiple_of(4 * PAGE_SIZE), "aligned to the concatenation");
        // 4 MiB straddling the first and second root tables (1 GiB each).
        let (ipa, pa) = (G - M2, 0x9000_0000);
        s2.map::<TestFormat>(&mut mem, GuestPhys(ipa), HostPhys(pa), 2 * M2, MapAttrs::RAM).unwrap();
        for off in [0, M2 - 0x1000, M2, 2 * M2 - 0x1000] {
            assert_eq!(s2.translate::<TestFormat>(&mem, GuestPhys(ipa + off)).unwrap().0, HostPhys(pa + off));
        }
        assert_eq!(mem.read(s2.root, 511) & 0b11, 0b11, "last entry of the first root table");
        assert_eq!(mem.read(s2.root, 512) & 0b11, 0b11, "first entry of the second");
        assert_eq!(s2.translate::<TestFormat>(&mem, GuestPhys(ipa + 2 * M2)), None);
        let beyond = s2.map::<TestFormat>(&mut mem, GuestPhys(4 * G), HostPhys(0), 0x1000, MapAttrs::RAM);
        assert_eq!(beyond, Err(MapError::OutOfRange));
    }

    #[test]
    fn uses_blocks_where_aligned() {
        let mut mem = FakeMemory::default();
        let s2 = Stage2::new(&mut mem, LEVEL1, Mappings::Blocks).unwrap();
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
        let s2 = Stage2::new(&mut mem, LEVEL1, Mappings::Pages).unwrap();
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
    fn a_page_entry_is_found_only_for_a_mapped_page() {
        let mut mem = FakeMemory::default();
        let s2 = Stage2::new(&mut mem, LEVEL1, Mappings::Blocks).unwrap();
        s2.map::<TestFormat>(&mut mem, GuestPhys(3 * G), HostPhys(0x4200_0000), 2 * M2, MapAttrs::RAM)
            .unwrap();
        s2.map::<TestFormat>(&mut mem, GuestPhys(0x801_0000), HostPhys(0x804_0000), 0x2000, MapAttrs::RAM)
            .unwrap();
        let (table, index) = s2.page_entry::<TestFormat>(&mem, GuestPhys(0x801_0000)).unwrap();
        assert_eq!(index, 0x10);
        // Withdrawn, the page no longer translates; its neighbour still does; restored, it does.
        let desc = mem.read(table, index);
        mem.write(table, index, 0);
        assert_eq!(s2.translate::<TestFormat>(&mem, GuestPhys(0x801_0004)), None);
        assert!(s2.translate::<TestFormat>(&mem, GuestPhys(0x801_1000)).is_some());
        mem.write(table, index, desc);
        assert_eq!(s2.translate::<TestFormat>(&mem, GuestPhys(0x801_0004)).unwrap().0, HostPhys(0x804_0004));
        assert_eq!(s2.page_entry::<TestFormat>(&mem, GuestPhys(3 * G)), None, "inside a block");
        assert_eq!(s2.page_entry::<TestFormat>(&mem, GuestPhys(0x801_2000)), None, "unmapped");
    }

    #[test]
    fn falls_back_to_pages_when_only_one_side_is_aligned() {
        let mut mem = FakeMemory::default();
        let s2 = Stage2::new(&mut mem, LEVEL1, Mappings::Blocks).unwrap();
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
        let s2 = Stage2::new(&mut mem, LEVEL1, Mappings::Blocks).unwrap();
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

    #[test]
    fn devices_sharing_a_page_map_it_once() {
        let r = |start: u64, size: u64| HostRange::new(HostPhys(start), size);
        // QEMU virt's virtio-mmio slots are 0x200 apart: eight share a page.
        let pages = covering_pages(&[r(0xa000200, 0x200), r(0xa000000, 0x200), r(0xa003e00, 0x200)]);
        assert_eq!(pages, [r(0xa000000, 0x1000), r(0xa003000, 0x1000)]);
        // Adjacent pages merge into one run; a window crossing a page boundary takes both.
        assert_eq!(covering_pages(&[r(0x9000000, 0x1000), r(0x9001000, 0x1000)]), [r(0x9000000, 0x2000)]);
        assert_eq!(covering_pages(&[r(0x9000ff0, 0x20)]), [r(0x9000000, 0x2000)]);
        assert_eq!(covering_pages(&[r(0x9000000, 0)]), []);
    }
}
