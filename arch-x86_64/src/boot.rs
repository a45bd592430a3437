//! Entry from a Multiboot2 loader (GRUB): 32-bit protected mode, paging off, EAX = the
//! Multiboot2 magic, EBX = the boot information. Builds identity page tables for the first
//! 4 GiB (2 MiB pages; the top GiB, where the local APIC and IOAPIC live, uncached), enters
//! long mode and calls [`crate::x86_main`] with the magic and the boot information's address.
//!
//! The file starts with the Multiboot2 header (64 bytes: an address tag, because the image is
//! flat and carries its payload after the hypervisor, and an entry tag), then the `BootInfo`
//! the build tool patches at offset 64, exactly where the arm64 image has it.

use core::arch::global_asm;

use tantalum_core::bootimage::{field, BOOT_INFO_OFFSET};

/// Stack of the boot CPU until the system is set up.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

global_asm!(
    r#"
    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long 0xE85250D6
    .long 0
    .long 64
    .long 0x100000000 - (0xE85250D6 + 64)
    // Address tag: the whole file is loaded at __image_start; bss is in the file.
    .short 2, 0
    .long 24
    .long mb2_header
    .long __image_start
    .long 0
    .long 0
    // Entry tag.
    .short 3, 0
    .long 12
    .long start32
    .long 0
    // End tag.
    .short 0, 0
    .long 8
    // BootInfo, patched by the build tool.
    .space {boot_info_size}, 0
    .balign 64

    .section .text.boot, "ax"
    .code32
    .global start32
start32:
    cli
    cld
    mov edi, eax
    mov esi, ebx
    mov esp, offset {stack} + {stack_size}
    // PML4[0] -> PDPT; PDPT[0..4] -> four PDs; PD entries: 2 MiB identity pages.
    mov eax, offset {pdpt}
    or eax, 3
    mov dword ptr [{pml4}], eax
    xor ecx, ecx
2:
    mov eax, ecx
    shl eax, 12
    add eax, offset {pd}
    or eax, 3
    mov dword ptr [{pdpt} + ecx * 8], eax
    inc ecx
    cmp ecx, 4
    jne 2b
    xor ecx, ecx
3:
    mov eax, ecx
    shl eax, 21
    // Present, writable, large page; from 3 GiB on also PCD | PWT (uncached: MMIO).
    or eax, 0x83
    cmp ecx, 1536
    jb 4f
    or eax, 0x18
4:
    mov dword ptr [{pd} + ecx * 8], eax
    mov dword ptr [{pd} + ecx * 8 + 4], 0
    inc ecx
    cmp ecx, 2048
    jne 3b
    mov eax, offset {pml4}
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000001
    mov cr0, eax
    lgdt [gdt64_pointer]
    mov eax, offset long_mode
    push 0x08
    push eax
    retf
    .code64
long_mode:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset {stack} + {stack_size}
    call {main}
6:
    hlt
    jmp 6b

    .section .rodata.boot, "a"
    .balign 16
    // Null, 64-bit code (0x08), data (0x10).
    .global gdt64
gdt64:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
gdt64_pointer:
    .short 23
    .quad gdt64
    "#,
    boot_info_size = const field::SIZE,
    stack = sym BOOT_STACK,
    stack_size = const BOOT_STACK_SIZE,
    pml4 = sym PML4,
    pdpt = sym PDPT,
    pd = sym PD,
    main = sym crate::x86_main,
);

const _: () = assert!(BOOT_INFO_OFFSET == 64, "the Multiboot2 header is 64 bytes");

#[repr(C, align(4096))]
pub struct Table(pub [u64; 512]);

#[repr(C, align(16))]
struct Stack([u8; BOOT_STACK_SIZE]);

#[unsafe(no_mangle)]
static mut BOOT_STACK: Stack = Stack([0; BOOT_STACK_SIZE]);
#[unsafe(no_mangle)]
pub static mut PML4: Table = Table([0; 512]);
#[unsafe(no_mangle)]
static mut PDPT: Table = Table([0; 512]);
#[unsafe(no_mangle)]
static mut PD: [Table; 4] = [const { Table([0; 512]) }; 4];
