//! Other vCPUs' list registers, for a virtual GIC register access that must see or change
//! them (issue 13): an SPI's pending or active bit, or another vCPU's SGIs and PPIs, may live in
//! a list register of another CPU, which runs its guest meanwhile. The accessing CPU asks: it
//! kicks that CPU, whose interrupt exit applies the changes asked of its list registers and
//! publishes what they hold before its guest resumes; the asker waits for the answer (and
//! answers questions asked of its own vCPU meanwhile, so two askers never wait for each other).

use core::sync::atomic::{AtomicU32, Ordering};

use spin::Mutex;
use tantalum_core::config::MAX_CPUS;
use tantalum_core::partition::power::Power;
use tantalum_core::vgic::Listed;

use crate::system::Partition;
use crate::{el2, gic};

/// List registers a CPU can have.
const MAX_LISTED: usize = 16;

/// One vCPU's questions and answers.
#[derive(Default)]
pub struct ListedMailbox {
    /// Bumped by each question; the answer stores the value it answered.
    asked: AtomicU32,
    answered: AtomicU32,
    board: Mutex<Board>,
}

#[derive(Default)]
struct Board {
    /// What the vCPU's list registers held at the last answer.
    entries: heapless::Vec<Listed, MAX_LISTED>,
    /// Entries as published, and as another vCPU's register write wants them.
    changes: heapless::Vec<(Listed, Listed), MAX_LISTED>,
}

impl ListedMailbox {
    /// Whether another vCPU waits for this one's answer: one load on every interrupt exit.
    pub fn asked(&self) -> bool {
        self.asked.load(Ordering::Acquire) != self.answered.load(Ordering::Acquire)
    }

    /// On the CPU of `vcpu`, the mailbox's owner: applies the changes asked of its list
    /// registers (each as a change of the state it was published with, so what its guest did
    /// since stays done), then publishes what they hold and answers.
    pub fn answer(&self, vcpu: usize) {
        let asked = self.asked.load(Ordering::Acquire);
        let mut board = self.board.lock();
        let mut now = [Listed::default(); MAX_LISTED];
        if !board.changes.is_empty() {
            let n = gic::read_listed(vcpu as u8, &mut now);
            for (was, wanted) in board.changes.iter() {
                let Some(e) = now[..n].iter_mut().find(|e| e.lr == was.lr && e.intid == was.intid) else {
                    continue; // its guest ended it meanwhile
                };
                if was.pending != wanted.pending {
                    e.pending = wanted.pending;
                }
                if was.active != wanted.active {
                    e.active = wanted.active;
                }
                gic::write_listed(core::slice::from_ref(e));
            }
            board.changes.clear();
        }
        let n = gic::read_listed(vcpu as u8, &mut now);
        board.entries.clear();
        board.entries.extend(now[..n].iter().copied());
        drop(board);
        self.answered.store(asked, Ordering::Release);
    }
}

/// Asks vCPU `vcpu` of `p` to answer, from the CPU of vCPU `own`; returns whether it did.
/// A vCPU that is not on holds nothing in list registers (it left, and emptied them).
fn ask(p: &Partition, vcpu: usize, own: usize, own_cpu: usize) -> bool {
    let mailbox = &p.listed[vcpu];
    let question = mailbox.asked.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
    crate::vcpu::kick_vcpu(p, vcpu, own_cpu);
    let (start, freq) = el2::counter();
    loop {
        if mailbox.answered.load(Ordering::Acquire).wrapping_sub(question) as i32 >= 0 {
            return true;
        }
        // A running vCPU's CPU answers at its next exit, which the kick forces at once; one that
        // has not within a second (it is stopping, or, under an emulator, its host thread
        // starves): go on with what the virtual distributor knows. (50 ms was too short for a
        // loaded 2-core host running four vCPU threads.)
        if p.vcpus[vcpu].power() != Power::On || el2::counter().0 - start > freq {
            return false;
        }
        if p.listed[own].asked() {
            p.listed[own].answer(own);
        }
        core::hint::spin_loop();
    }
}

/// Every list-register entry of a partition's vCPUs: [`MAX_LISTED`] on each of its CPUs at
/// most (on the stack: nothing is allocated after boot).
pub type AllListed = heapless::Vec<Listed, { MAX_LISTED * MAX_CPUS }>;

/// The list-register entries of `p`'s vCPUs other than `own` (on CPU `own_cpu`), appended to
/// `out`.
pub fn gather(p: &Partition, own: usize, own_cpu: usize, out: &mut AllListed) {
    for vcpu in (0..p.vcpus.len()).filter(|&v| v != own) {
        if ask(p, vcpu, own, own_cpu) {
            // Fits: each vCPU has its own CPU, with at most `MAX_LISTED` entries.
            let _ = out.extend_from_slice(&p.listed[vcpu].board.lock().entries);
        }
    }
}

/// Hands entries of other vCPUs that a register write changed (`was` as gathered, `now` after
/// the write) back to their vCPUs, and waits until each has written them.
pub fn hand_back(p: &Partition, own: usize, own_cpu: usize, was: &[Listed], now: &[Listed]) {
    for vcpu in (0..p.vcpus.len()).filter(|&v| v != own) {
        let mut changed = false;
        {
            let mut board = p.listed[vcpu].board.lock();
            for (w, n) in was.iter().zip(now).filter(|(w, n)| usize::from(w.vcpu) == vcpu && w != n) {
                changed |= board.changes.push((*w, *n)).is_ok();
            }
        }
        if changed {
            ask(p, vcpu, own, own_cpu);
        }
    }
}
