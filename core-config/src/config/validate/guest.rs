//! Rules 13 and 14, guest side: everything one partition sees — its memory, its devices' pages,
//! the virtual GIC and UART, its channels — at distinct guest-physical addresses.

use alloc::vec::Vec;

use super::devices::pages;
use super::Checker;
use crate::config::error::{ErrorKind, GuestSpan, GuestUse};
use crate::config::{PartitionConfig, IPA_LIMIT, MAX_CPUS};
use crate::vplatform::{self, Emulated};

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
        for (what, used) in self.emulated_used(p) {
            let span = cfg.board.emulated.span(what, used).and_then(|(start, size)| span(start, size));
            items.extend(span.map(|span| Item { what: emulated_use(what), span, identity: false }));
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

    /// How many pages of each kind of emulated page partition `p` uses (those it uses only).
    fn emulated_used(&self, p: &PartitionConfig) -> impl Iterator<Item = (Emulated, u64)> {
        let cfg = self.cfg;
        // An x86 board's virtual UART is on I/O ports (`x86::VIRTUAL_UART_PORTS`), not a page.
        let used = [
            u64::from(p.virtual_uart && cfg.board.x86.is_none()),
            cfg.channels_of(p.id).len() as u64,
            cfg.virtio_device_count(p.id) as u64,
        ];
        Emulated::ALL.into_iter().zip(used).filter(|&(_, n)| n > 0)
    }

    /// Rule 13, board side: each window of emulated pages the board places is page-aligned,
    /// below the IPA limit, and clear of the other windows and of the virtual GIC.
    pub(super) fn emulated_windows(&mut self) {
        let board = &self.cfg.board;
        // Gathered by loops: collecting adapters was half of this rule's code.
        let mut windows: Vec<(Emulated, GuestSpan)> = Vec::new();
        for what in Emulated::ALL {
            if let Some(base) = board.emulated.base(what) {
                windows.push((what, GuestSpan::new(base.as_u64(), what.pages() * vplatform::EMULATED_PAGE)));
            }
        }
        let mut gic: Vec<GuestSpan> = Vec::new();
        if let Some(g) = &board.gic {
            for (start, size) in vplatform::gic_guest_frames(g, MAX_CPUS) {
                gic.push(GuestSpan::new(start, size));
            }
        }
        for (i, &(what, window)) in windows.iter().enumerate() {
            let aligned = window.start.0.is_multiple_of(crate::addr::PAGE_SIZE);
            if !aligned || window.start.0.checked_add(window.size).is_none_or(|end| end > IPA_LIMIT) {
                self.report("/", ErrorKind::EmulatedWindowInvalid { what, window });
                continue;
            }
            let earlier = windows.iter().take(i).map(|&(w, span)| (emulated_use(w), span));
            for (with, range) in earlier {
                if range.overlaps(&window) {
                    self.report("/", ErrorKind::EmulatedWindowOverlap { what, window, with, range });
                }
            }
            for &range in &gic {
                if range.overlaps(&window) {
                    let with = GuestUse::Gic;
                    self.report("/", ErrorKind::EmulatedWindowOverlap { what, window, with, range });
                }
            }
        }
    }

    /// Rule 13: partition `p` uses only emulated pages its board places.
    pub(super) fn emulated_placed(&mut self, p: &PartitionConfig) {
        let missing: Vec<Emulated> = self
            .emulated_used(p)
            .map(|(what, _)| what)
            .filter(|&w| self.cfg.board.emulated.base(w).is_none())
            .collect();
        for what in missing {
            self.report(&p.path, ErrorKind::EmulatedNotPlaced { what });
        }
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
        let board_placed = |i: &Item| matches!(i.what, GuestUse::Gic) || emulated_kind(&i.what).is_some();
        if board_placed(a) && board_placed(b) {
            return; // The board's (`emulated_windows`), reported once.
        }
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
        if let Some((device, other)) = pick(a, b, |w| matches!(w, GuestUse::Device { .. })) {
            let (GuestUse::Device { path }, Some(what)) = (&device.what, emulated_kind(&other.what)) else {
                // Device against device is fine in one partition; device against the GIC is
                // rule 12's.
                return;
            };
            let kind = ErrorKind::DeviceOverEmulated {
                device: path.clone(),
                pages: device.span,
                what,
                range: other.span,
            };
            self.report(&p.path, kind);
        }
    }
}

/// How rule 13 names a kind of emulated page.
const fn emulated_use(what: Emulated) -> GuestUse {
    match what {
        Emulated::VirtualUart => GuestUse::VirtualUart,
        Emulated::Doorbells => GuestUse::Doorbells,
        Emulated::Virtio => GuestUse::Virtio,
    }
}

/// The kind of emulated page `what` is, if it is one.
const fn emulated_kind(what: &GuestUse) -> Option<Emulated> {
    match what {
        GuestUse::VirtualUart => Some(Emulated::VirtualUart),
        GuestUse::Doorbells => Some(Emulated::Doorbells),
        GuestUse::Virtio => Some(Emulated::Virtio),
        _ => None,
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
