//! Benchmark partition: instruction counts from the PMU (exact under QEMU `-icount`), printed as
//! `bench: NAME=VALUE max=MAX` lines that `cargo xtask bench` collects. Its role comes from its
//! bootargs:
//!
//! - none: every figure one vCPU measures alone (boot, hypercalls, trapped GIC and virtual UART
//!   accesses, virtual timer and passed-through device interrupts): `configs/bench.dts`;
//! - `role=busy`: the same but boot and the RTC, beside busy partitions
//!   (`configs/bench-busy.dts`);
//! - `role=sgi`: an SGI between its two vCPUs (`configs/bench-sgi.dts`);
//! - `role=doorbell-recv` / `role=doorbell-send`: a doorbell between two partitions
//!   (`configs/bench-doorbell.dts`);
//! - `role=load watch=ID`: keeps its CPU and the hypervisor busy until partition `ID` stops.
#![no_std]
#![no_main]

extern crate alloc;

mod doorbell;
mod load;
pub mod measure;
mod sgi;
mod single;

use tantalum_guest::dt::bootarg;
use tantalum_guest::println;

tantalum_guest::entry!(main);

fn main() {
    measure::count_el2_on_counter_1();
    match bootarg("role").unwrap_or("") {
        "" => single::run(true, false),
        "busy" => single::run(false, true),
        "sgi" => sgi::run(),
        "doorbell-recv" => doorbell::receive(),
        "doorbell-send" => doorbell::send(),
        "load" => load::run(bootarg("watch").and_then(|w| w.parse().ok()).unwrap_or(0)),
        other => println!("unknown role '{other}'"),
    }
    println!("bench: done");
}
