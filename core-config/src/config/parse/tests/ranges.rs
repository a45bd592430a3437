//! Board devices behind buses: `reg` translated through every parent's `ranges`.

use super::*;
use crate::config::RangesProblem;

const DEV: u32 = 0x40;

/// The board plus `soc` (1 address cell, 1 size cell, `ranges` as given) holding `bus` (same
/// cells, `inner` ranges) holding `dev@100` with `reg = <0x100 0x100>`.
fn behind_buses(outer: Option<Vec<u8>>, inner: Option<Vec<u8>>) -> Vec<u8> {
    let cells11 = || vec![Prop("#address-cells", cells(&[1])), Prop("#size-cells", cells(&[1]))];
    let dev = node(
        "dev@100",
        vec![
            Prop("compatible", string("vendor,thing")),
            Prop("reg", cells(&[0x100, 0x100])),
            Prop("phandle", cells(&[DEV])),
        ],
    );
    let mut bus = with(cells11(), "ranges", inner);
    bus.push(dev);
    let mut soc = with(cells11(), "ranges", outer);
    soc.push(node("bus", bus));
    let mut root = board();
    root.push(node("soc", soc));
    let mut h = hypervisor();
    h.push(node("ping", with(ping(), "devices", Some(cells(&[DEV])))));
    root.push(node("hypervisor", h));
    build(root)
}

fn mmio(dtb: &[u8]) -> Vec<HostRange> {
    let cfg = parse(dtb).unwrap_or_else(|e| panic!("{e:#?}"));
    cfg.partitions[0].devices[0].mmio.clone()
}

#[test]
fn reg_is_translated_through_every_bus() {
    // soc: child 0x0 -> CPU 0xc000000 (2 parent cells); bus: child 0x0 -> soc 0x1000.
    let outer = cells(&[0x0, 0x0, 0xc00_0000, 0x1_0000]);
    let inner = cells(&[0x0, 0x1000, 0x1000]);
    let dtb = behind_buses(Some(outer.clone()), Some(inner));
    assert_eq!(mmio(&dtb), [HostRange::new(HostPhys(0xc00_1100), 0x100)]);
    // `ranges;` is the identity.
    assert_eq!(mmio(&behind_buses(Some(outer), Some(vec![]))), [HostRange::new(HostPhys(0xc00_0100), 0x100)]);
}

#[test]
fn untranslatable_reg_is_refused() {
    assert_error!(
        behind_buses(Some(vec![]), None),
        "/soc/bus/dev@100",
        ErrorKind::RegNotTranslatable { problem: RangesProblem::NoRanges, .. },
        ["reg 0x100..0x200 cannot be translated to a CPU address through /soc/bus", "has no 'ranges'"]
    );
    let outer = cells(&[0x0, 0x0, 0xc00_0000, 0x1_0000]);
    assert_error!(
        behind_buses(Some(outer), Some(cells(&[0x1000, 0x0, 0x1000]))),
        "/soc/bus/dev@100",
        ErrorKind::RegNotTranslatable { problem: RangesProblem::NotCovered { .. }, .. },
        ["ranges: 0x1000..0x2000 -> 0x0"]
    );
    assert_error!(
        behind_buses(Some(cells(&[0x0, 0x0])), Some(vec![])),
        "/soc",
        ErrorKind::MalformedProperty { property: "ranges", .. },
        []
    );
}
