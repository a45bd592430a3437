//! Policy: what happens when a partition's vCPU exits to the hypervisor.
//!
//! [`handle_exit`] is the single decision point. It validates every guest-supplied argument,
//! never panics, and returns an [`Outcome`] that the arch layer carries out.

use core::fmt;

use crate::addr::{GuestPhys, HostPhys};
use crate::config::x86::VIRTUAL_UART_PORTS;
use crate::config::{FaultPolicy, OutsideMemory, PartitionConfig, PartitionId, SystemConfig};
use crate::exit::{Access, Exit, MmioAccess, RegisterClass, RegisterName, VcpuSet};
use crate::hypercall::{self, Call, Status};
use crate::vgic::{self, Frame};
use crate::vplatform::{self, Emulated};

pub use channel_peers::ChannelPeers;

/// What the hypervisor needs from the machine to carry out a hypercall.
pub trait Services {
    /// Copies `buf.len()` bytes of partition memory at `pa`; the range was checked to be the
    /// calling partition's own memory.
    fn read_memory(&mut self, pa: HostPhys, buf: &mut [u8]);
    /// Sends bytes from the partition to the console (line-buffered, prefixed by its name).
    fn console_write(&mut self, bytes: &[u8]);
    /// Blocks this physical CPU for up to `timeout_ns`, or until a virtual interrupt is ready
    /// for the calling vCPU.
    fn wait(&mut self, timeout_ns: u64);
    /// Emulates an access to the calling partition's virtual GIC; returns the value read.
    fn gic_access(&mut self, frame: Frame, access: vgic::Access) -> u64;
    /// Carries out an access of the calling vCPU to its GICv2 CPU interface that trapped (the
    /// hypervisor unmapped that page to re-sample hardware-linked interrupts first): on the
    /// vCPU's own virtual CPU interface, as the guest's access would have; returns the value
    /// read. Only aligned 32-bit accesses come here. An arch without a GICv2 never traps there.
    fn gic_cpu_access(&mut self, access: vgic::Access) -> u64 {
        let _ = access;
        0
    }
    /// Makes interrupt `intid` pending in partition `target`'s virtual GIC and wakes the CPU
    /// that runs it.
    fn notify(&mut self, target: PartitionId, intid: u32);
    /// Makes interrupt `intid` pending for `targets`, vCPUs of the calling partition, and
    /// wakes them; false (nothing sent) if `intid` is not an IPI on this architecture.
    fn send_ipi(&mut self, targets: VcpuSet, intid: u32) -> bool;
    /// Sends the calling partition's doorbell `intid` (one of its channels', checked) to its
    /// vCPU `vcpu` (checked) from now on; false where its virtual interrupt controller routes
    /// interrupts instead (the guest programs that).
    fn route_doorbell(&mut self, intid: u32, vcpu: usize) -> bool {
        let _ = (intid, vcpu);
        false
    }
    /// Starts vCPU `vcpu` of the calling partition at `entry` with `context` in its first
    /// argument register.
    fn cpu_on(&mut self, vcpu: usize, entry: GuestPhys, context: u64) -> Status;
    /// The power state of vCPU `vcpu` of the calling partition; `None` if there is no such vCPU.
    fn vcpu_power(&mut self, vcpu: usize) -> Option<power::Power>;
    /// Emulates an access to the calling partition's virtual UART at `offset`; returns the value
    /// read.
    fn uart_access(&mut self, offset: u64, write: Option<u64>) -> u64;
    /// Whether partition `id` is running now (or still loading, at boot: not stopped).
    fn partition_running(&mut self, id: PartitionId) -> bool;
    /// Carries out a trapped access to the PMU register `id` (one the arch classified as
    /// [`RegisterClass::Pmu`]) on this CPU's PMU; returns the value read.
    fn pmu_access(&mut self, id: u32, write: Option<u64>) -> u64;
    /// Carries out an access to the calling partition's virtio device `device` (its local
    /// number) at `offset` in its window (`virtio::net::Link::access` under the link's lock, then
    /// the interrupts it asks for); returns the value read. An arch without virtio support reads
    /// zeros (Linux then finds no device: the magic value is wrong).
    fn virtio_access(&mut self, device: usize, offset: u64, access: MmioAccess) -> u64 {
        let _ = (device, offset, access);
        0
    }
}

/// Run-time facts about the calling partition that the config does not hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct PartitionState {
    /// How many times the partition has been restarted since boot.
    pub restarts: u32,
}

/// Why a partition's run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Access outside its memory (stage-2 / EPT violation).
    Memory { addr: GuestPhys, access: Access },
    /// A call the platform does not let partitions make (on Arm, an SMC that is not PSCI).
    ForbiddenCall { via: &'static str, function: u64 },
    /// Access to a register the hypervisor traps and does not emulate.
    Register { name: RegisterName, write: bool },
    /// An I/O port access to a port that is not the partition's (x86).
    Port { port: u16, write: bool },
    /// Any other trapped instruction or exception.
    Unhandled { syndrome: u64 },
    /// One of its devices made a DMA access the IOMMU refused.
    Dma(crate::iommu::DmaFault),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::Memory { addr, access } => {
                write!(f, "stage-2 {} abort at IPA {addr} (outside its memory)", access.name())
            }
            Fault::ForbiddenCall { via, function } => write!(f, "forbidden {via} (function {function:#x})"),
            Fault::Register { name, write } => {
                let dir = if write { "write" } else { "read" };
                write!(f, "trapped system register {dir} ({name})")
            }
            Fault::Port { port, write } => {
                let dir = if write { "write" } else { "read" };
                write!(f, "I/O port {dir} at {:#x} (no device of its own there)", u64::from(port))
            }
            Fault::Unhandled { syndrome } => {
                write!(f, "unhandled exception (syndrome {syndrome:#x})")
            }
            Fault::Dma(fault) => write!(f, "{fault}"),
        }
    }
}

/// Why a partition stops running (for the console report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The partition called [`hypercall::HYP_EXIT`].
    Exited { code: u64 },
    /// The partition powered itself off; `via` says how (`PSCI SYSTEM_OFF`).
    PoweredOff { via: &'static str },
    /// The partition reset itself; `via` says how (`PSCI SYSTEM_RESET`).
    Reset { via: &'static str },
    /// A fault, handled by the partition's `on-fault` policy.
    Fault(Fault),
}

/// What the arch layer must do next with the vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Resume the guest after the trapping instruction, with `values` in x0.. (rax..).
    Return { values: [u64; 5], count: usize },
    /// An emulated device access completed: skip the instruction; for a load, put the value
    /// in the named register.
    Emulated { load: Option<(u8, u64)> },
    /// Stop the partition; the others keep running.
    Stop(StopReason),
    /// Reload the partition from its image into fresh memory and start it again.
    Restart(StopReason),
    /// Power the machine off.
    HaltSystem(StopReason),
    /// This vCPU turns itself off (PSCI CPU_OFF); the partition keeps running.
    VcpuOff,
    /// The access that trapped (at `addr`, outside the partition's memory) takes a synchronous
    /// external abort in the guest, as a bus error would: the guest's own exception handler runs
    /// next, the partition keeps running.
    ExternalAbort { addr: GuestPhys, access: Access },
}

impl Outcome {
    fn ret(value: u64) -> Self {
        Outcome::Return { values: [value, 0, 0, 0, 0], count: 1 }
    }
    fn status(status: Status) -> Self {
        Self::ret(status.to_reg())
    }
}

/// Decides what an exit of partition `id` means.
pub fn handle_exit(
    system: &SystemConfig,
    id: PartitionId,
    state: &PartitionState,
    exit: Exit,
    services: &mut dyn Services,
) -> Outcome {
    let Some(partition) = system.partitions.get(usize::from(id)) else {
        return Outcome::Return { values: [0; 5], count: 0 };
    };
    match exit {
        Exit::Hypercall { function, args } => {
            handle_call(system, partition, state, function, &args, services)
        }
        Exit::ForbiddenCall { via, function } => fault(partition, Fault::ForbiddenCall { via, function }),
        Exit::Answered { value } => Outcome::ret(value),
        Exit::CpuOn { vcpu, entry, context } => Outcome::status(services.cpu_on(vcpu, entry, context)),
        Exit::CpuOff => Outcome::VcpuOff,
        Exit::CpuState { vcpu } => services
            .vcpu_power(vcpu)
            .map_or(Outcome::status(Status::InvalidParameters), |p| Outcome::ret(p.to_reg())),
        Exit::SystemOff { via } => Outcome::Stop(StopReason::PoweredOff { via }),
        Exit::SystemReset { via } => Outcome::Restart(StopReason::Reset { via }),
        Exit::SendIpi { targets, intid } => {
            // The arch decoded an interrupt controller's IPI register: it sends only IPIs.
            let _ = services.send_ipi(targets, intid);
            Outcome::Emulated { load: None }
        }
        Exit::Mmio { addr, access } => mmio(system, partition, addr, access, services),
        Exit::PortIo { port, size, write } => port_io(partition, port, size, write, services),
        Exit::Stage2Fault { addr, access } => outside_memory(partition, addr, access),
        Exit::Register { class, name, register, write } => {
            register_access(partition, class, name, register, write, services)
        }
        Exit::WaitForInterrupt | Exit::Interrupt => Outcome::Return { values: [0; 5], count: 0 },
        Exit::Unhandled { syndrome } => fault(partition, Fault::Unhandled { syndrome }),
        Exit::DmaFault(dma) => fault(partition, Fault::Dma(dma)),
    }
}

/// Applies the partition's `on-fault` policy.
pub fn fault(partition: &PartitionConfig, fault: Fault) -> Outcome {
    let reason = StopReason::Fault(fault);
    match partition.on_fault {
        FaultPolicy::Stop => Outcome::Stop(reason),
        FaultPolicy::Restart => Outcome::Restart(reason),
        FaultPolicy::HaltSystem => Outcome::HaltSystem(reason),
    }
}

/// A trapped register access, as the arch classified it: hidden registers (debug, trace, RAS,
/// activity monitors) read as zero and ignore writes (a guest OS may reset them at boot, but
/// must not get the real ones); PMU accesses go to the CPU's own PMU; anything else is a fault.
fn register_access(
    partition: &PartitionConfig,
    class: RegisterClass,
    name: RegisterName,
    register: u8,
    write: Option<u64>,
    services: &mut dyn Services,
) -> Outcome {
    match class {
        RegisterClass::Hidden => Outcome::Emulated { load: write.is_none().then_some((register, 0)) },
        RegisterClass::Pmu => {
            let read = services.pmu_access(name.id, write);
            Outcome::Emulated { load: write.is_none().then_some((register, read)) }
        }
        RegisterClass::Forbidden => fault(partition, Fault::Register { name, write: write.is_some() }),
    }
}

/// A decoded load or store outside the partition's memory: its virtual GIC, or a fault.
fn mmio(
    system: &SystemConfig,
    partition: &PartitionConfig,
    addr: GuestPhys,
    access: MmioAccess,
    services: &mut dyn Services,
) -> Outcome {
    let load =
        |value: u64| Outcome::Emulated { load: access.write.is_none().then_some((access.register, value)) };
    if let Some((frame, offset)) = vplatform::gic_frame(&system.board, partition.cpus.len(), addr) {
        let a = vgic::Access { offset, size: access.size, write: access.write };
        return load(services.gic_access(frame, a));
    }
    if let Some(offset) = vplatform::gic_cpu_interface(&system.board, addr) {
        // The CPU interface's registers are 32-bit words: anything else reads as zero and is
        // ignored (never carried out on the hardware's interface).
        if access.size != 4 || !offset.is_multiple_of(4) {
            return load(0);
        }
        let a = vgic::Access { offset, size: access.size, write: access.write };
        return load(services.gic_cpu_access(a));
    }
    let pages = &system.board.emulated;
    // The virtual UART first (a Linux console's every byte); a window's pages are counted only
    // for an address inside it.
    if let Some((_, offset)) = pages.find(Emulated::VirtualUart, addr, usize::from(partition.virtual_uart)) {
        return load(services.uart_access(offset, access.write));
    }
    let within = |what: Emulated| pages.find(what, addr, what.pages() as usize).is_some();
    if within(Emulated::Doorbells) {
        let channels = system.endpoint_channels(partition.id).count();
        if let Some((channel, _)) = pages.find(Emulated::Doorbells, addr, channels) {
            if access.write.is_some() {
                let _ = channel_notify(system, partition.id, channel as u64, services);
            }
            return load(0);
        }
    }
    if within(Emulated::Virtio) {
        let devices = system.virtio_devices(partition.id).count();
        if let Some((device, offset)) = pages.find(Emulated::Virtio, addr, devices) {
            return load(services.virtio_access(device, offset, access));
        }
    }
    outside_memory(partition, addr, access.kind())
}

/// An access outside the partition's memory and its virtual devices: its `outside-memory`
/// choice says whether the guest takes an external abort or the partition its fault policy.
fn outside_memory(partition: &PartitionConfig, addr: GuestPhys, access: Access) -> Outcome {
    match partition.outside_memory() {
        OutsideMemory::ExternalAbort => Outcome::ExternalAbort { addr, access },
        OutsideMemory::Fault => fault(partition, Fault::Memory { addr, access }),
    }
}

/// An I/O port access that trapped (the partition's own devices' ports pass through): its
/// virtual UART's registers, else its `outside-memory` choice: `external-abort` makes the
/// access one no device answers on a PC's bus (a read gets all ones, a write is dropped), so a
/// guest OS probing for legacy devices finds none; `fault` applies the `on-fault` policy.
fn port_io(
    partition: &PartitionConfig,
    port: u16,
    size: u8,
    write: Option<u32>,
    services: &mut dyn Services,
) -> Outcome {
    let width = match size {
        1 => 0xff,
        2 => 0xffff,
        _ => 0xffff_ffff,
    };
    let load = |value: u64| Outcome::Emulated { load: write.is_none().then_some((0, value & width)) };
    if partition.virtual_uart && VIRTUAL_UART_PORTS.contains(port) {
        // The UART's registers are bytes: a wider access reaches the first one only.
        let offset = u64::from(port) - u64::from(VIRTUAL_UART_PORTS.base);
        return load(services.uart_access(offset, write.map(|v| u64::from(v & 0xff))));
    }
    match partition.outside_memory() {
        OutsideMemory::ExternalAbort => load(u64::MAX),
        OutsideMemory::Fault => fault(partition, Fault::Port { port, write: write.is_some() }),
    }
}

/// `HYP_SEND_IPI`: all of `targets` must be the caller's own vCPUs (a set naming one it lacks
/// sends nothing), and `intid` an IPI the architecture delivers.
fn send_ipi(partition: &PartitionConfig, targets: u64, intid: u64, services: &mut dyn Services) -> Outcome {
    let vcpus = partition.cpus.len();
    let own = if vcpus >= 64 { u64::MAX } else { (1u64 << vcpus) - 1 };
    let sent = match u32::try_from(intid) {
        Ok(intid) if targets != 0 && targets & !own == 0 => services.send_ipi(VcpuSet(targets), intid),
        _ => false,
    };
    Outcome::status(if sent { Status::Success } else { Status::InvalidParameters })
}

/// `HYP_INTERRUPT_TARGET`: one of the caller's doorbells to one of its vCPUs.
fn interrupt_target(
    system: &SystemConfig,
    partition: &PartitionConfig,
    intid: u64,
    vcpu: u64,
    services: &mut dyn Services,
) -> Outcome {
    let channels = system.endpoint_channels(partition.id).count();
    let doorbell = (0..channels).map(vplatform::doorbell_intid).find(|&d| u64::from(d) == intid);
    let (Some(doorbell), Ok(vcpu)) = (doorbell, usize::try_from(vcpu)) else {
        return Outcome::status(Status::InvalidParameters);
    };
    if vcpu >= partition.cpus.len() {
        return Outcome::status(Status::InvalidParameters);
    }
    match services.route_doorbell(doorbell, vcpu) {
        true => Outcome::ret(0),
        false => Outcome::status(Status::NotSupported),
    }
}

/// Rings the peer's doorbell on the caller's channel number `channel` (only a channel partition
/// `id` is an endpoint of); returns the caller's x0: 0, or INVALID_PARAMETERS for a channel it
/// does not have.
fn channel_notify<S: Services + ?Sized>(
    system: &SystemConfig,
    id: PartitionId,
    channel: u64,
    services: &mut S,
) -> u64 {
    let Some(c) = usize::try_from(channel).ok().and_then(|n| system.endpoint_channels(id).nth(n)) else {
        return Status::InvalidParameters.to_reg();
    };
    for &peer in c.endpoints.iter().filter(|&&e| e != id) {
        if let Some(local) = system.endpoint_channels(peer).position(|pc| pc.id == c.id) {
            services.notify(peer, vplatform::doorbell_intid(local));
        }
    }
    0
}

/// A hypercall of partition `id` that is `HYP_CHANNEL_NOTIFY`: rings the doorbells
/// [`handle_exit`] rings (channel ownership, the peers' local doorbells, through `services`), as
/// `peers` has them from the configuration at boot ([`ChannelPeers::new`]: a lookup where
/// `handle_exit` walks the configuration's channels), and returns the value it answers in the
/// caller's x0, the only register it changes. `None`, having done nothing, for any other call or
/// an unknown partition: those go through [`handle_exit`]. An arch calls this on a fast path
/// that skips the `Exit` and [`Outcome`] round trip; it must still make the checks it makes
/// before `handle_exit` (the partition stopped or restarting, a DMA fault waiting) and the tail
/// it makes after an [`Outcome::Return`] (virtual interrupts to load). Generic, so that the
/// arch's services are called directly there.
#[inline(always)]
pub fn channel_notify_at_once<S: Services + ?Sized>(
    peers: &ChannelPeers,
    id: PartitionId,
    function: u64,
    args: &[u64; 6],
    services: &mut S,
) -> Option<u64> {
    // The one call taken here (`Call::decode` then folds to its argument).
    if function != hypercall::HYP_CHANNEL_NOTIFY {
        return None;
    }
    let Some(Call::ChannelNotify { channel }) = Call::decode(function, args) else { return None };
    let Some(doorbells) = peers.of(id)?.doorbells(channel) else {
        return Some(Status::InvalidParameters.to_reg());
    };
    for d in doorbells {
        services.notify(d.peer, d.intid);
    }
    Some(0)
}

fn handle_call(
    system: &SystemConfig,
    partition: &PartitionConfig,
    state: &PartitionState,
    function: u64,
    args: &[u64; 6],
    services: &mut dyn Services,
) -> Outcome {
    let Some(call) = Call::decode(function, args) else {
        return Outcome::status(Status::NotSupported);
    };
    match call {
        Call::Version => Outcome::ret(hypercall::ABI_VERSION),
        Call::PartitionInfo => Outcome::Return {
            values: [u64::from(partition.id), u64::from(state.restarts), partition.cpus.len() as u64, 0, 0],
            count: 3,
        },
        Call::PartitionName => Outcome::Return { values: hypercall::pack_name(&partition.name), count: 5 },
        Call::ConsoleWrite { ipa, len } => console_write(partition, ipa, len, services),
        Call::Yield => Outcome::ret(0),
        Call::Wait { timeout_ns } => {
            services.wait(timeout_ns);
            Outcome::ret(0)
        }
        Call::Exit { code } => Outcome::Stop(StopReason::Exited { code }),
        Call::ChannelNotify { channel } => {
            Outcome::ret(channel_notify(system, partition.id, channel, services))
        }
        Call::PartitionState { id } => match PartitionId::try_from(id) {
            Ok(id) if usize::from(id) < system.partitions.len() => {
                Outcome::ret(u64::from(services.partition_running(id)))
            }
            _ => Outcome::status(Status::InvalidParameters),
        },
        Call::SendIpi { targets, intid } => send_ipi(partition, targets, intid, services),
        Call::InterruptTarget { intid, vcpu } => interrupt_target(system, partition, intid, vcpu, services),
    }
}

fn console_write(partition: &PartitionConfig, ipa: u64, len: u64, services: &mut dyn Services) -> Outcome {
    if len > hypercall::CONSOLE_WRITE_MAX {
        return Outcome::status(Status::InvalidParameters);
    }
    if len == 0 {
        return Outcome::ret(0);
    }
    let Some(pa) = partition.translate(GuestPhys(ipa), len) else {
        return Outcome::status(Status::InvalidParameters);
    };
    let mut buf = [0u8; hypercall::CONSOLE_WRITE_MAX as usize];
    let buf = &mut buf[..len as usize];
    services.read_memory(pa, buf);
    services.console_write(buf);
    Outcome::ret(len)
}

/// One console line describing how a partition's run ended, e.g.
/// `partition 'attacker' fault: stage-2 write abort at IPA 0x42000000 (outside its memory), PC 0x44000123: restarting`.
pub struct Report<'a> {
    pub partition: &'a str,
    pub outcome: &'a Outcome,
    pub pc: u64,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (reason, action) = match self.outcome {
            Outcome::Return { .. }
            | Outcome::Emulated { .. }
            | Outcome::VcpuOff
            | Outcome::ExternalAbort { .. } => return Ok(()),
            Outcome::Stop(r) => (r, "stopped"),
            Outcome::Restart(r) => (r, "restarting"),
            Outcome::HaltSystem(r) => (r, "halting the system"),
        };
        let name = self.partition;
        match reason {
            StopReason::Exited { code } => {
                write!(f, "partition '{name}' exited with code {code}: {action}")
            }
            StopReason::PoweredOff { via } => write!(f, "partition '{name}' powered off ({via}): {action}"),
            StopReason::Reset { via } => write!(f, "partition '{name}' reset ({via}): {action}"),
            // A device's fault: the vCPU's PC says nothing about it.
            StopReason::Fault(fault @ Fault::Dma(_)) => {
                write!(f, "partition '{name}' fault: {fault}: {action}")
            }
            StopReason::Fault(fault) => {
                write!(f, "partition '{name}' fault: {fault}, PC {:#x}: {action}", self.pc)
            }
        }
    }
}

pub mod channel_peers;
pub mod doorbell_targets;
pub mod power;
#[cfg(test)]
mod tests;
