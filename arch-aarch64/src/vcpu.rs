//! Running partitions' vCPUs on this CPU and acting on their exits.
//!
//! Every CPU that belongs to a partition runs [`cpu_main`]: it waits for its vCPU to be asked to
//! start (the partition's boot for vCPU 0, PSCI CPU_ON for the others), enters the guest, and
//! from then on comes back only through the exception vectors ([`guest_exit`]). A vCPU that is
//! turned off, or whose partition stops or restarts, returns to the wait.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use aarch64_cpu::registers::{ELR_EL2, ESR_EL2, FAR_EL2, HPFAR_EL2, SPSR_EL2, TPIDR_EL2};
use tantalum_aarch64::built::BUILT;
use tantalum_aarch64::esr::{self, Caller, Syndrome};
use tantalum_aarch64::regs::SPSR_EL1H_MASKED;
use tantalum_core::addr::{GuestPhys, HostPhys};
use tantalum_core::config::{PartitionId, SystemConfig, VirtioDevice, MAX_CPUS, VIRTUAL_UART_SPI};
use tantalum_core::console::input::{self, Announce, Focus, Help, Key};
use tantalum_core::exit::{Exit, MmioAccess, VcpuSet};
use tantalum_core::hypercall::Status as PsciStatus;
use tantalum_core::partition::power::Power;
use tantalum_core::partition::{self, handle_exit, Fault, Outcome, PartitionState, Report, Services};
use tantalum_core::vgic::{self, Frame, Latched, VirtualGic};
use tantalum_core::virtio::{self, Owner};
use tantalum_core::vuart::VirtualUart;
use tock_registers::interfaces::{Readable, Writeable};

use crate::boot::{self, GuestFrame};
use crate::console::{self, info, PartitionSink};
use crate::gic::CpuInterface;
use crate::system::{self, Partition, Status, System};
use crate::{el2, firmware, gic, inject, listed_sync, memory};

/// The partition generation each CPU's vCPU entered with.
static ENTERED_GENERATION: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

/// Where this CPU is: board CPU, partition, vCPU (kept in this CPU's [`Running`] record while a
/// guest runs).
#[derive(Clone, Copy)]
pub(crate) struct Here {
    pub cpu: usize,
    pub id: usize,
    pub vcpu: usize,
}

impl Here {
    /// As packed in the `here` field of [`Running`].
    fn packed(self) -> u64 {
        ((self.id as u64) << 32) | ((self.vcpu as u64) << 16) | self.cpu as u64
    }
    /// Where the vCPU that trapped on this CPU is (only on its exits: [`enter`] set the record).
    #[inline(always)]
    pub fn load() -> Self {
        let t = Running::here().here.load(Ordering::Relaxed);
        Here { cpu: (t & 0xffff) as usize, vcpu: ((t >> 16) & 0xffff) as usize, id: (t >> 32) as usize }
    }
}

/// The main loop of board CPU `cpu` once the system is up: loads its partition with the
/// partition's other CPUs, then runs its vCPU. Never returns.
pub fn cpu_main(cpu: usize) -> ! {
    let system = system::get();
    let Some((id, vcpu)) = system.vcpu_on_cpu(cpu) else { park() };
    let here = Here { cpu, id, vcpu };
    if vcpu == 0 && system.partitions[id].status() == Status::Loading {
        boot_partition(here);
    }
    wait_for_start(here)
}

/// On vCPU 0's CPU: loads the partition, waits for the partitions that boot before it, and
/// asks vCPU 0 to start (or stops the partition if its image is refused).
fn boot_partition(here: Here) {
    let system = system::get();
    let p = &system.partitions[here.id];
    let c = &p.config;
    let (start, freq) = el2::counter();
    if let Err(e) = system.lead_load(here.id) {
        info!("partition '{}': {e}", c.name);
        stop(system, here.id, here.cpu);
        return;
    }
    let load_ms = (el2::counter().0 - start) * 1000 / freq.max(1);
    wait_for_earlier_partitions(system, here.id);
    let mib = c.memory.iter().map(|r| r.size).sum::<u64>() >> 20;
    info!(
        "partition '{}': {} CPU(s), {} MiB at {}, image {} bytes verified, loaded in {} ms, on-fault {}",
        c.name,
        c.cpus.len(),
        mib,
        c.memory[0].host,
        c.image.map_or(0, |b| b.size),
        load_ms,
        c.on_fault.name()
    );
    // After the line: a partition waiting on this one's boot order prints its own after it.
    if !system.mark_running(here.id) {
        return; // Stopped meanwhile (a CPU of it failed to power on), reported then.
    }
    let dtb = p.guest_dtb;
    let _ = p.vcpus[0].request_start(c.entry.as_u64(), dtb);
}

/// Sleeps until no partition that partition `id` waits for (a lower boot order) is still
/// loading.
fn wait_for_earlier_partitions(system: &System, id: usize) {
    let earlier_loading = || {
        (0..system.partitions.len()).any(|other| {
            system.config.waits_for(id as PartitionId, other as PartitionId)
                && system.partitions[other].status() == Status::Loading
        })
    };
    let (_, freq) = el2::counter();
    while earlier_loading() {
        // WFI, woken by the EL2 timer every millisecond (the loader does not kick).
        el2::arm_wakeup(el2::counter().0 + freq / 1000);
        aarch64_cpu::asm::wfi();
    }
    el2::disarm_wakeup();
}

/// Parks this CPU for good (it runs no partition).
pub fn park() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}

/// Waits, in WFI, until this CPU's vCPU is asked to start, then enters it; meanwhile helps
/// with any load of its partition that another CPU leads (at boot and at restarts).
fn wait_for_start(here: Here) -> ! {
    let system = system::get();
    let p = &system.partitions[here.id];
    loop {
        if p.load.is_open() {
            system.help_load(here.id);
        }
        if p.status() == Status::Running {
            if let Some((entry, context)) = p.vcpus[here.vcpu].take_start() {
                enter(here, entry, context);
            }
        }
        // WFI, not WFE: an emulator runs a spinning WFE loop flat out. Kicks (CPU_ON, restart)
        // are interrupts, which end a WFI even while masked at EL2.
        aarch64_cpu::asm::wfi();
        drain_physical(system, here.cpu, None);
    }
}

/// Enters the guest at `entry` with x0 = `context`, from a clean EL1 state.
fn enter(here: Here, entry: u64, context: u64) -> ! {
    let system = system::get();
    let p = &system.partitions[here.id];
    let generation = p.generation.load(Ordering::Acquire);
    ENTERED_GENERATION[here.cpu].store(generation, Ordering::Release);
    FAST_PATH[here.cpu].set(system, p, here, generation);
    if p.status() != Status::Running {
        // A restart or a stop began after this vCPU took its start: it belongs to the old run.
        leave(here);
    }
    let benchmark_pmu = system.config.hypervisor.benchmark_pmu;
    // SAFETY: the stage-2 root was built for this partition by System::new and lives as long as
    // the system; no guest runs on this CPU while we configure it.
    unsafe { el2::configure_vcpu(p.vmid, &p.stage2, here.vcpu as u64, benchmark_pmu) };
    el2::reset_el1_state();
    el2::reset_fp_state();
    el2::reset_debug_state();
    if !benchmark_pmu {
        // A fresh PMU: nothing the previous run (or the boot code's counter) left behind.
        crate::pmu::reset();
    }
    gic::reset_virtual_interface();
    if let Some(trap) = &p.gicv_trap {
        trap.release(here.vcpu);
    }
    p.vgic.lock().end_watches(here.vcpu);
    p.irq_hints[here.vcpu].store(true, Ordering::Release);
    let mut frame = GuestFrame::default();
    frame.x[0] = context;
    frame.elr = entry;
    frame.spsr = SPSR_EL1H_MASKED;
    let top = system.stack_tops[here.cpu].load(Ordering::Acquire) as u64;
    // SAFETY: `top` is this CPU's stack top (set before the CPU was started); nothing on the
    // stack is needed any more: we hold no lock and no borrow outlives this call.
    unsafe { boot::enter(&frame, top) }
}

/// Ends the physical interrupts this CPU acknowledged for its vCPU that are still pending in
/// the virtual GIC (not yet in a list register, so no guest EOI will end them): a vCPU leaving
/// the guest would otherwise leave them active for good, and a restarted partition would never
/// see its timer or its device again. SPIs are taken on the CPU of the vCPU they are routed to.
fn release_hardware_interrupts(p: &Partition, here: Here) {
    for intid in p.vgic.lock().take_hw_pending(here.vcpu) {
        gic::deactivate(intid);
    }
}

/// Leaves the guest on this CPU for good: its vCPU is off; the CPU waits to be started again.
fn leave(here: Here) -> ! {
    let p = &system::get().partitions[here.id];
    release_hardware_interrupts(p, here);
    gic::reset_virtual_interface();
    if let Some(trap) = &p.gicv_trap {
        trap.release(here.vcpu);
    }
    el2::reset_el1_state();
    p.vcpus[here.vcpu].set_off();
    wait_for_start(here)
}

/// Wakes the CPU of `vcpu` of partition `p` (unless it is this one) so that it looks at its
/// interrupts or its generation.
pub(crate) fn kick_vcpu(p: &Partition, vcpu: usize, from_cpu: usize) {
    if let Some(place) = p.placement.get(vcpu).filter(|place| place.cpu != from_cpu) {
        gic::kick(place.hwid);
    }
    aarch64_cpu::asm::sev();
}

/// Marks partition `id` stopped and sends its other vCPUs out of the guest; powers the machine
/// off if it was the last partition running.
pub fn stop(system: &System, id: usize, from_cpu: usize) {
    let p = &system.partitions[id];
    crate::smmu::disable_partition(id);
    p.generation.fetch_add(1, Ordering::AcqRel);
    system.reset_virtio(id);
    crate::disks::reset(system, id, from_cpu, false);
    let remaining = system.mark_stopped(id);
    for vcpu in 0..p.vcpus.len() {
        kick_vcpu(p, vcpu, from_cpu);
    }
    // Console input follows: a stopped partition takes none.
    let focus = Focus::from_word(system.input_focus.load(Ordering::Acquire));
    if focus == Focus::Partition(id) && remaining > 0 {
        let to = focus.next(&input_candidates(system));
        system.input_focus.store(to.to_word(), Ordering::Release);
        give_terminal(system, to, true);
    }
    if remaining == 0 {
        info!("all partitions have stopped: powering off");
        firmware::system_off();
    }
}

/// Restarts partition `id` from its image: every vCPU leaves the guest, memory is reloaded and
/// vCPU 0 starts again on its CPU. Runs on the CPU of vCPU `here.vcpu`, which then waits.
///
/// One restart at a time: a vCPU that asks while another restart (or a stop) is under way just
/// leaves. Starts asked for (PSCI CPU_ON) and not yet taken are withdrawn, so no vCPU of the old
/// run enters the reloaded memory; the partition's virtual GIC, virtual UART and every vCPU's
/// EL1, FP, PMU and timer state start from reset (`enter`).
fn restart(here: Here) -> ! {
    let system = system::get();
    let p = &system.partitions[here.id];
    if !system.begin_restart(here.id) {
        leave(here);
    }
    p.generation.fetch_add(1, Ordering::AcqRel);
    // Its devices' DMA is refused while it reloads (it may still be running a request).
    crate::smmu::quiesce(here.id);
    p.vcpus[here.vcpu].set_off();
    for vcpu in (0..p.vcpus.len()).filter(|&v| v != here.vcpu) {
        p.vcpus[vcpu].cancel_start();
        kick_vcpu(p, vcpu, here.cpu);
    }
    // The others leave at their next exit, which the kick forces; give them up to a second.
    let (start, freq) = el2::counter();
    while p.vcpus.iter().any(|v| v.power() == Power::On) && el2::counter().0 - start < freq {
        core::hint::spin_loop();
    }
    release_hardware_interrupts(p, here);
    gic::reset_virtual_interface();
    if let Some(trap) = &p.gicv_trap {
        trap.release(here.vcpu);
    }
    el2::reset_el1_state();
    if let Some(stuck) = p.vcpus.iter().position(|v| v.power() == Power::On) {
        info!("partition '{}': cannot restart: vCPU {stuck} did not leave the guest", p.config.name);
        stop(system, here.id, here.cpu);
        wait_for_start(here);
    }
    // No vCPU of it runs: its PCI devices stop mastering DMA, so that a request of the run
    // that ended is dropped, not carried out into the next (docs/security.md).
    let stopped = crate::pci::stop_bus_masters(&p.pci_buses);
    if stopped > 0 {
        info!("partition '{}': bus mastering of {stopped} PCI function(s) stopped", p.config.name);
    }
    // Every vCPU is off: a start asked for meanwhile (a CPU_ON handled just before its vCPU
    // left) belongs to the old run.
    for slot in &p.vcpus {
        slot.cancel_start();
    }
    p.restarts.fetch_add(1, Ordering::AcqRel);
    p.vgic.lock().reset();
    // Its devices' interrupts go back to vCPU 0's CPU, as its fresh virtual GIC routes them.
    if let Some(hwid) = p.hwid_of(0) {
        for &intid in &p.device_spis {
            gic::retarget_spi(intid, hwid);
        }
    }
    {
        let mut uart = p.vuart.lock();
        *uart = VirtualUart::new();
        p.vuart_mirror.keep(&uart);
    }
    system.reset_virtio(here.id);
    crate::disks::reset(system, here.id, here.cpu, true);
    let dtb = p.guest_dtb;
    // The partition's other CPUs, off now, join the reload from their wait.
    p.load.reset();
    p.load.open();
    for vcpu in (0..p.vcpus.len()).filter(|&v| v != here.vcpu) {
        kick_vcpu(p, vcpu, here.cpu);
    }
    let (began, freq) = el2::counter();
    match system.lead_load(here.id) {
        Ok(()) => {
            let ms = (el2::counter().0 - began) * 1000 / freq.max(1);
            info!("partition '{}': reloaded in {ms} ms", p.config.name);
            crate::smmu::resume(here.id);
            // Unless it was stopped meanwhile, which it then stays.
            if system.mark_running(here.id) && p.vcpus[0].request_start(p.config.entry.as_u64(), dtb).is_ok()
            {
                kick_vcpu(p, 0, here.cpu);
            }
        }
        Err(e) => {
            info!("partition '{}': cannot restart: {e}", p.config.name);
            stop(system, here.id, here.cpu);
        }
    }
    // Not `leave`: this vCPU is already off, and vCPU 0 (perhaps this very CPU's) may already
    // be asked to start.
    wait_for_start(here)
}

struct CpuServices<'a> {
    system: &'a System,
    here: Here,
}

impl CpuServices<'_> {
    fn partition(&self) -> &Partition {
        &self.system.partitions[self.here.id]
    }

    /// [`Services::gic_access`] for an access that reaches other vCPUs' list registers: their
    /// CPUs publish them first and write back what the access changed (`listed_sync`).
    fn gic_access_across(&mut self, frame: Frame, access: vgic::Access) -> u64 {
        let (p, vcpu, cpu) = (self.partition(), self.here.vcpu, self.here.cpu);
        let mut own = [vgic::Listed::default(); 16];
        let n = gic::read_listed(vcpu as u8, &mut own);
        let mut listed = listed_sync::AllListed::from_slice(&own[..n]).unwrap_or_default();
        listed_sync::gather(p, vcpu, cpu, &mut listed);
        let mut vgic = p.vgic.lock();
        let was = listed.clone();
        let value = vgic.access_listed(vcpu, frame, access, &mut listed);
        if access.write.is_none() {
            return value;
        }
        gic::write_listed(&listed[..n]);
        self.wake_after_write(vgic);
        // Not under the virtual GIC's lock: the other CPUs may need it before they answer.
        listed_sync::hand_back(p, vcpu, cpu, &was[n..], &listed[n..]);
        value
    }

    /// After a write to the distributor's ICFGR: a passed-through SPI's physical trigger follows
    /// the guest's configuration (a level line left high after an edge is not taken again).
    fn propagate_trigger(&self, vgic: &VirtualGic, frame: Frame, access: vgic::Access) {
        let written = vgic.trigger_written(frame, access);
        for &intid in self.partition().device_spis.iter().filter(|i| written.contains(i)) {
            gic::set_trigger(intid, vgic.is_edge(self.here.vcpu, intid));
        }
    }

    /// After a write to the distributor's IROUTER (GICv2: ITARGETSR): a passed-through SPI's
    /// physical interrupt goes to the CPU of the vCPU the guest routed it to.
    fn propagate_route(&self, vgic: &VirtualGic, frame: Frame, access: vgic::Access) {
        let written = vgic.routing_written(frame, access);
        if written.is_empty() {
            return;
        }
        let p = self.partition();
        for &intid in p.device_spis.iter().filter(|i| written.contains(i)) {
            if let Some(hwid) = p.hwid_of(vgic.spi_target(intid)) {
                gic::retarget_spi(intid, hwid);
            }
        }
    }

    /// After a guest's GIC write, which may have made an interrupt deliverable to another vCPU
    /// (an SPI enabled or routed to it, a pending bit set): wakes it, or it sleeps on in WFI with
    /// it pending.
    fn wake_after_write(&self, vgic: spin::MutexGuard<'_, VirtualGic>) {
        let p = self.partition();
        let others: heapless::Vec<usize, MAX_CPUS> =
            (0..p.vcpus.len()).filter(|&v| v != self.here.vcpu && vgic.has_deliverable(v)).collect();
        drop(vgic);
        p.hint_all();
        for vcpu in others {
            kick_vcpu(p, vcpu, self.here.cpu);
        }
    }

    /// Makes `intid` pending for `vcpu` of `p` and wakes its CPU.
    fn raise(&self, p: &Partition, vcpu: usize, intid: u32) {
        if p.vgic.lock().set_pending(vcpu, intid) {
            self.wake(p, vcpu);
        }
    }

    /// After a raise that `vcpu` of `p` must look at (`VirtualGic::set_pending` said so): its
    /// hint, and a kick to its CPU if the partition runs.
    fn wake(&self, p: &Partition, vcpu: usize) {
        p.irq_hints[vcpu].store(true, Ordering::Release);
        if p.status() == Status::Running {
            kick_vcpu(p, vcpu, self.here.cpu);
        }
    }
}

impl Services for CpuServices<'_> {
    fn read_memory(&mut self, pa: HostPhys, buf: &mut [u8]) {
        // SAFETY: core checked that the range is the calling partition's own memory, which
        // lies inside the EL2 map (checked at load).
        unsafe { memory::copy_from(pa, buf) };
    }

    fn console_write(&mut self, bytes: &[u8]) {
        let p = self.partition();
        p.console.lock().push(bytes, &p.config.name, &mut PartitionSink { budget: &p.console_budget });
    }

    fn wait(&mut self, timeout_ns: u64) {
        let (now, freq) = el2::counter();
        let ticks = tantalum_core::time::ticks(core::time::Duration::from_nanos(timeout_ns), freq);
        let deadline = now.saturating_add(ticks);
        let p = self.partition();
        let (vcpu, generation) = (self.here.vcpu, ENTERED_GENERATION[self.here.cpu].load(Ordering::Acquire));
        // Sleep in WFI until the deadline (the EL2 timer), a doorbell (`notify` kicks this CPU)
        // or any other physical interrupt, which is left pending for the guest exit path.
        el2::arm_wakeup(deadline);
        while el2::counter().0 < deadline && p.generation.load(Ordering::Acquire) == generation {
            if p.irq_hints[vcpu].load(Ordering::Acquire) && p.vgic.lock().has_deliverable(vcpu) {
                break;
            }
            if el2::irq_pending() && !only_wakeup_pending() {
                break;
            }
            aarch64_cpu::asm::wfi();
        }
        el2::disarm_wakeup();
    }

    fn gic_access(&mut self, frame: Frame, access: vgic::Access) -> u64 {
        let p = self.partition();
        let vcpu = self.here.vcpu;
        let across = vgic::reaches_other_vcpus(p.vcpus.len(), vcpu, frame, access.offset);
        if access.write.is_none() && !across {
            return crate::fast_mmio::gic_read(p, vcpu, frame, access);
        }
        // Held hardware-linked interrupts whose level line fell are no longer pending.
        for intid in p.vgic.lock().resample_held(vcpu, gic::still_pending) {
            gic::deactivate(intid);
        }
        if across {
            return self.gic_access_across(frame, access);
        }
        let mut vgic = p.vgic.lock();
        // The interrupts in this CPU's list registers are the accessing vCPU's: its pending and
        // active registers show them, and a write to those reaches them (no other register
        // involves them: then they are not read).
        let mut listed = [vgic::Listed::default(); 16];
        let n = match vgic::involves_listed(frame, access.offset, access.write.is_some()) {
            true => gic::read_listed(vcpu as u8, &mut listed),
            false => 0,
        };
        let value = vgic.access_listed(vcpu, frame, access, &mut listed[..n]);
        if access.write.is_some() {
            gic::write_listed(&listed[..n]);
            self.propagate_trigger(&vgic, frame, access);
            self.propagate_route(&vgic, frame, access);
            self.wake_after_write(vgic);
        }
        value
    }

    fn gic_cpu_access(&mut self, access: vgic::Access) -> u64 {
        let (value, still_masked) = gic::cpu_interface_access(access);
        if !still_masked {
            if let Some(trap) = &self.partition().gicv_trap {
                trap.release(self.here.vcpu);
            }
        }
        value
    }

    fn notify(&mut self, target: PartitionId, intid: u32) {
        let Some(t) = self.system.partitions.get(usize::from(target)) else { return };
        // The target vCPU and the raise under one lock of the target's virtual GIC.
        let (vcpu, news) = {
            let mut vgic = t.vgic.lock();
            let vcpu = vgic.spi_target(intid);
            (vcpu, vgic.set_pending(vcpu, intid))
        };
        if news {
            self.wake(t, vcpu);
        }
    }

    fn send_ipi(&mut self, targets: VcpuSet, intid: u32) -> bool {
        // IPIs are SGIs (what `ICC_SGI1R_EL1` decodes to; `HYP_SEND_IPI` may name anything).
        if intid >= 16 {
            return false;
        }
        let p = self.partition();
        for vcpu in targets.iter().take_while(|&v| v < p.vcpus.len()) {
            self.raise(p, vcpu, intid);
        }
        true
    }

    fn cpu_on(&mut self, vcpu: usize, entry: GuestPhys, context: u64) -> PsciStatus {
        let p = self.partition();
        let Some(slot) = p.vcpus.get(vcpu) else { return PsciStatus::InvalidParameters };
        match slot.request_start(entry.0, context) {
            Ok(()) => {
                kick_vcpu(p, vcpu, self.here.cpu);
                PsciStatus::Success
            }
            Err(Power::On) => PsciStatus::AlreadyOn,
            Err(_) => PsciStatus::OnPending,
        }
    }

    fn uart_access(&mut self, offset: u64, write: Option<u64>) -> u64 {
        crate::fast_mmio::uart_access(self.partition(), self.here, offset, write)
    }

    fn partition_running(&mut self, id: PartitionId) -> bool {
        // A partition still loading counts as running: it has not stopped, it is on its way.
        self.system.partitions.get(usize::from(id)).is_some_and(|p| p.status() != Status::Stopped)
    }

    fn pmu_access(&mut self, encoding: u32, write: Option<u64>) -> u64 {
        crate::pmu::access(encoding, write)
    }

    fn vcpu_power(&mut self, vcpu: usize) -> Option<Power> {
        Some(self.partition().vcpus.get(vcpu)?.power())
    }

    fn virtio_access(&mut self, device: usize, offset: u64, access: MmioAccess) -> u64 {
        if !BUILT.virtio {
            return 0; // (never: a configuration with virtio devices is refused at boot)
        }
        let system = self.system;
        let id = self.here.id as PartitionId;
        let link = match system.config.virtio_devices(id).nth(device) {
            Some(VirtioDevice::Net(link)) => link,
            Some(other) => {
                return crate::disks::access(system, self.here.id, other, offset, access, self.here.cpu)
            }
            None => return 0,
        };
        let index = link.id;
        let side = link.endpoints.iter().position(|&e| e == id).unwrap_or(0);
        let owners: heapless::Vec<Owner<'_>, { virtio::net::MAX_PORTS }> =
            link.endpoints.iter().map(|&e| Owner(system.partitions[usize::from(e)].config)).collect();
        let answer = system.links[index].lock().access(
            side,
            &owners,
            &mut memory::Physical,
            offset,
            access.size,
            access.write,
        );
        for (s, error) in answer.failed.iter().enumerate().take(link.endpoints.len()) {
            if let Some(e) = error {
                let name = &system.partitions[usize::from(link.endpoints[s])].config.name;
                info!("partition '{name}': virtio device '{}' needs a reset: {e}", link.name);
            }
        }
        for (s, &raise) in answer.interrupt.iter().enumerate().take(link.endpoints.len()) {
            let target = link.endpoints[s];
            // The device's SPI in the target's virtual GIC: its local number for this link.
            let local = system.config.virtio_of(target).position(|l| l.id == link.id);
            if let (true, Some(local)) = (raise, local) {
                self.notify(target, virtio::virtio_intid(local));
            }
        }
        answer.value
    }
}

/// Whether the only physical interrupt pending is the EL2 wake-up timer (still high until it is
/// disarmed): nothing for the guest.
fn only_wakeup_pending() -> bool {
    gic::highest_pending() == gic::WAKEUP_INTID
}

/// Follows partition `p`'s virtual UART interrupt line in its virtual GIC.
pub(crate) fn uart_line(p: &Partition, high: bool, from_cpu: usize) {
    let intid = VIRTUAL_UART_SPI + 32;
    let mut vgic = p.vgic.lock();
    let vcpu = vgic.spi_target(intid);
    let pending = vgic.set_level(vcpu, intid, high);
    drop(vgic);
    if pending {
        p.irq_hints[vcpu].store(true, Ordering::Release);
        kick_vcpu(p, vcpu, from_cpu);
    }
}

/// The partitions that can take console input: those with a virtual UART that have not stopped.
fn input_candidates(system: &System) -> heapless::Vec<usize, { tantalum_core::config::MAX_PARTITIONS }> {
    (0..system.partitions.len())
        .filter(|&i| {
            system.partitions[i].config.virtual_uart && system.partitions[i].status() != Status::Stopped
        })
        .collect()
}

/// Bytes the operator typed: `tantalum_core::console::input` says where each goes.
fn console_input(system: &System, from_cpu: usize) {
    console::read_input(|byte| {
        let candidates = input_candidates(system);
        let focus = Focus::from_word(system.input_focus.load(Ordering::Acquire));
        // The operator is here: the partition with the input now writes as it goes.
        let first_key = !system.interactive.swap(true, Ordering::AcqRel);
        match input::on_key(focus, byte, &candidates) {
            Key::Switch(to) => {
                system.input_focus.store(to.to_word(), Ordering::Release);
                give_terminal(system, to, true);
            }
            Key::Deliver(id) => {
                if first_key {
                    // Said at boot already.
                    give_terminal(system, Focus::Partition(id), false);
                }
                let p = &system.partitions[id];
                let follow = {
                    let mut uart = p.vuart.lock();
                    uart.receive(&[byte]);
                    let follow = uart.follow();
                    p.vuart_mirror.keep(&uart);
                    follow
                };
                if let Some(high) = follow {
                    uart_line(p, high, from_cpu);
                }
            }
            Key::Help => {
                let partitions = system.partitions.iter().map(|p| {
                    let state = match p.status() {
                        Status::Running => "running",
                        Status::Stopped => "stopped",
                        Status::Loading => "loading",
                    };
                    (p.config.name.as_str(), state, p.config.virtual_uart)
                });
                let next = match focus.next(&candidates) {
                    Focus::Partition(id) => Some(system.partitions[id].config.name.as_str()),
                    Focus::Hypervisor => None,
                };
                info!("{}", Help { partitions, next });
            }
            Key::Ignore => {}
        }
    });
}

/// Gives the terminal (the open line written as it comes) to the partition that has the input,
/// or to nobody, and (if `announce`) says where input goes now.
fn give_terminal(system: &System, to: Focus, announce: bool) {
    let old = console::terminal_owner();
    let new = match to {
        Focus::Partition(id) => Some(id),
        Focus::Hypervisor => None,
    };
    let name = |id: usize| system.partitions[id].config.name.as_str();
    let line = Announce { to: new.map(name) };
    if old == new {
        if announce {
            info!("{line}");
        }
        return;
    }
    // Line buffers before the console lock, in index order (`old` and `new` differ).
    let lock = |id: Option<usize>| id.map(|id| system.partitions[id].console.lock());
    let (mut old_buffer, mut new_buffer) = if old < new {
        let o = lock(old);
        (o, lock(new))
    } else {
        let n = lock(new);
        (lock(old), n)
    };
    console::hand_over(
        old.zip(old_buffer.as_deref_mut())
            .map(|(id, b)| (name(id), &system.partitions[id].console_budget, b)),
        new.zip(new_buffer.as_deref_mut()).map(|(id, b)| (id, name(id), b)),
        announce.then_some(format_args!("{line}")),
    );
}

/// Kinds of guest exit, as the vectors pass them.
mod kind {
    pub const SYNC: u64 = 0;
    pub const IRQ: u64 = 1;
    pub const FIQ: u64 = 2;
    /// The kind's bits; above them, an IRQ exit from the vectors' fast path carries the INTID
    /// it acknowledged plus one (0: none).
    pub const MASK: u64 = (1 << super::ACKNOWLEDGED_SHIFT) - 1;
}

/// Where an IRQ exit's kind carries the INTID the vectors' fast path acknowledged (plus one).
pub(crate) const ACKNOWLEDGED_SHIFT: u32 = 8;

/// The hypervisor console's receive interrupt, if the board describes one (at boot:
/// `System::console_intid` keeps it).
#[unsafe(link_section = ".text.boot_only")]
pub fn console_intid(config: &SystemConfig) -> Option<u32> {
    let console = config.hypervisor.console.as_ref()?;
    console.interrupts.iter().find(|i| i.kind == tantalum_core::config::Interrupt::SPI).map(|i| i.intid())
}

/// Serves `intid` if it is one of the hypervisor's own interrupts (console input, the SMMU);
/// returns whether it was (then it is deactivated too).
fn hypervisor_interrupt(system: &System, intid: u32, cpu: usize) -> bool {
    // Both are SPIs (the console's is chosen as one, the SMMU's are routed as SPIs): the timers'
    // and the PMU's PPIs and the kick SGI, the common interrupts, need not look them up.
    if intid < tantalum_core::vgic::SPI_BASE {
        return false;
    }
    if Some(intid) == system.console_intid {
        console_input(system, cpu);
    } else if crate::smmu::is_smmu_interrupt(intid) {
        crate::smmu::on_interrupt(|id| {
            let owner = &system.partitions[id];
            (0..owner.vcpus.len()).for_each(|v| kick_vcpu(owner, v, cpu));
        });
    } else {
        return false;
    }
    gic::deactivate(intid);
    true
}

/// The physical interrupts to take at this exit, into `ids`: the one the vectors' fast path
/// already acknowledged (`acknowledged`), then those pending at the GIC. Returns how many.
fn take_physical(acknowledged: Option<u32>, ids: &mut [u32; 8]) -> usize {
    let first = match acknowledged {
        Some(intid) => {
            ids[0] = intid;
            1
        }
        None => 0,
    };
    first + gic::acknowledge(&mut ids[first..])
}

/// Takes the physical interrupts pending at a CPU that runs no guest now (its vCPU is off, or
/// leaving): the hypervisor's own are served (console input keeps working when the partition
/// whose CPU takes it has stopped), the rest are done with.
fn drain_physical(system: &System, cpu: usize, acknowledged: Option<u32>) {
    let mut ids = [0u32; 8];
    let n = take_physical(acknowledged, &mut ids);
    for &intid in &ids[..n] {
        if !hypervisor_interrupt(system, intid, cpu) {
            gic::deactivate(intid);
        }
    }
}

/// Takes the physical interrupts pending at this CPU: the vCPU's timers and its partition's
/// devices go to the vCPU (hardware-linked: the guest's EOI deactivates them), the
/// hypervisor's own are served, the rest (kicks, maintenance) are done with here.
fn forward_physical(system: &System, p: &Partition, here: Here, acknowledged: Option<u32>) {
    let vcpu = here.vcpu;
    let mut ids = [0u32; 8];
    let n = take_physical(acknowledged, &mut ids);
    for &intid in &ids[..n] {
        if hypervisor_interrupt(system, intid, here.cpu) {
            continue;
        }
        // SPIs: `set_pending_hw` refuses those the partition does not own. One the guest has
        // disabled is held, its physical interrupt left active until the guest ends it.
        let for_guest = gic::FORWARDED_PPIS.contains(&intid) || intid >= 32;
        // An SPI goes to the vCPU the guest routed it to (its physical interrupt follows, but one
        // taken here just before a re-routing must still reach it).
        let (latched, target) = match for_guest {
            true => {
                let mut vgic = p.vgic.lock();
                let target = if intid >= 32 { vgic.spi_target(intid) } else { vcpu };
                (vgic.set_pending_hw(target, intid), target)
            }
            false => (Latched::NotOwned, vcpu),
        };
        match latched {
            Latched::Ready => {
                p.irq_hints[target].store(true, Ordering::Release);
                if target != vcpu {
                    kick_vcpu(p, target, here.cpu);
                }
            }
            Latched::Held => {}
            Latched::NotOwned => {
                gic::deactivate(intid);
                // A kick: another vCPU's GIC access may wait for this one's list registers.
                if intid == gic::KICK_SGI && p.listed[vcpu].asked() {
                    p.listed[vcpu].answer(vcpu);
                }
            }
        }
    }
}

/// What [`guest_fast_call`] returns to the vectors (in x0 and x1).
#[repr(C)]
struct FastAnswer {
    /// The guest's x0.
    value: u64,
    /// 1: answered, the vectors return to the guest; 0: take the full path.
    answered: u64,
}

/// What the vectors' fast paths and [`Here::load`] look at on one CPU, set by [`enter`] before
/// its guest runs, which also puts the record's address in TPIDR_EL2: the partition and vCPU
/// running there, the partition generation it entered with, its vCPU's interrupt hint and its
/// devices' pending-DMA-fault flag (all in the `'static` system), and the MMIO fast path's
/// windows. One record per CPU, which only that CPU writes and reads: one pointer, no lookup.
#[repr(C, align(64))]
pub(crate) struct Running {
    /// First: the fast paths load it with acquire, which takes no offset.
    partition: AtomicPtr<Partition>,
    hint: AtomicPtr<AtomicBool>,
    dma_fault: AtomicPtr<AtomicBool>,
    entered: AtomicU32,
    vcpu: AtomicU32,
    /// [`Here`], packed by [`Here::packed`].
    here: AtomicU64,
    /// [`hypervisor_spis`], a bit per INTID (the same on every CPU: no lookup per interrupt).
    hypervisor_spis: [AtomicU64; INTID_WORDS],
    /// Where the MMIO fast path emulates (`fast_mmio`).
    pub(crate) mmio: crate::fast_mmio::Windows,
}

static FAST_PATH: [Running; MAX_CPUS] = [const {
    Running {
        partition: AtomicPtr::new(core::ptr::null_mut()),
        hint: AtomicPtr::new(core::ptr::null_mut()),
        dma_fault: AtomicPtr::new(core::ptr::null_mut()),
        entered: AtomicU32::new(0),
        vcpu: AtomicU32::new(0),
        here: AtomicU64::new(0),
        hypervisor_spis: [const { AtomicU64::new(0) }; INTID_WORDS],
        mmio: crate::fast_mmio::Windows::none(),
    }
}; MAX_CPUS];

/// The vCPU that a fast path serves: see [`Running::current`].
pub(crate) struct Current {
    pub p: &'static Partition,
    pub vcpu: usize,
    pub hint: &'static AtomicBool,
}

impl Running {
    /// This CPU's record, from TPIDR_EL2: the vectors come to the fast paths and to
    /// [`guest_exit`] only from a guest, which [`enter`] started after [`Running::set`] put the
    /// record's address there.
    #[inline(always)]
    pub(crate) fn here() -> &'static Running {
        // SAFETY: TPIDR_EL2 holds the address of this CPU's entry of the 'static FAST_PATH from
        // the first `enter` on (nothing else writes it), and only exits of a guest that `enter`
        // started read it.
        unsafe { &*(TPIDR_EL2.get() as *const Running) }
    }

    /// Before entering the guest of `p` as `here`, at partition generation `entered`; the record
    /// is then this CPU's (TPIDR_EL2).
    fn set(&'static self, system: &System, p: &'static Partition, here: Here, entered: u32) {
        let ptr = |a: &'static AtomicBool| a as *const AtomicBool as *mut AtomicBool;
        for (word, &bits) in self.hypervisor_spis.iter().zip(&system.hypervisor_spis) {
            word.store(bits, Ordering::Relaxed);
        }
        self.hint.store(ptr(&p.irq_hints[here.vcpu]), Ordering::Relaxed);
        self.dma_fault.store(ptr(crate::smmu::fault_flag(here.id)), Ordering::Relaxed);
        self.entered.store(entered, Ordering::Relaxed);
        self.vcpu.store(here.vcpu as u32, Ordering::Relaxed);
        self.here.store(here.packed(), Ordering::Relaxed);
        self.mmio.set(p, here);
        self.partition.store(p as *const Partition as *mut Partition, Ordering::Release);
        TPIDR_EL2.set(self as *const Running as u64);
    }

    /// The vCPU on this CPU, if it may go on as it is after an exit that changes nothing else:
    /// its partition has not been stopped or restarted since it entered (its generation), and
    /// no DMA fault of its devices waits to be reported. `None`: the full path.
    #[inline(always)]
    pub(crate) fn current(&self) -> Option<Current> {
        let p = self.partition()?;
        Some(Current { p, vcpu: self.vcpu.load(Ordering::Relaxed) as usize, hint: self.hint() })
    }

    /// The partition of [`Running::current`] (the same checks), without its vCPU and hint.
    #[inline(always)]
    pub(crate) fn partition(&self) -> Option<&'static Partition> {
        // SAFETY: a record is only reached through `Running::here` once `set` made it this
        // CPU's, having set this field to a partition of the 'static system and the others to
        // atomics of that system first; nothing writes null.
        let p = unsafe { &*self.partition.load(Ordering::Acquire) };
        // SAFETY: as above.
        let dma = unsafe { &*self.dma_fault.load(Ordering::Relaxed) };
        if p.generation.load(Ordering::Acquire) != self.entered.load(Ordering::Relaxed)
            || dma.load(Ordering::Acquire)
        {
            return None;
        }
        Some(p)
    }

    /// The interrupt hint of the vCPU on this CPU (as in [`Running::current`]).
    #[inline(always)]
    pub(crate) fn hint(&self) -> &'static AtomicBool {
        // SAFETY: set by `set` with the partition, to an atomic of the 'static system; the fast
        // paths ask only once `current` found the partition.
        unsafe { &*self.hint.load(Ordering::Relaxed) }
    }

    /// Whether `intid` is one of [`hypervisor_spis`], as [`Running::set`] found them.
    #[inline(always)]
    fn is_hypervisor_spi(&self, intid: u32) -> bool {
        // The word of an INTID below 1024 (what an acknowledge gives): no bounds to check.
        let word = &self.hypervisor_spis[intid as usize / 64 % INTID_WORDS];
        word.load(Ordering::Relaxed) & 1 << (intid % 64) != 0
    }

    /// Whether nothing but the answer is due at an exit of the vCPU on this CPU: as
    /// [`Running::current`], and no virtual interrupt waits to be loaded (the hint).
    #[inline(always)]
    fn clear(&self) -> bool {
        self.current().is_some_and(|c| !c.hint.load(Ordering::Acquire))
    }
}

/// Called by the vectors for an `hvc #0` exit before they save the whole frame (only what a
/// call clobbers): answers a call that returns at once with a value in x0 and changes nothing
/// ([`esr::answered_at_once`]: the same answer as [`guest_exit`] would give), unless something
/// else is due at this exit, which [`guest_exit`] then handles exactly as at any other: the
/// partition stopped or restarting (its generation moved: the vCPU leaves), virtual interrupts
/// to load (the hint), a DMA fault of its devices to report.
#[unsafe(no_mangle)]
extern "C" fn guest_fast_call(function: u64) -> FastAnswer {
    const FULL_PATH: FastAnswer = FastAnswer { value: 0, answered: 0 };
    // The vectors call this for an `hvc #0` only (they compared ESR_EL2).
    let Some(value) = esr::answered_at_once(esr::HVC64_IMM0, function) else { return FULL_PATH };
    if !Running::here().clear() {
        return FULL_PATH;
    }
    FastAnswer { value, answered: 1 }
}

/// Called by the vectors for an `hvc #0` with HYP_CHANNEL_NOTIFY in x0, with only x0..x18 and
/// x30 saved in `frame` (x19..x29 are still the guest's): rings the doorbells as [`guest_exit`]
/// would, without the `Exit` and `Outcome` round trip and the whole frame. Core decides the
/// notify (`partition::channel_notify_at_once`: the doorbells `handle_exit` rings, looked up in
/// the table built from the configuration at boot, `System::channel_peers`) and [`CpuServices::notify`] raises it (the target's virtual
/// GIC, the doorbell-flood watch of issue 11, the kick). Before that, the checks `guest_exit`
/// makes first: a partition stopped or restarting since this vCPU entered (its generation), or
/// a DMA fault waiting, takes the full path having changed nothing (returns 0); after it, the
/// tail of an `Outcome::Return` (virtual interrupts loaded when hinted, `resample_before_taken`).
/// Returns 1 with the answer in `frame.x[0]`: the vectors restore x0..x18 and x30 and return.
#[unsafe(no_mangle)]
extern "C" fn guest_fast_notify(frame: &mut GuestFrame) -> u64 {
    let here = Here::load();
    let Some(c) = Running::here().current() else { return 0 };
    let system = system::get();
    let x = &frame.x;
    let args = [x[1], x[2], x[3], x[4], x[5], x[6]];
    let mut services = CpuServices { system, here };
    let id = here.id as PartitionId;
    let Some(value) =
        partition::channel_notify_at_once(&system.channel_peers, id, x[0], &args, &mut services)
    else {
        return 0;
    };
    frame.x[0] = value;
    // HVC reports the next instruction in ELR_EL2: no PC to advance. `load_interrupts` does
    // nothing without the hint.
    if c.hint.load(Ordering::Acquire) {
        let loaded_hw = load_interrupts(c.p, c.vcpu, false);
        resample_before_taken(c.p, c.vcpu, (SPSR_EL2.get(), ELR_EL2.get()), loaded_hw);
    }
    1
}

/// Called by the IRQ vector before it saves the whole frame (only what a call clobbers): takes
/// one physical interrupt and, when it is one of the common ones, does what [`guest_exit`]
/// would, without the `Exit` round trip through core (an interrupt needs nothing from it):
/// the vCPU's timer or PMU interrupt, or a passed-through SPI routed to it, goes into a list
/// register (at once when nothing else is pending and all are empty); a kick or a maintenance
/// interrupt is ended and the vCPU's list registers loaded. Anything else takes the full
/// path, with the INTID acknowledged here (`value` is that INTID plus one, 0 for none): the
/// partition stopped or restarting or a DMA fault to report (before acknowledging anything),
/// the hypervisor's own interrupts, an SPI for another vCPU, a kick that another vCPU's GIC
/// access waits on.
///
/// This is the GICv3's, which the GICv3 vector table (`el2_vectors`, the boot one) calls; a
/// GICv2 board's CPUs install the table that calls [`guest_fast_interrupt_gicv2`]
/// ([`crate::boot::install_gicv2_vectors`]), so neither asks which GIC it drives.
#[unsafe(no_mangle)]
extern "C" fn guest_fast_interrupt() -> u64 {
    fast_interrupt::<gic::GicV3>()
}

/// [`guest_fast_interrupt`] on a GICv2 (its vector table's).
#[unsafe(no_mangle)]
extern "C" fn guest_fast_interrupt_gicv2() -> u64 {
    fast_interrupt::<gic::GicV2>()
}

/// [`guest_fast_interrupt`] on the GIC `G`. Every call it makes is its answer (a tail call to a
/// function of the same ABI), so that nothing is kept across one and the common cases need no
/// frame.
#[inline(always)]
fn fast_interrupt<G: CpuInterface>() -> u64 {
    let running = Running::here();
    let Some(c) = running.current() else { return NOTHING_ACKNOWLEDGED };
    let Some(intid) = G::acknowledge_one() else { return NOTHING_ACKNOWLEDGED };
    let (p, vcpu, hint) = (c.p, c.vcpu, c.hint);
    let spi = intid >= tantalum_core::vgic::SPI_BASE;
    let forwarded_ppi = !spi && (FORWARDED_PPIS >> intid) & 1 != 0;
    if !forwarded_ppi && !spi {
        return kick_at_once::<G>(p, vcpu, hint, intid);
    }
    if spi && running.is_hypervisor_spi(intid) {
        return acknowledged(intid);
    }
    let hinted = take_hint(hint);
    let vgic = p.vgic.lock();
    // Ready and alone: into a list register now (`deliver_hw_at_once` checked that the partition
    // owns it and, for an SPI, that it is routed to this vCPU).
    if let Some(d) = vgic.deliver_hw_at_once(vcpu, intid) {
        if let Some(loaded) = G::load_at_once(&d) {
            drop(vgic);
            let masked_by_priority = || G::masked_after_load(loaded, d.priority);
            return resample_loaded::<G>(p, vcpu, (SPSR_EL2.get(), ELR_EL2.get()), masked_by_priority);
        }
    }
    drop(vgic);
    latch_at_once::<G>(p, vcpu, hint, intid, hinted)
}

/// What [`guest_fast_interrupt`] returns to the IRQ vector (in x0) when it took the interrupt;
/// anything else sends the exit to the full path with the INTID it acknowledged plus one, or
/// [`NOTHING_ACKNOWLEDGED`]. (One register: every call of the fast path can then be its answer,
/// a branch.)
const TAKEN: u64 = u64::MAX;
/// See [`TAKEN`].
const NOTHING_ACKNOWLEDGED: u64 = 0;

/// The full path with `intid`, which the fast path acknowledged (see [`TAKEN`]).
fn acknowledged(intid: u32) -> u64 {
    u64::from(intid) + 1
}

/// [`FORWARDED_PPIS`](gic::FORWARDED_PPIS) as a bit per INTID.
const FORWARDED_PPIS: u32 = {
    let (mut bits, mut i) = (0, 0);
    while i < gic::FORWARDED_PPIS.len() {
        bits |= 1 << gic::FORWARDED_PPIS[i];
        i += 1;
    }
    bits
};

/// [`fast_interrupt`] for an SGI or a PPI that is not forwarded, acknowledged on the CPU of
/// `vcpu` of `p` (its interrupt hint `hint`): a kick or a maintenance interrupt is ended and the
/// vCPU's list registers loaded, as [`forward_physical`] and [`load_interrupts`] would; anything
/// else (and a kick that another vCPU's GIC access waits on) takes the full path. (The parts of
/// [`Current`] one by one: the call is then a branch.)
#[inline(never)]
extern "C" fn kick_at_once<G: CpuInterface>(
    p: &'static Partition,
    vcpu: usize,
    hint: &AtomicBool,
    intid: u32,
) -> u64 {
    if intid != gic::KICK_SGI && intid != gic::MAINTENANCE_INTID
        || intid == gic::KICK_SGI && p.listed[vcpu].asked()
    {
        return acknowledged(intid);
    }
    G::deactivate(intid);
    take_hint(hint);
    let loaded_hw = load_taken_hint(&mut p.vgic.lock(), hint, vcpu);
    match loaded_hw {
        Some(priority) => {
            resample_loaded::<G>(p, vcpu, (SPSR_EL2.get(), ELR_EL2.get()), || G::masked_by_priority(priority))
        }
        None => TAKEN,
    }
}

/// [`fast_interrupt`] for a forwarded PPI or a passed-through SPI that could not go into a list
/// register at once (the virtual GIC's lock taken again: nothing was changed under the first) (`hinted`: whether [`take_hint`] found the vCPU's hint set): latched as
/// [`forward_physical`] does and loaded; an SPI the partition does not own or that is routed to
/// another vCPU takes the full path, with the hint as it was.
#[inline(never)]
extern "C" fn latch_at_once<G: CpuInterface>(
    p: &'static Partition,
    vcpu: usize,
    hint: &AtomicBool,
    intid: u32,
    hinted: bool,
) -> u64 {
    let mut vgic = p.vgic.lock();
    if intid >= tantalum_core::vgic::SPI_BASE && (!vgic.owns(intid) || vgic.spi_target(intid) != vcpu) {
        drop(vgic);
        if hinted {
            hint.store(true, Ordering::Release); // as it was: the full path takes it
        }
        return acknowledged(intid);
    }
    // Ready or held (disabled by the guest): latched as the full path does, then loaded.
    vgic.set_pending_hw(vcpu, intid);
    let loaded_hw = load_taken_hint(&mut vgic, hint, vcpu);
    drop(vgic);
    match loaded_hw {
        Some(priority) => {
            resample_loaded::<G>(p, vcpu, (SPSR_EL2.get(), ELR_EL2.get()), || G::masked_by_priority(priority))
        }
        None => TAKEN,
    }
}

/// 64-bit words of a bit per INTID a GIC can signal (0..1020).
pub const INTID_WORDS: usize = 16;

/// The hypervisor's own interrupts (bit `n % 64` of word `n / 64`: INTID `n`): the console's
/// receive interrupt and the SMMUs', which [`hypervisor_interrupt`] serves. Worked out from the
/// configuration at boot (`System::hypervisor_spis`).
#[unsafe(link_section = ".text.boot_only")]
pub fn hypervisor_spis(config: &SystemConfig) -> [u64; INTID_WORDS] {
    let mut bits = [0; INTID_WORDS];
    let mut add = |intid: u32| {
        if let Some(word) = bits.get_mut(intid as usize / 64) {
            *word |= 1 << (intid % 64);
        }
    };
    console_intid(config).into_iter().for_each(&mut add);
    for smmu in &config.board.iommus {
        for irq in [smmu.event_irq, smmu.gerror_irq].into_iter().flatten() {
            add(irq.intid());
        }
    }
    bits
}

/// Called by the vectors for every exit from a guest, with its saved registers.
#[unsafe(no_mangle)]
extern "C" fn guest_exit(frame: &mut GuestFrame, kind: u64) {
    // An IRQ exit that the vectors' fast path left to this one may carry the INTID it acknowledged.
    let acknowledged = (kind >> ACKNOWLEDGED_SHIFT).checked_sub(1).map(|intid| intid as u32);
    let kind = kind & kind::MASK;
    let here = Here::load();
    let system = system::get();
    let p = &system.partitions[here.id];
    if p.generation.load(Ordering::Acquire) != ENTERED_GENERATION[here.cpu].load(Ordering::Acquire) {
        // Another vCPU stopped or restarted the partition.
        drain_physical(system, here.cpu, acknowledged);
        leave(here);
    }
    let syndrome = Syndrome { esr: ESR_EL2.get(), far: FAR_EL2.get(), hpfar: HPFAR_EL2.get() };
    if kind == kind::SYNC && acknowledge_trap(&syndrome) {
        return; // re-sampled: the guest retries the access
    }
    let exit = match kind {
        kind::SYNC => esr::decode(&syndrome, &frame.x, Caller { vcpu: here.vcpu, vcpus: p.vcpus.len() }),
        kind::IRQ | kind::FIQ => {
            forward_physical(system, p, here, acknowledged);
            Exit::Interrupt
        }
        _ => Exit::Unhandled { syndrome: syndrome.esr },
    };
    // A DMA fault of one of its devices, which the SMMU reported: the partition's policy applies.
    let exit = crate::smmu::take_fault(here.id).map_or(exit, Exit::DmaFault);
    let state = PartitionState { restarts: p.restarts.load(Ordering::Acquire) };
    let mut services = CpuServices { system, here };
    let mut outcome = handle_exit(system.config, here.id as PartitionId, &state, exit, &mut services);
    if let Outcome::ExternalAbort { addr, access } = outcome {
        if kind == kind::SYNC && inject::external_abort(&syndrome, frame) {
            let _ = load_interrupts(p, here.vcpu, false);
            return;
        }
        // The guest cannot take it (its vector is the fetch that faulted): its fault policy.
        outcome = partition::fault(p.config, Fault::Memory { addr, access });
    }
    match outcome {
        Outcome::Return { ref values, count } => {
            // Register by register (at most five): a slice copy of a variable length is a
            // memcpy call, twice the cost of a hypercall's answer.
            for (x, &value) in frame.x.iter_mut().zip(values).take(count) {
                *x = value;
            }
            if kind == kind::SYNC && esr::needs_pc_advance(&syndrome) {
                frame.elr += esr::instruction_length(&syndrome);
            }
            let loaded_hw = load_interrupts(p, here.vcpu, kind == kind::IRQ);
            resample_before_taken(p, here.vcpu, (frame.spsr, frame.elr), loaded_hw);
        }
        Outcome::Emulated { load } => {
            if let Some((register, value)) = load.filter(|&(r, _)| r < 31) {
                frame.x[register as usize] = esr::extend_load(&syndrome, value);
            }
            frame.elr += esr::instruction_length(&syndrome);
            let loaded_hw = load_interrupts(p, here.vcpu, false);
            resample_before_taken(p, here.vcpu, (frame.spsr, frame.elr), loaded_hw);
        }
        Outcome::VcpuOff => leave(here),
        Outcome::ExternalAbort { .. } => {}
        Outcome::Stop(_) => {
            report(system, here.id, &outcome, frame.elr);
            stop(system, here.id, here.cpu);
            leave(here);
        }
        Outcome::Restart(_) => {
            report(system, here.id, &outcome, frame.elr);
            restart(here);
        }
        Outcome::HaltSystem(_) => {
            report(system, here.id, &outcome, frame.elr);
            firmware::system_off();
        }
    }
}

/// A guest that cannot take interrupts now (IRQs masked, and not just woken from WFI; or its
/// priority mask hiding the interrupt) may silence a source before it unmasks: if a hardware-linked interrupt was just loaded
/// (`loaded_hw`), its next acknowledge traps and re-samples the line first ([`acknowledge_trap`]), so a level
/// interrupt is not replayed after its source fell (a guest that ends it before silencing it).
///
/// On a GICv2, which has no such trap, the partition's CPU interface page is withdrawn from
/// stage 2 instead (`gicv_trap`): the guest's accesses there trap and are carried out by
/// [`Services::gic_cpu_access`] after re-sampling, until no loaded one is hidden by the mask.
pub(crate) fn resample_before_taken(
    p: &Partition,
    vcpu: usize,
    (spsr, elr): (u64, u64),
    loaded_hw: Option<u8>,
) {
    if let Some(priority) = loaded_hw {
        if gic::is_v2() {
            let _ = resample_loaded::<gic::GicV2>(p, vcpu, (spsr, elr), || {
                gic::GicV2::masked_by_priority(priority)
            });
        } else {
            let _ = resample_loaded::<gic::GicV3>(p, vcpu, (spsr, elr), || {
                gic::GicV3::masked_by_priority(priority)
            });
        }
    }
}

/// [`resample_before_taken`] once hardware-linked interrupts were loaded (inlined in the
/// interrupt fast path); `masked_by_priority` says whether the guest's priority mask hides the
/// least urgent of them ([`CpuInterface::masked_by_priority`]). Returns [`TAKEN`], so that the
/// fast path's answer is this, and the GICv2's trap is armed by a tail call ([`arm_gicv_trap`]):
/// no frame.
#[inline(always)]
fn resample_loaded<G: CpuInterface>(
    p: &Partition,
    vcpu: usize,
    (spsr, elr): (u64, u64),
    masked_by_priority: impl FnOnce() -> bool,
) -> u64 {
    const PSTATE_I: u64 = 1 << 7;
    let masked = spsr & PSTATE_I != 0 && !crate::wfi::follows_wfi(elr);
    if (masked || masked_by_priority()) && !G::trap_before_acknowledge() {
        return arm_gicv_trap(p, vcpu);
    }
    TAKEN
}

/// Arms the GICv2's re-sampling trap of `vcpu` of `p` ([`resample_loaded`]); returns [`TAKEN`].
#[inline(never)]
extern "C" fn arm_gicv_trap(p: &Partition, vcpu: usize) -> u64 {
    if let Some(trap) = &p.gicv_trap {
        trap.arm(vcpu);
    }
    // The answer passed through an empty `asm!`, which the compiler cannot see through: knowing
    // this function always returns TAKEN, it would put the constant after the call instead of
    // making the call the caller's answer (a branch), and the caller would need a frame.
    let mut answer = TAKEN;
    // SAFETY: an empty template: no instruction, nothing read or written but the register.
    unsafe { core::arch::asm!("/* {0} */", inout(reg) answer, options(nomem, nostack, preserves_flags)) };
    answer
}

/// A group 1 CPU interface access trapped by [`resample_before_taken`]'s trap: the lines are
/// re-sampled and the trap cleared; the guest retries the instruction.
fn acknowledge_trap(syndrome: &Syndrome) -> bool {
    esr::is_icc_group1_access(syndrome) && gic::on_acknowledge_trap()
}

/// Loads ready virtual interrupts into this CPU's list registers when something may have
/// changed (the hint, or a physical interrupt that may have been a kick or maintenance).
/// Returns the least urgent priority of the hardware-linked ones it loaded, if any.
pub(crate) fn load_interrupts(p: &Partition, vcpu: usize, interrupted: bool) -> Option<u8> {
    let hint = &p.irq_hints[vcpu];
    // A plain load first: the common case (nothing new) costs no atomic read-modify-write.
    let hinted = take_hint(hint);
    if !(hinted || interrupted) {
        return None;
    }
    load_taken_hint(&mut p.vgic.lock(), hint, vcpu)
}

/// Clears the interrupt hint of a vCPU about to load its list registers; returns whether it was
/// set. Before the virtual GIC's lock: whatever is raised after this is seen by the load, or
/// sets the hint again.
fn take_hint(hint: &AtomicBool) -> bool {
    hint.load(Ordering::Acquire) && hint.swap(false, Ordering::AcqRel)
}

/// Loads the list registers of `vcpu` from `vgic` once its hint was taken ([`take_hint`]),
/// setting the hint again if something is left; returns the least urgent priority of the
/// hardware-linked interrupts loaded, if any.
fn load_taken_hint(vgic: &mut VirtualGic, hint: &AtomicBool, vcpu: usize) -> Option<u8> {
    let loaded = gic::load_list_registers(vgic, vcpu);
    if loaded.more {
        hint.store(true, Ordering::Release);
    }
    loaded.hw_priority
}

fn report(system: &System, id: usize, outcome: &Outcome, pc: u64) {
    let p = &system.partitions[id];
    let mut console = p.console.lock();
    if !console.is_empty() {
        console.flush(&p.config.name, &mut PartitionSink { budget: &p.console_budget });
    }
    drop(console);
    info!("{}", Report { partition: &p.config.name, outcome, pc });
}
