//! The console multiplexer: partitions' bytes become whole lines prefixed with their name.

/// Longest line kept before it is flushed without a newline.
pub const LINE_MAX: usize = 160;

/// Where finished lines go (the hypervisor's UART, or a test buffer).
pub trait LineSink {
    /// Writes one line: `[prefix] text\n`; `text` carries no newline.
    fn write_line(&mut self, prefix: &str, text: &[u8]);
}

/// Per-partition line buffer: bytes accumulate until a newline (or [`LINE_MAX`]).
#[derive(Debug)]
pub struct LineBuffer {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    pub const fn new() -> Self {
        Self { buf: [0; LINE_MAX], len: 0 }
    }

    /// Adds bytes; every completed line goes to `sink` with `prefix`. Carriage returns are
    /// dropped and control bytes other than tab are shown as `?`, so a partition cannot drive
    /// the operator's terminal.
    pub fn push(&mut self, bytes: &[u8], prefix: &str, sink: &mut dyn LineSink) {
        for &b in bytes {
            match b {
                b'\n' => self.flush(prefix, sink),
                b'\r' => {}
                _ => {
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

    /// Emits whatever is buffered as a line (used when a partition stops mid-line).
    pub fn flush(&mut self, prefix: &str, sink: &mut dyn LineSink) {
        sink.write_line(prefix, &self.buf[..self.len]);
        self.len = 0;
    }

    /// Whether a partial line is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::*;

    #[derive(Default)]
    struct Lines(Vec<String>);
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
        b.push(b"ld\x1b[2J\n", "p", &mut out);
        assert_eq!(out.0, ["[p] hello", "[p] world?[2J"]);
        assert!(b.is_empty());
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
