//! An x86 board: the local APIC, the IOAPICs and the I/O ports of ISA devices.
//!
//! An ISA bus (`compatible = "isa"`, `#address-cells = <2>`, `#size-cells = <1>`) gives its
//! children `reg = <space address size>`: bit 0 of `space` set means I/O ports, clear means
//! memory. I/O ports are no CPU address, so an ISA bus has no `ranges` for them; its devices'
//! memory-space entries are taken as CPU addresses.

#[cfg(feature = "x86")]
use alloc::string::ToString;
use alloc::vec::Vec;

use super::tree::read_cells;
use super::Parser;
#[cfg(feature = "x86")]
use crate::addr::{HostPhys, HostRange};
use crate::config::error::{ErrorKind, Expected};
#[cfg(feature = "x86")]
use crate::config::x86::{Apic, IoDevice, PLATFORM_WIDE};
use crate::config::x86::{IoPorts, X86Platform, IOAPIC, ISA_BUS, LAPIC};

/// One ISA `reg` entry.
#[cfg_attr(not(feature = "x86"), allow(dead_code))] // Without the x86 rules, I/O ports go unread.
enum IsaReg {
    Io(IoPorts),
    Memory(u64, u64),
}

impl Parser<'_, '_> {
    /// Whether node `index` sits on an ISA bus.
    pub(super) fn on_isa_bus(&self, index: usize) -> bool {
        self.entry(index).and_then(|e| e.parent).is_some_and(|p| self.is_compatible(p, ISA_BUS))
    }

    /// The `reg` entries of an ISA device (reported if malformed).
    fn isa_reg(&mut self, index: usize) -> Vec<IsaReg> {
        let Some(value) = self.required(index, "reg") else {
            return Vec::new();
        };
        if value.is_empty() || !value.len().is_multiple_of(12) {
            self.malformed(index, "reg", value.len(), Expected::CellGroups(3));
            return Vec::new();
        }
        value
            .chunks_exact(12)
            .filter_map(|c| {
                let (space, address, size) =
                    (read_cells(c, 0, 1)?, read_cells(c, 1, 1)?, read_cells(c, 2, 1)?);
                Some(if space & 1 == 1 {
                    IsaReg::Io(IoPorts { base: address as u32, count: size as u32 })
                } else {
                    IsaReg::Memory(address, size)
                })
            })
            .collect()
    }

    /// For a device on an ISA bus, its memory-space `reg` entries (possibly none); `None` for
    /// any other node (its `reg` is translated through `ranges`).
    pub(super) fn isa_memory_reg(&mut self, index: usize) -> Option<Vec<(u64, u64)>> {
        if !self.on_isa_bus(index) {
            return None;
        }
        let regs = self.isa_reg(index);
        Some(
            regs.into_iter()
                .filter_map(|r| if let IsaReg::Memory(a, s) = r { Some((a, s)) } else { None })
                .collect(),
        )
    }

    /// Whether node `index` is the board's: not within `hypervisor` (`/hypervisor`'s index).
    fn on_board(&self, hypervisor: Option<usize>, index: usize) -> bool {
        hypervisor.is_none_or(|h| !self.tree.is_within(index, h))
    }

    /// The board's local APIC (`LAPIC`), which makes it an x86 board.
    fn local_apic(&self) -> Option<usize> {
        let hypervisor = self.tree.child(0, "hypervisor");
        (1..self.tree.nodes.len()).find(|&i| self.on_board(hypervisor, i) && self.is_compatible(i, LAPIC))
    }

    /// Built without the x86 rules (the aarch64 hypervisor): an x86 board is refused as a whole,
    /// at its local APIC; no board gets an x86 platform.
    #[cfg(not(feature = "x86"))]
    pub(super) fn x86_platform(&mut self) -> Option<X86Platform> {
        if let Some(lapic) = self.local_apic() {
            self.report(self.path(lapic), ErrorKind::X86(crate::config::x86::X86Problem::NoX86Rules));
        }
        None
    }

    /// The x86 platform, if the board has a local APIC (`LAPIC`): its APICs and port devices.
    #[cfg(feature = "x86")]
    pub(super) fn x86_platform(&mut self) -> Option<X86Platform> {
        let tree = self.tree;
        let hypervisor = tree.child(0, "hypervisor");
        let outside = |p: &Self, i: usize| p.on_board(hypervisor, i);
        let apic = |p: &mut Self, i: usize| {
            let (address, size) = p.device_reg(i).first().copied()?;
            Some(Apic { path: p.owned_path(i), mmio: HostRange::new(HostPhys(address), size) })
        };
        let lapic = self.local_apic()?;
        let Some(lapic) = apic(self, lapic) else {
            self.report(self.path(lapic), ErrorKind::MissingProperty { property: "reg" });
            return None;
        };
        let mut platform =
            X86Platform { lapic, ioapics: Vec::new(), io_devices: Vec::new(), platform_wide: Vec::new() };
        for i in 1..tree.nodes.len() {
            if !outside(self, i) {
                continue;
            }
            if self.value(i, PLATFORM_WIDE).is_some() {
                platform.platform_wide.push(self.path(i).to_string());
            }
            if self.is_compatible(i, IOAPIC) {
                platform.ioapics.extend(apic(self, i));
            } else if self.on_isa_bus(i) && self.value(i, "reg").is_some() {
                let ports: Vec<IoPorts> = self
                    .isa_reg(i)
                    .into_iter()
                    .filter_map(|r| if let IsaReg::Io(p) = r { Some(p) } else { None })
                    .collect();
                if !ports.is_empty() {
                    platform.io_devices.push(IoDevice { path: self.path(i).to_string(), ports });
                }
            }
        }
        Some(platform)
    }

    /// Whether `controller` is an IOAPIC: interrupts wired to it are not passed through yet.
    pub(super) fn is_ioapic(&self, controller: usize) -> bool {
        self.is_compatible(controller, IOAPIC)
    }
}
