//! `cargo xtask`: Tantalum's host tool. Builds the hypervisor, the partitions and a boot image
//! from a system device tree, checks configs, boots systems in QEMU, runs the test scenarios
//! and the benchmarks. Run `cargo xtask help` for the commands.

mod bench;
mod board;
mod cargo;
mod check;
mod devices;
mod guest_dt;
mod image;
mod linux;
mod qemu;
mod scenarios;
mod show;
mod test;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  run [--config FILE] [--timeout SECS]   build a system (default: configs/demo.dts) and boot it in QEMU
  build [--config FILE]                  build the boot image only and print its path
  config check FILE...                   check system descriptions; print every problem found
  config show FILE [--guest NAME]        the plan of a system (partitions, memory map), or a partition's guest DT
  test [--scenario TEXT]                 host tests, builds for both architectures, emulator scenarios
                                         (or only the scenarios whose name contains TEXT)
  bench [--linux [--runs N]]             instruction counts under QEMU -icount (docs/performance.md);
                                         --linux: Linux boot wall time, bare vs under Tantalum (N runs, 10)
  linux-assets [--boot TEST]             Debian arm64 kernel, initramfs and disk for a Linux guest; print
                                         their paths (--boot: boot them bare in QEMU, TEST = boot, reboot, ...)
";

/// Default system for `run` and `build`.
pub const DEFAULT_CONFIG: &str = "configs/demo.dts";

/// An error for the user: printed as `error: ...`, exit code 1.
#[derive(Debug)]
pub struct Error(pub String);

impl<E: std::fmt::Display> From<E> for Error {
    fn from(e: E) -> Self {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `Err(Error(format!(...)))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::Error(format!($($arg)*))) };
}

/// The workspace root (the xtask's parent directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Prints a step the user should see: `==> message`.
pub fn step(message: impl std::fmt::Display) {
    println!("==> {message}");
}

fn option(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("build") => build(&args[1..]),
        Some("config") if args.get(1).map(String::as_str) == Some("check") => check::command(&args[2..]),
        Some("config") if args.get(1).map(String::as_str) == Some("show") => show::command(&args[2..]),
        Some("test") => test::command(&args[1..]),
        Some("bench") => bench::command(&args[1..]),
        Some("linux-assets") => linux::command(&args[1..]),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn config_arg(args: &[String]) -> PathBuf {
    let config = option(args, "--config").unwrap_or_else(|| DEFAULT_CONFIG.to_string());
    let path = PathBuf::from(&config);
    if path.is_absolute() || path.exists() {
        path
    } else {
        root().join(path)
    }
}

fn build(args: &[String]) -> Result<()> {
    tools::ensure()?;
    let built = image::build_system(&config_arg(args))?;
    println!("{}", built.image.display());
    Ok(())
}

fn run(args: &[String]) -> Result<()> {
    tools::ensure()?;
    let built = image::build_system(&config_arg(args))?;
    let timeout = option(args, "--timeout").map(|t| t.parse::<u64>()).transpose()?;
    let board = board::Board::load(&built.board)?;
    step(format!("{}: {}", built.image.display(), check::summary(&built.config)));
    step(format!("booting {} in QEMU ({}; quit with Ctrl-A X)", built.image.display(), board.describe()));
    let extra = devices::qemu_args(&built.config, built.image.with_file_name("disk.img"))?;
    let status =
        qemu::interactive(&board, &built.image, &extra, timeout.map(std::time::Duration::from_secs))?;
    if !status.success() {
        bail!("QEMU exited with {status}");
    }
    Ok(())
}
