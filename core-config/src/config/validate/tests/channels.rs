//! Rule 14: channels.

use super::*;
use crate::config::{GuestUse, MAX_CHANNELS_PER_PARTITION};

const DUPLEX: &str = "/hypervisor/channels/duplex";
const ONE_WAY: &str = "/hypervisor/channels/one-way";

#[test]
fn rule_14_channel_memory() {
    let set = |base: u64, size: u64| {
        let mut cfg = rich();
        cfg.channels[0].memory = HostRange::new(HostPhys(base), size);
        cfg.channels[0].guest = vec![GuestPhys(base); 2];
        cfg
    };
    assert_rule!(set(0x4400_0000, 0), NONE, DUPLEX, ErrorKind::EmptyMemory { .. }, ["size 0"]);
    assert_rule!(set(0x4400_0800, 0x1000), NONE, DUPLEX, ErrorKind::UnalignedMemory { .. }, ["4 KiB"]);
    assert_rule!(set(0x4400_0000, 0x800), NONE, DUPLEX, ErrorKind::UnalignedMemory { .. }, []);
    assert_rule!(
        set(0x3000_0000, 0x1000),
        NONE,
        DUPLEX,
        ErrorKind::OutsideRam { .. },
        ["0x30000000..0x30001000"]
    );
    assert_rule!(set(0x41ff_0000, 0x2_0000), NONE, DUPLEX, ErrorKind::OverlapsHypervisor { .. }, []);
    let text = assert_rule!(set(0x42ff_0000, 0x1_0000), NONE, DUPLEX, ErrorKind::Overlap { .. }, []);
    assert_eq!(
        text,
        "/hypervisor/channels/duplex: memory 0x42ff0000..0x43000000 overlaps /hypervisor/ping (0x42000000..0x43000000)"
    );
    let mut cfg = rich();
    cfg.channels[1].memory = HostRange::new(HostPhys(0x4400_f000), 0x2000);
    assert_rule!(
        cfg,
        NONE,
        ONE_WAY,
        ErrorKind::Overlap { .. },
        ["overlaps /hypervisor/channels/duplex (0x44000000..0x44010000)"]
    );
}

#[test]
fn rule_5_channel_memory_counts() {
    let mut cfg = rich();
    cfg.board.ram = vec![HostRange::new(HostPhys(0x4000_0000), 0x420_0000)];
    cfg.channels.clear();
    cfg.partitions[1].memory[0] = region(0x4300_0000, 0x10_0000);
    cfg.partitions[1].entry = GuestPhys(0x4300_0000);
    cfg.partitions[0].memory[0].size = 0x100_0000;
    // 32 MiB hypervisor + 16 MiB + 1 MiB of partitions = 49 MiB in 66 MiB of RAM, until a 32 MiB channel.
    assert_eq!(
        errors(&cfg, &NONE).iter().filter(|e| matches!(e.kind, ErrorKind::Overcommit { .. })).count(),
        0
    );
    cfg.channels.push(channel(0, "big", &[0, 1], 0x4400_0000, 0x200_0000));
    assert_rule!(
        cfg,
        NONE,
        "/hypervisor",
        ErrorKind::Overcommit { channels: 0x200_0000, .. },
        ["plus channels (0x2000000 bytes)"]
    );
}

#[test]
fn rule_14_endpoints() {
    let mut cfg = rich();
    cfg.channels[0].endpoints = vec![0];
    cfg.channels[0].guest.truncate(1);
    assert_rule!(
        cfg,
        NONE,
        DUPLEX,
        ErrorKind::ChannelEndpointCount { count: 1 },
        ["endpoints: 1 listed; a v1 channel connects exactly 2 partitions"]
    );
    let mut cfg = rich();
    cfg.channels[0].endpoints = vec![0, 1, 0];
    cfg.channels[0].guest.push(GuestPhys(0x4400_0000));
    assert_rule!(cfg, NONE, DUPLEX, ErrorKind::ChannelEndpointCount { count: 3 }, []);
    assert_rule!(
        cfg,
        NONE,
        DUPLEX,
        ErrorKind::DuplicateEndpoint { .. },
        ["/hypervisor/ping is listed twice"]
    );
    let mut cfg = rich();
    cfg.channels[0].endpoints = vec![0, 7];
    assert_rule!(
        cfg,
        NONE,
        DUPLEX,
        ErrorKind::UnknownEndpoint { id: 7, count: 2 },
        ["partition id 7 does not exist"]
    );
    let mut cfg = rich();
    cfg.channels[1].writer = Some(5);
    assert_rule!(
        cfg,
        NONE,
        ONE_WAY,
        ErrorKind::WriterNotEndpoint { .. },
        ["writer: partition id 5 is not an endpoint"]
    );
    let mut cfg = rich();
    cfg.channels[0].endpoints = vec![0, 0];
    cfg.channels[0].writer = Some(1);
    assert_rule!(
        cfg,
        NONE,
        DUPLEX,
        ErrorKind::WriterNotEndpoint { .. },
        ["writer: /hypervisor/pong is not an endpoint"]
    );
    let mut cfg = rich();
    cfg.channels[1].id = 0;
    assert_rule!(cfg, NONE, ONE_WAY, ErrorKind::ChannelIdMismatch { id: 0, index: 1 }, []);
}

#[test]
fn rule_14_at_most_eight_channels_per_partition() {
    let mut cfg = rich();
    cfg.channels = (0..=MAX_CHANNELS_PER_PARTITION)
        .map(|i| channel(i, &format!("c{i}"), &[0, 1], 0x4400_0000 + 0x6000 * i as u64, 0x6000))
        .collect();
    // The doorbells of channels 0 and 1 would not collide with any device SPI here.
    let text =
        assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::TooManyChannels { count: 9, max: 8 }, []);
    assert!(text.contains("endpoint of 9 channels, more than the maximum of 8 per partition"), "{text}");
    cfg.channels.pop();
    assert_eq!(validate(&cfg, &NONE), Ok(()));
}

#[test]
fn rule_14_guest_addresses() {
    let mut cfg = rich();
    cfg.channels[1].guest.pop();
    assert_rule!(
        cfg,
        NONE,
        ONE_WAY,
        ErrorKind::ChannelGuestCount { addresses: 1, endpoints: 2 },
        ["guest-addresses: 1 addresses for 2 endpoints"]
    );
    let mut cfg = rich();
    cfg.channels[1].guest[1] = GuestPhys(0x1000_0800);
    assert_rule!(cfg, NONE, ONE_WAY, ErrorKind::ChannelGuestUnaligned { .. },
        ["guest-addresses: /hypervisor/ping sees the channel at guest 0x10000800, which is not 4 KiB aligned"]);
    let mut cfg = rich();
    cfg.channels[1].guest[0] = GuestPhys(IPA_LIMIT - 0x800);
    assert_rule!(
        cfg,
        NONE,
        ONE_WAY,
        ErrorKind::ChannelAboveIpaLimit { .. },
        ["the channel ends at guest 0x8000002800 in /hypervisor/pong, above the IPA limit 0x8000000000"]
    );
    let mut cfg = rich();
    cfg.channels[1].guest[0] = GuestPhys(u64::MAX - 0xfff);
    assert_rule!(cfg, NONE, ONE_WAY, ErrorKind::ChannelAboveIpaLimit { .. }, []);
}

#[test]
fn rule_14_guest_range_is_free_in_each_endpoint() {
    let cases: [(u64, GuestUse, &str); 4] = [
        (0x4300_0000, GuestUse::Memory { region: 0 }, "memory region 0 (guest 0x43000000..0x44000000)"),
        (0x4400_0000, GuestUse::Channel { path: DUPLEX.into() }, "channel /hypervisor/channels/duplex"),
        (
            0x901_0000,
            GuestUse::Device { path: "/pl031@9010000".into() },
            "the pages of device /pl031@9010000",
        ),
        (0x800_0000, GuestUse::Gic, "the virtual GIC"),
    ];
    for (guest, with, words) in cases {
        let mut cfg = rich();
        cfg.channels[1].guest[0] = GuestPhys(guest);
        assert_rule!(cfg, NONE, ONE_WAY, ErrorKind::ChannelGuestOverlap { with: ref w, .. } if *w == with,
            ["guest-addresses: in /hypervisor/pong the channel's guest range", words, "set guest-addresses to a free range"]);
    }
    let mut cfg = rich();
    cfg.channels[1].guest[1] = GuestPhys(0x900_0000); // QEMU virt's virtual UART
    assert_rule!(
        cfg,
        NONE,
        ONE_WAY,
        ErrorKind::ChannelGuestOverlap { with: GuestUse::VirtualUart, .. },
        ["in /hypervisor/ping the channel's guest range 0x9000000..0x9003000 overlaps the virtual UART"]
    );
    // Identity-mapped channels and memory that overlap are rule 3's overlap, said once.
    let mut cfg = rich();
    cfg.channels[0].memory = HostRange::new(HostPhys(0x42ff_0000), 0x1_0000);
    cfg.channels[0].guest = vec![GuestPhys(0x42ff_0000); 2];
    assert_eq!(errors(&cfg, &NONE).len(), 1, "{:#?}", errors(&cfg, &NONE));
}

#[test]
fn rule_14_room_for_the_rings() {
    let mut cfg = rich();
    cfg.channels[0].memory.size = 0x5000;
    assert_rule!(
        cfg,
        NONE,
        DUPLEX,
        ErrorKind::ChannelTooSmall { size: 0x5000, min: 0x6000, one_way: false },
        ["memory: 0x5000 bytes cannot hold the rings of a duplex channel, which needs at least 0x6000 bytes"]
    );
    cfg.channels[0].memory.size = 0x6000;
    assert_eq!(validate(&cfg, &NONE), Ok(()));
    cfg.channels[1].memory.size = 0x2000;
    assert_rule!(
        cfg,
        NONE,
        ONE_WAY,
        ErrorKind::ChannelTooSmall { min: 0x3000, one_way: true, .. },
        ["a one-way channel, which needs at least 0x3000 bytes"]
    );
}
