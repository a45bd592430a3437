//! `cargo xtask bench`: exact instruction counts under QEMU `-icount shift=0,sleep=off`, where
//! the PMU's instruction counter is deterministic, plus the hypervisor's section sizes.

use std::process::Command;
use std::time::Duration;

use crate::board::Board;
use crate::{bail, cargo, image, linux, qemu, root, step, tools, Result};

mod budget;

use budget::Row;

/// Where `cargo xtask bench` writes its figures, and the budgets `--check` holds them to.
pub const JSON: &str = "target/bench.json";
pub const BUDGETS: &str = "bench/budgets.toml";

/// The benchmark systems, and the suffix their figures get: the `bench` partition alone on the
/// boot CPU (boot, hypercalls, trapped accesses, interrupts), the same beside busy partitions,
/// an SGI between two vCPUs, a doorbell between two partitions, and a ping-pong over a channel;
/// then the partition alone and the doorbell on the GICv2 board.
const BENCH_CONFIGS: &[(&str, &str)] = &[
    ("configs/bench.dts", ""),
    ("configs/bench-busy.dts", budget::BUSY),
    ("configs/bench-sgi.dts", ""),
    ("configs/bench-doorbell.dts", ""),
    ("configs/bench-pingpong.dts", ""),
    ("configs/boards/gicv2-bench.dts", GICV2),
    ("configs/boards/gicv2-bench-doorbell.dts", GICV2),
];

/// Suffix of the figures measured on the GICv2 board (`configs/boards/gicv2-bench*.dts`).
const GICV2: &str = "_gicv2";

/// What each figure is (the table's last column). `_el2` rows are the hypervisor's part of the
/// row they extend; `_busy` rows the same figure on `configs/bench-busy.dts`.
const WHAT: &[(&str, &str)] = &[
    ("boot", "boot: hypervisor entry to the 4 MiB partition's first instruction"),
    ("hvc_hyp_version", "hvc HYP_VERSION (vendor call answered at once), round trip"),
    ("hvc_psci_version", "hvc PSCI_VERSION, round trip"),
    ("hvc_vendor_unknown", "hvc of an unknown vendor call (NOT_SUPPORTED), round trip"),
    ("gicd_typer_read", "trapped read of GICD_TYPER (a constant)"),
    ("gicd_ctlr_read", "trapped read of GICD_CTLR"),
    ("gicd_isenabler1_read", "trapped read of GICD_ISENABLER1 (a bit per SPI)"),
    ("gicd_ipriorityr8_read", "trapped read of GICD_IPRIORITYR8 (a byte per SPI)"),
    ("gicd_ispendr1_read", "trapped read of GICD_ISPENDR1 (with the list registers' state)"),
    ("gicr_typer_read", "trapped read of GICR_TYPER"),
    ("gicr_isenabler0_read", "trapped read of GICR_ISENABLER0 (SGI frame)"),
    ("vuart_dr_write", "virtual PL011 data write (UARTDR)"),
    ("vuart_fr_read", "virtual PL011 flag read (UARTFR)"),
    ("vtimer_irq_el2", "virtual timer interrupt, WFI to guest handler: the hypervisor's part"),
    ("vtimer_irq_wfi_to_handler", "virtual timer interrupt, WFI to guest handler, in all"),
    ("vtimer_irq_ticks", "virtual timer: counter ticks from CNTV_CVAL to the handler (16 ns each)"),
    ("device_irq_el2", "passed-through SPI (PL031 alarm), WFI to guest handler: the hypervisor's part"),
    ("device_irq_wfi_to_handler", "passed-through SPI (PL031 alarm), WFI to guest handler, in all"),
    ("sgi_wfi_to_handler", "SGI between two vCPUs: receiver's WFI to its handler (machine-wide)"),
    ("sgi_receiver_el2", "SGI between two vCPUs: the receiver's EL2 part"),
    ("sgi_sender_trap", "SGI between two vCPUs: the sender's trapped ICC_SGI1R_EL1 write, as it sees it"),
    ("doorbell_wfi_to_handler", "doorbell between partitions: receiver's WFI to its handler (machine-wide)"),
    ("doorbell_receiver_el2", "doorbell between partitions: the receiver's EL2 part"),
    ("doorbell_sender_notify", "doorbell between partitions: the sender's notify hypercall, as it sees it"),
    ("pingpong_round_trip", "ping-pong over a channel, 64-byte messages, per round trip (machine-wide)"),
    (
        "pingpong_doorbell_wfi_to_handler",
        "ping-pong: pong's WFI to its doorbell handler, average (machine-wide)",
    ),
    (
        "hypervisor_text",
        "hypervisor .text mapped while partitions run (the boot-only pages are unmapped), built for configs/bench.dts",
    ),
    (
        "hypervisor_text_full",
        "the same, with every optional part (virtio, GICv2 and GICv3): a system that uses them all",
    ),
    (
        "hypervisor_boot_text",
        "hypervisor .text, boot-only pages (configuration parser and rules, building the system)",
    ),
    ("hypervisor_image_text", "hypervisor .text in the image, both parts"),
    ("hypervisor_rodata", "hypervisor .rodata"),
    ("boot_image", "boot image of configs/bench.dts"),
];

/// The description of figure `name`.
fn what(name: &str) -> String {
    let lookup = |n: &str| WHAT.iter().find(|(k, _)| *k == n).map(|(_, w)| w.to_string());
    if let Some(w) = lookup(name) {
        return w;
    }
    if let Some(base) = name.strip_suffix("_busy") {
        return format!("{}, on a busy system", what(base));
    }
    if let Some(base) = name.strip_suffix(GICV2) {
        return format!("{}, on a GICv2", what(base));
    }
    if name.ends_with("_el2") {
        return "  of which the hypervisor (EL2)".into();
    }
    String::new()
}

/// The figures of one run's output (`bench: NAME=VALUE [max=MAX]` lines), named with `suffix`.
/// chantest's ping-pong lines are named as the table names them.
fn results(output: &str, system: &str, suffix: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in output.lines().filter_map(|l| l.split_once("bench: ").map(|(_, rest)| rest)) {
        let mut pairs = line.split_whitespace().filter_map(|kv| kv.split_once('='));
        let Some((name, value)) = pairs.next() else { continue };
        let Ok(value) = value.parse::<u64>() else { continue };
        let max = pairs.find(|(k, _)| *k == "max").and_then(|(_, v)| v.parse().ok()).unwrap_or(value);
        let name = match name {
            "pingpong_round_trip_instructions" => "pingpong_round_trip",
            "doorbell_wfi_to_handler_instructions" => "pingpong_doorbell_wfi_to_handler",
            "pong_instructions_per_message" => continue,
            other => other,
        };
        let unit = if name.ends_with("_ticks") { "ticks" } else { "instructions" };
        rows.push(Row {
            name: format!("{name}{suffix}"),
            value,
            max,
            unit: unit.into(),
            system: system.into(),
        });
    }
    rows
}

/// Bytes of the hypervisor ELF's sections `name`, from llvm-size.
fn section_sizes(elf: &std::path::Path) -> Result<Vec<(String, u64)>> {
    let out = Command::new(tools::llvm_tool("llvm-size")?).arg("-A").arg(elf).output()?;
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let size = words.next()?.parse().ok()?;
            name.starts_with('.').then(|| (name.to_string(), size))
        })
        .collect())
}

/// One timed run: seconds from QEMU start to the marker, and the console lines seen until then
/// with the seconds at which each came.
struct Timed {
    seconds: f64,
    lines: Vec<(f64, String)>,
}

/// Runs `command` until a line containing `marker` appears, then kills QEMU. Gives up after
/// `limit`.
fn time_to_marker(mut command: Command, marker: &str, limit: Duration) -> Result<Timed> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let start = std::time::Instant::now();
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_string();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
            let done = line.contains(&wanted);
            lines.push((start.elapsed().as_secs_f64(), line));
            if done {
                let _ = tx.send(lines);
                return;
            }
        }
    });
    let seen = rx.recv_timeout(limit);
    let seconds = start.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    match seen {
        Ok(lines) => Ok(Timed { seconds, lines }),
        Err(_) => bail!("no \"{marker}\" within {} s", limit.as_secs()),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// When partition `name` started (its `partition 'name': ...` line), and the milliseconds
/// Tantalum reports it took to load (`loaded in N ms`).
fn partition_start(lines: &[(f64, String)], name: &str) -> Option<(f64, f64)> {
    let (at, line) = lines.iter().find(|(_, l)| l.contains(&format!("partition '{name}': ")))?;
    Some((*at, line.split("loaded in ").nth(1)?.split(' ').next()?.parse().ok()?))
}

/// `cargo xtask bench --linux`: wall time from QEMU start to the Linux marker for the same
/// kernel, initramfs and disk, `runs` times each, alternately: under Tantalum
/// (`configs/tests/linux-boot.dts`); bare on the same QEMU machine with Linux given the
/// partition's CPUs and memory (`maxcpus=`, `mem=`); the same with `nokaslr` (QEMU hands a bare
/// kernel a KASLR seed, which also turns KPTI on; Tantalum's guest DT has no seed); and bare on a
/// machine of just the partition's size.
fn linux_wall_time(runs: usize) -> Result<()> {
    let assets = linux::assets()?;
    let built = image::build_system(&root().join("configs/tests/linux-boot.dts"))?;
    let board = Board::load(&built.board)?;
    let Some(guest) = built.config.partitions.iter().find(|p| p.name == "linux") else {
        bail!("configs/tests/linux-boot.dts has no partition named 'linux'");
    };
    let (cpus, mib) = (guest.cpus.len(), guest.memory.iter().map(|r| r.size).sum::<u64>() >> 20);
    let limit = Duration::from_secs(120);
    let append = "console=ttyAMA0 quiet tantalum.test=boot";
    let bare = |machine: qemu::Machine, extra: &str| -> Result<Command> {
        let mut c = machine.without_el2().headless(&assets.kernel);
        c.arg("-initrd").arg(&assets.initramfs).args(["-append", &format!("{append}{extra}")]);
        c.args(crate::devices::disk_args(&cargo::out_dir().join("linux/bench-bare-disk.img"))?);
        Ok(c)
    };
    let same_machine = format!(" maxcpus={cpus} mem={mib}M");
    let names =
        ["Tantalum", "bare on the same machine", "bare, same machine, nokaslr", "bare on a smaller machine"];
    let machine = qemu::Machine::of(&board);
    let command = |variant: usize| -> Result<Command> {
        match variant {
            0 => {
                let mut c = machine.headless(&built.image);
                c.args(crate::devices::qemu_args(&built.config, built.image.with_file_name("disk.img"))?);
                Ok(c)
            }
            1 => bare(machine.clone(), &same_machine),
            2 => bare(machine.clone(), &format!("{same_machine} nokaslr")),
            _ => bare(machine.clone().with_size(cpus, format!("{mib}M")), ""),
        }
    };
    println!("(the smaller machine: {cpus} CPUs, {mib} MiB)");
    let mut seconds = vec![Vec::new(); names.len()];
    let (mut starts, mut loads) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let mut line = format!("run {run}:");
        for (i, name) in names.iter().enumerate() {
            let timed = time_to_marker(command(i)?, linux::MARKER, limit)?;
            if i == 0 {
                if let Some((at, ms)) = partition_start(&timed.lines, "linux") {
                    starts.push(at);
                    loads.push(ms);
                }
            }
            line += &format!("{} {name} {:.2} s", if i == 0 { "" } else { "," }, timed.seconds);
            seconds[i].push(timed.seconds);
        }
        println!("{line}");
    }
    let percent = |x: f64, base: f64| (x / base - 1.0) * 100.0;
    let keys = ["tantalum", "bare_same_machine", "bare_same_machine_nokaslr", "bare_small_machine"];
    for (key, s) in keys.iter().zip(&seconds) {
        println!("linux_boot_to_marker_{key}_s = {:.2} (median; mean {:.2})", median(s), mean(s));
    }
    println!(
        "linux_partition_load_ms = {:.0} (median: verify the images, clear and fill 256 MiB)",
        median(&loads)
    );
    println!("linux_partition_start_s = {:.2} (median: QEMU start to the partition's line)", median(&starts));
    let tantalum = median(&seconds[0]);
    for (key, i) in [("", 1), ("_vs_nokaslr", 2), ("_vs_small_machine", 3)] {
        // Each Tantalum run against the bare run of the same round, a few seconds later: drift
        // of the machine's speed over the command (other load on the host) cancels out.
        let paired: Vec<f64> = seconds[0].iter().zip(&seconds[i]).map(|(h, b)| percent(*h, *b)).collect();
        println!(
            "linux_boot_overhead{key}_percent = {:.0} (medians; paired, each run against the bare run of its round: {:.0})",
            percent(tantalum, median(&seconds[i])),
            median(&paired)
        );
    }
    Ok(())
}

/// `cargo xtask bench`: the icount benchmarks, written as a table and to [`JSON`]; with `check`,
/// held to [`BUDGETS`] (with `from`, the figures of that JSON file instead of a new run). With
/// `linux`, the Linux boot wall time over `runs` rounds instead.
pub fn command(linux: bool, runs: usize, check: bool, from: Option<&std::path::Path>) -> Result<()> {
    if linux {
        tools::ensure()?;
        return linux_wall_time(runs);
    }
    let rows = match from {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| crate::Error(format!("{}: {e}", path.display())))?;
            budget::from_json(&text).map_err(|e| crate::Error(format!("{}: {e}", path.display())))?
        }
        None => {
            tools::ensure()?;
            let rows = measure()?;
            let json = root().join(JSON);
            std::fs::write(&json, budget::to_json(&rows, &machine()?))?;
            step(format!("figures written to {}", json.display()));
            rows
        }
    };
    let budgets_path = root().join(BUDGETS);
    let budgets = std::fs::read_to_string(&budgets_path)
        .map_err(|e| crate::Error(format!("{}: {e}", budgets_path.display())))
        .and_then(|t| budget::parse_budgets(&t).map_err(|e| crate::Error(format!("{BUDGETS}: {e}"))))?;
    print_table(&rows, &budgets);
    if !check {
        return Ok(());
    }
    let verdict = budget::check(&rows, &budgets);
    if !verdict.over_target.is_empty() {
        println!("still over target ({} rows, within their regression ceilings):", verdict.over_target.len());
        for line in &verdict.over_target {
            println!("    {line}");
        }
    }
    for line in &verdict.tighten {
        println!("tighten {BUDGETS}: {line}");
    }
    if !verdict.passed() {
        bail!("over budget ({BUDGETS}):\n    {}", verdict.failures.join("\n    "));
    }
    step(format!("every figure within its budget ({} budgets, {BUDGETS})", budgets.len()));
    Ok(())
}

/// The QEMU command line the figures come from.
fn machine() -> Result<String> {
    let board = Board::load(&root().join("boards/qemu-virt-aarch64"))?;
    Ok(format!("{} -icount shift=0,sleep=off", board.describe()))
}

/// Runs every benchmark system and measures the hypervisor's sections.
fn measure() -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut image_size = 0;
    let mut bench_elf = None;
    for (config, suffix) in BENCH_CONFIGS {
        let built = image::build_system(&root().join(config))?;
        bench_elf = bench_elf.or(built.hypervisor_elf.clone());
        let board = Board::load(&built.board)?;
        step(format!("running {config} on {} with -icount shift=0,sleep=off", board.name));
        let run = qemu::captured(
            &board,
            &built.image,
            Duration::from_secs(300),
            &["-icount", "shift=0,sleep=off"],
        )?;
        let found = results(&run.output, config, suffix);
        if found.is_empty() || run.timed_out() {
            bail!(
                "{config} printed no results{}:\n{}",
                if run.timed_out() { " (timed out)" } else { "" },
                run.output
            );
        }
        if let Some(why) = qemu::failure(&run.output) {
            bail!("{config}: {why}\n{}", run.output);
        }
        rows.extend(found);
        if image_size == 0 {
            image_size = std::fs::metadata(&built.image).map(|m| m.len()).unwrap_or(0);
        }
    }
    // The sizes are those of configs/bench.dts's hypervisor (built with what that system needs:
    // a GICv3, no virtio), and of the one with every part.
    let elf = bench_elf.ok_or_else(|| crate::Error("configs/bench.dts built no hypervisor ELF".into()))?;
    let sections = section_sizes(&elf)?;
    let size = |name: &str| sections.iter().find(|(n, _)| n == name).map_or(0, |(_, s)| *s);
    let text = crate::boot_code::check(&elf)?.split;
    let full = crate::boot_code::check(&cargo::build_hypervisor()?.0)?.split;
    for (name, value) in [
        ("hypervisor_text", text.resident()),
        ("hypervisor_text_full", full.resident()),
        ("hypervisor_boot_text", text.boot_only),
        ("hypervisor_image_text", text.text),
        ("hypervisor_rodata", size(".rodata")),
        ("boot_image", image_size),
    ] {
        rows.push(Row { name: name.into(), value, max: value, unit: "bytes".into(), system: "build".into() });
    }
    Ok(rows)
}

/// The figures as a table, with each one's budget.
fn print_table(rows: &[Row], budgets: &std::collections::BTreeMap<String, budget::Budget>) {
    println!("{:<36} {:>10} {:>10} {:>18}  what", "figure", "value", "max", "target / ceiling");
    for r in rows {
        let max = if r.max == r.value { String::new() } else { r.max.to_string() };
        let budget = budgets.get(&r.name).map_or(String::new(), |b| match (b.target, b.ceiling) {
            (Some(t), Some(c)) => format!("{t} / {c}"),
            (Some(t), None) => t.to_string(),
            _ => String::new(),
        });
        println!("{:<36} {:>10} {:>10} {:>18}  {}", r.name, r.value, max, budget, what(&r.name));
    }
}
