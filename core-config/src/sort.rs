//! One small sort for the whole hypervisor. The library's sorts are instantiated per element
//! type and comparison (each stable sort is 2-4 KB of code); this is a heapsort whose body is
//! compiled once, behind a `dyn` callback, so each caller adds a few instructions. It is
//! O(n log n) whatever the input (config lists come from an untrusted DTB) and not stable:
//! callers sort by keys that are unique, or whose equal elements are identical.
#![forbid(unsafe_code)]

/// What the heapsort asks of the slice: compare two elements or swap them.
#[derive(Clone, Copy)]
enum Step {
    /// Whether element `i` sorts before element `j`.
    Less,
    /// Swap elements `i` and `j` (the answer is unused).
    Swap,
}

/// Sorts `items` by `key`, smallest first.
pub fn sort_by_key<T, K: Ord>(items: &mut [T], mut key: impl FnMut(&T) -> K) {
    heapsort(items.len(), &mut |step, i, j| match step {
        Step::Less => key(&items[i]) < key(&items[j]),
        Step::Swap => {
            items.swap(i, j);
            false
        }
    });
}

/// Sorts `items`, smallest first.
pub fn sort<T: Ord>(items: &mut [T]) {
    heapsort(items.len(), &mut |step, i, j| match step {
        Step::Less => items[i] < items[j],
        Step::Swap => {
            items.swap(i, j);
            false
        }
    });
}

/// Heapsort of `len` elements reached only through `at`.
#[inline(never)]
fn heapsort(len: usize, at: &mut dyn FnMut(Step, usize, usize) -> bool) {
    // Build a max-heap, then move its top to the end, one element at a time.
    for start in (0..len / 2).rev() {
        sift_down(start, len, at);
    }
    for end in (1..len).rev() {
        at(Step::Swap, 0, end);
        sift_down(0, end, at);
    }
}

/// Restores the heap below `root` within the first `end` elements.
fn sift_down(mut root: usize, end: usize, at: &mut dyn FnMut(Step, usize, usize) -> bool) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && at(Step::Less, child, child + 1) {
            child += 1;
        }
        if !at(Step::Less, root, child) {
            return;
        }
        at(Step::Swap, root, child);
        root = child;
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn sorts_as_the_library_does(mut items in proptest::collection::vec(0u8..16, 0..200)) {
            let mut expected = items.clone();
            expected.sort();
            sort(&mut items);
            prop_assert_eq!(items, expected);
        }

        #[test]
        fn sorts_by_key(mut items in proptest::collection::vec((0u8..8, 0u16..1000), 0..100)) {
            let mut expected = items.clone();
            expected.sort_by_key(|&(a, b)| (b, a));
            sort_by_key(&mut items, |&(a, b)| (b, a));
            prop_assert_eq!(items, expected);
        }
    }

    #[test]
    fn empty_and_single() {
        let mut none: Vec<u32> = Vec::new();
        sort(&mut none);
        let mut one = [7];
        sort(&mut one);
        assert_eq!(one, [7]);
    }
}
