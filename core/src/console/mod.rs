//! The console multiplexer: partitions' bytes become whole lines prefixed with their name; the
//! partition the operator types to writes as it goes ([`terminal`]); the keys the operator
//! types go where [`input`] says.
#![forbid(unsafe_code)]

pub mod budget;
pub mod input;
pub mod terminal;

/// Longest line kept before it is flushed without a newline.
pub const LINE_MAX: usize = 160;

/// Where finished lines go (the hypervisor's UART, or a test buffer).
pub trait LineSink {
    /// Writes one line: `[prefix] text\n`; `text` carries no newline.
    fn write_line(&mut self, prefix: &str, text: &[u8]);
}

/// Where an escape sequence being skipped has got to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Esc,
    /// Inside a control sequence (ESC `[` parameters, then a final byte in 0x40..=0x7e).
    Csi,
}

/// Per-partition line buffer: bytes accumulate until a newline (or [`LINE_MAX`]).
///
/// A line keeps what a terminal would finally show of it: a backspace takes back the last
/// character, a carriage return that is not part of a line end starts the line over, and
/// escape sequences (colours, cursor moves, the cursor-position query `ESC [6n` a shell's line
/// editor sends) are dropped: a partition that does not have the console input cannot drive the
/// operator's terminal. Other control bytes show as `?`.
#[derive(Debug)]
pub struct LineBuffer {
    buf: [u8; LINE_MAX],
    len: usize,
    escape: Escape,
    /// A carriage return came last: a newline ends the line, anything else starts it over.
    cr: bool,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    pub const fn new() -> Self {
        Self { buf: [0; LINE_MAX], len: 0, escape: Escape::None, cr: false }
    }

    /// Adds bytes; every completed line goes to `sink` with `prefix`.
    pub fn push(&mut self, bytes: &[u8], prefix: &str, sink: &mut dyn LineSink) {
        for &b in bytes {
            if self.skip_escape(b) {
                continue;
            }
            match b {
                b'\n' => self.flush(prefix, sink),
                b'\r' => self.cr = true,
                0x08 => self.len = self.len.saturating_sub(1),
                0x1b => self.escape = Escape::Esc,
                _ => {
                    if core::mem::take(&mut self.cr) {
                        self.len = 0;
                    }
                    let shown = if b == b'\t' || (0x20..0x7f).contains(&b) { b } else { b'?' };
                    self.buf[self.len] = shown;
                    self.len += 1;
                    if self.len == LINE_MAX {
                        self.flush(prefix, sink);
                    }
                }
            }
        }
    }

    /// Whether `b` belongs to an escape sequence (and is dropped).
    fn skip_escape(&mut self, b: u8) -> bool {
        match self.escape {
            Escape::None => false,
            Escape::Esc if b == b'[' => {
                self.escape = Escape::Csi;
                true
            }
            // A two-byte sequence (ESC 7, ESC c, ...).
            Escape::Esc if (0x20..0x7f).contains(&b) => {
                self.escape = Escape::None;
                true
            }
            // Parameters and intermediates.
            Escape::Csi if (0x20..0x40).contains(&b) => true,
            // The final byte.
            Escape::Csi if (0x40..0x7f).contains(&b) => {
                self.escape = Escape::None;
                true
            }
            // A control byte cuts the sequence short and counts as itself.
            Escape::Esc | Escape::Csi => {
                self.escape = Escape::None;
                false
            }
        }
    }

    /// Emits whatever is buffered as a line (used when a partition stops mid-line).
    pub fn flush(&mut self, prefix: &str, sink: &mut dyn LineSink) {
        sink.write_line(prefix, &self.buf[..self.len]);
        self.len = 0;
        self.cr = false;
    }

    /// Whether a partial line is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the partial line (already cleaned as described above), leaving the buffer empty:
    /// the partition is given the console, and its line goes on there as it comes.
    pub fn take_partial(&mut self) -> ([u8; LINE_MAX], usize) {
        let taken = (self.buf, self.len);
        self.len = 0;
        self.cr = false;
        taken
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::*;

    #[derive(Default)]
    pub(super) struct Lines(pub Vec<String>);
    impl LineSink for Lines {
        fn write_line(&mut self, prefix: &str, text: &[u8]) {
            self.0.push(alloc::format!("[{prefix}] {}", String::from_utf8_lossy(text)));
        }
    }

    #[test]
    fn splits_lines_and_sanitises() {
        let mut b = LineBuffer::new();
        let mut out = Lines::default();
        b.push(b"hello\r\nwor", "p", &mut out);
        b.push(b"ld\x1b[2J\x07\n", "p", &mut out);
        assert_eq!(out.0, ["[p] hello", "[p] world?"]);
        assert!(b.is_empty());
    }

    #[test]
    fn escape_sequences_are_dropped() {
        let mut b = LineBuffer::new();
        let mut out = Lines::default();
        // busybox's prompt with its cursor-position query, fed a byte at a time as a UART does.
        for &byte in b"~ # \x1b[6n" {
            b.push(&[byte], "linux", &mut out);
        }
        b.push(b"\x1b[1;32mOK\x1b[0m \x1b7saved\x1b8\n", "linux", &mut out);
        assert_eq!(out.0, ["[linux] ~ # OK saved"]);
        // A control byte ends a broken sequence and counts as itself.
        b.push(b"a\x1b[12\tb\n", "p", &mut out);
        assert_eq!(out.0[1], "[p] a\tb");
    }

    #[test]
    fn a_line_shows_what_a_terminal_would() {
        let mut b = LineBuffer::new();
        let mut out = Lines::default();
        b.push(b"lx\x08s\x08\x08\x08-l\r\n", "p", &mut out);
        b.push(b"10%\r20%\r", "p", &mut out);
        b.push(b"done\r\n", "p", &mut out);
        assert_eq!(out.0, ["[p] -l", "[p] done"]);
    }

    #[test]
    fn the_partial_line_can_be_taken() {
        let mut b = LineBuffer::new();
        let mut out = Lines::default();
        b.push(b"first\n~ # \x1b[6n", "p", &mut out);
        let (buf, len) = b.take_partial();
        assert_eq!(&buf[..len], b"~ # ");
        assert!(b.is_empty());
        b.push(b"next\n", "p", &mut out);
        assert_eq!(out.0, ["[p] first", "[p] next"]);
    }

    #[test]
    fn long_lines_are_cut() {
        let mut b = LineBuffer::new();
        let mut out = Lines::default();
        b.push(&[b'a'; LINE_MAX + 3], "p", &mut out);
        assert_eq!(out.0.len(), 1);
        assert!(!b.is_empty());
        b.flush("p", &mut out);
        assert_eq!(out.0[1], "[p] aaa");
    }
}
