//! Building a system: partitions, guest DTBs, the final system DTB and the one boot image.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tantalum_aarch64::built::Parts;
use tantalum_core::addr::{align_up, HostPhys, HostRange};
use tantalum_core::bootimage::{runtime_reserve, BootInfo, ConsoleKind, BLOB_ALIGN, IMAGE_SIZE_OFFSET};
use tantalum_core::config::{self, BuildFacts, SystemConfig, MAX_CPUS};

use crate::board::{board_of, Board};
use crate::check::{check_dtb_reporting, dtc, dtc_strict, Checked, Problems};
use crate::{bail, cargo, guest_dt, step, Error, Result};

/// A blob placed in the boot image.
#[derive(Clone, Debug)]
pub struct Placed {
    pub partition: String,
    /// Offset of the image in the boot image file.
    pub file_offset: u64,
    pub size: u64,
    /// Offset and size of the initrd in the boot image file, if the partition has one.
    pub initrd: Option<(u64, u64)>,
}

/// A built system.
#[derive(Debug)]
pub struct BuiltSystem {
    pub image: PathBuf,
    pub board: PathBuf,
    pub config: SystemConfig,
    /// Each partition's image, where it sits in the file.
    pub images: Vec<Placed>,
    /// The aarch64 hypervisor's ELF, built with what the configuration needs (`None` on x86).
    pub hypervisor_elf: Option<PathBuf>,
}

struct BlobSpec {
    offset: u64,
    bytes: Vec<u8>,
}

fn sha_bytes(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// The blobs the build adds for one partition, with the property each is described by.
struct PartitionBlobs {
    image: BlobSpec,
    guest_dtb: BlobSpec,
    initrd: Option<BlobSpec>,
}

impl PartitionBlobs {
    fn named(&self) -> impl Iterator<Item = (&'static str, &BlobSpec)> {
        [("tantalum,image", Some(&self.image)), ("tantalum,guest-dtb", Some(&self.guest_dtb))]
            .into_iter()
            .chain([("tantalum,initrd", self.initrd.as_ref())])
            .filter_map(|(name, blob)| blob.map(|b| (name, b)))
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut BlobSpec> {
        [Some(&mut self.image), Some(&mut self.guest_dtb), self.initrd.as_mut()].into_iter().flatten()
    }
}

/// The generated top-level DTS: the user's DTS plus the properties the build adds.
fn generated_dts(user_dts: &Path, cfg: &SystemConfig, blobs: &[PartitionBlobs]) -> Result<String> {
    let abs = std::fs::canonicalize(user_dts)?;
    let mut s = format!("/include/ \"{}\"\n\n", abs.display());
    for (p, b) in cfg.partitions.iter().zip(blobs) {
        let _ = writeln!(s, "&{{{}}} {{", p.path);
        for (name, blob) in b.named() {
            let _ = writeln!(s, "\t{name} = /bits/ 64 <{:#x} {:#x}>;", blob.offset, blob.bytes.len());
            let _ = writeln!(s, "\t{name}-sha256 = [{}];", sha_bytes(&blob.bytes));
        }
        let _ = writeln!(s, "}};\n");
    }
    Ok(s)
}

fn fail(problems: Vec<String>) -> Error {
    for p in &problems {
        eprintln!("error: {p}");
    }
    Error(format!("{} problem(s) in the system description", problems.len()))
}

/// Places blobs after a system DTB of `dtb_len` bytes, each [`BLOB_ALIGN`]-aligned; returns
/// the payload size.
fn place(dtb_len: u64, blobs: &mut [PartitionBlobs]) -> u64 {
    let mut at = align_up(dtb_len, BLOB_ALIGN).unwrap_or(u64::MAX);
    for blob in blobs.iter_mut().flat_map(PartitionBlobs::all_mut) {
        blob.offset = at;
        at = align_up(at + blob.bytes.len() as u64, BLOB_ALIGN).unwrap_or(u64::MAX);
    }
    at
}

/// A boot image assembled in memory: everything the build does short of writing the file.
pub struct Assembled {
    /// The whole boot image.
    pub image: Vec<u8>,
    /// The configuration as the hypervisor will read it (from the embedded system DTB).
    pub config: SystemConfig,
    /// Where the payload starts in the image.
    pub payload_offset: u64,
    /// Each partition's image and initrd, where they sit in the file.
    pub placed: Vec<Placed>,
}

/// Generates the guest DTBs and the final system DTB, lays out the boot image after the
/// hypervisor binary `hyp_bin` (loaded at `load_address`) and checks the result exactly as the
/// hypervisor will at boot. Used by `build` and by `config check`, so that both refuse the same.
pub fn assemble(
    dts: &Path,
    out: &Path,
    source_dtb: &[u8],
    checked: &Checked,
    hyp_bin: &Path,
    load_address: u64,
) -> std::result::Result<Assembled, Problems> {
    let io = |e: std::io::Error| vec![e.to_string()];
    let cfg = &checked.config;
    std::fs::create_dir_all(out).map_err(io)?;
    let mut blobs = Vec::new();
    for ((p, image), initrd) in cfg.partitions.iter().zip(&checked.images).zip(&checked.initrds) {
        let src = out.join(format!("{}.guest.dts", p.name));
        std::fs::write(&src, guest_dt::source(cfg, p, source_dtb)).map_err(io)?;
        let dtb = dtc_strict(&src, &out.join(format!("{}.guest.dtb", p.name)))?;
        blobs.push(PartitionBlobs {
            image: BlobSpec { offset: 0, bytes: image.clone() },
            guest_dtb: BlobSpec { offset: 0, bytes: dtb },
            initrd: initrd.clone().map(|bytes| BlobSpec { offset: 0, bytes }),
        });
    }

    let gen = out.join("system.gen.dts");
    let generated = |blobs: &[PartitionBlobs]| generated_dts(dts, cfg, blobs).map_err(|e| vec![e.0]);
    std::fs::write(&gen, generated(&blobs)?).map_err(io)?;
    let sizing = dtc(&gen, &out.join("system.dtb"))?;
    let payload_len = place(sizing.len() as u64, &mut blobs);
    std::fs::write(&gen, generated(&blobs)?).map_err(io)?;
    let system_dtb = dtc(&gen, &out.join("system.dtb"))?;
    if system_dtb.len() != sizing.len() {
        return Err(vec!["internal: system DTB changed size between passes".into()]);
    }

    let mut payload = vec![0u8; payload_len as usize];
    payload[..system_dtb.len()].copy_from_slice(&system_dtb);
    for blob in blobs.iter_mut().flat_map(PartitionBlobs::all_mut) {
        let at = blob.offset as usize;
        payload[at..at + blob.bytes.len()].copy_from_slice(&blob.bytes);
    }

    let mut image = std::fs::read(hyp_bin).map_err(|e| vec![format!("{}: {e}", hyp_bin.display())])?;
    let x86 = cfg.board.x86.is_some();
    let payload_offset = if x86 {
        // A flat Multiboot2 kernel, bss in the file: the payload follows it (docs/x86.md).
        if image.len() < 128 || image[..4] != tantalum_x86_64::MULTIBOOT2_MAGIC.to_le_bytes() {
            return Err(vec![format!("{}: no Multiboot2 header at the start", hyp_bin.display())]);
        }
        align_up(image.len() as u64, BLOB_ALIGN).unwrap_or(u64::MAX)
    } else {
        if image.len() < 128 || image[56..60] != *b"ARM\x64" {
            return Err(vec![format!("{}: not an arm64 Image", hyp_bin.display())]);
        }
        let mut size_field = [0u8; 8];
        size_field.copy_from_slice(&image[IMAGE_SIZE_OFFSET..IMAGE_SIZE_OFFSET + 8]);
        let linked_size = u64::from_le_bytes(size_field);
        align_up(linked_size.max(image.len() as u64), BLOB_ALIGN).unwrap_or(u64::MAX)
    };
    image.resize(payload_offset as usize, 0);
    image.extend_from_slice(&payload);
    let total = image.len() as u64;
    if !x86 {
        image[IMAGE_SIZE_OFFSET..IMAGE_SIZE_OFFSET + 8].copy_from_slice(&total.to_le_bytes());
    }

    // The hypervisor checks all this again at boot, with the same facts.
    let final_cfg =
        config::parse(&system_dtb).map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let footprint = HostRange::new(HostPhys(load_address), total + runtime_reserve(MAX_CPUS as u64));
    let map = if x86 { tantalum_x86_64::HOST_MAP } else { config::HypervisorMap::for_system(&final_cfg) };
    let facts = BuildFacts { boot_image: Some(footprint), payload_size: Some(payload_len), map: Some(map) };
    config::validate(&final_cfg, &facts).map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let Some(console) = final_cfg.hypervisor.console.as_ref() else {
        return Err(vec![format!("/hypervisor: {}", config::ErrorKind::NoConsole)]);
    };
    let info = BootInfo {
        payload_offset,
        payload_size: payload_len,
        dtb_offset: 0,
        dtb_size: system_dtb.len() as u64,
        // x86: the 16550's first I/O port; aarch64: the PL011's MMIO base.
        console_base: match &final_cfg.board.x86 {
            Some(x86) => x86.ports_of(&console.path).first().map_or(0x3f8, |p| u64::from(p.base)),
            None => console.mmio.start.as_u64(),
        },
        // Checked by `config::validate`: a console is a UART one of the drivers drives.
        console_kind: ConsoleKind::from_compatible(&console.compatible).unwrap_or_default().to_word(),
        map,
    };
    info.encode_into(&mut image);

    let placed = final_cfg
        .partitions
        .iter()
        .zip(&blobs)
        .map(|(p, b)| Placed {
            partition: p.name.clone(),
            file_offset: payload_offset + b.image.offset,
            size: b.image.bytes.len() as u64,
            initrd: b.initrd.as_ref().map(|i| (payload_offset + i.offset, i.bytes.len() as u64)),
        })
        .collect();
    Ok(Assembled { image, config: final_cfg, payload_offset, placed })
}

/// Builds everything a system DTS needs and writes its boot image.
pub fn build_system(dts: &Path) -> Result<BuiltSystem> {
    build_system_with(dts, None)
}

/// [`build_system`]; `parts`: the aarch64 hypervisor's parts instead of those the configuration
/// needs (a test of the hypervisor's refusal).
pub fn build_system_with(dts: &Path, parts: Option<Parts>) -> Result<BuiltSystem> {
    if !dts.is_file() {
        bail!("{}: no such system description", dts.display());
    }
    let board_dir = board_of(dts)?;
    let board = Board::load(&board_dir)?;
    let stem = dts.file_stem().unwrap_or_default().to_string_lossy().to_string();
    let out = cargo::out_dir().join(&stem);
    std::fs::create_dir_all(&out)?;

    let x86 = crate::check::is_x86(dts);
    if x86 {
        crate::bochs::build_partitions()?;
    } else {
        cargo::build_partitions()?;
    }

    step(format!("checking {}", dts.display()));
    let source_dtb = dtc(dts, &out.join("system.src.dtb")).map_err(fail)?;
    let (checked, warnings) = check_dtb_reporting(dts, &source_dtb);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let checked = checked.map_err(fail)?;
    let (hyp_bin, hypervisor_elf) = if x86 {
        (crate::bochs::build_hypervisor()?, None)
    } else {
        let (elf, bin) = match parts {
            Some(parts) => cargo::build_hypervisor_at(board.load_address, parts)?,
            None => cargo::build_hypervisor_for(&checked.config, board.load_address)?,
        };
        (bin, Some(elf))
    };

    step("generating guest device trees, the system device tree and the boot image");
    let assembled = assemble(dts, &out, &source_dtb, &checked, &hyp_bin, board.load_address).map_err(fail)?;

    let path = out.join("tantalum.img");
    std::fs::write(&path, &assembled.image)?;
    step(format!(
        "boot image {} ({} KiB: hypervisor {} KiB, {} partition(s))",
        path.display(),
        assembled.image.len() / 1024,
        assembled.payload_offset / 1024,
        assembled.config.partitions.len()
    ));
    Ok(BuiltSystem {
        image: path,
        board: board_dir,
        config: assembled.config,
        images: assembled.placed,
        hypervisor_elf,
    })
}
