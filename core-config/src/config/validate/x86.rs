//! Rule 16: x86 boards. Memory clear of the legacy hole and of the local APIC / IOAPICs (the
//! hypervisor's); the APICs never passed through; I/O ports: each board device's ports in range
//! and its own, each port in at most one partition; a device the board marks platform-wide only
//! in a partition that declares `owns-platform;`; the console a 16550 on I/O ports; room in
//! region 0 for the boot area.

use alloc::string::ToString;
use alloc::vec::Vec;

use super::devices::pages;
use super::{usable, Checker, HYPERVISOR};
use crate::addr::HostRange;
use crate::config::error::ErrorKind;
use crate::config::x86::{
    IoPorts, X86Platform, X86Problem, BOOT_AREA, IO_PORTS, LEGACY_HOLE, LEGACY_PIC, VIRTUAL_UART_PORTS,
    X86_CONSOLE_UARTS,
};
use crate::config::{DeviceRef, PartitionConfig, GUEST_DTB_RESERVE};

impl<'c> Checker<'c> {
    /// Rule 16; nothing on a board without a local APIC.
    pub(super) fn x86(&mut self) {
        let cfg = self.cfg;
        let Some(x86) = &cfg.board.x86 else {
            return;
        };
        let mut memory = cfg.partition_regions();
        memory.extend(cfg.channels.iter().map(|c| (c.path.as_str(), c.memory)));
        memory.retain(|(_, r)| usable(r));
        for (node, range) in memory {
            self.x86_memory(x86, node, range);
        }
        self.x86_board_ports(x86);
        self.x86_devices(x86);
        for p in &cfg.partitions {
            self.x86_boot_area(p);
            self.x86_pic_on_boot_cpu(p);
        }
    }

    /// A partition given an 8259 PIC runs its vCPU 0 on the boot CPU (the board's first; the
    /// hypervisor refuses to start when the firmware booted another one).
    fn x86_pic_on_boot_cpu(&mut self, p: &PartitionConfig) {
        let Some(pic) = p.devices.iter().find(|d| d.compatible.iter().any(|c| c == LEGACY_PIC)) else {
            return;
        };
        if p.cpus.first().is_some_and(|&c| c != 0) {
            let boot_cpu = self.cfg.board.cpus.first().map(|c| c.path.clone()).unwrap_or_default();
            self.x86_report(&p.path, X86Problem::PicOffBootCpu { device: pic.path.clone(), boot_cpu });
        }
    }

    /// The image, then the boot area and the guest DTB reserve at the top of region 0 (rule 7
    /// checks the image and the reserve alone; an initrd is refused on x86 at boot for now).
    fn x86_boot_area(&mut self, p: &PartitionConfig) {
        let (Some(region), Some(image)) = (p.memory.first(), p.image.map(|b| b.size).or(p.image_size_hint))
        else {
            return;
        };
        let need = image.checked_add(BOOT_AREA + GUEST_DTB_RESERVE);
        let rule_7 = image.checked_add(GUEST_DTB_RESERVE).is_none_or(|n| n > region.size);
        if !rule_7 && need.is_none_or(|need| need > region.size) {
            self.x86_report(&p.path, X86Problem::NoRoomForBootArea { image, region: region.size });
        }
    }

    fn x86_report(&mut self, node: &str, problem: X86Problem) {
        self.report(node, ErrorKind::X86(problem));
    }

    fn x86_memory(&mut self, x86: &X86Platform, node: &str, range: HostRange) {
        if range.overlaps(&LEGACY_HOLE) {
            self.x86_report(node, X86Problem::LegacyHole { range });
        }
        for apic in x86.apics() {
            if pages(&apic.mmio).is_some_and(|m| range.overlaps(&m)) {
                let problem = X86Problem::MemoryOverApic { range, apic: apic.path.clone(), mmio: apic.mmio };
                self.x86_report(node, problem);
            }
        }
    }

    /// Board devices' ports: in range, and no two devices share one.
    fn x86_board_ports(&mut self, x86: &X86Platform) {
        let all: Vec<(&str, IoPorts)> =
            x86.io_devices.iter().flat_map(|d| d.ports.iter().map(move |p| (d.path.as_str(), *p))).collect();
        for (k, &(path, ports)) in all.iter().enumerate() {
            if ports.end() > u64::from(IO_PORTS) {
                self.x86_report(path, X86Problem::PortsOutOfRange { ports });
            }
            let earlier = all.get(..k).unwrap_or_default();
            if let Some(&(other, other_ports)) =
                earlier.iter().find(|(o, p)| *o != path && p.overlaps(&ports))
            {
                let problem = X86Problem::PortsOverlap { ports, other: other.to_string(), other_ports };
                self.x86_report(path, problem);
            }
        }
    }

    /// Devices partitions take: no APIC, a platform-wide device only with `owns-platform;`, no
    /// port another partition owns.
    fn x86_devices(&mut self, x86: &X86Platform) {
        let cfg = self.cfg;
        let mut owned: Vec<(&str, &str, IoPorts)> = Vec::new(); // (partition, device, ports)
        for p in &cfg.partitions {
            for d in &p.devices {
                let touches = |r: &HostRange| d.mmio.iter().filter_map(pages).any(|m| m.overlaps(r));
                if let Some(apic) = x86.apics().find(|a| a.path == d.path || touches(&a.mmio)) {
                    let problem =
                        X86Problem::ApicPassthrough { device: d.path.clone(), apic: apic.path.clone() };
                    self.x86_report(&p.path, problem);
                }
                if x86.is_platform_wide(&d.path) && !p.owns_platform {
                    let problem = X86Problem::PlatformWideDevice { device: d.path.clone() };
                    self.x86_report(&p.path, problem);
                }
                for &ports in x86.ports_of(&d.path) {
                    if p.virtual_uart && ports.overlaps(&VIRTUAL_UART_PORTS) {
                        let problem = X86Problem::VirtualUartPorts { device: d.path.clone(), ports };
                        self.x86_report(&p.path, problem);
                    }
                    let clash =
                        owned.iter().find(|(o, dev, q)| *o != p.path && *dev != d.path && q.overlaps(&ports));
                    if let Some(&(owner, other, _)) = clash {
                        let problem = X86Problem::PortsTaken {
                            device: d.path.clone(),
                            ports,
                            owner: owner.to_string(),
                            other: other.to_string(),
                        };
                        self.x86_report(&p.path, problem);
                    }
                    owned.push((p.path.as_str(), d.path.as_str(), ports));
                }
            }
        }
    }

    /// Rule 11 on x86: the console is a 16550 with I/O ports.
    pub(super) fn x86_console(&mut self, x86: &X86Platform, console: &DeviceRef) {
        let uart = console.compatible.iter().any(|c| X86_CONSOLE_UARTS.contains(&c.as_str()));
        if !uart || x86.ports_of(&console.path).is_empty() {
            self.x86_report(HYPERVISOR, X86Problem::ConsoleNotPortUart { console: console.path.clone() });
        }
    }
}
