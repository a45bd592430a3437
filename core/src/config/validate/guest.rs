//! Rules 13 and 14, guest side: everything one partition sees — its memory, its devices' pages,
//! the virtual GIC and UART, its channels — at distinct guest-physical addresses.

use crate::vplatform::{DOORBELL_PAGE, DOORBELL_WINDOW};
use alloc::vec::Vec;

use super::devices::pages;
use super::Checker;
use crate::config::error::{ErrorKind, GuestSpan, GuestUse};
use crate::config::{PartitionConfig, VIRTUAL_UART_BASE, VIRTUAL_UART_SIZE};

/// One thing in a partition's guest space.
struct Item {
    what: GuestUse,
    span: GuestSpan,
    /// Mapped at its host address: two such items overlap on the host too, which the host-side
    /// rules already report.
    identity: bool,
}

/// A span, if it is non-empty and does not wrap.
fn span(start: u64, size: u64) -> Option<GuestSpan> {
    (size > 0 && start.checked_add(size).is_some()).then(|| GuestSpan::new(start, size))
}

impl Checker<'_> {
    fn guest_items(&self, p: &PartitionConfig) -> Vec<Item> {
        let cfg = self.cfg;
        let mut items = Vec::new();
        for (region, r) in p.memory.iter().enumerate() {
            if let Some(span) = span(r.guest.0, r.size) {
                items.push(Item { what: GuestUse::Memory { region }, span, identity: r.guest.0 == r.host.0 });
            }
        }
        if let Some(gic) = &cfg.board.gic {
            for (start, size) in crate::vplatform::gic_guest_frames(gic, p.cpus.len()) {
                items.extend(span(start, size).map(|span| Item {
                    what: GuestUse::Gic,
                    span,
                    identity: false,
                }));
            }
        }
        for d in &p.devices {
            for m in d.mmio.iter().filter_map(pages) {
                let what = GuestUse::Device { path: d.path.clone() };
                items.push(Item { what, span: GuestSpan::new(m.start.0, m.size), identity: true });
            }
        }
        if p.virtual_uart {
            let span = GuestSpan::new(VIRTUAL_UART_BASE, VIRTUAL_UART_SIZE);
            items.push(Item { what: GuestUse::VirtualUart, span, identity: false });
        }
        let channels = cfg.channels_of(p.id).len() as u64;
        if channels > 0 {
            let span = GuestSpan::new(DOORBELL_WINDOW, channels * DOORBELL_PAGE);
            items.push(Item { what: GuestUse::Doorbells, span, identity: false });
        }
        for c in cfg.channels_of(p.id) {
            let Some(guest) = c.guest_address(p.id) else {
                continue;
            };
            if let Some(span) = span(guest.0, c.memory.size) {
                let what = GuestUse::Channel { path: c.path.clone() };
                items.push(Item { what, span, identity: guest.0 == c.memory.start.0 });
            }
        }
        items
    }

    /// Every overlap in partition `p`'s guest space, each pair once.
    pub(super) fn guest_space(&mut self, p: &PartitionConfig) {
        let items = self.guest_items(p);
        for (j, b) in items.iter().enumerate() {
            for a in items.iter().take(j) {
                if (a.identity && b.identity) || !a.span.overlaps(&b.span) {
                    continue;
                }
                self.guest_overlap(p, a, b);
            }
        }
    }

    /// Reports one overlap (`a` comes before `b`), as the rule of the more specific item.
    fn guest_overlap(&mut self, p: &PartitionConfig, a: &Item, b: &Item) {
        let endpoint = || p.path.clone();
        // A channel in the pair: the later channel, or the only one, is at fault.
        let channel = [b, a].into_iter().find(|i| matches!(i.what, GuestUse::Channel { .. }));
        if let Some(c) = channel {
            let other = if core::ptr::eq(c, b) { a } else { b };
            let GuestUse::Channel { path } = &c.what else {
                return;
            };
            let kind = ErrorKind::ChannelGuestOverlap {
                endpoint: endpoint(),
                guest: c.span,
                with: other.what.clone(),
                range: other.span,
            };
            return self.report(&path.clone(), kind);
        }
        if let Some((uart, other)) = pick(a, b, |w| matches!(w, GuestUse::VirtualUart)) {
            let kind = ErrorKind::VirtualUartOverlap {
                uart: uart.span,
                with: other.what.clone(),
                range: other.span,
            };
            return self.report(&p.path, kind);
        }
        if let Some((memory, other)) = pick(a, b, |w| matches!(w, GuestUse::Memory { .. })) {
            let GuestUse::Memory { region } = memory.what else {
                return;
            };
            if matches!(other.what, GuestUse::Memory { .. }) {
                return; // Rule 3's `GuestOverlap`.
            }
            let kind = ErrorKind::GuestMemoryOverlap {
                region,
                guest: memory.span,
                with: other.what.clone(),
                range: other.span,
            };
            self.report(&p.path, kind);
        }
        // Device against device is fine in one partition; device against the GIC is rule 12's.
    }
}

/// `(the item matching, the other)`, if one matches.
fn pick<'i>(a: &'i Item, b: &'i Item, is: impl Fn(&GuestUse) -> bool) -> Option<(&'i Item, &'i Item)> {
    if is(&a.what) {
        Some((a, b))
    } else if is(&b.what) {
        Some((b, a))
    } else {
        None
    }
}
