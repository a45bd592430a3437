//! Whether a guest was stopped just after a WFI (the guest's own, not trapped: `HCR_EL2.TWI` is
//! clear). A guest that sleeps with IRQs masked and unmasks once woken (Linux's idle loop, the
//! SDK's `wait_unless`) takes its interrupt at once: nothing to re-sample before it does.

use core::arch::asm;

/// `WFI`.
const WFI: u32 = 0xd503_207f;

/// `PAR_EL1.F`: the translation failed.
const PAR_FAULT: u64 = 1;
/// `PAR_EL1.PA` (bits 47:12).
const PAR_PA: u64 = 0x0000_ffff_ffff_f000;
/// `PAR_EL1.ATTR`'s outer nibble (bits 63:60): zero for every Device memory type, non-zero for
/// Normal memory.
const PAR_ATTR_NORMAL: u64 = 0xf << 60;

/// Whether the instruction before `elr` (a guest virtual address) is a WFI. False when that
/// word is not 4-byte aligned (an AArch32 guest's; its WFI has other encodings anyway), or not
/// mapped at both stages as Normal memory. Inlined: the interrupt fast path asks at every
/// delivery to a guest that sleeps with IRQs masked.
///
/// One translation through both stages (`AT S12E1R`) gives the host-physical address: stage 2
/// maps Normal memory only for the partition's RAM and its channels (`system::build_stage2`;
/// devices and the GICv2 CPU interface are Device, which makes the combined attributes Device
/// whatever stage 1 says), and the hypervisor's own map covers both, identity-mapped
/// (`el2map`). So the word is read only from the partition's own memory, and nothing is looked
/// up in its configuration.
#[inline(always)]
pub fn follows_wfi(elr: u64) -> bool {
    let Some(va) = elr.checked_sub(4) else { return false };
    if va & 3 != 0 {
        return false;
    }
    let (saved, par): (u64, u64);
    // SAFETY: a stage 1 and 2 translation of the guest's EL1&0 regime (its registers and
    // VTTBR_EL2 are live on this CPU), which reports faults in PAR_EL1 rather than taking them;
    // PAR_EL1 is the guest's and is put back.
    unsafe {
        asm!(
            "mrs {saved}, par_el1",
            "at s12e1r, {va}",
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
    if par & PAR_FAULT != 0 || par & PAR_ATTR_NORMAL == 0 {
        return false;
    }
    let host = (par & PAR_PA) | (va & 0xfff);
    // SAFETY: `host` is an aligned word of Normal memory that stage 2 maps for this partition:
    // its RAM or a channel's, which the hypervisor's map covers, identity-mapped (see above);
    // reading it has no side effect.
    let insn = unsafe { core::ptr::read_volatile(host as *const u32) };
    insn == WFI
}
