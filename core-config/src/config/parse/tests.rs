//! Parser tests over blobs built here (no `dtc`): the tree structure, the partition properties
//! and rule 10. Devices, channels and warnings are in `tests/`.

use super::*;
use crate::addr::{GuestPhys, HostPhys, HostRange};
use crate::config::dtb_check::{FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAGIC, FDT_PROP, MAX_DEPTH};
use crate::config::{
    Blob, Cpu, FaultPolicy, MemoryRegion, OutsideMemory, HYPERVISOR_COMPATIBLE, PARTITION_COMPATIBLE,
    STAGE2_MAPPINGS,
};
use crate::stage2::Mappings;
use alloc::borrow::ToOwned;
use alloc::format;

/// A property or a node, for building blobs without `dtc`.
#[derive(Clone)]
enum Item {
    Prop(&'static str, Vec<u8>),
    Node(String, Vec<Item>),
}
use Item::{Node, Prop};

fn cells(c: &[u32]) -> Vec<u8> {
    c.iter().flat_map(|c| c.to_be_bytes()).collect()
}
fn string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}
fn node(name: &str, items: Vec<Item>) -> Item {
    Node(name.to_owned(), items)
}

/// Serialises a tree in the layout `dtc` writes (version 17).
fn build(root: Vec<Item>) -> Vec<u8> {
    fn emit(item: &Item, s: &mut Vec<u8>, strings: &mut Vec<u8>) {
        match item {
            Prop(name, value) => {
                let offset = strings.len() as u32;
                strings.extend(string(name));
                s.extend(cells(&[FDT_PROP, value.len() as u32, offset]));
                s.extend(value);
                s.resize(s.len().next_multiple_of(4), 0);
            }
            Node(name, items) => {
                s.extend(cells(&[FDT_BEGIN_NODE]));
                s.extend(string(name));
                s.resize(s.len().next_multiple_of(4), 0);
                items.iter().for_each(|i| emit(i, s, strings));
                s.extend(cells(&[FDT_END_NODE]));
            }
        }
    }
    let (mut s, mut strings) = (Vec::new(), Vec::new());
    emit(&node("", root), &mut s, &mut strings);
    s.extend(cells(&[FDT_END]));
    let (off_struct, off_strings) = (56, 56 + s.len() as u32);
    let total = off_strings + strings.len() as u32;
    let header = [FDT_MAGIC, total, off_struct, off_strings, 40, 17, 16, 0];
    let mut blob = cells(&header);
    blob.extend(cells(&[strings.len() as u32, s.len() as u32, 0, 0, 0, 0]));
    blob.extend(s);
    blob.extend(strings);
    blob
}

/// Phandles of the board's GIC and devices.
const GIC: u32 = 0x20;
const VIRTIO0: u32 = 0x30;
const VIRTIO1: u32 = 0x31;
const RTC: u32 = 0x32;
const UART: u32 = 9;

/// A board device with one `reg` range and one interrupt specifier.
fn device(name: &str, phandle: u32, base: u32, size: u32, irq: [u32; 3]) -> Item {
    let props = vec![
        Prop("compatible", string("virtio,mmio")),
        Prop("reg", cells(&[0, base, 0, size])),
        Prop("interrupts", cells(&irq)),
        Prop("phandle", cells(&[phandle])),
    ];
    node(name, props)
}

/// QEMU virt in miniature: 1 GiB of RAM, two CPUs, a GICv3, a UART, two virtio slots, an RTC.
fn board() -> Vec<Item> {
    let cpu = |n: u32| {
        let props = vec![
            Prop("device_type", string("cpu")),
            Prop("reg", cells(&[n])),
            Prop("phandle", cells(&[n + 1])),
        ];
        node(&format!("cpu@{n}"), props)
    };
    let gic = vec![
        Prop("compatible", string("arm,gic-v3")),
        Prop("#interrupt-cells", cells(&[3])),
        Prop("interrupt-controller", vec![]),
        Prop("reg", cells(&[0, 0x800_0000, 0, 0x1_0000, 0, 0x80a_0000, 0, 0xf6_0000])),
        Prop("phandle", cells(&[GIC])),
    ];
    let rtc = vec![
        Prop("compatible", [string("arm,pl031"), string("arm,primecell")].concat()),
        Prop("reg", cells(&[0, 0x901_0000, 0, 0x1000])),
        Prop("interrupts", cells(&[0, 2, 4])),
        Prop("phandle", cells(&[RTC])),
    ];
    vec![
        Prop("#address-cells", cells(&[2])),
        Prop("#size-cells", cells(&[2])),
        Prop("interrupt-parent", cells(&[GIC])),
        node(
            "memory@40000000",
            vec![
                Prop("device_type", string("memory")),
                Prop("reg", cells(&[0, 0x4000_0000, 0, 0x4000_0000])),
            ],
        ),
        node(
            "cpus",
            vec![Prop("#address-cells", cells(&[1])), Prop("#size-cells", cells(&[0])), cpu(0), cpu(1)],
        ),
        node("interrupt-controller@8000000", gic),
        node(
            "pl011@9000000",
            vec![
                Prop("reg", cells(&[0, 0x900_0000, 0, 0x1000])),
                Prop("interrupts", cells(&[0, 1, 4])),
                Prop("phandle", cells(&[UART])),
            ],
        ),
        node("pl031@9010000", rtc),
        device("virtio_mmio@a000000", VIRTIO0, 0xa00_0000, 0x200, [0, 16, 1]),
        device("virtio_mmio@a000200", VIRTIO1, 0xa00_0200, 0x200, [0, 17, 1]),
    ]
}

fn ping() -> Vec<Item> {
    vec![
        Prop("compatible", string(PARTITION_COMPATIBLE)),
        Prop("cpus", cells(&[1])),
        Prop("memory", cells(&[0, 0x4200_0000, 0, 0x100_0000])),
        Prop("image", string("hello.bin")),
    ]
}

fn hypervisor() -> Vec<Item> {
    vec![
        Prop("compatible", string(HYPERVISOR_COMPATIBLE)),
        Prop("memory", cells(&[0, 0x4000_0000, 0, 0x200_0000])),
        Prop("console", cells(&[9])),
    ]
}

/// `items` with property `name` replaced (or removed, for `None`; added if absent).
fn with(mut items: Vec<Item>, name: &'static str, value: Option<Vec<u8>>) -> Vec<Item> {
    let at = items.iter().position(|i| matches!(i, Prop(n, _) if *n == name));
    match (at, value) {
        (Some(at), Some(v)) => items[at] = Prop(name, v),
        (Some(at), None) => drop(items.remove(at)),
        (None, Some(v)) => items.push(Prop(name, v)),
        (None, None) => {}
    }
    items
}

/// `items` with property `name` of child node `node` replaced, removed or added (see [`with`]).
fn edit(items: Vec<Item>, node: &str, name: &'static str, value: Option<Vec<u8>>) -> Vec<Item> {
    items
        .into_iter()
        .map(|i| match i {
            Node(n, children) if n == node => Node(n, with(children, name, value.clone())),
            other => other,
        })
        .collect()
}

fn system(hyp: Vec<Item>, partitions: Vec<(&str, Vec<Item>)>) -> Vec<u8> {
    let mut h = hyp;
    h.extend(partitions.into_iter().map(|(n, p)| node(n, p)));
    let mut root = board();
    root.push(node("hypervisor", h));
    build(root)
}

fn one(partition: Vec<Item>) -> Vec<u8> {
    system(hypervisor(), vec![("ping", partition)])
}

fn errors(dtb: &[u8]) -> Vec<ConfigError> {
    parse(dtb).err().unwrap_or_default()
}

/// The error matching `pattern`, checked to name its node and contain `words`.
macro_rules! assert_error {
    ($dtb:expr, $node:expr, $pattern:pat $(if $guard:expr)?, [$($word:expr),*]) => {
        crate::test_support::assert_config_error!(errors(&$dtb), $node, $pattern $(if $guard)?, [$($word),*])
    };
}

#[test]
fn parses_a_minimal_system() {
    let cfg = parse(&one(ping())).expect("parses");
    assert_eq!(cfg.board.ram, [HostRange::new(HostPhys(0x4000_0000), 0x4000_0000)]);
    assert_eq!(cfg.board.cpus.len(), 2);
    assert_eq!(cfg.board.cpus[1], Cpu { path: "/cpus/cpu@1".into(), phandle: Some(2), hwid: 1 });
    assert_eq!(cfg.hypervisor.memory, HostRange::new(HostPhys(0x4000_0000), 0x200_0000));
    let console = cfg.hypervisor.console.expect("console");
    assert_eq!(console.path, "/pl011@9000000");
    assert_eq!(console.mmio, HostRange::new(HostPhys(0x900_0000), 0x1000));
    let p = &cfg.partitions[0];
    assert_eq!((p.id, p.name.as_str(), p.path.as_str()), (0, "ping", "/hypervisor/ping"));
    assert_eq!(p.cpus, [0]);
    let region =
        MemoryRegion { host: HostPhys(0x4200_0000), guest: GuestPhys(0x4200_0000), size: 0x100_0000 };
    assert_eq!(p.memory, [region]);
    assert_eq!(p.image_path.as_deref(), Some("hello.bin"));
    assert_eq!((p.image, p.guest_dtb, p.image_size_hint), (None, None, None));
    assert_eq!(p.entry, GuestPhys(0x4200_0000));
    assert_eq!((p.on_fault, p.boot_order), (FaultPolicy::Stop, 0));
}

#[test]
fn parses_every_optional_property() {
    let mut sha = [0u8; 32];
    sha[0] = 0xab;
    let p = with(ping(), "memory", Some(cells(&[0, 0x4200_0000, 0, 0x1000, 0, 0x4300_0000, 0, 0x2000])));
    let p = with(p, "guest-addresses", Some(cells(&[0, 0, 0, 0x8000])));
    let p = with(p, "entry", Some(cells(&[0, 0x80])));
    let p = with(p, "on-fault", Some(string("halt-system")));
    let p = with(p, "boot-order", Some(cells(&[7])));
    let p = with(p, "cpus", Some(cells(&[2, 1])));
    let p = with(p, "image", None);
    let p = with(p, "tantalum,image", Some(cells(&[0, 0x100, 0, 0x200])));
    let p = with(p, "tantalum,image-sha256", Some(sha.to_vec()));
    let p = with(p, "tantalum,guest-dtb", Some(cells(&[0, 0x300, 0, 0x40])));
    let p = with(p, "tantalum,guest-dtb-sha256", Some(sha.to_vec()));
    let p = with(p, "unknown-property", Some(cells(&[1, 2, 3])));
    let hyp = with(hypervisor(), "console", None);
    let cfg = parse(&system(hyp, vec![("ping@1", p), ("pong", ping())])).expect("parses");
    assert_eq!(cfg.hypervisor.console, None);
    let p = &cfg.partitions[0];
    assert_eq!((p.name.as_str(), p.path.as_str()), ("ping", "/hypervisor/ping@1"));
    assert_eq!(p.cpus, [1, 0]);
    assert_eq!(p.memory[1].guest, GuestPhys(0x8000));
    assert_eq!(p.memory[1].host, HostPhys(0x4300_0000));
    assert_eq!(p.entry, GuestPhys(0x80));
    assert_eq!((p.on_fault, p.boot_order), (FaultPolicy::HaltSystem, 7));
    assert_eq!(p.image, Some(Blob { offset: 0x100, size: 0x200, sha256: sha }));
    assert_eq!(p.guest_dtb, Some(Blob { offset: 0x300, size: 0x40, sha256: sha }));
    assert_eq!(p.image_path, None);
    assert_eq!(cfg.partitions[1].id, 1);
}

fn defect(dtb: &[u8]) -> DtbDefect {
    match errors(dtb).as_slice() {
        [ConfigError { node, kind: ErrorKind::InvalidDtb(d) }] if node == "/" => *d,
        other => panic!("expected one InvalidDtb error, got {other:#?}"),
    }
}

fn set_word(blob: &mut [u8], at: usize, word: u32) {
    blob[at..at + 4].copy_from_slice(&word.to_be_bytes());
}

#[test]
fn rule_10_refuses_broken_blobs() {
    let good = one(ping());
    assert_eq!(defect(&[]), DtbDefect::Truncated);
    assert_eq!(defect(&good[..good.len() - 1]), DtbDefect::Truncated);
    let mut b = good.clone();
    b[0] = 0;
    assert_eq!(defect(&b), DtbDefect::BadMagic);
    let mut b = good.clone();
    set_word(&mut b, 20, 16);
    assert_eq!(defect(&b), DtbDefect::UnsupportedVersion { version: 16 });
    let mut b = good.clone();
    set_word(&mut b, 36, 0xffff_0000);
    assert_eq!(defect(&b), DtbDefect::BlockOutOfBounds { block: "structure" });
    let mut b = good.clone();
    set_word(&mut b, 12, 0xffff_fff0);
    assert_eq!(defect(&b), DtbDefect::BlockOutOfBounds { block: "strings" });
    // A NOP where the root's first property was.
    let mut b = good.clone();
    set_word(&mut b, 56 + 8, 4);
    assert_eq!(defect(&b), DtbDefect::BadToken { offset: 8, token: 4 });
    // The first property's name offset points past the strings block.
    let mut b = good.clone();
    set_word(&mut b, 56 + 16, 0x7fff_ffff);
    assert_eq!(defect(&b), DtbDefect::BadProperty { offset: 8 });
    // The first property's length runs past the structure block.
    let mut b = good.clone();
    set_word(&mut b, 56 + 12, 0x10_0000);
    assert_eq!(defect(&b), DtbDefect::BadProperty { offset: 8 });
    // No FDT_END: cut the structure block short by one word.
    let mut b = good.clone();
    let size = u32::from_be_bytes(b[36..40].try_into().unwrap());
    set_word(&mut b, 36, size - 4);
    assert_eq!(defect(&b), DtbDefect::Unterminated);
    let text = ConfigError::new("/", ErrorKind::InvalidDtb(DtbDefect::Unterminated)).to_string();
    assert!(text.starts_with("/: not a valid device tree blob"), "{text}");
}

#[test]
fn rule_10_refuses_bad_structure() {
    let after_child = build(vec![node("a", vec![]), Prop("late", cells(&[1]))]);
    assert!(matches!(defect(&after_child), DtbDefect::PropertyAfterChild { .. }));
    let mut deep = node("leaf", vec![]);
    for _ in 0..MAX_DEPTH {
        deep = node("n", vec![deep]);
    }
    assert_eq!(defect(&build(vec![deep])), DtbDefect::TooDeep { max: MAX_DEPTH });
    let slash = build(vec![node("a/b", vec![])]);
    assert!(matches!(defect(&slash), DtbDefect::BadNodeName { .. }));
    let unnamed = build(vec![node("", vec![])]);
    assert!(matches!(defect(&unnamed), DtbDefect::BadNodeName { .. }));
}

#[test]
fn never_panics_on_any_prefix_or_single_byte_change() {
    let good = system(hypervisor(), vec![("ping", ping()), ("pong", ping())]);
    for len in 0..good.len() {
        let _ = parse(&good[..len]);
    }
    for at in 0..good.len() {
        for value in [0x00, 0x01, 0x03, 0x09, 0x7f, 0xff] {
            let mut b = good.clone();
            b[at] = value;
            let _ = parse(&b);
        }
    }
}

#[test]
fn rule_10_missing_nodes() {
    assert_error!(build(board()), "/hypervisor", ErrorKind::MissingNode, ["required node is missing"]);
    let no_cpus: Vec<Item> =
        board().into_iter().filter(|i| !matches!(i, Node(n, _) if n == "cpus")).collect();
    let mut root = no_cpus;
    root.push(node("hypervisor", hypervisor()));
    assert_error!(build(root), "/cpus", ErrorKind::MissingNode, ["missing"]);
}

#[test]
fn rule_10_hypervisor_compatible() {
    let hyp = with(hypervisor(), "compatible", Some(string("other,thing")));
    let dtb = system(hyp, vec![("ping", ping())]);
    assert_error!(
        dtb,
        "/hypervisor",
        ErrorKind::BadCompatible { .. },
        ["\"other,thing\"", HYPERVISOR_COMPATIBLE]
    );
    let hyp = with(hypervisor(), "compatible", None);
    let dtb = system(hyp, vec![("ping", ping())]);
    assert_error!(
        dtb,
        "/hypervisor",
        ErrorKind::MissingProperty { property: "compatible" },
        ["missing required property 'compatible'"]
    );
}

#[test]
fn rule_10_unknown_child_of_hypervisor() {
    let dtb = system(hypervisor(), vec![("ping", ping()), ("chan", vec![])]);
    assert_error!(
        dtb,
        "/hypervisor/chan",
        ErrorKind::UnknownNode { compatible: None },
        ["unknown node", PARTITION_COMPATIBLE]
    );
}

#[test]
fn rule_10_missing_properties() {
    for property in ["cpus", "memory", "image"] {
        let dtb = one(with(ping(), property, None));
        let text = assert_error!(dtb, "/hypervisor/ping", ErrorKind::MissingProperty { .. }, []);
        assert!(text.ends_with(&format!("missing required property '{property}'")), "{text}");
    }
    let dtb = system(with(hypervisor(), "memory", None), vec![("ping", ping())]);
    assert_error!(dtb, "/hypervisor", ErrorKind::MissingProperty { property: "memory" }, []);
}

#[test]
fn rule_10_malformed_properties() {
    let cases: [(&str, Vec<u8>, &str); 9] = [
        ("memory", cells(&[0, 0x4200_0000, 0x100_0000]), "12 bytes"),
        ("memory", Vec::new(), "0 bytes"),
        ("cpus", vec![0, 1], "one or more phandles"),
        ("entry", cells(&[0x4200_0000]), "2 cells"),
        ("boot-order", cells(&[0, 1]), "one 32-bit cell"),
        ("on-fault", cells(&[1]), "a string"),
        ("image", b"no-nul".to_vec(), "a string"),
        ("tantalum,image", cells(&[0, 1, 2]), "4 cells"),
        ("guest-addresses", cells(&[0, 0, 0, 0]), "one 2-cell address per memory region (1 regions"),
    ];
    for (property, value, words) in cases {
        let dtb = one(with(ping(), property, Some(value)));
        let text = assert_error!(
            dtb,
            "/hypervisor/ping",
            ErrorKind::MalformedProperty { .. },
            ["malformed property", words]
        );
        assert!(text.contains(&format!("'{property}'")), "{text}");
    }
    let dtb = system(with(hypervisor(), "memory", Some(cells(&[1]))), vec![("ping", ping())]);
    assert_error!(dtb, "/hypervisor", ErrorKind::MalformedProperty { property: "memory", .. }, []);
    let sha = with(ping(), "tantalum,image", Some(cells(&[0, 0, 0, 16])));
    let dtb = one(with(sha, "tantalum,image-sha256", Some(vec![0; 31])));
    assert_error!(
        dtb,
        "/hypervisor/ping",
        ErrorKind::MalformedProperty { .. },
        ["'tantalum,image-sha256'", "32 bytes"]
    );
}

#[test]
fn rule_10_unknown_fault_policy() {
    let dtb = one(with(ping(), "on-fault", Some(string("reboot"))));
    assert_error!(
        dtb,
        "/hypervisor/ping",
        ErrorKind::UnknownFaultPolicy { .. },
        ["\"reboot\"", "\"stop\"", "\"restart\"", "\"halt-system\""]
    );
}

#[test]
fn rule_10_unknown_outside_memory() {
    let dtb = one(with(ping(), "outside-memory", Some(string("ignore"))));
    assert_error!(
        dtb,
        "/hypervisor/ping",
        ErrorKind::UnknownOutsideMemory { .. },
        ["\"ignore\"", "\"fault\"", "\"external-abort\""]
    );
}

#[test]
fn outside_memory_defaults_to_an_abort_for_linux_only() {
    let policy = |p: Vec<Item>| parse(&one(p)).expect("parses").partitions[0].outside_memory();
    let linux = with(ping(), "initrd", Some(string("initramfs.cpio")));
    assert_eq!(policy(ping()), OutsideMemory::Fault);
    assert_eq!(policy(linux.clone()), OutsideMemory::ExternalAbort);
    assert_eq!(policy(with(linux, "outside-memory", Some(string("fault")))), OutsideMemory::Fault);
    let abort = with(ping(), "outside-memory", Some(string("external-abort")));
    assert_eq!(policy(abort), OutsideMemory::ExternalAbort);
}

/// The system [`one`] builds, with the board root's `tantalum,stage2-mappings` set to `value`.
fn with_stage2_mappings(value: &str) -> Vec<u8> {
    let mut root = board();
    root.insert(0, Prop(STAGE2_MAPPINGS, string(value)));
    root.push(node("hypervisor", [hypervisor(), vec![node("ping", ping())]].concat()));
    build(root)
}

#[test]
fn stage2_mappings_default_to_blocks_and_boards_may_ask_for_pages() {
    assert_eq!(parse(&one(ping())).unwrap().board.stage2_mappings, Mappings::Blocks);
    assert_eq!(parse(&with_stage2_mappings("pages")).unwrap().board.stage2_mappings, Mappings::Pages);
    assert_eq!(parse(&with_stage2_mappings("blocks")).unwrap().board.stage2_mappings, Mappings::Blocks);
    assert_error!(
        with_stage2_mappings("huge"),
        "/",
        ErrorKind::UnknownStage2Mappings { .. },
        ["tantalum,stage2-mappings", "\"huge\"", "\"blocks\"", "\"pages\""]
    );
}

#[test]
fn the_board_places_the_emulated_pages() {
    use crate::vplatform::{Emulated, EmulatedPages};
    assert_eq!(parse(&one(ping())).unwrap().board.emulated, EmulatedPages::default(), "none by default");
    let mut root = board();
    root.insert(0, Prop("tantalum,virtual-uart", cells(&[0, 0xf000_0000])));
    root.insert(0, Prop("tantalum,doorbells", cells(&[0x1, 0x0010_0000])));
    root.insert(0, Prop("tantalum,virtio", cells(&[0, 0xf020_0000])));
    root.push(node("hypervisor", [hypervisor(), vec![node("ping", ping())]].concat()));
    let pages = parse(&build(root)).unwrap().board.emulated;
    assert_eq!(pages.base(Emulated::VirtualUart), Some(GuestPhys(0xf000_0000)));
    assert_eq!(pages.base(Emulated::Doorbells), Some(GuestPhys(0x1_0010_0000)));
    assert_eq!(pages.base(Emulated::Virtio), Some(GuestPhys(0xf020_0000)));
    // One cell is not an address.
    let mut root = board();
    root.insert(0, Prop("tantalum,doorbells", cells(&[0x0b00_0000])));
    root.push(node("hypervisor", [hypervisor(), vec![node("ping", ping())]].concat()));
    assert_error!(build(root), "/", ErrorKind::MalformedProperty { property: "tantalum,doorbells", .. }, []);
}

#[test]
fn rule_6_cpu_phandles_must_name_board_cpus() {
    let dtb = one(with(ping(), "cpus", Some(cells(&[1, 0x77]))));
    assert_error!(
        dtb,
        "/hypervisor/ping",
        ErrorKind::UnresolvedPhandle { phandle: 0x77, .. },
        ["cpus", "phandle 0x77"]
    );
    let dtb = one(with(ping(), "cpus", Some(cells(&[9]))));
    assert_error!(
        dtb,
        "/hypervisor/ping",
        ErrorKind::NotACpu { phandle: 9, .. },
        ["/pl011@9000000", "not a CPU"]
    );
}

#[test]
fn rule_10_console_must_resolve_to_a_device_with_reg() {
    let dtb = system(with(hypervisor(), "console", Some(cells(&[0x55]))), vec![("ping", ping())]);
    assert_error!(
        dtb,
        "/hypervisor",
        ErrorKind::UnresolvedPhandle { property: "console", .. },
        ["console", "0x55"]
    );
    // A console device without `reg`:
    let mut root = board();
    root.push(node("dev", vec![Prop("phandle", cells(&[0x60]))]));
    let mut h = with(hypervisor(), "console", Some(cells(&[0x60])));
    h.push(node("ping", ping()));
    root.push(node("hypervisor", h));
    assert_error!(build(root), "/dev", ErrorKind::MissingProperty { property: "reg" }, []);
}

#[test]
fn rule_10_blob_needs_its_hash() {
    let dtb = one(with(ping(), "tantalum,guest-dtb", Some(cells(&[0, 0, 0, 16]))));
    assert_error!(
        dtb,
        "/hypervisor/ping",
        ErrorKind::IncompleteBlob { .. },
        ["'tantalum,guest-dtb' without 'tantalum,guest-dtb-sha256'"]
    );
    let dtb = one(with(ping(), "tantalum,image-sha256", Some(vec![0; 32])));
    assert_error!(
        dtb,
        "/hypervisor/ping",
        ErrorKind::IncompleteBlob { present: "tantalum,image-sha256", .. },
        ["without 'tantalum,image'"]
    );
}

#[test]
fn rule_10_unsupported_cells() {
    let mut root = with(board(), "#address-cells", Some(cells(&[3])));
    root.push(node("hypervisor", hypervisor()));
    assert_error!(
        build(root),
        "/",
        ErrorKind::UnsupportedCells { address_cells: 3, size_cells: 2 },
        ["#address-cells = 3"]
    );
    let mut root = with(board(), "#size-cells", Some(vec![0, 0]));
    root.push(node("hypervisor", hypervisor()));
    assert_error!(build(root), "/", ErrorKind::MalformedProperty { property: "#size-cells", .. }, []);
}

#[test]
fn collects_errors_from_every_partition() {
    let bad = with(ping(), "memory", None);
    let worse = with(with(ping(), "cpus", None), "on-fault", Some(string("?")));
    let errors = errors(&system(hypervisor(), vec![("a", bad), ("b", worse), ("c", ping())]));
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_eq!(errors[0].node, "/hypervisor/a");
    assert!(errors[1..].iter().all(|e| e.node == "/hypervisor/b"));
}

// After the helpers and `assert_error!`, which they use.
mod channels;
mod devices;
mod ranges;
mod warnings;
mod x86;
