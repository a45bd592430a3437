//! Rule 13, the emulated pages: where the board places them, and what may not lie there.

use super::*;
use crate::config::{GuestUse, PartitionId, VirtioKind, VirtioLinkConfig};
use crate::vplatform::Emulated;

const PING: &str = "/hypervisor/ping";

/// `rich()` with a virtio link between ping and pong (each gets one virtio page).
fn with_virtio() -> SystemConfig {
    let mut cfg = rich();
    cfg.virtio.push(VirtioLinkConfig {
        id: 0,
        kind: VirtioKind::Net,
        name: "net0".into(),
        path: "/hypervisor/channels/net0".into(),
        endpoints: vec![0, 1],
    });
    cfg
}

#[test]
fn a_partition_uses_only_pages_its_board_places() {
    assert_eq!(validate(&with_virtio(), &NONE), Ok(()));
    for what in Emulated::ALL {
        let mut cfg = with_virtio();
        match what {
            Emulated::VirtualUart => cfg.board.emulated.virtual_uart = None,
            Emulated::Doorbells => cfg.board.emulated.doorbells = None,
            Emulated::Virtio => cfg.board.emulated.virtio = None,
        }
        let text = assert_rule!(cfg, NONE, PING, ErrorKind::EmulatedNotPlaced { what: w } if w == what,
            ["the partition uses", "the board places none in guest space", what.property()]);
        assert_eq!(errors(&cfg, &NONE).len(), if what == Emulated::VirtualUart { 1 } else { 2 }, "{text}");
    }
    // Nobody uses them: no board needs to place them.
    let mut cfg = demo();
    cfg.board.emulated = Default::default();
    assert_eq!(validate(&cfg, &NONE), Ok(()));
}

#[test]
fn the_board_windows_are_aligned_disjoint_and_clear_of_the_gic() {
    let mut cfg = with_virtio();
    cfg.board.emulated.virtio = Some(GuestPhys(0xb10_0800));
    let text =
        assert_rule!(cfg, NONE, "/", ErrorKind::EmulatedWindowInvalid { what: Emulated::Virtio, .. }, []);
    assert_eq!(
        text,
        "/: tantalum,virtio: the window of the virtio devices (0xb100800..0xb108800) must be page-aligned and \
         end below the IPA limit 0x8000000000"
    );
    cfg.board.emulated.virtio = Some(GuestPhys(IPA_LIMIT - 0x1000));
    assert_rule!(cfg, NONE, "/", ErrorKind::EmulatedWindowInvalid { what: Emulated::Virtio, .. }, []);

    // The doorbell window (8 pages) runs into the virtio devices' window.
    let mut cfg = with_virtio();
    cfg.board.emulated.virtio = Some(GuestPhys(0xb00_7000));
    let text =
        assert_rule!(cfg, NONE, "/", ErrorKind::EmulatedWindowOverlap { what: Emulated::Virtio, .. }, []);
    assert_eq!(
        text,
        "/: tantalum,virtio: the window of the virtio devices (0xb007000..0xb00f000) overlaps the channel \
         doorbell pages (guest 0xb000000..0xb008000); give each kind of emulated page its own free guest range"
    );
    assert_eq!(errors(&cfg, &NONE).len(), 1, "said once, not again for each partition");

    // The virtual UART on the GIC's redistributors.
    let mut cfg = with_virtio();
    cfg.board.emulated.virtual_uart = Some(GuestPhys(0x80b_0000));
    assert_rule!(cfg, NONE, "/", ErrorKind::EmulatedWindowOverlap { with: GuestUse::Gic, .. },
        ["tantalum,virtual-uart: the window of the virtual UART (0x80b0000..0x80b1000) overlaps the virtual GIC"]);
    assert_eq!(errors(&cfg, &NONE).len(), 1, "said once, on the board");
}

#[test]
fn memory_and_devices_stay_clear_of_the_pages_a_partition_uses() {
    // Ping's memory seen over its virtio device.
    let mut cfg = with_virtio();
    cfg.partitions[0].memory[0].guest = GuestPhys(0xb10_0000);
    cfg.partitions[0].entry = GuestPhys(0xb10_0000);
    assert_rule!(cfg, NONE, PING, ErrorKind::GuestMemoryOverlap { with: GuestUse::Virtio, .. },
        ["guest range 0xb100000..0xc100000 of memory region 0 overlaps the virtio devices (guest 0xb100000..0xb101000)"]);
    // ... and over its doorbell pages.
    let mut cfg = with_virtio();
    cfg.partitions[0].memory[0].guest = GuestPhys(0xa00_0000 + 0x100_0000);
    cfg.partitions[0].entry = GuestPhys(0xb00_0000);
    assert_rule!(
        cfg,
        NONE,
        PING,
        ErrorKind::GuestMemoryOverlap { with: GuestUse::Doorbells, .. },
        ["overlaps the channel doorbell pages (guest 0xb000000..0xb002000)"]
    );

    // A passed-through device where the board puts the doorbells.
    let mut cfg = with_virtio();
    cfg.partitions[0].devices.push(device("/dev@b001000", 0xb00_1000, 0x100, 40));
    let text =
        assert_rule!(cfg, NONE, PING, ErrorKind::DeviceOverEmulated { what: Emulated::Doorbells, .. }, []);
    assert_eq!(
        text,
        "/hypervisor/ping: devices: the pages of /dev@b001000 (guest 0xb001000..0xb002000) overlap the channel \
         doorbell pages (guest 0xb000000..0xb002000, placed by the board's tantalum,doorbells); pass the device \
         through on a board whose emulated pages lie elsewhere, or move them (docs/boards.md)"
    );
    // ... and over the virtio device.
    let mut cfg = with_virtio();
    cfg.partitions[0].devices.push(device("/dev@b100000", 0xb10_0000, 0x1000, 40));
    assert_rule!(
        cfg,
        NONE,
        PING,
        ErrorKind::DeviceOverEmulated { what: Emulated::Virtio, .. },
        ["the pages of /dev@b100000", "overlap the virtio devices"]
    );
    // Past the pages the partition uses, the window is free for it.
    let mut cfg = with_virtio();
    cfg.partitions[0].devices.push(device("/dev@b002000", 0xb00_2000, 0x1000, 40));
    assert_eq!(validate(&cfg, &NONE), Ok(()));
}

#[test]
fn a_partition_is_on_one_vsock_link_at_most() {
    let mut cfg = with_virtio();
    let vsock = |id: usize| VirtioLinkConfig {
        id,
        kind: VirtioKind::Vsock,
        name: alloc::format!("vsock{id}"),
        path: alloc::format!("/hypervisor/channels/vsock{id}"),
        endpoints: vec![0, 1],
    };
    cfg.virtio.push(vsock(1));
    assert_eq!(validate(&cfg, &NONE), Ok(()), "a net link and a vsock link");
    cfg.virtio.push(vsock(2));
    let errors = validate(&cfg, &NONE).unwrap_err();
    let second: Vec<_> =
        errors.iter().filter(|e| matches!(e.kind, ErrorKind::SecondVsockLink { .. })).collect();
    assert_eq!(second.len(), 2, "one for each partition: {errors:?}");
    assert_eq!(second[0].node, "/hypervisor/channels/vsock2");
    assert!(second[0].to_string().contains("already on the vsock link /hypervisor/channels/vsock1"));
}

#[test]
fn a_net_link_joins_two_to_eight_partitions_a_vsock_link_two() {
    let link = |kind, endpoints: Vec<PartitionId>| VirtioLinkConfig {
        id: 0,
        kind,
        name: "l".into(),
        path: "/hypervisor/channels/l".into(),
        endpoints,
    };
    for (kind, endpoints, count, max) in [
        (VirtioKind::Net, vec![0], 1, 8),
        (VirtioKind::Vsock, vec![0, 1, 0], 3, 2),
        (VirtioKind::Vsock, vec![1], 1, 2),
    ] {
        let mut cfg = rich();
        cfg.virtio.push(link(kind, endpoints));
        let errors = validate(&cfg, &NONE).unwrap_err();
        let found = errors.iter().find(|e| matches!(e.kind, ErrorKind::LinkEndpointCount { .. }));
        assert_eq!(
            found.map(|e| &e.kind),
            Some(&ErrorKind::LinkEndpointCount { count, kind: kind.name(), max }),
            "{errors:?}"
        );
        let text = found.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with("/hypervisor/channels/l: endpoints: "), "{text}");
    }
}
