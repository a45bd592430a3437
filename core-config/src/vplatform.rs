//! The parts of a partition's virtual platform that the configuration rules need: the emulated
//! pages' windows, the doorbell SPIs and the virtual GIC's frames. `tantalum_core::vplatform`
//! re-exports them beside what only the running hypervisor needs.
#![forbid(unsafe_code)]

use crate::addr::GuestPhys;
use crate::config::Gic;
use crate::vgic::{GICD_SIZE, GICR_SGI_OFFSET};

/// First SPI number used for channel doorbells; a partition's channel `n` (its local number, in
/// tree order) rings SPI `DOORBELL_SPI_BASE + n` (INTID + 32). Chosen above the SPIs of QEMU
/// virt's devices (0..47) so passed-through devices keep their numbers.
pub const DOORBELL_SPI_BASE: u32 = 64;

/// Doorbell SPI of a partition's channel number `local` (0-based).
#[inline]
pub const fn doorbell_spi(local: usize) -> u32 {
    DOORBELL_SPI_BASE + local as u32
}

/// Bytes of one doorbell page.
pub const DOORBELL_PAGE: u64 = 0x1000;

/// The pages the hypervisor emulates for each partition besides its virtual GIC. Nothing is
/// mapped there: every access traps. The board places each kind's window in guest-physical
/// space (root properties, [`Emulated::property`]); a partition uses a prefix of each window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulated {
    /// The virtual PL011 (`virtual-uart;`): one page.
    VirtualUart,
    /// The channel doorbell pages: a store to page `n` rings the peer of the partition's channel
    /// `n` (as `HYP_CHANNEL_NOTIFY(n)` does), so that code without hypercalls (Linux user space
    /// mapping `/dev/mem`) can ring.
    Doorbells,
    /// The virtio-mmio devices: page `n` is the partition's virtio device `n`.
    Virtio,
}

impl Emulated {
    pub const ALL: [Emulated; 3] = [Emulated::VirtualUart, Emulated::Doorbells, Emulated::Virtio];

    /// The board's root property that places the window (two cells: a guest-physical address).
    pub const fn property(self) -> &'static str {
        match self {
            Emulated::VirtualUart => "tantalum,virtual-uart",
            Emulated::Doorbells => "tantalum,doorbells",
            Emulated::Virtio => "tantalum,virtio",
        }
    }

    /// Pages in the window: the most one partition can use.
    pub const fn pages(self) -> u64 {
        match self {
            Emulated::VirtualUart => 1,
            Emulated::Doorbells => crate::config::MAX_CHANNELS_PER_PARTITION as u64,
            Emulated::Virtio => crate::virtio::MAX_VIRTIO_PER_PARTITION as u64,
        }
    }
}

impl core::fmt::Display for Emulated {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Emulated::VirtualUart => "the virtual UART",
            Emulated::Doorbells => "the channel doorbell pages",
            Emulated::Virtio => "the virtio devices",
        })
    }
}

/// Where the board puts each partition's emulated pages: the guest-physical base of each
/// window, the same in every partition (`None`: the board places none, and no partition may
/// use that kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EmulatedPages {
    pub virtual_uart: Option<GuestPhys>,
    pub doorbells: Option<GuestPhys>,
    pub virtio: Option<GuestPhys>,
}

/// Bytes of one emulated page (UART, doorbell, virtio device).
pub const EMULATED_PAGE: u64 = 0x1000;

impl EmulatedPages {
    /// The base of `what`'s window, if the board places it.
    #[inline]
    pub const fn base(&self, what: Emulated) -> Option<GuestPhys> {
        match what {
            Emulated::VirtualUart => self.virtual_uart,
            Emulated::Doorbells => self.doorbells,
            Emulated::Virtio => self.virtio,
        }
    }

    pub fn set(&mut self, what: Emulated, base: GuestPhys) {
        match what {
            Emulated::VirtualUart => self.virtual_uart = Some(base),
            Emulated::Doorbells => self.doorbells = Some(base),
            Emulated::Virtio => self.virtio = Some(base),
        }
    }

    /// `(start, size)` of the first `used` pages of `what` (the whole window: `what.pages()`),
    /// if the board places it and the range does not wrap.
    pub fn span(&self, what: Emulated, used: u64) -> Option<(u64, u64)> {
        let start = self.base(what)?.as_u64();
        let size = used.checked_mul(EMULATED_PAGE)?;
        start.checked_add(size).map(|_| (start, size))
    }

    /// Guest-physical address of page `n` of `what`.
    #[inline]
    pub fn page(&self, what: Emulated, n: usize) -> Option<u64> {
        let n = u64::try_from(n).ok().filter(|&n| n < what.pages())?;
        self.base(what)?.as_u64().checked_add(n * EMULATED_PAGE)
    }

    /// The page (among the first `used`) of `what` that `addr` falls in, and the offset in it.
    #[inline]
    pub fn find(&self, what: Emulated, addr: GuestPhys, used: usize) -> Option<(usize, u64)> {
        let offset = addr.as_u64().checked_sub(self.base(what)?.as_u64())?;
        let page = usize::try_from(offset / EMULATED_PAGE).ok()?;
        (page < used).then_some((page, offset % EMULATED_PAGE))
    }
}

/// Size of one GICv3 redistributor frame pair (RD_base + SGI_base) per vCPU.
pub const GICR_STRIDE: u64 = 2 * GICR_SGI_OFFSET;

/// Bytes of the distributor a partition sees on a GICv2 (4 KiB: GICD_SGIR and the
/// identification registers lie in it).
pub const GICD_V2_SIZE: u64 = 0x1000;

/// The guest-physical ranges of a partition's virtual GIC, `(start, size)`: the distributor and
/// one redistributor per vCPU (GICv3), or the distributor and the CPU interface (GICv2: the
/// board's GICV, mapped in stage 2 at the GICC address).
pub fn gic_guest_frames(gic: &Gic, vcpus: usize) -> [(u64, u64); 2] {
    match gic.v2 {
        Some(v2) => [(gic.distributor.start.0, GICD_V2_SIZE), (v2.cpu.start.0, v2.vcpu.size)],
        None => {
            let vcpus = u64::try_from(vcpus.max(1)).unwrap_or(u64::MAX);
            [
                (gic.distributor.start.0, GICD_SIZE),
                (gic.redistributors.start.0, GICR_STRIDE.saturating_mul(vcpus)),
            ]
        }
    }
}
