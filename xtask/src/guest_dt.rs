//! The device tree each partition boots with (x0 at entry), generated from the system config.

use std::fmt::Write;

use tantalum_core::config::PartitionConfig;

fn cells(v: u64) -> String {
    format!("{:#x} {:#x}", v >> 32, v & 0xffff_ffff)
}

/// DTS source of `p`'s guest device tree: its vCPUs (numbered from 0), its memory, PSCI over
/// HVC, `chosen`, and a `hypervisor` node naming the partition.
pub fn source(p: &PartitionConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "/dts-v1/;\n");
    if let Some(dtb) = p.guest_dtb_address() {
        let _ = writeln!(
            s,
            "/memreserve/ {:#x} {:#x};\n",
            dtb.as_u64(),
            tantalum_core::config::GUEST_DTB_RESERVE
        );
    }
    let _ = writeln!(s, "/ {{");
    let _ = writeln!(s, "\tcompatible = \"tantalum,partition-v1\";");
    let _ = writeln!(s, "\tmodel = \"Tantalum partition {}\";", p.name);
    let _ = writeln!(s, "\t#address-cells = <2>;\n\t#size-cells = <2>;\n");
    let _ = writeln!(s, "\tchosen {{\n\t\tbootargs = \"\";\n\t}};\n");
    let _ = writeln!(s, "\tcpus {{\n\t\t#address-cells = <1>;\n\t\t#size-cells = <0>;");
    for i in 0..p.cpus.len() {
        let _ = writeln!(
            s,
            "\t\tcpu@{i} {{\n\t\t\tdevice_type = \"cpu\";\n\t\t\tcompatible = \"arm,armv8\";\n\t\t\treg = <{i:#x}>;\n\t\t\tenable-method = \"psci\";\n\t\t}};"
        );
    }
    let _ = writeln!(s, "\t}};\n");
    for r in &p.memory {
        let _ = writeln!(
            s,
            "\tmemory@{:x} {{\n\t\tdevice_type = \"memory\";\n\t\treg = <{} {}>;\n\t}};\n",
            r.guest.as_u64(),
            cells(r.guest.as_u64()),
            cells(r.size)
        );
    }
    let _ = writeln!(
        s,
        "\tpsci {{\n\t\tcompatible = \"arm,psci-1.0\", \"arm,psci-0.2\";\n\t\tmethod = \"hvc\";\n\t}};\n"
    );
    let _ = writeln!(
        s,
        "\thypervisor {{\n\t\tcompatible = \"tantalum,hypervisor-v1\";\n\t\tpartition-id = <{}>;\n\t\tpartition-name = \"{}\";\n\t}};",
        p.id, p.name
    );
    let _ = writeln!(s, "}};");
    s
}
