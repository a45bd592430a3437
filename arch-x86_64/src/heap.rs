//! The hypervisor heap: a buddy allocator over the region after the per-CPU stacks.

use buddy_system_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::<32>::empty();

/// Hands `[start, start + size)` to the allocator.
///
/// # Safety
/// The range must be mapped, writable, unused by anything else, and this is called once.
pub unsafe fn init(start: usize, size: usize) {
    // SAFETY: forwarded contract.
    unsafe { HEAP.lock().init(start, size) };
}
