//! A small heap for partitions that want `alloc` (and for `tantalum-core`'s types).

use buddy_system_allocator::LockedHeap;

/// Bytes of heap, in BSS.
const HEAP_SIZE: usize = 256 * 1024;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; HEAP_SIZE]);

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::<32>::empty();

/// Hands the arena to the allocator; called once by the startup code before `main`.
pub(crate) fn init() {
    // SAFETY: called once, before any allocation; the arena is used by nothing else and only
    // its address is taken here.
    unsafe { HEAP.lock().init(core::ptr::addr_of_mut!(ARENA) as usize, HEAP_SIZE) };
}
