//! Benchmark partition: instruction counts from the PMU (exact under QEMU `-icount`).
//! `cargo xtask bench` boots it alone on CPU 0 and reads the `bench:` lines.
#![no_std]
#![no_main]

use tantalum_guest::hypercall::{hvc, HYP_VERSION};
use tantalum_guest::{boot_instructions, instructions, println};

tantalum_guest::entry!(main);

const ROUNDS: u64 = 1000;

/// Instructions per iteration of `f`, over [`ROUNDS`] iterations.
fn per_round(mut f: impl FnMut()) -> u64 {
    for _ in 0..10 {
        f();
    }
    let start = instructions();
    for _ in 0..ROUNDS {
        f();
    }
    (instructions() - start) / ROUNDS
}

fn main() {
    let boot = boot_instructions();
    let with_call = per_round(|| {
        hvc(HYP_VERSION, [0; 6]);
    });
    // The same loop with the `hvc` replaced by a `nop`: what the guest side itself costs.
    let baseline = per_round(|| {
        // SAFETY: a nop with the same register set-up as the hypercall.
        unsafe {
            core::arch::asm!("nop", inout("x0") HYP_VERSION => _, inout("x1") 0u64 => _, inout("x2") 0u64 => _,
                inout("x3") 0u64 => _, inout("x4") 0u64 => _, in("x5") 0u64, in("x6") 0u64, options(nostack));
        }
    });
    println!("bench: boot_instructions={boot}");
    println!("bench: hypercall_round_trip_instructions={}", with_call - baseline);
    println!("bench: hypercall_loop_instructions={with_call} baseline={baseline}");
}
