//! Loads and stores to registers the hypervisor emulates or passes through: plain `mov`s,
//! which an EPT violation reports with the guest-physical address.

use core::ptr::{read_volatile, write_volatile};

/// Reads the 32-bit register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte-aligned device register mapped in the partition's address space.
pub unsafe fn read32(addr: usize) -> u32 {
    // SAFETY: the caller's contract.
    unsafe { read_volatile(addr as *const u32) }
}

/// Reads the 8-bit register at `addr`.
///
/// # Safety
/// `addr` must be a device register mapped in the partition's address space.
pub unsafe fn read8(addr: usize) -> u8 {
    // SAFETY: the caller's contract.
    unsafe { read_volatile(addr as *const u8) }
}

/// Writes the 32-bit register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte-aligned device register mapped in the partition's address space.
pub unsafe fn write32(addr: usize, value: u32) {
    // SAFETY: the caller's contract.
    unsafe { write_volatile(addr as *mut u32, value) }
}
