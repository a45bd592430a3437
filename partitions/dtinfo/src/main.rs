//! Reads the guest device tree the build generated for this partition and prints what it
//! finds, one fact per line, so a scenario can match it against the system description.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;

use fdt::node::FdtNode;
use fdt::Fdt;
use tantalum_guest::println;

tantalum_guest::entry!(main);

/// Big-endian cells of a property as one number each (`cells` per number).
fn numbers<'a>(node: &FdtNode<'_, 'a>, name: &str, cells: usize) -> impl Iterator<Item = u64> + 'a {
    let value = node.property(name).map(|p| p.value).unwrap_or(&[]);
    value.chunks_exact(4 * cells).map(|c| {
        c.chunks_exact(4)
            .fold(0u64, |acc, w| (acc << 32) | u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
    })
}

fn string<'a>(node: &FdtNode<'_, 'a>, name: &str) -> &'a str {
    node.property(name).and_then(|p| p.as_str()).unwrap_or("")
}

fn main() {
    let address = tantalum_guest::dtb_address();
    // SAFETY: the hypervisor placed the guest DTB at `address` (x0 at entry), inside our memory;
    // its header's totalsize bounds the blob, which nothing modifies while we read it.
    let fdt = unsafe { Fdt::from_ptr(address as *const u8) };
    let Ok(fdt) = fdt else {
        println!("dt: no valid device tree at {address:#x}");
        return;
    };
    let root = fdt.find_node("/").expect("a valid tree has a root");
    println!("dt: model \"{}\"", string(&root, "model"));
    if let Some(h) = fdt.find_node("/hypervisor") {
        println!(
            "dt: partition \"{}\" id {}",
            string(&h, "partition-name"),
            numbers(&h, "partition-id", 1).next().unwrap_or(0)
        );
    }
    let cpus =
        fdt.find_node("/cpus").map_or(0, |c| c.children().filter(|n| n.name.starts_with("cpu@")).count());
    println!("dt: {cpus} cpu(s)");
    for node in root.children() {
        let mut reg = numbers(&node, "reg", 2);
        let (base, size) = (reg.next().unwrap_or(0), reg.next().unwrap_or(0));
        if node.name.starts_with("memory@") {
            println!("dt: memory {base:#x}..{:#x}", base + size);
        } else if node.name.starts_with("channel@") {
            let spi = numbers(&node, "interrupts", 1).nth(1).unwrap_or(0);
            println!(
                "dt: channel #{} \"{}\" at {base:#x} size {size:#x} {} peer \"{}\" doorbell SPI {spi}",
                numbers(&node, "tantalum,channel", 1).next().unwrap_or(0),
                string(&node, "tantalum,name"),
                string(&node, "tantalum,direction"),
                string(&node, "tantalum,peer"),
            );
        } else if node.property("reg").is_some() && !node.name.starts_with("interrupt-controller") {
            let irq =
                numbers(&node, "interrupts", 1).nth(1).map(|spi| format!(" SPI {spi}")).unwrap_or_default();
            let compatible = string(&node, "compatible").split('\0').next().unwrap_or("");
            println!("dt: device {} \"{compatible}\" at {base:#x}{irq}", node.name);
        }
    }
    if let Some(chosen) = fdt.find_node("/chosen") {
        println!("dt: bootargs \"{}\"", string(&chosen, "bootargs"));
        if let Some(out) = chosen.property("stdout-path").and_then(|p| p.as_str()) {
            println!("dt: stdout {out}");
        }
    }
    println!("dt: done");
}
