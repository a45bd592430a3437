//! `cargo xtask config show`: a readable plan of a system: one table per partition and the
//! physical memory map with the owner of every range, free space included.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tantalum_core::addr::HostRange;
use tantalum_core::config::{Dma, PartitionConfig, SystemConfig, VirtioDevice, VirtioKind};
use tantalum_core::stage2::Mappings;
use tantalum_core::virtio;
use tantalum_core::vplatform::Emulated;

use crate::check::{check_file_reporting, summary};
use crate::{bail, cargo, guest_dt, Result};

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b:#x} B"),
    }
}

/// What an access outside the partition's memory does, and whether the config said so or it is
/// the default (which depends on whether the partition is a Linux one).
fn outside_memory(p: &PartitionConfig) -> String {
    let chosen = p.outside_memory().name();
    match p.outside_memory {
        Some(_) => chosen.to_string(),
        None => format!("{chosen} (default)"),
    }
}

fn partition_table(cfg: &SystemConfig, p: &PartitionConfig, out: &mut String) {
    let _ = writeln!(
        out,
        "partition {} (id {}, boot order {}, on-fault {}, outside-memory {})",
        p.name,
        p.id,
        p.boot_order,
        p.on_fault.name(),
        outside_memory(p)
    );
    let image = p.image_path.as_deref().unwrap_or("-");
    let hint = p.image_size_hint.map(|s| format!(" ({s:#x} bytes with BSS)")).unwrap_or_default();
    let _ = writeln!(out, "  {:<10}{image}{hint}", "image");
    let _ = writeln!(out, "  {:<10}{:#x}", "entry", p.entry.as_u64());
    for (vcpu, &cpu) in p.cpus.iter().enumerate() {
        let c = &cfg.board.cpus[cpu];
        let label = if vcpu == 0 { "cpus" } else { "" };
        let _ = writeln!(out, "  {label:<10}vcpu{vcpu} = {} (hwid {:#x})", c.path, c.hwid);
    }
    for (i, r) in p.memory.iter().enumerate() {
        let label = if i == 0 { "memory" } else { "" };
        let _ = writeln!(
            out,
            "  {label:<10}{} ({}) at guest {:#x}",
            r.host_range(),
            size(r.size),
            r.guest.as_u64()
        );
    }
    if p.devices.is_empty() {
        let _ = writeln!(out, "  {:<10}-", "devices");
    }
    for (i, d) in p.devices.iter().enumerate() {
        let label = if i == 0 { "devices" } else { "" };
        let mmio: Vec<String> = d.mmio.iter().map(|r| r.to_string()).collect();
        let irqs: Vec<String> = d
            .interrupts
            .iter()
            .map(|i| format!("{} {}", if i.kind == 0 { "SPI" } else { "PPI" }, i.number))
            .collect();
        let region = d.region.map(|r| format!(" region {r}")).unwrap_or_default();
        let _ = writeln!(out, "  {label:<10}{}{region}: {} {}", d.path, mmio.join(", "), irqs.join(", "));
        match &d.dma {
            Dma::None => {}
            Dma::Streams { iommu, streams } => {
                let list: Vec<String> =
                    streams.iter().map(|s| format!("{:#x}..{:#x}", s.first, s.end())).collect();
                let iommu = cfg.board.iommus.get(*iommu).map_or("?", |i| i.path.as_str());
                let _ = writeln!(out, "  {:<10}  DMA confined by {iommu}, streams {}", "", list.join(", "));
            }
            Dma::Unconfined { .. } => {
                let _ = writeln!(
                    out,
                    "  {:<10}  DMA UNCONFINED: reaches all physical memory (dma-unconfined)",
                    ""
                );
            }
        }
    }
    let channels = cfg.channels_of(p.id);
    if channels.is_empty() {
        let _ = writeln!(out, "  {:<10}-", "channels");
    }
    for (local, c) in channels.iter().enumerate() {
        let label = if local == 0 { "channels" } else { "" };
        let peer = c
            .endpoints
            .iter()
            .find(|&&e| e != p.id)
            .map(|&e| cfg.partitions[e as usize].name.as_str())
            .unwrap_or("?");
        let direction = match c.writer {
            None => "duplex with",
            Some(w) if w == p.id => "sends to",
            Some(_) => "receives from",
        };
        let ipa = c.guest_address(p.id).map(|a| a.as_u64()).unwrap_or(0);
        let bell = cfg.board.emulated.page(Emulated::Doorbells, local).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {label:<10}#{local} {}: {direction} {peer}, {} ({}) at guest {ipa:#x}, doorbell page {bell:#x}",
            c.name,
            c.memory,
            size(c.memory.size)
        );
    }
    for (local, device) in cfg.virtio_devices(p.id).enumerate() {
        let label = if local == 0 { "virtio" } else { "" };
        let guest = cfg.board.emulated.page(Emulated::Virtio, local).unwrap_or_default();
        let spi = virtio::virtio_spi(local);
        let name_of = |id: Option<u16>| id.map_or("?", |e| cfg.partitions[usize::from(e)].name.as_str());
        let _ = match device {
            VirtioDevice::Net(link) => {
                let side = link.endpoints.iter().position(|&e| e == p.id).unwrap_or(0);
                let others: Vec<&str> =
                    link.endpoints.iter().filter(|&&e| e != p.id).map(|&e| name_of(Some(e))).collect();
                let peer = others.join(", ");
                let what = if link.endpoints.len() > 2 { "switch" } else { "link" };
                let address = match link.kind {
                    VirtioKind::Net => {
                        let m = virtio::net::mac(link.id, side);
                        format!(
                            "MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                            m[0], m[1], m[2], m[3], m[4], m[5]
                        )
                    }
                    VirtioKind::Vsock => {
                        let peer_cid = link.endpoints.get(side ^ 1).map_or(0, |&e| virtio::vsock::cid(e));
                        format!("CID {} (peer's {peer_cid})", virtio::vsock::cid(p.id))
                    }
                };
                writeln!(
                    out,
                    "  {label:<10}#{local} {}: {} {what} with {peer}, guest {guest:#x}, SPI {spi}, {address}",
                    link.name,
                    link.kind.name(),
                )
            }
            VirtioDevice::Disk { disk, frontend } => {
                let r = disk.frontends[frontend].region;
                writeln!(
                    out,
                    "  {label:<10}#{local} {}: virtio-blk, backend {} (driver partition), sectors {:#x}..{:#x} of the disk ({}), guest {guest:#x}, SPI {spi}",
                    disk.name,
                    name_of(disk.driver),
                    r.start,
                    r.start.saturating_add(r.sectors),
                    size(r.sectors.saturating_mul(virtio::blk::SECTOR))
                )
            }
            VirtioDevice::DiskBackend(disk) => {
                let fronts: Vec<String> = disk
                    .frontends
                    .iter()
                    .map(|f| {
                        format!("{} {:#x}+{:#x}", name_of(f.partition), f.region.start, f.region.sectors)
                    })
                    .collect();
                writeln!(
                    out,
                    "  {label:<10}#{local} {}: virtio-blk backend of {} ({} sectors) for {}, guest {guest:#x}, SPI {spi}",
                    disk.name,
                    disk.device.as_deref().unwrap_or("?"),
                    disk.sectors,
                    fronts.join(", ")
                )
            }
        };
    }
    if let Some(base) = cfg.board.emulated.virtual_uart.filter(|_| p.virtual_uart).map(|b| b.as_u64()) {
        let _ = writeln!(out, "  {:<10}virtual PL011 at guest {base:#x} (ttyAMA0)", "console");
    }
    if let Some(args) = &p.bootargs {
        let _ = writeln!(out, "  {:<10}{args}", "bootargs");
    }
}

/// Every owned range of RAM, sorted, with the free space between them.
fn memory_map(cfg: &SystemConfig, out: &mut String) {
    let mut owned: Vec<(HostRange, String)> = vec![(cfg.hypervisor.memory, "hypervisor".into())];
    for p in &cfg.partitions {
        owned.extend(p.memory.iter().map(|r| (r.host_range(), format!("partition {}", p.name))));
    }
    for c in &cfg.channels {
        owned.push((c.memory, format!("channel {}", c.name)));
    }
    owned.sort_by_key(|(r, _)| r.start);
    let _ = writeln!(out, "physical memory map");
    for ram in &cfg.board.ram {
        let mut at = ram.start.as_u64();
        for (r, owner) in owned.iter().filter(|(r, _)| ram.contains_range(r)) {
            if r.start.as_u64() > at {
                let gap = HostRange::new(tantalum_core::addr::HostPhys(at), r.start.as_u64() - at);
                let _ = writeln!(out, "  {:<26}{:>9}  free", gap.to_string(), size(gap.size));
            }
            let _ = writeln!(out, "  {:<26}{:>9}  {owner}", r.to_string(), size(r.size));
            at = at.max(r.end());
        }
        if at < ram.end() {
            let gap = HostRange::new(tantalum_core::addr::HostPhys(at), ram.end() - at);
            let _ = writeln!(out, "  {:<26}{:>9}  free", gap.to_string(), size(gap.size));
        }
    }
    let mut devices: Vec<(HostRange, String)> = cfg
        .partitions
        .iter()
        .flat_map(|p| {
            p.devices
                .iter()
                .flat_map(move |d| d.mmio.iter().map(move |r| (*r, format!("{} -> {}", d.path, p.name))))
        })
        .collect();
    if let Some(c) = cfg.hypervisor.console.as_ref().filter(|c| c.mmio.size > 0) {
        devices.push((c.mmio, format!("{} -> hypervisor console", c.path)));
    }
    if let Some(x86) = &cfg.board.x86 {
        devices.extend(
            x86.apics().map(|a| (a.mmio, format!("{} -> hypervisor (interrupt controller)", a.path))),
        );
    }
    devices.sort_by_key(|(r, _)| r.start);
    let _ = writeln!(out, "devices");
    for (r, who) in devices {
        let _ = writeln!(out, "  {:<26}{:>9}  {who}", r.to_string(), size(r.size));
    }
    if let Some(x86) = &cfg.board.x86 {
        x86_ports(cfg, x86, out);
    }
}

/// x86: who owns each board device's I/O ports.
fn x86_ports(cfg: &SystemConfig, x86: &tantalum_core::config::x86::X86Platform, out: &mut String) {
    let _ = writeln!(out, "I/O ports");
    for d in &x86.io_devices {
        let owner = if cfg.hypervisor.console.as_ref().is_some_and(|c| c.path == d.path) {
            "hypervisor console".to_string()
        } else {
            cfg.partitions.iter().find(|p| p.devices.iter().any(|a| a.path == d.path)).map_or_else(
                || "nobody (the hypervisor refuses guest access)".to_string(),
                |p| p.name.clone(),
            )
        };
        for ports in &d.ports {
            let _ = writeln!(out, "  {:<26}{:>9}  {} -> {owner}", ports.to_string(), "", d.path);
        }
    }
}

/// The whole plan as text.
pub fn plan(cfg: &SystemConfig) -> String {
    let leaves = match cfg.board.stage2_mappings {
        Mappings::Blocks => "the largest blocks alignment allows",
        Mappings::Pages => "4 KiB pages (the board's tantalum,stage2-mappings)",
    };
    let mut out = format!("{}\nstage 2 maps partition memory with {leaves}\n\n", summary(cfg));
    for p in &cfg.partitions {
        partition_table(cfg, p, &mut out);
        out.push('\n');
    }
    memory_map(cfg, &mut out);
    out
}

fn show_guest(dts: &Path, cfg: &SystemConfig, name: &str) -> Result<String> {
    let Some(p) = cfg.partitions.iter().find(|p| p.name == name) else {
        let names: Vec<&str> = cfg.partitions.iter().map(|p| p.name.as_str()).collect();
        bail!("no partition '{name}' in {} (partitions: {})", dts.display(), names.join(", "));
    };
    let dtb = crate::check::dtc(dts, &cargo::out_dir().join("check/show.dtb"))
        .map_err(|e| crate::Error(e.join("\n")))?;
    Ok(guest_dt::source(cfg, p, &dtb))
}

pub fn command(args: &[String]) -> Result<()> {
    let guest = args.iter().position(|a| a == "--guest").and_then(|i| args.get(i + 1)).cloned();
    let files: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--guest"))
        .map(|(_, a)| a)
        .collect();
    let [file] = files.as_slice() else {
        bail!("usage: cargo xtask config show FILE.dts [--guest NAME]");
    };
    crate::tools::ensure()?;
    if !cargo::out_dir().join("partitions").is_dir() {
        cargo::build_partitions()?;
    }
    let path = PathBuf::from(file);
    let (result, warnings) = check_file_reporting(&path);
    for w in &warnings {
        println!("warning: {w}");
    }
    let checked = match result {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                println!("error: {p}");
            }
            bail!("{file}: {} error(s); fix them first (cargo xtask config check {file})", problems.len());
        }
    };
    match guest {
        Some(name) => print!("{}", show_guest(&path, &checked.config, &name)?),
        None => print!("{}", plan(&checked.config)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tantalum_core::config::{self, SystemConfig};

    /// The parsed system, without its images: host tests run before the partitions are built
    /// (and a fresh clone has none), so they read the rules' view of the DTS only.
    fn parsed(dts: &str) -> SystemConfig {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let out = std::env::temp_dir().join(format!("tantalum-show-test-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let dtb_path = out.join(dts.replace('/', "_") + ".dtb");
        let dtb = crate::check::dtc(&root.join(dts), &dtb_path).unwrap_or_else(|p| panic!("{dts}: {p:?}"));
        let _ = std::fs::remove_file(&dtb_path);
        config::parse_reporting(&dtb).0.unwrap_or_else(|e| panic!("{dts}: {e:?}"))
    }

    fn header(dts: &str, name: &str) -> String {
        let plan = super::plan(&parsed(dts));
        let line = plan.lines().find(|l| l.starts_with(&format!("partition {name} ")));
        line.unwrap_or_else(|| panic!("no partition {name} in:\n{plan}")).to_string()
    }

    #[test]
    fn the_plan_shows_the_emulated_pages_where_the_board_places_them() {
        for (dts, uart, bell) in [
            ("configs/tests/linux-channel.dts", "0x9000000", "0xb000000"),
            ("configs/boards/zcu102-linux-channel.dts", "0xf0000000", "0xf0100000"),
        ] {
            let plan = super::plan(&parsed(dts));
            assert!(plan.contains(&format!("virtual PL011 at guest {uart} ")), "{dts}:\n{plan}");
            assert!(plan.contains(&format!("doorbell page {bell}\n")), "{dts}:\n{plan}");
        }
    }

    #[test]
    fn the_plan_lists_each_disk_frontend_and_its_backend() {
        let plan = super::plan(&parsed("configs/tests/linux-virtio-blk.dts"));
        for line in [
            "disk0: virtio-blk, backend storage (driver partition), sectors 0x0..0x4000 of the disk (8 MiB), guest 0xb100000, SPI 80",
            "disk0: virtio-blk, backend storage (driver partition), sectors 0x4000..0x8000 of the disk (8 MiB)",
            "disk0: virtio-blk backend of /pcie@10000000 (32768 sectors) for alpha 0x0+0x4000, beta 0x4000+0x4000",
        ] {
            assert!(plan.contains(line), "{line} not in:\n{plan}");
        }
    }

    #[test]
    fn the_plan_says_what_an_access_outside_memory_does() {
        // Set in the config, both ways; by default an abort for Linux, the fault policy otherwise.
        assert!(header("configs/tests/external-abort.dts", "bus").ends_with("outside-memory external-abort)"));
        assert!(header("configs/tests/linux-devmem-stop.dts", "linux").ends_with("outside-memory fault)"));
        let linux = header("configs/tests/linux-devmem.dts", "linux");
        assert!(linux.ends_with("outside-memory external-abort (default))"), "{linux}");
        let unikernel = header("configs/tests/linux-devmem.dts", "heartbeat");
        assert!(unikernel.ends_with("outside-memory fault (default))"), "{unikernel}");
    }
}
