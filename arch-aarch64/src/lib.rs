//! Tantalum's aarch64 mechanism: the parts that are plain arithmetic (descriptor formats,
//! register values, exception decoding) live here and are tested on the host; the binary
//! (`main.rs`) adds what touches the hardware.
#![cfg_attr(not(test), no_std)]

pub mod abort;
pub mod boot_once;
pub mod built;
pub mod descriptors;
pub mod esr;
pub mod list_registers;
pub mod psci;
pub mod regs;
pub mod smmu_format;
pub mod sysreg;
