//! Tantalum's x86_64 (VT-x) mechanism: the parts that are plain arithmetic (the Multiboot2
//! boot information, EPT entries, VMX exit decoding) live here and are tested on the host; the
//! binary (`main.rs`) adds what touches the hardware.
#![cfg_attr(not(test), no_std)]

pub mod ept;
pub mod io_bitmap;
pub mod linux_boot;
pub mod msr_bitmap;
pub mod multiboot2;
pub mod pending;
pub mod pic;
pub mod psci;
pub mod timer;
pub mod vmcs;
pub mod vmexit;
pub mod vuart;

use tantalum_core::addr::{HostPhys, HostRange};
use tantalum_core::config::HypervisorMap;

/// What the boot page tables (`boot.rs`: 4 GiB identity-mapped in 2 MiB pages) reach: the
/// first 3 GiB write-back (RAM), the top GiB uncached (the local APIC, the IOAPIC and other
/// MMIO). The config check (at build time and at boot) refuses memory outside it.
pub const HOST_MAP: HypervisorMap = HypervisorMap {
    devices: HostRange::new(HostPhys(3 << 30), 1 << 30),
    ram: HostRange::new(HostPhys(0), 3 << 30),
};

/// Where the Multiboot2 header's address tag has GRUB load the image (`link.ld`).
pub const LOAD_ADDRESS: u64 = 0x10_0000;

/// The Multiboot2 header magic, at the start of the image.
pub const MULTIBOOT2_MAGIC: u32 = 0xE852_50D6;
