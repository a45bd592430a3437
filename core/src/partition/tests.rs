use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::addr::HostRange;
use crate::config::{Board, ChannelConfig, HypervisorConfig, MemoryRegion, OutsideMemory};
use crate::hypercall::*;

#[derive(Default)]
struct Fake {
    console: Vec<u8>,
    reads: Vec<(HostPhys, usize)>,
    waited: u64,
    gic: Vec<(Frame, vgic::Access)>,
    notified: Vec<(PartitionId, u32)>,
    ipis: Vec<(VcpuSet, u32)>,
    routed: Vec<(u32, usize)>,
    /// Whether `route_doorbell` is there (an arch without a routing interrupt controller).
    routes: bool,
    started: Vec<(usize, GuestPhys, u64)>,
    uart: Vec<(u64, Option<u64>)>,
    gic_cpu: Vec<vgic::Access>,
    pmu: Vec<(u32, Option<u64>)>,
}

impl Services for Fake {
    fn read_memory(&mut self, pa: HostPhys, buf: &mut [u8]) {
        self.reads.push((pa, buf.len()));
        buf.fill(b'x');
    }
    fn console_write(&mut self, bytes: &[u8]) {
        self.console.extend_from_slice(bytes);
    }
    fn wait(&mut self, timeout_ns: u64) {
        self.waited += timeout_ns;
    }
    fn gic_access(&mut self, frame: Frame, access: vgic::Access) -> u64 {
        self.gic.push((frame, access));
        0x3b
    }
    fn gic_cpu_access(&mut self, access: vgic::Access) -> u64 {
        self.gic_cpu.push(access);
        0x1b
    }
    fn notify(&mut self, target: PartitionId, intid: u32) {
        self.notified.push((target, intid));
    }
    fn send_ipi(&mut self, targets: VcpuSet, intid: u32) -> bool {
        // An arch whose IPIs are 0..15 (Arm's SGIs).
        if intid >= 16 {
            return false;
        }
        self.ipis.push((targets, intid));
        true
    }
    fn route_doorbell(&mut self, intid: u32, vcpu: usize) -> bool {
        if self.routes {
            self.routed.push((intid, vcpu));
        }
        self.routes
    }
    fn cpu_on(&mut self, vcpu: usize, entry: GuestPhys, context: u64) -> Status {
        if vcpu >= 2 {
            return Status::InvalidParameters;
        }
        self.started.push((vcpu, entry, context));
        if vcpu == 0 {
            Status::AlreadyOn
        } else {
            Status::Success
        }
    }
    fn uart_access(&mut self, offset: u64, write: Option<u64>) -> u64 {
        self.uart.push((offset, write));
        0x11
    }
    fn partition_running(&mut self, id: PartitionId) -> bool {
        id == 1
    }
    fn pmu_access(&mut self, id: u32, write: Option<u64>) -> u64 {
        self.pmu.push((id, write));
        0x41
    }
    fn vcpu_power(&mut self, vcpu: usize) -> Option<power::Power> {
        (vcpu < 2).then_some(if vcpu == 0 { power::Power::On } else { power::Power::Off })
    }
}

fn partition(policy: FaultPolicy) -> PartitionConfig {
    PartitionConfig {
        id: 0,
        name: String::from("ping"),
        path: String::from("/hypervisor/ping"),
        cpus: vec![1],
        memory: vec![MemoryRegion {
            host: HostPhys(0x4200_0000),
            guest: GuestPhys(0x4000_0000),
            size: 0x10_0000,
        }],
        image_path: None,
        image: None,
        guest_dtb: None,
        image_size_hint: None,
        entry: GuestPhys(0x4000_0000),
        on_fault: policy,
        ..Default::default()
    }
}

fn hvc(function: u64, args: [u64; 6]) -> Exit {
    Exit::Hypercall { function, args }
}

/// A board with a GIC, `p` as partition 0, a `pong` partition 1 and a channel between them.
fn system(p: &PartitionConfig) -> SystemConfig {
    let pong = PartitionConfig { id: 1, name: String::from("pong"), cpus: vec![2], ..p.clone() };
    SystemConfig {
        board: Board {
            gic: Some(crate::test_support::qemu_virt_gic()),
            emulated: crate::test_support::qemu_virt_emulated(),
            ..Board::default()
        },
        hypervisor: HypervisorConfig {
            memory: HostRange::new(HostPhys(0x4000_0000), 0x200_0000),
            console: None,
            benchmark_pmu: false,
        },
        partitions: vec![p.clone(), pong],
        channels: vec![ChannelConfig {
            id: 0,
            name: String::from("link"),
            path: String::from("/hypervisor/channels/link"),
            endpoints: vec![0, 1],
            memory: HostRange::new(HostPhys(0x4800_0000), 0x1_0000),
            guest: vec![GuestPhys(0x4800_0000); 2],
            writer: None,
        }],
        virtio: vec![],
        disks: vec![],
    }
}

fn run(p: &PartitionConfig, exit: Exit) -> (Outcome, Fake) {
    let mut fake = Fake::default();
    let outcome = handle_exit(&system(p), p.id, &PartitionState { restarts: 2 }, exit, &mut fake);
    (outcome, fake)
}

#[test]
fn unknown_hypercalls_return_not_supported_without_fault() {
    let p = partition(FaultPolicy::Stop);
    for f in [VENDOR_HYP_BASE + 99, 0x8600_0000, 0xC500_0000, 0, u64::MAX] {
        let (o, _) = run(&p, hvc(f, [0; 6]));
        assert_eq!(o, Outcome::ret(Status::NotSupported.to_reg()), "{f:#x}");
    }
}

#[test]
fn info_and_name() {
    let p = partition(FaultPolicy::Stop);
    let (o, _) = run(&p, hvc(HYP_PARTITION_INFO, [0; 6]));
    assert_eq!(o, Outcome::Return { values: [0, 2, 1, 0, 0], count: 3 });
    let (o, _) = run(&p, hvc(HYP_PARTITION_NAME, [0; 6]));
    assert_eq!(o, Outcome::Return { values: pack_name("ping"), count: 5 });
    let (o, _) = run(&p, hvc(HYP_VERSION, [0; 6]));
    assert_eq!(o, Outcome::ret(ABI_VERSION));
}

#[test]
fn console_write_translates_and_bounds_checks() {
    let p = partition(FaultPolicy::Stop);
    let (o, fake) = run(&p, hvc(HYP_CONSOLE_WRITE, [0x4000_1000, 5, 0, 0, 0, 0]));
    assert_eq!(o, Outcome::ret(5));
    assert_eq!(fake.reads, vec![(HostPhys(0x4200_1000), 5)]);
    assert_eq!(fake.console, b"xxxxx");
    // The last byte of memory is fine, one past is not.
    let (o, _) = run(&p, hvc(HYP_CONSOLE_WRITE, [0x400f_ffff, 1, 0, 0, 0, 0]));
    assert_eq!(o, Outcome::ret(1));
    let bad = [
        [0x400f_ffff, 2], // runs off the end
        [0x4200_0000, 1], // host address, not a guest one
        [0x3fff_ffff, 2], // starts below
        [u64::MAX, 2],    // wraps
        [0x4000_0000, CONSOLE_WRITE_MAX + 1],
    ];
    for [ipa, len] in bad {
        let (o, fake) = run(&p, hvc(HYP_CONSOLE_WRITE, [ipa, len, 0, 0, 0, 0]));
        assert_eq!(o, Outcome::status(Status::InvalidParameters), "{ipa:#x}+{len}");
        assert!(fake.reads.is_empty());
    }
}

#[test]
fn faults_follow_policy() {
    let exit = Exit::Stage2Fault { addr: GuestPhys(0x900_0000), access: Access::Write };
    let reason = StopReason::Fault(Fault::Memory { addr: GuestPhys(0x900_0000), access: Access::Write });
    assert_eq!(run(&partition(FaultPolicy::Stop), exit).0, Outcome::Stop(reason));
    assert_eq!(run(&partition(FaultPolicy::Restart), exit).0, Outcome::Restart(reason));
    assert_eq!(run(&partition(FaultPolicy::HaltSystem), exit).0, Outcome::HaltSystem(reason));
}

#[test]
fn outside_memory_can_be_an_external_abort() {
    let mut p = partition(FaultPolicy::Restart);
    p.outside_memory = Some(OutsideMemory::ExternalAbort);
    let addr = GuestPhys(0x900_0000);
    let exit = Exit::Stage2Fault { addr, access: Access::Execute };
    assert_eq!(run(&p, exit).0, Outcome::ExternalAbort { addr, access: Access::Execute });
    let read = MmioAccess { size: 4, register: 7, write: None };
    assert_eq!(
        run(&p, Exit::Mmio { addr, access: read }).0,
        Outcome::ExternalAbort { addr, access: Access::Read }
    );
    // Only accesses outside its memory: other faults keep the fault policy.
    let (o, _) = run(&p, Exit::Unhandled { syndrome: 0 });
    assert_eq!(o, Outcome::Restart(StopReason::Fault(Fault::Unhandled { syndrome: 0 })));
    p.outside_memory = Some(OutsideMemory::Fault);
    assert!(matches!(run(&p, exit).0, Outcome::Restart(StopReason::Fault(Fault::Memory { .. }))));
}

#[test]
fn forbidden_calls_follow_the_fault_policy() {
    let p = partition(FaultPolicy::Stop);
    let exit = Exit::ForbiddenCall { via: "SMC", function: 0xc200_0000 };
    let (o, _) = run(&p, exit);
    assert_eq!(
        o,
        Outcome::Stop(StopReason::Fault(Fault::ForbiddenCall { via: "SMC", function: 0xc200_0000 }))
    );
    let text = Report { partition: "attacker", outcome: &o, pc: 4 }.to_string();
    assert!(text.contains("fault: forbidden SMC (function 0xc2000000)"), "{text}");
    // What the arch answered itself goes back as it is.
    assert_eq!(run(&p, Exit::Answered { value: 0x1_0001 }).0, Outcome::ret(0x1_0001));
}

#[test]
fn power_requests_act_on_the_partition() {
    let p = partition(FaultPolicy::HaltSystem);
    let off = run(&p, Exit::SystemOff { via: "PSCI SYSTEM_OFF" }).0;
    assert_eq!(off, Outcome::Stop(StopReason::PoweredOff { via: "PSCI SYSTEM_OFF" }));
    let text = Report { partition: "linux", outcome: &off, pc: 0 }.to_string();
    assert_eq!(text, "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped");
    let reset = run(&p, Exit::SystemReset { via: "PSCI SYSTEM_RESET" }).0;
    assert_eq!(reset, Outcome::Restart(StopReason::Reset { via: "PSCI SYSTEM_RESET" }));
    let text = Report { partition: "phoenix", outcome: &reset, pc: 0 }.to_string();
    assert_eq!(text, "partition 'phoenix' reset (PSCI SYSTEM_RESET): restarting");
}

#[test]
fn exit_and_wait() {
    let p = partition(FaultPolicy::Stop);
    assert_eq!(run(&p, hvc(HYP_EXIT, [7, 0, 0, 0, 0, 0])).0, Outcome::Stop(StopReason::Exited { code: 7 }));
    let (o, fake) = run(&p, hvc(HYP_WAIT, [u64::MAX, 0, 0, 0, 0, 0]));
    assert_eq!(o, Outcome::ret(0));
    assert_eq!(fake.waited, WAIT_MAX_NS);
}

#[test]
fn report_lines() {
    let o = Outcome::Restart(StopReason::Fault(Fault::Memory {
        addr: GuestPhys(0x4300_0000),
        access: Access::Read,
    }));
    let line = Report { partition: "attacker", outcome: &o, pc: 0x4000_1234 }.to_string();
    assert_eq!(
        line,
        "partition 'attacker' fault: stage-2 read abort at IPA 0x43000000 (outside its memory), PC 0x40001234: restarting"
    );
}

#[test]
fn gic_accesses_are_emulated_other_mmio_faults() {
    let p = partition(FaultPolicy::Stop);
    let read = MmioAccess { size: 4, register: 7, write: None };
    let (o, fake) = run(&p, Exit::Mmio { addr: GuestPhys(0x800_ffe8), access: read });
    assert_eq!(o, Outcome::Emulated { load: Some((7, 0x3b)) });
    assert_eq!(fake.gic, [(Frame::Distributor, vgic::Access { offset: 0xffe8, size: 4, write: None })]);
    let store = MmioAccess { size: 4, register: 1, write: Some(5) };
    let (o, _) = run(&p, Exit::Mmio { addr: GuestPhys(0x80a_0014), access: store });
    assert_eq!(o, Outcome::Emulated { load: None });
    // Another vCPU's redistributor (the partition has one vCPU) and the UART are not emulated.
    let (o, fake) = run(&p, Exit::Mmio { addr: GuestPhys(0x80c_0014), access: store });
    assert!(matches!(o, Outcome::Stop(StopReason::Fault(Fault::Memory { .. }))));
    assert!(fake.gic.is_empty());
    let (o, _) = run(&p, Exit::Mmio { addr: GuestPhys(0x900_0000), access: read });
    assert!(matches!(o, Outcome::Stop(StopReason::Fault(Fault::Memory { access: Access::Read, .. }))));
}

/// On a GICv2 board, a trapped access to the CPU interface's first page (unmapped while a
/// re-sample is due) is carried out on the vCPU's interface; odd sizes and misaligned offsets
/// never reach it; its second page and a GICv3 board's same address are not the interface.
#[test]
fn gicv2_cpu_interface_accesses_are_carried_out_when_trapped() {
    let p = partition(FaultPolicy::Stop);
    let mut sys = system(&p);
    sys.board.gic = Some(crate::test_support::qemu_virt_gicv2());
    let state = PartitionState { restarts: 0 };
    let at = |addr, size, write| Exit::Mmio {
        addr: GuestPhys(addr),
        access: MmioAccess { size, register: 3, write },
    };
    let mut fake = Fake::default();
    assert_eq!(
        handle_exit(&sys, 0, &state, at(0x801_000c, 4, None), &mut fake),
        Outcome::Emulated { load: Some((3, 0x1b)) }
    );
    assert_eq!(
        handle_exit(&sys, 0, &state, at(0x801_0004, 4, Some(0xff)), &mut fake),
        Outcome::Emulated { load: None }
    );
    assert_eq!(
        fake.gic_cpu,
        [
            vgic::Access { offset: 0xc, size: 4, write: None },
            vgic::Access { offset: 4, size: 4, write: Some(0xff) }
        ]
    );
    for (addr, size) in [(0x801_0004, 8), (0x801_0004, 1), (0x801_0006, 4)] {
        let o = handle_exit(&sys, 0, &state, at(addr, size, None), &mut fake);
        assert_eq!(o, Outcome::Emulated { load: Some((3, 0)) }, "{addr:#x} size {size}");
    }
    assert_eq!(fake.gic_cpu.len(), 2, "odd accesses are not carried out");
    let o = handle_exit(&sys, 0, &state, at(0x801_1000, 4, Some(1)), &mut fake);
    assert!(matches!(o, Outcome::Stop(StopReason::Fault(Fault::Memory { .. }))), "GICC_DIR is mapped");
    let (o, fake) = run(&p, at(0x801_000c, 4, None));
    assert!(matches!(o, Outcome::Stop(StopReason::Fault(Fault::Memory { .. }))), "no GICC on a GICv3");
    assert!(fake.gic_cpu.is_empty());
}

#[test]
fn channel_notify_rings_the_peer() {
    let p = partition(FaultPolicy::Stop);
    let (o, fake) = run(&p, hvc(HYP_CHANNEL_NOTIFY, [0, 0, 0, 0, 0, 0]));
    assert_eq!(o, Outcome::ret(0));
    assert_eq!(fake.notified, [(1, vplatform::doorbell_intid(0))]);
    for bad in [1, u64::MAX] {
        let (o, fake) = run(&p, hvc(HYP_CHANNEL_NOTIFY, [bad, 0, 0, 0, 0, 0]));
        assert_eq!(o, Outcome::status(Status::InvalidParameters));
        assert!(fake.notified.is_empty());
    }
}

/// The arch's notify fast path decides as the exit path: for every caller (a partition with
/// one channel, with two, with one shared by three endpoints; one that does not exist), every
/// call near the vendor range and every channel number (hostile ones included),
/// [`channel_notify_at_once`] either declines having done nothing (any call but
/// HYP_CHANNEL_NOTIFY, an unknown partition) or rings exactly the doorbells `handle_exit` rings
/// and answers what it answers, in x0 alone.
#[test]
fn channel_notify_at_once_decides_as_handle_exit() {
    let p = partition(FaultPolicy::Stop);
    let mut sys = system(&p);
    let third = PartitionConfig { id: 2, name: String::from("third"), cpus: vec![3], ..p.clone() };
    sys.partitions.push(third);
    sys.channels.push(channel(1, vec![1, 2]));
    sys.channels.push(channel(2, vec![2, 0, 1]));
    sys.channels.push(channel(3, vec![0, 2]));
    let mut functions = vec![0, u64::MAX, psci::VERSION, VENDOR_HYP_BASE + 0xff];
    functions.extend((0..16).map(|n| VENDOR_HYP_BASE + n));
    let channels = [0, 1, 2, 3, 4, 5, 0xff, 1 << 32, u64::MAX, u64::MAX - 1];
    let state = PartitionState { restarts: 1 };
    let peers = ChannelPeers::new(&sys);
    let mut rung = 0;
    for id in 0..4 as PartitionId {
        for &function in &functions {
            for &c in &channels {
                let args = [c, 7, 8, 9, 10, 11];
                let mut fast = Fake::default();
                let answer = channel_notify_at_once(&peers, id, function, &args, &mut fast);
                let Some(value) = answer else {
                    let known = usize::from(id) < sys.partitions.len();
                    assert!(function != HYP_CHANNEL_NOTIFY || !known, "{id} {function:#x} {c:#x}");
                    assert!(fast.notified.is_empty(), "declined having done nothing");
                    continue;
                };
                assert_eq!(function, HYP_CHANNEL_NOTIFY);
                let mut slow = Fake::default();
                let outcome = handle_exit(&sys, id, &state, hvc(function, args), &mut slow);
                assert_eq!(outcome, Outcome::ret(value), "partition {id}, channel {c:#x}");
                assert_eq!(fast.notified, slow.notified, "partition {id}, channel {c:#x}");
                assert!(fast.console.is_empty() && fast.gic.is_empty() && fast.ipis.is_empty());
                rung += fast.notified.len();
            }
        }
    }
    // Partition 0's channels 0..3, 1's 0..3, 2's 0..3: a doorbell per peer each.
    assert_eq!(rung, (1 + 2 + 1) + (1 + 1 + 2) + (2 + 1 + 1));
}

/// The boot-time table of the notify fast path ([`ChannelPeers`]) rings what `handle_exit` rings,
/// on random configurations (up to 16 partitions, channels of two or more endpoints in any
/// order, endpoints listed twice and partitions without channels included) and random channel
/// numbers (hostile ones too), with the table built once and used across the callers' restarts
/// (a restart keeps the configuration; whether a peer runs is the arch's `notify`'s concern,
/// the same call on both paths).
#[test]
fn channel_peers_ring_what_handle_exit_rings() {
    use crate::test_random::Random;
    let mut r = Random(0x51ce_0bad_cafe_f00d);
    let base = partition(FaultPolicy::Stop);
    let (mut rung, mut refused) = (0usize, 0usize);
    for _ in 0..300 {
        let n = 1 + (r.next() % crate::config::MAX_PARTITIONS as u64) as usize;
        let mut sys = system(&base);
        sys.partitions = (0..n)
            .map(|i| PartitionConfig {
                id: i as PartitionId,
                name: alloc::format!("p{i}"),
                cpus: vec![i],
                ..base.clone()
            })
            .collect();
        sys.channels = (0..(r.next() % 20) as usize)
            .map(|id| {
                let count = 2 + (r.next() % 4) as usize;
                let endpoints: Vec<PartitionId> =
                    (0..count).map(|_| (r.next() % n as u64) as PartitionId).collect();
                channel(id, endpoints)
            })
            .collect();
        let peers = ChannelPeers::new(&sys);
        for _ in 0..40 {
            let id = (r.next() % (n as u64 + 2)) as PartitionId;
            let x = r.next();
            let channel = match x % 4 {
                0 | 1 => x >> 60,
                2 => x,
                _ => u64::MAX - (x >> 62),
            };
            let args = [channel, x, 0, 0, 0, 0];
            let state = PartitionState { restarts: (x >> 32) as u32 % 3 };
            let mut fast = Fake::default();
            let answer = channel_notify_at_once(&peers, id, HYP_CHANNEL_NOTIFY, &args, &mut fast);
            let Some(value) = answer else {
                assert!(usize::from(id) >= n, "partition {id} of {n} declined");
                assert!(fast.notified.is_empty());
                continue;
            };
            let mut slow = Fake::default();
            let outcome = handle_exit(&sys, id, &state, hvc(HYP_CHANNEL_NOTIFY, args), &mut slow);
            assert_eq!(outcome, Outcome::ret(value), "partition {id}, channel {channel:#x}");
            assert_eq!(fast.notified, slow.notified, "partition {id}, channel {channel:#x}");
            let expected = sys.endpoint_channels(id).count();
            assert_eq!(peers.of(id).map(|c| c.len()), Some(expected));
            match value {
                0 => rung += fast.notified.len(),
                _ => refused += 1,
            }
        }
    }
    assert!(rung > 1000 && refused > 1000, "{rung} rung, {refused} refused");
}

#[test]
fn cpu_on_off_and_state() {
    let p = partition(FaultPolicy::Stop);
    let on = |vcpu| Exit::CpuOn { vcpu, entry: GuestPhys(0x4008_0000), context: 0x77 };
    let (o, fake) = run(&p, on(1));
    assert_eq!(o, Outcome::ret(0));
    assert_eq!(fake.started, [(1, GuestPhys(0x4008_0000), 0x77)]);
    assert_eq!(run(&p, on(0)).0, Outcome::status(Status::AlreadyOn));
    for bad in [2, 0x100, usize::MAX] {
        assert_eq!(run(&p, on(bad)).0, Outcome::status(Status::InvalidParameters), "{bad:#x}");
    }
    assert_eq!(run(&p, Exit::CpuState { vcpu: 1 }).0, Outcome::ret(psci::AFFINITY_OFF));
    assert_eq!(run(&p, Exit::CpuState { vcpu: 0 }).0, Outcome::ret(psci::AFFINITY_ON));
    assert_eq!(run(&p, Exit::CpuState { vcpu: 2 }).0, Outcome::status(Status::InvalidParameters));
    assert_eq!(run(&p, Exit::CpuOff).0, Outcome::VcpuOff);
}

#[test]
fn ipis_are_sent_to_the_named_vcpus() {
    let p = partition(FaultPolicy::Stop);
    let (o, fake) = run(&p, Exit::SendIpi { targets: VcpuSet(0b10), intid: 1 });
    assert_eq!(o, Outcome::Emulated { load: None });
    assert_eq!(fake.ipis, [(VcpuSet(0b10), 1)]);
}

/// A partition like [`partition`]'s with two vCPUs.
fn two_vcpus() -> PartitionConfig {
    PartitionConfig { cpus: vec![1, 3], ..partition(FaultPolicy::Stop) }
}

#[test]
fn send_ipi_hypercall_reaches_only_the_callers_own_vcpus() {
    let p = two_vcpus();
    for (targets, intid) in [(0b10, 1), (0b11, 15), (0b01, 0)] {
        let (o, fake) = run(&p, hvc(HYP_SEND_IPI, [targets, intid, 0, 0, 0, 0]));
        assert_eq!(o, Outcome::ret(0), "{targets:#b}");
        assert_eq!(fake.ipis, [(VcpuSet(targets), intid as u32)]);
    }
    // Hostile: no target, a vCPU it lacks (alone or beside its own), the top bit, an intid the
    // arch does not deliver as an IPI, one beyond 32 bits. Nothing is sent for any of them.
    let bad = [(0, 1), (0b100, 1), (0b110, 1), (1 << 63, 1), (u64::MAX, 1), (0b10, 16), (0b10, 1 << 32 | 1)];
    for (targets, intid) in bad {
        let (o, fake) = run(&p, hvc(HYP_SEND_IPI, [targets, intid, 0, 0, 0, 0]));
        assert_eq!(o, Outcome::status(Status::InvalidParameters), "{targets:#x} {intid:#x}");
        assert!(fake.ipis.is_empty(), "{targets:#x} {intid:#x}");
    }
    // One vCPU: only itself.
    let one = partition(FaultPolicy::Stop);
    assert_eq!(run(&one, hvc(HYP_SEND_IPI, [0b1, 2, 0, 0, 0, 0])).0, Outcome::ret(0));
    assert_eq!(
        run(&one, hvc(HYP_SEND_IPI, [0b10, 2, 0, 0, 0, 0])).0,
        Outcome::status(Status::InvalidParameters)
    );
}

#[test]
fn doorbell_targets_are_the_callers_doorbells_and_vcpus() {
    let p = two_vcpus();
    let bell = u64::from(vplatform::doorbell_intid(0));
    let call = |intid, vcpu, routes| {
        let mut fake = Fake { routes, ..Fake::default() };
        let exit = hvc(HYP_INTERRUPT_TARGET, [intid, vcpu, 0, 0, 0, 0]);
        let o = handle_exit(&system(&p), p.id, &PartitionState::default(), exit, &mut fake);
        (o, fake.routed)
    };
    assert_eq!(call(bell, 1, true), (Outcome::ret(0), vec![(bell as u32, 1)]));
    assert_eq!(call(bell, 0, true), (Outcome::ret(0), vec![(bell as u32, 0)]));
    // Its second channel's doorbell (it has one channel), an SGI, a vCPU it lacks.
    for (intid, vcpu) in [(bell + 1, 1), (1, 1), (bell, 2), (bell, u64::MAX), (u64::MAX, 0)] {
        assert_eq!(
            call(intid, vcpu, true),
            (Outcome::status(Status::InvalidParameters), vec![]),
            "{intid} {vcpu}"
        );
    }
    // Where a virtual interrupt controller routes (Arm's GIC), the call is not there.
    assert_eq!(call(bell, 1, false), (Outcome::status(Status::NotSupported), vec![]));
}

fn arm_name(id: u32, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    write!(f, "S3_1_C15_C2_{id}")
}

#[test]
fn hidden_registers_read_as_zero_pmu_ones_reach_the_pmu_others_fault() {
    let p = partition(FaultPolicy::Stop);
    let name = RegisterName::new(0, arm_name);
    let reg = |class, write| Exit::Register { class, name, register: 4, write };
    assert_eq!(run(&p, reg(RegisterClass::Hidden, None)).0, Outcome::Emulated { load: Some((4, 0)) });
    let (o, fake) = run(&p, reg(RegisterClass::Hidden, Some(7)));
    assert_eq!(o, Outcome::Emulated { load: None });
    assert!(fake.pmu.is_empty());
    let (o, fake) = run(&p, reg(RegisterClass::Pmu, None));
    assert_eq!((o, fake.pmu), (Outcome::Emulated { load: Some((4, 0x41)) }, vec![(0, None)]));
    let (o, fake) = run(&p, reg(RegisterClass::Pmu, Some(0x7)));
    assert_eq!((o, fake.pmu), (Outcome::Emulated { load: None }, vec![(0, Some(0x7))]));
    let (o, _) = run(&p, reg(RegisterClass::Forbidden, None));
    assert_eq!(o, Outcome::Stop(StopReason::Fault(Fault::Register { name, write: false })));
    let text = Report { partition: "p", outcome: &o, pc: 4 }.to_string();
    assert!(text.contains("trapped system register read (S3_1_C15_C2_0)"), "{text}");
}

#[test]
fn the_virtual_uart_is_emulated_only_when_configured() {
    let mut p = partition(FaultPolicy::Stop);
    let read = MmioAccess { size: 4, register: 2, write: None };
    let exit = Exit::Mmio { addr: GuestPhys(0x900_0fe0), access: read };
    assert!(matches!(run(&p, exit).0, Outcome::Stop(StopReason::Fault(Fault::Memory { .. }))));
    p.virtual_uart = true;
    let (o, fake) = run(&p, exit);
    assert_eq!(o, Outcome::Emulated { load: Some((2, 0x11)) });
    assert_eq!(fake.uart, [(0xfe0, None)]);
}

#[test]
fn the_emulated_pages_are_where_the_board_places_them() {
    let mut p = partition(FaultPolicy::Stop);
    p.virtual_uart = true;
    let mut sys = system(&p);
    sys.board.emulated.virtual_uart = Some(GuestPhys(0xf000_0000));
    sys.board.emulated.doorbells = Some(GuestPhys(0xf010_0000));
    let read = MmioAccess { size: 4, register: 2, write: None };
    let mut fake = Fake::default();
    let at = |addr| Exit::Mmio { addr: GuestPhys(addr), access: read };
    let state = PartitionState { restarts: 0 };
    let o = handle_exit(&sys, 0, &state, at(0xf000_0018), &mut fake);
    assert_eq!((o, &fake.uart[..]), (Outcome::Emulated { load: Some((2, 0x11)) }, &[(0x18, None)][..]));
    let store = Exit::Mmio { addr: GuestPhys(0xf010_0000), access: MmioAccess { write: Some(1), ..read } };
    assert_eq!(handle_exit(&sys, 0, &state, store, &mut fake), Outcome::Emulated { load: None });
    assert_eq!(fake.notified, [(1, vplatform::doorbell_intid(0))]);
    // QEMU virt's places are ordinary addresses on this board.
    for addr in [0x900_0018, 0xb00_0000] {
        let o = handle_exit(&sys, 0, &state, at(addr), &mut fake);
        assert!(matches!(o, Outcome::Stop(StopReason::Fault(Fault::Memory { .. }))), "{addr:#x}: {o:?}");
    }
    // A board that places no UART: the partition's `virtual-uart` gives it nothing to reach.
    sys.board.emulated.virtual_uart = None;
    let o = handle_exit(&sys, 0, &state, at(0xf000_0018), &mut fake);
    assert!(matches!(o, Outcome::Stop(StopReason::Fault(Fault::Memory { .. }))));
}

#[test]
fn partition_state_is_checked() {
    let p = partition(FaultPolicy::Stop);
    assert_eq!(run(&p, hvc(HYP_PARTITION_STATE, [1, 0, 0, 0, 0, 0])).0, Outcome::ret(1));
    assert_eq!(run(&p, hvc(HYP_PARTITION_STATE, [0, 0, 0, 0, 0, 0])).0, Outcome::ret(0));
    for bad in [2, 0x1_0000, u64::MAX] {
        assert_eq!(
            run(&p, hvc(HYP_PARTITION_STATE, [bad, 0, 0, 0, 0, 0])).0,
            Outcome::status(Status::InvalidParameters)
        );
    }
}

#[test]
fn a_store_to_a_doorbell_page_rings_the_peer() {
    let p = partition(FaultPolicy::Stop);
    let store = MmioAccess { size: 4, register: 1, write: Some(1) };
    // QEMU virt's doorbell window: 0x0b000000 (the board's `tantalum,doorbells`).
    let (o, fake) = run(&p, Exit::Mmio { addr: GuestPhys(0xb00_0008), access: store });
    assert_eq!(o, Outcome::Emulated { load: None });
    assert_eq!(fake.notified, [(1, vplatform::doorbell_intid(0))]);
    // Past the partition's channels: an ordinary fault.
    let (o, _) = run(&p, Exit::Mmio { addr: GuestPhys(0xb00_1000), access: store });
    assert!(matches!(o, Outcome::Stop(StopReason::Fault(Fault::Memory { .. }))));
}

#[test]
fn a_dma_fault_follows_the_policy_and_reports_no_pc() {
    use crate::iommu::{DmaFault, DmaFaultKind};
    let dma =
        DmaFault { stream: 8, address: 0x4300_0000, write: Some(true), kind: DmaFaultKind::Translation };
    let (stop, _) = run(&partition(FaultPolicy::Stop), Exit::DmaFault(dma));
    assert_eq!(stop, Outcome::Stop(StopReason::Fault(Fault::Dma(dma))));
    let (restart, _) = run(&partition(FaultPolicy::Restart), Exit::DmaFault(dma));
    assert_eq!(restart, Outcome::Restart(StopReason::Fault(Fault::Dma(dma))));
    let line = Report { partition: "dma-attacker", outcome: &restart, pc: 0x1234 }.to_string();
    assert_eq!(
        line,
        "partition 'dma-attacker' fault: DMA write by stream 0x8 at 0x43000000 outside the partition's \
         memory, stopped by the IOMMU: restarting"
    );
}

#[test]
fn port_io_reaches_the_virtual_uart_only_when_configured() {
    let mut p = partition(FaultPolicy::Restart);
    p.virtual_uart = true;
    // OUT to COM1's THR, IN from its LSR (a 2-byte IN gets the byte register, zero-extended).
    let (o, fake) = run(&p, Exit::PortIo { port: 0x3f8, size: 1, write: Some(0x141) });
    assert_eq!(o, Outcome::Emulated { load: None });
    assert_eq!(fake.uart, [(0, Some(0x41))]);
    let (o, fake) = run(&p, Exit::PortIo { port: 0x3fd, size: 2, write: None });
    assert_eq!(o, Outcome::Emulated { load: Some((0, 0x11)) });
    assert_eq!(fake.uart, [(5, None)]);
    // Just past it, and without `virtual-uart;`: the fault policy, naming the port.
    for (uart, port) in [(true, 0x400), (true, 0x3f7), (false, 0x3f8)] {
        p.virtual_uart = uart;
        let (o, fake) = run(&p, Exit::PortIo { port, size: 1, write: None });
        assert_eq!(o, Outcome::Restart(StopReason::Fault(Fault::Port { port, write: false })), "{port:#x}");
        assert!(fake.uart.is_empty());
    }
    let text = alloc::format!("{}", Fault::Port { port: 0x21, write: true });
    assert_eq!(text, "I/O port write at 0x21 (no device of its own there)");
}

#[test]
fn port_io_with_external_abort_is_a_bus_nobody_answers() {
    let mut p = partition(FaultPolicy::Stop);
    p.outside_memory = Some(OutsideMemory::ExternalAbort);
    for (size, all_ones) in [(1, 0xff), (2, 0xffff), (4, 0xffff_ffff)] {
        let (o, _) = run(&p, Exit::PortIo { port: 0x21, size, write: None });
        assert_eq!(o, Outcome::Emulated { load: Some((0, all_ones)) });
    }
    let (o, fake) = run(&p, Exit::PortIo { port: 0xffff, size: 4, write: Some(u32::MAX) });
    assert_eq!(o, Outcome::Emulated { load: None });
    assert!(fake.uart.is_empty());
}

/// Channel `id` between `endpoints` (a 64 KiB window each; the same guest address).
fn channel(id: usize, endpoints: Vec<PartitionId>) -> ChannelConfig {
    ChannelConfig {
        id,
        name: alloc::format!("c{id}"),
        path: alloc::format!("/hypervisor/channels/c{id}"),
        guest: vec![GuestPhys(0x4800_0000); endpoints.len()],
        endpoints,
        memory: HostRange::new(HostPhys(0x4800_0000 + 0x1_0000 * id as u64), 0x1_0000),
        writer: None,
    }
}
