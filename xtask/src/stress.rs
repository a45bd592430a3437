//! Runs under a loaded host: the Linux boot with every host core kept busy by spinning threads,
//! once in the default run and as often as asked with `cargo xtask test --stress`. A hang
//! (a lost wake-up, say) shows as a timeout only when the emulator's threads are starved.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::scenarios::{Scenario, SCENARIOS};
use crate::{bail, step, tools, Result};

/// The scenario a stress run repeats.
pub const STRESSED: &str = "Linux boots on 2 CPUs beside a heartbeat unikernel";

/// Runs `f` with as many spinning threads as the host has cores (so QEMU's threads compete for
/// every one of them).
pub fn oversubscribed<T>(f: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let burners: Vec<_> = (0..cores)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let result = f();
    stop.store(true, Ordering::Relaxed);
    for b in burners {
        let _ = b.join();
    }
    result
}

/// The scenario that stress runs repeat.
pub fn stressed() -> Result<&'static Scenario> {
    match SCENARIOS.iter().find(|s| s.name.starts_with(STRESSED)) {
        Some(s) => Ok(s),
        None => bail!("no scenario named \"{STRESSED}...\""),
    }
}

/// `cargo xtask test --stress --runs N`: the Linux boot `runs` times on an oversubscribed
/// host; fails on any hang or failure, with the count.
pub fn command(runs: usize) -> Result<()> {
    tools::ensure()?;
    let scenario = stressed()?;
    step(format!("{runs} Linux boots, every host core kept busy meanwhile: {}", scenario.name));
    let mut failures = Vec::new();
    let start = Instant::now();
    for run in 1..=runs {
        let outcome = oversubscribed(|| crate::test::run_scenario(scenario));
        match outcome {
            Ok(()) => println!("  run {run}: ok"),
            Err(why) => {
                println!("  run {run}: FAIL\n{why}");
                failures.push(run);
            }
        }
    }
    println!(
        "{} passed, {} failed ({runs} oversubscribed Linux boots in {:.0} s)",
        runs - failures.len(),
        failures.len(),
        start.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!("runs {failures:?} failed");
    }
    Ok(())
}
