//! A partition that faults on purpose, for the fault-policy scenarios. Its behaviour follows its
//! name: `phoenix` faults, is restarted, resets itself through PSCI, and exits on its third
//! boot; any other name faults once at once (its policy decides what happens next).
#![no_std]
#![no_main]

use core::ptr::{addr_of_mut, read_volatile, write_volatile};

use tantalum_guest::hypercall::{hvc, psci};
use tantalum_guest::{partition_info, partition_name, println};

tantalum_guest::entry!(main);

static mut MARKER: u64 = 0;

/// Offsets into the partition's 4 MiB, beyond its image and below its guest DTB, that each boot
/// marks: the next boot must find them zero again (the hypervisor reloads into zeroed memory).
/// Two straddle the hypervisor's 2 MiB loading chunks.
const MARKED: [u64; 4] = [0x10_0000, 0x1f_fff8, 0x20_0000, 0x3e_0000];

/// Whether the marked words are zero; then marks them.
fn memory_untouched_then_mark() -> bool {
    let base = tantalum_guest::image_base();
    MARKED.iter().fold(true, |fresh, &offset| {
        let word = (base + offset) as *mut u64;
        // SAFETY: the offsets lie inside this partition's 4 MiB (configs/tests/faults.dts and
        // halt.dts), identity-mapped by the SDK, and nothing else uses them.
        let was = unsafe { read_volatile(word) };
        // SAFETY: as above.
        unsafe { write_volatile(word, 0x5a5a_5a5a_5a5a_5a5a) };
        fresh && was == 0
    })
}

fn fault() {
    // Guest-physical 0x1000 is outside every partition's memory: a stage-2 abort.
    // SAFETY: deliberately faulting; the hypervisor applies the partition's policy.
    unsafe { write_volatile(0x1000 as *mut u64, 1) };
    println!("BREACH: the fault returned");
}

fn main() {
    let name = partition_name();
    let boot = partition_info().restarts;
    // SAFETY: single-threaded; MARKER is only used here.
    let fresh = unsafe { read_volatile(addr_of_mut!(MARKER)) } == 0 && memory_untouched_then_mark();
    // SAFETY: as above.
    unsafe { write_volatile(addr_of_mut!(MARKER), 1) };
    println!("boot {boot}, memory {}", if fresh { "fresh" } else { "NOT fresh" });
    if name.as_str() != "phoenix" {
        println!("faulting now");
        fault();
        return;
    }
    match boot {
        0 => {
            println!("faulting (expect a restart)");
            fault();
        }
        1 => {
            println!("resetting through PSCI SYSTEM_RESET");
            hvc(psci::SYSTEM_RESET, [0; 6]);
            println!("BREACH: SYSTEM_RESET returned");
        }
        _ => println!("third boot: done"),
    }
}
