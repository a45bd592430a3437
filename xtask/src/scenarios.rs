//! Emulator scenarios: a system DTS plus partitions, booted in QEMU under a hard timeout and
//! judged by the serial output and QEMU's exit status.

use std::time::Duration;

use tantalum_aarch64::built::Parts;
use Said::{AnyPartition, Hypervisor, Partition};

/// Something done to the built boot image before it boots.
#[derive(Clone, Copy, Debug)]
pub enum Tamper {
    /// Flip one byte in the middle of this partition's image.
    CorruptImage(&'static str),
    /// Flip one byte in the middle of this partition's initrd.
    CorruptInitrd(&'static str),
    /// Replace the first occurrence of `from` (in the system DTB) with `to`, after the build's
    /// own checks: only the hypervisor's boot-time check stands in the way.
    PatchDtb { from: &'static [u8], to: &'static [u8] },
    /// The image's hypervisor is built with these parts instead of those the configuration
    /// needs (arch-aarch64/src/built.rs): only the hypervisor's boot-time check stands in the way.
    Without(Parts),
}

/// One scenario.
#[derive(Debug)]
pub struct Scenario {
    pub name: &'static str,
    /// The system description, relative to the workspace root.
    pub config: &'static str,
    /// Lines (substrings) that must all appear.
    pub expect: &'static [&'static str],
    /// What must not be said (on top of [`ALWAYS_FORBIDDEN`]).
    pub forbid: &'static [Said],
    /// `(a, b)`: some line containing `b` comes after the first line containing `a`.
    pub order: &'static [(&'static str, &'static str)],
    pub tamper: Option<Tamper>,
    /// Typed on the console: each `(after, keys)` sends `keys` once `after` has appeared in
    /// the output, in order.
    pub input: &'static [(&'static str, &'static [u8])],
    /// Extra QEMU arguments (they override the board's, e.g. `-m`).
    pub qemu_args: &'static [&'static str],
    /// Hard limit for the QEMU run.
    pub timeout: Duration,
}

/// A line of output, by who printed it: the hypervisor (`tantalum: ...`) or a partition
/// (`[name] ...`; a Linux partition's kernel log too). Patterns match within one source only,
/// so a kernel message that happens to contain "fault:" is not the hypervisor reporting one.
#[derive(Clone, Copy, Debug)]
pub enum Said {
    /// A hypervisor line containing this.
    Hypervisor(&'static str),
    /// A line of this partition containing this (`""`: any line at all).
    Partition(&'static str, &'static str),
    /// A line of any partition containing this (the test partitions' alarms).
    AnyPartition(&'static str),
}

impl Said {
    /// The first line of `output` that says this.
    pub fn find<'a>(&self, output: &'a str) -> Option<&'a str> {
        output.lines().find(|line| match (self, source(line)) {
            (Said::Hypervisor(t), Some((None, text))) => text.contains(t),
            (Said::Partition(name, t), Some((Some(from), text))) => from == *name && text.contains(t),
            (Said::AnyPartition(t), Some((Some(_), text))) => text.contains(t),
            _ => false,
        })
    }
}

/// Who printed `line` (`None`: the hypervisor) and the text after the prefix; `None` for a
/// line from neither (QEMU's own messages).
fn source(line: &str) -> Option<(Option<&str>, &str)> {
    if let Some(text) = line.strip_prefix("tantalum: ") {
        return Some((None, text));
    }
    let (name, text) = line.strip_prefix('[')?.split_once("] ")?;
    let is_name =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    is_name.then_some((Some(name), text))
}

/// Output that fails any scenario: hypervisor panics and breaches reported by test partitions.
pub const ALWAYS_FORBIDDEN: &[Said] = &[
    Said::Hypervisor("FATAL"),
    Said::Hypervisor("panic"),
    Said::AnyPartition("BREACH"),
    Said::AnyPartition("CORRUPTED"),
    Said::AnyPartition("panic:"),
    Said::AnyPartition("unexpected exception"),
    Said::AnyPartition("NOT fresh"),
];

const T: Duration = Duration::from_secs(60);
/// Linux scenarios boot a real kernel under TCG (about 10 s each on the CI machine).
const LINUX_TIMEOUT: Duration = Duration::from_secs(120);

/// Linux's perf test (`tantalum.test=perf`): the PMU driver lists the common events the PMU
/// advertises (PMCEID0_EL0: QEMU's cortex-a57 has CPU_CYCLES, not INST_RETIRED without
/// `-icount`), `perfcount` opens the generic cycles event (not the raw fallback), counts and
/// takes overflow interrupts.
const LINUX_PERF_EXPECT: &[&str] = &[
    "[linux] linux: pmu events: cpu_cycles ",
    "[linux] linux: perfcount: cycles ",
    "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
];
const LINUX_PERF_FORBID: &[Said] = &[
    Hypervisor("fault:"),
    Partition("linux", "pmu overflow interrupts during perfcount: 0"),
    Partition("linux", "no generic cycles event"),
    Partition("linux", "perf_event_open failed"),
];

/// Linux's step test (`tantalum.test=step`): `stepcount` does gdb's `stepi`, `break` and `watch`
/// with ptrace on a child process: 23 single steps, each stopping at the next instruction of a
/// known sequence, then a hardware breakpoint and a watchpoint, each hit once where set.
const LINUX_STEP_EXPECT: &[&str] = &[
    "[linux] linux: stepcount: 23 single steps, pc advanced as expected, hw breakpoint hit, watchpoint hit",
    "[linux] linux: stepcount exit status: 0",
    "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
];
const LINUX_STEP_FORBID: &[Said] = &[Hypervisor("fault:"), Partition("linux", "stepcount: FAILED")];

/// Scenarios booted as a board boots from its SD card: QEMU starts Debian's U-Boot, which finds
/// the boot.scr of `cargo xtask build --board` on a disk and starts the image with `booti`
/// (U-Boot moves it to RAM base + its text_offset and passes its own device tree).
pub const UBOOT_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "U-Boot: booti from the SD card image starts the demo (boot.scr by mkimage)",
        config: "configs/demo.dts",
        expect: &[
            "Found U-Boot script /boot.scr",
            "Tantalum: loading tantalum.img from virtio 0:1",
            "Moving Image from 0x48000000 to 0x40080000",
            "Starting kernel",
            "own map: W^X (text read-only, writable memory never executes), unused memory unmapped",
            "boot-only code unmapped (",
            "[actuator] actuator done",
            "[controller] controller done",
            "[sensor] sensor done",
            "all partitions have stopped: powering off",
        ],
        order: &[("Starting kernel", "tantalum: Tantalum")],
        // U-Boot's device tree is not QEMU's at RAM base: the hypervisor reads it where x0 says.
        forbid: &[Hypervisor("fault:"), Hypervisor("failed"), Hypervisor("firmware DTB at 0x40000000")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "U-Boot: booti on the GICv2 board, attacker contained",
        config: "configs/boards/gicv2-attack.dts",
        expect: ATTACK_EXPECT,
        order: &[("Starting kernel", "tantalum: Tantalum")],
        forbid: &[Hypervisor("partition 'victim' fault")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "the default demo: sensor, controller and actuator over two channels",
        config: "configs/demo.dts",
        expect: DEMO_EXPECT,
        order: &[],
        forbid: &[Hypervisor("fault:"), Hypervisor("failed"), AnyPartition("failed"), AnyPartition("malformed")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "two partitions on two CPUs run to completion",
        config: "configs/tests/two-partitions.dts",
        expect: &[
            "[ping] hello from partition 'ping'",
            "[pong] hello from partition 'pong'",
            "[ping] ping done",
            "[pong] pong done",
            "partition 'ping' exited with code 0: stopped",
            "partition 'pong' exited with code 0: stopped",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "HYP_SEND_IPI: the SDK's irq::send_ipi interrupts the caller's own vCPU (the code x86 runs too); a vCPU it lacks and a PPI are refused",
        config: "configs/tests/self-ipi.dts",
        expect: &[
            "[solo] self-ipi: IPI 3 to itself: Ok(()), taken: 1",
            "[solo] self-ipi: to vCPU 1 (it has one): Err(InvalidParameters)",
            "[solo] self-ipi: of 16, not an IPI here: Err(InvalidParameters)",
            "[solo] self-ipi: taken after the refused ones: 1",
            "partition 'solo' exited with code 0: stopped",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "partitions load in parallel, yet a higher boot-order starts after a lower one",
        config: "configs/tests/boot-order.dts",
        expect: &[
            "[early] hello from partition 'early'",
            "[late] hello from partition 'late'",
            "all partitions have stopped: powering off",
        ],
        order: &[("partition 'early':", "partition 'late':"), ("partition 'early':", "[late] hello")],
        forbid: &[Hypervisor("fault:")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "an attacker is contained and the victim is undisturbed",
        config: "configs/tests/attack.dts",
        expect: ATTACK_EXPECT,
        order: &[],
        forbid: &[Hypervisor("partition 'victim' fault")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "DMA: a partition's disk cannot write the victim or the hypervisor, the SMMU stops it",
        config: "configs/tests/dma-attack.dts",
        expect: &[
            "streams 0x0..0x100 of partition 'dma-attacker' translate only into its memory",
            "[dma-attacker] found virtio-blk 1af4:1042 at 00:01.0",
            "[dma-attacker] attack: the disk DMAs its ID into the victim's memory at 0x42000000",
            "partition 'dma-attacker' fault: DMA write by stream 0x8 at 0x42000000 outside the partition's memory, stopped by the IOMMU: restarting",
            "[dma-attacker] attack: the disk DMAs its ID into the hypervisor's memory at 0x40080000",
            "partition 'dma-attacker' fault: DMA write by stream 0x8 at 0x40080000 outside the partition's memory, stopped by the IOMMU: restarting",
            // Each restart stops the disk's bus mastering before the reload.
            "partition 'dma-attacker': bus mastering of 1 PCI function(s) stopped",
            // Boot 2: a read the throttled disk holds back for about a second, refused at
            // submission; its late writes must not reach boot 3 (docs/security.md).
            "[dma-attacker] race: a slow disk read into the victim's memory at 0x42000000, refused, restarts this partition",
            "[dma-attacker] both DMA attacks were stopped; waiting for a late write of the slow read",
            "[dma-attacker] no late DMA of the run before reached this one; done",
            "[victim] victim done: memory intact",
            "all partitions have stopped: powering off",
        ],
        order: &[(
            "[dma-attacker] race: a slow disk read",
            "partition 'dma-attacker' fault: DMA write by stream 0x8 at 0x42000000",
        )],
        forbid: &[
            Partition("dma-attacker", "never completed"),
            Partition("dma-attacker", "no virtio device"),
            Partition("dma-attacker", "late DMA write of an earlier run"),
            Partition("dma-attacker", "BREACH"),
            Hypervisor("no partition owns the stream"),
            Hypervisor("SMMU global error"),
        ],
        tamper: None,
        input: &[],
        // 64 KiB/s: boot 2's first read (64 KiB) passes at once, its second waits about 1 s.
        qemu_args: &["-set", "drive.disk0.throttling.bps-read=65536"],
        timeout: T,
    },
    Scenario {
        name: "fault policies: restart from the image, stop, and PSCI reset",
        config: "configs/tests/faults.dts",
        expect: FAULTS_EXPECT,
        order: &[],
        forbid: &[Hypervisor("partition 'bystander' fault"), Partition("stopper", "boot 1")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "GICv2 board: the pipeline demo on a virtual GICv2",
        config: "configs/boards/gicv2-demo.dts",
        expect: DEMO_EXPECT,
        order: &[],
        forbid: &[Hypervisor("fault:"), Hypervisor("failed"), AnyPartition("failed"), AnyPartition("malformed")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "GICv2 board: the attacker is contained, the victim undisturbed",
        config: "configs/boards/gicv2-attack.dts",
        expect: ATTACK_EXPECT,
        order: &[],
        forbid: &[Hypervisor("partition 'victim' fault")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "GICv2 board: fault policies (restart, stop, PSCI reset)",
        config: "configs/boards/gicv2-faults.dts",
        expect: FAULTS_EXPECT,
        order: &[],
        forbid: &[Hypervisor("partition 'bystander' fault"), Partition("stopper", "boot 1")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "GICv2 board: the PMU overflow interrupt reaches the partition that owns the CPU",
        config: "configs/boards/gicv2-pmu.dts",
        expect: &[
            "3 PMU overflow interrupts taken: the PMU interrupt is forwarded",
            "partition 'counter' exited with code 0",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Partition("counter", "BREACH")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "pending and active registers see and reach SPIs in another vCPU's list registers",
        config: "configs/tests/gic-remote-state.dts",
        expect: &[
            "[gicremote] another vCPU's list registers: active and pending seen, ICPENDR and ICACTIVER reached them, nothing more taken",
            "[gicremote] a passed-through device's interrupt routed to vCPU 1 was taken there",
            "partition 'gicremote' exited with code 0",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Partition("gicremote", "BREACH")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "GICv2 board: pending and active registers see and reach SPIs in another vCPU's list registers",
        config: "configs/boards/gicv2-gic-remote-state.dts",
        expect: &[
            "[gicremote] another vCPU's list registers: active and pending seen, ICPENDR and ICACTIVER reached them, nothing more taken",
            "[gicremote] a passed-through device's interrupt routed to vCPU 1 was taken there",
            "partition 'gicremote' exited with code 0",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Partition("gicremote", "BREACH")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "GICv2 board: pending and active registers see interrupts in list registers",
        config: "configs/boards/gicv2-gic-list-state.dts",
        expect: &[
            "list-register state: active in its handler, pending until ICPENDR cancelled it (never taken)",
            "partition 'gicstate' exited with code 0",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Partition("gicstate", "BREACH")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "GICv2 board: Linux counts CPU cycles with perf_event_open and takes PMU overflow interrupts",
        config: "configs/boards/gicv2-linux-perf.dts",
        expect: LINUX_PERF_EXPECT,
        order: &[],
        forbid: LINUX_PERF_FORBID,
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "GICv2 board: Linux single-steps a process with ptrace and stops it at a hardware breakpoint and a watchpoint",
        config: "configs/boards/gicv2-linux-step.dts",
        expect: LINUX_STEP_EXPECT,
        order: &[],
        forbid: LINUX_STEP_FORBID,
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "Linux single-steps a process with ptrace and stops it at a hardware breakpoint and a watchpoint (gdb's stepi, break, watch)",
        config: "configs/tests/linux-step.dts",
        expect: LINUX_STEP_EXPECT,
        order: &[],
        forbid: LINUX_STEP_FORBID,
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "Linux counts CPU cycles with the generic perf event and takes PMU overflow interrupts",
        config: "configs/tests/linux-perf.dts",
        expect: LINUX_PERF_EXPECT,
        order: &[],
        forbid: LINUX_PERF_FORBID,
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "Linux under QEMU -icount counts its instructions with perf (INST_RETIRED is there only with -icount)",
        config: "configs/tests/linux-perf.dts",
        expect: &[
            "[linux] linux: pmu events: ",
            "inst_retired",
            // The loop is 40,000,000 instructions; a few thousand more around it.
            "[linux] perfcount: instructions 400",
            "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
        ],
        order: &[],
        forbid: LINUX_PERF_FORBID,
        tamper: None,
        input: &[],
        qemu_args: &["-icount", "shift=3,sleep=off"],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "ZCU102: the pipeline demo with RAM at 0, a GIC-400 and the console on a Cadence UART",
        config: "configs/boards/zcu102-demo.dts",
        expect: DEMO_EXPECT,
        order: &[],
        forbid: &[Hypervisor("fault:"), Hypervisor("failed"), AnyPartition("failed"), AnyPartition("malformed")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "ZCU102: the attacker is contained, the victim undisturbed",
        config: "configs/boards/zcu102-attack.dts",
        expect: &[
            "[attacker] 6 of 6 unknown hypercalls returned NOT_SUPPORTED",
            "[attacker] console write from the victim's memory refused (INVALID_PARAMETERS)",
            "[attacker] the PMU refused to count at EL2 (event 0: 0x8)",
            "partition 'attacker' fault: stage-2 read abort at IPA 0x2000000",
            "partition 'attacker' fault: stage-2 write abort at IPA 0x2000100",
            "partition 'attacker' fault: stage-2 read abort at IPA 0x80000",
            "partition 'attacker' fault: stage-2 write abort at IPA 0x80000",
            "partition 'attacker' fault: stage-2 write abort at IPA 0xff000000",
            "partition 'attacker' fault: stage-2 write abort at IPA 0xf9040000",
            "partition 'attacker' fault: forbidden SMC (function 0xc2000000)",
            "partition 'attacker' fault: trapped system register write (S3_0_C1_C0_1)",
            "[attacker] boot 8: memory is fresh",
            "[attacker] undefined instruction at ",
            "partition 'attacker' exited with code 102: stopped",
            "[victim] memory intact after 30 checks",
            "[victim] victim done: memory intact",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("partition 'victim' fault"), Partition("attacker", "BREACH")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "ZCU102: console input on the Cadence UART follows focus",
        config: "configs/boards/zcu102-console.dts",
        expect: FOCUS_EXPECT,
        order: FOCUS_ORDER,
        forbid: &[Hypervisor("fault:"), Partition("second", "got: lost")],
        tamper: None,
        input: FOCUS_INPUT,
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "ZCU102: Linux user space rings a unikernel through the doorbell page the board places",
        config: "configs/boards/zcu102-linux-channel.dts",
        expect: &[
            "[linux] linux: chanping: channel at 0x8000000 (0x10000 bytes), doorbell page 0xf0100000, endpoint 0",
            "[echo] pong done: echoed 200 messages, 0 out of order or corrupted",
            "[linux] linux: chanping: 200 round trips with the unikernel, 0 bad replies",
            "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Partition("linux", "chanping: cannot"), Partition("linux", "ring is corrupt")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "ZCU102: Linux boots on 2 CPUs beside a heartbeat unikernel, powers off alone",
        config: "configs/boards/zcu102-linux.dts",
        expect: &[
            "[linux] linux: cpus online: 2",
            "[linux] linux: no disk: /dev/vda did not appear",
            "[linux] linux: TANTALUM-LINUX-MARKER",
            "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
            "[heartbeat] heartbeat done",
            "all partitions have stopped: powering off",
        ],
        order: LINUX_BESIDE_HEARTBEAT,
        forbid: &[Hypervisor("fault:"), Hypervisor("dropped")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "GICv2 board: Linux boots on 2 CPUs beside a heartbeat unikernel, reads its disk, powers off alone",
        config: "configs/boards/gicv2-linux.dts",
        expect: &[
            "[linux] linux: cpus online: 2",
            "streams 0x0..0x100 of partition 'linux' translate only into its memory",
            "[linux] linux: disk says: hello from the passed-through virtio disk",
            "[linux] linux: TANTALUM-LINUX-MARKER",
            "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
            "[heartbeat] heartbeat done",
            "all partitions have stopped: powering off",
        ],
        order: LINUX_BESIDE_HEARTBEAT,
        forbid: &[Hypervisor("fault:"), Hypervisor("dropped")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "restart races: a pending CPU_ON is withdrawn, a refused one changes nothing, a vCPU on the hvc, MMIO or notify fast path or asleep in WFI leaves, two resets make one restart",
        config: "configs/tests/restart-races.dts",
        expect: &[
            "[racer] CPU_ON vCPU 1: 0; resetting at once",
            "[racer] boot 1, memory fresh",
            "[racer] no vCPU of the previous run survived the reset",
            "[racer] a refused CPU_ON left the pending start alone",
            "[racer] boot 2, memory fresh",
            "[racer] vCPU 1 spins on trapped GIC reads; resetting",
            "[racer] boot 3, memory fresh",
            "[racer] both vCPUs reset at once",
            "[racer] boot 4, memory fresh",
            "[racer] CPU_ON vCPU 1: 0; it sleeps in WFI; resetting",
            "[racer] boot 5, memory fresh",
            "[racer] vCPU 1 spins on doorbell notifies; resetting",
            "[racer] boot 6, memory fresh",
            "[racer] racer done after 6 restarts",
            "[bystander] bystander done",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Hypervisor("cannot restart"), Partition("racer", "boot 7")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "console input follows focus: the partition with it stops, typing reaches the next; Ctrl-\\ moves it",
        config: "configs/tests/console-focus.dts",
        expect: FOCUS_EXPECT,
        order: FOCUS_ORDER,
        forbid: &[Hypervisor("fault:"), Partition("second", "got: lost")],
        tamper: None,
        input: FOCUS_INPUT,
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "a console flood: the flooder's excess is dropped and counted, another partition's writes stay fast",
        config: "configs/tests/console-flood.dts",
        expect: &[
            "[flooder] ... ",
            " bytes dropped (console budget: 8 KiB/s, bursts of 32 KiB)",
            "[flooder] flooded ",
            "[timed] every 2-byte console write within 200 ms",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "a guest that never ends its interrupts keeps its CPU: no maintenance-interrupt livelock",
        config: "configs/tests/never-eoi.dts",
        expect: &[
            "interrupts acknowledged and never ended; this vCPU still runs",
            "partition 'hog' exited with code 0: stopped",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: Duration::from_secs(30),
    },
    Scenario {
        name: "a timer interrupt made pending by software as the timer fires keeps its hardware link",
        config: "configs/tests/timer-pending-merge.dts",
        expect: &[
            "[ticker] the timer fired again after a software-pending merge",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "a partition owns its self-hosted debug: hardware breakpoint, watchpoint and single step",
        config: "configs/tests/self-hosted-debug.dts",
        expect: &["5 single steps: debug works", "all partitions have stopped: powering off"],
        order: &[],
        forbid: &[Hypervisor("fault:")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "outside-memory = external-abort: a unikernel's stray load and store become external aborts it handles",
        config: "configs/tests/external-abort.dts",
        expect: &[
            "2 synchronous external aborts (load ESR 0x96000010, store ESR 0x96000050, FAR 0x1000)",
            "partition 'bus' exited with code 0",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Partition("bus", "BREACH")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "the PMU overflow interrupt reaches the partition that owns the CPU",
        config: "configs/tests/pmu-interrupt.dts",
        expect: &[
            "3 PMU overflow interrupts taken: the PMU interrupt is forwarded",
            "partition 'counter' exited with code 0",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Partition("counter", "BREACH")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "pending and active registers see interrupts in list registers: an SGI active in its handler, one cancelled by ICPENDR",
        config: "configs/tests/gic-list-state.dts",
        expect: &[
            "list-register state: active in its handler, pending until ICPENDR cancelled it (never taken)",
            "partition 'gicstate' exited with code 0",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Partition("gicstate", "BREACH")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "halt-system policy powers the machine off",
        config: "configs/tests/halt.dts",
        expect: &[
            "partition 'halter' fault: stage-2 write abort at IPA 0x1000",
            "halting the system",
        ],
        order: &[],
        forbid: &[Hypervisor("all partitions have stopped")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "a corrupted partition image is refused, the others run",
        config: "configs/tests/two-partitions.dts",
        expect: &[
            "partition 'ping': image SHA-256 does not match the system DTB: refusing it",
            "[pong] pong done",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Partition("ping", "")],
        tamper: Some(Tamper::CorruptImage("ping")),
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "a system DTB tampered after the build is rejected at boot",
        config: "configs/tests/two-partitions.dts",
        expect: &[
            // A rule code at boot, and `config explain` on the booted image gives the message.
            "config error: /hypervisor/pong: E35 Overlap",
            "explained: /hypervisor/pong: memory 0x42800000..0x43800000 overlaps /hypervisor/ping (0x42000000..0x43000000)",
            "the system DTB is invalid (1 error(s)): halting",
        ],
        order: &[],
        forbid: &[Partition("ping", ""), Partition("pong", "")],
        // pong's `memory = <0x0 0x43000000 0x0 0x01000000>` becomes 0x42800000: an overlap.
        tamper: Some(Tamper::PatchDtb {
            from: &[0, 0, 0, 0, 0x43, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0],
            to: &[0, 0, 0, 0, 0x42, 0x80, 0, 0],
        }),
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "a hypervisor built without virtio refuses a configuration with a virtio device",
        config: "configs/tests/virtio-attack.dts",
        expect: &[
            "/hypervisor/channels/net0: a virtio device needs code this hypervisor was built without (cargo feature `virtio` of tantalum-aarch64",
            "configuration uses): halting",
        ],
        order: &[],
        forbid: &[AnyPartition("")],
        tamper: Some(Tamper::Without(Parts { virtio: false, gic_v2: true, gic_v3: true })),
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "a hypervisor built for a GICv2 refuses a GICv3 board",
        config: "configs/tests/two-partitions.dts",
        expect: &["a GICv3 needs code this hypervisor was built without (cargo feature `gic-v3` of tantalum-aarch64"],
        order: &[],
        forbid: &[AnyPartition("")],
        tamper: Some(Tamper::Without(Parts { virtio: false, gic_v2: true, gic_v3: false })),
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "memory the firmware does not report as RAM is refused",
        config: "configs/tests/two-partitions.dts",
        expect: &[
            "partition 'pong': memory 0x43000000..0x44000000 is not RAM on this machine (firmware DTB): refusing it",
            "[ping] ping done",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Partition("pong", "")],
        tamper: None,
        // The board says 1 GiB; the machine has 48 MiB (RAM ends at 0x43000000).
        input: &[],
        qemu_args: &["-m", "48M"],
        timeout: T,
    },
    Scenario {
        name: "partitions read their generated guest device trees",
        config: "configs/tests/guest-dt.dts",
        expect: &[
            "[reader] dt: model \"Tantalum partition reader\"",
            "[reader] dt: partition \"reader\" id 0",
            "[reader] dt: 1 cpu(s)",
            "[reader] dt: memory 0x50000000..0x50400000",
            "[reader] dt: memory 0x60000000..0x60200000",
            "[reader] dt: device pl031@9010000 \"arm,pl031\" at 0x9010000 SPI 2",
            "[reader] dt: channel #0 \"notes\" at 0x800000000 size 0x10000 receive peer \"writer\" doorbell SPI 64",
            "[reader] dt: channel #1 \"chat\" at 0x43010000 size 0x10000 duplex peer \"writer\" doorbell SPI 65",
            "[reader] dt: bootargs \"console=hvc0 quiet\"",
            "[writer] dt: partition \"writer\" id 1",
            "[writer] dt: memory 0x42800000..0x42c00000",
            "[writer] dt: device pl011@9000000 \"arm,pl011\" at 0x9000000 SPI 1",
            "[writer] dt: channel #0 \"notes\" at 0x48000000 size 0x10000 send peer \"reader\" doorbell SPI 64",
            "[writer] dt: stdout /pl011@9000000",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), AnyPartition("no valid device tree")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "ping-pong: 100,000 round trips across CPUs with doorbells",
        config: "configs/tests/pingpong.dts",
        expect: &[
            "[ping] ping-pong done: 100000 round trips, 0 bad replies",
            "[pong] pong done: echoed 100000 messages, 0 out of order or corrupted",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Hypervisor("failed"), AnyPartition("failed")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "a doorbell flood: notifies to a doorbell already pending do not wake the peer, none is lost",
        config: "configs/tests/doorbell-flood.dts",
        expect: DOORBELL_FLOOD_EXPECT,
        order: &[],
        forbid: &[Hypervisor("fault:"), AnyPartition("FLOOD TAX"), AnyPartition("failed")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "GICv2 board: a doorbell flood does not wake the peer, none is lost",
        config: "configs/boards/gicv2-doorbell-flood.dts",
        expect: DOORBELL_FLOOD_EXPECT,
        order: &[],
        forbid: &[Hypervisor("fault:"), AnyPartition("FLOOD TAX"), AnyPartition("failed")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "a full ring pushes back: the sender retries, nothing is lost",
        config: "configs/tests/backpressure.dts",
        expect: &[
            "[slow] slow reader done: 20000 messages in order, 0 lost, 0 corrupted",
            "[flood] flood done: sent 20000 messages, ring full",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Hypervisor("failed"), AnyPartition("failed"), AnyPartition("ring full 0 times")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "hostile channel users are contained, the honest peer reports corruption",
        config: "configs/tests/hostile-channel.dts",
        expect: &[
            "[honest] channel reported corrupt after 3 good messages",
            "partition 'scribbler' fault: stage-2 write abort at IPA 0x48001000",
            "partition 'outsider' fault: stage-2 read abort at IPA 0x48000000",
            "partition 'reader' fault: stage-2 write abort at IPA 0x48012000",
            "[honest] still running (3)",
            "[honest] honest done",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("partition 'honest' fault")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "Linux boots on 2 CPUs beside a heartbeat unikernel, reads its disk, powers off alone",
        config: "configs/tests/linux-boot.dts",
        expect: &[
            "[linux] linux: cpus online: 2",
            "[linux] linux: pmu: armv8_pmuv3",
            "streams 0x0..0x100 of partition 'linux' translate only into its memory",
            "[linux] linux: disk says: hello from the passed-through virtio disk",
            "[linux] linux: TANTALUM-LINUX-MARKER",
            "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
            "[heartbeat] heartbeat done",
            "all partitions have stopped: powering off",
        ],
        order: LINUX_BESIDE_HEARTBEAT,
        forbid: &[Hypervisor("fault:")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "a corrupted initrd refuses Linux (whichever CPU verified it), the heartbeat runs",
        config: "configs/tests/linux-boot.dts",
        expect: &[
            "partition 'linux': initrd SHA-256 does not match the system DTB: refusing it",
            "[heartbeat] partition 0 has stopped; three more beats",
            "[heartbeat] heartbeat done",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Partition("linux", ""), Hypervisor("fault:")],
        tamper: Some(Tamper::CorruptInitrd("linux")),
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "Linux reboot restarts only Linux, which boots again",
        config: "configs/tests/linux-reboot.dts",
        expect: &[
            "[linux] linux: rebooting",
            "partition 'linux' reset (PSCI SYSTEM_RESET): restarting",
            "partition 'linux': reloaded in ",
            "[linux] linux: second boot after reboot",
            "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
            "[heartbeat] heartbeat done",
            "all partitions have stopped: powering off",
        ],
        order: &[
            ("partition 'linux' reset", "[linux] linux: second boot after reboot"),
            ("partition 'linux' powered off", "[heartbeat] heartbeat "),
        ],
        forbid: &[Hypervisor("fault:")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "Linux poking another partition's memory with devmem gets SIGBUS (Bus error) and Linux keeps running",
        config: "configs/tests/linux-devmem.dts",
        expect: &[
            "[linux] linux: poking 0x44000000",
            "[linux] linux: devmem exit status: 135",
            "[linux] linux: devmem killed by SIGBUS",
            "[linux] linux: still running after devmem",
            "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
            "[heartbeat] heartbeat done",
            "all partitions have stopped: powering off",
        ],
        order: &[("[linux] linux: still running after devmem", "partition 'linux' powered off")],
        forbid: &[Partition("linux", "linux: devmem returned: 0x"), Hypervisor("fault:")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "Linux poking another partition's memory with devmem is stopped with outside-memory = fault, the heartbeat goes on",
        config: "configs/tests/linux-devmem-stop.dts",
        expect: &[
            "[linux] linux: poking 0x44000000",
            "partition 'linux' fault: stage-2 read abort at IPA 0x44000000 (outside its memory)",
            "[heartbeat] heartbeat done",
            "all partitions have stopped: powering off",
        ],
        order: &[("partition 'linux' fault", "[heartbeat] heartbeat ")],
        forbid: &[Partition("linux", "linux: devmem returned"), Hypervisor("partition 'heartbeat' fault")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "Linux user space talks to a unikernel over a channel, no kernel module",
        config: "configs/tests/linux-channel.dts",
        expect: &[
            "[linux] linux: chanping: channel at 0x5a000000 (0x10000 bytes), doorbell page 0xb000000, endpoint 0",
            "[echo] pong done: echoed 200 messages, 0 out of order or corrupted",
            "[linux] linux: chanping: 200 round trips with the unikernel, 0 bad replies",
            "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Partition("linux", "chanping: cannot"), Partition("linux", "ring is corrupt")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "virtio-net: a Linux partition and a unikernel with the SDK net interface exchange UDP datagrams",
        config: "configs/tests/linux-virtio-udp.dts",
        expect: &[
            "[echo] udp-echo: 52:54:00:74:00:01 is 10.0.0.3",
            "[linux] linux: net: eth0 52:54:00:74:00:00 is 10.0.0.1",
            "[linux] linux: chanping: udp: 500 datagrams echoed, 0 bad, ",
            "[echo] udp-echo: echoed 500 datagrams (357186 bytes of payload), answered ",
            "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Hypervisor("needs a reset"), Partition("echo", "panic")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "a hostile virtio driver: malformed queues are refused before a byte moves, the peer undisturbed",
        config: "configs/tests/virtio-attack.dts",
        expect: &[
            "[attacker] virtio attack: a descriptor loop: refused, the device needs a reset",
            "[attacker] virtio attack: a buffer in the victim's memory: refused, the device needs a reset",
            "[attacker] virtio attack: a buffer in the hypervisor's memory: refused, the device needs a reset",
            "[attacker] virtio attack: a buffer running past its own memory: refused, the device needs a reset",
            "[attacker] virtio attack: an indirect table in the hypervisor's memory: refused, the device needs a reset",
            "[attacker] virtio attack: a driver-ring index far ahead: refused, the device needs a reset",
            "[attacker] virtio attack: rings in the victim's memory: refused",
            "[attacker] virtio attack: a receive buffer in the victim's memory: refused, the device needs a reset",
            "[attacker] virtio attacks done",
            "partition 'attacker': virtio device 'net0' needs a reset: a descriptor chain longer than the queue (a loop)",
            "partition 'attacker': virtio device 'net0' needs a reset: a buffer at guest 0x42000100 (64 bytes) outside its memory",
            "partition 'attacker': virtio device 'net0' needs a reset: a buffer at guest 0x40080000 (64 bytes) outside its memory",
            "partition 'attacker': virtio device 'net0' needs a reset: an indirect descriptor (not negotiated)",
            "partition 'attacker': virtio device 'net0' needs a reset: its driver ring's index 1000 ran more than a queue ahead of 0",
            "partition 'attacker': virtio device 'net0' needs a reset: its descriptor table at guest 0x42000000 is misaligned or outside its memory",
            "[victim] virtio peer: sent 30 frames",
            "[victim] victim done: memory intact",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[
            Hypervisor("partition 'victim' fault"),
            Hypervisor("partition 'attacker' fault"),
            AnyPartition("BREACH"),
            AnyPartition("CORRUPTED"),
        ],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: T,
    },
    Scenario {
        name: "a virtio-net switch: Linux and two unikernels on one link, broadcasts flooded, unicasts forwarded by learned address",
        config: "configs/tests/linux-virtio-switch.dts",
        expect: &[
            "[east] udp-echo: 52:54:00:74:00:01 is 10.0.0.3",
            "[west] udp-echo: 52:54:00:74:00:02 is 10.0.0.4",
            "[linux] linux: chanping: udp: 200 datagrams echoed, 0 bad, ",
            "[east] udp-echo: echoed 200 datagrams (142546 bytes of payload), answered ",
            "[west] udp-echo: echoed 200 datagrams (142546 bytes of payload), answered ",
            "virtio switch 'lan': linux sent ",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Hypervisor("needs a reset"), AnyPartition("panic")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "the paravirtual demo (configs/linux-net.dts): two Linux partitions, a storage driver and a unikernel; typed ping, UDP and poweroff",
        config: "configs/linux-net.dts",
        expect: &[
            "[alpha] linux: disk mounted on /mnt",
            "[alpha] linux: net: eth0 52:54:00:74:00:00 is 10.0.0.1",
            "[beta] linux: net: eth0 52:54:00:74:00:01 is 10.0.0.2",
            "2 packets transmitted, 2 packets received",
            "[alpha] linux: chanping: udp: 5 datagrams echoed, 0 bad",
            "[echo] udp-echo: echoed 5 datagrams",
            "partition 'alpha' powered off (PSCI SYSTEM_OFF): stopped",
            "partition 'beta' powered off (PSCI SYSTEM_OFF): stopped",
            "[storage] no frontend for 10 s; served ",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Hypervisor("needs a reset"), AnyPartition("panic")],
        tamper: None,
        input: &[
            // beta may come up before or after alpha's shell: ping keeps trying for up to 60 s.
            ("[alpha] linux: shell on the console", b"ping -c 2 -w 60 10.0.0.2\r"),
            ("2 packets transmitted, 2 packets received", b"chanping udp 10.0.0.3 7 5\r"),
            ("5 datagrams echoed", b"poweroff\r"),
            ("console input -> beta", b"poweroff\r"),
        ],
        qemu_args: &[],
        timeout: Duration::from_secs(300),
    },
    Scenario {
        name: "vsock: Linux user space reaches a unikernel with AF_VSOCK over the stock virtio vsock transport",
        config: "configs/tests/linux-vsock.dts",
        expect: &[
            "[echo] vsock-echo: CID 4 listening on port 1234",
            "[linux] linux: vsock link sock0 with echo",
            "[linux] linux: chanping: vsock: connected to CID 4 port 1234",
            "[linux] linux: chanping: vsock: 300 messages echoed, 0 bad, ",
            "[echo] vsock-echo: echoed 214542 bytes in ",
            "partition 'linux' powered off (PSCI SYSTEM_OFF): stopped",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), Hypervisor("needs a reset"), Partition("echo", "panic")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
    Scenario {
        name: "virtio-blk: a driver partition serves two Linux partitions a disk region each; one writes, reboots and reads back, the other never sees it",
        config: "configs/tests/linux-virtio-blk.dts",
        expect: &[
            "[storage] disk at 00:01.0: 32768 sectors (16384 KiB), write cache flush: true",
            "[storage] serving 2 frontends",
            "[beta] linux: blk: /dev/vda has 16384 sectors",
            "[beta] linux: blk: no file system in this region",
            "[beta] linux: blk: marker written, read back: tantalum-blk-marker-of-the-other",
            "[alpha] linux: blk: /dev/vda has 16384 sectors",
            "[alpha] linux: blk: wrote 1048576 bytes, md5 ",
            "partition 'alpha' reset (PSCI SYSTEM_RESET): restarting",
            "[alpha] linux: blk: second boot, the file system says: tantalum-blk-token-of-the-owner",
            "[alpha] linux: blk: 1048576 bytes read back, md5 ",
            "[alpha] linux: blk: the other's marker appears 0 times in this region",
            "[beta] linux: blk: the owner's token appears 0 times in this region after 60 s",
            "partition 'alpha' powered off (PSCI SYSTEM_OFF): stopped",
            "partition 'beta' powered off (PSCI SYSTEM_OFF): stopped",
            "[storage] no frontend for 10 s; served ",
            "virtio disk 'disk0': ",
            "all partitions have stopped: powering off",
        ],
        order: &[
            ("[beta] linux: blk: marker written", "[alpha] linux: blk: the other's marker appears"),
            ("[alpha] linux: blk: 1048576 bytes read back", "[beta] linux: blk: the owner's token appears"),
            ("partition 'alpha' reset", "[alpha] linux: blk: second boot"),
        ],
        forbid: &[
            Hypervisor("fault:"),
            Hypervisor("needs a reset"),
            Partition("alpha", "blk: read back md5"),
            Partition("alpha", "cannot mount"),
            Partition("storage", "panic"),
        ],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: Duration::from_secs(300),
    },
    Scenario {
        name: "virtio-blk: a driver partition answering garbage gives the Linux frontend I/O errors, nothing else",
        config: "configs/tests/linux-virtio-blk-garbage.dts",
        expect: &[
            "[storage] serving 1 frontends",
            "[alpha] linux: blk: /dev/vda has 16384 sectors",
            "[alpha] linux: blk: cannot mount /dev/vda",
            "I/O error, dev vda, sector 0",
            "partition 'alpha' powered off (PSCI SYSTEM_OFF): stopped",
            "[storage] no frontend for 5 s; served ",
            "partition 'storage' exited with code 0: stopped",
            "virtio disk 'disk0': ",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[
            Hypervisor("fault:"),
            Hypervisor(" 0 wrong completions"),
            Partition("alpha", "blk: wrote"),
            Partition("storage", "panic"),
        ],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: Duration::from_secs(240),
    },
    Scenario {
        name: "virtio-blk: a driver partition that never answers makes the Linux frontend wait, then fail once it is gone",
        config: "configs/tests/linux-virtio-blk-silent.dts",
        expect: &[
            "[storage] misbehaving: took a request of frontend 0 and will never answer",
            "[storage] exiting after holding it 15 s",
            "partition 'storage' exited with code 3: stopped",
            "virtio disk 'disk0': 1 requests relayed, 0 refused, 0 wrong completions",
            "I/O error, dev vda, sector 0",
            "[alpha] linux: blk: /dev/vda has 16384 sectors",
            "[alpha] linux: blk: cannot mount /dev/vda",
            "partition 'alpha' powered off (PSCI SYSTEM_OFF): stopped",
            "all partitions have stopped: powering off",
        ],
        order: &[
            ("[storage] misbehaving", "partition 'storage' exited"),
            ("partition 'storage' exited", "I/O error, dev vda, sector 0"),
            ("partition 'storage' exited", "[alpha] linux: blk: cannot mount"),
        ],
        forbid: &[Hypervisor("fault:"), Partition("alpha", "blk: wrote"), Partition("storage", "panic")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: Duration::from_secs(240),
    },
    Scenario {
        name: "a hostile virtio-blk frontend: sectors outside its region are I/O errors the driver never sees, a buffer in the hypervisor is refused",
        config: "configs/tests/virtio-blk-attack.dts",
        expect: &[
            "[attacker] blk attack: the region has 256 sectors",
            "[attacker] blk attack: a write just past the region: I/O error",
            "[attacker] blk attack: a write straddling the region's end: I/O error",
            "[attacker] blk attack: a read at the top of the 64-bit sectors: I/O error",
            "[attacker] blk attack: a read at the region's start minus its size, wrapped: I/O error",
            "[attacker] blk attack: a write from the hypervisor's memory: refused, the device needs a reset",
            "partition 'attacker': virtio disk 'disk0' needs a reset: a buffer at guest 0x40080000 (512 bytes) outside its memory",
            "[attacker] blk attack: an honest write and read at the region's end: the same 4096 bytes",
            "[attacker] blk attacks done",
            "[storage] first request served (frontend 0, sector 16632)",
            "virtio disk 'disk0': 2 requests relayed, 4 refused, 0 wrong completions",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[Hypervisor("fault:"), AnyPartition("BREACH"), Partition("storage", "panic")],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: Duration::from_secs(60),
    },
    Scenario {
        name: "virtio-net: two Linux partitions with the stock drivers ping each other and move 64 MiB over TCP",
        config: "configs/tests/linux-virtio-net.dts",
        expect: &[
            "[alpha] linux: net: eth0 52:54:00:74:00:00 is 10.0.0.1",
            "[beta] linux: net: eth0 52:54:00:74:00:01 is 10.0.0.2",
            "[alpha] linux: net: ping 10.0.0.2: 5 packets received",
            "[beta] linux: net: ping 10.0.0.1: 5 packets received",
            "[alpha] linux: net: round-trip min/avg/max = ",
            // The MD5 of the data (net_data in linux.rs) where it is made, where it arrives, and
            // the receiver's word back to the sender.
            "[alpha] linux: net: sending 67108864 bytes, md5 c3bb6194fc73331f4371c611115059e0",
            "[beta] linux: net: received 67108864 bytes, md5 c3bb6194fc73331f4371c611115059e0",
            "[alpha] linux: net: the receiver says: 67108864 c3bb6194fc73331f4371c611115059e0",
            "virtio link 'net0': alpha -> beta: ",
            "partition 'alpha' powered off (PSCI SYSTEM_OFF): stopped",
            "partition 'beta' powered off (PSCI SYSTEM_OFF): stopped",
            "all partitions have stopped: powering off",
        ],
        order: &[],
        forbid: &[
            Hypervisor("fault:"),
            Hypervisor("needs a reset"),
            Partition("alpha", "net: no eth0"),
            Partition("beta", "net: no eth0"),
        ],
        tamper: None,
        input: &[],
        qemu_args: &[],
        timeout: LINUX_TIMEOUT,
    },
];

/// Console input following focus (`console-focus.dts` and its ZCU102 twin): `first` has the
/// input and stops, `second` echoes what reaches it; typing there, to the hypervisor and back.
/// The doorbell flood (issue 11 item 7), on either GIC.
const DOORBELL_FLOOD_EXPECT: &[&str] = &[
    "[ringer] rang the peer's doorbell 20000 times",
    "[bell] the flood woke this CPU ",
    "[bell] after the flood: \"after the flood\" woke it (1 more interrupt)",
    "[bell] bell done",
    "[ringer] ringer done",
    "all partitions have stopped: powering off",
];

const FOCUS_EXPECT: &[&str] = &[
    "console input -> first (Ctrl-\\ passes it on)",
    "partition 'first' exited with code 0: stopped",
    "console input -> second (Ctrl-\\ passes it on)",
    "[second] got: ping",
    "console input -> hypervisor: keys go to no partition",
    "partitions: first (stopped, console), second (running, console)",
    "[second] got: quit",
    "all partitions have stopped: powering off",
];
const FOCUS_ORDER: &[(&str, &str)] = &[
    ("[second] got: ping", "console input -> hypervisor"),
    ("console input -> hypervisor", "[second] got: quit"),
];
const FOCUS_INPUT: &[(&str, &[u8])] = &[
    ("[second] echo: type a line", b""),
    ("partition 'first' exited", b"ping\r"),
    ("[second] got: ping", b"\x1c"),
    ("console input -> hypervisor", b"lost\r"),
    ("partitions: first", b"\x1c"),
    ("console input -> second", b"quit\r"),
];

/// Linux beside the heartbeat: the heartbeat beats before Linux is up, and goes on after Linux
/// powers off.
const LINUX_BESIDE_HEARTBEAT: &[(&str, &str)] = &[
    ("[heartbeat] heartbeat 1", "[linux] linux: TANTALUM-LINUX-MARKER"),
    ("partition 'linux' powered off", "[heartbeat] heartbeat "),
];

const DEMO_EXPECT: &[&str] = &[
    "own map: W^X (text read-only, writable memory never executes), unused memory unmapped",
    // el2map::retire_boot_code checked with the MMU that the pages are gone.
    "boot-only code unmapped (",
    "[sensor] reading 11:",
    "[controller] reading 11: error",
    "[actuator] command 11: heater at",
    "[sensor] sensor done",
    "[controller] controller done",
    "[actuator] actuator done",
    "all partitions have stopped: powering off",
];

const ATTACK_EXPECT: &[&str] = &[
    "[attacker] 6 of 6 unknown hypercalls returned NOT_SUPPORTED",
    "[attacker] console write from the victim's memory refused (INVALID_PARAMETERS)",
    "[attacker] the PMU refused to count at EL2 (event 0: 0x8)",
    "partition 'attacker' fault: stage-2 read abort at IPA 0x42000000",
    "partition 'attacker' fault: stage-2 write abort at IPA 0x42000100",
    "partition 'attacker' fault: stage-2 read abort at IPA 0x40080000",
    "partition 'attacker' fault: stage-2 write abort at IPA 0x40080000",
    "partition 'attacker' fault: stage-2 write abort at IPA 0x9000000",
    "partition 'attacker' fault: stage-2 write abort at IPA 0x8080000",
    "partition 'attacker' fault: forbidden SMC (function 0xc2000000)",
    "partition 'attacker' fault: trapped system register write (S3_0_C1_C0_1)",
    "[attacker] boot 8: memory is fresh",
    "[attacker] attack: semihosting call (hlt #0xf000, SYS_EXIT)",
    "[attacker] undefined instruction at ",
    "partition 'attacker' exited with code 102: stopped",
    "[victim] memory intact after 30 checks",
    "[victim] victim done: memory intact",
    "all partitions have stopped: powering off",
];

const FAULTS_EXPECT: &[&str] = &[
    "partition 'stopper' fault: stage-2 write abort at IPA 0x1000 (outside its memory)",
    "partition 'phoenix' fault: stage-2 write abort at IPA 0x1000 (outside its memory)",
    "[phoenix] boot 1, memory fresh",
    "partition 'phoenix' reset (PSCI SYSTEM_RESET): restarting",
    "[phoenix] boot 2, memory fresh",
    "[phoenix] third boot: done",
    "[bystander] bystander done",
    "all partitions have stopped: powering off",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_within_their_source_only() {
        let out = "tantalum: partition 'a' fault: x: stopped\n[linux] [    2.1] Unable to handle kernel fault: oops\n[pong] hi\n";
        assert!(Hypervisor("fault:").find(out).unwrap().starts_with("tantalum: "));
        assert_eq!(Hypervisor("Unable").find(out), None);
        assert_eq!(
            Partition("linux", "fault:").find(out),
            Some("[linux] [    2.1] Unable to handle kernel fault: oops")
        );
        assert_eq!(Partition("ping", "").find(out), None);
        assert!(Partition("pong", "").find(out).is_some());
        assert!(AnyPartition("hi").find(out).is_some());
        // A kernel line's own brackets are not a partition's.
        assert_eq!(source("[    2.1] x"), None);
    }
}

/// A scenario that runs one partition image twice, bare on the board's QEMU machine (EL1, no
/// `virtualization=on`, QEMU's own device tree and devices) and as a Tantalum partition, and
/// compares what it printed: the lines starting with `marker`, in order, must be the same.
#[derive(Debug)]
pub struct Comparison {
    pub name: &'static str,
    /// The system that runs the image as a partition (its partition `partition`).
    pub config: &'static str,
    pub partition: &'static str,
    /// The result lines' prefix; lines with `ignore` in them (which side ran) are not compared.
    pub marker: &'static str,
    pub ignore: &'static str,
    /// Known differences (docs/hypercalls.md says why): result lines containing one of these
    /// may differ; each such line is shown, and the scenario fails if it no longer differs (the
    /// entry is then stale).
    pub known: &'static [&'static str],
    /// CPUs of the bare machine (the partition's are its config's).
    pub cpus: usize,
    pub timeout: Duration,
}

pub const COMPARISONS: &[Comparison] = &[
    Comparison {
        name: "GIC and timer conformance: the same gicconf image bare on QEMU and as a partition gives the same results",
        config: "configs/tests/gic-conformance.dts",
        partition: "gicconf",
        marker: "gicconf: ",
        ignore: "running as",
        known: &[],
        cpus: 1,
        timeout: T,
    },
    Comparison {
        name: "GICv2 board: GIC and timer conformance, the same gicconf image bare on QEMU and as a partition",
        config: "configs/boards/gicv2-gic-conformance.dts",
        partition: "gicconf",
        marker: "gicconf: ",
        ignore: "running as",
        known: &[],
        // CPU 1 sends SGIs too: a GICv2 keeps them pending per sender.
        cpus: 2,
        timeout: T,
    },
];

/// The result lines of a run: those of `partition` (`[name] ` prefix) or, bare, any line, that
/// start with `marker` and do not contain `ignore`.
pub fn result_lines<'a>(
    output: &'a str,
    partition: Option<&str>,
    marker: &str,
    ignore: &str,
) -> Vec<&'a str> {
    output
        .lines()
        .filter_map(|line| match partition {
            Some(name) => line.strip_prefix('[')?.strip_prefix(name)?.strip_prefix("] "),
            None => Some(line),
        })
        .filter(|text| text.starts_with(marker) && !text.contains(ignore))
        .collect()
}

/// Where two runs' result lines differ: each difference with both lines (`-` when one run has
/// no line there). A line containing a `known` pattern may differ (it is returned in the second
/// list); one that no longer does is an error (the entry is stale).
pub fn differences(bare: &[&str], partition: &[&str], known: &[&str]) -> (Vec<String>, Vec<String>) {
    let (mut errors, mut tolerated) = (Vec::new(), Vec::new());
    for i in 0..bare.len().max(partition.len()) {
        let (b, p) = (bare.get(i).copied().unwrap_or("-"), partition.get(i).copied().unwrap_or("-"));
        let listed = known.iter().find(|k| b.contains(*k));
        match (b == p, listed) {
            (true, None) => {}
            (true, Some(k)) => errors.push(format!("known difference '{k}' no longer differs: {b}")),
            (false, None) => errors.push(format!("bare:      {b}\npartition: {p}")),
            (false, Some(_)) => tolerated.push(format!("bare:      {b}\npartition: {p}")),
        }
    }
    (errors, tolerated)
}

#[cfg(test)]
mod comparison_tests {
    use super::*;

    #[test]
    fn result_lines_of_each_side_and_their_differences() {
        let bare = "gicconf: running as bare\ngicconf: a: 1\nnoise\ngicconf: b: 2\n";
        let part = "tantalum: x\n[gicconf] gicconf: running as partition\n[gicconf] gicconf: a: 1\n[other] gicconf: b: 2\n[gicconf] gicconf: b: 3\n";
        let b = result_lines(bare, None, "gicconf: ", "running as");
        let p = result_lines(part, Some("gicconf"), "gicconf: ", "running as");
        assert_eq!(b, ["gicconf: a: 1", "gicconf: b: 2"]);
        assert_eq!(p, ["gicconf: a: 1", "gicconf: b: 3"]);
        let both = "bare:      gicconf: b: 2\npartition: gicconf: b: 3";
        assert_eq!(differences(&b, &p, &[]), (vec![both.to_string()], vec![]));
        assert_eq!(differences(&b, &b[..1], &[]).0, ["bare:      gicconf: b: 2\npartition: -"]);
        assert_eq!(differences(&b, &b, &[]), (vec![], vec![]));
        // A known difference is tolerated while it differs, and an error once it does not.
        assert_eq!(differences(&b, &p, &["b:"]), (vec![], vec![both.to_string()]));
        assert_eq!(
            differences(&b, &b, &["b:"]).0,
            ["known difference 'b:' no longer differs: gicconf: b: 2"]
        );
    }
}
