//! Policy: what happens when a partition's vCPU exits to the hypervisor.
//!
//! [`handle_exit`] is the single decision point. It validates every guest-supplied argument,
//! never panics, and returns an [`Outcome`] that the arch layer carries out.

use core::fmt;

use crate::addr::{GuestPhys, HostPhys};
use crate::config::{FaultPolicy, PartitionConfig};
use crate::exit::{Access, Conduit, Exit};
use crate::hypercall::{self, psci, Call, Status};

/// What the hypervisor needs from the machine to carry out a hypercall.
pub trait Services {
    /// Copies `buf.len()` bytes of partition memory at `pa`; the range was checked to be the
    /// calling partition's own memory.
    fn read_memory(&mut self, pa: HostPhys, buf: &mut [u8]);
    /// Sends bytes from the partition to the console (line-buffered, prefixed by its name).
    fn console_write(&mut self, bytes: &[u8]);
    /// Blocks this physical CPU for up to `timeout_ns`.
    fn wait(&mut self, timeout_ns: u64);
}

/// Run-time facts about the calling partition that the config does not hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct PartitionState {
    /// How many times the partition has been restarted since boot.
    pub restarts: u32,
}

/// Why a partition's run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Access outside its memory (stage-2 / EPT violation).
    Memory { addr: GuestPhys, access: Access },
    /// An SMC that is not a PSCI call.
    ForbiddenSmc { function: u64 },
    /// Access to a system register the hypervisor traps and does not emulate.
    SystemRegister { encoding: u32, write: bool },
    /// Any other trapped instruction or exception.
    Unhandled { syndrome: u64 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::Memory { addr, access } => {
                write!(f, "stage-2 {} abort at IPA {addr} (outside its memory)", access.name())
            }
            Fault::ForbiddenSmc { function } => write!(f, "forbidden SMC (function {function:#x})"),
            Fault::SystemRegister { encoding, write } => {
                let dir = if write { "write" } else { "read" };
                write!(f, "trapped system register {dir} (encoding {encoding:#x})")
            }
            Fault::Unhandled { syndrome } => {
                write!(f, "unhandled exception (syndrome {syndrome:#x})")
            }
        }
    }
}

/// Why a partition stops running (for the console report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The partition called [`hypercall::HYP_EXIT`].
    Exited { code: u64 },
    /// PSCI SYSTEM_OFF from the partition.
    PoweredOff,
    /// PSCI SYSTEM_RESET from the partition.
    Reset,
    /// A fault, handled by the partition's `on-fault` policy.
    Fault(Fault),
}

/// What the arch layer must do next with the vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Resume the guest after the trapping instruction, with `values` in x0.. (rax..).
    Return { values: [u64; 5], count: usize },
    /// Stop the partition; the others keep running.
    Stop(StopReason),
    /// Reload the partition from its image into fresh memory and start it again.
    Restart(StopReason),
    /// Power the machine off.
    HaltSystem(StopReason),
}

impl Outcome {
    fn ret(value: u64) -> Self {
        Outcome::Return { values: [value, 0, 0, 0, 0], count: 1 }
    }
    fn status(status: Status) -> Self {
        Self::ret(status.to_reg())
    }
}

/// Decides what an exit means for `partition`.
pub fn handle_exit(
    partition: &PartitionConfig,
    state: &PartitionState,
    exit: Exit,
    services: &mut dyn Services,
) -> Outcome {
    match exit {
        Exit::Hypercall { conduit, function, args } => {
            handle_call(partition, state, conduit, function, &args, services)
        }
        Exit::Stage2Fault { addr, access } => fault(partition, Fault::Memory { addr, access }),
        Exit::SystemRegister { encoding, write } => {
            fault(partition, Fault::SystemRegister { encoding, write })
        }
        Exit::WaitForInterrupt | Exit::Interrupt => Outcome::Return { values: [0; 5], count: 0 },
        Exit::Unhandled { syndrome } => fault(partition, Fault::Unhandled { syndrome }),
    }
}

/// Applies the partition's `on-fault` policy.
pub fn fault(partition: &PartitionConfig, fault: Fault) -> Outcome {
    let reason = StopReason::Fault(fault);
    match partition.on_fault {
        FaultPolicy::Stop => Outcome::Stop(reason),
        FaultPolicy::Restart => Outcome::Restart(reason),
        FaultPolicy::HaltSystem => Outcome::HaltSystem(reason),
    }
}

fn handle_call(
    partition: &PartitionConfig,
    state: &PartitionState,
    conduit: Conduit,
    function: u64,
    args: &[u64; 6],
    services: &mut dyn Services,
) -> Outcome {
    if psci::is_psci(function) {
        return handle_psci(function, args);
    }
    if conduit == Conduit::Smc {
        // SMCs reach the firmware on real hardware: only PSCI is emulated, the rest is refused.
        return fault(partition, Fault::ForbiddenSmc { function });
    }
    let Some(call) = Call::decode(function, args) else {
        return Outcome::status(Status::NotSupported);
    };
    match call {
        Call::Version => Outcome::ret(hypercall::ABI_VERSION),
        Call::PartitionInfo => Outcome::Return {
            values: [u64::from(partition.id), u64::from(state.restarts), partition.cpus.len() as u64, 0, 0],
            count: 3,
        },
        Call::PartitionName => Outcome::Return { values: hypercall::pack_name(&partition.name), count: 5 },
        Call::ConsoleWrite { ipa, len } => console_write(partition, ipa, len, services),
        Call::Yield => Outcome::ret(0),
        Call::Wait { timeout_ns } => {
            services.wait(timeout_ns);
            Outcome::ret(0)
        }
        Call::Exit { code } => Outcome::Stop(StopReason::Exited { code }),
    }
}

fn console_write(partition: &PartitionConfig, ipa: u64, len: u64, services: &mut dyn Services) -> Outcome {
    if len > hypercall::CONSOLE_WRITE_MAX {
        return Outcome::status(Status::InvalidParameters);
    }
    if len == 0 {
        return Outcome::ret(0);
    }
    let Some(pa) = partition.translate(GuestPhys(ipa), len) else {
        return Outcome::status(Status::InvalidParameters);
    };
    let mut buf = [0u8; hypercall::CONSOLE_WRITE_MAX as usize];
    let buf = &mut buf[..len as usize];
    services.read_memory(pa, buf);
    services.console_write(buf);
    Outcome::ret(len)
}

fn handle_psci(function: u64, args: &[u64; 6]) -> Outcome {
    match function {
        psci::VERSION => Outcome::ret(psci::IMPLEMENTED_VERSION),
        psci::FEATURES => {
            let supported = matches!(
                args[0],
                psci::VERSION
                    | psci::FEATURES
                    | psci::SYSTEM_OFF
                    | psci::SYSTEM_RESET
                    | psci::MIGRATE_INFO_TYPE
            );
            Outcome::status(if supported { Status::Success } else { Status::NotSupported })
        }
        psci::MIGRATE_INFO_TYPE => Outcome::ret(psci::MIGRATE_NOT_REQUIRED),
        psci::SYSTEM_OFF => Outcome::Stop(StopReason::PoweredOff),
        psci::SYSTEM_RESET => Outcome::Restart(StopReason::Reset),
        // CPU_ON and friends arrive with multi-vCPU partitions; until then they are refused.
        _ => Outcome::status(Status::NotSupported),
    }
}

/// One console line describing how a partition's run ended, e.g.
/// `partition 'attacker' fault: stage-2 write abort at IPA 0x42000000 (outside its memory), PC 0x44000123: restarting`.
pub struct Report<'a> {
    pub partition: &'a str,
    pub outcome: &'a Outcome,
    pub pc: u64,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (reason, action) = match self.outcome {
            Outcome::Return { .. } => return Ok(()),
            Outcome::Stop(r) => (r, "stopped"),
            Outcome::Restart(r) => (r, "restarting"),
            Outcome::HaltSystem(r) => (r, "halting the system"),
        };
        let name = self.partition;
        match reason {
            StopReason::Exited { code } => {
                write!(f, "partition '{name}' exited with code {code}: {action}")
            }
            StopReason::PoweredOff => write!(f, "partition '{name}' powered off (PSCI SYSTEM_OFF): {action}"),
            StopReason::Reset => {
                write!(f, "partition '{name}' reset (PSCI SYSTEM_RESET): {action}")
            }
            StopReason::Fault(fault) => {
                write!(f, "partition '{name}' fault: {fault}, PC {:#x}: {action}", self.pc)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::{String, ToString};
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::config::MemoryRegion;
    use crate::hypercall::*;

    #[derive(Default)]
    struct Fake {
        console: Vec<u8>,
        reads: Vec<(HostPhys, usize)>,
        waited: u64,
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
    }

    fn partition(policy: FaultPolicy) -> PartitionConfig {
        PartitionConfig {
            id: 3,
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
        Exit::Hypercall { conduit: Conduit::Hvc, function, args }
    }

    fn run(p: &PartitionConfig, exit: Exit) -> (Outcome, Fake) {
        let mut fake = Fake::default();
        let outcome = handle_exit(p, &PartitionState { restarts: 2 }, exit, &mut fake);
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
        assert_eq!(o, Outcome::Return { values: [3, 2, 1, 0, 0], count: 3 });
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
    fn smc_only_for_psci() {
        let p = partition(FaultPolicy::Stop);
        let smc = |function| Exit::Hypercall { conduit: Conduit::Smc, function, args: [0; 6] };
        assert_eq!(run(&p, smc(psci::VERSION)).0, Outcome::ret(psci::IMPLEMENTED_VERSION));
        assert_eq!(
            run(&p, smc(HYP_VERSION)).0,
            Outcome::Stop(StopReason::Fault(Fault::ForbiddenSmc { function: HYP_VERSION }))
        );
    }

    #[test]
    fn psci_acts_on_the_partition() {
        let p = partition(FaultPolicy::HaltSystem);
        assert_eq!(run(&p, hvc(psci::SYSTEM_OFF, [0; 6])).0, Outcome::Stop(StopReason::PoweredOff));
        assert_eq!(run(&p, hvc(psci::SYSTEM_RESET, [0; 6])).0, Outcome::Restart(StopReason::Reset));
        let features = |f| run(&p, hvc(psci::FEATURES, [f, 0, 0, 0, 0, 0])).0;
        assert_eq!(features(psci::SYSTEM_OFF), Outcome::ret(0));
        assert_eq!(features(psci::CPU_ON_64), Outcome::status(Status::NotSupported));
        assert_eq!(run(&p, hvc(psci::MIGRATE_INFO_TYPE, [0; 6])).0, Outcome::ret(2));
    }

    #[test]
    fn exit_and_wait() {
        let p = partition(FaultPolicy::Stop);
        assert_eq!(
            run(&p, hvc(HYP_EXIT, [7, 0, 0, 0, 0, 0])).0,
            Outcome::Stop(StopReason::Exited { code: 7 })
        );
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
}
