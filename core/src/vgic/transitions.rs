//! The virtual GIC against the architecture's table of state transitions (GICv3 and GICv2
//! specifications, the set/clear-pending and set/clear-active registers): from each state
//! (inactive, pending, active, active and pending), held in the virtual distributor or already
//! in a list register, each register write must lead to the state the table gives, as the
//! guest reads it back, and the interrupt must never be pending in both places.

use super::{Access, Frame, Listed, VirtualGic, GICR_SGI_OFFSET};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Inactive,
    Pending,
    Active,
    ActivePending,
}
use State::*;

impl State {
    fn bits(self) -> (bool, bool) {
        match self {
            Inactive => (false, false),
            Pending => (true, false),
            Active => (false, true),
            ActivePending => (true, true),
        }
    }
    fn from_bits(pending: bool, active: bool) -> State {
        match (pending, active) {
            (false, false) => Inactive,
            (true, false) => Pending,
            (false, true) => Active,
            (true, true) => ActivePending,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Write {
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}
use Write::*;

impl Write {
    fn offset(self) -> u64 {
        match self {
            SetPending => 0x0200,
            ClearPending => 0x0280,
            SetActive => 0x0300,
            ClearActive => 0x0380,
        }
    }
}

/// The architecture's transitions: (from, write of the interrupt's bit, to).
const TABLE: [(State, Write, State); 16] = [
    (Inactive, SetPending, Pending),
    (Inactive, ClearPending, Inactive),
    (Inactive, SetActive, Active),
    (Inactive, ClearActive, Inactive),
    (Pending, SetPending, Pending),
    (Pending, ClearPending, Inactive),
    (Pending, SetActive, ActivePending),
    (Pending, ClearActive, Pending),
    (Active, SetPending, ActivePending),
    (Active, ClearPending, Active),
    (Active, SetActive, Active),
    (Active, ClearActive, Inactive),
    (ActivePending, SetPending, ActivePending),
    (ActivePending, ClearPending, Active),
    (ActivePending, SetActive, ActivePending),
    (ActivePending, ClearActive, Pending),
];

/// One front end's view of one interrupt: the frame and offset base of its per-INTID registers.
struct Front {
    gic: VirtualGic,
    frame: Frame,
    base: u64,
    intid: u32,
}

impl Front {
    /// PPI 20 of vCPU 0: in its redistributor's SGI frame on a GICv3, banked in the distributor
    /// on a GICv2.
    fn new(version: u8) -> Front {
        let gic = VirtualGic::for_version(version, 1, &[]);
        let (frame, base) =
            if version == 2 { (Frame::Distributor, 0) } else { (Frame::Redistributor(0), GICR_SGI_OFFSET) };
        Front { gic, frame, base, intid: 20 }
    }

    fn access(&mut self, write: Option<Write>, read: u64, listed: &mut [Listed]) -> u64 {
        let (offset, value) = match write {
            Some(w) => (w.offset(), Some(1u64 << self.intid)),
            None => (read, None),
        };
        let a = Access { offset: self.base + offset, size: 4, write: value };
        self.gic.access_listed(0, self.frame, a, listed)
    }

    fn state(&mut self, listed: &mut [Listed]) -> State {
        let bit = 1u64 << self.intid;
        let pending = self.access(None, 0x0200, listed) & bit != 0;
        let active = self.access(None, 0x0300, listed) & bit != 0;
        State::from_bits(pending, active)
    }
}

#[test]
fn every_register_write_from_every_state_as_the_architecture_says() {
    for version in [3, 2] {
        for in_list_register in [false, true] {
            for (from, write, to) in TABLE {
                let what = format!(
                    "GICv{version}, {from:?} {}, {write:?}",
                    if in_list_register { "in a list register" } else { "in the distributor" }
                );
                let mut front = Front::new(version);
                let (pending, active) = from.bits();
                let mut listed =
                    [Listed { intid: front.intid, pending, active, priority: 0xa0, ..Listed::default() }];
                let listed: &mut [Listed] = if in_list_register { &mut listed } else { &mut [] };
                if !in_list_register {
                    // Put it in `from` through the registers themselves.
                    for (set, w) in [(pending, SetPending), (active, SetActive)] {
                        if set {
                            front.access(Some(w), 0, listed);
                        }
                    }
                }
                assert_eq!(front.state(listed), from, "{what}: set-up");
                front.access(Some(write), 0, listed);
                assert_eq!(front.state(listed), to, "{what}");
                // Never pending twice: in a list register and in the distributor.
                let listed_pending = listed.iter().any(|e| e.pending);
                let irq = front.gic.irq(0, front.intid).map(|i| i.pending).unwrap_or(false);
                assert!(!(listed_pending && irq), "{what}: pending in both places");
            }
        }
    }
}
