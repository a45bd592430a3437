//! The device tree each partition boots with (x0 at entry), generated from the system config:
//! its vCPUs (numbered from 0), memory, virtual GICv3 and timer, PSCI over HVC, `chosen`, its
//! passed-through devices, its virtual UART and its channels.

use std::fmt::Write;

use tantalum_core::config::{
    DeviceAssignment, PartitionConfig, PciHost, SystemConfig, VirtioDevice, VirtioKind, GUEST_DTB_RESERVE,
};
use tantalum_core::vplatform::{
    doorbell_spi, Emulated, DOORBELL_PAGE, GICR_STRIDE, GIC_MAINTENANCE_PPI, PMU_PPI, TIMER_PPIS,
};

use tantalum_core::config::{VIRTUAL_UART_SIZE as VUART_SIZE, VIRTUAL_UART_SPI as VUART_SPI};

/// GIC layout used when the board has none (keeps the generated tree valid).
const DEFAULT_GICD: u64 = 0x0800_0000;
const DEFAULT_GICR: u64 = 0x080a_0000;

fn cells(v: u64) -> String {
    format!("{:#x} {:#x}", v >> 32, v & 0xffff_ffff)
}

fn strings(list: &[String]) -> String {
    list.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", ")
}

/// `s` as a DTS string literal: quotes, backslashes and control characters escaped, so that dtc
/// reads back exactly `s` (a bootargs ending in `\` or holding `"` must not break the guest DT).
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c) & 0xff)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The guest DT node of a partition's virtual 16550 on an x86 board (no `reg`: it is on ports).
const X86_VUART_NODE: &str = "virtual-uart";

/// A node name for a passed-through device: the board node's name with its unit address (its
/// guest MMIO address; for a device on I/O ports only, which has no `reg` in the guest DT, the
/// board's unit address joined by a dash: `interrupt-controller-i20` and
/// `interrupt-controller-ia0` would clash without it).
fn device_node_name(d: &DeviceAssignment) -> String {
    let base = d.path.rsplit('/').next().unwrap_or("device");
    let name = base.split('@').next().unwrap_or("device");
    match d.mmio.first() {
        Some(r) => format!("{name}@{:x}", r.start.as_u64()),
        None => base.replace('@', "-"),
    }
}

/// A passed-through PCI host bridge: ECAM, the same windows, bus range and INTx wiring, pointing
/// at the guest's virtual GIC. No `iommu-map` / `msi-map`: the SMMU is the hypervisor's, and the
/// guest's addresses are what the SMMU translates.
fn pci_host(w: &mut String, d: &DeviceAssignment, host: &PciHost) {
    let Some(ecam) = d.mmio.first() else { return };
    let _ = writeln!(w, "\t{} {{", device_node_name(d));
    if !d.compatible.is_empty() {
        let _ = writeln!(w, "\t\tcompatible = {};", strings(&d.compatible));
    }
    let _ = writeln!(w, "\t\tdevice_type = \"pci\";");
    let _ = writeln!(w, "\t\treg = <{} {}>;", cells(ecam.start.as_u64()), cells(ecam.size));
    let _ = writeln!(w, "\t\tbus-range = <{:#x} {:#x}>;", host.buses.0, host.buses.1);
    let _ = writeln!(w, "\t\t#address-cells = <3>;\n\t\t#size-cells = <2>;\n\t\t#interrupt-cells = <1>;");
    let ranges: Vec<String> = host
        .windows
        .iter()
        .map(|r| {
            let (pci, cpu) = (r.pci, r.cpu.start.as_u64());
            format!("<{:#x} {} {} {}>", r.space, cells(pci), cells(cpu), cells(r.cpu.size))
        })
        .collect();
    let _ = writeln!(w, "\t\tranges = {};", ranges.join(", "));
    let m = host.interrupt_map_mask;
    let _ = writeln!(w, "\t\tinterrupt-map-mask = <{:#x} {:#x} {:#x} {:#x}>;", m[0], m[1], m[2], m[3]);
    let map: Vec<String> = host
        .interrupt_map
        .iter()
        .map(|(c, i)| {
            format!(
                "<{:#x} {:#x} {:#x} {:#x} &gic {} {} {}>",
                c[0], c[1], c[2], c[3], i.kind, i.number, i.flags
            )
        })
        .collect();
    if !map.is_empty() {
        let _ = writeln!(w, "\t\tinterrupt-map = {};", map.join(",\n\t\t\t"));
    }
    let _ = writeln!(w, "\t\tdma-coherent;\n\t}};\n");
}

/// Board node properties copied as they are (booleans), looked up in the system DTB.
fn has_property(board_dtb: &[u8], path: &str, name: &str) -> bool {
    fdt::Fdt::new(board_dtb)
        .ok()
        .and_then(|f| f.find_node(path).map(|n| n.property(name).is_some()))
        .unwrap_or(false)
}

/// DTS source of partition `p`'s guest device tree. `board_dtb` is the compiled system DTB
/// (for properties of passed-through devices that the config does not model).
pub fn source(cfg: &SystemConfig, p: &PartitionConfig, board_dtb: &[u8]) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "/dts-v1/;\n");
    if let Some(dtb) = p.guest_dtb_address() {
        let _ = writeln!(w, "/memreserve/ {:#x} {GUEST_DTB_RESERVE:#x};\n", dtb.as_u64());
    }
    let _ = writeln!(w, "/ {{");
    let _ = writeln!(w, "\tcompatible = \"tantalum,partition-v1\";");
    let _ = writeln!(w, "\tmodel = \"Tantalum partition {}\";", p.name);
    let _ = writeln!(w, "\t#address-cells = <2>;\n\t#size-cells = <2>;");
    let _ = writeln!(w, "\tinterrupt-parent = <&gic>;\n");
    // Where the board places the emulated pages (the config check refused a partition that uses
    // pages its board does not place).
    let page = |what, n| cfg.board.emulated.page(what, n).unwrap_or_default();
    let vuart_base = page(Emulated::VirtualUart, 0);

    let vuart_page = p.virtual_uart && cfg.board.emulated.virtual_uart.is_some();
    // On an x86 board the virtual UART is a 16550 at COM1's ports in the partition's own port
    // space (docs/x86.md): its node says where, and the INTID (the vector) of its interrupt.
    let vuart_ports = p.virtual_uart && cfg.board.x86.is_some();
    let stdout = if vuart_page {
        format!("\t\tstdout-path = \"/pl011@{vuart_base:x}\";\n")
    } else if vuart_ports {
        format!("\t\tstdout-path = \"/{X86_VUART_NODE}\";\n")
    } else {
        String::new()
    };
    let bootargs = p.bootargs.as_deref().unwrap_or("");
    let initrd = match (p.initrd_address(), p.initrd_size()) {
        (Some(start), Some(size)) => format!(
            "\t\tlinux,initrd-start = <{}>;\n\t\tlinux,initrd-end = <{}>;\n",
            cells(start.as_u64()),
            cells(start.as_u64() + size)
        ),
        _ => String::new(),
    };
    let _ = writeln!(w, "\tchosen {{\n\t\tbootargs = {};\n{stdout}{initrd}\t}};\n", quoted(bootargs));

    let _ = writeln!(w, "\tcpus {{\n\t\t#address-cells = <1>;\n\t\t#size-cells = <0>;");
    for i in 0..p.cpus.len() {
        let _ = writeln!(
            w,
            "\t\tcpu@{i} {{\n\t\t\tdevice_type = \"cpu\";\n\t\t\tcompatible = \"arm,armv8\";\n\t\t\treg = <{i:#x}>;\n\t\t\tenable-method = \"psci\";\n\t\t}};"
        );
    }
    let _ = writeln!(w, "\t}};\n");

    for r in &p.memory {
        let _ = writeln!(
            w,
            "\tmemory@{:x} {{\n\t\tdevice_type = \"memory\";\n\t\treg = <{} {}>;\n\t}};\n",
            r.guest.as_u64(),
            cells(r.guest.as_u64()),
            cells(r.size)
        );
    }

    let _ = writeln!(
        w,
        "\tpsci {{\n\t\tcompatible = \"arm,psci-1.0\", \"arm,psci-0.2\";\n\t\tmethod = \"hvc\";\n\t}};\n"
    );

    match &cfg.board.gic {
        Some(g) if g.v2.is_some() => {
            // GICv2: the distributor (emulated) and the CPU interface (the hardware's GICV).
            let [(gicd, gicd_size), (gicc, gicc_size)] =
                tantalum_core::vplatform::gic_guest_frames(g, p.cpus.len());
            let _ = writeln!(
                w,
                "\tgic: interrupt-controller@{gicd:x} {{\n\t\tcompatible = \"arm,cortex-a15-gic\";\n\t\t#interrupt-cells = <3>;\n\t\t#address-cells = <0>;\n\t\tinterrupt-controller;\n\t\treg = <{} {}>, <{} {}>;\n\t\tinterrupts = <1 {GIC_MAINTENANCE_PPI} 4>;\n\t}};\n",
                cells(gicd),
                cells(gicd_size),
                cells(gicc),
                cells(gicc_size)
            );
        }
        gic => {
            let (gicd, gicd_size, gicr) = match gic {
                Some(g) => {
                    (g.distributor.start.as_u64(), g.distributor.size, g.redistributors.start.as_u64())
                }
                None => (DEFAULT_GICD, 0x1_0000, DEFAULT_GICR),
            };
            let gicr_size = GICR_STRIDE * p.cpus.len().max(1) as u64;
            let _ = writeln!(
                w,
                "\tgic: interrupt-controller@{gicd:x} {{\n\t\tcompatible = \"arm,gic-v3\";\n\t\t#interrupt-cells = <3>;\n\t\t#address-cells = <0>;\n\t\tinterrupt-controller;\n\t\t#redistributor-regions = <1>;\n\t\treg = <{} {}>, <{} {}>;\n\t\tinterrupts = <1 {GIC_MAINTENANCE_PPI} 4>;\n\t}};\n",
                cells(gicd),
                cells(gicd_size),
                cells(gicr),
                cells(gicr_size)
            );
        }
    }
    let timer: Vec<String> = TIMER_PPIS.iter().map(|ppi| format!("<1 {ppi} 4>")).collect();
    let _ = writeln!(
        w,
        "\ttimer {{\n\t\tcompatible = \"arm,armv8-timer\";\n\t\tinterrupts = {};\n\t\talways-on;\n\t}};\n",
        timer.join(", ")
    );
    // The CPU's own PMU (its accesses trap and count only the partition's EL0/EL1 work); the
    // overflow interrupt is forwarded like the timers'.
    let _ = writeln!(
        w,
        "\tpmu {{\n\t\tcompatible = \"arm,armv8-pmuv3\";\n\t\tinterrupts = <1 {PMU_PPI} 4>;\n\t}};\n"
    );

    if vuart_page {
        let _ = writeln!(
            w,
            "\tvuart_clk: vuart-clock {{\n\t\tcompatible = \"fixed-clock\";\n\t\t#clock-cells = <0>;\n\t\tclock-frequency = <24000000>;\n\t}};\n"
        );
        let _ = writeln!(
            w,
            "\tpl011@{vuart_base:x} {{\n\t\tcompatible = \"arm,pl011\", \"arm,primecell\";\n\t\treg = <{} {}>;\n\t\tinterrupts = <0 {VUART_SPI} 4>;\n\t\tclocks = <&vuart_clk>, <&vuart_clk>;\n\t\tclock-names = \"uartclk\", \"apb_pclk\";\n\t}};\n",
            cells(vuart_base),
            cells(VUART_SIZE)
        );
    }

    if vuart_ports {
        let ports = tantalum_core::config::x86::VIRTUAL_UART_PORTS;
        let _ = writeln!(
            w,
            "\t{X86_VUART_NODE} {{\n\t\tcompatible = \"ns16550a\";\n\t\ttantalum,io-ports = <{:#x} {:#x}>;\n\t\tclock-frequency = <1843200>;\n\t\tinterrupts = <0 {VUART_SPI} 4>;\n\t}};\n",
            ports.base, ports.count
        );
    }

    for d in &p.devices {
        if let Some(host) = &d.pci {
            pci_host(w, d, host);
            continue;
        }
        let _ = writeln!(w, "\t{} {{", device_node_name(d));
        if !d.compatible.is_empty() {
            let _ = writeln!(w, "\t\tcompatible = {};", strings(&d.compatible));
        }
        let regs: Vec<String> =
            d.mmio.iter().map(|r| format!("<{} {}>", cells(r.start.as_u64()), cells(r.size))).collect();
        if !regs.is_empty() {
            let _ = writeln!(w, "\t\treg = {};", regs.join(", "));
        }
        // An x86 device's I/O ports (which pass through): where the guest finds them.
        let ports = cfg.board.x86.as_ref().map_or(&[][..], |x| x.ports_of(&d.path));
        if !ports.is_empty() {
            let cells: Vec<String> =
                ports.iter().map(|p| format!("<{:#x} {:#x}>", p.base, p.count)).collect();
            let _ = writeln!(w, "\t\ttantalum,io-ports = {};", cells.join(", "));
        }
        if !d.interrupts.is_empty() {
            let irqs: Vec<String> =
                d.interrupts.iter().map(|i| format!("<{} {} {}>", i.kind, i.number, i.flags)).collect();
            let _ = writeln!(w, "\t\tinterrupts = {};", irqs.join(", "));
        }
        if has_property(board_dtb, &d.path, "dma-coherent") {
            let _ = writeln!(w, "\t\tdma-coherent;");
        }
        let _ = writeln!(w, "\t}};\n");
    }

    for (local, c) in cfg.channels_of(p.id).iter().enumerate() {
        let Some(ipa) = c.guest_address(p.id) else { continue };
        let endpoint = c.endpoints.iter().position(|&e| e == p.id).unwrap_or(0);
        let peer = c
            .endpoints
            .iter()
            .find(|&&e| e != p.id)
            .map(|&e| cfg.partitions[e as usize].name.as_str())
            .unwrap_or("");
        let direction = match c.writer {
            None => "duplex",
            Some(w) if w == p.id => "send",
            Some(_) => "receive",
        };
        let _ = writeln!(
            w,
            "\tchannel@{:x} {{\n\t\tcompatible = \"tantalum,channel-v1\", \"generic-uio\";\n\t\treg = <{} {}>, <{} {}>;\n\t\tinterrupts = <0 {} 1>;\n\t\ttantalum,channel = <{local}>;\n\t\ttantalum,name = \"{}\";\n\t\ttantalum,endpoint = <{endpoint}>;\n\t\ttantalum,peer = \"{peer}\";\n\t\ttantalum,direction = \"{direction}\";\n\t}};\n",
            ipa.as_u64(),
            cells(ipa.as_u64()),
            cells(c.memory.size),
            cells(page(Emulated::Doorbells, local)),
            cells(DOORBELL_PAGE),
            doorbell_spi(local),
            c.name,
        );
    }

    // Virtio devices: the standard virtio-mmio binding (docs/virtio.md); `dma-coherent`, or Linux
    // would map the rings non-cacheable while the hypervisor reads them cacheable.
    for (local, device) in cfg.virtio_devices(p.id).enumerate() {
        let base = page(Emulated::Virtio, local);
        let name_of = |id: Option<u16>| id.map_or("", |e| cfg.partitions[usize::from(e)].name.as_str());
        let (compatible, name, extra) = match device {
            VirtioDevice::Net(link) => {
                // The other partitions on the link (several on a switch).
                let peer = link
                    .endpoints
                    .iter()
                    .filter(|&&e| e != p.id)
                    .map(|&e| name_of(Some(e)))
                    .collect::<Vec<_>>()
                    .join(", ");
                // A vsock link's addresses, for user space to find its peer (docs/virtio.md).
                let cids = match (link.kind, link.endpoints.iter().find(|&&e| e != p.id)) {
                    (VirtioKind::Vsock, Some(&peer)) => format!(
                        "\t\ttantalum,cid = <{}>;\n\t\ttantalum,peer-cid = <{}>;\n",
                        tantalum_core::virtio::vsock::cid(p.id),
                        tantalum_core::virtio::vsock::cid(peer)
                    ),
                    _ => String::new(),
                };
                ("virtio,mmio", &link.name, format!("\t\ttantalum,peer = \"{peer}\";\n{cids}"))
            }
            // `tantalum,driver`, not `tantalum,peer`: the SDK counts links by that property.
            VirtioDevice::Disk { disk, .. } => {
                ("virtio,mmio", &disk.name, format!("\t\ttantalum,driver = \"{}\";\n", name_of(disk.driver)))
            }
            // The driver partition's backend page (docs/virtio.md): not a virtio device.
            VirtioDevice::DiskBackend(disk) => (
                "tantalum,blk-backend-v1",
                &disk.name,
                format!("\t\ttantalum,frontends = <{}>;\n", disk.frontends.len()),
            ),
        };
        let node = if compatible == "virtio,mmio" { "virtio_mmio" } else { "blk_backend" };
        let _ = writeln!(
            w,
            "\t{node}@{base:x} {{\n\t\tcompatible = \"{compatible}\";\n\t\treg = <{} {}>;\n\t\tinterrupts = <0 {} 1>;\n\t\tdma-coherent;\n\t\ttantalum,name = \"{name}\";\n{extra}\t}};\n",
            cells(base),
            cells(tantalum_core::virtio::VIRTIO_PAGE),
            tantalum_core::virtio::virtio_spi(local),
        );
    }

    let _ = writeln!(
        w,
        "\thypervisor {{\n\t\tcompatible = \"tantalum,hypervisor-v1\";\n\t\tpartition-id = <{}>;\n\t\tpartition-name = \"{}\";\n\t}};",
        p.id, p.name
    );
    let _ = writeln!(w, "}};");
    s
}

#[cfg(test)]
mod tests {
    use super::quoted;
    use std::path::Path;

    /// The guest DTB of partition `name` in system `dts`.
    fn guest_dtb(dts: &str, name: &str) -> Vec<u8> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let out = std::env::temp_dir().join(format!("tantalum-guest-dt-test-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let system = crate::check::dtc(&root.join(dts), &out.join("system.dtb")).unwrap();
        let cfg = tantalum_core::config::parse_reporting(&system).0.unwrap();
        let p = cfg.partitions.iter().find(|p| p.name == name).unwrap();
        let src = out.join(format!("{name}.dts"));
        std::fs::write(&src, super::source(&cfg, p, &system)).unwrap();
        let dtb = crate::check::dtc_strict(&src, &out.join(format!("{name}.dtb"))).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        dtb
    }

    #[test]
    fn an_x86_virtual_uart_is_named_with_its_ports_and_interrupt() {
        let dtb = guest_dtb("configs/x86/x86-console-focus.dts", "second");
        let fdt = fdt::Fdt::new(&dtb).unwrap();
        let stdout = fdt.find_node("/chosen").unwrap().property("stdout-path").unwrap().as_str().unwrap();
        assert_eq!(stdout, "/virtual-uart");
        let node = fdt.find_node(stdout).unwrap();
        let cells = |name: &str| -> Vec<u8> { node.property(name).unwrap().value.to_vec() };
        assert_eq!(cells("tantalum,io-ports"), [0, 0, 3, 0xf8, 0, 0, 0, 8]);
        // SPI 1: INTID 33, the vector the hypervisor injects (docs/x86.md).
        assert_eq!(cells("interrupts"), [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4]);
        assert!(node.compatible().unwrap().all().any(|c| c == "ns16550a"));
        // A partition without `virtual-uart;` has neither.
        let dtb = guest_dtb("configs/x86/x86-two-partitions.dts", "ping");
        let fdt = fdt::Fdt::new(&dtb).unwrap();
        assert!(fdt.find_node("/virtual-uart").is_none());
        assert!(fdt.find_node("/chosen").unwrap().property("stdout-path").is_none());
    }

    #[test]
    fn strings_are_escaped_for_dtc() {
        assert_eq!(quoted("console=ttyAMA0"), "\"console=ttyAMA0\"");
        assert_eq!(quoted(r#"say="hi" path=C:\"#), r#""say=\"hi\" path=C:\\""#);
        assert_eq!(quoted("a\nb"), "\"a\\x0ab\"");
    }
}
