//! `cargo xtask`: Tantalum's host tool. Builds the hypervisor, the partitions and a boot image
//! from a system device tree, checks configs, boots systems in QEMU, runs the test scenarios
//! and the benchmarks. `cargo xtask --help` lists the commands, `cargo xtask help COMMAND`
//! explains one.

mod bench;
mod board;
mod bochs;
mod boot_code;
mod cargo;
mod check;
mod devices;
mod doctor;
mod explain;
mod flash;
mod guest_dt;
mod image;
mod keyboard;
mod linux;
mod qemu;
mod scenarios;
mod show;
mod stress;
mod test;
mod toolchain;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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

/// Tantalum's host tool: build, check, boot, test and measure partitioned systems.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Build a system (default: configs/demo.dts) and boot it in QEMU on this terminal.
    ///
    /// Exits non-zero when the hypervisor halts on an error or a partition stops by a fault.
    Run(RunArgs),
    /// Build the boot image only and print its path; for a board U-Boot boots, also the files
    /// for its SD card (the image and a boot.scr for `booti`, docs/boards.md).
    Build {
        #[command(flatten)]
        config: ConfigArg,
        /// The board (a directory of boards/): without --config, build its demo system; with
        /// one, check that the system is for this board.
        #[arg(long, value_name = "NAME")]
        board: Option<String>,
    },
    /// Check or show system descriptions.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Host tests, builds for both architectures, config checks and emulator scenarios.
    Test {
        /// Run only the emulator scenarios whose name contains TEXT (it must match at least one).
        #[arg(long, value_name = "TEXT")]
        scenario: Option<String>,
        /// List the emulator scenarios and exit.
        #[arg(long, conflicts_with = "scenario")]
        list: bool,
        /// Also run the slow scenarios (minutes each under Bochs; `--list` marks them).
        #[arg(long, conflicts_with_all = ["scenario", "list"])]
        slow: bool,
        /// Instead: boot Linux again and again with every host core kept busy (hangs show up).
        #[arg(long, conflicts_with_all = ["scenario", "list"])]
        stress: bool,
        /// Boots of `--stress`.
        #[arg(long, value_name = "N", requires = "stress", default_value_t = 50,
              value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
    },
    /// Instruction counts under QEMU -icount (docs/performance.md): a table, and target/bench.json.
    Bench {
        /// Linux boot wall time instead: bare vs under Tantalum.
        #[arg(long, conflicts_with_all = ["check", "from"])]
        linux: bool,
        /// Measure on this board instead: `bochs-pc` (x86 under Bochs: the VMCALL round trip and
        /// the boot in TSC ticks, and wall time; no budgets).
        #[arg(long, value_name = "BOARD", conflicts_with_all = ["linux", "check", "from"])]
        board: Option<String>,
        /// Fail when a figure exceeds its budget in bench/budgets.toml (and list those still over
        /// their target).
        #[arg(long)]
        check: bool,
        /// Take the figures from this JSON file (one `bench` wrote) instead of measuring.
        #[arg(long, value_name = "FILE", value_parser = existing_file)]
        from: Option<PathBuf>,
        /// Rounds of `--linux`.
        #[arg(long, value_name = "N", requires = "linux", default_value_t = 10,
              value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
    },
    /// Fetch the Debian arm64 kernel, build the initramfs and disk for a Linux guest; print their paths.
    LinuxAssets {
        /// Also boot them bare in QEMU with `tantalum.test=TEST` (boot, reboot, ...).
        #[arg(long, value_name = "TEST")]
        boot: Option<String>,
    },
    /// List every prerequisite (toolchain, targets, QEMU, dtc, Linux guest packages): found or
    /// missing, with the command that fixes it.
    Doctor {
        /// Install what is missing (rustup; apt-get when run as root), as `run` and `test` do.
        #[arg(long)]
        fix: bool,
    },
}

#[derive(Args, Debug)]
struct ConfigArg {
    /// The system description (DTS).
    #[arg(long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG, value_parser = existing_file)]
    path: PathBuf,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The board (a directory of boards/): without --config, boot its demo system; with one,
    /// check that the system is for this board.
    #[arg(long, value_name = "NAME")]
    board: Option<String>,
    /// Stop QEMU after SECS seconds (an error).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
    /// Boot as a board does from its SD card: QEMU starts Debian's U-Boot, which runs the
    /// boot.scr of `cargo xtask build --board` (QEMU virt boards).
    #[arg(long)]
    u_boot: bool,
    /// Start QEMU stopped, waiting for GDB on localhost:1234, and print the gdb command.
    #[arg(long)]
    gdb: bool,
    /// Extra QEMU arguments, after `--` (e.g. `-- -d int -D qemu.log`).
    #[arg(last = true, value_name = "QEMU ARGS")]
    qemu: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Check system descriptions; print every problem and warning found.
    Check {
        /// System descriptions (DTS).
        #[arg(required = true, value_name = "FILE", value_parser = existing_file)]
        files: Vec<PathBuf>,
    },
    /// The plan of a system (partitions, memory map), or one partition's generated guest DT.
    Show {
        /// The system description (DTS).
        #[arg(value_name = "FILE", value_parser = existing_file)]
        file: PathBuf,
        /// Show this partition's generated guest device tree instead.
        #[arg(long, value_name = "NAME")]
        guest: Option<String>,
    },
    /// Turn the rule codes the hypervisor prints at boot (`config error: NODE: E<code> Name`)
    /// into the build tool's messages.
    Explain {
        /// Codes, each after its node path if known: `E35`, `/hypervisor/pong E35`, or the
        /// pasted boot line.
        #[arg(required = true, value_name = "CODE")]
        codes: Vec<String>,
        /// The boot image that reported them (checked as the hypervisor checked it at boot).
        #[arg(long, value_name = "FILE", value_parser = existing_file)]
        image: Option<PathBuf>,
        /// Where that image was loaded (its boot line says `image at ...`).
        #[arg(long, value_name = "ADDRESS", value_parser = address, default_value = "0x40080000")]
        load_address: u64,
        /// Or the system description (DTS) it was built from.
        #[arg(long, value_name = "FILE", value_parser = existing_file, conflicts_with = "image")]
        config: Option<PathBuf>,
    },
}

/// A number, decimal or `0x` hexadecimal.
fn address(arg: &str) -> std::result::Result<u64, String> {
    let parsed = match arg.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => arg.parse(),
    };
    parsed.map_err(|e| format!("{arg}: {e}"))
}

/// A path to an existing file, relative to the current directory or the workspace root (so
/// `cargo xtask` works from any directory of the workspace).
fn existing_file(arg: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(arg);
    let candidates = [path.clone(), root().join(&path)];
    match candidates.into_iter().find(|p| p.is_file()) {
        Some(p) => Ok(p),
        None if path.is_dir() => Err(format!("{arg} is a directory, not a system description")),
        None => Err(format!("{arg}: no such file")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Run(args) => run(args),
        Commands::Build { config, board } => build(&config.path, board.as_deref()),
        Commands::Config(ConfigCommand::Check { files }) => {
            check::command(&files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>())
        }
        Commands::Config(ConfigCommand::Show { file, guest }) => {
            let mut args = vec![file.display().to_string()];
            args.extend(guest.into_iter().flat_map(|g| ["--guest".to_string(), g]));
            show::command(&args)
        }
        Commands::Config(ConfigCommand::Explain { codes, image, load_address, config }) => {
            explain::command(&codes, image.as_deref(), load_address, config.as_deref())
        }
        Commands::Test { stress: true, runs, .. } => stress::command(runs as usize),
        Commands::Test { scenario, list, slow, .. } => test::command(scenario.as_deref(), list, slow),
        Commands::Bench { board: Some(board), .. } => bochs::bench_command(&board),
        Commands::Bench { linux, runs, check, from, .. } => {
            bench::command(linux, runs as usize, check, from.as_deref())
        }
        Commands::LinuxAssets { boot } => linux::command(boot.as_deref()),
        Commands::Doctor { fix } => doctor::command(fix),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn build(config: &std::path::Path, board: Option<&str>) -> Result<()> {
    tools::ensure()?;
    let config = match board {
        Some(name) => board::system_for(name, config, std::path::Path::new(DEFAULT_CONFIG))?,
        None => config.to_path_buf(),
    };
    let built = image::build_system(&config)?;
    let board = board::Board::load(&built.board)?;
    if board.uboot_image_address.is_some() {
        let card = flash::write(&built, &board)?;
        step(format!(
            "SD card: copy the files in {} to its FAT partition (or write {} to it); U-Boot runs boot.scr",
            card.dir.display(),
            card.disk.display()
        ));
    }
    println!("{}", built.image.display());
    Ok(())
}

fn run(args: RunArgs) -> Result<()> {
    tools::ensure()?;
    let config = match &args.board {
        Some(name) => board::system_for(name, &args.config.path, std::path::Path::new(DEFAULT_CONFIG))?,
        None => args.config.path.clone(),
    };
    let built = image::build_system(&config)?;
    step(format!("{}: {}", built.image.display(), check::summary(&built.config)));
    if check::is_x86(&config) {
        return bochs::run_system(&built, args.timeout.map(std::time::Duration::from_secs));
    }
    let board = board::Board::load(&built.board)?;
    let mut extra = devices::qemu_args(&built.config, built.image.with_file_name("disk.img"))?;
    if args.gdb {
        extra.extend(["-s".into(), "-S".into()]);
        let elf = built.hypervisor_elf.clone().unwrap_or_default();
        step("QEMU waits for GDB on localhost:1234; in another terminal run:");
        println!("    gdb-multiarch -q {} -ex 'target remote localhost:1234'", elf.display());
    }
    extra.extend(args.qemu);
    step(format!(
        "booting {} in QEMU ({}; quit with Ctrl-A X, move console input with Ctrl-\\)",
        built.image.display(),
        board.describe()
    ));
    let timeout = args.timeout.map(std::time::Duration::from_secs);
    let run = if args.u_boot {
        let card = flash::write(&built, &board)?;
        step(format!("U-Boot ({}) boots {} with booti", flash::QEMU_UBOOT, card.disk.display()));
        qemu::interactive_firmware(
            &board,
            std::path::Path::new(flash::QEMU_UBOOT),
            &card.disk,
            &extra,
            timeout,
        )?
    } else {
        qemu::interactive(&board, &built.image, &extra, timeout)?
    };
    if let Some(status) = run.status.filter(|s| !s.success()) {
        bail!("QEMU exited with {status}");
    }
    if run.timed_out() {
        bail!("QEMU still running after {} s: stopped it", args.timeout.unwrap_or_default());
    }
    if let Some(why) = qemu::failure(&run.output) {
        bail!("{why}");
    }
    Ok(())
}
