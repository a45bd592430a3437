//! Every QEMU command line the xtask starts is built here ([`Machine::command`]), and booted
//! interactively or captured under a hard timeout.
//!
//! No emulator run needs a package the xtask does not install: `-nic none` drops the default
//! NIC whose option ROM (ipxe-qemu) a `--no-install-recommends` QEMU lacks, and there is no
//! `-semihosting` (a guest could use it to reach the host's files).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::board::Board;
use crate::Result;

/// The machine QEMU emulates: a board's, or a variant of it (bare Linux runs for comparison).
#[derive(Clone, Debug)]
pub struct Machine {
    pub binary: String,
    pub machine: String,
    pub cpu: String,
    pub smp: String,
    pub memory: String,
}

impl Machine {
    pub fn of(board: &Board) -> Machine {
        Machine {
            binary: board.qemu_binary.clone(),
            machine: board.machine.clone(),
            cpu: board.cpu.clone(),
            smp: board.smp.to_string(),
            memory: board.memory.clone(),
        }
    }

    /// The same machine without EL2: a kernel starts at EL1, as it does in a partition.
    pub fn without_el2(mut self) -> Machine {
        self.machine = self.machine.replace(",virtualization=on", "");
        self
    }

    pub fn with_size(mut self, smp: impl ToString, memory: impl ToString) -> Machine {
        self.smp = smp.to_string();
        self.memory = memory.to_string();
        self
    }

    /// This machine, with nothing to boot yet.
    fn base(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.args(["-M", &self.machine, "-cpu", &self.cpu, "-smp", &self.smp, "-m", &self.memory]);
        c.args(["-nic", "none"]);
        c
    }

    /// QEMU booting `kernel` (an arm64 Image) on this machine, with no console options yet.
    pub fn command(&self, kernel: &Path) -> Command {
        let mut c = self.base();
        c.arg("-kernel").arg(kernel);
        c
    }

    /// QEMU starting `firmware` (U-Boot's `u-boot.bin`) with `disk` as a virtio-blk disk (the
    /// SD card of a real board): the firmware finds what to boot there.
    pub fn firmware(&self, firmware: &Path, disk: &Path) -> Command {
        let mut c = self.base();
        c.arg("-bios").arg(firmware);
        c.arg("-drive").arg(format!("if=none,file={},format=raw,id=sdcard", disk.display()));
        c.args(["-device", "virtio-blk-device,drive=sdcard"]);
        c
    }

    /// As [`Machine::command`], serial console on stdio, no display or monitor.
    pub fn headless(&self, kernel: &Path) -> Command {
        headless(self.command(kernel))
    }
}

/// `command` with its serial console on stdio, no display or monitor.
pub fn headless(mut command: Command) -> Command {
    command.args(["-display", "none", "-monitor", "none", "-serial", "stdio"]);
    command
}

/// Waits for `child` until `timeout`; kills it when time is up. Returns `None` on a timeout.
fn wait_with_timeout(child: &mut Child, timeout: Option<Duration>) -> Result<Option<ExitStatus>> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub output: String,
    /// `None` when the run was killed at the timeout.
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
}

impl Run {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }
}

/// Reads `from` to the end on a thread, copying each chunk to `echo` as it comes.
fn collect(
    mut from: impl Read + Send + 'static,
    mut echo: Option<Box<dyn Write + Send>>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if let Some(out) = echo.as_mut() {
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
            }
        }
        all
    })
}

/// Keys to type on the console: each `(after, keys)` is sent once `after` has appeared in the
/// output, in order.
pub type Input = &'static [(&'static str, &'static [u8])];

/// A copy of what a run printed so far, shared with the thread that types [`Input`].
#[derive(Clone, Default)]
struct Seen(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Seen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::ErrorKind::Other)?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seen {
    /// Where `text` ends, if it appears at or after `from`.
    fn find_from(&self, text: &str, from: usize) -> Option<usize> {
        let seen = self.0.lock().ok()?;
        let at = seen.get(from..)?.windows(text.len()).position(|w| w == text.as_bytes())?;
        Some(from + at + text.len())
    }
}

/// Types `input` into `stdin` as its triggers appear in `seen`, each after the one before;
/// gives up at `deadline`.
fn type_input(mut stdin: std::process::ChildStdin, input: Input, seen: Seen, deadline: Instant) {
    std::thread::spawn(move || {
        let mut from = 0;
        for (after, keys) in input {
            loop {
                if let Some(end) = seen.find_from(after, from) {
                    from = end;
                    break;
                }
                if Instant::now() >= deadline {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if stdin.write_all(keys).and_then(|()| stdin.flush()).is_err() {
                return;
            }
            // One key at a time would be more like a person; one write is what a paste does.
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// Runs `command` to its end or `timeout`, stdout (and stderr) collected and, if `echo`,
/// copied to this terminal as it comes.
pub fn run_command(command: Command, timeout: Option<Duration>, echo: bool) -> Result<Run> {
    run_typing(command, timeout, echo, &[])
}

/// [`run_command`], typing `input` on its standard input (closed when there is none).
pub fn run_typing(mut command: Command, timeout: Option<Duration>, echo: bool, input: Input) -> Result<Run> {
    let start = Instant::now();
    if !input.is_empty() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let seen = Seen::default();
    let copy: Box<dyn Write + Send> = match echo {
        true => Box::new(Tee(std::io::stdout(), seen.clone())),
        false => Box::new(seen.clone()),
    };
    let out = collect(stdout, Some(copy));
    if let Some(stdin) = child.stdin.take() {
        type_input(stdin, input, seen, start + timeout.unwrap_or(Duration::from_secs(3600)));
    }
    let err = collect(stderr, echo.then(|| Box::new(std::io::stderr()) as Box<dyn Write + Send>));
    let status = wait_with_timeout(&mut child, timeout)?;
    let mut output = String::from_utf8_lossy(&out.join().unwrap_or_default()).replace('\r', "");
    output.push_str(&String::from_utf8_lossy(&err.join().unwrap_or_default()));
    Ok(Run { output, status, elapsed: start.elapsed() })
}

/// Boots `image` with the console on this terminal (`-nographic`: Ctrl-A X quits), echoing
/// and keeping what it prints so the caller can judge how the system ended.
pub fn interactive(board: &Board, image: &Path, extra: &[String], timeout: Option<Duration>) -> Result<Run> {
    let mut command = Machine::of(board).command(image);
    command.arg("-nographic").args(extra);
    run_command(command, timeout, true)
}

/// As [`interactive`], QEMU starting `firmware` that boots from `disk` ([`Machine::firmware`]).
pub fn interactive_firmware(
    board: &Board,
    firmware: &Path,
    disk: &Path,
    extra: &[String],
    timeout: Option<Duration>,
) -> Result<Run> {
    let mut command = Machine::of(board).firmware(firmware, disk);
    command.arg("-nographic").args(extra);
    run_command(command, timeout, true)
}

/// As [`captured_typing`], QEMU starting `firmware` that boots from `disk`.
pub fn captured_firmware<S: AsRef<std::ffi::OsStr>>(
    board: &Board,
    (firmware, disk): (&Path, &Path),
    timeout: Duration,
    extra: &[S],
    input: Input,
) -> Result<Run> {
    let mut command = headless(Machine::of(board).firmware(firmware, disk));
    command.args(extra).stdin(Stdio::null());
    run_typing(command, Some(timeout), false, input)
}

/// Writes to both.
struct Tee<A, B>(A, B);

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}

/// Boots `image` headless with the serial console captured, killing QEMU after `timeout`.
pub fn captured<S: AsRef<std::ffi::OsStr>>(
    board: &Board,
    image: &Path,
    timeout: Duration,
    extra: &[S],
) -> Result<Run> {
    captured_typing(board, image, timeout, extra, &[])
}

/// [`captured`], typing `input` on the console.
pub fn captured_typing<S: AsRef<std::ffi::OsStr>>(
    board: &Board,
    image: &Path,
    timeout: Duration,
    extra: &[S],
    input: Input,
) -> Result<Run> {
    let mut command = Machine::of(board).headless(image);
    command.args(extra).stdin(Stdio::null());
    run_typing(command, Some(timeout), false, input)
}

/// The hypervisor's own console lines (`tantalum: ...`), without the prefix. Partitions'
/// output (`[name] ...`, a Linux console) never counts as one.
pub fn hypervisor_lines(output: &str) -> impl Iterator<Item = &str> {
    output.lines().filter_map(|l| l.strip_prefix("tantalum: "))
}

/// Why a run that ended counts as a failure, from the hypervisor's lines: it halted on an
/// error (`...: halting`, a partition's `halt-system` policy, `FATAL:`), or a partition was
/// stopped by a fault. `None` when every partition ended cleanly.
pub fn failure(output: &str) -> Option<String> {
    hypervisor_lines(output).find_map(|line| {
        let halted =
            line.ends_with(": halting") || line.ends_with("halting the system") || line.starts_with("FATAL:");
        let faulted =
            line.starts_with("partition '") && line.contains("' fault: ") && line.ends_with(": stopped");
        if halted {
            Some(format!("the hypervisor halted: {line}"))
        } else if faulted {
            Some(format!("a partition stopped by a fault: {line}"))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_come_from_hypervisor_lines_only() {
        let clean = "tantalum: partition 'a' exited with code 0: stopped\ntantalum: all partitions have stopped: powering off\n";
        assert_eq!(failure(clean), None);
        // A partition or a Linux kernel printing the same words is not the hypervisor.
        assert_eq!(
            failure("[a] config error: x: halting\n[    1.0] partition 'x' fault: y: stopped\n"),
            None
        );
        let halt = "tantalum: partition 'linux': building stage 2 failed: halting\n";
        assert!(failure(halt).unwrap().contains("halted: partition 'linux'"));
        let fault = "tantalum: partition 'b' fault: stage-2 write abort at IPA 0x0, PC 0x1: stopped\n";
        assert!(failure(fault).unwrap().starts_with("a partition stopped by a fault"));
        let restarted = "tantalum: partition 'b' fault: stage-2 write abort at IPA 0x0, PC 0x1: restarting\n";
        assert_eq!(failure(restarted), None);
        assert!(failure("tantalum: partition 'c' fault: x, PC 0x0: halting the system\n").is_some());
        assert!(failure("tantalum: FATAL: hypervisor panic: at x\n").is_some());
    }

    #[test]
    fn every_command_has_no_nic_and_no_semihosting() {
        let m = Machine {
            binary: "qemu-system-aarch64".into(),
            machine: "virt,virtualization=on,gic-version=3".into(),
            cpu: "cortex-a57".into(),
            smp: "4".into(),
            memory: "1G".into(),
        };
        for c in [
            m.command(Path::new("x")),
            m.headless(Path::new("x")),
            m.clone().without_el2().command(Path::new("x")),
            m.firmware(Path::new("u-boot.bin"), Path::new("sd.img")),
        ] {
            let args: Vec<String> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
            assert!(args.windows(2).any(|w| w == ["-nic", "none"]), "{args:?}");
            assert!(!args.iter().any(|a| a.contains("semihosting")), "{args:?}");
        }
        let bare = m.without_el2();
        assert_eq!(bare.machine, "virt,gic-version=3");
    }
}
