//! Rules 12 and 13: passed-through devices, their interrupts, and the guest space around them.

use super::*;
use crate::config::{GuestSpan, GuestUse, HostUse, VIRTUAL_UART_SIZE, VIRTUAL_UART_SPI};

const PING: &str = "/hypervisor/ping";
const PONG: &str = "/hypervisor/pong";

fn range(base: u64, size: u64) -> HostRange {
    HostRange::new(HostPhys(base), size)
}

#[test]
fn rich_is_valid() {
    assert_eq!(validate(&rich(), &NONE), Ok(()));
}

#[test]
fn rule_12_gic_and_console_stay_with_the_hypervisor() {
    let mut cfg = rich();
    cfg.partitions[1].devices.push(device("/interrupt-controller@8000000", 0x800_0000, 0x1_0000, 9));
    let text = assert_rule!(cfg, NONE, PONG, ErrorKind::GicPassthrough { .. }, []);
    assert_eq!(
        text,
        "/hypervisor/pong: devices: /interrupt-controller@8000000 is (or shares a page with) the interrupt \
         controller /interrupt-controller@8000000; partitions get a virtual GIC, the GIC itself cannot be \
         passed through"
    );
    assert_eq!(errors(&cfg, &NONE).len(), 1, "nothing else is said about the GIC");
    // Another node in the redistributors' pages.
    let mut cfg = rich();
    cfg.partitions[1].devices.push(device("/its", 0x80a_0800, 0x100, 40));
    assert_rule!(cfg, NONE, PONG, ErrorKind::GicPassthrough { .. }, ["/its is (or shares a page with)"]);

    let mut cfg = rich();
    cfg.partitions[1].devices.push(device("/pl011@9000000", 0x900_0000, 0x1000, 1));
    assert_rule!(
        cfg,
        NONE,
        PONG,
        ErrorKind::ConsolePassthrough { .. },
        [
            "devices: /pl011@9000000 is (or shares a page with) the hypervisor console /pl011@9000000",
            "virtual-uart"
        ]
    );
    let mut cfg = rich();
    cfg.partitions[1].devices.push(device("/sneaky", 0x900_0f00, 0x100, 40));
    assert_rule!(cfg, NONE, PONG, ErrorKind::ConsolePassthrough { .. }, ["/sneaky"]);
}

#[test]
fn rule_12_a_device_belongs_to_one_partition() {
    let mut cfg = rich();
    cfg.partitions[1].devices.push(device("/virtio_mmio@a000000", 0xa00_0000, 0x200, 16));
    let text = assert_rule!(cfg, NONE, PONG, ErrorKind::DeviceTaken { .. }, []);
    assert_eq!(
        text,
        "/hypervisor/pong: devices: /virtio_mmio@a000000 is already passed through to /hypervisor/ping \
         (as a whole device); a device or region belongs to at most one partition"
    );
    // Only the page it shares with ping's virtio1 is said on top (no SPI error).
    let kinds: Vec<ErrorKind> = errors(&cfg, &NONE).into_iter().map(|e| e.kind).collect();
    assert!(
        matches!(kinds.as_slice(), [ErrorKind::DeviceTaken { .. }, ErrorKind::MmioPageShared { .. }]),
        "{kinds:#?}"
    );

    // Regions of one device: different ones may go to different partitions, the same one not,
    // and a whole device includes them all.
    let dual = |region: u32| DeviceAssignment {
        mmio: vec![range(0xc00_0000 + 0x1000 * u64::from(region), 0x1000)],
        interrupts: vec![],
        region: Some(region),
        ..device("/dual@c000000", 0, 0, 0)
    };
    let mut cfg = rich();
    cfg.partitions[0].devices.push(dual(0));
    cfg.partitions[1].devices.push(dual(1));
    assert_eq!(validate(&cfg, &NONE), Ok(()));
    cfg.partitions[1].devices.push(dual(0));
    assert_rule!(
        cfg,
        NONE,
        PONG,
        ErrorKind::DeviceTaken { region: Some(0), owner_region: Some(0), .. },
        ["devices: region 0 of /dual@c000000 is already passed through to /hypervisor/ping (as its region 0)"]
    );
    let mut cfg = rich();
    cfg.partitions[0].devices.push(dual(1));
    let whole = DeviceAssignment { mmio: vec![range(0xc00_0000, 0x2000)], ..dual(0) };
    cfg.partitions[1].devices.push(DeviceAssignment { region: None, ..whole });
    assert_rule!(
        cfg,
        NONE,
        PONG,
        ErrorKind::DeviceTaken { region: None, owner_region: Some(1), .. },
        ["(as its region 1)"]
    );

    let mut cfg = rich();
    cfg.partitions[0].devices.push(dual(0));
    cfg.partitions[0].devices.push(dual(0));
    assert_rule!(
        cfg,
        NONE,
        PING,
        ErrorKind::DuplicateDevice { region: Some(0), .. },
        ["region 0 of /dual@c000000 is listed more than once"]
    );
}

#[test]
fn rule_12_devices_of_two_partitions_never_share_a_page() {
    let mut cfg = rich();
    let virtio1 = cfg.partitions[0].devices.pop().expect("virtio1");
    cfg.partitions[1].devices.push(virtio1);
    let text = assert_rule!(cfg, NONE, PONG, ErrorKind::MmioPageShared { page: 0xa00_0000, .. }, []);
    assert_eq!(
        text,
        "/hypervisor/pong: devices: MMIO 0xa000200..0xa000400 of /virtio_mmio@a000200 shares the 4 KiB page \
         0xa000000 with /virtio_mmio@a000000 (0xa000000..0xa000200) of /hypervisor/ping; stage 2 maps \
         whole pages, so give both to the same partition"
    );
}

#[test]
fn rule_12_device_mmio_is_sane_and_outside_memory() {
    let cases: [(u64, u64, HostUse); 4] = [
        (0x4280_0000, 0x1000, HostUse::Partition { path: PING.into() }),
        (0x4400_0800, 0x100, HostUse::Channel { path: "/hypervisor/channels/duplex".into() }),
        (0x4000_0000, 0x1000, HostUse::Hypervisor),
        (0x7000_0000, 0x1000, HostUse::Ram),
    ];
    for (base, size, with) in cases {
        let mut cfg = rich();
        cfg.partitions[1].devices.push(device("/bad", base, size, 40));
        assert_rule!(cfg, NONE, PONG, ErrorKind::DeviceMmioOverlap { with: ref w, .. } if *w == with,
            ["devices: MMIO", "of /bad overlaps", "device MMIO must be outside RAM"]);
    }
    let mut cfg = rich();
    cfg.partitions[1].devices.push(device("/bad", 0x7000_0000, 0x1000, 40));
    assert_rule!(
        cfg,
        NONE,
        PONG,
        ErrorKind::DeviceMmioOverlap { .. },
        ["MMIO 0x70000000..0x70001000 of /bad overlaps RAM (0x40000000..0x80000000)"]
    );

    for (base, size) in [(0xc00_0000, 0), (u64::MAX - 0xff, 0x200)] {
        let mut cfg = rich();
        cfg.partitions[1].devices.push(device("/bad", base, size, 40));
        assert_rule!(cfg, NONE, PONG, ErrorKind::DeviceMmioInvalid { .. }, ["empty or wraps"]);
    }
    let mut cfg = rich();
    cfg.partitions[1].devices.push(device("/pcie-high", IPA_LIMIT - 0x1000, 0x2000, 40));
    assert_rule!(
        cfg,
        NONE,
        PONG,
        ErrorKind::DeviceAboveIpaLimit { .. },
        ["MMIO of /pcie-high ends at 0x8000001000, above the IPA limit 0x8000000000"]
    );
}

#[test]
fn rule_12_interrupts() {
    let mut cfg = rich();
    cfg.partitions[0].devices.push(device("/other", 0xc00_0000, 0x1000, 2));
    // ping's devices come first, so pong's RTC is the one at fault.
    assert_rule!(
        cfg,
        NONE,
        PONG,
        ErrorKind::InterruptTaken { spi: 2, .. },
        ["SPI 2 (INTID 34) of /pl031@9010000 is also the SPI of /other, passed through to /hypervisor/ping"]
    );
    let mut cfg = rich();
    cfg.partitions[1].devices.push(device("/other", 0xc00_0000, 0x1000, 16));
    let text = assert_rule!(cfg, NONE, PONG, ErrorKind::InterruptTaken { spi: 16, .. }, []);
    assert_eq!(
        text,
        "/hypervisor/pong: devices: SPI 16 (INTID 48) of /other is also the SPI of /virtio_mmio@a000000, \
         passed through to /hypervisor/ping; an interrupt belongs to at most one partition"
    );

    let with_irq = |kind, number| {
        let mut cfg = rich();
        let mut d = device("/other", 0xc00_0000, 0x1000, 0);
        d.interrupts = vec![Interrupt { kind, number, flags: 4 }];
        cfg.partitions[1].devices.push(d);
        cfg
    };
    assert_rule!(
        with_irq(1, 13),
        NONE,
        PONG,
        ErrorKind::PpiPassthrough { ppi: 13, .. },
        ["/other has PPI 13 (INTID 29), a per-CPU interrupt that cannot be passed through"]
    );
    assert_rule!(with_irq(2, 3), NONE, PONG, ErrorKind::UnsupportedInterrupt { .. },
        ["interrupt <2 3 4>, which is neither an SPI (<0 n flags>, n <= 987) nor a PPI (<1 n flags>, n <= 15)"]);
    assert_rule!(with_irq(0, 988), NONE, PONG, ErrorKind::UnsupportedInterrupt { .. }, ["<0 988 4>"]);
    assert_rule!(with_irq(1, u32::MAX), NONE, PONG, ErrorKind::UnsupportedInterrupt { .. }, []);
    // The virtual GIC implements INTIDs up to 127: SPIs 0 to 95.
    assert_rule!(with_irq(0, 987), NONE, PONG, ErrorKind::SpiBeyondVirtualGic { spi: 987, max: 95, .. },
        ["SPI 987 (INTID 1019) of /other is beyond the partition's virtual GIC, which implements SPIs 0 to 95"]);
    assert_rule!(with_irq(0, 96), NONE, PONG, ErrorKind::SpiBeyondVirtualGic { spi: 96, .. }, []);
    assert_eq!(validate(&with_irq(0, 95), &NONE), Ok(()));

    // The partition's own virtual interrupts: the virtual UART's SPI and the channel doorbells.
    let mut cfg = rich();
    cfg.partitions[0].devices.push(device("/other", 0xc00_0000, 0x1000, VIRTUAL_UART_SPI));
    assert_rule!(
        cfg,
        NONE,
        PING,
        ErrorKind::SpiReserved { by: GuestUse::VirtualUart, .. },
        ["SPI 1 of /other is also the partition's virtual interrupt of the virtual UART"]
    );
    let mut cfg = rich();
    cfg.partitions[1].devices.push(device("/other", 0xc00_0000, 0x1000, 65));
    assert_rule!(
        cfg,
        NONE,
        PONG,
        ErrorKind::SpiReserved { by: GuestUse::Channel { .. }, .. },
        ["SPI 65 of /other", "channel /hypervisor/channels/one-way"]
    );
}

#[test]
fn rule_13_virtual_uart_has_its_own_guest_page() {
    let uart = GuestSpan::new(0x900_0000, VIRTUAL_UART_SIZE); // QEMU virt's `tantalum,virtual-uart`
    let mut cfg = rich();
    cfg.partitions[0].memory[0].guest = GuestPhys(0x800_0000 + 0x100_0000);
    cfg.partitions[0].entry = GuestPhys(0x900_0000);
    let text = assert_rule!(cfg, NONE, PING, ErrorKind::VirtualUartOverlap { .. }, []);
    assert_eq!(
        text,
        "/hypervisor/ping: virtual-uart: the virtual UART's guest range 0x9000000..0x9001000 overlaps \
         memory region 0 (guest 0x9000000..0xa000000); move the other range"
    );
    let mut cfg = rich();
    if let Some(console) = &mut cfg.hypervisor.console {
        // The hypervisor prints on a second UART; the first is passed through.
        console.path = "/pl011@9040000".into();
        console.mmio = HostRange::new(HostPhys(0x904_0000), 0x1000);
    }
    cfg.partitions[0].devices.push(device("/pl011@9000000", 0x900_0000, 0x1000, 40));
    let with = GuestUse::Device { path: "/pl011@9000000".into() };
    assert_rule!(cfg, NONE, PING, ErrorKind::VirtualUartOverlap { uart: u, with: ref w, .. } if u == uart && *w == with,
        ["overlaps the pages of device /pl011@9000000"]);
    // Without a virtual UART the page is free.
    cfg.partitions[0].virtual_uart = false;
    cfg.partitions[0].devices.retain(|d| d.interrupts[0].number != VIRTUAL_UART_SPI);
    assert_eq!(validate(&cfg, &NONE), Ok(()));
}

#[test]
fn rule_13_guest_memory_stays_clear_of_devices_and_the_gic() {
    let mut cfg = rich();
    cfg.partitions[0].memory[0].guest = GuestPhys(0xa00_0000);
    cfg.partitions[0].entry = GuestPhys(0xa00_0000);
    assert_rule!(cfg, NONE, PING, ErrorKind::GuestMemoryOverlap { region: 0, .. },
        ["guest range 0xa000000..0xb000000 of memory region 0 overlaps the pages of device /virtio_mmio@a000000 \
          (guest 0xa000000..0xa001000); move the region with guest-addresses"]);
    let mut cfg = rich();
    cfg.partitions[1].memory[0].guest = GuestPhys(0x800_0000);
    cfg.partitions[1].entry = GuestPhys(0x800_0000);
    assert_rule!(
        cfg,
        NONE,
        PONG,
        ErrorKind::GuestMemoryOverlap { with: GuestUse::Gic, .. },
        ["overlaps the virtual GIC (guest 0x8000000..0x8010000)"]
    );
    // One redistributor frame per vCPU: pong (1 vCPU) sees 0x80a0000..0x80c0000.
    let mut cfg = rich();
    cfg.partitions[1].memory[0].guest = GuestPhys(0x80c_0000);
    cfg.partitions[1].memory[0].size = 0x4_0000;
    cfg.partitions[1].entry = GuestPhys(0x80c_0000);
    assert_eq!(validate(&cfg, &NONE), Ok(()));
    cfg.partitions[1].memory[0].guest = GuestPhys(0x80b_0000);
    assert_rule!(
        cfg,
        NONE,
        PONG,
        ErrorKind::GuestMemoryOverlap { with: GuestUse::Gic, .. },
        ["0x80a0000..0x80c0000"]
    );
}
