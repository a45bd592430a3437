//! Rule 14, disks: a driver partition that owns the disk's device, and frontends whose regions
//! lie inside the disk and share no sector (docs/virtio.md).

use super::Checker;
use crate::config::error::ErrorKind;
use crate::virtio::blk::MAX_FRONTENDS;

impl Checker<'_> {
    pub(super) fn virtio_disks(&mut self) {
        let cfg = self.cfg;
        for d in &cfg.disks {
            let driver = d.driver.and_then(|id| cfg.partitions.get(usize::from(id)));
            if let (Some(p), Some(device)) = (driver, &d.device) {
                if !p.devices.iter().any(|a| &a.path == device) {
                    let kind =
                        ErrorKind::DiskDeviceNotOwned { driver: p.path.clone(), device: device.clone() };
                    self.report(&d.path, kind);
                }
            }
            let count = d.frontends.len();
            if count == 0 || count > MAX_FRONTENDS {
                self.report(&d.path, ErrorKind::DiskFrontendCount { count, max: MAX_FRONTENDS });
            }
            for (i, f) in d.frontends.iter().enumerate() {
                if f.partition.is_some() && f.partition == d.driver {
                    let partition = driver.map_or_else(Default::default, |p| p.path.clone());
                    self.report(&f.path, ErrorKind::DiskFrontendIsDriver { partition });
                }
                let r = f.region;
                let end = r.start.checked_add(r.sectors);
                if r.sectors == 0 || end.is_none_or(|e| e > d.sectors) {
                    let kind =
                        ErrorKind::DiskRegionOutside { start: r.start, sectors: r.sectors, disk: d.sectors };
                    self.report(&f.path, kind);
                    continue;
                }
                let overlaps = |o: &crate::virtio::blk::Region| {
                    r.start < o.start.saturating_add(o.sectors) && o.start < r.start + r.sectors
                };
                if let Some(other) =
                    d.frontends[..i].iter().find(|o| o.region.sectors > 0 && overlaps(&o.region))
                {
                    let kind = ErrorKind::DiskRegionOverlap {
                        start: r.start,
                        sectors: r.sectors,
                        other: other.path.clone(),
                    };
                    self.report(&f.path, kind);
                }
            }
        }
    }
}
