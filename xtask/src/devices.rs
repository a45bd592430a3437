//! QEMU devices a system needs beyond the board: a virtio-blk disk when a partition owns the
//! virtio-mmio slot QEMU gives the first virtio device (the last one, `0xa003e00`), or the PCIe
//! host bridge (a virtio-blk-pci disk at 00:01.0, requester ID and SMMU stream 0x8).

use std::path::{Path, PathBuf};

use tantalum_core::config::SystemConfig;

use crate::{linux, Result};

/// Board node of the virtio-mmio slot QEMU fills first.
const FIRST_VIRTIO_SLOT: &str = "/virtio_mmio@a003e00";

/// Extra QEMU arguments for `cfg`: a fresh copy of the test disk for the partition that owns
/// the first virtio slot (written to `disk`, so runs do not see each other's writes).
pub fn qemu_args(cfg: &SystemConfig, disk: PathBuf) -> Result<Vec<String>> {
    let devices = || cfg.partitions.iter().flat_map(|p| &p.devices);
    if devices().any(|d| d.pci.is_some()) {
        return pci_disk_args(&disk);
    }
    if !devices().any(|d| d.path == FIRST_VIRTIO_SLOT) {
        return Ok(Vec::new());
    }
    disk_args(&disk)
}

/// QEMU arguments for a virtio-blk-pci disk in slot 1 of the PCIe root bus, behind the SMMU,
/// backed by a fresh copy of the test disk written to `disk`. `iommu_platform=on`: without it
/// QEMU lets a virtio device's DMA bypass the IOMMU (a shortcut of the emulator, not something
/// a real device can do), which would make every SMMU test pass vacuously; QEMU allows it only
/// on a modern-only device (`disable-legacy=on`).
pub fn pci_disk_args(disk: &Path) -> Result<Vec<String>> {
    linux::make_disk(disk)?;
    Ok(vec![
        "-drive".into(),
        format!("if=none,file={},format=raw,id=disk0", disk.display()),
        "-device".into(),
        "virtio-blk-pci,drive=disk0,bus=pcie.0,addr=1.0,disable-legacy=on,iommu_platform=on".into(),
    ])
}

/// QEMU arguments for a virtio-blk disk in the first virtio slot, backed by a fresh copy of the
/// test disk written to `disk`.
pub fn disk_args(disk: &Path) -> Result<Vec<String>> {
    linux::make_disk(disk)?;
    Ok(vec![
        "-drive".into(),
        format!("if=none,file={},format=raw,id=disk0", disk.display()),
        "-device".into(),
        "virtio-blk-device,drive=disk0".into(),
    ])
}
