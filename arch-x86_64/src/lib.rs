//! Tantalum's x86_64 (VT-x) mechanism: the parts that are plain arithmetic (the Multiboot2
//! boot information, EPT entries, VMX exit decoding) live here and are tested on the host; the
//! binary (`main.rs`) adds what touches the hardware.
#![cfg_attr(not(test), no_std)]

pub mod ept;
pub mod multiboot2;
pub mod vmcs;
pub mod vmexit;
