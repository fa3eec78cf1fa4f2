//! The relay in-process on loopback with the real client (`net::relay`) and
//! the real channel: data crosses byte for byte, tampering is caught by the
//! channel, strangers are never spliced, caps and expiry hold.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::time::Duration;

use channel::{ChannelConfig, ChannelError, FolderCredentials, Violation};
use keys::{FolderId, FolderKey, PeerId, RwSecret};
use net::relay::{self as client, RelayError};
use relay::relay_proto::{
    ClientMessage, ErrorCode, FolderTag, MessageReader, PREAMBLE, PairingToken, RelayMessage,
};
use relay::{Server, ServerConfig, StatsHandle};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

struct Running {
    addr: SocketAddr,
    stats: StatsHandle,
    _stop: oneshot::Sender<()>,
}

async fn start(config: ServerConfig) -> Running {
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stats,
        _stop: stop,
    }
}

/// Loopback is one source: lift the per-source caps so totals are tested.
fn loopback_config() -> ServerConfig {
    let mut c = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    c.relay.max_controls_per_source = 10_000;
    c.relay.max_pending_per_source = 10_000;
    c.relay.max_spliced_per_source = 10_000;
    c.relay.max_fresh_per_source = 10_000;
    c
}

struct Folder {
    id: FolderId,
    creds: FolderCredentials,
}

fn folder() -> Folder {
    let key = FolderKey::ReadWrite(RwSecret::generate().unwrap());
    Folder {
        id: key.folder_id(),
        creds: FolderCredentials::new(&key),
    }
}

fn peer(n: u8) -> PeerId {
    PeerId([n; 32])
}

/// A raw protocol client, for what the real client never does.
struct Raw {
    stream: TcpStream,
    reader: MessageReader<RelayMessage>,
}

impl Raw {
    async fn open(addr: SocketAddr) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&PREAMBLE).await.unwrap();
        Self {
            stream,
            reader: MessageReader::new(),
        }
    }

    async fn send(&mut self, m: ClientMessage) {
        self.stream.write_all(&m.to_bytes()).await.unwrap();
    }

    /// The next message, or None at end of stream.
    async fn recv(&mut self) -> Option<RelayMessage> {
        loop {
            let n = self.stream.read(self.reader.unfilled()).await.ok()?;
            match self.reader.commit(n) {
                Some(m) => return m.ok(),
                None if n == 0 => return None,
                None => {}
            }
        }
    }
}

async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    s: channel::SecureStream<S>,
    send: Vec<u8>,
    expect: usize,
) -> Vec<u8> {
    // Both sides write a lot at once, so each reads while it writes.
    let (mut r, mut w) = tokio::io::split(s);
    let write = async move {
        w.write_all(&send).await.unwrap();
        w.flush().await.unwrap();
        w
    };
    let read = async move {
        let mut got = vec![0u8; expect];
        r.read_exact(&mut got).await.unwrap();
        got
    };
    let (_w, got) = tokio::join!(write, read);
    got
}

#[tokio::test]
async fn channel_runs_end_to_end_through_the_relay() {
    let relay = start(loopback_config()).await;
    let f = folder();
    let (p, q) = (peer(1), peer(2));
    let mut reg = client::register(relay.addr, f.id, p).await.unwrap();
    let listed = client::lookup(relay.addr, f.id).await.unwrap();
    assert_eq!(listed, [p]);
    // Another folder's tag lists nobody.
    assert!(
        client::lookup(relay.addr, FolderId([9; 20]))
            .await
            .unwrap()
            .is_empty()
    );

    let (addr, id, creds) = (relay.addr, f.id, f.creds.clone());
    let dial = tokio::spawn(async move {
        let s = client::connect(addr, id, q, p, T).await.unwrap();
        channel::establish(s, &ChannelConfig::new(q, creds))
            .await
            .unwrap()
    });
    let (s, from) = timeout(T, reg.next()).await.unwrap().unwrap();
    assert_eq!(from, q);
    let config = ChannelConfig::new(p, f.creds.clone());
    let (accepted, dialed) = tokio::join!(channel::establish(s, &config), dial);
    let (accepted, dialed) = (accepted.unwrap(), dialed.unwrap());
    assert_eq!(accepted.session().info().peer_id, q);
    assert_eq!(relay.stats.get().pairs, 1);

    let a: Vec<u8> = (0..600_000u32).map(|i| (i * 7 + 3) as u8).collect();
    let b: Vec<u8> = (0..400_000u32).map(|i| (i * 13 + 1) as u8).collect();
    let (from_q, from_p) = tokio::join!(
        pump(accepted, b.clone(), a.len()),
        pump(dialed, a.clone(), b.len())
    );
    assert_eq!(from_q, a);
    assert_eq!(from_p, b);
}

/// A relay that flips one byte of Q's ciphertext after the splice: the
/// channel refuses the record instead of releasing altered plaintext.
#[tokio::test]
async fn tampering_relay_is_caught_by_the_channel() {
    let relay = start(loopback_config()).await;
    // A proxy in front of the relay for Q: forwards both ways, flips the
    // byte at offset 5000 of what Q sends (well past the handshake).
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let upstream = relay.addr;
    tokio::spawn(async move {
        let (q_side, _) = proxy.accept().await.unwrap();
        let r_side = TcpStream::connect(upstream).await.unwrap();
        let (mut qr, mut qw) = q_side.into_split();
        let (mut rr, mut rw) = r_side.into_split();
        let up = async move {
            let (mut buf, mut seen) = (vec![0u8; 4096], 0usize);
            loop {
                let n = qr.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                if (seen..seen + n).contains(&5000) {
                    buf[5000 - seen] ^= 0x01;
                }
                seen += n;
                if rw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        let down = async move {
            let _ = tokio::io::copy(&mut rr, &mut qw).await;
        };
        tokio::join!(up, down);
    });

    let f = folder();
    let (p, q) = (peer(1), peer(2));
    let mut reg = client::register(relay.addr, f.id, p).await.unwrap();
    let creds = f.creds.clone();
    let dial = tokio::spawn(async move {
        let s = client::connect(proxy_addr, f.id, q, p, T).await.unwrap();
        let mut s = channel::establish(s, &ChannelConfig::new(q, creds))
            .await
            .unwrap();
        // Enough to pass offset 5000; the write itself may fail once P
        // gives up.
        let _ = s.write_all(&[0x55; 20_000]).await;
        let _ = s.flush().await;
        s
    });
    let (s, _) = timeout(T, reg.next()).await.unwrap().unwrap();
    let mut accepted = channel::establish(s, &ChannelConfig::new(p, f.creds.clone()))
        .await
        .unwrap();
    let mut got = Vec::new();
    let err = timeout(T, async {
        let mut buf = [0u8; 4096];
        loop {
            match accepted.read(&mut buf).await {
                Ok(0) => panic!("clean end after tampering"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return e,
            }
        }
    })
    .await
    .unwrap();
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<ChannelError>())
        .unwrap_or_else(|| panic!("not a channel error: {err:?}"));
    assert!(
        matches!(inner, ChannelError::Peer(Violation::BadTag)),
        "{inner:?}"
    );
    assert!(got.iter().all(|&b| b == 0x55), "altered plaintext released");
    assert!(got.len() < 5000);
    let _ = dial.await;
}

/// Someone who does not know the folder id cannot make the token: P ignores
/// the invitation and Q's connect fails with NotAccepted, never spliced.
#[tokio::test]
async fn stranger_with_a_wrong_token_is_never_spliced() {
    let mut config = loopback_config();
    config.relay.invite_timeout = Duration::from_secs(1);
    let relay = start(config).await;
    let f = folder();
    let (p, stranger) = (peer(1), peer(3));
    let mut reg = client::register(relay.addr, f.id, p).await.unwrap();
    let mut raw = Raw::open(relay.addr).await;
    raw.send(ClientMessage::Connect {
        tag: FolderTag::of(&f.id),
        target: p,
        from: stranger,
        token: PairingToken::of(&FolderId([0; 20]), &p, &stranger),
    })
    .await;
    assert_eq!(
        timeout(T, raw.recv()).await.unwrap(),
        Some(RelayMessage::Error(ErrorCode::NotAccepted))
    );
    assert_eq!(raw.recv().await, None, "closed after the error");
    assert!(
        timeout(Duration::from_millis(300), reg.next())
            .await
            .is_err(),
        "P accepted a stranger"
    );
    let s = relay.stats.get();
    assert_eq!((s.spliced, s.pending, s.expired), (0, 0, 1));

    // The real client names the failure.
    let other = folder();
    let err = client::connect(relay.addr, other.id, stranger, p, T)
        .await
        .unwrap_err();
    assert!(matches!(err, RelayError::UnknownPeer), "{err}");
}

#[tokio::test]
async fn connect_to_a_peer_that_never_accepts_fails_clearly() {
    let mut config = loopback_config();
    config.relay.invite_timeout = Duration::from_secs(1);
    let relay = start(config).await;
    let f = folder();
    let p = peer(1);
    // A registration that ignores invitations.
    let mut raw = Raw::open(relay.addr).await;
    raw.send(ClientMessage::Register {
        tag: FolderTag::of(&f.id),
        peer: p,
    })
    .await;
    assert_eq!(raw.recv().await, Some(RelayMessage::Registered));
    let err = client::connect(relay.addr, f.id, peer(2), p, T)
        .await
        .unwrap_err();
    assert!(matches!(err, RelayError::NotAccepted), "{err}");
    assert!(err.to_string().contains("did not accept"), "{err}");
}

#[tokio::test]
async fn control_connections_beyond_the_cap_are_refused() {
    let mut config = loopback_config();
    config.relay.max_controls = 20;
    config.relay.max_fresh = 16;
    let relay = start(config).await;
    let tag = FolderTag::of(&FolderId([1; 20]));
    let mut kept = Vec::new();
    let (mut ok, mut full) = (0, 0);
    for i in 0..50u8 {
        let mut raw = Raw::open(relay.addr).await;
        raw.send(ClientMessage::Register { tag, peer: peer(i) })
            .await;
        match raw.recv().await {
            Some(RelayMessage::Registered) => ok += 1,
            Some(RelayMessage::Error(ErrorCode::Full)) => full += 1,
            other => panic!("{other:?}"),
        }
        kept.push(raw);
    }
    assert_eq!((ok, full), (20, 30));
    assert_eq!(relay.stats.get().controls, 20);
    // Idle connections that never say anything: at most 16 are kept, the
    // rest are answered Full at once.
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let mut raw = Raw::open(relay.addr).await;
        if let Ok(Some(RelayMessage::Error(ErrorCode::Full))) =
            timeout(Duration::from_millis(100), raw.recv()).await
        {
            refused += 1;
        }
        idle.push(raw);
    }
    assert_eq!(refused, 60 - 16);
    let s = relay.stats.get();
    assert_eq!((s.fresh, s.controls), (16, 20));
    // A lookup is a newcomer too: refused, and named so.
    let err = client::lookup(relay.addr, FolderId([1; 20]))
        .await
        .unwrap_err();
    assert!(matches!(err, RelayError::Full), "{err}");
    assert_eq!(err.to_string(), "relay refused: full");
    // Once the idle ones leave, the registered peers are served again.
    drop(idle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(relay.stats.get().fresh, 0);
    let listed = client::lookup(relay.addr, FolderId([1; 20])).await.unwrap();
    assert_eq!(listed.len(), 20);
}

#[tokio::test]
async fn pending_invitations_are_capped_and_expire() {
    let mut config = loopback_config();
    config.relay.max_pending = 8;
    config.relay.invite_timeout = Duration::from_secs(1);
    let relay = start(config).await;
    let f = folder();
    let p = peer(1);
    let mut control = Raw::open(relay.addr).await;
    control
        .send(ClientMessage::Register {
            tag: FolderTag::of(&f.id),
            peer: p,
        })
        .await;
    assert_eq!(control.recv().await, Some(RelayMessage::Registered));
    let mut dialers = Vec::new();
    for i in 0..12u8 {
        let mut raw = Raw::open(relay.addr).await;
        raw.send(ClientMessage::Connect {
            tag: FolderTag::of(&f.id),
            target: p,
            from: peer(10 + i),
            token: PairingToken([0; 32]),
        })
        .await;
        dialers.push(raw);
    }
    let mut invites = 0;
    while invites < 8 {
        match timeout(T, control.recv()).await.unwrap() {
            Some(RelayMessage::Invite { .. }) => invites += 1,
            other => panic!("{other:?}"),
        }
    }
    let mut answers = Vec::new();
    for d in &mut dialers {
        answers.push(timeout(T, d.recv()).await.unwrap());
    }
    let full = answers
        .iter()
        .filter(|a| **a == Some(RelayMessage::Error(ErrorCode::Full)))
        .count();
    let expired = answers
        .iter()
        .filter(|a| **a == Some(RelayMessage::Error(ErrorCode::NotAccepted)))
        .count();
    assert_eq!((full, expired), (4, 8));
    let s = relay.stats.get();
    assert_eq!((s.pending, s.expired), (0, 8));
}

#[tokio::test]
async fn idle_splices_are_closed_and_the_rate_is_capped() {
    let mut config = loopback_config();
    config.idle_timeout = Duration::from_secs(1);
    config.rate_limit = 200_000;
    let relay = start(config).await;
    let f = folder();
    let (p, q) = (peer(1), peer(2));
    let mut reg = client::register(relay.addr, f.id, p).await.unwrap();
    let mut dialed = client::connect(relay.addr, f.id, q, p, T).await.unwrap();
    let (mut accepted, _) = timeout(T, reg.next()).await.unwrap().unwrap();

    // 600 kB at 200 kB/s with a 200 kB burst: at least 2 s.
    let start = std::time::Instant::now();
    let writer = tokio::spawn(async move {
        dialed.write_all(&vec![7u8; 600_000]).await.unwrap();
        dialed
    });
    let mut buf = vec![0u8; 600_000];
    accepted.read_exact(&mut buf).await.unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert!(buf.iter().all(|&b| b == 7));
    let _dialed = writer.await.unwrap();

    // Then nothing moves: the relay closes both within about a second.
    let mut one = [0u8; 1];
    let end = timeout(Duration::from_secs(5), accepted.read(&mut one))
        .await
        .expect("idle splice not closed");
    assert!(matches!(end, Ok(0) | Err(_)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(relay.stats.get().pairs, 0);
}
