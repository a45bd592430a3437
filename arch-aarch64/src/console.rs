//! The hypervisor console: one UART behind a lock. Whole lines from the hypervisor and the
//! partitions, and the open line of the partition the operator types to, kept whole at the
//! bottom (`tantalum_core::console::terminal`).

use core::fmt::{self, Write};

use spin::mutex::TicketMutex;
use spin::Mutex;
use tantalum_core::console::budget::{Budget, Dropped, Verdict};
use tantalum_core::console::terminal::{Output, Terminal, OPEN_LINE_MAX};
use tantalum_core::console::{LineBuffer, LineSink};

use tantalum_core::bootimage::ConsoleKind;

use crate::uart::Uart;

/// The UART and what the operator's terminal shows.
struct Console {
    uart: Uart,
    term: Terminal,
}

impl Output for Uart {
    fn write(&mut self, bytes: &[u8]) {
        self.write_bytes(bytes);
    }
}

impl Console {
    /// Writes one whole line (`line` writes it without its newline) above the open line.
    fn whole_line(&mut self, line: impl FnOnce(&mut Uart)) {
        self.term.hide(&mut self.uart);
        line(&mut self.uart);
        self.uart.write_bytes(b"\n");
        self.term.redraw(&mut self.uart);
    }
}

/// A ticket lock: CPUs get the console in the order they asked, so a partition writing line
/// after line cannot keep another's line waiting (a plain spin lock let one flooding partition
/// delay another's two bytes by half a second).
static CONSOLE: TicketMutex<Option<Console>> = TicketMutex::new(None);

/// Starts the console on the UART of kind `kind` at `base`.
///
/// # Safety
/// As [`Uart::new`]: `base` is a UART of that kind mapped as device memory that nothing else
/// drives.
pub unsafe fn init(kind: ConsoleKind, base: usize) {
    // SAFETY: forwarded contract.
    let uart = unsafe { Uart::new(kind, base) };
    *CONSOLE.lock() = Some(Console { uart, term: Terminal::new() });
}

/// Writes `tantalum: <message>\n` as one line.
pub fn print_line(args: fmt::Arguments<'_>) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        c.whole_line(|uart| {
            let _ = uart.write_str("tantalum: ");
            let _ = uart.write_fmt(args);
        });
    }
}

/// Writes a line for the panic path even if a CPU died holding the lock.
pub fn print_line_forced(args: fmt::Arguments<'_>) {
    let mut guard = CONSOLE.try_lock();
    for _ in 0..1_000_000 {
        if guard.is_some() {
            break;
        }
        core::hint::spin_loop();
        guard = CONSOLE.try_lock();
    }
    match guard {
        Some(mut g) => {
            if let Some(c) = g.as_mut() {
                c.term.hide(&mut c.uart);
                let _ = c.uart.write_fmt(format_args!("tantalum: {args}\n"));
            }
        }
        None => {
            // SAFETY: the holder is stuck; the system is going down and this is its last word.
            unsafe { CONSOLE.force_unlock() };
            print_line(args);
        }
    }
}

/// Console lines from a partition: `[name] text`, within its console budget (output over it is
/// dropped and counted, then reported).
pub struct PartitionSink<'a> {
    pub budget: &'a Mutex<Budget>,
}

/// Asks `budget` to send `bytes` now.
fn charge(budget: &Mutex<Budget>, bytes: usize) -> Verdict {
    let (now, freq) = crate::el2::counter();
    budget.lock().take(bytes, now, freq)
}

impl LineSink for PartitionSink<'_> {
    fn write_line(&mut self, prefix: &str, text: &[u8]) {
        let verdict = charge(self.budget, prefix.len() + text.len() + 4);
        if verdict == Verdict::Drop {
            return;
        }
        if let Some(c) = CONSOLE.lock().as_mut() {
            let line = |uart: &mut Uart, text: &[u8]| {
                uart.write_byte(b'[');
                uart.write_bytes(prefix.as_bytes());
                uart.write_bytes(b"] ");
                uart.write_bytes(text);
            };
            if let Verdict::SendAfterDropped(n) = verdict {
                c.whole_line(|uart| {
                    line(uart, b"");
                    let _ = uart.write_fmt(format_args!("{}", Dropped(n)));
                });
            }
            c.whole_line(|uart| line(uart, text));
        }
    }
}

/// `info!("...")`: one hypervisor console line.
macro_rules! info {
    ($($arg:tt)*) => { $crate::console::print_line(format_args!($($arg)*)) };
}
pub(crate) use info;

/// Drains bytes the operator typed; `deliver` gets them in order.
pub fn read_input(mut deliver: impl FnMut(u8)) {
    let mut guard = CONSOLE.lock();
    let Some(Console { uart, .. }) = guard.as_mut() else { return };
    let mut buf = [0u8; 32];
    let mut n = 0;
    while n < buf.len() {
        match uart.read_byte() {
            Some(b) => {
                buf[n] = b;
                n += 1;
            }
            None => break,
        }
    }
    drop(guard);
    for &b in &buf[..n] {
        deliver(b);
    }
}

/// Starts interrupts for console input.
#[unsafe(link_section = ".text.boot_only")]
pub fn enable_input() {
    if let Some(c) = CONSOLE.lock().as_mut() {
        c.uart.enable_rx_interrupt();
    }
}

/// Output bytes of partition `id` (named `name`), whose line buffer the caller holds: as they
/// come if the partition has the terminal (its buffer says so: [`hand_over`] marks it) (the operator types to it: a shell's prompt shows at
/// once, its line editing drives the terminal), else line by line.
pub fn partition_output(
    id: usize,
    name: &str,
    budget: &Mutex<Budget>,
    buffer: &mut LineBuffer,
    bytes: &[u8],
) {
    // The partition the operator types to writes as much as it likes (`dmesg` in a shell):
    // the operator is watching it and can take the input away; the others keep their turns.
    if buffer.is_direct() {
        if let Some(c) = CONSOLE.lock().as_mut() {
            if c.term.owner() == Some(id) {
                c.term.write(bytes, &mut c.uart);
                return;
            }
        }
    }
    buffer.push(bytes, name, &mut PartitionSink { budget });
}

/// The partition that has the terminal, if any.
pub fn terminal_owner() -> Option<usize> {
    CONSOLE.lock().as_ref().and_then(|c| c.term.owner())
}

/// Gives the terminal to partition `new` (index, name and its line buffer, which the caller
/// holds) or to nobody, and prints `announce` if given. The previous owner's open line goes back into its
/// line buffer (`old`: its name and buffer, held by the caller); the new owner's partial line is
/// drawn at once. Callers lock line buffers before the console, as every path does.
pub fn hand_over(
    old: Option<(&str, &Mutex<Budget>, &mut LineBuffer)>,
    new: Option<(usize, &str, &mut LineBuffer)>,
    announce: Option<fmt::Arguments<'_>>,
) {
    let mut taken = [0u8; OPEN_LINE_MAX];
    let mut n = 0;
    let mut old = old;
    if let Some(c) = CONSOLE.lock().as_mut() {
        n = c.term.set_owner(new.as_ref().map(|(id, name, _)| (*id, *name)), &mut c.uart, &mut taken);
        // The buffers say who writes as it goes, as the terminal does from now on: a vCPU
        // holding its partition's buffer reads it there, without the console's lock.
        if let Some((_, _, buffer)) = old.as_mut() {
            buffer.set_direct(false);
        }
        if let Some(announce) = announce {
            let _ = c.uart.write_fmt(format_args!("tantalum: {announce}\n"));
        }
        if let Some((id, _, buffer)) = new {
            buffer.set_direct(c.term.owner() == Some(id));
            let (partial, len) = buffer.take_partial();
            c.term.write(&partial[..len], &mut c.uart);
        }
    }
    // After the console lock: a line the open line completes goes out through it.
    if let Some((name, budget, buffer)) = old {
        buffer.push(&taken[..n], name, &mut PartitionSink { budget });
    }
}
