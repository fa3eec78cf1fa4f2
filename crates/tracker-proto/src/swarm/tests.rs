use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn limits(max_swarms: usize, per_swarm: usize, max_peers: usize) -> SwarmLimits {
    SwarmLimits {
        max_swarms,
        max_peers_per_swarm: per_swarm,
        max_peers,
        ttl: HOUR,
    }
}

fn input(hash: u8, listed: &str, event: Event) -> AnnounceInput {
    let listed: SocketAddr = listed.parse().unwrap();
    AnnounceInput {
        info_hash: [hash; 20],
        listed,
        source_port: listed.port(),
        seeder: false,
        event,
        num_want: 50,
    }
}

#[test]
fn peers_get_each_other_never_themselves() {
    let t0 = Instant::now();
    let mut t = SwarmTable::new(limits(10, 10, 100), 1, t0);
    let a = t.announce(t0, &input(1, "10.0.0.1:1000", Event::Started));
    assert_eq!(a.stored, Stored::Added);
    assert!(a.peers.is_empty());
    let b = t.announce(t0, &input(1, "10.0.0.2:1000", Event::Started));
    assert_eq!(
        b.peers,
        vec!["10.0.0.1:1000".parse::<SocketAddr>().unwrap()]
    );
    let a = t.announce(t0, &input(1, "10.0.0.1:1000", Event::None));
    assert_eq!(a.stored, Stored::Refreshed);
    assert_eq!(
        a.peers,
        vec!["10.0.0.2:1000".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(a.stats.leechers, 2);
    // Same IP, another port: another peer (two devices behind one NAT).
    let c = t.announce(t0, &input(1, "10.0.0.1:1001", Event::None));
    assert_eq!(c.peers.len(), 2);
    t.check_invariants();
}

#[test]
fn families_are_kept_apart() {
    let t0 = Instant::now();
    let mut t = SwarmTable::new(limits(10, 10, 100), 1, t0);
    t.announce(t0, &input(1, "10.0.0.1:1000", Event::Started));
    let v6 = t.announce(t0, &input(1, "[2001:db8::1]:1000", Event::Started));
    assert!(v6.peers.is_empty());
    assert_eq!(v6.stats.leechers, 2);
    let v6b = t.announce(t0, &input(1, "[2001:db8::2]:1000", Event::Started));
    assert_eq!(
        v6b.peers,
        vec!["[2001:db8::1]:1000".parse::<SocketAddr>().unwrap()]
    );
    t.check_invariants();
}

#[test]
fn stopped_removes_and_empty_swarms_go() {
    let t0 = Instant::now();
    let mut t = SwarmTable::new(limits(10, 10, 100), 1, t0);
    t.announce(t0, &input(1, "10.0.0.1:1000", Event::Started));
    t.announce(t0, &input(1, "10.0.0.2:1000", Event::Started));
    let gone = t.announce(t0, &input(1, "10.0.0.1:1000", Event::Stopped));
    assert_eq!(gone.stored, Stored::Removed);
    assert!(gone.peers.is_empty());
    let b = t.announce(t0, &input(1, "10.0.0.2:1000", Event::None));
    assert!(b.peers.is_empty());
    t.announce(t0, &input(1, "10.0.0.2:1000", Event::Stopped));
    assert_eq!(t.swarm_count(), 0);
    assert_eq!(t.peer_count(), 0);
    t.check_invariants();
}

#[test]
fn seeders_leechers_and_completed() {
    let t0 = Instant::now();
    let mut t = SwarmTable::new(limits(10, 10, 100), 1, t0);
    t.announce(t0, &input(1, "10.0.0.1:1000", Event::Started));
    let mut done = input(1, "10.0.0.1:1000", Event::Completed);
    done.seeder = true;
    t.announce(t0, &done);
    let mut seed = input(1, "10.0.0.2:1000", Event::Started);
    seed.seeder = true;
    t.announce(t0, &seed);
    t.announce(t0, &input(1, "10.0.0.3:1000", Event::Started));
    assert_eq!(
        t.scrape(&[1; 20]),
        ScrapeStats {
            seeders: 2,
            completed: 1,
            leechers: 1
        }
    );
    assert_eq!(t.scrape(&[2; 20]), ScrapeStats::default());
    t.check_invariants();
}

#[test]
fn expiry_after_ttl_and_not_before() {
    let t0 = Instant::now();
    let mut t = SwarmTable::new(limits(10, 10, 100), 1, t0);
    t.announce(t0, &input(1, "10.0.0.1:1000", Event::Started));
    let later = t0 + HOUR - Duration::from_secs(1);
    t.announce(later, &input(1, "10.0.0.2:1000", Event::Started));
    assert_eq!(t.expire(later), 0);
    let listed: SocketAddr = "10.0.0.1:1000".parse().unwrap();
    assert!(t.punch_target(later, &[1; 20], listed).is_some());
    // An hour after its announce the first peer is no longer listed or
    // punched, even before the sweep.
    let expired = t0 + HOUR;
    let b = t.announce(expired, &input(1, "10.0.0.2:1000", Event::None));
    assert!(b.peers.is_empty());
    assert!(t.punch_target(expired, &[1; 20], listed).is_none());
    assert_eq!(t.expire(expired), 1);
    assert_eq!(t.peer_count(), 1);
    assert_eq!(t.expire(expired + HOUR), 1);
    assert_eq!(t.swarm_count(), 0);
    t.check_invariants();
}

#[test]
fn punch_target_is_the_source_port() {
    let t0 = Instant::now();
    let mut t = SwarmTable::new(limits(10, 10, 100), 1, t0);
    let mut a = input(1, "10.0.0.1:41544", Event::Started);
    a.source_port = 50_000;
    t.announce(t0, &a);
    assert_eq!(
        t.punch_target(t0, &[1; 20], "10.0.0.1:41544".parse().unwrap()),
        Some("10.0.0.1:50000".parse().unwrap())
    );
    assert_eq!(
        t.punch_target(t0, &[1; 20], "10.0.0.1:50000".parse().unwrap()),
        None
    );
    assert_eq!(
        t.punch_target(t0, &[2; 20], "10.0.0.1:41544".parse().unwrap()),
        None
    );
}

#[test]
fn full_table_refuses_newcomers_keeps_refreshing_members() {
    let t0 = Instant::now();
    let mut t = SwarmTable::new(limits(2, 3, 4), 1, t0);
    for i in 1..=3 {
        let r = t.announce(t0, &input(1, &format!("10.0.0.{i}:1"), Event::Started));
        assert_eq!(r.stored, Stored::Added);
    }
    // Swarm 1 is full; the newcomer still gets peers.
    let r = t.announce(t0, &input(1, "10.0.0.9:1", Event::Started));
    assert_eq!(r.stored, Stored::Refused);
    assert_eq!(r.peers.len(), 3);
    assert_eq!(
        t.announce(t0, &input(2, "10.0.1.1:1", Event::Started))
            .stored,
        Stored::Added
    );
    // Total is full: no new swarm, no new peer.
    assert_eq!(
        t.announce(t0, &input(3, "10.0.2.1:1", Event::Started))
            .stored,
        Stored::Refused
    );
    assert_eq!(
        t.announce(t0, &input(2, "10.0.1.2:1", Event::Started))
            .stored,
        Stored::Refused
    );
    // Members refresh fine.
    assert_eq!(
        t.announce(t0, &input(1, "10.0.0.2:1", Event::None)).stored,
        Stored::Refreshed
    );
    assert_eq!(t.swarm_count(), 2);
    assert_eq!(t.peer_count(), 4);
    t.check_invariants();
}

#[test]
fn picks_are_spread_over_the_swarm() {
    let t0 = Instant::now();
    let mut t = SwarmTable::new(limits(10, 1000, 1000), 7, t0);
    for i in 0..500u32 {
        let [_, _, a, b] = i.to_be_bytes();
        t.announce(
            t0,
            &AnnounceInput {
                num_want: 0,
                ..input(1, &format!("10.1.{a}.{b}:1"), Event::Started)
            },
        );
    }
    let mut seen = HashSet::new();
    for _ in 0..20 {
        let r = t.announce(t0, &input(1, "10.9.9.9:1", Event::None));
        assert_eq!(r.peers.len(), 50);
        seen.extend(r.peers);
    }
    // 20 picks of 50 from random starts cover far more than one window.
    assert!(seen.len() > 250, "only {} distinct peers", seen.len());
}

#[derive(Debug, Clone)]
enum Op {
    Announce {
        hash: u8,
        peer: u8,
        v6: bool,
        event: u8,
        seeder: bool,
        want: u8,
    },
    Advance(u16),
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..6, 0u8..40, any::<bool>(), 0u8..4, any::<bool>(), 0u8..10).prop_map(
            |(hash, peer, v6, event, seeder, want)| Op::Announce { hash, peer, v6, event, seeder, want }
        ),
        1 => (0u16..2000).prop_map(Op::Advance),
        1 => Just(Op::Expire),
    ]
}

fn addr(peer: u8, v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                u16::from(peer / 4),
            )),
            1000 + u16::from(peer % 4),
        )
    } else {
        SocketAddr::from(([10, 0, 0, peer / 4], 1000 + u16::from(peer % 4)))
    }
}

proptest! {
    #[test]
    fn caps_and_answers_hold_under_any_sequence(
        ops in proptest::collection::vec(op(), 1..300),
        max_swarms in 1usize..4,
        per_swarm in 1usize..8,
        max_peers in 1usize..12,
        seed in any::<u64>(),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut t = SwarmTable::new(limits(max_swarms, per_swarm, max_peers), seed, t0);
        // Model: when each (hash, peer) last announced and was stored.
        let mut last: HashMap<([u8; 20], SocketAddr), Instant> = HashMap::new();
        for op in ops {
            match op {
                Op::Announce { hash, peer, v6, event, seeder, want } => {
                    let me = addr(peer, v6);
                    let a = AnnounceInput {
                        info_hash: [hash; 20],
                        listed: me,
                        source_port: me.port(),
                        seeder,
                        event: Event::from_u32(u32::from(event)).unwrap(),
                        num_want: usize::from(want),
                    };
                    let r = t.announce(now, &a);
                    prop_assert!(r.peers.len() <= usize::from(want));
                    prop_assert!(!r.peers.contains(&me), "got itself back");
                    let distinct: HashSet<_> = r.peers.iter().collect();
                    prop_assert_eq!(distinct.len(), r.peers.len());
                    for p in &r.peers {
                        prop_assert_eq!(p.is_ipv4(), me.is_ipv4());
                        // Every listed peer announced that swarm within the ttl
                        // and has not stopped since.
                        let seen = last.get(&([hash; 20], *p));
                        prop_assert!(seen.is_some_and(|s| now.duration_since(*s) < HOUR), "stale or unknown peer {}", p);
                    }
                    match r.stored {
                        Stored::Added | Stored::Refreshed => { last.insert(([hash; 20], me), now); }
                        Stored::Removed => {
                            prop_assert_eq!(a.event, Event::Stopped);
                            last.remove(&([hash; 20], me));
                            prop_assert!(t.punch_target(now, &[hash; 20], me).is_none());
                        }
                        Stored::Refused => {}
                    }
                }
                Op::Advance(s) => now += Duration::from_secs(u64::from(s)),
                Op::Expire => { t.expire(now); }
            }
            t.check_invariants();
        }
    }
}
