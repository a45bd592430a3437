//! PCI for a partition given a host bridge (`devices = <&pcie>`): ECAM configuration space,
//! found in the guest device tree, bus enumeration, capabilities, and BAR assignment from the
//! bridge's 32-bit memory window (nothing else assigned them: Tantalum boots partitions without
//! firmware). DMA addresses are the partition's own guest-physical addresses: the SMMU
//! translates the bridge's streams through this partition's map.

use core::ptr::{read_volatile, write_volatile};

use crate::dt;

/// PCI configuration header offsets and bits.
pub mod cfg {
    pub const ID: u16 = 0x00;
    pub const COMMAND: u16 = 0x04;
    pub const STATUS_HAS_CAPABILITIES: u32 = 1 << 20;
    pub const HEADER_TYPE: u16 = 0x0c;
    pub const BAR0: u16 = 0x10;
    pub const CAPABILITIES: u16 = 0x34;
    /// COMMAND bits: memory space, bus master; INTx disable.
    pub const MEMORY: u16 = 1 << 1;
    pub const MASTER: u16 = 1 << 2;
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// A PCI host bridge with ECAM, as the guest DT describes it.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    pub ecam: u64,
    pub ecam_size: u64,
    /// The 32-bit memory window: CPU address = PCI address here (QEMU virt's, identity).
    pub window: u64,
    pub window_size: u64,
    /// Next free address of the window for BARs.
    next: u64,
}

/// One function's configuration space.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    base: u64,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Host {
    /// The first `pci-host-ecam-generic` node of the guest DT.
    pub fn find() -> Option<Host> {
        let fdt = dt::get()?;
        let node = fdt
            .all_nodes()
            .find(|n| n.compatible().is_some_and(|c| c.all().any(|s| s == "pci-host-ecam-generic")))?;
        let mut reg = dt::numbers(node.property("reg")?.value, 2);
        let (ecam, ecam_size) = (reg.next()?, reg.next()?);
        // ranges: <space pci-hi pci-lo> <cpu, 2 cells> <size, 2 cells>.
        let mut ranges = dt::numbers(node.property("ranges")?.value, 1);
        let mut window = None;
        while let Some(space) = ranges.next() {
            let mut take = |n: usize| (0..n).filter_map(|_| ranges.next()).fold(0u64, |a, c| a << 32 | c);
            let (_pci, cpu, size) = (take(2), take(2), take(2));
            if (space >> 24) & 3 == 2 && window.is_none() {
                window = Some((cpu, size));
            }
        }
        let (window, window_size) = window?;
        Some(Host { ecam, ecam_size, window, window_size, next: window })
    }

    /// Function `bus:device.function`, if ECAM reaches it and something answers there.
    pub fn function(&self, bus: u8, device: u8, function: u8) -> Option<Function> {
        let offset = u64::from(bus) << 20 | u64::from(device & 31) << 15 | u64::from(function & 7) << 12;
        if offset + 0x1000 > self.ecam_size {
            return None;
        }
        let f = Function { base: self.ecam + offset, bus, device, function };
        (f.read32(cfg::ID) & 0xffff != 0xffff).then_some(f)
    }

    /// Every function of bus 0 (QEMU virt's root bus: the devices sit there).
    pub fn functions(&self) -> impl Iterator<Item = Function> + '_ {
        (0..32u8).flat_map(move |d| (0..8u8).filter_map(move |f| self.function(0, d, f)))
    }

    /// Sizes and places each memory BAR of `f` in the window, then turns on memory decoding and
    /// bus mastering (INTx off: the SDK's drivers poll). Returns false if the window is full.
    pub fn assign_bars(&mut self, f: &Function) -> bool {
        f.write16(cfg::COMMAND, 0);
        let mut bar = 0;
        while bar < 6 {
            let at = cfg::BAR0 + 4 * bar;
            let original = f.read32(at);
            if original & 1 != 0 {
                bar += 1; // I/O space: not used.
                continue;
            }
            let wide = (original >> 1) & 3 == 2;
            f.write32(at, u32::MAX);
            let mut mask = u64::from(f.read32(at) & !0xf);
            if wide {
                f.write32(at + 4, u32::MAX);
                mask |= u64::from(f.read32(at + 4)) << 32;
            } else if mask != 0 {
                mask |= 0xffff_ffff_0000_0000;
            }
            // An unimplemented BAR reads back 0.
            let size = (!mask).wrapping_add(1);
            if mask != 0 && size != 0 {
                let address = self.next.next_multiple_of(size);
                if address + size > self.window + self.window_size {
                    return false;
                }
                self.next = address + size;
                f.write32(at, address as u32);
                if wide {
                    f.write32(at + 4, (address >> 32) as u32);
                }
            }
            bar += if wide { 2 } else { 1 };
        }
        f.write16(cfg::COMMAND, cfg::MEMORY | cfg::MASTER | cfg::INTX_DISABLE);
        true
    }
}

impl Function {
    pub fn read32(&self, offset: u16) -> u32 {
        // SAFETY: an aligned word of this function's 4 KiB of ECAM, in the host bridge the
        // partition owns (device memory in the SDK's map).
        unsafe { read_volatile((self.base + u64::from(offset & 0xffc)) as *const u32) }
    }
    pub fn write32(&self, offset: u16, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { write_volatile((self.base + u64::from(offset & 0xffc)) as *mut u32, value) }
    }
    pub fn write16(&self, offset: u16, value: u16) {
        // SAFETY: as in `read32`, a halfword.
        unsafe { write_volatile((self.base + u64::from(offset & 0xffe)) as *mut u16, value) }
    }
    pub fn read8(&self, offset: u16) -> u8 {
        (self.read32(offset) >> (8 * (offset & 3))) as u8
    }
    /// Vendor and device ID.
    pub fn id(&self) -> (u16, u16) {
        let id = self.read32(cfg::ID);
        (id as u16, (id >> 16) as u16)
    }
    /// The address BAR `bar` decodes (after [`Host::assign_bars`]).
    pub fn bar(&self, bar: u8) -> u64 {
        let at = cfg::BAR0 + 4 * u16::from(bar);
        let low = self.read32(at);
        let high = if (low >> 1) & 3 == 2 { u64::from(self.read32(at + 4)) } else { 0 };
        high << 32 | u64::from(low & !0xf)
    }
    /// The offsets of its capabilities of ID `id`, in list order (48 steps at most: a looping
    /// list ends).
    pub fn capabilities(&self, id: u8) -> impl Iterator<Item = u16> + '_ {
        let has = self.read32(cfg::COMMAND) & cfg::STATUS_HAS_CAPABILITIES != 0;
        let mut at = if has { u16::from(self.read8(cfg::CAPABILITIES) & 0xfc) } else { 0 };
        let mut steps = 0;
        core::iter::from_fn(move || {
            while at >= 0x40 && steps < 48 {
                steps += 1;
                let here = at;
                at = u16::from(self.read8(here + 1) & 0xfc);
                if self.read8(here) == id {
                    return Some(here);
                }
            }
            None
        })
    }
}
