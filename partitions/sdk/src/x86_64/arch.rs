//! The x86_64 pieces the shared SDK code calls: `vmcall` (function in rax, arguments in rdi,
//! rsi, rdx, r10, r8, r9, results in rax, rdi, rsi, rdx, r10: docs/hypercalls.md), waiting,
//! and the time-stamp counter at the frequency the hypervisor reports in CPUID 0x40000010.

use core::arch::asm;

/// The hypercall instruction: `vmcall`.
pub mod calls {
    use core::arch::asm;

    /// Issues `vmcall` with `function` and six arguments; returns rax, rdi, rsi, rdx, r10.
    #[inline(always)]
    pub fn hvc(function: u64, args: [u64; 6]) -> [u64; 5] {
        let (r0, r1, r2, r3, r4): (u64, u64, u64, u64, u64);
        // SAFETY: the hypervisor's ABI preserves every register except the five results and
        // touches no memory the Rust program did not hand it by address.
        unsafe {
            asm!(
                "vmcall",
                inout("rax") function => r0,
                inout("rdi") args[0] => r1,
                inout("rsi") args[1] => r2,
                inout("rdx") args[2] => r3,
                inout("r10") args[3] => r4,
                in("r8") args[4],
                in("r9") args[5],
                options(nostack)
            );
        }
        [r0, r1, r2, r3, r4]
    }
}

/// Waits for an interrupt (HLT, which the hypervisor traps).
pub fn wait_for_interrupt() {
    // SAFETY: HLT only waits.
    unsafe { asm!("hlt", options(nomem, nostack)) };
}

/// The time-stamp counter.
#[inline]
pub fn counter() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// CPUID `leaf`.
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid(leaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// The counter's frequency in Hz: Tantalum's timing leaf 0x40000010 (kHz), 0 without it.
pub fn counter_frequency() -> u64 {
    if cpuid(0x4000_0000).0 < 0x4000_0010 {
        return 0;
    }
    u64::from(cpuid(0x4000_0010).0) * 1000
}
