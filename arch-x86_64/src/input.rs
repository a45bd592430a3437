//! Console input on x86: the keys typed on COM1 go where core's `console::input` says (a
//! partition's virtual 16550, or the hypervisor's help line). COM1 is polled, by whichever CPU
//! is in the hypervisor (every exit, and while a vCPU waits), so no interrupt routing is needed;
//! a key delivered raises the partition's virtual 16550 interrupt if its guest enabled it
//! (`uart_irq`).

use core::sync::atomic::Ordering;

use tantalum_core::config::MAX_PARTITIONS;
use tantalum_core::console::input::{self, Announce, Focus, Help, Key};

use crate::console::info;
use crate::system::System;

/// The partitions that can take input: those with a virtual UART that have not stopped.
fn candidates(system: &System) -> heapless::Vec<usize, MAX_PARTITIONS> {
    (0..system.partitions.len())
        .filter(|&i| {
            system.config.partitions[i].virtual_uart && !system.partitions[i].stopped.load(Ordering::Acquire)
        })
        .collect()
}

fn name(system: &System, focus: Focus) -> Option<&str> {
    match focus {
        Focus::Partition(id) => Some(system.config.partitions[id].name.as_str()),
        Focus::Hypervisor => None,
    }
}

/// At boot: the input goes to the first partition with a virtual UART, if any (said on the console).
pub fn start(system: &System) {
    if let Some(&id) = candidates(system).first() {
        system.input_focus.store(id, Ordering::Release);
        info!("{}", Announce { to: name(system, Focus::Partition(id)) });
    }
}

/// Partition `id` stopped for good: if it had the input, the input moves on (and says so).
pub fn stopped(system: &System, id: usize) {
    let focus = Focus::from_word(system.input_focus.load(Ordering::Acquire));
    let left = candidates(system);
    if focus == Focus::Partition(id) && !left.is_empty() {
        let to = focus.next(&left);
        system.input_focus.store(to.to_word(), Ordering::Release);
        info!("{}", Announce { to: name(system, to) });
    }
}

/// Takes what the operator typed and hands each key where it goes.
pub fn poll(system: &System) {
    let mut buf = [0u8; 16];
    let n = crate::console::read_input(&mut buf);
    for &byte in &buf[..n] {
        let candidates = candidates(system);
        let focus = Focus::from_word(system.input_focus.load(Ordering::Acquire));
        match input::on_key(focus, byte, &candidates) {
            Key::Switch(to) => {
                system.input_focus.store(to.to_word(), Ordering::Release);
                info!("{}", Announce { to: name(system, to) });
            }
            Key::Deliver(id) => {
                system.partitions[id].vuart.lock().receive(&[byte]);
                crate::uart_irq::input(system, id);
            }
            Key::Help => {
                let partitions = system.config.partitions.iter().zip(&system.partitions).map(|(c, p)| {
                    let state = if p.stopped.load(Ordering::Acquire) { "stopped" } else { "running" };
                    (c.name.as_str(), state, c.virtual_uart)
                });
                let next = name(system, focus.next(&candidates));
                info!("{}", Help { partitions, next });
            }
            Key::Ignore => {}
        }
    }
}
