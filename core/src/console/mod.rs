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
    /// The partition writes to the operator's terminal as it goes (it has the console input):
    /// its bytes do not come here meanwhile, and [`Self::append_plain`] declines them.
    direct: bool,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    pub const fn new() -> Self {
        Self { buf: [0; LINE_MAX], len: 0, escape: Escape::None, cr: false, direct: false }
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

    /// Appends `b` when it is a plain byte (printable ASCII) that only lengthens the line: no
    /// escape sequence or carriage return pending, the line not filled by it, the partition
    /// not writing to the terminal ([`Self::set_direct`]). Returns whether it did; `false`
    /// changed nothing (the byte goes where the caller sends any other: to [`Self::push`] or
    /// the terminal). What it appends, [`Self::push`] would have appended alike, with no line
    /// completed: a caller that has no `prefix` and sink at hand (the UART's fast path) takes
    /// this first.
    #[inline(always)]
    pub fn append_plain(&mut self, b: u8) -> bool {
        let printable = u32::from(b).wrapping_sub(0x20) < 0x7f - 0x20;
        let plain = self.escape == Escape::None && !self.cr && !self.direct && printable;
        let len = self.len;
        if !plain || len >= LINE_MAX - 1 {
            return false;
        }
        self.buf[len] = b;
        self.len = len + 1;
        true
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

    /// Whether the partition writes to the operator's terminal as it goes (the console sets
    /// it with the terminal's owner, holding this buffer).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Marks the partition as writing to the terminal as it goes, or no longer.
    pub fn set_direct(&mut self, direct: bool) {
        self.direct = direct;
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

    /// A UART's byte stream (escapes, carriage returns, backspaces, control bytes, newlines
    /// and long runs of plain bytes, random and hostile), fed a byte at a time: taking
    /// `append_plain` first and `push` when it declines gives the same lines and the same open
    /// line as `push` alone, and `append_plain` never completes or cuts a line.
    #[test]
    fn append_plain_appends_what_push_would() {
        let mut r = crate::test_random::Random(0x0ddb_a11c_afe5_eed5);
        let (mut fast, mut slow) = (LineBuffer::new(), LineBuffer::new());
        let (mut fast_out, mut slow_out) = (Lines::default(), Lines::default());
        let (mut appended, mut declined) = (0, 0);
        for i in 0..60_000 {
            let x = r.next();
            // Every fourth stretch of 500 bytes plain only, to fill lines.
            let kind = if (i / 500) % 4 == 3 { 15 } else { x % 16 };
            let b = match kind {
                0 => b'\n',
                1 => b'\r',
                2 => 0x1b,
                3 => b'[',
                4 => 0x08,
                5 => (x >> 8) as u8,
                6 => b'\t',
                // Runs of plain bytes long enough to fill lines.
                _ => b'a' + (x >> 8) as u8 % 26,
            };
            // Now and then the partition gets the terminal or loses it (its bytes would go
            // there meanwhile; here they still go to `push`).
            if x >> 58 == 0 {
                fast.set_direct(!fast.is_direct());
            }
            let before = (fast.buf, fast.len, fast.escape, fast.cr);
            match fast.append_plain(b) {
                true => {
                    assert!(!fast.is_direct(), "appended while writing to the terminal");
                    appended += 1;
                }
                false => {
                    declined += 1;
                    assert_eq!(before, (fast.buf, fast.len, fast.escape, fast.cr), "declined, yet changed");
                    fast.push(&[b], "p", &mut fast_out);
                }
            }
            slow.push(&[b], "p", &mut slow_out);
            assert_eq!(fast_out.0, slow_out.0);
            assert_eq!(
                (&fast.buf[..fast.len], fast.escape, fast.cr),
                (&slow.buf[..slow.len], slow.escape, slow.cr)
            );
        }
        assert!(appended > 5_000 && declined > 5_000, "{appended} appended, {declined} declined");
        assert!(slow_out.0.iter().any(|l| l.len() == LINE_MAX + 4), "no line was filled");
    }

    /// The vCPUs of one partition write to its line buffer at once, as the UART's fast path
    /// and its full path do: `append_plain` if the buffer's lock is free at once, else wait for
    /// the lock and `push` (whose completed lines go to the console meanwhile). No byte is lost,
    /// doubled or reordered among one vCPU's, and no line is longer than `LINE_MAX`.
    #[test]
    fn vcpus_of_one_partition_lose_and_reorder_nothing() {
        use core::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;

        struct Console<'a>(&'a Mutex<Vec<Vec<u8>>>);
        impl LineSink for Console<'_> {
            fn write_line(&mut self, _: &str, text: &[u8]) {
                self.0.lock().unwrap().push(text.to_vec());
            }
        }
        const VCPUS: usize = 4;
        const BYTES: usize = 20_000;
        // vCPU `v`'s byte `i`: six letters of its own in turn, and lines of 36 or, now and
        // then, long enough to be cut.
        let byte = |v: usize, i: usize| match i % 400 < 200 && i % 37 == 36 {
            true => b'\n',
            false => b'A' + (v * 6 + i % 6) as u8,
        };
        let (buffer, console) = (Mutex::new(LineBuffer::new()), Mutex::new(Vec::new()));
        let (appended, pushed) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for v in 0..VCPUS {
                let (buffer, console, appended, pushed) = (&buffer, &console, &appended, &pushed);
                s.spawn(move || {
                    for i in 0..BYTES {
                        let b = byte(v, i);
                        if buffer.try_lock().is_ok_and(|mut buffer| buffer.append_plain(b)) {
                            appended.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        buffer.lock().unwrap().push(&[b], "p", &mut Console(console));
                        pushed.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let lines = console.into_inner().unwrap();
        assert!(lines.iter().all(|l| l.len() <= LINE_MAX));
        let mut out = lines.concat();
        let buffer = buffer.into_inner().unwrap();
        out.extend_from_slice(&buffer.buf[..buffer.len]);
        for v in 0..VCPUS {
            let own = |b: &&u8| (b'A' + v as u8 * 6..b'A' + v as u8 * 6 + 6).contains(*b);
            let sent: Vec<u8> = (0..BYTES).map(|i| byte(v, i)).filter(|b| b != &b'\n').collect();
            let shown: Vec<u8> = out.iter().filter(own).copied().collect();
            assert!(shown == sent, "vCPU {v}: {} bytes shown of {}", shown.len(), sent.len());
        }
        assert_eq!(out.len(), out.iter().filter(|b| b.is_ascii_uppercase()).count());
        let (appended, pushed) = (appended.into_inner(), pushed.into_inner());
        assert!(appended > 1000 && pushed > 1000, "{appended} appended, {pushed} pushed");
    }

    #[test]
    fn append_plain_declines_what_is_not_plain() {
        let mut b = LineBuffer::new();
        for byte in [b'\n', b'\r', 0x1b, 0x08, b'\t', 0x7f, 0x80, 0xff, 0x00] {
            assert!(!b.append_plain(byte), "{byte:#x}");
            assert!(b.is_empty());
        }
        assert!(b.append_plain(b' ') && b.append_plain(b'~'));
        // Inside an escape sequence or after a carriage return: `push` decides.
        let mut out = Lines::default();
        b.push(b"\x1b", "p", &mut out);
        assert!(!b.append_plain(b'['));
        b.push(b"[", "p", &mut out);
        assert!(!b.append_plain(b'1'));
        b.push(b"1m\r", "p", &mut out);
        assert!(!b.append_plain(b'x'));
        b.push(b"x", "p", &mut out);
        // The byte that would fill the line: `push` flushes it.
        while b.len < LINE_MAX - 1 {
            assert!(b.append_plain(b'y'));
        }
        assert!(!b.append_plain(b'z'));
        assert_eq!(b.len, LINE_MAX - 1);
        assert!(out.0.is_empty());
        // A partition writing to the terminal: nothing is appended until it no longer does.
        let mut b = LineBuffer::new();
        b.set_direct(true);
        assert!(b.is_direct() && !b.append_plain(b'a') && b.is_empty());
        b.set_direct(false);
        assert!(b.append_plain(b'a'));
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
