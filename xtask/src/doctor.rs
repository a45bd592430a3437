//! `cargo xtask doctor [--fix]`: every prerequisite of the xtask's commands, found or missing,
//! with the exact command that fixes it. `--fix` installs what `run` and `test` would.

use std::process::Command;

use crate::toolchain::Toolchain;
use crate::tools::{self, Found};
use crate::{bail, linux, Result};

/// One line of the report.
struct Item {
    what: String,
    /// Where it was found, or `None` when missing.
    found: Option<String>,
    fix: String,
    /// Missing optional items do not fail the doctor.
    optional: bool,
}

fn toolchain_items() -> Vec<Item> {
    let toolchain = match Toolchain::pinned() {
        Ok(t) => t,
        Err(e) => {
            return vec![Item { what: "rust-toolchain.toml".into(), found: None, fix: e.0, optional: false }]
        }
    };
    let channel = toolchain.pinned.channel.clone();
    let missing = match toolchain.missing() {
        Ok(m) => m,
        Err(e) => {
            return vec![Item {
                what: format!("Rust toolchain {channel} (rustup)"),
                found: None,
                fix: e.0,
                optional: false,
            }]
        }
    };
    let mut items = vec![Item {
        what: format!("Rust toolchain {channel} (rust-toolchain.toml)"),
        found: Some("rustup".into()),
        fix: String::new(),
        optional: false,
    }];
    let kinds = [("target", &toolchain.pinned.targets, &missing.targets)];
    let kinds = kinds.into_iter().chain([("component", &toolchain.pinned.components, &missing.components)]);
    for (kind, all, lacking) in kinds {
        for name in all {
            let absent = lacking.contains(name);
            items.push(Item {
                what: format!("  {kind} {name}"),
                found: (!absent).then(|| "installed".into()),
                fix: format!("rustup {kind} add --toolchain {channel} {name}"),
                optional: false,
            });
        }
    }
    items
}

fn program_items() -> Vec<Item> {
    let programs = match tools::programs() {
        Ok(p) => p,
        Err(e) => {
            return vec![Item { what: "boards/*/board.toml".into(), found: None, fix: e.0, optional: false }]
        }
    };
    let mut items = Vec::new();
    for p in programs {
        let what = format!("{} ({}): {}", p.program, p.package, p.purpose);
        let packages = tools::install_set(&p.package);
        let install = tools::root_command(&["apt-get update", &tools::apt_install_command(&packages)]);
        items.push(match tools::find(&p) {
            Found::Yes(path) => {
                Item { what, found: Some(path.display().to_string()), fix: install, optional: false }
            }
            Found::NotOnPath(path) => Item {
                what,
                found: None,
                fix: format!(
                    "installed at {} but not on PATH: export PATH=\"$PATH:{}\"",
                    path.display(),
                    path.parent().map(|d| d.display().to_string()).unwrap_or_default()
                ),
                optional: false,
            },
            Found::No => Item { what, found: None, fix: install, optional: false },
        });
    }
    items
}

fn linux_items() -> Vec<Item> {
    // arm64 as dpkg's own architecture (an arm64 host) or a foreign one.
    let arm64 = ["--print-architecture", "--print-foreign-architectures"].into_iter().any(|which| {
        let out = Command::new("dpkg").arg(which).output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().any(|a| a == "arm64"))
    });
    let debian = linux::debian::is_debian(&std::fs::read_to_string("/etc/os-release").unwrap_or_default());
    let on_debian = |fix: String| if debian { fix } else { format!("needs a Debian host: {fix}") };
    let cache = linux::dir().join("cache");
    let cached = linux::debian::cached(&cache);
    let amd64_cache = linux::dir().join("cache-amd64");
    vec![
        Item {
            what: "Linux guests: dpkg architecture arm64".into(),
            found: arm64.then(|| "added".into()),
            fix: on_debian(format!(
                "{} (the xtask does it as root)",
                tools::root_command(&["dpkg --add-architecture arm64", "apt-get update"])
            )),
            optional: false,
        },
        Item {
            what: format!(
                "Linux guests: Debian {} and {} (arm64)",
                linux::debian::KERNEL_METAPACKAGE,
                linux::debian::BUSYBOX_PACKAGE
            ),
            found: cached.map(|k| format!("{} in {}", k.version, cache.display())),
            fix: on_debian("cargo xtask linux-assets (fetched by apt-get download on first use)".into()),
            optional: false,
        },
        Item {
            what: format!(
                "Linux guests on x86: Debian {} and {} (amd64)",
                linux::debian::DebArch::Amd64.metapackage(),
                linux::debian::BUSYBOX_PACKAGE
            ),
            found: linux::debian::cached_for(&amd64_cache, linux::debian::DebArch::Amd64)
                .map(|k| format!("{} in {}", k.version, amd64_cache.display())),
            fix: on_debian("cargo xtask doctor --fix (fetched by apt-get download on first use)".into()),
            optional: false,
        },
        Item {
            what: "Linux guests: mke2fs (e2fsprogs), makes the guest disk".into(),
            found: tools::find_anywhere("mke2fs").map(|p| p.display().to_string()),
            fix: tools::root_command(&[&tools::apt_install_command(&["e2fsprogs"])]),
            optional: false,
        },
    ]
}

fn optional_items() -> Vec<Item> {
    vec![Item {
        what: "gdb-multiarch (gdb-multiarch): debugs the hypervisor with `run --gdb`".into(),
        found: tools::on_path("gdb-multiarch").map(|p| p.display().to_string()),
        fix: tools::root_command(&[&tools::apt_install_command(&["gdb-multiarch"])]),
        optional: true,
    }]
}

/// Prints the report; returns how many required items are missing.
fn report() -> usize {
    let sections = [
        ("toolchain", toolchain_items()),
        ("host programs", program_items()),
        ("Linux guests (Linux scenarios, bench --linux)", linux_items()),
        ("optional", optional_items()),
    ];
    let mut missing = 0;
    for (title, items) in sections {
        println!("{title}:");
        for item in items {
            match &item.found {
                Some(where_) => println!("  found    {}: {where_}", item.what),
                None => {
                    println!("  missing  {}\n           fix: {}", item.what, item.fix);
                    missing += usize::from(!item.optional);
                }
            }
        }
    }
    missing
}

pub fn command(fix: bool) -> Result<()> {
    if fix {
        tools::ensure()?;
        linux::assets()?;
        linux::x86_assets()?;
    }
    let missing = report();
    if missing > 0 {
        bail!("{missing} prerequisite(s) missing: run `cargo xtask doctor --fix` (as root it installs them), or the fixes above");
    }
    println!("everything `cargo xtask run` and `cargo xtask test` need is here");
    Ok(())
}
