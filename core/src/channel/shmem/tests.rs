use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::channel::VecRegion;

/// The contract of `SharedMemory` that both implementations must meet.
fn exercise(mem: &impl SharedMemory) {
    let len = mem.len();
    assert_eq!(len, 64);
    assert!(!mem.is_empty());
    mem.write_u32(0, 0x0403_0201);
    mem.store_u32_release(4, 0x0807_0605);
    assert_eq!(mem.read_u32(0), 0x0403_0201);
    assert_eq!(mem.load_u32_acquire(4), 0x0807_0605);
    let mut bytes = [0u8; 8];
    mem.copy_out(0, &mut bytes);
    assert_eq!(bytes, [1, 2, 3, 4, 5, 6, 7, 8], "words are stored in memory order");

    // Out of bounds or misaligned: reads give 0, writes are ignored.
    for offset in [61, 62, 64, 1000, usize::MAX - 2, usize::MAX] {
        mem.write_u32(offset, 0xdead_beef);
        mem.store_u32_release(offset, 0xdead_beef);
        assert_eq!(mem.read_u32(offset), 0);
        assert_eq!(mem.load_u32_acquire(offset), 0);
    }
    mem.write_u32(2, 0xdead_beef);
    assert_eq!(mem.read_u32(2), 0, "misaligned words are refused");
    mem.copy_in(60, &[9; 5]);
    mem.copy_in(usize::MAX, &[9; 2]);
    let mut all = [0xffu8; 64];
    mem.copy_out(0, &mut all);
    assert_eq!(&all[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(all[8..].iter().all(|&b| b == 0), "no stray write landed: {all:?}");
    let mut far = [0xffu8; 8];
    mem.copy_out(60, &mut far);
    assert_eq!(far, [0; 8], "a copy that does not fit reads zeros");
    mem.copy_in(64, &[]);
    mem.copy_out(64, &mut []);
}

#[test]
fn raw_region_meets_the_contract() {
    exercise(&RawRegion::leak_zeroed(64));
}

#[test]
fn vec_region_meets_the_contract() {
    exercise(&VecRegion::new(64));
}

#[test]
fn raw_region_refuses_null_and_misaligned_bases() {
    // SAFETY: `new` returns before the pointer could be used; nothing is accessed.
    assert!(unsafe { RawRegion::new(core::ptr::null_mut(), 64) }.is_none());
    let outer = RawRegion::leak_zeroed(64);
    // SAFETY: as above: a misaligned base is refused before any access.
    assert!(unsafe { RawRegion::new(outer.base.as_ptr().wrapping_add(4), 8) }.is_none());
    // SAFETY: as above: a range that wraps the address space is refused.
    assert!(unsafe { RawRegion::new(outer.base.as_ptr(), usize::MAX) }.is_none());
}

#[test]
fn raw_region_never_writes_outside_its_window() {
    let outer = RawRegion::leak_zeroed(64);
    // SAFETY: bytes 16..48 of `outer`'s leaked allocation: valid, 8-aligned, and only accessed
    // through `RawRegion`s.
    let window = unsafe { RawRegion::new(outer.base.as_ptr().wrapping_add(16), 32) }.unwrap();
    window.write_u32(32, 1);
    window.copy_in(28, &[1; 8]);
    window.copy_in(0, &[2; 32]);
    let mut all = [0u8; 64];
    outer.copy_out(0, &mut all);
    assert!(all[..16].iter().chain(&all[48..]).all(|&b| b == 0), "{all:?}");
    assert!(all[16..48].iter().all(|&b| b == 2), "{all:?}");
}

proptest! {
    /// Copies at every alignment and length agree between the two implementations.
    #[test]
    fn copies_at_any_alignment(writes in prop::collection::vec((0usize..200, prop::collection::vec(any::<u8>(), 0..40)), 1..20)) {
        let raw = RawRegion::leak_zeroed(200);
        let vec = VecRegion::new(200);
        let mut model = [0u8; 200];
        for (offset, bytes) in &writes {
            raw.copy_in(*offset, bytes);
            vec.copy_in(*offset, bytes);
            if offset + bytes.len() <= 200 {
                model[*offset..offset + bytes.len()].copy_from_slice(bytes);
            }
        }
        for (offset, bytes) in &writes {
            let (mut a, mut b): (Vec<u8>, Vec<u8>) = (alloc::vec![0; bytes.len()], alloc::vec![0; bytes.len()]);
            raw.copy_out(*offset, &mut a);
            vec.copy_out(*offset, &mut b);
            prop_assert_eq!(&a, &b);
            if offset + bytes.len() <= 200 {
                prop_assert_eq!(&a[..], &model[*offset..offset + bytes.len()]);
            }
        }
    }
}
