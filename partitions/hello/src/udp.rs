//! `role=udp-echo ip=A.B.C.D count=N`: an SDK net interface on the partition's first virtio-net
//! link (docs/virtio.md) that answers ARP for its address and sends every UDP datagram to it back
//! to where it came from, until it has echoed N; then it prints how many and exits.

use tantalum_guest::dt::bootarg;
use tantalum_guest::net::Net;
use tantalum_guest::println;

const ETH_ARP: [u8; 2] = [0x08, 0x06];
const ETH_IPV4: [u8; 2] = [0x08, 0x00];
const IP_UDP: u8 = 17;

pub fn echo() {
    let ip = parse_ip(bootarg("ip").unwrap_or("10.0.0.3"));
    let count: u64 = bootarg("count").and_then(|c| c.parse().ok()).unwrap_or(100);
    let mut net = match Net::open(0) {
        Ok(n) => n,
        Err(e) => return println!("udp-echo: no virtio-net device: {e:?}"),
    };
    let m = net.mac;
    println!(
        "udp-echo: {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} is {}.{}.{}.{}",
        m[0], m[1], m[2], m[3], m[4], m[5], ip[0], ip[1], ip[2], ip[3]
    );
    let (mut echoed, mut bytes, mut arp) = (0u64, 0u64, 0u64);
    let mut frame = [0u8; 1514];
    while echoed < count {
        let Some(n) = net.recv(&mut frame) else {
            core::hint::spin_loop();
            continue;
        };
        let f = &mut frame[..n];
        if n >= 42 && f[12..14] == ETH_ARP && f[20..22] == [0, 1] && f[38..42] == ip {
            arp_reply(f, net.mac, ip);
            net.send(&f[..42]);
            arp += 1;
        } else if let Some(len) = udp_to(f, ip) {
            turn_around(f, net.mac);
            net.send(&f[..len]);
            echoed += 1;
            bytes += (len - 42) as u64;
        }
    }
    println!("udp-echo: echoed {echoed} datagrams ({bytes} bytes of payload), answered {arp} ARP requests");
}

fn parse_ip(text: &str) -> [u8; 4] {
    let mut ip = [0u8; 4];
    for (byte, part) in ip.iter_mut().zip(text.split('.')) {
        *byte = part.parse().unwrap_or(0);
    }
    ip
}

/// An ARP request for `ip` becomes the reply from `mac`, in place.
fn arp_reply(f: &mut [u8], mac: [u8; 6], ip: [u8; 4]) {
    let (asker_mac, asker_ip) =
        (<[u8; 6]>::try_from(&f[22..28]).unwrap_or_default(), [f[28], f[29], f[30], f[31]]);
    f[0..6].copy_from_slice(&asker_mac);
    f[6..12].copy_from_slice(&mac);
    f[20..22].copy_from_slice(&[0, 2]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip);
    f[32..38].copy_from_slice(&asker_mac);
    f[38..42].copy_from_slice(&asker_ip);
}

/// The frame's length if it is an IPv4 UDP datagram (no IP options) to `ip`.
fn udp_to(f: &[u8], ip: [u8; 4]) -> Option<usize> {
    if f.len() < 42 || f[12..14] != ETH_IPV4 || f[14] != 0x45 || f[23] != IP_UDP || f[30..34] != ip {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    (total >= 28 && 14 + total <= f.len()).then_some(14 + total)
}

/// Swaps the frame's Ethernet, IP and UDP sources and destinations (the IP checksum does not
/// change: its sum is the same) and clears the UDP checksum (optional in IPv4).
fn turn_around(f: &mut [u8], mac: [u8; 6]) {
    f.copy_within(6..12, 0);
    f[6..12].copy_from_slice(&mac);
    for (a, b, len) in [(26, 30, 4), (34, 36, 2)] {
        for i in 0..len {
            f.swap(a + i, b + i);
        }
    }
    f[40..42].fill(0);
}
