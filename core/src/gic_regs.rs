//! GIC register layouts, declared once (tock-registers) for the hypervisor's drivers
//! (`arch-aarch64`), the virtual GIC's decoding (`vgic`) and the SDK: the distributor (the
//! per-INTID banks are the same in a GICv3 redistributor's SGI frame), a GICv3 redistributor's
//! RD frame, a GICv2's CPU interface (also the layout of its virtual CPU interface, GICV) and its
//! virtual interface control (GICH). The virtual GIC decodes a trapped offset against
//! [`span`]s of these layouts, so no register offset is written twice.
#![forbid(unsafe_code)]

use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    /// A distributor (GICv2 and GICv3) up to its GICv3 routing registers.
    pub Distributor {
        (0x000 => pub ctlr: ReadWrite<u32, GICD_CTLR::Register>),
        (0x004 => pub typer: ReadOnly<u32>),
        (0x008 => pub iidr: ReadOnly<u32>),
        (0x00c => _reserved0),
        (0x080 => pub igroupr: [ReadWrite<u32>; 32]),
        (0x100 => pub isenabler: [ReadWrite<u32>; 32]),
        (0x180 => pub icenabler: [ReadWrite<u32>; 32]),
        (0x200 => pub ispendr: [ReadWrite<u32>; 32]),
        (0x280 => pub icpendr: [ReadWrite<u32>; 32]),
        (0x300 => pub isactiver: [ReadWrite<u32>; 32]),
        (0x380 => pub icactiver: [ReadWrite<u32>; 32]),
        (0x400 => pub ipriorityr: [ReadWrite<u8>; 1024]),
        /// GICv2 only (GICv3 with affinity routing: IROUTER).
        (0x800 => pub itargetsr: [ReadWrite<u8>; 1024]),
        (0xc00 => pub icfgr: [ReadWrite<u32>; 64]),
        (0xd00 => _reserved1),
        /// GICv2 only.
        (0xf00 => pub sgir: WriteOnly<u32, SGIR::Register>),
        (0xf04 => _reserved2a),
        /// GICv2 only: a byte per SGI, a bit per sending CPU; writing 1 clears (CPENDSGIR) or
        /// sets (SPENDSGIR) that SGI's pending state from that sender. ISPENDR0/ICPENDR0 ignore
        /// writes to SGI bits on a GICv2.
        (0xf10 => pub cpendsgir: [ReadWrite<u8>; 16]),
        (0xf20 => pub spendsgir: [ReadWrite<u8>; 16]),
        (0xf30 => _reserved2),
        /// GICv2 only: the architecture revision in bits 7:4.
        (0xfe8 => pub pidr2_v2: ReadOnly<u32>),
        (0xfec => _reserved3),
        /// GICv3: IROUTER<n> routes SPI INTID n (entries 0-31 are reserved).
        (0x6000 => pub irouter: [ReadWrite<u64>; 1020]),
        (0x7fe0 => _reserved4),
        /// GICv3: the architecture revision in bits 7:4.
        (0xffe8 => pub pidr2: ReadOnly<u32>),
        (0xffec => _reserved5),
        (0x10000 => @END),
    }
}

register_structs! {
    /// A GICv3 redistributor's RD frame (its SGI frame follows, with the per-INTID banks of a
    /// [`Distributor`] for the CPU's SGIs and PPIs).
    pub Redistributor {
        (0x0000 => pub ctlr: ReadWrite<u32>),
        (0x0004 => pub iidr: ReadOnly<u32>),
        (0x0008 => pub typer: ReadOnly<u64, GICR_TYPER::Register>),
        (0x0010 => pub statusr: ReadWrite<u32>),
        (0x0014 => pub waker: ReadWrite<u32, GICR_WAKER::Register>),
        (0x0018 => _reserved0),
        (0xffe8 => pub pidr2: ReadOnly<u32>),
        (0xffec => _reserved1),
        (0x10000 => @END),
    }
}

/// Offset of a GICv3 redistributor's SGI frame: just past its RD frame.
pub const GICR_SGI_OFFSET: u64 = core::mem::size_of::<Redistributor>() as u64;

/// `(first, last)` byte offsets of field `$field` of layout `$layout` (a register or an array
/// of them): `span!(Distributor, ispendr)` is `(0x200, 0x27f)`. Constants, for `match` arms.
#[macro_export]
macro_rules! gic_span {
    ($layout:ty, $field:ident) => {{
        let first = core::mem::offset_of!($layout, $field);
        let size = $crate::gic_regs::field_size(|r: &$layout| &r.$field);
        (first as u64, (first + size) as u64 - 1)
    }};
}
pub use gic_span as span;

/// The size of the field a projection returns (for [`span`]).
pub const fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

register_structs! {
    /// A GICv2 CPU interface (GICC), and the virtual CPU interface (GICV) a partition sees in
    /// its place.
    pub CpuInterface {
        (0x0000 => pub ctlr: ReadWrite<u32>),
        (0x0004 => pub pmr: ReadWrite<u32>),
        (0x0008 => pub bpr: ReadWrite<u32>),
        (0x000c => pub iar: ReadOnly<u32, GICC_IAR::Register>),
        (0x0010 => pub eoir: WriteOnly<u32>),
        (0x0014 => pub rpr: ReadOnly<u32>),
        (0x0018 => pub hppir: ReadOnly<u32, GICC_IAR::Register>),
        (0x001c => pub abpr: ReadWrite<u32>),
        (0x0020 => pub aiar: ReadOnly<u32>),
        (0x0024 => pub aeoir: WriteOnly<u32>),
        (0x0028 => pub ahppir: ReadOnly<u32>),
        (0x002c => _reserved0),
        (0x00d0 => pub apr: [ReadWrite<u32>; 4]),
        (0x00e0 => pub nsapr: [ReadWrite<u32>; 4]),
        (0x00f0 => _reserved1),
        (0x00fc => pub iidr: ReadOnly<u32>),
        (0x0100 => _reserved2),
        (0x1000 => pub dir: WriteOnly<u32>),
        (0x1004 => @END),
    }
}

register_structs! {
    /// A GICv2's virtual interface control (GICH): one CPU's list registers.
    pub VirtualControl {
        (0x000 => pub hcr: ReadWrite<u32, GICH_HCR::Register>),
        (0x004 => pub vtr: ReadOnly<u32, GICH_VTR::Register>),
        (0x008 => pub vmcr: ReadWrite<u32, GICH_VMCR::Register>),
        (0x00c => _reserved0),
        (0x010 => pub misr: ReadOnly<u32>),
        (0x014 => _reserved1),
        (0x020 => pub eisr: [ReadOnly<u32>; 2]),
        (0x028 => _reserved2),
        (0x030 => pub elrsr: [ReadOnly<u32>; 2]),
        (0x038 => _reserved3),
        (0x0f0 => pub apr: ReadWrite<u32>),
        (0x0f4 => _reserved4),
        (0x100 => pub lr: [ReadWrite<u32, GICH_LR::Register>; 64]),
        (0x200 => @END),
    }
}

register_bitfields! [u64,
    /// GICR_TYPER.
    pub GICR_TYPER [
        /// The last redistributor of the region.
        LAST OFFSET(4) NUMBITS(1) [],
        PROCESSOR_NUMBER OFFSET(8) NUMBITS(16) [],
        /// Aff3.Aff2.Aff1.Aff0 of its CPU.
        AFFINITY OFFSET(32) NUMBITS(32) [],
    ]
];

register_bitfields! [u32,
    /// GICD_CTLR (the fields of a GICv3 with one security state; a GICv2 has the two enables).
    pub GICD_CTLR [
        ENABLE_GRP0 OFFSET(0) NUMBITS(1) [],
        ENABLE_GRP1 OFFSET(1) NUMBITS(1) [],
        /// Affinity routing (GICv3).
        ARE OFFSET(4) NUMBITS(1) [],
        /// Disable security: one security state (GICv3).
        DS OFFSET(6) NUMBITS(1) [],
        /// Register write pending (GICv3).
        RWP OFFSET(31) NUMBITS(1) [],
    ],
    /// GICR_WAKER.
    pub GICR_WAKER [
        PROCESSOR_SLEEP OFFSET(1) NUMBITS(1) [],
        CHILDREN_ASLEEP OFFSET(2) NUMBITS(1) [],
    ],
    /// GICC_IAR and GICC_HPPIR (GICv2).
    pub GICC_IAR [
        INTERRUPT_ID OFFSET(0) NUMBITS(10) [],
        /// An SGI's source CPU.
        CPUID OFFSET(10) NUMBITS(3) [],
    ],
    /// GICH_VTR (GICv2).
    pub GICH_VTR [
        /// List registers implemented, minus one.
        LIST_REGS OFFSET(0) NUMBITS(6) [],
    ],
    /// GICD_SGIR (GICv2).
    pub SGIR [
        INTID OFFSET(0) NUMBITS(4) [],
        TARGETS OFFSET(16) NUMBITS(8) [],
        FILTER OFFSET(24) NUMBITS(2) [List = 0, AllButSelf = 1, OnlySelf = 2],
    ],
    /// GICH_VMCR (GICv2): the guest's CPU interface state as its GICV shows it.
    pub GICH_VMCR [
        /// The guest's priority mask (`GICV_PMR`) bits [7:3].
        PRIORITY_MASK OFFSET(27) NUMBITS(5) [],
    ],
    /// GICH_HCR (GICv2).
    pub GICH_HCR [
        EN OFFSET(0) NUMBITS(1) [],
        /// Underflow: at most one list register in use.
        UIE OFFSET(1) NUMBITS(1) [],
        /// No pending: no list register holds a pending interrupt.
        NPIE OFFSET(3) NUMBITS(1) [],
    ],
    /// A GICv2 list register.
    pub GICH_LR [
        VIRTUAL_ID OFFSET(0) NUMBITS(10) [],
        /// Hardware-linked: the physical INTID whose deactivation the guest's EOI performs.
        PHYSICAL_ID OFFSET(10) NUMBITS(10) [],
        /// Not hardware-linked: the SGI's source CPU (bits 12:10).
        CPUID OFFSET(10) NUMBITS(3) [],
        /// Not hardware-linked: a maintenance interrupt when the guest ends it.
        EOI OFFSET(19) NUMBITS(1) [],
        PRIORITY OFFSET(23) NUMBITS(5) [],
        STATE OFFSET(28) NUMBITS(2) [Invalid = 0, Pending = 1, Active = 2, PendingActive = 3],
        GROUP1 OFFSET(30) NUMBITS(1) [],
        HW OFFSET(31) NUMBITS(1) [],
    ]
];

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn offsets_are_the_architecture_s() {
        assert_eq!(offset_of!(Distributor, itargetsr), 0x800);
        assert_eq!(offset_of!(Distributor, pidr2_v2), 0xfe8);
        assert_eq!(offset_of!(Distributor, irouter), 0x6000);
        assert_eq!(offset_of!(Distributor, pidr2), 0xffe8);
        assert_eq!(offset_of!(Redistributor, waker), 0x14);
        assert_eq!(GICR_SGI_OFFSET, 0x1_0000);
        assert_eq!(offset_of!(CpuInterface, dir), 0x1000);
        assert_eq!(offset_of!(VirtualControl, apr), 0xf0);
        assert_eq!(offset_of!(VirtualControl, lr), 0x100);
    }

    #[test]
    fn spans_cover_whole_registers() {
        assert_eq!(span!(Distributor, ctlr), (0, 3));
        assert_eq!(span!(Distributor, ispendr), (0x200, 0x27f));
        assert_eq!(span!(Distributor, ipriorityr), (0x400, 0x7ff));
        assert_eq!(span!(Distributor, icfgr), (0xc00, 0xcff));
        assert_eq!(span!(Distributor, irouter), (0x6000, 0x7fdf), "IROUTER1019 is the last");
        assert_eq!(span!(Redistributor, typer), (8, 0xf));
    }

    #[test]
    fn list_register_fields() {
        let lr = GICH_LR::VIRTUAL_ID.val(27)
            + GICH_LR::PHYSICAL_ID.val(27)
            + GICH_LR::HW::SET
            + GICH_LR::STATE::Pending
            + GICH_LR::PRIORITY.val(0xa0 >> 3);
        assert_eq!(lr.value, (1 << 31) | (1 << 28) | (0x14 << 23) | (27 << 10) | 27);
    }
}
