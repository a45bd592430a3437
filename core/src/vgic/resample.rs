//! Hardware-linked level interrupts are re-sampled, not replayed (issue 13): on a GIC the
//! pending state of a level-sensitive interrupt follows its line, so a source silenced while the
//! interrupt waited (disabled by the guest, or not yet taken) is no longer pending. The virtual
//! GIC holds such an interrupt pending on behalf of a physical one the hypervisor acknowledged;
//! [`VirtualGic::resample_held`] asks the arch whether each line is still asserted and drops
//! those that are not, before a guest reads or changes their state.

use super::{Intids, VirtualGic, SPI_BASE};

impl VirtualGic {
    /// Whether the guest configured `intid` edge-triggered (its `ICFGR` bit): the arch makes a
    /// passed-through SPI's physical configuration follow it, so a level line left high after
    /// an edge is not taken again.
    pub fn is_edge(&self, vcpu: usize, intid: u32) -> bool {
        let irq = if intid < SPI_BASE {
            self.redists.get(vcpu).and_then(|r| r.local.get(intid as usize))
        } else {
            self.spis.get((intid - SPI_BASE) as usize)
        };
        irq.is_some_and(|irq| irq.owned && irq.edge)
    }

    /// Whether anything is pending for `vcpu` or among the SPIs: without, [`resample_held`]
    /// has nothing to look at (the caller may skip it).
    ///
    /// [`resample_held`]: VirtualGic::resample_held
    #[inline]
    pub fn any_pending(&self, vcpu: usize) -> bool {
        self.pending_spis != 0 || self.redists.get(vcpu).is_some_and(|r| r.pending != 0)
    }

    /// Drops the hardware-linked interrupts pending for `vcpu` but not delivered yet (its PPIs,
    /// and the SPIs routed to it) whose physical interrupt `asserted` says is no longer pending:
    /// a level-sensitive line that is low now (the arch answers true for an edge-triggered one,
    /// whose event stays latched). Returns them: their physical interrupts are still active, and
    /// the caller deactivates them (on this CPU, which acknowledged them).
    pub fn resample_held(&mut self, vcpu: usize, asserted: impl Fn(u32) -> bool) -> Intids {
        let mut dropped = Intids::default();
        // Only pending interrupts can be held: walk the pending bitmaps' set bits (every GIC
        // access comes here, and usually nothing is pending).
        let local = self.redists.get(vcpu).map_or(0, |r| r.pending);
        for intid in Intids::from_bitmaps(local, self.pending_spis) {
            if intid >= SPI_BASE && self.spi_target(intid) != vcpu {
                continue;
            }
            let Some(irq) = self.irq(vcpu, intid) else { continue };
            if irq.hw && irq.pending && !asserted(intid) {
                (irq.hw, irq.pending) = (false, false);
                self.mark(vcpu, intid, false);
                dropped.insert(intid);
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Access, Frame, Latched, VirtualGic};

    const TIMER: u32 = 27;
    const DEVICE: u32 = 34;

    fn write(gic: &mut VirtualGic, frame: Frame, offset: u64, value: u64) {
        gic.access(0, frame, Access { offset, size: 4, write: Some(value) });
    }

    #[test]
    fn a_held_level_interrupt_whose_line_fell_is_no_longer_pending() {
        let mut gic = VirtualGic::new(2, &[DEVICE]);
        assert_eq!(gic.set_pending_hw(0, TIMER), Latched::Held, "disabled: held");
        assert_eq!(gic.set_pending_hw(0, DEVICE), Latched::Held);
        // Still asserted: kept.
        assert!(gic.resample_held(0, |_| true).is_empty());
        assert!(gic.any_pending(0) && gic.any_pending(1), "the SPI is pending");
        // Another vCPU's resample does not touch them.
        assert!(gic.resample_held(1, |_| false).is_empty());
        // Silenced: both dropped, for the caller to deactivate; enabling delivers nothing.
        assert_eq!(gic.resample_held(0, |_| false), [TIMER, DEVICE]);
        write(&mut gic, Frame::Distributor, 0x0000, 2);
        write(&mut gic, Frame::Redistributor(0), 0x1_0080, 1 << TIMER);
        write(&mut gic, Frame::Redistributor(0), 0x1_0100, 1 << TIMER);
        assert!(!gic.has_deliverable(0));
        assert!(gic.take_hw_pending(0).is_empty(), "no physical interrupt left to end");
    }

    #[test]
    fn the_configuration_the_guest_wrote_is_read_by_the_arch() {
        let mut gic = VirtualGic::new(1, &[DEVICE]);
        write(&mut gic, Frame::Distributor, 0x0c08, 0);
        assert!(!gic.is_edge(0, DEVICE));
        write(&mut gic, Frame::Distributor, 0x0c08, 2 << 4);
        assert!(gic.is_edge(0, DEVICE));
        assert!(!gic.is_edge(0, 35), "not the partition's");
        assert!(gic.is_edge(0, 3), "SGIs are edge");
    }

    #[test]
    fn software_pending_interrupts_are_not_resampled() {
        let mut gic = VirtualGic::new(1, &[DEVICE, 33]);
        assert!(!gic.any_pending(0), "nothing to re-sample");
        gic.set_pending_hw(0, DEVICE);
        gic.set_pending(0, 33);
        gic.set_pending(0, TIMER);
        assert!(gic.resample_held(0, |intid| intid == DEVICE).is_empty(), "the device's line is high");
        assert_eq!(gic.resample_held(0, |_| false), [DEVICE], "hardware-linked only");
        assert_eq!(gic.take_deliverable(0), None, "the rest are disabled, still pending");
    }
}
