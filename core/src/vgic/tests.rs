use super::*;

fn read(gic: &mut VirtualGic, frame: Frame, offset: u64) -> u64 {
    gic.access(0, frame, Access { offset, size: 4, write: None })
}

fn write(gic: &mut VirtualGic, frame: Frame, offset: u64, value: u64) {
    gic.access(0, frame, Access { offset, size: 4, write: Some(value) });
}

const D: Frame = Frame::Distributor;
/// Doorbell INTID used in the tests (SPI 64).
const BELL: u32 = 96;

/// What a guest driver does to use an SPI: enable group 1, group/priority/enable the SPI.
fn enable_spi(gic: &mut VirtualGic, intid: u32) {
    write(gic, D, 0x0000, CTLR_ENABLE_GRP1 as u64);
    let (reg, bit) = (u64::from(intid / 32) * 4, intid % 32);
    let groups = read(gic, D, 0x0080 + reg);
    write(gic, D, 0x0080 + reg, groups | 1 << bit);
    write(gic, D, 0x0100 + reg, 1 << bit);
}

#[test]
fn identification_registers() {
    let mut gic = VirtualGic::new(2, &[BELL]);
    assert_eq!(read(&mut gic, D, 0xffe8), 0x3b);
    assert_eq!(read(&mut gic, D, 0x0004) & 0x1f, 3);
    assert_ne!(read(&mut gic, D, 0x0000) & u64::from(CTLR_ARE), 0);
    let typer0 = gic.access(0, Frame::Redistributor(0), Access { offset: 0x8, size: 8, write: None });
    let typer1 = gic.access(0, Frame::Redistributor(1), Access { offset: 0x8, size: 8, write: None });
    assert_eq!(typer0 & (1 << 4), 0, "vCPU 0 is not the last redistributor");
    assert_eq!(typer1 >> 32, 1);
    assert_ne!(typer1 & (1 << 4), 0);
}

#[test]
fn waker_follows_processor_sleep() {
    let mut gic = VirtualGic::new(1, &[]);
    let r = Frame::Redistributor(0);
    assert_eq!(read(&mut gic, r, 0x14), 0b110);
    write(&mut gic, r, 0x14, 0);
    assert_eq!(read(&mut gic, r, 0x14), 0);
}

#[test]
fn doorbell_is_delivered_once_enabled() {
    let mut gic = VirtualGic::new(1, &[BELL]);
    assert!(!gic.set_pending(0, BELL), "disabled: held pending, nobody to wake");
    assert_eq!(gic.take_deliverable(0), None, "not enabled yet: stays pending");
    enable_spi(&mut gic, BELL);
    let d = gic.take_deliverable(0).unwrap();
    assert_eq!((d.intid, d.group1), (BELL, true));
    assert_eq!(gic.take_deliverable(0), None, "delivered once");
}

#[test]
fn a_flood_of_raises_wakes_the_target_once_per_delivery() {
    let mut gic = VirtualGic::new(1, &[BELL]);
    enable_spi(&mut gic, BELL);
    assert!(gic.set_pending(0, BELL), "the first raise wakes the target");
    for _ in 0..1000 {
        assert!(!gic.set_pending(0, BELL), "already pending: no second wake-up");
    }
    assert_eq!(gic.take_deliverable(0).map(|d| d.intid), Some(BELL));
    assert_eq!(gic.take_deliverable(0), None, "a flood is one interrupt");
    assert!(gic.set_pending(0, BELL), "taken: the next raise wakes it again");
}

#[test]
fn a_raise_while_a_watching_list_register_holds_it_wakes_nobody_and_is_not_lost() {
    let mut gic = VirtualGic::new(2, &[BELL]);
    enable_spi(&mut gic, BELL);
    assert!(gic.set_pending(0, BELL));
    assert_eq!(gic.take_deliverable(0).map(|d| d.intid), Some(BELL), "now in a list register");
    // Not visible across CPUs: the next raise must wake the target to look.
    assert!(gic.set_pending(0, BELL));
    // The target merged it into its list register, which will call it back at the guest's end.
    assert_eq!(gic.take_deliverable(0).map(|d| d.intid), Some(BELL));
    gic.watch(0, BELL);
    for _ in 0..1000 {
        assert!(!gic.set_pending(0, BELL), "watched: a flood costs the target nothing");
    }
    assert!(!gic.has_deliverable(1), "another vCPU's end does not end it");
    gic.end_watch(1, BELL);
    assert!(!gic.set_pending(0, BELL), "still watched by vCPU 0");
    // The guest ended it: the raises meanwhile are one more delivery, then raises wake again.
    gic.end_watch(0, BELL);
    assert_eq!(gic.take_deliverable(0).map(|d| d.intid), Some(BELL), "not lost");
    assert_eq!(gic.take_deliverable(0), None, "a flood is one interrupt");
    assert!(gic.set_pending(0, BELL), "unwatched: a raise wakes the target");
}

#[test]
fn a_watch_ends_with_the_vcpus_list_registers_and_follows_the_route() {
    let mut gic = VirtualGic::new(2, &[BELL]);
    enable_spi(&mut gic, BELL);
    gic.watch(0, BELL);
    gic.watch(0, 3);
    assert!(!gic.set_pending(0, BELL));
    assert_eq!(gic.take_deliverable(0).map(|d| d.intid), Some(BELL));
    // Routed elsewhere: that vCPU's list registers do not hold it, so it is woken.
    let irouter = 0x6000 + 8 * u64::from(BELL);
    gic.access(0, D, Access { offset: irouter, size: 8, write: Some(1) });
    assert!(gic.set_pending(1, BELL), "the new target is woken");
    assert_eq!(gic.take_deliverable(1).map(|d| d.intid), Some(BELL));
    // vCPU 0 restarts with empty list registers: nothing of it is watched any more.
    gic.access(0, D, Access { offset: irouter, size: 8, write: Some(0) });
    gic.end_watches(0);
    assert!(gic.set_pending(0, BELL), "unwatched after its list registers were emptied");
    let sgi_frame = Frame::Redistributor(0);
    gic.access(0, sgi_frame, Access { offset: GICR_SGI_OFFSET + 0x100, size: 4, write: Some(1 << 3) });
    assert!(gic.set_pending(0, 3), "the SGI's watch ended too");
}

#[test]
fn a_route_out_of_range_goes_to_vcpu_0_and_reads_back_as_written() {
    let mut gic = VirtualGic::new(2, &[BELL]);
    enable_spi(&mut gic, BELL);
    let irouter = 0x6000 + 8 * u64::from(BELL);
    // Affinity 0 names vCPU 1; written as two 32-bit halves (the high one an Aff3).
    gic.access(0, D, Access { offset: irouter, size: 4, write: Some(1) });
    gic.access(0, D, Access { offset: irouter + 4, size: 4, write: Some(0x7) });
    assert_eq!(gic.access(0, D, Access { offset: irouter, size: 8, write: None }), 0x7_0000_0001);
    assert!(gic.set_pending(1, BELL));
    assert_eq!(gic.take_deliverable(0), None, "routed to vCPU 1");
    assert_eq!(gic.take_deliverable(1).map(|d| d.intid), Some(BELL));
    // Affinity 0 of 5 in a partition of two vCPUs: vCPU 0 takes it; the register keeps 5.
    gic.access(0, D, Access { offset: irouter, size: 8, write: Some(5) });
    assert_eq!(gic.access(0, D, Access { offset: irouter, size: 8, write: None }), 5);
    assert_eq!(gic.deliver_hw_at_once(1, BELL), None, "not routed to vCPU 1");
    assert_eq!(gic.deliver_hw_at_once(0, BELL).map(|d| d.intid), Some(BELL));
    gic.set_pending(0, BELL);
    assert_eq!(gic.take_deliverable(1), None);
    assert_eq!(gic.take_deliverable(0).map(|d| d.intid), Some(BELL));
}

#[test]
fn unowned_interrupts_read_as_zero_and_ignore_writes() {
    let mut gic = VirtualGic::new(1, &[BELL]);
    enable_spi(&mut gic, 40);
    assert_eq!(read(&mut gic, D, 0x0100 + 4), 0);
    assert!(!gic.set_pending(0, 40));
    assert!(!gic.set_pending(0, 1000));
    assert_eq!(gic.take_deliverable(0), None);
    // The distributor's first registers (SGIs/PPIs) are banked in the redistributors: RAZ/WI.
    write(&mut gic, D, 0x0100, u64::MAX);
    assert_eq!(read(&mut gic, D, 0x0100), 0);
    assert!(!gic.owns(40));
    assert!(gic.owns(BELL));
}

#[test]
fn ppis_live_in_the_redistributor() {
    let mut gic = VirtualGic::new(2, &[]);
    let sgi = |v| Frame::Redistributor(v);
    write(&mut gic, D, 0, u64::from(CTLR_ENABLE_GRP1));
    write(&mut gic, sgi(1), GICR_SGI_OFFSET + 0x80, 1 << 27);
    write(&mut gic, sgi(1), GICR_SGI_OFFSET + 0x100, 1 << 27);
    assert_eq!(read(&mut gic, sgi(1), GICR_SGI_OFFSET + 0x100), 1 << 27);
    assert_eq!(read(&mut gic, sgi(0), GICR_SGI_OFFSET + 0x100), 0, "banked per vCPU");
    gic.set_pending(1, 27);
    assert_eq!(gic.take_deliverable(0), None);
    assert_eq!(gic.take_deliverable(1).map(|d| d.intid), Some(27));
}

#[test]
fn highest_priority_first_and_routing() {
    let mut gic = VirtualGic::new(2, &[BELL, BELL + 1]);
    enable_spi(&mut gic, BELL);
    enable_spi(&mut gic, BELL + 1);
    // Priority bytes: lower value wins.
    gic.access(0, D, Access { offset: 0x400 + u64::from(BELL + 1), size: 1, write: Some(0x10) });
    gic.set_pending(0, BELL);
    gic.set_pending(0, BELL + 1);
    assert_eq!(gic.take_deliverable(0).map(|d| d.intid), Some(BELL + 1));
    assert_eq!(gic.take_deliverable(0).map(|d| d.intid), Some(BELL));
    // Route BELL to vCPU 1.
    gic.access(0, D, Access { offset: 0x6000 + 8 * u64::from(BELL), size: 8, write: Some(1) });
    gic.set_pending(0, BELL);
    assert_eq!(gic.take_deliverable(0), None);
    assert_eq!(gic.take_deliverable(1).map(|d| d.intid), Some(BELL));
}

#[test]
fn group_enable_gates_delivery_and_reset_forgets() {
    let mut gic = VirtualGic::new(1, &[BELL]);
    enable_spi(&mut gic, BELL);
    write(&mut gic, D, 0, 0);
    gic.set_pending(0, BELL);
    assert!(!gic.has_deliverable(0));
    write(&mut gic, D, 0, u64::from(CTLR_ENABLE_GRP1));
    assert!(gic.has_deliverable(0));
    gic.reset();
    assert!(!gic.has_deliverable(0));
    assert!(gic.owns(BELL));
}

#[test]
fn hostile_accesses_never_panic() {
    let mut gic = VirtualGic::new(3, &[BELL]);
    for frame in [D, Frame::Redistributor(0), Frame::Redistributor(2), Frame::Redistributor(99)] {
        for offset in (0..0x2_0000u64).step_by(4).chain([u64::MAX - 3, 0xffff_fffc]) {
            for size in [1u8, 2, 4, 8, 0, 255] {
                gic.access(0, frame, Access { offset, size, write: Some(u64::MAX) });
                gic.access(0, frame, Access { offset, size, write: None });
            }
        }
    }
    while gic.take_deliverable(0).is_some() {}
}

#[test]
fn hardware_linked_interrupts_need_the_guest_to_enable_them() {
    let mut gic = VirtualGic::new(1, &[]);
    write(&mut gic, D, 0, u64::from(CTLR_ENABLE_GRP1));
    // The virtual timer (PPI 27) fires before the guest enabled it: held pending, not
    // deliverable; its physical interrupt stays active (no storm).
    assert_eq!(gic.set_pending_hw(0, 27), Latched::Held);
    assert!(!gic.has_deliverable(0));
    let sgi = Frame::Redistributor(0);
    assert_eq!(read(&mut gic, sgi, GICR_SGI_OFFSET + 0x200) & (1 << 27), 1 << 27, "ISPENDR0 shows it");
    write(&mut gic, sgi, GICR_SGI_OFFSET + 0x80, 1 << 27);
    write(&mut gic, sgi, GICR_SGI_OFFSET + 0x100, 1 << 27);
    let d = gic.take_deliverable(0).unwrap();
    assert!(d.hw && d.intid == 27, "delivered, hardware-linked, once enabled");
    assert_eq!(gic.set_pending_hw(0, 27), Latched::Ready);
    assert!(gic.take_deliverable(0).unwrap().hw);
    assert_eq!(gic.set_pending_hw(0, 1000), Latched::NotOwned);
    // A software set_pending of the same INTID later is not linked.
    gic.set_pending(0, 27);
    assert!(!gic.take_deliverable(0).unwrap().hw);
}

#[test]
fn hardware_linked_interrupts_not_yet_delivered_are_handed_back() {
    const DISK: u32 = 47;
    let mut gic = VirtualGic::new(2, &[DISK]);
    write(&mut gic, D, 0, u64::from(CTLR_ENABLE_GRP1));
    write(&mut gic, D, 0x100 + 4, 1 << (DISK - 32));
    for vcpu in 0..2 {
        let sgi = Frame::Redistributor(vcpu);
        write(&mut gic, sgi, GICR_SGI_OFFSET + 0x80, 1 << 27);
        write(&mut gic, sgi, GICR_SGI_OFFSET + 0x100, 1 << 27);
    }
    for (vcpu, intid) in [(0, 27), (1, 27), (0, DISK)] {
        assert_eq!(gic.set_pending_hw(vcpu, intid), Latched::Ready);
    }
    // vCPU 1 leaves: its timer only; the SPI is routed to (acknowledged on the CPU of) vCPU 0.
    assert_eq!(gic.take_hw_pending(1), [27]);
    assert_eq!(gic.take_hw_pending(0), [27, DISK]);
    assert!(!gic.has_deliverable(0) && !gic.has_deliverable(1));
    // Routed to vCPU 1, the SPI is vCPU 1's to hand back.
    let irouter = 0x6000 + 8 * u64::from(DISK);
    gic.access(0, D, Access { offset: irouter, size: 8, write: Some(1) });
    assert_eq!(gic.set_pending_hw(1, DISK), Latched::Ready);
    assert_eq!(gic.take_hw_pending(0), []);
    assert_eq!(gic.take_hw_pending(1), [DISK]);
    // Delivered ones are the list registers' business: nothing to hand back.
    assert_eq!(gic.set_pending_hw(0, 27), Latched::Ready);
    assert!(gic.take_deliverable(0).unwrap().hw);
    assert_eq!(gic.take_hw_pending(0), []);
}

#[test]
fn gicv2_sgis_targets_and_banking() {
    let mut gic = VirtualGic::for_version(2, 2, &[BELL]);
    let w = |gic: &mut VirtualGic, vcpu, offset, value| {
        gic.access(vcpu, D, Access { offset, size: 4, write: Some(value) });
    };
    let r = |gic: &mut VirtualGic, vcpu, offset| gic.access(vcpu, D, Access { offset, size: 4, write: None });
    assert_eq!(r(&mut gic, 0, 0xfe8), 0x2b, "PIDR2 says GICv2");
    assert_eq!(r(&mut gic, 0, 0x004) >> 5 & 7, 1, "CPUNumber: 2 vCPUs");
    w(&mut gic, 0, 0x000, 1); // group 0 on
                              // SGIs and PPIs are banked per vCPU in the distributor: vCPU 1 enables its SGI 3 only.
    w(&mut gic, 1, 0x100, 1 << 3);
    assert_eq!(r(&mut gic, 1, 0x100) & (1 << 3), 1 << 3);
    assert_eq!(r(&mut gic, 0, 0x100) & (1 << 3), 0);
    assert_eq!(r(&mut gic, 1, 0x800), 0x0202_0202, "ITARGETSR0 reads as the reader's own bit");
    // vCPU 0 sends SGI 3 to vCPU 1 through GICD_SGIR: it arrives with its source.
    w(&mut gic, 0, 0xf00, (1 << 17) | 3);
    let d = gic.take_deliverable(1).expect("SGI 3 for vCPU 1");
    assert_eq!((d.intid, d.source), (3, 0));
    assert!(!gic.has_deliverable(0));
    // "All but self" from vCPU 1 reaches vCPU 0, which has not enabled it yet.
    w(&mut gic, 1, 0xf00, (1 << 24) | 3);
    assert!(!gic.has_deliverable(0));
    w(&mut gic, 0, 0x100, 1 << 3);
    assert_eq!(gic.take_deliverable(0).map(|d| d.source), Some(1));
    // "Only self", and the reserved filter 3 that reaches nobody.
    w(&mut gic, 1, 0xf00, (2 << 24) | (1 << 16) | 3);
    assert!(!gic.has_deliverable(0), "the target list is ignored");
    assert_eq!(gic.take_deliverable(1).map(|d| d.source), Some(1));
    w(&mut gic, 0, 0xf00, (3 << 24) | (3 << 16) | 3);
    assert!(!gic.has_deliverable(0) && !gic.has_deliverable(1));
    // An SPI goes to the lowest vCPU its ITARGETSR byte names.
    let (reg, byte) = (u64::from(BELL / 4) * 4, (BELL % 4) * 8);
    w(&mut gic, 0, 0x800 + reg, 0b10 << byte);
    assert_eq!(gic.spi_target(BELL), 1);
    assert_eq!(r(&mut gic, 0, 0x800 + reg) >> byte & 0xff, 0b10);
    // With one vCPU the ITARGETSRs are RAZ/WI, as on a uniprocessor GICv2.
    let mut one = VirtualGic::for_version(2, 1, &[BELL]);
    assert_eq!(r(&mut one, 0, 0x800), 0);
    w(&mut one, 0, 0x800 + reg, u64::MAX);
    assert_eq!((r(&mut one, 0, 0x800 + reg), one.spi_target(BELL)), (0, 0));
}

#[test]
fn routing_writes_name_the_spis_they_route() {
    let gic = VirtualGic::new(2, &[40]);
    let w = |offset, size| Access { offset, size, write: Some(1) };
    assert_eq!(gic.routing_written(D, w(0x6000 + 8 * 40, 8)), 40..41, "IROUTER40");
    assert_eq!(gic.routing_written(D, w(0x6000 + 8 * 40 + 4, 4)), 40..41, "its upper half");
    assert_eq!(gic.routing_written(D, w(0x6000, 8)), 32..32, "IROUTER0 routes no SPI");
    assert_eq!(gic.routing_written(D, Access { write: None, ..w(0x6000 + 8 * 40, 8) }), 0..0, "a read");
    assert_eq!(gic.routing_written(D, w(0x0800 + 40, 4)), 0..0, "ITARGETSR on a GICv3");
    assert_eq!(gic.routing_written(Frame::Redistributor(0), w(0x6000 + 8 * 40, 8)), 0..0);
    assert_eq!(gic.trigger_written(D, w(0x0c00 + 4 * 2, 4)), 32..48, "ICFGR2: INTIDs 32-47");
    assert_eq!(gic.trigger_written(D, Access { write: None, ..w(0x0c00 + 8, 4) }), 0..0, "a read");
    assert_eq!(gic.trigger_written(D, w(0x0100, 4)), 0..0, "ISENABLER0");
    let v2 = VirtualGic::for_version(2, 2, &[40]);
    assert_eq!(v2.routing_written(D, w(0x0800 + 40, 4)), 40..44, "four ITARGETSR bytes");
    assert_eq!(v2.routing_written(D, w(0x6000 + 8 * 40, 8)), 0..0, "no IROUTER on a GICv2");
}

#[test]
fn device_lines_read_level_sensitive_until_the_guest_says_otherwise() {
    const RTC: u32 = 34;
    let mut gic = VirtualGic::new(1, &[RTC, BELL]);
    gic.set_level_at_reset(RTC);
    // ICFGR2 covers INTIDs 32-47: bit 2n+1 of INTID 32+n is edge.
    let icfgr = |gic: &mut VirtualGic| read(gic, D, 0x0c00 + 4 * 2);
    assert_eq!(icfgr(&mut gic) & (2 << (2 * (RTC - 32))), 0, "the RTC's line is level");
    let bell_icfgr = read(&mut gic, D, 0x0c00 + 4 * (BELL / 16) as u64);
    assert_ne!(bell_icfgr & (2 << (2 * (BELL % 16))), 0, "a doorbell is edge");
    write(&mut gic, D, 0x0c00 + 4 * 2, 2 << (2 * (RTC - 32)));
    assert!(gic.is_edge(0, RTC), "the guest may make it edge");
    gic.reset();
    assert!(!gic.is_edge(0, RTC), "level again after a restart");
}

/// States for the interrupt path's shortcuts: every combination of a few guest setups and
/// pending interrupts on a two-vCPU GIC owning a device SPI (47) and a doorbell.
fn interrupt_path_states() -> Vec<VirtualGic> {
    const DISK: u32 = 47;
    type Step = fn(&mut VirtualGic);
    let steps: [Step; 8] = [
        |g| write(g, D, 0, u64::from(CTLR_ENABLE_GRP1)),
        |g| {
            let sgi = Frame::Redistributor(0);
            write(g, sgi, GICR_SGI_OFFSET + 0x80, 1 << 27 | 1 << 3);
            write(g, sgi, GICR_SGI_OFFSET + 0x100, 1 << 27 | 1 << 3);
        },
        |g| {
            write(g, D, 0x80 + 4, 1 << (DISK - 32));
            write(g, D, 0x100 + 4, 1 << (DISK - 32));
        },
        |g| enable_spi(g, BELL),
        |g| {
            let irouter = 0x6000 + 8 * u64::from(DISK);
            g.access(0, D, Access { offset: irouter, size: 8, write: Some(1) });
        },
        |g| {
            g.set_pending(0, BELL);
        },
        |g| {
            g.set_pending(0, 3);
        },
        |g| {
            g.set_pending_hw(0, 30);
        },
    ];
    (0..1u32 << steps.len())
        .map(|set| {
            let mut g = VirtualGic::new(2, &[DISK, BELL]);
            steps.iter().enumerate().filter(|(i, _)| set & (1 << i) != 0).for_each(|(_, step)| step(&mut g));
            g
        })
        .collect()
}

#[test]
fn a_physical_interrupt_delivered_at_once_is_what_latching_and_taking_it_gives() {
    let (mut at_once, mut latched) = (0, 0);
    for gic in interrupt_path_states() {
        for (vcpu, intid) in [0, 1].into_iter().flat_map(|v| [27, 30, 47, BELL, 3, 1000].map(|i| (v, i))) {
            let mut slow = gic.clone();
            let latch = slow.set_pending_hw(vcpu, intid);
            let Some(d) = gic.deliver_hw_at_once(vcpu, intid) else {
                latched += 1;
                continue;
            };
            at_once += 1;
            assert_eq!(latch, Latched::Ready, "{intid} on vCPU {vcpu}");
            assert_eq!(slow.take_next(vcpu), (Some(d), false), "{intid} on vCPU {vcpu}: the best, alone");
            assert_eq!(format!("{slow:?}"), format!("{gic:?}"), "the same state after both");
        }
    }
    assert!(at_once > 0 && latched > 0, "both cases reached: {at_once} / {latched}");
}

#[test]
fn taking_the_next_interrupt_says_what_has_deliverable_would_after_it() {
    for mut gic in interrupt_path_states() {
        for vcpu in [0, 1] {
            gic.set_pending_hw(vcpu, 27);
            gic.set_pending(vcpu, 5);
            loop {
                let mut plain = gic.clone();
                let (taken, more) = gic.take_next(vcpu);
                assert_eq!(taken, plain.take_deliverable(vcpu));
                assert_eq!(more, plain.has_deliverable(vcpu));
                if taken.is_none() {
                    break;
                }
            }
        }
    }
}

#[test]
fn taking_a_gicv2_sgi_pending_from_two_senders_says_one_is_left() {
    let mut gic = VirtualGic::for_version(2, 2, &[BELL]);
    let w = |gic: &mut VirtualGic, vcpu, offset, value| {
        gic.access(vcpu, D, Access { offset, size: 4, write: Some(value) });
    };
    w(&mut gic, 0, 0x000, 1);
    w(&mut gic, 0, 0x100, 1 << 5);
    // Both vCPUs send SGI 5 to vCPU 0 (GICD_SGIR, target list: CPU interface 0).
    w(&mut gic, 0, 0xf00, (1 << 16) | 5);
    w(&mut gic, 1, 0xf00, (1 << 16) | 5);
    let mut sources = Vec::new();
    loop {
        let mut plain = gic.clone();
        let (taken, more) = gic.take_next(0);
        assert_eq!(taken, plain.take_deliverable(0));
        assert_eq!(more, plain.has_deliverable(0));
        let Some(d) = taken else { break };
        sources.push((d.intid, d.source, more));
    }
    assert_eq!(sources, [(5, 0, true), (5, 1, false)], "one delivery per sender, the second still ready");
}

/// A virtual GIC of `version` with two vCPUs, owning a device SPI and a doorbell, after up to
/// ten random steps of a guest and its devices: groups, enables, routing, raises (doorbells,
/// SGIs, hardware-linked lines) and deliveries.
fn random_state(random: &mut crate::test_random::Random, version: u8) -> VirtualGic {
    const DISK: u32 = 47;
    const INTIDS: [u32; 7] = [3, 5, 27, 30, DISK, BELL, 1000];
    let mut gic = VirtualGic::for_version(version, 2, &[DISK, BELL]);
    let sgi_frame = |vcpu: usize| match version {
        2 => (Frame::Distributor, 0),
        _ => (Frame::Redistributor(vcpu), GICR_SGI_OFFSET),
    };
    // Half the states start from a guest that has set everything up (both groups on, every
    // INTID group 1 and enabled on both vCPUs), so that many have something ready.
    if random.next().is_multiple_of(2) {
        write(&mut gic, D, 0, 3);
        for (vcpu, intid) in [0, 1].into_iter().flat_map(|v| INTIDS.map(|i| (v, i))) {
            let (frame, base) = if intid >= SPI_BASE { (D, 0) } else { sgi_frame(vcpu) };
            let (reg, bit) = (base + u64::from(intid / 32) * 4, 1u64 << (intid % 32));
            let groups = gic.access(vcpu, frame, Access { offset: 0x0080 + reg, size: 4, write: None });
            for (offset, value) in [(0x0080 + reg, groups | bit), (0x0100 + reg, bit)] {
                gic.access(vcpu, frame, Access { offset, size: 4, write: Some(value) });
            }
        }
    }
    for _ in 0..random.next() % 11 {
        let (r, vcpu) = (random.next(), (random.next() % 2) as usize);
        let intid = INTIDS[(r >> 8) as usize % INTIDS.len()];
        let (frame, base) = if intid >= SPI_BASE { (D, 0) } else { sgi_frame(vcpu) };
        let reg = base + u64::from(intid / 32) * 4;
        let bit = 1u64 << (intid % 32);
        let mut access = |offset: u64, value: u64| {
            gic.access(vcpu, frame, Access { offset, size: 4, write: Some(value) });
        };
        match r % 9 {
            0 => access(0, (r >> 16) & 3), // GICD_CTLR: the groups enabled
            1 => access(0x0080 + reg, if r & 1 << 20 != 0 { bit } else { 0 }), // IGROUPR
            2 | 3 => access(0x0100 + reg, bit), // ISENABLER
            4 => access(0x0180 + reg, bit), // ICENABLER
            5 if version == 2 => {
                // ITARGETSR (a byte per INTID) or GICD_SGIR from `vcpu` to a random target list.
                let target = (r >> 24) & 3;
                match intid {
                    i if i >= SPI_BASE => access(0x0800 + u64::from(i & !3), target << (8 * (i % 4))),
                    i => access(0x0f00, target << 16 | u64::from(i % 16)),
                }
            }
            5 => {
                let irouter = 0x6000 + 8 * u64::from(intid);
                gic.access(0, D, Access { offset: irouter, size: 8, write: Some((r >> 24) & 1) });
            }
            6 => {
                gic.set_pending(vcpu, intid);
            }
            7 => {
                gic.set_pending_hw(vcpu, intid);
            }
            _ => {
                gic.take_next(vcpu);
            }
        }
    }
    gic
}

#[test]
fn taking_the_one_pending_interrupt_alone_is_what_take_next_gives() {
    let mut random = crate::test_random::Random(0x2545_f491_4f6c_dd1d);
    let (mut alone, mut general) = (0, 0);
    for round in 0..4_000 {
        let gic = random_state(&mut random, if round % 2 == 0 { 3 } else { 2 });
        for vcpu in [0, 1] {
            let (mut fast, mut slow) = (gic.clone(), gic.clone());
            let Some(d) = fast.take_alone(vcpu) else {
                assert_eq!(format!("{fast:?}"), format!("{gic:?}"), "nothing changed");
                general += 1;
                continue;
            };
            alone += 1;
            assert_eq!(slow.take_next(vcpu), (Some(d), false), "vCPU {vcpu} of {gic:?}");
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "the same state after both");
        }
    }
    assert!(alone > 500 && general > 500, "both cases reached: {alone} / {general}");
}

#[test]
fn a_reset_in_place_is_the_power_on_state_with_ownership_and_triggers_kept() {
    const RTC: u32 = 34;
    for version in [2, 3] {
        let mut gic = VirtualGic::for_version(version, 2, &[RTC, BELL]);
        gic.set_level_at_reset(RTC);
        let power_on = format!("{gic:?}");
        // Every register a guest can write, with every bit set, on both vCPUs' views.
        for vcpu in 0..2 {
            for frame in [D, Frame::Redistributor(vcpu)] {
                for offset in (0..0x1_0000u64).step_by(4).chain((0..0x1000).step_by(4).map(|o| o + 0x1_0000))
                {
                    gic.access(vcpu, frame, Access { offset, size: 4, write: Some(u64::from(u32::MAX)) });
                }
            }
        }
        gic.set_pending_hw(0, 27);
        assert_ne!(format!("{gic:?}"), power_on, "GICv{version}: the writes changed the state");
        gic.reset();
        assert_eq!(format!("{gic:?}"), power_on, "GICv{version}: reset");
    }
}
