//! Unknown properties and nodes: warnings, never errors.

use super::*;
use crate::config::{ConfigWarning, WarningKind, CHANNEL_COMPATIBLE};

fn warnings(dtb: &[u8]) -> Vec<String> {
    let (_, warnings) = parse_with_warnings(dtb).unwrap_or_else(|e| panic!("{e:#?}"));
    warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn unknown_partition_property_is_a_warning_with_a_suggestion() {
    let dtb = one(with(ping(), "on-falt", Some(string("stop"))));
    assert_eq!(
        warnings(&dtb),
        ["/hypervisor/ping: unknown property 'on-falt' (ignored); did you mean 'on-fault'?"]
    );
    assert!(parse(&dtb).is_ok(), "parse drops warnings");
    let dtb = one(with(ping(), "colour", Some(string("blue"))));
    assert_eq!(warnings(&dtb), ["/hypervisor/ping: unknown property 'colour' (ignored)"]);
}

#[test]
fn unknown_nodes_and_properties_everywhere() {
    let mut p = with(ping(), "phandle", Some(cells(&[0x50])));
    p.push(node("extra", vec![]));
    let pong = with(with(ping(), "phandle", Some(cells(&[0x51]))), "cpus", Some(cells(&[2])));
    let pong = with(pong, "memory", Some(cells(&[0, 0x4300_0000, 0, 0x100_0000])));
    let channel = vec![
        Prop("compatible", string(CHANNEL_COMPATIBLE)),
        Prop("endpoints", cells(&[0x50, 0x51])),
        Prop("memory", cells(&[0, 0x4400_0000, 0, 0x1000])),
        Prop("writter", cells(&[0x50])),
        node("doorbell", vec![]),
    ];
    let mut h = with(hypervisor(), "consol", Some(cells(&[9])));
    h.push(node("channels", vec![Prop("size", cells(&[1])), node("c", channel)]));
    let dtb = system(h, vec![("ping", p), ("pong", pong)]);
    let (_, list) = parse_with_warnings(&dtb).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(
        list[0],
        ConfigWarning::new(
            "/hypervisor",
            WarningKind::UnknownProperty { property: "consol".into(), suggestion: Some("console") }
        )
    );
    assert_eq!(
        warnings(&dtb)[1..],
        [
            "/hypervisor/ping: unknown child node 'extra' (ignored)",
            "/hypervisor/channels: unknown property 'size' (ignored)",
            "/hypervisor/channels/c: unknown property 'writter' (ignored); did you mean 'writer'?",
            "/hypervisor/channels/c: unknown child node 'doorbell' (ignored)",
        ]
    );
}

#[test]
fn every_known_property_is_silent() {
    let sha = vec![0; 32];
    let p = with(ping(), "guest-addresses", Some(cells(&[0, 0x4200_0000])));
    let p = with(p, "entry", Some(cells(&[0, 0x4200_0000])));
    let p = with(p, "on-fault", Some(string("stop")));
    let p = with(p, "boot-order", Some(cells(&[1])));
    let p = with(p, "bootargs", Some(string("quiet")));
    let p = with(p, "devices", Some(cells(&[RTC])));
    let p = with(p, "device-regions", Some(cells(&[VIRTIO0, 0])));
    let p = with(p, "virtual-uart", Some(vec![]));
    let p = with(p, "tantalum,image", Some(cells(&[0, 0, 0, 0x10])));
    let p = with(p, "tantalum,image-sha256", Some(sha.clone()));
    let p = with(p, "tantalum,guest-dtb", Some(cells(&[0, 0x10, 0, 0x10])));
    let p = with(p, "tantalum,guest-dtb-sha256", Some(sha));
    let p = with(p, "phandle", Some(cells(&[0x50])));
    let p = with(p, "linux,phandle", Some(cells(&[0x50])));
    let pong = with(with(ping(), "phandle", Some(cells(&[0x51]))), "cpus", Some(cells(&[2])));
    let pong = with(pong, "memory", Some(cells(&[0, 0x4300_0000, 0, 0x100_0000])));
    let channel = vec![
        Prop("compatible", string(CHANNEL_COMPATIBLE)),
        Prop("endpoints", cells(&[0x50, 0x51])),
        Prop("memory", cells(&[0, 0x4400_0000, 0, 0x1000])),
        Prop("guest-addresses", cells(&[0, 0x1000_0000, 0, 0x1000_0000])),
        Prop("writer", cells(&[0x50])),
        Prop("phandle", cells(&[0x52])),
    ];
    let mut h = with(hypervisor(), "phandle", Some(cells(&[0x53])));
    h.push(node("channels", vec![node("c", channel)]));
    let dtb = system(h, vec![("ping", p), ("pong", pong)]);
    assert_eq!(warnings(&dtb), Vec::<String>::new());
}

#[test]
fn cells_on_hypervisor_nodes_warn_even_with_errors() {
    // One-cell values, as `#address-cells = <1>` suggests: errors, and the warning that explains them.
    let h = with(hypervisor(), "#address-cells", Some(cells(&[1])));
    let h = with(h, "memory", Some(cells(&[0x4000_0000, 0x200_0000])));
    let (result, list) = parse_reporting(&system(h, vec![("ping", ping())]));
    assert!(result.is_err());
    let text: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        ["/hypervisor: '#address-cells' is ignored here: under /hypervisor every address and size is 2 \
          cells (write memory = <0x0 base 0x0 size>), whatever '#address-cells' / '#size-cells' say"]
    );
}

#[test]
fn benchmark_pmu_is_read_and_always_warned_about() {
    let dtb = system(hypervisor(), vec![("ping", ping())]);
    assert!(!parse(&dtb).unwrap().hypervisor.benchmark_pmu);
    let dtb = system(with(hypervisor(), "benchmark-pmu", Some(Vec::new())), vec![("ping", ping())]);
    assert!(parse(&dtb).unwrap().hypervisor.benchmark_pmu);
    let w = warnings(&dtb);
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("/hypervisor: benchmark-pmu: every partition's PMU counter 0"), "{w:?}");
}
