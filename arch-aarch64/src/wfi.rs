//! Whether a guest was stopped just after a WFI (the guest's own, not trapped: `HCR_EL2.TWI` is
//! clear). A guest that sleeps with IRQs masked and unmasks once woken (Linux's idle loop, the
//! SDK's `wait_unless`) takes its interrupt at once: nothing to re-sample before it does.

use core::arch::asm;

use tantalum_core::addr::GuestPhys;
use tantalum_core::config::PartitionConfig;

/// `WFI`.
const WFI: u32 = 0xd503_207f;

/// Whether the instruction before `elr` (a guest virtual address) is a WFI. False when its
/// page is not mapped at stage 1 or lies outside the partition's memory. Inlined: the interrupt
/// fast path asks at every delivery to a guest that sleeps with IRQs masked.
#[inline(always)]
pub fn follows_wfi(partition: &PartitionConfig, elr: u64) -> bool {
    let Some(va) = elr.checked_sub(4) else { return false };
    let (saved, par): (u64, u64);
    // SAFETY: a stage-1 translation of the guest's EL1&0 regime (its registers are live on this
    // CPU); PAR_EL1 is the guest's and is put back.
    unsafe {
        asm!(
            "mrs {saved}, par_el1",
            "at s1e1r, {va}",
            "isb",
            "mrs {par}, par_el1",
            "msr par_el1, {saved}",
            saved = out(reg) saved,
            par = out(reg) par,
            va = in(reg) va,
            options(nostack)
        );
    }
    let _ = saved;
    if par & 1 != 0 {
        return false;
    }
    let ipa = (par & 0x0000_ffff_ffff_f000) | (va & 0xfff);
    // The first region first: the common case, without the loop's set-up.
    let first = partition.memory.first().and_then(|r| r.translate(GuestPhys(ipa), 4));
    let Some(host) = first.or_else(|| partition.translate(GuestPhys(ipa), 4)) else { return false };
    // SAFETY: `host` lies inside the partition's memory (translate checked the whole word),
    // which the hypervisor's map covers as normal memory; reading it has no side effect.
    let insn = unsafe { core::ptr::read_volatile(host.as_u64() as *const u32) };
    insn == WFI
}
