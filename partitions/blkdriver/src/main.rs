//! The storage driver partition (docs/virtio.md, "Block"): it owns the PCIe host bridge and the
//! virtio-blk disk on it, and serves the disk's frontends through its backend page. Every
//! request it takes was already checked by the hypervisor against the frontend's region and
//! carries a disk sector; it still refuses sectors past the disk's real end. The disk DMAs
//! straight into and out of the buffer area the hypervisor copies the frontends' data through.
//!
//! Boot arguments: `linger_s=N` exits once no frontend has run its device for N seconds (after
//! one did: a test system powers off when its Linux partitions are done). Hostile-backend
//! scenarios: `misbehave=silent` takes one request and never answers it (with `hold_s=N`, exits
//! N seconds later), `misbehave=garbage` answers every request with a status that is not one.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;
use core::time::Duration;

use tantalum_core::virtio::blk::{MAX_DATA, SECTOR, S_IOERR, S_OK, S_UNSUPP};
use tantalum_guest::blk_backend::{Backend, Request};
use tantalum_guest::virtio_blk::{Disk, T_FLUSH, T_IN, T_OUT};
use tantalum_guest::{dt, exit, println, time, wait_ns};

tantalum_guest::entry!(main);

/// The buffer area: the largest request a frontend may make.
#[repr(C, align(4096))]
struct Buffer([u8; MAX_DATA as usize]);
static mut BUFFER: Buffer = Buffer([0; MAX_DATA as usize]);

/// How long to sleep when no frontend has a request.
const IDLE_NS: u64 = 100_000;

fn main() {
    let mut disk = match Disk::open() {
        Ok(d) => d,
        Err(e) => {
            println!("no disk: {e:?}");
            exit(1);
        }
    };
    let (bus, dev, func) = disk.location;
    println!(
        "disk at {bus:02x}:{dev:02x}.{func}: {} sectors ({} KiB), write cache flush: {}",
        disk.capacity,
        disk.capacity * SECTOR / 1024,
        disk.flush
    );
    let buffer = addr_of_mut!(BUFFER) as *mut u8;
    let mut backend = match Backend::open(0, buffer, MAX_DATA) {
        Ok(b) => b,
        Err(e) => {
            println!("no backend page: {e:?}");
            exit(1);
        }
    };
    if backend.capacity > disk.capacity {
        println!(
            "the system description gives the disk {} sectors, it has {}",
            backend.capacity, disk.capacity
        );
    }
    let misbehave = dt::bootarg("misbehave");
    println!("serving {} frontends", backend.frontends);
    let linger = dt::bootarg("linger_s").and_then(|s| s.parse::<u64>().ok()).map(Duration::from_secs);
    let mut served = 0u64;
    let mut seen_live = false;
    let mut idle_since = time::now();
    loop {
        let req = match backend.fetch() {
            Ok(Some(req)) => req,
            Ok(None) => {
                if backend.live() != 0 {
                    seen_live = true;
                    idle_since = time::now();
                } else if seen_live && linger.is_some_and(|l| idle_since.elapsed() > l) {
                    println!(
                        "no frontend for {} s; served {served} requests, exiting",
                        linger.unwrap_or_default().as_secs()
                    );
                    exit(0);
                }
                wait_ns(IDLE_NS);
                continue;
            }
            Err(e) => {
                println!("backend: {e:?}");
                exit(2);
            }
        };
        match misbehave {
            Some("silent") => {
                println!("misbehaving: took a request of frontend {} and will never answer", req.frontend);
                let hold = dt::bootarg("hold_s").and_then(|s| s.parse::<u64>().ok());
                let start = time::now();
                while hold.is_none_or(|h| start.elapsed() < Duration::from_secs(h)) {
                    wait_ns(100_000_000);
                }
                println!("exiting after holding it {} s", hold.unwrap_or_default());
                exit(3);
            }
            Some("garbage") => {
                backend.complete(0x5a);
                continue;
            }
            _ => {}
        }
        let status = serve(&mut disk, &req, buffer);
        backend.complete(status);
        served += 1;
        if served == 1 {
            println!("first request served (frontend {}, sector {})", req.frontend, req.sector);
        }
    }
}

/// Carries out `req` on the disk, with its data in `buffer`.
fn serve(disk: &mut Disk, req: &Request, buffer: *mut u8) -> u8 {
    match req.kind {
        T_IN | T_OUT => {
            let end = req.sector.checked_add(u64::from(req.len) / SECTOR);
            if req.len > MAX_DATA || end.is_none_or(|e| e > disk.capacity) {
                return S_IOERR;
            }
            // SAFETY: `buffer` is the partition's own MAX_DATA bytes, used by nothing else while
            // the request runs (the hypervisor copies through it only between requests).
            unsafe { disk.request(req.kind, req.sector, buffer, req.len) }
        }
        // SAFETY: a flush moves no data.
        T_FLUSH if disk.flush => unsafe { disk.request(T_FLUSH, 0, buffer, 0) },
        T_FLUSH => S_OK,
        _ => S_UNSUPP,
    }
}
