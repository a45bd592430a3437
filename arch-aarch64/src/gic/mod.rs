//! The interrupt controller as the rest of the hypervisor uses it, whatever the board's GIC:
//! set up, acknowledge and deactivate, send the kick SGI, route an SPI, and the list registers
//! through which partitions get their interrupts. [`v3`] drives a GICv3 (system registers, a
//! redistributor per CPU), [`v2`] a GICv2 with the virtualization extensions (GIC-400: memory
//! mapped CPU interface and GICH list registers). Which one runs is the board's GIC version,
//! chosen once at boot.

use core::sync::atomic::{AtomicBool, Ordering};

use tantalum_aarch64::built::BUILT;
use tantalum_core::config::Gic;
use tantalum_core::vgic::{Listed, VirtualGic};

mod v2;
mod v3;

/// SGI the hypervisor sends to make another CPU look at its partition's virtual interrupts.
pub const KICK_SGI: u32 = 0;
/// The virtual CPU interface's maintenance interrupt (PPI 9).
pub const MAINTENANCE_INTID: u32 = 25;
/// The EL1 virtual and physical timers' PPIs: forwarded to the vCPU of this CPU.
pub const TIMER_INTIDS: [u32; 2] = [27, 30];
/// The PMU's overflow interrupt (PPI 7): forwarded to the vCPU of this CPU like the timers'.
pub const PMU_INTID: u32 = 16 + tantalum_core::vplatform::PMU_PPI;
/// The PPIs forwarded hardware-linked to the vCPU of this CPU: the timers' and the PMU's.
pub const FORWARDED_PPIS: [u32; 3] = [TIMER_INTIDS[0], TIMER_INTIDS[1], PMU_INTID];
/// The EL2 physical timer's PPI: the hypervisor's own wake-up while a vCPU waits.
pub const WAKEUP_INTID: u32 = 26;
/// INTIDs from here on are special (1020..1023): nothing to acknowledge.
const SPURIOUS: u32 = 1020;

/// The board's GIC is a GICv2 (set once, before any CPU uses the GIC).
static V2: AtomicBool = AtomicBool::new(false);

fn v2() -> bool {
    // A hypervisor built for one GIC version knows it (src/built.rs): the other's code goes.
    match (BUILT.gic_v2, BUILT.gic_v3) {
        (true, true) => V2.load(Ordering::Relaxed),
        (v2, _) => v2,
    }
}

/// Enables the distributor (boot CPU, once) of the board's GIC.
#[unsafe(link_section = ".text.boot_only")]
pub fn init_distributor(gic: &Gic) {
    let base = |r: tantalum_core::addr::HostRange| r.start.as_u64() as usize;
    match gic.v2 {
        Some(frames) => {
            V2.store(true, Ordering::Release);
            // SAFETY: the frames are the board GIC's, from the validated config; the EL2 map
            // covers them as device memory and only the hypervisor drives them.
            unsafe {
                v2::init_distributor(
                    base(gic.distributor),
                    base(frames.cpu),
                    base(frames.hyp),
                    base(frames.vcpu),
                )
            };
        }
        None => v3::init_distributor(base(gic.distributor), base(gic.redistributors)),
    }
}

/// Sets up this CPU's side of the GIC: the kick SGI, the maintenance interrupt and the timers
/// enabled, the CPU interface and the virtual CPU interface on.
pub fn init_cpu(mpidr: u64) -> Result<(), &'static str> {
    if v2() {
        v2::init_cpu(mpidr)
    } else {
        v3::init_cpu(mpidr)
    }
}

/// Sends the kick SGI to the CPU with affinity `mpidr`.
pub fn kick(mpidr: u64) {
    if v2() {
        v2::kick(mpidr)
    } else {
        v3::kick(mpidr)
    }
}

/// Whether the board's GIC is a GICv2: which [`CpuInterface`] to use.
#[inline(always)]
pub fn is_v2() -> bool {
    v2()
}

/// The CPU interface operations of the interrupt fast path, for code compiled once per GIC
/// version ([`GicV2`], [`GicV3`]): it asks [`is_v2`] once per exit instead of at every
/// operation.
pub trait CpuInterface {
    /// What [`CpuInterface::load_at_once`] loaded through, for
    /// [`CpuInterface::masked_after_load`]: the GICv2's virtual interface control (looked up
    /// again, a load and a check), nothing on a GICv3.
    type Loaded: Copy;
    /// Acknowledges the highest-priority interrupt pending at this CPU, if any (one IAR read; see
    /// [`acknowledge`]).
    fn acknowledge_one() -> Option<u32>;
    /// See [`deactivate`].
    fn deactivate(intid: u32);
    /// Loads `d`, the only interrupt ready for the vCPU of this CPU
    /// ([`VirtualGic::deliver_hw_at_once`]), into a list register if all of them are empty: what
    /// [`load_list_registers`] would do then, without looking at any, and returns what it loaded
    /// through. `None`, having changed nothing, when one is in use (the caller latches `d` and
    /// loads as usual).
    fn load_at_once(d: &tantalum_core::vgic::Deliverable) -> Option<Self::Loaded>;
    /// [`CpuInterface::masked_by_priority`] right after [`CpuInterface::load_at_once`].
    fn masked_after_load(loaded: Self::Loaded, priority: u8) -> bool;
    /// Whether the guest's priority mask hides an interrupt of `priority` (see
    /// [`load_list_registers`]).
    fn masked_by_priority(priority: u8) -> bool;
    /// Before a guest that cannot take interrupts now (IRQs masked) goes on, with a hardware-linked
    /// interrupt just loaded ([`load_list_registers`]): traps its next acknowledge so that the line
    /// is re-sampled first (a source silenced meanwhile must not be replayed). Returns false on a
    /// GICv2, which has no such trap: its virtual CPU interface is a page the guest accesses
    /// directly, and the caller unmaps that page instead (`gicv_trap`), whose trapped accesses
    /// [`cpu_interface_access`] carries out.
    fn trap_before_acknowledge() -> bool;
}

/// A GICv2's [`CpuInterface`].
pub struct GicV2;
/// A GICv3's [`CpuInterface`].
pub struct GicV3;

impl CpuInterface for GicV2 {
    type Loaded = &'static tantalum_core::gic_regs::VirtualControl;
    #[inline(always)]
    fn acknowledge_one() -> Option<u32> {
        v2::acknowledge_one()
    }
    #[inline(always)]
    fn deactivate(intid: u32) {
        v2::deactivate(intid)
    }
    #[inline(always)]
    fn load_at_once(d: &tantalum_core::vgic::Deliverable) -> Option<Self::Loaded> {
        v2::load_at_once(d)
    }
    #[inline(always)]
    fn masked_after_load(gich: Self::Loaded, priority: u8) -> bool {
        v2::masked_in(gich, priority)
    }
    #[inline(always)]
    fn masked_by_priority(priority: u8) -> bool {
        v2::masked_by_priority(priority)
    }
    #[inline(always)]
    fn trap_before_acknowledge() -> bool {
        false
    }
}

impl CpuInterface for GicV3 {
    type Loaded = ();
    #[inline(always)]
    fn acknowledge_one() -> Option<u32> {
        v3::acknowledge_one()
    }
    #[inline(always)]
    fn deactivate(intid: u32) {
        v3::deactivate(intid)
    }
    #[inline(always)]
    fn load_at_once(d: &tantalum_core::vgic::Deliverable) -> Option<()> {
        v3::load_at_once(d).then_some(())
    }
    #[inline(always)]
    fn masked_after_load((): (), priority: u8) -> bool {
        v3::masked_by_priority(priority)
    }
    #[inline(always)]
    fn masked_by_priority(priority: u8) -> bool {
        v3::masked_by_priority(priority)
    }
    #[inline(always)]
    fn trap_before_acknowledge() -> bool {
        v3::trap_before_acknowledge();
        true
    }
}

/// Acknowledges the physical interrupts pending at this CPU (at most `out.len()`), dropping
/// their priority; returns how many. Each must then be deactivated ([`deactivate`]) or handed
/// to a guest through a hardware-linked list register.
pub fn acknowledge(out: &mut [u32]) -> usize {
    if v2() {
        v2::acknowledge(out)
    } else {
        v3::acknowledge(out)
    }
}

/// Deactivates a physical interrupt that [`acknowledge`] returned.
pub fn deactivate(intid: u32) {
    if v2() {
        v2::deactivate(intid)
    } else {
        v3::deactivate(intid)
    }
}

/// Routes the physical SPI `intid` to the CPU with affinity `mpidr` and enables it (a device
/// passed through to the partition that runs there). `edge` selects edge triggering.
pub fn route_spi(intid: u32, mpidr: u64, edge: bool) {
    if v2() {
        v2::route_spi(intid, mpidr, edge)
    } else {
        v3::route_spi(intid, mpidr, edge)
    }
}

/// Sends the physical SPI `intid` (already routed and configured by [`route_spi`]) to the CPU
/// with affinity `mpidr` from now on: a passed-through device's interrupt follows its
/// partition's routing.
pub fn retarget_spi(intid: u32, mpidr: u64) {
    if v2() {
        v2::retarget_spi(intid, mpidr)
    } else {
        v3::retarget_spi(intid, mpidr)
    }
}

/// Makes the physical SPI `intid` (a passed-through device's) edge-triggered or
/// level-sensitive, as the guest configured its virtual one.
pub fn set_trigger(intid: u32, edge: bool) {
    if v2() {
        v2::set_trigger(intid, edge)
    } else {
        v3::set_trigger(intid, edge)
    }
}

/// The highest-priority interrupt pending at this CPU, without acknowledging it.
pub fn highest_pending() -> u32 {
    if v2() {
        v2::highest_pending()
    } else {
        v3::highest_pending()
    }
}

/// Resets the virtual CPU interface for a vCPU that starts from scratch: list registers
/// empty, interface enabled.
pub fn reset_virtual_interface() {
    if v2() {
        v2::reset_virtual_interface()
    } else {
        v3::reset_virtual_interface()
    }
}

/// What [`load_list_registers`] did.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// The least urgent priority of the hardware-linked interrupts it loaded that
    /// [`CpuInterface::trap_before_acknowledge`] re-samples, if any.
    pub hw_priority: Option<u8>,
    /// Something is still ready for the vCPU (did not fit, or waits for the guest to end the
    /// same INTID): [`VirtualGic::has_deliverable`] after the load, without evaluating it again.
    pub more: bool,
}

/// Moves interrupts that `gic` has ready for `vcpu` into free list registers. When more are
/// ready than fit, asks for a maintenance interrupt once the list registers drain.
pub fn load_list_registers(gic: &mut VirtualGic, vcpu: usize) -> Loaded {
    if v2() {
        v2::load_list_registers(gic, vcpu)
    } else {
        v3::load_list_registers(gic, vcpu)
    }
}

/// The interrupts this CPU's list registers hold for its vCPU `vcpu`, for
/// [`VirtualGic::access_listed`]; returns how many.
pub fn read_listed(vcpu: u8, out: &mut [Listed]) -> usize {
    let mut n = 0;
    for_each_listed(vcpu, |entry| {
        if let Some(slot) = out.get_mut(n) {
            *slot = entry;
            n += 1;
        }
    });
    n
}

/// Calls `f` with each interrupt this CPU's list registers hold for its vCPU `vcpu` (what
/// [`read_listed`] gives, without an array): for [`tantalum_core::vgic::Shows`].
#[inline]
pub fn for_each_listed(vcpu: u8, f: impl FnMut(Listed)) {
    if v2() {
        v2::for_each_listed(vcpu, f)
    } else {
        v3::for_each_listed(vcpu, f)
    }
}

/// Whether this CPU's list registers certainly hold nothing, so that [`for_each_listed`] would
/// give nothing (each GIC tells from its empty list register status register). `board_v2`:
/// the board's GIC is a GICv2, as the caller knows already (what this module's `v2` says).
#[inline]
pub fn lists_nothing(board_v2: bool) -> bool {
    debug_assert_eq!(board_v2, v2());
    if board_v2 {
        v2::lists_nothing()
    } else {
        v3::lists_nothing()
    }
}

/// Writes back what [`VirtualGic::access_listed`] changed in entries of [`read_listed`].
pub fn write_listed(listed: &[Listed]) {
    if v2() {
        v2::write_listed(listed)
    } else {
        v3::write_listed(listed)
    }
}

/// Whether the physical interrupt `intid`, which this CPU acknowledged, is still pending: for a
/// level-sensitive one, whether its line is still asserted; an edge-triggered one counts as
/// pending. For [`VirtualGic::resample_held`].
pub fn still_pending(intid: u32) -> bool {
    if v2() {
        v2::still_pending(intid)
    } else {
        v3::still_pending(intid)
    }
}

/// A guest's access to its GICv2 CPU interface that trapped (the page unmapped: see
/// [`CpuInterface::trap_before_acknowledge`]): first ends the hardware-linked list registers whose line fell,
/// then carries the access out on this CPU's virtual CPU interface. Returns the value read, and
/// whether a hardware-linked interrupt the priority mask hides is still loaded (the page must
/// stay unmapped, so that lowering the mask is seen).
pub fn cpu_interface_access(access: tantalum_core::vgic::Access) -> (u64, bool) {
    if !v2() {
        return (0, false);
    }
    v2::resample_listed();
    let value = v2::cpu_interface_access(access);
    (value, v2::holds_masked_hw())
}

/// A trapped group 1 CPU interface access while [`CpuInterface::trap_before_acknowledge`] had set the trap:
/// ends the hardware-linked entries whose line fell and clears the trap (the guest then retries
/// the access). Returns false when the trap was not set (the access is the guest's fault).
pub fn on_acknowledge_trap() -> bool {
    if v2() || !v3::take_acknowledge_trap() {
        return false;
    }
    v3::resample_listed();
    true
}

/// When to load more into the list registers (`more`: interrupts wait that did not fit; `any_pending`:
/// a list register holds a pending one): once the guest has taken every pending one (`npie`), or,
/// when none is pending (every one active: the guest is handling them all), once it has ended
/// all but one (`uie`). NPIE with every list register active would fire at once, again and
/// again, with nothing to load: a guest that never ends its interrupts would livelock its CPU.
fn refill_trigger<T: Default>(more: bool, any_pending: bool, npie: T, uie: T) -> T {
    match (more, any_pending) {
        (false, _) => T::default(),
        (true, true) => npie,
        (true, false) => uie,
    }
}
