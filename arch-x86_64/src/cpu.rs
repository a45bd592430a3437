//! Small wrappers over x86 instructions and control registers, and this CPU's own GDT and TSS
//! (VMX needs a host TR).

use core::arch::asm;

pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// The XSAVE state components this CPU supports in XCR0 (CPUID.(EAX=0xD,ECX=0):EDX:EAX), or
/// x87 alone without XSAVE.
pub fn xcr0_supported() -> u64 {
    if cpuid(1, 0).2 & (1 << 26) == 0 {
        return 1;
    }
    let (a, _, _, d) = cpuid(0xd, 0);
    (u64::from(d) << 32) | u64::from(a)
}

/// Sets XCR0 (for a partition's guest: the CPU is its alone; the hypervisor uses no extended
/// state). The caller checked `value` (`vmexit::xcr0_valid`).
pub fn xsetbv(value: u64) {
    let cr4: u64;
    // SAFETY: reading CR4 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack)) };
    const OSXSAVE: u64 = 1 << 18;
    if cr4 & OSXSAVE == 0 {
        // SAFETY: enabling XSETBV in the host; the hypervisor itself saves no extended state.
        unsafe { core::arch::asm!("mov cr4, {}", in(reg) cr4 | OSXSAVE, options(nomem, nostack)) };
    }
    // SAFETY: a valid XCR0 for this CPU (checked by the caller).
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nomem, nostack))
    };
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: callers read architectural MSRs this CPU has (VMX capability MSRs after CPUID
    // said VMX, EFER, FEATURE_CONTROL).
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// # Safety
/// The write must be valid for `msr` and keep the hypervisor's invariants.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded contract.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack))
    };
}

/// Reads `size` (1, 2 or 4) bytes from I/O port `port`.
///
/// # Safety
/// The port must be one a partition owns (it decides what reading it does), read on its behalf.
pub unsafe fn port_read(port: u16, size: u8) -> u32 {
    let value: u32;
    // SAFETY: the caller's port; IN only loads the accumulator.
    unsafe {
        match size {
            1 => asm!("in al, dx", "movzx eax, al", in("dx") port, out("eax") value, options(nomem, nostack)),
            2 => asm!("in ax, dx", "movzx eax, ax", in("dx") port, out("eax") value, options(nomem, nostack)),
            _ => asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack)),
        }
    }
    value
}

/// Writes the low `size` (1, 2 or 4) bytes of `value` to I/O port `port`.
///
/// # Safety
/// As [`port_read`], for a write.
pub unsafe fn port_write(port: u16, size: u8, value: u32) {
    // SAFETY: the caller's port.
    unsafe {
        match size {
            1 => asm!("out dx, al", in("dx") port, in("al") value as u8, options(nomem, nostack)),
            2 => asm!("out dx, ax", in("dx") port, in("ax") value as u16, options(nomem, nostack)),
            _ => asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack)),
        }
    }
}

pub fn cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effect.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effect.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack)) };
    v
}

/// # Safety
/// The values must keep long mode, paging and the hypervisor's mappings as they are.
pub unsafe fn set_cr0_cr4(cr0: u64, cr4: u64) {
    // SAFETY: forwarded contract.
    unsafe { asm!("mov cr0, {}", "mov cr4, {}", in(reg) cr0, in(reg) cr4, options(nostack)) };
}

/// The selectors of the host's 64-bit code and flat data segments in every CPU's GDT.
pub const CODE_SELECTOR: u16 = 0x08;
pub const DATA_SELECTOR: u16 = 0x10;
/// The selector of this CPU's TSS in its GDT.
pub const TSS_SELECTOR: u16 = 0x18;

#[repr(C, align(16))]
struct Tables {
    /// Null, 64-bit code (0x08), data (0x10), the TSS (0x18, two entries).
    gdt: [u64; 5],
    /// A 64-bit TSS (104 bytes): nothing uses it but VMX, which wants a host TR.
    tss: [u32; 26],
}

static mut TABLES: [Tables; tantalum_core::config::MAX_CPUS] =
    [const { Tables { gdt: [0; 5], tss: [0; 26] } }; tantalum_core::config::MAX_CPUS];

/// Loads CPU `cpu`'s GDT (with a TSS) and TR; returns the GDT's and the TSS's addresses.
pub fn load_host_tables(cpu: usize) -> (u64, u64) {
    let tables = &raw mut TABLES;
    // SAFETY: each CPU touches only its own entry, once, before it uses VMX.
    let t = unsafe { &mut (*tables)[cpu] };
    let tss = t.tss.as_ptr() as u64;
    let limit = 103u64;
    t.gdt = [
        0,
        0x00af_9a00_0000_ffff,
        0x00cf_9200_0000_ffff,
        limit | ((tss & 0xff_ffff) << 16) | (0x89 << 40) | (((tss >> 24) & 0xff) << 56),
        tss >> 32,
    ];
    let gdt = t.gdt.as_ptr() as u64;
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer { limit: 39, base: gdt };
    // SAFETY: the new GDT has the same code and data descriptors at the same selectors as the
    // boot one, so the loaded segments stay valid; the TSS descriptor is fresh (not busy).
    unsafe {
        asm!("lgdt [{}]", "ltr {:x}", in(reg) &pointer, in(reg) TSS_SELECTOR, options(nostack));
    }
    HOST.lock()[cpu] = (gdt, tss);
    (gdt, tss)
}

static HOST: spin::Mutex<[(u64, u64); tantalum_core::config::MAX_CPUS]> =
    spin::Mutex::new([(0, 0); tantalum_core::config::MAX_CPUS]);

/// CPU `cpu`'s GDT and TSS addresses.
pub fn host_tables(cpu: usize) -> (u64, u64) {
    HOST.lock()[cpu]
}
