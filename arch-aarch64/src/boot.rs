//! Entry: the arm64 Image header, the boot paths of the primary and secondary CPUs, the EL2
//! identity map, and the exception vectors with the guest save/restore path.

use core::arch::global_asm;

use tantalum_aarch64::descriptors::{El2Table, EL2_BOOT_DEVICE_BLOCK, EL2_BOOT_RAM_BLOCK, MAIR_EL2_VALUE};
use tantalum_core::bootimage::{field, BOOT_INFO_OFFSET, BOOT_INFO_VERSION, STACK_SIZE};
use tantalum_core::config::MAX_CPUS;

/// The hypervisor's boot-time EL2 translation table: 1 GiB blocks, the board's RAM as normal
/// memory and the devices the hypervisor drives as device memory (BootInfo's map, which the
/// build computes from the board). The boot CPU fills it before the MMU goes on
/// (`descriptors::el2_boot_block` says what each entry holds); only assembly touches it.
#[unsafe(no_mangle)]
static mut EL2_L1: El2Table = El2Table([0; tantalum_core::stage2::ENTRIES]);

/// Size of the frame the vectors push for a guest exit: x0..x30, ELR_EL2, SPSR_EL2, padding.
pub const GUEST_FRAME_SIZE: usize = 34 * 8;

unsafe extern "C" {
    /// The vector table for a GICv2 board (see the `VECTORS` macro below).
    static el2_vectors_gicv2: u8;
}

/// Installs this CPU's vector table for a GICv2: the one whose guest IRQ vector runs the
/// interrupt fast path compiled for it (the boot table's is the GICv3's).
pub fn install_gicv2_vectors() {
    // SAFETY: only the linker symbol's address is taken.
    let table = unsafe { &el2_vectors_gicv2 as *const u8 as u64 };
    // SAFETY: the table is 2 KiB-aligned code in the image, the same as the boot table but its
    // guest IRQ vector; EL2 runs with every exception masked while it changes.
    unsafe { core::arch::asm!("msr vbar_el2, {}", "isb", in(reg) table, options(nostack)) };
}

/// Bytes of the primary CPU's boot stack (in bss: the primary never gets a runtime slot).
const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct BootStack([u8; BOOT_STACK_SIZE]);

#[unsafe(no_mangle)]
static mut BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);

/// TCR_EL2: T0SZ = 25 (39-bit VA), 4 KiB granule, write-back inner-shareable walks, 40-bit PA,
/// RES1 bits 31 and 23.
const TCR_EL2_VALUE: u64 = 25 | (1 << 8) | (1 << 10) | (3 << 12) | (0b010 << 16) | (1 << 23) | (1 << 31);
/// SCTLR_EL2: MMU, data and instruction caches, stack alignment check; RES1 bits.
const SCTLR_EL2_VALUE: u64 = 0x30c5_0830 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12);

global_asm!(
    r#"
.section .text.head, "ax"
.global _start
_start:
    // arm64 Image header (Documentation/arch/arm64/booting.rst).
    b       primary_entry           // code0
    .word   0                       // code1
    .quad   0x80000                 // text_offset
    .quad   __image_size            // image_size: patched by the build to cover the payload
    .quad   0x2                     // flags: little-endian, 4 KiB pages, 2 MiB-aligned base
    .quad   0, 0, 0                 // reserved
    .ascii  "ARM\x64"               // magic
    .word   0                       // reserved (PE header offset)
    // BootInfo (tantalum_core::bootimage), filled in by the build.
    .ascii  "TANTALUM"
    .word   {boot_info_version}
    .word   0
    .quad   0, 0, 0, 0, 0, 0, 0, 0, 0, 0

.text
// PMU event counter 0 counts retired instructions at every EL (INST_RETIRED with NSH), from
// zero, so benchmarks can measure from here. Clobbers x1.
.macro START_INSTRUCTION_COUNTER
    mov     x1, #0x8
    movk    x1, #0x800, lsl #16
    msr     pmevtyper0_el0, x1
    mov     x1, #1
    msr     pmcntenset_el0, x1
    mrs     x1, pmcr_el0
    orr     x1, x1, #3
    msr     pmcr_el0, x1
    isb
.endm

primary_entry:
    START_INSTRUCTION_COUNTER
    mov     x19, x0                 // firmware DTB
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    not_el2
    adrp    x1, BOOT_STACK
    add     x1, x1, :lo12:BOOT_STACK
    add     x1, x1, #{boot_stack_size}
    mov     sp, x1
    // Zero bss (16-byte aligned by the linker script). BOOT_STACK is part of it, but nothing
    // has been pushed yet.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  bl      fill_el2_map
    bl      el2_setup
    mov     x0, x19
    bl      primary_main
    b       park_forever

// Secondary CPUs arrive here from PSCI CPU_ON with x0 = their board CPU index.
.global secondary_entry
secondary_entry:
    START_INSTRUCTION_COUNTER
    mov     x19, x0
    cmp     x0, #{max_cpus}
    b.hs    park_forever
    // sp = runtime base + (index + 1) * STACK_SIZE, runtime base = _start + image_size (page aligned)
    adr     x1, _start
    ldr     x2, [x1, #16]
    add     x2, x1, x2
    add     x2, x2, #0xfff
    and     x2, x2, #~0xfff
    add     x3, x0, #1
    mov     x4, #{stack_size}
    madd    x2, x3, x4, x2
    mov     sp, x2
    bl      el2_setup
    mov     x0, x19
    bl      secondary_main
    b       park_forever

// The boot-time EL2 identity map from BootInfo's windows (MMU off): entry i maps the GiB at
// i << 30 as RAM if it lies in the RAM window, else as device memory if it lies in the device
// window, else nothing. Then cleans and invalidates the table from the caches, so the walks see
// it. Clobbers x0-x10.
fill_el2_map:
    adr     x0, _start
    ldr     x1, [x0, #{map_ram_base}]
    ldr     x2, [x0, #{map_ram_size}]
    add     x2, x1, x2
    ldr     x3, [x0, #{map_devices_base}]
    ldr     x4, [x0, #{map_devices_size}]
    add     x4, x3, x4
    adrp    x5, EL2_L1
    add     x5, x5, :lo12:EL2_L1
    mov     x6, #0                  // address of the entry's GiB
    mov     x7, #512
    mov     x10, #(1 << 30)
1:  mov     x8, #0
    cmp     x6, x1
    b.lo    2f
    cmp     x6, x2
    b.hs    2f
    ldr     x9, ={ram_block}
    orr     x8, x6, x9
    b       3f
2:  cmp     x6, x3
    b.lo    3f
    cmp     x6, x4
    b.hs    3f
    ldr     x9, ={device_block}
    orr     x8, x6, x9
3:  str     x8, [x5], #8
    add     x6, x6, x10
    subs    x7, x7, #1
    b.ne    1b
    dsb     sy
    // Clean and invalidate the table's lines (CTR_EL0.DminLine words each).
    mrs     x9, ctr_el0
    ubfx    x9, x9, #16, #4
    mov     x10, #4
    lsl     x10, x10, x9
    sub     x5, x5, #4096
    add     x6, x5, #4096
4:  dc      civac, x5
    add     x5, x5, x10
    cmp     x5, x6
    b.lo    4b
    dsb     sy
    ret

// MMU, caches and vectors for EL2. Clobbers x0-x3.
el2_setup:
    adr     x0, el2_vectors
    msr     vbar_el2, x0
    ldr     x0, ={mair}
    msr     mair_el2, x0
    ldr     x0, ={tcr}
    msr     tcr_el2, x0
    adrp    x0, EL2_L1
    add     x0, x0, :lo12:EL2_L1
    msr     ttbr0_el2, x0
    dsb     sy
    tlbi    alle2
    dsb     sy
    isb
    ldr     x0, ={sctlr}
    msr     sctlr_el2, x0
    isb
    ret

not_el2:
park_forever:
    wfe
    b       park_forever

// The fast paths' frame: the registers a call may clobber (x2..x18, x30; x0 and x1 are saved
// by the vector) and, when the full path or a transfer register needs them, x19..x29, each in
// its GuestFrame slot.
.macro SAVE_CALL_CLOBBERED
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    str     x18, [sp, #144]
    str     x30, [sp, #240]
.endm
.macro RESTORE_CALL_CLOBBERED
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldr     x18, [sp, #144]
    ldr     x30, [sp, #240]
.endm
.macro SAVE_CALLEE_SAVED
    str     x19, [sp, #152]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
.endm
.macro SAVE_RETURN_STATE
    mrs     x2, elr_el2
    str     x2, [sp, #248]
    mrs     x2, spsr_el2
    str     x2, [sp, #256]
.endm
.macro RESTORE_CALLEE_SAVED
    ldr     x19, [sp, #152]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
.endm

// Exception vectors. Exceptions taken at EL2 itself are hypervisor bugs: report and halt.
.macro VECTOR_HYP kind
    .balign 0x80
    mov     x0, #\kind
    b       hyp_exception_entry
.endm
.macro VECTOR_GUEST kind
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x1, #\kind
    b       guest_exit_entry
.endm
// A synchronous exit from a guest: `hvc #0` first tries the fast path for calls answered at once
// (guest_sync_low), a data abort the MMIO fast path. ESR_EL2.EC below 0x20 (bit 31 clear) is
// never a data abort (0x24), and `hvc #0`'s EC (0x16) is one of them. A data abort by a 32-bit
// instruction (IL: the fast path advances the PC by 4) that the hardware decoded (ISV) as a
// stage-2 translation fault (the DFSC's type; not on a stage-1 walk, S1PTW) goes on here to the
// MMIO fast path (esr::takes_fast_mmio makes the same tests): the
// registers a call clobbers are saved (x0 and x1 already are) and, when the transfer register
// (ISS.SRT) is one of x19..x29 (a store reads it, a load writes it), x19..x29 too
// (guest_dabt_high, which x30 and xzr also take: one test instead of two, saving x19..x29
// for nothing there); fast_mmio::guest_fast_mmio gets the frame in x0 and ESR_EL2 in x1, and
// guest_dabt_done (or guest_dabt_high) takes its answer. Anything else takes the full path (guest_sync_other).
.macro VECTOR_GUEST_SYNC
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mrs     x1, esr_el2
    tbz     x1, #31, guest_sync_low
    ubfx    x0, x1, #24, #8         // EC, IL, ISV
    cmp     x0, #{dabt_il_isv}
    b.ne    guest_sync_other
    tbnz    x1, #{s1ptw_bit}, guest_sync_other
    and     x0, x1, #{dfsc_type}
    cmp     x0, #{dfsc_translation}
    b.ne    guest_sync_other
    SAVE_CALL_CLOBBERED
    ubfx    x0, x1, #16, #5         // ISS.SRT: the transfer register
    add     x0, x0, #(32 - 19)      // x19..x29 -> 32..42 (and x30, xzr -> 43, 44)
    tbnz    x0, #5, guest_dabt_high
    mov     x0, sp
    bl      guest_fast_mmio         // x0 = 0: the full path; else emulated
    b       guest_dabt_done
.endm

// An interrupt from a guest: the fast path first for the common ones.
// The interrupt fast path, in the vector itself: `fast` (vcpu::guest_fast_interrupt on a GICv3,
// guest_fast_interrupt_gicv2 on a GICv2) takes one physical interrupt and, for the common ones
// (the vCPU's timer or PMU, its passed-through SPI, a kick), loads the list registers as the
// full path would, with only the registers a call may clobber saved. It returns x0 = all ones
// when it took the interrupt; else the INTID it acknowledged plus one (or 0), with which
// guest_irq_full saves the rest of the frame and runs guest_exit.
.macro VECTOR_GUEST_IRQ fast
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    SAVE_CALL_CLOBBERED
    bl      \fast
    cmn     x0, #1
    b.ne    guest_irq_full
    RESTORE_CALL_CLOBBERED
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame}
    eret
.endm

// The vector table, whose guest IRQ vector calls `irq_fast`: one table per GIC version, so that
// the interrupt fast path is the one compiled for the board's GIC without asking which
// (el2_vectors, GICv3, from boot; el2_vectors_gicv2, which install_gicv2_vectors installs).
// The tables have a section of their own, which link.ld puts after the image header and this
// assembly's code, so that their 2 KiB alignment is not paid in padding.
.macro VECTORS name, irq_fast
.pushsection .text.vectors, "ax"
.balign 0x800
\name:
    VECTOR_HYP 0      // current EL, SP0: sync
    VECTOR_HYP 1
    VECTOR_HYP 2
    VECTOR_HYP 3
    VECTOR_HYP 0      // current EL, SPx: sync
    VECTOR_HYP 1      // irq
    VECTOR_HYP 2      // fiq
    VECTOR_HYP 3      // serror
    VECTOR_GUEST_SYNC // lower EL, AArch64: sync
    .org    \name + 0x480     // (an error if the sync vector outgrew its 32 instructions)
    VECTOR_GUEST_IRQ \irq_fast
    .org    \name + 0x500     // (an error if the IRQ vector outgrew its 32 instructions)
    VECTOR_GUEST 2    // fiq
    VECTOR_GUEST 3    // serror
    VECTOR_GUEST 4    // lower EL, AArch32 (never enabled: HCR_EL2.RW = 1)
    VECTOR_GUEST 4
    VECTOR_GUEST 4
    VECTOR_GUEST 4
.popsection
.endm

// A hypervisor built for one GIC version (src/built.rs) has one table, the boot table, whose
// fast path is that version's; el2_vectors_gicv2 is then the boot table itself.
.if {gic_v3}
    VECTORS el2_vectors, guest_fast_interrupt
.else
    VECTORS el2_vectors, guest_fast_interrupt_gicv2
.endif
.global el2_vectors_gicv2
.if {gic_v2} && {gic_v3}
    VECTORS el2_vectors_gicv2, guest_fast_interrupt_gicv2
.else
.set el2_vectors_gicv2, el2_vectors
.endif

hyp_exception_entry:
    mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    bl      hyp_exception
    b       park_forever

// An exit with ESR_EL2.EC below 0x20 (x0, x1 already saved at [sp], x1 = ESR_EL2): `hvc #0`
// first tries the fast path for calls answered at once (guest_hvc_entry): an `hvc #0` that
// returns at once with a value in x0 and changes nothing (vcpu::guest_fast_call decides, as the
// full path would answer it) costs only the registers a call may clobber. Anything else, or
// anything due at this exit (the partition stopped or restarting, virtual interrupts to load, a
// DMA fault), takes the full path: the rest of the frame is saved (x19..x29 still hold the
// guest's values: the call kept them) and guest_exit runs as for any exit. ELR_EL2 and SPSR_EL2
// are untouched meanwhile (EL2 runs with every exception masked).
guest_sync_low:
    movz    x0, #({hvc64} >> 16), lsl #16
    cmp     x1, x0
    b.eq    guest_hvc_entry
guest_sync_other:
    mov     x1, #0                  // kind: sync
    b       guest_exit_entry        // neither `hvc #0` nor a data abort to emulate: the full path

// The MMIO fast path when the transfer register is one of x19..x29: those saved too, and
// restored from the frame after an emulated access (a load's value is there).
guest_dabt_high:
    SAVE_CALLEE_SAVED
    mov     x0, sp
    bl      guest_fast_mmio
    cbz     x0, guest_sync_full
    RESTORE_CALLEE_SAVED
    b       guest_dabt_emulated

// fast_mmio::guest_fast_mmio's answer (x0): 0, the full path (nothing changed; x19..x29 still the
// guest's); any other, emulated (the frame's x0..x18 and x30 go back to the guest; ELR_EL2
// advanced).
guest_dabt_done:
    cbz     x0, guest_sync_full
guest_dabt_emulated:
    RESTORE_CALL_CLOBBERED
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame}
    eret

// The hvc fast path (x0, x1 already saved at [sp]).
guest_hvc_entry:
    ldr     x0, [sp, #0]
    // Tantalum's own calls but HYP_VERSION change or read state: below.
    movz    x1, #({vendor_first} >> 16), lsl #16
    add     x1, x1, #({vendor_first} & 0xffff)
    sub     x1, x0, x1
    cmp     x1, #({vendor_last} - {vendor_first})
    b.ls    guest_vendor_call
    SAVE_CALL_CLOBBERED
    bl      guest_fast_call         // x0 = the function; returns x0 = value, x1 = answered
    cbz     x1, 1f
    RESTORE_CALL_CLOBBERED
    ldr     x1, [sp, #8]
    add     sp, sp, #{frame}
    eret
1:
// The rest of the frame after a fast path declined (x0..x18 and x30 saved; x19..x29 still the
// guest's, which the call kept).
guest_sync_full:
    SAVE_CALLEE_SAVED
    SAVE_RETURN_STATE
    mov     x0, sp
    mov     x1, #0                  // kind: sync
    bl      guest_exit
    b       guest_resume

// Tantalum's calls after HYP_VERSION (x1 = the function - HYP_PARTITION_INFO): HYP_CHANNEL_NOTIFY
// is rung by vcpu::guest_fast_notify with only the registers a call clobbers saved (it writes
// the answer to x0's slot, or returns 0 having changed nothing: the full path); the others take
// the full path at once.
guest_vendor_call:
    cmp     x1, #({channel_notify} - {vendor_first})
    mov     x1, #0                  // kind: sync
    b.ne    guest_exit_entry
    SAVE_CALL_CLOBBERED
    mov     x0, sp
    bl      guest_fast_notify       // x0 = 1: rung, the answer in the frame; 0: the full path
    cbz     x0, guest_sync_full
    RESTORE_CALL_CLOBBERED
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame}
    eret

// An interrupt the fast path did not take (VECTOR_GUEST_IRQ; x0..x18 and x30 saved, x0 = the
// INTID it acknowledged plus one, or 0): the rest of the frame, then guest_exit with kind IRQ
// and that value above it.
guest_irq_full:
    SAVE_CALLEE_SAVED
    SAVE_RETURN_STATE
    lsl     x1, x0, #{acknowledged_shift}
    orr     x1, x1, #1              // kind: IRQ
    mov     x0, sp
    bl      guest_exit
    b       guest_resume

// x0, x1 already saved at [sp]; x1 = kind.
guest_exit_entry:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x2, elr_el2
    stp     x30, x2, [sp, #240]
    mrs     x2, spsr_el2
    str     x2, [sp, #256]
    mov     x0, sp
    bl      guest_exit
    b       guest_resume            // with the (possibly updated) frame at sp

// Loads a guest's registers and return state from the frame at \base (sp or x0); x0 and x1
// come last because \base may be x0.
.macro LOAD_GUEST base
    ldp     x30, x2, [\base, #240]
    msr     elr_el2, x2
    ldr     x2, [\base, #256]
    msr     spsr_el2, x2
    ldp     x2, x3, [\base, #16]
    ldp     x4, x5, [\base, #32]
    ldp     x6, x7, [\base, #48]
    ldp     x8, x9, [\base, #64]
    ldp     x10, x11, [\base, #80]
    ldp     x12, x13, [\base, #96]
    ldp     x14, x15, [\base, #112]
    ldp     x16, x17, [\base, #128]
    ldp     x18, x19, [\base, #144]
    ldp     x20, x21, [\base, #160]
    ldp     x22, x23, [\base, #176]
    ldp     x24, x25, [\base, #192]
    ldp     x26, x27, [\base, #208]
    ldp     x28, x29, [\base, #224]
    ldp     x0, x1, [\base, #0]
.endm

.global guest_resume
guest_resume:
    LOAD_GUEST sp
    add     sp, sp, #{frame}
    eret

// enter_guest(frame: *const GuestFrame, stack_top: u64) -> !
// Resets this CPU's stack to its top and resumes the guest from `frame`, which may lie on the
// abandoned stack: it is read before anything else can write there (EL2 runs with DAIF masked).
.global enter_guest
enter_guest:
    mov     sp, x1
    LOAD_GUEST x0
    eret
"#,
    boot_info_version = const BOOT_INFO_VERSION,
    map_ram_base = const BOOT_INFO_OFFSET + field::MAP_RAM_BASE,
    map_ram_size = const BOOT_INFO_OFFSET + field::MAP_RAM_SIZE,
    map_devices_base = const BOOT_INFO_OFFSET + field::MAP_DEVICES_BASE,
    map_devices_size = const BOOT_INFO_OFFSET + field::MAP_DEVICES_SIZE,
    ram_block = const EL2_BOOT_RAM_BLOCK,
    device_block = const EL2_BOOT_DEVICE_BLOCK,
    boot_stack_size = const BOOT_STACK_SIZE,
    max_cpus = const MAX_CPUS,
    stack_size = const STACK_SIZE,
    mair = const MAIR_EL2_VALUE,
    tcr = const TCR_EL2_VALUE,
    sctlr = const SCTLR_EL2_VALUE,
    frame = const GUEST_FRAME_SIZE,
    gic_v2 = const tantalum_aarch64::built::BUILT.gic_v2 as u8,
    gic_v3 = const tantalum_aarch64::built::BUILT.gic_v3 as u8,
    hvc64 = const tantalum_aarch64::esr::HVC64_IMM0,
    dabt_il_isv = const tantalum_aarch64::esr::DABT_IL_ISV,
    s1ptw_bit = const tantalum_aarch64::esr::dabt::S1PTW_BIT,
    dfsc_type = const tantalum_aarch64::esr::dabt::DFSC_TYPE,
    dfsc_translation = const tantalum_aarch64::esr::dabt::DFSC_TRANSLATION,
    acknowledged_shift = const crate::vcpu::ACKNOWLEDGED_SHIFT,
    vendor_first = const tantalum_core::hypercall::HYP_VERSION + 1,
    vendor_last = const tantalum_core::hypercall::HYP_LAST,
    channel_notify = const tantalum_core::hypercall::HYP_CHANNEL_NOTIFY,
);

/// A guest's general-purpose registers and return state, as the vectors save them.
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct GuestFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

const _: () = assert!(core::mem::size_of::<GuestFrame>() == GUEST_FRAME_SIZE);

unsafe extern "C" {
    fn enter_guest(frame: *const GuestFrame, stack_top: u64) -> !;
    /// First instruction of a secondary CPU (PSCI CPU_ON entry point).
    pub fn secondary_entry();
    static _start: u8;
}

/// Starts running a guest from `frame` on this CPU, abandoning the current stack.
///
/// # Safety
/// `stack_top` must be the top of this CPU's stack, the one the vectors use, and nothing on
/// that stack may still be needed (no live borrows, no held locks). EL2 must be set up for the
/// vCPU (stage 2, HCR_EL2, EL1 state).
pub unsafe fn enter(frame: &GuestFrame, stack_top: u64) -> ! {
    // SAFETY: the caller guarantees the stack contract; `frame` is a valid, readable frame that
    // `enter_guest` copies before it moves sp.
    unsafe { enter_guest(frame, stack_top) }
}

/// Address of the first byte of the hypervisor image (the Image header).
pub fn image_start() -> usize {
    core::ptr::addr_of!(_start) as usize
}

/// Top of the primary CPU's boot stack.
pub fn boot_stack_top() -> u64 {
    let base = core::ptr::addr_of!(BOOT_STACK) as u64;
    base + BOOT_STACK_SIZE as u64
}
