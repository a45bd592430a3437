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

/// Whether every list register is empty, from `ICH_ELRSR_EL2` (`elrsr`: a bit per list
/// register, set when it is empty; the bits above the implemented ones RES0) and `ICH_VTR_EL2`
/// (`vtr`: ListRegs, the number of list registers less one, in bits [4:0]), without building
/// the mask of the implemented ones: all `n` are empty when `elrsr` plus one is 2^n, which
/// shifted right by ListRegs = n - 1 is 2 (a 32-bit shift takes the low five bits of `vtr`,
/// ListRegs, itself). The interrupt fast path asks at every delivery.
#[inline(always)]
pub fn all_empty(elrsr: u32, vtr: u64) -> bool {
    elrsr.wrapping_add(1).wrapping_shr(vtr as u32) == 2
}

/// The GICv2's `GICH_ELRSR0` with every list register empty, as the CPUs started so far agree
/// on it: `agreed` is their answer (`None`: this is the first), `count` this CPU's number of list
/// registers (1 to 64, from `GICH_VTR`). 0, the fast cases off for good, once a CPU disagrees,
/// or with more than 32 list registers (their second word would count too). Each CPU then sees
/// only a mask of its own list registers, or 0.
pub fn agreed_all_empty(agreed: Option<u32>, count: usize) -> u32 {
    let mine = match count {
        1..=32 => (u64::MAX >> (64 - count)) as u32,
        _ => 0,
    };
    match agreed {
        None => mine,
        Some(seen) if seen == mine => mine,
        Some(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_empty_masks_are_agreed_or_none() {
        assert_eq!(agreed_all_empty(None, 4), 0xf);
        assert_eq!(agreed_all_empty(Some(0xf), 4), 0xf);
        assert_eq!(agreed_all_empty(None, 32), u32::MAX);
        assert_eq!(agreed_all_empty(None, 1), 1);
        // More than 32, or none (a VTR that cannot be): never a mask.
        assert_eq!(agreed_all_empty(None, 33), 0);
        assert_eq!(agreed_all_empty(None, 64), 0);
        assert_eq!(agreed_all_empty(None, 0), 0);
        // One CPU that differs turns it off, and it stays off whatever comes after.
        assert_eq!(agreed_all_empty(Some(0xf), 2), 0);
        assert_eq!(agreed_all_empty(Some(0), 4), 0);
        // Every order of CPUs with 1..=64 list registers: each sees its own mask or 0.
        for first in 1..=64 {
            for second in 1..=64 {
                let after_first = agreed_all_empty(None, first);
                let after_second = agreed_all_empty(Some(after_first), second);
                for (mask, count) in [(after_first, first), (after_second, second)] {
                    assert!(mask == 0 || mask == agreed_all_empty(None, count), "{first}, {second}");
                }
                assert_eq!(after_second != 0, first == second && first <= 32, "{first}, {second}");
            }
        }
    }

    /// For every number of list registers (1 to 16, ListRegs 0 to 15) and every `ICH_ELRSR_EL2`
    /// they can read as, with VTR's other fields set at random: empty exactly when every
    /// implemented list register's bit is set.
    #[test]
    fn all_empty_is_every_implemented_bit_set() {
        let mut random = 0x9e37_79b9_7f4a_7c15u64;
        for list_regs in 0..16u64 {
            let n = list_regs + 1;
            let all = (1u32 << n) - 1;
            for elrsr in 0..=all {
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                let vtr = (random & !0x1f) | list_regs;
                assert_eq!(all_empty(elrsr, vtr), elrsr == all, "{n} list registers, ELRSR {elrsr:#x}");
            }
        }
    }

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
