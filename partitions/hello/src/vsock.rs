//! `role=vsock-echo port=P`: a stream server on the partition's vsock link (docs/virtio.md)
//! that sends back everything each connection sends, until the first connection closes; then it
//! prints what it echoed and exits.

use tantalum_guest::dt::bootarg;
use tantalum_guest::println;
use tantalum_guest::vsock::{Event, Vsock};

pub fn echo() {
    let port: u32 = bootarg("port").and_then(|p| p.parse().ok()).unwrap_or(1234);
    let mut vsock = match Vsock::open() {
        Ok(v) => v,
        Err(e) => return println!("vsock-echo: no virtio-vsock device: {e:?}"),
    };
    vsock.listen(port);
    println!("vsock-echo: CID {} listening on port {port}", vsock.cid());
    let (mut connections, mut pieces, mut bytes) = (0u64, 0u64, 0u64);
    let mut buf = [0u8; 2048];
    loop {
        match vsock.poll(&mut buf) {
            None => core::hint::spin_loop(),
            Some(Event::Connected(_)) => connections += 1,
            Some(Event::Data(c, n)) => {
                let mut sent = 0;
                while sent < n {
                    match vsock.send(c, &buf[sent..n]) {
                        Ok(0) => {
                            // Out of credit: take the peer's update (data from it cannot
                            // come meanwhile: it waits for this echo).
                            let mut scratch = [0u8; 2048];
                            if let Some(other) = vsock.poll(&mut scratch) {
                                println!("vsock-echo: unexpected while waiting for credit: {other:?}");
                            }
                        }
                        Ok(k) => sent += k,
                        Err(e) => {
                            println!("vsock-echo: send failed: {e:?}");
                            break;
                        }
                    }
                }
                pieces += 1;
                bytes += n as u64;
            }
            Some(Event::Closed(_)) => break,
        }
    }
    println!("vsock-echo: echoed {bytes} bytes in {pieces} pieces on {connections} connection(s)");
}
