//! An x86 board (`config/x86.rs`): the APICs, ISA I/O ports, the 16550 console, and rule 16.

use super::*;
#[cfg(feature = "x86")]
use crate::config::x86::IoPorts;
use crate::config::x86::X86Problem;
#[cfg(feature = "x86")]
use crate::config::{validate, BuildFacts, WarningKind};

const LAPIC: u32 = 0x40;
const IOAPIC: u32 = 0x41;
const COM1: u32 = 0x42;
const COM2: u32 = 0x43;

fn isa_device(name: &str, phandle: u32, ports: &[(u32, u32)]) -> Item {
    let reg: Vec<u32> = ports.iter().flat_map(|&(base, count)| [1, base, count]).collect();
    node(
        name,
        vec![
            Prop("compatible", string("ns16550a")),
            Prop("reg", cells(&reg)),
            Prop("interrupts", cells(&[4, 0])),
            Prop("phandle", cells(&[phandle])),
        ],
    )
}

/// The Bochs PC in miniature: RAM below 640 KiB and from 1 MiB, two CPUs, the APICs, COM1/COM2.
fn pc(com2: &[(u32, u32)]) -> Vec<Item> {
    let cpu =
        |n: u32| node(&format!("cpu@{n}"), vec![Prop("reg", cells(&[n])), Prop("phandle", cells(&[n + 1]))]);
    let apic = |compatible: &str, base: u32, phandle: u32| {
        vec![
            Prop("compatible", string(compatible)),
            Prop("interrupt-controller", vec![]),
            Prop("#interrupt-cells", cells(&[2])),
            Prop("reg", cells(&[0, base, 0, 0x1000])),
            Prop("phandle", cells(&[phandle])),
        ]
    };
    vec![
        Prop("#address-cells", cells(&[2])),
        Prop("#size-cells", cells(&[2])),
        Prop("interrupt-parent", cells(&[IOAPIC])),
        node(
            "memory@0",
            vec![
                Prop("device_type", string("memory")),
                Prop("reg", cells(&[0, 0, 0, 0x9_f000, 0, 0x10_0000, 0, 0xfef_0000])),
            ],
        ),
        node(
            "cpus",
            vec![Prop("#address-cells", cells(&[1])), Prop("#size-cells", cells(&[0])), cpu(0), cpu(1)],
        ),
        node("interrupt-controller@fee00000", apic("intel,ce4100-lapic", 0xfee0_0000, LAPIC)),
        node("interrupt-controller@fec00000", apic("intel,ce4100-ioapic", 0xfec0_0000, IOAPIC)),
        node(
            "isa",
            vec![
                Prop("compatible", string("isa")),
                Prop("#address-cells", cells(&[2])),
                Prop("#size-cells", cells(&[1])),
                isa_device("serial@i3f8", COM1, &[(0x3f8, 8)]),
                isa_device("serial@i2f8", COM2, com2),
            ],
        ),
    ]
}

fn x86_partition(base: u32, cpu: u32) -> Vec<Item> {
    vec![
        Prop("compatible", string(PARTITION_COMPATIBLE)),
        Prop("cpus", cells(&[cpu])),
        Prop("memory", cells(&[0, base, 0, 0x100_0000])),
        Prop("tantalum,image", cells(&[0, 0x1000, 0, 0x1000])),
        Prop("tantalum,image-sha256", vec![0; 32]),
    ]
}

fn x86_system(com2: &[(u32, u32)], partitions: Vec<(&str, Vec<Item>)>) -> Vec<u8> {
    let hyp = vec![
        Prop("compatible", string(HYPERVISOR_COMPATIBLE)),
        Prop("memory", cells(&[0, 0x10_0000, 0, 0xf0_0000])),
        Prop("console", cells(&[COM1])),
    ];
    let mut h = hyp;
    h.extend(partitions.into_iter().map(|(name, items)| node(name, items)));
    let mut root = pc(com2);
    root.push(node("hypervisor", h));
    build(root)
}

#[cfg(feature = "x86")]
fn rule_errors(dtb: &[u8]) -> Vec<ErrorKind> {
    let cfg = parse(dtb).unwrap_or_else(|e| panic!("{e:#?}"));
    let facts = BuildFacts { payload_size: Some(0x10_0000), ..Default::default() };
    validate(&cfg, &facts).err().unwrap_or_default().into_iter().map(|e| e.kind).collect()
}

#[cfg(feature = "x86")]
#[test]
fn parses_an_x86_board() {
    let dtb = x86_system(&[(0x2f8, 8)], vec![("ping", x86_partition(0x100_0000, 1))]);
    let cfg = parse(&dtb).unwrap_or_else(|e| panic!("{e:#?}"));
    let x86 = cfg.board.x86.as_ref().expect("an x86 board");
    assert_eq!(x86.lapic.mmio, HostRange::new(HostPhys(0xfee0_0000), 0x1000));
    assert_eq!(x86.ioapics.len(), 1);
    assert_eq!(x86.ports_of("/isa/serial@i3f8"), [IoPorts { base: 0x3f8, count: 8 }]);
    assert!(cfg.board.gic.is_none());
    assert_eq!(cfg.board.ram.len(), 2);
    let console = cfg.hypervisor.console.as_ref().expect("console");
    assert_eq!((console.path.as_str(), console.mmio.size), ("/isa/serial@i3f8", 0));
    assert_eq!(rule_errors(&dtb), []);
    // An Arm board is no x86 board.
    assert_eq!(parse(&one(ping())).map(|c| c.board.x86.is_none()), Ok(true));
}

#[cfg(feature = "x86")]
#[test]
fn rule_16_memory_clear_of_the_legacy_hole_and_the_apics() {
    let dtb = x86_system(&[(0x2f8, 8)], vec![("ping", x86_partition(0x0, 1))]);
    let errors = rule_errors(&dtb);
    assert!(errors.iter().any(|e| matches!(e, ErrorKind::X86(X86Problem::LegacyHole { .. }))), "{errors:?}");
    let dtb = x86_system(&[(0x2f8, 8)], vec![("ping", x86_partition(0xfec0_0000, 1))]);
    let errors = rule_errors(&dtb);
    assert!(
        errors.iter().any(|e| matches!(e, ErrorKind::X86(X86Problem::MemoryOverApic { .. }))),
        "{errors:?}"
    );
}

#[cfg(feature = "x86")]
#[test]
fn rule_16_ports_and_apics_belong_to_one_owner() {
    // COM2's ports overlap COM1's.
    let dtb = x86_system(&[(0x3f8, 2)], vec![("ping", x86_partition(0x100_0000, 1))]);
    let errors = rule_errors(&dtb);
    assert!(
        errors.iter().any(|e| matches!(e, ErrorKind::X86(X86Problem::PortsOverlap { .. }))),
        "{errors:?}"
    );
    let dtb = x86_system(&[(0xfffc, 8)], vec![("ping", x86_partition(0x100_0000, 1))]);
    assert!(rule_errors(&dtb)
        .iter()
        .any(|e| matches!(e, ErrorKind::X86(X86Problem::PortsOutOfRange { .. }))));
    // A partition takes the IOAPIC.
    let mut ping = x86_partition(0x100_0000, 1);
    ping.push(Prop("devices", cells(&[IOAPIC])));
    let errors = rule_errors(&x86_system(&[(0x2f8, 8)], vec![("ping", ping)]));
    assert!(
        errors.iter().any(|e| matches!(e, ErrorKind::X86(X86Problem::ApicPassthrough { .. }))),
        "{errors:?}"
    );
    // COM2 to one partition: fine; the console to one: refused as on Arm.
    let mut ping = x86_partition(0x100_0000, 1);
    ping.push(Prop("devices", cells(&[COM2])));
    assert_eq!(rule_errors(&x86_system(&[(0x2f8, 8)], vec![("ping", ping.clone())])), []);
    let mut pong = x86_partition(0x200_0000, 2);
    pong.push(Prop("devices", cells(&[COM1])));
    let errors = rule_errors(&x86_system(&[(0x2f8, 8)], vec![("ping", ping), ("pong", pong)]));
    assert!(errors.iter().any(|e| matches!(e, ErrorKind::ConsolePassthrough { .. })), "{errors:?}");
}

#[cfg(feature = "x86")]
#[test]
fn rule_16_the_console_is_a_16550_on_ports() {
    let mut h = pc(&[(0x2f8, 8)]);
    // Make COM1 an MMIO-less node outside the ISA bus: no ports.
    h.push(node(
        "uart",
        vec![
            Prop("compatible", string("ns16550a")),
            Prop("reg", cells(&[0, 0xfed0_0000, 0, 8])),
            Prop("phandle", cells(&[0x50])),
        ],
    ));
    h.push(node(
        "hypervisor",
        vec![
            Prop("compatible", string(HYPERVISOR_COMPATIBLE)),
            Prop("memory", cells(&[0, 0x10_0000, 0, 0xf0_0000])),
            Prop("console", cells(&[0x50])),
            node("ping", x86_partition(0x100_0000, 1)),
        ],
    ));
    let errors = rule_errors(&build(h));
    assert!(
        errors.iter().any(|e| matches!(e, ErrorKind::X86(X86Problem::ConsoleNotPortUart { .. }))),
        "{errors:?}"
    );
}

#[cfg(feature = "x86")]
#[test]
fn rule_16_the_virtual_uart_is_on_ports_of_its_own() {
    // `virtual-uart;` on an x86 board needs no emulated page: it is COM1 in the partition's ports.
    let mut ping = x86_partition(0x100_0000, 1);
    ping.push(Prop("virtual-uart", vec![]));
    assert_eq!(rule_errors(&x86_system(&[(0x2f8, 8)], vec![("ping", ping.clone())])), []);
    // A device of its own at 0x3f8..0x400 (here a COM2 node moved there) would share them.
    ping.push(Prop("devices", cells(&[COM2])));
    let errors = rule_errors(&x86_system(&[(0x3f0, 9)], vec![("ping", ping)]));
    let expected = X86Problem::VirtualUartPorts {
        device: String::from("/isa/serial@i2f8"),
        ports: IoPorts { base: 0x3f0, count: 9 },
    };
    assert!(errors.contains(&ErrorKind::X86(expected.clone())), "{errors:?}");
    assert_eq!(
        format!("{expected}"),
        "devices: /isa/serial@i2f8 (ports 0x3f0..0x3f9) overlaps the virtual UART's ports 0x3f8..0x400 \
         (COM1 in the partition's port space, virtual-uart;): drop one of them"
    );
}

#[cfg(feature = "x86")]
#[test]
fn rule_16_a_platform_wide_device_only_with_owns_platform() {
    // COM2 marked as the board marks PCI configuration mechanism #1 (any value marks it).
    let marked = |mark: Vec<u8>| {
        let mut root = pc(&[(0x2f8, 8)]);
        fn named(name: &'static str) -> impl Fn(&&mut Item) -> bool {
            move |i| matches!(i, Node(n, _) if n == name)
        }
        let Some(Node(_, isa)) = root.iter_mut().find(named("isa")) else {
            panic!("no isa node");
        };
        let Some(Node(_, com2)) = isa.iter_mut().find(named("serial@i2f8")) else {
            panic!("no COM2");
        };
        com2.push(Prop("tantalum,platform-wide", mark));
        root
    };
    let system = |mark: Vec<u8>, owns: bool| {
        let mut guest = x86_partition(0x100_0000, 1);
        guest.push(Prop("devices", cells(&[COM2])));
        if owns {
            guest.push(Prop("owns-platform", vec![]));
        }
        let mut root = marked(mark);
        root.push(node(
            "hypervisor",
            vec![
                Prop("compatible", string(HYPERVISOR_COMPATIBLE)),
                Prop("memory", cells(&[0, 0x10_0000, 0, 0xf0_0000])),
                Prop("console", cells(&[COM1])),
                node("guest", guest),
            ],
        ));
        build(root)
    };
    let cfg = parse(&system(vec![], false)).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(cfg.board.x86.map(|x| x.platform_wide), Some(vec![String::from("/isa/serial@i2f8")]));
    let expected =
        ErrorKind::X86(X86Problem::PlatformWideDevice { device: String::from("/isa/serial@i2f8") });
    assert_eq!(rule_errors(&system(vec![], false)), std::slice::from_ref(&expected));
    assert_eq!(rule_errors(&system(cells(&[0]), false)), std::slice::from_ref(&expected));
    assert_eq!(expected.code(), 111);
    assert_eq!(rule_errors(&system(vec![], true)), []);
    // Every tool warns of it; of a stale `owns-platform;` (no such device) too.
    let kinds = |dtb: &[u8]| -> Vec<WarningKind> {
        let (_, warnings) = parse_with_warnings(dtb).unwrap_or_else(|e| panic!("{e:#?}"));
        warnings.into_iter().map(|w| w.kind).collect()
    };
    let com2 = vec![String::from("/isa/serial@i2f8")];
    assert_eq!(kinds(&system(vec![], true)), [WarningKind::OwnsPlatform { devices: com2 }]);
    let mut stale = x86_partition(0x100_0000, 1);
    stale.push(Prop("owns-platform", vec![]));
    let stale = x86_system(&[(0x2f8, 8)], vec![("guest", stale)]);
    assert_eq!(kinds(&stale), [WarningKind::OwnsPlatform { devices: vec![] }]);
    // Unmarked, the same device needs no such declaration.
    let mut plain = x86_partition(0x100_0000, 1);
    plain.push(Prop("devices", cells(&[COM2])));
    assert_eq!(rule_errors(&x86_system(&[(0x2f8, 8)], vec![("guest", plain)])), []);
}

/// Without the x86 rules (the aarch64 hypervisor's build: `cargo test -p tantalum-config
/// --no-default-features --features messages`), an x86 board is refused as a whole, at its local
/// APIC, and no board is given an x86 platform; an Arm board parses as before.
#[cfg(not(feature = "x86"))]
#[test]
fn without_the_x86_rules_an_x86_board_is_refused() {
    let dtb = x86_system(&[(0x2f8, 8)], vec![("ping", x86_partition(0x100_0000, 1))]);
    let errors = parse(&dtb).expect_err("an x86 board without the x86 rules");
    let at_lapic = errors.iter().filter(|e| e.node == "/interrupt-controller@fee00000");
    assert_eq!(at_lapic.map(|e| &e.kind).collect::<Vec<_>>(), [&ErrorKind::X86(X86Problem::NoX86Rules)]);
    assert_eq!(ErrorKind::X86(X86Problem::NoX86Rules).code(), 112);
    assert_eq!(parse(&one(ping())).map(|c| c.board.x86.is_none()), Ok(true));
}
