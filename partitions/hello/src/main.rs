//! The demo partition: says hello a few times, with its identity, then exits. Its bootargs
//! can give it another role:
//! - `role=echo`: reads lines typed on its virtual UART (the PL011 its guest DT's
//!   `/chosen/stdout-path` names, `virtual-uart;`) and prints each, until `quit`;
//! - `role=flood`: floods the console with 256-byte writes for two seconds;
//! - `role=timed bound_ms=N`: writes two bytes every 10 ms for two seconds and reports its
//!   slowest write (a breach if over N ms);
//! - `role=udp-echo ip=A.B.C.D count=N`: echoes UDP datagrams on its virtio-net link (udp.rs);
//! - `role=vsock-echo port=P`: echoes what a vsock connection sends (vsock.rs);
//! - `role=fault addrs=A,B,..`: run N (its restart count) stores to the N-th address, which
//!   must lie outside its memory (another partition's, the hypervisor's, a device's): its
//!   `on-fault` policy must end each run; once past the last address it says so and exits;
//! - `role=games` (x86_64): privileged CPU games, one per run (games.rs);
//! - `role=bench count=N`: times N `HYP_VERSION` hypercalls on the partition's clock and
//!   prints the mean round trip in clock ticks (the x86 scenario's figure: the TSC, which Bochs
//!   advances about once per instruction).
#![no_std]
#![no_main]

use tantalum_guest::dt::bootarg;
use tantalum_guest::{println, wait_ns};

#[cfg(target_arch = "x86_64")]
mod games;
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
        #[cfg(target_arch = "x86_64")]
        Some("games") => return games::play(info.restarts),
        _ => {}
    }
    for i in 1..=3 {
        println!("{} tick {}", name, i);
        wait_ns(20_000_000);
    }
    println!("{} done", name);
}

/// `role=bench`: the mean hypercall round trip in clock ticks.
fn bench() {
    use tantalum_guest::hypercall::{hvc, HYP_VERSION};
    let count: u64 = bootarg("count").and_then(|c| c.parse().ok()).unwrap_or(1000).max(1);
    let start = tantalum_guest::time::now();
    for _ in 0..count {
        hvc(HYP_VERSION, [0; 6]);
    }
    let ticks = tantalum_guest::time::now().ticks() - start.ticks();
    println!(
        "bench: hypercall_round_trip_ticks={} ({count} calls, clock at {} Hz)",
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
const UART_DR: usize = 0x00;
const UART_FR: usize = 0x18;
const FR_RX_EMPTY: u32 = 1 << 4;

/// Prints every line typed on the virtual UART (`got: ...`) until `quit`.
fn echo() {
    let mut line = [0u8; 64];
    let mut len = 0;
    let Some(uart) = tantalum_guest::dt::stdout_address() else {
        println!("echo: no virtual UART in the device tree");
        return;
    };
    let (dr, fr) = (uart as usize + UART_DR, uart as usize + UART_FR);
    println!("echo: type a line");
    loop {
        // SAFETY: the hypervisor emulates a PL011 at this guest address (`virtual-uart;`, placed
        // by the board below 4 GiB); the SDK maps that space as device memory.
        let empty = unsafe { tantalum_guest::mmio::read32(fr) } & FR_RX_EMPTY != 0;
        if empty {
            wait_ns(1_000_000);
            continue;
        }
        // SAFETY: as above.
        let byte = unsafe { tantalum_guest::mmio::read32(dr) } as u8;
        match byte {
            b'\r' | b'\n' if len > 0 => {
                let text = core::str::from_utf8(&line[..len]).unwrap_or("?");
                println!("got: {text}");
                if text == "quit" {
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
