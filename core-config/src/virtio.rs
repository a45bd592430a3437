//! What the configuration rules know of the virtio devices: their limits and a disk's regions.
//! `tantalum_core::virtio` re-exports these.
#![forbid(unsafe_code)]

/// Most virtio devices one partition may have.
pub const MAX_VIRTIO_PER_PARTITION: usize = 8;

pub mod blk {
    /// Most frontends one disk serves.
    pub const MAX_FRONTENDS: usize = 16;

    /// A frontend's part of the disk, in sectors.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Region {
        pub start: u64,
        pub sectors: u64,
    }

    impl Region {
        /// The disk sector of the frontend's sectors `sector..sector + count`, if all lie inside.
        #[inline]
        pub fn place(&self, sector: u64, count: u64) -> Option<u64> {
            let end = sector.checked_add(count)?;
            if end > self.sectors {
                return None;
            }
            self.start.checked_add(sector)
        }
    }
}

pub mod net {
    /// Most endpoints of one link: a link of more than two is a small switch.
    pub const MAX_PORTS: usize = 8;
}
