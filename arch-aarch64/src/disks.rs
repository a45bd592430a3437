//! Virtio disks on this machine (`tantalum_core::virtio::blk`): the frontends' and the driver
//! partition's accesses to their pages, under the disk's lock, and the interrupts they raise.

use core::sync::atomic::Ordering;

use tantalum_core::config::{VirtioDevice, VirtioDiskConfig};
use tantalum_core::exit::MmioAccess;
use tantalum_core::virtio::blk::{Answer, MAX_FRONTENDS};
use tantalum_core::virtio::{self, Owner};

use crate::console::info;
use crate::memory;
use crate::system::{Status, System};
use crate::vcpu::kick_vcpu;

/// The frontends' partitions of `disk`, in order.
fn owners<'a>(system: &'a System, disk: &VirtioDiskConfig) -> heapless::Vec<Owner<'a>, MAX_FRONTENDS> {
    let mut v = heapless::Vec::new();
    for f in &disk.frontends {
        let p = f.partition.and_then(|id| system.partitions.get(usize::from(id)));
        if let Some(p) = p {
            let _ = v.push(Owner(p.config));
        }
    }
    v
}

/// An access by partition `id` to its page of `device` (a disk frontend or backend page).
pub fn access(
    system: &System,
    id: usize,
    device: VirtioDevice<'_>,
    offset: u64,
    access: MmioAccess,
    cpu: usize,
) -> u64 {
    let me = &system.partitions[id].config;
    let (disk, answer) = match device {
        VirtioDevice::Disk { disk, frontend } => {
            let answer = system.disks[disk.id].lock().frontend_access(
                frontend,
                Owner(me),
                &mut memory::Physical,
                offset,
                access.size,
                access.write,
            );
            (disk, answer)
        }
        VirtioDevice::DiskBackend(disk) => {
            let owners = owners(system, disk);
            let mut d = system.disks[disk.id].lock();
            let answer = d.backend_access(
                Owner(me),
                &owners,
                &mut memory::Physical,
                offset,
                access.size,
                access.write,
            );
            (disk, answer)
        }
        VirtioDevice::Net(_) => return 0,
    };
    deliver(system, disk, &answer, cpu);
    answer.value
}

/// Forgets partition `id`'s part in every disk (it stops, or restarts if `restarting`): its
/// frontend devices are reset; as a driver, its held request fails (the frontend hears of it),
/// and if it stopped for good every request from now on fails at once.
pub fn reset(system: &System, id: usize, cpu: usize, restarting: bool) {
    if !tantalum_aarch64::built::BUILT.virtio {
        return;
    }
    for (disk, lock) in system.config.disks.iter().zip(&system.disks) {
        for (f, fe) in disk.frontends.iter().enumerate() {
            if fe.partition.map(usize::from) == Some(id) {
                lock.lock().reset_frontend(f);
            }
        }
        if disk.driver.map(usize::from) == Some(id) {
            let owners = owners(system, disk);
            let answer = if restarting {
                lock.lock().reset_backend(&owners, &mut memory::Physical)
            } else {
                lock.lock().detach_backend(&owners, &mut memory::Physical)
            };
            let d = lock.lock();
            info!(
                "virtio disk '{}': {} requests relayed, {} refused, {} wrong completions",
                disk.name,
                d.frontends.iter().map(|f| f.forwarded).sum::<u64>(),
                d.frontends.iter().map(|f| f.refused).sum::<u64>(),
                d.garbage
            );
            drop(d);
            deliver(system, disk, &answer, cpu);
        }
    }
}

/// Raises the interrupts `answer` asks for and reports a frontend that failed.
fn deliver(system: &System, disk: &VirtioDiskConfig, answer: &Answer, cpu: usize) {
    if let Some((f, e)) = answer.failed {
        let name = disk.frontends[f]
            .partition
            .map_or("?", |p| system.partitions[usize::from(p)].config.name.as_str());
        info!("partition '{name}': virtio disk '{}' needs a reset: {e}", disk.name);
    }
    for (f, fe) in disk.frontends.iter().enumerate() {
        let Some(target) = fe.partition else { continue };
        if answer.frontends & 1 << f != 0 {
            let mine = |d: &VirtioDevice<'_>| matches!(d, VirtioDevice::Disk { disk: x, frontend } if x.id == disk.id && *frontend == f);
            if let Some(local) = system.config.virtio_devices(target).position(|d| mine(&d)) {
                raise(system, usize::from(target), virtio::virtio_intid(local), cpu);
            }
        }
    }
    if let (true, Some(driver)) = (answer.backend, disk.driver) {
        let mine = |d: &VirtioDevice<'_>| matches!(d, VirtioDevice::DiskBackend(x) if x.id == disk.id);
        if let Some(local) = system.config.virtio_devices(driver).position(|d| mine(&d)) {
            raise(system, usize::from(driver), virtio::virtio_intid(local), cpu);
        }
    }
}

/// Makes SPI `intid` pending in partition `target` and wakes the CPU that runs it.
fn raise(system: &System, target: usize, intid: u32, cpu: usize) {
    let Some(t) = system.partitions.get(target) else { return };
    let mut vgic = t.vgic.lock();
    let vcpu = vgic.spi_target(intid);
    let pending = vgic.set_pending(vcpu, intid);
    drop(vgic);
    if !pending {
        return;
    }
    t.irq_hints[vcpu].store(true, Ordering::Release);
    if t.status() == Status::Running {
        kick_vcpu(t, vcpu, cpu);
    }
}
