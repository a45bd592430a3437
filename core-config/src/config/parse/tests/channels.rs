//! `/hypervisor/channels`.

use super::*;
use crate::config::{ChannelConfig, CHANNEL_COMPATIBLE};

const PING: u32 = 0x50;
const PONG: u32 = 0x51;

fn channel(endpoints: &[u32], base: u32) -> Vec<Item> {
    vec![
        Prop("compatible", string(CHANNEL_COMPATIBLE)),
        Prop("endpoints", cells(endpoints)),
        Prop("memory", cells(&[0, base, 0, 0x1_0000])),
    ]
}

/// ping and pong (with phandles) and a `channels` container holding `channels`.
fn with_channels(channels: Vec<(&str, Vec<Item>)>) -> Vec<u8> {
    let ping = with(ping(), "phandle", Some(cells(&[PING])));
    let pong = with(
        with(with(ping.clone(), "phandle", Some(cells(&[PONG]))), "cpus", Some(cells(&[2]))),
        "memory",
        Some(cells(&[0, 0x4300_0000, 0, 0x100_0000])),
    );
    let mut h = hypervisor();
    h.push(node("channels", channels.into_iter().map(|(n, c)| node(n, c)).collect()));
    system(h, vec![("ping", ping), ("pong", pong)])
}

#[test]
fn parses_channels() {
    let duplex = channel(&[PING, PONG], 0x4400_0000);
    let one_way = with(channel(&[PONG, PING], 0x4401_0000), "writer", Some(cells(&[PONG])));
    let one_way = with(one_way, "guest-addresses", Some(cells(&[0, 0x1000_0000, 0x1, 0])));
    let cfg = parse(&with_channels(vec![("duplex", duplex), ("one-way@1", one_way)])).expect("parses");
    assert_eq!(cfg.partitions.len(), 2, "the container is no partition");
    let duplex = ChannelConfig {
        id: 0,
        name: "duplex".into(),
        path: "/hypervisor/channels/duplex".into(),
        endpoints: vec![0, 1],
        memory: HostRange::new(HostPhys(0x4400_0000), 0x1_0000),
        guest: vec![GuestPhys(0x4400_0000); 2],
        writer: None,
    };
    let one_way = ChannelConfig {
        id: 1,
        name: "one-way@1".into(),
        path: "/hypervisor/channels/one-way@1".into(),
        endpoints: vec![1, 0],
        memory: HostRange::new(HostPhys(0x4401_0000), 0x1_0000),
        guest: vec![GuestPhys(0x1000_0000), GuestPhys(0x1_0000_0000)],
        writer: Some(1),
    };
    assert_eq!(cfg.channels, [duplex, one_way]);
    assert!(cfg.channels[1].may_write(1) && !cfg.channels[1].may_write(0));
    assert_eq!(cfg.channels[1].guest_address(0), Some(GuestPhys(0x1_0000_0000)));
    assert_eq!(cfg.channels_of(0).len(), 2);
}

#[test]
fn channel_children_must_be_channels() {
    let dtb = with_channels(vec![("stray", vec![Prop("compatible", string("foo,bar"))])]);
    assert_error!(
        dtb,
        "/hypervisor/channels/stray",
        ErrorKind::UnknownChannelNode { .. },
        ["unknown node under /hypervisor/channels (compatible \"foo,bar\")", CHANNEL_COMPATIBLE]
    );
    // A container with a compatible is not the container.
    let mut h = hypervisor();
    h.push(node("channels", vec![Prop("compatible", string("x"))]));
    let dtb = system(h, vec![("ping", ping())]);
    assert_error!(
        dtb,
        "/hypervisor/channels",
        ErrorKind::UnknownNode { .. },
        ["channels go under /hypervisor/channels"]
    );
}

#[test]
fn endpoints_and_writer_must_be_partitions() {
    let dtb = with_channels(vec![("c", channel(&[PING, 1], 0x4400_0000))]);
    assert_error!(
        dtb,
        "/hypervisor/channels/c",
        ErrorKind::NotAPartition { property: "endpoints", phandle: 1, .. },
        ["endpoints: phandle 0x1 refers to /cpus/cpu@0, which is not a partition"]
    );
    let dtb = with_channels(vec![("c", channel(&[PING, 0x99], 0x4400_0000))]);
    assert_error!(
        dtb,
        "/hypervisor/channels/c",
        ErrorKind::UnresolvedPhandle { property: "endpoints", phandle: 0x99 },
        []
    );
    let c = with(channel(&[PING, PONG], 0x4400_0000), "writer", Some(cells(&[VIRTIO0])));
    assert_error!(
        with_channels(vec![("c", c)]),
        "/hypervisor/channels/c",
        ErrorKind::NotAPartition { property: "writer", .. },
        ["writer: phandle 0x30 refers to /virtio_mmio@a000000"]
    );
}

#[test]
fn channel_properties_are_checked() {
    for property in ["endpoints", "memory"] {
        let dtb = with_channels(vec![("c", with(channel(&[PING, PONG], 0x4400_0000), property, None))]);
        let text = assert_error!(dtb, "/hypervisor/channels/c", ErrorKind::MissingProperty { .. }, []);
        assert!(text.ends_with(&format!("'{property}'")), "{text}");
    }
    let cases: [(&'static str, Vec<u8>, &str); 5] = [
        ("endpoints", vec![0, 0, 0], "one or more phandles"),
        ("memory", cells(&[0, 0x4400_0000, 0x1000]), "4 cells"),
        ("guest-addresses", cells(&[0, 0x1000]), "one 2-cell address per endpoint (2 endpoints: 4 cells)"),
        ("writer", cells(&[PING, PONG]), "one phandle"),
        ("writer", vec![], "one phandle"),
    ];
    for (property, value, words) in cases {
        let c = with(channel(&[PING, PONG], 0x4400_0000), property, Some(value));
        let text = assert_error!(
            with_channels(vec![("c", c)]),
            "/hypervisor/channels/c",
            ErrorKind::MalformedProperty { .. },
            [words]
        );
        assert!(text.contains(&format!("'{property}'")), "{text}");
    }
}

fn disk(frontends: Vec<(&str, Vec<Item>)>) -> Vec<Item> {
    let mut items = vec![
        Prop("compatible", string(crate::config::VIRTIO_BLK_COMPATIBLE)),
        Prop("driver", cells(&[PING])),
        Prop("device", cells(&[PING])),
        Prop("sectors", cells(&[0x1, 0])),
    ];
    items.extend(frontends.into_iter().map(|(n, c)| node(n, c)));
    items
}

#[test]
fn parses_disks() {
    let front = vec![Prop("partition", cells(&[PONG])), Prop("region", cells(&[0, 0x10, 0x1, 0x20]))];
    let cfg = parse(&with_channels(vec![("disk0", disk(vec![("pong", front)]))])).expect("parses");
    let d = &cfg.disks[0];
    assert_eq!((d.id, d.name.as_str(), d.driver, d.sectors), (0, "disk0", Some(0), 1 << 32));
    assert_eq!(d.device.as_deref(), Some("/hypervisor/ping"));
    assert_eq!(d.frontends[0].path, "/hypervisor/channels/disk0/pong");
    assert_eq!(d.frontends[0].partition, Some(1));
    assert_eq!(d.frontends[0].region, crate::virtio::blk::Region { start: 0x10, sectors: 0x1_0000_0020 });
    // pong's devices: its disk frontend; ping's: the backend page.
    let kinds: Vec<_> = (0..2)
        .map(|id| {
            cfg.virtio_devices(id)
                .map(|v| matches!(v, crate::config::VirtioDevice::DiskBackend(_)))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(kinds, [vec![true], vec![false]]);
}

#[test]
fn a_disk_region_of_the_wrong_shape_is_malformed() {
    let front = vec![Prop("partition", cells(&[PONG])), Prop("region", cells(&[0, 0x10]))];
    let dtb = with_channels(vec![("disk0", disk(vec![("pong", front)]))]);
    assert_error!(
        dtb,
        "/hypervisor/channels/disk0/pong",
        ErrorKind::MalformedProperty { property: "region", .. },
        []
    );
    let front = vec![Prop("region", cells(&[0, 0, 0, 1]))];
    let dtb = with_channels(vec![("disk0", disk(vec![("pong", front)]))]);
    assert_error!(
        dtb,
        "/hypervisor/channels/disk0/pong",
        ErrorKind::MissingProperty { property: "partition" },
        []
    );
}
