use std::time::Duration;

use keys::{Access, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::util::*;
use crate::{ChannelConfig, ChannelError, establish};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 10) as u8)
        .collect()
}

async fn pair(
    ca: ChannelConfig,
    cb: ChannelConfig,
) -> (
    Result<crate::SecureStream<TcpStream>, ChannelError>,
    Result<crate::SecureStream<TcpStream>, ChannelError>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        establish(s, &cb).await
    });
    let dialed = establish(TcpStream::connect(addr).await.unwrap(), &ca).await;
    (dialed, accept.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mebibytes_both_ways_over_loopback_tcp() {
    const LEN: usize = 3 * 1024 * 1024 + 12345;
    let (x, y) = pair(config(1, Access::ReadWrite), config(2, Access::Encrypted)).await;
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.peer_access(), Access::Encrypted);
    assert_eq!(y.peer_access(), Access::Encrypted);
    assert_eq!(y.session().info().peer_access.claimed, Access::ReadWrite);
    let run = |s: crate::SecureStream<TcpStream>, send: Vec<u8>| async move {
        let (mut r, mut w) = tokio::io::split(s);
        let writer = tokio::spawn(async move {
            for chunk in send.chunks(100_000) {
                w.write_all(chunk).await.unwrap();
            }
            w.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        got
    };
    let (gx, gy) = tokio::join!(run(x, pattern(LEN, 1)), run(y, pattern(LEN, 2)));
    assert!(gx == pattern(LEN, 2), "x received wrong bytes");
    assert!(gy == pattern(LEN, 1), "y received wrong bytes");
}

#[tokio::test]
async fn wrong_secret_over_tcp_fails_on_both_sides() {
    let impostor = ChannelConfig::new(
        PeerId([2; 32]),
        creds(Access::ReadWrite).with_srp_password([1; 32]),
    );
    let (x, y) = pair(config(1, Access::ReadWrite), impostor).await;
    assert!(matches!(x, Err(ChannelError::AuthFailed)), "{x:?}");
    assert!(matches!(y, Err(ChannelError::AuthFailed)), "{y:?}");
}

#[tokio::test]
async fn silent_peer_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    let cfg = config(1, Access::ReadWrite).with_handshake_timeout(Duration::from_millis(200));
    let r = establish(TcpStream::connect(addr).await.unwrap(), &cfg).await;
    assert!(matches!(r, Err(ChannelError::Timeout)), "{r:?}");
    hold.abort();
}

#[tokio::test]
async fn cut_connection_reads_as_truncated() {
    let (x, y) = pair(config(1, Access::ReadOnly), config(2, Access::ReadOnly)).await;
    let (mut x, y) = (x.unwrap(), y.unwrap());
    x.write_all(b"unfinished").await.unwrap();
    x.flush().await.unwrap();
    // Drop without shutdown: no authenticated close.
    drop(x);
    let mut y = y;
    let mut got = Vec::new();
    let err = y.read_to_end(&mut got).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    let inner = err
        .into_inner()
        .unwrap()
        .downcast::<ChannelError>()
        .unwrap();
    assert!(matches!(*inner, ChannelError::Truncated));
}
