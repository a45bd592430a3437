//! The register offsets the virtual GIC decodes, taken from the layouts in `gic_regs`: one
//! constant per register, and `FIRST..=LAST` bounds per register array, for `match` arms.
#![forbid(unsafe_code)]

use core::mem::offset_of;

use crate::gic_regs::{span, Distributor, Redistributor};

/// Byte offset of a register of a layout.
macro_rules! at {
    ($layout:ident . $field:ident) => {
        offset_of!($layout, $field) as u64
    };
}

/// The first and last byte offsets of a register array of a layout, as two constants.
macro_rules! array {
    ($first:ident, $last:ident = $layout:ident . $field:ident) => {
        pub(super) const $first: u64 = span!($layout, $field).0;
        pub(super) const $last: u64 = span!($layout, $field).1;
    };
}

pub(super) const GICD_CTLR: u64 = at!(Distributor.ctlr);
pub(super) const GICD_TYPER: u64 = at!(Distributor.typer);
pub(super) const GICD_IIDR: u64 = at!(Distributor.iidr);
pub(super) const GICD_SGIR: u64 = at!(Distributor.sgir);
pub(super) const GICD_PIDR2_V2: u64 = at!(Distributor.pidr2_v2);
pub(super) const GICD_PIDR2: u64 = at!(Distributor.pidr2);
array!(IGROUPR, IGROUPR_LAST = Distributor.igroupr);
array!(ISENABLER, ISENABLER_LAST = Distributor.isenabler);
array!(ICENABLER, ICENABLER_LAST = Distributor.icenabler);
array!(ISPENDR, ISPENDR_LAST = Distributor.ispendr);
array!(ICPENDR, ICPENDR_LAST = Distributor.icpendr);
array!(ISACTIVER, ISACTIVER_LAST = Distributor.isactiver);
array!(ICACTIVER, ICACTIVER_LAST = Distributor.icactiver);
array!(IPRIORITYR, IPRIORITYR_LAST = Distributor.ipriorityr);
array!(ITARGETSR, ITARGETSR_LAST = Distributor.itargetsr);
array!(ICFGR, ICFGR_LAST = Distributor.icfgr);
array!(IROUTER, IROUTER_LAST = Distributor.irouter);
array!(CPENDSGIR, CPENDSGIR_LAST = Distributor.cpendsgir);
array!(SPENDSGIR, SPENDSGIR_LAST = Distributor.spendsgir);
/// The last byte of a redistributor SGI frame's ICFGR1: the frame's per-INTID banks cover the
/// 32 SGIs and PPIs only (ICFGR0-1).
pub(super) const SGI_FRAME_ICFGR_LAST: u64 = ICFGR + 2 * core::mem::size_of::<u32>() as u64 - 1;

pub(super) const GICR_IIDR: u64 = at!(Redistributor.iidr);
pub(super) const GICR_TYPER: u64 = at!(Redistributor.typer);
/// The high word of GICR_TYPER (a 32-bit read).
pub(super) const GICR_TYPER_HIGH: u64 = GICR_TYPER + 4;
pub(super) const GICR_WAKER: u64 = at!(Redistributor.waker);
pub(super) const GICR_PIDR2: u64 = at!(Redistributor.pidr2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offsets_the_architecture_gives() {
        assert_eq!((GICD_CTLR, GICD_TYPER, GICD_IIDR, GICD_SGIR), (0, 4, 8, 0xf00));
        assert_eq!((GICD_PIDR2_V2, GICD_PIDR2), (0xfe8, 0xffe8));
        assert_eq!((IGROUPR, IGROUPR_LAST, ICACTIVER, ICACTIVER_LAST), (0x80, 0xff, 0x380, 0x3ff));
        assert_eq!((ITARGETSR, ITARGETSR_LAST, IROUTER, IROUTER_LAST), (0x800, 0xbff, 0x6000, 0x7fdf));
        assert_eq!(SGI_FRAME_ICFGR_LAST, 0xc07);
        assert_eq!(
            (GICR_IIDR, GICR_TYPER, GICR_TYPER_HIGH, GICR_WAKER, GICR_PIDR2),
            (4, 8, 0xc, 0x14, 0xffe8)
        );
    }
}
