//! Tracker requests per second on one core: the sans-IO `Tracker` (the whole
//! server minus the socket) fed connects and announces from 50,000 distinct
//! sources into 1,000 swarms, on one thread. The UDP shell adds a
//! `recvfrom` and a `sendto` per request on top.
//!
//! ```text
//! cargo run --release -p bench --bin tracker_announces
//! TRACKER_BENCH_ANNOUNCES=2000000 cargo run --release -p bench --bin tracker_announces
//! ```
//!
//! Three rounds; the best is reported (other load on the machine only slows).
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use tracker_proto::{AnnounceRequest, Event, Family, Request, Response, Tracker, TrackerConfig};

const SOURCES: u32 = 50_000;
const SWARMS: u32 = 1_000;

fn source(i: u32) -> SocketAddr {
    let [_, a, b, c] = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a, b, c)), 6881)
}

fn answer(tracker: &mut Tracker) -> Option<Response> {
    let t = tracker.poll_transmit()?;
    Response::parse(&t.payload, Family::V4).ok()
}

fn round(announces: u32) -> Result<(f64, f64, usize), String> {
    let start = Instant::now();
    let mut tracker =
        Tracker::new(TrackerConfig::default(), [7; 32], 1, start).map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(128);
    // Connects: one per source.
    let mut ids = Vec::with_capacity(SOURCES as usize);
    let t0 = Instant::now();
    for i in 0..SOURCES {
        buf.clear();
        Request::Connect { transaction_id: i }.write(&mut buf);
        tracker.handle_datagram(Instant::now(), source(i), &buf);
        match answer(&mut tracker) {
            Some(Response::Connect { connection_id, .. }) => ids.push(connection_id),
            other => return Err(format!("connect {i}: {other:?}")),
        }
    }
    let connects = f64::from(SOURCES) / t0.elapsed().as_secs_f64();
    // Announces, round-robin over the sources (each stays under its rate
    // limit), each listing up to 50 others of its swarm.
    let mut listed = 0usize;
    let t1 = Instant::now();
    for n in 0..announces {
        let i = n % SOURCES;
        let swarm = (i % SWARMS).to_be_bytes();
        let info_hash: [u8; 20] = std::array::from_fn(|k| swarm.get(k).copied().unwrap_or(0));
        buf.clear();
        Request::Announce(AnnounceRequest {
            connection_id: ids.get(i as usize).copied().unwrap_or(0),
            transaction_id: n,
            info_hash,
            peer_id: [1; 20],
            downloaded: 0,
            left: 1,
            uploaded: 0,
            event: if n < SOURCES {
                Event::Started
            } else {
                Event::None
            },
            ip: 0,
            key: i,
            num_want: 50,
            port: 41_544,
        })
        .write(&mut buf);
        tracker.handle_datagram(Instant::now(), source(i), &buf);
        match tracker.poll_transmit() {
            Some(t) => listed += t.payload.len().saturating_sub(20) / 6,
            None => return Err(format!("announce {n}: no answer")),
        }
    }
    let rate = f64::from(announces) / t1.elapsed().as_secs_f64();
    Ok((connects, rate, listed / announces.max(1) as usize))
}

fn main() -> Result<(), String> {
    let announces: u32 = std::env::var("TRACKER_BENCH_ANNOUNCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut best = (0.0f64, 0.0f64, 0usize);
    for r in 1..=3 {
        let (c, a, listed) = round(announces)?;
        println!(
            "round {r}: {c:.0} connects/s, {a:.0} announces/s ({listed} peers listed per answer)"
        );
        best = (best.0.max(c), best.1.max(a), listed);
    }
    println!(
        "best: {:.0} connects/s, {:.0} announces/s on one core ({} sources, {} swarms, {} peers per answer)",
        best.0, best.1, SOURCES, SWARMS, best.2
    );
    Ok(())
}
