//! Building the bare-metal crates: the hypervisor and the sample partitions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use tantalum_aarch64::built::{self, Parts};
use tantalum_core::config::SystemConfig;

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
    cargo_build_in(package, target, None, &[], &[])
}

/// `cargo build --release` of `package` with `args`, in `target_dir` if given, with `env` set.
fn cargo_build_in(
    package: &str,
    target: &str,
    target_dir: Option<&Path>,
    env: &[(&str, String)],
    args: &[String],
) -> Result<()> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--release", "--quiet", "-p", package, "--target", target])
        .args(args)
        .current_dir(root());
    if let Some(dir) = target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    if !cmd.status()?.success() {
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

/// What this process has already built (a test run builds many systems from the same crates):
/// the hypervisor at each link address with each set of parts, the partitions.
static HYPERVISOR_BUILT: Mutex<Vec<(u64, Parts)>> = Mutex::new(Vec::new());
static PARTITIONS_BUILT: OnceLock<PathBuf> = OnceLock::new();

/// Where QEMU virt (RAM at 1 GiB) loads an arm64 Image: the hypervisor's default link address.
pub const DEFAULT_LOAD_ADDRESS: u64 = 0x4008_0000;

/// Builds the hypervisor with every part for QEMU virt's load address (once per process);
/// returns (ELF, flat binary).
pub fn build_hypervisor() -> Result<(PathBuf, PathBuf)> {
    build_hypervisor_at(DEFAULT_LOAD_ADDRESS, built::ALL)
}

/// Builds the hypervisor of the system `config` describes: linked at its board's `load_address`,
/// with the parts the configuration needs (arch-aarch64/src/built.rs).
pub fn build_hypervisor_for(config: &SystemConfig, load_address: u64) -> Result<(PathBuf, PathBuf)> {
    build_hypervisor_at(load_address, built::Needs::of(config).parts())
}

/// Where a hypervisor build goes: `target/` for every part at QEMU virt's address, else a
/// directory of its own (`link-0x80000`, `only-gic-v3`, `link-0x80000-only-virtio-gic-v2`), so
/// that switching boards or systems does not rebuild each time.
fn hypervisor_build_name(load_address: u64, parts: Parts) -> Option<String> {
    let mut name = Vec::new();
    if load_address != DEFAULT_LOAD_ADDRESS {
        name.push(format!("link-{load_address:#x}"));
    }
    if parts != built::ALL {
        let features: Vec<_> = parts.features().collect();
        name.push(format!("only-{}", if features.is_empty() { "none".into() } else { features.join("-") }));
    }
    (!name.is_empty()).then(|| name.join("-"))
}

/// Builds the hypervisor linked to run at `load_address` (a board's `load-address`: `booti` and
/// QEMU `-kernel` put it there) with `parts` (what a system's configuration needs,
/// arch-aarch64/src/built.rs); returns (ELF, flat binary).
pub fn build_hypervisor_at(load_address: u64, parts: Parts) -> Result<(PathBuf, PathBuf)> {
    let (target_dir, bin) = match hypervisor_build_name(load_address, parts) {
        None => (root().join("target"), out_dir().join("tantalum-aarch64.bin")),
        Some(name) => {
            (root().join("target").join(&name), out_dir().join(format!("tantalum-aarch64-{name}.bin")))
        }
    };
    let elf = target_dir.join(HYPERVISOR_TARGET).join("release/tantalum-aarch64");
    let mut done = HYPERVISOR_BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !done.contains(&(load_address, parts)) {
        let features: Vec<_> = parts.features().collect();
        step(format!(
            "building the hypervisor ({HYPERVISOR_TARGET}, linked at {load_address:#x}, with {})",
            if parts == built::ALL { "every part".to_string() } else { features.join(", ") }
        ));
        let mut args = Vec::new();
        if parts != built::ALL {
            args.push("--no-default-features".to_string());
        }
        if parts != built::ALL && !features.is_empty() {
            args.extend(["--features".to_string(), features.join(",")]);
        }
        // The functions the last build found that only boot-only code runs go to the boot-only
        // pages too: the list is the build script's input (`boot_code::build_checked`). QEMU
        // virt's address is build.rs's default, so it is not passed.
        let sections = target_dir.join(format!("boot-only-sections-{load_address:#x}.txt"));
        let mut env = vec![(crate::boot_code::BOOT_SECTIONS_ENV, sections.display().to_string())];
        if load_address != DEFAULT_LOAD_ADDRESS {
            env.push(("TANTALUM_LINK_ADDRESS", format!("{load_address:#x}")));
        }
        crate::boot_code::build_checked(&elf, &sections, || {
            cargo_build_in("tantalum-aarch64", HYPERVISOR_TARGET, Some(&target_dir), &env, &args)
        })?;
        done.push((load_address, parts));
    }
    std::fs::create_dir_all(out_dir())?;
    objcopy(&elf, &bin)?;
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

/// Checks that each partition crate is one `cargo xtask` can build: a member of the workspace
/// (else cargo's own error, "package ID specification did not match any packages", says nothing
/// of why), with the package `partition-<name>` and a binary `<name>`.
pub fn check_partition_crates(root: &Path, names: &[String]) -> Result<()> {
    let workspace = root.join("Cargo.toml");
    let members = workspace_members(&std::fs::read_to_string(&workspace)?);
    let mut problems = Vec::new();
    for name in names {
        let dir = format!("partitions/{name}");
        let member = members.iter().any(|m| match m.strip_suffix("/*") {
            Some(parent) => dir.rsplit_once('/').is_some_and(|(p, _)| p == parent),
            None => m.trim_end_matches('/') == dir,
        });
        if !member {
            problems.push(format!(
                "{dir}/ has a Cargo.toml but is not in the workspace: add \"{dir}\" to `members` in {}",
                workspace.display()
            ));
            continue;
        }
        let manifest = root.join(&dir).join("Cargo.toml");
        let (package, bins) = package_and_bins(&std::fs::read_to_string(&manifest)?);
        let wanted = format!("partition-{name}");
        if package.as_deref() != Some(wanted.as_str()) {
            problems.push(format!(
                "{}: the package is named {}; a partition crate in {dir}/ must be named \"{wanted}\" (`cargo xtask` builds it with `-p {wanted}`)",
                manifest.display(),
                package.map_or("nothing".to_string(), |p| format!("\"{p}\"")),
            ));
        } else if !bins.iter().any(|b| b == name) {
            problems.push(format!(
                "{}: no binary named \"{name}\": add `[[bin]]` with `name = \"{name}\"` (as partitions/hello/Cargo.toml does); the image is `{name}.bin`",
                manifest.display()
            ));
        }
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// The quoted strings of the `members = [...]` array of a workspace manifest.
fn workspace_members(manifest: &str) -> Vec<String> {
    // `members`, not `default-members`.
    let at_line_start =
        |&(i, _): &(usize, &str)| manifest[..i].trim_end_matches([' ', '\t']).ends_with('\n') || i == 0;
    let Some((start, _)) = manifest.match_indices("members").find(at_line_start) else { return Vec::new() };
    let rest = &manifest[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else { return Vec::new() };
    rest[open + 1..close.max(open + 1)]
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(','))
        .filter_map(|item| item.trim().strip_prefix('"')?.strip_suffix('"').map(str::to_string))
        .collect()
}

/// The `[package]` name and the `[[bin]]` names of a crate manifest (a package without
/// `[[bin]]` has one binary named like the package).
fn package_and_bins(manifest: &str) -> (Option<String>, Vec<String>) {
    let (mut section, mut package, mut bins) = ("", None, Vec::new());
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some(value) = line.strip_prefix("name").map(str::trim_start).and_then(|l| l.strip_prefix('='))
        else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_string();
        match section {
            "[package]" => package = Some(value),
            "[[bin]]" => bins.push(value),
            _ => {}
        }
    }
    if bins.is_empty() {
        bins.extend(package.clone());
    }
    (package, bins)
}

/// Target of x86_64 partitions.
pub const X86_PARTITION_TARGET: &str = "x86_64-unknown-none";

/// The sample partitions that build for x86_64 (those that need only the SDK parts x86_64 has).
pub const X86_PARTITIONS: &[&str] = &["hello", "pipeline"];

/// Builds the sample partitions for `target` into `target/tantalum/<dir>/<name>.bin` (once per
/// process and target).
pub fn build_partitions_for(target: &str, dir: &str) -> Result<PathBuf> {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if target == PARTITION_TARGET {
        return build_partitions();
    }
    let out = out_dir().join(dir);
    if BUILT.lock().map(|b| b.iter().any(|t| t == target)).unwrap_or(false) {
        return Ok(out);
    }
    step(format!("building partitions ({target}): {}", X86_PARTITIONS.join(", ")));
    // `cargo rustc` passes the SDK's x86_64 linker script to the partition's link only (the
    // hypervisor, built for the same target, has its own).
    for name in X86_PARTITIONS {
        let mut command = Command::new(env!("CARGO"));
        command.args([
            "rustc",
            "--release",
            "--quiet",
            "--target",
            target,
            "-p",
            &format!("partition-{name}"),
        ]);
        command.args(["--bin", name, "--", "-C", "link-arg=-Ttantalum-guest-x86_64.ld"]);
        if !command.current_dir(root()).status()?.success() {
            bail!("building partition {name} for {target} failed");
        }
    }
    std::fs::create_dir_all(&out)?;
    for name in X86_PARTITIONS {
        let elf = root().join("target").join(target).join("release").join(name);
        objcopy(&elf, &out.join(format!("{name}.bin")))?;
    }
    if let Ok(mut built) = BUILT.lock() {
        built.push(target.to_string());
    }
    Ok(out)
}

/// Builds every sample partition into `target/tantalum/partitions/<name>.bin` (once per process).
pub fn build_partitions() -> Result<PathBuf> {
    if let Some(dir) = PARTITIONS_BUILT.get() {
        return Ok(dir.clone());
    }
    let names = partition_names()?;
    check_partition_crates(&root(), &names)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway workspace with `members` and crates `partitions/<name>/` made of `manifests`.
    fn workspace(members: &str, crates: &[(&str, &str)]) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("tantalum-members-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("Cargo.toml"), format!("[workspace]\nmembers = [\n{members}\n]\n")).unwrap();
        for (name, manifest) in crates {
            std::fs::create_dir_all(root.join("partitions").join(name)).unwrap();
            std::fs::write(root.join("partitions").join(name).join("Cargo.toml"), manifest).unwrap();
        }
        root
    }

    fn check(members: &str, crates: &[(&str, &str)]) -> std::result::Result<(), String> {
        let root = workspace(members, crates);
        let names: Vec<String> = crates.iter().map(|(n, _)| n.to_string()).collect();
        let result = check_partition_crates(&root, &names).map_err(|e| e.0);
        std::fs::remove_dir_all(&root).unwrap();
        result
    }

    const HELLO: &str =
        "[package]\nname = \"partition-hello\"\n\n[[bin]]\nname = \"hello\"\npath = \"src/main.rs\"\n";

    #[test]
    fn a_partition_outside_the_workspace_says_what_to_add() {
        assert_eq!(
            check("    \"core\",\n    \"partitions/hello\", # the first\n", &[("hello", HELLO)]),
            Ok(())
        );
        let err = check("    \"core\",\n", &[("hello", HELLO)]).unwrap_err();
        assert!(err.starts_with("partitions/hello/ has a Cargo.toml but is not in the workspace: add \"partitions/hello\" to `members` in "), "{err}");
        assert!(err.ends_with("Cargo.toml"), "{err}");
        // A glob covers it.
        assert_eq!(check("\"partitions/*\"", &[("hello", HELLO)]), Ok(()));
        assert_eq!(workspace_members("default-members = [\"a\"]\nmembers = [\"b\", \"c\"]"), ["b", "c"]);
    }

    #[test]
    fn package_and_binary_names_are_checked() {
        let wrong_package = HELLO.replace("partition-hello", "hello");
        let err = check("\"partitions/hello\"", &[("hello", &wrong_package)]).unwrap_err();
        assert!(err.contains("the package is named \"hello\"; a partition crate in partitions/hello/ must be named \"partition-hello\""), "{err}");
        let no_bin = "[package]\nname = \"partition-hello\"\n";
        let err = check("\"partitions/hello\"", &[("hello", no_bin)]).unwrap_err();
        assert!(err.contains("no binary named \"hello\""), "{err}");
    }

    #[test]
    fn the_real_partitions_pass() {
        let names = partition_names().unwrap();
        assert!(names.contains(&"heartbeat".to_string()));
        check_partition_crates(&root(), &names).unwrap();
    }

    #[test]
    fn each_address_and_set_of_parts_builds_in_a_directory_of_its_own() {
        let v3 = Parts { virtio: false, gic_v2: false, gic_v3: true };
        let virtio_v2 = Parts { virtio: true, gic_v2: true, gic_v3: false };
        let none = Parts { virtio: false, gic_v2: false, gic_v3: false };
        assert_eq!(hypervisor_build_name(DEFAULT_LOAD_ADDRESS, built::ALL), None);
        assert_eq!(hypervisor_build_name(DEFAULT_LOAD_ADDRESS, v3).as_deref(), Some("only-gic-v3"));
        assert_eq!(hypervisor_build_name(0x80000, built::ALL).as_deref(), Some("link-0x80000"));
        assert_eq!(
            hypervisor_build_name(0x80000, virtio_v2).as_deref(),
            Some("link-0x80000-only-virtio-gic-v2")
        );
        assert_eq!(hypervisor_build_name(DEFAULT_LOAD_ADDRESS, none).as_deref(), Some("only-none"));
    }
}
