//! Which vCPU each of a partition's channel doorbells goes to, where no virtual interrupt
//! controller routes them (x86_64: `HYP_INTERRUPT_TARGET` sets it; on aarch64 the virtual GIC's
//! `GICD_IROUTER` / `ITARGETSR` do, [`crate::vgic::VirtualGic::spi_target`]). Shared by the
//! partition's CPUs: any CPU ringing a doorbell reads it, the partition's vCPUs set it.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU8, Ordering};

use crate::config::MAX_CHANNELS_PER_PARTITION;
use crate::vplatform::doorbell_intid;

/// The target vCPU of each doorbell (by the partition's local channel number).
#[derive(Debug)]
pub struct DoorbellTargets([AtomicU8; MAX_CHANNELS_PER_PARTITION]);

impl Default for DoorbellTargets {
    fn default() -> Self {
        Self::new()
    }
}

impl DoorbellTargets {
    /// Every doorbell to vCPU 0.
    pub const fn new() -> Self {
        Self([const { AtomicU8::new(0) }; MAX_CHANNELS_PER_PARTITION])
    }

    /// The local channel number of doorbell `intid`, if it is one.
    fn channel(intid: u32) -> Option<usize> {
        let local = intid.checked_sub(doorbell_intid(0))? as usize;
        (local < MAX_CHANNELS_PER_PARTITION).then_some(local)
    }

    /// The vCPU doorbell `intid` goes to: vCPU 0 until routed (and for anything not a doorbell).
    pub fn of(&self, intid: u32) -> usize {
        Self::channel(intid).map_or(0, |c| usize::from(self.0[c].load(Ordering::Acquire)))
    }

    /// Routes doorbell `intid` to `vcpu`; returns the vCPU it went to before, `None` (and nothing
    /// changes) if `intid` is not a doorbell number or `vcpu` is beyond any partition's.
    /// Whether the partition has that channel and that vCPU is core's check, before.
    pub fn set(&self, intid: u32, vcpu: usize) -> Option<usize> {
        let c = Self::channel(intid)?;
        let vcpu = u8::try_from(vcpu).ok()?;
        Some(usize::from(self.0[c].swap(vcpu, Ordering::AcqRel)))
    }

    /// Every doorbell back to vCPU 0 (a restart).
    pub fn reset(&self) {
        for t in &self.0 {
            t.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_doorbells_and_nothing_else() {
        let t = DoorbellTargets::new();
        let first = doorbell_intid(0);
        let last = doorbell_intid(MAX_CHANNELS_PER_PARTITION - 1);
        assert_eq!(t.of(first), 0);
        assert_eq!(t.set(first, 1), Some(0));
        assert_eq!(t.set(first, 3), Some(1));
        assert_eq!(t.of(first), 3);
        assert_eq!(t.set(last, 2), Some(0));
        assert_eq!(t.of(last), 2);
        // Not doorbells: below, above, far above; a vCPU beyond u8.
        for bad in [0, first - 1, last + 1, u32::MAX] {
            assert_eq!(t.set(bad, 1), None, "{bad}");
            assert_eq!(t.of(bad), 0, "{bad}");
        }
        assert_eq!(t.set(first, 256), None);
        assert_eq!(t.of(first), 3);
        t.reset();
        assert_eq!((t.of(first), t.of(last)), (0, 0));
    }
}
