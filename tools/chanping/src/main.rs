//! `chanping DIR COUNT`: Linux user space talking to a unikernel over a Tantalum channel with no
//! kernel module. `DIR` is the channel's node in `/proc/device-tree` (its `reg` gives the
//! channel memory and the doorbell page, `tantalum,endpoint` which end Linux is). The channel is
//! mapped through `/dev/mem`; a store to the doorbell page rings the peer (the hypervisor traps
//! it); replies are polled. Sends COUNT 64-byte messages with sequence numbers and checks every
//! echo, and prints the average round trip.
//!
//! `chanping udp IP PORT COUNT` echoes UDP datagrams through a peer on a virtio-net link;
//! `chanping vsock DIR PORT COUNT` sends COUNT messages over an `AF_VSOCK` stream to the peer
//! of the vsock link whose virtio node is `DIR` (its `tantalum,peer-cid`) and checks the echoes.
//!
//! Built for `aarch64-unknown-none-softfloat` as a static executable without libc: raw system
//! calls.
#![no_std]
#![no_main]

use core::arch::global_asm;

use tantalum_core::channel::{channel_layout, Consumer, Producer, RawRegion, RecvError, SendError};

global_asm!(
    r#"
.section .text.start, "ax"
.global _start
_start:
    mov     x0, sp
    bl      chanping_main
"#
);

mod sys {
    use core::arch::asm;

    fn call(nr: u64, a: [u64; 6]) -> i64 {
        let ret: i64;
        // SAFETY: a Linux system call: the kernel reads only the arguments it documents.
        unsafe {
            asm!("svc #0", in("x8") nr, inlateout("x0") a[0] as i64 => ret, in("x1") a[1], in("x2") a[2],
                 in("x3") a[3], in("x4") a[4], in("x5") a[5], options(nostack));
        }
        ret
    }

    pub fn write(fd: u64, bytes: &[u8]) {
        call(64, [fd, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0]);
    }
    pub fn open(path: &[u8], flags: u64) -> i64 {
        const AT_FDCWD: i64 = -100;
        call(56, [AT_FDCWD as u64, path.as_ptr() as u64, flags, 0, 0, 0])
    }
    pub fn read(fd: u64, buf: &mut [u8]) -> i64 {
        call(63, [fd, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0])
    }
    pub fn mmap(len: u64, fd: u64, offset: u64) -> i64 {
        const PROT_READ_WRITE: u64 = 3;
        const MAP_SHARED: u64 = 1;
        call(222, [0, len, PROT_READ_WRITE, MAP_SHARED, fd, offset])
    }
    /// CLOCK_MONOTONIC, in nanoseconds.
    pub fn now_ns() -> u64 {
        const CLOCK_MONOTONIC: u64 = 1;
        let mut ts = [0u64; 2];
        call(113, [CLOCK_MONOTONIC, ts.as_mut_ptr() as u64, 0, 0, 0, 0]);
        ts[0] * 1_000_000_000 + ts[1]
    }
    pub fn sleep_us(us: u64) {
        let ts = [us / 1_000_000, (us % 1_000_000) * 1000];
        call(101, [ts.as_ptr() as u64, 0, 0, 0, 0, 0]);
    }
    /// socket(AF_INET, SOCK_DGRAM, 0).
    pub fn udp_socket() -> i64 {
        call(198, [2, 2, 0, 0, 0, 0])
    }
    /// SO_RCVTIMEO of `seconds`.
    pub fn receive_timeout(fd: u64, seconds: u64) -> i64 {
        const SOL_SOCKET: u64 = 1;
        const SO_RCVTIMEO: u64 = 20;
        let tv = [seconds, 0u64];
        call(208, [fd, SOL_SOCKET, SO_RCVTIMEO, tv.as_ptr() as u64, 16, 0])
    }
    /// sendto `addr` (a `sockaddr_in`).
    pub fn send_to(fd: u64, bytes: &[u8], addr: &[u8; 16]) -> i64 {
        call(206, [fd, bytes.as_ptr() as u64, bytes.len() as u64, 0, addr.as_ptr() as u64, 16])
    }
    /// socket(AF_VSOCK, SOCK_STREAM, 0).
    pub fn vsock_socket() -> i64 {
        call(198, [40, 1, 0, 0, 0, 0])
    }
    /// connect to `addr` (a 16-byte `sockaddr_vm`).
    pub fn connect(fd: u64, addr: &[u8; 16]) -> i64 {
        call(203, [fd, addr.as_ptr() as u64, 16, 0, 0, 0])
    }
    pub fn write_fd(fd: u64, bytes: &[u8]) -> i64 {
        call(64, [fd, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0])
    }
    pub fn close(fd: u64) {
        call(57, [fd, 0, 0, 0, 0, 0]);
    }
    pub fn recv(fd: u64, buf: &mut [u8]) -> i64 {
        call(207, [fd, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0])
    }
    pub fn exit(code: u64) -> ! {
        loop {
            // exit_group does not return; should it, try again.
            call(94, [code, 0, 0, 0, 0, 0]);
        }
    }
}

/// Text output without allocation.
struct Out;
impl core::fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sys::write(1, s.as_bytes());
        Ok(())
    }
}

macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut Out, format_args!("linux: chanping: {}\n", format_args!($($arg)*)));
    }};
}

fn fail(what: &str) -> ! {
    say!("{what}");
    sys::exit(1)
}

/// A NUL-terminated path `dir/name` in `buf`.
fn path<'a>(buf: &'a mut [u8; 256], dir: &[u8], name: &[u8]) -> &'a [u8] {
    let n = dir.len() + 1 + name.len();
    if n + 1 > buf.len() {
        fail("path too long");
    }
    buf[..dir.len()].copy_from_slice(dir);
    buf[dir.len()] = b'/';
    buf[dir.len() + 1..n].copy_from_slice(name);
    buf[n] = 0;
    &buf[..=n]
}

fn read_file(dir: &[u8], name: &[u8], out: &mut [u8]) -> usize {
    let mut buf = [0u8; 256];
    let fd = sys::open(path(&mut buf, dir, name), 0);
    if fd < 0 {
        fail("cannot open a property of the channel node");
    }
    sys::read(fd as u64, out).max(0) as usize
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
}

/// C string arguments from the initial stack: argv[i].
///
/// # Safety
/// `sp` must be the process's initial stack pointer, as Linux sets it up.
unsafe fn arg(sp: *const u64, i: usize) -> &'static [u8] {
    // SAFETY: Linux puts argc at sp and the argv pointers after it.
    let argc = unsafe { *sp } as usize;
    if i >= argc {
        fail(
            "usage: chanping /proc/device-tree/channel@ADDR COUNT | chanping udp IP PORT COUNT | \
             chanping vsock /proc/device-tree/virtio_mmio@ADDR PORT COUNT",
        );
    }
    // SAFETY: argv[i] for i < argc is a NUL-terminated string.
    let p = unsafe { *sp.add(1 + i) } as *const u8;
    let mut n = 0;
    // SAFETY: as above: the string ends with a NUL byte.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `n` bytes are readable and stay so for the life of the process.
    unsafe { core::slice::from_raw_parts(p, n) }
}

fn number(text: &[u8], default: u64) -> u64 {
    core::str::from_utf8(text).ok().and_then(|c| c.parse::<u64>().ok()).unwrap_or(default)
}

/// `chanping udp IP PORT COUNT`: COUNT datagrams of 16 to 1,412 bytes to IP:PORT (a peer that
/// echoes them, such as a unikernel on a virtio-net link), each echo checked byte for byte.
fn udp(ip: &[u8], port: &[u8], count: u64) -> ! {
    let mut addr = [0u8; 16];
    addr[0] = 2; // AF_INET, little-endian u16
    addr[2..4].copy_from_slice(&(number(port, 7) as u16).to_be_bytes());
    let mut octets = ip.split(|&b| b == b'.');
    for byte in &mut addr[4..8] {
        *byte = octets.next().map_or(0, |o| number(o, 0) as u8);
    }
    let fd = sys::udp_socket();
    if fd < 0 || sys::receive_timeout(fd as u64, 1) < 0 {
        fail("udp: cannot open a socket");
    }
    let fd = fd as u64;
    let (mut bad, mut lost) = (0u64, 0u64);
    let (mut out, mut back) = ([0u8; 1500], [0u8; 1500]);
    let start = sys::now_ns();
    for seq in 0..count {
        let len = 16 + (seq as usize * 97) % 1397;
        out[..8].copy_from_slice(&seq.to_le_bytes());
        for (i, b) in out[8..len].iter_mut().enumerate() {
            *b = (seq as usize + i * 7) as u8;
        }
        // A datagram or its echo may be lost (the peer's ARP reply not there yet): try again.
        let mut tries = 0;
        let got = loop {
            sys::send_to(fd, &out[..len], &addr);
            let n = sys::recv(fd, &mut back);
            if n >= 0 || tries == 4 {
                break n;
            }
            tries += 1;
            lost += 1;
        };
        if got < 0 {
            fail("udp: no echo");
        }
        if got as usize != len || back[..len] != out[..len] {
            bad += 1;
        }
    }
    let us = (sys::now_ns() - start) / 1000 / count.max(1);
    say!("udp: {count} datagrams echoed, {bad} bad, {lost} sent again, {us} us per round trip");
    sys::exit(0)
}

/// `chanping vsock DIR PORT COUNT`: COUNT messages of 16 to 1,412 bytes over a vsock stream to
/// port PORT of the peer of the vsock link whose virtio node is DIR, each echo checked byte for
/// byte.
fn vsock(dir: &[u8], port: &[u8], count: u64) -> ! {
    let mut cell = [0u8; 4];
    if read_file(dir, b"tantalum,peer-cid", &mut cell) != 4 {
        fail("vsock: the virtio node has no tantalum,peer-cid (not a vsock link?)");
    }
    let cid = be(&cell) as u32;
    let mut addr = [0u8; 16];
    addr[0..2].copy_from_slice(&40u16.to_le_bytes()); // AF_VSOCK
    addr[4..8].copy_from_slice(&(number(port, 1234) as u32).to_le_bytes());
    addr[8..12].copy_from_slice(&cid.to_le_bytes());
    // The peer may still be starting: a refused connection is tried again for a few seconds.
    let mut tries = 0;
    let fd = loop {
        let fd = sys::vsock_socket();
        if fd < 0 {
            fail("vsock: cannot open an AF_VSOCK socket (vsock modules not loaded?)");
        }
        if sys::connect(fd as u64, &addr) == 0 {
            break fd as u64;
        }
        sys::close(fd as u64);
        tries += 1;
        if tries == 50 {
            fail("vsock: the peer does not accept connections");
        }
        sys::sleep_us(100_000);
    };
    if sys::receive_timeout(fd, 5) < 0 {
        fail("vsock: cannot set a receive timeout");
    }
    say!("vsock: connected to CID {cid} port {}", number(port, 1234));
    let (mut bad, mut out, mut back) = (0u64, [0u8; 1500], [0u8; 1500]);
    let start = sys::now_ns();
    for seq in 0..count {
        let len = 16 + (seq as usize * 97) % 1397;
        out[..8].copy_from_slice(&seq.to_le_bytes());
        for (i, b) in out[8..len].iter_mut().enumerate() {
            *b = (seq as usize + i * 7) as u8;
        }
        if sys::write_fd(fd, &out[..len]) != len as i64 {
            fail("vsock: a write failed");
        }
        // A stream: the echo may come in pieces.
        let mut got = 0;
        while got < len {
            let n = sys::recv(fd, &mut back[got..len]);
            if n <= 0 {
                fail("vsock: no echo");
            }
            got += n as usize;
        }
        if back[..len] != out[..len] {
            bad += 1;
        }
    }
    let us = (sys::now_ns() - start) / 1000 / count.max(1);
    sys::close(fd);
    say!("vsock: {count} messages echoed, {bad} bad, {us} us per round trip");
    sys::exit(0)
}

#[unsafe(no_mangle)]
extern "C" fn chanping_main(sp: *const u64) -> ! {
    // SAFETY: `_start` passes the initial stack pointer.
    let (dir, count) = unsafe { (arg(sp, 1), arg(sp, 2)) };
    if dir == b"udp" {
        // SAFETY: as above.
        let (ip, port, n) = unsafe { (arg(sp, 2), arg(sp, 3), arg(sp, 4)) };
        udp(ip, port, number(n, 100))
    }
    if dir == b"vsock" {
        // SAFETY: as above.
        let (node, port, n) = unsafe { (arg(sp, 2), arg(sp, 3), arg(sp, 4)) };
        vsock(node, port, number(n, 100))
    }
    let count = number(count, 100);
    let mut reg = [0u8; 32];
    if read_file(dir, b"reg", &mut reg) != 32 {
        fail("the channel node needs two reg entries (memory and doorbell page)");
    }
    let (base, size, doorbell) = (be(&reg[0..8]), be(&reg[8..16]), be(&reg[16..24]));
    let mut ep = [0u8; 4];
    read_file(dir, b"tantalum,endpoint", &mut ep);
    let endpoint = be(&ep) as usize;
    say!("channel at {base:#x} ({size:#x} bytes), doorbell page {doorbell:#x}, endpoint {endpoint}");

    const O_RDWR_SYNC: u64 = 0o2 | 0o4010000;
    let mem = sys::open(b"/dev/mem\0", O_RDWR_SYNC);
    if mem < 0 {
        fail("cannot open /dev/mem");
    }
    let window = sys::mmap(size, mem as u64, base);
    let bell = sys::mmap(4096, mem as u64, doorbell);
    if window < 0 || bell < 0 {
        fail("cannot map the channel through /dev/mem");
    }
    let layout = channel_layout(size, None).unwrap_or_else(|_| fail("bad channel size"));
    // SAFETY: the mapping covers `size` bytes of the channel for the life of the process, and
    // this program touches it only through `RawRegion`.
    let region =
        unsafe { RawRegion::new(window as *mut u8, size as usize) }.unwrap_or_else(|| fail("bad mapping"));
    let (Some(tx), Some(rx)) = (layout.tx_ring(endpoint), layout.rx_ring(endpoint)) else {
        fail("this end has no ring to send or receive on")
    };
    let mut producer = Producer::open(region, tx).unwrap_or_else(|_| fail("cannot set up the send ring"));
    let mut consumer =
        Consumer::attach(region, rx).unwrap_or_else(|_| fail("cannot attach to the receive ring"));
    let ring = || {
        // SAFETY: the doorbell page is mapped; the store traps to the hypervisor.
        unsafe { (bell as *mut u32).write_volatile(1) };
    };

    let (mut bad, mut buf) = (0u64, [0u8; 256]);
    let start = sys::now_ns();
    for seq in 0..count {
        let mut msg = [0u8; 64];
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        loop {
            match producer.send(&msg) {
                Ok(()) => break,
                Err(SendError::Full) => sys::sleep_us(100),
                Err(_) => fail("the send ring is corrupt"),
            }
        }
        ring();
        let n = loop {
            match consumer.try_recv(&mut buf) {
                Ok(n) => break n,
                Err(RecvError::Empty) => sys::sleep_us(50),
                Err(_) => fail("the receive ring is corrupt"),
            }
        };
        if n != 64 || buf[..8] != seq.to_le_bytes() {
            bad += 1;
        }
    }
    let us = (sys::now_ns() - start) / 1000 / count.max(1);
    say!("{count} round trips with the unikernel, {bad} bad replies, {us} us per round trip");
    sys::exit(0)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    fail("panic")
}

/// `tantalum-core` links `alloc`; nothing here allocates.
struct NoHeap;

// SAFETY: never hands out memory: every allocation fails.
unsafe impl core::alloc::GlobalAlloc for NoHeap {
    unsafe fn alloc(&self, _: core::alloc::Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _: *mut u8, _: core::alloc::Layout) {}
}

#[global_allocator]
static HEAP: NoHeap = NoHeap;
