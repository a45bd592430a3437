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

/// A GICv2 SGI is pending separately per sender (`GICD_SPENDSGIR`/`CPENDSGIR`, a bit per
/// sending CPU): from each state (the set of senders it is pending from), held in the virtual
/// distributor or in list registers (one per sender, with its CPUID), each write leads to the
/// set the architecture gives, read back in `SPENDSGIR` and `CPENDSGIR` alike.
mod per_sender_sgis {
    use super::super::{Access, Frame, Listed, VirtualGic};

    const SGI: u32 = 7;
    /// `GICD_SPENDSGIR`/`CPENDSGIR` word holding SGI 7's byte, and the byte's shift in it.
    const SPENDSGIR: u64 = 0xf24;
    const CPENDSGIR: u64 = 0xf14;
    const SHIFT: u32 = 24;

    #[derive(Clone, Copy, Debug)]
    enum Write {
        /// `GICD_SGIR` from this vCPU, SGI 7 to vCPU 0.
        SentBy(usize),
        SetPending(u8),
        ClearPending(u8),
        /// `GICD_ISPENDR0`/`ICPENDR0` with SGI 7's bit: ignored for SGIs on a GICv2.
        Ispendr,
        Icpendr,
    }
    use Write::*;

    /// (pending from these senders, write, pending from these after). Three vCPUs: bits 3-7 name
    /// CPUs the partition does not have.
    const TABLE: [(u8, Write, u8); 14] = [
        (0b000, SentBy(1), 0b010),
        (0b010, SentBy(1), 0b010),
        (0b010, SentBy(2), 0b110),
        (0b001, SentBy(0), 0b001),
        (0b101, SetPending(0b010), 0b111),
        (0b000, SetPending(0b101), 0b101),
        (0b111, ClearPending(0b010), 0b101),
        (0b101, ClearPending(0b010), 0b101),
        (0b010, ClearPending(0b111), 0b000),
        (0b000, SetPending(0b1111_1000), 0b000),
        (0b011, ClearPending(0b1111_1000), 0b011),
        (0b100, Ispendr, 0b100),
        (0b100, Icpendr, 0b100),
        (0b000, Ispendr, 0b000),
    ];

    fn access(
        gic: &mut VirtualGic,
        vcpu: usize,
        offset: u64,
        write: Option<u64>,
        listed: &mut [Listed],
    ) -> u64 {
        gic.access_listed(vcpu, Frame::Distributor, Access { offset, size: 4, write }, listed)
    }

    fn write(gic: &mut VirtualGic, w: Write, listed: &mut [Listed]) {
        let byte = |senders: u8| Some(u64::from(senders) << SHIFT);
        match w {
            SentBy(vcpu) => {
                access(gic, vcpu, 0xf00, Some((1 << 16) | u64::from(SGI)), &mut []);
            }
            SetPending(s) => {
                access(gic, 0, SPENDSGIR, byte(s), listed);
            }
            ClearPending(s) => {
                access(gic, 0, CPENDSGIR, byte(s), listed);
            }
            Ispendr => {
                access(gic, 0, 0x200, Some(1 << SGI), listed);
            }
            Icpendr => {
                access(gic, 0, 0x280, Some(1 << SGI), listed);
            }
        }
    }

    /// The senders vCPU 0 reads SGI 7 pending from, checking both registers and `ISPENDR0` agree.
    fn senders(gic: &mut VirtualGic, listed: &mut [Listed]) -> u8 {
        let set = (access(gic, 0, SPENDSGIR, None, listed) >> SHIFT) as u8;
        let clear = (access(gic, 0, CPENDSGIR, None, listed) >> SHIFT) as u8;
        let any = access(gic, 0, 0x200, None, listed) & (1 << SGI) != 0;
        assert_eq!(set, clear, "SPENDSGIR and CPENDSGIR read alike");
        assert_eq!(any, set != 0, "ISPENDR0 reads pending from any sender");
        set
    }

    fn gic() -> VirtualGic {
        let mut gic = VirtualGic::for_version(2, 3, &[]);
        access(&mut gic, 0, 0x000, Some(1), &mut []); // group 0 on
        access(&mut gic, 0, 0x100, Some(1 << SGI), &mut []);
        gic
    }

    #[test]
    fn every_write_from_every_sender_set_as_the_architecture_says() {
        for in_list_registers in [false, true] {
            for (from, w, to) in TABLE {
                // SGIR sends land in the distributor; the list register merge is the arch's.
                if in_list_registers && matches!(w, SentBy(_)) {
                    continue;
                }
                let what = format!("from {from:#05b}, {w:?}, in list registers {in_list_registers}");
                let mut gic = gic();
                let mut listed: Vec<Listed> = Vec::new();
                if in_list_registers {
                    let entry = |source: u8| Listed {
                        lr: source,
                        intid: SGI,
                        pending: true,
                        priority: 0xa0,
                        source,
                        ..Listed::default()
                    };
                    listed = (0..3).filter(|s| from & (1 << s) != 0).map(entry).collect();
                } else {
                    write(&mut gic, SetPending(from), &mut []);
                }
                assert_eq!(senders(&mut gic, &mut listed), from, "{what}: set-up");
                write(&mut gic, w, &mut listed);
                assert_eq!(senders(&mut gic, &mut listed), to, "{what}");
                for e in listed.iter().filter(|e| e.pending) {
                    let held = (access(&mut gic, 0, SPENDSGIR, None, &mut []) >> SHIFT) as u8;
                    assert_eq!(held & (1 << e.source), 0, "{what}: pending twice from {}", e.source);
                }
            }
        }
    }

    /// Pending from three senders: three deliveries, each with its sender (GICC_IAR's CPUID),
    /// the lowest first; a GICv3 keeps no senders.
    #[test]
    fn each_sender_is_delivered_once_with_its_cpuid() {
        let mut gic = gic();
        for sender in [2, 0, 1, 2] {
            write(&mut gic, SentBy(sender), &mut []);
        }
        let taken: Vec<(u32, u8)> =
            core::iter::from_fn(|| gic.take_deliverable(0)).map(|d| (d.intid, d.source)).collect();
        assert_eq!(taken, [(SGI, 0), (SGI, 1), (SGI, 2)]);
        assert_eq!(senders(&mut gic, &mut []), 0);
        // One taken and not loaded (a list register merge deferred it): back from its sender.
        write(&mut gic, SentBy(1), &mut []);
        let d = gic.take_deliverable(0).unwrap();
        gic.put_back(0, &d);
        assert_eq!(senders(&mut gic, &mut []), 0b010);
        // GICv3: ICC_SGI1R_EL1 from any vCPU makes the one SGI pending; no sender is kept.
        let mut v3 = VirtualGic::new(3, &[]);
        let sgi_frame = |offset: u64| Access { offset: 0x1_0000 + offset, size: 4, write: Some(1 << SGI) };
        v3.access(0, Frame::Redistributor(0), sgi_frame(0x080)); // IGROUPR0: group 1
        v3.access(0, Frame::Redistributor(0), sgi_frame(0x100)); // ISENABLER0
        v3.access(0, Frame::Distributor, Access { offset: 0, size: 4, write: Some(2) }); // group 1 on
        v3.set_pending(0, SGI);
        v3.set_pending(0, SGI);
        let taken: Vec<u8> = core::iter::from_fn(|| v3.take_deliverable(0)).map(|d| d.source).collect();
        assert_eq!(taken, [0], "one delivery");
    }
}
