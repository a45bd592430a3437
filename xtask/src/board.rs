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
        let load_address = get("load-address")?;
        let Ok(load_address) = u64::from_str_radix(load_address.trim_start_matches("0x"), 16) else {
            bail!("{}: load-address must be a hex number", path.display());
        };
        Ok(Board {
            name: get("name")?,
            qemu_binary: get("binary")?,
            machine: get("machine")?,
            cpu: get("cpu")?,
            smp: get("smp")?.parse()?,
            memory: get("memory")?,
            load_address,
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
