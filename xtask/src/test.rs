//! `cargo xtask test`: host unit tests, builds for both architectures, config checks and the
//! emulator scenarios. Ends with `N passed, N failed`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::board::Board;
use crate::check::check_file;
use crate::scenarios::{
    Comparison, Scenario, Tamper, ALWAYS_FORBIDDEN, COMPARISONS, SCENARIOS, UBOOT_SCENARIOS,
};
use crate::{bail, cargo, image, qemu, root, step, tools, Result};

/// Tally of checks.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: &str, result: std::result::Result<(), String>) {
        match result {
            Ok(()) => {
                println!("  ok    {name}");
                self.passed += 1;
            }
            Err(why) => {
                println!("  FAIL  {name}\n{}", indent(&why));
                self.failed.push(name.to_string());
            }
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("        {l}")).collect::<Vec<_>>().join("\n")
}

fn cargo(args: &[&str]) -> std::result::Result<(), String> {
    let status =
        Command::new(env!("CARGO")).args(args).current_dir(root()).status().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed", args.join(" ")))
    }
}

/// `// expect: text` lines of a bad config.
fn expectations(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("// expect:").map(|e| e.trim().to_string()))
        .collect()
}

fn dts_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "dts"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn check_bad_config(path: &Path) -> std::result::Result<(), String> {
    let expected = expectations(path);
    if expected.is_empty() {
        return Err("no `// expect:` line".into());
    }
    match check_file(path) {
        Ok(_) => Err("accepted, but it must be rejected".into()),
        Err(problems) => {
            let all = problems.join("\n");
            let missing: Vec<&String> = expected.iter().filter(|e| !all.contains(e.as_str())).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("expected message(s) missing: {missing:?}\ngot:\n{all}"))
            }
        }
    }
}

/// `config show` works, and every partition's generated guest DT compiles and decompiles with
/// dtc without a single warning.
fn guest_dts_round_trip(dts: &Path) -> std::result::Result<(), String> {
    let checked = check_file(dts).map_err(|p| p.join("\n"))?;
    if crate::show::plan(&checked.config).is_empty() {
        return Err("empty plan".into());
    }
    let system_dtb =
        crate::check::dtc(dts, &cargo::out_dir().join("check/round-trip.dtb")).map_err(|p| p.join("\n"))?;
    let dir = cargo::out_dir().join("check/guest");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for p in &checked.config.partitions {
        let src = dir.join(format!("{}.dts", p.name));
        std::fs::write(&src, crate::guest_dt::source(&checked.config, p, &system_dtb))
            .map_err(|e| e.to_string())?;
        let dtb = dir.join(format!("{}.dtb", p.name));
        crate::check::dtc_strict(&src, &dtb).map_err(|e| e.join("\n"))?;
        let back = Command::new("dtc")
            .args(["-I", "dtb", "-O", "dts"])
            .arg(&dtb)
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&back.stderr);
        if !back.status.success() || !stderr.trim().is_empty() {
            return Err(format!("{}: decompiling: {stderr}", p.name));
        }
    }
    Ok(())
}

fn tamper(image: &Path, built: &image::BuiltSystem, how: Tamper) -> std::result::Result<(), String> {
    let mut bytes = std::fs::read(image).map_err(|e| e.to_string())?;
    let placed =
        |name: &str| built.images.iter().find(|p| p.partition == name).ok_or(format!("no partition {name}"));
    match how {
        Tamper::CorruptImage(name) => {
            let p = placed(name)?;
            bytes[(p.file_offset + p.size / 2) as usize] ^= 0x5a;
        }
        Tamper::CorruptInitrd(name) => {
            let (offset, size) = placed(name)?.initrd.ok_or(format!("partition {name} has no initrd"))?;
            bytes[(offset + size / 2) as usize] ^= 0x5a;
        }
        Tamper::PatchDtb { from, to } => {
            let at = bytes.windows(from.len()).position(|w| w == from).ok_or("pattern not in the image")?;
            bytes[at..at + to.len()].copy_from_slice(to);
        }
        // Done by the build (`run_scenario_booted`).
        Tamper::Without(_) => {}
    }
    std::fs::write(image, bytes).map_err(|e| e.to_string())
}

/// Boots a sample system: it must power off by itself once every partition has ended, with no
/// halt, no partition stopped by a fault and none of [`ALWAYS_FORBIDDEN`].
fn boot_good_config(path: &Path) -> std::result::Result<(), String> {
    let built = image::build_system(path).map_err(|e| e.0)?;
    let board = Board::load(&built.board).map_err(|e| e.0)?;
    let extra =
        crate::devices::qemu_args(&built.config, built.image.with_file_name("disk.img")).map_err(|e| e.0)?;
    let run = qemu::captured(&board, &built.image, Duration::from_secs(60), &extra).map_err(|e| e.0)?;
    let mut problems = Vec::new();
    if run.timed_out() {
        problems.push("timed out after 60 s".to_string());
    }
    problems.extend(qemu::failure(&run.output));
    problems.extend(
        ALWAYS_FORBIDDEN.iter().filter_map(|f| f.find(&run.output)).map(|l| format!("forbidden: {l}")),
    );
    if !run.output.contains("all partitions have stopped: powering off") {
        problems.push("the system did not power off by itself".into());
    }
    if problems.is_empty() {
        println!("        ({:.1} s)", run.elapsed.as_secs_f64());
        return Ok(());
    }
    let tail: Vec<&str> = run.output.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
    Err(format!("{}\n--- last lines ---\n{}", problems.join("\n"), tail.join("\n")))
}

/// Builds and boots one scenario (QEMU loads the image); `Err` says what went wrong.
pub fn run_scenario(s: &Scenario) -> std::result::Result<(), String> {
    run_scenario_booted(s, false)
}

/// As [`run_scenario`]; `uboot`: booted as from an SD card, by U-Boot (`UBOOT_SCENARIOS`).
fn run_scenario_booted(s: &Scenario, uboot: bool) -> std::result::Result<(), String> {
    let parts = match s.tamper {
        Some(Tamper::Without(parts)) => Some(parts),
        _ => None,
    };
    let built = image::build_system_with(&root().join(s.config), parts).map_err(|e| e.0)?;
    let board = Board::load(&built.board).map_err(|e| e.0)?;
    if let Some(how) = s.tamper {
        tamper(&built.image, &built, how)?;
    }
    // The devices first: a scenario's `-set drive.disk0...` needs its drive defined.
    let mut args =
        crate::devices::qemu_args(&built.config, built.image.with_file_name("disk.img")).map_err(|e| e.0)?;
    args.extend(s.qemu_args.iter().map(|a| a.to_string()));
    let run = if uboot {
        let card = crate::flash::write(&built, &board).map_err(|e| e.0)?;
        let firmware = (Path::new(crate::flash::QEMU_UBOOT), card.disk.as_path());
        qemu::captured_firmware(&board, firmware, s.timeout, &args, s.input)
    } else {
        qemu::captured_typing(&board, &built.image, s.timeout, &args, s.input)
    };
    let run = run.map_err(|e| e.0)?;
    let logs = cargo::out_dir().join("logs");
    let _ = std::fs::create_dir_all(&logs);
    let log = logs.join(format!("{}.log", s.name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")));
    let _ = std::fs::write(&log, &run.output);

    let mut problems = Vec::new();
    if run.timed_out() {
        problems.push(format!("timed out after {} s", s.timeout.as_secs()));
    } else if run.status.is_some_and(|st| !st.success()) {
        problems.push(format!("QEMU exited with {:?}", run.status));
    }
    // The rule codes the hypervisor printed, explained by `config explain` on the very image
    // that booted: each must give a message, which expectations see as `explained: MESSAGE`.
    let mut output = run.output.clone();
    let reports = crate::explain::reports_in_output(&run.output);
    if !reports.is_empty() {
        let image = std::fs::read(&built.image).map_err(|e| e.to_string())?;
        let errors = crate::explain::boot_errors(&image, board.load_address)?;
        for (report, messages) in crate::explain::explain(&reports, &errors) {
            if messages.is_empty() {
                problems.push(format!("`config explain` finds no message for {report:?}"));
            }
            output.extend(messages.iter().map(|m| format!("\nexplained: {m}")));
        }
    }
    for e in s.expect {
        if !output.contains(e) {
            problems.push(format!("missing: {e}"));
        }
    }
    for (a, b) in s.order {
        let after = run.output.find(a).map(|i| &run.output[i..]);
        if !after.is_some_and(|rest| rest.contains(b)) {
            problems.push(format!("expected \"{b}\" after \"{a}\""));
        }
    }
    for f in s.forbid.iter().chain(ALWAYS_FORBIDDEN) {
        if let Some(line) = f.find(&run.output) {
            problems.push(format!("forbidden output ({f:?}): {line}"));
        }
    }
    if problems.is_empty() {
        println!("        ({:.1} s)", run.elapsed.as_secs_f64());
        return Ok(());
    }
    let tail: Vec<&str> = run.output.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
    Err(format!("{}\nlog: {}\n--- last lines ---\n{}", problems.join("\n"), log.display(), tail.join("\n")))
}

/// Runs a [`Comparison`]: the partition's image bare on the board's machine without EL2 (its
/// CPUs, QEMU's own device tree), then the system under Tantalum; `Err` shows every result line
/// that differs, with both versions.
fn run_comparison(c: &Comparison) -> std::result::Result<(), String> {
    let built = image::build_system(&root().join(c.config)).map_err(|e| e.0)?;
    let board = Board::load(&built.board).map_err(|e| e.0)?;
    let partition = built.config.partitions.iter().find(|p| p.name == c.partition);
    let image = partition
        .and_then(|p| p.image_path.clone())
        .ok_or(format!("{}: no partition {}", c.config, c.partition))?;
    let image = cargo::build_partitions().map_err(|e| e.0)?.join(image);
    let bare_command = qemu::Machine::of(&board).without_el2().with_size(c.cpus, "128M").headless(&image);
    let bare = qemu::run_command(bare_command, Some(c.timeout), false).map_err(|e| e.0)?;
    let run = qemu::captured(&board, &built.image, c.timeout, &[] as &[&str]).map_err(|e| e.0)?;
    let logs = cargo::out_dir().join("logs");
    let _ = std::fs::create_dir_all(&logs);
    let log = |side: &str| logs.join(format!("{}-{side}.log", c.partition));
    let _ = std::fs::write(log("bare"), &bare.output);
    let _ = std::fs::write(log("partition"), &run.output);
    let mut problems = Vec::new();
    for (side, r) in [("bare", &bare), ("partition", &run)] {
        if r.timed_out() {
            problems.push(format!("{side}: timed out after {} s", c.timeout.as_secs()));
        }
    }
    problems.extend(
        ALWAYS_FORBIDDEN.iter().filter_map(|f| f.find(&run.output)).map(|l| format!("forbidden: {l}")),
    );
    let exited = format!("partition '{}' exited with code 0", c.partition);
    if !run.output.contains(&exited) {
        problems.push(format!("partition: missing \"{exited}\""));
    }
    let bare_lines = crate::scenarios::result_lines(&bare.output, None, c.marker, c.ignore);
    let lines = crate::scenarios::result_lines(&run.output, Some(c.partition), c.marker, c.ignore);
    if bare_lines.is_empty() {
        problems.push("bare: no result lines".into());
    }
    let (errors, tolerated) = crate::scenarios::differences(&bare_lines, &lines, c.known);
    problems.extend(errors);
    for known in &tolerated {
        println!("        known difference:\n{}", indent(&indent(known)));
    }
    if problems.is_empty() {
        println!(
            "        ({} of {} result lines the same; {:.1} s bare, {:.1} s as a partition)",
            lines.len() - tolerated.len(),
            lines.len(),
            bare.elapsed.as_secs_f64(),
            run.elapsed.as_secs_f64()
        );
        return Ok(());
    }
    Err(format!("{}\nlogs: {}, {}", problems.join("\n"), log("bare").display(), log("partition").display()))
}

/// The x86_64 scenarios (`crate::bochs`).
type X86Scenario = (&'static str, fn() -> std::result::Result<(), String>);
const X86_SCENARIOS: &[X86Scenario] = &[
    (
        "x86_64 under Bochs: GRUB Multiboot2 boot, long mode, VMXON, a guest under EPT whose exits core decides",
        crate::bochs::vmx_probe_scenario,
    ),
    (
        "x86_64 under Bochs: two SDK partitions on two CPUs from the system DTB (configs/x86/x86-two-partitions.dts)",
        crate::bochs::two_partitions_scenario,
    ),
    (
        "x86_64 under Bochs: a partition outside the PC's RAM (Multiboot2 memory map) is refused, the other runs",
        crate::bochs::memory_map_scenario,
    ),
    (
        "x86_64 under Bochs: a partition image altered after the build fails its SHA-256 and is not started",
        crate::bochs::tampered_image_scenario,
    ),
    (
        "x86_64 under Bochs: fault policy, an attacker's stores outside its memory restart it, the victim runs on",
        crate::bochs::fault_policy_scenario,
    ),
    (
        "x86_64 under Bochs: the attacker's CPU games (MSRs, x2APIC and RDPMC are #GP; ports, CR3, CR8, VMXON, the local APIC and IOAPIC end by its policy), the victim runs on",
        crate::bochs::games_scenario,
    ),
    (
        "x86_64 under Bochs: the demo pipeline, channels with doorbells as injected interrupts (configs/x86/x86-demo.dts)",
        crate::bochs::demo_scenario,
    ),
    (
        "x86_64 under Bochs: console input follows focus to a virtual 16550 on COM1's ports (configs/x86/x86-console-focus.dts)",
        crate::bochs::console_focus_scenario,
    ),
    (
        "x86_64 under Bochs: cargo xtask run types its standard input on COM1 (a partition's echo answers, Ctrl-\\ and Ctrl-A X)",
        crate::bochs::run_command_scenario,
    ),
    (
        "x86_64 under Bochs: a partition's second vCPU by PSCI CPU_ON over VMCALL, off, fault and restart; HLT woken by a vCPU's timer (configs/x86/x86-smp.dts)",
        crate::bochs::smp_scenario,
    ),
    (
        "x86_64 under Bochs: IPIs between a partition's vCPUs, refused ones to vCPUs it lacks, a doorbell routed to its vCPU 1 (configs/x86/x86-ipi.dts)",
        crate::bochs::ipi_scenario,
    ),
    (
        "x86_64 under Bochs: the VMCALL round trip in TSC ticks (configs/x86/x86-bench.dts)",
        crate::bochs::hypercall_bench_scenario,
    ),
];

/// The x86_64 scenarios too slow for every run (minutes under Bochs): `cargo xtask test --slow`
/// adds them; `--scenario` runs those it matches when it matches no other scenario.
const X86_SLOW_SCENARIOS: &[X86Scenario] = &[
    (
        "x86_64 under Bochs: Debian's stock amd64 kernel boots bare (GRUB linux/initrd) to its initramfs marker",
        crate::bochs::linux_bare_scenario,
    ),
    (
        "x86_64 under Bochs: Linux as a partition (stock amd64 bzImage) powers off alone, a unikernel runs on (configs/x86/x86-linux.dts)",
        crate::bochs::linux_partition_scenario,
    ),
];

/// `cargo xtask test`: everything (with `slow`, the slow scenarios too), or only the scenarios
/// whose name contains `filter` (which must match at least one); `list` prints the scenario names.
pub fn command(filter: Option<&str>, list: bool, slow: bool) -> Result<()> {
    if list {
        for s in SCENARIOS.iter().chain(UBOOT_SCENARIOS) {
            println!("{}", s.name);
        }
        for c in COMPARISONS {
            println!("{}", c.name);
        }
        for (name, _) in X86_SCENARIOS {
            println!("{name}");
        }
        for (name, _) in X86_SLOW_SCENARIOS {
            println!("{name} (--slow)");
        }
        return Ok(());
    }
    if let Some(filter) = filter {
        let chosen: Vec<(&Scenario, bool)> = SCENARIOS
            .iter()
            .map(|s| (s, false))
            .chain(UBOOT_SCENARIOS.iter().map(|s| (s, true)))
            .filter(|(s, _)| s.name.contains(filter))
            .collect();
        // A slow scenario runs when the filter matches no other one.
        let mut x86: Vec<&X86Scenario> =
            X86_SCENARIOS.iter().filter(|(name, _)| name.contains(filter)).collect();
        if x86.is_empty() {
            x86 = X86_SLOW_SCENARIOS.iter().filter(|(name, _)| name.contains(filter)).collect();
        }
        let compared: Vec<&Comparison> = COMPARISONS.iter().filter(|c| c.name.contains(filter)).collect();
        if chosen.is_empty() && compared.is_empty() && x86.is_empty() {
            bail!("--scenario {filter:?} matches no scenario; `cargo xtask test --list` lists them");
        }
        tools::ensure()?;
        // Every scenario the filter matches, of both architectures.
        let mut tally = Tally::default();
        for (name, run) in x86 {
            tally.record(name, run());
        }
        for (s, uboot) in chosen {
            tally.record(&format!("scenario: {}", s.name), run_scenario_booted(s, uboot));
        }
        for c in compared {
            tally.record(&format!("scenario: {}", c.name), run_comparison(c));
        }
        return finish(tally);
    }
    let mut tally = Tally::default();
    step("prerequisites: the pinned toolchain's targets and components, QEMU, dtc, U-Boot, Bochs, GRUB");
    // Without them every later check would fail for the same reason: stop with the fix instead.
    tools::ensure()?;
    tally.record(
        "fresh toolchain: a target missing from the pinned toolchain is added back",
        fresh_toolchain_gets_its_target_back(),
    );

    step("host unit tests");
    tally.record(
        "host: cargo test (tantalum-core, tantalum-config, xtask)",
        cargo(&["test", "--quiet", "-p", "tantalum-core", "-p", "tantalum-config", "-p", "xtask"]),
    );
    tally.record(
        "host: cargo test (tantalum-config without the x86 rules, as the aarch64 hypervisor has it)",
        cargo(&[
            "test",
            "--quiet",
            "-p",
            "tantalum-config",
            "--lib",
            "--no-default-features",
            "-F",
            "messages",
        ]),
    );
    tally.record(
        "host: cargo test (tantalum-aarch64 lib)",
        cargo(&["test", "--quiet", "-p", "tantalum-aarch64", "--lib"]),
    );
    tally.record(
        "host: cargo test (tantalum-x86_64 lib)",
        cargo(&["test", "--quiet", "-p", "tantalum-x86_64", "--lib"]),
    );

    step("builds for both architectures");
    tally.record("build: aarch64 hypervisor", cargo::build_hypervisor().map(|_| ()).map_err(|e| e.0));
    tally.record(
        "build: x86_64 crate (x86_64-unknown-none)",
        cargo(&["build", "--quiet", "--release", "-p", "tantalum-x86_64", "--target", "x86_64-unknown-none"]),
    );
    tally.record("build: sample partitions", cargo::build_partitions().map(|_| ()).map_err(|e| e.0));

    step("system descriptions: samples must pass, bad ones must fail with the expected message");
    let mut good = dts_files(&root().join("configs"));
    good.extend(dts_files(&root().join("configs/tests")));
    good.extend(dts_files(&root().join("configs/tests/good")));
    for path in good {
        let name = format!("config ok: {}", path.strip_prefix(root()).unwrap_or(&path).display());
        tally.record(&name, check_file(&path).map(|_| ()).map_err(|p| p.join("\n")));
        let name = format!(
            "guest DTs round-trip through dtc: {}",
            path.strip_prefix(root()).unwrap_or(&path).display()
        );
        tally.record(&name, guest_dts_round_trip(&path));
    }
    let mut bad = dts_files(&root().join("configs/tests/bad"));
    bad.extend(dts_files(&root().join("configs/tests/bad-build")));
    for path in bad {
        let name = format!("config rejected: {}", path.file_name().unwrap_or_default().to_string_lossy());
        tally.record(&name, check_bad_config(&path));
    }

    step("every sample under configs/tests/good boots: no halt, no fault, every partition ends");
    for path in dts_files(&root().join("configs/tests/good")) {
        let name = format!("boots: {}", path.strip_prefix(root()).unwrap_or(&path).display());
        tally.record(&name, boot_good_config(&path));
    }

    step("emulator scenarios (Bochs, x86_64)");
    for (name, run) in X86_SCENARIOS {
        tally.record(name, run());
    }
    if slow {
        for (name, run) in X86_SLOW_SCENARIOS {
            tally.record(name, run());
        }
    }

    step("emulator scenarios (QEMU)");
    for s in SCENARIOS {
        tally.record(&format!("scenario: {}", s.name), run_scenario(s));
    }
    for s in UBOOT_SCENARIOS {
        tally.record(&format!("scenario: {}", s.name), run_scenario_booted(s, true));
    }
    for c in COMPARISONS {
        tally.record(&format!("scenario: {}", c.name), run_comparison(c));
    }
    // A hang that needs a starved emulator (a lost wake-up) shows only on a loaded host:
    // `cargo xtask test --stress` repeats this one.
    let name = format!("oversubscribed host: {}", crate::stress::STRESSED);
    let stressed = crate::stress::stressed().map_err(|e| e.0);
    tally.record(&name, stressed.and_then(|s| crate::stress::oversubscribed(|| run_scenario(s))));

    finish(tally)
}

/// The fresh-machine path: a throwaway copy of the pinned toolchain (its own `RUSTUP_HOME`)
/// loses a target, and the same code `run` and `test` call before building adds it back.
fn fresh_toolchain_gets_its_target_back() -> std::result::Result<(), String> {
    use crate::toolchain::{throwaway_copy, Toolchain};
    let e = |e: crate::Error| e.0;
    let mine = Toolchain::pinned().map_err(e)?;
    let target = mine.pinned.targets.first().cloned().ok_or("rust-toolchain.toml names no target")?;
    let home = cargo::out_dir().join("fresh-rustup");
    let name = format!("{}-{}", mine.pinned.channel, crate::toolchain::host());
    throwaway_copy(&crate::toolchain::sysroot().map_err(e)?, &home, &name).map_err(e)?;
    let throwaway = Toolchain { pinned: mine.pinned.clone(), rustup_home: Some(home.clone()) };
    let removed = Command::new("rustup")
        .args(["target", "remove", "--toolchain", &mine.pinned.channel, &target])
        .env("RUSTUP_HOME", &home)
        .status()
        .map_err(|e| e.to_string())?;
    if !removed.success() {
        return Err(format!("rustup target remove {target} failed in the throwaway toolchain"));
    }
    let before = throwaway.missing().map_err(e)?;
    if before.targets != [target.clone()] {
        return Err(format!("after removing {target}, the throwaway toolchain lacks {before:?}"));
    }
    throwaway.ensure().map_err(e)?;
    let after = throwaway.missing().map_err(e)?;
    let _ = std::fs::remove_dir_all(&home);
    if !after.is_empty() {
        return Err(format!("still missing after ensure: {after:?}"));
    }
    Ok(())
}

/// Prints the summary line; fails if anything failed.
fn finish(tally: Tally) -> Result<()> {
    println!();
    if !tally.failed.is_empty() {
        println!("failed:");
        for f in &tally.failed {
            println!("  {f}");
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed.len());
    if !tally.failed.is_empty() {
        bail!("{} check(s) failed", tally.failed.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ```dts blocks of a Markdown text, each with the `configs/...dts` file named in the
    /// paragraph just before it, if one is.
    fn dts_examples(markdown: &str) -> Vec<(Option<String>, String)> {
        let mut examples = Vec::new();
        // The last paragraph of text seen (kept across the blank line before a block).
        let (mut paragraph, mut blank) = (String::new(), false);
        let mut lines = markdown.lines();
        while let Some(line) = lines.next() {
            if line.trim() == "```dts" {
                let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
                let file = paragraph
                    .split('`')
                    .find(|w| w.starts_with("configs/") && w.ends_with(".dts"))
                    .map(str::to_string);
                examples.push((file, block.join("\n") + "\n"));
                paragraph.clear();
            } else if line.trim().is_empty() {
                blank = true;
            } else {
                if blank {
                    paragraph.clear();
                    blank = false;
                }
                paragraph.push_str(line);
                paragraph.push(' ');
            }
        }
        examples
    }

    #[test]
    fn docs_examples_are_the_files_the_tests_boot() {
        let mut compared = 0;
        for doc in ["docs/config.md", "docs/partitions.md", "README.md"] {
            let Ok(text) = std::fs::read_to_string(root().join(doc)) else { continue };
            for (file, block) in dts_examples(&text) {
                let Some(file) = file else { continue };
                // Comment lines aside (the files say why they exist, the docs say it in prose).
                let code = |text: &str| -> String {
                    text.lines()
                        .filter(|l| !l.trim_start().starts_with("//"))
                        .map(|l| format!("{l}\n"))
                        .collect()
                };
                let source = std::fs::read_to_string(root().join(&file)).unwrap();
                assert_eq!(code(&block), code(&source), "{doc}: the example of {file} differs from the file");
                compared += 1;
            }
        }
        assert!(compared >= 2, "docs/config.md shows configs/tests/good/devices.dts and all-properties.dts");
    }
}
