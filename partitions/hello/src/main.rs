//! The demo partition: says hello a few times, with its identity, then exits. Its bootargs
//! can give it another role:
//! - `role=echo`: reads lines typed on its virtual UART (the PL011 its guest DT's
//!   `/chosen/stdout-path` names, `virtual-uart;`; on x86 the 16550 at COM1's ports, which it
//!   reads by its interrupt, sleeping in HLT meanwhile, and also writes its lines to) and
//!   prints each, until `quit`;
//! - `role=flood`: floods the console with 256-byte writes for two seconds;
//! - `role=timed bound_ms=N`: writes two bytes every 10 ms for two seconds and reports its
//!   slowest write (a breach if over N ms);
//! - `role=udp-echo ip=A.B.C.D count=N`: echoes UDP datagrams on its virtio-net link (udp.rs);
//! - `role=vsock-echo port=P`: echoes what a vsock connection sends (vsock.rs);
//! - `role=fault addrs=A,B,..`: run N (its restart count) stores to the N-th address, which
//!   must lie outside its memory (another partition's, the hypervisor's, a device's): its
//!   `on-fault` policy must end each run; once past the last address it says so and exits;
//! - `role=games` (x86_64): privileged CPU games, one per run (games.rs);
//! - `role=smp` (x86_64): its second vCPU by PSCI CPU_ON, CPU_OFF and a fault (smp.rs);
//! - `role=timer` (x86_64): HLT woken by the vCPU's TSC-deadline timer (timer.rs);
//! - `role=self-ipi`: an IPI to its own vCPU and refused ones, the same code on both
//!   architectures (self_ipi.rs);
//! - `role=ipi` / `role=ring` (x86_64): IPIs between its two vCPUs, refused ones, and a
//!   doorbell from the `ring` partition routed to its vCPU 1 (ipi.rs);
//! - `role=heartbeat period_ms=P count=N`: `heartbeat I` every P ms (1000), N times
//!   (practically for ever), to show that it keeps running beside another partition;
//! - `role=bench count=N`: times N `HYP_VERSION` hypercalls on the partition's clock and
//!   prints the mean round trip in clock ticks (the x86 scenario's figure: the TSC, which Bochs
//!   advances about once per instruction).
#![no_std]
#![no_main]

use tantalum_guest::dt::bootarg;
use tantalum_guest::{println, wait_ns};

#[cfg(target_arch = "x86_64")]
mod games;
#[cfg(target_arch = "x86_64")]
mod ipi;
mod self_ipi;
#[cfg(target_arch = "x86_64")]
mod smp;
#[cfg(target_arch = "x86_64")]
mod timer;
mod udp;
mod vsock;

tantalum_guest::entry!(main);

fn main() {
    let name = tantalum_guest::partition_name();
    let info = tantalum_guest::partition_info();
    println!(
        "hello from partition '{}' (id {}, {} vCPU), guest DTB at {:#x}",
        name,
        info.id,
        info.vcpus,
        tantalum_guest::dtb_address()
    );
    match bootarg("role") {
        Some("echo") => return echo(),
        Some("flood") => return flood(),
        Some("timed") => return timed(),
        Some("udp-echo") => return udp::echo(),
        Some("vsock-echo") => return vsock::echo(),
        Some("fault") => return fault(info.restarts),
        Some("bench") => return bench(),
        Some("heartbeat") => return heartbeat(),
        Some("self-ipi") => return self_ipi::run(),
        #[cfg(target_arch = "x86_64")]
        Some("games") => return games::play(info.restarts),
        #[cfg(target_arch = "x86_64")]
        Some("smp") => return smp::run(info.restarts),
        #[cfg(target_arch = "x86_64")]
        Some("timer") => return timer::run(),
        #[cfg(target_arch = "x86_64")]
        Some("ipi") => return ipi::run(),
        #[cfg(target_arch = "x86_64")]
        Some("ring") => return ipi::ring(),
        _ => {}
    }
    for i in 1..=3 {
        println!("{} tick {}", name, i);
        wait_ns(20_000_000);
    }
    println!("{} done", name);
}

/// `role=heartbeat`: a numbered line every `period_ms`, `count` times.
fn heartbeat() {
    let period = bootarg("period_ms").and_then(|b| b.parse::<u64>().ok()).unwrap_or(1000);
    let count = bootarg("count").and_then(|b| b.parse::<u64>().ok()).unwrap_or(u64::MAX);
    for i in 1..=count {
        println!("heartbeat {i}");
        wait_ns(period * 1_000_000);
    }
}

/// `role=bench`: the mean hypercall round trip in clock ticks.
fn bench() {
    use tantalum_guest::hypercall::{hvc, HYP_VERSION};
    use tantalum_guest::time::now;
    let count: u64 = bootarg("count").and_then(|c| c.parse().ok()).unwrap_or(1000).max(1);
    // When this partition's main began (the hello line before is one hypercall).
    println!("bench: main_ticks={}", now().ticks());
    let start = now();
    for _ in 0..count {
        hvc(HYP_VERSION, [0; 6]);
    }
    let ticks = now().ticks() - start.ticks();
    // The fastest single call, timed on its own (the mean includes the hypervisor's ticks).
    let mut min = u64::MAX;
    for _ in 0..count {
        let t0 = now();
        hvc(HYP_VERSION, [0; 6]);
        min = min.min(now().ticks() - t0.ticks());
    }
    println!(
        "bench: hypercall_round_trip_ticks={} min={min} ({count} calls, clock at {} Hz)",
        ticks / count,
        tantalum_guest::time::frequency()
    );
}

/// `role=fault`: stores to the `run`-th address of `addrs` (see the module documentation).
fn fault(run: u64) {
    let addrs = bootarg("addrs").unwrap_or("");
    let parse = |a: &str| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok();
    let Some(addr) = addrs.split(',').nth(run as usize).and_then(parse) else {
        println!("fault: all {run} stores outside my memory were stopped");
        return;
    };
    println!("fault: run {run} stores to {addr:#x}");
    // SAFETY: deliberately outside this partition's memory: the hypervisor must stop the
    // store and apply the partition's fault policy.
    unsafe { core::ptr::write_volatile(addr as *mut u64, 0x5a5a_5a5a_5a5a_5a5a) };
    println!("BREACH: the store to {addr:#x} returned");
}

/// The virtual PL011's data and flag registers (offsets).
#[cfg(target_arch = "aarch64")]
const UART_DR: usize = 0x00;
#[cfg(target_arch = "aarch64")]
const UART_FR: usize = 0x18;
#[cfg(target_arch = "aarch64")]
const FR_RX_EMPTY: u32 = 1 << 4;

/// The virtual UART's receive side: the PL011 its guest DT's `/chosen/stdout-path` names.
#[cfg(target_arch = "aarch64")]
struct Uart(usize);

#[cfg(target_arch = "aarch64")]
impl Uart {
    fn find() -> Option<Uart> {
        tantalum_guest::dt::stdout_address().map(|a| Uart(a as usize))
    }
    fn read_byte(&self) -> Option<u8> {
        // SAFETY: the hypervisor emulates a PL011 at this guest address (`virtual-uart;`, placed
        // by the board below 4 GiB); the SDK maps that space as device memory.
        let empty = unsafe { tantalum_guest::mmio::read32(self.0 + UART_FR) } & FR_RX_EMPTY != 0;
        // SAFETY: as above.
        (!empty).then(|| unsafe { tantalum_guest::mmio::read32(self.0 + UART_DR) } as u8)
    }
    /// Polls: the echo's Arm twin reads the PL011's flags (its interrupt is Linux's).
    fn wait(&self) {
        wait_ns(1_000_000);
    }
    fn print_line(&self, text: &str) {
        println!("{text}");
    }
    fn finish(&self) {}
}

/// The virtual UART on x86: a 16550 at the ports its guest DT's stdout node gives (COM1's,
/// docs/x86.md), both ways. Input comes by its interrupt: the handler drains the receiver into
/// a ring and the echo sleeps in HLT until there is something in it, so every line it echoes
/// proves a delivered interrupt (the hypervisor's HLT waits only for an injected one).
#[cfg(target_arch = "x86_64")]
struct Uart(u16);

#[cfg(target_arch = "x86_64")]
mod uart_rx {
    use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU8, AtomicUsize, Ordering};

    /// The UART's first port, for the handler.
    pub static PORT: AtomicU16 = AtomicU16::new(0);
    /// Receive interrupts taken.
    pub static INTERRUPTS: AtomicU32 = AtomicU32::new(0);
    const SIZE: usize = 64;
    static RING: [AtomicU8; SIZE] = [const { AtomicU8::new(0) }; SIZE];
    /// Bytes written (by the handler) and read (by the echo loop), ever.
    static WRITTEN: AtomicUsize = AtomicUsize::new(0);
    static READ: AtomicUsize = AtomicUsize::new(0);

    pub fn inb(port: u16) -> u8 {
        let value: u8;
        // SAFETY: the virtual 16550's ports (`virtual-uart;`); the hypervisor emulates them.
        unsafe { core::arch::asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack)) };
        value
    }

    pub fn outb(port: u16, value: u8) {
        // SAFETY: as in `inb`.
        unsafe { core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack)) };
    }

    /// The UART's interrupt: takes every waiting byte (LSR bit 0: data ready), which lowers
    /// the line; bytes beyond the ring's room are dropped.
    pub fn handler(_intid: u32) {
        INTERRUPTS.fetch_add(1, Ordering::AcqRel);
        let port = PORT.load(Ordering::Acquire);
        while inb(port + 5) & 1 != 0 {
            let byte = inb(port);
            let w = WRITTEN.load(Ordering::Acquire);
            if w - READ.load(Ordering::Acquire) < SIZE {
                RING[w % SIZE].store(byte, Ordering::Release);
                WRITTEN.store(w + 1, Ordering::Release);
            }
        }
    }

    pub fn pop() -> Option<u8> {
        let r = READ.load(Ordering::Acquire);
        (r != WRITTEN.load(Ordering::Acquire)).then(|| {
            let byte = RING[r % SIZE].load(Ordering::Acquire);
            READ.store(r + 1, Ordering::Release);
            byte
        })
    }

    pub fn waiting() -> bool {
        READ.load(Ordering::Acquire) != WRITTEN.load(Ordering::Acquire)
    }
}

#[cfg(target_arch = "x86_64")]
impl Uart {
    /// The UART of the guest DT's stdout node, with its receive interrupt on (IER bit 0, and
    /// OUT2, which gates a PC UART's interrupt output).
    fn find() -> Option<Uart> {
        use core::sync::atomic::Ordering;
        use tantalum_guest::{dt, irq};
        let port = dt::stdout_port()?;
        let intid = dt::stdout_interrupt()?;
        uart_rx::PORT.store(port, Ordering::Release);
        irq::init();
        irq::set_handler(intid, uart_rx::handler);
        uart_rx::outb(port + 4, 0x08);
        uart_rx::outb(port + 1, 0x01);
        irq::enable();
        println!("echo: receiving by interrupt {intid} at port {port:#x}");
        Some(Uart(port))
    }
    fn read_byte(&self) -> Option<u8> {
        uart_rx::pop()
    }
    /// Sleeps until the receive interrupt has brought something.
    fn wait(&self) {
        tantalum_guest::irq::wait_unless(uart_rx::waiting);
    }
    /// Writes the line through the UART's transmitter (LSR bit 5: room for a byte).
    fn print_line(&self, text: &str) {
        for &b in text.as_bytes().iter().chain(b"\r\n") {
            while uart_rx::inb(self.0 + 5) & 0x20 == 0 {}
            uart_rx::outb(self.0, b);
        }
    }
    fn finish(&self) {
        let n = uart_rx::INTERRUPTS.load(core::sync::atomic::Ordering::Acquire);
        println!("echo: {n} receive interrupt(s)");
    }
}

/// Prints every line typed on the virtual UART (`got: ...`) until `quit`.
fn echo() {
    let mut line = [0u8; 64];
    let mut len = 0;
    let Some(uart) = Uart::find() else {
        println!("echo: no virtual UART in the device tree");
        return;
    };
    println!("echo: type a line");
    loop {
        let Some(byte) = uart.read_byte() else {
            uart.wait();
            continue;
        };
        match byte {
            b'\r' | b'\n' if len > 0 => {
                let text = core::str::from_utf8(&line[..len]).unwrap_or("?");
                let mut out = [0u8; 70];
                out[..5].copy_from_slice(b"got: ");
                out[5..5 + len].copy_from_slice(&line[..len]);
                uart.print_line(core::str::from_utf8(&out[..5 + len]).unwrap_or("got: ?"));
                if text == "quit" {
                    uart.finish();
                    return;
                }
                len = 0;
            }
            b'\r' | b'\n' => {}
            _ if len < line.len() => {
                line[len] = byte;
                len += 1;
            }
            _ => {}
        }
    }
}

/// One console write of `bytes` (`HYP_CONSOLE_WRITE`), as the SDK's `print!` makes them.
fn console_write(bytes: &[u8]) {
    use tantalum_guest::hypercall::{hvc, HYP_CONSOLE_WRITE};
    hvc(HYP_CONSOLE_WRITE, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0]);
}

/// 256-byte console writes (lines of 127 bytes) as fast as it can, for two seconds.
fn flood() {
    use core::time::Duration;
    use tantalum_guest::time::now;
    let mut chunk = [b'#'; 256];
    chunk[127] = b'\n';
    chunk[255] = b'\n';
    let start = now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        console_write(&chunk);
        sent += chunk.len() as u64;
    }
    // A second for the budget to refill, so this line is not dropped too.
    tantalum_guest::time::sleep(Duration::from_secs(1));
    println!("flooded {sent} bytes in 2 s");
}

/// Two-byte console writes every 10 ms for two seconds, each timed.
fn timed() {
    use core::time::Duration;
    use tantalum_guest::time::{now, Periodic};
    let bound = bootarg("bound_ms").and_then(|b| b.parse::<u64>().ok()).unwrap_or(20);
    let mut worst = Duration::ZERO;
    let mut period = Periodic::new(Duration::from_millis(10));
    for _ in 0..200 {
        period.wait();
        let before = now();
        console_write(b".\n");
        worst = worst.max(before.elapsed());
    }
    if worst > Duration::from_millis(bound) {
        println!("BREACH: a 2-byte console write took {} us (bound {bound} ms)", worst.as_micros());
    } else {
        println!("every 2-byte console write within {bound} ms (slowest {} us)", worst.as_micros());
    }
}
