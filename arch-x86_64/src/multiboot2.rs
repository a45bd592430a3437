//! Reading the Multiboot2 boot information a loader (GRUB) hands the hypervisor: its memory
//! map, the only thing Tantalum takes from it (to cross-check the configuration's RAM).
//! Every length is checked against the structure's own size: a malformed one yields fewer
//! entries, never a read out of bounds.

/// EAX at entry from a Multiboot2 loader.
pub const BOOTLOADER_MAGIC: u32 = 0x36d7_6289;

const TAG_END: u32 = 0;
const TAG_MEMORY_MAP: u32 = 6;
/// Memory map entry type of usable RAM.
pub const MEMORY_AVAILABLE: u32 = 1;

/// One entry of the Multiboot2 memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEntry {
    pub base: u64,
    pub length: u64,
    /// 1 available, 3 ACPI reclaimable, 4 NVS, 5 bad; anything else reserved.
    pub kind: u32,
}

impl MemoryEntry {
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.length)
    }
}

/// The boot information structure, as bytes.
#[derive(Clone, Copy, Debug)]
pub struct BootInformation<'a> {
    bytes: &'a [u8],
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Why the boot information is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its header, or its total size is smaller than the header.
    Truncated,
}

impl<'a> BootInformation<'a> {
    /// `bytes` starts at the structure; it may be longer than the structure's `total_size`.
    pub fn new(bytes: &'a [u8]) -> Result<Self, Error> {
        let total = u32_at(bytes, 0).ok_or(Error::Truncated)? as usize;
        if total < 8 || total > bytes.len() {
            return Err(Error::Truncated);
        }
        Ok(Self { bytes: &bytes[..total] })
    }

    /// The total size a structure at `head` (its first 8 bytes) declares.
    pub fn total_size(head: [u8; 8]) -> usize {
        u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize
    }

    /// The tags: (type, body bytes).
    fn tags(&self) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        let bytes = self.bytes;
        let mut at = 8usize;
        core::iter::from_fn(move || {
            let kind = u32_at(bytes, at)?;
            let size = u32_at(bytes, at + 4)? as usize;
            if kind == TAG_END || size < 8 {
                return None;
            }
            let body = bytes.get(at + 8..at.checked_add(size)?)?;
            at = at.checked_add(size.checked_add(7)? & !7)?;
            Some((kind, body))
        })
    }

    /// The memory map's entries, in the loader's order.
    pub fn memory_map(&self) -> impl Iterator<Item = MemoryEntry> + 'a {
        let body = self.tags().find(|&(k, _)| k == TAG_MEMORY_MAP).map_or(&[][..], |(_, b)| b);
        let entry_size = u32_at(body, 0).unwrap_or(0) as usize;
        let entries = body.get(8..).unwrap_or(&[]);
        let count = if entry_size >= 24 { entries.len() / entry_size } else { 0 };
        (0..count).filter_map(move |i| {
            let e = entries.get(i * entry_size..i * entry_size + 24)?;
            Some(MemoryEntry { base: u64_at(e, 0)?, length: u64_at(e, 8)?, kind: u32_at(e, 16)? })
        })
    }

    /// Whether `[base, base + size)` lies inside one available RAM entry.
    pub fn is_available(&self, base: u64, size: u64) -> bool {
        let Some(end) = base.checked_add(size) else { return false };
        self.memory_map().any(|e| e.kind == MEMORY_AVAILABLE && e.base <= base && end <= e.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&(8 + body.len() as u32).to_le_bytes());
        t.extend_from_slice(body);
        while t.len() % 8 != 0 {
            t.push(0);
        }
        t
    }

    fn info(tags: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        for t in tags {
            b.extend_from_slice(t);
        }
        b.extend_from_slice(&tag(TAG_END, &[])[..8]);
        let total = b.len() as u32;
        b[..4].copy_from_slice(&total.to_le_bytes());
        b
    }

    fn mmap(entries: &[(u64, u64, u32)]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&24u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        for &(base, len, kind) in entries {
            body.extend_from_slice(&base.to_le_bytes());
            body.extend_from_slice(&len.to_le_bytes());
            body.extend_from_slice(&kind.to_le_bytes());
            body.extend_from_slice(&0u32.to_le_bytes());
        }
        tag(TAG_MEMORY_MAP, &body)
    }

    #[test]
    fn memory_map_after_other_tags() {
        let bytes = info(&[
            tag(1, b"cmdline\0"),
            mmap(&[(0, 0x9fc00, 1), (0x10_0000, 0xfef_0000, 1), (0xfffc_0000, 0x4_0000, 2)]),
        ]);
        let mbi = BootInformation::new(&bytes).unwrap();
        let map: Vec<_> = mbi.memory_map().collect();
        assert_eq!(map.len(), 3);
        assert_eq!(map[1], MemoryEntry { base: 0x10_0000, length: 0xfef_0000, kind: 1 });
        assert!(mbi.is_available(0x200_0000, 0x100_0000));
        assert!(!mbi.is_available(0x80000, 0x40000), "crosses the end of low memory");
        assert!(!mbi.is_available(0xfffc_0000, 0x1000), "reserved");
        assert!(!mbi.is_available(u64::MAX, 2));
    }

    #[test]
    fn malformed_structures_yield_nothing() {
        assert_eq!(BootInformation::new(&[1, 0, 0]).unwrap_err(), Error::Truncated);
        assert_eq!(BootInformation::new(&[64, 0, 0, 0, 0, 0, 0, 0]).unwrap_err(), Error::Truncated);
        // A tag claiming more than the structure holds ends the walk.
        let mut bytes = info(&[mmap(&[(0, 0x1000, 1)])]);
        bytes[12..16].copy_from_slice(&0x1000u32.to_le_bytes());
        assert_eq!(BootInformation::new(&bytes).unwrap().memory_map().count(), 0);
        // An entry size below an entry's is refused.
        let mut bad = mmap(&[(0, 0x1000, 1)]);
        bad[8..12].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(BootInformation::new(&info(&[bad])).unwrap().memory_map().count(), 0);
        // Random bytes never panic.
        let mut seed = 7u64;
        for _ in 0..2000 {
            let mut b: Vec<u8> = (0..96)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            b[..4].copy_from_slice(&96u32.to_le_bytes());
            if let Ok(m) = BootInformation::new(&b) {
                let _ = m.memory_map().count();
            }
        }
    }
}
