//! Booting a boot image in QEMU, interactively or captured under a hard timeout.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::board::Board;
use crate::Result;

fn base_command(board: &Board, image: &Path) -> Command {
    let mut c = Command::new(&board.qemu_binary);
    c.args(["-M", &board.machine, "-cpu", &board.cpu, "-smp", &board.smp.to_string(), "-m", &board.memory]);
    c.arg("-kernel").arg(image);
    c.arg("-semihosting");
    c
}

/// Waits for `child` until `timeout`; kills it when time is up. Returns (status, timed out).
fn wait_with_timeout(child: &mut Child, timeout: Option<Duration>) -> Result<(Option<ExitStatus>, bool)> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((Some(status), false));
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok((None, true));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Boots `image` with the console on this terminal (`-nographic`).
pub fn interactive(
    board: &Board,
    image: &Path,
    extra: &[String],
    timeout: Option<Duration>,
) -> Result<ExitStatus> {
    let mut child = base_command(board, image).arg("-nographic").args(extra).spawn()?;
    match wait_with_timeout(&mut child, timeout)? {
        (Some(status), _) => Ok(status),
        _ => Err(crate::Error(format!(
            "QEMU still running after {} s: stopped it",
            timeout.unwrap_or_default().as_secs()
        ))),
    }
}

/// What a captured run printed and how it ended.
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

/// Boots `image` headless with the serial console captured, killing QEMU after `timeout`.
pub fn captured<S: AsRef<std::ffi::OsStr>>(
    board: &Board,
    image: &Path,
    timeout: Duration,
    extra: &[S],
) -> Result<Run> {
    let start = Instant::now();
    let mut child = base_command(board, image)
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let err_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stderr.read_to_end(&mut out);
        out
    });
    let (status, _) = wait_with_timeout(&mut child, Some(timeout))?;
    let mut output = String::from_utf8_lossy(&reader.join().unwrap_or_default()).replace('\r', "");
    let err = err_reader.join().unwrap_or_default();
    if !err.is_empty() {
        output.push_str(&String::from_utf8_lossy(&err));
    }
    Ok(Run { output, status, elapsed: start.elapsed() })
}
