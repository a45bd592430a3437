//! `tantalum-guest`: the SDK for Tantalum unikernel partitions on aarch64 and x86_64 (there:
//! console, hypercalls, time, device tree, channels and doorbells; the GIC helpers, abort and
//! debug hooks are aarch64-only).
//!
//! A partition is a `no_std`, `no_main` binary whose `main` is a few lines:
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use tantalum_guest::println;
//! tantalum_guest::entry!(main);
//! fn main() {
//!     println!("hello from {}", tantalum_guest::partition_name());
//! }
//! ```
//! The SDK brings the startup code (relocation, stack, BSS, FP, MMU with an identity map),
//! the console, hypercall wrappers, channels, a monotonic clock ([`time`]) and a panic handler
//! that reports and exits.
#![no_std]

extern crate alloc;

#[cfg(target_arch = "aarch64")]
pub mod abort;
#[cfg_attr(target_arch = "aarch64", path = "aarch64/arch.rs")]
#[cfg_attr(target_arch = "x86_64", path = "x86_64/arch.rs")]
mod arch;
#[cfg_attr(target_arch = "x86_64", path = "x86_64/bare.rs")]
pub mod bare;
pub mod blk_backend;
pub mod channel;
pub mod console;
#[cfg(target_arch = "aarch64")]
pub mod debug;
pub mod dt;
mod heap;
pub mod hypercall;
#[cfg_attr(target_arch = "x86_64", path = "x86_64/irq.rs")]
pub mod irq;
#[cfg_attr(target_arch = "x86_64", path = "x86_64/mmio.rs")]
pub mod mmio;
pub mod net;
pub mod pci;
#[cfg_attr(target_arch = "x86_64", path = "x86_64/start.rs")]
mod start;
pub mod time;
pub mod virtio_blk;
mod virtq;
pub mod vsock;

pub use channel::{Channel, ChannelError};
pub use hypercall::{exit, partition_info, partition_name, wait_ns, yield_now, PartitionInfo};
pub use start::{boot_instructions, dtb_address, image_base};

/// Declares the partition's `main`: `tantalum_guest::entry!(main);`. Returning from it exits
/// the partition with code 0.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "Rust" fn __tantalum_main() {
            let main: fn() = $main;
            main()
        }
    };
}

#[cfg(target_arch = "aarch64")]
/// Retired instructions so far on this CPU (PMU event counter 0, which the hypervisor sets to
/// count instructions at every EL). Exact under QEMU `-icount`.
#[inline(always)]
pub fn instructions() -> u64 {
    let v: u64;
    // SAFETY: reading a PMU counter has no side effects; EL1 access is allowed by MDCR_EL2.
    unsafe { core::arch::asm!("isb", "mrs {}, pmevcntr0_el0", out(reg) v, options(nostack)) };
    v
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic: {}", info);
    exit(101)
}
