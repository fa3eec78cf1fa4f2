use std::time::Duration;

use keys::{Access, FolderKey};

use super::*;
use crate::{Connection, FailureKind, NetManager};

#[tokio::test]
async fn known_host_connects_once_with_access_levels() {
    let key = rw_key();
    let ro = FolderKey::ReadOnly(key.ro_key().unwrap());
    let (pa, pb) = peer_ids();
    let b = NetManager::bind(loopback_config(), pb).unwrap();
    let mut a = NetManager::bind(loopback_config(), pa).unwrap();
    a.add_discovery(known(&[b.local_addr()]));
    let (hb, mut eb) = b.start(vec![creds(&ro)]);
    let (ha, mut ea) = a.start(vec![creds(&key)]);

    let mut ca = next_connected(&mut ea).await;
    let mut cb = next_connected(&mut eb).await;
    assert_eq!((ca.peer, cb.peer), (pb, pa));
    assert_eq!(ca.folder, key.folder_id());
    assert_eq!(cb.folder, key.folder_id());
    assert_eq!(ca.access, Access::ReadOnly, "B holds the read-only key");
    assert_eq!(cb.access, Access::ReadWrite, "A holds the read-write key");
    assert!(ca.dialed && !cb.dialed);
    assert_eq!((ca.source, cb.source), ("known", "incoming"));
    assert_eq!(ca.remote, hb.local_addr());
    assert!(ca.replaces.is_none() && cb.replaces.is_none());

    pass(&mut ca, &mut cb, b"ping from a").await;
    pass(&mut cb, &mut ca, b"pong from b").await;

    let sa = wait_status(&ha, "idle", idle).await;
    let sb = wait_status(&hb, "idle", idle).await;
    assert!(
        ea.try_recv().is_none() && eb.try_recv().is_none(),
        "exactly one connection"
    );
    assert_eq!(sa.connections.len(), 1);
    assert_eq!(sb.connections.len(), 1);
    assert_eq!(sa.discovery, ["known"]);
    assert!(sb.discovery.is_empty(), "no LAN in loopback tests");
    assert_eq!(sa.connections[0].id, ca.id);
    let cand = &sa.candidates[0];
    assert_eq!(
        (cand.addr, cand.source, cand.peer, cand.connected),
        (hb.local_addr(), "known", Some(pb), true)
    );
    ha.shutdown();
    hb.shutdown();
}

/// Collects events until the manager is idle; returns the surviving connection.
async fn settle(handle: &NetHandle, events: &mut NetEvents, current: &mut Option<Connection>) {
    for _ in 0..3000 {
        while let Some(crate::NetEvent::Connected(c)) = events.try_recv() {
            if let Some(old) = c.replaces {
                assert_eq!(
                    current.as_ref().map(|x| x.id),
                    Some(old),
                    "replaces the one we hold"
                );
            }
            *current = Some(c);
        }
        let s = handle.status().await.unwrap();
        // Our own dial is done (it found the peer), none is in flight, and the
        // peer's dial, if it reached us, has been reported.
        let dialed = s.candidates.len() == 1 && s.candidates[0].peer.is_some();
        if idle(&s) && dialed && current.is_some() && s.connections.len() == 1 {
            assert_eq!(s.connections[0].id, current.as_ref().unwrap().id);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never settled: {:#?}", handle.status().await);
}

#[tokio::test]
async fn simultaneous_dials_keep_one_agreed_connection() {
    let key = rw_key();
    let folder = creds(&key);
    for round in 0..4 {
        let (pa, pb) = peer_ids();
        let mut a = NetManager::bind(loopback_config(), pa).unwrap();
        let mut b = NetManager::bind(loopback_config(), pb).unwrap();
        a.add_discovery(known(&[b.local_addr()]));
        b.add_discovery(known(&[a.local_addr()]));
        let (ha, mut ea) = a.start(vec![folder.clone()]);
        let (hb, mut eb) = b.start(vec![folder.clone()]);

        let (mut ca, mut cb) = (None, None);
        // Twice: a side that settled first may still see the other's results.
        for _ in 0..2 {
            settle(&ha, &mut ea, &mut ca).await;
            settle(&hb, &mut eb, &mut cb).await;
        }
        let (mut ca, mut cb) = (ca.unwrap(), cb.unwrap());
        let ta = ca.stream.session().info().transcript_hash;
        let tb = cb.stream.session().info().transcript_hash;
        assert_eq!(ta, tb, "round {round}: both sides keep the same channel");
        assert_ne!(ca.dialed, cb.dialed);
        // Both dials succeeded, so the survivor is the one the lower id dialed.
        let lower_dialed = if ca.dialed { pa < pb } else { pb < pa };
        assert!(
            lower_dialed,
            "round {round}: the lower peer id's dial survives"
        );
        pass(&mut ca, &mut cb, b"after the race").await;
        pass(&mut cb, &mut ca, b"both ways").await;
        ha.shutdown();
        hb.shutdown();
    }
}

#[tokio::test]
async fn other_folder_key_gets_no_connection_and_is_backed_off() {
    let (pa, pb) = peer_ids();
    let b = NetManager::bind(loopback_config(), pb).unwrap();
    let mut a = NetManager::bind(loopback_config(), pa).unwrap();
    a.add_discovery(known(&[b.local_addr()]));
    let (hb, mut eb) = b.start(vec![creds(&rw_key())]);
    let (ha, mut ea) = a.start(vec![creds(&rw_key())]);

    let s = wait_status(&ha, "a failed dial", |s| {
        idle(s) && s.candidates.first().is_some_and(|c| c.failures >= 1)
    })
    .await;
    let c = &s.candidates[0];
    assert_eq!(c.last_failure, Some(FailureKind::Rejected), "{c:#?}");
    assert_eq!(c.failures, 1, "not hammered: {c:#?}");
    // 30 s minimum, jittered by at most 25 %.
    assert!(
        c.backoff.unwrap() >= Duration::from_millis(22_500),
        "{c:#?}"
    );
    assert!(c.retry_in.unwrap() >= Duration::from_secs(10), "{c:#?}");
    assert!(c.last_error.is_some() && !c.connected);
    wait_status(&hb, "idle", idle).await;
    assert!(ea.try_recv().is_none() && eb.try_recv().is_none());
    assert!(s.connections.is_empty());
    ha.shutdown();
    hb.shutdown();
}

#[tokio::test]
async fn dropped_connection_is_reestablished_after_disconnected() {
    let key = rw_key();
    let (pa, pb) = peer_ids();
    let b = NetManager::bind(loopback_config(), pb).unwrap();
    let mut a = NetManager::bind(loopback_config(), pa).unwrap();
    a.add_discovery(known(&[b.local_addr()]));
    let (hb, mut eb) = b.start(vec![creds(&key)]);
    let (ha, mut ea) = a.start(vec![creds(&key)]);

    let ca = next_connected(&mut ea).await;
    let mut cb = next_connected(&mut eb).await;
    let (first_a, first_b) = (ca.id, cb.id);
    drop(ca);
    ha.disconnected(first_a).await;
    // B's daemon sees the stream end and reports it.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        LIMIT,
        tokio::io::AsyncReadExt::read(&mut cb.stream, &mut buf),
    )
    .await;
    assert!(matches!(read, Ok(Err(_)) | Ok(Ok(0))), "{read:?}");
    drop(cb);
    hb.disconnected(first_b).await;
    // A stale report is ignored.
    hb.disconnected(first_b).await;

    let mut ca = next_connected(&mut ea).await;
    let mut cb = next_connected(&mut eb).await;
    assert_ne!(ca.id, first_a);
    assert_ne!(cb.id, first_b);
    assert!(ca.replaces.is_none() && cb.replaces.is_none());
    pass(&mut ca, &mut cb, b"again").await;
    pass(&mut cb, &mut ca, b"and back").await;
    ha.shutdown();
    hb.shutdown();
}

#[tokio::test]
async fn never_dials_its_own_address_twice() {
    let key = rw_key();
    let (pa, _) = peer_ids();
    let mut a = NetManager::bind(loopback_config(), pa).unwrap();
    let own = a.local_addr();
    a.add_discovery(known(&[own]));
    let (ha, mut ea) = a.start(vec![creds(&key)]);
    let s = wait_status(&ha, "self detected", |s| {
        idle(s) && s.candidates.first().is_some_and(|c| c.is_self)
    })
    .await;
    let c = &s.candidates[0];
    assert_eq!(
        (c.failures, c.last_failure, c.retry_in),
        (1, Some(FailureKind::ConnectedToSelf), None)
    );
    assert!(ea.try_recv().is_none());
    ha.shutdown();
}

#[test]
fn bad_known_host_is_bad_input_naming_it() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = NetConfig {
            known_hosts: vec!["example.org".into()],
            ..loopback_config()
        };
        let err = NetManager::bind(config, peer_ids().0).unwrap_err();
        assert!(err.is_bad_input());
        assert!(err.to_string().contains("example.org"), "{err}");
    });
}

/// A discovery source that yields one address when the test opens the gate.
struct Gate {
    addr: std::net::SocketAddr,
    open: tokio::sync::watch::Receiver<bool>,
}

impl crate::Discovery for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }

    fn subscribe(&self, folder: keys::FolderId) -> crate::Candidates {
        let (tx, rx) = crate::Candidates::channel();
        let (addr, mut open) = (self.addr, self.open.clone());
        tokio::spawn(async move {
            if open.wait_for(|o| *o).await.is_ok() {
                let c = crate::Candidate {
                    folder,
                    addr,
                    peer: None,
                    source: "gate",
                    lan: false,
                };
                let _ = tx.send(c).await;
                tx.closed().await;
            }
        });
        rx
    }
}

#[tokio::test]
async fn later_better_channel_replaces_the_first_on_both_sides() {
    let key = rw_key();
    let (x, y) = peer_ids();
    let (low, high) = if x < y { (x, y) } else { (y, x) };
    let mut l = NetManager::bind(loopback_config(), low).unwrap();
    let mut h = NetManager::bind(loopback_config(), high).unwrap();
    let (open, gate) = tokio::sync::watch::channel(false);
    l.add_discovery(Box::new(Gate {
        addr: h.local_addr(),
        open: gate,
    }));
    h.add_discovery(known(&[l.local_addr()]));
    let (hl, mut el) = l.start(vec![creds(&key)]);
    let (hh, mut eh) = h.start(vec![creds(&key)]);

    // First the higher id dials: the only channel, so both keep it.
    let mut first_l = next_connected(&mut el).await;
    let first_h = next_connected(&mut eh).await;
    assert!(first_h.dialed && !first_l.dialed);
    // Then the lower id dials too: its channel ranks first on both sides.
    open.send_replace(true);
    let mut second_l = next_connected(&mut el).await;
    let mut second_h = next_connected(&mut eh).await;
    assert_eq!(second_l.replaces, Some(first_l.id));
    assert_eq!(second_h.replaces, Some(first_h.id));
    assert!(second_l.dialed && !second_h.dialed);
    assert_eq!(
        second_l.stream.session().info().transcript_hash,
        second_h.stream.session().info().transcript_hash
    );
    // The daemon drops the replaced stream; the peer sees it end.
    drop(first_h);
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(
        LIMIT,
        tokio::io::AsyncReadExt::read(&mut first_l.stream, &mut buf),
    )
    .await;
    assert!(matches!(read, Ok(Err(_)) | Ok(Ok(0))), "{read:?}");
    // Reporting a replaced channel changes nothing.
    hl.disconnected(first_l.id).await;
    pass(&mut second_l, &mut second_h, b"the survivor").await;
    pass(&mut second_h, &mut second_l, b"works").await;
    let s = wait_status(&hl, "idle", idle).await;
    assert_eq!(s.connections.len(), 1);
    assert_eq!(s.connections[0].id, second_l.id);
    hl.shutdown();
    hh.shutdown();
}

#[tokio::test]
async fn shutdown_stops_listener_and_events() {
    let key = rw_key();
    let a = NetManager::bind(loopback_config(), peer_ids().0).unwrap();
    let (ha, mut ea) = a.start(vec![creds(&key)]);
    let addr = ha.local_addr();
    ha.shutdown();
    // The event stream ends and the handle reports the manager stopped.
    assert!(
        tokio::time::timeout(LIMIT, ea.recv())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(ha.status().await, Err(crate::NetError::Stopped)));
    // The listener is gone (bounded retries: its task is aborted asynchronously).
    let mut refused = false;
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "listener still accepting after shutdown");
}

#[tokio::test]
async fn dropping_every_handle_stops_the_manager() {
    let a = NetManager::bind(loopback_config(), peer_ids().0).unwrap();
    let (ha, mut ea) = a.start(vec![creds(&rw_key())]);
    let copy = ha.clone();
    drop(ha);
    assert!(copy.status().await.is_ok(), "a clone keeps it running");
    drop(copy);
    assert!(
        tokio::time::timeout(LIMIT, ea.recv())
            .await
            .unwrap()
            .is_none()
    );
}
