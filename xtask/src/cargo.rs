//! Building the bare-metal crates: the hypervisor and the sample partitions.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::{bail, root, step, tools, Result};

/// Target of the aarch64 hypervisor: soft-float, so it never touches a guest's FP/SIMD registers.
pub const HYPERVISOR_TARGET: &str = "aarch64-unknown-none-softfloat";
/// Target of aarch64 partitions.
pub const PARTITION_TARGET: &str = "aarch64-unknown-none";
/// Where built artefacts go.
pub fn out_dir() -> PathBuf {
    root().join("target/tantalum")
}

fn cargo_build(package: &str, target: &str) -> Result<()> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", package, "--target", target])
        .current_dir(root())
        .status()?;
    if !status.success() {
        bail!("cargo build -p {package} --target {target} failed");
    }
    Ok(())
}

fn objcopy(elf: &PathBuf, bin: &PathBuf) -> Result<()> {
    let status =
        Command::new(tools::llvm_tool("llvm-objcopy")?).args(["-O", "binary"]).arg(elf).arg(bin).status()?;
    if !status.success() {
        bail!("llvm-objcopy {} failed", elf.display());
    }
    Ok(())
}

/// What this process has already built (a test run builds many systems from the same crates).
static HYPERVISOR_BUILT: OnceLock<()> = OnceLock::new();
static PARTITIONS_BUILT: OnceLock<PathBuf> = OnceLock::new();

/// Builds the hypervisor (once per process); returns (ELF, flat binary).
pub fn build_hypervisor() -> Result<(PathBuf, PathBuf)> {
    if HYPERVISOR_BUILT.get().is_none() {
        step(format!("building the hypervisor ({HYPERVISOR_TARGET})"));
        cargo_build("tantalum-aarch64", HYPERVISOR_TARGET)?;
    }
    let elf = root().join("target").join(HYPERVISOR_TARGET).join("release/tantalum-aarch64");
    let bin = out_dir().join("tantalum-aarch64.bin");
    std::fs::create_dir_all(out_dir())?;
    objcopy(&elf, &bin)?;
    let _ = HYPERVISOR_BUILT.set(());
    Ok((elf, bin))
}

/// The sample partition crates: every `partitions/<name>/` with a Cargo.toml, except the SDK.
pub fn partition_names() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root().join("partitions"))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        if name != "sdk" && path.join("Cargo.toml").exists() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Builds every sample partition into `target/tantalum/partitions/<name>.bin` (once per process).
pub fn build_partitions() -> Result<PathBuf> {
    if let Some(dir) = PARTITIONS_BUILT.get() {
        return Ok(dir.clone());
    }
    let names = partition_names()?;
    step(format!("building partitions ({PARTITION_TARGET}): {}", names.join(", ")));
    let mut command = Command::new(env!("CARGO"));
    command.args(["build", "--release", "--quiet", "--target", PARTITION_TARGET]);
    for name in &names {
        command.args(["-p", &format!("partition-{name}")]);
    }
    if !command.current_dir(root()).status()?.success() {
        bail!("building the partitions failed");
    }
    let dir = out_dir().join("partitions");
    std::fs::create_dir_all(&dir)?;
    for name in &names {
        let elf = root().join("target").join(PARTITION_TARGET).join("release").join(name);
        objcopy(&elf, &dir.join(format!("{name}.bin")))?;
    }
    let _ = PARTITIONS_BUILT.set(dir.clone());
    Ok(dir)
}

/// Builds `chanping`, the Linux user-space channel client, as a static aarch64 executable.
pub fn build_chanping() -> Result<PathBuf> {
    cargo_build("chanping", HYPERVISOR_TARGET)?;
    Ok(root().join("target").join(HYPERVISOR_TARGET).join("release/chanping"))
}
