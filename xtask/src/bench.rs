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

/// Runs `command` until a line containing `marker` appears; returns the seconds it took, then
/// kills QEMU. Gives up after `limit`.
fn time_to_marker(mut command: Command, marker: &str, limit: Duration) -> Result<f64> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let start = std::time::Instant::now();
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
            if line.contains(&wanted) {
                let _ = tx.send(());
                return;
            }
        }
    });
    let seen = rx.recv_timeout(limit).is_ok();
    let elapsed = start.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    if !seen {
        bail!("no \"{marker}\" within {} s", limit.as_secs());
    }
    Ok(elapsed)
}

/// `cargo xtask bench --linux`: wall time from QEMU start to the Linux marker, the same kernel,
/// initramfs and disk booted bare on the same QEMU and under Tantalum, alternately, `runs`
/// times each.
fn linux_wall_time(runs: usize) -> Result<()> {
    let assets = linux::assets()?;
    let built = image::build_system(&root().join("configs/tests/linux-boot.dts"))?;
    let board = Board::load(&built.board)?;
    let limit = Duration::from_secs(120);
    let (mut bare, mut hosted) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let mut c = Command::new(&board.qemu_binary);
        c.args([
            "-M", "virt", "-cpu", &board.cpu, "-smp", "2", "-m", "512M", "-display", "none", "-monitor",
            "none",
        ]);
        c.args(["-serial", "stdio", "-kernel"]).arg(&assets.kernel).arg("-initrd").arg(&assets.initramfs);
        c.args(["-append", "console=ttyAMA0 quiet tantalum.test=boot"]);
        c.args(bare_disk()?);
        let t = time_to_marker(c, linux::MARKER, limit)?;
        bare.push(t);
        let mut c = Command::new(&board.qemu_binary);
        c.args([
            "-M",
            &board.machine,
            "-cpu",
            &board.cpu,
            "-smp",
            &board.smp.to_string(),
            "-m",
            &board.memory,
        ]);
        c.args(["-display", "none", "-monitor", "none", "-serial", "stdio", "-kernel"]).arg(&built.image);
        c.args(crate::devices::qemu_args(&built.config, built.image.with_file_name("disk.img"))?);
        let h = time_to_marker(c, linux::MARKER, limit)?;
        hosted.push(h);
        println!("run {run}: bare {t:.2} s, Tantalum {h:.2} s");
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (b, h) = (mean(&bare), mean(&hosted));
    println!("linux_boot_to_marker_bare_s = {b:.2}");
    println!("linux_boot_to_marker_tantalum_s = {h:.2}");
    println!("linux_boot_overhead_percent = {:.0}", (h / b - 1.0) * 100.0);
    Ok(())
}

/// A fresh disk for the bare runs, attached where QEMU puts the first virtio device.
fn bare_disk() -> Result<Vec<String>> {
    let disk = cargo::out_dir().join("linux/bench-bare-disk.img");
    linux::make_disk(&disk)?;
    Ok(vec![
        "-drive".into(),
        format!("if=none,file={},format=raw,id=d0", disk.display()),
        "-device".into(),
        "virtio-blk-device,drive=d0".into(),
    ])
}

pub fn command(args: &[String]) -> Result<()> {
    tools::ensure()?;
    if args.iter().any(|a| a == "--linux") {
        return linux_wall_time(5);
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
