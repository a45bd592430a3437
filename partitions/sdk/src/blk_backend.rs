//! The backend page of a disk this partition drives (docs/virtio.md, "Block"): the hypervisor
//! hands over the frontends' requests one at a time, already checked against their regions and
//! with the sector moved into the disk, and the data in a buffer area this partition names.

use tantalum_core::virtio::blk::{backend_reg as reg, BACKEND_MAGIC, FETCH_NO_BUFFER, FETCH_REQUEST};

use crate::mmio::{read32, write32};

/// One request taken from the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub frontend: u32,
    /// `tantalum_core::virtio::blk::T_IN`, `T_OUT` or `T_FLUSH`.
    pub kind: u32,
    /// Disk sector.
    pub sector: u64,
    /// Bytes of data, at the start of the buffer area (written there for OUT, expected there
    /// for IN).
    pub len: u32,
}

/// Why [`Backend::open`] or [`Backend::fetch`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// No backend page `n` in the guest device tree, or no backend behind it.
    NoBackend,
    /// The hypervisor refused the buffer area (not wholly in this partition's memory).
    BadBuffer,
}

/// The backend page of one disk.
pub struct Backend {
    base: usize,
    /// The disk's sectors, as the system description declares them.
    pub capacity: u64,
    /// How many frontends it serves.
    pub frontends: u32,
    /// The page's interrupt (INTID), raised whenever a frontend makes requests available.
    pub intid: Option<u32>,
}

const COMPATIBLE: &str = "tantalum,blk-backend-v1";

/// The INTID of backend page `n` (its node's `interrupts = <0 spi flags>`).
fn interrupt(n: usize) -> Option<u32> {
    let fdt = crate::dt::get()?;
    let node = fdt
        .all_nodes()
        .filter(|d| d.compatible().is_some_and(|c| c.all().any(|s| s == COMPATIBLE)))
        .nth(n)?;
    let spi = crate::dt::numbers(node.property("interrupts")?.value, 1).nth(1)?;
    u32::try_from(spi).ok()?.checked_add(32)
}

impl Backend {
    /// The `n`-th disk this partition drives, with `buffer` (`len` bytes of its own memory) as
    /// the buffer area.
    pub fn open(n: usize, buffer: *mut u8, len: u32) -> Result<Backend, BackendError> {
        let base = crate::dt::emulated_address(COMPATIBLE, "tantalum,name", n)
            .ok_or(BackendError::NoBackend)? as usize;
        let b = Backend { base, capacity: 0, frontends: 0, intid: interrupt(n) };
        if b.read(reg::MAGIC) != BACKEND_MAGIC {
            return Err(BackendError::NoBackend);
        }
        let capacity = u64::from(b.read(reg::CAPACITY_LOW)) | u64::from(b.read(reg::CAPACITY_HIGH)) << 32;
        let frontends = b.read(reg::FRONTENDS);
        let addr = buffer as u64;
        b.write(reg::BUFFER_LOW, addr as u32);
        b.write(reg::BUFFER_HIGH, (addr >> 32) as u32);
        b.write(reg::BUFFER_LEN, len);
        Ok(Backend { capacity, frontends, ..b })
    }

    /// The next request, if a frontend has one.
    pub fn fetch(&mut self) -> Result<Option<Request>, BackendError> {
        match self.read(reg::FETCH) {
            FETCH_REQUEST => {}
            FETCH_NO_BUFFER => return Err(BackendError::BadBuffer),
            _ => return Ok(None),
        }
        let sector = u64::from(self.read(reg::SECTOR_LOW)) | u64::from(self.read(reg::SECTOR_HIGH)) << 32;
        Ok(Some(Request {
            frontend: self.read(reg::FRONTEND),
            kind: self.read(reg::TYPE),
            sector,
            len: self.read(reg::LEN),
        }))
    }

    /// Which frontends run their device now (bit `n`: frontend `n`).
    pub fn live(&self) -> u32 {
        self.read(reg::LIVE)
    }

    /// Completes the request taken with `status` (`S_OK`, `S_IOERR`, `S_UNSUPP`).
    pub fn complete(&mut self, status: u8) {
        self.write(reg::COMPLETE, u32::from(status));
    }

    fn read(&self, offset: u64) -> u32 {
        // SAFETY: a register of the backend page the guest DT names (trapped, emulated).
        unsafe { read32(self.base + offset as usize) }
    }
    fn write(&self, offset: u64, value: u32) {
        // SAFETY: as in `read`.
        unsafe { write32(self.base + offset as usize, value) }
    }
}
