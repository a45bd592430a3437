//! `cargo xtask bench`: exact instruction counts under QEMU `-icount shift=0,sleep=off`, where
//! the PMU's instruction counter is deterministic, plus the hypervisor's section sizes.

use std::process::Command;
use std::time::Duration;

use crate::board::Board;
use crate::{bail, cargo, image, linux, qemu, root, step, tools, Result};

/// The benchmark systems: the `bench` partition alone on the boot CPU (boot, null hypercall),
/// and a ping-pong over a channel between two CPUs (round trip, doorbell delivery).
const BENCH_CONFIGS: &[&str] = &["configs/bench.dts", "configs/bench-pingpong.dts"];

/// `key=value` pairs from `[bench] bench: ...` lines.
fn results(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|l| l.split_once("bench: ").map(|(_, rest)| rest))
        .flat_map(|rest| rest.split_whitespace())
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// text/data/bss of the hypervisor ELF, from llvm-size.
fn sizes(elf: &std::path::Path) -> Result<String> {
    let out = Command::new(tools::llvm_tool("llvm-size")?).arg("-A").arg(elf).output()?;
    let text = String::from_utf8(out.stdout)?;
    let section = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(format!(
        "hypervisor sections: .text {} B, .rodata {} B, .data {} B, .bss {} B",
        section(".text"),
        section(".rodata"),
        section(".data"),
        section(".bss")
    ))
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

/// `cargo xtask bench`: the icount benchmarks, or with `linux` the Linux boot wall time over
/// `runs` rounds.
pub fn command(linux: bool, runs: usize) -> Result<()> {
    tools::ensure()?;
    if linux {
        return linux_wall_time(runs);
    }
    let mut values = Vec::new();
    let mut image_size = 0;
    for config in BENCH_CONFIGS {
        let built = image::build_system(&root().join(config))?;
        let board = Board::load(&built.board)?;
        step(format!("running {config} on {} with -icount shift=0,sleep=off", board.name));
        let run = qemu::captured(
            &board,
            &built.image,
            Duration::from_secs(300),
            &["-icount", "shift=0,sleep=off"],
        )?;
        let found = results(&run.output);
        if found.is_empty() || run.timed_out() {
            bail!("{config} printed no results:\n{}", run.output);
        }
        values.extend(found);
        if image_size == 0 {
            image_size = std::fs::metadata(&built.image).map(|m| m.len()).unwrap_or(0);
        }
    }
    let (elf, _) = cargo::build_hypervisor()?;
    println!("{}", sizes(&elf)?);
    println!("boot image of {}: {image_size} bytes", BENCH_CONFIGS[0]);
    for (k, v) in values {
        println!("{k:>40} = {v}");
    }
    Ok(())
}
