//! Policy of the list registers through which partitions get their interrupts, the same for
//! GICv2 and GICv3 (`gic::v2`, `gic::v3` carry it out): what to do when an interrupt is
//! ready whose INTID a list register already holds.

/// What to do with a deliverable interrupt whose INTID a list register already holds (two list
/// registers must never hold one INTID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Make that list register pending again (both software: active-and-pending is fine), and
    /// ask it for a maintenance interrupt when the guest ends it: the virtual GIC then knows the
    /// interrupt is in the guest's hands and lets further raises wait for that end instead of
    /// interrupting the guest's CPU for each ([`VirtualGic::watch`]).
    ///
    /// [`VirtualGic::watch`]: tantalum_core::vgic::VirtualGic::watch
    AddPending,
    /// Put the new one in its place: a hardware-linked interrupt over a software one only
    /// pending (one delivery of both, and the guest's EOI still ends the physical interrupt).
    Replace,
    /// Leave it in the virtual GIC for later: merging would lose a hardware link (the physical
    /// interrupt would stay active for good) or make a hardware entry pending-and-active.
    /// `eoi_maintenance`: ask for a maintenance interrupt when the guest ends the one there.
    Defer { eoi_maintenance: bool },
}

pub fn merge(existing_hw: bool, existing_active: bool, new_hw: bool) -> Merge {
    match (existing_hw, new_hw) {
        (false, false) => Merge::AddPending,
        (false, true) if !existing_active => Merge::Replace,
        (false, true) => Merge::Defer { eoi_maintenance: true },
        (true, _) => Merge::Defer { eoi_maintenance: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hardware_link_is_never_merged_away() {
        assert_eq!(merge(false, false, false), Merge::AddPending);
        assert_eq!(merge(false, true, false), Merge::AddPending, "software: active-and-pending");
        assert_eq!(merge(false, false, true), Merge::Replace);
        assert_eq!(merge(false, true, true), Merge::Defer { eoi_maintenance: true });
        assert_eq!(merge(true, false, false), Merge::Defer { eoi_maintenance: false });
        assert_eq!(merge(true, true, false), Merge::Defer { eoi_maintenance: false });
    }
}
