//! VMCS field encodings (Intel SDM vol. 3D, appendix B) and control bits Tantalum sets.
#![allow(dead_code)]

// 16-bit fields.
pub const VPID: u32 = 0x0000;
pub const GUEST_ES_SELECTOR: u32 = 0x0800;
pub const HOST_ES_SELECTOR: u32 = 0x0C00;
pub const HOST_CS_SELECTOR: u32 = 0x0C02;
pub const HOST_SS_SELECTOR: u32 = 0x0C04;
pub const HOST_DS_SELECTOR: u32 = 0x0C06;
pub const HOST_FS_SELECTOR: u32 = 0x0C08;
pub const HOST_GS_SELECTOR: u32 = 0x0C0A;
pub const HOST_TR_SELECTOR: u32 = 0x0C0C;
// 64-bit fields.
pub const IO_BITMAP_A: u32 = 0x2000;
pub const IO_BITMAP_B: u32 = 0x2002;
pub const MSR_BITMAP: u32 = 0x2004;
pub const EPT_POINTER: u32 = 0x201A;
pub const GUEST_PHYSICAL_ADDRESS: u32 = 0x2400;
pub const VMCS_LINK_POINTER: u32 = 0x2800;
pub const GUEST_IA32_EFER: u32 = 0x2806;
pub const HOST_IA32_EFER: u32 = 0x2C02;
// 32-bit fields.
pub const PIN_BASED_CONTROLS: u32 = 0x4000;
pub const PROCESSOR_CONTROLS: u32 = 0x4002;
pub const EXCEPTION_BITMAP: u32 = 0x4004;
pub const EXIT_CONTROLS: u32 = 0x400C;
pub const ENTRY_CONTROLS: u32 = 0x4012;
pub const ENTRY_INTERRUPTION_INFO: u32 = 0x4016;
pub const ENTRY_EXCEPTION_ERROR_CODE: u32 = 0x4018;
pub const SECONDARY_CONTROLS: u32 = 0x401E;
pub const VM_INSTRUCTION_ERROR: u32 = 0x4400;
pub const EXIT_REASON: u32 = 0x4402;
/// VM-exit interruption information: valid (bit 31) and the vector (bits 7:0) of the
/// interrupt an external-interrupt exit acknowledged.
pub const EXIT_INTERRUPTION_INFO: u32 = 0x4404;
pub const EXIT_INSTRUCTION_LENGTH: u32 = 0x440C;
pub const GUEST_ES_LIMIT: u32 = 0x4800;
pub const GUEST_GDTR_LIMIT: u32 = 0x4810;
pub const GUEST_IDTR_LIMIT: u32 = 0x4812;
pub const GUEST_ES_ACCESS_RIGHTS: u32 = 0x4814;
pub const GUEST_INTERRUPTIBILITY: u32 = 0x4824;
/// Interruptibility state bits 0 and 1: blocking by STI, by MOV SS.
pub const BLOCKING_BY_STI_OR_MOV_SS: u64 = 0b11;
/// The vector (bits 7:0) of a VM-exit or VM-entry interruption-information field.
pub const fn interruption_vector(info: u64) -> u32 {
    (info & 0xff) as u32
}
/// VM-entry interruption information: valid (bit 31), type external interrupt (0), the vector.
pub const fn external_interrupt(vector: u8) -> u64 {
    (1 << 31) | vector as u64
}
/// VM-entry interruption information: valid, type hardware exception (3), the error code
/// delivered (bit 11; its value in [`ENTRY_EXCEPTION_ERROR_CODE`]), the vector.
pub const fn exception_with_error_code(vector: u8) -> u64 {
    (1 << 31) | (1 << 11) | (3 << 8) | vector as u64
}
pub const GUEST_ACTIVITY_STATE: u32 = 0x4826;
pub const GUEST_SYSENTER_CS: u32 = 0x482A;
pub const PREEMPTION_TIMER_VALUE: u32 = 0x482E;
pub const HOST_SYSENTER_CS: u32 = 0x4C00;
// Natural-width fields.
pub const CR0_GUEST_HOST_MASK: u32 = 0x6000;
pub const CR4_GUEST_HOST_MASK: u32 = 0x6002;
pub const CR0_READ_SHADOW: u32 = 0x6004;
pub const CR4_READ_SHADOW: u32 = 0x6006;
pub const EXIT_QUALIFICATION: u32 = 0x6400;
pub const GUEST_CR0: u32 = 0x6800;
pub const GUEST_CR3: u32 = 0x6802;
pub const GUEST_CR4: u32 = 0x6804;
pub const GUEST_ES_BASE: u32 = 0x6806;
pub const GUEST_GDTR_BASE: u32 = 0x6816;
pub const GUEST_IDTR_BASE: u32 = 0x6818;
pub const GUEST_DR7: u32 = 0x681A;
pub const GUEST_RSP: u32 = 0x681C;
pub const GUEST_RIP: u32 = 0x681E;
pub const GUEST_RFLAGS: u32 = 0x6820;
pub const GUEST_PENDING_DEBUG: u32 = 0x6822;
pub const GUEST_SYSENTER_ESP: u32 = 0x6824;
pub const GUEST_SYSENTER_EIP: u32 = 0x6826;
pub const HOST_CR0: u32 = 0x6C00;
pub const HOST_CR3: u32 = 0x6C02;
pub const HOST_CR4: u32 = 0x6C04;
pub const HOST_FS_BASE: u32 = 0x6C06;
pub const HOST_GS_BASE: u32 = 0x6C08;
pub const HOST_TR_BASE: u32 = 0x6C0A;
pub const HOST_GDTR_BASE: u32 = 0x6C0C;
pub const HOST_IDTR_BASE: u32 = 0x6C0E;
pub const HOST_SYSENTER_ESP: u32 = 0x6C10;
pub const HOST_SYSENTER_EIP: u32 = 0x6C12;
pub const HOST_RSP: u32 = 0x6C14;
pub const HOST_RIP: u32 = 0x6C16;

/// Guest segment access rights (the descriptor's type, S, DPL, P, AVL, L, D/B and G bits).
pub mod access_rights {
    /// 32-bit code, execute/read, accessed, 4 KiB granularity.
    pub const CODE32: u64 = 0xc09b;
    /// 64-bit code (L, not D/B), execute/read, accessed.
    pub const CODE64: u64 = 0xa09b;
    /// Flat data, read/write, accessed, 32-bit, 4 KiB granularity.
    pub const DATA: u64 = 0xc093;
    /// A busy 64-bit TSS.
    pub const TSS_BUSY: u64 = 0x8b;
    /// The segment is unusable (bit 16): an empty LDTR.
    pub const UNUSABLE: u64 = 1 << 16;
}
/// DR7 and RFLAGS as after reset (their always-one bits 10 and 1).
pub const DR7_RESET: u64 = 0x400;
pub const RFLAGS_RESET: u64 = 0x2;

/// Segment registers in VMCS order: the guest fields of segment `n` are the ES ones + 2n.
pub const SEG_ES: u32 = 0;
pub const SEG_CS: u32 = 1;
pub const SEG_SS: u32 = 2;
pub const SEG_DS: u32 = 3;
pub const SEG_FS: u32 = 4;
pub const SEG_GS: u32 = 5;
pub const SEG_LDTR: u32 = 6;
pub const SEG_TR: u32 = 7;

pub mod pin {
    pub const EXTERNAL_INTERRUPT_EXITING: u32 = 1 << 0;
    pub const NMI_EXITING: u32 = 1 << 3;
    pub const ACTIVATE_PREEMPTION_TIMER: u32 = 1 << 6;
}
pub mod proc {
    pub const INTERRUPT_WINDOW_EXITING: u32 = 1 << 2;
    pub const HLT_EXITING: u32 = 1 << 7;
    pub const MWAIT_EXITING: u32 = 1 << 10;
    pub const RDPMC_EXITING: u32 = 1 << 11;
    pub const CR8_LOAD_EXITING: u32 = 1 << 19;
    pub const CR8_STORE_EXITING: u32 = 1 << 20;
    pub const UNCONDITIONAL_IO_EXITING: u32 = 1 << 24;
    pub const USE_IO_BITMAPS: u32 = 1 << 25;
    pub const USE_MSR_BITMAPS: u32 = 1 << 28;
    pub const MONITOR_EXITING: u32 = 1 << 29;
    pub const SECONDARY_CONTROLS: u32 = 1 << 31;
}
pub mod secondary {
    pub const ENABLE_EPT: u32 = 1 << 1;
    pub const ENABLE_VPID: u32 = 1 << 5;
    pub const UNRESTRICTED_GUEST: u32 = 1 << 7;
}
pub mod exit {
    pub const HOST_ADDRESS_SPACE_SIZE: u32 = 1 << 9;
    pub const ACK_INTERRUPT_ON_EXIT: u32 = 1 << 15;
    pub const SAVE_IA32_EFER: u32 = 1 << 20;
    pub const LOAD_IA32_EFER: u32 = 1 << 21;
}
pub mod entry {
    pub const IA32E_MODE_GUEST: u32 = 1 << 9;
    pub const LOAD_IA32_EFER: u32 = 1 << 15;
}

/// A control value with the bits the CPU requires set and the ones it forbids cleared, from a
/// capability MSR (allowed-0 settings in bits 31:0, allowed-1 in 63:32); also whether every
/// wanted bit survived.
pub const fn adjust(wanted: u32, capability: u64) -> (u32, bool) {
    let value = (wanted | capability as u32) & (capability >> 32) as u32;
    (value, value & wanted == wanted)
}

#[cfg(test)]
mod tests {
    #[test]
    fn controls_follow_the_capability_msr() {
        // Bits 1, 2 must be 1; only bits 0..=7 may be 1.
        let cap = (0xffu64 << 32) | 0b110;
        assert_eq!(super::adjust(1 << 7, cap), (0b1000_0110, true));
        assert_eq!(super::adjust(1 << 9, cap), (0b110, false));
    }

    #[test]
    fn a_general_protection_fault_is_a_hardware_exception_with_its_error_code() {
        assert_eq!(super::exception_with_error_code(13), 0x8000_0b0d);
    }

    #[test]
    fn the_vector_of_an_interruption_information_field() {
        assert_eq!(super::interruption_vector(super::external_interrupt(0xfe)), 0xfe);
        assert_eq!(super::interruption_vector(super::exception_with_error_code(13)), 13);
    }
}
