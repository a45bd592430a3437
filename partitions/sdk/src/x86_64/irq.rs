//! Interrupts on x86_64: an IDT whose vectors 32..=255 call the handler set for them (a
//! doorbell's vector is its INTID, which the hypervisor injects: docs/x86.md), and whose
//! exceptions (0..=31) report and exit unless a fixup set for them resumes the code elsewhere
//! ([`set_fixup`], as an OS's exception tables do). The hypervisor injects events directly (no local APIC
//! for the guest), so there is nothing to acknowledge or end. A doorbell goes to the vCPU
//! [`set_target`] names (vCPU 0 until then); [`send_ipi`] interrupts the partition's own vCPUs.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

pub use crate::hypercall::send_ipi;
use crate::hypercall::{hvc, Status, HYP_INTERRUPT_TARGET};

/// A handler for one vector; it gets the vector (the INTID).
pub type Handler = fn(u32);

const VECTORS: usize = 256;
/// Bytes per entry stub (`tantalum_irq_stubs` aligns each to this).
const STUB_SIZE: usize = 16;
/// The code selector of the boot protocol's GDT.
const CODE_SELECTOR: u16 = 0x10;
/// Present, DPL 0, 64-bit interrupt gate (IF cleared on entry: no nesting).
const INTERRUPT_GATE: u8 = 0x8e;

global_asm!(
    r#"
    .section .text
    .balign 16
    .global tantalum_irq_stubs
tantalum_irq_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    push vector
    jmp tantalum_irq_common
    .set vector, vector + 1
    .endr

// The vector is on the stack (and, for some exceptions, an error code below it). Saves what a
// Rust call may clobber, calls the dispatcher with the vector and the address of the frame
// above it, and returns past the bytes it says (the vector's, and the error code's if any).
tantalum_irq_common:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    push rbp
    mov rdi, [rsp + 80]
    lea rsi, [rsp + 88]
    mov rbp, rsp
    and rsp, -16
    call {dispatch}
    mov rsp, rbp
    mov [rsp + 80], rax
    pop rbp
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    add rsp, [rsp]
    iretq
    "#,
    dispatch = sym dispatch,
);

unsafe extern "C" {
    static tantalum_irq_stubs: u8;
}

#[repr(C, align(16))]
struct Idt([u64; 2 * VECTORS]);

static mut IDT: Idt = Idt([0; 2 * VECTORS]);
/// The IDT's state: [`UNBUILT`], [`BUILDING`] (by one CPU), [`BUILT`].
static IDT_STATE: AtomicU8 = AtomicU8::new(UNBUILT);
const UNBUILT: u8 = 0;
const BUILDING: u8 = 1;
const BUILT: u8 = 2;
static HANDLERS: [AtomicUsize; VECTORS] = [const { AtomicUsize::new(0) }; VECTORS];
static FIXUPS: [AtomicUsize; 32] = [const { AtomicUsize::new(0) }; 32];

/// An exception fixup: given the vector, the error code (0 for exceptions without one) and
/// the faulting RIP, the RIP to resume at, or `None` to report and exit.
pub type Fixup = fn(u32, u64, u64) -> Option<u64>;

/// Whether exception `vector` pushes an error code (Intel SDM vol. 3A, 6.13).
const fn has_error_code(vector: usize) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Returns how many bytes the stub pops before IRETQ: the vector, and an exception's error code.
extern "C" fn dispatch(vector: u64, frame: *mut u64) -> u64 {
    let v = vector as usize % VECTORS;
    if v < 32 {
        let error = has_error_code(v);
        // SAFETY: `frame` points at what the CPU pushed: the error code (if any), then RIP.
        let (code, rip) = unsafe {
            if error {
                (*frame, *frame.add(1))
            } else {
                (0, *frame)
            }
        };
        let fixup = FIXUPS[v].load(Ordering::Acquire);
        if fixup != 0 {
            // SAFETY: only `set_fixup` stores here, always a `Fixup`.
            let fixup: Fixup = unsafe { core::mem::transmute::<usize, Fixup>(fixup) };
            if let Some(resume) = fixup(v as u32, code, rip) {
                // SAFETY: the saved RIP, which IRETQ loads.
                unsafe { *frame.add(usize::from(error)) = resume };
                return if error { 16 } else { 8 };
            }
        }
        crate::println!("unexpected exception {v} (error code {code:#x}, RIP {rip:#x}): exiting");
        crate::exit(102);
    }
    let h = HANDLERS[v].load(Ordering::Acquire);
    if h != 0 {
        // SAFETY: only `set_handler` stores here, always a `Handler`.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
        handler(v as u32);
    }
    8
}

/// Builds the IDT (the first caller, once) and loads it on this CPU: every vCPU that takes
/// interrupts calls it (the IDT and the handlers are shared).
pub fn init() {
    let idt = core::ptr::addr_of_mut!(IDT);
    match IDT_STATE.compare_exchange(UNBUILT, BUILDING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            build(idt);
            IDT_STATE.store(BUILT, Ordering::Release);
        }
        Err(_) => {
            while IDT_STATE.load(Ordering::Acquire) != BUILT {
                core::hint::spin_loop();
            }
        }
    }
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer { limit: (16 * VECTORS - 1) as u16, base: idt as u64 };
    // SAFETY: a complete IDT of interrupt gates to this image's stubs, which never moves.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack)) };
}

/// Fills the IDT: an interrupt gate per vector to its stub.
fn build(idt: *mut Idt) {
    let stubs = core::ptr::addr_of!(tantalum_irq_stubs) as u64;
    for v in 0..VECTORS {
        let at = stubs + (v * STUB_SIZE) as u64;
        let low = (at & 0xffff)
            | (u64::from(CODE_SELECTOR) << 16)
            | (u64::from(INTERRUPT_GATE) << 40)
            | (((at >> 16) & 0xffff) << 48);
        // SAFETY: the IDT is written only here, once (`IDT_STATE`), before any CPU loads it.
        unsafe {
            (*idt).0[2 * v] = low;
            (*idt).0[2 * v + 1] = at >> 32;
        }
    }
}

/// Runs `handler` when `intid` (its vector) is delivered.
pub fn set_handler(intid: u32, handler: Handler) {
    if let Some(slot) = HANDLERS.get(intid as usize) {
        slot.store(handler as usize, Ordering::Release);
    }
}

/// Sends doorbell `intid` (a channel's, [`crate::Channel::doorbell_intid`]) to vCPU `vcpu` of
/// this partition from now on (`HYP_INTERRUPT_TARGET`; vCPU 0 until then and after a restart),
/// as a GIC's `IROUTER` does on aarch64 (`irq::set_target` there). A doorbell already pending
/// moves with it. `InvalidParameters` for anything but one of its doorbells or a vCPU it lacks.
pub fn set_target(intid: u32, vcpu: u8) -> Result<(), Status> {
    match hvc(HYP_INTERRUPT_TARGET, [intid.into(), vcpu.into(), 0, 0, 0, 0])[0] {
        0 => Ok(()),
        other => Err(Status::from_reg(other).unwrap_or(Status::NotSupported)),
    }
}

/// Runs `fixup` when exception `vector` (0..=31) is raised; the code resumes where it says.
pub fn set_fixup(vector: u32, fixup: Fixup) {
    if let Some(slot) = FIXUPS.get(vector as usize) {
        slot.store(fixup as usize, Ordering::Release);
    }
}

/// Unmasks interrupts at the CPU (STI).
pub fn enable() {
    // SAFETY: the IDT (`init`) handles every vector.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Runs `check` with interrupts masked and, if it returns false, sleeps (`sti; hlt`: the STI
/// shadow makes the pair atomic, so a doorbell between the check and the HLT still ends the
/// sleep); then interrupts are unmasked, so the handler runs.
pub fn wait_unless(check: impl FnOnce() -> bool) {
    // SAFETY: masking interrupts around the check.
    unsafe { asm!("cli", options(nomem, nostack)) };
    if check() {
        enable();
    } else {
        // SAFETY: HLT only waits; STI as in `enable`.
        unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
    }
}

/// The vector of the vCPU's one-shot timer (docs/x86.md, "Timer").
pub const TIMER_VECTOR: u32 = 0xec;

/// Arms the vCPU's one-shot timer at TSC value `deadline` (0 disarms it): once the TSC
/// reaches it, the hypervisor injects [`TIMER_VECTOR`], as a local APIC in TSC-deadline mode
/// would. A HLT (`wait_unless`) ends then.
pub fn set_timer_deadline(deadline: u64) {
    // SAFETY: IA32_TSC_DEADLINE, which the hypervisor emulates per vCPU.
    unsafe {
        asm!("wrmsr", in("ecx") 0x6e0u32, in("eax") deadline as u32, in("edx") (deadline >> 32) as u32,
            options(nomem, nostack))
    };
}
