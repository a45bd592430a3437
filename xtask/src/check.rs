//! `cargo xtask config check`: compile a system DTS, parse it and check every rule.

use std::path::{Path, PathBuf};
use std::process::Command;

use tantalum_core::bootimage::effective_image_size;
use tantalum_core::config::{self, BuildFacts, SystemConfig};

use crate::{bail, cargo, Result};

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
    let built = cargo::out_dir().join("partitions").join(image);
    let produced = cargo::out_dir().join(image);
    [beside, built, produced].into_iter().find(|p| p.is_file())
}

/// Reads the file a partition's `property` names, or says where it was looked for. Names under
/// `linux/` are the Debian kernel and initramfs the xtask fetches and builds on first use.
fn read_blob(dts: &Path, node: &str, property: &str, name: &str) -> std::result::Result<Vec<u8>, String> {
    if name.starts_with("linux/") {
        // Once per run: fetch (or reuse) the kernel and rebuild the initramfs and disk.
        static LINUX: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
        LINUX
            .get_or_init(|| crate::linux::assets().map(|_| ()).map_err(|e| e.0))
            .clone()
            .map_err(|e| format!("{node}: {property} \"{name}\": preparing Linux: {e}"))?;
    }
    match resolve_image(dts, name).map(std::fs::read) {
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(e)) => Err(format!("{node}: {property} \"{name}\": {e}")),
        None => Err(format!(
            "{node}: {property} \"{name}\" not found (looked beside {}, in {} and in {})",
            dts.display(),
            cargo::out_dir().join("partitions").display(),
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
    /// Things that are allowed but probably wrong (unknown properties: typos).
    pub warnings: Vec<String>,
}

/// Parses `dtb`, resolves images (filling size hints) and checks every rule.
pub fn check_dtb(dts: &Path, dtb: &[u8]) -> std::result::Result<Checked, Problems> {
    let (mut cfg, warnings) = config::parse_with_warnings(dtb)
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let warnings = warnings.iter().map(|w| w.to_string()).collect();
    let mut images = Vec::new();
    let mut initrds = Vec::new();
    let mut problems = Vec::new();
    for p in &mut cfg.partitions {
        let image = p.image_path.as_deref().map(|name| read_blob(dts, &p.path, "image", name));
        let initrd = p.initrd_path.as_deref().map(|name| read_blob(dts, &p.path, "initrd", name));
        match image {
            Some(Ok(bytes)) => {
                p.image_size_hint = Some(effective_image_size(&bytes));
                images.push(bytes);
            }
            Some(Err(problem)) => {
                problems.push(problem);
                images.push(Vec::new());
            }
            None => images.push(Vec::new()),
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
    let facts = BuildFacts { boot_image: None, payload_size: None };
    if let Err(errors) = config::validate(&cfg, &facts) {
        problems.extend(errors.iter().map(|e| e.to_string()));
    }
    if problems.is_empty() {
        Ok(Checked { config: cfg, images, initrds, warnings })
    } else {
        Err(problems)
    }
}

/// Compiles and checks one system DTS.
pub fn check_file(dts: &Path) -> std::result::Result<Checked, Problems> {
    let out = cargo::out_dir().join("check");
    std::fs::create_dir_all(&out).map_err(|e| vec![e.to_string()])?;
    let stem = dts.file_stem().unwrap_or_default().to_string_lossy().to_string();
    let dtb = dtc(dts, &out.join(format!("{stem}.dtb")))?;
    check_dtb(dts, &dtb)
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
    // Sample images are built on demand so that `image = "hello.bin"` resolves.
    if !cargo::out_dir().join("partitions").is_dir() {
        cargo::build_partitions()?;
    }
    let mut failed = 0;
    for file in files {
        let path = PathBuf::from(file);
        match check_file(&path) {
            Ok(checked) => {
                for w in &checked.warnings {
                    println!("warning: {w}");
                }
                println!("{file}: ok: {}", summary(&checked.config));
            }
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
