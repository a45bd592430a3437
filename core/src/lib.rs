//! Tantalum's arch-independent core: what a partition may do and what happens when it does.
//!
//! The arch crates run vCPUs and hand this crate decoded [`exit::Exit`]s; this crate decides.
//! Everything here builds and is tested on the host.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

// The boot-time half lives in `tantalum-config` (compiled for size in the hypervisors); it is
// part of this crate's interface at the same paths.
#[cfg(test)]
use tantalum_config::test_support;
pub use tantalum_config::{addr, bootimage, config, sort};

pub mod channel;
pub mod console;
pub mod exit;
pub mod gic_regs;
pub mod hypercall;
pub mod iommu;
pub mod partition;
pub mod pci;
pub mod stage2;
pub mod time;
pub mod vgic;
pub mod virtio;
pub mod vplatform;
pub mod vuart;

#[cfg(test)]
mod test_random;
