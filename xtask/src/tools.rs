//! What the xtask needs from the host: the pinned toolchain's targets and components, and
//! programs from Debian packages. [`ensure`] installs what is missing (rustup always; apt-get as
//! root), or fails with the exact commands; `cargo xtask doctor` lists the same checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::toolchain::Toolchain;
use crate::{bail, step, Result};

/// A host program (or a file at an absolute path) and the Debian package that provides it.
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

/// GRUB's BIOS (i386-pc) modules, from `grub-pc-bin`: without them `grub-mkrescue` (from
/// `grub-common`, which UEFI machines have alone) makes an ISO the Bochs BIOS cannot boot.
pub const GRUB_PC_MODULES: &str = "/usr/lib/grub/i386-pc/cdboot.img";

/// The packages to install for `package`: `bochs` depends on one display plugin
/// (`bochs-wx | bochs-gui`) and, alone, apt picks bochs-wx with wxWidgets and X; the runs are
/// headless (rfb, built into `bochs`), and `bochs-term` is the smallest plugin that satisfies it.
pub fn install_set(package: &str) -> Vec<&str> {
    match package {
        "bochs" => vec!["bochs", "bochs-term"],
        _ => vec![package],
    }
}

/// Programs installed where they are first needed, with their packages: `mke2fs` for the Linux
/// guests' disk, `xz` and `zstd` for a kernel whose modules Debian compressed.
pub const ON_DEMAND: &[(&str, &str)] = &[("mke2fs", "e2fsprogs"), ("xz", "xz-utils"), ("zstd", "zstd")];

/// The programs and files every build and emulator run needs: dtc, the QEMU of every board,
/// U-Boot's tools and QEMU build, Bochs with its BIOSes, GRUB's ISO maker with its BIOS modules
/// (a `program` with an absolute path is a file the package installs, not something on PATH).
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
    // Flashing: the U-Boot script for a board's SD card, its FAT partition, and the U-Boot that
    // boots it on QEMU virt.
    let flashing = [
        ("mkimage", "u-boot-tools", "makes the U-Boot script of `cargo xtask build --board` (boot.scr)"),
        ("mformat", "mtools", "formats the SD card image's FAT partition (and GRUB's EFI image)"),
        ("mcopy", "mtools", "copies the boot files to the SD card image"),
        (
            crate::flash::QEMU_UBOOT,
            "u-boot-qemu",
            "boots the SD card image with booti (the U-Boot scenarios)",
        ),
    ];
    // The x86_64 runs: Bochs with its BIOS and VGA BIOS (`bochs` may come with SeaBIOS instead,
    // which satisfies its dependency but is not what the runs load), and a GRUB ISO.
    let x86 = [
        ("bochs", "bochs", "boots board bochs-pc (x86_64, VT-x with EPT)"),
        (crate::bochs::BIOS, "bochsbios", "the BIOS of board bochs-pc"),
        (crate::bochs::VGA_BIOS, "vgabios", "the VGA BIOS of board bochs-pc"),
        ("grub-mkrescue", "grub-common", "puts x86 boot images on a GRUB ISO for Bochs"),
        (GRUB_PC_MODULES, "grub-pc-bin", "GRUB's BIOS modules, which the ISO boots with"),
        ("xorriso", "xorriso", "writes the GRUB ISO (grub-mkrescue runs it)"),
    ];
    for (program, package, purpose) in flashing.into_iter().chain(x86) {
        list.push(Program { program: program.into(), package: package.into(), purpose: purpose.into() });
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
    if Path::new(&p.program).is_absolute() {
        return if Path::new(&p.program).is_file() {
            Found::Yes(PathBuf::from(&p.program))
        } else {
            Found::No
        };
    }
    if let Some(path) = on_path(&p.program) {
        return Found::Yes(path);
    }
    match installed_by_package(&p.package, &p.program) {
        Some(path) => Found::NotOnPath(path),
        None => Found::No,
    }
}

/// The apt-get command that installs `packages` (never recommends: QEMU's pull in conflicts,
/// bochs's bximage a C compiler, grub-common's os-prober).
pub fn apt_install_command(packages: &[&str]) -> String {
    format!("apt-get install -y --no-install-recommends {}", packages.join(" "))
}

/// How a user who is not root runs `commands`, one after the other, as root: each with `sudo`
/// when the machine has it, else all in one `su -c` (which asks for root's password).
pub fn as_root(commands: &[&str], sudo: bool) -> String {
    if sudo {
        commands.iter().map(|c| format!("sudo {c}")).collect::<Vec<_>>().join(" && ")
    } else {
        format!("su -c '{}'", commands.join(" && "))
    }
}

/// [`as_root`] on this machine.
pub fn root_command(commands: &[&str]) -> String {
    as_root(commands, on_path("sudo").is_some())
}

/// Installs `packages` with apt-get as root, or fails with the command to run.
pub fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    let command = apt_install_command(packages);
    if !is_root() {
        bail!("{why}; install with:\n    {}", root_command(&["apt-get update", &command]));
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

/// Where `program` is, on PATH or in /usr/sbin and /sbin (which a user's PATH may lack).
pub fn find_anywhere(program: &str) -> Option<PathBuf> {
    on_path(program).or_else(|| {
        ["/usr/sbin", "/sbin"].map(|d| Path::new(d).join(program)).into_iter().find(|p| p.is_file())
    })
}

/// `program` (one of [`ON_DEMAND`]), installing its package as root first if it is missing.
pub fn on_demand(program: &str, why: &str) -> Result<PathBuf> {
    let found = || find_anywhere(program);
    if let Some(path) = found() {
        return Ok(path);
    }
    let Some(&(_, package)) = ON_DEMAND.iter().find(|(p, _)| *p == program) else {
        bail!("{program} is not a program the xtask installs");
    };
    apt_install(&[package], &format!("{program} is missing ({why})"))?;
    found().ok_or_else(|| crate::Error(format!("{program} still missing after installing {package}")))
}

/// The Debian packages that provide what of `programs` is missing (with [`install_set`]'s
/// companions), each once, in order.
pub fn packages_for(missing: &[&Program]) -> Vec<String> {
    let mut packages: Vec<String> = Vec::new();
    for p in missing {
        for package in install_set(&p.package) {
            if !packages.iter().any(|q| q == package) {
                packages.push(package.to_string());
            }
        }
    }
    packages
}

/// Makes sure the pinned toolchain has its targets and components and that every program is
/// installed: adds and installs what is missing, or fails saying exactly what to run.
pub fn ensure() -> Result<()> {
    Toolchain::pinned()?.ensure()?;
    let programs = programs()?;
    let mut missing = Vec::new();
    for p in &programs {
        match find(p) {
            Found::Yes(_) => {}
            Found::NotOnPath(path) => bail!(
                "{} is installed ({}) but not on PATH; add {} to PATH",
                p.program,
                path.display(),
                path.parent().unwrap_or(Path::new("/")).display()
            ),
            Found::No => missing.push(p),
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let packages = packages_for(&missing);
    let list: Vec<&str> = packages.iter().map(String::as_str).collect();
    let what: Vec<&str> = missing.iter().map(|p| p.program.as_str()).collect();
    apt_install(&list, &format!("missing {}", what.join(", ")))?;
    for p in &programs {
        if let Found::No | Found::NotOnPath(_) = find(p) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Programs a Debian or Ubuntu system always has (priority `required`, or apt itself), which the
    /// xtask runs without checking: `cp` and `stty` (coreutils), `sh` (dash), `gzip`, `dpkg`,
    /// `dpkg-deb`, `apt-get`, `apt-cache`; and rustup's own `rustc` and `rustup`.
    pub const BASE_SYSTEM: &[&str] =
        &["cp", "stty", "sh", "gzip", "dpkg", "dpkg-deb", "apt-get", "apt-cache", "rustc", "rustup"];

    /// The program named by every `Command::new` with a string literal in the `.rs` files under `dir`.
    fn spawned(dir: &Path, found: &mut Vec<(String, PathBuf)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let skipped = path.file_name().is_some_and(|n| n == "target" || n == ".git");
            if path.is_dir() && !skipped {
                spawned(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let pattern = concat!("Command::new", "(\"");
                for (at, _) in text.match_indices(pattern) {
                    let rest = &text[at + pattern.len()..];
                    let name = &rest[..rest.find('"').unwrap()];
                    found.push((name.to_string(), path.clone()));
                }
            }
        }
    }

    /// A fresh machine gets every program the workspace's code and tests run: each is checked and
    /// installed by [`ensure`], installed where first needed ([`ON_DEMAND`]), or part of every
    /// Debian and Ubuntu system ([`BASE_SYSTEM`]).
    #[test]
    fn every_spawned_program_is_installed_by_the_xtask() {
        let programs = programs().unwrap();
        let mut found = Vec::new();
        spawned(&crate::root(), &mut found);
        assert!(found.iter().any(|(name, _)| name == "bochs"), "the scan finds the spawned programs");
        for (name, file) in found {
            let known = programs.iter().any(|p| p.program == name)
                || ON_DEMAND.iter().any(|(p, _)| *p == name)
                || BASE_SYSTEM.contains(&name.as_str());
            assert!(known, "{} runs {name}, which no requirement in tools.rs installs", file.display());
        }
    }

    /// Every firmware file a Bochs run loads is checked (its package is installed when missing).
    #[test]
    fn bochs_firmware_files_are_requirements() {
        let programs = programs().unwrap();
        let rc =
            crate::bochs::bochsrc(Path::new("x.iso"), "mode=file, dev=com1.log", Path::new("b.log"), 1, 64);
        let files: Vec<&str> = rc
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter_map(|w| w.strip_prefix("file="))
            .collect();
        assert_eq!(files.len(), 2, "{rc}");
        for file in files {
            assert!(programs.iter().any(|p| p.program == file), "{file} is loaded but not checked");
        }
        assert!(programs.iter().any(|p| p.program == crate::flash::QEMU_UBOOT && p.package == "u-boot-qemu"));
        assert!(programs.iter().any(|p| p.program == GRUB_PC_MODULES && p.package == "grub-pc-bin"));
    }

    /// Bochs comes with the terminal plugin (not wxWidgets), each package is installed once, and
    /// every apt-get install skips recommends.
    #[test]
    fn missing_programs_become_packages() {
        let programs = programs().unwrap();
        let pick = |names: &[&str]| -> Vec<&Program> {
            names.iter().map(|n| programs.iter().find(|p| p.program == *n).unwrap()).collect()
        };
        assert_eq!(
            packages_for(&pick(&["bochs", crate::bochs::BIOS, "mformat", "mcopy", "dtc"])),
            ["bochs", "bochs-term", "bochsbios", "mtools", "device-tree-compiler"]
        );
        assert_eq!(
            apt_install_command(&["bochs", "bochs-term"]),
            "apt-get install -y --no-install-recommends bochs bochs-term"
        );
    }

    /// Not root: with sudo, each command under sudo; without it, the same commands in one `su -c`.
    #[test]
    fn root_commands_with_and_without_sudo() {
        let commands = ["apt-get update", "apt-get install -y --no-install-recommends dtc"];
        assert_eq!(
            as_root(&commands, true),
            "sudo apt-get update && sudo apt-get install -y --no-install-recommends dtc"
        );
        assert_eq!(
            as_root(&commands, false),
            "su -c 'apt-get update && apt-get install -y --no-install-recommends dtc'"
        );
    }
}
