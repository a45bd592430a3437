//! Channels: shared-memory message rings to another partition, with doorbells.
//!
//! ```ignore
//! let mut link = Channel::open(0)?;          // channel 0 of this partition's guest DT
//! link.send(b"reading 42")?;                  // writes the message and rings the peer
//! let n = link.recv(&mut buf)?;               // sleeps (WFI) until a message arrives
//! ```
//! The ring format is `tantalum_core::channel` (see docs/channels.md); this module finds the
//! channel in the guest DT and wires up the doorbell.

use alloc::string::{String, ToString};
use core::fmt;

use tantalum_core::channel::{
    channel_layout, Consumer, Corruption, Producer, RawRegion, RecvError, RingLayout, SendError,
};
use tantalum_core::hypercall::HYP_CHANNEL_NOTIFY;

use crate::dt;
use crate::hypercall::hvc;
use crate::irq;

/// What a channel operation can report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// No channel with that number in the guest DT.
    NotFound,
    /// The guest DT's description of the channel is unusable (size, direction).
    BadDescription,
    /// This partition only receives on the channel.
    ReceiveOnly,
    /// This partition only sends on the channel.
    SendOnly,
    /// The ring is full (back-pressure): nothing was sent, retry later.
    Full,
    /// The message is larger than the ring allows.
    TooLarge { len: usize, max: u32 },
    /// No message waiting.
    Empty,
    /// The next message does not fit the buffer; it stays in the ring.
    BufferTooSmall { needed: usize },
    /// The peer wrote something impossible into the ring; the ring is dead.
    Corrupt(Corruption),
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("no such channel"),
            Self::BadDescription => f.write_str("unusable channel description in the guest DT"),
            Self::ReceiveOnly => f.write_str("this partition only receives on the channel"),
            Self::SendOnly => f.write_str("this partition only sends on the channel"),
            Self::Full => f.write_str("channel full"),
            Self::TooLarge { len, max } => write!(f, "message of {len} bytes exceeds the maximum {max}"),
            Self::Empty => f.write_str("no message"),
            Self::BufferTooSmall { needed } => write!(f, "message needs a {needed}-byte buffer"),
            Self::Corrupt(c) => write!(f, "corrupt channel: {c}"),
        }
    }
}

/// One end of a channel.
pub struct Channel {
    number: usize,
    name: String,
    peer: String,
    doorbell: u32,
    region: RawRegion,
    tx: Option<Producer<RawRegion>>,
    rx_layout: Option<RingLayout>,
    rx: Option<Consumer<RawRegion>>,
}

/// Facts about a channel read from the guest DT.
struct Description {
    base: u64,
    size: u64,
    endpoint: usize,
    direction: String,
    name: String,
    peer: String,
    doorbell: u32,
}

fn describe(number: usize) -> Option<Description> {
    let fdt = dt::get()?;
    let root = fdt.find_node("/")?;
    let node = root.children().find(|n| {
        n.name.starts_with("channel@")
            && n.property("tantalum,channel").and_then(|p| dt::numbers(p.value, 1).next())
                == Some(number as u64)
    })?;
    let mut reg = dt::numbers(node.property("reg")?.value, 2);
    let text = |name: &str| node.property(name).and_then(|p| p.as_str()).unwrap_or("").to_string();
    let spi = dt::numbers(node.property("interrupts")?.value, 1).nth(1)?;
    Some(Description {
        base: reg.next()?,
        size: reg.next()?,
        endpoint: dt::numbers(node.property("tantalum,endpoint")?.value, 1).next()? as usize,
        direction: text("tantalum,direction"),
        name: text("tantalum,name"),
        peer: text("tantalum,peer"),
        doorbell: spi as u32 + 32,
    })
}

fn doorbell_rang(_intid: u32) {}

impl Channel {
    /// Opens this partition's channel `number` (its order in the guest DT), initialises the ring
    /// it sends on, and enables the doorbell interrupt (IRQs are unmasked).
    pub fn open(number: usize) -> Result<Channel, ChannelError> {
        let d = describe(number).ok_or(ChannelError::NotFound)?;
        let writer = match d.direction.as_str() {
            "duplex" => None,
            "send" => Some(d.endpoint),
            "receive" => Some(1 - d.endpoint.min(1)),
            _ => return Err(ChannelError::BadDescription),
        };
        let layout = channel_layout(d.size, writer).map_err(|_| ChannelError::BadDescription)?;
        // SAFETY: the hypervisor maps the channel at `base..base + size` in this partition's
        // stage 2 as normal memory (identity-mapped by the SDK's stage 1), it is not part of the
        // Rust heap or any static, and the SDK only touches it through `RawRegion`.
        let region = unsafe { RawRegion::new(d.base as *mut u8, d.size as usize) }
            .ok_or(ChannelError::BadDescription)?;
        let tx = match layout.tx_ring(d.endpoint) {
            // `open` resumes a ring this partition already initialised (after a restart) and
            // initialises a fresh one.
            Some(ring) => Some(Producer::open(region, ring).map_err(|_| ChannelError::BadDescription)?),
            None => None,
        };
        irq::init();
        irq::set_handler(d.doorbell, doorbell_rang);
        irq::enable();
        Ok(Channel {
            number,
            name: d.name,
            peer: d.peer,
            doorbell: d.doorbell,
            region,
            tx,
            rx_layout: layout.rx_ring(d.endpoint).copied(),
            rx: None,
        })
    }

    /// The channel's name in the system description.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The partition at the other end.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The doorbell's interrupt ID (for [`irq::set_handler`] to replace the default handler).
    pub fn doorbell_intid(&self) -> u32 {
        self.doorbell
    }

    /// Rings the peer's doorbell.
    pub fn notify(&self) {
        hvc(HYP_CHANNEL_NOTIFY, [self.number as u64, 0, 0, 0, 0, 0]);
    }

    /// Queues `msg` without ringing the doorbell.
    pub fn send_quiet(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        let tx = self.tx.as_mut().ok_or(ChannelError::ReceiveOnly)?;
        tx.send(msg).map_err(|e| match e {
            SendError::Full => ChannelError::Full,
            SendError::TooLarge { len, max } => ChannelError::TooLarge { len, max },
            SendError::Corrupt(c) => ChannelError::Corrupt(c),
        })
    }

    /// Queues `msg` and rings the peer's doorbell.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), ChannelError> {
        self.send_quiet(msg)?;
        self.notify();
        Ok(())
    }

    /// Whether messages this partition sent are not yet all taken by the peer (false on a
    /// receive-only channel, or once the ring is corrupt).
    pub fn unconsumed(&self) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.pending())
    }

    /// Takes the next message into `buf`, if there is one; returns its length.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        let layout = self.rx_layout.ok_or(ChannelError::SendOnly)?;
        if self.rx.is_none() {
            // The peer initialises its ring when it opens the channel; until then, nothing came.
            self.rx = Consumer::attach(self.region, &layout).ok();
        }
        let rx = self.rx.as_mut().ok_or(ChannelError::Empty)?;
        rx.try_recv(buf).map_err(|e| match e {
            RecvError::Empty => ChannelError::Empty,
            RecvError::BufferTooSmall { needed } => ChannelError::BufferTooSmall { needed },
            RecvError::Corrupt(c) => ChannelError::Corrupt(c),
        })
    }

    /// Waits for the next message (sleeping in WFI until a doorbell) and takes it into `buf`.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, ChannelError> {
        loop {
            match self.try_recv(buf) {
                Err(ChannelError::Empty) => {}
                other => return other,
            }
            irq::wait_unless(|| self.rx.as_ref().is_some_and(|rx| rx.pending()));
        }
    }
}
