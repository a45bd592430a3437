//! Where the keys the operator types go.
//!
//! Input goes to one partition with a virtual UART at a time, or to the hypervisor itself.
//! Ctrl-\ ([`SWITCH_KEY`]) passes it on: to each running partition with a virtual UART in turn,
//! then to the hypervisor, then round again; so it always has somewhere to go, and a system
//! with a single such partition toggles between it and the hypervisor. The hypervisor takes no
//! commands: Enter makes it print a line saying which partitions there are and how to reach them.
#![forbid(unsafe_code)]

use core::fmt;

/// Ctrl-\ (0x1c): passes console input on.
pub const SWITCH_KEY: u8 = 0x1c;

/// Who gets the operator's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Hypervisor,
    Partition(usize),
}

impl Focus {
    /// As one word (for an atomic): the partition's index, or `usize::MAX` for the hypervisor.
    pub fn to_word(self) -> usize {
        match self {
            Focus::Hypervisor => usize::MAX,
            Focus::Partition(id) => id,
        }
    }

    pub fn from_word(word: usize) -> Focus {
        if word == usize::MAX {
            Focus::Hypervisor
        } else {
            Focus::Partition(word)
        }
    }

    /// Where Ctrl-\ moves input from here: the next of `candidates` (the running partitions
    /// with a virtual UART, in ascending order) after this one, else the hypervisor; from the
    /// hypervisor, the first candidate.
    pub fn next(self, candidates: &[usize]) -> Focus {
        let after = match self {
            Focus::Hypervisor => candidates.first(),
            Focus::Partition(id) => candidates.iter().find(|&&c| c > id),
        };
        after.map_or(Focus::Hypervisor, |&id| Focus::Partition(id))
    }
}

/// What one key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// Input moves there.
    Switch(Focus),
    /// The byte goes to this partition's virtual UART.
    Deliver(usize),
    /// The hypervisor prints its help line.
    Help,
    /// Nothing happens.
    Ignore,
}

/// What `byte`, typed while `focus` has the input, does. A partition that has stopped (not in
/// `candidates`) takes no input: the keys are the hypervisor's.
pub fn on_key(focus: Focus, byte: u8, candidates: &[usize]) -> Key {
    if byte == SWITCH_KEY {
        return Key::Switch(focus.next(candidates));
    }
    match focus {
        Focus::Partition(id) if candidates.contains(&id) => Key::Deliver(id),
        _ if matches!(byte, b'\r' | b'\n') => Key::Help,
        _ => Key::Ignore,
    }
}

/// The line announcing where input went: `console input -> linux (Ctrl-\ passes it on)`.
pub struct Announce<'a> {
    /// The partition's name, or `None` for the hypervisor.
    pub to: Option<&'a str>,
}

impl fmt::Display for Announce<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to {
            Some(name) => write!(f, "console input -> {name} (Ctrl-\\ passes it on)"),
            None => f.write_str(
                "console input -> hypervisor: keys go to no partition; Enter lists them, Ctrl-\\ passes input on",
            ),
        }
    }
}

/// The hypervisor's help line: `partitions: linux (running, console), heartbeat (running);
/// Ctrl-\ gives the input to linux`. `partitions` yields (name, state, has a virtual UART).
pub struct Help<'a, I> {
    pub partitions: I,
    /// Where Ctrl-\ would move input (`None`: nowhere but back here).
    pub next: Option<&'a str>,
}

impl<'a, I> fmt::Display for Help<'a, I>
where
    I: Iterator<Item = (&'a str, &'a str, bool)> + Clone,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("partitions:")?;
        for (i, (name, state, uart)) in self.partitions.clone().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let console = if uart { ", console" } else { "" };
            write!(f, "{sep}{name} ({state}{console})")?;
        }
        match self.next {
            Some(name) => write!(f, "; Ctrl-\\ gives the input to {name}"),
            None => f.write_str("; no running partition has a console to give the input to"),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;

    use super::*;

    #[test]
    fn the_switch_key_always_has_somewhere_to_go() {
        // One partition with a UART: it and the hypervisor in turn.
        assert_eq!(Focus::Partition(0).next(&[0]), Focus::Hypervisor);
        assert_eq!(Focus::Hypervisor.next(&[0]), Focus::Partition(0));
        // Several: in order, then the hypervisor.
        let uarts = [1, 3];
        assert_eq!(Focus::Hypervisor.next(&uarts), Focus::Partition(1));
        assert_eq!(Focus::Partition(1).next(&uarts), Focus::Partition(3));
        assert_eq!(Focus::Partition(3).next(&uarts), Focus::Hypervisor);
        // A focus that has stopped moves on from where it was.
        assert_eq!(Focus::Partition(2).next(&uarts), Focus::Partition(3));
        // None: the hypervisor keeps it.
        assert_eq!(Focus::Hypervisor.next(&[]), Focus::Hypervisor);
        assert_eq!(on_key(Focus::Hypervisor, SWITCH_KEY, &[]), Key::Switch(Focus::Hypervisor));
    }

    #[test]
    fn keys_go_to_the_focus_or_ask_for_help() {
        assert_eq!(on_key(Focus::Partition(0), b'l', &[0]), Key::Deliver(0));
        assert_eq!(on_key(Focus::Partition(0), b'\r', &[0]), Key::Deliver(0));
        assert_eq!(on_key(Focus::Hypervisor, b'l', &[0]), Key::Ignore);
        assert_eq!(on_key(Focus::Hypervisor, b'\r', &[0]), Key::Help);
        // Linux powered off while it had the input: its keys are the hypervisor's.
        assert_eq!(on_key(Focus::Partition(0), b'l', &[]), Key::Ignore);
        assert_eq!(on_key(Focus::Partition(0), b'\n', &[]), Key::Help);
        assert_eq!(on_key(Focus::Partition(0), SWITCH_KEY, &[]), Key::Switch(Focus::Hypervisor));
    }

    #[test]
    fn focus_fits_in_a_word() {
        for f in [Focus::Hypervisor, Focus::Partition(0), Focus::Partition(7)] {
            assert_eq!(Focus::from_word(f.to_word()), f);
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            format!("{}", Announce { to: Some("linux") }),
            "console input -> linux (Ctrl-\\ passes it on)"
        );
        assert!(format!("{}", Announce { to: None }).starts_with("console input -> hypervisor: "));
        let parts = [("linux", "running", true), ("heartbeat", "running", false)];
        let help = Help { partitions: parts.iter().copied(), next: Some("linux") };
        assert_eq!(
            format!("{help}"),
            "partitions: linux (running, console), heartbeat (running); Ctrl-\\ gives the input to linux"
        );
        let help = Help { partitions: parts[1..].iter().copied(), next: None };
        assert_eq!(
            format!("{help}"),
            "partitions: heartbeat (running); no running partition has a console to give the input to"
        );
    }
}
