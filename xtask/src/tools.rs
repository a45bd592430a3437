//! Host tools the build needs: installs what is missing (as root) or says how.

use std::process::Command;

use crate::{bail, step, Result};

/// A program and the Debian package that provides it.
struct Tool {
    program: &'static str,
    package: &'static str,
}

const TOOLS: &[Tool] = &[
    Tool { program: "qemu-system-aarch64", package: "qemu-system-arm" },
    Tool { program: "dtc", package: "device-tree-compiler" },
];

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure QEMU and dtc are installed: installs them with apt-get when running as root,
/// otherwise prints the command to run and fails.
pub fn ensure() -> Result<()> {
    let missing: Vec<&Tool> = TOOLS.iter().filter(|t| !have(t.program)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    let command = format!("apt-get install -y --no-install-recommends {}", packages.join(" "));
    if !is_root() {
        bail!(
            "missing {}; install them with:\n    sudo apt-get update && sudo {command}",
            packages.join(", ")
        );
    }
    step(format!("installing {}", packages.join(", ")));
    let update = Command::new("apt-get").arg("update").status()?;
    if !update.success() {
        bail!("apt-get update failed");
    }
    let status =
        Command::new("sh").arg("-c").arg(&command).env("DEBIAN_FRONTEND", "noninteractive").status()?;
    if !status.success() {
        bail!("`{command}` failed");
    }
    Ok(())
}

/// Path of an LLVM tool from the toolchain's llvm-tools component (e.g. `llvm-objcopy`).
pub fn llvm_tool(name: &str) -> Result<std::path::PathBuf> {
    let out = Command::new("rustc").args(["--print", "sysroot"]).current_dir(crate::root()).output()?;
    let sysroot = String::from_utf8(out.stdout)?.trim().to_string();
    let host = Command::new("rustc").arg("-vV").current_dir(crate::root()).output()?;
    let host = String::from_utf8(host.stdout)?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".into());
    let path = std::path::Path::new(&sysroot).join("lib/rustlib").join(host).join("bin").join(name);
    if !path.exists() {
        bail!("{} not found: the llvm-tools component should come with rust-toolchain.toml (rustup component add llvm-tools)", path.display());
    }
    Ok(path)
}
