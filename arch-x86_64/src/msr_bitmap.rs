//! The VMX MSR bitmap every partition runs with (Intel SDM 25.6.9): accesses to the MSRs in
//! [`GUEST_CONTEXT`] go to the guest's own registers without an exit, every other RDMSR and
//! WRMSR exits (core's MSR policy). Those MSRs are CPU state of the guest alone: the segment
//! bases (FS and GS are in the VMCS, swapped on entry and exit), SWAPGS's kernel GS base, the
//! SYSCALL and SYSENTER targets and TSC_AUX. The hypervisor uses none of them, and a CPU is one
//! partition's. Plain arithmetic, tested on the host.

/// Bytes of the bitmap: read-low, read-high, write-low, write-high, 1 KiB each.
pub const SIZE: usize = 4096;

/// The MSRs that pass through, both ways.
pub const GUEST_CONTEXT: [u32; 11] = [
    0x174,       // IA32_SYSENTER_CS
    0x175,       // IA32_SYSENTER_ESP
    0x176,       // IA32_SYSENTER_EIP
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // SFMASK
    0xc000_0100, // FS_BASE
    0xc000_0101, // GS_BASE
    0xc000_0102, // KERNEL_GS_BASE
    0xc000_0103, // TSC_AUX
];

/// The bit of `msr` in the read half (the write half is 2 KiB further), if it has one.
fn bit(msr: u32) -> Option<usize> {
    match msr {
        0..=0x1fff => Some(msr as usize),
        0xc000_0000..=0xc000_1fff => Some(1024 * 8 + (msr - 0xc000_0000) as usize),
        _ => None,
    }
}

/// Fills `bitmap`: every MSR exits but `pass`.
pub fn build(bitmap: &mut [u8; SIZE], pass: &[u32]) {
    bitmap.fill(0xff);
    for &msr in pass {
        if let Some(b) = bit(msr) {
            for half in [0, 2048 * 8] {
                bitmap[(half + b) / 8] &= !(1 << ((half + b) % 8));
            }
        }
    }
}

/// Whether a read (`write` false) or write of `msr` exits under `bitmap`. MSRs outside both
/// ranges always exit.
pub fn exits(bitmap: &[u8; SIZE], msr: u32, write: bool) -> bool {
    let Some(b) = bit(msr) else { return true };
    let b = b + if write { 2048 * 8 } else { 0 };
    bitmap[b / 8] & (1 << (b % 8)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_context_passes_the_rest_exits() {
        let mut b = [0u8; SIZE];
        build(&mut b, &GUEST_CONTEXT);
        for msr in GUEST_CONTEXT {
            assert!(!exits(&b, msr, false) && !exits(&b, msr, true), "{msr:#x}");
        }
        // EFER, the APIC base, PAT, SPEC_CTRL, the VMX capabilities, the x2APIC ICR: exits.
        for msr in [0xc000_0080, 0x1b, 0x277, 0x48, 0x480, 0x830, 0xc000_0104, 0x173, 0x177] {
            assert!(exits(&b, msr, false) && exits(&b, msr, true), "{msr:#x}");
        }
        // Outside both ranges (no bits): always exits.
        assert!(exits(&b, 0x4000_0000, false) && exits(&b, 0xffff_ffff, true));
        assert!(exits(&b, 0xc000_2000, true) && exits(&b, 0x2000, false));
        build(&mut b, &[0x2000, 0xc000_2000]);
        assert!(b.iter().all(|&x| x == 0xff), "MSRs without a bit are ignored");
    }
}
