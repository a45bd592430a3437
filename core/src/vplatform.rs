//! A partition's virtual platform: where its virtual devices sit and which interrupts they use.
//! The build tool writes these into each guest device tree; the hypervisor emulates them there.
#![forbid(unsafe_code)]

use crate::addr::GuestPhys;
use crate::config::Board;
use crate::vgic::{Frame, GICD_SIZE};

pub use tantalum_config::vplatform::{
    doorbell_spi, gic_guest_frames, Emulated, EmulatedPages, DOORBELL_PAGE, DOORBELL_SPI_BASE, EMULATED_PAGE,
    GICD_V2_SIZE, GICR_STRIDE,
};

/// Architectural timer PPIs (as DT specifier numbers: INTID - 16): secure physical,
/// non-secure physical, virtual, hypervisor.
pub const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];

/// The PMU's overflow interrupt PPI (INTID 23), forwarded hardware-linked like the timers'.
pub const PMU_PPI: u32 = 7;

/// GIC maintenance interrupt PPI (INTID 25).
pub const GIC_MAINTENANCE_PPI: u32 = 9;

/// Where a guest-physical address falls in the partition's virtual GIC: the distributor, or
/// the redistributor of one of its vCPUs, with the offset inside that frame. The virtual GIC
/// sits where the board's GIC is, sized for the partition's vCPUs.
pub fn gic_frame(board: &Board, vcpus: usize, addr: GuestPhys) -> Option<(Frame, u64)> {
    GicWindows::new(board, vcpus)?.locate(addr)
}

/// The guest-physical windows of a partition's virtual GIC that the hypervisor emulates,
/// computed once (the arch keeps them per CPU for its trapped-MMIO fast path): the distributor
/// and, on a GICv3, one redistributor per vCPU (a GICv2's CPU interface is the hardware's GICV,
/// mapped in stage 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GicWindows {
    pub distributor: u64,
    pub distributor_size: u64,
    pub redistributors: u64,
    /// 0 on a GICv2.
    pub redistributors_size: u64,
}

impl GicWindows {
    /// The windows of a partition with `vcpus` vCPUs on `board` (`None` without a GIC).
    pub fn new(board: &Board, vcpus: usize) -> Option<Self> {
        let gic = board.gic.as_ref()?;
        let distributor = gic.distributor.start.as_u64();
        let (distributor_size, redistributors_size) = match gic.v2 {
            Some(_) => (GICD_V2_SIZE, 0),
            None => (GICD_SIZE, GICR_STRIDE.saturating_mul(u64::try_from(vcpus).unwrap_or(u64::MAX))),
        };
        // Windows that would wrap are cut at the top of the address space.
        let distributor_size = distributor_size.min(u64::MAX - distributor);
        let redistributors = gic.redistributors.start.as_u64();
        let redistributors_size = redistributors_size.min(u64::MAX - redistributors);
        Some(Self { distributor, distributor_size, redistributors, redistributors_size })
    }

    /// The frame `addr` falls in, and the offset inside it.
    #[inline]
    pub fn locate(&self, addr: GuestPhys) -> Option<(Frame, u64)> {
        let a = addr.as_u64();
        let offset = a.wrapping_sub(self.distributor);
        if offset < self.distributor_size {
            return Some((Frame::Distributor, offset));
        }
        let offset = a.wrapping_sub(self.redistributors);
        (offset < self.redistributors_size)
            .then_some((Frame::Redistributor((offset / GICR_STRIDE) as usize), offset % GICR_STRIDE))
    }
}

/// Bytes of a GICv2 CPU interface (the guest's GICC window, the board's GICV) that the
/// hypervisor may unmap from stage 2 to trap the guest's accesses: the page with `GICC_CTLR`,
/// `PMR`, `IAR` and `EOIR` (`GICC_DIR`, in the next page, stays mapped).
pub const GICC_TRAPPED_SIZE: u64 = 0x1000;

/// Where a guest-physical address falls in the trappable page of a GICv2 partition's CPU
/// interface ([`GICC_TRAPPED_SIZE`]): the offset in it. `None` on a GICv3, or elsewhere.
pub fn gic_cpu_interface(board: &Board, addr: GuestPhys) -> Option<u64> {
    let gicc = board.gic.as_ref()?.v2?.cpu.start.as_u64();
    addr.as_u64().checked_sub(gicc).filter(|&offset| offset < GICC_TRAPPED_SIZE)
}

/// The end of the highest guest-physical range the hypervisor emulates for a partition with
/// `vcpus` vCPUs (virtual GIC) and `used` pages of each [`Emulated`] kind (in [`Emulated::ALL`]
/// order): its stage-2 address space must reach that far, so that accesses there fault to the
/// hypervisor.
pub fn emulated_end(board: &Board, vcpus: usize, used: [usize; 3]) -> u64 {
    let gic = board.gic.as_ref().map_or(0, |g| {
        gic_guest_frames(g, vcpus).iter().map(|&(start, size)| start.saturating_add(size)).max().unwrap_or(0)
    });
    let pages = Emulated::ALL.into_iter().zip(used).filter(|&(_, n)| n > 0);
    pages
        .filter_map(|(what, n)| board.emulated.span(what, n as u64))
        .map(|(start, size)| start.saturating_add(size))
        .fold(gic, u64::max)
}

/// The INTID of partition `id`'s doorbell for its local channel `local`.
pub const fn doorbell_intid(local: usize) -> u32 {
    doorbell_spi(local) + 32
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::addr::{HostPhys, HostRange};

    fn qemu_virt_gic() -> Board {
        Board {
            gic: Some(crate::test_support::qemu_virt_gic()),
            emulated: crate::test_support::qemu_virt_emulated(),
            ..Board::default()
        }
    }

    #[test]
    fn emulated_ranges_end_at_the_highest_frame() {
        // QEMU virt: the GIC's redistributors end at 0x80e0000 for 2 vCPUs; the UART page, the
        // doorbells (0x0b000000) and virtio devices (0x0b100000) lie above, when used.
        let board = qemu_virt_gic();
        assert_eq!(emulated_end(&board, 2, [0, 0, 0]), 0x80e_0000);
        assert_eq!(emulated_end(&board, 2, [1, 0, 0]), 0x900_1000);
        assert_eq!(emulated_end(&board, 2, [1, 3, 0]), 0xb00_3000);
        assert_eq!(emulated_end(&board, 2, [0, 3, 2]), 0xb10_2000);
        let mut high = qemu_virt_gic();
        high.gic.as_mut().unwrap().redistributors = HostRange::new(HostPhys(0x1_0000_0000), 0x10_0000);
        assert_eq!(emulated_end(&high, 4, [1, 1, 1]), 0x1_0000_0000 + 4 * GICR_STRIDE);
        let unplaced = Board { emulated: EmulatedPages::default(), ..qemu_virt_gic() };
        assert_eq!(emulated_end(&unplaced, 2, [1, 8, 8]), 0x80e_0000);
    }

    #[test]
    fn emulated_pages_of_a_window() {
        let pages = crate::test_support::qemu_virt_emulated();
        assert_eq!(pages.page(Emulated::Doorbells, 2), Some(0xb00_2000));
        assert_eq!(pages.page(Emulated::Doorbells, 8), None, "8 channels at most");
        assert_eq!(pages.page(Emulated::VirtualUart, 1), None);
        assert_eq!(pages.find(Emulated::Virtio, GuestPhys(0xb10_1070), 2), Some((1, 0x70)));
        assert_eq!(pages.find(Emulated::Virtio, GuestPhys(0xb10_2000), 2), None, "only the used pages");
        assert_eq!(pages.find(Emulated::Virtio, GuestPhys(0xb0f_fffc), 2), None);
        assert_eq!(pages.find(Emulated::VirtualUart, GuestPhys(0x900_0018), 1), Some((0, 0x18)));
        let top = EmulatedPages { doorbells: Some(GuestPhys(!0xfff)), ..pages };
        assert_eq!(top.span(Emulated::Doorbells, 8), None, "a window that wraps");
        assert_eq!(EmulatedPages::default().page(Emulated::Doorbells, 0), None);
    }

    #[test]
    fn gicv2_frames() {
        let board = Board { gic: Some(crate::test_support::qemu_virt_gicv2()), ..Board::default() };
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x800_0f00)), Some((Frame::Distributor, 0xf00)));
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x800_1000)), None, "4 KiB of distributor");
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x801_0000)), None, "the CPU interface is the GICV's");
        assert_eq!(gic_cpu_interface(&board, GuestPhys(0x801_0004)), Some(4), "GICC_PMR");
        assert_eq!(gic_cpu_interface(&board, GuestPhys(0x801_1000)), None, "GICC_DIR's page stays mapped");
        assert_eq!(gic_cpu_interface(&board, GuestPhys(0x800_fffc)), None);
        assert_eq!(gic_cpu_interface(&qemu_virt_gic(), GuestPhys(0x801_0004)), None, "a GICv3's");
        let gic = board.gic.as_ref().unwrap();
        assert_eq!(gic_guest_frames(gic, 2), [(0x800_0000, 0x1000), (0x801_0000, 0x1_0000)]);
        assert_eq!(emulated_end(&board, 2, [0, 0, 0]), 0x802_0000);
    }

    #[test]
    fn gic_frames() {
        let board = qemu_virt_gic();
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x800_0004)), Some((Frame::Distributor, 4)));
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x80c_0008)), Some((Frame::Redistributor(1), 8)));
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x80e_0000)), None, "only the partition's vCPUs");
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x900_0000)), None);
        assert_eq!(gic_frame(&Board::default(), 2, GuestPhys(0x800_0000)), None);
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x7ff_fffc)), None);
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x80a_0000)), Some((Frame::Redistributor(0), 0)));
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x80d_fffc)), Some((Frame::Redistributor(1), 0x1_fffc)));
    }

    #[test]
    fn gic_windows_at_the_top_of_the_address_space_do_not_wrap() {
        let mut board = qemu_virt_gic();
        let gic = board.gic.as_mut().unwrap();
        gic.distributor = HostRange::new(HostPhys(u64::MAX - 0xffff), 0x1_0000);
        gic.redistributors = HostRange::new(HostPhys(u64::MAX - 0x1_ffff), 0x2_0000);
        let w = GicWindows::new(&board, 4).unwrap();
        assert_eq!(w.distributor_size, 0xffff);
        assert_eq!(w.locate(GuestPhys(3)), None, "no wrap to 0");
        assert_eq!(w.locate(GuestPhys(u64::MAX - 0xffff)), Some((Frame::Distributor, 0)));
    }
}
