//! `swarmsync tracker` as a process on loopback: BEP 15, the address and punch
//! extensions, garbage, spoofed ids, a flood against small caps, and a real
//! BitTorrent client (python3-libtorrent) when it is installed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::server::ServerProcess;

use tracker::tracker_proto::{
    AnnounceRequest, AnnounceResponse, Event, Family, InfoHash, PunchRequest, PunchResult, Request,
    Response, ScrapeRequest, ScrapeStats,
};

/// A UDP tracker client on its own socket.
struct Client {
    socket: UdpSocket,
    tracker: SocketAddr,
    connection_id: u64,
}

impl Client {
    fn bind(ip: Ipv4Addr, tracker: SocketAddr) -> Self {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Self {
            socket,
            tracker,
            connection_id: 0,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    fn send(&self, req: &Request) {
        let mut bytes = Vec::new();
        req.write(&mut bytes);
        self.socket.send_to(&bytes, self.tracker).unwrap();
    }

    /// The next datagram within the read timeout.
    fn recv(&self) -> Option<Response> {
        let mut buf = [0u8; 2048];
        match self.socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, self.tracker);
                Some(Response::parse(&buf[..n], Family::V4).unwrap())
            }
            Err(_) => None,
        }
    }

    /// Sends `req` (again, up to 3 times: UDP) until the answer to it comes.
    fn call(&self, req: &Request) -> Response {
        for _ in 0..3 {
            self.send(req);
            while let Some(resp) = self.recv() {
                if resp.transaction_id() == req.transaction_id() {
                    return resp;
                }
            }
        }
        panic!("no answer to {req:?}");
    }

    fn connect(mut self) -> Self {
        match self.call(&Request::Connect {
            transaction_id: 0x0c0c,
        }) {
            Response::Connect { connection_id, .. } => self.connection_id = connection_id,
            other => panic!("{other:?}"),
        }
        self
    }

    fn announce_req(&self, info_hash: InfoHash, port: u16, left: u64, event: Event) -> Request {
        Request::Announce(AnnounceRequest {
            connection_id: self.connection_id,
            transaction_id: 0xa0a0,
            info_hash,
            peer_id: *b"-SW0001-testtesttest",
            downloaded: 0,
            left,
            uploaded: 0,
            event,
            ip: 0,
            key: 0,
            num_want: -1,
            port,
        })
    }

    fn announce(&self, info_hash: InfoHash, port: u16, left: u64) -> AnnounceResponse {
        match self.call(&self.announce_req(info_hash, port, left, Event::Started)) {
            Response::Announce(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn scrape(&self, hashes: &[InfoHash]) -> Vec<ScrapeStats> {
        let req = Request::Scrape(ScrapeRequest {
            connection_id: self.connection_id,
            transaction_id: 0x5c5c,
            info_hashes: hashes.to_vec(),
        });
        match self.call(&req) {
            Response::Scrape { stats, .. } => stats,
            other => panic!("{other:?}"),
        }
    }
}

fn localhost() -> Ipv4Addr {
    Ipv4Addr::LOCALHOST
}

#[test]
fn bep15_connect_announce_scrape_and_clean_stop() {
    let tracker = ServerProcess::start("tracker", &[], &[]);
    let a = Client::bind(localhost(), tracker.addr).connect();
    let b = Client::bind(localhost(), tracker.addr).connect();
    let hash = [0x42; 20];
    assert!(a.announce(hash, 41001, 0).peers.is_empty());
    let rb = b.announce(hash, 41002, 500);
    assert_eq!(rb.interval, 1800);
    assert_eq!(
        rb.peers.to_vec(),
        vec![SocketAddr::from((localhost(), 41001))]
    );
    assert_eq!((rb.seeders, rb.leechers), (1, 1));
    let ra = a.announce(hash, 41001, 0);
    assert_eq!(
        ra.peers.to_vec(),
        vec![SocketAddr::from((localhost(), 41002))]
    );
    assert_eq!(
        a.scrape(&[hash, [0x43; 20]]),
        vec![
            ScrapeStats {
                seeders: 1,
                completed: 0,
                leechers: 1
            },
            ScrapeStats::default()
        ]
    );
    // Stopped removes b.
    match b.call(&b.announce_req(hash, 41002, 500, Event::Stopped)) {
        Response::Announce(r) => assert!(r.peers.is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        a.scrape(&[hash])[0],
        ScrapeStats {
            seeders: 1,
            completed: 0,
            leechers: 0
        }
    );
    tracker.stop();
}

#[test]
fn address_extension_returns_the_socket_address() {
    let tracker = ServerProcess::start("tracker", &[], &[]);
    let c = Client::bind(Ipv4Addr::new(127, 0, 0, 3), tracker.addr).connect();
    let resp = c.call(&Request::Address {
        connection_id: c.connection_id,
        transaction_id: 77,
    });
    assert_eq!(
        resp,
        Response::Address {
            transaction_id: 77,
            address: c.addr()
        }
    );
    tracker.stop();
}

#[test]
fn punch_notifies_the_target_and_refuses_unknown_targets() {
    let tracker = ServerProcess::start("tracker", &[], &[]);
    let a = Client::bind(Ipv4Addr::new(127, 0, 0, 4), tracker.addr).connect();
    let b = Client::bind(Ipv4Addr::new(127, 0, 0, 5), tracker.addr).connect();
    let hash = [0x50; 20];
    // b announces port 0: listed at its UDP source, which a then learns.
    b.announce(hash, 0, 1);
    let listed = a.announce(hash, 0, 1).peers.to_vec();
    assert_eq!(listed, vec![b.addr()]);
    let punch = Request::Punch(PunchRequest {
        connection_id: a.connection_id,
        transaction_id: 90,
        info_hash: hash,
        target: listed[0],
    });
    assert_eq!(
        a.call(&punch),
        Response::Punch {
            transaction_id: 90,
            result: PunchResult::Notified(b.addr())
        }
    );
    assert_eq!(
        b.recv(),
        Some(Response::PunchNotify {
            transaction_id: 0,
            info_hash: hash,
            peer: a.addr()
        })
    );
    // A target that never announced, and a known one in another swarm.
    for (info_hash, target) in [
        (hash, SocketAddr::from(([127, 0, 0, 9], 4000))),
        ([0x51; 20], b.addr()),
    ] {
        let req = Request::Punch(PunchRequest {
            connection_id: a.connection_id,
            transaction_id: 91,
            info_hash,
            target,
        });
        assert_eq!(
            a.call(&req),
            Response::Punch {
                transaction_id: 91,
                result: PunchResult::UnknownTarget
            }
        );
    }
    assert_eq!(b.recv(), None, "b was notified for an unknown punch");
    tracker.stop();
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(state: &mut u64, out: &mut Vec<u8>, len: usize) {
    out.clear();
    for _ in 0..len {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        out.push((*state >> 24) as u8);
    }
}

#[test]
fn random_datagrams_do_not_hurt_and_get_no_answers() {
    let mut tracker = ServerProcess::start("tracker", &[], &[]);
    let valid = Client::bind(Ipv4Addr::new(127, 0, 0, 6), tracker.addr).connect();
    let attacker = Client::bind(Ipv4Addr::new(127, 0, 0, 7), tracker.addr).connect();
    let mut state = 0x5eed_1234_u64;
    let mut buf = Vec::new();
    let mut answers = 0;
    for i in 0..20_000u32 {
        let len = (state % 1600) as usize;
        noise(&mut state, &mut buf, len);
        // A quarter look like requests (a valid id, a known action) with
        // random bodies, to reach the parsers past the header.
        if i % 4 == 0 && buf.len() >= 16 {
            buf[..8].copy_from_slice(&attacker.connection_id.to_be_bytes());
            buf[8..12].copy_from_slice(&[0, 0, 0, (i / 4 % 4) as u8]);
        }
        attacker.socket.send_to(&buf, tracker.addr).unwrap();
        if i % 500 == 0 {
            // Pace a little so the kernel's buffer, not the tracker, is not
            // what drops them all.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    attacker
        .socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut raw = [0u8; 2048];
    while let Ok((n, _)) = attacker.socket.recv_from(&mut raw) {
        answers += 1;
        // Whatever came back is a well-formed response.
        Response::parse(&raw[..n], Family::V4).unwrap();
    }
    // The request budget (burst 100) bounds how many were answered at all.
    assert!(answers <= 100 + 20 * 60, "{answers} answers");
    assert!(tracker.is_running());
    // And the tracker still serves everyone else.
    let hash = [0x60; 20];
    valid.announce(hash, 1, 1);
    let fresh = Client::bind(Ipv4Addr::new(127, 0, 0, 8), tracker.addr).connect();
    assert_eq!(fresh.announce(hash, 2, 1).peers.len(), 1);
    tracker.stop();
}

#[test]
fn spoofed_connection_ids_have_no_effect() {
    let tracker = ServerProcess::start("tracker", &[], &[]);
    let owner = Client::bind(Ipv4Addr::new(127, 0, 0, 10), tracker.addr).connect();
    let mut thief = Client::bind(Ipv4Addr::new(127, 0, 0, 11), tracker.addr);
    let hash = [0x70; 20];
    // Guessed ids and someone else's id: no answer, no entry.
    for id in [
        0,
        1,
        0x0417_2710_1980,
        0xdead_beef_dead_beef,
        owner.connection_id,
    ] {
        thief.connection_id = id;
        thief.send(&thief.announce_req(hash, 9, 1, Event::Started));
        assert_eq!(thief.recv(), None, "answered id {id:#x}");
    }
    // The owner's id from another port of the same address is not valid
    // either (ids bind address and port).
    let mut same_ip = Client::bind(Ipv4Addr::new(127, 0, 0, 10), tracker.addr);
    same_ip.connection_id = owner.connection_id;
    same_ip.send(&same_ip.announce_req(hash, 9, 1, Event::Started));
    assert_eq!(same_ip.recv(), None);
    assert_eq!(owner.scrape(&[hash])[0], ScrapeStats::default());
    tracker.stop();
}

#[test]
fn a_flood_from_many_addresses_stays_within_the_caps() {
    let mut tracker = ServerProcess::start(
        "tracker",
        &[],
        &[
            ("SWARMSYNC_TRACKER_MAX_SWARMS", "40"),
            ("SWARMSYNC_TRACKER_MAX_PEERS_PER_SWARM", "25"),
            ("SWARMSYNC_TRACKER_MAX_PEERS", "300"),
        ],
    );
    let rss_before = tracker.rss_kib();
    // A member of the hot swarm from before the flood.
    let hot = [0xee; 20];
    let member = Client::bind(Ipv4Addr::new(127, 0, 0, 20), tracker.addr).connect();
    member.announce(hot, 7000, 0);
    let hashes: Vec<InfoHash> = (0..100u8).map(|i| [i; 20]).collect();
    let start = Instant::now();
    let mut sources = 0;
    'flood: for x in 1..=4u8 {
        for y in 1..=150u8 {
            if start.elapsed() > Duration::from_secs(60) {
                break 'flood;
            }
            let c = Client::bind(Ipv4Addr::new(127, 1, x, y), tracker.addr).connect();
            c.socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            // The hot swarm and nine others, no waiting between sends.
            let mut mine = vec![hot];
            mine.extend(
                (0..9).map(|k| hashes[(usize::from(x) * 31 + usize::from(y) * 7 + k * 11) % 100]),
            );
            for h in &mine {
                c.send(&c.announce_req(*h, 6881, 1, Event::Started));
            }
            for _ in &mine {
                if c.recv().is_none() {
                    break;
                }
            }
            sources += 1;
        }
    }
    assert!(sources >= 100, "only {sources} sources in time");
    // Every swarm within its cap, all together within theirs.
    let observer = Client::bind(Ipv4Addr::new(127, 0, 0, 21), tracker.addr).connect();
    let mut all = hashes.clone();
    all.push(hot);
    let stats: Vec<ScrapeStats> = all.chunks(74).flat_map(|c| observer.scrape(c)).collect();
    let peers: u32 = stats.iter().map(|s| s.seeders + s.leechers).sum();
    let swarms = stats.iter().filter(|s| s.seeders + s.leechers > 0).count();
    assert!(
        stats.iter().all(|s| s.seeders + s.leechers <= 25),
        "{stats:?}"
    );
    assert!(peers <= 300, "{peers} peers stored");
    assert!(swarms <= 40, "{swarms} swarms stored");
    assert!(
        peers >= 250,
        "the caps should have been reached, {peers} peers"
    );
    // The member is still there and still served; a newcomer is answered.
    assert_eq!(stats.last().unwrap().seeders, 1);
    let again = member.announce(hot, 7000, 0);
    // The other 24 of the full swarm (num_want 50 is more).
    assert_eq!(again.peers.len(), 24);
    let newcomer = Client::bind(Ipv4Addr::new(127, 0, 0, 22), tracker.addr).connect();
    assert!(!newcomer.announce(hot, 7001, 1).peers.is_empty());
    let rss_after = tracker.rss_kib();
    assert!(
        rss_after < rss_before + 20 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert!(tracker.is_running());
    tracker.stop();
}

/// The python3 that has libtorrent (Debian's python3-libtorrent), if any.
fn python_with_libtorrent() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import libtorrent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn libtorrent_announces_to_our_tracker() {
    let Some(python) = python_with_libtorrent() else {
        eprintln!("skipped: python3 with libtorrent (apt python3-libtorrent) not found");
        return;
    };
    let tracker = ServerProcess::start("tracker", &[], &[]);
    let hash_hex = "5357".repeat(10);
    // Loopback only: no DHT, LSD, UPnP or NAT-PMP.
    let script = format!(
        r#"
import libtorrent as lt, sys, time
s = lt.session({{"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                "enable_upnp": False, "enable_natpmp": False, "alert_mask": lt.alert.category_t.all_categories}})
p = lt.add_torrent_params()
p.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex("{hash_hex}")))
p.trackers = ["udp://{addr}/announce"]
p.save_path = "/tmp"
h = s.add_torrent(p)
print("port", s.listen_port(), flush=True)
deadline = time.time() + 30
while time.time() < deadline:
    for a in s.pop_alerts():
        if isinstance(a, lt.tracker_reply_alert):
            print("reply", a.num_peers, flush=True)
        elif isinstance(a, lt.tracker_error_alert):
            print("error", a.message(), flush=True)
    time.sleep(0.1)
"#,
        addr = tracker.addr
    );
    let mut child = Command::new(python)
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("port ")
        .unwrap()
        .parse()
        .unwrap();
    let reply = lines.next().unwrap().unwrap();
    assert!(reply.starts_with("reply"), "libtorrent said {reply}");
    // Our tracker recorded it; a second peer gets it back.
    let hash: InfoHash = (0..20)
        .map(|i| u8::from_str_radix(&hash_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let us = Client::bind(Ipv4Addr::new(127, 0, 0, 30), tracker.addr).connect();
    let r = us.announce(hash, 41544, 1);
    assert_eq!(
        r.peers.to_vec(),
        vec![SocketAddr::new(IpAddr::V4(localhost()), port)]
    );
    assert_eq!(us.scrape(&[hash])[0].leechers, 2);
    let _ = child.kill();
    let _ = child.wait();
    tracker.stop();
}
