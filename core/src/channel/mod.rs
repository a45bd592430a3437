//! Channels: shared-memory regions between exactly two partitions, holding single-producer /
//! single-consumer message rings. The format is defined here once, for the hypervisor (which
//! maps stage 2 from [`ChannelLayout::permissions`]), the guest SDK, the tests and
//! `docs/channels.md`.
//!
//! - [`layout`]: where the rings lie in a region and who may write which page.
//! - [`ring`]: the ring ABI, [`Producer`] and [`Consumer`].
//! - [`shmem`]: the [`SharedMemory`] trait and [`RawRegion`], the only `unsafe` code in this crate.
//! - [`region`]: [`VecRegion`], a safe heap region for tests.
//!
//! Notifying the peer (the doorbell) is a separate mechanism; rings only carry the data.
// Not `forbid(unsafe_code)` here: `shmem` needs `allow`, which `forbid` would refuse. The crate
// denies unsafe code, and every other module below forbids it itself.
#![deny(unsafe_code)]

pub mod error;
pub use tantalum_config::channel::layout;
pub mod region;
pub mod ring;
pub mod shmem;

pub use error::{AttachError, Corruption, RecvError, SendError};
pub use layout::{channel_layout, ChannelLayout, LayoutError, RingLayout};
pub use region::VecRegion;
pub use ring::{Consumer, Producer};
pub use shmem::{RawRegion, SharedMemory};
