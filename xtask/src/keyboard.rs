//! The user's keyboard on an emulated machine's serial port, for `cargo xtask run` under Bochs
//! (QEMU does this itself with `-nographic`): the terminal in raw mode, so that every key
//! (Enter as CR, Ctrl-\ for the hypervisor's input focus, Ctrl-C) reaches the machine as a
//! byte, and Ctrl-A X ends the run, as in QEMU.

use std::io::{IsTerminal, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Ctrl-A: the escape key; Ctrl-A X ends the run, Ctrl-A Ctrl-A sends one Ctrl-A.
const ESCAPE: u8 = 0x01;

/// What a key does.
#[derive(Debug, PartialEq, Eq)]
pub enum Key {
    /// These bytes go to the machine.
    Send(Vec<u8>),
    /// Nothing yet (Ctrl-A, waiting for the next key).
    Held,
    /// Ctrl-A X: the run ends.
    Quit,
}

/// Ctrl-A handling over a stream of keys.
#[derive(Debug, Default)]
pub struct EscapeKeys {
    escaped: bool,
}

impl EscapeKeys {
    pub fn feed(&mut self, byte: u8) -> Key {
        match (std::mem::take(&mut self.escaped), byte) {
            (false, ESCAPE) => {
                self.escaped = true;
                Key::Held
            }
            (false, b) => Key::Send(vec![b]),
            (true, b'x' | b'X') => Key::Quit,
            (true, ESCAPE) => Key::Send(vec![ESCAPE]),
            (true, b) => Key::Send(vec![ESCAPE, b]),
        }
    }
}

/// The terminal on standard input in raw mode (no echo, no line editing, no signals from
/// keys) while this lives, if standard input is a terminal; restored when dropped.
pub struct RawTerminal(Option<String>);

impl RawTerminal {
    pub fn enter() -> Self {
        if !std::io::stdin().is_terminal() {
            return Self(None);
        }
        let stty = |args: &[&str]| Command::new("stty").args(args).stdin(Stdio::inherit()).output();
        let saved = match stty(&["-g"]) {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
            _ => return Self(None),
        };
        match stty(&["raw", "-echo"]) {
            Ok(out) if out.status.success() => Self(Some(saved)),
            _ => Self(None),
        }
    }

    /// Whether the terminal is raw now (output then needs CR LF for a new line).
    pub fn is_raw(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = Command::new("stty").arg(saved).stdin(Stdio::inherit()).status();
        }
    }
}

/// Copies standard input to `machine` on a thread, key by key, until it ends or Ctrl-A X
/// (which sets the returned flag).
pub fn forward_stdin(mut machine: impl Write + Send + 'static) -> Arc<AtomicBool> {
    let quit = Arc::new(AtomicBool::new(false));
    let flag = quit.clone();
    std::thread::spawn(move || {
        let mut keys = EscapeKeys::default();
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while let Ok(n @ 1..) = stdin.read(&mut buf) {
            let mut out = Vec::new();
            for &byte in &buf[..n] {
                match keys.feed(byte) {
                    Key::Send(bytes) => out.extend(bytes),
                    Key::Held => {}
                    Key::Quit => {
                        flag.store(true, Ordering::Release);
                        return;
                    }
                }
            }
            if machine.write_all(&out).and_then(|()| machine.flush()).is_err() {
                return;
            }
        }
    });
    quit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(bytes: &[u8]) -> (Vec<u8>, bool) {
        let mut keys = EscapeKeys::default();
        let mut sent = Vec::new();
        for &b in bytes {
            match keys.feed(b) {
                Key::Send(s) => sent.extend(s),
                Key::Held => {}
                Key::Quit => return (sent, true),
            }
        }
        (sent, false)
    }

    #[test]
    fn keys_pass_and_ctrl_a_x_quits() {
        assert_eq!(feed(b"ping\r\x1c\r"), (b"ping\r\x1c\r".to_vec(), false), "Ctrl-\\ and CR pass");
        assert_eq!(feed(b"\x03"), (vec![3], false), "Ctrl-C goes to the machine");
        assert_eq!(feed(b"ab\x01xcd"), (b"ab".to_vec(), true));
        assert_eq!(feed(b"\x01X"), (vec![], true));
        assert_eq!(feed(b"\x01\x01x"), (vec![1, b'x'], false), "Ctrl-A Ctrl-A is one Ctrl-A");
        assert_eq!(feed(b"\x01q"), (vec![1, b'q'], false), "Ctrl-A and another key: both pass");
        assert_eq!(feed(b"\x01"), (vec![], false), "held");
    }
}
