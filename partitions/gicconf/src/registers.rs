//! Trapped loads into any general register: a hypervisor that emulates a load writes the value
//! into the register the instruction names (ISS.SRT), extended as the instruction asks, and
//! must keep every other register. `GICD_TYPER` (a constant) is loaded into x0, then into x19,
//! x25, x29 and x30 (registers a call keeps, and the link register, which a hypervisor's fast
//! path may save apart from the others), into the zero register, and sign-extended (`ldrsw`);
//! each is compared with the load into x0.

use core::arch::asm;

use tantalum_guest::irq;

use crate::report;

pub fn loads_into_every_register() {
    let typer = irq::typer_address();
    let (x0, x19, x25, x29, x30, signed, kept): (u64, u64, u64, u64, u64, u64, u64);
    // SAFETY: loads of GICD_TYPER (device memory of the identity map) into the registers named;
    // x19 and x29 (which asm! may not name) are saved in `{t}` around their loads and restored.
    unsafe {
        asm!(
            "ldr w0, [{a}]",
            "mov {t}, x19",
            "ldr w19, [{a}]",
            "mov {x19}, x19",
            "mov x19, {t}",
            "ldr w25, [{a}]",
            "mov {t}, x29",
            "ldr w29, [{a}]",
            "mov {x29}, x29",
            "mov x29, {t}",
            "ldr w30, [{a}]",
            "mov {kept}, #0x5a5a",
            "ldr wzr, [{a}]",
            "ldrsw {signed}, [{a}]",
            a = in(reg) typer,
            t = out(reg) _,
            x19 = out(reg) x19,
            x29 = out(reg) x29,
            kept = out(reg) kept,
            signed = out(reg) signed,
            out("x0") x0,
            out("x25") x25,
            out("x30") x30,
            options(nostack),
        );
    }
    let same = |v: u64| if v == x0 { "same" } else { "differs" };
    let extended = u64::from(x0 as u32) as i32 as i64 as u64;
    report(
        "GICD_TYPER into x19, x25, x29, x30 (as into x0); ldrsw; beside xzr",
        format_args!(
            "{}, {}, {}, {}; {}; {}",
            same(x19),
            same(x25),
            same(x29),
            same(x30),
            if signed == extended { "extended" } else { "not extended" },
            if kept == 0x5a5a { "kept" } else { "changed" }
        ),
    );
}
