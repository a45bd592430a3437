//! The x86_64 emulator: Bochs 2.7, which emulates VT-x with EPT, unrestricted guest and VPID
//! (QEMU's TCG has no VMX). Bochs has no Multiboot loader, so the boot image goes on a GRUB
//! ISO (`grub-mkrescue`); the run is headless (`display_library: rfb`, a debugger rc file that
//! says `c`, stdin from /dev/null), COM1 goes to a file, and since Bochs exits 1 even on a clean
//! power-off, a run is judged by that file only. Every run has a hard timeout.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tantalum_core::addr::align_up;
use tantalum_core::bootimage::{BootInfo, BLOB_ALIGN};

use crate::{bail, cargo, root, step, tools, Result};

/// The line the hypervisor prints when it powers the machine off: the run is over.
const END_MARKER: &str = "[tantalum] system off";

/// Builds the x86_64 hypervisor (once per process): the flat Multiboot2 kernel, whose
/// BootInfo and payload the build fills in (`image::assemble`, or [`build_image`]).
pub fn build_hypervisor() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if let Some(bin) = BUILT.get() {
        return Ok(bin.clone());
    }
    step("building the hypervisor (x86_64-unknown-none)");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "tantalum-x86_64", "--target", "x86_64-unknown-none"])
        .current_dir(root())
        .status()?;
    if !status.success() {
        bail!("cargo build -p tantalum-x86_64 failed");
    }
    let elf = root().join("target/x86_64-unknown-none/release/tantalum-x86_64");
    let dir = cargo::out_dir().join("x86");
    std::fs::create_dir_all(&dir)?;
    let bin = dir.join("tantalum-x86_64.bin");
    let status = Command::new(tools::llvm_tool("llvm-objcopy")?)
        .args(["-O", "binary"])
        .arg(&elf)
        .arg(&bin)
        .status()?;
    if !status.success() {
        bail!("llvm-objcopy {} failed", elf.display());
    }
    let image = std::fs::read(&bin)?;
    if image.len() < 128 || image[..4] != tantalum_x86_64::MULTIBOOT2_MAGIC.to_le_bytes() {
        bail!("{}: no Multiboot2 header at the start", bin.display());
    }
    let _ = BUILT.set(bin.clone());
    Ok(bin)
}

/// Builds the sample partitions for x86_64 into `target/tantalum/partitions-x86_64/`.
pub fn build_partitions() -> Result<PathBuf> {
    cargo::build_partitions_for(cargo::X86_PARTITION_TARGET, "partitions-x86_64")
}

/// The boot image of the built-in bring-up system: the hypervisor with an empty payload (it
/// runs its probe guest), on a GRUB ISO.
pub fn build_image() -> Result<PathBuf> {
    let bin = build_hypervisor()?;
    let mut image = std::fs::read(&bin)?;
    let payload_offset = align_up(image.len() as u64, BLOB_ALIGN).unwrap_or(u64::MAX);
    image.resize(payload_offset as usize, 0);
    let info = BootInfo {
        payload_offset,
        payload_size: 0,
        dtb_offset: 0,
        dtb_size: 0,
        console_base: 0x3f8,
        ..Default::default()
    };
    info.encode_into(&mut image);
    let dir = cargo::out_dir().join("x86");
    let path = dir.join("probe.img");
    std::fs::write(&path, &image)?;
    iso(&path, &dir.join("probe"))
}

/// Puts boot image `image` on a GRUB ISO in `dir` (GRUB loads it as a Multiboot2 kernel).
pub fn iso(image: &Path, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir.join("iso/boot/grub"))?;
    std::fs::copy(image, dir.join("iso/boot/tantalum.img"))?;
    std::fs::write(
        dir.join("iso/boot/grub/grub.cfg"),
        "set timeout=0\nset default=0\nserial --unit=0 --speed=115200\nterminal_output serial\n\
         menuentry \"Tantalum\" {\n    multiboot2 /boot/tantalum.img\n    boot\n}\n",
    )?;
    let iso = dir.join("tantalum.iso");
    let out = Command::new("grub-mkrescue").arg("-o").arg(&iso).arg(dir.join("iso")).output()?;
    if !out.status.success() {
        bail!("grub-mkrescue failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(iso)
}

/// A GRUB ISO in `dir` that boots Debian's amd64 `bzImage` bare (no hypervisor) through GRUB's
/// `linux` and `initrd` commands (the Linux x86 boot protocol from GRUB) with `cmdline`.
pub fn linux_iso(assets: &crate::linux::X86LinuxAssets, dir: &Path, cmdline: &str) -> Result<PathBuf> {
    let _ = std::fs::remove_dir_all(dir.join("iso"));
    std::fs::create_dir_all(dir.join("iso/boot/grub"))?;
    std::fs::copy(&assets.bzimage, dir.join("iso/boot/bzImage"))?;
    std::fs::copy(&assets.initramfs, dir.join("iso/boot/initramfs.cpio"))?;
    std::fs::write(
        dir.join("iso/boot/grub/grub.cfg"),
        format!(
            "set timeout=0\nset default=0\nserial --unit=0 --speed=115200\nterminal_output serial\n\
             menuentry \"Linux\" {{\n    linux /boot/bzImage {cmdline}\n    initrd /boot/initramfs.cpio\n    \
             boot\n}}\n"
        ),
    )?;
    let iso = dir.join("linux.iso");
    let out = Command::new("grub-mkrescue").arg("-o").arg(&iso).arg(dir.join("iso")).output()?;
    if !out.status.success() {
        bail!("grub-mkrescue failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(iso)
}

/// The kernel command line of the bare x86 Linux boot: the console on COM1 (ttyS0), the
/// initramfs's `marker` test.
pub const BARE_LINUX_CMDLINE: &str = "console=ttyS0,115200 tantalum.test=marker";

/// Debian's stock amd64 cloud kernel boots bare under Bochs (GRUB's `linux`/`initrd`, the
/// firmware's ACPI tables, one CPU) to the initramfs marker and powers off by ACPI: the
/// reference the Linux partition is measured against (docs/x86.md, "Linux on x86").
pub fn linux_bare_scenario() -> std::result::Result<(), String> {
    let assets = crate::linux::x86_assets().map_err(|e| e.0)?;
    let dir = crate::linux::dir().join("bochs-bare");
    let iso = linux_iso(&assets, &dir, BARE_LINUX_CMDLINE).map_err(|e| e.0)?;
    let run = run(&iso, 1, Duration::from_secs(600)).map_err(|e| e.0)?;
    let expected = [
        format!("Linux version {}", assets.kernel_version),
        "linux: cpus online: 1".to_string(),
        crate::linux::MARKER.to_string(),
        "reboot: Power down".to_string(),
    ];
    let missing: Vec<&String> = expected.iter().filter(|e| !run.output.contains(e.as_str())).collect();
    if missing.is_empty() && !run.output.contains("Kernel panic") {
        let at = |line: &str| {
            run.output
                .lines()
                .find(|l| l.contains(line))
                .and_then(|l| l.trim_start().strip_prefix('[')?.split(']').next()?.trim().parse::<f64>().ok())
        };
        println!(
            "        ({:.1} s under Bochs, GRUB included; Linux's clock at /init: {:.1} s)",
            run.elapsed.as_secs_f64(),
            at("Run /init as init process").unwrap_or(f64::NAN)
        );
        return Ok(());
    }
    let why = if run.timed_out { "timed out" } else { "ended" };
    Err(format!(
        "Bochs run {why} after {:.1} s; missing: {missing:?}\n--- COM1 ---\n{}",
        run.elapsed.as_secs_f64(),
        run.output
    ))
}

/// configs/x86/x86-linux.dts: Debian's stock amd64 kernel as a partition on CPU 0 (bzImage by
/// the 64-bit boot protocol, its initramfs, ttyS0 on the virtual 16550, the PIC, PIT and RTC
/// passed through) reaches its initramfs marker and powers off (HLT with interrupts masked),
/// while `ticker` on CPU 1 keeps running: the run ends at its first heartbeat after that.
pub fn linux_partition_scenario() -> std::result::Result<(), String> {
    let built = crate::image::build_system(&root().join("configs/x86/x86-linux.dts")).map_err(|e| e.0)?;
    let dir = built.image.parent().unwrap_or(Path::new(".")).to_path_buf();
    let iso = iso(&built.image, &dir.join("bochs")).map_err(|e| e.0)?;
    // The run ends once Linux has ended, however, and the ticker has ticked after that.
    const ENDED: &str = "[tantalum] partition 'linux' ";
    const STOPPED: &str = "[tantalum] partition 'linux' powered off (HLT with interrupts masked): stopped";
    let heartbeat_after_stop =
        |output: &str| output.find(ENDED).is_some_and(|at| output[at..].contains("[ticker] heartbeat"));
    let run = run_scripted(
        &iso,
        cpus_used(&built.config),
        BOARD_MEGS,
        Duration::from_secs(900),
        Typing::Nothing,
        |_| {},
        &heartbeat_after_stop,
    )
    .map_err(|e| e.0)?;
    let expected = ["[linux] linux: cpus online: 1", "[linux] linux: TANTALUM-LINUX-MARKER", STOPPED];
    let missing = run.missing(&expected);
    let heartbeat = heartbeat_after_stop(&run.output);
    run.verdict(
        missing.is_empty() && heartbeat,
        &format!("missing: {missing:?}; heartbeat after the stop: {heartbeat}"),
    )
}

/// Debian's `bochsbios`: the BIOS the runs load.
pub const BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
/// Debian's `vgabios`: the VGA BIOS the runs load.
pub const VGA_BIOS: &str = "/usr/share/vgabios/vgabios.bin";

/// The Bochs configuration of a run of `iso` with `cpus` CPUs, COM1 as `com1` says (Bochs's
/// `com1:` option's mode and device).
pub(crate) fn bochsrc(iso: &Path, com1: &str, log: &Path, cpus: u32, megs: u32) -> String {
    format!(
        "megs: {megs}\n\
         cpu: model=corei7_haswell_4770, count={cpus}, ips=100000000, reset_on_triple_fault=0\n\
         romimage: file={BIOS}\n\
         vgaromimage: file={VGA_BIOS}\n\
         ata0-master: type=cdrom, path={}, status=inserted\n\
         boot: cdrom\n\
         com1: enabled=1, {}\n\
         display_library: rfb, options=\"timeout=0\"\n\
         log: {}\n\
         panic: action=fatal\nerror: action=report\ninfo: action=ignore\n\
         clock: sync=none\n",
        iso.display(),
        com1,
        log.display()
    )
}

/// What a Bochs run printed on COM1 and how it ended.
#[derive(Debug)]
pub struct Run {
    pub output: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Run {
    /// The lines of `expected` that COM1's output lacks.
    pub fn missing<'e>(&self, expected: &[&'e str]) -> Vec<&'e str> {
        expected.iter().copied().filter(|e| !self.output.contains(e)).collect()
    }

    /// A scenario's verdict on this run: passed when `ok` and the hypervisor did not panic
    /// (prints the run's time), else an error saying how the run ended, `detail` (what was
    /// missing or wrong) and COM1's output.
    pub fn verdict(&self, ok: bool, detail: &str) -> std::result::Result<(), String> {
        if ok && !self.output.contains("PANIC") {
            println!("        ({:.1} s under Bochs, GRUB included)", self.elapsed.as_secs_f64());
            return Ok(());
        }
        let why = if self.timed_out { "timed out" } else { "ended" };
        Err(format!(
            "Bochs run {why} after {:.1} s; {detail}\n--- COM1 ---\n{}",
            self.elapsed.as_secs_f64(),
            self.output
        ))
    }
}

/// Boots `iso` in Bochs until the hypervisor powers off, Bochs exits, or `timeout` passes
/// (then Bochs is killed).
pub fn run(iso: &Path, cpus: u32, timeout: Duration) -> Result<Run> {
    run_with(iso, cpus, BOARD_MEGS, timeout, |_| {})
}

/// [`run`], handing `progress` the COM1 output so far every time it grew.
/// The RAM of the PC `boards/bochs-pc` describes, in MiB.
const BOARD_MEGS: u32 = 256;

/// [`run`] on a PC with `megs` MiB of RAM, handing `progress` the COM1 output so far every time
/// it grew.
fn run_with(iso: &Path, cpus: u32, megs: u32, timeout: Duration, progress: impl FnMut(&str)) -> Result<Run> {
    run_scripted(iso, cpus, megs, timeout, Typing::Nothing, progress, &|output| output.contains(END_MARKER))
}

/// What is typed on COM1 during a run.
#[derive(Clone, Copy)]
enum Typing<'a> {
    /// Nothing: Bochs writes COM1 to a file.
    Nothing,
    /// Each `(after, keys)` in turn: `keys` once COM1 shows `after`.
    Script(&'a [(&'a str, &'a [u8])]),
    /// This process's standard input as it comes (`crate::keyboard`: Ctrl-A X ends the run).
    Stdin,
}

/// [`run_with`], typing on COM1 as `input` says. With input, Bochs serves COM1 on a local TCP
/// port (`socket-server`), which this end connects to; what arrives is copied to the same
/// `com1.log` as without.
fn run_scripted(
    iso: &Path,
    cpus: u32,
    megs: u32,
    timeout: Duration,
    input: Typing,
    mut progress: impl FnMut(&str),
    done: &dyn Fn(&str) -> bool,
) -> Result<Run> {
    let dir = iso.parent().unwrap_or(Path::new(".")).to_path_buf();
    let (serial, log, rc, conf) =
        (dir.join("com1.log"), dir.join("bochs.log"), dir.join("continue.rc"), dir.join("bochsrc"));
    let _ = std::fs::remove_file(&serial);
    let port = match input {
        Typing::Nothing => None,
        // A free local port for Bochs to listen on.
        _ => Some(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()),
    };
    let com1 = match port {
        None => format!("mode=file, dev={}", serial.display()),
        Some(port) => format!("mode=socket-server, dev=127.0.0.1:{port}"),
    };
    std::fs::write(&conf, bochsrc(iso, &com1, &log, cpus, megs))?;
    std::fs::write(&rc, "c\n")?;
    let start = Instant::now();
    let mut child = Command::new("bochs")
        .arg("-q")
        .arg("-f")
        .arg(&conf)
        .arg("-rc")
        .arg(&rc)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("bochs.out"))?)
        .stderr(Stdio::null())
        .spawn()?;
    let mut keyboard = match port {
        Some(port) => Some(connect_com1(port, &serial, Duration::from_secs(20))?),
        None => None,
    };
    let script: &[(&str, &[u8])] = match input {
        Typing::Script(script) => script,
        _ => &[],
    };
    let mut script = script.iter();
    let mut next_input = script.next();
    let quit = match (input, keyboard.as_ref()) {
        (Typing::Stdin, Some(stream)) => Some(crate::keyboard::forward_stdin(stream.try_clone()?)),
        _ => None,
    };
    let read =
        || std::fs::read(&serial).map(|b| String::from_utf8_lossy(&b).replace('\r', "")).unwrap_or_default();
    let mut timed_out = false;
    let mut seen = 0;
    loop {
        let output = read();
        if output.len() > seen {
            seen = output.len();
            progress(&output);
        }
        if child.try_wait()?.is_some() {
            break;
        }
        if let (Some(&(after, keys)), Some(stream)) = (next_input, keyboard.as_mut()) {
            if output.contains(after) {
                use std::io::Write;
                stream.write_all(keys)?;
                next_input = script.next();
            }
        }
        if quit.as_ref().is_some_and(|q| q.load(std::sync::atomic::Ordering::Acquire)) {
            break;
        }
        if done(&output) {
            // Give Bochs a moment to exit by itself (ACPI power-off), then end it.
            std::thread::sleep(Duration::from_millis(200));
            break;
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(Run { output: read(), timed_out, elapsed: start.elapsed() })
}

/// Connects to the COM1 that Bochs serves on `port` (retrying while it starts) and copies
/// what COM1 sends into `log`, on a thread, until Bochs closes it; returns the sending end.
fn connect_com1(port: u16, log: &Path, patience: Duration) -> Result<std::net::TcpStream> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if start.elapsed() > patience => bail!("Bochs's COM1 at port {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let mut reader = stream.try_clone()?;
    let mut file = std::fs::File::create(log)?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || file.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    Ok(stream)
}

/// The x86_64 scenario: GRUB boots the Multiboot2 image, the hypervisor reaches long mode,
/// turns VMX on, runs its bring-up partition under EPT and decides on its exits in core.
pub fn vmx_probe_scenario() -> std::result::Result<(), String> {
    let iso = build_image().map_err(|e| e.0)?;
    let run = run(&iso, 1, Duration::from_secs(120)).map_err(|e| e.0)?;
    let expected = [
        "[tantalum] Tantalum x86_64: long mode on the boot CPU",
        "[tantalum] VMX on (CPU 0",
        "[tantalum] [probe] hello from a VMX guest through EPT",
        "[tantalum] [probe] cpuid 0x40000000: Tantalum",
        "[tantalum] partition 'probe' fault: stage-2 write abort at IPA 0x4000000 (outside its memory)",
        "[tantalum] memory map: 0x0000100000..",
        END_MARKER,
    ];
    let missing = run.missing(&expected);
    run.verdict(missing.is_empty(), &format!("missing: {missing:?}"))
}

/// How many CPUs Bochs needs for `config`: up to the highest one a partition uses (Bochs numbers
/// local APIC IDs from 0, as the board does).
pub fn cpus_used(config: &tantalum_core::config::SystemConfig) -> u32 {
    config.partitions.iter().flat_map(|p| p.cpus.iter()).map(|&c| c as u32 + 1).max().unwrap_or(1)
}

/// Boots system `dts` (an x86 system description) under Bochs with the CPUs it uses; passes if
/// COM1 shows every `expected` line fragment and none of `forbidden`.
fn system_scenario(dts: &str, expected: &[&str], forbidden: &[&str]) -> std::result::Result<(), String> {
    system_scenario_on(dts, BOARD_MEGS, None, expected, forbidden)
}

/// [`system_scenario`] on a PC with `megs` MiB of RAM (less than the board says: the
/// hypervisor's cross-check against the Multiboot2 memory map must notice), with one byte of
/// partition `tamper`'s image flipped in the boot image after it was built, if given.
fn system_scenario_on(
    dts: &str,
    megs: u32,
    tamper: Option<&str>,
    expected: &[&str],
    forbidden: &[&str],
) -> std::result::Result<(), String> {
    let built = crate::image::build_system(&root().join(dts)).map_err(|e| e.0)?;
    if let Some(name) = tamper {
        let placed =
            built.images.iter().find(|p| p.partition == name).ok_or(format!("no partition {name}"))?;
        let mut image = std::fs::read(&built.image).map_err(|e| e.to_string())?;
        image[(placed.file_offset + placed.size / 2) as usize] ^= 0x01;
        std::fs::write(&built.image, image).map_err(|e| e.to_string())?;
    }
    let dir = built.image.parent().unwrap_or(Path::new(".")).to_path_buf();
    let iso = iso(&built.image, &dir.join("bochs")).map_err(|e| e.0)?;
    let run =
        run_with(&iso, cpus_used(&built.config), megs, Duration::from_secs(240), |_| {}).map_err(|e| e.0)?;
    let missing = run.missing(expected);
    let present: Vec<&str> = forbidden.iter().copied().filter(|f| run.output.contains(f)).collect();
    run.verdict(
        missing.is_empty() && present.is_empty(),
        &format!("missing: {missing:?}; present: {present:?}"),
    )
}

/// configs/x86/x86-two-partitions.dts: the SDK's hello on both CPUs (the second one started by
/// INIT-SIPI-SIPI), loaded and verified from the payload, entered by the Linux 64-bit boot
/// protocol; both print through VMCALL and exit, then the hypervisor powers off.
pub fn two_partitions_scenario() -> std::result::Result<(), String> {
    system_scenario(
        "configs/x86/x86-two-partitions.dts",
        &[
            "[tantalum] VMX on (CPU 1, APIC ID 1)",
            "[ping] hello from partition 'ping' (id 0, 1 vCPU), guest DTB at 0x1ff0000",
            "[pong] hello from partition 'pong' (id 1, 1 vCPU), guest DTB at 0x2ff0000",
            "[ping] ping tick 3",
            "[pong] pong done",
            "[tantalum] partition 'ping' exited with code 0: stopped",
            "[tantalum] partition 'pong' exited with code 0: stopped",
            "[tantalum] all partitions have stopped: powering off",
        ],
        &["fault"],
    )
}

/// configs/x86/x86-fault-policy.dts: the attacker's stores to the victim's memory, the hypervisor's
/// and the local APIC are EPT violations; its restart policy reloads it each time (its restart
/// count picks the next address) and the victim runs to its end undisturbed.
pub fn fault_policy_scenario() -> std::result::Result<(), String> {
    system_scenario(
        "configs/x86/x86-fault-policy.dts",
        &[
            "[attacker] fault: run 0 stores to 0x1000000",
            "[tantalum] partition 'attacker' fault: stage-2 write abort at IPA 0x1000000 (outside its memory)",
            "[tantalum] partition 'attacker' fault: stage-2 write abort at IPA 0x100000 (outside its memory)",
            "[tantalum] partition 'attacker' fault: stage-2 write abort at IPA 0xfee00000 (outside its memory)",
            "[attacker] fault: all 3 stores outside my memory were stopped",
            "[tantalum] partition 'attacker' exited with code 0: stopped",
            "[victim] victim done",
            "[tantalum] partition 'victim' exited with code 0: stopped",
            "[tantalum] all partitions have stopped: powering off",
        ],
        &["BREACH", "halting"],
    )
}

/// configs/x86/x86-demo.dts: the pipeline on three CPUs; every reading reaches the controller and
/// every command the actuator over channels whose doorbells are injected interrupts (the
/// receivers sleep in `sti; hlt` until one comes).
pub fn demo_scenario() -> std::result::Result<(), String> {
    system_scenario(
        "configs/x86/x86-demo.dts",
        &[
            "[tantalum] VMX on (CPU 2, APIC ID 2)",
            "[sensor] reading 11:",
            "[controller] reading 11: error",
            "[actuator] command 11: heater at",
            "[actuator] actuator done",
            "[tantalum] partition 'sensor' exited with code 0: stopped",
            "[tantalum] partition 'controller' exited with code 0: stopped",
            "[tantalum] partition 'actuator' exited with code 0: stopped",
            "[tantalum] all partitions have stopped: powering off",
        ],
        &["fault", "malformed", "failed", "exception"],
    )
}

/// configs/x86/x86-games.dts: the attacker's forbidden MSRs (the local APIC base, the x2APIC
/// range with the ICR) and RDPMC raise #GP(0) in it, which its fixup skips; each of its
/// privileged games (the hypervisor's console port, the PIC, CR3 into the hypervisor, VMXON,
/// XCR0 without x87, the host's local APIC and IOAPIC by MMIO, the legacy interrupt ports,
/// CR8) ends by its restart policy with the fault that names it, in its own run; CPUID hides
/// VMX and the PMU and names Tantalum. The victim, on the CPU the attacker's IPIs aim at,
/// beats on throughout: never restarted, never faulted, still beating after the last game.
pub fn games_scenario() -> std::result::Result<(), String> {
    let built = crate::image::build_system(&root().join("configs/x86/x86-games.dts")).map_err(|e| e.0)?;
    let dir = built.image.parent().unwrap_or(Path::new(".")).to_path_buf();
    let iso = iso(&built.image, &dir.join("bochs")).map_err(|e| e.0)?;
    let all_stopped = format!("[attacker] games: all {} games were stopped", GAMES.len());
    let beat_after_games = |output: &str| {
        output.find(&all_stopped).is_some_and(|at| output[at..].contains("[victim] heartbeat"))
    };
    let run = run_scripted(
        &iso,
        cpus_used(&built.config),
        BOARD_MEGS,
        Duration::from_secs(300),
        Typing::Nothing,
        |_| {},
        &beat_after_games,
    )
    .map_err(|e| e.0)?;
    let mut missing = run.missing(GAMES_PRELUDE);
    missing.extend(run.missing(&[OWNS_PLATFORM_AT_BOOT]));
    let unstopped = games_not_stopped(&run.output);
    let forbidden = ["BREACH", "halting", "!", "[tantalum] partition 'victim'", "no such game"];
    let present: Vec<&str> = forbidden.iter().copied().filter(|f| run.output.contains(f)).collect();
    let beats = run.output.matches("[victim] heartbeat 1\n").count();
    let after = beat_after_games(&run.output);
    run.verdict(
        missing.is_empty() && unstopped.is_empty() && present.is_empty() && beats == 1 && after,
        &format!(
            "missing: {missing:?}; games not stopped by their fault: {unstopped:?}; present: {present:?}; \
             victim started {beats} time(s); beating after the games: {after}"
        ),
    )
}

/// The hypervisor's boot log repeats the build's warning about the attacker's `owns-platform`.
const OWNS_PLATFORM_AT_BOOT: &str = "warning: /hypervisor/attacker: OWNS THE PLATFORM: /isa/pci-config@icf8";

/// What the attacker of configs/x86/x86-games.dts reports in its first run: the #GP(0) cases.
const GAMES_PRELUDE: &[&str] = &[
    "[attacker] games: CPUID shows VMX: false; names Tantalum: true; PMU version 0",
    "[attacker] games: RDMSR IA32_APIC_BASE: #GP(0)",
    "[attacker] games: WRMSR IA32_APIC_BASE x2APIC on: #GP(0)",
    "[attacker] games: RDMSR x2APIC ID (0x802): #GP(0)",
    "[attacker] games: WRMSR x2APIC TPR (0x808): #GP(0)",
    "[attacker] games: WRMSR x2APIC EOI (0x80b): #GP(0)",
    "[attacker] games: WRMSR x2APIC ICR (0x830) INIT to all others: #GP(0)",
    "[attacker] games: WRMSR x2APIC ICR (0x830) NMI to all others: #GP(0)",
    "[attacker] games: WRMSR x2APIC ICR (0x830) fixed 0xf0 to CPU 0: #GP(0)",
    "[attacker] games: WRMSR x2APIC SELF_IPI (0x83f): #GP(0)",
    "[attacker] games: RDMSR x2APIC ICR (0x830): #GP(0)",
    "[attacker] games: WRMSR EFER: #GP(0)",
    "[attacker] games: RDPMC 0: #GP(0)",
    "[attacker] games: own port 0xcf8 reaches the device: wrote 0x8000f804, read 0x8000f804",
    "[attacker] games: XSETBV x87|SSE carried out: XCR0 = 0x3",
];

/// The attacker's games in run order (partitions/hello/src/games.rs) with the fault that must
/// end each one (after `[tantalum] partition 'attacker' fault: `).
const GAMES: &[(&str, &str)] = &[
    ("out-com1", "I/O port write at 0x3f8 (no device of its own there)"),
    ("in-pic", "I/O port read at 0x21 (no device of its own there)"),
    ("cr3-hypervisor", "stage-2 read abort at IPA 0x100000"),
    ("vmxon", "unhandled exception (syndrome 0x1b)"),
    ("xsetbv-x87-off", "unhandled exception (syndrome 0x37)"),
    ("lapic-read-id", "stage-2 read abort at IPA 0xfee00020 (outside its memory)"),
    ("lapic-icr-init-all", "stage-2 write abort at IPA 0xfee00300 (outside its memory)"),
    ("lapic-icr-nmi-all", "stage-2 write abort at IPA 0xfee00300 (outside its memory)"),
    ("lapic-icr-fixed-cpu0", "stage-2 write abort at IPA 0xfee00310 (outside its memory)"),
    ("ioapic-select", "stage-2 write abort at IPA 0xfec00000 (outside its memory)"),
    ("ioapic-redirect", "stage-2 write abort at IPA 0xfec00010 (outside its memory)"),
    ("out-pic2-init", "I/O port write at 0xa0 (no device of its own there)"),
    ("out-imcr-apic", "I/O port write at 0x22 (no device of its own there)"),
    ("out-elcr", "I/O port write at 0x4d0 (no device of its own there)"),
    ("out-rtc-nmi-off", "I/O port write at 0x70 (no device of its own there)"),
    ("out-nmi-control", "I/O port write at 0x61 (no device of its own there)"),
    // CR access (28), qualification: CR8, MOV to (0) or from (1) CR8, register rax.
    ("mov-cr8", "unhandled exception (syndrome 0x80000001c)"),
    ("mov-from-cr8", "unhandled exception (syndrome 0x180000001c)"),
    // Inside its own PCI configuration ports (0xcf8..0xcff), yet no part of that device.
    ("out-reset-control", "I/O port write at 0xcf9 (no device of its own there)"),
];

/// The games of [`GAMES`] whose run (from its `run N: name` line to the next run's) lacks
/// the attacker's fault that names it.
fn games_not_stopped(output: &str) -> Vec<&'static str> {
    GAMES
        .iter()
        .enumerate()
        .filter(|(i, (name, fault))| {
            let Some(start) = output.find(&format!("[attacker] games: run {i}: {name}\n")) else {
                return true;
            };
            let run = &output[start..];
            let end = run[1..].find("[attacker] games: ").map_or(run.len(), |e| e + 1);
            !run[..end].contains(&format!("[tantalum] partition 'attacker' fault: {fault}"))
        })
        .map(|(_, (name, _))| *name)
        .collect()
}

/// configs/x86/x86-console-focus.dts: console input follows focus, as on Arm. `first` has the
/// input at boot and exits, so it moves to `second`, whose virtual 16550 (COM1 in its port
/// space) receives what is typed and transmits the `got:` lines; Ctrl-\\ gives the input to
/// the hypervisor (Enter lists the partitions) and back. `second` takes its input by the
/// virtual 16550's interrupt (vector 33, its guest DT's INTID) and sleeps in HLT between, which
/// only an injected interrupt ends: every echoed line is a delivered interrupt.
pub fn console_focus_scenario() -> std::result::Result<(), String> {
    let built =
        crate::image::build_system(&root().join("configs/x86/x86-console-focus.dts")).map_err(|e| e.0)?;
    let dir = built.image.parent().unwrap_or(Path::new(".")).to_path_buf();
    let iso = iso(&built.image, &dir.join("bochs")).map_err(|e| e.0)?;
    let input: &[(&str, &[u8])] = &[
        ("console input -> second", b"ping\r"),
        ("[second] got: ping", b"\x1c"),
        ("console input -> hypervisor", b"lost\r"),
        ("partitions: first", b"\x1c"),
        ("console input -> second (Ctrl-\\ passes it on)\n[", b"quit\r"),
    ];
    let run = run_scripted(
        &iso,
        cpus_used(&built.config),
        BOARD_MEGS,
        Duration::from_secs(240),
        Typing::Script(input),
        |_| {},
        &|output| output.contains(END_MARKER),
    )
    .map_err(|e| e.0)?;
    let expected = [
        "[second] echo: receiving by interrupt 33 at port 0x3f8",
        "console input -> first (Ctrl-\\ passes it on)",
        "partition 'first' exited with code 0: stopped",
        "console input -> second (Ctrl-\\ passes it on)",
        "[second] got: ping",
        "console input -> hypervisor: keys go to no partition",
        "partitions: first (stopped, console), second (running, console); Ctrl-\\ gives the input to second",
        "[second] got: quit",
        "all partitions have stopped: powering off",
    ];
    let missing = run.missing(&expected);
    let order_ok =
        match (run.output.find("console input -> hypervisor"), run.output.find("[second] got: quit")) {
            (Some(a), Some(b)) => a < b,
            _ => false,
        };
    let lost = run.output.contains("got: lost");
    // `ping\r`, then `quit\r` after the hypervisor had the input: at least one interrupt each.
    let interrupts = run
        .output
        .lines()
        .find_map(|l| {
            l.strip_prefix("[second] echo: ")?.strip_suffix(" receive interrupt(s)")?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    run.verdict(
        missing.is_empty() && order_ok && !lost && interrupts >= 2,
        &format!(
            "missing: {missing:?}; in order: {order_ok}; lost: {lost}; receive interrupts: {interrupts}"
        ),
    )
}

/// configs/x86/x86-smp.dts: a partition's second vCPU by PSCI CPU_ON over VMCALL: started with
/// its context, refused while on, turned off by itself; a vCPU the partition lacks is refused;
/// its fault restarts the whole partition; the partition stops with it spinning. The partition
/// beside sleeps in HLT three times, each woken by its TSC-deadline timer, never early.
pub fn smp_scenario() -> std::result::Result<(), String> {
    system_scenario(
        "configs/x86/x86-smp.dts",
        &[
            "[tantalum] VMX on (CPU 2, APIC ID 2)",
            "[smp] hello from partition 'smp' (id 1, 2 vCPU)",
            "[smp] smp: CPU_ON supported: true; vCPU 1 off: true",
            "[smp] smp: CPU_ON vCPU 1: 0; again at once: refused true",
            "[smp] smp: vCPU 1 up, context magic 0x5a17; turning off",
            "[smp] smp: vCPU 1 ran with the context: true; turned itself off: true",
            "[smp] smp: CPU_ON vCPU 2 (there is none): -2",
            "[smp] smp: vCPU 1 stores outside the partition's memory",
            "[tantalum] vCPU 1: partition 'smp' fault: stage-2 write abort at IPA 0x100000 (outside its memory)",
            "[smp] smp: restarted (run 1); vCPU 1 off: true",
            "[smp] smp: CPU_ON vCPU 1: 0, spinning: true; exiting with it on",
            "[tantalum] partition 'smp' exited with code 0: stopped",
            "[beside] timer: round 3: woke by the timer after",
            "[beside] timer: 3 interrupts, 0 early",
            "[tantalum] partition 'beside' exited with code 0: stopped",
            "[tantalum] all partitions have stopped: powering off",
        ],
        &["BREACH", "VMX error", "halting"],
    )
}

/// configs/x86/x86-ipi.dts: a two-vCPU partition's vCPUs IPI each other (`HYP_SEND_IPI`), each
/// handler checking by its stack that it runs on the vCPU meant; IPIs to a vCPU it lacks (alone,
/// beside its own, every number), to nobody, of an exception vector or beyond 255, and routes of
/// another channel's doorbell, an IPI vector or to a vCPU it lacks are refused and deliver
/// nothing; the doorbell `ring` rings (another partition, on CPU 0) reaches vCPU 1, where the
/// partition routed it (`HYP_INTERRUPT_TARGET`), not vCPU 0.
pub fn ipi_scenario() -> std::result::Result<(), String> {
    system_scenario(
        "configs/x86/x86-ipi.dts",
        &[
            "[tantalum] VMX on (CPU 2, APIC ID 2)",
            "[ipi] ipi: doorbell 96 to vCPU 1: Ok(())",
            "[ipi] ipi: CPU_ON vCPU 1: 0, ready: true",
            "[ipi] ipi: vCPU 0 sends IPI 0x40 to vCPU 1: Ok(())",
            "[ipi] ipi: vCPU 1 took IPI 0x40 from vCPU 0: true (on vCPU 1: true)",
            "[ipi] ipi: vCPU 1 sends IPI 0x41 to vCPU 0: Ok(())",
            "[ipi] ipi: vCPU 0 took IPI 0x41 from vCPU 1: true (on vCPU 0: true)",
            "[ipi] ipi: refused to vCPU 2 (it has two): true",
            "[ipi] ipi: refused to vCPUs 1 and 63: true",
            "[ipi] ipi: refused to every vCPU number: true",
            "[ipi] ipi: refused to nobody: true",
            "[ipi] ipi: refused of exception vector 14 (#PF): true",
            "[ipi] ipi: refused of vector 256: true",
            "[ipi] ipi: refused doorbell to vCPU 2: true",
            "[ipi] ipi: refused another channel's doorbell: true",
            "[ipi] ipi: refused IPI vector as a doorbell: true",
            "[ipi] ipi: after the refused ones, vCPU 1 took IPIs: 1, misplaced: 0",
            "[ring] self-ipi: IPI 66 to itself: Ok(()), taken: 1",
            "[ring] self-ipi: to vCPU 1 (it has one): Err(InvalidParameters)",
            "[ring] self-ipi: of 14, not an IPI here: Err(InvalidParameters)",
            "[ring] self-ipi: taken after the refused ones: 1",
            "[ring] ring: asked (ring); ringing",
            "[ipi] ipi: vCPU 1 took the doorbell: true (on vCPU 1: true)",
            "[ipi] ipi: doorbell on vCPU 1: true; ring answered: true; misplaced: 0",
            "[tantalum] partition 'ipi' exited with code 0: stopped",
            "[tantalum] partition 'ring' exited with code 0: stopped",
            "[tantalum] all partitions have stopped: powering off",
        ],
        &["BREACH", "VMX error", "halting", "fault", ": false"],
    )
}

/// configs/x86/x86-two-partitions.dts on a PC with 40 MiB instead of the board's 256: the
/// Multiboot2 memory map ends below 'pong' (32..48 MiB), so the hypervisor refuses it and runs
/// 'ping' alone.
pub fn memory_map_scenario() -> std::result::Result<(), String> {
    system_scenario_on(
        "configs/x86/x86-two-partitions.dts",
        40,
        None,
        &[
            "[tantalum] partition 'pong': memory 0x2000000..0x3000000 is not RAM on this machine (Multiboot2 memory map): refusing it",
            "[ping] ping done",
            "[tantalum] partition 'ping' exited with code 0: stopped",
            "[tantalum] all partitions have stopped: powering off",
        ],
        &["[pong]", "VMX on (CPU 1"],
    )
}

/// configs/x86/x86-two-partitions.dts with one bit of pong's image flipped in the boot image:
/// its SHA-256 no longer matches the system DTB's, so the hypervisor refuses to start it and
/// ping runs alone.
pub fn tampered_image_scenario() -> std::result::Result<(), String> {
    system_scenario_on(
        "configs/x86/x86-two-partitions.dts",
        BOARD_MEGS,
        Some("pong"),
        &[
            "[tantalum] partition 'pong': not started: its image does not match its SHA-256",
            "[ping] ping done",
            "[tantalum] partition 'ping' exited with code 0: stopped",
            "[tantalum] all partitions have stopped: powering off",
        ],
        &["[pong]"],
    )
}

/// configs/x86/x86-bench.dts: the VMCALL round trip (HYP_VERSION), in TSC ticks of the partition,
/// which Bochs (`ips=100000000`, the TSC calibrated at 100 MHz) advances about once per
/// instruction: printed, not checked against a budget.
pub fn hypercall_bench_scenario() -> std::result::Result<(), String> {
    system_scenario(
        "configs/x86/x86-bench.dts",
        &[
            "[bench] bench: hypercall_round_trip_ticks=",
            "[tantalum] all partitions have stopped: powering off",
        ],
        &["fault"],
    )?;
    let log = root().join("target/tantalum/x86-bench/bochs/com1.log");
    let text = std::fs::read_to_string(log).unwrap_or_default();
    if let Some(line) = text.lines().find(|l| l.contains("hypercall_round_trip_ticks")) {
        println!("        {}", line.trim());
    }
    Ok(())
}

/// The number right after the first `prefix` in `text` (`min=`, `at TSC tick `).
fn figure(text: &str, prefix: &str) -> Option<u64> {
    let at = text.find(prefix)? + prefix.len();
    text[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// `cargo xtask bench --board bochs-pc`: boots configs/x86/x86-bench.dts under Bochs and reports
/// the VMCALL round trip (`HYP_VERSION`, mean over 2000 calls and the fastest single one) and the
/// boot, in TSC ticks (Bochs with `ips=100000000` and `clock: sync=none` advances its TSC, which
/// starts at 0 at reset, about once per emulated instruction: close to, not exactly, an
/// instruction count) and the run's wall time on this host. No budgets: Bochs's TSC is not an
/// architectural instruction counter (docs/performance.md, "x86 under Bochs").
pub fn bench_command(board: &str) -> Result<()> {
    if board != "bochs-pc" {
        bail!("bench --board: only bochs-pc (the Arm boards are measured by plain `cargo xtask bench`)");
    }
    crate::tools::ensure()?;
    let built = crate::image::build_system(&root().join("configs/x86/x86-bench.dts"))?;
    let dir = built.image.parent().unwrap_or(Path::new(".")).to_path_buf();
    let iso = iso(&built.image, &dir.join("bochs"))?;
    step("booting configs/x86/x86-bench.dts in Bochs (cpu: ips=100000000, clock: sync=none)");
    let run = run(&iso, 1, Duration::from_secs(240))?;
    let out = &run.output;
    if run.timed_out || !out.contains("hypercall_round_trip_ticks") {
        bail!("the bench run did not finish ({:.0} s):\n{out}", run.elapsed.as_secs_f64());
    }
    let get = |prefix: &str| {
        figure(out, prefix).ok_or_else(|| crate::Error(format!("no '{prefix}' in the bench output:\n{out}")))
    };
    let entry = get("hypervisor entry at TSC tick ")?;
    let main = get("bench: main_ticks=")?;
    let mean = get("hypercall_round_trip_ticks=")?;
    let min = get(" min=")?;
    let rows = [
        ("VMCALL round trip, HYP_VERSION (mean of 2000, guest loop included)", mean, "TSC ticks"),
        ("VMCALL round trip, HYP_VERSION (fastest single call, rdtsc included)", min, "TSC ticks"),
        ("reset to the hypervisor's entry (BIOS, GRUB loading the image)", entry, "TSC ticks"),
        (
            "hypervisor entry to the partition's main (10 ms TSC calibration included)",
            main.saturating_sub(entry),
            "TSC ticks",
        ),
    ];
    println!("{:<78} {:>12}", "x86 under Bochs (corei7_haswell_4770)", "figure");
    for (what, value, unit) in rows {
        println!("{what:<78} {value:>12} {unit}");
    }
    println!(
        "{:<78} {:>12.1} s wall time (this host, GRUB included)",
        "the whole Bochs run",
        run.elapsed.as_secs_f64()
    );
    Ok(())
}

/// `cargo xtask run` for an x86 system: its boot image on a GRUB ISO, booted in Bochs with the
/// CPUs it uses, COM1 on this terminal both ways (Bochs serves it on a local TCP port): what it
/// prints is shown as it comes, what is typed goes to it key by key (the terminal raw,
/// `crate::keyboard`: Ctrl-\\ moves the hypervisor's input focus, Ctrl-A X ends the run), until
/// the hypervisor powers off, or `timeout` passes (an error). Standard input may be a pipe: its
/// bytes are typed as they come.
pub fn run_system(built: &crate::image::BuiltSystem, timeout: Option<Duration>) -> Result<()> {
    let dir = built.image.parent().unwrap_or(Path::new(".")).to_path_buf();
    let iso = iso(&built.image, &dir.join("bochs"))?;
    let cpus = cpus_used(&built.config);
    step(format!(
        "booting {} in Bochs ({cpus} CPU(s); COM1 below; move console input with Ctrl-\\, quit with Ctrl-A X)",
        iso.display()
    ));
    let terminal = crate::keyboard::RawTerminal::enter();
    let mut shown = 0;
    let run = run_scripted(
        &iso,
        cpus,
        BOARD_MEGS,
        timeout.unwrap_or(Duration::MAX),
        Typing::Stdin,
        |output| {
            use std::io::Write;
            let new = &output[shown..];
            if terminal.is_raw() {
                print!("{}", new.replace('\n', "\r\n"));
            } else {
                print!("{new}");
            }
            let _ = std::io::stdout().flush();
            shown = output.len();
        },
        &|output| output.contains(END_MARKER),
    );
    drop(terminal);
    let run = run?;
    if !run.output.ends_with('\n') {
        println!();
    }
    if run.timed_out {
        bail!("Bochs still running after {:.0} s: stopped it", run.elapsed.as_secs_f64());
    }
    if run.output.contains("PANIC") {
        bail!("the hypervisor panicked");
    }
    Ok(())
}

/// `cargo xtask run --config configs/x86/x86-console-focus.dts` as a user runs it, its standard
/// input a pipe: the keys typed reach `second`'s virtual 16550 (its echo answers), Ctrl-\\ gives
/// the input to the hypervisor (Enter lists the partitions), Ctrl-A X ends the run, which
/// exits 0.
pub fn run_command_scenario() -> std::result::Result<(), String> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["run", "--config", "configs/x86/x86-console-focus.dts", "--timeout", "240"])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let shown = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = shown.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let mut keyboard = child.stdin.take().ok_or("no stdin")?;
    let script: [(&str, &[u8]); 3] = [
        ("console input -> second", b"ping\r"),
        ("[second] got: ping", b"\x1c\r"),
        ("partitions: first", b"\x01x"),
    ];
    let mut next = 0;
    let status = loop {
        let output = shown.lock().map(|s| s.replace('\r', "")).unwrap_or_default();
        if let Some(&(after, keys)) = script.get(next) {
            if output.contains(after) {
                keyboard.write_all(keys).and_then(|()| keyboard.flush()).map_err(|e| e.to_string())?;
                next += 1;
            }
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(360) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(200));
    let output = shown.lock().map(|s| s.replace('\r', "")).unwrap_or_default();
    let expected = [
        "[second] echo: receiving by interrupt 33 at port 0x3f8",
        "[second] got: ping",
        "console input -> hypervisor: keys go to no partition",
        "partitions: first (stopped, console), second (running, console)",
    ];
    let missing: Vec<&str> = expected.iter().copied().filter(|e| !output.contains(e)).collect();
    // Ctrl-A X ended it before `second` did.
    let ended_early = !output.contains("partition 'second' exited");
    let ok = status.is_some_and(|s| s.success());
    if missing.is_empty() && ended_early && ok && next == script.len() {
        println!("        ({:.1} s, build and GRUB included)", start.elapsed().as_secs_f64());
        return Ok(());
    }
    Err(format!(
        "cargo xtask run: exit {status:?}; keys typed: {next} of {}; missing: {missing:?}; \
         ended by Ctrl-A X: {ended_early}\n--- its output ---\n{output}",
        script.len()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_game_counts_as_stopped_only_by_its_own_fault_in_its_own_run() {
        let fault = |f: &str| format!("[tantalum] partition 'attacker' fault: {f}, PC 0x1: restarting\n");
        let mut all = String::new();
        for (i, (name, f)) in super::GAMES.iter().enumerate() {
            all += &format!("[attacker] games: run {i}: {name}\n{}[attacker] hello\n", fault(f));
        }
        assert_eq!(super::games_not_stopped(&all), Vec::<&str>::new());
        // A game that returned: its run shows the breach and the next run's fault is not its.
        let (name, f) = super::GAMES[5];
        let breach = all.replace(&fault(f), "[attacker] BREACH: returned\n");
        assert_eq!(super::games_not_stopped(&breach), [name]);
        // A game that never ran.
        let skipped = all.replace(&format!("run 6: {}\n", super::GAMES[6].0), "");
        assert_eq!(super::games_not_stopped(&skipped), [super::GAMES[6].0]);
    }

    #[test]
    fn figures_are_read_from_their_lines() {
        let out = "[tantalum] x; hypervisor entry at TSC tick 123\n[bench] bench: hypercall_round_trip_ticks=428 min=391 (2000 calls)\n";
        assert_eq!(super::figure(out, " min="), Some(391));
        assert_eq!(super::figure(out, "hypercall_round_trip_ticks="), Some(428));
        assert_eq!(super::figure(out, "at TSC tick "), Some(123));
        assert_eq!(super::figure(out, "(2000 "), None, "no number after it");
        assert_eq!(super::figure(out, "nothing="), None);
    }
}
