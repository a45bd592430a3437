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

/// Largest firmware DTB the hypervisor reads.
const FIRMWARE_DTB_MAX: u64 = 2 << 20;

/// The RAM ranges the firmware's DTB (x0 at entry) reports, to cross-check the system DTB.
pub fn firmware_ram(dtb: u64) -> Result<alloc::vec::Vec<tantalum_core::addr::HostRange>, &'static str> {
    use tantalum_core::addr::{HostPhys, HostRange};
    let header = HostRange::new(HostPhys(dtb), 8);
    if dtb == 0 || !dtb.is_multiple_of(8) || !crate::memory::mapped_ram().contains_range(&header) {
        return Err("no firmware DTB in RAM");
    }
    let mut head = [0u8; 8];
    // SAFETY: the 8 bytes lie inside the EL2 identity map (checked above); nothing writes them.
    unsafe { crate::memory::copy_from(HostPhys(dtb), &mut head) };
    let size = u64::from(u32::from_be_bytes([head[4], head[5], head[6], head[7]]));
    let blob = HostRange::new(HostPhys(dtb), size);
    if size > FIRMWARE_DTB_MAX || !crate::memory::mapped_ram().contains_range(&blob) {
        return Err("firmware DTB size out of range");
    }
    // SAFETY: the blob lies inside the EL2 identity map (checked above), stays untouched while we
    // read it (no partition runs yet) and is only read.
    let bytes = unsafe { core::slice::from_raw_parts(dtb as *const u8, size as usize) };
    tantalum_core::config::parse_board(bytes).map(|b| b.ram).map_err(|_| "firmware DTB is malformed")
}
