//! Loads and stores to registers the hypervisor emulates (the virtual UART, virtio devices).
//!
//! A trapped access is emulated only if the CPU reports its syndrome, which it does for plain
//! loads and stores, not for ones that write back their base register (`ldr w0, [x1, #4]!`).
//! `read_volatile` leaves that choice to the compiler, which takes the write-back form when a
//! base comes from the device tree; these use one plain `ldr`/`str` each.

use core::arch::asm;

/// Reads the 32-bit register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte-aligned device register mapped in the partition's address space.
pub unsafe fn read32(addr: usize) -> u32 {
    let value: u32;
    // SAFETY: the caller's contract; one load, no write-back.
    unsafe { asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) value, options(nostack, readonly)) };
    value
}

/// Reads the 8-bit register at `addr`.
///
/// # Safety
/// `addr` must be a device register mapped in the partition's address space.
pub unsafe fn read8(addr: usize) -> u8 {
    let value: u32;
    // SAFETY: the caller's contract; one load, no write-back.
    unsafe { asm!("ldrb {v:w}, [{a}]", a = in(reg) addr, v = out(reg) value, options(nostack, readonly)) };
    value as u8
}

/// Writes the 32-bit register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte-aligned device register mapped in the partition's address space.
pub unsafe fn write32(addr: usize, value: u32) {
    // SAFETY: the caller's contract; one store, no write-back.
    unsafe { asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack)) };
}
