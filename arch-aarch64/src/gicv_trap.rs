//! A GICv2 partition's CPU interface page withdrawn from stage 2 while a vCPU needs to see its
//! guest's accesses to it (issue 13): a GICv2's virtual CPU interface (GICV, mapped where the
//! guest expects its GICC) has no trap like a GICv3's `ICH_HCR_EL2.TALL1`, yet a
//! hardware-linked level interrupt loaded while the guest cannot take it (IRQs masked, or its
//! priority mask hiding it) must be re-sampled before the guest acknowledges it or lowers the
//! mask. While any vCPU of the partition asks for it, the page with `GICC_CTLR`, `PMR`, `IAR` and
//! `EOIR` is unmapped; every access there faults and the hypervisor carries it out on the
//! vCPU's own GICV after re-sampling (`gic::cpu_interface_access`). The stage 2 is the
//! partition's, shared by its vCPUs: another vCPU's accesses trap meanwhile too and are carried
//! out the same way (on its own CPU's GICV), which changes nothing for it but their cost.

use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;
use tantalum_aarch64::descriptors::Stage2Format;
use tantalum_core::addr::{GuestPhys, HostPhys};
use tantalum_core::config::SystemConfig;
use tantalum_core::stage2::{Stage2, TableMemory};

use crate::memory::HeapTables;

/// The page's stage-2 descriptor and who wants it withdrawn.
pub struct GicvTrap {
    /// The guest-physical address of the page.
    ipa: GuestPhys,
    /// Its descriptor: the table and index that hold it, and its mapped value.
    table: HostPhys,
    index: usize,
    mapped: u64,
    /// Bit `n`: vCPU `n` wants the page withdrawn. Changed under `lock` (the descriptor follows
    /// it); read without it to skip the lock when nothing changes.
    wanted: AtomicU32,
    lock: Mutex<()>,
}

impl GicvTrap {
    /// For a partition on a GICv2 board whose stage 2 `stage2` maps its CPU interface with a
    /// page descriptor; `None` otherwise (a GICv3 board).
    pub fn new(config: &SystemConfig, stage2: &Stage2) -> Option<GicvTrap> {
        let gicc = GuestPhys(config.board.gic.as_ref()?.v2?.cpu.start.as_u64());
        let (table, index) = stage2.page_entry::<Stage2Format>(&HeapTables, gicc)?;
        let mapped = HeapTables.read(table, index);
        Some(GicvTrap { ipa: gicc, table, index, mapped, wanted: AtomicU32::new(0), lock: Mutex::new(()) })
    }

    /// vCPU `vcpu` needs its guest's next CPU interface access to trap: withdraws the page if
    /// it was mapped. On a CPU running a vCPU of the partition (its VMID is current), at EL2.
    pub fn arm(&self, vcpu: usize) {
        let bit = 1u32 << (vcpu % 32);
        if self.wanted.load(Ordering::Acquire) & bit != 0 {
            return;
        }
        let _guard = self.lock.lock();
        if self.wanted.fetch_or(bit, Ordering::AcqRel) == 0 {
            HeapTables.write(self.table, self.index, 0);
            // SAFETY: invalidating TLB entries only makes the MMU walk the tables again; the
            // current VMID is this partition's (the caller runs one of its vCPUs).
            unsafe { crate::el2::invalidate_guest_page(self.ipa) };
        }
    }

    /// vCPU `vcpu` needs no trap any more (nothing to re-sample, or it left the guest): the page
    /// is mapped again once no vCPU wants it withdrawn.
    pub fn release(&self, vcpu: usize) {
        let bit = 1u32 << (vcpu % 32);
        if self.wanted.load(Ordering::Acquire) & bit == 0 {
            return;
        }
        let _guard = self.lock.lock();
        if self.wanted.fetch_and(!bit, Ordering::AcqRel) == bit {
            // A fault is never cached in a TLB: the walks see the descriptor once it is written.
            HeapTables.write(self.table, self.index, self.mapped);
            aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
            aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
        }
    }
}
