//! Tests of the manager over loopback, and of LAN discovery in network
//! namespaces the test creates.

mod dht;
mod manager;
mod netns;
mod portmap;

use std::net::SocketAddr;
use std::time::Duration;

use channel::FolderCredentials;
use keys::{FolderKey, PeerId, RwSecret};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Connection, KnownHosts, NetConfig, NetEvent, NetEvents, NetHandle, NetStatus};

/// Failure bound of every wait (never an assertion about speed).
pub(crate) const LIMIT: Duration = Duration::from_secs(60);
/// Poll period of the status waits.
const POLL: Duration = Duration::from_millis(20);

pub(crate) fn rw_key() -> FolderKey {
    FolderKey::ReadWrite(RwSecret::generate().unwrap())
}

pub(crate) fn creds(key: &FolderKey) -> FolderCredentials {
    FolderCredentials::new(key)
}

/// Loopback, no LAN, quick retries.
pub(crate) fn loopback_config() -> NetConfig {
    NetConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        lan: false,
        // Loopback only: never a public tracker or DHT router.
        tracker: false,
        dht: false,
        backoff_min: Duration::from_millis(50),
        reject_backoff_min: Duration::from_secs(30),
        backoff_max: Duration::from_secs(60),
        resolve_interval: Duration::from_secs(3600),
        ..NetConfig::default()
    }
}

pub(crate) fn known(addrs: &[SocketAddr]) -> Box<KnownHosts> {
    let values: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    Box::new(KnownHosts::parse(&values, Duration::from_secs(3600)).unwrap())
}

pub(crate) async fn next_connected(events: &mut NetEvents) -> Connection {
    match tokio::time::timeout(LIMIT, events.recv()).await {
        Ok(Some(NetEvent::Connected(c))) => c,
        Ok(None) => panic!("manager stopped"),
        Err(_) => panic!("no connection within {LIMIT:?}"),
    }
}

/// Polls `status` until `pred` holds (bounded by [`LIMIT`]).
pub(crate) async fn wait_status(
    handle: &NetHandle,
    what: &str,
    pred: impl Fn(&NetStatus) -> bool,
) -> NetStatus {
    let rounds = LIMIT.as_millis() / POLL.as_millis();
    let mut last = None;
    for _ in 0..rounds {
        let s = handle.status().await.unwrap();
        if pred(&s) {
            return s;
        }
        last = Some(s);
        tokio::time::sleep(POLL).await;
    }
    panic!("status never showed {what}: {last:#?}");
}

/// No dial and no handshake in flight.
pub(crate) fn idle(s: &NetStatus) -> bool {
    s.dialing == 0 && s.handshaking == 0
}

/// Sends `msg` on `a` and reads it on `b`.
pub(crate) async fn pass(a: &mut Connection, b: &mut Connection, msg: &[u8]) {
    a.stream.write_all(msg).await.unwrap();
    a.stream.flush().await.unwrap();
    let mut got = vec![0u8; msg.len()];
    tokio::time::timeout(LIMIT, b.stream.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, msg);
}

pub(crate) fn peer_ids() -> (PeerId, PeerId) {
    (PeerId::generate().unwrap(), PeerId::generate().unwrap())
}
