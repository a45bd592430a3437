//! The demo partition: says hello a few times, with its identity, then exits.
#![no_std]
#![no_main]

use tantalum_guest::{println, wait_ns};

tantalum_guest::entry!(main);

fn main() {
    let name = tantalum_guest::partition_name();
    let info = tantalum_guest::partition_info();
    println!(
        "hello from partition '{}' (id {}, {} vCPU), guest DTB at {:#x}",
        name,
        info.id,
        info.vcpus,
        tantalum_guest::dtb_address()
    );
    for i in 1..=3 {
        println!("{} tick {}", name, i);
        wait_ns(20_000_000);
    }
    println!("{} done", name);
}
