//! Tantalum's x86_64 (VT-x) mechanism. For now it only proves that `core` builds for
//! `x86_64-unknown-none`; the VMX layer arrives with its own issue.
#![no_std]

pub use tantalum_core as core_policy;

/// The hypercall conduit on x86_64 (`vmcall`), the same SMCCC function IDs as on Arm.
pub const HYPERCALL_INSTRUCTION: &str = "vmcall";
