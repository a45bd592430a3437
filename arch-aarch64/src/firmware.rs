//! Calls to the firmware below EL2: PSCI over SMC.

use core::arch::asm;

use tantalum_core::hypercall::psci;

/// Issues an SMC with the PSCI function `function` and up to three arguments.
fn smc(function: u64, a: u64, b: u64, c: u64) -> i64 {
    let ret: u64;
    // SAFETY: an SMCCC call to EL3 firmware: it clobbers x0-x17 at most (SMCCC 1.1 allows
    // x0-x17 to be corrupted), declared below; it touches no memory of ours.
    unsafe {
        asm!(
            "smc #0",
            inout("x0") function => ret,
            inout("x1") a => _, inout("x2") b => _, inout("x3") c => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack)
        );
    }
    ret as i64
}

/// Starts the physical CPU `mpidr` at `entry` (physical address) with x0 = `context`.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), i64> {
    match smc(psci::CPU_ON_64, mpidr, entry, context) {
        0 => Ok(()),
        err => Err(err),
    }
}

/// Powers the machine off. Does not return; if the firmware refuses, the CPU parks.
pub fn system_off() -> ! {
    smc(psci::SYSTEM_OFF, 0, 0, 0);
    loop {
        aarch64_cpu::asm::wfe();
    }
}
