//! Rules 1 to 11 on hand-built configs; devices and channels are in `tests/`.

use super::*;
use crate::addr::GuestPhys;
use crate::config::{
    Board, ChannelConfig, Cpu, DeviceAssignment, DeviceRef, FaultPolicy, Gic, HypervisorConfig, Interrupt,
    PARTITION_COMPATIBLE,
};
use alloc::format;
use alloc::string::String;

const MIB: u64 = 1 << 20;

fn region(host: u64, size: u64) -> MemoryRegion {
    MemoryRegion { host: HostPhys(host), guest: GuestPhys(host), size }
}

fn partition(id: u16, name: &str, cpu: usize, base: u64) -> PartitionConfig {
    PartitionConfig {
        id,
        name: name.into(),
        path: format!("/hypervisor/{name}"),
        cpus: vec![cpu],
        memory: vec![region(base, 16 * MIB)],
        image_path: Some("hello.bin".into()),
        image: None,
        guest_dtb: None,
        image_size_hint: None,
        entry: GuestPhys(base),
        on_fault: FaultPolicy::Stop,
        boot_order: u32::from(id),
        ..Default::default()
    }
}

/// `configs/demo.dts`, as `parse` returns it.
fn demo() -> SystemConfig {
    let cpu = |n: u64| Cpu { path: format!("/cpus/cpu@{n}"), phandle: Some(n as u32 + 1), hwid: n };
    SystemConfig {
        board: Board {
            ram: vec![HostRange::new(HostPhys(0x4000_0000), 1024 * MIB)],
            cpus: (0..4).map(cpu).collect(),
            gic: None,
            stage2_mappings: Default::default(),
            emulated: crate::test_support::qemu_virt_emulated(),
            ..Default::default()
        },
        hypervisor: HypervisorConfig {
            memory: HostRange::new(HostPhys(0x4000_0000), 32 * MIB),
            console: Some(DeviceRef {
                path: "/pl011@9000000".into(),
                mmio: HostRange::new(HostPhys(0x900_0000), 0x1000),
                interrupts: vec![],
                compatible: vec!["arm,pl011".into(), "arm,primecell".into()],
            }),
            benchmark_pmu: false,
        },
        partitions: vec![partition(0, "ping", 0, 0x4200_0000), partition(1, "pong", 1, 0x4300_0000)],
        channels: vec![],
        virtio: vec![],
        disks: vec![],
    }
}

fn device(path: &str, base: u64, size: u64, spi: u32) -> DeviceAssignment {
    DeviceAssignment {
        path: path.into(),
        mmio: vec![HostRange::new(HostPhys(base), size)],
        interrupts: vec![Interrupt { kind: Interrupt::SPI, number: spi, flags: 4 }],
        region: None,
        compatible: vec!["virtio,mmio".into()],
        ..Default::default()
    }
}

fn channel(id: usize, name: &str, endpoints: &[u16], base: u64, size: u64) -> ChannelConfig {
    ChannelConfig {
        id,
        name: name.into(),
        path: format!("/hypervisor/channels/{name}"),
        endpoints: endpoints.to_vec(),
        memory: HostRange::new(HostPhys(base), size),
        guest: vec![GuestPhys(base); endpoints.len()],
        writer: None,
    }
}

/// The demo with a GIC, devices (ping: both virtio slots, which share a page; pong: the RTC), a
/// virtual UART in ping, and two channels: `duplex` (host address) and `one-way` (pong writes,
/// seen at 0x10000000 by both).
fn rich() -> SystemConfig {
    let mut cfg = demo();
    cfg.board.gic = Some(Gic {
        path: "/interrupt-controller@8000000".into(),
        phandle: Some(0x8000),
        ..crate::test_support::qemu_virt_gic()
    });
    cfg.partitions[0].devices = vec![
        device("/virtio_mmio@a000000", 0xa00_0000, 0x200, 16),
        device("/virtio_mmio@a000200", 0xa00_0200, 0x200, 17),
    ];
    cfg.partitions[0].virtual_uart = true;
    cfg.partitions[1].devices = vec![device("/pl031@9010000", 0x901_0000, 0x1000, 2)];
    let mut one_way = channel(1, "one-way", &[1, 0], 0x4401_0000, 0x3000);
    one_way.guest = vec![GuestPhys(0x1000_0000); 2];
    one_way.writer = Some(1);
    cfg.channels = vec![channel(0, "duplex", &[0, 1], 0x4400_0000, 0x1_0000), one_way];
    cfg
}

const NONE: BuildFacts = BuildFacts { boot_image: None, payload_size: None, map: None };

fn blob(offset: u64, size: u64) -> Option<Blob> {
    Some(Blob { offset, size, sha256: [0; 32] })
}

fn errors(cfg: &SystemConfig, facts: &BuildFacts) -> Vec<ConfigError> {
    validate(cfg, facts).err().unwrap_or_default()
}

/// The error matching `pattern`, checked to name `node` and contain `words`.
macro_rules! assert_rule {
    ($cfg:expr, $facts:expr, $node:expr, $pattern:pat $(if $guard:expr)?, [$($word:expr),*]) => {
        crate::test_support::assert_config_error!(
            errors(&$cfg, &$facts), $node, $pattern $(if $guard)?, [$($word),*]
        )
    };
}

#[test]
fn a_partition_waits_only_for_lower_boot_orders() {
    let mut cfg = demo(); // ping: boot order 0, pong: 1
    assert!(cfg.waits_for(1, 0));
    assert!(!cfg.waits_for(0, 1));
    assert!(!cfg.waits_for(0, 0));
    assert!(!cfg.waits_for(1, 7), "no such partition");
    cfg.partitions[1].boot_order = 0;
    assert!(!cfg.waits_for(1, 0), "equal orders start independently");
}

#[test]
fn demo_is_valid() {
    assert_eq!(validate(&demo(), &NONE), Ok(()));
    // As the boot image would carry it: built blobs, inside the payload and the memory.
    let mut cfg = demo();
    for p in &mut cfg.partitions {
        p.image = blob(0x1000 * u64::from(p.id), 0x1000);
        p.guest_dtb = blob(0x8000, GUEST_DTB_RESERVE);
        p.image_size_hint = Some(15 * MIB);
    }
    let facts = BuildFacts {
        boot_image: Some(HostRange::new(HostPhys(0x4008_0000), 0x100_0000)),
        payload_size: Some(0x8000 + GUEST_DTB_RESERVE),
        map: None,
    };
    assert_eq!(validate(&cfg, &facts), Ok(()));
}

#[test]
fn rule_1_counts() {
    let mut cfg = demo();
    cfg.partitions.clear();
    assert_rule!(cfg, NONE, "/hypervisor", ErrorKind::NoPartitions, ["no partitions", PARTITION_COMPATIBLE]);

    let mut cfg = demo();
    cfg.board.ram = vec![HostRange::new(HostPhys(0), 1 << 40)];
    cfg.partitions = (0..=MAX_PARTITIONS as u16)
        .map(|i| partition(i, &format!("p{i}"), 0, 0x8000_0000 + u64::from(i) * 16 * MIB))
        .collect();
    assert_rule!(
        cfg,
        NONE,
        "/hypervisor",
        ErrorKind::TooManyPartitions { count: 17, max: 16 },
        ["17 partitions", "maximum of 16"]
    );

    let mut cfg = demo();
    let extra = (4..=MAX_CPUS as u64).map(|n| Cpu { path: format!("/cpus/cpu@{n}"), phandle: None, hwid: n });
    cfg.board.cpus.extend(extra);
    assert_rule!(cfg, NONE, "/cpus", ErrorKind::TooManyCpus { count: 9, max: 8 }, ["9 CPUs", "8"]);

    let mut cfg = demo();
    cfg.board.ram.clear();
    assert_rule!(cfg, NONE, "/", ErrorKind::NoRam, ["no RAM", "/memory@"]);

    let mut cfg = demo();
    cfg.partitions[1].id = 5;
    assert_rule!(cfg, NONE, "/hypervisor/pong", ErrorKind::IdMismatch { id: 5, index: 1 }, ["id 5"]);
}

#[test]
fn rule_2_names() {
    let cases: [(&str, NameProblem, &str); 4] = [
        ("", NameProblem::Empty, "is empty"),
        ("abcdefghijklmnopqrstuvwxyz012345", NameProblem::TooLong { max: 31 }, "longer than 31"),
        ("Ping", NameProblem::BadChar('P'), "'P'"),
        ("pi.ng", NameProblem::BadChar('.'), "'.'"),
    ];
    for (name, problem, words) in cases {
        let mut cfg = demo();
        cfg.partitions[0].name = name.into();
        assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::InvalidName { problem: p, .. } if p == problem,
            ["partition name", words]);
    }
    let mut cfg = demo();
    cfg.partitions[0].name = "a_b-31-characters-long-is-fine0".into();
    assert_eq!(validate(&cfg, &NONE), Ok(()));
    cfg.partitions[1].name = cfg.partitions[0].name.clone();
    assert_rule!(cfg, NONE, "/hypervisor/pong", ErrorKind::DuplicateName { .. }, ["/hypervisor/ping"]);
}

#[test]
fn rule_3_region_shape() {
    let ping = "/hypervisor/ping";
    let mut cfg = demo();
    cfg.partitions[0].memory[0] = region(0x4200_0000, 0);
    assert_rule!(cfg, NONE, ping, ErrorKind::EmptyMemory { .. }, ["0x42000000", "size 0"]);
    // The default entry of an empty region is not reported on top.
    assert_eq!(errors(&cfg, &NONE).len(), 1);

    let mut cfg = demo();
    cfg.partitions[0].memory[0] = region(0x4200_0100, 0x1000);
    cfg.partitions[0].entry = GuestPhys(0x4200_0100);
    let text = assert_rule!(cfg, NONE, ping, ErrorKind::UnalignedMemory { .. }, []);
    assert_eq!(
        text,
        "/hypervisor/ping: memory 0x42000100..0x42001100 is not 4 KiB aligned \
        (base and size must be multiples of 0x1000)"
    );
    assert_eq!(errors(&cfg, &NONE).len(), 1, "the identity guest address is not reported again");
    cfg.partitions[0].memory[0] = region(0x4200_0000, 0x1800);
    assert_rule!(cfg, NONE, ping, ErrorKind::UnalignedMemory { .. }, ["0x42000000..0x42001800"]);

    let mut cfg = demo();
    cfg.partitions[0].memory[0] = region(u64::MAX - 0xfff, 0x2000);
    assert_rule!(cfg, NONE, ping, ErrorKind::MemoryOverflow { guest: false, .. }, ["wraps"]);

    let mut cfg = demo();
    cfg.partitions[0].memory.clear();
    assert_rule!(cfg, NONE, ping, ErrorKind::NoMemory, ["no memory regions"]);
}

#[test]
fn rule_3_inside_ram() {
    let mut cfg = demo();
    cfg.partitions[0].memory[0] = region(0x7ff0_0000, 2 * MIB);
    cfg.partitions[0].entry = GuestPhys(0x7ff0_0000);
    let text = assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::OutsideRam { .. }, []);
    assert_eq!(
        text,
        "/hypervisor/ping: memory 0x7ff00000..0x80100000 is not inside the board's RAM \
        (RAM: 0x40000000..0x80000000)"
    );
    // Straddling two adjacent RAM ranges is not "inside one range" either.
    cfg.board.ram.push(HostRange::new(HostPhys(0x8000_0000), 1024 * MIB));
    assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::OutsideRam { .. }, ["0x80000000..0xc0000000"]);
}

#[test]
fn rule_3_overlaps() {
    let mut cfg = demo();
    cfg.partitions[1].memory[0] = region(0x4280_0000, 16 * MIB);
    cfg.partitions[1].entry = GuestPhys(0x4280_0000);
    let text = assert_rule!(cfg, NONE, "/hypervisor/pong", ErrorKind::Overlap { .. }, []);
    assert_eq!(
        text,
        "/hypervisor/pong: memory 0x42800000..0x43800000 overlaps /hypervisor/ping \
        (0x42000000..0x43000000)"
    );
    let overlaps = errors(&cfg, &NONE).into_iter().filter(|e| matches!(e.kind, ErrorKind::Overlap { .. }));
    assert_eq!(overlaps.count(), 1, "each pair once");

    let mut cfg = demo();
    cfg.partitions[0].memory.push(region(0x4280_0000, MIB));
    assert_rule!(
        cfg,
        NONE,
        "/hypervisor/ping",
        ErrorKind::Overlap { .. },
        ["0x42800000..0x42900000 overlaps /hypervisor/ping (0x42000000..0x43000000)"]
    );

    let mut cfg = demo();
    cfg.partitions[0].memory[0] = region(0x41f0_0000, 16 * MIB);
    cfg.partitions[0].entry = GuestPhys(0x41f0_0000);
    let text = assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::OverlapsHypervisor { .. }, []);
    assert!(
        text.ends_with(
            "memory 0x41f00000..0x42f00000 overlaps the hypervisor's memory \
        (/hypervisor 0x40000000..0x42000000)"
        ),
        "{text}"
    );
}

#[test]
fn rule_3_guest_ranges() {
    let ping = "/hypervisor/ping";
    let set_apart = |guest: u64| {
        let mut cfg = demo();
        cfg.partitions[0].memory[0].guest = GuestPhys(guest);
        cfg.partitions[0].entry = GuestPhys(guest);
        cfg
    };
    assert_eq!(validate(&set_apart(0), &NONE), Ok(()));
    assert_rule!(
        set_apart(0x100),
        NONE,
        ping,
        ErrorKind::UnalignedGuest { region: 0, .. },
        ["guest 0x100", "4 KiB"]
    );
    assert_rule!(
        set_apart(u64::MAX - 0xfff),
        NONE,
        ping,
        ErrorKind::MemoryOverflow { guest: true, .. },
        ["guest memory", "wraps"]
    );
    assert_rule!(
        set_apart(IPA_LIMIT - MIB),
        NONE,
        ping,
        ErrorKind::AboveIpaLimit { region: 0, .. },
        ["0x8000f00000", "IPA limit 0x8000000000"]
    );
    assert_eq!(validate(&set_apart(IPA_LIMIT - 16 * MIB), &NONE), Ok(()));

    let mut cfg = demo();
    let p = &mut cfg.partitions[0];
    p.memory = vec![region(0x4200_0000, 8 * MIB), region(0x4280_0000, 8 * MIB)];
    p.memory[0].guest = GuestPhys(0);
    p.memory[1].guest = GuestPhys(0x40_0000);
    p.entry = GuestPhys(0);
    assert_rule!(
        cfg,
        NONE,
        ping,
        ErrorKind::GuestOverlap { region: 1, other_region: 0, .. },
        ["region 1 (at 0x400000) overlaps region 0 (at 0x0)"]
    );
}

#[test]
fn rule_4_hypervisor_memory() {
    let mut cfg = demo();
    cfg.hypervisor.memory = HostRange::new(HostPhys(0x3000_0000), 32 * MIB);
    assert_rule!(cfg, NONE, "/hypervisor", ErrorKind::OutsideRam { .. }, ["0x30000000..0x32000000"]);
    cfg.hypervisor.memory = HostRange::new(HostPhys(0x4000_0800), 32 * MIB);
    assert_rule!(cfg, NONE, "/hypervisor", ErrorKind::UnalignedMemory { .. }, ["4 KiB"]);
    cfg.hypervisor.memory = HostRange::new(HostPhys(0x4000_0000), 0);
    assert_rule!(cfg, NONE, "/hypervisor", ErrorKind::EmptyMemory { .. }, ["size 0"]);

    let facts = BuildFacts {
        boot_image: Some(HostRange::new(HostPhys(0x4008_0000), 0x200_0000)),
        payload_size: None,
        map: None,
    };
    let text = assert_rule!(demo(), facts, "/hypervisor", ErrorKind::BootImageOutside { .. }, []);
    assert_eq!(
        text,
        "/hypervisor: the hypervisor and boot image (0x40080000..0x42080000) do not fit \
        in memory 0x40000000..0x42000000: memory must cover 0x40000000..0x42080000 (0x2080000 bytes)"
    );
}

#[test]
fn rule_5_overcommit() {
    // Overcommit always comes with an overlap when the RAM ranges are disjoint.
    let mut cfg = demo();
    cfg.board.ram = vec![HostRange::new(HostPhys(0x4000_0000), 40 * MIB)];
    cfg.partitions[1].memory[0] = region(0x4200_0000, 8 * MIB);
    cfg.partitions[1].entry = GuestPhys(0x4200_0000);
    cfg.partitions[0].memory[0].size = 8 * MIB;
    let text = assert_rule!(cfg, NONE, "/hypervisor", ErrorKind::Overcommit { .. }, []);
    assert_eq!(
        text,
        "/hypervisor: overcommit: partitions (0x1000000 bytes) plus channels (0x0 bytes) plus \
        hypervisor (0x2000000 bytes) need more than the board's RAM (0x2800000 bytes)"
    );
    assert!(errors(&cfg, &NONE).iter().any(|e| matches!(e.kind, ErrorKind::Overlap { .. })));
}

#[test]
fn rule_6_cpus() {
    let mut cfg = demo();
    cfg.partitions[1].cpus = vec![0];
    let text = assert_rule!(cfg, NONE, "/hypervisor/pong", ErrorKind::CpuTaken { .. }, []);
    assert_eq!(
        text,
        "/hypervisor/pong: cpus: /cpus/cpu@0 is already assigned to /hypervisor/ping \
        (a CPU belongs to at most one partition)"
    );

    let mut cfg = demo();
    cfg.partitions[0].cpus = vec![2, 0, 2, 2];
    assert_rule!(
        cfg,
        NONE,
        "/hypervisor/ping",
        ErrorKind::DuplicateCpu { .. },
        ["/cpus/cpu@2", "more than once"]
    );
    assert_eq!(errors(&cfg, &NONE).len(), 1, "reported once");

    let mut cfg = demo();
    cfg.partitions[0].cpus = vec![4];
    assert_rule!(
        cfg,
        NONE,
        "/hypervisor/ping",
        ErrorKind::UnknownCpu { index: 4, count: 4 },
        ["CPU index 4", "has 4"]
    );

    let mut cfg = demo();
    cfg.partitions[0].cpus.clear();
    assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::NoCpus, ["no CPUs"]);
}

#[test]
fn rule_7_image_fit() {
    let mut cfg = demo();
    cfg.partitions[0].image_size_hint = Some(32 * MIB);
    let text = assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::ImageTooBig { .. }, []);
    assert_eq!(
        text,
        "/hypervisor/ping: image (0x2000000 bytes) does not fit in memory region 0 \
        (0x1000000 bytes, less 0x10000 reserved for the guest DTB)"
    );
    // Exactly fitting is fine; one byte more is not. The built blob's size wins over the hint.
    cfg.partitions[0].image_size_hint = Some(16 * MIB - GUEST_DTB_RESERVE);
    assert_eq!(validate(&cfg, &NONE), Ok(()));
    cfg.partitions[0].image = blob(0, 16 * MIB - GUEST_DTB_RESERVE + 1);
    assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::ImageTooBig { .. }, ["0xff0001"]);
    cfg.partitions[0].image = blob(0, u64::MAX);
    assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::ImageTooBig { .. }, []);

    let mut cfg = demo();
    cfg.partitions[0].guest_dtb = blob(0, GUEST_DTB_RESERVE + 1);
    assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::GuestDtbTooBig { .. }, ["0x10001", "0x10000"]);
}

#[test]
fn rule_8_entry() {
    let mut cfg = demo();
    cfg.partitions[0].entry = GuestPhys(0x4300_0000);
    assert_rule!(
        cfg,
        NONE,
        "/hypervisor/ping",
        ErrorKind::EntryOutsideMemory { .. },
        ["entry 0x43000000", "not inside"]
    );
    cfg.partitions[0].memory.push(region(0x4400_0000, MIB));
    cfg.partitions[0].entry = GuestPhys(0x4400_0000 + MIB - 4);
    assert_eq!(validate(&cfg, &NONE), Ok(()));
}

#[test]
fn rule_9_blobs_in_payload() {
    let facts = BuildFacts { boot_image: None, payload_size: Some(0x10_0000), map: None };
    let mut cfg = demo();
    cfg.partitions[0].image = blob(0, 0x1000);
    assert_rule!(cfg, facts, "/hypervisor/pong", ErrorKind::ImageNotBuilt, ["not built into the boot image"]);
    cfg.partitions[1].image = blob(0xf_f000, 0x1001);
    assert_rule!(
        cfg,
        facts,
        "/hypervisor/pong",
        ErrorKind::BlobOutOfBounds { property: "tantalum,image", .. },
        ["blob out of bounds of the boot image", "0xff000", "0x100000"]
    );
    cfg.partitions[1].image = blob(0xf_f000, 0x1000);
    cfg.partitions[1].guest_dtb = blob(u64::MAX, 2);
    assert_rule!(
        cfg,
        facts,
        "/hypervisor/pong",
        ErrorKind::BlobOutOfBounds { property: "tantalum,guest-dtb", .. },
        ["tantalum,guest-dtb"]
    );
    cfg.partitions[1].guest_dtb = None;
    assert_eq!(validate(&cfg, &facts), Ok(()));
}

#[test]
fn rule_11_console_outside_partitions() {
    let mut cfg = demo();
    cfg.board.ram.push(HostRange::new(HostPhys(0), 0x1000_0000));
    cfg.partitions[0].memory[0] = region(0x800_0000, 32 * MIB);
    cfg.partitions[0].entry = GuestPhys(0x800_0000);
    assert_rule!(
        cfg,
        NONE,
        "/hypervisor/ping",
        ErrorKind::ConsoleInPartition { .. },
        ["/pl011@9000000", "0x9000000..0x9001000"]
    );
}

#[test]
fn reports_every_violation() {
    let mut cfg = demo();
    cfg.partitions[0].name = "X".into();
    cfg.partitions[1].cpus = vec![0];
    cfg.partitions[1].entry = GuestPhys(0);
    assert_eq!(errors(&cfg, &NONE).len(), 3);
}

// After the helpers and `assert_rule!`, which they use.
mod boot;
mod channels;
mod devices;
mod emulated;
mod props;

#[test]
fn image_and_initrd_must_fit_together() {
    let mut cfg = demo();
    let size = cfg.partitions[0].memory[0].size;
    cfg.partitions[0].image_size_hint = Some(size / 2);
    cfg.partitions[0].initrd_size_hint = Some(size / 4);
    assert_eq!(validate(&cfg, &NONE), Ok(()));
    // The initrd sits just below the guest DTB, page aligned.
    let p = &cfg.partitions[0];
    let dtb = p.guest_dtb_address().unwrap().as_u64();
    assert_eq!(p.initrd_address().unwrap().as_u64(), dtb - size / 4);
    cfg.partitions[0].initrd_size_hint = Some(size / 2);
    let e = errors(&cfg, &NONE);
    assert!(matches!(e[0].kind, ErrorKind::ImageAndInitrdTooBig { .. }), "{e:?}");
    assert!(e[0].to_string().contains("and initrd"), "{}", e[0]);
}
