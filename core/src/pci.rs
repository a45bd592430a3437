//! PCI configuration space as the hypervisor touches it: while a partition restarts, no device
//! of a PCI host bridge it owns may go on mastering DMA from the run that ended (a request the
//! device accepted before and carries out after the restart would land in, or be refused as,
//! the new run's). The layout is declared once here (tock-registers); the arch crate walks the
//! bridge's first bus through its ECAM window and clears each function's Bus Master Enable.
#![forbid(unsafe_code)]

use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use crate::addr::{HostPhys, HostRange};
use crate::config::DeviceAssignment;

register_structs! {
    /// The start of a function's configuration header (types 0 and 1 alike).
    pub ConfigHeader {
        (0x00 => pub vendor: ReadOnly<u16>),
        (0x02 => pub device: ReadOnly<u16>),
        (0x04 => pub command: ReadWrite<u16, COMMAND::Register>),
        (0x06 => pub status: ReadWrite<u16>),
        (0x08 => @END),
    }
}

register_bitfields! {u16,
    pub COMMAND [
        IO_SPACE OFFSET(0) NUMBITS(1) [],
        MEMORY_SPACE OFFSET(1) NUMBITS(1) [],
        /// The function may master memory requests (DMA, MSIs); a bridge forwards those of
        /// the buses below it.
        BUS_MASTER OFFSET(2) NUMBITS(1) []
    ]
}

/// What an absent function reads as.
pub const NO_VENDOR: u16 = 0xffff;

/// Bytes of ECAM per function, and per bus.
const FUNCTION_SPAN: u64 = 1 << 12;
const BUS_SPAN: u64 = 1 << 20;

/// The configuration headers of every function in `bus`, a [`first_bus_window`]. A bridge on
/// that bus gates what lies below it.
pub fn functions_in(bus: HostRange) -> impl Iterator<Item = HostPhys> {
    (0..bus.size / FUNCTION_SPAN).map(move |function| HostPhys(bus.start.as_u64() + function * FUNCTION_SPAN))
}

/// The part of a generic ECAM host bridge's window that holds its first bus (a generic ECAM
/// host, `pci-host-ecam-generic`: its first `reg` is the ECAM window, which starts at the first
/// bus of its `bus-range`), as far as that window reaches: what [`functions_in`] walks and what
/// the hypervisor maps to walk it. `None` for any other device.
pub fn first_bus_window(device: &DeviceAssignment) -> Option<HostRange> {
    device.pci.as_ref()?;
    if !device.compatible.iter().any(|c| c == "pci-host-ecam-generic") {
        return None;
    }
    let ecam = device.mmio.first()?;
    let size = ecam.size.min(BUS_SPAN) / FUNCTION_SPAN * FUNCTION_SPAN;
    (size > 0).then(|| HostRange::new(ecam.start, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PciHost;

    fn host(compatible: &str, ecam_size: u64) -> DeviceAssignment {
        DeviceAssignment {
            path: "/pcie@10000000".into(),
            mmio: vec![
                HostRange::new(HostPhys(0x3f00_0000), ecam_size),
                HostRange::new(HostPhys(0x1000_0000), 0x1000),
            ],
            compatible: vec![compatible.into()],
            pci: Some(PciHost::default()),
            ..Default::default()
        }
    }

    /// Every function on the first bus of `device`, as the hypervisor walks it.
    fn first_bus_functions(device: &DeviceAssignment) -> impl Iterator<Item = HostPhys> {
        first_bus_window(device).into_iter().flat_map(functions_in)
    }

    #[test]
    fn every_function_of_the_first_bus() {
        let functions: Vec<u64> =
            first_bus_functions(&host("pci-host-ecam-generic", 0x100_0000)).map(|a| a.as_u64()).collect();
        // 32 devices of 8 functions, 4 KiB each: device 1 function 0 (the disk) at +0x8000.
        assert_eq!(functions.len(), 256);
        assert_eq!(functions[0], 0x3f00_0000);
        assert_eq!(functions[8], 0x3f00_8000);
        assert_eq!(functions[255], 0x3f0f_f000);
    }

    #[test]
    fn only_as_far_as_the_window_and_only_generic_ecam() {
        assert_eq!(first_bus_functions(&host("pci-host-ecam-generic", 0x2000)).count(), 2);
        assert_eq!(first_bus_functions(&host("snps,dw-pcie", 0x100_0000)).count(), 0);
        let mut plain = host("pci-host-ecam-generic", 0x100_0000);
        plain.pci = None;
        assert_eq!(first_bus_functions(&plain).count(), 0);
    }

    #[test]
    fn the_header_layout() {
        assert_eq!(core::mem::size_of::<ConfigHeader>(), 8);
        assert_eq!(COMMAND::BUS_MASTER.mask << COMMAND::BUS_MASTER.shift, 1 << 2);
    }
}
