//! `role=virtio`: a hostile virtio-net driver (issue 16 item 5). It drives its device on the
//! link to the victim by hand and hands the hypervisor malformed queues: a descriptor loop,
//! buffers in the victim's and the hypervisor's memory, one running past its own memory, an
//! indirect table in the hypervisor, an index far ahead, rings in the victim's memory, and a
//! receive buffer in the victim's memory that the victim's next frame would fill. Each must be
//! refused before a byte moves: the device reports NEEDS_RESET (or refuses the queue), the
//! attacker resets it and goes on, the victim keeps running with its memory intact.

use core::ptr::{addr_of, addr_of_mut, write_volatile};
use core::sync::atomic::{fence, Ordering};

use tantalum_core::virtio::mmio::{
    reg, F_VERSION_1, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
    STATUS_NEEDS_RESET,
};
use tantalum_core::virtio::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use tantalum_guest::println;

use crate::Targets;

const NUM: usize = 8;
const RX: usize = 0;
const TX: usize = 1;

/// One queue's rings, in the attacker's own memory.
#[repr(C, align(4096))]
struct Rings {
    desc: [[u64; 2]; NUM],
    avail: [u16; 2 + NUM],
    _pad: [u8; 1024],
    used: [u32; 1 + 2 * NUM],
}

static mut QUEUES: [Rings; 2] =
    [const { Rings { desc: [[0; 2]; NUM], avail: [0; 2 + NUM], _pad: [0; 1024], used: [0; 1 + 2 * NUM] } };
        2];
static mut BUFFER: [u8; 4096] = [0; 4096];

/// A descriptor: address, length, flags, next.
type Descriptor = (u64, u32, u16, u16);

struct Device(usize);

impl Device {
    fn read(&self, offset: u64) -> u32 {
        // SAFETY: the partition's trapped virtio page; a 32-bit load is a register read.
        unsafe { tantalum_guest::mmio::read32(self.0 + offset as usize) }
    }

    fn write(&self, offset: u64, value: u32) {
        // SAFETY: as in `read`; a 32-bit store is a register write.
        unsafe { tantalum_guest::mmio::write32(self.0 + offset as usize, value) }
    }

    fn needs_reset(&self) -> bool {
        self.read(reg::STATUS) & STATUS_NEEDS_RESET != 0
    }

    /// Reset, features, queue `q`'s rings at `rings` (both queues at ours when `None`), DRIVER_OK;
    /// whether every queue was taken.
    fn bring_up(&self, rings: Option<u64>) -> bool {
        self.write(reg::STATUS, 0);
        // SAFETY: single-threaded; the rings are ours and the device is reset (reads none).
        unsafe { *addr_of_mut!(QUEUES) = core::mem::zeroed() };
        self.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        self.write(reg::DRIVER_FEATURES_SEL, 1);
        self.write(reg::DRIVER_FEATURES, (F_VERSION_1 >> 32) as u32);
        self.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        let mut taken = true;
        for q in [RX, TX] {
            // SAFETY: only addresses are taken.
            let own = unsafe { addr_of!(QUEUES[q]) } as u64;
            let base = rings.unwrap_or(own);
            self.write(reg::QUEUE_SEL, q as u32);
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
            taken &= self.read(reg::QUEUE_READY) == 1;
        }
        self.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
        taken
    }

    /// Offers descriptor 0 of queue `q` as `d`, with the driver ring's index set to `idx`, and
    /// kicks.
    fn offer(&self, q: usize, d: Descriptor, idx: u16) {
        let (addr, len, flags, next) = d;
        // SAFETY: single-threaded; our own rings, which the device reads only after the kick.
        unsafe {
            let rings = &mut *addr_of_mut!(QUEUES[q]);
            write_volatile(&mut rings.desc[0][0], addr);
            write_volatile(
                &mut rings.desc[0][1],
                u64::from(len) | u64::from(flags) << 32 | u64::from(next) << 48,
            );
            for slot in 0..NUM {
                write_volatile(&mut rings.avail[2 + slot], if idx > NUM as u16 { 77 } else { 0 });
            }
            fence(Ordering::SeqCst);
            write_volatile(&mut rings.avail[1], idx);
        }
        fence(Ordering::SeqCst);
        self.write(reg::QUEUE_NOTIFY, q as u32);
    }
}

fn own_buffer() -> u64 {
    addr_of!(BUFFER) as u64
}

pub fn attacks(t: &Targets) {
    let Some(base) = tantalum_guest::dt::emulated_address("virtio,mmio", "tantalum,peer", 0) else {
        return println!("virtio attack: no virtio device");
    };
    let dev = Device(base as usize);
    // The end of its memory: the first memory node's (the partition's only region here).
    let own_end = tantalum_guest::dt::get()
        .and_then(|fdt| fdt.memory().regions().next())
        .map_or(0, |r| r.starting_address as u64 + r.size.unwrap_or(0) as u64);
    let cases: [(&str, usize, Descriptor, u16); 6] = [
        ("a descriptor loop", TX, (own_buffer(), 64, DESC_F_NEXT, 0), 1),
        ("a buffer in the victim's memory", TX, (t.victim + 0x100, 64, 0, 0), 1),
        ("a buffer in the hypervisor's memory", TX, (t.hypervisor, 64, 0, 0), 1),
        ("a buffer running past its own memory", TX, (own_end - 16, 4096, 0, 0), 1),
        ("an indirect table in the hypervisor's memory", TX, (t.hypervisor, 64, DESC_F_INDIRECT, 0), 1),
        ("a driver-ring index far ahead", TX, (own_buffer(), 64, 0, 0), 1000),
    ];
    for (what, q, d, idx) in cases {
        if !dev.bring_up(None) {
            return println!("BREACH: virtio attack: the device refused honest rings");
        }
        dev.offer(q, d, idx);
        if dev.needs_reset() {
            println!("virtio attack: {what}: refused, the device needs a reset");
        } else {
            println!("BREACH: virtio attack: {what}: taken");
        }
    }
    if dev.bring_up(Some(t.victim)) {
        println!("BREACH: virtio attack: rings in the victim's memory: taken");
    } else {
        println!("virtio attack: rings in the victim's memory: refused");
    }
    // A receive buffer in the victim's memory: the victim's next frame would be written there.
    dev.bring_up(None);
    dev.offer(RX, (t.victim + 0x100, 1536, DESC_F_WRITE, 0), 1);
    let until = tantalum_guest::time::now() + core::time::Duration::from_secs(3);
    while !dev.needs_reset() && tantalum_guest::time::now() < until {}
    if dev.needs_reset() {
        println!("virtio attack: a receive buffer in the victim's memory: refused, the device needs a reset");
    } else {
        println!("BREACH: virtio attack: a receive buffer in the victim's memory: no frame came, or taken");
    }
    dev.write(reg::STATUS, 0);
    println!("virtio attacks done");
}
