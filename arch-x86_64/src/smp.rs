//! Starting the other CPUs: INIT-SIPI-SIPI through the boot CPU's local APIC, with a real-mode
//! trampoline copied to [`TRAMPOLINE`] (below 1 MiB, page-aligned: the SIPI vector is its page
//! number). The trampoline goes from real mode straight to long mode on the boot page tables
//! and GDT (`boot.rs`), takes the stack the boot CPU left in [`AP_STACK`] and calls
//! [`crate::ap_main`] with its CPU index.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tantalum_core::addr::{HostPhys, HostRange};

/// Where the trampoline runs: conventional memory the BIOS and the boot loader are done with.
pub const TRAMPOLINE: HostRange = HostRange::new(HostPhys(0x8000), 0x1000);

/// The local APIC (xAPIC mode, uncached in the boot map) and its registers.
const LAPIC: usize = 0xfee0_0000;
const LAPIC_ID: usize = 0x20;
const LAPIC_EOI: usize = 0xb0;
const LAPIC_SVR: usize = 0xf0;
const LAPIC_ICR_LOW: usize = 0x300;
const LAPIC_ICR_HIGH: usize = 0x310;
/// The highest APIC ID an xAPIC ICR destination holds (8 bits; no x2APIC yet).
const MAX_XAPIC_ID: u32 = 0xff;
/// The vector of the IPI that makes a CPU leave its guest (a doorbell for it is pending).
pub const KICK_VECTOR: u32 = 0xf0;
/// ICR: delivery status (send pending), INIT (level assert), Start-up.
const ICR_PENDING: u32 = 1 << 12;
const ICR_INIT: u32 = 0x0000_4500;
const ICR_STARTUP: u32 = 0x0000_4600;

global_asm!(
    r#"
    .section .rodata.trampoline, "a"
    .global tantalum_trampoline_start, tantalum_trampoline_end
    .code16
tantalum_trampoline_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    // A 32-bit GDT base (operand-size prefix).
    lgdtl ({base} + trampoline_gdt_pointer - tantalum_trampoline_start)
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl ${pml4}, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    // Far jump to 64-bit code (selector 0x08) at a 32-bit offset.
    .byte 0x66, 0xea
    .long tantalum_ap_long_mode
    .short 0x08
    .balign 8
trampoline_gdt_pointer:
    .short 23
    .long gdt64
tantalum_trampoline_end:

    .section .text
    .code64
tantalum_ap_long_mode:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq {stack}(%rip), %rsp
    movq {cpu}(%rip), %rdi
    call {main}
2:
    hlt
    jmp 2b
    "#,
    base = const TRAMPOLINE.start.as_u64(),
    pml4 = sym crate::boot::PML4,
    stack = sym AP_STACK,
    cpu = sym AP_CPU,
    main = sym crate::ap_main,
    options(att_syntax)
);

unsafe extern "C" {
    static tantalum_trampoline_start: u8;
    static tantalum_trampoline_end: u8;
}

/// The stack top of the CPU being started (one at a time).
#[unsafe(no_mangle)]
static AP_STACK: AtomicU64 = AtomicU64::new(0);
/// The index (in the board's CPUs) of the CPU being started.
#[unsafe(no_mangle)]
static AP_CPU: AtomicU64 = AtomicU64::new(0);
/// CPUs that reached Rust.
static STARTED: AtomicUsize = AtomicUsize::new(0);

fn lapic_read(reg: usize) -> u32 {
    // SAFETY: the local APIC's registers, identity-mapped uncached; reads have no side effects.
    unsafe { ((LAPIC + reg) as *const u32).read_volatile() }
}

fn lapic_write(reg: usize, value: u32) {
    // SAFETY: as above; the hypervisor alone drives the local APIC (never passed through).
    unsafe { ((LAPIC + reg) as *mut u32).write_volatile(value) }
}

/// This CPU's local APIC ID.
pub fn apic_id() -> u32 {
    lapic_read(LAPIC_ID) >> 24
}

/// Counts a CPU as started (called by each CPU first thing in Rust).
pub fn arrived() {
    STARTED.fetch_add(1, Ordering::AcqRel);
}

fn send_ipi(apic_id: u32, command: u32) {
    lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
    lapic_write(LAPIC_ICR_LOW, command);
    while lapic_read(LAPIC_ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
}

/// Copies the trampoline into place (the boot CPU, once, before any [`start`]).
pub fn install() {
    let start = (&raw const tantalum_trampoline_start) as usize;
    let len = (&raw const tantalum_trampoline_end) as usize - start;
    assert!(len as u64 <= TRAMPOLINE.size, "the AP trampoline is larger than its page");
    // SAFETY: the trampoline page is conventional RAM no partition owns (the caller checked the
    // config) and that nothing else uses after the boot loader handed over.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, TRAMPOLINE.start.as_u64() as *mut u8, len);
    }
    enable_local_apic();
}

/// Software-enables this CPU's local APIC (spurious vector 0xff): each CPU, before it sends or
/// takes IPIs.
pub fn enable_local_apic() {
    lapic_write(LAPIC_SVR, lapic_read(LAPIC_SVR) | 0x1ff);
}

/// Ends the interrupt this CPU acknowledged on a VM exit (external-interrupt exits with
/// "acknowledge interrupt on exit").
pub fn eoi() {
    lapic_write(LAPIC_EOI, 0);
}

/// Makes the CPU with local APIC ID `apic_id` leave its guest ([`KICK_VECTOR`]; its exit
/// handler ends the interrupt and injects what is pending).
pub fn kick(apic_id: u32) {
    if apic_id <= MAX_XAPIC_ID {
        send_ipi(apic_id, KICK_VECTOR);
    }
}

/// Starts the CPU with local APIC ID `apic_id` as CPU `cpu`, on the stack below `stack_top`;
/// returns whether it arrived within about a second (never for an ID beyond xAPIC's 8 bits).
pub fn start(cpu: usize, apic_id: u32, stack_top: u64) -> bool {
    if apic_id > MAX_XAPIC_ID {
        return false;
    }
    let before = STARTED.load(Ordering::Acquire);
    AP_STACK.store(stack_top, Ordering::Release);
    AP_CPU.store(cpu as u64, Ordering::Release);
    let vector = (TRAMPOLINE.start.as_u64() >> 12) as u32;
    send_ipi(apic_id, ICR_INIT);
    crate::tsc::spin_ns(10_000_000);
    for _ in 0..2 {
        send_ipi(apic_id, ICR_STARTUP | vector);
        crate::tsc::spin_ns(200_000);
        if STARTED.load(Ordering::Acquire) > before {
            return true;
        }
    }
    for _ in 0..1000 {
        if STARTED.load(Ordering::Acquire) > before {
            return true;
        }
        crate::tsc::spin_ns(1_000_000);
    }
    false
}
