//! Kernel modules for the initramfs: Debian's cloud kernel builds virtio, virtio-mmio and
//! virtio-blk as modules, so `/init` loads them with `insmod`, dependencies first. The
//! dependencies come from each module's `.modinfo` ELF section (`depends=a,b`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{bail, Result};

/// The `key=value` strings of a module's `.modinfo` section.
pub fn modinfo(elf: &[u8]) -> Result<Vec<(String, String)>> {
    let section = section(elf, ".modinfo")?;
    Ok(section
        .split(|&b| b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// The modules `depends=` names (module names, `_` for `-`).
pub fn depends(elf: &[u8]) -> Result<Vec<String>> {
    Ok(modinfo(elf)?
        .into_iter()
        .filter(|(k, _)| k == "depends")
        .flat_map(|(_, v)| v.split(',').filter(|d| !d.is_empty()).map(normalize).collect::<Vec<_>>())
        .collect())
}

/// Module names use `_` where file names may use `-` (`virtio-rng.ko` is `virtio_rng`).
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

fn u16_at(b: &[u8], at: usize) -> Result<u16> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_le_bytes([s[0], s[1]])),
        None => bail!("truncated ELF"),
    }
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_le_bytes(s.try_into().expect("4 bytes"))),
        None => bail!("truncated ELF"),
    }
}

fn u64_at(b: &[u8], at: usize) -> Result<u64> {
    match b.get(at..at + 8) {
        Some(s) => Ok(u64::from_le_bytes(s.try_into().expect("8 bytes"))),
        None => bail!("truncated ELF"),
    }
}

/// The contents of the section called `wanted` in a little-endian ELF64 file.
pub fn section<'a>(elf: &'a [u8], wanted: &str) -> Result<&'a [u8]> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        bail!("not a little-endian ELF64 file");
    }
    let shoff = usize::try_from(u64_at(elf, 0x28)?)?;
    let shentsize = usize::from(u16_at(elf, 0x3A)?);
    let shnum = usize::from(u16_at(elf, 0x3C)?);
    let shstrndx = usize::from(u16_at(elf, 0x3E)?);
    if shentsize < 64 || shstrndx >= shnum {
        bail!("bad ELF section table");
    }
    let header = |i: usize| -> Result<(u32, &'a [u8])> {
        let h = shoff + i * shentsize;
        let name = u32_at(elf, h)?;
        let offset = usize::try_from(u64_at(elf, h + 24)?)?;
        let size = usize::try_from(u64_at(elf, h + 32)?)?;
        match elf.get(offset..offset.saturating_add(size)) {
            Some(data) => Ok((name, data)),
            None => bail!("ELF section {i} lies outside the file"),
        }
    };
    let (_, names) = header(shstrndx)?;
    for i in 0..shnum {
        let (name, data) = header(i)?;
        let name = names.get(name as usize..).unwrap_or_default();
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        if name == wanted.as_bytes() {
            return Ok(data);
        }
    }
    bail!("no {wanted} section")
}

/// The module name of a module file name: `virtio.ko`, or compressed `virtio.ko.xz` /
/// `virtio.ko.zst` (Debian's later kernels compress them; the caller decompresses).
pub fn module_stem(file_name: &str) -> Option<&str> {
    [".ko", ".ko.xz", ".ko.zst"].iter().find_map(|s| file_name.strip_suffix(s))
}

/// Every module file under `dir` by module name.
pub fn index(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(module_stem) {
                out.insert(normalize(stem), path);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out)?;
    Ok(out)
}

/// Names of the modules built into the kernel, from `modules.builtin` (paths like
/// `kernel/drivers/virtio/virtio.ko`).
pub fn builtin(modules_builtin: &str) -> Vec<String> {
    modules_builtin
        .lines()
        .filter_map(|l| l.trim().rsplit('/').next())
        .filter_map(module_stem)
        .map(normalize)
        .collect()
}

/// The modules to load for `wanted`, dependencies first, each once; `deps` gives a module's
/// direct dependencies (`None`: the module does not exist). Built-in modules are skipped.
pub fn load_order(
    wanted: &[&str],
    builtin: &[String],
    deps: &mut dyn FnMut(&str) -> Result<Option<Vec<String>>>,
) -> Result<Vec<String>> {
    fn visit(
        name: &str,
        builtin: &[String],
        deps: &mut dyn FnMut(&str) -> Result<Option<Vec<String>>>,
        stack: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<()> {
        if out.iter().any(|m| m == name) || builtin.iter().any(|m| m == name) {
            return Ok(());
        }
        if stack.iter().any(|m| m == name) {
            bail!("module dependency cycle: {} -> {name}", stack.join(" -> "));
        }
        let Some(direct) = deps(name)? else {
            bail!("kernel module {name} is neither built in nor shipped with the kernel");
        };
        stack.push(name.to_string());
        for d in direct {
            visit(&d, builtin, deps, stack, out)?;
        }
        stack.pop();
        out.push(name.to_string());
        Ok(())
    }
    let mut out = Vec::new();
    for name in wanted {
        visit(&normalize(name), builtin, deps, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with a section-name table and a `.modinfo` section.
    fn fake_module(modinfo: &[u8]) -> Vec<u8> {
        let shstrtab = b"\0.shstrtab\0.modinfo\0";
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let shstr_off = elf.len();
        elf.extend_from_slice(shstrtab);
        let modinfo_off = elf.len();
        elf.extend_from_slice(modinfo);
        while !elf.len().is_multiple_of(8) {
            elf.push(0);
        }
        let shoff = elf.len();
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3E..0x40].copy_from_slice(&1u16.to_le_bytes());
        let sh = |name: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            h
        };
        elf.extend(sh(0, 0, 0));
        elf.extend(sh(1, shstr_off, shstrtab.len()));
        elf.extend(sh(11, modinfo_off, modinfo.len()));
        elf
    }

    #[test]
    fn reads_depends_from_modinfo() {
        let elf =
            fake_module(b"license=GPL\0depends=virtio,virtio_ring\0name=virtio_blk\0vermagic=6.1.0 SMP\0");
        assert_eq!(depends(&elf).unwrap(), ["virtio", "virtio_ring"]);
        let info = modinfo(&elf).unwrap();
        assert!(info.contains(&("name".into(), "virtio_blk".into())));
        let none = fake_module(b"depends=\0name=virtio_ring\0");
        assert!(depends(&none).unwrap().is_empty());
        assert!(section(&elf, ".text").is_err());
        assert!(modinfo(b"not an elf").is_err());
        // A truncated section table is an error, not a panic.
        assert!(modinfo(&elf[..elf.len() - 40]).is_err());
    }

    #[test]
    fn builtin_names() {
        let b = builtin("kernel/drivers/virtio/virtio.ko\nkernel/drivers/char/hw_random/virtio-rng.ko\n");
        assert_eq!(b, ["virtio", "virtio_rng"]);
        assert_eq!(module_stem("virtio_blk.ko.xz"), Some("virtio_blk"));
        assert_eq!(module_stem("modules.order"), None);
    }

    #[test]
    fn dependencies_come_first_once() {
        let graph: BTreeMap<&str, Vec<&str>> = [
            ("virtio_ring", vec![]),
            ("virtio", vec!["virtio_ring"]),
            ("virtio_mmio", vec!["virtio", "virtio_ring"]),
            ("virtio_blk", vec!["virtio", "virtio_ring"]),
        ]
        .into();
        let mut deps = |n: &str| Ok(graph.get(n).map(|d| d.iter().map(|s| s.to_string()).collect()));
        let order = load_order(&["virtio_mmio", "virtio-blk"], &[], &mut deps).unwrap();
        assert_eq!(order, ["virtio_ring", "virtio", "virtio_mmio", "virtio_blk"]);
        // Built-in modules are not loaded.
        let order = load_order(&["virtio_blk"], &["virtio_ring".into()], &mut deps).unwrap();
        assert_eq!(order, ["virtio", "virtio_blk"]);
        assert!(load_order(&["nope"], &[], &mut deps).is_err());
        let cyclic: BTreeMap<&str, Vec<&str>> = [("a", vec!["b"]), ("b", vec!["a"])].into();
        let mut deps = |n: &str| Ok(cyclic.get(n).map(|d| d.iter().map(|s| s.to_string()).collect()));
        assert!(load_order(&["a"], &[], &mut deps).is_err());
    }
}
