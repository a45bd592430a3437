//! The trapped-MMIO fast path (issue 14): a load or store that the hardware decoded (ESR_EL2.ISV)
//! by a 32-bit instruction to the partition's virtual GIC or virtual UART is emulated straight from the vectors, with only
//! the registers a call clobbers saved (`boot.rs`, `VECTOR_GUEST_SYNC`), without the `Exit` and
//! `Outcome` round trip through core's `handle_exit`. It makes the same checks and the same
//! decisions as that full path: the same decoding (`esr::decoded_access`), the same address map
//! (the virtual GIC's frames first, then the UART's page, core's `vplatform`), the same
//! emulation (core's register models, through the functions below that the full path calls
//! too), and the same tail (the loaded value extended as the instruction asks, the PC advanced,
//! virtual interrupts loaded). Anything else goes to the full path before anything changed: other
//! addresses (doorbells, virtio, faults), an access that reaches other vCPUs' list registers, a
//! partition stopped or restarting since this vCPU entered, a DMA fault waiting.

use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::{ELR_EL2, FAR_EL2, HPFAR_EL2, SPSR_EL2};
use tantalum_aarch64::esr::{self, Syndrome};
use tantalum_core::vgic::{self, Frame};
use tantalum_core::vplatform::{Emulated, GicWindows, GICC_TRAPPED_SIZE};
use tock_registers::interfaces::{Readable, Writeable};

use crate::boot::GuestFrame;
use tantalum_core::config::{PartitionConfig, SystemConfig};

use crate::system::Partition;
use crate::vcpu::{self, Here, Running};
use crate::{console, gic};

/// Where the fast path emulates for the vCPU running on a CPU, in that CPU's [`Running`] record
/// (which also gives its partition, the generation it entered with, its hint and DMA-fault
/// flag), set by [`Windows::set`] before the vCPU enters the guest.
pub(crate) struct Windows {
    /// The vCPU (bits 0..16), its partition's vCPUs less one (16..32: decoded as at least one,
    /// which `vgic::constant` then needs not make sure of), the GICv2 front end (bit 32); see
    /// [`unpack`].
    shape: AtomicU64,
    /// `GicWindows` of the partition (all 0: none).
    gicd: AtomicU64,
    gicd_size: AtomicU64,
    gicr: AtomicU64,
    gicr_size: AtomicU64,
    /// The virtual UART's page and its size (0: the partition has none).
    uart: AtomicU64,
    uart_size: AtomicU64,
}

impl Windows {
    /// No window: every access takes the full path.
    pub(crate) const fn none() -> Windows {
        Windows {
            shape: AtomicU64::new(0),
            gicd: AtomicU64::new(0),
            gicd_size: AtomicU64::new(0),
            gicr: AtomicU64::new(0),
            gicr_size: AtomicU64::new(0),
            uart: AtomicU64::new(0),
            uart_size: AtomicU64::new(0),
        }
    }

    /// Before the vCPU `here` of `p` enters the guest on this CPU.
    pub(crate) fn set(&self, p: &Partition, here: Here) {
        let w = &p.windows;
        self.shape.store(here.vcpu as u64 | w.shape, Ordering::Relaxed);
        self.gicd.store(w.gic.distributor, Ordering::Relaxed);
        self.gicd_size.store(w.gic.distributor_size, Ordering::Relaxed);
        self.gicr.store(w.gic.redistributors, Ordering::Relaxed);
        self.gicr_size.store(w.gic.redistributors_size, Ordering::Relaxed);
        self.uart.store(w.uart, Ordering::Relaxed);
        self.uart_size.store(w.uart_size, Ordering::Relaxed);
    }
}

/// A partition's [`Windows`] but the vCPU, worked out at boot from the configuration (which
/// does not change).
#[derive(Clone, Copy, Debug)]
pub struct WindowPlan {
    /// [`Windows::shape`] without the vCPU.
    shape: u64,
    gic: GicWindows,
    uart: u64,
    uart_size: u64,
}

impl WindowPlan {
    /// The windows of partition `p` of `config`.
    #[unsafe(link_section = ".text.boot_only")]
    pub fn new(config: &SystemConfig, p: &PartitionConfig) -> WindowPlan {
        let gic = GicWindows::new(&config.board, p.cpus.len()).unwrap_or_default();
        let pages = &config.board.emulated;
        let (uart, mut uart_size) =
            pages.span(Emulated::VirtualUart, u64::from(p.virtual_uart)).unwrap_or((0, 0));
        // The full path looks at a GICv2's trapped CPU interface page before the UART's: should
        // they overlap, the UART's accesses take it.
        let v2 = config.board.gic.as_ref().and_then(|g| g.v2);
        let gicc = v2.map(|v2| v2.cpu.start.as_u64());
        if gicc
            .is_some_and(|c| c < uart.saturating_add(uart_size) && uart < c.saturating_add(GICC_TRAPPED_SIZE))
        {
            uart_size = 0;
        }
        let vcpus_less_one = p.cpus.len().saturating_sub(1) as u64;
        // The board's GIC version, as `gic::is_v2` answers once the GIC is set up (later).
        let shape = vcpus_less_one << 16 | u64::from(v2.is_some()) << 32;
        WindowPlan { shape, gic, uart, uart_size }
    }
}

/// What [`guest_fast_mmio`] tells the vectors.
mod answer {
    /// The full path: nothing changed.
    pub const FULL_PATH: u64 = 0;

    /// Emulated, the access's transfer register `register` (ISS.SRT): the frame's registers go
    /// back to the guest (x0..x18 and x30, and x19..x29 when the vectors saved them: the transfer
    /// register is one of those). Any answer but 0 says that; this one, 1 + ISS.SRT, is made
    /// from the syndrome so that the compiler cannot fold it into a constant and call the
    /// functions that end in it instead of branching to them (a frame on the constant reads).
    #[inline(always)]
    pub fn emulated(register: usize) -> u64 {
        register as u64 + 1
    }
}

/// Called by the vectors for a data abort from the guest that [`esr::takes_fast_mmio`] (the
/// vectors tested it: an emulable access by a 32-bit instruction) with syndrome `esr`, with x0..x18 and x30 saved in `frame` (and x19..x29 too when
/// the transfer register is one of them). Emulates the access (the frame and ELR_EL2 updated:
/// the vectors return to the guest) or answers [`answer::FULL_PATH`] having changed nothing
/// (the vectors save the rest of the frame and call `guest_exit`).
///
/// A constant register is answered here; a register with state and the UART are tail calls
/// ([`gic_state_mmio`], [`uart_mmio`]), so that a constant read saves no callee-saved register.
#[unsafe(no_mangle)]
extern "C" fn guest_fast_mmio(frame: &mut GuestFrame, esr: u64) -> u64 {
    let c = Running::here();
    // As the full path first: the partition stopped or restarting since this vCPU entered, or a
    // DMA fault of its devices waiting.
    let Some(p) = c.partition() else { return answer::FULL_PATH };
    let m = &c.mmio;
    let shape = m.shape.load(Ordering::Relaxed);
    let addr = Syndrome { esr, far: FAR_EL2.get(), hpfar: HPFAR_EL2.get() }.fault_ipa();
    let gic = GicWindows {
        distributor: m.gicd.load(Ordering::Relaxed),
        distributor_size: m.gicd_size.load(Ordering::Relaxed),
        redistributors: m.gicr.load(Ordering::Relaxed),
        redistributors_size: m.gicr_size.load(Ordering::Relaxed),
    };
    // The GIC's stores take the full path. (The distributor's arm is the general one with its
    // frame known, so that `vgic::constant` is decided for it alone.)
    match gic.locate(addr) {
        Some(_) if !esr::is_load(esr) => answer::FULL_PATH,
        Some((Frame::Distributor, offset)) => gic_load(frame, c, p, shape, esr, Frame::Distributor, offset),
        Some((gic_frame, offset)) => gic_load(frame, c, p, shape, esr, gic_frame, offset),
        None => {
            match within(addr.as_u64(), m.uart.load(Ordering::Relaxed), m.uart_size.load(Ordering::Relaxed)) {
                Some(offset) => uart_mmio(frame, c, p, esr, offset, esr::decoded_store(esr, &frame.x)),
                None => answer::FULL_PATH,
            }
        }
    }
}

/// [`guest_fast_mmio`] for a load from the virtual GIC: a constant register answered at once,
/// any other read by [`gic_state_mmio`]. `shape` as in [`Windows`].
#[inline(always)]
fn gic_load(
    frame: &mut GuestFrame,
    c: &'static Running,
    p: &'static Partition,
    shape: u64,
    esr: u64,
    gic_frame: Frame,
    offset: u64,
) -> u64 {
    let (vcpu, vcpus, v2) = unpack(shape);
    let a = vgic::Access { offset, size: esr::access_size(esr), write: None };
    match vgic::constant(v2, vcpus, gic_frame, a) {
        Some(value) => complete(frame, c, p, vcpu, esr, value),
        None => gic_state_mmio(frame, c, p, shape, esr, gic_frame, offset),
    }
}

/// [`guest_fast_mmio`] for a read of a register of the virtual GIC with state (the full path
/// for one that reaches other vCPUs' list registers): from its mirror without the lock when
/// nothing is pending ([`vgic::Mirror::read`]; [`gic_state_listed`] ORs in the list register
/// entries it says the register shows, when the list registers hold any), else
/// [`gic_state_locked`]. `shape` as in [`Windows`];
/// the access's size and register come from `esr` (eight arguments at most: tail calls).
#[inline(never)]
fn gic_state_mmio(
    frame: &mut GuestFrame,
    c: &'static Running,
    p: &'static Partition,
    shape: u64,
    esr: u64,
    gic_frame: Frame,
    offset: u64,
) -> u64 {
    let size = esr::access_size(esr);
    let (vcpu, vcpus, v2) = unpack(shape);
    if vgic::reaches_other_vcpus(vcpus, vcpu, gic_frame, offset) {
        return answer::FULL_PATH;
    }
    let mirror = &*p.vgic_mirror;
    let read = match mirror.quiet(vcpu) {
        true => mirror.read(vcpu, gic_frame, vgic::Access { offset, size, write: None }),
        false => None,
    };
    match read {
        Some(vgic::DirectRead { value, shows: None }) => complete(frame, c, p, vcpu, esr, value),
        // A pending or active register with nothing in the list registers: the value as it is.
        // (The front end's version is the board GIC's.)
        Some(vgic::DirectRead { value, shows: Some(_) }) if gic::lists_nothing(v2) => {
            complete(frame, c, p, vcpu, esr, value)
        }
        Some(vgic::DirectRead { value, shows: Some(shows) }) => {
            gic_state_listed(frame, c, p, vcpu, esr, value, shows)
        }
        None => gic_state_locked(frame, c, p, shape, esr, gic_frame, offset),
    }
}

/// [`gic_state_mmio`] for a pending or active register: `value` with the entries of this CPU's
/// list registers that `shows` (this CPU alone writes them, so no lock is needed to read them).
#[inline(never)]
fn gic_state_listed(
    frame: &mut GuestFrame,
    c: &'static Running,
    p: &'static Partition,
    vcpu: usize,
    esr: u64,
    mut value: u64,
    shows: vgic::Shows,
) -> u64 {
    gic::for_each_listed(vcpu as u8, |entry| value |= shows.bit(&entry));
    complete(frame, c, p, vcpu, esr, value)
}

/// [`gic_state_mmio`] for a read the mirror does not answer: under the virtual GIC's lock, as
/// the full path reads ([`read_resampled`]).
#[inline(never)]
fn gic_state_locked(
    frame: &mut GuestFrame,
    c: &'static Running,
    p: &'static Partition,
    shape: u64,
    esr: u64,
    gic_frame: Frame,
    offset: u64,
) -> u64 {
    let vcpu = (shape & 0xffff) as usize;
    let access = vgic::Access { offset, size: esr::access_size(esr), write: None };
    let value = read_resampled(p.vgic.lock(), vcpu, gic_frame, access);
    complete(frame, c, p, vcpu, esr, value)
}

/// [`guest_fast_mmio`] for an access to the virtual UART, as [`uart_access`]: a read the
/// UART's mirror answers (UARTFR while its line is quiet) and a write of UARTDR whose byte
/// only lengthens the partition's open line ([`append_plain`]) without a call, any other byte
/// the mirror passes with the console's call, anything else under the UART's lock.
#[inline(never)]
fn uart_mmio(
    frame: &mut GuestFrame,
    c: &'static Running,
    p: &'static Partition,
    esr: u64,
    offset: u64,
    write: Option<u64>,
) -> u64 {
    match p.vuart_mirror.access(offset, write) {
        Some((value, None)) => complete(frame, c, p, Here::load().vcpu, esr, value),
        Some((_, Some(byte))) if append_plain(p, byte) => complete(frame, c, p, Here::load().vcpu, esr, 0),
        Some((_, Some(byte))) => uart_mmio_sent(frame, c, p, esr, byte),
        None => uart_mmio_locked(frame, c, p, esr, offset, write),
    }
}

/// A byte partition `p` wrote to its UART, appended to its open line as [`uart_output`] would
/// (`LineBuffer::append_plain`: a printable byte that completes no line), without a call.
/// `false`, having done nothing, for anything else: the line buffer's lock held by another of
/// its vCPUs (no waiting here), the partition writing to the terminal as it goes (its buffer
/// says so), a byte that is not plain or would fill the line.
#[inline(always)]
fn append_plain(p: &Partition, byte: u8) -> bool {
    p.console.try_lock().is_some_and(|mut buffer| buffer.append_plain(byte))
}

/// [`uart_mmio`] for a write of UARTDR the mirror answered with a byte [`append_plain`] did not
/// take: the byte to the console.
#[inline(never)]
fn uart_mmio_sent(
    frame: &mut GuestFrame,
    c: &'static Running,
    p: &'static Partition,
    esr: u64,
    byte: u8,
) -> u64 {
    let here = Here::load();
    uart_output(p, here, byte);
    complete(frame, c, p, here.vcpu, esr, 0)
}

/// [`uart_mmio`] for an access under the UART's lock.
#[inline(never)]
fn uart_mmio_locked(
    frame: &mut GuestFrame,
    c: &'static Running,
    p: &'static Partition,
    esr: u64,
    offset: u64,
    write: Option<u64>,
) -> u64 {
    let here = Here::load();
    let value = uart_access_locked(p, here, offset, write);
    complete(frame, c, p, here.vcpu, esr, value)
}

/// What the full path does with `Outcome::Emulated` once an access with syndrome `esr` was
/// emulated: the value of a load extended into its register (ISS.SRT) as the instruction asks,
/// the PC advanced, virtual interrupts loaded when hinted. Returns the answer to the vectors.
#[inline(always)]
fn complete(
    frame: &mut GuestFrame,
    c: &Running,
    p: &'static Partition,
    vcpu: usize,
    esr: u64,
    value: u64,
) -> u64 {
    let register = usize::from(esr::transfer_register(esr));
    if esr::is_load(esr) && register < 31 {
        // A data abort's: the vectors come here for that exception class only.
        frame.x[register] = esr::extend_data_load(esr, value);
    }
    // A 32-bit instruction's (IL): the vectors come here for no other (`esr::takes_fast_mmio`).
    let elr = ELR_EL2.get() + 4;
    ELR_EL2.set(elr);
    // `load_interrupts` does nothing without the hint.
    match c.hint().load(Ordering::Acquire) {
        true => load_hinted(frame, p, vcpu, esr, elr),
        false => answer::emulated(register),
    }
}

/// The end of [`complete`] when the hint is set: virtual interrupts loaded as the full path
/// loads them, after the access with syndrome `esr`. Returns the answer to the vectors.
#[inline(never)]
fn load_hinted(frame: &mut GuestFrame, p: &Partition, vcpu: usize, esr: u64, elr: u64) -> u64 {
    frame.elr = elr;
    frame.spsr = SPSR_EL2.get();
    let loaded_hw = vcpu::load_interrupts(p, vcpu, false);
    vcpu::resample_before_taken(p, vcpu, (frame.spsr, frame.elr), loaded_hw);
    answer::emulated(usize::from(esr::transfer_register(esr)))
}

/// The vCPU, its partition's vCPUs and whether its virtual GIC has the GICv2 front end, from a
/// [`Windows`] shape.
#[inline(always)]
fn unpack(shape: u64) -> (usize, usize, bool) {
    ((shape & 0xffff) as usize, ((shape >> 16) & 0xffff) as usize + 1, shape >> 32 != 0)
}

/// The offset of `addr` in the window of `size` bytes at `base`, if it falls in it.
#[inline]
fn within(addr: u64, base: u64, size: u64) -> Option<u64> {
    let offset = addr.wrapping_sub(base);
    (offset < size).then_some(offset)
}

/// A read by `vcpu` of its partition's virtual GIC that reaches no other vCPU's list registers
/// ([`vgic::reaches_other_vcpus`] is false): a constant register without the virtual GIC's lock,
/// any other through [`read_resampled`].
pub(crate) fn gic_read(p: &Partition, vcpu: usize, frame: Frame, access: vgic::Access) -> u64 {
    match vgic::constant(crate::gic::is_v2(), p.vcpus.len(), frame, access) {
        Some(value) => value,
        None => read_resampled(p.vgic.lock(), vcpu, frame, access),
    }
}

/// A read as [`gic_read`]'s of a register with state, under the virtual GIC's lock (for the full
/// path, and for the fast path when the mirror does not answer): the held hardware-linked
/// interrupts whose line fell dropped first if anything is pending (as before any access), then
/// the read through `access_listed` with the interrupts of this CPU's list registers (what
/// `vgic::Mirror::read` answers the same where it answers).
#[inline(never)]
fn read_resampled(
    mut vgic: spin::MutexGuard<'_, vgic::VirtualGic>,
    vcpu: usize,
    frame: Frame,
    access: vgic::Access,
) -> u64 {
    let dropped = vgic.any_pending(vcpu).then(|| vgic.resample_held(vcpu, gic::still_pending));
    let value = read_listed(&mut vgic, vcpu, frame, access);
    drop(vgic);
    for intid in dropped.into_iter().flatten() {
        gic::deactivate(intid);
    }
    value
}

/// The read of [`read_resampled`] through `access_listed`.
#[inline(never)]
fn read_listed(vgic: &mut vgic::VirtualGic, vcpu: usize, frame: Frame, access: vgic::Access) -> u64 {
    match vgic::involves_listed(frame, access.offset, false) {
        true => {
            let mut listed = [vgic::Listed::default(); 16];
            let n = gic::read_listed(vcpu as u8, &mut listed);
            vgic.access_listed(vcpu, frame, access, &mut listed[..n])
        }
        false => vgic.access_listed(vcpu, frame, access, &mut []),
    }
}

/// An access of the vCPU `here` to its partition's virtual UART at `offset`: the byte written
/// goes to the console, the UART's interrupt line follows into the virtual GIC when it must
/// (`VirtualUart::follow`). A write of UARTDR or a read of UARTFR while the line is quiet is
/// answered from the mirror, without the UART's lock (`Mirror::access`). Returns the value read.
#[inline(always)]
pub(crate) fn uart_access(p: &Partition, here: Here, offset: u64, write: Option<u64>) -> u64 {
    let (value, sent) = match p.vuart_mirror.access(offset, write) {
        Some(answer) => answer,
        None => return uart_access_locked(p, here, offset, write),
    };
    if let Some(byte) = sent {
        uart_output(p, here, byte);
    }
    value
}

/// [`uart_access`] under the UART's lock.
#[inline(never)]
fn uart_access_locked(p: &Partition, here: Here, offset: u64, write: Option<u64>) -> u64 {
    let (value, sent, follow) = {
        let mut uart = p.vuart.lock();
        let (value, sent) = uart.access(offset, write);
        let follow = uart.follow();
        p.vuart_mirror.keep(&uart);
        (value, sent, follow)
    };
    if let Some(byte) = sent {
        uart_output(p, here, byte);
    }
    if let Some(high) = follow {
        vcpu::uart_line(p, high, here.cpu);
    }
    value
}

/// A byte the partition of the vCPU `here` wrote to its UART, to the console.
#[inline(never)]
fn uart_output(p: &Partition, here: Here, byte: u8) {
    let mut buffer = p.console.lock();
    console::partition_output(here.id, &p.config.name, &p.console_budget, &mut buffer, &[byte]);
}
