//! What the hypervisor at boot would refuse, refused by `validate` first: a console it can drive,
//! an entry point in the image, memory and devices inside its own map.

use super::*;
use crate::config::{HypervisorMap, MapWindow};

const EL2: HypervisorMap = HypervisorMap {
    devices: HostRange::new(HostPhys(0), 1 << 30),
    ram: HostRange::new(HostPhys(1 << 30), 3 << 30),
};

#[test]
fn the_console_is_a_uart_the_hypervisor_drives() {
    let mut cfg = demo();
    cfg.hypervisor.console = None;
    assert_rule!(cfg, NONE, "/hypervisor", ErrorKind::NoConsole, ["missing required property 'console'"]);
    let mut cfg = demo();
    if let Some(c) = &mut cfg.hypervisor.console {
        c.path = "/pl031@9010000".into();
        c.compatible = vec!["arm,pl031".into(), "arm,primecell".into()];
    }
    assert_rule!(
        cfg,
        NONE,
        "/hypervisor",
        ErrorKind::ConsoleNotUart { .. },
        [
            "console: /pl031@9010000 (compatible \"arm,pl031\", \"arm,primecell\") is not a UART",
            "only arm,pl011"
        ]
    );
    if let Some(c) = &mut cfg.hypervisor.console {
        c.compatible.clear();
    }
    assert_rule!(cfg, NONE, "/hypervisor", ErrorKind::ConsoleNotUart { .. }, ["(compatible absent)"]);
}

#[test]
fn rule_8_entry_is_an_instruction_of_the_image() {
    let mut cfg = demo();
    cfg.partitions[0].entry = GuestPhys(0x4200_0002);
    assert_rule!(cfg, NONE, "/hypervisor/ping", ErrorKind::EntryUnaligned { .. }, ["0x42000002", "4-byte"]);
    // With the image known (the built blob), the entry must lie in it: not in the guest DTB.
    let mut cfg = demo();
    cfg.partitions[0].image = blob(0, 0x5000);
    cfg.partitions[0].entry = GuestPhys(0x4200_0000 + 16 * MIB - 0x1000);
    assert_rule!(
        cfg,
        NONE,
        "/hypervisor/ping",
        ErrorKind::EntryOutsideImage { .. },
        ["entry 0x42fff000 is not inside the image, which is loaded at guest 0x42000000..0x42005000"]
    );
    cfg.partitions[0].entry = GuestPhys(0x4200_4ffc);
    assert_eq!(validate(&cfg, &NONE), Ok(()));
    // Outside all memory stays `EntryOutsideMemory`, reported once.
    cfg.partitions[0].entry = GuestPhys(0x5000_0000);
    let kinds: Vec<ErrorKind> = errors(&cfg, &NONE).into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [ErrorKind::EntryOutsideMemory { entry: GuestPhys(0x5000_0000) }]);
}

#[test]
fn rule_4_everything_the_hypervisor_reaches_is_in_its_map() {
    let facts = BuildFacts { map: Some(EL2), ..NONE };
    assert_eq!(validate(&demo(), &facts), Ok(()));
    let mut cfg = demo();
    cfg.board.ram.push(HostRange::new(HostPhys(1 << 32), 1 << 30));
    cfg.partitions[1].memory[0] = region(1 << 32, 16 * MIB);
    cfg.partitions[1].entry = GuestPhys(1 << 32);
    cfg.channels.push(channel(0, "link", &[0, 1], (1 << 32) + 16 * MIB, 0x1_0000));
    assert_eq!(validate(&cfg, &NONE), Ok(()), "only the map's rule refuses this");
    assert_rule!(
        cfg,
        facts,
        "/hypervisor/pong",
        ErrorKind::OutsideHypervisorMap { .. },
        ["memory 0x100000000..0x101000000 is outside the RAM the hypervisor maps (0x40000000..0x100000000)"]
    );
    let channel = HostRange::new(HostPhys((1 << 32) + 16 * MIB), 0x1_0000);
    assert_rule!(cfg, facts, "/hypervisor/channels/link",
        ErrorKind::OutsideHypervisorMap { range, .. } if range == channel, []);
    // The console the hypervisor drives must be in its device window.
    let mut cfg = demo();
    if let Some(c) = &mut cfg.hypervisor.console {
        c.mmio = HostRange::new(HostPhys(0x1_2000_0000), 0x1000);
    }
    assert_rule!(
        cfg,
        facts,
        "/pl011@9000000",
        ErrorKind::DeviceOutsideHypervisorMap { what: MapWindow::Console, .. },
        ["the hypervisor console /pl011@9000000 (0x120000000..0x120001000) is outside the device window"]
    );
}

#[test]
fn the_boot_map_comes_from_the_board() {
    // QEMU virt: devices (the GIC, the console) in the first GiB, RAM from 1 GiB.
    let cfg = demo();
    let map = HypervisorMap::for_system(&cfg);
    assert_eq!(map.devices, HostRange::new(HostPhys(0), 1 << 30));
    assert_eq!(map.ram.start, HostPhys(1 << 30));
    assert!(map.ram.contains_range(&cfg.board.ram[0]));
    // A ZCU102: RAM from 0, the GIC and the UART in the fourth GiB.
    let mut cfg = demo();
    cfg.board.ram = vec![HostRange::new(HostPhys(0), 0x8000_0000)];
    if let Some(g) = &mut cfg.board.gic {
        g.distributor = HostRange::new(HostPhys(0xf901_0000), 0x1_0000);
        g.redistributors = HostRange::new(HostPhys(0xf902_0000), 0x2_0000);
    }
    if let Some(c) = &mut cfg.hypervisor.console {
        c.mmio = HostRange::new(HostPhys(0xff00_0000), 0x1000);
    }
    let map = HypervisorMap::for_system(&cfg);
    assert_eq!(map.ram, HostRange::new(HostPhys(0), 2 << 30));
    assert_eq!(map.devices, HostRange::new(HostPhys(3 << 30), 1 << 30));
    // A device in a GiB of RAM is left out of the device window: the checker says so.
    if let Some(c) = &mut cfg.hypervisor.console {
        c.mmio = HostRange::new(HostPhys(0x7000_0000), 0x1000);
    }
    let map = HypervisorMap::for_system(&cfg);
    assert_eq!(map.devices.size, 0);
    let facts = BuildFacts { map: Some(map), ..NONE };
    assert_rule!(cfg, facts, "/pl011@9000000", ErrorKind::DeviceOutsideHypervisorMap { .. }, ["0x70000000"]);
}
