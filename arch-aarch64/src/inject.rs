//! Exceptions the hypervisor makes a guest take at EL1 (the values come from
//! `tantalum_aarch64::abort`, tested on the host).

use aarch64_cpu::registers::{
    ELR_EL1, ESR_EL1, FAR_EL1, ID_AA64MMFR1_EL1, ID_AA64PFR1_EL1, SCTLR_EL1, SPSR_EL1, VBAR_EL1,
};
use tantalum_aarch64::abort::{self, Features};
use tantalum_aarch64::esr::{ec, Syndrome};
use tock_registers::interfaces::{Readable, Writeable};

use crate::boot::GuestFrame;

/// Makes the guest take a synchronous external abort for the trapped access `trap`, as if the
/// bus had answered it with an error: sets its ESR_EL1, FAR_EL1, ELR_EL1 and SPSR_EL1 (the EL1
/// registers on this CPU are the guest's: one vCPU per CPU) and sends it to its vector.
///
/// Returns false, changing nothing, when the guest could not take it: the fetch that faulted is
/// the vector itself (no vector table in its memory), which would fault again for ever.
pub fn external_abort(trap: &Syndrome, frame: &mut GuestFrame) -> bool {
    let cpu = Features {
        pan: ID_AA64MMFR1_EL1.read(ID_AA64MMFR1_EL1::PAN) != 0,
        // ID_AA64PFR1_EL1.SSBS, bits 7:4 (aarch64-cpu names no field for it).
        ssbs: (ID_AA64PFR1_EL1.get() >> 4) & 0xf != 0,
    };
    let i = abort::external_abort(trap, frame.elr, frame.spsr, VBAR_EL1.get(), SCTLR_EL1.get(), cpu);
    if trap.class() == ec::IABT_LOWER && frame.elr == i.pc {
        return false;
    }
    ESR_EL1.set(i.esr);
    FAR_EL1.set(i.far);
    ELR_EL1.set(i.elr);
    SPSR_EL1.set(i.spsr);
    frame.elr = i.pc;
    frame.spsr = i.pstate;
    true
}
