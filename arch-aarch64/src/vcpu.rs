//! Running a partition's vCPU on this CPU and acting on its exits.

use core::sync::atomic::Ordering;

use aarch64_cpu::registers::{ESR_EL2, FAR_EL2, HPFAR_EL2, TPIDR_EL2};
use tantalum_aarch64::esr::{self, Syndrome};
use tantalum_aarch64::regs::SPSR_EL1H_MASKED;
use tantalum_core::addr::HostPhys;
use tantalum_core::config::PartitionId;
use tantalum_core::exit::Exit;
use tantalum_core::partition::{handle_exit, Outcome, Report, Services};
use tantalum_core::vgic::{self, Frame};
use tock_registers::interfaces::{Readable, Writeable};

use crate::boot::{self, GuestFrame};
use crate::console::{info, PartitionSink};
use crate::system::{self, Status, System};
use crate::{el2, firmware, gic, memory};

/// Starts (or restarts) partition `id`'s boot vCPU on board CPU `cpu`. Never returns: the CPU
/// runs the guest from now on, and comes back only through the exception vectors.
pub fn start(cpu: usize, id: usize) -> ! {
    let system = system::get();
    let p = &system.partitions[id];
    TPIDR_EL2.set(((id as u64) << 32) | cpu as u64);
    // SAFETY: the stage-2 root was built for this partition by System::new and lives as long as
    // the system; no guest runs on this CPU while we configure it.
    unsafe { el2::configure_vcpu(p.vmid, system::stage2_root(p).as_u64(), 0) };
    el2::reset_el1_state();
    gic::reset_virtual_interface();
    p.irq_hint.store(true, Ordering::Release);
    let mut frame = GuestFrame::default();
    frame.x[0] = p.config.guest_dtb_address().map_or(0, |a| a.as_u64());
    frame.elr = p.config.entry.as_u64();
    frame.spsr = SPSR_EL1H_MASKED;
    let top = system.stack_tops[cpu].load(Ordering::Acquire) as u64;
    // SAFETY: `top` is this CPU's stack top (set before the CPU was started); nothing on the
    // stack is needed any more: we hold no lock and no borrow outlives this call.
    unsafe { boot::enter(&frame, top) }
}

/// Parks this CPU for good (its partition stopped, or it has none).
pub fn park() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}

/// Stops partition `id`; powers the machine off if it was the last one running.
pub fn stop(system: &System, id: usize) {
    if system.mark_stopped(id) == 0 {
        info!("all partitions have stopped: powering off");
        firmware::system_off();
    }
}

struct CpuServices<'a> {
    system: &'a System,
    id: usize,
    cpu: usize,
}

impl Services for CpuServices<'_> {
    fn read_memory(&mut self, pa: HostPhys, buf: &mut [u8]) {
        // SAFETY: core checked that the range is the calling partition's own memory, which
        // lies inside the EL2 map (checked at load).
        unsafe { memory::copy_from(pa, buf) };
    }

    fn console_write(&mut self, bytes: &[u8]) {
        let p = &self.system.partitions[self.id];
        p.console.lock().push(bytes, &p.config.name, &mut PartitionSink);
    }

    fn wait(&mut self, timeout_ns: u64) {
        let (now, freq) = el2::counter();
        let ticks = (u128::from(timeout_ns) * u128::from(freq) / 1_000_000_000) as u64;
        let deadline = now.saturating_add(ticks);
        let p = &self.system.partitions[self.id];
        // A doorbell ends the wait: `notify` sets the hint and sends an event (SEV); the event
        // stream (CNTHCTL_EL2.EVNTEN) wakes WFE regularly to check the deadline.
        while el2::counter().0 < deadline {
            if p.irq_hint.load(Ordering::Acquire) && p.vgic.lock().has_deliverable(0) {
                break;
            }
            aarch64_cpu::asm::wfe();
        }
        gic::drain_physical();
    }

    fn gic_access(&mut self, frame: Frame, access: vgic::Access) -> u64 {
        let p = &self.system.partitions[self.id];
        let value = p.vgic.lock().access(frame, access);
        if access.write.is_some() {
            p.irq_hint.store(true, Ordering::Release);
        }
        value
    }

    fn notify(&mut self, target: PartitionId, intid: u32) {
        let Some(t) = self.system.partitions.get(usize::from(target)) else { return };
        if !t.vgic.lock().set_pending(0, intid) {
            return;
        }
        t.irq_hint.store(true, Ordering::Release);
        let Some(&cpu) = t.config.cpus.first() else { return };
        if cpu != self.cpu && t.status() == Status::Running {
            gic::kick(self.system.config.board.cpus[cpu].hwid);
            aarch64_cpu::asm::sev();
        }
    }
}

/// Kinds of guest exit, as the vectors pass them.
mod kind {
    pub const SYNC: u64 = 0;
    pub const IRQ: u64 = 1;
    pub const FIQ: u64 = 2;
}

/// Called by the vectors for every exit from a guest, with its saved registers.
#[unsafe(no_mangle)]
extern "C" fn guest_exit(frame: &mut GuestFrame, kind: u64) {
    let tpidr = TPIDR_EL2.get();
    let (cpu, id) = ((tpidr & 0xffff_ffff) as usize, (tpidr >> 32) as usize);
    let system = system::get();
    let syndrome = Syndrome { esr: ESR_EL2.get(), far: FAR_EL2.get(), hpfar: HPFAR_EL2.get() };
    let exit = match kind {
        kind::SYNC => esr::decode(&syndrome, &frame.x),
        kind::IRQ | kind::FIQ => {
            gic::drain_physical();
            Exit::Interrupt
        }
        _ => Exit::Unhandled { syndrome: syndrome.esr },
    };
    let p = &system.partitions[id];
    let state = *p.state.lock();
    let mut services = CpuServices { system, id, cpu };
    let outcome = handle_exit(&system.config, id as PartitionId, &state, exit, &mut services);
    match outcome {
        Outcome::Return { values, count } => {
            frame.x[..count].copy_from_slice(&values[..count]);
            if kind == kind::SYNC && esr::needs_pc_advance(&syndrome) {
                frame.elr += 4;
            }
            load_interrupts(p, kind == kind::IRQ);
        }
        Outcome::Emulated { load } => {
            if let Some((register, value)) = load.filter(|&(r, _)| r < 31) {
                frame.x[register as usize] = esr::extend_load(&syndrome, value);
            }
            frame.elr += 4;
            load_interrupts(p, false);
        }
        Outcome::Stop(_) => {
            report(system, id, &outcome, frame.elr);
            stop(system, id);
            park();
        }
        Outcome::Restart(_) => {
            report(system, id, &outcome, frame.elr);
            p.state.lock().restarts += 1;
            p.vgic.lock().reset();
            match system.load(id) {
                Ok(()) => start(cpu, id),
                Err(e) => {
                    info!("partition '{}': cannot restart: {e}", p.config.name);
                    stop(system, id);
                    park();
                }
            }
        }
        Outcome::HaltSystem(_) => {
            report(system, id, &outcome, frame.elr);
            firmware::system_off();
        }
    }
}

/// Loads ready virtual interrupts into this CPU's list registers when something may have
/// changed (the hint, or a physical interrupt that may have been a kick or maintenance).
fn load_interrupts(p: &system::Partition, interrupted: bool) {
    // A plain load first: the common case (nothing new) costs no atomic read-modify-write.
    let hinted = p.irq_hint.load(Ordering::Acquire) && p.irq_hint.swap(false, Ordering::AcqRel);
    if hinted || interrupted {
        let mut vgic = p.vgic.lock();
        gic::load_list_registers(&mut vgic, 0);
        if vgic.has_deliverable(0) {
            p.irq_hint.store(true, Ordering::Release);
        }
    }
}

fn report(system: &System, id: usize, outcome: &Outcome, pc: u64) {
    let p = &system.partitions[id];
    let mut console = p.console.lock();
    if !console.is_empty() {
        console.flush(&p.config.name, &mut PartitionSink);
    }
    drop(console);
    info!("{}", Report { partition: &p.config.name, outcome, pc });
}
