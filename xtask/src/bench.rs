//! `cargo xtask bench`: exact instruction counts under QEMU `-icount shift=0,sleep=off`, where
//! the PMU's instruction counter is deterministic, plus the hypervisor's section sizes.

use std::process::Command;
use std::time::Duration;

use crate::board::Board;
use crate::{bail, cargo, image, qemu, root, step, tools, Result};

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

pub fn command(_args: &[String]) -> Result<()> {
    tools::ensure()?;
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
