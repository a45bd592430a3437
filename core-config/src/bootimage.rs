//! The boot image: one file holding the hypervisor, the system DTB and every partition image.
//!
//! ```text
//! offset 0           arm64 Image header (64 bytes): QEMU `-kernel` and U-Boot `booti` load it
//! offset 64          BootInfo (below), patched by the build tool
//!                    hypervisor text, rodata, data; then its bss (zeros in the file)
//! payload_offset     system DTB, then each partition image and guest DTB, 4 KiB aligned
//! image_size         end of the file; at run time per-CPU stacks and the heap follow
//! ```
//! Blob offsets in the system DTB (`tantalum,image = <offset size>`) are relative to
//! `payload_offset`. Everything is little-endian.

use crate::addr::{HostPhys, HostRange};
use crate::config::HypervisorMap;

/// Magic of [`BootInfo`], right after the arm64 Image header.
pub const BOOT_INFO_MAGIC: [u8; 8] = *b"TANTALUM";
/// Version of the [`BootInfo`] layout.
pub const BOOT_INFO_VERSION: u32 = 3;
/// Offset of [`BootInfo`] in the image.
pub const BOOT_INFO_OFFSET: usize = 64;
/// Offset of the arm64 Image header's `image_size` field.
pub const IMAGE_SIZE_OFFSET: usize = 16;
/// Alignment of the payload and of every blob in it.
pub const BLOB_ALIGN: u64 = 4096;
/// Stack of each physical CPU, carved after the image at run time.
pub const STACK_SIZE: u64 = 32 * 1024;
/// Hypervisor heap, after the stacks.
pub const HEAP_SIZE: u64 = 4 * 1024 * 1024;

/// Bytes the hypervisor needs after `image_size` at run time: stacks and heap.
pub const fn runtime_reserve(max_cpus: u64) -> u64 {
    max_cpus * STACK_SIZE + HEAP_SIZE
}

/// Field offsets of [`BootInfo`] relative to [`BOOT_INFO_OFFSET`].
pub mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const PAYLOAD_OFFSET: usize = 16;
    pub const PAYLOAD_SIZE: usize = 24;
    pub const DTB_OFFSET: usize = 32;
    pub const DTB_SIZE: usize = 40;
    pub const CONSOLE_BASE: usize = 48;
    pub const CONSOLE_KIND: usize = 56;
    pub const MAP_RAM_BASE: usize = 64;
    pub const MAP_RAM_SIZE: usize = 72;
    pub const MAP_DEVICES_BASE: usize = 80;
    pub const MAP_DEVICES_SIZE: usize = 88;
    /// Total size of the structure.
    pub const SIZE: usize = 96;
}

/// What the build tool tells the hypervisor about the boot image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BootInfo {
    /// Start of the payload, from the start of the image.
    pub payload_offset: u64,
    pub payload_size: u64,
    /// The system DTB, relative to the payload.
    pub dtb_offset: u64,
    pub dtb_size: u64,
    /// MMIO base of the console UART (aarch64) or its first I/O port (x86), for messages
    /// before the DTB is read.
    pub console_base: u64,
    /// Which UART that is ([`ConsoleKind::to_word`]; aarch64 only).
    pub console_kind: u64,
    /// The aarch64 hypervisor's boot-time identity map
    /// ([`crate::config::HypervisorMap::for_system`]): the boot code maps `ram` as normal
    /// memory and `devices` as device memory, in 1 GiB blocks, before the MMU goes on.
    pub map: HypervisorMap,
}

/// The console UARTs the aarch64 hypervisor drives, as [`BootInfo::console_kind`] names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConsoleKind {
    /// Arm PrimeCell PL011 (`arm,pl011`).
    #[default]
    Pl011,
    /// Cadence UART (`cdns,uart-r1p12`), as on the Xilinx ZynqMP (ZCU102).
    Cadence,
}

impl ConsoleKind {
    /// `compatible` strings of each kind (the node's list is searched in order).
    const COMPATIBLES: [(&'static str, ConsoleKind); 2] =
        [("arm,pl011", ConsoleKind::Pl011), ("cdns,uart-r1p12", ConsoleKind::Cadence)];

    /// The kind of a UART node from its `compatible` list; `None` if no driver fits.
    pub fn from_compatible<S: AsRef<str>>(compatible: &[S]) -> Option<Self> {
        compatible
            .iter()
            .find_map(|c| Self::COMPATIBLES.iter().find(|(name, _)| *name == c.as_ref()).map(|&(_, k)| k))
    }

    pub const fn to_word(self) -> u64 {
        match self {
            ConsoleKind::Pl011 => 0,
            ConsoleKind::Cadence => 1,
        }
    }

    pub const fn from_word(word: u64) -> Option<Self> {
        match word {
            0 => Some(ConsoleKind::Pl011),
            1 => Some(ConsoleKind::Cadence),
            _ => None,
        }
    }
}

/// Why a [`BootInfo`] could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    TooShort,
    BadMagic,
    BadVersion(u32),
    /// The payload or the DTB lies outside the image.
    OutOfBounds,
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

impl BootInfo {
    /// Decodes the structure from the first bytes of an image of `image_size` bytes.
    pub fn decode(image_head: &[u8], image_size: u64) -> Result<Self, BootInfoError> {
        let bytes = image_head
            .get(BOOT_INFO_OFFSET..BOOT_INFO_OFFSET + field::SIZE)
            .ok_or(BootInfoError::TooShort)?;
        if bytes[..8] != BOOT_INFO_MAGIC {
            return Err(BootInfoError::BadMagic);
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != BOOT_INFO_VERSION {
            return Err(BootInfoError::BadVersion(version));
        }
        let info = BootInfo {
            payload_offset: read_u64(bytes, field::PAYLOAD_OFFSET),
            payload_size: read_u64(bytes, field::PAYLOAD_SIZE),
            dtb_offset: read_u64(bytes, field::DTB_OFFSET),
            dtb_size: read_u64(bytes, field::DTB_SIZE),
            console_base: read_u64(bytes, field::CONSOLE_BASE),
            console_kind: read_u64(bytes, field::CONSOLE_KIND),
            map: HypervisorMap {
                ram: HostRange::new(
                    HostPhys(read_u64(bytes, field::MAP_RAM_BASE)),
                    read_u64(bytes, field::MAP_RAM_SIZE),
                ),
                devices: HostRange::new(
                    HostPhys(read_u64(bytes, field::MAP_DEVICES_BASE)),
                    read_u64(bytes, field::MAP_DEVICES_SIZE),
                ),
            },
        };
        let payload_end = info.payload_offset.checked_add(info.payload_size);
        let dtb_end = info.dtb_offset.checked_add(info.dtb_size);
        match (payload_end, dtb_end) {
            (Some(p), Some(d)) if p <= image_size && d <= info.payload_size => Ok(info),
            _ => Err(BootInfoError::OutOfBounds),
        }
    }

    /// Writes the structure into an image buffer (used by the build tool).
    pub fn encode_into(&self, image: &mut [u8]) {
        let base = BOOT_INFO_OFFSET;
        image[base..base + 8].copy_from_slice(&BOOT_INFO_MAGIC);
        image[base + 8..base + 12].copy_from_slice(&BOOT_INFO_VERSION.to_le_bytes());
        let fields = [
            (field::PAYLOAD_OFFSET, self.payload_offset),
            (field::PAYLOAD_SIZE, self.payload_size),
            (field::DTB_OFFSET, self.dtb_offset),
            (field::DTB_SIZE, self.dtb_size),
            (field::CONSOLE_BASE, self.console_base),
            (field::CONSOLE_KIND, self.console_kind),
            (field::MAP_RAM_BASE, self.map.ram.start.as_u64()),
            (field::MAP_RAM_SIZE, self.map.ram.size),
            (field::MAP_DEVICES_BASE, self.map.devices.start.as_u64()),
            (field::MAP_DEVICES_SIZE, self.map.devices.size),
        ];
        for (offset, value) in fields {
            image[base + offset..base + offset + 8].copy_from_slice(&value.to_le_bytes());
        }
    }
}

/// Offset of the arm64 Image header's magic (`ARM\x64`).
pub const ARM64_MAGIC_OFFSET: usize = 56;

/// Bytes a partition image occupies from its load address: the arm64 Image header's
/// `image_size` (which covers BSS and stack) if it has one, else the file's length.
pub fn effective_image_size(bytes: &[u8]) -> u64 {
    let magic = bytes.get(ARM64_MAGIC_OFFSET..ARM64_MAGIC_OFFSET + 4);
    let declared = bytes.get(IMAGE_SIZE_OFFSET..IMAGE_SIZE_OFFSET + 8).map(|b| read_u64(b, 0));
    match (magic, declared) {
        (Some(b"ARM\x64"), Some(declared)) if declared >= bytes.len() as u64 => declared,
        _ => bytes.len() as u64,
    }
}

/// Why the loader refuses a partition image: it boots partitions by the Linux arm64 boot
/// protocol, which starts them at the first byte of an arm64 `Image` (64-byte header with the
/// magic `ARM\x64` at offset 56).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageProblem {
    /// The file is empty.
    Empty,
    /// An ELF file (a linker's output, not yet converted to a flat image).
    Elf,
    /// Shorter than the 64-byte header, or without its magic.
    NoArm64Header { len: u64 },
}

/// Checks that `bytes` is something the loader boots: an arm64 `Image` (the build tool checks
/// the file, the hypervisor checks the blob it loads).
pub fn check_partition_image(bytes: &[u8]) -> Result<(), ImageProblem> {
    if bytes.is_empty() {
        return Err(ImageProblem::Empty);
    }
    if bytes.starts_with(b"\x7fELF") {
        return Err(ImageProblem::Elf);
    }
    match bytes.get(ARM64_MAGIC_OFFSET..ARM64_MAGIC_OFFSET + 4) {
        Some(b"ARM\x64") => Ok(()),
        _ => Err(ImageProblem::NoArm64Header { len: bytes.len() as u64 }),
    }
}

/// Checks an x86_64 partition image: a flat binary loaded at the start of region 0 and entered
/// by the PVH boot protocol at `entry` (docs/x86.md); it has no header to check, but an empty
/// file or an unconverted ELF is refused.
pub fn check_x86_partition_image(bytes: &[u8]) -> Result<(), ImageProblem> {
    if bytes.is_empty() {
        return Err(ImageProblem::Empty);
    }
    if bytes.starts_with(b"\x7fELF") {
        return Err(ImageProblem::Elf);
    }
    Ok(())
}

impl core::fmt::Display for ImageProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => {
                write!(f, "the image file is empty; point 'image' at the partition's built arm64 Image")
            }
            Self::Elf => write!(
                f,
                "the image is an ELF file, not an arm64 Image; convert it (rust-objcopy -O binary) \
                 and link it with the arm64 Image header (the SDK's start.rs has one)"
            ),
            Self::NoArm64Header { len } => write!(
                f,
                "the image ({len:#x} bytes) is not an arm64 Image (no \"ARM\\x64\" magic at offset 56): \
                 partitions boot by the Linux arm64 boot protocol; give a kernel's Image or a binary \
                 linked with that header (the SDK's start.rs has one)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_images_must_be_arm64_images() {
        assert_eq!(check_partition_image(&[]), Err(ImageProblem::Empty));
        assert_eq!(check_partition_image(b"\x7fELF\x02\x01\x01"), Err(ImageProblem::Elf));
        let text = b"this is a text file, not a kernel\n".repeat(4);
        assert_eq!(check_partition_image(&text), Err(ImageProblem::NoArm64Header { len: 136 }));
        assert_eq!(check_partition_image(&[0; 60]), Err(ImageProblem::NoArm64Header { len: 60 }));
        let mut image = [0u8; 64];
        image[56..60].copy_from_slice(b"ARM\x64");
        assert_eq!(check_partition_image(&image), Ok(()));
        assert!(ImageProblem::NoArm64Header { len: 3 }.to_string().contains("not an arm64 Image"));
    }

    #[test]
    fn effective_size_reads_the_arm64_header() {
        let mut image = [0u8; 64];
        assert_eq!(effective_image_size(&image), 64);
        image[56..60].copy_from_slice(b"ARM\x64");
        image[16..24].copy_from_slice(&0x5000u64.to_le_bytes());
        assert_eq!(effective_image_size(&image), 0x5000);
        // A header that claims less than the file holds is ignored.
        image[16..24].copy_from_slice(&8u64.to_le_bytes());
        assert_eq!(effective_image_size(&image), 64);
        assert_eq!(effective_image_size(&image[..10]), 10);
    }

    #[test]
    fn round_trip() {
        let mut image = [0u8; 256];
        let info = BootInfo {
            payload_offset: 128,
            payload_size: 128,
            dtb_offset: 0,
            dtb_size: 64,
            console_base: 0xff00_0000,
            console_kind: ConsoleKind::Cadence.to_word(),
            map: HypervisorMap {
                ram: HostRange::new(HostPhys(0), 2 << 30),
                devices: HostRange::new(HostPhys(3 << 30), 1 << 30),
            },
        };
        info.encode_into(&mut image);
        assert_eq!(BootInfo::decode(&image, 256), Ok(info));
    }

    #[test]
    fn console_kind_from_compatible_and_word() {
        assert_eq!(ConsoleKind::from_compatible(&["arm,pl011", "arm,primecell"]), Some(ConsoleKind::Pl011));
        assert_eq!(
            ConsoleKind::from_compatible(&["xlnx,zynqmp-uart", "cdns,uart-r1p12"]),
            Some(ConsoleKind::Cadence)
        );
        assert_eq!(ConsoleKind::from_compatible(&["ns16550a"]), None);
        for kind in [ConsoleKind::Pl011, ConsoleKind::Cadence] {
            assert_eq!(ConsoleKind::from_word(kind.to_word()), Some(kind));
        }
        assert_eq!(ConsoleKind::from_word(7), None);
    }

    #[test]
    fn rejects_out_of_bounds_and_garbage() {
        let mut image = [0u8; 256];
        assert_eq!(BootInfo::decode(&image, 256), Err(BootInfoError::BadMagic));
        assert_eq!(BootInfo::decode(&image[..100], 256), Err(BootInfoError::TooShort));
        let info = BootInfo { payload_offset: 128, payload_size: 200, ..Default::default() };
        info.encode_into(&mut image);
        assert_eq!(BootInfo::decode(&image, 256), Err(BootInfoError::OutOfBounds));
        let info = BootInfo { payload_offset: u64::MAX, payload_size: 2, ..Default::default() };
        info.encode_into(&mut image);
        assert_eq!(BootInfo::decode(&image, 256), Err(BootInfoError::OutOfBounds));
    }
}
