//! `devices`, `device-regions`, interrupts, the GIC, `bootargs` and `virtual-uart`.

use super::*;
use crate::config::{DeviceAssignment, Gic, Interrupt, InterruptProblem, NotDevice};

fn range(base: u64, size: u64) -> HostRange {
    HostRange::new(HostPhys(base), size)
}

fn config(dtb: &[u8]) -> SystemConfig {
    parse(dtb).unwrap_or_else(|e| panic!("{e:#?}"))
}

#[test]
fn parses_the_gic() {
    let cfg = config(&one(ping()));
    let gic = Gic {
        path: "/interrupt-controller@8000000".into(),
        phandle: Some(GIC),
        distributor: range(0x800_0000, 0x1_0000),
        redistributors: range(0x80a_0000, 0xf6_0000),
        v2: None,
    };
    assert_eq!(cfg.board.gic, Some(gic.clone()));
    assert_eq!(parse_board(&one(ping())).map(|b| b.gic), Ok(Some(gic)));
    // No GIC on the board: none in the config (devices without interrupts still work).
    let no_gic: Vec<Item> =
        board().into_iter().filter(|i| !matches!(i, Node(n, _) if n.starts_with("interrupt-"))).collect();
    let mut root = with(no_gic, "interrupt-parent", None);
    let mut h = hypervisor();
    h.push(node("ping", ping()));
    root.push(node("hypervisor", h));
    assert_eq!(config(&build(root)).board.gic, None);
    // A GIC with only a distributor.
    let mut root =
        edit(board(), "interrupt-controller@8000000", "reg", Some(cells(&[0, 0x800_0000, 0, 0x1_0000])));
    root.push(node("hypervisor", with(hypervisor(), "memory", None)));
    assert_error!(
        build(root),
        "/interrupt-controller@8000000",
        ErrorKind::GicReg { version: 3, entries: 1 },
        ["2 'reg' entries (distributor, redistributors), found 1"]
    );
}

#[test]
fn parses_devices_regions_bootargs_and_virtual_uart() {
    let p = with(ping(), "devices", Some(cells(&[VIRTIO0, RTC])));
    let p = with(p, "device-regions", Some(cells(&[VIRTIO1, 0])));
    let p = with(p, "bootargs", Some(string("console=ttyAMA0 quiet")));
    let p = with(p, "virtual-uart", Some(vec![]));
    let cfg = config(&one(p));
    let p = &cfg.partitions[0];
    assert_eq!(p.bootargs.as_deref(), Some("console=ttyAMA0 quiet"));
    assert!(p.virtual_uart);
    let virtio0 = DeviceAssignment {
        path: "/virtio_mmio@a000000".into(),
        mmio: vec![range(0xa00_0000, 0x200)],
        interrupts: vec![Interrupt { kind: 0, number: 16, flags: 1 }],
        region: None,
        compatible: vec!["virtio,mmio".into()],
        ..Default::default()
    };
    let rtc = DeviceAssignment {
        path: "/pl031@9010000".into(),
        mmio: vec![range(0x901_0000, 0x1000)],
        interrupts: vec![Interrupt { kind: 0, number: 2, flags: 4 }],
        region: None,
        compatible: vec!["arm,pl031".into(), "arm,primecell".into()],
        ..Default::default()
    };
    let region = DeviceAssignment {
        path: "/virtio_mmio@a000200".into(),
        mmio: vec![range(0xa00_0200, 0x200)],
        interrupts: vec![],
        region: Some(0),
        compatible: vec!["virtio,mmio".into()],
        ..Default::default()
    };
    assert_eq!(p.devices, [virtio0, rtc, region]);
    // The defaults.
    let p = &config(&one(ping())).partitions[0];
    assert_eq!((p.bootargs.as_deref(), p.virtual_uart, p.devices.len()), (None, false, 0));
}

#[test]
fn every_reg_range_of_a_whole_device() {
    let root = edit(
        board(),
        "virtio_mmio@a000000",
        "reg",
        Some(cells(&[0, 0xa00_0000, 0, 0x200, 0, 0xb00_0000, 0, 0x1000])),
    );
    let mut h = hypervisor();
    h.push(node("ping", with(ping(), "device-regions", Some(cells(&[VIRTIO0, 1, VIRTIO0, 2])))));
    let mut r = root.clone();
    r.push(node("hypervisor", h));
    assert_error!(
        build(r),
        "/hypervisor/ping",
        ErrorKind::NoSuchRegion { index: 2, count: 2, .. },
        ["device-regions: /virtio_mmio@a000000 has no region 2 (its 'reg' has 2 entries"]
    );
    let mut h = hypervisor();
    h.push(node("ping", with(ping(), "devices", Some(cells(&[VIRTIO0])))));
    let mut r = root;
    r.push(node("hypervisor", h));
    let d = &config(&build(r)).partitions[0].devices[0];
    assert_eq!(d.mmio, [range(0xa00_0000, 0x200), range(0xb00_0000, 0x1000)]);
}

#[test]
fn device_phandles_must_name_board_devices() {
    let cases: [(u32, &str, NotDevice, &str); 4] = [
        (1, "/cpus/cpu@0", NotDevice::Cpu, "which is a CPU node"),
        (0x50, "/hypervisor/pong", NotDevice::Hypervisor, "part of the hypervisor configuration"),
        (0x60, "/memory@40000000", NotDevice::Memory, "which is a memory node"),
        (0x61, "/psci", NotDevice::NoReg, "which has no 'reg'"),
    ];
    for (phandle, target, reason, words) in cases {
        let root = edit(board(), "memory@40000000", "phandle", Some(cells(&[0x60])));
        let mut root = root;
        root.push(node("psci", vec![Prop("phandle", cells(&[0x61]))]));
        let mut h = hypervisor();
        h.push(node("ping", with(ping(), "devices", Some(cells(&[phandle])))));
        h.push(node("pong", with(with(ping(), "phandle", Some(cells(&[0x50]))), "cpus", Some(cells(&[2])))));
        root.push(node("hypervisor", h));
        let text = assert_error!(
            build(root),
            "/hypervisor/ping",
            ErrorKind::NotADevice { property: "devices", reason: r, .. } if r == reason,
            [target, words, "only board devices with MMIO can be passed through"]
        );
        assert!(text.contains(&format!("phandle {phandle:#x} refers to {target}")), "{text}");
    }
    let mut root = board();
    root.insert(0, Prop("phandle", cells(&[0x70])));
    let mut h = hypervisor();
    h.push(node("ping", with(ping(), "device-regions", Some(cells(&[0x70, 0])))));
    root.push(node("hypervisor", h));
    assert_error!(
        build(root),
        "/hypervisor/ping",
        ErrorKind::NotADevice { reason: NotDevice::Root, property: "device-regions", .. },
        ["root"]
    );
    let dtb = one(with(ping(), "devices", Some(cells(&[0x99]))));
    assert_error!(
        dtb,
        "/hypervisor/ping",
        ErrorKind::UnresolvedPhandle { property: "devices", phandle: 0x99 },
        []
    );
}

#[test]
fn malformed_device_properties() {
    let cases: [(&'static str, Vec<u8>, &str); 5] = [
        ("devices", vec![0, 0], "one or more phandles"),
        ("devices", vec![], "one or more phandles"),
        ("device-regions", cells(&[VIRTIO0]), "one or more <&device index> pairs"),
        ("virtual-uart", cells(&[1]), "no value"),
        ("bootargs", cells(&[1]), "a string"),
    ];
    for (property, value, words) in cases {
        let dtb = one(with(ping(), property, Some(value)));
        let text = assert_error!(dtb, "/hypervisor/ping", ErrorKind::MalformedProperty { .. }, [words]);
        assert!(text.contains(&format!("'{property}'")), "{text}");
    }
}

/// `ping` taking virtio0, on a board edited by `f`.
fn with_board(f: impl FnOnce(Vec<Item>) -> Vec<Item>) -> Vec<u8> {
    let mut root = f(board());
    let mut h = hypervisor();
    h.push(node("ping", with(ping(), "devices", Some(cells(&[VIRTIO0])))));
    root.push(node("hypervisor", h));
    build(root)
}

#[test]
fn device_interrupts_must_be_gic_specifiers() {
    let v0 = "virtio_mmio@a000000";
    let cases: [(Vec<u8>, InterruptProblem, &str); 5] = [
        (
            with_board(|b| with(b, "interrupt-parent", None)),
            InterruptProblem::NoParent,
            "no 'interrupt-parent'",
        ),
        (
            with_board(|b| edit(b, v0, "interrupt-parent", Some(cells(&[UART])))),
            InterruptProblem::ParentNotGic { parent: "/pl011@9000000".into() },
            "interrupt parent /pl011@9000000 is not the board's GIC",
        ),
        (
            with_board(|b| edit(b, "interrupt-controller@8000000", "#interrupt-cells", Some(cells(&[2])))),
            InterruptProblem::Cells { cells: Some(2) },
            "#interrupt-cells is 2, expected 3",
        ),
        (
            with_board(|b| edit(b, v0, "interrupts", Some(cells(&[0, 16])))),
            InterruptProblem::Malformed { len: 8 },
            "(8 bytes)",
        ),
        (
            with_board(|b| edit(b, v0, "interrupts-extended", Some(cells(&[GIC, 0, 16, 1])))),
            InterruptProblem::Extended,
            "'interrupts-extended' is not supported",
        ),
    ];
    for (dtb, problem, words) in cases {
        assert_error!(
            dtb,
            "/hypervisor/ping",
            ErrorKind::DeviceInterrupts { problem: ref p, .. } if *p == problem,
            ["devices: cannot pass through the interrupts of /virtio_mmio@a000000: ", words]
        );
    }
    // The node's own parent wins over the root's; an unresolved one is named where it is.
    let dtb = with_board(|b| {
        edit(with(b, "interrupt-parent", Some(cells(&[UART]))), v0, "interrupt-parent", Some(cells(&[GIC])))
    });
    assert_eq!(config(&dtb).partitions[0].devices[0].interrupts.len(), 1);
    let dtb = with_board(|b| edit(b, v0, "interrupt-parent", Some(cells(&[0x77]))));
    assert_error!(
        dtb,
        "/virtio_mmio@a000000",
        ErrorKind::UnresolvedPhandle { property: "interrupt-parent", .. },
        []
    );
    // A device without interrupts needs no parent.
    let dtb = with_board(|b| edit(with(b, "interrupt-parent", None), v0, "interrupts", None));
    assert_eq!(config(&dtb).partitions[0].devices[0].interrupts, []);
}
