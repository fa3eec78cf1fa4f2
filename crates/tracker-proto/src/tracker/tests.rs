use std::time::Duration;

use super::*;
use crate::{Event, InfoHash, ScrapeRequest, ScrapeStats};

fn tracker(config: TrackerConfig) -> (Tracker, Instant) {
    let t0 = Instant::now();
    (Tracker::new(config, [9; 32], 1, t0).unwrap(), t0)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Sends `req` from `from`, returns everything the tracker sends back.
fn exchange(t: &mut Tracker, now: Instant, from: SocketAddr, req: &Request) -> Vec<Transmit> {
    let mut bytes = Vec::new();
    req.write(&mut bytes);
    t.handle_datagram(now, from, &bytes);
    std::iter::from_fn(|| t.poll_transmit()).collect()
}

fn only_response(out: &[Transmit], to: SocketAddr) -> Response {
    assert_eq!(out.len(), 1, "expected one datagram, got {out:?}");
    // Destinations are canonical (IPv4, not IPv4-mapped).
    let to = SocketAddr::new(to.ip().to_canonical(), to.port());
    assert_eq!(out[0].destination, to);
    Response::parse(&out[0].payload, Family::of(to)).unwrap()
}

fn connect(t: &mut Tracker, now: Instant, from: SocketAddr) -> u64 {
    let out = exchange(t, now, from, &Request::Connect { transaction_id: 1 });
    match only_response(&out, from) {
        Response::Connect {
            connection_id,
            transaction_id: 1,
        } => connection_id,
        other => panic!("{other:?}"),
    }
}

fn announce_req(connection_id: u64, hash: InfoHash, port: u16, event: Event) -> Request {
    Request::Announce(AnnounceRequest {
        connection_id,
        transaction_id: 2,
        info_hash: hash,
        peer_id: [0; 20],
        downloaded: 0,
        left: 1,
        uploaded: 0,
        event,
        ip: 0,
        key: 0,
        num_want: -1,
        port,
    })
}

fn announce(
    t: &mut Tracker,
    now: Instant,
    from: SocketAddr,
    id: u64,
    port: u16,
) -> AnnounceResponse {
    let out = exchange(
        t,
        now,
        from,
        &announce_req(id, [1; 20], port, Event::Started),
    );
    match only_response(&out, from) {
        Response::Announce(a) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn connect_announce_scrape() {
    let (mut t, t0) = tracker(TrackerConfig::default());
    let a = addr("10.0.0.1:5000");
    let b = addr("10.0.0.2:5000");
    let ida = connect(&mut t, t0, a);
    let idb = connect(&mut t, t0, b);
    assert!(announce(&mut t, t0, a, ida, 41544).peers.is_empty());
    let rb = announce(&mut t, t0, b, idb, 0);
    assert_eq!(rb.interval, 1800);
    assert_eq!(rb.peers.to_vec(), vec![addr("10.0.0.1:41544")]);
    assert_eq!(rb.leechers, 2);
    // Port 0 listed b at its source port.
    assert_eq!(announce(&mut t, t0, a, ida, 41544).peers.to_vec(), vec![b]);
    let out = exchange(
        &mut t,
        t0,
        a,
        &Request::Scrape(ScrapeRequest {
            connection_id: ida,
            transaction_id: 3,
            info_hashes: vec![[1; 20], [2; 20]],
        }),
    );
    let Response::Scrape {
        stats,
        transaction_id: 3,
    } = only_response(&out, a)
    else {
        panic!("not a scrape");
    };
    assert_eq!(
        stats,
        vec![
            ScrapeStats {
                seeders: 0,
                completed: 0,
                leechers: 2
            },
            ScrapeStats::default()
        ]
    );
    t.check_invariants();
}

#[test]
fn bad_or_expired_connection_ids_have_no_effect() {
    let (mut t, t0) = tracker(TrackerConfig::default());
    let a = addr("10.0.0.1:5000");
    let id = connect(&mut t, t0, a);
    // Someone else's id, a guessed one, and a's id after it expired.
    let spoofer = addr("10.0.0.66:5000");
    assert!(
        exchange(
            &mut t,
            t0,
            spoofer,
            &announce_req(id, [1; 20], 1, Event::Started)
        )
        .is_empty()
    );
    assert!(
        exchange(
            &mut t,
            t0,
            spoofer,
            &announce_req(12345, [1; 20], 1, Event::Started)
        )
        .is_empty()
    );
    let late = t0 + Duration::from_secs(120);
    assert!(
        exchange(
            &mut t,
            late,
            a,
            &announce_req(id, [1; 20], 1, Event::Started)
        )
        .is_empty()
    );
    assert_eq!(t.stats().peers, 0);
    assert_eq!(t.stats().dropped, 3);
    // Within its lifetime it works.
    let ok = exchange(
        &mut t,
        t0 + Duration::from_secs(59),
        a,
        &announce_req(id, [1; 20], 1, Event::Started),
    );
    assert_eq!(ok.len(), 1);
    assert_eq!(t.stats().peers, 1);
}

#[test]
fn address_answers_the_source() {
    let (mut t, t0) = tracker(TrackerConfig::default());
    for from in [
        addr("198.51.100.7:6000"),
        addr("[2001:db8::7]:6001"),
        addr("[::ffff:192.0.2.9]:7000"),
    ] {
        let id = connect(&mut t, t0, from);
        let out = exchange(
            &mut t,
            t0,
            from,
            &Request::Address {
                connection_id: id,
                transaction_id: 4,
            },
        );
        let canonical = SocketAddr::new(from.ip().to_canonical(), from.port());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].destination, canonical);
        assert_eq!(
            Response::parse(&out[0].payload, Family::of(canonical)).unwrap(),
            Response::Address {
                transaction_id: 4,
                address: canonical
            }
        );
    }
}

#[test]
fn dual_stack_ipv4_clients_get_ipv4_peers() {
    let (mut t, t0) = tracker(TrackerConfig::default());
    let a = addr("[::ffff:10.0.0.1]:5000");
    let b = addr("[::ffff:10.0.0.2]:5000");
    let ida = connect(&mut t, t0, a);
    let idb = connect(&mut t, t0, b);
    exchange(
        &mut t,
        t0,
        a,
        &announce_req(ida, [1; 20], 0, Event::Started),
    );
    let out = exchange(
        &mut t,
        t0,
        b,
        &announce_req(idb, [1; 20], 0, Event::Started),
    );
    let Ok(Response::Announce(r)) = Response::parse(&out[0].payload, Family::V4) else {
        panic!("not an IPv4 announce response");
    };
    assert_eq!(r.peers.to_vec(), vec![addr("10.0.0.1:5000")]);
}

#[test]
fn punch_notifies_the_target_at_its_source() {
    let (mut t, t0) = tracker(TrackerConfig::default());
    let a = addr("10.0.0.1:5000");
    let b = addr("10.0.0.2:5001");
    let ida = connect(&mut t, t0, a);
    let idb = connect(&mut t, t0, b);
    announce(&mut t, t0, b, idb, 41544);
    let req = Request::Punch(PunchRequest {
        connection_id: ida,
        transaction_id: 9,
        info_hash: [1; 20],
        target: addr("10.0.0.2:41544"),
    });
    let out = exchange(&mut t, t0, a, &req);
    assert_eq!(out.len(), 2);
    let notify = out.iter().find(|x| x.destination == b).unwrap();
    assert!(notify.payload.len() <= req.encoded_len());
    assert_eq!(
        Response::parse(&notify.payload, Family::V4).unwrap(),
        Response::PunchNotify {
            transaction_id: 0,
            info_hash: [1; 20],
            peer: a
        }
    );
    let answer = out.iter().find(|x| x.destination == a).unwrap();
    assert_eq!(
        Response::parse(&answer.payload, Family::V4).unwrap(),
        Response::Punch {
            transaction_id: 9,
            result: PunchResult::Notified(b)
        }
    );
}

#[test]
fn punch_refuses_unknown_targets_and_other_families() {
    let (mut t, t0) = tracker(TrackerConfig::default());
    let a = addr("10.0.0.1:5000");
    let b6 = addr("[2001:db8::2]:5001");
    let ida = connect(&mut t, t0, a);
    let idb = connect(&mut t, t0, b6);
    announce(&mut t, t0, b6, idb, 0);
    for (hash, target) in [([1; 20], addr("10.0.0.3:1")), ([2; 20], b6), ([1; 20], b6)] {
        let out = exchange(
            &mut t,
            t0,
            a,
            &Request::Punch(PunchRequest {
                connection_id: ida,
                transaction_id: 9,
                info_hash: hash,
                target,
            }),
        );
        assert_eq!(
            only_response(&out, a),
            Response::Punch {
                transaction_id: 9,
                result: PunchResult::UnknownTarget
            }
        );
    }
    assert_eq!(t.stats().notifies, 0);
}

#[test]
fn punches_are_rate_limited() {
    let (mut t, t0) = tracker(TrackerConfig::default());
    let a = addr("10.0.0.1:5000");
    let id = connect(&mut t, t0, a);
    let req = Request::Punch(PunchRequest {
        connection_id: id,
        transaction_id: 9,
        info_hash: [1; 20],
        target: addr("10.0.0.3:1"),
    });
    let answered = (0..50)
        .filter(|_| !exchange(&mut t, t0, a, &req).is_empty())
        .count();
    assert_eq!(answered, 5);
    assert_eq!(
        exchange(&mut t, t0 + Duration::from_secs(1), a, &req).len(),
        1
    );
}

#[test]
fn requests_are_rate_limited_per_source() {
    let (mut t, t0) = tracker(TrackerConfig::default());
    let a = addr("10.0.0.1:5000");
    let answered = (0..1000)
        .filter(|_| !exchange(&mut t, t0, a, &Request::Connect { transaction_id: 1 }).is_empty())
        .count();
    assert_eq!(answered, 100);
    assert_eq!(
        exchange(
            &mut t,
            t0,
            addr("10.0.0.2:5000"),
            &Request::Connect { transaction_id: 1 }
        )
        .len(),
        1
    );
}

#[test]
fn errors_only_for_proven_sources_with_bad_content() {
    let (mut t, t0) = tracker(TrackerConfig::default());
    let a = addr("10.0.0.1:5000");
    let id = connect(&mut t, t0, a);
    let mut bad_event = Vec::new();
    announce_req(id, [1; 20], 1, Event::Started).write(&mut bad_event);
    bad_event[83] = 7;
    t.handle_datagram(t0, a, &bad_event);
    let out: Vec<_> = std::iter::from_fn(|| t.poll_transmit()).collect();
    let Response::Error {
        transaction_id: 2,
        message,
    } = only_response(&out, a)
    else {
        panic!("not an error");
    };
    assert_eq!(message, "unknown event");
    assert!(out[0].payload.len() <= bad_event.len());
    // The same from a source that does not own the id: nothing.
    t.handle_datagram(t0, addr("10.0.0.2:5000"), &bad_event);
    // Garbage and truncated requests: nothing.
    t.handle_datagram(t0, a, &bad_event[..50]);
    t.handle_datagram(t0, a, b"GET / HTTP/1.1\r\n\r\n");
    t.handle_datagram(t0, a, &[0; 2000]);
    assert!(t.poll_transmit().is_none());
    // Unknown action with a valid id: an error.
    let mut unknown = Vec::new();
    unknown.extend_from_slice(&id.to_be_bytes());
    unknown.extend_from_slice(&0x5357_00ffu32.to_be_bytes());
    unknown.extend_from_slice(&77u32.to_be_bytes());
    t.handle_datagram(t0, a, &unknown);
    let out: Vec<_> = std::iter::from_fn(|| t.poll_transmit()).collect();
    assert!(matches!(
        only_response(&out, a),
        Response::Error {
            transaction_id: 77,
            ..
        }
    ));
}

#[test]
fn timeout_expires_silent_peers() {
    let config = TrackerConfig {
        interval: Duration::from_secs(100),
        ..TrackerConfig::default()
    };
    let (mut t, t0) = tracker(config);
    let a = addr("10.0.0.1:5000");
    let id = connect(&mut t, t0, a);
    announce(&mut t, t0, a, id, 1);
    assert_eq!(t.poll_timeout(), t0 + Duration::from_secs(60));
    t.handle_timeout(t0 + Duration::from_secs(180));
    assert_eq!(t.stats().peers, 1);
    t.handle_timeout(t0 + Duration::from_secs(260));
    assert_eq!(t.stats().peers, 0);
    assert_eq!(t.stats().swarms, 0);
}

#[test]
fn invalid_config_is_refused() {
    let t0 = Instant::now();
    let bad = TrackerConfig {
        interval: Duration::ZERO,
        ..TrackerConfig::default()
    };
    assert!(matches!(
        Tracker::new(bad, [0; 32], 0, t0),
        Err(ConfigError::Interval(_))
    ));
    let bad = TrackerConfig {
        max_num_want_v6: 200,
        ..TrackerConfig::default()
    };
    assert!(Tracker::new(bad, [0; 32], 0, t0).is_err());
}
