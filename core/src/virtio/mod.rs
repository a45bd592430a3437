//! Virtio: the paravirtual device family of Tantalum (docs/virtio.md). The hypervisor implements
//! the virtio-mmio transport (version 2) and moves bytes between partitions' virtqueue buffers,
//! each range checked against its owner's memory map; it does no device emulation beyond that.
#![forbid(unsafe_code)]

use crate::addr::{GuestPhys, HostPhys};
use crate::config::PartitionConfig;

pub mod blk;
pub mod mmio;
pub mod net;
pub mod queue;
#[cfg(test)]
mod tests;
pub mod vsock;

/// Bytes of one device's register window: a partition's device `n` (its local number, in tree
/// order of the links it is on) is page `n` of the board's virtio window
/// (`vplatform::Emulated::Virtio`).
pub const VIRTIO_PAGE: u64 = crate::vplatform::EMULATED_PAGE;
/// First SPI number of virtio devices: device `n` interrupts on `VIRTIO_SPI_BASE + n`, above the
/// channel doorbells (64..71).
pub const VIRTIO_SPI_BASE: u32 = 80;
pub use tantalum_config::virtio::MAX_VIRTIO_PER_PARTITION;

/// SPI number (DT specifier, INTID - 32) of a partition's device `local`.
pub const fn virtio_spi(local: usize) -> u32 {
    VIRTIO_SPI_BASE + local as u32
}

/// INTID of a partition's device `local`.
pub const fn virtio_intid(local: usize) -> u32 {
    virtio_spi(local) + 32
}

/// Raw access to host-physical memory, provided by the arch. Core only ever passes ranges it
/// translated through the owning partition's map ([`Owner::translate`]).
pub trait GuestMemory {
    fn read(&mut self, pa: HostPhys, buf: &mut [u8]);
    fn write(&mut self, pa: HostPhys, data: &[u8]);
    /// Copies `len` bytes from `src` to `dst` (ranges of two partitions, or one: never overlapping
    /// in a way that matters, a guest that overlaps its own buffers gets its own bytes mixed).
    fn copy(&mut self, dst: HostPhys, src: HostPhys, len: usize);

    fn read_u16(&mut self, pa: HostPhys) -> u16 {
        let mut b = [0; 2];
        self.read(pa, &mut b);
        u16::from_le_bytes(b)
    }
    fn read_u64(&mut self, pa: HostPhys) -> u64 {
        let mut b = [0; 8];
        self.read(pa, &mut b);
        u64::from_le_bytes(b)
    }
}

/// The partition a device belongs to: where its memory is.
#[derive(Clone, Copy)]
pub struct Owner<'a>(pub &'a PartitionConfig);

impl Owner<'_> {
    /// Host address of `[addr, addr + len)`, if that lies wholly in one of the owner's memory
    /// regions (not a channel, not a device).
    pub fn translate(&self, addr: u64, len: u64) -> Option<HostPhys> {
        self.0.translate(GuestPhys(addr), len)
    }
}
