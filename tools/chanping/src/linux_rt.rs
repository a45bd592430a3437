//! What the small static Linux tools beside chanping (`perfcount`, `stepcount`) share: a raw
//! system call, standard output for `core::fmt`, and `exit_group`. Each includes it with
//! `#[path = "../linux_rt.rs"] mod linux_rt;`.

use core::arch::asm;

pub const SYS_WRITE: u64 = 64;
pub const SYS_EXIT_GROUP: u64 = 94;

/// A Linux system call `nr` with up to five arguments; returns x0 (negative: -errno).
pub fn syscall(nr: u64, a: [u64; 5]) -> i64 {
    let ret: i64;
    // SAFETY: a Linux system call: the kernel reads and writes only what its arguments describe.
    unsafe {
        asm!("svc #0", in("x8") nr, inlateout("x0") a[0] as i64 => ret, in("x1") a[1], in("x2") a[2],
             in("x3") a[3], in("x4") a[4], options(nostack));
    }
    ret
}

/// Standard output, without allocation.
pub struct Out;
impl core::fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        syscall(SYS_WRITE, [1, s.as_ptr() as u64, s.len() as u64, 0, 0]);
        Ok(())
    }
}

/// Ends the process with `code`.
pub fn exit(code: u64) -> ! {
    loop {
        // exit_group does not return; should it, try again.
        syscall(SYS_EXIT_GROUP, [code, 0, 0, 0, 0]);
    }
}
