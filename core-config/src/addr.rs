//! Typed addresses: host-physical, guest-physical (IPA) and ranges of them.

use core::fmt;

/// Size of the smallest page Tantalum maps (4 KiB granule).
pub const PAGE_SIZE: u64 = 4096;

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw address.
            pub const fn as_u64(self) -> u64 {
                self.0
            }
            /// Whether the address is a multiple of `align` (a power of two).
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }
            /// The address `offset` bytes further on, or `None` on overflow.
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:#x})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

address_type!(
    /// A host-physical address: what the hypervisor's own page tables and devices see.
    HostPhys
);
address_type!(
    /// A guest-physical address (intermediate physical address on Arm): what a partition sees.
    GuestPhys
);

/// A half-open range `[start, start + size)` of host-physical memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HostRange {
    pub start: HostPhys,
    pub size: u64,
}

impl HostRange {
    pub const fn new(start: HostPhys, size: u64) -> Self {
        Self { start, size }
    }
    /// One past the last byte, saturating at `u64::MAX` so that hostile sizes cannot wrap.
    pub const fn end(&self) -> u64 {
        self.start.0.saturating_add(self.size)
    }
    pub const fn overlaps(&self, other: &HostRange) -> bool {
        self.start.0 < other.end() && other.start.0 < self.end()
    }
    pub const fn contains_range(&self, other: &HostRange) -> bool {
        other.start.0 >= self.start.0 && other.end() <= self.end()
    }
}

impl fmt::Display for HostRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.start.0, self.end())
    }
}

/// Rounds `value` up to a multiple of `align` (a power of two); `None` on overflow.
pub const fn align_up(value: u64, align: u64) -> Option<u64> {
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}
