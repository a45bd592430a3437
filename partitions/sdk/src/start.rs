//! Startup: arm64 Image header, self-relocation, stack, BSS, FP/SIMD, vectors, and an
//! identity-mapped MMU, then the partition's `main`.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// Stage-1 identity map, level 1, 1 GiB blocks. At entry (MMU off) the boot code maps the GiB
/// the image runs in as normal write-back memory and the rest of the first 4 GiB as device memory
/// (not executable); then, once the device tree is readable, [`map_memory_from_dt`] makes every
/// GiB holding the partition's memory or a channel normal memory. So the same binary runs
/// wherever the board puts RAM (QEMU virt at 1 GiB, a ZCU102 at 0) and its devices.
#[repr(C, align(4096))]
struct Table([u64; 512]);

const VALID_BLOCK: u64 = 0b01;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 0b11 << 8;
const ATTR_NORMAL: u64 = 0 << 2;
const ATTR_DEVICE: u64 = 1 << 2;
const XN: u64 = (1 << 54) | (1 << 53);
/// A 1 GiB block of normal write-back memory (its address ORed in).
const NORMAL_BLOCK: u64 = VALID_BLOCK | AF | SH_INNER | ATTR_NORMAL;
/// A 1 GiB block of device memory, never executable.
const DEVICE_BLOCK: u64 = VALID_BLOCK | AF | ATTR_DEVICE | XN;
/// GiBs the map covers (devices of the boards Tantalum runs on lie below 4 GiB).
const MAPPED_GIB: u64 = 4;

#[unsafe(no_mangle)]
static mut GUEST_L1: Table = Table([0; 512]);

/// Makes the GiBs of `[base, base + size)` normal memory (break-before-make: invalid, TLB
/// invalidated, then the new block). The GiB the code runs in is normal from the start.
fn map_normal(base: u64, size: u64) {
    let Some(end) = base.checked_add(size).filter(|_| size > 0) else { return };
    let (first, last) = (base >> 30, (end - 1) >> 30);
    for gib in first..=last.min(511) {
        let block = (gib << 30) | NORMAL_BLOCK;
        // SAFETY: the table is this partition's own stage-1 root, written only here (one vCPU,
        // before `main`) and by the boot code before the MMU went on; each store is a whole
        // aligned descriptor, and a block in use (the code's own GiB) is already normal.
        unsafe {
            let entry = core::ptr::addr_of_mut!(GUEST_L1.0[gib as usize]);
            if entry.read_volatile() == block {
                continue;
            }
            entry.write_volatile(0);
            core::arch::asm!("dsb ishst", "tlbi vmalle1", "dsb ish", "isb", options(nostack));
            entry.write_volatile(block);
            core::arch::asm!("dsb ishst", "isb", options(nostack));
        }
    }
}

/// Maps the partition's memory (`/memory`) and its channels (`channel@` nodes) as normal
/// memory, from its device tree.
fn map_memory_from_dt() {
    let Some(fdt) = crate::dt::get() else { return };
    let Some(root) = fdt.find_node("/") else { return };
    for node in root.children().filter(|n| n.name.starts_with("memory") || n.name.starts_with("channel@")) {
        let Some(reg) = node.property("reg") else { continue };
        let mut cells = crate::dt::numbers(reg.value, 2);
        while let (Some(base), Some(size)) = (cells.next(), cells.next()) {
            map_normal(base, size);
        }
    }
}

/// TCR_EL1: T0SZ 25 (39-bit VA), write-back walks, inner shareable, 4 KiB granule, TTBR1 walks
/// disabled (EPD1), 40-bit IPA.
const TCR_EL1: u64 = 25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (2 << 32);
/// MAIR_EL1: attr0 normal write-back, attr1 Device-nGnRnE.
const MAIR_EL1: u64 = 0xff;
/// SCTLR_EL1: reset value with MMU, D-cache and I-cache on.
const SCTLR_EL1: u64 = 0x30d0_0800 | 1 | (1 << 2) | (1 << 12);
/// ELF relocation type R_AARCH64_RELATIVE.
const R_AARCH64_RELATIVE: u64 = 1027;

global_asm!(
    r#"
.section .text.head, "ax"
.global _start
_start:
    b       1f                      // arm64 Image header: code0
    .word   0                       // code1
    .quad   0                       // text_offset
    .quad   __image_size            // image_size, including BSS and stack
    .quad   0xa                     // flags: little-endian, 4 KiB pages, may be placed anywhere
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .word   0
1:  mrs     x20, pmevcntr0_el0      // instructions retired when we got the CPU
    mov     x19, x0                 // guest DTB
    mov     x1, #(3 << 20)          // CPACR_EL1.FPEN: no FP/SIMD traps
    msr     cpacr_el1, x1
    isb
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    // Apply R_AARCH64_RELATIVE relocations: *(base + offset) = base + addend.
    adr     x2, _start
    adrp    x3, __rela_start
    add     x3, x3, :lo12:__rela_start
    adrp    x4, __rela_end
    add     x4, x4, :lo12:__rela_end
2:  cmp     x3, x4
    b.hs    3f
    ldp     x5, x6, [x3], #16
    ldr     x7, [x3], #8
    cmp     x6, #{r_relative}
    b.ne    2b
    add     x7, x7, x2
    str     x7, [x2, x5]
    b       2b
3:  adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
4:  cmp     x1, x2
    b.hs    5f
    stp     xzr, xzr, [x1], #16
    b       4b
5:  adr     x1, guest_vectors
    msr     vbar_el1, x1
    ldr     x1, ={mair}
    msr     mair_el1, x1
    ldr     x1, ={tcr}
    msr     tcr_el1, x1
    // The boot map: the first 4 GiB as devices, the image's own GiB as normal memory.
    adrp    x1, GUEST_L1
    add     x1, x1, :lo12:GUEST_L1
    ldr     x3, ={device_block}
    mov     x4, #0                  // GiB number
7:  lsl     x6, x4, #30
    orr     x6, x6, x3
    str     x6, [x1, x4, lsl #3]
    add     x4, x4, #1
    cmp     x4, #{mapped_gib}
    b.lo    7b
    adr     x2, _start
    lsr     x2, x2, #30
    lsl     x4, x2, #30
    ldr     x3, ={normal_block}
    orr     x6, x4, x3
    str     x6, [x1, x2, lsl #3]
    msr     ttbr0_el1, x1
    dsb     sy
    tlbi    vmalle1
    dsb     sy
    isb
    ldr     x1, ={sctlr}
    msr     sctlr_el1, x1
    isb
    mov     x0, x19
    mov     x1, x20
    bl      __tantalum_start
6:  wfi
    b       6b

.macro GUEST_VECTOR kind
    .balign 0x80
    mov     x0, #\kind
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       __tantalum_exception
.endm

.balign 0x800
guest_vectors:
    .irp kind, 0,1,2,3
    GUEST_VECTOR \kind
    .endr
    .balign 0x80                    // current EL with SPx, synchronous: debug events resume
    b       sync_entry
    .balign 0x80                    // current EL with SPx, IRQ: doorbells and other interrupts
    b       irq_entry
    .irp kind, 6,7,8,9,10,11,12,13,14,15
    GUEST_VECTOR \kind
    .endr

// The frame both resumable entries push: what a Rust call may clobber (x0-x18, x29, x30) and
// the return state (ELR_EL1, SPSR_EL1 at +168: the `debug::Resume` a hook may change).
.macro SAVE_FRAME
    sub     sp, sp, #192
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    str     x30, [sp, #160]
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x0, x1, [sp, #168]
.endm

// Returns to the code SAVE_FRAME saved (with the return state as the frame says now).
.macro RESTORE_FRAME_AND_RETURN
    ldp     x0, x1, [sp, #168]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldr     x30, [sp, #160]
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x29, [sp, #144]
    add     sp, sp, #192
    eret
.endm

// A synchronous exception at EL1: debug events (breakpoint, watchpoint, step) and data aborts go
// to `__tantalum_sync` and return to the interrupted code if a hook took them; anything else is fatal.
sync_entry:
    SAVE_FRAME
    mrs     x0, esr_el1
    mrs     x1, far_el1
    add     x2, sp, #168
    bl      __tantalum_sync
    cbz     x0, 7f
    RESTORE_FRAME_AND_RETURN
7:  mov     x0, #4
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       __tantalum_exception

// Runs the interrupt handlers and returns to the interrupted code. IRQs stay masked meanwhile
// (no nesting).
irq_entry:
    SAVE_FRAME
    bl      __tantalum_irq
    RESTORE_FRAME_AND_RETURN
"#,
    r_relative = const R_AARCH64_RELATIVE,
    mair = const MAIR_EL1,
    device_block = const DEVICE_BLOCK,
    normal_block = const NORMAL_BLOCK,
    mapped_gib = const MAPPED_GIB,
    tcr = const TCR_EL1,
    sctlr = const SCTLR_EL1,
);

static DTB: AtomicU64 = AtomicU64::new(0);
static BOOT_INSTRUCTIONS: AtomicU64 = AtomicU64::new(0);

/// Guest-physical address of the partition's device tree (x0 at entry).
pub fn dtb_address() -> u64 {
    DTB.load(Ordering::Relaxed)
}

/// Instructions retired on this CPU (hypervisor included) before the partition's first
/// instruction, as read from the PMU at entry.
pub fn boot_instructions() -> u64 {
    BOOT_INSTRUCTIONS.load(Ordering::Relaxed)
}

unsafe extern "C" {
    /// First byte of the image (the linker script's entry).
    static _start: u8;
}

/// Guest-physical address the image was loaded at (start of the first memory region).
pub fn image_base() -> u64 {
    core::ptr::addr_of!(_start) as u64
}

unsafe extern "Rust" {
    /// Defined by `tantalum_guest::entry!`.
    fn __tantalum_main();
}

#[unsafe(no_mangle)]
extern "C" fn __tantalum_start(dtb: u64, boot_instructions: u64) -> ! {
    DTB.store(dtb, Ordering::Relaxed);
    BOOT_INSTRUCTIONS.store(boot_instructions, Ordering::Relaxed);
    map_memory_from_dt();
    crate::heap::init();
    // SAFETY: `entry!` defines this symbol as a plain Rust function with no arguments.
    unsafe { __tantalum_main() };
    crate::exit(0)
}

/// A synchronous exception at EL1 (`sync_entry`): returns 1 if it was a debug event the
/// [`crate::debug`] hook handled or a data abort the [`crate::abort`] hook accepted (resume),
/// 0 otherwise (fatal).
#[unsafe(no_mangle)]
extern "C" fn __tantalum_sync(esr: u64, far: u64, resume: &mut crate::debug::Resume) -> u64 {
    u64::from(crate::debug::on_exception(esr, far, resume) || crate::abort::on_exception(esr, far, resume))
}

#[unsafe(no_mangle)]
extern "C" fn __tantalum_exception(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    // ESR_EL1.EC 0: an instruction this partition may not execute (UNDEFINED at EL1), e.g. a
    // semihosting `hlt #0xf000` when no one provides semihosting.
    if esr >> 26 == 0 {
        crate::println!("undefined instruction at {elr:#x} (ESR {esr:#x}): exiting");
    } else {
        crate::println!("unexpected exception {kind}: ESR {esr:#x}, ELR {elr:#x}, FAR {far:#x}");
    }
    crate::exit(102)
}
