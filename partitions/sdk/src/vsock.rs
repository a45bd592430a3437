//! Stream sockets on a Tantalum vsock link (virtio 1.2 §5.10, docs/virtio.md): the partition
//! drives its virtio-vsock device and speaks the vsock stream protocol (connection requests,
//! data, credit, shutdown) with its peer, typically Linux user space with `AF_VSOCK`. Server
//! side only: [`Vsock::listen`] on a port, then [`Vsock::poll`] yields connections, data and
//! closes, and [`Vsock::send`] answers. Polled, like [`crate::net`].

use tantalum_core::virtio::mmio::DEVICE_VSOCK;
use tantalum_core::virtio::vsock::{credit, Header, Op, HDR_LEN, TYPE_STREAM};

use crate::virtq::{Device, DeviceError, Virtq, NUM};

/// Bytes of a packet buffer: the header and up to [`BUF_ALLOC`] bytes of data.
const BUF: usize = 2112;
const HDR: usize = HDR_LEN as usize;
/// The receive space each connection offers its peer (`buf_alloc`): at most this much of its
/// data is in flight, so no packet outgrows a receive buffer.
const BUF_ALLOC: u32 = 2048;
/// Connections at once.
const MAX_CONNS: usize = 4;
const RX: u32 = 0;
const TX: u32 = 1;
const EVENT: u32 = 2;

/// A connection: the peer's address, and the credit both ways (virtio 1.2 §5.10.6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Conn {
    peer_cid: u64,
    peer_port: u32,
    port: u32,
    /// The peer's receive space and how much of our data it has consumed.
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Bytes of data sent, and received and handed to the application.
    tx_cnt: u32,
    fwd_cnt: u32,
    /// `fwd_cnt` as last told to the peer.
    told_fwd_cnt: u32,
}

impl Conn {
    /// Bytes the peer can take now.
    fn credit(&self) -> u32 {
        credit(self.peer_buf_alloc, self.peer_fwd_cnt, self.tx_cnt)
    }
}

/// A connection, as [`Vsock::poll`] names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnId(usize);

/// What [`Vsock::poll`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A peer connected to the listening port.
    Connected(ConnId),
    /// This many bytes of data arrived (copied to the caller's buffer).
    Data(ConnId, usize),
    /// The peer closed (or reset) the connection.
    Closed(ConnId),
}

/// Why a send failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VsockError {
    NotConnected,
}

/// The driver's side of the partition's virtio-vsock device, and its connections.
pub struct Vsock {
    device: Device,
    rx: Virtq<BUF>,
    tx: Virtq<BUF>,
    _event: Virtq<8>,
    in_flight: usize,
    cid: u64,
    listening: Option<u32>,
    conns: [Option<Conn>; MAX_CONNS],
}

impl Vsock {
    /// Brings up the partition's virtio-vsock device (on its vsock link), every receive buffer
    /// posted.
    pub fn open() -> Result<Vsock, DeviceError> {
        let device = Device::first(DEVICE_VSOCK, 0)?;
        let (mut rx, tx, mut event) = (Virtq::new(true), Virtq::new(false), Virtq::new(true));
        device.add_queue(RX, &rx)?;
        device.add_queue(TX, &tx)?;
        device.add_queue(EVENT, &event)?;
        let cid = u64::from_le_bytes(core::array::from_fn(|i| device.config_byte(i)));
        device.driver_ok();
        rx.post_all();
        event.post_all();
        device.notify(RX);
        device.notify(EVENT);
        Ok(Vsock {
            device,
            rx,
            tx,
            _event: event,
            in_flight: 0,
            cid,
            listening: None,
            conns: [None; MAX_CONNS],
        })
    }

    /// This partition's address (its context ID).
    pub fn cid(&self) -> u64 {
        self.cid
    }

    /// Accepts connections to `port` from now on.
    pub fn listen(&mut self, port: u32) {
        self.listening = Some(port);
    }

    /// Handles what arrived until something for the application comes: a connection, data
    /// (copied into `out`, which should hold [`BUF_ALLOC`] bytes; more data than fits is cut),
    /// or a close. `None` when nothing more is there now.
    pub fn poll(&mut self, out: &mut [u8]) -> Option<Event> {
        while let Some((slot, len)) = self.rx.take_used() {
            let buf = self.rx.buffer(slot);
            let packet = &buf[..(len as usize).min(BUF)];
            let event = Header::parse(packet).map(|h| {
                let data = packet.get(HDR..HDR + h.len as usize).unwrap_or(&[]);
                let n = data.len().min(out.len());
                out[..n].copy_from_slice(&data[..n]);
                (h, n)
            });
            self.rx.post(slot, BUF as u32);
            self.device.notify(RX);
            if let Some(e) = event.and_then(|(h, n)| self.handle(&h, n)) {
                return Some(e);
            }
        }
        None
    }

    /// Sends as much of `data` as the peer has room for now (at most [`BUF_ALLOC`] bytes);
    /// returns how much (0: try again after [`Vsock::poll`] has taken its credit update).
    pub fn send(&mut self, c: ConnId, data: &[u8]) -> Result<usize, VsockError> {
        let conn = self.conns.get(c.0).copied().flatten().ok_or(VsockError::NotConnected)?;
        let n = data.len().min(conn.credit() as usize).min(BUF - HDR);
        if n == 0 {
            return Ok(0);
        }
        self.packet(&conn, Op::Rw, data.get(..n).unwrap_or(&[]));
        if let Some(Some(conn)) = self.conns.get_mut(c.0) {
            conn.tx_cnt = conn.tx_cnt.wrapping_add(n as u32);
            conn.told_fwd_cnt = conn.fwd_cnt;
        }
        Ok(n)
    }

    /// Closes connection `c` (both directions).
    pub fn close(&mut self, c: ConnId) {
        if let Some(conn) = self.conns.get_mut(c.0).and_then(Option::take) {
            self.packet(&conn, Op::Rst, &[]);
        }
    }

    /// One received packet: its header `h` and `n` bytes of data (already in the caller's buffer).
    fn handle(&mut self, h: &Header, n: usize) -> Option<Event> {
        let op = Op::from(h.op);
        if h.kind != TYPE_STREAM || h.dst_cid != self.cid {
            return None;
        }
        let found = self.conns.iter().position(|c| {
            c.is_some_and(|c| c.peer_cid == h.src_cid && c.peer_port == h.src_port && c.port == h.dst_port)
        });
        let Some(i) = found else {
            return self.unknown(h, op);
        };
        let conn = self.conns[i].as_mut()?;
        conn.peer_buf_alloc = h.buf_alloc;
        conn.peer_fwd_cnt = h.fwd_cnt;
        match op? {
            Op::Rw => {
                conn.fwd_cnt = conn.fwd_cnt.wrapping_add(n as u32);
                // Tell the peer it may send more once half its room is used up.
                let conn = *conn;
                if conn.fwd_cnt.wrapping_sub(conn.told_fwd_cnt) >= BUF_ALLOC / 2 {
                    self.credit_update(i);
                }
                Some(Event::Data(ConnId(i), n))
            }
            Op::CreditRequest => {
                self.credit_update(i);
                None
            }
            Op::Shutdown | Op::Rst => {
                let conn = self.conns[i].take()?;
                if op == Some(Op::Shutdown) {
                    self.packet(&conn, Op::Rst, &[]);
                }
                Some(Event::Closed(ConnId(i)))
            }
            Op::CreditUpdate | Op::Request | Op::Response => None,
        }
    }

    /// A packet for no connection: a request to the listening port opens one; anything else but
    /// a reset is answered with a reset.
    fn unknown(&mut self, h: &Header, op: Option<Op>) -> Option<Event> {
        let conn = Conn {
            peer_cid: h.src_cid,
            peer_port: h.src_port,
            port: h.dst_port,
            peer_buf_alloc: h.buf_alloc,
            peer_fwd_cnt: h.fwd_cnt,
            tx_cnt: 0,
            fwd_cnt: 0,
            told_fwd_cnt: 0,
        };
        let free = self.conns.iter().position(Option::is_none);
        match (op, free) {
            (Some(Op::Request), Some(i)) if self.listening == Some(h.dst_port) => {
                self.conns[i] = Some(conn);
                self.packet(&conn, Op::Response, &[]);
                Some(Event::Connected(ConnId(i)))
            }
            (Some(Op::Rst), _) => None,
            _ => {
                self.packet(&conn, Op::Rst, &[]);
                None
            }
        }
    }

    fn credit_update(&mut self, i: usize) {
        if let Some(conn) = self.conns[i].as_mut() {
            conn.told_fwd_cnt = conn.fwd_cnt;
            let conn = *conn;
            self.packet(&conn, Op::CreditUpdate, &[]);
        }
    }

    /// Sends one packet of `conn`: header and `data`.
    fn packet(&mut self, conn: &Conn, op: Op, data: &[u8]) {
        while self.in_flight == NUM {
            if self.tx.take_used().is_some() {
                self.in_flight -= 1;
            } else {
                core::hint::spin_loop();
            }
        }
        while self.tx.take_used().is_some() {
            self.in_flight -= 1;
        }
        let header = Header {
            src_cid: self.cid,
            dst_cid: conn.peer_cid,
            src_port: conn.port,
            dst_port: conn.peer_port,
            len: data.len() as u32,
            kind: TYPE_STREAM,
            op: op as u16,
            buf_alloc: BUF_ALLOC,
            fwd_cnt: conn.fwd_cnt,
        };
        let slot = self.tx.next_slot();
        let buf = self.tx.buffer(slot);
        header.write(&mut buf[..HDR]);
        buf[HDR..HDR + data.len()].copy_from_slice(data);
        self.in_flight += 1;
        self.tx.post(slot, (HDR + data.len()) as u32);
        self.device.notify(TX);
    }
}
