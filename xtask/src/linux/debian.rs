//! Debian's arm64 cloud kernel, its virtio modules and a static busybox, fetched with apt and
//! cached under `target/tantalum/linux/cache/` (and the same for amd64, [`DebArch::Amd64`]:
//! the bzImage of `linux-image-cloud-amd64` and busybox, no modules, in `cache-amd64/`):
//!
//! ```text
//! cache/
//!   linux-image-<ver>_<debver>_arm64.deb, busybox-static_<debver>_arm64.deb   (as downloaded)
//!   Image             the kernel: a raw arm64 Image (vmlinuz, gunzipped if it was gzip)
//!   busybox           the static arm64 busybox
//!   modules/<name>.ko the modules /init loads, and modules/load-order (their names, in order)
//!   modules/wanted    the module list they were resolved for (a changed list re-extracts)
//!   packages          "<package> <version>" of the two .debs, for information
//!   kernel-version    e.g. 6.1.0-57-cloud-arm64; written last: the cache is complete
//! ```
//!
//! A complete cache is reused without touching apt. Otherwise: `dpkg --add-architecture arm64`
//! (if missing) and `apt-get update` (if apt knows no arm64 cloud kernel) need root; without
//! root the error says which commands to run. `apt-get download` and `dpkg-deb -x` do not.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::kmod;
use crate::{bail, step, Error, Result};

/// The metapackage that depends on the current versioned cloud kernel (arm64).
pub const KERNEL_METAPACKAGE: &str = "linux-image-cloud-arm64";

/// The Debian architecture a kernel and busybox are fetched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebArch {
    /// The arm64 guest: a raw `Image`, virtio modules.
    Arm64,
    /// The x86_64 guest: a `bzImage`, no modules (the 8250 UART is built in).
    Amd64,
}

impl DebArch {
    /// Debian's name of the architecture.
    pub fn name(self) -> &'static str {
        match self {
            Self::Arm64 => "arm64",
            Self::Amd64 => "amd64",
        }
    }

    /// The metapackage that depends on the current versioned cloud kernel.
    pub fn metapackage(self) -> &'static str {
        match self {
            Self::Arm64 => KERNEL_METAPACKAGE,
            Self::Amd64 => "linux-image-cloud-amd64",
        }
    }

    /// The cache's name for the kernel image.
    fn image_file(self) -> &'static str {
        match self {
            Self::Arm64 => "Image",
            Self::Amd64 => "bzImage",
        }
    }

    /// Whether `image` (its head suffices) is this architecture's kernel image.
    pub fn is_image(self, image: &[u8]) -> bool {
        match self {
            Self::Arm64 => is_arm64_image(image),
            Self::Amd64 => is_bzimage(image),
        }
    }

    /// Whether `elf` (its head suffices) is a 64-bit little-endian ELF for this architecture.
    pub fn is_elf(self, elf: &[u8]) -> bool {
        let machine: u16 = match self {
            Self::Arm64 => 183,
            Self::Amd64 => 62,
        };
        elf.get(..6) == Some(b"\x7fELF\x02\x01") && elf.get(18..20) == Some(&machine.to_le_bytes())
    }

    /// The modules /init loads.
    fn modules(self) -> &'static [&'static str] {
        match self {
            Self::Arm64 => MODULES,
            Self::Amd64 => &[],
        }
    }
}
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
/// Modules the guest needs that Debian's cloud kernel builds as modules (their dependencies
/// are added): the virtio-pci and virtio-mmio transports, virtio-blk for the passed-through
/// disk (the PCIe host bridge driver, pci-host-generic, is built in), virtio-net and the virtio
/// vsock transport for Tantalum's links.
pub const MODULES: &[&str] =
    &["virtio_pci", "virtio_mmio", "virtio_blk", "virtio_net", "vmw_vsock_virtio_transport"];

/// What the cache holds once complete.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// `uname -r` of the kernel, e.g. `6.1.0-57-cloud-arm64`.
    pub version: String,
    pub image: PathBuf,
    pub busybox: PathBuf,
    /// Modules in load order (dependencies first), as (name, file).
    pub modules: Vec<(String, PathBuf)>,
}

/// The arm64 kernel, modules and busybox from the cache, fetching and extracting them first if
/// the cache is missing or incomplete.
pub fn fetch(cache: &Path) -> Result<Kernel> {
    fetch_for(cache, DebArch::Arm64)
}

/// [`fetch`] for `arch`.
pub fn fetch_for(cache: &Path, arch: DebArch) -> Result<Kernel> {
    let name = arch.name();
    if let Some(kernel) = cached_for(cache, arch) {
        return Ok(kernel);
    }
    fs::create_dir_all(cache)?;
    let root = is_root();
    let needs_root = |why: &str, commands: &[&str]| -> Error {
        Error(format!(
            "{why}: the Debian {name} kernel and busybox for the Linux guest come from apt, and setting \
             apt up needs root; run\n    {}\nthen run this again",
            crate::tools::root_command(commands)
        ))
    };

    let native = run(Command::new("dpkg").arg("--print-architecture"))?;
    let arches = run(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    if native.trim() != name && !arches.split_whitespace().any(|a| a == name) {
        // Only Debian's archive serves every architecture from one mirror: Ubuntu's serves
        // arm64 elsewhere, so adding it would break every later `apt-get update`.
        let os = fs::read_to_string("/etc/os-release").unwrap_or_default();
        if !is_debian(&os) {
            bail!(
                "the Linux guests boot Debian's {name} kernel and busybox, which apt fetches from \
                 Debian's archive with {name} added as a foreign architecture; this is {}, whose \
                 archive lacks them: the Linux scenarios need a Debian host (the others run here)",
                os_name(&os)
            );
        }
        if !root {
            let add = format!("dpkg --add-architecture {name}");
            return Err(needs_root(&format!("dpkg has no {name} architecture"), &[&add, "apt-get update"]));
        }
        step(format!("dpkg --add-architecture {name}"));
        run(Command::new("dpkg").args(["--add-architecture", name]))?;
    }

    let meta = format!("{}:{name}", arch.metapackage());
    let mut updated = false;
    if candidate(&run(Command::new("apt-cache").args(["policy", &meta]))?).is_none() {
        if !root {
            return Err(needs_root(&format!("apt knows no {meta}"), &["apt-get update"]));
        }
        apt_update()?;
        updated = true;
        if candidate(&run(Command::new("apt-cache").args(["policy", &meta]))?).is_none() {
            bail!("apt has no candidate for {meta} even after apt-get update (is this Debian?)");
        }
    }
    let depends = run(Command::new("apt-cache").args(["depends", &meta]))?;
    let Some(package) = versioned_kernel(&depends, arch) else {
        bail!("`apt-cache depends {meta}` names no linux-image-*-cloud-{name} package:\n{depends}");
    };
    let version = package.strip_prefix("linux-image-").expect("checked by versioned_kernel").to_string();
    step(format!("Debian kernel package {package} ({name})"));

    let suffix = format!("_{name}.deb");
    let find = |package: &str| -> Result<Option<PathBuf>> {
        let prefix = format!("{package}_");
        for entry in fs::read_dir(cache)? {
            let path = entry?.path();
            let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if file.starts_with(&prefix) && file.ends_with(&suffix) {
                return Ok(Some(path));
            }
        }
        Ok(None)
    };
    if find(&package)?.is_none() || find(BUSYBOX_PACKAGE)?.is_none() {
        // Old versions go: the cache keeps one kernel.
        for entry in fs::read_dir(cache)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "deb") {
                fs::remove_file(&path)?;
            }
        }
        step(format!(
            "apt-get download {package}:{name} {BUSYBOX_PACKAGE}:{name} (into {})",
            cache.display()
        ));
        let download = || {
            let mut c = Command::new("apt-get");
            if root {
                // The cache directory need not be readable by apt's sandbox user.
                c.args(["-o", "APT::Sandbox::User=root"]);
            }
            c.args(["download", &format!("{package}:{name}"), &format!("{BUSYBOX_PACKAGE}:{name}")]);
            c.current_dir(cache);
            run(&mut c)
        };
        if let Err(first) = download() {
            // Stale package lists name versions the mirror no longer has.
            if updated || !root {
                return Err(if root { first } else { needs_root(&first.0, &["apt-get update"]) });
            }
            apt_update()?;
            download()?;
        }
    }
    let (Some(kernel_deb), Some(busybox_deb)) = (find(&package)?, find(BUSYBOX_PACKAGE)?) else {
        bail!("apt-get download left no {package} or {BUSYBOX_PACKAGE} .deb in {}", cache.display());
    };
    extract(cache, arch, &version, &kernel_deb, &busybox_deb)?;
    cached_for(cache, arch)
        .ok_or_else(|| Error(format!("{} is still incomplete after extracting", cache.display())))
}

/// Unpacks the two .debs and fills the cache (kernel-version last).
fn extract(cache: &Path, arch: DebArch, version: &str, kernel_deb: &Path, busybox_deb: &Path) -> Result<()> {
    let _ = fs::remove_file(cache.join("kernel-version"));
    let tree = cache.join("extract");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    let mut packages = String::new();
    for deb in [kernel_deb, busybox_deb] {
        step(format!("dpkg-deb -x {}", deb.display()));
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree))?;
        let fields = run(Command::new("dpkg-deb").arg("-f").arg(deb).args(["Package", "Version"]))?;
        let value = |key: &str| {
            fields.lines().find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string())).unwrap_or_default()
        };
        packages.push_str(&format!("{} {}\n", value("Package:"), value("Version:")));
    }

    let vmlinuz = tree.join("boot").join(format!("vmlinuz-{version}"));
    let mut image = fs::read(&vmlinuz).map_err(|e| Error(format!("{}: {e}", vmlinuz.display())))?;
    if arch == DebArch::Arm64 && image.starts_with(&[0x1f, 0x8b]) {
        step(format!("gunzipping {}", vmlinuz.display()));
        let out = Command::new("gzip").arg("-dc").arg(&vmlinuz).stderr(Stdio::inherit()).output()?;
        if !out.status.success() {
            bail!("gzip -dc {} failed", vmlinuz.display());
        }
        image = out.stdout;
    }
    if !arch.is_image(&image) {
        bail!(
            "{} is not an {} kernel image ({})",
            vmlinuz.display(),
            arch.name(),
            match arch {
                DebArch::Arm64 => "no ARM\\x64 magic at offset 56",
                DebArch::Amd64 => "no HdrS magic at offset 0x202",
            }
        );
    }
    write_atomic(&cache.join(arch.image_file()), &image)?;

    let busybox = fs::read(tree.join("bin/busybox"))?;
    if !arch.is_elf(&busybox) {
        bail!("bin/busybox of {} is not an {} ELF", busybox_deb.display(), arch.name());
    }
    write_atomic(&cache.join("busybox"), &busybox)?;

    let module_root = tree.join("lib/modules").join(version);
    let builtin = fs::read_to_string(module_root.join("modules.builtin"))
        .map(|s| kmod::builtin(&s))
        .unwrap_or_default();
    let index = kmod::index(&module_root.join("kernel"))?;
    let mut bytes = std::collections::BTreeMap::new();
    let mut read = |name: &str| -> Result<Option<Vec<String>>> {
        let Some(path) = index.get(name) else { return Ok(None) };
        let data = module_bytes(path)?;
        let deps = kmod::depends(&data).map_err(|e| Error(format!("{}: {}", path.display(), e.0)))?;
        bytes.insert(name.to_string(), data);
        Ok(Some(deps))
    };
    let order = kmod::load_order(arch.modules(), &builtin, &mut read)?;
    let modules = cache.join("modules");
    if modules.exists() {
        fs::remove_dir_all(&modules)?;
    }
    fs::create_dir_all(&modules)?;
    for name in &order {
        fs::write(modules.join(format!("{name}.ko")), &bytes[name])?;
    }
    fs::write(modules.join("load-order"), lines(&order))?;
    fs::write(modules.join("wanted"), lines(arch.modules()))?;
    fs::write(cache.join("packages"), packages)?;
    fs::remove_dir_all(&tree)?;
    fs::write(cache.join("kernel-version"), format!("{version}\n"))?;
    Ok(())
}

fn lines<S: AsRef<str>>(items: &[S]) -> String {
    items.iter().map(|s| format!("{}\n", s.as_ref())).collect()
}

/// A module file's contents, decompressed if Debian compressed it.
fn module_bytes(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else {
        return Ok(fs::read(path)?);
    };
    let program = crate::tools::on_demand(tool, "Debian compressed the kernel's modules")?;
    let out = Command::new(program).arg("-dc").arg(path).stderr(Stdio::inherit()).output();
    match out {
        Ok(out) if out.status.success() => Ok(out.stdout),
        _ => bail!("cannot decompress {} with `{tool} -dc`", path.display()),
    }
}

/// The complete arm64 cache, if it is: every file present and of the right kind.
pub fn cached(cache: &Path) -> Option<Kernel> {
    cached_for(cache, DebArch::Arm64)
}

/// [`cached`] for `arch`.
pub fn cached_for(cache: &Path, arch: DebArch) -> Option<Kernel> {
    let version = fs::read_to_string(cache.join("kernel-version")).ok()?.trim().to_string();
    if version.is_empty() {
        return None;
    }
    let image = cache.join(arch.image_file());
    let busybox = cache.join("busybox");
    if !arch.is_image(&read_head(&image, 0x210)?) || !arch.is_elf(&read_head(&busybox, 20)?) {
        return None;
    }
    let modules = cache.join("modules");
    if fs::read_to_string(modules.join("wanted")).ok()? != lines(arch.modules()) {
        return None;
    }
    let order = fs::read_to_string(modules.join("load-order")).ok()?;
    let mut list = Vec::new();
    for name in order.lines().filter(|l| !l.trim().is_empty()) {
        let path = modules.join(format!("{name}.ko"));
        if read_head(&path, 4)? != b"\x7fELF" {
            return None;
        }
        list.push((name.to_string(), path));
    }
    Some(Kernel { version, image, busybox, modules: list })
}

fn read_head(path: &Path, n: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut head = vec![0; n];
    fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    Some(head)
}

/// The arm64 Linux boot image magic, "ARM\x64" at offset 56 (Documentation/arch/arm64/booting.rst).
pub fn is_arm64_image(image: &[u8]) -> bool {
    image.get(56..60) == Some(b"ARM\x64")
}

/// An x86 bzImage: the boot sector's 0xaa55 and the setup header's "HdrS" at 0x202
/// (Documentation/arch/x86/boot.rst).
pub fn is_bzimage(image: &[u8]) -> bool {
    image.get(0x1fe..0x200) == Some(&[0x55, 0xaa]) && image.get(0x202..0x206) == Some(b"HdrS")
}

/// The `Candidate:` version of `apt-cache policy` output; `None` when there is none.
pub fn candidate(policy: &str) -> Option<String> {
    policy
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_string)
}

/// The versioned kernel package the metapackage depends on, from `apt-cache depends` output:
/// the `Depends: linux-image-<ver>-cloud-<arch>[:<arch>]` line.
pub fn versioned_kernel(depends: &str, arch: DebArch) -> Option<String> {
    let suffix = format!("-cloud-{}", arch.name());
    depends.lines().find_map(|line| {
        let line = line.trim().trim_start_matches('|');
        let package = line.strip_prefix("Depends:")?.trim();
        // `<virtual>` packages are printed in angle brackets; the arch qualifier goes.
        let package = package.split(':').next()?.trim();
        let ver = package.strip_prefix("linux-image-")?.strip_suffix(suffix.as_str())?;
        (!ver.is_empty() && !package.contains(['<', '>', ' '])).then(|| package.to_string())
    })
}

/// Whether `/etc/os-release` (its text) is Debian's own (not a derivative: `ID=debian`).
pub fn is_debian(os_release: &str) -> bool {
    os_release.lines().any(|l| matches!(l.trim(), "ID=debian" | "ID=\"debian\""))
}

/// The system's name from `/etc/os-release` (its text).
fn os_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|n| n.trim_matches('"').to_string())
        .unwrap_or_else(|| "not Debian (no /etc/os-release says so)".into())
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn apt_update() -> Result<()> {
    step("apt-get update");
    run(Command::new("apt-get").arg("update"))?;
    Ok(())
}

/// Runs a command without input; its standard output, or an error with everything it printed.
fn run(command: &mut Command) -> Result<String> {
    let shown = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = command
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error(format!("cannot run `{shown}`: {e}")))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes through a temporary file and a rename, so that readers never see half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only Debian's own archive has the foreign-architecture kernel: Ubuntu (ID_LIKE=debian)
    /// is not taken for Debian.
    #[test]
    fn only_debian_is_debian() {
        assert!(is_debian("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"));
        assert!(is_debian("ID=\"debian\"\n"));
        let ubuntu = "PRETTY_NAME=\"Ubuntu 24.04 LTS\"\nID=ubuntu\nID_LIKE=debian\n";
        assert!(!is_debian(ubuntu));
        assert_eq!(os_name(ubuntu), "Ubuntu 24.04 LTS");
        assert!(!is_debian(""));
    }

    #[test]
    fn depends_line_of_the_metapackage() {
        let out = "linux-image-cloud-arm64:arm64\n  Depends: linux-image-6.1.0-57-cloud-arm64:arm64\n";
        assert_eq!(
            versioned_kernel(out, DebArch::Arm64).as_deref(),
            Some("linux-image-6.1.0-57-cloud-arm64")
        );
        let without_arch = "linux-image-cloud-arm64\n  Depends: linux-image-6.12.43+deb13-cloud-arm64\n";
        assert_eq!(
            versioned_kernel(without_arch, DebArch::Arm64).as_deref(),
            Some("linux-image-6.12.43+deb13-cloud-arm64")
        );
        let noisy = "linux-image-cloud-arm64:arm64\n  Recommends: firmware-linux\n \
                     |Depends: <linux-image-virtual>\n  Depends: linux-base\n  \
                     Depends: linux-image-6.1.0-57-cloud-arm64:arm64\n";
        assert_eq!(
            versioned_kernel(noisy, DebArch::Arm64).as_deref(),
            Some("linux-image-6.1.0-57-cloud-arm64")
        );
        assert_eq!(versioned_kernel("linux-image-cloud-arm64:arm64\n", DebArch::Arm64), None);
        let amd64 = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n";
        assert_eq!(
            versioned_kernel(amd64, DebArch::Amd64).as_deref(),
            Some("linux-image-6.1.0-57-cloud-amd64")
        );
        assert_eq!(versioned_kernel(amd64, DebArch::Arm64), None, "an amd64 kernel is not the arm64 one");
        assert_eq!(versioned_kernel(out, DebArch::Amd64), None);
        assert_eq!(versioned_kernel("  Depends: linux-image-6.1.0-57-arm64:arm64\n", DebArch::Arm64), None);
        assert_eq!(versioned_kernel("  Depends: linux-image--cloud-arm64\n", DebArch::Arm64), None);
    }

    #[test]
    fn candidate_of_apt_cache_policy() {
        let known =
            "linux-image-cloud-arm64:arm64:\n  Installed: (none)\n  Candidate: 6.1.192-3\n  Version table:\n";
        assert_eq!(candidate(known).as_deref(), Some("6.1.192-3"));
        let unknown = "linux-image-cloud-arm64:arm64:\n  Installed: (none)\n  Candidate: (none)\n";
        assert_eq!(candidate(unknown), None);
        assert_eq!(candidate(""), None);
    }

    #[test]
    fn image_and_elf_magic() {
        let mut image = vec![0u8; 64];
        assert!(!is_arm64_image(&image));
        image[56..60].copy_from_slice(b"ARM\x64");
        assert!(is_arm64_image(&image));
        assert!(!is_arm64_image(&image[..58]));
        let mut elf = vec![0u8; 20];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18] = 62; // x86-64
        assert!(!DebArch::Arm64.is_elf(&elf));
        assert!(DebArch::Amd64.is_elf(&elf));
        elf[18] = 183;
        assert!(DebArch::Arm64.is_elf(&elf));
        assert!(!DebArch::Amd64.is_elf(&elf));
        elf[4] = 1; // ELF32
        assert!(!DebArch::Arm64.is_elf(&elf));
    }

    #[test]
    fn bzimage_magic() {
        let mut image = vec![0u8; 0x210];
        assert!(!is_bzimage(&image));
        image[0x202..0x206].copy_from_slice(b"HdrS");
        assert!(!is_bzimage(&image), "no boot sector signature");
        image[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
        assert!(is_bzimage(&image));
        assert!(DebArch::Amd64.is_image(&image));
        assert!(!DebArch::Arm64.is_image(&image));
        assert!(!is_bzimage(&image[..0x204]));
    }
}
