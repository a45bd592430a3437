//! Startup on x86_64, entered by the Linux 64-bit boot protocol (docs/x86.md): long mode with
//! the hypervisor's identity page tables, interrupts off, `rsi` = the `boot_params`. Applies
//! the image's relocations (it is position independent, loaded at the start of its first
//! region), sets the stack, clears BSS, finds the guest DTB in `boot_params.setup_data` and
//! calls the partition's `main`.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// ELF relocation type R_X86_64_RELATIVE.
const R_X86_64_RELATIVE: u64 = 8;
/// `boot_params.hdr.setup_data` and the `setup_data` type of a device tree.
const SETUP_DATA: u64 = 0x250;
const SETUP_DTB: u32 = 2;
/// The boot area (page tables, GDT, `boot_params`) starts this far below the `boot_params`.
const BOOT_AREA_BELOW_PARAMS: u64 = 0x6000;

global_asm!(
    r#"
.section .text.head, "ax"
.global _start
_start:
    cli
    cld
    mov r12, rsi
    lea rsp, [rip + __stack_top]
    // Apply R_X86_64_RELATIVE relocations: *(base + offset) = base + addend.
    lea rdx, [rip + _start]
    lea rcx, [rip + __rela_start]
    lea r8, [rip + __rela_end]
2:  cmp rcx, r8
    jae 3f
    cmp dword ptr [rcx + 8], {r_relative}
    jne 4f
    mov rax, [rcx]
    mov r9, [rcx + 16]
    add r9, rdx
    mov [rdx + rax], r9
4:  add rcx, 24
    jmp 2b
3:  lea rdi, [rip + __bss_start]
    lea rcx, [rip + __bss_end]
    sub rcx, rdi
    xor eax, eax
    rep stosb
    mov rdi, r12
    call {start}
5:  hlt
    jmp 5b
"#,
    r_relative = const R_X86_64_RELATIVE,
    start = sym __tantalum_start,
);

static DTB: AtomicU64 = AtomicU64::new(0);

/// Guest-physical address of the partition's device tree (`SETUP_DTB` in `boot_params`).
pub fn dtb_address() -> u64 {
    DTB.load(Ordering::Relaxed)
}

/// Instructions before the partition's first one: not counted on x86_64 (0).
pub fn boot_instructions() -> u64 {
    0
}

unsafe extern "C" {
    static _start: u8;
    static __image_end: u8;
}

/// Guest-physical address the image was loaded at (start of the first memory region).
pub fn image_base() -> u64 {
    core::ptr::addr_of!(_start) as u64
}

unsafe extern "Rust" {
    /// Defined by `tantalum_guest::entry!`.
    fn __tantalum_main();
}

/// The guest DTB's address from the `setup_data` list of `boot_params` (at most 16 entries).
fn find_dtb(boot_params: u64) -> u64 {
    // SAFETY: the hypervisor put `boot_params` in this partition's memory (identity-mapped);
    // `setup_data` entries are in it too, each a header {next, type, len} before its data.
    let mut at = unsafe { ((boot_params + SETUP_DATA) as *const u64).read_volatile() };
    for _ in 0..16 {
        if at == 0 {
            break;
        }
        // SAFETY: as above.
        let (next, kind) =
            unsafe { ((at as *const u64).read_volatile(), ((at + 8) as *const u32).read_volatile()) };
        if kind == SETUP_DTB {
            return at + 16;
        }
        at = next;
    }
    0
}

extern "C" fn __tantalum_start(boot_params: u64) -> ! {
    DTB.store(find_dtb(boot_params), Ordering::Relaxed);
    let image_end = core::ptr::addr_of!(__image_end) as u64;
    if image_end > boot_params.saturating_sub(BOOT_AREA_BELOW_PARAMS) {
        crate::println!("the image (with its BSS and stack) reaches into the boot area at {boot_params:#x}");
        crate::exit(103)
    }
    crate::heap::init();
    // SAFETY: `entry!` defines this symbol as a plain Rust function with no arguments.
    unsafe { __tantalum_main() };
    crate::exit(0)
}
