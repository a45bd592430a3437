//! The registers of the virtual GIC whose value never changes for a given partition (the
//! identification and type registers): the arch answers a guest's read of one without taking the
//! virtual GIC's lock (the trapped-MMIO fast path, issue 14). [`VirtualGic::access`] answers them
//! the same (host-tested for every offset, size and shape of partition).
#![forbid(unsafe_code)]

use super::offsets::{
    GICD_IIDR, GICD_PIDR2, GICD_PIDR2_V2, GICD_TYPER, GICR_IIDR, GICR_PIDR2, GICR_TYPER, GICR_TYPER_HIGH,
};
use super::{Access, Frame, GICR_SGI_OFFSET, IIDR, MAX_INTID, PIDR2_GICV2, PIDR2_GICV3};

/// The value a read `access` of `frame` returns in the virtual GIC of a partition with `vcpus`
/// vCPUs (`v2`: the GICv2 front end), if the register is a constant; `None` for a write and for
/// every register with state.
#[inline]
pub fn constant(v2: bool, vcpus: usize, frame: Frame, access: Access) -> Option<u64> {
    if access.write.is_some() {
        return None;
    }
    let vcpus = vcpus.max(1) as u64;
    match frame {
        Frame::Distributor => match access.offset {
            // ITLinesNumber (128 INTIDs); GICv2: CPUNumber = vCPUs - 1; GICv3: IDbits = 9.
            GICD_TYPER if v2 => Some(u64::from(MAX_INTID / 32 - 1) | ((vcpus - 1) << 5)),
            GICD_TYPER => Some(u64::from((MAX_INTID / 32 - 1) | (9 << 19))),
            GICD_IIDR => Some(IIDR),
            GICD_PIDR2_V2 if v2 => Some(PIDR2_GICV2),
            GICD_PIDR2 if !v2 => Some(PIDR2_GICV3),
            _ => None,
        },
        Frame::Redistributor(n) if !v2 && (n as u64) < vcpus && access.offset < GICR_SGI_OFFSET => {
            let n = n as u64;
            match access.offset {
                GICR_IIDR => Some(IIDR),
                GICR_TYPER => {
                    let last = u64::from(n + 1 == vcpus);
                    let typer = (n << 32) | (n << 8) | (last << 4);
                    Some(if access.size == 4 { typer & 0xffff_ffff } else { typer })
                }
                GICR_TYPER_HIGH => Some(n),
                GICR_PIDR2 => Some(PIDR2_GICV3),
                _ => None,
            }
        }
        Frame::Redistributor(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::VirtualGic;
    use super::*;

    /// Wherever `constant` answers, the virtual GIC's own emulation answers the same, in any
    /// state, and the register is one the guest cannot change.
    #[test]
    fn constants_are_what_the_virtual_gic_reads() {
        let mut answered = 0;
        for (version, vcpus) in [(3, 1), (3, 2), (3, 4), (2, 1), (2, 2), (2, 8)] {
            let frames = core::iter::once(Frame::Distributor).chain((0..vcpus + 1).map(Frame::Redistributor));
            for frame in frames {
                let offsets = (0..0x1_0000u64).step_by(4).chain([0xfe9, 0x0005, 0x000d, 0xffea]);
                let offsets: alloc::vec::Vec<u64> = match frame {
                    Frame::Distributor => offsets.collect(),
                    _ => offsets.chain((0..0x1_0000u64).step_by(4).map(|o| o + GICR_SGI_OFFSET)).collect(),
                };
                for offset in offsets {
                    for size in [1, 2, 4, 8] {
                        let read = Access { offset, size, write: None };
                        let Some(value) = constant(version == 2, vcpus, frame, read) else { continue };
                        answered += 1;
                        let mut gic = VirtualGic::for_version(version, vcpus, &[40]);
                        assert_eq!(
                            gic.access(0, frame, read),
                            value,
                            "v{version} {vcpus} {frame:?} {offset:#x}"
                        );
                        // A write of all ones changes nothing the read sees.
                        gic.access(0, frame, Access { write: Some(u64::MAX), ..read });
                        assert_eq!(
                            gic.access(0, frame, read),
                            value,
                            "v{version} {frame:?} {offset:#x} written"
                        );
                        assert_eq!(
                            constant(version == 2, vcpus, frame, Access { write: Some(0), ..read }),
                            None
                        );
                    }
                }
            }
        }
        assert!(answered > 100);
        // The type registers the bench reads, by value.
        let typer = |frame, offset, size| constant(false, 2, frame, Access { offset, size, write: None });
        assert_eq!(typer(Frame::Distributor, 4, 4), Some(3 | 9 << 19));
        assert_eq!(typer(Frame::Redistributor(1), 8, 8), Some(1 << 32 | 1 << 8 | 1 << 4));
        assert_eq!(typer(Frame::Redistributor(0), 8, 4), Some(0));
        assert_eq!(typer(Frame::Distributor, 0, 4), None, "GICD_CTLR is written by the guest");
    }
}
