//! Building a system: partitions, guest DTBs, the final system DTB and the one boot image.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tantalum_core::addr::{align_up, HostPhys, HostRange};
use tantalum_core::bootimage::{runtime_reserve, BootInfo, BLOB_ALIGN, IMAGE_SIZE_OFFSET};
use tantalum_core::config::{self, BuildFacts, SystemConfig, MAX_CPUS};

use crate::board::{board_of, Board};
use crate::check::{check_dtb, dtc, dtc_strict};
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

/// Builds everything a system DTS needs and writes its boot image.
pub fn build_system(dts: &Path) -> Result<BuiltSystem> {
    if !dts.is_file() {
        bail!("{}: no such system description", dts.display());
    }
    let board_dir = board_of(dts)?;
    let board = Board::load(&board_dir)?;
    let stem = dts.file_stem().unwrap_or_default().to_string_lossy().to_string();
    let out = cargo::out_dir().join(&stem);
    std::fs::create_dir_all(&out)?;

    let (_, hyp_bin) = cargo::build_hypervisor()?;
    cargo::build_partitions()?;

    step(format!("checking {}", dts.display()));
    let source_dtb = dtc(dts, &out.join("system.src.dtb")).map_err(fail)?;
    let checked = check_dtb(dts, &source_dtb).map_err(fail)?;
    for w in &checked.warnings {
        eprintln!("warning: {w}");
    }
    let cfg = checked.config;

    step("generating guest device trees");
    let mut blobs = Vec::new();
    for ((p, image), initrd) in cfg.partitions.iter().zip(checked.images).zip(checked.initrds) {
        let src = out.join(format!("{}.guest.dts", p.name));
        std::fs::write(&src, guest_dt::source(&cfg, p, &source_dtb))?;
        let dtb = dtc_strict(&src, &out.join(format!("{}.guest.dtb", p.name))).map_err(fail)?;
        blobs.push(PartitionBlobs {
            image: BlobSpec { offset: 0, bytes: image },
            guest_dtb: BlobSpec { offset: 0, bytes: dtb },
            initrd: initrd.map(|bytes| BlobSpec { offset: 0, bytes }),
        });
    }

    step("assembling the system device tree and boot image");
    let gen = out.join("system.gen.dts");
    std::fs::write(&gen, generated_dts(dts, &cfg, &blobs)?)?;
    let sizing = dtc(&gen, &out.join("system.dtb")).map_err(fail)?;
    let payload_len = place(sizing.len() as u64, &mut blobs);
    std::fs::write(&gen, generated_dts(dts, &cfg, &blobs)?)?;
    let system_dtb = dtc(&gen, &out.join("system.dtb")).map_err(fail)?;
    if system_dtb.len() != sizing.len() {
        bail!("internal: system DTB changed size between passes");
    }

    let mut payload = vec![0u8; payload_len as usize];
    payload[..system_dtb.len()].copy_from_slice(&system_dtb);
    for blob in blobs.iter_mut().flat_map(PartitionBlobs::all_mut) {
        let at = blob.offset as usize;
        payload[at..at + blob.bytes.len()].copy_from_slice(&blob.bytes);
    }

    let mut image = std::fs::read(&hyp_bin)?;
    if image.len() < 128 || image[56..60] != *b"ARM\x64" {
        bail!("{}: not an arm64 Image", hyp_bin.display());
    }
    let linked_size = u64::from_le_bytes(image[IMAGE_SIZE_OFFSET..IMAGE_SIZE_OFFSET + 8].try_into()?);
    let payload_offset = align_up(linked_size.max(image.len() as u64), BLOB_ALIGN).unwrap_or(u64::MAX);
    image.resize(payload_offset as usize, 0);
    image.extend_from_slice(&payload);
    let total = image.len() as u64;
    image[IMAGE_SIZE_OFFSET..IMAGE_SIZE_OFFSET + 8].copy_from_slice(&total.to_le_bytes());
    let Some(console) = cfg.hypervisor.console.as_ref() else {
        bail!("/hypervisor: missing 'console' (a phandle to the UART the hypervisor prints on)");
    };
    let info = BootInfo {
        payload_offset,
        payload_size: payload_len,
        dtb_offset: 0,
        dtb_size: system_dtb.len() as u64,
        console_base: console.mmio.start.as_u64(),
    };
    info.encode_into(&mut image);

    // The hypervisor checks all this again at boot; checking here gives the better message.
    let final_cfg =
        config::parse(&system_dtb).map_err(|e| fail(e.iter().map(|e| e.to_string()).collect()))?;
    let footprint = HostRange::new(HostPhys(board.load_address), total + runtime_reserve(MAX_CPUS as u64));
    let facts = BuildFacts { boot_image: Some(footprint), payload_size: Some(payload_len) };
    config::validate(&final_cfg, &facts).map_err(|e| fail(e.iter().map(|e| e.to_string()).collect()))?;

    let path = out.join("tantalum.img");
    std::fs::write(&path, &image)?;
    step(format!(
        "boot image {} ({} KiB: hypervisor {} KiB, {} partition(s))",
        path.display(),
        total / 1024,
        payload_offset / 1024,
        cfg.partitions.len()
    ));
    let placed = cfg
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
    Ok(BuiltSystem { image: path, board: board_dir, config: final_cfg, images: placed })
}
