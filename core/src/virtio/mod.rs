//! Virtio: the paravirtual device family of Tantalum (docs/virtio.md). The hypervisor implements
//! the virtio-mmio transport (version 2) and moves bytes between partitions' virtqueue buffers,
//! each range checked against its owner's memory map; it does no device emulation beyond that.
#![forbid(unsafe_code)]

use crate::addr::{GuestPhys, HostPhys};
use crate::config::PartitionConfig;

pub mod mmio;
pub mod net;
pub mod queue;
#[cfg(test)]
mod tests;

/// Guest-physical start of a partition's virtio devices: device `n` (its local number, in tree
/// order of the links it is on) is the 4 KiB page at `VIRTIO_WINDOW + n * VIRTIO_PAGE`. Nothing is
/// mapped there: every access traps. On QEMU virt this lies in the unused gap after the doorbell
/// pages (`vplatform::DOORBELL_WINDOW`).
pub const VIRTIO_WINDOW: u64 = 0x0b10_0000;
/// Bytes of one device's register window.
pub const VIRTIO_PAGE: u64 = 0x1000;
/// First SPI number of virtio devices: device `n` interrupts on `VIRTIO_SPI_BASE + n`, above the
/// channel doorbells (64..71).
pub const VIRTIO_SPI_BASE: u32 = 80;
/// Most virtio devices one partition may have.
pub const MAX_VIRTIO_PER_PARTITION: usize = 8;

/// Guest-physical address of a partition's device `local`.
pub const fn virtio_page(local: usize) -> u64 {
    VIRTIO_WINDOW + local as u64 * VIRTIO_PAGE
}

/// SPI number (DT specifier, INTID - 32) of a partition's device `local`.
pub const fn virtio_spi(local: usize) -> u32 {
    VIRTIO_SPI_BASE + local as u32
}

/// INTID of a partition's device `local`.
pub const fn virtio_intid(local: usize) -> u32 {
    virtio_spi(local) + 32
}

/// The end of a partition's virtio window, for `devices` devices: its stage 2 must reach it.
pub const fn virtio_end(devices: usize) -> u64 {
    if devices == 0 {
        0
    } else {
        virtio_page(devices)
    }
}

/// The device `local` and the offset in it, if `addr` lies in the window of a partition with
/// `devices` devices.
pub fn virtio_device(addr: GuestPhys, devices: usize) -> Option<(usize, u64)> {
    let offset = addr.as_u64().checked_sub(VIRTIO_WINDOW)?;
    let local = usize::try_from(offset / VIRTIO_PAGE).ok()?;
    (local < devices).then_some((local, offset % VIRTIO_PAGE))
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
