//! The pinned Rust toolchain (rust-toolchain.toml) and what it must carry.
//!
//! rustup installs the file's `targets` and `components` only when it installs the toolchain
//! itself: a machine that already had that toolchain lacks them, and the bare-metal builds stop
//! at "can't find crate for `core`". [`Toolchain::ensure`] adds what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{bail, step, Result};

/// What rust-toolchain.toml pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinned {
    pub channel: String,
    pub targets: Vec<String>,
    pub components: Vec<String>,
}

impl Pinned {
    /// Reads the `[toolchain]` table's `channel`, `targets` and `components` (one line each).
    pub fn parse(text: &str) -> Result<Pinned> {
        let value = |key: &str| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().to_string())
        };
        let strings = |v: &str| -> Vec<String> {
            v.trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let Some(channel) = value("channel") else { bail!("rust-toolchain.toml: no `channel`") };
        Ok(Pinned {
            channel: channel.trim_matches('"').to_string(),
            targets: value("targets").map(|v| strings(&v)).unwrap_or_default(),
            components: value("components").map(|v| strings(&v)).unwrap_or_default(),
        })
    }

    /// The workspace's rust-toolchain.toml.
    pub fn load() -> Result<Pinned> {
        let path = crate::root().join("rust-toolchain.toml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| crate::Error(format!("{}: {e}", path.display())))?;
        Pinned::parse(&text)
    }
}

/// rustup, for one toolchain, optionally under another `RUSTUP_HOME` (the fresh-toolchain test
/// uses a throwaway copy).
#[derive(Clone, Debug)]
pub struct Toolchain {
    pub pinned: Pinned,
    pub rustup_home: Option<PathBuf>,
}

/// What the toolchain lacks of what is pinned.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Missing {
    pub targets: Vec<String>,
    pub components: Vec<String>,
}

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.components.is_empty()
    }

    /// `rustup` argument lists that add what is missing.
    pub fn fixes(&self, channel: &str) -> Vec<Vec<String>> {
        let mut fixes = Vec::new();
        for (kind, names) in [("target", &self.targets), ("component", &self.components)] {
            if !names.is_empty() {
                let mut args =
                    vec![kind.to_string(), "add".into(), "--toolchain".into(), channel.to_string()];
                args.extend(names.iter().cloned());
                fixes.push(args);
            }
        }
        fixes
    }
}

/// Whether an installed component name (`clippy-x86_64-unknown-linux-gnu`, `rust-src`) is the
/// pinned `component` (rustup lists host components with the host triple appended).
fn is_component(installed: &str, component: &str, host: &str) -> bool {
    installed == component
        || installed.strip_prefix(component).and_then(|r| r.strip_prefix('-')) == Some(host)
}

/// What `pinned` asks for that `targets` / `components` (rustup's `--installed` lists) lack.
pub fn missing(pinned: &Pinned, targets: &str, components: &str, host: &str) -> Missing {
    Missing {
        targets: pinned
            .targets
            .iter()
            .filter(|t| !targets.lines().any(|l| l.trim() == *t))
            .cloned()
            .collect(),
        components: pinned
            .components
            .iter()
            .filter(|c| !components.lines().any(|l| is_component(l.trim(), c, host)))
            .cloned()
            .collect(),
    }
}

/// The host triple of the running rustc.
pub fn host() -> String {
    Command::new("rustc")
        .arg("-vV")
        .current_dir(crate::root())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        })
        .unwrap_or_else(|| "x86_64-unknown-linux-gnu".into())
}

impl Toolchain {
    /// The pinned toolchain in the user's own rustup.
    pub fn pinned() -> Result<Toolchain> {
        Ok(Toolchain { pinned: Pinned::load()?, rustup_home: None })
    }

    fn rustup(&self, args: &[&str]) -> Command {
        let mut c = Command::new("rustup");
        c.args(args).current_dir(crate::root());
        if let Some(home) = &self.rustup_home {
            c.env("RUSTUP_HOME", home);
        }
        c
    }

    fn list(&self, kind: &str) -> Result<String> {
        let out = self.rustup(&[kind, "list", "--installed", "--toolchain", &self.pinned.channel]).output();
        match out {
            Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
            Ok(o) => bail!(
                "`rustup {kind} list --installed --toolchain {}` failed: {}",
                self.pinned.channel,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => bail!("cannot run rustup ({e}): install Rust with rustup (https://rustup.rs)"),
        }
    }

    /// What the toolchain lacks of rust-toolchain.toml's targets and components.
    pub fn missing(&self) -> Result<Missing> {
        Ok(missing(&self.pinned, &self.list("target")?, &self.list("component")?, &host()))
    }

    /// Adds every missing target and component, each with a `==>` line.
    pub fn ensure(&self) -> Result<()> {
        let missing = self.missing()?;
        for args in missing.fixes(&self.pinned.channel) {
            step(format!("rustup {}", args.join(" ")));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let status = self.rustup(&args).status()?;
            if !status.success() {
                bail!("`rustup {}` failed", args.join(" "));
            }
        }
        Ok(())
    }
}

/// Copies the toolchain at `from` to `home/toolchains/<name>` with hard links, except rustup's
/// own bookkeeping files (which rustup rewrites in place), for a throwaway `RUSTUP_HOME` that
/// can lose and regain a target without touching the original.
pub fn throwaway_copy(from: &Path, home: &Path, name: &str) -> Result<()> {
    let to = home.join("toolchains").join(name);
    if home.exists() {
        std::fs::remove_dir_all(home)?;
    }
    std::fs::create_dir_all(home.join("toolchains"))?;
    let status = Command::new("cp").arg("-al").arg(from).arg(&to).status()?;
    if !status.success() {
        bail!("cp -al {} {} failed", from.display(), to.display());
    }
    let rustlib = to.join("lib/rustlib");
    for entry in std::fs::read_dir(&rustlib)? {
        let path = entry?.path();
        if path.is_file() {
            let bytes = std::fs::read(&path)?;
            std::fs::remove_file(&path)?;
            std::fs::write(&path, bytes)?;
        }
    }
    std::fs::write(home.join("settings.toml"), "version = \"12\"\nprofile = \"minimal\"\n")?;
    Ok(())
}

/// The directory of the toolchain rustc runs from (its sysroot).
pub fn sysroot() -> Result<PathBuf> {
    let out = Command::new("rustc").args(["--print", "sysroot"]).current_dir(crate::root()).output()?;
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_workspace_file() {
        let pinned = Pinned::load().unwrap();
        assert!(pinned.targets.contains(&"aarch64-unknown-none-softfloat".to_string()));
        assert!(pinned.components.contains(&"llvm-tools".to_string()));
        assert!(!pinned.channel.contains('"'));
    }

    #[test]
    fn finds_what_is_missing() {
        let pinned = Pinned::parse(
            "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"a-none\", \"b-none\"]\ncomponents = [\"rust-src\", \"clippy\", \"llvm-tools\"]\n",
        )
        .unwrap();
        let host = "x86_64-unknown-linux-gnu";
        let targets = "x86_64-unknown-linux-gnu\nb-none\n";
        let components = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\nrust-src\n";
        let m = missing(&pinned, targets, components, host);
        assert_eq!(m.targets, ["a-none"]);
        assert_eq!(m.components, ["llvm-tools"]);
        assert_eq!(
            m.fixes("1.95.0"),
            [
                vec!["target", "add", "--toolchain", "1.95.0", "a-none"],
                vec!["component", "add", "--toolchain", "1.95.0", "llvm-tools"]
            ]
        );
        // `llvm-tools-preview-<host>` is not `llvm-tools`, `rust-std-...` is not `rust-src`.
        assert!(!is_component("llvm-tools-preview-x86_64-unknown-linux-gnu", "llvm-tools", host));
        assert!(!is_component("rust-std-x86_64-unknown-linux-gnu", "rust-src", host));
        assert!(missing(
            &pinned,
            "a-none\nb-none",
            "rust-src\nclippy-x86_64-unknown-linux-gnu\nllvm-tools-x86_64-unknown-linux-gnu",
            host
        )
        .is_empty());
    }
}
