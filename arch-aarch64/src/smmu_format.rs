//! SMMUv3 formats (Arm IHI 0070): the register frame, stream table entries (STE), context
//! descriptors (CD), commands, event records and the stage-1 translation descriptors of a
//! partition's DMA map. Values are composed from named fields, as plain arithmetic the host
//! tests check; `smmu.rs` in the binary writes them.
//!
//! The hypervisor confines a stream in one of two ways: with stage 2 (`STE.Config` = S2 only,
//! `S2TTB` a stage-2 table of the partition's memory) where the SMMU implements it, else with
//! stage 1 (`Config` = S1 only, one CD whose `TTB0` is a stage-1 table of the partition's
//! memory at its guest addresses). Either way the device's addresses are the partition's
//! intermediate-physical addresses and reach only its memory.

use tantalum_core::addr::HostPhys;
use tantalum_core::iommu::{DmaFault, DmaFaultKind};
use tantalum_core::stage2::{Format, MapAttrs};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    pub IDR0 [
        S2P OFFSET(0) NUMBITS(1) [],
        S1P OFFSET(1) NUMBITS(1) [],
        TTF OFFSET(2) NUMBITS(2) [],
        COHACC OFFSET(4) NUMBITS(1) [],
        ST_LEVEL OFFSET(27) NUMBITS(2) []
    ],
    pub IDR1 [
        SIDSIZE OFFSET(0) NUMBITS(6) [],
        EVENTQS OFFSET(16) NUMBITS(5) [],
        CMDQS OFFSET(21) NUMBITS(5) []
    ],
    pub IDR5 [
        OAS OFFSET(0) NUMBITS(3) [],
        GRAN4K OFFSET(4) NUMBITS(1) []
    ],
    pub CR0 [
        SMMUEN OFFSET(0) NUMBITS(1) [],
        EVENTQEN OFFSET(2) NUMBITS(1) [],
        CMDQEN OFFSET(3) NUMBITS(1) []
    ],
    pub CR1 [
        QUEUE_IC OFFSET(0) NUMBITS(2) [WriteBack = 1],
        QUEUE_OC OFFSET(2) NUMBITS(2) [WriteBack = 1],
        QUEUE_SH OFFSET(4) NUMBITS(2) [Inner = 3],
        TABLE_IC OFFSET(6) NUMBITS(2) [WriteBack = 1],
        TABLE_OC OFFSET(8) NUMBITS(2) [WriteBack = 1],
        TABLE_SH OFFSET(10) NUMBITS(2) [Inner = 3]
    ],
    pub GBPA [
        ABORT OFFSET(20) NUMBITS(1) [],
        UPDATE OFFSET(31) NUMBITS(1) []
    ],
    pub IRQ_CTRL [
        GERROR_IRQEN OFFSET(0) NUMBITS(1) [],
        EVENTQ_IRQEN OFFSET(2) NUMBITS(1) []
    ],
    pub STRTAB_BASE_CFG [
        LOG2SIZE OFFSET(0) NUMBITS(6) [],
        FMT OFFSET(16) NUMBITS(2) [Linear = 0]
    ]
];

register_bitfields! [u64,
    pub STRTAB_BASE [
        ADDR OFFSET(6) NUMBITS(46) [],
        RA OFFSET(62) NUMBITS(1) []
    ],
    pub QUEUE_BASE [
        LOG2SIZE OFFSET(0) NUMBITS(5) [],
        ADDR OFFSET(5) NUMBITS(47) [],
        RA OFFSET(62) NUMBITS(1) []
    ],
    /// STE word 0.
    pub STE0 [
        V OFFSET(0) NUMBITS(1) [],
        CONFIG OFFSET(1) NUMBITS(3) [Abort = 0, Bypass = 4, S1Translate = 5, S2Translate = 6],
        S1FMT OFFSET(4) NUMBITS(2) [],
        S1CONTEXTPTR OFFSET(6) NUMBITS(46) [],
        S1CDMAX OFFSET(59) NUMBITS(5) []
    ],
    /// STE word 1.
    pub STE1 [
        S1CIR OFFSET(2) NUMBITS(2) [WriteBack = 1],
        S1COR OFFSET(4) NUMBITS(2) [WriteBack = 1],
        S1CSH OFFSET(6) NUMBITS(2) [Inner = 3],
        S1STALLD OFFSET(27) NUMBITS(1) [],
        STRW OFFSET(30) NUMBITS(2) [El1 = 0],
        SHCFG OFFSET(44) NUMBITS(2) [Incoming = 1]
    ],
    /// STE word 2.
    pub STE2 [
        S2VMID OFFSET(0) NUMBITS(16) [],
        S2T0SZ OFFSET(32) NUMBITS(6) [],
        S2SL0 OFFSET(38) NUMBITS(2) [],
        S2IR0 OFFSET(40) NUMBITS(2) [WriteBack = 1],
        S2OR0 OFFSET(42) NUMBITS(2) [WriteBack = 1],
        S2SH0 OFFSET(44) NUMBITS(2) [Inner = 3],
        S2TG OFFSET(46) NUMBITS(2) [Granule4K = 0],
        S2PS OFFSET(48) NUMBITS(3) [],
        S2AA64 OFFSET(51) NUMBITS(1) [],
        S2R OFFSET(58) NUMBITS(1) []
    ],
    /// STE word 3.
    pub STE3 [
        S2TTB OFFSET(4) NUMBITS(48) []
    ],
    /// CD word 0.
    pub CD0 [
        T0SZ OFFSET(0) NUMBITS(6) [],
        TG0 OFFSET(6) NUMBITS(2) [Granule4K = 0],
        IR0 OFFSET(8) NUMBITS(2) [WriteBack = 1],
        OR0 OFFSET(10) NUMBITS(2) [WriteBack = 1],
        SH0 OFFSET(12) NUMBITS(2) [Inner = 3],
        EPD0 OFFSET(14) NUMBITS(1) [],
        EPD1 OFFSET(30) NUMBITS(1) [],
        V OFFSET(31) NUMBITS(1) [],
        IPS OFFSET(32) NUMBITS(3) [],
        AFFD OFFSET(35) NUMBITS(1) [],
        AA64 OFFSET(41) NUMBITS(1) [],
        R OFFSET(45) NUMBITS(1) [],
        A OFFSET(46) NUMBITS(1) [],
        ASET OFFSET(47) NUMBITS(1) [],
        ASID OFFSET(48) NUMBITS(16) []
    ],
    /// CD word 1.
    pub CD1 [
        TTB0 OFFSET(4) NUMBITS(48) []
    ],
    /// Command word 0 (the fields the hypervisor uses).
    pub CMD0 [
        OPCODE OFFSET(0) NUMBITS(8) [CfgiSte = 0x03, CfgiAll = 0x04, TlbiNhAll = 0x10, TlbiS12Vmall = 0x28, TlbiNsnhAll = 0x30, Sync = 0x46],
        SYNC_CS OFFSET(12) NUMBITS(2) [None = 0],
        SID OFFSET(32) NUMBITS(32) [],
        VMID OFFSET(32) NUMBITS(16) []
    ],
    /// Command word 1.
    pub CMD1 [
        LEAF OFFSET(0) NUMBITS(1) [],
        RANGE OFFSET(0) NUMBITS(5) []
    ],
    /// Event record word 0.
    pub EVT0 [
        ID OFFSET(0) NUMBITS(8) [],
        SID OFFSET(32) NUMBITS(32) []
    ],
    /// Event record word 1.
    pub EVT1 [
        RNW OFFSET(35) NUMBITS(1) []
    ]
];

register_structs! {
    /// An SMMUv3's register pages 0 and 1 (the fields the hypervisor uses).
    pub SmmuRegisters {
        (0x0000 => pub idr0: ReadOnly<u32, IDR0::Register>),
        (0x0004 => pub idr1: ReadOnly<u32, IDR1::Register>),
        (0x0008 => _reserved0),
        (0x0014 => pub idr5: ReadOnly<u32, IDR5::Register>),
        (0x0018 => _reserved1),
        (0x0020 => pub cr0: ReadWrite<u32, CR0::Register>),
        (0x0024 => pub cr0ack: ReadOnly<u32, CR0::Register>),
        (0x0028 => pub cr1: ReadWrite<u32, CR1::Register>),
        (0x002c => pub cr2: ReadWrite<u32>),
        (0x0030 => _reserved2),
        (0x0044 => pub gbpa: ReadWrite<u32, GBPA::Register>),
        (0x0048 => _reserved3),
        (0x0050 => pub irq_ctrl: ReadWrite<u32, IRQ_CTRL::Register>),
        (0x0054 => pub irq_ctrlack: ReadOnly<u32, IRQ_CTRL::Register>),
        (0x0058 => _reserved4),
        (0x0060 => pub gerror: ReadOnly<u32>),
        (0x0064 => pub gerrorn: ReadWrite<u32>),
        (0x0068 => _reserved5),
        (0x0080 => pub strtab_base: ReadWrite<u64, STRTAB_BASE::Register>),
        (0x0088 => pub strtab_base_cfg: ReadWrite<u32, STRTAB_BASE_CFG::Register>),
        (0x008c => _reserved6),
        (0x0090 => pub cmdq_base: ReadWrite<u64, QUEUE_BASE::Register>),
        (0x0098 => pub cmdq_prod: ReadWrite<u32>),
        (0x009c => pub cmdq_cons: ReadOnly<u32>),
        (0x00a0 => pub eventq_base: ReadWrite<u64, QUEUE_BASE::Register>),
        (0x00a8 => _reserved7),
        (0x100a8 => pub eventq_prod: ReadOnly<u32>),
        (0x100ac => pub eventq_cons: ReadWrite<u32>),
        (0x100b0 => @END),
    }
}

/// Bytes of one STE, one CD, one command, one event record.
pub const STE_SIZE: usize = 64;
pub const CD_SIZE: usize = 64;
pub const CMD_SIZE: usize = 16;
pub const EVENT_SIZE: usize = 32;

/// Streams the hypervisor's linear stream table covers: 2^8, PCI bus 0 (requester IDs
/// 0x00..0xff). A stream beyond it has no STE: its DMA is refused with `C_BAD_STREAMID`.
pub const STREAM_BITS: u32 = 8;
/// log2 of the command and event queues' entries (a device faulting on every word of a
/// 512-byte buffer records 128 events).
pub const QUEUE_BITS: u32 = 8;

/// Translation of one partition's streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confinement {
    /// Stage 2: the partition's DMA map in stage-2 format, walked from `start_level`.
    Stage2 { vmid: u16, table: HostPhys, ipa_bits: u32, start_level: usize },
    /// Stage 1: the context descriptor at `cd` (see [`context_descriptor`]).
    Stage1 { cd: HostPhys },
}

/// An STE that refuses every access of the stream, silently (a stopped partition's devices).
pub fn ste_abort() -> [u64; 8] {
    [(STE0::V::SET + STE0::CONFIG::Abort).value, 0, 0, 0, 0, 0, 0, 0]
}

/// An STE that confines the stream as `c` says. Faults are recorded (stage 2: `S2R`; stage 1:
/// the CD's `R`) and the access is terminated with an abort, never stalled.
pub fn ste(c: Confinement) -> [u64; 8] {
    match c {
        Confinement::Stage1 { cd } => [
            (STE0::V::SET
                + STE0::CONFIG::S1Translate
                + STE0::S1FMT.val(0)
                + STE0::S1CDMAX.val(0)
                + STE0::S1CONTEXTPTR.val(cd.as_u64() >> 6))
            .value,
            (STE1::S1CIR::WriteBack
                + STE1::S1COR::WriteBack
                + STE1::S1CSH::Inner
                + STE1::STRW::El1
                + STE1::SHCFG::Incoming)
                .value,
            0,
            0,
            0,
            0,
            0,
            0,
        ],
        Confinement::Stage2 { vmid, table, ipa_bits, start_level } => [
            (STE0::V::SET + STE0::CONFIG::S2Translate).value,
            (STE1::SHCFG::Incoming).value,
            (STE2::S2VMID.val(u64::from(vmid))
                + STE2::S2T0SZ.val(u64::from(64 - ipa_bits))
                + STE2::S2SL0.val(sl0(start_level))
                + STE2::S2IR0::WriteBack
                + STE2::S2OR0::WriteBack
                + STE2::S2SH0::Inner
                + STE2::S2TG::Granule4K
                + STE2::S2PS.val(PS_48_BITS)
                + STE2::S2AA64::SET
                + STE2::S2R::SET)
                .value,
            STE3::S2TTB.val(table.as_u64() >> 4).value,
            0,
            0,
            0,
            0,
        ],
    }
}

/// `SL0` of a 4 KiB-granule stage-2 walk starting at `level` (2 → 0, 1 → 1, 0 → 2).
const fn sl0(level: usize) -> u64 {
    2u64.saturating_sub(level as u64)
}

/// Output address size 48 bits (`IPS` / `S2PS` = 0b101).
const PS_48_BITS: u64 = 0b101;

/// The single CD of a stage-1-confined stream: TTB0 walks `table` (39-bit input, 4 KiB granule,
/// from level 1), TTB1 is disabled, faults are recorded (`R`) and terminate with an abort (`A`),
/// MAIR attr0 normal write-back, attr1 device.
pub fn context_descriptor(table: HostPhys, asid: u16) -> [u64; 8] {
    [
        (CD0::T0SZ.val(64 - S1_INPUT_BITS)
            + CD0::TG0::Granule4K
            + CD0::IR0::WriteBack
            + CD0::OR0::WriteBack
            + CD0::SH0::Inner
            + CD0::EPD1::SET
            + CD0::V::SET
            + CD0::IPS.val(PS_48_BITS)
            + CD0::AA64::SET
            + CD0::R::SET
            + CD0::A::SET
            + CD0::ASET::SET
            + CD0::ASID.val(u64::from(asid)))
        .value,
        CD1::TTB0.val(table.as_u64() >> 4).value,
        0,
        MAIR,
        0,
        0,
        0,
        0,
    ]
}

/// Input address bits of the stage-1 DMA map: 39, walked from level 1 (as [`IPA_LIMIT`]).
///
/// [`IPA_LIMIT`]: tantalum_core::config::IPA_LIMIT
pub const S1_INPUT_BITS: u64 = 39;
/// MAIR of the stage-1 DMA map: attr0 = Normal WB RA/WA (0xff), attr1 = Device-nGnRnE (0x00).
const MAIR: u64 = 0xff;

/// `CMD_CFGI_STE`: the SMMU forgets what it cached of stream `sid`'s STE.
pub fn cmd_cfgi_ste(sid: u32) -> [u64; 2] {
    [(CMD0::OPCODE::CfgiSte + CMD0::SID.val(u64::from(sid))).value, CMD1::LEAF::SET.value]
}
/// `CMD_CFGI_ALL`: every cached STE and CD.
pub fn cmd_cfgi_all() -> [u64; 2] {
    [CMD0::OPCODE::CfgiAll.value, CMD1::RANGE.val(31).value]
}
/// `CMD_TLBI_NSNH_ALL`: every non-secure, non-hypervisor TLB entry.
pub fn cmd_tlbi_all() -> [u64; 2] {
    [CMD0::OPCODE::TlbiNsnhAll.value, 0]
}
/// `CMD_SYNC`, no signal: the SMMU has finished every earlier command when it consumes it.
pub fn cmd_sync() -> [u64; 2] {
    [(CMD0::OPCODE::Sync + CMD0::SYNC_CS::None).value, 0]
}

/// A queue's base register: `entries` = 2^`log2` entries at `base`.
pub fn queue_base(base: HostPhys, log2: u32) -> u64 {
    (QUEUE_BASE::ADDR.val(base.as_u64() >> 5)
        + QUEUE_BASE::LOG2SIZE.val(u64::from(log2))
        + QUEUE_BASE::RA::SET)
        .value
}

/// The next value of a queue's producer or consumer register: index and wrap bit advance together.
pub const fn queue_next(index: u32, log2: u32) -> u32 {
    (index + 1) & ((2 << log2) - 1)
}

/// Event record codes (IHI 0070, "Event records").
mod event {
    pub const F_UUT: u8 = 0x01;
    pub const C_BAD_STREAMID: u8 = 0x02;
    pub const C_BAD_STE: u8 = 0x04;
    pub const F_STREAM_DISABLED: u8 = 0x06;
    pub const F_TRANSLATION: u8 = 0x10;
    pub const F_ADDR_SIZE: u8 = 0x11;
    pub const F_ACCESS: u8 = 0x12;
    pub const F_PERMISSION: u8 = 0x13;
}

/// Decodes an event record into the arch-neutral fault.
pub fn decode_event(record: &[u64; 4]) -> DmaFault {
    let id = (record[0] & 0xff) as u8;
    let stream = (record[0] >> 32) as u32;
    let with_address = matches!(
        id,
        event::F_UUT | event::F_TRANSLATION | event::F_ADDR_SIZE | event::F_ACCESS | event::F_PERMISSION
    );
    let kind = match id {
        event::F_TRANSLATION | event::F_ACCESS => DmaFaultKind::Translation,
        event::F_PERMISSION => DmaFaultKind::Permission,
        event::F_ADDR_SIZE => DmaFaultKind::AddressSize,
        event::C_BAD_STREAMID | event::C_BAD_STE => DmaFaultKind::BadStream,
        event::F_STREAM_DISABLED => DmaFaultKind::StreamDisabled,
        other => DmaFaultKind::Other(other),
    };
    DmaFault {
        stream,
        address: if with_address { record[2] } else { 0 },
        write: with_address.then_some(record[1] & (1 << 35) == 0),
        kind,
    }
}

use crate::descriptors::{vmsa, AF, SH_INNER};
/// AP[2:1] = 0b01: read-write, at any privilege (a device's accesses are unprivileged).
const AP_RW_ANY: u64 = 0b01 << 6;
/// AP[2:1] = 0b11: read-only, at any privilege.
const AP_RO_ANY: u64 = 0b11 << 6;
/// UXN and PXN: a device never fetches instructions through this map.
const XN: u64 = 0b11 << 53;

/// Stage-1 descriptors of a partition's DMA map (VMSAv8-64, 4 KiB granule, as an SMMU CD's
/// TTB0 walks them): normal memory write-back inner shareable (attr0), devices attr1.
#[derive(Debug)]
pub struct SmmuStage1Format;

impl Format for SmmuStage1Format {
    fn block_allowed(level: usize) -> bool {
        level == 1 || level == 2
    }

    fn table(table: HostPhys) -> u64 {
        vmsa::table(table)
    }

    fn leaf(level: usize, pa: HostPhys, attrs: MapAttrs) -> u64 {
        let memattr = if attrs.device { 1 << 2 } else { SH_INNER };
        let ap = if attrs.write { AP_RW_ANY } else { AP_RO_ANY };
        vmsa::leaf(level, pa) | memattr | ap | AF | XN
    }

    fn is_valid(desc: u64) -> bool {
        vmsa::is_valid(desc)
    }

    fn next_table(level: usize, desc: u64) -> Option<HostPhys> {
        vmsa::next_table(level, desc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tantalum_core::addr::GuestPhys;
    use tantalum_core::stage2::{Geometry, Mappings, Stage2, TableMemory, ENTRIES};

    /// Tables in a map, at made-up 4 KiB-aligned addresses.
    #[derive(Default)]
    struct FakeMemory {
        tables: HashMap<u64, Vec<u64>>,
        next: u64,
    }

    impl TableMemory for FakeMemory {
        fn alloc_tables(&mut self, count: usize) -> Option<HostPhys> {
            let at = 0x1_0000_0000 + self.next * 0x1000;
            self.next += count as u64;
            self.tables.insert(at, vec![0; ENTRIES * count]);
            Some(HostPhys(at))
        }
        fn read(&self, table: HostPhys, index: usize) -> u64 {
            self.tables[&table.as_u64()][index]
        }
        fn write(&mut self, table: HostPhys, index: usize, desc: u64) {
            self.tables.get_mut(&table.as_u64()).unwrap()[index] = desc;
        }
    }

    #[test]
    fn register_offsets_follow_the_architecture() {
        assert_eq!(core::mem::offset_of!(SmmuRegisters, cr0), 0x20);
        assert_eq!(core::mem::offset_of!(SmmuRegisters, gbpa), 0x44);
        assert_eq!(core::mem::offset_of!(SmmuRegisters, irq_ctrl), 0x50);
        assert_eq!(core::mem::offset_of!(SmmuRegisters, strtab_base), 0x80);
        assert_eq!(core::mem::offset_of!(SmmuRegisters, cmdq_base), 0x90);
        assert_eq!(core::mem::offset_of!(SmmuRegisters, eventq_base), 0xa0);
        // The event queue's indices live in page 1.
        assert_eq!(core::mem::offset_of!(SmmuRegisters, eventq_prod), 0x1_00a8);
        assert_eq!(core::mem::offset_of!(SmmuRegisters, eventq_cons), 0x1_00ac);
    }

    #[test]
    fn stage1_ste_points_at_its_one_cd() {
        let ste = ste(Confinement::Stage1 { cd: HostPhys(0x4012_3440) });
        // V, Config = 0b101 (S1 translate), S1ContextPtr = CD address [51:6], one CD, linear.
        assert_eq!(ste[0], 0x4012_3440 | 0b1011);
        assert_eq!(ste[1], (1 << 2) | (1 << 4) | (3 << 6) | (1 << 44));
        assert_eq!(ste[2..], [0; 6]);
    }

    #[test]
    fn stage2_ste_walks_the_partition_map() {
        let c = Confinement::Stage2 { vmid: 3, table: HostPhys(0x4100_0000), ipa_bits: 32, start_level: 2 };
        let ste = ste(c);
        assert_eq!(ste[0], 0b1101); // V, Config = 0b110
        let w2 = ste[2];
        assert_eq!(w2 & 0xffff, 3); // VMID
        assert_eq!((w2 >> 32) & 0x3f, 32); // T0SZ = 64 - 32
        assert_eq!((w2 >> 38) & 3, 0); // SL0: level 2
        assert_eq!((w2 >> 48) & 7, 0b101); // 48-bit output
        assert_ne!(w2 & (1 << 51), 0); // AArch64 tables
        assert_ne!(w2 & (1 << 58), 0); // faults recorded
        assert_eq!(ste[3], 0x4100_0000);
        assert_eq!(sl0(1), 1);
    }

    #[test]
    fn abort_ste_is_valid_and_translates_nothing() {
        assert_eq!(ste_abort(), [1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn context_descriptor_records_and_aborts_faults() {
        let cd = context_descriptor(HostPhys(0x4020_0000), 7);
        let w0 = cd[0];
        assert_eq!(w0 & 0x3f, 25); // T0SZ: 39-bit input
        assert_eq!((w0 >> 6) & 3, 0); // 4 KiB granule
        assert_ne!(w0 & (1 << 30), 0); // EPD1: no TTB1 walks
        assert_ne!(w0 & (1 << 31), 0); // V
        assert_eq!((w0 >> 32) & 7, 0b101); // IPS 48 bits
        assert_ne!(w0 & (1 << 41), 0); // AA64
        assert_ne!(w0 & (1 << 45), 0); // R: record faults
        assert_ne!(w0 & (1 << 46), 0); // A: abort, never stall
        assert_eq!(w0 & (1 << 44), 0); // S: no stall
        assert_eq!(w0 >> 48, 7); // ASID
        assert_eq!(cd[1], 0x4020_0000);
        assert_eq!(cd[3], 0xff);
    }

    #[test]
    fn commands_encode_opcode_and_operands() {
        assert_eq!(cmd_cfgi_ste(0x108), [0x108_0000_0003, 1]);
        assert_eq!(cmd_cfgi_all(), [0x04, 31]);
        assert_eq!(cmd_tlbi_all(), [0x30, 0]);
        assert_eq!(cmd_sync(), [0x46, 0]);
    }

    #[test]
    fn queues_wrap_with_their_wrap_bit() {
        assert_eq!(queue_next(0, 6), 1);
        assert_eq!(queue_next(63, 6), 64); // index 0, wrap set
        assert_eq!(queue_next(127, 6), 0);
        assert_eq!(queue_base(HostPhys(0x4010_0000), 6), 0x4010_0000 | 6 | (1 << 62));
    }

    #[test]
    fn events_decode_into_faults() {
        // F_TRANSLATION, stream 8, a write (RnW clear) at 0x43000000.
        let write = decode_event(&[0x8_0000_0010, 0, 0x4300_0000, 0]);
        assert_eq!(
            write,
            DmaFault { stream: 8, address: 0x4300_0000, write: Some(true), kind: DmaFaultKind::Translation }
        );
        let read = decode_event(&[0x8_0000_0013, 1 << 35, 0x4000_0000, 0]);
        assert_eq!((read.write, read.kind), (Some(false), DmaFaultKind::Permission));
        let bad = decode_event(&[0x100_0000_0002, 0, 0xdead, 0]);
        assert_eq!((bad.stream, bad.address, bad.write, bad.kind), (0x100, 0, None, DmaFaultKind::BadStream));
        assert_eq!(decode_event(&[0x21, 0, 0, 0]).kind, DmaFaultKind::Other(0x21));
    }

    #[test]
    fn the_dma_map_translates_only_the_partition_memory() {
        let mut mem = FakeMemory::default();
        let geometry = Geometry { start_level: 1, root_tables: 1, ipa_bits: 39 };
        let map = Stage2::new(&mut mem, geometry, Mappings::Blocks).unwrap();
        // A partition whose 16 MiB at host 0x43000000 it sees at guest 0x40000000.
        map.map::<SmmuStage1Format>(
            &mut mem,
            GuestPhys(0x4000_0000),
            HostPhys(0x4300_0000),
            0x100_0000,
            MapAttrs::RAM,
        )
        .unwrap();
        let (pa, _) = map.translate::<SmmuStage1Format>(&mem, GuestPhys(0x4000_1234)).unwrap();
        assert_eq!(pa, HostPhys(0x4300_1234));
        assert!(map.translate::<SmmuStage1Format>(&mem, GuestPhys(0x4100_0000)).is_none());
        assert!(map.translate::<SmmuStage1Format>(&mem, GuestPhys(0x4300_0000)).is_none());
        // A 2 MiB block: valid, not a table, AF, inner shareable, RW at any privilege, never executable.
        let leaf = SmmuStage1Format::leaf(2, HostPhys(0x4320_0000), MapAttrs::RAM);
        assert_eq!(leaf, 0x4320_0000 | 1 | (3 << 8) | (1 << 6) | (1 << 10) | (3 << 53));
        let read_only = MapAttrs { write: false, ..MapAttrs::RAM };
        assert_eq!(SmmuStage1Format::leaf(3, HostPhys(0x1000), read_only) & (3 << 6), 3 << 6);
    }
}
