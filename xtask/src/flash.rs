//! Flashing: the files a user copies to a board's SD card so that the board's U-Boot boots
//! Tantalum with `booti` (the boot image and a U-Boot script made with `mkimage`), and a disk
//! image holding them, which Debian's QEMU U-Boot boots in the U-Boot scenarios.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::board::Board;
use crate::image::BuiltSystem;
use crate::{bail, Result};

/// Debian's `u-boot-qemu` build of U-Boot for QEMU `virt` (arm64).
pub const QEMU_UBOOT: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// Name of the boot image on the SD card.
const IMAGE_NAME: &str = "tantalum.img";

/// What `cargo xtask build --board NAME` writes for the SD card.
#[derive(Debug)]
pub struct SdCard {
    /// The files to copy to the card's first (FAT) partition: tantalum.img, boot.scr and
    /// boot.cmd (the script's source).
    pub dir: PathBuf,
    /// The same files on a disk image (an MBR and one FAT partition), for QEMU.
    pub disk: PathBuf,
}

/// The U-Boot script: loads the boot image from the partition U-Boot found the script on
/// (distro boot and standard boot set `devtype`, `devnum`, `distro_bootpart`) to free RAM at
/// `image_address`, then `booti` moves it to where it runs (RAM base + its text_offset,
/// `load_address`) and starts it with x0 = U-Boot's device tree.
pub fn boot_cmd(board: &Board, image_address: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Tantalum for board {}: written by `cargo xtask build --board {}`.",
        board.name, board.name
    );
    let _ = writeln!(
        s,
        "# Loads {IMAGE_NAME} at {image_address:#x}; booti moves it to {:#x}.",
        board.load_address
    );
    let _ = writeln!(
        s,
        "echo \"Tantalum: loading {IMAGE_NAME} from ${{devtype}} ${{devnum}}:${{distro_bootpart}}\""
    );
    let _ = writeln!(s, "load ${{devtype}} ${{devnum}}:${{distro_bootpart}} {image_address:#x} {IMAGE_NAME}");
    let _ = writeln!(s, "booti {image_address:#x} - ${{fdtcontroladdr}}");
    s
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let out = command.output().map_err(|e| crate::Error(format!("{what}: {e}")))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Start of the FAT partition on the disk image, in 512-byte sectors (1 MiB, as partitioning
/// tools align it).
const PARTITION_START: u64 = 2048;

/// A master boot record with one bootable FAT16 (LBA) partition from [`PARTITION_START`] to
/// the end of a disk of `sectors` sectors.
fn mbr(sectors: u64) -> [u8; 512] {
    let mut mbr = [0u8; 512];
    let entry = &mut mbr[446..462];
    entry[0] = 0x80; // bootable: U-Boot's distro boot scans bootable partitions first
    entry[4] = 0x0e; // FAT16, LBA
    entry[8..12].copy_from_slice(&(PARTITION_START as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&((sectors - PARTITION_START) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    mbr
}

/// Writes the SD card files for `built` (a system for `board`) next to its boot image.
pub fn write(built: &BuiltSystem, board: &Board) -> Result<SdCard> {
    let Some(image_address) = board.uboot_image_address else {
        bail!("board {}: no `[u-boot] image-address` in its board.toml: it cannot be flashed", board.name);
    };
    let out = built.image.parent().unwrap_or(Path::new("."));
    let dir = out.join("sdcard");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(&built.image, dir.join(IMAGE_NAME))?;
    std::fs::write(dir.join("boot.cmd"), boot_cmd(board, image_address))?;
    run(
        Command::new("mkimage")
            .args(["-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-n", "Tantalum"])
            .arg("-d")
            .arg(dir.join("boot.cmd"))
            .arg(dir.join("boot.scr")),
        "mkimage",
    )?;

    // A FAT16 partition (up to 2 GiB) large enough for the files, at least 64 MiB.
    let image_len = std::fs::metadata(&built.image)?.len();
    let mib = (image_len >> 20) * 5 / 4 + 8;
    let sectors = (mib.max(64) << 20) / 512;
    if sectors > (2 << 30) / 512 {
        bail!("{}: {} MiB is too large for the FAT16 card image", built.image.display(), image_len >> 20);
    }
    let disk = out.join("sdcard.img");
    let file = std::fs::File::create(&disk)?;
    file.set_len(sectors * 512)?;
    std::io::Write::write_all(&mut &file, &mbr(sectors))?;
    drop(file);
    let partition = format!("{}@@{}", disk.display(), PARTITION_START * 512);
    run(Command::new("mformat").args(["-i", &partition, "-v", "TANTALUM", "::"]), "mformat")?;
    let mut copy = Command::new("mcopy");
    copy.args(["-i", &partition]);
    for name in ["boot.scr", "boot.cmd", IMAGE_NAME] {
        copy.arg(dir.join(name));
    }
    run(copy.arg("::"), "mcopy")?;
    Ok(SdCard { dir, disk })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_loads_then_boots_at_the_boards_addresses() {
        let board = Board {
            name: "b".into(),
            qemu_binary: String::new(),
            machine: String::new(),
            cpu: String::new(),
            smp: 1,
            memory: String::new(),
            load_address: 0x80000,
            demo: None,
            uboot_image_address: Some(0x1000_0000),
        };
        let s = boot_cmd(&board, 0x1000_0000);
        let load = s.lines().position(|l| l.starts_with("load ") && l.ends_with(" 0x10000000 tantalum.img"));
        let boot = s.lines().position(|l| l == "booti 0x10000000 - ${fdtcontroladdr}");
        assert!(load.is_some() && boot.is_some() && load < boot, "{s}");
        assert!(s.contains("moves it to 0x80000"));
    }

    #[test]
    fn one_bootable_fat_partition_after_the_first_mib() {
        let m = mbr(131072);
        assert_eq!((m[446], m[450], &m[510..]), (0x80, 0x0e, &[0x55, 0xaa][..]));
        assert_eq!(u32::from_le_bytes(m[454..458].try_into().unwrap()), 2048);
        assert_eq!(u32::from_le_bytes(m[458..462].try_into().unwrap()), 131072 - 2048);
    }
}
