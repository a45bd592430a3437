//! A hostile partition that owns the PCIe host bridge and drives the virtio-blk-pci disk on it
//! directly (the virtio 1.x PCI interface: capabilities in config space, registers in a memory
//! BAR, one queue) to make the disk DMA where the partition itself cannot write: into the
//! victim's memory (boot 0) and into the hypervisor's image (boot 1). The SMMU refuses both;
//! the hypervisor restarts the partition (`on-fault = "restart"`). Boot 2 races the restart:
//! a read the disk carries out slowly (the scenario throttles the disk), into the victim's
//! memory; the refusal at submission restarts the partition, and the hypervisor stops the
//! disk's bus mastering while it reloads, so the read's late writes never reach boot 3, which
//! waits for them, then reports and exits. Addresses are host-physical: the scenario maps this
//! partition with guest address = host address.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use tantalum_guest::{exit, partition_info, println, wait_ns};

tantalum_guest::entry!(main);

/// The victim's first page (its code, which it checksums) and the hypervisor's text
/// (configs/tests/dma-attack.dts, configs/tests/attack.dts).
const VICTIM: u64 = 0x4200_0000;
const HYPERVISOR: u64 = 0x4008_0000;

/// The board's PCIe host bridge (boards/qemu-virt-aarch64/board.dtsi): ECAM, and the start of
/// its 32-bit memory window (PCI address = CPU address).
const ECAM: u64 = 0x3f00_0000;
const MEM_WINDOW: u64 = 0x1000_0000;
/// The disk: bus 0, device 1, function 0 (xtask/src/devices.rs), requester ID 0x8.
const DISK_CONFIG: u64 = ECAM + (1 << 15);

/// PCI configuration header offsets.
mod pci {
    pub const ID: u64 = 0x00;
    pub const COMMAND: u64 = 0x04;
    pub const CAPABILITIES: u64 = 0x34;
    /// COMMAND: memory space and bus mastering (DMA) on, INTx off (this driver polls).
    pub const MEMORY_AND_MASTER: u32 = (1 << 1) | (1 << 2) | (1 << 10);
    /// Capability ID of virtio's vendor-specific capabilities.
    pub const VENDOR: u32 = 0x09;
}

/// virtio 1.x PCI: capability types and common configuration offsets.
mod virtio {
    pub const COMMON: u32 = 1;
    pub const NOTIFY: u32 = 2;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0c;
    pub const STATUS: u64 = 0x14;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_ENABLE: u64 = 0x1c;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1e;
    pub const QUEUE_DESC: u64 = 0x20;
    pub const QUEUE_DRIVER: u64 = 0x28;
    pub const QUEUE_DEVICE: u64 = 0x30;
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    /// Feature bits 32 and 33 (in the second feature word): VERSION_1 and ACCESS_PLATFORM.
    pub const VERSION_1_AND_ACCESS_PLATFORM: u32 = 0b11;
}

/// Descriptor flags.
const NEXT: u16 = 1;
const WRITE: u16 = 2;

#[repr(C, align(4096))]
struct Ring([u8; 3 * 4096]);
static mut RING: Ring = Ring([0; 3 * 4096]);
/// Entries of the queue this driver sets up.
const QUEUE_SIZE: u64 = 8;

/// A virtio-blk request header: GET_ID (type 8), the disk's serial into the buffer. The device
/// answers it at once, with no disk I/O: every refused write of it is recorded before the
/// hypervisor restarts the partition. (A read of sector 0 writes the buffer only once the disk
/// has read it, and a slow host read could put those refused writes after the restart, where
/// they fault the next run: docs/security.md.)
#[repr(C)]
struct Header {
    kind: u32,
    reserved: u32,
    sector: u64,
}
static HEADER: Header = Header { kind: 8, reserved: 0, sector: 0 };
/// Boot 2's two reads (`VIRTIO_BLK_T_IN`) of sector 0: 64 KiB into its own memory, which the
/// throttled disk carries out at once and which makes it hold the next one back (about a
/// second at 64 KiB/s), then one sector into the victim's memory.
static READ: Header = Header { kind: 0, reserved: 0, sector: 0 };
/// Where the first read goes: 4 MiB into this partition's 8 MiB.
const OWN_BUFFER: u64 = 0x4440_0000;
const OWN_BYTES: u32 = 64 * 1024;
/// How long boot 3 waits for a late write of boot 2's read.
const STALE_WAIT_NS: u64 = 3_000_000_000;
/// `VIRTIO_BLK_ID_BYTES`: the ID's buffer.
const ID_BYTES: u32 = 20;
static mut STATUS: u8 = 0xff;
static mut STATUS2: u8 = 0xff;

fn config_read(offset: u64) -> u32 {
    // SAFETY: ECAM of the host bridge this partition owns, mapped as device memory.
    unsafe { read_volatile((DISK_CONFIG + (offset & !3)) as *const u32) >> (8 * (offset & 3)) }
}

fn config_write(offset: u64, value: u32) {
    // SAFETY: as in `config_read`.
    unsafe { write_volatile((DISK_CONFIG + offset) as *mut u32, value) }
}

/// Where the virtio capability of `kind` puts its registers: (BAR, offset in it, capability
/// position in config space).
fn capability(kind: u32) -> Option<(u32, u64, u64)> {
    let mut at = u64::from(config_read(pci::CAPABILITIES) & 0xfc);
    for _ in 0..32 {
        if at == 0 {
            return None;
        }
        let head = config_read(at);
        if head & 0xff == pci::VENDOR && (head >> 24) & 0xff == kind {
            let bar = config_read(at + 4) & 0xff;
            return Some((bar, u64::from(config_read(at + 8)), at));
        }
        at = u64::from((head >> 8) & 0xfc);
    }
    None
}

/// Puts BAR `bar` (64-bit memory) at `address`.
fn place_bar(bar: u32, address: u64) {
    let offset = 0x10 + 4 * u64::from(bar);
    config_write(offset, address as u32);
    config_write(offset + 4, (address >> 32) as u32);
}

fn main() {
    let boot = partition_info().restarts;
    let (target, what) = match boot {
        0 => (VICTIM, "the victim's memory"),
        1 => (HYPERVISOR, "the hypervisor's memory"),
        2 => (VICTIM, "the victim's memory"),
        3 => {
            println!("both DMA attacks were stopped; waiting for a late write of the slow read");
            wait_ns(STALE_WAIT_NS);
            println!("no late DMA of the run before reached this one; done");
            exit(0);
        }
        _ => {
            println!("a late DMA write of an earlier run faulted run 3");
            exit(1);
        }
    };
    let id = config_read(pci::ID);
    let (vendor, device) = (id & 0xffff, id >> 16);
    let (Some((bar, common, _)), Some((notify_bar, notify, notify_cap))) =
        (capability(virtio::COMMON), capability(virtio::NOTIFY))
    else {
        println!("no virtio device at 00:01.0 (id {id:#x})");
        exit(2);
    };
    if vendor != 0x1af4 || notify_bar != bar {
        println!("no virtio device at 00:01.0 (id {id:#x})");
        exit(2);
    }
    println!("found virtio-blk {vendor:04x}:{device:04x} at 00:01.0");
    place_bar(bar, MEM_WINDOW);
    config_write(pci::COMMAND, pci::MEMORY_AND_MASTER);
    let multiplier = u64::from(config_read(notify_cap + 16));
    let common = MEM_WINDOW + common;
    let reg = |offset: u64| common + offset;

    // QEMU may start on the queue as soon as it is enabled: say it first.
    if boot == 2 {
        println!("race: a slow disk read into {what} at {target:#x}, refused, restarts this partition");
    } else {
        println!("attack: the disk DMAs its ID into {what} at {target:#x}");
    }
    // The line reaches the console before the restart.
    wait_ns(50_000_000);

    // SAFETY: the BAR lies in the host bridge's window, this partition's; RING, HEADER and
    // STATUS are this partition's own memory; single-threaded.
    unsafe {
        write_volatile(reg(virtio::STATUS) as *mut u8, 0); // reset (also clears a broken device)
        while read_volatile(reg(virtio::STATUS) as *const u8) != 0 {}
        write_volatile(reg(virtio::STATUS) as *mut u8, virtio::ACKNOWLEDGE | virtio::DRIVER);
        write_volatile(reg(virtio::DRIVER_FEATURE_SELECT) as *mut u32, 1);
        write_volatile(reg(virtio::DRIVER_FEATURE) as *mut u32, virtio::VERSION_1_AND_ACCESS_PLATFORM);
        write_volatile(reg(virtio::DRIVER_FEATURE_SELECT) as *mut u32, 0);
        write_volatile(reg(virtio::DRIVER_FEATURE) as *mut u32, 0);
        let ok = virtio::ACKNOWLEDGE | virtio::DRIVER | virtio::FEATURES_OK;
        write_volatile(reg(virtio::STATUS) as *mut u8, ok);
        if read_volatile(reg(virtio::STATUS) as *const u8) & virtio::FEATURES_OK == 0 {
            println!("the disk refused the features");
            exit(2);
        }
        write_volatile(reg(virtio::QUEUE_SELECT) as *mut u16, 0);
        write_volatile(reg(virtio::QUEUE_SIZE) as *mut u16, QUEUE_SIZE as u16);
        let ring = addr_of_mut!(RING) as u64;
        let (avail, used) = (ring + 4096, ring + 2 * 4096);
        let desc = |i: u64, addr: u64, len: u32, flags: u16, next: u16| {
            let d = ring + 16 * i;
            write_volatile(d as *mut u64, addr);
            write_volatile((d + 8) as *mut u32, len);
            write_volatile((d + 12) as *mut u16, flags);
            write_volatile((d + 14) as *mut u16, next);
        };
        let requests: u16 = if boot == 2 {
            desc(0, addr_of!(READ) as u64, 16, NEXT, 1);
            desc(1, OWN_BUFFER, OWN_BYTES, NEXT | WRITE, 2);
            desc(2, addr_of_mut!(STATUS) as u64, 1, WRITE, 0);
            desc(3, addr_of!(READ) as u64, 16, NEXT, 4);
            desc(4, target, 512, NEXT | WRITE, 5);
            desc(5, addr_of_mut!(STATUS2) as u64, 1, WRITE, 0);
            2
        } else {
            desc(0, addr_of!(HEADER) as u64, 16, NEXT, 1);
            desc(1, target, ID_BYTES, NEXT | WRITE, 2);
            desc(2, addr_of_mut!(STATUS) as u64, 1, WRITE, 0);
            1
        };
        write_volatile(avail as *mut u16, 1); // VIRTQ_AVAIL_F_NO_INTERRUPT
        write_volatile((avail + 4) as *mut u16, 0); // ring[0] = descriptor 0
        write_volatile((avail + 6) as *mut u16, 3); // ring[1] = descriptor 3 (boot 2)
        write_volatile(reg(virtio::QUEUE_DESC) as *mut u64, ring);
        write_volatile(reg(virtio::QUEUE_DRIVER) as *mut u64, avail);
        write_volatile(reg(virtio::QUEUE_DEVICE) as *mut u64, used);
        let notify_off = u64::from(read_volatile(reg(virtio::QUEUE_NOTIFY_OFF) as *const u16));
        write_volatile(reg(virtio::QUEUE_ENABLE) as *mut u16, 1);
        write_volatile(reg(virtio::STATUS) as *mut u8, ok | virtio::DRIVER_OK);
        core::arch::asm!("dsb sy");
        write_volatile((avail + 2) as *mut u16, requests); // idx
        core::arch::asm!("dsb sy");
        let doorbell = MEM_WINDOW + notify + notify_off * multiplier;
        write_volatile(doorbell as *mut u16, 0);
        for _ in 0..100 {
            // Boot 2: the first read (into its own memory) completes; only the second is a breach.
            if read_volatile((used + 2) as *const u16) >= requests {
                println!(
                    "BREACH: the disk wrote its ID into {what} (status {})",
                    read_volatile(addr_of!(STATUS))
                );
                exit(1);
            }
            wait_ns(10_000_000);
        }
    }
    println!("the disk never completed, and the hypervisor did not act");
    exit(3);
}
