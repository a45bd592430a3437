//! The interrupts a vCPU's list registers hold, as its own pending and active registers show
//! them (issue 13 item 1): an interrupt the hypervisor loaded has left the virtual distributor's
//! state for a list register, yet the guest must still read it in `ISPENDR`/`ISACTIVER` (an SGI
//! handler reads its SGI active) and `ICPENDR`/`ICACTIVER` writes must reach it (cancelling a
//! loaded SGI). The arch reads the list registers of the accessing vCPU's CPU into [`Listed`]
//! entries, [`VirtualGic::access_listed`] overlays and updates them, and the arch writes back
//! what changed (ending the physical interrupt of a hardware-linked entry left with no state).
//!
//! Entries name the vCPU whose list register holds them: the accessing vCPU's own, and, for an
//! access to SPIs or to another vCPU's redistributor ([`reaches_other_vcpus`]),
//! those the other vCPUs' CPUs published on request (the arch asks them, and hands their
//! changed entries back to them to write).

use super::offsets::{
    CPENDSGIR, CPENDSGIR_LAST, ICACTIVER, ICACTIVER_LAST, ICPENDR, ICPENDR_LAST, IPRIORITYR, IPRIORITYR_LAST,
    IROUTER, IROUTER_LAST, ISACTIVER, ISACTIVER_LAST, ISPENDR, ISPENDR_LAST, ITARGETSR, ITARGETSR_LAST,
    SPENDSGIR, SPENDSGIR_LAST,
};
use super::{Access, Frame, VirtualGic, GICR_SGI_OFFSET, SPI_BASE};

/// One list register's interrupt, as the arch read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    /// The vCPU whose list register it is.
    pub vcpu: u8,
    /// Which list register (the arch's own index).
    pub lr: u8,
    pub intid: u32,
    pub pending: bool,
    pub active: bool,
    /// Linked to a physical interrupt: a write never makes it pending (the hardware would).
    pub hw: bool,
    /// Its priority (an `IPRIORITYR` write changes a loaded interrupt's too).
    pub priority: u8,
    /// GICv2 SGIs: the sending vCPU (`GICD_CPENDSGIR`/`SPENDSGIR` name it).
    pub source: u8,
}

/// The four registers with a pending or active bit per INTID.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StateRegister {
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl StateRegister {
    /// The register at `offset` of a distributor or SGI frame, and the first INTID it covers.
    #[inline(always)]
    fn at(offset: u64) -> Option<(Self, u32)> {
        let (register, base) = match offset {
            ISPENDR..=ISPENDR_LAST => (Self::SetPending, ISPENDR),
            ICPENDR..=ICPENDR_LAST => (Self::ClearPending, ICPENDR),
            ISACTIVER..=ISACTIVER_LAST => (Self::SetActive, ISACTIVER),
            ICACTIVER..=ICACTIVER_LAST => (Self::ClearActive, ICACTIVER),
            _ => return None,
        };
        Some((register, ((offset - base) / 4 * 32) as u32))
    }
}

/// Whether an access at `offset` of `frame` (a write if `write`) may involve the interrupts list
/// registers hold: a pending or active register, the GICv2 SGI pending registers, or a write to
/// `IPRIORITYR`, `IROUTER` or `ITARGETSR`. For any other, [`VirtualGic::access_listed`] neither
/// reads nor changes its entries, so the arch need not read the list registers (a trap costs
/// less).
pub fn involves_listed(frame: Frame, offset: u64, write: bool) -> bool {
    let offset = match frame {
        Frame::Distributor => offset,
        Frame::Redistributor(_) if offset >= GICR_SGI_OFFSET => offset - GICR_SGI_OFFSET,
        Frame::Redistributor(_) => return false,
    };
    let written = [IPRIORITYR..=IPRIORITYR_LAST, IROUTER..=IROUTER_LAST, ITARGETSR..=ITARGETSR_LAST];
    (write && written.iter().any(|r| r.contains(&offset)))
        || (CPENDSGIR..=SPENDSGIR_LAST).contains(&offset)
        || StateRegister::at(offset & !3).is_some()
}

/// Whether an access by vCPU `vcpu` (of `vcpus`) at `offset` of `frame` reads or writes pending
/// or active state that another vCPU's list registers may hold: SPIs in the distributor, or
/// another vCPU's SGIs and PPIs in its redistributor. The caller then gathers their entries.
#[inline(always)]
pub fn reaches_other_vcpus(vcpus: usize, vcpu: usize, frame: Frame, offset: u64) -> bool {
    if vcpus < 2 {
        return false;
    }
    match frame {
        Frame::Distributor => StateRegister::at(offset & !3).is_some_and(|(_, first)| first >= SPI_BASE),
        Frame::Redistributor(n) => {
            n != vcpu
                && offset >= GICR_SGI_OFFSET
                && StateRegister::at((offset - GICR_SGI_OFFSET) & !3).is_some()
        }
    }
}

impl VirtualGic {
    /// Emulates one access of vCPU `vcpu` like [`VirtualGic::access`], with the interrupts list
    /// registers hold (`listed`): a read of a pending or active register includes theirs, a write
    /// to one applies to them too (the caller writes changed entries back, each in its vCPU's
    /// list register).
    pub fn access_listed(&mut self, vcpu: usize, frame: Frame, access: Access, listed: &mut [Listed]) -> u64 {
        let value = self.access(vcpu, frame, access);
        // Which entries this frame shows: SPIs (any vCPU's) in the distributor; a vCPU's SGIs and
        // PPIs in its redistributor's SGI frame (GICv3), or the accessing vCPU's own in the
        // distributor (GICv2).
        let (offset, private_of) = match frame {
            Frame::Distributor => (access.offset, self.v2().then_some(vcpu)),
            Frame::Redistributor(n) if access.offset >= GICR_SGI_OFFSET => {
                (access.offset - GICR_SGI_OFFSET, Some(n))
            }
            Frame::Redistributor(_) => return value,
        };
        // IPRIORITYR: a loaded interrupt takes its new priority too (it decides which pending
        // one the guest acknowledges first).
        if let (IPRIORITYR..=IPRIORITYR_LAST, Some(_)) = (offset, access.write) {
            let first = (offset - IPRIORITYR) as u32;
            let covered = |e: &Listed| {
                (first..first + u32::from(access.size)).contains(&e.intid)
                    && (e.intid >= SPI_BASE || private_of == Some(usize::from(e.vcpu)))
            };
            for entry in listed.iter_mut().filter(|e| covered(e)) {
                if let Some(irq) = self.irq(usize::from(entry.vcpu), entry.intid) {
                    entry.priority = irq.priority;
                }
            }
            return value;
        }
        // IROUTER (GICv3) or ITARGETSR (GICv2): an SPI routed away from the vCPU whose list
        // register holds it pending goes, pending, to its new target (the caller wakes it). A
        // hardware-linked one stays: its physical interrupt is active on this CPU.
        let routed = match (frame, access.write, self.v2()) {
            (Frame::Distributor, Some(_), false) if (IROUTER..=IROUTER_LAST).contains(&offset) => {
                let intid = ((offset - IROUTER) / 8) as u32;
                Some(intid..intid + 1)
            }
            (Frame::Distributor, Some(_), true) if (ITARGETSR..=ITARGETSR_LAST).contains(&offset) => {
                let first = (offset - ITARGETSR) as u32;
                Some(first..first + u32::from(access.size))
            }
            _ => None,
        };
        if let Some(intids) = routed {
            for entry in listed.iter_mut().filter(|e| intids.contains(&e.intid) && e.intid >= SPI_BASE) {
                if entry.hw || !entry.pending || self.spi_target(entry.intid) == usize::from(entry.vcpu) {
                    continue;
                }
                entry.pending = false;
                if let Some(irq) = self.irq(usize::from(entry.vcpu), entry.intid) {
                    irq.pending = true;
                }
                self.mark(usize::from(entry.vcpu), entry.intid, true);
            }
            return value;
        }
        // GICv2 GICD_CPENDSGIR/SPENDSGIR: a byte per SGI, a bit per sender.
        let sgi_pending = match offset {
            CPENDSGIR..=CPENDSGIR_LAST if self.v2() => Some((false, (offset - CPENDSGIR) as u32)),
            SPENDSGIR..=SPENDSGIR_LAST if self.v2() => Some((true, (offset - SPENDSGIR) as u32)),
            _ => None,
        };
        if let Some((set, first)) = sgi_pending {
            let mut value = value;
            let covered = first..first + u32::from(access.size);
            let ours = |e: &Listed| private_of == Some(usize::from(e.vcpu)) && covered.contains(&e.intid);
            // Each list register holds one sender's SGI (its CPUID): only that sender's bit
            // reads it and reaches it.
            for entry in listed.iter_mut().filter(|e| ours(e) && !e.hw && e.source < 8) {
                let shift = 8 * (entry.intid - first);
                let own = 1u8 << entry.source;
                match access.write.map(|v| (v >> shift) as u8 & own) {
                    None if entry.pending => value |= u64::from(own) << shift,
                    None | Some(0) => {}
                    Some(_) if !set => entry.pending = false,
                    Some(_) => {
                        // Pending from that sender in its list register, not delivered again.
                        entry.pending = true;
                        let owner = usize::from(entry.vcpu);
                        let Some(irq) = self.irq(owner, entry.intid) else { continue };
                        irq.sources &= !own;
                        irq.pending = irq.sources != 0;
                        let still = irq.pending;
                        self.mark(owner, entry.intid, still);
                    }
                }
            }
            return value;
        }
        let Some((register, first)) = StateRegister::at(offset & !3) else { return value };
        let shows = |e: &Listed| {
            let covered = e.intid >= first && e.intid < first + 32;
            covered
                && if e.intid < SPI_BASE {
                    first == 0 && private_of == Some(usize::from(e.vcpu))
                } else {
                    first >= SPI_BASE
                }
        };
        let mut value = value;
        // A GICv2's ISPENDR0/ICPENDR0 ignore writes to SGI bits.
        let v2 = self.v2();
        let v2_sgi = move |e: &Listed| v2 && e.intid < 16;
        for entry in listed.iter_mut().filter(|e| shows(e)) {
            let bit = 1u64 << (entry.intid - first);
            let pending_write_ignored = v2_sgi(entry);
            match (register, access.write) {
                (StateRegister::SetPending | StateRegister::ClearPending, Some(_))
                    if pending_write_ignored => {}
                (StateRegister::SetPending | StateRegister::ClearPending, None) => {
                    value |= if entry.pending { bit } else { 0 };
                }
                (StateRegister::SetActive | StateRegister::ClearActive, None) => {
                    value |= if entry.active { bit } else { 0 };
                }
                (_, Some(v)) if v & bit == 0 => {}
                (StateRegister::ClearPending, Some(_)) => entry.pending = false,
                (StateRegister::ClearActive, Some(_)) => entry.active = false,
                // A hardware-linked entry is never made pending by software (it would be
                // active-and-pending, which a hardware entry cannot be); the virtual
                // distributor keeps the pending state and delivers it after this one.
                (StateRegister::SetPending, Some(_)) if !entry.hw => entry.pending = true,
                (StateRegister::SetActive, Some(_)) => entry.active = true,
                (StateRegister::SetPending, Some(_)) => {}
            }
        }
        // A cleared pending or active state that the write also cleared in the virtual
        // distributor needs nothing more; a set one that a list register now holds must not
        // be delivered twice.
        if let (StateRegister::SetPending, Some(v)) = (register, access.write) {
            for entry in
                listed.iter().filter(|e| shows(e) && !e.hw && !v2_sgi(e) && v & (1 << (e.intid - first)) != 0)
            {
                let owner = usize::from(entry.vcpu);
                if let Some(irq) = self.irq(owner, entry.intid) {
                    irq.pending = false;
                }
                self.mark(owner, entry.intid, false);
            }
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Access, Frame, VirtualGic, GICR_SGI_OFFSET};
    use super::{involves_listed, reaches_other_vcpus, Listed};

    const SGI_FRAME: u64 = GICR_SGI_OFFSET;

    fn entry(intid: u32, pending: bool, active: bool, hw: bool) -> Listed {
        Listed { vcpu: 0, lr: 0, intid, pending, active, hw, priority: 0xa0, source: 0 }
    }

    fn read(gic: &mut VirtualGic, frame: Frame, offset: u64, listed: &mut [Listed]) -> u64 {
        gic.access_listed(0, frame, Access { offset, size: 4, write: None }, listed)
    }

    fn write(gic: &mut VirtualGic, frame: Frame, offset: u64, value: u64, listed: &mut [Listed]) {
        gic.access_listed(0, frame, Access { offset, size: 4, write: Some(value) }, listed);
    }

    #[test]
    fn an_sgi_being_handled_reads_active_and_a_loaded_one_pending() {
        let mut gic = VirtualGic::new(2, &[]);
        let r = Frame::Redistributor(0);
        let mut listed = [entry(1, false, true, false), entry(2, true, false, false)];
        assert_eq!(read(&mut gic, r, SGI_FRAME + 0x0300, &mut listed), 1 << 1, "ISACTIVER0");
        assert_eq!(read(&mut gic, r, SGI_FRAME + 0x0380, &mut listed), 1 << 1, "ICACTIVER0");
        assert_eq!(read(&mut gic, r, SGI_FRAME + 0x0200, &mut listed), 1 << 2, "ISPENDR0");
        assert_eq!(read(&mut gic, r, SGI_FRAME + 0x0280, &mut listed), 1 << 2, "ICPENDR0");
        // Another vCPU's redistributor, the RD_base frame and the distributor do not show them.
        assert_eq!(read(&mut gic, Frame::Redistributor(1), SGI_FRAME + 0x0300, &mut listed), 0);
        assert_eq!(read(&mut gic, r, 0x0300, &mut listed), 0);
        assert_eq!(read(&mut gic, Frame::Distributor, 0x0300, &mut listed), 0);
    }

    #[test]
    fn icpendr_cancels_a_loaded_sgi_and_icactiver_ends_one() {
        let mut gic = VirtualGic::new(1, &[]);
        let r = Frame::Redistributor(0);
        let mut listed = [entry(3, true, false, false), entry(4, false, true, true)];
        write(&mut gic, r, SGI_FRAME + 0x0280, 1 << 3, &mut listed);
        assert_eq!(listed[0], entry(3, false, false, false));
        write(&mut gic, r, SGI_FRAME + 0x0380, 1 << 4, &mut listed);
        assert_eq!(listed[1], entry(4, false, false, true));
        assert_eq!(read(&mut gic, r, SGI_FRAME + 0x0200, &mut listed), 0);
        // Bits of other INTIDs leave them alone.
        let mut listed = [entry(5, true, true, false)];
        write(&mut gic, r, SGI_FRAME + 0x0280, 1 << 6, &mut listed);
        write(&mut gic, r, SGI_FRAME + 0x0380, 1 << 6, &mut listed);
        assert_eq!(listed[0], entry(5, true, true, false));
    }

    #[test]
    fn ispendr_on_a_loaded_interrupt_goes_to_its_list_register_once() {
        let mut gic = VirtualGic::new(1, &[]);
        let r = Frame::Redistributor(0);
        write(&mut gic, r, SGI_FRAME + 0x0100, 1 << 5, &mut []);
        let mut listed = [entry(5, false, true, false)];
        write(&mut gic, r, SGI_FRAME + 0x0200, 1 << 5, &mut listed);
        assert_eq!(listed[0], entry(5, true, true, false), "active and pending");
        assert!(!gic.has_deliverable(0), "not a second delivery from the distributor");
        // A hardware-linked one keeps its pending state in the distributor instead.
        let mut listed = [entry(5, false, true, true)];
        write(&mut gic, r, SGI_FRAME + 0x0200, 1 << 5, &mut listed);
        assert_eq!(listed[0], entry(5, false, true, true));
        assert_eq!(read(&mut gic, r, SGI_FRAME + 0x0200, &mut []), 1 << 5);
    }

    #[test]
    fn other_vcpus_entries_show_where_their_frames_do() {
        let mut gic = VirtualGic::new(2, &[40]);
        let d = Frame::Distributor;
        assert!(reaches_other_vcpus(2, 0, d, 0x0304), "ISACTIVER1: SPIs");
        assert!(!reaches_other_vcpus(2, 0, d, 0x0300), "ISACTIVER0: RAZ on a GICv3 distributor");
        assert!(!reaches_other_vcpus(2, 0, d, 0x0104), "ISENABLER: not list-register state");
        assert!(reaches_other_vcpus(2, 0, Frame::Redistributor(1), SGI_FRAME + 0x0200));
        assert!(!reaches_other_vcpus(2, 0, Frame::Redistributor(0), SGI_FRAME + 0x0200), "its own");
        assert!(!reaches_other_vcpus(1, 0, d, 0x0304), "no other vCPU");
        // vCPU 1 handles SPI 40 and has SGI 2 pending; vCPU 0 reads and writes them.
        let other = |intid, pending, active| Listed { vcpu: 1, ..entry(intid, pending, active, false) };
        let mut listed = [other(40, false, true), other(2, true, false)];
        assert_eq!(read(&mut gic, d, 0x0304, &mut listed), 1 << 8, "SPI 40 active on vCPU 1");
        let r1 = Frame::Redistributor(1);
        assert_eq!(read(&mut gic, r1, SGI_FRAME + 0x0200, &mut listed), 1 << 2, "its SGI 2, in its frame");
        assert_eq!(
            read(&mut gic, Frame::Redistributor(0), SGI_FRAME + 0x0200, &mut listed),
            0,
            "not vCPU 0's"
        );
        write(&mut gic, r1, SGI_FRAME + 0x0280, 1 << 2, &mut listed);
        write(&mut gic, d, 0x0384, 1 << 8, &mut listed);
        assert_eq!(listed, [other(40, false, false), other(2, false, false)], "both cancelled");
        // On a GICv2 the distributor shows the accessing vCPU's private entries only.
        let mut v2 = VirtualGic::for_version(2, 2, &[40]);
        assert_eq!(read(&mut v2, d, 0x0200, &mut [other(2, true, false)]), 0);
        assert_eq!(read(&mut v2, d, 0x0200, &mut [entry(2, true, false, false)]), 1 << 2);
    }

    #[test]
    fn spis_show_in_the_distributor_and_private_ones_only_on_gicv2() {
        let mut gic = VirtualGic::new(1, &[40]);
        let mut listed = [entry(40, false, true, false), entry(27, true, false, true)];
        let d = Frame::Distributor;
        assert_eq!(read(&mut gic, d, 0x0304, &mut listed), 1 << 8, "ISACTIVER1: SPI 40");
        assert_eq!(read(&mut gic, d, 0x0200, &mut listed), 0, "GICv3: GICD_ISPENDR0 is RAZ");
        let mut v2 = VirtualGic::for_version(2, 1, &[40]);
        assert_eq!(read(&mut v2, d, 0x0200, &mut listed), 1 << 27, "GICv2: the banked PPI");
        assert_eq!(read(&mut v2, d, 0x0304, &mut listed), 1 << 8);
    }

    #[test]
    fn ipriorityr_reaches_loaded_interrupts_of_its_frame_only() {
        let mut gic = VirtualGic::new(2, &[40]);
        let r = Frame::Redistributor(0);
        let mut listed =
            [entry(6, true, false, false), entry(7, true, false, false), entry(40, true, false, false)];
        // IPRIORITYR1 of vCPU 0's SGI frame, bytes 6 and 7: SGI 7 to 0x40, SGI 6 keeps 0xa0.
        let a = Access { offset: SGI_FRAME + 0x0404, size: 4, write: Some(0x40a0_0000) };
        gic.access_listed(0, r, a, &mut listed);
        assert_eq!((listed[0].priority, listed[1].priority, listed[2].priority), (0xa0, 0x40, 0xa0));
        assert_eq!(read(&mut gic, r, SGI_FRAME + 0x0404, &mut listed) >> 24, 0x40, "reads it back");
        // A byte write to the distributor: SPI 40 only.
        let a = Access { offset: 0x0400 + 40, size: 1, write: Some(0x10) };
        gic.access_listed(0, Frame::Distributor, a, &mut listed);
        assert_eq!((listed[1].priority, listed[2].priority), (0x40, 0x10));
        // Another vCPU's redistributor does not reach this vCPU's list registers.
        let a = Access { offset: SGI_FRAME + 0x0404, size: 4, write: Some(0x2020_2020) };
        gic.access_listed(0, Frame::Redistributor(1), a, &mut listed);
        assert_eq!(listed[1].priority, 0x40);
    }

    #[test]
    fn an_spi_routed_away_takes_its_pending_state_to_the_new_target() {
        let mut gic = VirtualGic::new(2, &[40, 41, 42]);
        write(&mut gic, Frame::Distributor, 0x0000, 2, &mut []);
        write(&mut gic, Frame::Distributor, 0x0084, 1 << 8 | 1 << 9 | 1 << 10, &mut []);
        write(&mut gic, Frame::Distributor, 0x0104, 1 << 8 | 1 << 9 | 1 << 10, &mut []);
        // vCPU 0 holds SPI 40 pending, 41 active and pending, 42 hardware-linked.
        let mut listed =
            [entry(40, true, false, false), entry(41, true, true, false), entry(42, true, false, true)];
        for intid in [40u64, 41, 42] {
            write(&mut gic, Frame::Distributor, 0x6000 + 8 * intid, 1, &mut listed);
        }
        assert_eq!(listed[0], entry(40, false, false, false), "left the list register");
        assert_eq!(listed[1], entry(41, false, true, false), "the active part stays");
        assert_eq!(listed[2], entry(42, true, false, true), "hardware-linked: stays");
        assert_eq!(gic.take_deliverable(1).map(|d| d.intid), Some(40));
        assert_eq!(gic.take_deliverable(1).map(|d| d.intid), Some(41));
        assert_eq!(gic.take_deliverable(1), None);
        assert_eq!(gic.take_deliverable(0), None, "nothing delivered twice");
        // Routed to where it already is: untouched.
        let mut listed = [entry(40, true, false, false)];
        write(&mut gic, Frame::Distributor, 0x6000 + 8 * 40, 0, &mut listed);
        write(&mut gic, Frame::Distributor, 0x6000 + 8 * 40, 0, &mut listed);
        assert_eq!(listed[0], entry(40, true, false, false));
    }

    #[test]
    fn gicv2_itargetsr_moves_a_loaded_spi_too() {
        let mut gic = VirtualGic::for_version(2, 2, &[40]);
        write(&mut gic, Frame::Distributor, 0x0000, 3, &mut []);
        write(&mut gic, Frame::Distributor, 0x0104, 1 << 8, &mut []);
        let mut listed = [entry(40, true, false, false)];
        gic.access_listed(
            0,
            Frame::Distributor,
            Access { offset: 0x0800 + 40, size: 1, write: Some(0b10) },
            &mut listed,
        );
        assert!(!listed[0].pending);
        assert_eq!(gic.take_deliverable(1).map(|d| d.intid), Some(40));
    }

    #[test]
    fn gicv2_sgi_pending_state_goes_through_spendsgir_and_cpendsgir() {
        let mut gic = VirtualGic::for_version(2, 2, &[]);
        let d = Frame::Distributor;
        write(&mut gic, d, 0x0000, 1, &mut []);
        write(&mut gic, d, 0x0100, 1 << 5, &mut []);
        // ISPENDR0/ICPENDR0 ignore SGI bits, in the distributor and in a list register.
        write(&mut gic, d, 0x0200, 1 << 5, &mut []);
        assert_eq!(read(&mut gic, d, 0x0200, &mut []), 0);
        let mut listed = [Listed { source: 1, ..entry(5, true, false, false) }];
        write(&mut gic, d, 0x0280, 1 << 5, &mut listed);
        assert!(listed[0].pending, "ICPENDR0 does not cancel a loaded SGI on a GICv2");
        // CPENDSGIR: only the sender's bit clears it.
        write(&mut gic, d, 0x0f14, 1 << 8, &mut listed);
        assert!(listed[0].pending, "vCPU 0's bit: not the sender");
        assert_eq!(read(&mut gic, d, 0x0f14, &mut listed), 0b10 << 8, "reads the sender's bit");
        write(&mut gic, d, 0x0f14, 0b10 << 8, &mut listed);
        assert!(!listed[0].pending, "vCPU 1's bit cancels it");
        // SPENDSGIR: pending from sender vCPU 1, delivered with that source.
        write(&mut gic, d, 0x0f24, 0b10 << 8, &mut []);
        assert_eq!(read(&mut gic, d, 0x0f24, &mut []), 0b10 << 8);
        let taken = gic.take_deliverable(0).unwrap();
        assert_eq!((taken.intid, taken.source), (5, 1));
        // On a loaded SGI: its list register goes pending, not a second delivery.
        let mut listed = [entry(5, false, true, false)];
        write(&mut gic, d, 0x0f24, 1 << 8, &mut listed);
        assert!(listed[0].pending);
        assert!(!gic.has_deliverable(0));
        // A GICv3 distributor has no such registers.
        let mut v3 = VirtualGic::new(1, &[]);
        write(&mut v3, d, 0x0f24, 1 << 8, &mut []);
        assert_eq!(read(&mut v3, d, 0x0f24, &mut []), 0);
    }

    /// Where `involves_listed` says no, `access_listed` neither reads nor changes list register
    /// entries: the same value with and without them, the entries untouched.
    #[test]
    fn accesses_that_do_not_involve_the_list_registers_ignore_them() {
        let offsets = (0..0x1000u64).step_by(4).chain((0x6000..0x6200).step_by(4)).chain([0xffe8]);
        for frame in [Frame::Distributor, Frame::Redistributor(0)] {
            let frame_offsets: alloc::vec::Vec<u64> = match frame {
                Frame::Distributor => offsets.clone().collect(),
                _ => offsets.clone().chain(offsets.clone().map(|o| o + SGI_FRAME)).collect(),
            };
            for (&offset, version) in frame_offsets.iter().flat_map(|o| [(o, 2), (o, 3)]) {
                for write in [None, Some(0xffff_ffffu64)] {
                    if involves_listed(frame, offset, write.is_some()) {
                        continue;
                    }
                    let mut with = VirtualGic::for_version(version, 2, &[40, 41]);
                    let mut without = with.clone();
                    let entries = [
                        entry(1, true, true, false),
                        entry(27, false, true, true),
                        entry(40, true, false, false),
                    ];
                    let mut listed = entries;
                    let access = Access { offset, size: 4, write };
                    let a = with.access_listed(0, frame, access, &mut listed);
                    let b = without.access_listed(0, frame, access, &mut []);
                    assert_eq!((a, listed), (b, entries), "{frame:?} {offset:#x} {write:?}");
                }
            }
        }
        // The state registers and IPRIORITYR writes do.
        assert!(involves_listed(Frame::Distributor, 0x0204, false));
        assert!(involves_listed(Frame::Redistributor(1), SGI_FRAME + 0x0380, true));
        assert!(involves_listed(Frame::Distributor, 0x0420, true));
        assert!(!involves_listed(Frame::Distributor, 0x0420, false));
        assert!(!involves_listed(Frame::Redistributor(0), 0x0204, false), "RD_base frame");
        assert!(involves_listed(Frame::Distributor, 0x6100, true), "IROUTER32 write");
        assert!(involves_listed(Frame::Distributor, 0x0f14, false), "GICv2 CPENDSGIR");
    }
}
