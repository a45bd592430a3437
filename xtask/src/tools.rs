//! What the xtask needs from the host: the pinned toolchain's targets and components, and
//! programs from Debian packages. [`ensure`] installs what is missing (rustup always; apt-get as
//! root), or fails with the exact commands; `cargo xtask doctor` lists the same checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::toolchain::Toolchain;
use crate::{bail, step, Result};

/// A host program and the Debian package that provides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub program: String,
    pub package: String,
    /// What it is for, for `doctor`.
    pub purpose: String,
}

/// The Debian package of a QEMU system emulator.
fn qemu_package(binary: &str) -> &'static str {
    match binary {
        "qemu-system-x86_64" | "qemu-system-i386" => "qemu-system-x86",
        _ => "qemu-system-arm",
    }
}

/// The programs every build and emulator run needs: dtc, and the QEMU of every board (a
/// `program` with an absolute path is a file the package installs, not something on PATH).
pub fn programs() -> Result<Vec<Program>> {
    let mut list = vec![Program {
        program: "dtc".into(),
        package: "device-tree-compiler".into(),
        purpose: "compiles system and guest device trees".into(),
    }];
    // The QEMU of every board that runs under QEMU (Bochs is listed below with its packages).
    for board in crate::board::Board::all()?.into_iter().filter(|b| b.qemu_binary.starts_with("qemu-system"))
    {
        let p = Program {
            program: board.qemu_binary.clone(),
            package: qemu_package(&board.qemu_binary).into(),
            purpose: format!("boots board {}", board.name),
        };
        match list.iter_mut().find(|q| q.program == p.program) {
            Some(q) => q.purpose = format!("{}, {}", q.purpose, board.name),
            None => list.push(p),
        }
    }
    // Flashing: the U-Boot script for a board's SD card, and the U-Boot that boots it on QEMU virt.
    list.push(Program {
        program: "mkimage".into(),
        package: "u-boot-tools".into(),
        purpose: "makes the U-Boot script of `cargo xtask build --board` (boot.scr)".into(),
    });
    list.push(Program {
        program: crate::flash::QEMU_UBOOT.into(),
        package: "u-boot-qemu".into(),
        purpose: "boots the SD card image with booti (the U-Boot scenario)".into(),
    });
    // The x86_64 runs: Bochs (its BIOS, VGA BIOS and headless display) and a GRUB ISO.
    for (program, package) in [
        ("bochs", "bochs bochs-term bochsbios vgabios"),
        ("grub-mkrescue", "grub-common grub-pc-bin"),
        ("xorriso", "xorriso"),
        ("mformat", "mtools"),
    ] {
        let purpose = "boots board bochs-pc (x86_64, VT-x with EPT)".into();
        list.push(Program { program: program.into(), package: package.into(), purpose });
    }
    Ok(list)
}

/// Where `program` is on PATH.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Where an installed Debian package put `program`, if the package is installed.
fn installed_by_package(package: &str, program: &str) -> Option<PathBuf> {
    let out = Command::new("dpkg").args(["-L", package]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(Path::new)
        .find(|p| p.file_name().is_some_and(|n| n == program) && p.is_file())
        .map(Path::to_path_buf)
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// The state of one program.
#[derive(Debug)]
pub enum Found {
    Yes(PathBuf),
    /// Its package is installed but PATH does not reach it.
    NotOnPath(PathBuf),
    No,
}

pub fn find(p: &Program) -> Found {
    if let Some(path) = on_path(&p.program) {
        return Found::Yes(path);
    }
    match installed_by_package(&p.package, &p.program) {
        Some(path) => Found::NotOnPath(path),
        None => Found::No,
    }
}

/// The apt-get command that installs `packages` (never recommends: QEMU's pull in conflicts).
pub fn apt_install_command(packages: &[&str]) -> String {
    format!("apt-get install -y --no-install-recommends {}", packages.join(" "))
}

/// Installs `packages` with apt-get as root, or fails with the commands to run.
pub fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    let command = apt_install_command(packages);
    if !is_root() {
        bail!("{why}; install with:\n    sudo apt-get update && sudo {command}");
    }
    step(format!("installing {} ({why})", packages.join(", ")));
    if !Command::new("apt-get").arg("update").status()?.success() {
        bail!("apt-get update failed");
    }
    let status =
        Command::new("sh").arg("-c").arg(&command).env("DEBIAN_FRONTEND", "noninteractive").status()?;
    if !status.success() {
        bail!("`{command}` failed");
    }
    Ok(())
}

/// Makes sure the pinned toolchain has its targets and components and that every program is
/// installed: adds and installs what is missing, or fails saying exactly what to run.
pub fn ensure() -> Result<()> {
    Toolchain::pinned()?.ensure()?;
    let mut packages = Vec::new();
    for p in programs()? {
        match find(&p) {
            Found::Yes(_) => {}
            Found::NotOnPath(path) => bail!(
                "{} is installed ({}) but not on PATH; add {} to PATH",
                p.program,
                path.display(),
                path.parent().unwrap_or(Path::new("/")).display()
            ),
            Found::No => packages.push(p.package),
        }
    }
    if packages.is_empty() {
        return Ok(());
    }
    packages.dedup();
    let list: Vec<&str> = packages.iter().map(String::as_str).collect();
    apt_install(&list, &format!("missing {}", list.join(", ")))?;
    for p in programs()? {
        if let Found::No | Found::NotOnPath(_) = find(&p) {
            bail!("{} still not found after installing {}", p.program, p.package);
        }
    }
    Ok(())
}

/// Path of an LLVM tool from the toolchain's llvm-tools component (e.g. `llvm-objcopy`).
pub fn llvm_tool(name: &str) -> Result<PathBuf> {
    let path = crate::toolchain::sysroot()?
        .join("lib/rustlib")
        .join(crate::toolchain::host())
        .join("bin")
        .join(name);
    if !path.exists() {
        bail!("{} not found: run `cargo xtask doctor --fix` (it adds rust-toolchain.toml's llvm-tools component)", path.display());
    }
    Ok(path)
}
