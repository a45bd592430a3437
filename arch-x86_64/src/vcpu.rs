//! A CPU running its partition's vCPU: VMCS set-up by the Linux 64-bit boot protocol, then the
//! exit loop, whose decisions are core's (`handle_exit`) and whose outcomes (stop, restart,
//! halt the system) this module carries out.

use core::sync::atomic::Ordering;
use tantalum_core::addr::{GuestPhys, HostPhys};

use tantalum_core::config::PartitionId;
use tantalum_core::console::LineSink;
use tantalum_core::exit::{Exit, VcpuSet};
use tantalum_core::hypercall::Status;
use tantalum_core::partition::power::Power;
use tantalum_core::partition::{self, handle_exit, Fault, Outcome, PartitionState, Report, Services};
use tantalum_core::vgic::{self, Frame};
use tantalum_x86_64::io_bitmap;
use tantalum_x86_64::pending::{PendingVectors, FIRST_VECTOR};
use tantalum_x86_64::pic;
use tantalum_x86_64::timer::{Timer, TIMER_VECTOR};
use tantalum_x86_64::vmcs;
use tantalum_x86_64::vmexit::{self, Decoded, ExitInfo, Gprs};

use crate::console::{self, info};
use crate::system::{self, Ending, System};
use crate::vmx::{self, vmread, vmwrite, VmxError};

/// What the exit loop ended with.
enum End {
    /// This vCPU's exit stopped the partition.
    Stopped,
    /// This vCPU's exit restarts the partition.
    Restart,
    HaltSystem,
    /// This vCPU turned itself off (PSCI CPU_OFF).
    Off,
    /// Another vCPU ended the run (the partition's generation changed).
    Ended,
}

/// Where a vCPU enters its guest.
#[derive(Clone, Copy)]
enum Start {
    /// vCPU 0 of a freshly loaded partition: the Linux 64-bit boot protocol.
    Boot,
    /// CPU_ON: at `entry` in long mode on the boot area's page tables, `rdi` = `context`.
    At { entry: u64, context: u64 },
}

/// The vCPU a CPU runs and the run of its partition it belongs to.
#[derive(Clone, Copy)]
struct Here {
    id: usize,
    vcpu: usize,
    generation: u32,
}

impl Here {
    /// Whether the run this vCPU belongs to has ended.
    fn ended(&self, system: &System) -> bool {
        system.partitions[self.id].generation.load(Ordering::Acquire) != self.generation
    }
    /// Whether the vCPU should leave the guest or its wait: an event pending for it (a
    /// doorbell, an IPI) or the run's end.
    fn woken(&self, system: &System) -> bool {
        system.partitions[self.id].pending[self.vcpu].any() || self.ended(system)
    }
}

struct VcpuServices<'a> {
    system: &'a System,
    here: Here,
    /// The vCPU's timer as of this exit: `HYP_WAIT` ends when it is due.
    timer: Timer,
}

struct Sink;

/// Makes `vector` pending for vCPU `vcpu` of partition `id` and, unless that is the calling vCPU
/// (`here`, which injects it at its next entry), kicks the CPU that runs it: an IPI that makes
/// it leave its guest (external-interrupt exit) or, if it is in the hypervisor, exit at once at
/// its next entry (the host runs with interrupts masked, so the kick waits in its local APIC);
/// a CPU waiting in HLT or `HYP_WAIT` sees the pending vector itself. The vector is set before
/// the kick, so the CPU's next look at the set finds it.
fn raise(system: &System, here: Here, id: usize, vcpu: usize, vector: u32) {
    let Some(set) = system.partitions.get(id).and_then(|p| p.pending.get(vcpu)) else { return };
    if !set.set(vector) || (id == here.id && vcpu == here.vcpu) {
        return;
    }
    if let Some(apic) = system.apic_id(id, vcpu) {
        crate::smp::kick(apic);
    }
}

impl LineSink for Sink {
    fn write_line(&mut self, prefix: &str, text: &[u8]) {
        console::partition_line(prefix, text);
    }
}

impl Services for VcpuServices<'_> {
    fn read_memory(&mut self, pa: HostPhys, buf: &mut [u8]) {
        // SAFETY: core checked that the range is the partition's own memory (identity-mapped).
        unsafe { core::ptr::copy_nonoverlapping(pa.as_u64() as *const u8, buf.as_mut_ptr(), buf.len()) };
    }
    fn console_write(&mut self, bytes: &[u8]) {
        let id = self.here.id;
        let name = &self.system.config.partitions[id].name;
        self.system.partitions[id].console.lock().push(bytes, name, &mut Sink);
    }
    fn wait(&mut self, timeout_ns: u64) {
        let (system, here, timer) = (self.system, self.here, self.timer);
        crate::tsc::spin_ns_unless(timeout_ns, || {
            crate::input::poll(system);
            here.woken(system) || timer.due(crate::tsc::now())
        });
    }
    fn gic_access(&mut self, _frame: Frame, _access: vgic::Access) -> u64 {
        0
    }
    fn notify(&mut self, target: PartitionId, intid: u32) {
        let t = usize::from(target);
        let Some(peer) = self.system.partitions.get(t) else { return };
        // The doorbell's INTID is the vector, to the vCPU the peer routed it to (docs/x86.md,
        // "Doorbells and IPIs").
        raise(self.system, self.here, t, peer.doorbell_targets.of(intid), intid);
    }
    fn send_ipi(&mut self, targets: VcpuSet, intid: u32) -> bool {
        // An IPI is an interrupt vector (0..31 are the CPU's exceptions); core checked the targets.
        if !(FIRST_VECTOR..256).contains(&intid) {
            return false;
        }
        for vcpu in targets.iter() {
            raise(self.system, self.here, self.here.id, vcpu, intid);
        }
        true
    }
    fn route_doorbell(&mut self, intid: u32, vcpu: usize) -> bool {
        let me = &self.system.partitions[self.here.id];
        // Pending on the vCPU it went to before: it moves along (taken there at most once).
        if let Some(before) = me.doorbell_targets.set(intid, vcpu) {
            if before != vcpu && me.pending.get(before).is_some_and(|p| p.remove(intid as u8)) {
                raise(self.system, self.here, self.here.id, vcpu, intid);
            }
        }
        true
    }
    fn cpu_on(&mut self, vcpu: usize, entry: GuestPhys, context: u64) -> Status {
        // The target's CPU polls its slot in the hypervisor (`run_secondary`): no kick needed.
        let Some(slot) = self.system.partitions[self.here.id].vcpus.get(vcpu) else {
            return Status::InvalidParameters;
        };
        match slot.request_start(entry.0, context) {
            Ok(()) => Status::Success,
            Err(Power::On) => Status::AlreadyOn,
            Err(_) => Status::OnPending,
        }
    }
    fn vcpu_power(&mut self, vcpu: usize) -> Option<Power> {
        Some(self.system.partitions[self.here.id].vcpus.get(vcpu)?.power())
    }
    fn uart_access(&mut self, offset: u64, write: Option<u64>) -> u64 {
        let (read, sent) = self.system.partitions[self.here.id].vuart.lock().access(offset, write);
        if let Some(byte) = sent {
            self.console_write(&[byte]);
        }
        u64::from(read)
    }
    fn partition_running(&mut self, id: PartitionId) -> bool {
        !self.system.partitions[usize::from(id)].stopped.load(core::sync::atomic::Ordering::Acquire)
    }
    fn pmu_access(&mut self, _id: u32, _write: Option<u64>) -> u64 {
        0
    }
}

/// CPUID leaf 1 feature bits partitions do not see: what needs VMX, an exit the hypervisor
/// does not emulate or state it keeps (docs/x86.md, "Exits").
mod leaf1 {
    const MONITOR: u32 = 1 << 3;
    const VMX: u32 = 1 << 5;
    const PDCM: u32 = 1 << 15;
    const X2APIC: u32 = 1 << 21;
    pub const TSC_DEADLINE: u32 = 1 << 24;
    /// Without XSAVE (and so AVX), a guest OS uses FXSAVE: what Linux was tested with.
    const XSAVE: u32 = 1 << 26;
    const OSXSAVE: u32 = 1 << 27;
    const AVX: u32 = 1 << 28;
    pub const HIDDEN_ECX: u32 = MONITOR | VMX | PDCM | X2APIC | XSAVE | OSXSAVE | AVX;
    pub const HYPERVISOR: u32 = 1 << 31;
    const MCE: u32 = 1 << 7;
    const APIC: u32 = 1 << 9;
    const MTRR: u32 = 1 << 12;
    const MCA: u32 = 1 << 14;
    const PAT: u32 = 1 << 16;
    pub const HIDDEN_EDX: u32 = MCE | APIC | MTRR | MCA | PAT;
}

/// CPUID as a partition sees it: the host's, without VMX and with the hypervisor bit;
/// Tantalum's leaves at 0x40000000 (signature) and 0x40000010 (the TSC's frequency in kHz, the
/// de-facto timing leaf).
///
/// Partitions have no local APIC (doorbells are injected events; docs/x86.md): leaf 1 clears
/// the APIC and x2APIC bits, so that a PC OS uses the 8259 PIC (TSC-deadline stays: the
/// vCPU's own timer, which Linux uses only with a local APIC). The TSC's
/// frequency is also in leaf 0x15 (TSC/crystal ratio 1/1, the crystal at the TSC's frequency),
/// where Linux reads it instead of calibrating against timers partitions do not have; the
/// basic leaves go up to 0x15 for that, those the host lacks read as zeros.
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    const TSC_LEAF: u32 = 0x15;
    let host_max = crate::cpu::cpuid(0, 0).0;
    match leaf {
        0x4000_0000 => (0x4000_0010, u32::from_le_bytes(*b"Tant"), u32::from_le_bytes(*b"alum"), 0),
        0x4000_0010 => ((crate::tsc::frequency() / 1000) as u32, 0, 0, 0),
        0x4000_0001..=0x4fff_ffff => (0, 0, 0, 0),
        0 => {
            let (a, b, c, d) = crate::cpu::cpuid(0, 0);
            (a.max(TSC_LEAF), b, c, d)
        }
        1 => {
            let (a, b, c, d) = crate::cpu::cpuid(1, 0);
            // TSC-deadline: the vCPU's timer (`timer.rs`), whatever the host has.
            (a, b, (c & !leaf1::HIDDEN_ECX) | leaf1::HYPERVISOR | leaf1::TSC_DEADLINE, d & !leaf1::HIDDEN_EDX)
        }
        7 if subleaf == 0 => {
            // INVPCID and RDPID would be #UD (their VMX controls are off).
            const INVPCID: u32 = 1 << 10;
            const RDPID: u32 = 1 << 22;
            let (a, b, c, d) = crate::cpu::cpuid(7, 0);
            (a, b & !INVPCID, c & !RDPID, d)
        }
        // No architectural performance monitoring (its MSRs are not the guest's).
        0xa => (0, 0, 0, 0),
        0x8000_0001 => {
            // RDTSCP would be #UD (its VMX control is off).
            const RDTSCP: u32 = 1 << 27;
            let (a, b, c, d) = crate::cpu::cpuid(leaf, 0);
            (a, b, c, d & !RDTSCP)
        }
        TSC_LEAF => (1, 1, crate::tsc::frequency() as u32, 0),
        _ if leaf > host_max && leaf < TSC_LEAF => (0, 0, 0, 0),
        _ => crate::cpu::cpuid(leaf, subleaf),
    }
}

/// IA32_EFER.
const EFER: u32 = 0xc000_0080;

/// A PC guest's exits the arch handles before core: its master PIC's ports (forwarded to the
/// PIC and followed). Whether it was handled (the guest then resumes after
/// the instruction). Out of line: the exit loop stays lean for every other partition.
#[cold]
#[inline(never)]
fn pc_guest_before(
    system: &System,
    p: &tantalum_core::config::PartitionConfig,
    regs: &mut Gprs,
    exit: Exit,
) -> Result<bool, VmxError> {
    match exit {
        Exit::PortIo { port: port @ (pic::COMMAND | pic::DATA), size: 1, write }
            if owns_port(system, p, port) =>
        {
            let me = &system.partitions[usize::from(p.id)];
            match write {
                Some(value) => {
                    me.pic.lock().write(port, value as u8);
                    // SAFETY: the partition owns this PIC (its `devices`); the access is its.
                    unsafe { crate::serial::outb(port, value as u8) };
                }
                None => {
                    // SAFETY: as above; reading the PIC's IMR or IRR/ISR has no side effect.
                    let value = unsafe { crate::serial::inb(port) };
                    regs.rax = vmexit::load_in(regs.rax, 1, value.into());
                }
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A PC guest's RDMSR or WRMSR of EFER, on the VMCS's guest EFER: reads see it, writes may
/// change SYSCALL enable (bit 0) and no-execute enable (bit 11) only. Whether it was handled
/// (otherwise: a #GP, as for any MSR outside the allow-list).
fn pc_guest_efer(regs: &mut Gprs, write: Option<u64>) -> Result<bool, VmxError> {
    const CHANGEABLE: u64 = 1 | 1 << 11;
    let current = vmread(vmcs::GUEST_IA32_EFER);
    match write {
        None => (regs.rax, regs.rdx) = (current & 0xffff_ffff, current >> 32),
        Some(value) if (value ^ current) & !CHANGEABLE == 0 => vmwrite(vmcs::GUEST_IA32_EFER, value)?,
        Some(_) => return Ok(false),
    }
    Ok(true)
}

/// A port access that exited although every byte of it is partition `p`'s own (the trap of a
/// machine-reset register covers it: a dword at CONFIG_ADDRESS 0xcf8 spans 0xcf9): carried out
/// on the hardware for the partition, unless it reaches a reset register
/// (`io_bitmap::machine_reset`), which core then refuses like any port not the partition's.
/// Whether it was carried out.
#[cold]
#[inline(never)]
fn forward_owned_port(
    system: &System,
    p: &tantalum_core::config::PartitionConfig,
    regs: &mut Gprs,
    (port, size): (u16, u8),
    write: Option<u32>,
) -> bool {
    let owned = (0..size).all(|i| port.checked_add(i.into()).is_some_and(|b| owns_port(system, p, b)));
    if !owned || io_bitmap::machine_reset(port, size) {
        return false;
    }
    match write {
        // SAFETY: every byte of the access is the partition's own port and no reset register.
        Some(value) => unsafe { crate::cpu::port_write(port, size, value) },
        None => {
            // SAFETY: as above.
            let value = unsafe { crate::cpu::port_read(port, size) };
            regs.rax = vmexit::load_in(regs.rax, size, value.into());
        }
    }
    true
}

/// Whether partition `p` has I/O port `port` among its devices' ports.
fn owns_port(system: &System, p: &tantalum_core::config::PartitionConfig, port: u16) -> bool {
    let x86 = system.config.board.x86.as_ref();
    p.devices.iter().any(|d| {
        x86.is_some_and(|x| {
            x.ports_of(&d.path).iter().any(|r| u32::from(port) >= r.base && u64::from(port) < r.end())
        })
    })
}

/// Resumes the guest at `next`, after the instruction that exited: an STI or MOV SS shadow
/// that covered it is over.
#[inline(always)]
fn skip(next: u64) -> Result<(), VmxError> {
    vmwrite(vmcs::GUEST_RIP, next)?;
    let state = vmread(vmcs::GUEST_INTERRUPTIBILITY);
    if state & vmcs::BLOCKING_BY_STI_OR_MOV_SS != 0 {
        vmwrite(vmcs::GUEST_INTERRUPTIBILITY, state & !vmcs::BLOCKING_BY_STI_OR_MOV_SS)?;
    }
    Ok(())
}

/// Before an entry: injects the lowest pending vector (doorbells, IPIs, the vCPU's timer) if the guest takes interrupts now
/// (RFLAGS.IF set, no STI/MOV SS shadow); otherwise asks for an exit as soon as it does
/// (interrupt-window exiting), and for no such exit when nothing is pending.
/// A #GP(0) to deliver (`fault`) goes first: what is pending then waits for the window.
/// `controls` is the VMCS's processor-based controls as last written (kept here, not read back).
fn inject(sets: [&PendingVectors; 2], controls: &mut u32, fault: bool) -> Result<(), VmxError> {
    const IF: u64 = 1 << 9;
    const GENERAL_PROTECTION: u8 = 13;
    let first = sets.iter().filter_map(|s| s.first().map(|v| (v, s))).min_by_key(|&(v, _)| v);
    if fault {
        vmwrite(vmcs::ENTRY_EXCEPTION_ERROR_CODE, 0)?;
        vmwrite(vmcs::ENTRY_INTERRUPTION_INFO, vmcs::exception_with_error_code(GENERAL_PROTECTION))?;
    }
    let window = match first {
        None => false,
        Some(_) if fault => true,
        Some((vector, set)) => {
            let open = vmread(vmcs::GUEST_RFLAGS) & IF != 0
                && vmread(vmcs::GUEST_INTERRUPTIBILITY) & vmcs::BLOCKING_BY_STI_OR_MOV_SS == 0;
            if open {
                set.take(vector);
                vmwrite(vmcs::ENTRY_INTERRUPTION_INFO, vmcs::external_interrupt(vector))?;
            }
            !open
        }
    };
    let wanted = if window {
        *controls | vmcs::proc::INTERRUPT_WINDOW_EXITING
    } else {
        *controls & !vmcs::proc::INTERRUPT_WINDOW_EXITING
    };
    if wanted != *controls {
        vmwrite(vmcs::PROCESSOR_CONTROLS, wanted.into())?;
        *controls = wanted;
    }
    Ok(())
}

/// Runs partition `id`'s vCPU 0 on CPU `cpu` until the partition stops for good: loads it,
/// enters it, and carries out how each run ends (its own exits', or another vCPU's).
pub fn run(cpu: usize, revision: u32, id: usize) {
    let system = system::get();
    let me = &system.partitions[id];
    let name = &system.config.partitions[id].name;
    loop {
        if let Err(e) = system.load(id) {
            info!("partition '{name}': not started: {e}");
            return;
        }
        let generation = me.generation.load(Ordering::Acquire);
        let here = Here { id, vcpu: 0, generation };
        let mut start = Start::Boot;
        let ending = loop {
            me.vcpus[0].set_off();
            let _ = me.vcpus[0].request_start(0, 0);
            let _ = me.vcpus[0].take_start();
            match enter(system, cpu, revision, here, start) {
                Ok(End::Restart) => break end_run(system, here, Ending::Restart),
                Ok(End::Stopped) => break end_run(system, here, Ending::Stop),
                Ok(End::HaltSystem) => console::power_off(),
                Ok(End::Ended) => break me.ending(),
                Ok(End::Off) => {
                    me.vcpus[0].set_off();
                    if me.vcpus.iter().all(|v| v.power() == Power::Off) {
                        // The last vCPU turned off: the partition has stopped.
                        break end_run(system, here, Ending::Stop);
                    }
                    match wait_for_start(system, here) {
                        Some((entry, context)) => start = Start::At { entry, context },
                        None => break me.ending(),
                    }
                }
                Err(e) => {
                    info!("partition '{name}': VMX error: {e}: stopped");
                    break end_run(system, here, Ending::Stop);
                }
            }
        };
        me.vcpus[0].set_off();
        me.wait_secondaries_off();
        match ending {
            Ending::Restart => {
                me.restarts.fetch_add(1, Ordering::AcqRel);
            }
            Ending::Stop => return,
        }
    }
}

/// This vCPU ends its partition's run: the others leave their guests.
fn end_run(system: &System, here: Here, how: Ending) -> Ending {
    system.partitions[here.id].end_run(how, here.vcpu, system.apic_ids(here.id));
    how
}

/// Waits in the hypervisor until CPU_ON starts this vCPU (its entry and context), or the run
/// ends (`None`). Console input is polled meanwhile.
fn wait_for_start(system: &System, here: Here) -> Option<(u64, u64)> {
    let me = &system.partitions[here.id];
    let slot = &me.vcpus[here.vcpu];
    loop {
        if here.ended(system) || me.stopped.load(Ordering::Acquire) {
            return None;
        }
        if let Some(start) = slot.take_start() {
            if here.ended(system) {
                // The run ended while the start was taken: it belonged to that run.
                slot.set_off();
                return None;
            }
            return Some(start);
        }
        crate::input::poll(system);
        core::hint::spin_loop();
    }
}

/// Runs vCPU `vcpu` (1 or more) of partition `id` on CPU `cpu`: off until CPU_ON starts it,
/// then in its guest until it turns off or the run ends, and again, until the partition has
/// stopped for good.
pub fn run_secondary(cpu: usize, revision: u32, id: usize, vcpu: usize) {
    let system = system::get();
    let me = &system.partitions[id];
    let name = &system.config.partitions[id].name;
    while !me.stopped.load(Ordering::Acquire) {
        let here = Here { id, vcpu, generation: me.generation.load(Ordering::Acquire) };
        let Some((entry, context)) = wait_for_start(system, here) else { continue };
        match enter(system, cpu, revision, here, Start::At { entry, context }) {
            Ok(End::Restart) => _ = end_run(system, here, Ending::Restart),
            Ok(End::Stopped) => _ = end_run(system, here, Ending::Stop),
            Ok(End::HaltSystem) => console::power_off(),
            Ok(End::Off | End::Ended) => {}
            Err(e) => {
                info!("partition '{name}' vCPU {vcpu}: VMX error: {e}: stopping the partition");
                end_run(system, here, Ending::Stop);
            }
        }
        me.vcpus[vcpu].set_off();
    }
}

fn enter(system: &System, cpu: usize, revision: u32, here: Here, start: Start) -> Result<End, VmxError> {
    let id = here.id;
    let p = &system.config.partitions[id];
    let me = &system.partitions[id];
    let area = system.boot_area(id).ok_or(VmxError::OutOfMemory)?;
    vmx::new_vmcs(revision)?;
    vmx::setup_controls_and_host(cpu, id as u16 + 1, me.eptp, me.io_bitmaps)?;
    let mut regs = Gprs::default();
    match start {
        Start::Boot => {
            vmx::setup_guest_long(system.entry(id), &area)?;
            regs.rsi = area.boot_params();
        }
        Start::At { entry, context } => {
            vmx::setup_guest_long(entry, &area)?;
            regs.rdi = context;
        }
    }
    let mut services = VcpuServices { system, here, timer: Timer::default() };
    let state = PartitionState { restarts: me.restarts.load(Ordering::Acquire) };
    // Doorbells routed to this vCPU and IPIs to it (docs/x86.md).
    let pending = &me.pending[here.vcpu];
    let mut timer = Timer::default();
    let fired = PendingVectors::new();
    let mut tick = vmx::TICK_NS;
    let mut controls = vmread(vmcs::PROCESSOR_CONTROLS) as u32;
    let mut launched = false;
    let mut fault = false;
    loop {
        // The guest exits at its deadline or the hypervisor's tick, whichever is first.
        let wanted = if timer.read() == 0 {
            vmx::TICK_NS
        } else {
            let now = crate::tsc::now();
            if timer.fire(now) {
                fired.set(u32::from(TIMER_VECTOR));
            }
            timer.ticks_left(now).map_or(vmx::TICK_NS, |t| crate::tsc::ticks_to_ns(t).min(vmx::TICK_NS))
        };
        if wanted != tick {
            vmx::set_preemption_timer(wanted)?;
            tick = wanted;
        }
        inject([pending, &fired], &mut controls, core::mem::take(&mut fault))?;
        vmx::run(&mut regs, launched)?;
        launched = true;
        let reason = vmread(vmcs::EXIT_REASON) as u32;
        let exit = ExitInfo {
            reason,
            qualification: vmread(vmcs::EXIT_QUALIFICATION),
            guest_physical: match vmexit::basic_reason(reason) {
                vmexit::reason::EPT_VIOLATION => vmread(vmcs::GUEST_PHYSICAL_ADDRESS),
                _ => 0,
            },
        };
        if vmexit::basic_reason(exit.reason) == vmexit::reason::EXTERNAL_INTERRUPT {
            // Acknowledged on exit (a kick, or another device's): end it at the local APIC.
            crate::smp::eoi();
            // A PC guest owns the 8259 PIC whose virtual-wire output reaches this CPU: its
            // interrupts (with the vectors it programmed) are the guest's.
            let vector = vmcs::interruption_vector(vmread(vmcs::EXIT_INTERRUPTION_INFO));
            if me.pc_guest && here.vcpu == 0 && vector != crate::smp::KICK_VECTOR {
                pending.set(vector);
            }
        }
        if here.ended(system) {
            return Ok(End::Ended);
        }
        let rip = vmread(vmcs::GUEST_RIP);
        let next = rip + vmread(vmcs::EXIT_INSTRUCTION_LENGTH);
        let halted = vmexit::basic_reason(exit.reason) == vmexit::reason::HLT;
        let exit = match vmexit::decode(&exit, &regs) {
            Decoded::Cpuid { leaf, subleaf } => {
                let (a, b, c, d) = cpuid(leaf, subleaf);
                (regs.rax, regs.rbx, regs.rcx, regs.rdx) = (a.into(), b.into(), c.into(), d.into());
                skip(next)?;
                continue;
            }
            Decoded::Xsetbv { xcr, value }
                if xcr == 0 && vmexit::xcr0_valid(value, crate::cpu::xcr0_supported()) =>
            {
                crate::cpu::xsetbv(value);
                skip(next)?;
                continue;
            }
            Decoded::Xsetbv { .. } => Exit::Unhandled { syndrome: u64::from(vmexit::reason::XSETBV) },
            Decoded::TscDeadline { write } => {
                match write {
                    Some(deadline) => timer.write(deadline),
                    None => (regs.rax, regs.rdx) = (timer.read() & 0xffff_ffff, timer.read() >> 32),
                }
                skip(next)?;
                continue;
            }
            Decoded::GeneralProtection => {
                // A PC guest's EFER is the VMCS's (Linux sets SCE and NXE before it has an IDT).
                let msr = vmexit::basic_reason(reason);
                if me.pc_guest
                    && regs.rcx as u32 == EFER
                    && matches!(msr, vmexit::reason::RDMSR | vmexit::reason::WRMSR)
                {
                    let write =
                        (msr == vmexit::reason::WRMSR).then_some((regs.rdx << 32) | (regs.rax & 0xffff_ffff));
                    if pc_guest_efer(&mut regs, write)? {
                        skip(next)?;
                        continue;
                    }
                }
                // Delivered at the next entry; RIP stays at the instruction.
                fault = true;
                continue;
            }
            Decoded::Exit(exit) => exit,
        };
        services.timer = timer;
        let mut exit = exit;
        if halted && me.pc_guest && vmread(vmcs::GUEST_RFLAGS) & (1 << 9) == 0 {
            // A PC guest halting with interrupts masked has switched itself off (Linux's
            // poweroff without ACPI ends in its halt path: HLT with interrupts off).
            exit = Exit::SystemOff { via: "HLT with interrupts masked" };
        }
        if halted && me.pc_guest {
            // A PC guest's wake-ups come from its PIC, which only an entry lets in: it resumes
            // at once (its idle loop halts again).
        } else if halted {
            // HLT: the vCPU sleeps until a doorbell or IPI is pending, as a CPU halts until an
            // interrupt (with interrupts masked, for good: the CPU is the partition's alone),
            // or the run ends. No timeout, so the doorbell scenario fails if delivery does.
            // A timer interrupt that fired while the guest masked interrupts (waiting for its
            // window) wakes it as well: `sti; hlt` opens the window only after the HLT.
            while !here.woken(system) && !fired.any() && !timer.due(crate::tsc::now()) {
                crate::input::poll(system);
                core::hint::spin_loop();
            }
            if here.ended(system) {
                return Ok(End::Ended);
            }
        }
        if exit == Exit::Interrupt {
            crate::input::poll(system);
        }
        if me.pc_guest && pc_guest_before(system, p, &mut regs, exit)? {
            skip(next)?;
            continue;
        }
        if let Exit::PortIo { port, size, write } = exit {
            if forward_owned_port(system, p, &mut regs, (port, size), write) {
                skip(next)?;
                continue;
            }
        }
        let outcome = match handle_exit(&system.config, p.id, &state, exit, &mut services) {
            // No abort to inject on x86 yet: the fault policy.
            Outcome::ExternalAbort { addr, access } => partition::fault(p, Fault::Memory { addr, access }),
            outcome => outcome,
        };
        if p.virtual_uart && matches!(exit, Exit::PortIo { .. }) {
            // The access may have raised or lowered its virtual 16550's interrupt line.
            crate::uart_irq::follow(system, id);
        }
        match outcome {
            // An external interrupt or an opened interrupt window interrupted no instruction.
            Outcome::Return { .. } if exit == Exit::Interrupt => {}
            Outcome::Return { values, count } => {
                regs.set_results(&values[..count]);
                skip(next)?;
            }
            Outcome::Emulated { load } => {
                match (load, exit) {
                    (Some((_, value)), Exit::PortIo { size, .. }) => {
                        regs.rax = vmexit::load_in(regs.rax, size, value)
                    }
                    // RDMSR: edx:eax.
                    (Some((_, value)), _) => (regs.rax, regs.rdx) = (value & 0xffff_ffff, value >> 32),
                    (None, _) => {}
                }
                skip(next)?;
            }
            Outcome::VcpuOff => return Ok(End::Off),
            Outcome::ExternalAbort { .. } => return Ok(End::Stopped),
            Outcome::Stop(_) | Outcome::Restart(_) | Outcome::HaltSystem(_) => {
                let mut line = me.console.lock();
                if !line.is_empty() {
                    line.flush(&p.name, &mut Sink);
                }
                drop(line);
                let report = Report { partition: &p.name, outcome: &outcome, pc: rip };
                if here.vcpu == 0 {
                    info!("{report}");
                } else {
                    info!("vCPU {}: {report}", here.vcpu);
                }
                return Ok(match outcome {
                    Outcome::Restart(_) => End::Restart,
                    Outcome::HaltSystem(_) => End::HaltSystem,
                    _ => End::Stopped,
                });
            }
        }
    }
}
