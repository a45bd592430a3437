//! The SMMUv3 the hypervisor owns: every stream of a partition's devices translates only into
//! that partition's memory; every other stream, and every stream of a stopped partition, is
//! refused. Faults come back through the event queue and are handed to the owner's vCPUs,
//! which apply its `on-fault` policy (`core::partition`). Which stream is whose is core's
//! (`config::streams_of`, `config::stream_owner`); the formats are `smmu_format`.

use alloc::alloc::{alloc_zeroed, Layout};
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;
use tantalum_aarch64::boot_once::BootOnce;
use tantalum_aarch64::descriptors::Stage2Format;
use tantalum_aarch64::smmu_format::{
    self as fmt, Confinement, SmmuRegisters, SmmuStage1Format, CD_SIZE, CMD_SIZE, CR0, EVENT_SIZE, GBPA,
    IDR0, IRQ_CTRL, QUEUE_BITS, STE_SIZE, STREAM_BITS, STRTAB_BASE, STRTAB_BASE_CFG,
};
use tantalum_core::addr::{GuestPhys, HostPhys};
use tantalum_core::config::{self, PartitionConfig, StreamRange, SystemConfig, MAX_PARTITIONS};
use tantalum_core::iommu::DmaFault;
use tantalum_core::stage2::{Geometry, MapAttrs, MapError, Mappings, Stage2};
use tock_registers::interfaces::{Readable, Writeable};

use crate::console::info;
use crate::memory::HeapTables;
use crate::{el2, gic};

/// Board IOMMU the hypervisor drives: the first (the QEMU board has one).
const IOMMU: usize = 0;

/// The SMMU's state once it is up.
struct Smmu {
    regs: &'static SmmuRegisters,
    /// The linear stream table: 2^[`STREAM_BITS`] STEs.
    strtab: *mut [u64; 8],
    cmdq: *mut [u64; 2],
    cmd_prod: u32,
    eventq: *const [u64; 4],
    /// Interrupts it raises (event queue, global errors).
    interrupts: [Option<u32>; 2],
    /// Each partition's STE while it runs (`None`: it owns no stream).
    confined: [Option<[u64; 8]>; MAX_PARTITIONS],
    /// Each partition's streams (`config::streams_of`, worked out at boot: nothing is
    /// allocated after it).
    streams: [&'static [StreamRange]; MAX_PARTITIONS],
}

// SAFETY: the raw pointers are the SMMU's tables and queues on the heap, which live for the
// rest of the program and are only touched under the `SMMU` lock.
unsafe impl Send for Smmu {}

static SMMU: BootOnce<Mutex<Smmu>> = BootOnce::new();

/// Per partition: a DMA fault waiting for one of its vCPUs to apply the policy.
static PENDING: [Mutex<Option<DmaFault>>; MAX_PARTITIONS] = [const { Mutex::new(None) }; MAX_PARTITIONS];
static ANY_PENDING: [AtomicBool; MAX_PARTITIONS] = [const { AtomicBool::new(false) }; MAX_PARTITIONS];

/// Why the SMMU could not be set up.
#[derive(Debug)]
pub enum SmmuError {
    NoMemory,
    Map(MapError),
    /// It did not acknowledge a control change or finish its commands in time.
    Timeout(&'static str),
    /// A stream table, queue or context descriptor lies beyond what it can address.
    Unsupported(&'static str),
}

impl core::fmt::Display for SmmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SmmuError::NoMemory => write!(f, "no heap for its tables"),
            SmmuError::Map(e) => write!(f, "building a DMA map: {e}"),
            SmmuError::Timeout(what) => write!(f, "it did not {what}"),
            SmmuError::Unsupported(what) => write!(f, "it lacks {what}"),
        }
    }
}

fn alloc(bytes: usize) -> Result<*mut u8, SmmuError> {
    let layout = Layout::from_size_align(bytes, bytes.max(64)).map_err(|_| SmmuError::NoMemory)?;
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { alloc_zeroed(layout) };
    if ptr.is_null() {
        Err(SmmuError::NoMemory)
    } else {
        Ok(ptr)
    }
}

/// Spins until `done` or about 100 ms pass.
fn wait(done: impl Fn() -> bool, what: &'static str) -> Result<(), SmmuError> {
    let (start, freq) = el2::counter();
    while !done() {
        if el2::counter().0 - start > freq / 10 {
            return Err(SmmuError::Timeout(what));
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Sets up the board's SMMU, if it has one: every stream refused, then each partition's
/// streams confined to its memory, then translation on. Runs once, on the boot CPU, before any
/// partition starts; on an error, DMA behind the SMMU stays refused (`GBPA.ABORT`).
#[unsafe(link_section = ".text.boot_only")]
pub fn init(cfg: &SystemConfig, vmids: impl Fn(usize) -> u16) -> Result<(), SmmuError> {
    let Some(iommu) = cfg.board.iommus.get(IOMMU) else { return Ok(()) };
    // SAFETY: the config names this SMMU's register frame (rule 12 keeps it from every
    // partition); both the boot and the run-time EL2 maps cover it as device memory, and only
    // the hypervisor drives it, under the `SMMU` lock once initialised.
    let regs: &'static SmmuRegisters = unsafe { &*(iommu.mmio.start.as_u64() as *const SmmuRegisters) };
    // Off, refusing everything that bypasses it meanwhile.
    regs.cr0.set(0);
    wait(|| regs.cr0ack.get() == 0, "turn off")?;
    regs.gbpa.write(GBPA::ABORT::SET + GBPA::UPDATE::SET);
    wait(|| !regs.gbpa.is_set(GBPA::UPDATE), "update GBPA")?;
    let stage2 = regs.idr0.is_set(IDR0::S2P);
    if !stage2 && !regs.idr0.is_set(IDR0::S1P) {
        return Err(SmmuError::Unsupported("both translation stages"));
    }

    let streams = 1usize << STREAM_BITS;
    let strtab = alloc(streams * STE_SIZE)? as *mut [u64; 8];
    for sid in 0..streams {
        // SAFETY: `strtab` holds `streams` STEs, allocated above and not yet in use.
        unsafe { strtab.add(sid).write_volatile(fmt::ste_abort()) };
    }
    let cmdq = alloc((1 << QUEUE_BITS) * CMD_SIZE)? as *mut [u64; 2];
    let eventq = alloc((1 << QUEUE_BITS) * EVENT_SIZE)? as *const [u64; 4];
    el2::clean_to_poc(strtab as usize, streams * STE_SIZE);

    regs.strtab_base.write(STRTAB_BASE::ADDR.val(strtab as u64 >> 6) + STRTAB_BASE::RA::SET);
    regs.strtab_base_cfg.write(STRTAB_BASE_CFG::LOG2SIZE.val(STREAM_BITS) + STRTAB_BASE_CFG::FMT::Linear);
    regs.cmdq_base.set(fmt::queue_base(HostPhys(cmdq as u64), QUEUE_BITS));
    regs.cmdq_prod.set(0);
    regs.eventq_base.set(fmt::queue_base(HostPhys(eventq as u64), QUEUE_BITS));
    regs.eventq_cons.set(0);
    use fmt::CR1;
    regs.cr1.write(
        CR1::QUEUE_IC::WriteBack
            + CR1::QUEUE_OC::WriteBack
            + CR1::QUEUE_SH::Inner
            + CR1::TABLE_IC::WriteBack
            + CR1::TABLE_OC::WriteBack
            + CR1::TABLE_SH::Inner,
    );
    // RECINVSID: a stream beyond the table is recorded as an event, not dropped silently.
    regs.cr2.set(1 << 1);
    regs.cr0.write(CR0::CMDQEN::SET + CR0::EVENTQEN::SET);
    wait(|| regs.cr0ack.is_set(CR0::CMDQEN) && regs.cr0ack.is_set(CR0::EVENTQEN), "enable its queues")?;

    let interrupts = [iommu.event_irq.map(|i| i.intid()), iommu.gerror_irq.map(|i| i.intid())];
    let confined = [None; MAX_PARTITIONS];
    let mut streams: [&'static [StreamRange]; MAX_PARTITIONS] = [&[]; MAX_PARTITIONS];
    for (p, slot) in cfg.partitions.iter().zip(streams.iter_mut()) {
        // The SMMU lives as long as the hypervisor: its lists too.
        *slot = config::streams_of(cfg, p.id, IOMMU).leak();
    }
    let mut smmu = Smmu { regs, strtab, cmdq, cmd_prod: 0, eventq, interrupts, confined, streams };
    smmu.command(fmt::cmd_cfgi_all());
    smmu.command(fmt::cmd_tlbi_all());
    smmu.sync()?;

    for p in &cfg.partitions {
        let owned = smmu.streams_of(usize::from(p.id));
        if owned.is_empty() {
            continue;
        }
        let confinement = confine(p, stage2, vmids(usize::from(p.id)))?;
        let ste = fmt::ste(confinement);
        smmu.set_streams(owned, &ste)?;
        if let Some(slot) = smmu.confined.get_mut(usize::from(p.id)) {
            *slot = Some(ste);
        }
        let how = if stage2 { "a stage-2 table" } else { "a stage-1 table: this SMMU has no stage 2" };
        let list = Ranges(owned);
        info!(
            "{}: streams {list} of partition '{}' translate only into its memory, with {how}",
            iommu.path, p.name
        );
    }

    regs.irq_ctrl.write(IRQ_CTRL::EVENTQ_IRQEN::SET + IRQ_CTRL::GERROR_IRQEN::SET);
    wait(|| regs.irq_ctrlack.is_set(IRQ_CTRL::EVENTQ_IRQEN), "enable its interrupts")?;
    regs.cr0.write(CR0::CMDQEN::SET + CR0::EVENTQEN::SET + CR0::SMMUEN::SET);
    wait(|| regs.cr0ack.is_set(CR0::SMMUEN), "turn on")?;

    // Its interrupts go to the CPU of the first partition with streams (whose exits drain the
    // event queue), else to the boot CPU.
    let owner = cfg.partitions.iter().find(|p| !smmu.streams_of(usize::from(p.id)).is_empty());
    let cpu = owner.map_or(el2::current_mpidr(), |p| cfg.board.cpus[p.cpus[0]].hwid);
    for intid in interrupts.into_iter().flatten() {
        gic::route_spi(intid, cpu, true);
    }
    let _ = SMMU.set(Mutex::new(smmu));
    Ok(())
}

/// The translation for partition `p`'s streams: its memory at its guest addresses, read-write,
/// nothing else.
#[unsafe(link_section = ".text.boot_only")]
fn confine(p: &PartitionConfig, stage2: bool, vmid: u16) -> Result<Confinement, SmmuError> {
    let dma = MapAttrs { read: true, write: true, execute: false, device: false };
    let mut tables = HeapTables;
    if stage2 {
        let end = p.memory.iter().map(|r| r.guest.as_u64().saturating_add(r.size)).max().unwrap_or(0);
        let geometry = Geometry::covering(end).ok_or(SmmuError::Map(MapError::OutOfRange))?;
        let map = Stage2::new(&mut tables, geometry, Mappings::Blocks).map_err(SmmuError::Map)?;
        for r in &p.memory {
            map.map::<Stage2Format>(&mut tables, r.guest, r.host, r.size, dma).map_err(SmmuError::Map)?;
        }
        let (ipa_bits, start_level) = (geometry.ipa_bits, geometry.start_level);
        return Ok(Confinement::Stage2 { vmid, table: map.root, ipa_bits, start_level });
    }
    let geometry = Geometry { start_level: 1, root_tables: 1, ipa_bits: fmt::S1_INPUT_BITS as u32 };
    let map = Stage2::new(&mut tables, geometry, Mappings::Blocks).map_err(SmmuError::Map)?;
    for r in &p.memory {
        map.map::<SmmuStage1Format>(&mut tables, GuestPhys(r.guest.as_u64()), r.host, r.size, dma)
            .map_err(SmmuError::Map)?;
    }
    let cd = alloc(CD_SIZE)? as *mut [u64; 8];
    // SAFETY: `cd` was just allocated (64 bytes, 64-aligned) and nothing else refers to it.
    unsafe { cd.write_volatile(fmt::context_descriptor(map.root, vmid)) };
    el2::clean_to_poc(cd as usize, CD_SIZE);
    Ok(Confinement::Stage1 { cd: HostPhys(cd as u64) })
}

impl Smmu {
    /// Queues one command (the queue never fills: every batch ends with a waited-for sync).
    fn command(&mut self, cmd: [u64; 2]) {
        let index = (self.cmd_prod & ((1 << QUEUE_BITS) - 1)) as usize;
        // SAFETY: `index` is inside the command queue, which the SMMU reads only up to PROD.
        unsafe { self.cmdq.add(index).write_volatile(cmd) };
        el2::clean_to_poc(self.cmdq as usize + index * CMD_SIZE, CMD_SIZE);
        self.cmd_prod = fmt::queue_next(self.cmd_prod, QUEUE_BITS);
        self.regs.cmdq_prod.set(self.cmd_prod);
    }

    /// Queues a sync and waits until the SMMU has consumed every command.
    fn sync(&mut self) -> Result<(), SmmuError> {
        self.command(fmt::cmd_sync());
        let prod = self.cmd_prod;
        let regs = self.regs;
        wait(|| regs.cmdq_cons.get() & 0x00ff_ffff == prod, "finish its commands")
    }

    /// Partition `id`'s streams.
    fn streams_of(&self, id: usize) -> &'static [StreamRange] {
        self.streams.get(id).copied().unwrap_or_default()
    }

    /// Refuses all DMA of partition `id`'s streams.
    fn refuse(&mut self, id: usize) {
        let owned = self.streams_of(id);
        if owned.is_empty() {
            return;
        }
        if let Err(e) = self.set_streams(owned, &fmt::ste_abort()) {
            info!("SMMU: refusing the streams of partition {id}: {e}");
        }
    }

    /// Writes `ste` for every stream of `ranges` that the table covers, and makes the SMMU
    /// forget the old ones.
    fn set_streams(&mut self, ranges: &[StreamRange], ste: &[u64; 8]) -> Result<(), SmmuError> {
        let table = 1u64 << STREAM_BITS;
        for r in ranges {
            for sid in u64::from(r.first)..r.end().min(table) {
                // SAFETY: `sid` < the table's size; the SMMU re-reads the STE only after CFGI.
                unsafe { self.strtab.add(sid as usize).write_volatile(*ste) };
                el2::clean_to_poc(self.strtab as usize + sid as usize * STE_SIZE, STE_SIZE);
                self.command(fmt::cmd_cfgi_ste(sid as u32));
                if sid % 32 == 31 {
                    self.sync()?;
                }
            }
        }
        self.command(fmt::cmd_tlbi_all());
        self.sync()
    }

    /// Takes every event record, oldest first.
    fn drain(&mut self, mut each: impl FnMut(DmaFault)) {
        let mask = (2u32 << QUEUE_BITS) - 1;
        loop {
            let prod = self.regs.eventq_prod.get() & mask;
            let cons = self.regs.eventq_cons.get() & mask;
            if prod == cons {
                return;
            }
            let index = (cons & ((1 << QUEUE_BITS) - 1)) as usize;
            // SAFETY: the SMMU wrote the record at `cons` before moving PROD past it.
            let record = unsafe { self.eventq.add(index).read_volatile() };
            self.regs.eventq_cons.set(fmt::queue_next(cons, QUEUE_BITS));
            each(fmt::decode_event(&record));
        }
    }
}

/// Whether `intid` is one of the SMMU's interrupts.
pub fn is_smmu_interrupt(intid: u32) -> bool {
    SMMU.get().is_some_and(|s| s.lock().interrupts.contains(&Some(intid)))
}

/// The SMMU interrupted: each fault goes to the partition that owns its stream (its vCPUs
/// apply its policy at their next exit, which the kick forces); a fault no partition owns, or a
/// global error, is reported here.
pub fn on_interrupt(kick: impl Fn(usize)) {
    let Some(smmu) = SMMU.get() else { return };
    let mut smmu = smmu.lock();
    let errors = smmu.regs.gerror.get() ^ smmu.regs.gerrorn.get();
    if errors & EVENTQ_ABT_ERR != 0 {
        // A device faulting in a tight loop fills the queue: the refused accesses stay refused,
        // only their records are lost.
        info!("SMMU: event queue full: further DMA faults were refused without a record");
    }
    if errors & !EVENTQ_ABT_ERR != 0 {
        info!("SMMU global error {:#x}", u64::from(errors & !EVENTQ_ABT_ERR));
    }
    if errors != 0 {
        let gerror = smmu.regs.gerror.get();
        smmu.regs.gerrorn.set(gerror);
    }
    let mut owners = [false; MAX_PARTITIONS];
    // The partition whose devices own a stream (`config::stream_owner`, worked out at boot).
    let streams = smmu.streams;
    let owner = |stream| streams.iter().position(|ranges| ranges.iter().any(|r| r.contains(stream)));
    smmu.drain(|fault| match owner(fault.stream) {
        // A partition being restarted has its streams refused: records from before are stale.
        Some(id) if QUIESCED[id].load(Ordering::Acquire) => {}
        Some(id) => {
            let mut pending = PENDING[id].lock();
            if pending.is_none() {
                *pending = Some(fault);
                ANY_PENDING[id].store(true, Ordering::Release);
                owners[id] = true;
            }
        }
        _ => info!("SMMU: {fault}; no partition owns the stream"),
    });
    drop(smmu);
    for id in (0..MAX_PARTITIONS).filter(|&id| owners[id]) {
        kick(id);
    }
}

/// The flag set while a DMA fault of partition `id`'s devices waits to be taken
/// ([`take_fault`]): the vectors' fast path looks at it.
pub fn fault_flag(id: usize) -> &'static AtomicBool {
    &ANY_PENDING[id]
}

/// A DMA fault of partition `id` waiting for its policy, taken.
pub fn take_fault(id: usize) -> Option<DmaFault> {
    let flag = ANY_PENDING.get(id)?;
    if !flag.load(Ordering::Acquire) {
        return None;
    }
    flag.store(false, Ordering::Release);
    PENDING[id].lock().take()
}

/// `GERROR.EVENTQ_ABT_ERR`: an event could not be written (the queue was full).
const EVENTQ_ABT_ERR: u32 = 1 << 2;

/// Per partition: its streams are refused while it restarts.
static QUIESCED: [AtomicBool; MAX_PARTITIONS] = [const { AtomicBool::new(false) }; MAX_PARTITIONS];

/// Partition `id` restarts: its devices' DMA is refused (silently) until [`resume`], and any
/// fault recorded so far is dropped: it belongs to the run that ended.
pub fn quiesce(id: usize) {
    let (Some(smmu), Some(q)) = (SMMU.get(), QUIESCED.get(id)) else { return };
    let mut smmu = smmu.lock();
    if smmu.streams_of(id).is_empty() {
        return; // No device of it masters DMA through the SMMU: nothing to do.
    }
    q.store(true, Ordering::Release);
    smmu.refuse(id);
    smmu.drain(|_| {});
    drop(smmu);
    let _ = take_fault(id);
}

/// Partition `id`, reloaded, starts again: its streams translate into its memory again.
pub fn resume(id: usize) {
    let Some(smmu) = SMMU.get() else { return };
    if !QUIESCED.get(id).is_some_and(|q| q.load(Ordering::Acquire)) {
        return;
    }
    let mut smmu = smmu.lock();
    // Records of accesses refused while it restarted: stale.
    smmu.drain(|_| {});
    let _ = take_fault(id);
    if let Some(q) = QUIESCED.get(id) {
        q.store(false, Ordering::Release);
    }
    let Some(Some(ste)) = smmu.confined.get(id).copied() else { return };
    let owned = smmu.streams_of(id);
    if let Err(e) = smmu.set_streams(owned, &ste) {
        info!("SMMU: confining the streams of partition {id} again: {e}");
    }
}

/// Refuses all DMA of partition `id`'s streams from now on (it stopped).
pub fn disable_partition(id: usize) {
    let Some(smmu) = SMMU.get() else { return };
    smmu.lock().refuse(id);
}

/// Stream ranges as `0x0..0x100, 0x200..0x201`.
struct Ranges<'a>(&'a [StreamRange]);

impl core::fmt::Display for Ranges<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let end = r.end().min(1 << STREAM_BITS);
            write!(f, "{sep}{:#x}..{end:#x}", u64::from(r.first))?;
        }
        Ok(())
    }
}
