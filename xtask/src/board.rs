//! `boards/<name>/board.toml`: how to run a system built for a board.

use std::path::{Path, PathBuf};

use crate::{bail, Result};

/// What the xtask needs to know about a board.
#[derive(Clone, Debug)]
pub struct Board {
    pub name: String,
    pub qemu_binary: String,
    pub machine: String,
    pub cpu: String,
    pub smp: u32,
    pub memory: String,
    /// Where the boot loader places the image (RAM base + arm64 text_offset).
    pub load_address: u64,
    /// The system `cargo xtask run --board NAME` boots (relative to the workspace root).
    pub demo: Option<String>,
    /// Where the U-Boot script loads the boot image file (`[u-boot] image-address`): free RAM
    /// that `booti` moves the image from to `load_address` (docs/boards.md, "Flashing").
    pub uboot_image_address: Option<u64>,
}

impl Board {
    /// Reads `dir/board.toml` (a flat subset of TOML: `key = "value"` or `key = number`).
    pub fn load(dir: &Path) -> Result<Board> {
        let path = dir.join("board.toml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| crate::Error(format!("{}: {e}", path.display())))?;
        let get = |key: &str| -> Result<String> {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
                .ok_or_else(|| crate::Error(format!("{}: missing `{key}`", path.display())))
        };
        let hex = |key: &str, value: String| match u64::from_str_radix(value.trim_start_matches("0x"), 16) {
            Ok(v) => Ok(v),
            Err(_) => Err(crate::Error(format!("{}: {key} must be a hex number", path.display()))),
        };
        let load_address = hex("load-address", get("load-address")?)?;
        let uboot_image_address = get("image-address").ok().map(|v| hex("image-address", v)).transpose()?;
        Ok(Board {
            name: get("name")?,
            qemu_binary: get("binary")?,
            machine: get("machine")?,
            cpu: get("cpu")?,
            smp: get("smp")?.parse()?,
            memory: get("memory")?,
            load_address,
            demo: get("demo").ok(),
            uboot_image_address,
        })
    }

    /// Every board under `boards/`, by name.
    pub fn all() -> Result<Vec<Board>> {
        let mut boards = Vec::new();
        for entry in std::fs::read_dir(crate::root().join("boards"))? {
            let dir = entry?.path();
            if dir.join("board.toml").is_file() {
                boards.push(Board::load(&dir)?);
            }
        }
        boards.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(boards)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} -M {} -cpu {} -smp {} -m {}",
            self.qemu_binary, self.machine, self.cpu, self.smp, self.memory
        )
    }
}

/// The system `run --board NAME` boots: `config` when one was given (it must be for that
/// board), else the board's demo (`demo` in its board.toml).
pub fn system_for(name: &str, config: &Path, default: &Path) -> Result<PathBuf> {
    let dir = crate::root().join("boards").join(name);
    let Ok(board) = Board::load(&dir) else {
        let names: Vec<String> = Board::all()?.into_iter().map(|b| b.name).collect();
        bail!("no board '{name}' (boards: {})", names.join(", "));
    };
    if config != default {
        let of = board_of(config)?;
        if of.file_name() != dir.file_name() {
            let of = of.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            bail!("{} is a system for board '{of}', not '{name}'", config.display());
        }
        return Ok(config.to_path_buf());
    }
    match board.demo {
        Some(demo) => Ok(crate::root().join(demo)),
        None => {
            bail!("{}: no `demo` system to boot: give one with --config", dir.join("board.toml").display())
        }
    }
}

/// The board directory a system DTS includes (`/include/ ".../boards/<name>/board.dtsi"`).
pub fn board_of(dts: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(dts).map_err(|e| crate::Error(format!("{}: {e}", dts.display())))?;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("/include/") {
            let included = rest.trim().trim_matches('"');
            if included.ends_with("board.dtsi") {
                let path = dts.parent().unwrap_or(Path::new(".")).join(included);
                if let Some(dir) = path.parent() {
                    return Ok(dir.to_path_buf());
                }
            }
        }
    }
    bail!("{}: no /include/ of a boards/<name>/board.dtsi: which board is this for?", dts.display())
}
