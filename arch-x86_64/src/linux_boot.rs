//! The partition boot protocol on x86_64: the Linux 64-bit boot protocol
//! (Documentation/arch/x86/boot.rst, "64-bit boot protocol"). The vCPU starts in long mode at
//! the entry with paging on (identity page tables), `CS` = 0x10 and the data segments = 0x18 of
//! a flat GDT, interrupts off, and `rsi` = the guest-physical address of a `boot_params` ("zero
//! page") whose e820 table is the partition's memory and whose `setup_data` list holds the
//! guest device tree (`SETUP_DTB`).
//!
//! The hypervisor writes all of that into the [`BOOT_AREA_SIZE`] bytes of region 0 just below
//! the guest DTB (which stays where the arm64 port puts it, the top of region 0): the
//! `setup_data` header is the area's last 16 bytes, so the DTB that follows it is its payload.
//! This module builds the area's bytes; it is plain arithmetic, tested on the host.

/// Bytes of region 0 the boot area takes, just below the guest DTB (core's checker keeps room).
pub const BOOT_AREA_SIZE: u64 = tantalum_core::config::x86::BOOT_AREA;
const _: () = assert!(BOOT_AREA_SIZE == 8 * 4096, "the layout below fills eight pages");

/// Offsets in the boot area.
pub mod offset {
    /// Page-map level 4: entry 0 points at the PDPT.
    pub const PML4: u64 = 0x0000;
    /// Page-directory pointer table: entries 0..4 point at the PDs.
    pub const PDPT: u64 = 0x1000;
    /// Four page directories of 2 MiB identity pages: the first 4 GiB.
    pub const PD: u64 = 0x2000;
    /// The `boot_params` (zero page), 4 KiB.
    pub const BOOT_PARAMS: u64 = 0x6000;
    /// The GDT: null, null, code (0x10), data (0x18).
    pub const GDT: u64 = 0x7000;
    /// The `setup_data` header of the guest DTB, which follows the area.
    pub const SETUP_DATA: u64 = super::BOOT_AREA_SIZE - 16;
}

/// `__BOOT_CS` and `__BOOT_DS`, the selectors the protocol requires.
pub const CODE_SELECTOR: u16 = 0x10;
pub const DATA_SELECTOR: u16 = 0x18;
/// Bytes of GDT: four descriptors.
pub const GDT_LIMIT: u16 = 31;
/// 64-bit code (L, P, S, execute/read, accessed) and flat 32-bit data descriptors.
const GDT: [u64; 4] = [0, 0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff];

/// Offsets in `boot_params` (arch/x86/include/uapi/asm/bootparam.h).
pub mod boot_params {
    pub const E820_ENTRIES: usize = 0x1e8;
    pub const SETUP_SECTS: usize = 0x1f1;
    pub const BOOT_FLAG: usize = 0x1fe;
    pub const HEADER: usize = 0x202;
    pub const VERSION: usize = 0x206;
    pub const TYPE_OF_LOADER: usize = 0x210;
    pub const LOADFLAGS: usize = 0x211;
    pub const SETUP_DATA: usize = 0x250;
    pub const E820_TABLE: usize = 0x2d0;
    /// Entries the table holds.
    pub const E820_MAX: usize = 128;
    /// The `HdrS` signature and the protocol version Tantalum speaks (2.15).
    pub const HEADER_MAGIC: u32 = 0x5372_6448;
    pub const PROTOCOL_VERSION: u16 = 0x020f;
    /// `type_of_loader` 0xff: "undefined" (no assigned loader ID).
    pub const LOADER_UNDEFINED: u8 = 0xff;
    /// `loadflags`: LOADED_HIGH (the kernel is at or above 1 MiB).
    pub const LOADED_HIGH: u8 = 1;
}

/// `setup_data.type` of a flattened device tree.
pub const SETUP_DTB: u32 = 2;
/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;

/// Why the boot area cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootAreaError {
    /// The area is not page-aligned or would lie beyond 4 GiB (the identity map's reach).
    Misplaced,
    /// More memory regions than the e820 table holds.
    TooManyRegions,
    /// The guest DTB is larger than a `setup_data` length can say.
    DtbTooBig,
    /// The buffer is not [`BOOT_AREA_SIZE`] bytes.
    WrongSize,
}

/// Where the parts of a built boot area are, guest-physical.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootArea {
    pub base: u64,
}

impl BootArea {
    /// CR3: the PML4.
    pub const fn cr3(&self) -> u64 {
        self.base + offset::PML4
    }
    /// `rsi` at entry: the `boot_params`.
    pub const fn boot_params(&self) -> u64 {
        self.base + offset::BOOT_PARAMS
    }
    /// GDTR base.
    pub const fn gdt(&self) -> u64 {
        self.base + offset::GDT
    }
    /// Where the guest DTB must be: right after the area.
    pub const fn dtb(&self) -> u64 {
        self.base + BOOT_AREA_SIZE
    }
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

/// Fills `area` (at guest-physical `base`, [`BOOT_AREA_SIZE`] bytes) for a partition whose
/// memory is `regions` (guest-physical base, size) and whose guest DTB of `dtb_size` bytes
/// follows the area.
pub fn build(
    area: &mut [u8],
    base: u64,
    regions: &[(u64, u64)],
    dtb_size: u64,
) -> Result<BootArea, BootAreaError> {
    if area.len() != BOOT_AREA_SIZE as usize {
        return Err(BootAreaError::WrongSize);
    }
    if !base.is_multiple_of(4096) || base.checked_add(BOOT_AREA_SIZE).is_none_or(|end| end > 1 << 32) {
        return Err(BootAreaError::Misplaced);
    }
    if regions.len() > boot_params::E820_MAX {
        return Err(BootAreaError::TooManyRegions);
    }
    let dtb_len = u32::try_from(dtb_size).map_err(|_| BootAreaError::DtbTooBig)?;
    area.fill(0);
    const PRESENT_WRITABLE: u64 = 0b11;
    const LARGE: u64 = 1 << 7;
    put(area, offset::PML4 as usize, &((base + offset::PDPT) | PRESENT_WRITABLE).to_le_bytes());
    for gib in 0..4u64 {
        let pd = base + offset::PD + gib * 4096;
        put(area, (offset::PDPT + gib * 8) as usize, &(pd | PRESENT_WRITABLE).to_le_bytes());
        for i in 0..512u64 {
            let page = (gib << 30) | (i << 21) | PRESENT_WRITABLE | LARGE;
            put(area, (offset::PD + gib * 4096 + i * 8) as usize, &page.to_le_bytes());
        }
    }
    for (i, d) in GDT.iter().enumerate() {
        put(area, offset::GDT as usize + i * 8, &d.to_le_bytes());
    }
    let bp = offset::BOOT_PARAMS as usize;
    area[bp + boot_params::E820_ENTRIES] = regions.len() as u8;
    for (i, &(start, size)) in regions.iter().enumerate() {
        let at = bp + boot_params::E820_TABLE + i * 20;
        put(area, at, &start.to_le_bytes());
        put(area, at + 8, &size.to_le_bytes());
        put(area, at + 16, &E820_RAM.to_le_bytes());
    }
    put(area, bp + boot_params::BOOT_FLAG, &0xaa55u16.to_le_bytes());
    put(area, bp + boot_params::HEADER, &boot_params::HEADER_MAGIC.to_le_bytes());
    put(area, bp + boot_params::VERSION, &boot_params::PROTOCOL_VERSION.to_le_bytes());
    area[bp + boot_params::TYPE_OF_LOADER] = boot_params::LOADER_UNDEFINED;
    area[bp + boot_params::LOADFLAGS] = boot_params::LOADED_HIGH;
    let built = BootArea { base };
    if dtb_len > 0 {
        let sd = offset::SETUP_DATA as usize;
        put(area, bp + boot_params::SETUP_DATA, &(base + offset::SETUP_DATA).to_le_bytes());
        // next = 0 (already), type, len: the DTB is the payload that follows.
        put(area, sd + 8, &SETUP_DTB.to_le_bytes());
        put(area, sd + 12, &dtb_len.to_le_bytes());
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(a: &[u8], at: u64) -> u64 {
        u64::from_le_bytes(a[at as usize..at as usize + 8].try_into().unwrap())
    }
    fn u32_at(a: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(a[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn identity_map_of_4_gib_and_the_protocol_fields() {
        let mut a = [0u8; BOOT_AREA_SIZE as usize];
        let base = 0x01ff_0000 - BOOT_AREA_SIZE;
        let area = build(&mut a, base, &[(0x0100_0000, 0x0100_0000)], 0x800).unwrap();
        assert_eq!(area.dtb(), 0x01ff_0000);
        assert_eq!(u64_at(&a, offset::PML4), (base + offset::PDPT) | 3);
        assert_eq!(u64_at(&a, offset::PDPT + 3 * 8), (base + offset::PD + 3 * 4096) | 3);
        // PD 1, entry 5: 1 GiB + 10 MiB.
        assert_eq!(u64_at(&a, offset::PD + 4096 + 5 * 8), ((1 << 30) + (10 << 20)) | 0x83);
        let bp = offset::BOOT_PARAMS as usize;
        assert_eq!(a[bp + boot_params::E820_ENTRIES], 1);
        assert_eq!(u64_at(&a, (bp + boot_params::E820_TABLE) as u64 + 8), 0x0100_0000);
        assert_eq!(u32_at(&a, bp + boot_params::E820_TABLE + 16), E820_RAM);
        assert_eq!(u32_at(&a, bp + boot_params::HEADER), boot_params::HEADER_MAGIC);
        // setup_data: the header's payload is the DTB right after the area.
        let sd = u64_at(&a, (bp + boot_params::SETUP_DATA) as u64);
        assert_eq!(sd + 16, area.dtb());
        assert_eq!(u32_at(&a, offset::SETUP_DATA as usize + 8), SETUP_DTB);
        assert_eq!(u32_at(&a, offset::SETUP_DATA as usize + 12), 0x800);
        assert_eq!(u64_at(&a, offset::GDT + 16), GDT[2]);
    }

    #[test]
    fn hostile_placements_are_refused() {
        let mut a = [0u8; BOOT_AREA_SIZE as usize];
        assert_eq!(build(&mut a, 0x1234, &[], 0), Err(BootAreaError::Misplaced));
        assert_eq!(build(&mut a, (1 << 32) - 4096, &[], 0), Err(BootAreaError::Misplaced));
        assert_eq!(build(&mut a, u64::MAX & !0xfff, &[], 0), Err(BootAreaError::Misplaced));
        let many = [(0u64, 4096u64); 129];
        assert_eq!(build(&mut a, 0x10_0000, &many, 0), Err(BootAreaError::TooManyRegions));
        assert_eq!(build(&mut a, 0x10_0000, &[], 1 << 32), Err(BootAreaError::DtbTooBig));
        assert_eq!(build(&mut a[..4096], 0x10_0000, &[], 0), Err(BootAreaError::WrongSize));
        // No DTB: no setup_data.
        build(&mut a, 0x10_0000, &[], 0).unwrap();
        assert_eq!(u64_at(&a, offset::BOOT_PARAMS + boot_params::SETUP_DATA as u64), 0);
    }
}
