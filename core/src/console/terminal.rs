//! The operator's terminal: whole lines from anyone, and at most one *open* line, which the
//! partition the operator types to writes byte by byte (an interactive shell's prompt has no
//! newline, and its line editor echoes and moves the cursor as keys come).
//!
//! A whole line from elsewhere (another partition, the hypervisor) does not cut the open line:
//! the open line is erased, the other line printed, and the open line drawn again below it by
//! replaying its bytes, so the operator's prompt and half-typed command stay in one piece at the
//! bottom. A line too long to replay is cut instead (ended with a newline and continued below).
#![forbid(unsafe_code)]

/// Where the terminal's bytes go (the hypervisor's UART, or a test buffer).
pub trait Output {
    fn write(&mut self, bytes: &[u8]);
}

/// Bytes of the open line kept for redrawing.
pub const OPEN_LINE_MAX: usize = 512;
/// Longest prefix (partition name) kept.
pub const PREFIX_MAX: usize = 64;

/// Moves to column 0 and erases the line.
const ERASE_LINE: &[u8] = b"\r\x1b[K";

/// State of drawing the open line (also replayed from the start to redraw it).
#[derive(Clone, Copy, Debug, Default)]
struct Pen {
    /// Something of the line is on the screen (its prefix at least).
    shown: bool,
    /// A carriage return came last: the line starts over unless a newline follows.
    cr: bool,
}

/// The terminal's state (kept under the console lock).
#[derive(Debug)]
pub struct Terminal {
    /// The partition that writes the open line, if any (the one with the console input, once
    /// the operator has typed).
    owner: Option<usize>,
    prefix: [u8; PREFIX_MAX],
    prefix_len: usize,
    line: [u8; OPEN_LINE_MAX],
    len: usize,
    /// The line outgrew `line`: it can no longer be redrawn.
    overflowed: bool,
    /// Where in `line` the escape sequence being written began, and whether it is past `[`.
    escape: Option<(usize, bool)>,
    pen: Pen,
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Terminal {
    pub const fn new() -> Self {
        Self {
            owner: None,
            prefix: [0; PREFIX_MAX],
            prefix_len: 0,
            line: [0; OPEN_LINE_MAX],
            len: 0,
            overflowed: false,
            escape: None,
            pen: Pen { shown: false, cr: false },
        }
    }

    /// The partition that writes as it goes, if any.
    pub fn owner(&self) -> Option<usize> {
        self.owner
    }

    /// Gives the open line to partition `owner` (named `prefix`), or to nobody. The previous
    /// owner's open line, if it had one, is erased from the screen and its bytes returned (in
    /// `taken`, up to its length): they belong back in that partition's line buffer.
    pub fn set_owner(
        &mut self,
        owner: Option<(usize, &str)>,
        out: &mut dyn Output,
        taken: &mut [u8; OPEN_LINE_MAX],
    ) -> usize {
        let mut n = 0;
        if self.pen.shown {
            if self.overflowed {
                out.write(b"\n");
            } else {
                out.write(ERASE_LINE);
                n = self.len;
                taken[..n].copy_from_slice(&self.line[..n]);
            }
        }
        self.clear_line();
        self.owner = owner.map(|(id, _)| id);
        let prefix = owner.map_or(&[][..], |(_, p)| p.as_bytes());
        self.prefix_len = prefix.len().min(PREFIX_MAX);
        self.prefix[..self.prefix_len].copy_from_slice(&prefix[..self.prefix_len]);
        n
    }

    fn clear_line(&mut self) {
        self.len = 0;
        self.overflowed = false;
        self.escape = None;
        self.pen = Pen::default();
    }

    /// Before a whole line from elsewhere: takes the open line off the screen.
    pub fn hide(&mut self, out: &mut dyn Output) {
        if !self.pen.shown {
            return;
        }
        if self.overflowed {
            // Cannot be redrawn: end it here; what comes next starts a new line.
            out.write(b"\n");
            self.clear_line();
        } else {
            out.write(ERASE_LINE);
        }
    }

    /// After a whole line from elsewhere: draws the open line again.
    pub fn redraw(&mut self, out: &mut dyn Output) {
        if !self.pen.shown {
            return;
        }
        // Device queries were not kept (see `record`): the replay asks the terminal nothing.
        let mut pen = Pen::default();
        for i in 0..self.len {
            pen = self.draw(pen, self.line[i], out);
        }
    }

    /// Writes bytes of the owner's output as they come.
    pub fn write(&mut self, bytes: &[u8], out: &mut dyn Output) {
        for &b in bytes {
            if b == b'\n' {
                out.write(b"\n");
                self.clear_line();
                continue;
            }
            self.pen = self.draw(self.pen, b, out);
            self.record(b);
        }
    }

    /// Draws one byte (never a newline) of the open line with `pen`; returns the pen after it.
    fn draw(&self, mut pen: Pen, b: u8, out: &mut dyn Output) -> Pen {
        if b == b'\r' {
            pen.cr = true;
            return pen;
        }
        if core::mem::take(&mut pen.cr) && pen.shown {
            // Back to column 0: the prefix is drawn again, so the partition's idea of its
            // columns holds.
            out.write(b"\r");
            pen.shown = false;
        }
        if !pen.shown {
            out.write(b"[");
            out.write(&self.prefix[..self.prefix_len]);
            out.write(b"] ");
            pen.shown = true;
        }
        let shown = if matches!(b, b'\t' | 0x08 | 0x1b) || (0x20..0x7f).contains(&b) { b } else { b'?' };
        out.write(&[shown]);
        pen
    }

    /// Keeps `b` for redrawing, except device queries (`ESC [ ... n`, `ESC [ ... c`): the
    /// terminal answered them once, to the partition; a replay would answer them again.
    fn record(&mut self, b: u8) {
        if self.overflowed {
            return;
        }
        if self.len == OPEN_LINE_MAX {
            self.overflowed = true;
            return;
        }
        self.line[self.len] = b;
        self.len += 1;
        self.escape = match (self.escape, b) {
            (_, 0x1b) => Some((self.len - 1, false)),
            (Some((start, false)), b'[') => Some((start, true)),
            (Some((_, true)), 0x20..=0x3f) => self.escape,
            (Some((start, true)), b'n' | b'c') => {
                self.len = start;
                None
            }
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::*;

    #[derive(Default)]
    struct Screen(Vec<u8>);
    impl Output for Screen {
        fn write(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }
    impl Screen {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0).into_owned()
        }
        /// What a terminal shows, line by line: `\r` returns to column 0 and overwrites,
        /// `ESC [K` erases to the end, backspace moves left; other sequences are dropped.
        fn rendered(&self) -> Vec<String> {
            let mut lines = Vec::new();
            let mut line: Vec<u8> = Vec::new();
            let mut col: usize = 0;
            let mut bytes = self.0.iter().copied().peekable();
            while let Some(b) = bytes.next() {
                match b {
                    b'\n' => {
                        lines.push(String::from_utf8_lossy(&line).into_owned());
                        line.clear();
                        col = 0;
                    }
                    b'\r' => col = 0,
                    0x08 => col = col.saturating_sub(1),
                    0x1b => {
                        let mut seq = Vec::new();
                        for c in bytes.by_ref() {
                            seq.push(c);
                            if (0x40..0x7f).contains(&c) && c != b'[' {
                                break;
                            }
                        }
                        if seq == b"[K" {
                            line.truncate(col);
                        }
                    }
                    _ => {
                        if col < line.len() {
                            line[col] = b;
                        } else {
                            line.push(b);
                        }
                        col += 1;
                    }
                }
            }
            lines.push(String::from_utf8_lossy(&line).into_owned());
            lines
        }
    }

    fn line_from_elsewhere(t: &mut Terminal, s: &mut Screen, text: &str) {
        t.hide(s);
        s.write(text.as_bytes());
        s.write(b"\n");
        t.redraw(s);
    }

    #[test]
    fn output_goes_out_as_it_comes_with_the_prefix() {
        let (mut t, mut s) = (Terminal::new(), Screen::default());
        let mut taken = [0; OPEN_LINE_MAX];
        t.set_owner(Some((0, "linux")), &mut s, &mut taken);
        assert_eq!(t.owner(), Some(0));
        t.write(b"hi\r\n~ # ", &mut s);
        assert_eq!(s.text(), "[linux] hi\n[linux] ~ # ");
        t.write(b"\x07\x1b[1m", &mut s);
        assert_eq!(s.text(), "[linux] hi\n[linux] ~ # ?\x1b[1m");
    }

    #[test]
    fn a_line_from_elsewhere_does_not_cut_the_open_line() {
        let (mut t, mut s) = (Terminal::new(), Screen::default());
        let mut taken = [0; OPEN_LINE_MAX];
        t.set_owner(Some((0, "linux")), &mut s, &mut taken);
        for &b in b"~ # \x1b[6necho hx\x08 \x08" {
            t.write(&[b], &mut s);
        }
        line_from_elsewhere(&mut t, &mut s, "[heartbeat] heartbeat 7");
        t.write(b"i", &mut s);
        assert_eq!(s.rendered(), ["[heartbeat] heartbeat 7", "[linux] ~ # echo hi"]);
        // The query went to the terminal once, and is not replayed.
        assert_eq!(s.text().matches("\x1b[6n").count(), 1);
        t.write(b"\r\n", &mut s);
        line_from_elsewhere(&mut t, &mut s, "tantalum: hello");
        assert_eq!(s.rendered(), ["[heartbeat] heartbeat 7", "[linux] ~ # echo hi", "tantalum: hello", ""]);
    }

    #[test]
    fn a_carriage_return_redraws_the_prefix() {
        let (mut t, mut s) = (Terminal::new(), Screen::default());
        let mut taken = [0; OPEN_LINE_MAX];
        t.set_owner(Some((3, "p")), &mut s, &mut taken);
        t.write(b"~ # ls\r~ # ls -l", &mut s);
        line_from_elsewhere(&mut t, &mut s, "x");
        assert_eq!(s.rendered(), ["x", "[p] ~ # ls -l"]);
    }

    #[test]
    fn an_overlong_line_is_cut_instead() {
        let (mut t, mut s) = (Terminal::new(), Screen::default());
        let mut taken = [0; OPEN_LINE_MAX];
        t.set_owner(Some((0, "p")), &mut s, &mut taken);
        t.write(&[b'a'; OPEN_LINE_MAX + 1], &mut s);
        line_from_elsewhere(&mut t, &mut s, "x");
        t.write(b"b", &mut s);
        let lines = s.rendered();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1..], ["x", "[p] b"]);
    }

    #[test]
    fn changing_owner_hands_back_the_open_line() {
        let (mut t, mut s) = (Terminal::new(), Screen::default());
        let mut taken = [0; OPEN_LINE_MAX];
        assert_eq!(t.set_owner(Some((0, "linux")), &mut s, &mut taken), 0);
        t.write(b"~ # ls", &mut s);
        let n = t.set_owner(None, &mut s, &mut taken);
        assert_eq!(&taken[..n], b"~ # ls");
        assert_eq!(t.owner(), None);
        assert_eq!(s.rendered(), [""]);
        // Nobody's open line: whole lines go out as they are.
        line_from_elsewhere(&mut t, &mut s, "ZZ");
        assert!(s.text().ends_with("\r\x1b[KZZ\n"));
    }
}
