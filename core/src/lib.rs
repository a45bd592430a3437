//! Tantalum's arch-independent core: what a partition may do and what happens when it does.
//!
//! The arch crates run vCPUs and hand this crate decoded [`exit::Exit`]s; this crate decides.
//! Everything here builds and is tested on the host.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod addr;
pub mod bootimage;
pub mod channel;
pub mod config;
pub mod console;
pub mod exit;
pub mod gic_regs;
pub mod hypercall;
pub mod iommu;
pub mod partition;
pub mod sort;
pub mod stage2;
#[cfg(test)]
mod test_support;
pub mod time;
pub mod vgic;
pub mod virtio;
pub mod vplatform;
pub mod vuart;
