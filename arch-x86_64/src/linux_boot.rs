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
    /// A Linux kernel's command line (NUL-terminated), up to the `setup_data` header.
    pub const CMDLINE: u64 = 0x7100;
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
    pub const EXT_RAMDISK_IMAGE: usize = 0x0c0;
    pub const EXT_RAMDISK_SIZE: usize = 0x0c4;
    pub const EXT_CMD_LINE_PTR: usize = 0x0c8;
    /// The setup header starts here, in `boot_params` as in the bzImage.
    pub const SETUP_HEADER: usize = 0x1f1;
    /// The 2-byte jump at 0x200 whose offset byte (0x201) says where the header ends.
    pub const JUMP: usize = 0x200;
    pub const RAMDISK_IMAGE: usize = 0x218;
    pub const RAMDISK_SIZE: usize = 0x21c;
    pub const CMD_LINE_PTR: usize = 0x228;
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    pub const XLOADFLAGS: usize = 0x236;
    pub const CMDLINE_SIZE: usize = 0x238;
    pub const INIT_SIZE: usize = 0x260;
    /// `loadflags`: CAN_USE_HEAP (`heap_end_ptr` is valid; not for the 64-bit entry).
    pub const CAN_USE_HEAP: u8 = 0x80;
    /// `xloadflags`: XLF_KERNEL_64 (a 64-bit entry at 0x200 into the protected-mode kernel).
    pub const XLF_KERNEL_64: u16 = 1;
    /// The oldest protocol with `xloadflags` and `init_size` (2.12).
    pub const MIN_LINUX_VERSION: u16 = 0x020c;
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
    /// The kernel command line does not fit (the area's room, or the kernel's `cmdline_size`).
    CommandLineTooLong,
}

/// What the loader needs of a bzImage (Documentation/arch/x86/boot.rst, "The real-mode kernel
/// header"): the setup header to copy into `boot_params`, the protected-mode kernel to load,
/// where it may go and how much room it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BzImage<'a> {
    /// The setup header: from 0x1f1 to its end (0x202 + the jump's offset byte at 0x201).
    pub header: &'a [u8],
    /// The protected-mode kernel: everything after the `setup_sects` + 1 sectors of setup. Its
    /// 64-bit entry is at 0x200.
    pub kernel: &'a [u8],
    /// The load address must be a multiple of this (`kernel_alignment`).
    pub alignment: u64,
    /// Bytes the kernel needs from its load address while it decompresses (`init_size`).
    pub init_size: u64,
    /// The longest command line the kernel takes (`cmdline_size`, without the NUL).
    pub cmdline_size: u64,
}

/// Why an image is not a bzImage this loader can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BzImageError {
    /// No 0xaa55 boot flag or no `HdrS` signature.
    NotBzImage,
    /// The boot protocol is older than 2.12 (no `xloadflags`, `init_size`).
    OldProtocol(u16),
    /// `xloadflags` has no XLF_KERNEL_64: the kernel has no 64-bit entry.
    No64BitEntry,
    /// The header or the setup sectors run past the end of the file, or the alignment is not
    /// a power of two.
    Malformed,
}

/// Offset of the 64-bit entry in the protected-mode kernel.
pub const ENTRY_64: u64 = 0x200;

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Reads `image`'s setup header; refuses what the 64-bit boot protocol cannot start.
pub fn parse_bzimage(image: &[u8]) -> Result<BzImage<'_>, BzImageError> {
    use boot_params as bp;
    if u16_at(image, bp::BOOT_FLAG) != Some(0xaa55) || u32_at(image, bp::HEADER) != Some(bp::HEADER_MAGIC) {
        return Err(BzImageError::NotBzImage);
    }
    let version = u16_at(image, bp::VERSION).ok_or(BzImageError::Malformed)?;
    if version < bp::MIN_LINUX_VERSION {
        return Err(BzImageError::OldProtocol(version));
    }
    let end = bp::JUMP + 2 + usize::from(*image.get(bp::JUMP + 1).ok_or(BzImageError::Malformed)?);
    // The header must cover the fields read below and stay inside boot_params' 4 KiB.
    if !(bp::INIT_SIZE + 4..=4096).contains(&end) {
        return Err(BzImageError::Malformed);
    }
    let header = image.get(bp::SETUP_HEADER..end).ok_or(BzImageError::Malformed)?;
    let xloadflags = u16_at(image, bp::XLOADFLAGS).ok_or(BzImageError::Malformed)?;
    if xloadflags & bp::XLF_KERNEL_64 == 0 {
        return Err(BzImageError::No64BitEntry);
    }
    let setup_sects = match image[bp::SETUP_SECTS] {
        0 => 4,
        n => usize::from(n),
    };
    let kernel = image.get((setup_sects + 1) * 512..).ok_or(BzImageError::Malformed)?;
    let alignment = u64::from(u32_at(image, bp::KERNEL_ALIGNMENT).ok_or(BzImageError::Malformed)?);
    if !alignment.is_power_of_two() || kernel.len() as u64 <= ENTRY_64 {
        return Err(BzImageError::Malformed);
    }
    let field = |at| u32_at(image, at).map(u64::from).ok_or(BzImageError::Malformed);
    Ok(BzImage {
        header,
        kernel,
        alignment,
        init_size: field(bp::INIT_SIZE)?,
        cmdline_size: field(bp::CMDLINE_SIZE)?,
    })
}

/// Makes a [`build`]-built area's `boot_params` a Linux kernel's: `kernel`'s setup header
/// (keeping the area's `setup_data` list), the loader's fields, `cmdline` in the area and the
/// initrd at guest-physical `initrd` = (address, size), if any.
pub fn set_linux(
    area: &mut [u8],
    base: u64,
    kernel: &BzImage,
    cmdline: &[u8],
    initrd: Option<(u64, u64)>,
) -> Result<(), BootAreaError> {
    use boot_params as bp;
    if area.len() != BOOT_AREA_SIZE as usize {
        return Err(BootAreaError::WrongSize);
    }
    let room = (offset::SETUP_DATA - offset::CMDLINE) as usize;
    if cmdline.len() >= room || cmdline.len() as u64 > kernel.cmdline_size || cmdline.contains(&0) {
        return Err(BootAreaError::CommandLineTooLong);
    }
    let params = offset::BOOT_PARAMS as usize;
    let setup_data: [u8; 8] = area[params + bp::SETUP_DATA..][..8].try_into().expect("8 bytes");
    put(area, params + bp::SETUP_HEADER, kernel.header);
    put(area, params + bp::SETUP_DATA, &setup_data);
    area[params + bp::TYPE_OF_LOADER] = bp::LOADER_UNDEFINED;
    area[params + bp::LOADFLAGS] = (area[params + bp::LOADFLAGS] | bp::LOADED_HIGH) & !bp::CAN_USE_HEAP;
    let line = base + offset::CMDLINE;
    put(area, offset::CMDLINE as usize, cmdline);
    area[offset::CMDLINE as usize + cmdline.len()] = 0;
    put(area, params + bp::CMD_LINE_PTR, &(line as u32).to_le_bytes());
    put(area, params + bp::EXT_CMD_LINE_PTR, &((line >> 32) as u32).to_le_bytes());
    let (at, size) = initrd.unwrap_or((0, 0));
    put(area, params + bp::RAMDISK_IMAGE, &(at as u32).to_le_bytes());
    put(area, params + bp::EXT_RAMDISK_IMAGE, &((at >> 32) as u32).to_le_bytes());
    put(area, params + bp::RAMDISK_SIZE, &(size as u32).to_le_bytes());
    put(area, params + bp::EXT_RAMDISK_SIZE, &((size >> 32) as u32).to_le_bytes());
    Ok(())
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

    /// A minimal bzImage: boot flag, `HdrS` 2.15, 64-bit entry, 2 setup sectors.
    fn bzimage() -> std::vec::Vec<u8> {
        let mut image = std::vec![0u8; 3 * 512 + 0x400];
        image[boot_params::SETUP_SECTS] = 2;
        image[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
        image[0x200..0x202].copy_from_slice(&[0xeb, 0x6a]); // header ends at 0x26c
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        image[0x211] = 0x01; // LOADED_HIGH
        image[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
        image[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
        image[0x238..0x23c].copy_from_slice(&0x7ffu32.to_le_bytes());
        image[0x260..0x264].copy_from_slice(&0x0337_8000u32.to_le_bytes());
        image[3 * 512] = 0xe8; // the first byte of the protected-mode kernel
        image
    }

    #[test]
    fn bzimage_header() {
        let image = bzimage();
        let k = parse_bzimage(&image).unwrap();
        assert_eq!(k.header.len(), 0x26c - 0x1f1);
        assert_eq!(k.kernel.len(), 0x400);
        assert_eq!(k.kernel[0], 0xe8);
        assert_eq!((k.alignment, k.init_size, k.cmdline_size), (0x20_0000, 0x0337_8000, 0x7ff));
    }

    #[test]
    fn hostile_bzimages_are_refused() {
        assert_eq!(parse_bzimage(&[]), Err(BzImageError::NotBzImage));
        let mut no_magic = bzimage();
        no_magic[0x202] = b'X';
        assert_eq!(parse_bzimage(&no_magic), Err(BzImageError::NotBzImage));
        let mut old = bzimage();
        old[0x206..0x208].copy_from_slice(&0x020bu16.to_le_bytes());
        assert_eq!(parse_bzimage(&old), Err(BzImageError::OldProtocol(0x020b)));
        let mut no64 = bzimage();
        no64[0x236] = 0x7e;
        assert_eq!(parse_bzimage(&no64), Err(BzImageError::No64BitEntry));
        let mut short_header = bzimage();
        short_header[0x201] = 0x10;
        assert_eq!(parse_bzimage(&short_header), Err(BzImageError::Malformed));
        let mut long_header = bzimage();
        long_header[0x201] = 0xff;
        assert_eq!(parse_bzimage(&long_header[..0x280]), Err(BzImageError::Malformed));
        let mut too_many_sectors = bzimage();
        too_many_sectors[boot_params::SETUP_SECTS] = 200;
        assert_eq!(parse_bzimage(&too_many_sectors), Err(BzImageError::Malformed));
        let mut odd_alignment = bzimage();
        odd_alignment[0x230..0x234].copy_from_slice(&0x30_0000u32.to_le_bytes());
        assert_eq!(parse_bzimage(&odd_alignment), Err(BzImageError::Malformed));
        let image = bzimage();
        assert_eq!(parse_bzimage(&image[..3 * 512 + 0x100]), Err(BzImageError::Malformed), "no 64-bit entry");
    }

    #[test]
    fn linux_boot_params() {
        let image = bzimage();
        let k = parse_bzimage(&image).unwrap();
        let mut a = [0u8; BOOT_AREA_SIZE as usize];
        let base = 0x0bfe_0000 - BOOT_AREA_SIZE;
        build(&mut a, base, &[(0x4000_0000, 0x0800_0000)], 0x800).unwrap();
        let setup_data = u64_at(&a, offset::BOOT_PARAMS + boot_params::SETUP_DATA as u64);
        set_linux(&mut a, base, &k, b"console=ttyS0", Some((0x1_0bf0_0000, 0x1234))).unwrap();
        let bp = offset::BOOT_PARAMS as usize;
        // The kernel's header, the list of setup_data kept, the loader's fields.
        assert_eq!(u32_at(&a, bp + boot_params::INIT_SIZE), 0x0337_8000);
        assert_eq!(u64_at(&a, (bp + boot_params::SETUP_DATA) as u64), setup_data);
        assert_eq!(a[bp + boot_params::TYPE_OF_LOADER], 0xff);
        assert_eq!(a[bp + boot_params::LOADFLAGS], boot_params::LOADED_HIGH);
        assert_eq!(a[bp + boot_params::E820_ENTRIES], 1, "the e820 table is outside the header");
        let line = u32_at(&a, bp + boot_params::CMD_LINE_PTR) as u64;
        assert_eq!(line, base + offset::CMDLINE);
        assert_eq!(u32_at(&a, bp + boot_params::EXT_CMD_LINE_PTR), 0);
        assert_eq!(&a[offset::CMDLINE as usize..][..14], b"console=ttyS0\0");
        assert_eq!(u32_at(&a, bp + boot_params::RAMDISK_IMAGE), 0x0bf0_0000);
        assert_eq!(u32_at(&a, bp + boot_params::EXT_RAMDISK_IMAGE), 1);
        assert_eq!(u32_at(&a, bp + boot_params::RAMDISK_SIZE), 0x1234);
        // Hostile command lines: longer than the kernel takes, than the room, with a NUL.
        let long = [b'x'; 0x800];
        assert_eq!(set_linux(&mut a, base, &k, &long, None), Err(BootAreaError::CommandLineTooLong));
        let mut roomy = k;
        roomy.cmdline_size = 1 << 20;
        let huge = [b'x'; 0xef0];
        assert_eq!(set_linux(&mut a, base, &roomy, &huge, None), Err(BootAreaError::CommandLineTooLong));
        assert_eq!(set_linux(&mut a, base, &k, b"a\0b", None), Err(BootAreaError::CommandLineTooLong));
        assert_eq!(set_linux(&mut a[..8], base, &k, b"", None), Err(BootAreaError::WrongSize));
        // The longest that fits: the NUL just before the setup_data header.
        set_linux(&mut a, base, &roomy, &huge[..0xeef], None).unwrap();
        assert_eq!(a[offset::SETUP_DATA as usize - 1], 0);
        assert_eq!(u32_at(&a, bp + boot_params::RAMDISK_SIZE), 0, "no initrd");
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
