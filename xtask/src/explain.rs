//! `cargo xtask config explain`: a rule code the hypervisor printed at boot, back into the
//! build tool's message.
//!
//! The hypervisor is built without the configuration messages (tantalum-core without its
//! `messages` feature): a problem in the system DTB it boots is reported as
//! `config error: NODE: E<code> <Name>` (`config::Coded`). The rules are the same code in both
//! builds, so running them again, with their messages, on the same DTB and with the same facts
//! finds the same problem: that is what this command does, on a boot image (`--image`) or on a
//! system DTS (`--config`). Without either it names the rule.

use std::path::Path;

use tantalum_core::addr::{HostPhys, HostRange};
use tantalum_core::bootimage::{runtime_reserve, BootInfo, IMAGE_SIZE_OFFSET};
use tantalum_core::config::x86::X86Problem;
use tantalum_core::config::{self, parse_code, rule_name, BuildFacts, ConfigError, ErrorKind, MAX_CPUS};

use crate::{bail, Result};

/// One problem as the hypervisor reported it: `NODE: E<code>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `None` when only the code was given.
    pub node: Option<String>,
    pub code: u16,
}

/// The reports in `words`: codes (`E35` or `35`) each with the node path (`/...`, a trailing
/// `:` dropped) given before it, if any; rule names are skipped. A pasted boot line
/// (`/hypervisor/pong: E35 Overlap`) reads as itself.
pub fn reports_of(words: &[String]) -> std::result::Result<Vec<Report>, String> {
    let mut reports = Vec::new();
    let mut node = None;
    for word in words.iter().flat_map(|w| w.split_whitespace()) {
        if word.starts_with('/') {
            node = Some(word.trim_end_matches(':').to_string());
        } else if let Some(code) = parse_code(word) {
            reports.push(Report { node: node.take(), code });
        } else if !config::RULE_CODES.iter().any(|&(_, name)| name == word)
            && word != "config"
            && word != "error:"
        {
            return Err(format!("{word}: neither a rule code (E1..), a node path (/...) nor a rule name"));
        }
    }
    if reports.is_empty() {
        return Err("no rule code given (the hypervisor prints them as `NODE: E<code> Name`)".into());
    }
    Ok(reports)
}

/// The reports in a hypervisor's console output: every `config error: NODE: E<code> Name`.
pub fn reports_in_output(output: &str) -> Vec<Report> {
    let words: Vec<String> = output
        .lines()
        .filter_map(|line| line.split_once("config error: ").map(|(_, rest)| rest.to_string()))
        .collect();
    words.iter().filter_map(|line| reports_of(std::slice::from_ref(line)).ok()).flatten().collect()
}

/// The problems the aarch64 hypervisor finds at boot in `image`, loaded at `load_address`:
/// the system DTB it carries, checked with the facts `primary_main` gives (its footprint, the
/// payload's size and the EL2 map, all from the image's BootInfo).
pub fn boot_errors(image: &[u8], load_address: u64) -> std::result::Result<Vec<ConfigError>, String> {
    let size = image
        .get(IMAGE_SIZE_OFFSET..IMAGE_SIZE_OFFSET + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or("too short for an arm64 Image header")?;
    let info = BootInfo::decode(image, size).map_err(|e| format!("no valid BootInfo: {e:?}"))?;
    let payload = image
        .get(info.payload_offset as usize..(info.payload_offset + info.payload_size) as usize)
        .ok_or("the payload BootInfo names is not in the file")?;
    let dtb = payload
        .get(info.dtb_offset as usize..(info.dtb_offset + info.dtb_size) as usize)
        .ok_or("the system DTB BootInfo names is not in the payload")?;
    let facts = BuildFacts {
        boot_image: Some(HostRange::new(HostPhys(load_address), size + runtime_reserve(MAX_CPUS as u64))),
        payload_size: Some(info.payload_size),
        map: Some(info.map),
    };
    Ok(boot_check(dtb, &facts))
}

/// The problems the aarch64 hypervisor's `parse` and `validate` find in `dtb` with `facts`.
fn boot_check(dtb: &[u8], facts: &BuildFacts) -> Vec<ConfigError> {
    match config::parse(dtb) {
        // Built without the x86 rules, the aarch64 hypervisor's `parse` refuses an x86 board as
        // a whole, at its local APIC (and then checks nothing further).
        Ok(c) if c.board.x86.is_some() => {
            let lapic = c.board.x86.map(|x| x.lapic.path).unwrap_or_default();
            vec![ConfigError::new(lapic, ErrorKind::X86(X86Problem::NoX86Rules))]
        }
        Ok(c) => config::validate(&c, facts).err().unwrap_or_default(),
        Err(errors) => errors,
    }
}

/// The problems the build tool's rules find in a system DTB (without its image files: the
/// hypervisor never sees those).
pub fn build_errors(dtb: &[u8]) -> Vec<ConfigError> {
    let cfg = match config::parse(dtb) {
        Ok(cfg) => cfg,
        Err(errors) => return errors,
    };
    let map = if cfg.board.x86.is_some() {
        tantalum_x86_64::HOST_MAP
    } else {
        config::HypervisorMap::for_system(&cfg)
    };
    let facts = BuildFacts { boot_image: None, payload_size: None, map: Some(map) };
    config::validate(&cfg, &facts).err().unwrap_or_default()
}

/// Each report with its messages (`NODE: message`) among `errors`; a report that matches none
/// gets an empty list.
pub fn explain(reports: &[Report], errors: &[ConfigError]) -> Vec<(Report, Vec<String>)> {
    reports
        .iter()
        .map(|r| {
            let found = errors
                .iter()
                .filter(|e| e.kind.code() == r.code && r.node.as_ref().is_none_or(|n| *n == e.node))
                .map(ToString::to_string)
                .collect();
            (r.clone(), found)
        })
        .collect()
}

/// The command: `words` are the codes (and nodes), `image` a boot image, `config` a DTS.
pub fn command(
    words: &[String],
    image: Option<&Path>,
    load_address: u64,
    config: Option<&Path>,
) -> Result<()> {
    let reports = reports_of(words).map_err(crate::Error)?;
    let errors = match (image, config) {
        (Some(image), _) => {
            let bytes =
                std::fs::read(image).map_err(|e| crate::Error(format!("{}: {e}", image.display())))?;
            Some(
                boot_errors(&bytes, load_address)
                    .map_err(|e| crate::Error(format!("{}: {e}", image.display())))?,
            )
        }
        (None, Some(dts)) => {
            crate::tools::ensure()?;
            let out = crate::cargo::out_dir().join("check/explain.dtb");
            std::fs::create_dir_all(out.parent().expect("a parent"))?;
            let dtb = crate::check::dtc(dts, &out).map_err(|e| crate::Error(e.join("\n")))?;
            Some(build_errors(&dtb))
        }
        (None, None) => None,
    };
    let mut unexplained = 0;
    for r in &reports {
        let name = rule_name(r.code).unwrap_or("?");
        println!("E{} {name} (docs/config.md, \"Rule codes\")", r.code);
    }
    let Some(errors) = errors else {
        println!(
            "(give the boot image, --image FILE, or the system, --config FILE.dts, for the full message)"
        );
        return Ok(());
    };
    for (r, messages) in explain(&reports, &errors) {
        if messages.is_empty() {
            unexplained += 1;
            println!("E{} at {}: not found in that system", r.code, r.node.as_deref().unwrap_or("any node"));
        }
        for m in messages {
            println!("error: {m}");
        }
    }
    if unexplained > 0 {
        bail!("{unexplained} report(s) not found: is it the image (and load address) that booted?");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn reads_pasted_lines_bare_codes_and_rejects_garbage() {
        let r = reports_of(&words("/hypervisor/pong: E35 Overlap")).unwrap();
        assert_eq!(r, [Report { node: Some("/hypervisor/pong".into()), code: 35 }]);
        let r = reports_of(&words("E3 /a 46")).unwrap();
        assert_eq!(r, [Report { node: None, code: 3 }, Report { node: Some("/a".into()), code: 46 }]);
        assert!(reports_of(&words("E999")).is_err());
        assert!(reports_of(&words("/a")).is_err());
        assert!(reports_of(&words("E35 banana")).is_err());
    }

    #[test]
    fn finds_reports_in_console_output() {
        let output = "[    0.1] tantalum: config error: /hypervisor/pong: E35 Overlap\nother\n\
                      [    0.1] tantalum: config error: /: E2 MissingNode\n";
        let r = reports_in_output(output);
        assert_eq!(
            r,
            [
                Report { node: Some("/hypervisor/pong".into()), code: 35 },
                Report { node: Some("/".into()), code: 2 }
            ]
        );
    }
}

/// Every bad config under `configs/tests/bad`: the rule codes the hypervisor would print for it,
/// explained, are exactly the build tool's messages (same rule, same node, one each, in order).
/// The hypervisor runs the same rule code without the texts (the `messages` feature only adds
/// `Display` and warnings), so its codes and nodes are these.
#[cfg(test)]
mod bad_configs {
    use super::*;

    #[test]
    fn codes_explain_to_the_build_tools_messages() {
        let dir = crate::root().join("configs/tests/bad");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("configs/tests/bad")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "dts"))
            .collect();
        files.sort();
        assert!(files.len() > 50, "{} bad configs", files.len());
        let out = std::env::temp_dir().join(format!("tantalum-explain-{}", std::process::id()));
        std::fs::create_dir_all(&out).expect("temp dir");
        let mut checked = 0;
        for file in &files {
            let dtb = crate::check::dtc(file, &out.join("bad.dtb")).unwrap_or_else(|e| panic!("{e:?}"));
            let errors = build_errors(&dtb);
            let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
            let distinct: std::collections::BTreeSet<&String> = messages.iter().collect();
            assert_eq!(distinct.len(), messages.len(), "{}: a problem reported twice", file.display());
            let boot_lines: Vec<String> =
                errors.iter().map(|e| format!("[    0.1] tantalum: config error: {}", e.coded())).collect();
            let reports = reports_in_output(&boot_lines.join("\n"));
            assert_eq!(reports.len(), errors.len(), "{}", file.display());
            // Each report stands for its own message; a node that breaks one rule twice has
            // both messages under each of its reports.
            let mut explained = Vec::new();
            for (i, (report, found)) in explain(&reports, &errors).into_iter().enumerate() {
                assert!(found.contains(&messages[i]), "{}: {report:?} -> {found:?}", file.display());
                explained.extend(found);
            }
            let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
            assert_eq!(set(&explained), set(&messages), "{}", file.display());
            checked += usize::from(!errors.is_empty());
        }
        let _ = std::fs::remove_dir_all(&out);
        // Most are rejected by these rules; a few only by image checks of the build.
        assert!(checked * 10 >= files.len() * 9, "only {checked} of {} rejected", files.len());
    }

    /// An x86 system in an aarch64 image (a DTB changed after the build): what the aarch64
    /// hypervisor, built without the x86 rules, prints for it is `NoX86Rules` at the local APIC,
    /// while the build tool finds nothing wrong with it. An Arm board's problems are the build
    /// tool's.
    #[test]
    fn an_x86_board_is_what_the_aarch64_hypervisor_refuses_as_a_whole() {
        let out = std::env::temp_dir().join(format!("tantalum-explain-x86-{}", std::process::id()));
        std::fs::create_dir_all(&out).expect("temp dir");
        let x86 = crate::root().join("configs/x86/x86-two-partitions.dts");
        let dtb = crate::check::dtc(&x86, &out.join("x86.dtb")).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(build_errors(&dtb), []);
        let errors = boot_check(&dtb, &BuildFacts::default());
        let lines: Vec<String> = errors.iter().map(|e| e.coded().to_string()).collect();
        assert_eq!(lines, ["/interrupt-controller@fee00000: E112 X86::NoX86Rules"]);
        let arm = crate::root().join("configs/tests/bad/overlap-partitions.dts");
        let dtb = crate::check::dtc(&arm, &out.join("arm.dtb")).unwrap_or_else(|e| panic!("{e:?}"));
        let _ = std::fs::remove_dir_all(&out);
        let facts = BuildFacts {
            map: Some(config::HypervisorMap::for_system(&config::parse(&dtb).expect("parses"))),
            ..BuildFacts::default()
        };
        assert_eq!(boot_check(&dtb, &facts), build_errors(&dtb));
        assert!(!build_errors(&dtb).is_empty());
    }
}
