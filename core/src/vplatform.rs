//! A partition's virtual platform: where its virtual devices sit and which interrupts they use.
//! The build tool writes these into each guest device tree; the hypervisor emulates them there.
#![forbid(unsafe_code)]

use crate::addr::GuestPhys;
use crate::config::{Board, Gic};
use crate::vgic::{Frame, GICD_SIZE};

/// First SPI number used for channel doorbells; a partition's channel `n` (its local number, in
/// tree order) rings SPI `DOORBELL_SPI_BASE + n` (INTID + 32). Chosen above the SPIs of QEMU
/// virt's devices (0..47) so passed-through devices keep their numbers.
pub const DOORBELL_SPI_BASE: u32 = 64;

/// Doorbell SPI of a partition's channel number `local` (0-based).
pub const fn doorbell_spi(local: usize) -> u32 {
    DOORBELL_SPI_BASE + local as u32
}

/// Guest-physical start of a partition's channel doorbell pages: a store to page `n` rings the
/// peer of its channel `n` (the same as `HYP_CHANNEL_NOTIFY(n)`), so that code without
/// hypercalls (Linux user space mapping `/dev/mem`) can ring. Nothing is mapped there: every
/// access traps. On QEMU virt this lies in the unused gap after the virtio-mmio slots.
pub const DOORBELL_WINDOW: u64 = 0x0b00_0000;
/// Bytes of one doorbell page.
pub const DOORBELL_PAGE: u64 = 0x1000;

/// Guest-physical address of the doorbell page of a partition's channel `local`.
pub const fn doorbell_page(local: usize) -> u64 {
    DOORBELL_WINDOW + local as u64 * DOORBELL_PAGE
}

/// Size of one GICv3 redistributor frame pair (RD_base + SGI_base) per vCPU.
pub const GICR_STRIDE: u64 = 0x2_0000;

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
    let gic = board.gic.as_ref()?;
    let a = addr.as_u64();
    let gicd = gic.distributor.start.as_u64();
    let gicd_size = if gic.v2.is_some() { GICD_V2_SIZE } else { GICD_SIZE };
    if (gicd..gicd + gicd_size).contains(&a) {
        return Some((Frame::Distributor, a - gicd));
    }
    if gic.v2.is_some() {
        return None; // The CPU interface is the hardware's GICV, mapped in stage 2.
    }
    let offset = a.checked_sub(gic.redistributors.start.as_u64())?;
    let vcpu = (offset / GICR_STRIDE) as usize;
    (vcpu < vcpus).then_some((Frame::Redistributor(vcpu), offset % GICR_STRIDE))
}

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

/// The end of the highest guest-physical range the hypervisor emulates for a partition with
/// `vcpus` vCPUs and `channels` channels (virtual GIC, virtual UART, doorbell pages): its
/// stage-2 address space must reach that far, so that accesses there fault to the hypervisor.
pub fn emulated_end(board: &Board, vcpus: usize, channels: usize) -> u64 {
    let gic = board.gic.as_ref().map_or(0, |g| {
        gic_guest_frames(g, vcpus).iter().map(|&(start, size)| start.saturating_add(size)).max().unwrap_or(0)
    });
    let uart = crate::config::VIRTUAL_UART_BASE + crate::config::VIRTUAL_UART_SIZE;
    gic.max(uart).max(doorbell_page(channels))
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
        Board { gic: Some(crate::test_support::qemu_virt_gic()), ..Board::default() }
    }

    #[test]
    fn emulated_ranges_end_at_the_highest_frame() {
        // QEMU virt: the doorbell window (0x0b000000) lies above the GIC and the UART.
        assert_eq!(emulated_end(&qemu_virt_gic(), 2, 0), DOORBELL_WINDOW);
        assert_eq!(emulated_end(&qemu_virt_gic(), 2, 3), DOORBELL_WINDOW + 3 * DOORBELL_PAGE);
        let mut high = qemu_virt_gic();
        high.gic.as_mut().unwrap().redistributors = HostRange::new(HostPhys(0x1_0000_0000), 0x10_0000);
        assert_eq!(emulated_end(&high, 4, 1), 0x1_0000_0000 + 4 * GICR_STRIDE);
    }

    #[test]
    fn gicv2_frames() {
        let board = Board { gic: Some(crate::test_support::qemu_virt_gicv2()), ..Board::default() };
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x800_0f00)), Some((Frame::Distributor, 0xf00)));
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x800_1000)), None, "4 KiB of distributor");
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x801_0000)), None, "the CPU interface is the GICV's");
        let gic = board.gic.as_ref().unwrap();
        assert_eq!(gic_guest_frames(gic, 2), [(0x800_0000, 0x1000), (0x801_0000, 0x1_0000)]);
        assert_eq!(emulated_end(&board, 2, 0), DOORBELL_WINDOW);
    }

    #[test]
    fn gic_frames() {
        let board = qemu_virt_gic();
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x800_0004)), Some((Frame::Distributor, 4)));
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x80c_0008)), Some((Frame::Redistributor(1), 8)));
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x80e_0000)), None, "only the partition's vCPUs");
        assert_eq!(gic_frame(&board, 2, GuestPhys(0x900_0000)), None);
        assert_eq!(gic_frame(&Board::default(), 2, GuestPhys(0x800_0000)), None);
    }
}
