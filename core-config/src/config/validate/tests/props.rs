//! Property test: no config, however hostile, panics `validate`; one it accepts is usable.

use super::*;
use proptest::prelude::*;

fn interesting() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(PAGE_SIZE),
        Just(0x4000_0000u64),
        Just(0x4200_0000u64),
        Just(IPA_LIMIT),
        0u64..0x1_0000_0000,
        any::<u64>(),
    ]
}

fn any_blob() -> impl Strategy<Value = Option<Blob>> {
    proptest::option::of((interesting(), interesting()).prop_map(|(offset, size)| Blob {
        offset,
        size,
        sha256: [0; 32],
    }))
}

fn any_partition() -> impl Strategy<Value = PartitionConfig> {
    let region = (interesting(), interesting(), interesting()).prop_map(|(h, g, size)| MemoryRegion {
        host: HostPhys(h),
        guest: GuestPhys(g),
        size,
    });
    (
        (any::<u16>(), "[a-zA-Z0-9_.-]{0,40}", proptest::collection::vec(0usize..10, 0..4)),
        (proptest::collection::vec(region, 0..4), any_blob(), any_blob()),
        (proptest::option::of(interesting()), interesting()),
        (proptest::collection::vec(any_device(), 0..3), any::<bool>()),
    )
        .prop_map(
            |((id, name, cpus), (memory, image, guest_dtb), (hint, entry), (devices, virtual_uart))| {
                PartitionConfig {
                    id: id % 4,
                    path: format!("/hypervisor/{name}"),
                    name,
                    cpus,
                    memory,
                    image_path: None,
                    image,
                    guest_dtb,
                    image_size_hint: hint,
                    entry: GuestPhys(entry),
                    on_fault: FaultPolicy::Stop,
                    boot_order: 0,
                    devices,
                    virtual_uart,
                    ..Default::default()
                }
            },
        )
}

fn any_interrupt() -> impl Strategy<Value = Interrupt> {
    (0u32..4, prop_oneof![0u32..40, any::<u32>()], any::<u32>()).prop_map(|(kind, number, flags)| Interrupt {
        kind,
        number,
        flags,
    })
}

fn any_device() -> impl Strategy<Value = DeviceAssignment> {
    (
        prop_oneof![Just("/a"), Just("/b"), Just("/uart"), Just("/gic")],
        proptest::collection::vec(any_range(), 0..3),
        proptest::collection::vec(any_interrupt(), 0..3),
        proptest::option::of(0u32..3),
    )
        .prop_map(|(path, mmio, interrupts, region)| DeviceAssignment {
            path: path.into(),
            mmio,
            interrupts,
            region,
            compatible: vec![],
            ..Default::default()
        })
}

fn any_channel() -> impl Strategy<Value = ChannelConfig> {
    (
        0usize..4,
        proptest::collection::vec(0u16..5, 0..4),
        any_range(),
        proptest::collection::vec(interesting(), 0..4),
        proptest::option::of(0u16..5),
    )
        .prop_map(|(id, endpoints, memory, guest, writer)| ChannelConfig {
            id,
            name: "c".into(),
            path: "/hypervisor/channels/c".into(),
            endpoints,
            memory,
            guest: guest.into_iter().map(GuestPhys).collect(),
            writer,
        })
}

fn any_range() -> impl Strategy<Value = HostRange> {
    (interesting(), interesting()).prop_map(|(start, size)| HostRange::new(HostPhys(start), size))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No config panics `validate`; one it accepts is safe to use.
    #[test]
    fn validate_never_panics(
        ram in proptest::collection::vec(any_range(), 0..3),
        cpus in 0usize..10,
        memory in any_range(),
        console in proptest::option::of(any_range()),
        partitions in proptest::collection::vec(any_partition(), 0..4),
        boot_image in proptest::option::of(any_range()),
        payload_size in proptest::option::of(interesting()),
        gic in proptest::option::of((any_range(), any_range())),
        channels in proptest::collection::vec(any_channel(), 0..4),
    ) {
        let cpu = |n: usize| Cpu { path: format!("/cpus/cpu@{n}"), phandle: None, hwid: n as u64 };
        let gic = gic.map(|(distributor, redistributors)| Gic {
            path: "/gic".into(),
            phandle: None,
            distributor,
            redistributors,
            v2: None,
        });
        let cfg = SystemConfig {
            board: Board { ram, cpus: (0..cpus).map(cpu).collect(), gic, ..Board::default() },
            hypervisor: HypervisorConfig {
                memory,
                console: console.map(|mmio| DeviceRef {
                    path: String::from("/uart"),
                    mmio,
                    interrupts: vec![],
                    compatible: vec![String::from("arm,pl011")],
                }), benchmark_pmu: false,
            },
            partitions,
            channels,
            virtio: vec![],
            disks: vec![],
        };
        let result = validate(&cfg, &BuildFacts { boot_image, payload_size, map: None });
        for e in result.as_ref().err().into_iter().flatten() {
            prop_assert!(!e.to_string().is_empty());
        }
        if result.is_ok() {
            prop_assert_eq!(cfg.boot_sequence().len(), cfg.partitions.len());
            for p in &cfg.partitions {
                prop_assert!(p.guest_dtb_address().is_some());
                prop_assert!(p.translate(p.entry, 1).is_some());
                prop_assert!(!p.cpus.is_empty());
                for d in &p.devices {
                    prop_assert!(d.interrupts.iter().all(|i| i.is_valid() && i.intid() < 1020));
                }
            }
            for c in &cfg.channels {
                prop_assert_eq!(c.endpoints.len(), 2);
                prop_assert!(c.endpoints.iter().all(|&e| c.guest_address(e).is_some()));
            }
        }
    }
}
