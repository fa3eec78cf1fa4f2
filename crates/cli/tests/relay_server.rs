//! `swarmsync relay` as a process on loopback: garbage never kills it, it
//! still registers and looks up afterwards, its cap flags bite, SIGTERM is a
//! clean exit and an address in use is exit 1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::server::ServerProcess;

use keys::PeerId;
use relay_proto::{ClientMessage, ErrorCode, FolderTag, MessageReader, PREAMBLE, RelayMessage};

/// A blocking protocol client.
struct Client {
    stream: TcpStream,
    reader: MessageReader<RelayMessage>,
}

impl Client {
    fn open(addr: SocketAddr) -> Self {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(&PREAMBLE).unwrap();
        Self {
            stream,
            reader: MessageReader::new(),
        }
    }

    fn send(&mut self, m: ClientMessage) {
        self.stream.write_all(&m.to_bytes()).unwrap();
    }

    fn recv(&mut self) -> Option<RelayMessage> {
        loop {
            let n = self.stream.read(self.reader.unfilled()).ok()?;
            match self.reader.commit(n) {
                Some(m) => return m.ok(),
                None if n == 0 => return None,
                None => {}
            }
        }
    }
}

fn tag() -> FolderTag {
    FolderTag([0x5a; 32])
}

/// What a garbage connection sends, from a seed.
fn garbage(seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let len = (next() % 2000) as usize;
    let mut random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
    match seed % 6 {
        // Not the protocol at all.
        0 => b"GET / HTTP/1.1\r\nHost: relay\r\n\r\n".to_vec(),
        // Noise.
        1 => random,
        // The right preamble, then noise.
        2 => {
            let mut v = PREAMBLE.to_vec();
            v.append(&mut random);
            v
        }
        // A header claiming a huge body.
        3 => {
            let mut v = PREAMBLE.to_vec();
            v.extend_from_slice(&[0x01, 0xff, 0xff]);
            v.append(&mut random);
            v
        }
        // Half a Register, then the connection ends.
        4 => {
            let mut v = PREAMBLE.to_vec();
            v.extend_from_slice(&[0x01, 0x00, 0x40, 1, 2, 3]);
            v
        }
        // Relay-direction messages sent by a client.
        _ => {
            let mut v = PREAMBLE.to_vec();
            RelayMessage::Spliced.write(&mut v);
            RelayMessage::Invite {
                from: PeerId([1; 32]),
                token: relay_proto::PairingToken([2; 32]),
                session: relay_proto::SessionId([3; 32]),
            }
            .write(&mut v);
            v
        }
    }
}

#[test]
fn garbage_never_kills_it_and_it_still_serves() {
    let mut relay = ServerProcess::start("relay", &[], &[]);
    let rss_before = relay.rss_kib();
    for seed in 0..300u32 {
        let mut s = TcpStream::connect(relay.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&garbage(seed));
        // Our end of the garbage; whatever it answers, it then closes.
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        if seed % 6 == 5 {
            // Answered as a protocol error, after the relay's preamble.
            let mut want = PREAMBLE.to_vec();
            RelayMessage::Error(ErrorCode::Protocol).write(&mut want);
            assert_eq!(sink, want);
        }
    }
    // Another version is told so.
    let mut s = TcpStream::connect(relay.addr).unwrap();
    s.write_all(b"SWRL\x02").unwrap();
    let mut sink = Vec::new();
    s.read_to_end(&mut sink).unwrap();
    let mut want = PREAMBLE.to_vec();
    RelayMessage::Error(ErrorCode::Version).write(&mut want);
    assert_eq!(sink, want);
    assert!(relay.is_running(), "{}", relay.log.lock().unwrap());

    // Still a relay: register, look up, ping.
    let mut control = Client::open(relay.addr);
    control.send(ClientMessage::Register {
        tag: tag(),
        peer: PeerId([7; 32]),
    });
    assert_eq!(control.recv(), Some(RelayMessage::Registered));
    let mut asker = Client::open(relay.addr);
    asker.send(ClientMessage::Lookup { tag: tag() });
    assert_eq!(
        asker.recv(),
        Some(RelayMessage::Peers(vec![PeerId([7; 32])]))
    );
    assert_eq!(asker.recv(), None, "a lookup connection is closed after");
    control.send(ClientMessage::Ping);
    assert_eq!(control.recv(), Some(RelayMessage::Pong));
    // 300 bad connections cost no lasting memory.
    let grown = relay.rss_kib().saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    relay.stop();
}

#[test]
fn cap_flags_bite() {
    let relay = ServerProcess::start("relay", &["--max-controls", "5"], &[]);
    let mut kept = Vec::new();
    let mut answers = Vec::new();
    for i in 0..8u8 {
        let mut c = Client::open(relay.addr);
        c.send(ClientMessage::Register {
            tag: tag(),
            peer: PeerId([i; 32]),
        });
        answers.push(c.recv());
        kept.push(c);
    }
    let ok = answers
        .iter()
        .filter(|a| **a == Some(RelayMessage::Registered))
        .count();
    let full = answers
        .iter()
        .filter(|a| **a == Some(RelayMessage::Error(ErrorCode::Full)))
        .count();
    assert_eq!((ok, full), (5, 3));
    relay.stop();
}

#[test]
fn address_in_use_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_swarmsync"))
        .args(["relay", "--listen", &addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("binding the relay"), "{stderr}");
}
