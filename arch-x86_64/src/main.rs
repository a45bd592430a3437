//! Tantalum's x86_64 hypervisor binary: a Multiboot2 kernel (see `boot.rs`).
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod console;
mod cpu;
mod heap;
mod probe;
mod serial;
mod vmx;

use tantalum_core::addr::align_up;
use tantalum_core::bootimage::{BootInfo, BOOT_INFO_OFFSET, HEAP_SIZE, STACK_SIZE};
use tantalum_core::config::MAX_CPUS;
use tantalum_x86_64::multiboot2::{self, BootInformation};

use crate::console::info;

/// Entered from `boot.rs` in long mode on the boot CPU, with the loader's magic and the
/// physical address of its boot information (identity-mapped).
extern "C" fn x86_main(magic: u32, mbi: u32) -> ! {
    console::init();
    info!("Tantalum x86_64: long mode on the boot CPU");
    if magic != multiboot2::BOOTLOADER_MAGIC {
        panic!("not started by a Multiboot2 loader (magic {magic:#x})");
    }
    let mbi = boot_information(mbi);
    let layout = Layout::read();
    info!(
        "boot image at {:#x}: payload {:#x}+{:#x}, system DTB {} bytes",
        layout.image_start, layout.payload, layout.info.payload_size, layout.info.dtb_size
    );
    let heap_start = layout.runtime_base + MAX_CPUS as u64 * STACK_SIZE;
    // SAFETY: the stacks and the heap follow the boot image; the build checks that they lie in
    // RAM no partition owns, and nothing else uses them.
    unsafe { heap::init(heap_start as usize, HEAP_SIZE as usize) };
    cpu::load_host_tables(0);
    match vmx::enable() {
        Ok(revision) => {
            info!("VMX on (CPU 0, VMCS revision {revision:#x})");
            if let Err(e) = probe::run(revision) {
                info!("VMX error: {e}");
            }
        }
        Err(e) => info!("VMX unavailable: {e}"),
    }
    for e in mbi.memory_map() {
        info!("memory map: {:#012x}..{:#012x} type {}", e.base, e.end(), e.kind);
    }
    console::power_off()
}

/// Where the boot image and what follows it lie.
struct Layout {
    image_start: u64,
    info: BootInfo,
    /// Physical address of the payload (system DTB, then the partitions' blobs).
    payload: u64,
    /// First byte after the image: per-CPU stacks, then the heap.
    runtime_base: u64,
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

impl Layout {
    fn read() -> Layout {
        let image_start = (&raw const __image_start) as u64;
        let linked_end = (&raw const __image_end) as u64;
        let head_len = BOOT_INFO_OFFSET + tantalum_core::bootimage::field::SIZE;
        // SAFETY: the image's first bytes (the Multiboot2 header and the BootInfo) are part of
        // the loaded file, identity-mapped.
        let head = unsafe { core::slice::from_raw_parts(image_start as *const u8, head_len) };
        // The loader loaded the whole file; its size is what the BootInfo says, at least the
        // linked hypervisor.
        let info = BootInfo::decode(head, u64::MAX).unwrap_or_else(|e| panic!("boot image: {e:?}"));
        let end = (image_start + info.payload_offset + info.payload_size).max(linked_end);
        let runtime_base = align_up(end, 4096).unwrap_or(end);
        Layout { image_start, info, payload: image_start + info.payload_offset, runtime_base }
    }
}

/// The loader's boot information at `address`.
fn boot_information(address: u32) -> BootInformation<'static> {
    let ptr = address as usize as *const u8;
    // SAFETY: the loader put the structure at `address` (identity-mapped, below 4 GiB) and
    // nothing writes it; its first 8 bytes hold its total size.
    let head = unsafe { core::ptr::read_unaligned(ptr.cast::<[u8; 8]>()) };
    let total = BootInformation::total_size(head);
    // SAFETY: as above, for the size the structure declares.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, total) };
    BootInformation::new(bytes).unwrap_or_else(|e| panic!("Multiboot2 boot information: {e:?}"))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    console::emergency(format_args!("PANIC: {info}"));
    console::halt()
}
