//! `cargo xtask config check`: compile a system DTS, parse it and check every rule.

use std::path::{Path, PathBuf};
use std::process::Command;

use tantalum_core::bootimage::{check_partition_image, check_x86_partition_image, effective_image_size};
use tantalum_core::config::{self, BuildFacts, ConfigError, ErrorKind, SystemConfig};

use crate::board::{board_of, Board};
use crate::{bail, cargo, image, Result};

/// Compiles a DTS with dtc; on failure returns dtc's own messages.
pub fn dtc(dts: &Path, out: &Path) -> std::result::Result<Vec<u8>, Vec<String>> {
    let output = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(out)
        .arg(dts)
        .output()
        .map_err(|e| vec![format!("{}: cannot run dtc: {e}", dts.display())])?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(stderr.lines().map(|l| format!("dtc: {l}")).collect());
    }
    std::fs::read(out).map_err(|e| vec![format!("{}: {e}", out.display())])
}

/// Compiles a generated DTS with every dtc check on: a warning is an error (generated trees
/// must be clean).
pub fn dtc_strict(dts: &Path, out: &Path) -> std::result::Result<Vec<u8>, Vec<String>> {
    let output = Command::new("dtc")
        .args(["-I", "dts", "-O", "dtb", "-o"])
        .arg(out)
        .arg(dts)
        .output()
        .map_err(|e| vec![format!("{}: cannot run dtc: {e}", dts.display())])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !stderr.trim().is_empty() {
        return Err(stderr.lines().map(|l| format!("dtc (generated {}): {l}", dts.display())).collect());
    }
    std::fs::read(out).map_err(|e| vec![format!("{}: {e}", out.display())])
}

/// Where `image = "..."` (or `initrd`) may point: next to the DTS, a built sample partition,
/// or something else the build produced under `target/tantalum/` (e.g. `linux/Image`).
pub fn resolve_image(dts: &Path, image: &str) -> Option<PathBuf> {
    let beside = dts.parent().unwrap_or(Path::new(".")).join(image);
    let built = cargo::out_dir().join(partitions_dir(dts)).join(image);
    let produced = cargo::out_dir().join(image);
    [beside, built, produced].into_iter().find(|p| p.is_file())
}

/// Where the sample partitions built for the system's architecture are, under `out_dir()`:
/// `partitions` (aarch64) or `partitions-x86_64` (a system for an x86 board).
pub fn partitions_dir(dts: &Path) -> &'static str {
    if is_x86(dts) {
        "partitions-x86_64"
    } else {
        "partitions"
    }
}

/// Whether the system DTS is for an x86 board (its board.toml says `arch = "x86_64"`).
pub fn is_x86(dts: &Path) -> bool {
    board_of(dts)
        .ok()
        .and_then(|dir| std::fs::read_to_string(dir.join("board.toml")).ok())
        .is_some_and(|t| t.lines().any(|l| l.replace(' ', "") == "arch=\"x86_64\""))
}

/// Reads the file a partition's `property` names, or says where it was looked for. Names under
/// `linux/` are the Debian kernel and initramfs the xtask fetches and builds on first use.
fn read_blob(dts: &Path, node: &str, property: &str, name: &str) -> std::result::Result<Vec<u8>, String> {
    if name.starts_with("linux/") {
        // Once per run: fetch (or reuse) the kernel and rebuild the initramfs and disk.
        static LINUX: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
        LINUX
            .get_or_init(|| {
                let made = if is_x86(dts) {
                    crate::linux::x86_assets().map(|_| ())
                } else {
                    crate::linux::assets().map(|_| ())
                };
                made.map_err(|e| e.0)
            })
            .clone()
            .map_err(|e| format!("{node}: {property} \"{name}\": preparing Linux: {e}"))?;
    }
    match resolve_image(dts, name).map(std::fs::read) {
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(e)) => Err(format!("{node}: {property} \"{name}\": {e}")),
        None => Err(format!(
            "{node}: {property} \"{name}\" not found (looked beside {}, in {} and in {})",
            dts.display(),
            cargo::out_dir().join(partitions_dir(dts)).display(),
            cargo::out_dir().display()
        )),
    }
}

/// Every problem found, one message each.
pub type Problems = Vec<String>;

/// A system description that passed every check, with its partitions' image files.
#[derive(Debug)]
pub struct Checked {
    pub config: SystemConfig,
    /// Image bytes, in partition order.
    pub images: Vec<Vec<u8>>,
    /// Initrd bytes of the partitions that have one, in partition order.
    pub initrds: Vec<Option<Vec<u8>>>,
}

/// Parses `dtb`, resolves images (filling size hints) and checks every rule that needs no
/// boot image (see [`check_file`] for the rest). Warnings are returned errors or not.
pub fn check_dtb_reporting(dts: &Path, dtb: &[u8]) -> (std::result::Result<Checked, Problems>, Vec<String>) {
    let (parsed, warnings) = config::parse_reporting(dtb);
    let warnings: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
    let mut cfg = match parsed {
        Ok(cfg) => cfg,
        Err(errors) => return (Err(errors.iter().map(|e| e.to_string()).collect()), warnings),
    };
    let mut images = Vec::new();
    let mut initrds = Vec::new();
    let mut problems = Vec::new();
    let x86 = cfg.board.x86.is_some();
    let check_image = if x86 { check_x86_partition_image } else { check_partition_image };
    for p in &mut cfg.partitions {
        let image = match p.image_path.as_deref() {
            Some(name) => read_blob(dts, &p.path, "image", name).and_then(|bytes| {
                check_image(&bytes)
                    .map(|()| bytes)
                    .map_err(|problem| ConfigError::new(&p.path, ErrorKind::BadImage { problem }).to_string())
            }),
            // The build writes `tantalum,image` from `image`: without a file it has no bytes.
            None => Err(ConfigError::new(&p.path, ErrorKind::MissingProperty { property: "image" })
                .to_string()
                + " (the build tool makes 'tantalum,image' from the file 'image' names)"),
        };
        let initrd = p.initrd_path.as_deref().map(|name| read_blob(dts, &p.path, "initrd", name));
        match image {
            Ok(bytes) => {
                p.image_size_hint = Some(effective_image_size(&bytes));
                images.push(bytes);
            }
            Err(problem) => {
                problems.push(problem);
                images.push(Vec::new());
            }
        }
        match initrd {
            Some(Ok(bytes)) => {
                p.initrd_size_hint = Some(bytes.len() as u64);
                initrds.push(Some(bytes));
            }
            Some(Err(problem)) => {
                problems.push(problem);
                initrds.push(None);
            }
            None => initrds.push(None),
        }
    }
    let map = if x86 { tantalum_x86_64::HOST_MAP } else { config::HypervisorMap::for_system(&cfg) };
    let facts = BuildFacts { boot_image: None, payload_size: None, map: Some(map) };
    if let Err(errors) = config::validate(&cfg, &facts) {
        problems.extend(errors.iter().map(|e| e.to_string()));
    }
    if problems.is_empty() {
        (Ok(Checked { config: cfg, images, initrds }), warnings)
    } else {
        (Err(problems), warnings)
    }
}

/// Compiles and checks one system DTS as the build and the hypervisor at boot would: the
/// rules, then the boot image assembled in memory (guest DTBs, the system DTB, the hypervisor
/// binary) checked with the facts the hypervisor checks at boot.
pub fn check_file(dts: &Path) -> std::result::Result<Checked, Problems> {
    check_file_reporting(dts).0
}

/// [`check_file`], with the warnings, which are returned whether or not there are errors.
pub fn check_file_reporting(dts: &Path) -> (std::result::Result<Checked, Problems>, Vec<String>) {
    let stem = dts.file_stem().unwrap_or_default().to_string_lossy().to_string();
    let out = cargo::out_dir().join("check").join(stem);
    if let Err(e) = std::fs::create_dir_all(&out) {
        return (Err(vec![e.to_string()]), Vec::new());
    }
    let dtb = match dtc(dts, &out.join("system.src.dtb")) {
        Ok(dtb) => dtb,
        Err(problems) => return (Err(problems), Vec::new()),
    };
    let (checked, warnings) = check_dtb_reporting(dts, &dtb);
    let result = checked.and_then(|checked| {
        let board = board_of(dts).and_then(|dir| Board::load(&dir)).map_err(|e| vec![e.0])?;
        let hyp_bin = if checked.config.board.x86.is_some() {
            crate::bochs::build_hypervisor().map_err(|e| vec![e.0])?
        } else {
            cargo::build_hypervisor_for(&checked.config, board.load_address).map_err(|e| vec![e.0])?.1
        };
        let assembled = image::assemble(dts, &out, &dtb, &checked, &hyp_bin, board.load_address)?;
        Ok(Checked { config: assembled.config, ..checked })
    });
    (result, warnings)
}

/// One line describing a valid system.
pub fn summary(cfg: &SystemConfig) -> String {
    let cpus: usize = cfg.partitions.iter().map(|p| p.cpus.len()).sum();
    let assigned: u64 = cfg.partitions.iter().flat_map(|p| &p.memory).map(|r| r.size).sum();
    let ram: u64 = cfg.board.ram.iter().map(|r| r.size).sum();
    format!(
        "{} partitions on {cpus} of {} CPUs, {} MiB of {} MiB RAM assigned",
        cfg.partitions.len(),
        cfg.board.cpus.len(),
        assigned >> 20,
        ram >> 20
    )
}

pub fn command(files: &[String]) -> Result<()> {
    if files.is_empty() {
        bail!("usage: cargo xtask config check FILE.dts...");
    }
    crate::tools::ensure()?;
    // Sample images are built on demand so that `image = "hello.bin"` resolves (each file's
    // hypervisor is built with what it needs, so that its boot image is checked as the build
    // lays it out).
    if !cargo::out_dir().join("partitions").is_dir() {
        cargo::build_partitions()?;
    }
    if files.iter().any(|f| is_x86(Path::new(f))) && !cargo::out_dir().join("partitions-x86_64").is_dir() {
        // Not fatal: the rules are still checked, and a missing image is reported as such.
        if let Err(e) = crate::bochs::build_partitions() {
            println!("warning: the x86_64 sample partitions did not build: {}", e.0);
        }
    }
    let mut failed = 0;
    for file in files {
        let path = PathBuf::from(file);
        let (result, warnings) = check_file_reporting(&path);
        // Warnings first, errors or not: a misspelt property often explains the errors.
        for w in &warnings {
            println!("warning: {w}");
        }
        match result {
            Ok(checked) => println!("{file}: ok: {}", summary(&checked.config)),
            Err(problems) => {
                for p in &problems {
                    println!("error: {p}");
                }
                println!("{file}: {} error(s)", problems.len());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} system description(s) rejected", files.len());
    }
    Ok(())
}
