//! Any datagram either parses as a tracker request/response or gives a typed
//! error, never a panic; a parsed request writes back to a prefix of the
//! datagram (trailing bytes are ignored options) and parses to itself. The
//! same bytes, cut into datagrams, drive a whole sans-IO tracker: everything
//! it sends parses, nothing it sends is larger than what caused it except
//! the answers to proven sources, and its table stays consistent.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tracker_proto::{
    Family, MAX_PARSED_PEERS, Request, Response, Tracker, TrackerConfig,
};

fn codec(data: &[u8]) {
    match Request::parse(data) {
        Ok(req) => {
            let mut out = Vec::new();
            req.write(&mut out);
            assert_eq!(out.len(), req.encoded_len());
            if matches!(req, Request::Scrape(_)) {
                assert_eq!(out, data);
            } else {
                assert!(data.starts_with(&out));
            }
            assert_eq!(Request::parse(&out), Ok(req));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    for family in [Family::V4, Family::V6] {
        match Response::parse(data, family) {
            Ok(Response::Error { .. }) => {}
            Ok(resp) => {
                if let Response::Announce(a) = &resp {
                    assert!(a.peers.len() <= MAX_PARSED_PEERS);
                }
                let mut out = Vec::new();
                resp.write(&mut out);
                assert_eq!(Response::parse(&out, family), Ok(resp));
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

const SOURCES: [&str; 4] = [
    "10.0.0.1:6881",
    "10.0.0.2:6881",
    "[2001:db8::1]:6881",
    "[::ffff:10.0.0.3]:7000",
];

fn server(data: &[u8]) {
    let t0 = Instant::now();
    let config = TrackerConfig {
        max_swarms: 4,
        max_peers_per_swarm: 4,
        max_peers: 8,
        interval: Duration::from_secs(30),
        ..TrackerConfig::default()
    };
    let Ok(mut tracker) = Tracker::new(config, [3; 32], 5, t0) else {
        return;
    };
    let sources: Vec<SocketAddr> = SOURCES.iter().filter_map(|s| s.parse().ok()).collect();
    // Valid connection ids, so the fuzzer reaches past the id check.
    let mut ids = Vec::new();
    for &source in &sources {
        let mut connect = Vec::new();
        Request::Connect { transaction_id: 0 }.write(&mut connect);
        tracker.handle_datagram(t0, source, &connect);
        let id = match tracker.poll_transmit().map(|t| Response::parse(&t.payload, Family::V4)) {
            Some(Ok(Response::Connect { connection_id, .. })) => connection_id,
            _ => 0,
        };
        ids.push(id);
    }
    // Records: [len][control][len bytes]; control picks the source, whether
    // to stamp its id over the first 8 bytes, and how much time passes.
    let mut now = t0;
    let mut rest = data;
    while let [len, control, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        let which = usize::from(control & 3);
        let (Some(&source), Some(&id)) = (sources.get(which), ids.get(which)) else {
            continue;
        };
        let mut datagram = body.to_vec();
        if control & 4 != 0 && datagram.len() >= 8 {
            datagram[..8].copy_from_slice(&id.to_be_bytes());
        }
        now += Duration::from_secs(u64::from(control >> 4));
        tracker.handle_datagram(now, source, &datagram);
        tracker.handle_timeout(now);
        while let Some(t) = tracker.poll_transmit() {
            let resp = Response::parse(&t.payload, Family::of(t.destination));
            assert!(resp.is_ok(), "unparsable {:?}: {resp:?}", t.payload);
            if let Ok(Response::PunchNotify { .. }) = resp {
                assert!(t.payload.len() <= datagram.len());
            }
        }
        tracker.check_invariants();
    }
}

fuzz_target!(|data: &[u8]| {
    codec(data);
    server(data);
});
