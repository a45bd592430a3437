//! VMX operation on this CPU: VMXON, one VMCS per vCPU, the world switch and exit handling.

use alloc::alloc::{alloc_zeroed, Layout};
use core::arch::{asm, global_asm};
use core::mem::offset_of;

use tantalum_core::addr::HostPhys;
use tantalum_core::stage2::TableMemory;
use tantalum_x86_64::linux_boot::{BootArea, CODE_SELECTOR, DATA_SELECTOR, GDT_LIMIT};
use tantalum_x86_64::vmcs::{self, adjust};
use tantalum_x86_64::vmexit::Gprs;

use crate::cpu::{rdmsr, wrmsr};

mod msr {
    pub const FEATURE_CONTROL: u32 = 0x3a;
    pub const VMX_BASIC: u32 = 0x480;
    pub const VMX_PINBASED: u32 = 0x481;
    pub const VMX_PROCBASED: u32 = 0x482;
    pub const VMX_EXIT: u32 = 0x483;
    pub const VMX_ENTRY: u32 = 0x484;
    pub const VMX_MISC: u32 = 0x485;
    pub const VMX_CR0_FIXED0: u32 = 0x486;
    pub const VMX_CR0_FIXED1: u32 = 0x487;
    pub const VMX_CR4_FIXED0: u32 = 0x488;
    pub const VMX_CR4_FIXED1: u32 = 0x489;
    pub const VMX_PROCBASED2: u32 = 0x48b;
    pub const VMX_TRUE_PINBASED: u32 = 0x48d;
    pub const VMX_TRUE_PROCBASED: u32 = 0x48e;
    pub const VMX_TRUE_EXIT: u32 = 0x48f;
    pub const VMX_TRUE_ENTRY: u32 = 0x490;
    pub const EFER: u32 = 0xc000_0080;

    /// IA32_FEATURE_CONTROL: locked (no write until reset), VMX allowed outside SMX.
    pub const FEATURE_CONTROL_LOCK: u64 = 1 << 0;
    pub const FEATURE_CONTROL_VMX_OUTSIDE_SMX: u64 = 1 << 2;
    /// IA32_VMX_BASIC: the VMCS revision identifier (bits 30:0); the TRUE capability MSRs
    /// exist (bit 55).
    pub const VMX_BASIC_REVISION: u64 = 0x7fff_ffff;
    pub const VMX_BASIC_TRUE_CONTROLS: u64 = 1 << 55;
    /// IA32_VMX_MISC bits 4:0: the preemption timer counts at the TSC's rate >> this.
    pub const VMX_MISC_TIMER_SHIFT: u64 = 0x1f;
}

/// CPUID.1:ECX: the CPU has VMX.
const CPUID_1_ECX_VMX: u32 = 1 << 5;

/// Control-register bits the guest and host state use.
mod cr {
    pub const CR0_PE: u64 = 1 << 0;
    pub const CR0_ET: u64 = 1 << 4;
    pub const CR0_PG: u64 = 1 << 31;
    pub const CR4_PAE: u64 = 1 << 5;
    /// CR4.VMXE: VMX enabled (the host's; a guest never sees or sets it).
    pub const CR4_VMXE: u64 = 1 << 13;
    pub const EFER_LME: u64 = 1 << 8;
    pub const EFER_LMA: u64 = 1 << 10;
}

/// RFLAGS after a VMX instruction: CF is VMfailInvalid (no current VMCS), ZF VMfailValid (the
/// error number is in the VMCS).
mod rflags {
    pub const CF: u64 = 1 << 0;
    pub const ZF: u64 = 1 << 6;
}

/// Why VMX could not be used.
#[derive(Clone, Copy, Debug)]
pub enum VmxError {
    NoVmx,
    /// The firmware locked IA32_FEATURE_CONTROL with VMX off.
    LockedOff,
    /// A VMX instruction failed (CF: no current VMCS; ZF: error number in the VMCS).
    Instruction {
        what: &'static str,
        error: u64,
    },
    /// The CPU lacks a control Tantalum needs.
    MissingControl(&'static str),
    OutOfMemory,
}

impl core::fmt::Display for VmxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VmxError::NoVmx => write!(f, "this CPU has no VMX"),
            VmxError::LockedOff => write!(f, "the firmware locked VMX off (IA32_FEATURE_CONTROL)"),
            VmxError::Instruction { what, error } => {
                write!(f, "{what} failed (VM-instruction error {error})")
            }
            VmxError::MissingControl(name) => write!(f, "the CPU lacks the {name} controls Tantalum needs"),
            VmxError::OutOfMemory => write!(f, "the hypervisor heap is full"),
        }
    }
}

/// `count` zeroed 4 KiB pages from the heap (identity-mapped: the address is physical).
pub fn alloc_pages(count: usize) -> Option<HostPhys> {
    let layout = Layout::from_size_align(count * 4096, count.next_power_of_two() * 4096).ok()?;
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc_zeroed(layout) };
    (!ptr.is_null()).then_some(HostPhys(ptr as u64))
}

/// Page tables in the hypervisor heap (identity-mapped).
pub struct HeapTables;

impl TableMemory for HeapTables {
    fn alloc_tables(&mut self, count: usize) -> Option<HostPhys> {
        alloc_pages(count)
    }
    fn read(&self, table: HostPhys, index: usize) -> u64 {
        // SAFETY: `table` came from `alloc_tables` (the builder reads only its own tables).
        unsafe { (table.as_u64() as *const u64).add(index).read_volatile() }
    }
    fn write(&mut self, table: HostPhys, index: usize, desc: u64) {
        // SAFETY: as above; the tables are not live for any guest while being built.
        unsafe { (table.as_u64() as *mut u64).add(index).write_volatile(desc) }
    }
}

fn check(what: &'static str, flags: u64) -> Result<(), VmxError> {
    if flags & rflags::CF != 0 {
        return Err(VmxError::Instruction { what, error: u64::MAX });
    }
    if flags & rflags::ZF != 0 {
        return Err(VmxError::Instruction { what, error: vmread(vmcs::VM_INSTRUCTION_ERROR) });
    }
    Ok(())
}

pub fn vmread(field: u32) -> u64 {
    let value: u64;
    // SAFETY: reading a field of the current VMCS has no side effect; a failure leaves 0.
    unsafe { asm!("vmread {}, {}", out(reg) value, in(reg) u64::from(field), options(nostack)) };
    value
}

pub fn vmwrite(field: u32, value: u64) -> Result<(), VmxError> {
    let flags: u64;
    // SAFETY: writes to the current VMCS only, which this CPU owns; a bad field fails cleanly.
    unsafe {
        asm!("vmwrite {}, {}", "pushfq", "pop {}", in(reg) u64::from(field), in(reg) value, lateout(reg) flags)
    };
    check("vmwrite", flags)
}

/// Turns VMX operation on for this CPU.
pub fn enable() -> Result<u32, VmxError> {
    let ecx = crate::cpu::cpuid(1, 0).2;
    if ecx & CPUID_1_ECX_VMX == 0 {
        return Err(VmxError::NoVmx);
    }
    let feature = rdmsr(msr::FEATURE_CONTROL);
    if feature & msr::FEATURE_CONTROL_LOCK == 0 {
        let enabled = feature | msr::FEATURE_CONTROL_LOCK | msr::FEATURE_CONTROL_VMX_OUTSIDE_SMX;
        // SAFETY: unlocked: enable VMX outside SMX and lock, as firmware would.
        unsafe { wrmsr(msr::FEATURE_CONTROL, enabled) };
    } else if feature & msr::FEATURE_CONTROL_VMX_OUTSIDE_SMX == 0 {
        return Err(VmxError::LockedOff);
    }
    let cr0 = (crate::cpu::cr0() | rdmsr(msr::VMX_CR0_FIXED0)) & rdmsr(msr::VMX_CR0_FIXED1);
    let cr4 = (crate::cpu::cr4() | rdmsr(msr::VMX_CR4_FIXED0) | cr::CR4_VMXE) & rdmsr(msr::VMX_CR4_FIXED1);
    // SAFETY: the fixed bits only add what VMX requires (NE, VMXE) to the running values.
    unsafe { crate::cpu::set_cr0_cr4(cr0, cr4) };
    let revision = (rdmsr(msr::VMX_BASIC) & msr::VMX_BASIC_REVISION) as u32;
    let region = alloc_pages(1).ok_or(VmxError::OutOfMemory)?;
    // SAFETY: a fresh page of ours; the revision goes in its first four bytes.
    unsafe { (region.as_u64() as *mut u32).write_volatile(revision) };
    let flags: u64;
    // SAFETY: VMXON with a valid region, CR0/CR4 fixed bits satisfied.
    unsafe { asm!("vmxon [{}]", "pushfq", "pop {}", in(reg) &region.as_u64(), lateout(reg) flags) };
    check("vmxon", flags)?;
    Ok(revision)
}

/// Makes a fresh VMCS current on this CPU.
pub fn new_vmcs(revision: u32) -> Result<HostPhys, VmxError> {
    let region = alloc_pages(1).ok_or(VmxError::OutOfMemory)?;
    // SAFETY: a fresh page of ours.
    unsafe { (region.as_u64() as *mut u32).write_volatile(revision) };
    let mut flags: u64;
    // SAFETY: VMCLEAR then VMPTRLD of a region this CPU owns.
    unsafe { asm!("vmclear [{}]", "pushfq", "pop {}", in(reg) &region.as_u64(), lateout(reg) flags) };
    check("vmclear", flags)?;
    // SAFETY: as above.
    unsafe { asm!("vmptrld [{}]", "pushfq", "pop {}", in(reg) &region.as_u64(), lateout(reg) flags) };
    check("vmptrld", flags)?;
    Ok(region)
}

/// The capability MSR of a control: the TRUE one where the CPU has them.
fn capability(plain: u32, true_msr: u32) -> u64 {
    if rdmsr(msr::VMX_BASIC) & msr::VMX_BASIC_TRUE_CONTROLS != 0 {
        rdmsr(true_msr)
    } else {
        rdmsr(plain)
    }
}

fn control(field: u32, wanted: u32, cap: u64, name: &'static str) -> Result<(), VmxError> {
    let (value, ok) = adjust(wanted, cap);
    if !ok {
        return Err(VmxError::MissingControl(name));
    }
    vmwrite(field, u64::from(value))
}

/// The longest a guest runs without an exit: the VMX preemption timer's period (1 ms), so
/// that a CPU looks at console input, the end of its partition's run and due timers even when
/// its guest neither exits nor takes interrupts.
pub const TICK_NS: u64 = 1_000_000;

/// Arms the VMX preemption timer of the current VMCS to fire `ns` after each VM entry (it
/// counts down from the field's value at every entry; it counts at the TSC's rate divided by
/// 2^IA32_VMX_MISC[4:0]).
pub fn set_preemption_timer(ns: u64) -> Result<(), VmxError> {
    let shift = rdmsr(msr::VMX_MISC) & msr::VMX_MISC_TIMER_SHIFT;
    let ticks = tantalum_core::time::ticks(core::time::Duration::from_nanos(ns), crate::tsc::frequency());
    vmwrite(vmcs::PREEMPTION_TIMER_VALUE, (ticks >> shift).clamp(1, u64::from(u32::MAX)))
}

/// The MSR bitmap all partitions share (`tantalum_x86_64::msr_bitmap`), built once.
fn msr_bitmap() -> Option<u64> {
    use tantalum_x86_64::msr_bitmap::{build, GUEST_CONTEXT, SIZE};
    static BITMAP: spin::Once<Option<u64>> = spin::Once::new();
    *BITMAP.call_once(|| {
        let page = alloc_pages(1)?;
        // SAFETY: a fresh heap page, identity-mapped, that nothing else uses.
        build(unsafe { &mut *(page.as_u64() as *mut [u8; SIZE]) }, &GUEST_CONTEXT);
        Some(page.as_u64())
    })
}

/// Writes the execution, exit and entry controls and the host state of the current VMCS;
/// `io_bitmaps` is the partition's pair of I/O bitmaps (`tantalum_x86_64::io_bitmap`).
pub fn setup_controls_and_host(
    cpu: usize,
    vpid: u16,
    eptp: u64,
    io_bitmaps: HostPhys,
) -> Result<(), VmxError> {
    use vmcs::*;
    control(
        PIN_BASED_CONTROLS,
        pin::EXTERNAL_INTERRUPT_EXITING | pin::NMI_EXITING | pin::ACTIVATE_PREEMPTION_TIMER,
        capability(msr::VMX_PINBASED, msr::VMX_TRUE_PINBASED),
        "pin-based",
    )?;
    control(
        PROCESSOR_CONTROLS,
        proc::HLT_EXITING
            | proc::MWAIT_EXITING
            | proc::MONITOR_EXITING
            | proc::RDPMC_EXITING
            // Without these (and without a TPR shadow) MOV to/from CR8 reaches the host local
            // APIC's task priority: a guest could mask its CPU's interrupts, the hypervisor's
            // kicks among them, for the hypervisor too (docs/x86.md, "Exits").
            | proc::CR8_LOAD_EXITING
            | proc::CR8_STORE_EXITING
            | proc::USE_IO_BITMAPS
            | proc::USE_MSR_BITMAPS
            | proc::SECONDARY_CONTROLS,
        capability(msr::VMX_PROCBASED, msr::VMX_TRUE_PROCBASED),
        "processor-based",
    )?;
    control(
        SECONDARY_CONTROLS,
        secondary::ENABLE_EPT | secondary::ENABLE_VPID | secondary::UNRESTRICTED_GUEST,
        rdmsr(msr::VMX_PROCBASED2),
        "EPT, VPID, unrestricted guest",
    )?;
    control(
        EXIT_CONTROLS,
        exit::HOST_ADDRESS_SPACE_SIZE
            | exit::ACK_INTERRUPT_ON_EXIT
            | exit::SAVE_IA32_EFER
            | exit::LOAD_IA32_EFER,
        capability(msr::VMX_EXIT, msr::VMX_TRUE_EXIT),
        "exit",
    )?;
    control(ENTRY_CONTROLS, entry::LOAD_IA32_EFER, capability(msr::VMX_ENTRY, msr::VMX_TRUE_ENTRY), "entry")?;
    vmwrite(EXCEPTION_BITMAP, 0)?;
    set_preemption_timer(TICK_NS)?;
    vmwrite(IO_BITMAP_A, io_bitmaps.as_u64())?;
    vmwrite(IO_BITMAP_B, io_bitmaps.as_u64() + 4096)?;
    vmwrite(MSR_BITMAP, msr_bitmap().ok_or(VmxError::OutOfMemory)?)?;
    vmwrite(VPID, u64::from(vpid))?;
    vmwrite(EPT_POINTER, eptp)?;
    vmwrite(VMCS_LINK_POINTER, u64::MAX)?;
    // The guest never sees or sets CR4.VMXE.
    vmwrite(CR4_GUEST_HOST_MASK, cr::CR4_VMXE)?;
    vmwrite(CR4_READ_SHADOW, 0)?;

    let (gdt, tss) = crate::cpu::host_tables(cpu);
    vmwrite(HOST_CR0, crate::cpu::cr0())?;
    vmwrite(HOST_CR3, crate::cpu::cr3())?;
    vmwrite(HOST_CR4, crate::cpu::cr4())?;
    vmwrite(HOST_CS_SELECTOR, crate::cpu::CODE_SELECTOR.into())?;
    for field in [HOST_SS_SELECTOR, HOST_DS_SELECTOR, HOST_ES_SELECTOR] {
        vmwrite(field, crate::cpu::DATA_SELECTOR.into())?;
    }
    vmwrite(HOST_FS_SELECTOR, 0)?;
    vmwrite(HOST_GS_SELECTOR, 0)?;
    vmwrite(HOST_TR_SELECTOR, crate::cpu::TSS_SELECTOR.into())?;
    vmwrite(HOST_TR_BASE, tss)?;
    vmwrite(HOST_GDTR_BASE, gdt)?;
    vmwrite(HOST_IDTR_BASE, 0)?;
    vmwrite(HOST_FS_BASE, 0)?;
    vmwrite(HOST_GS_BASE, 0)?;
    vmwrite(HOST_SYSENTER_CS, 0)?;
    vmwrite(HOST_SYSENTER_ESP, 0)?;
    vmwrite(HOST_SYSENTER_EIP, 0)?;
    vmwrite(HOST_IA32_EFER, rdmsr(msr::EFER))?;
    Ok(())
}

/// Guest state of a vCPU entering in 32-bit protected mode, flat segments, paging off, at
/// `entry` with `ebx` = `context` (the PVH convention's start state).
pub fn setup_guest_protected(entry: u64) -> Result<(), VmxError> {
    use cr::{CR0_ET as ET, CR0_PE as PE, CR0_PG as PG};
    use vmcs::*;
    let cr0 = ((rdmsr(msr::VMX_CR0_FIXED0) & !(PE | PG)) | PE | ET) & rdmsr(msr::VMX_CR0_FIXED1);
    let cr4 = rdmsr(msr::VMX_CR4_FIXED0) & rdmsr(msr::VMX_CR4_FIXED1);
    vmwrite(GUEST_CR0, cr0)?;
    vmwrite(CR0_READ_SHADOW, PE | ET)?;
    vmwrite(GUEST_CR3, 0)?;
    vmwrite(GUEST_CR4, cr4)?;
    vmwrite(GUEST_DR7, DR7_RESET)?;
    vmwrite(GUEST_RSP, 0)?;
    vmwrite(GUEST_RIP, entry)?;
    vmwrite(GUEST_RFLAGS, RFLAGS_RESET)?;
    // Selector, limit, access rights, base of each segment.
    let flat = |seg: u32, selector: u64, rights: u64| -> Result<(), VmxError> {
        vmwrite(GUEST_ES_SELECTOR + 2 * seg, selector)?;
        vmwrite(GUEST_ES_LIMIT + 2 * seg, 0xffff_ffff)?;
        vmwrite(GUEST_ES_ACCESS_RIGHTS + 2 * seg, rights)?;
        vmwrite(GUEST_ES_BASE + 2 * seg, 0)
    };
    // The PVH start state's flat segments, at the same selectors as the host's.
    flat(SEG_CS, crate::cpu::CODE_SELECTOR.into(), access_rights::CODE32)?;
    for seg in [SEG_ES, SEG_SS, SEG_DS, SEG_FS, SEG_GS] {
        flat(seg, crate::cpu::DATA_SELECTOR.into(), access_rights::DATA)?;
    }
    vmwrite(GUEST_ES_SELECTOR + 2 * SEG_LDTR, 0)?;
    vmwrite(GUEST_ES_LIMIT + 2 * SEG_LDTR, 0)?;
    vmwrite(GUEST_ES_ACCESS_RIGHTS + 2 * SEG_LDTR, access_rights::UNUSABLE)?;
    vmwrite(GUEST_ES_BASE + 2 * SEG_LDTR, 0)?;
    vmwrite(GUEST_ES_SELECTOR + 2 * SEG_TR, 0)?;
    vmwrite(GUEST_ES_LIMIT + 2 * SEG_TR, 0xff)?;
    vmwrite(GUEST_ES_ACCESS_RIGHTS + 2 * SEG_TR, access_rights::TSS_BUSY)?;
    vmwrite(GUEST_ES_BASE + 2 * SEG_TR, 0)?;
    vmwrite(GUEST_GDTR_BASE, 0)?;
    vmwrite(GUEST_GDTR_LIMIT, 0xffff)?;
    vmwrite(GUEST_IDTR_BASE, 0)?;
    vmwrite(GUEST_IDTR_LIMIT, 0xffff)?;
    vmwrite(GUEST_INTERRUPTIBILITY, 0)?;
    vmwrite(GUEST_ACTIVITY_STATE, 0)?;
    vmwrite(GUEST_PENDING_DEBUG, 0)?;
    vmwrite(GUEST_SYSENTER_CS, 0)?;
    vmwrite(GUEST_SYSENTER_ESP, 0)?;
    vmwrite(GUEST_SYSENTER_EIP, 0)?;
    vmwrite(GUEST_IA32_EFER, 0)?;
    Ok(())
}

/// Guest state of a vCPU entering by the Linux 64-bit boot protocol (`linux_boot`): long mode
/// with the boot area's identity page tables and GDT, at `entry`; the caller puts the
/// `boot_params` address in `rsi`.
pub fn setup_guest_long(entry: u64, area: &BootArea) -> Result<(), VmxError> {
    use cr::{CR0_ET as ET, CR0_PE as PE, CR0_PG as PG, CR4_PAE as PAE, EFER_LMA, EFER_LME};
    use vmcs::*;
    setup_guest_protected(entry)?;
    let cr0 = (rdmsr(msr::VMX_CR0_FIXED0) | PE | ET | PG) & rdmsr(msr::VMX_CR0_FIXED1);
    let cr4 = (rdmsr(msr::VMX_CR4_FIXED0) | PAE) & rdmsr(msr::VMX_CR4_FIXED1);
    vmwrite(GUEST_CR0, cr0)?;
    vmwrite(CR0_READ_SHADOW, PE | ET | PG)?;
    vmwrite(GUEST_CR3, area.cr3())?;
    vmwrite(GUEST_CR4, cr4)?;
    vmwrite(CR4_READ_SHADOW, PAE)?;
    vmwrite(GUEST_IA32_EFER, EFER_LME | EFER_LMA)?;
    let segment = |seg: u32, selector: u16, rights: u64| -> Result<(), VmxError> {
        vmwrite(GUEST_ES_SELECTOR + 2 * seg, selector.into())?;
        vmwrite(GUEST_ES_ACCESS_RIGHTS + 2 * seg, rights)
    };
    // 64-bit code (L, not D), flat data, from the boot area's GDT.
    segment(SEG_CS, CODE_SELECTOR, access_rights::CODE64)?;
    for seg in [SEG_ES, SEG_SS, SEG_DS, SEG_FS, SEG_GS] {
        segment(seg, DATA_SELECTOR, access_rights::DATA)?;
    }
    vmwrite(GUEST_GDTR_BASE, area.gdt())?;
    vmwrite(GUEST_GDTR_LIMIT, GDT_LIMIT.into())?;
    vmwrite(GUEST_IDTR_LIMIT, 0)?;
    let controls = vmread(ENTRY_CONTROLS) as u32 | entry::IA32E_MODE_GUEST;
    control(ENTRY_CONTROLS, controls, capability(msr::VMX_ENTRY, msr::VMX_TRUE_ENTRY), "IA-32e mode guest")
}

global_asm!(
    r#"
    .section .text
    .global tantalum_vmx_run
    // rdi = &mut Gprs, rsi = launched. Returns 0 after a VM exit, 1 if the entry failed.
tantalum_vmx_run:
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    push rdi
    mov rax, {host_rsp}
    vmwrite rax, rsp
    lea rdx, [rip + tantalum_vmx_exit]
    mov rax, {host_rip}
    vmwrite rax, rdx
    mov r11, rsi
    mov rax, [rdi + {rax}]
    mov rbx, [rdi + {rbx}]
    mov rcx, [rdi + {rcx}]
    mov rdx, [rdi + {rdx}]
    mov rsi, [rdi + {rsi}]
    mov rbp, [rdi + {rbp}]
    mov r8, [rdi + {r8}]
    mov r9, [rdi + {r9}]
    mov r10, [rdi + {r10}]
    mov r12, [rdi + {r12}]
    mov r13, [rdi + {r13}]
    mov r14, [rdi + {r14}]
    mov r15, [rdi + {r15}]
    test r11, r11
    mov r11, [rdi + {r11}]
    mov rdi, [rdi + {rdi}]
    jnz 2f
    vmlaunch
    jmp 3f
2:
    vmresume
3:
    // The entry failed: back to the caller with 1.
    pop rdi
    mov eax, 1
    jmp 4f
tantalum_vmx_exit:
    push rdi
    mov rdi, [rsp + 8]
    mov [rdi + {rax}], rax
    mov [rdi + {rbx}], rbx
    mov [rdi + {rcx}], rcx
    mov [rdi + {rdx}], rdx
    mov [rdi + {rsi}], rsi
    mov [rdi + {rbp}], rbp
    mov [rdi + {r8}], r8
    mov [rdi + {r9}], r9
    mov [rdi + {r10}], r10
    mov [rdi + {r11}], r11
    mov [rdi + {r12}], r12
    mov [rdi + {r13}], r13
    mov [rdi + {r14}], r14
    mov [rdi + {r15}], r15
    pop rax
    mov [rdi + {rdi}], rax
    pop rdi
    xor eax, eax
4:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    ret
    "#,
    host_rsp = const vmcs::HOST_RSP,
    host_rip = const vmcs::HOST_RIP,
    rax = const offset_of!(Gprs, rax),
    rbx = const offset_of!(Gprs, rbx),
    rcx = const offset_of!(Gprs, rcx),
    rdx = const offset_of!(Gprs, rdx),
    rsi = const offset_of!(Gprs, rsi),
    rdi = const offset_of!(Gprs, rdi),
    rbp = const offset_of!(Gprs, rbp),
    r8 = const offset_of!(Gprs, r8),
    r9 = const offset_of!(Gprs, r9),
    r10 = const offset_of!(Gprs, r10),
    r11 = const offset_of!(Gprs, r11),
    r12 = const offset_of!(Gprs, r12),
    r13 = const offset_of!(Gprs, r13),
    r14 = const offset_of!(Gprs, r14),
    r15 = const offset_of!(Gprs, r15),
);

unsafe extern "C" {
    fn tantalum_vmx_run(regs: *mut Gprs, launched: u64) -> u64;
}

/// Runs the current VMCS's guest until its next exit.
pub fn run(regs: &mut Gprs, launched: bool) -> Result<(), VmxError> {
    // SAFETY: the current VMCS is complete (controls, host and guest state); the world switch
    // saves and restores every register the host uses, and `regs` is valid for the call.
    let failed = unsafe { tantalum_vmx_run(regs, u64::from(launched)) };
    if failed != 0 {
        let what = if launched { "vmresume" } else { "vmlaunch" };
        return Err(VmxError::Instruction { what, error: vmread(vmcs::VM_INSTRUCTION_ERROR) });
    }
    Ok(())
}
