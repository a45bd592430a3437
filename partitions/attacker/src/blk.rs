//! `role=blk`: a hostile virtio-blk frontend (issue 16 items 3 and 5). It drives its disk device
//! by hand and asks for sectors outside its region (just past its end, straddling it, at the top
//! of the 64-bit range) and for data from the hypervisor's memory. The hypervisor must answer the
//! first with I/O errors without the driver partition ever seeing them, and refuse the second
//! before a byte moves (the device needs a reset); an honest write and read in its region work.

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

use tantalum_core::virtio::blk::{BLK_F_FLUSH, S_IOERR, S_OK, T_IN, T_OUT};
use tantalum_core::virtio::mmio::{
    reg, DEVICE_BLK, F_VERSION_1, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
    STATUS_NEEDS_RESET,
};
use tantalum_core::virtio::queue::{DESC_F_NEXT, DESC_F_WRITE};
use tantalum_guest::println;

use crate::Targets;

const NUM: usize = 8;

#[repr(C, align(4096))]
struct Rings {
    desc: [[u64; 2]; NUM],
    avail: [u16; 2 + NUM],
    _pad: [u8; 1024],
    used: [u32; 1 + 2 * NUM],
    header: [u64; 2],
    status: u8,
}

static mut RINGS: Rings = Rings {
    desc: [[0; 2]; NUM],
    avail: [0; 2 + NUM],
    _pad: [0; 1024],
    used: [0; 1 + 2 * NUM],
    header: [0; 2],
    status: 0,
};
static mut DATA: [u8; 4096] = [0; 4096];

struct Disk {
    base: usize,
    next: u16,
}

impl Disk {
    fn read(&self, offset: u64) -> u32 {
        // SAFETY: the partition's trapped virtio page; a 32-bit load is a register read.
        unsafe { tantalum_guest::mmio::read32(self.base + offset as usize) }
    }
    fn write(&self, offset: u64, value: u32) {
        // SAFETY: as in `read`.
        unsafe { tantalum_guest::mmio::write32(self.base + offset as usize, value) }
    }

    /// Reset, features, the queue, DRIVER_OK.
    fn bring_up(&mut self) {
        self.write(reg::STATUS, 0);
        // SAFETY: single-threaded; the rings are ours and the device is reset (reads none).
        unsafe { *addr_of_mut!(RINGS) = core::mem::zeroed() };
        self.next = 0;
        self.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        self.write(reg::DRIVER_FEATURES_SEL, 0);
        self.write(reg::DRIVER_FEATURES, BLK_F_FLUSH as u32);
        self.write(reg::DRIVER_FEATURES_SEL, 1);
        self.write(reg::DRIVER_FEATURES, (F_VERSION_1 >> 32) as u32);
        self.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        let base = addr_of!(RINGS) as u64;
        self.write(reg::QUEUE_SEL, 0);
        self.write(reg::QUEUE_NUM, NUM as u32);
        let avail = base + core::mem::offset_of!(Rings, avail) as u64;
        let used = base + core::mem::offset_of!(Rings, used) as u64;
        for (r, v) in
            [(reg::QUEUE_DESC_LOW, base), (reg::QUEUE_DRIVER_LOW, avail), (reg::QUEUE_DEVICE_LOW, used)]
        {
            self.write(r, v as u32);
            self.write(r + 4, (v >> 32) as u32);
        }
        self.write(reg::QUEUE_READY, 1);
        self.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    }

    /// One request: `kind` at `sector`, `len` bytes at `data`; its status, or `None` if the
    /// device broke (NEEDS_RESET) or never answered.
    fn request(&mut self, kind: u32, sector: u64, data: u64, len: u32) -> Option<u8> {
        let dir = if kind == T_IN { DESC_F_WRITE } else { 0 };
        // SAFETY: single-threaded; our own rings, which the device reads only after the kick.
        unsafe {
            let r = &mut *addr_of_mut!(RINGS);
            r.header = [u64::from(kind), sector];
            r.status = 0xff;
            let desc = [
                (addr_of!(r.header) as u64, 16, DESC_F_NEXT, 1u16),
                (data, len, dir | DESC_F_NEXT, 2),
                (addr_of!(r.status) as u64, 1, DESC_F_WRITE, 0),
            ];
            for (i, (a, l, f, n)) in desc.into_iter().enumerate() {
                write_volatile(&mut r.desc[i], [a, u64::from(l) | u64::from(f) << 32 | u64::from(n) << 48]);
            }
            write_volatile(&mut r.avail[2 + usize::from(self.next) % NUM], 0);
            self.next = self.next.wrapping_add(1);
            fence(Ordering::SeqCst);
            write_volatile(&mut r.avail[1], self.next);
        }
        fence(Ordering::SeqCst);
        self.write(reg::QUEUE_NOTIFY, 0);
        let until = tantalum_guest::time::now() + core::time::Duration::from_secs(5);
        // SAFETY: the device ring's index and the status byte, written by the device.
        while unsafe { read_volatile(addr_of!(RINGS.used[0])) } >> 16 != u32::from(self.next) {
            if self.read(reg::STATUS) & STATUS_NEEDS_RESET != 0 || tantalum_guest::time::now() > until {
                return None;
            }
        }
        // SAFETY: as above.
        Some(unsafe { read_volatile(addr_of!(RINGS.status)) })
    }
}

pub fn attacks(t: &Targets) {
    let Some(base) = tantalum_guest::dt::emulated_address("virtio,mmio", "tantalum,driver", 0) else {
        return println!("blk attack: no disk device");
    };
    let mut disk = Disk { base: base as usize, next: 0 };
    if disk.read(reg::DEVICE_ID) != DEVICE_BLK {
        return println!("blk attack: not a block device");
    }
    disk.bring_up();
    let sectors = u64::from(disk.read(reg::CONFIG)) | u64::from(disk.read(reg::CONFIG + 4)) << 32;
    println!("blk attack: the region has {sectors} sectors");
    let data = addr_of_mut!(DATA) as u64;
    let cases: [(&str, u32, u64, u64, u32); 4] = [
        ("a write just past the region", T_OUT, sectors, data, 512),
        ("a write straddling the region's end", T_OUT, sectors - 1, data, 1024),
        ("a read at the top of the 64-bit sectors", T_IN, u64::MAX, data, 512),
        ("a read at the region's start minus its size, wrapped", T_IN, sectors.wrapping_neg(), data, 512),
    ];
    for (what, kind, sector, addr, len) in cases {
        match disk.request(kind, sector, addr, len) {
            Some(S_IOERR) => println!("blk attack: {what}: I/O error"),
            other => println!("BREACH: blk attack: {what}: {other:?}"),
        }
    }
    match disk.request(T_OUT, 0, t.hypervisor, 512) {
        None => {
            println!("blk attack: a write from the hypervisor's memory: refused, the device needs a reset")
        }
        other => println!("BREACH: blk attack: a write from the hypervisor's memory: {other:?}"),
    }
    disk.bring_up();
    // SAFETY: single-threaded; our own buffer.
    unsafe { (*addr_of_mut!(DATA)).iter_mut().enumerate().for_each(|(i, b)| *b = i as u8 ^ 0x5a) };
    let wrote = disk.request(T_OUT, sectors - 8, data, 4096);
    // SAFETY: as above.
    unsafe { *addr_of_mut!(DATA) = [0; 4096] };
    let read = disk.request(T_IN, sectors - 8, data, 4096);
    // SAFETY: as above.
    let same = unsafe { (*addr_of!(DATA)).iter().enumerate().all(|(i, &b)| b == i as u8 ^ 0x5a) };
    if wrote == Some(S_OK) && read == Some(S_OK) && same {
        println!("blk attack: an honest write and read at the region's end: the same 4096 bytes");
    } else {
        println!("blk attack: the honest write and read failed: {wrote:?} {read:?} {same}");
    }
    disk.write(reg::STATUS, 0);
    println!("blk attacks done");
}
