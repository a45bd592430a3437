//! The boot-time half of Tantalum's core: the system configuration ([`config`]: parser and
//! rules), the boot image format ([`bootimage`]), the channel layout ([`channel::layout`]),
//! typed addresses ([`addr`]) and the one sort, with the few constants of the virtual platform
//! the rules need. `tantalum-core` re-exports all of it at the same paths.
//!
//! It is a crate of its own so that the hypervisors can compile it for size
//! (`[profile.release.package.tantalum-config]` in the workspace's Cargo.toml): it runs once,
//! at boot, and is most of the parsing and checking a hypervisor does (docs/performance.md).
//! The hot paths stay in `tantalum-core`; the small helpers they use from here are `#[inline]`,
//! so they are compiled with their callers.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod addr;
pub mod bootimage;
pub mod config;
pub mod sort;
pub mod stage2;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod vgic;
pub mod virtio;
pub mod vplatform;

/// Channels: what the configuration rules check of them (`tantalum_core::channel` has the rest).
pub mod channel {
    pub mod layout;
}
