//! `role=smp` (x86_64): the partition's second vCPU through PSCI CPU_ON over VMCALL, as on Arm
//! (docs/hypercalls.md, "PSCI"). Run 0: vCPU 1 is off; CPU_ON starts it at `hello_secondary`
//! with its context in rdi (a second CPU_ON is refused while it is on); it reports the context
//! and turns itself off (CPU_OFF); a vCPU the partition does not have is refused; then vCPU 1
//! stores outside the partition's memory, whose `restart` policy reloads the whole partition
//! (vCPU 0 included). Run 1: vCPU 1 is off again; started once more it spins, and vCPU 0 exits:
//! the partition stops with vCPU 1 still on.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use tantalum_guest::hypercall::{hvc, psci};
use tantalum_guest::{println, wait_ns};

/// What vCPU 1 finds at its context address.
#[repr(C)]
struct Context {
    stack_top: u64,
    /// Reported back through [`SEEN`].
    magic: u64,
    /// 0: report and CPU_OFF; 1: store outside the partition's memory; 2: spin.
    mode: u64,
}

#[repr(C, align(16))]
struct Stack([u8; 16 * 1024]);
static mut STACK: Stack = Stack([0; 16 * 1024]);
static mut CONTEXT: Context = Context { stack_top: 0, magic: 0, mode: 0 };
/// The magic vCPU 1 last saw.
static SEEN: AtomicU64 = AtomicU64::new(0);

// vCPU 1's entry: long mode on the boot area's page tables, rdi = the context; its stack
// comes from the context.
global_asm!(
    ".global hello_secondary",
    "hello_secondary:",
    "mov rsp, [rdi]",
    "call hello_secondary_main",
    "2: hlt",
    "jmp 2b",
);

unsafe extern "C" {
    fn hello_secondary();
}

#[unsafe(no_mangle)]
extern "C" fn hello_secondary_main(context: &Context) {
    SEEN.store(context.magic, Ordering::Release);
    match context.mode {
        0 => {
            println!("smp: vCPU 1 up, context magic {:#x}; turning off", context.magic);
            hvc(psci::CPU_OFF, [0; 6]);
            println!("BREACH: CPU_OFF returned");
        }
        1 => {
            println!("smp: vCPU 1 stores outside the partition's memory");
            // SAFETY: deliberately outside the partition's memory: its fault policy ends it.
            unsafe { core::ptr::write_volatile(0x10_0000 as *mut u64, 1) };
            println!("BREACH: the store returned");
        }
        _ => loop {
            core::hint::spin_loop();
        },
    }
}

fn cpu_on(vcpu: u64, magic: u64, mode: u64) -> i64 {
    let context = core::ptr::addr_of_mut!(CONTEXT);
    // SAFETY: vCPU 1 is off (or refused this start), so nothing reads CONTEXT meanwhile.
    unsafe {
        *context = Context {
            stack_top: core::ptr::addr_of!(STACK) as u64 + core::mem::size_of::<Stack>() as u64,
            magic,
            mode,
        };
    }
    hvc(psci::CPU_ON_64, [vcpu, hello_secondary as *const () as u64, context as u64, 0, 0, 0])[0] as i64
}

fn affinity(vcpu: u64) -> u64 {
    hvc(psci::AFFINITY_INFO_64, [vcpu, 0, 0, 0, 0, 0])[0]
}

/// Waits up to two seconds for `done`.
fn until(done: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        wait_ns(10_000_000);
    }
    done()
}

pub fn run(restarts: u64) {
    if restarts == 0 {
        let features = hvc(psci::FEATURES, [psci::CPU_ON_64, 0, 0, 0, 0, 0])[0] as i64;
        println!(
            "smp: CPU_ON supported: {}; vCPU 1 off: {}",
            features == 0,
            affinity(1) == psci::AFFINITY_OFF
        );
        let first = cpu_on(1, 0x5a17, 0);
        let second = hvc(psci::CPU_ON_64, [1, hello_secondary as *const () as u64, 0, 0, 0, 0])[0] as i64;
        println!("smp: CPU_ON vCPU 1: {first}; again at once: refused {}", second == -4 || second == -5);
        let ran = until(|| SEEN.load(Ordering::Acquire) == 0x5a17);
        let off = until(|| affinity(1) == psci::AFFINITY_OFF);
        println!("smp: vCPU 1 ran with the context: {ran}; turned itself off: {off}");
        println!("smp: CPU_ON vCPU 2 (there is none): {}", cpu_on(2, 0, 0));
        cpu_on(1, 0xfa17, 1);
        until(|| false);
        println!("BREACH: vCPU 1's fault did not restart the partition");
        return;
    }
    println!("smp: restarted (run {restarts}); vCPU 1 off: {}", affinity(1) == psci::AFFINITY_OFF);
    let status = cpu_on(1, 0x5b17, 2);
    let spinning = until(|| SEEN.load(Ordering::Acquire) == 0x5b17);
    println!("smp: CPU_ON vCPU 1: {status}, spinning: {spinning}; exiting with it on");
}
