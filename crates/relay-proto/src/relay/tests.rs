//! The state machine: the invitation flow, refusals, expiry, and caps under
//! arbitrary sequences of events.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use keys::{FolderId, PeerId};
use proptest::prelude::*;

use super::*;
use crate::{FolderTag, PairingToken};

const P: PeerId = PeerId([1; 32]);
const Q: PeerId = PeerId([2; 32]);

fn ip(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

fn tag() -> FolderTag {
    FolderTag::of(&FolderId([7; 20]))
}

fn drain(r: &mut Relay) -> Vec<Output> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

fn relay(config: RelayConfig) -> (Relay, Instant) {
    let now = Instant::now();
    (Relay::new(config, [5; 32], 42, now).unwrap(), now)
}

/// Registers `peer` on `conn` and checks the answer.
fn register(r: &mut Relay, now: Instant, conn: ConnId, source: IpAddr, peer: PeerId) {
    r.handle_connection(now, conn, source).unwrap();
    r.handle_message(now, conn, ClientMessage::Register { tag: tag(), peer });
    assert_eq!(
        drain(r),
        [Output::Send {
            conn,
            message: RelayMessage::Registered
        }]
    );
}

/// Q on `conn` connects to P; returns the session P was invited with.
fn connect(r: &mut Relay, now: Instant, conn: ConnId, source: IpAddr) -> Vec<Output> {
    r.handle_connection(now, conn, source).unwrap();
    r.handle_message(
        now,
        conn,
        ClientMessage::Connect {
            tag: tag(),
            target: P,
            from: Q,
            token: PairingToken([3; 32]),
        },
    );
    drain(r)
}

fn invited_session(out: &[Output]) -> SessionId {
    match out {
        [
            Output::Send {
                message: RelayMessage::Invite { session, .. },
                ..
            },
        ] => *session,
        other => panic!("expected one invitation, got {other:?}"),
    }
}

#[test]
fn invitation_flow_splices_once() {
    let (mut r, now) = relay(RelayConfig::default());
    register(&mut r, now, 1, ip(1), P);
    let out = connect(&mut r, now, 2, ip(2));
    let Output::Send {
        conn: 1,
        message: RelayMessage::Invite { from, token, .. },
    } = out[0].clone()
    else {
        panic!("invite not on P's control: {out:?}");
    };
    assert_eq!((from, token), (Q, PairingToken([3; 32])));
    let session = invited_session(&out);
    r.handle_connection(now, 3, ip(1)).unwrap();
    r.handle_message(now, 3, ClientMessage::Accept { session });
    assert_eq!(
        drain(&mut r),
        [Output::Splice {
            dialer: 2,
            acceptor: 3
        }]
    );
    assert_eq!(r.stats().pairs, 1);
    assert_eq!(r.stats().pending, 0);
    // The same session again is unknown: a session splices at most once.
    r.handle_connection(now, 4, ip(1)).unwrap();
    r.handle_message(now, 4, ClientMessage::Accept { session });
    assert_eq!(
        drain(&mut r),
        [
            Output::Send {
                conn: 4,
                message: RelayMessage::Error(ErrorCode::UnknownSession)
            },
            Output::Close { conn: 4 }
        ]
    );
    // Either end closing ends the pair.
    r.handle_closed(3);
    r.handle_closed(2);
    assert_eq!(r.stats().pairs, 0);
    assert_eq!(r.stats().sources, 1, "only P's control is left");
}

#[test]
fn connect_to_unregistered_peer_is_refused() {
    let (mut r, now) = relay(RelayConfig::default());
    let out = connect(&mut r, now, 2, ip(2));
    assert_eq!(
        out,
        [
            Output::Send {
                conn: 2,
                message: RelayMessage::Error(ErrorCode::UnknownPeer)
            },
            Output::Close { conn: 2 }
        ]
    );
    assert_eq!((r.stats().fresh, r.stats().sources), (0, 0));
}

#[test]
fn invitation_expires_after_its_timeout() {
    let (mut r, now) = relay(RelayConfig::default());
    register(&mut r, now, 1, ip(1), P);
    let _ = connect(&mut r, now, 2, ip(2));
    // Keep P's control alive; the invitation still expires.
    let t = now + Duration::from_secs(9);
    r.handle_message(t, 1, ClientMessage::Ping);
    r.handle_timeout(t);
    assert_eq!(
        drain(&mut r),
        [Output::Send {
            conn: 1,
            message: RelayMessage::Pong
        }]
    );
    let t = now + Duration::from_secs(10) + SWEEP;
    r.handle_timeout(t);
    assert_eq!(
        drain(&mut r),
        [
            Output::Send {
                conn: 2,
                message: RelayMessage::Error(ErrorCode::NotAccepted)
            },
            Output::Close { conn: 2 }
        ]
    );
    assert_eq!(r.stats().pending, 0);
    assert_eq!(r.stats().expired, 1);
}

#[test]
fn target_leaving_fails_its_invitations_at_once() {
    let (mut r, now) = relay(RelayConfig::default());
    register(&mut r, now, 1, ip(1), P);
    let _ = connect(&mut r, now, 2, ip(2));
    r.handle_closed(1);
    assert_eq!(
        drain(&mut r),
        [
            Output::Send {
                conn: 2,
                message: RelayMessage::Error(ErrorCode::NotAccepted)
            },
            Output::Close { conn: 2 }
        ]
    );
    assert_eq!(r.stats().sources, 0);
}

#[test]
fn silent_controls_and_fresh_connections_are_dropped() {
    let (mut r, now) = relay(RelayConfig::default());
    register(&mut r, now, 1, ip(1), P);
    r.handle_connection(now, 2, ip(2)).unwrap();
    r.handle_timeout(now + Duration::from_secs(11));
    assert_eq!(drain(&mut r), [Output::Close { conn: 2 }]);
    r.handle_timeout(now + Duration::from_secs(90));
    assert_eq!(drain(&mut r), [Output::Close { conn: 1 }]);
    assert_eq!(r.stats().controls, 0);
    // And P is no longer listed.
    r.handle_connection(now, 3, ip(3)).unwrap();
    r.handle_message(now, 3, ClientMessage::Lookup { tag: tag() });
    assert_eq!(
        drain(&mut r)[0],
        Output::Send {
            conn: 3,
            message: RelayMessage::Peers(vec![])
        }
    );
}

#[test]
fn re_registration_replaces_the_old_control() {
    let (mut r, now) = relay(RelayConfig::default());
    register(&mut r, now, 1, ip(1), P);
    r.handle_connection(now, 2, ip(9)).unwrap();
    r.handle_message(
        now,
        2,
        ClientMessage::Register {
            tag: tag(),
            peer: P,
        },
    );
    assert_eq!(
        drain(&mut r),
        [
            Output::Send {
                conn: 1,
                message: RelayMessage::Error(ErrorCode::Replaced)
            },
            Output::Close { conn: 1 },
            Output::Send {
                conn: 2,
                message: RelayMessage::Registered
            },
        ]
    );
    assert_eq!(r.stats().controls, 1);
    // Invitations now go to the new control.
    let out = connect(&mut r, now, 3, ip(3));
    assert!(matches!(out[..], [Output::Send { conn: 2, .. }]));
}

#[test]
fn lookup_on_control_omits_the_asker_and_is_bounded() {
    let (mut r, now) = relay(RelayConfig::default());
    for i in 0..40u8 {
        register(&mut r, now, u64::from(i) + 1, ip(i), PeerId([i; 32]));
    }
    r.handle_message(now, 1, ClientMessage::Lookup { tag: tag() });
    let out = drain(&mut r);
    let [
        Output::Send {
            conn: 1,
            message: RelayMessage::Peers(peers),
        },
    ] = &out[..]
    else {
        panic!("{out:?}");
    };
    assert_eq!(peers.len(), MAX_PEERS);
    assert!(!peers.contains(&PeerId([0; 32])));
    let distinct: HashSet<_> = peers.iter().collect();
    assert_eq!(distinct.len(), peers.len());
}

#[test]
fn wrong_session_never_splices() {
    let (mut r, now) = relay(RelayConfig::default());
    register(&mut r, now, 1, ip(1), P);
    let session = invited_session(&connect(&mut r, now, 2, ip(2)));
    let mut wrong = session;
    wrong.0[0] ^= 1;
    r.handle_connection(now, 3, ip(3)).unwrap();
    r.handle_message(now, 3, ClientMessage::Accept { session: wrong });
    let out = drain(&mut r);
    assert!(!out.iter().any(|o| matches!(o, Output::Splice { .. })));
    assert_eq!(r.stats().pending, 1, "the real invitation still waits");
}

#[test]
fn unexpected_messages_close_with_protocol_error() {
    let (mut r, now) = relay(RelayConfig::default());
    r.handle_connection(now, 1, ip(1)).unwrap();
    r.handle_message(now, 1, ClientMessage::Ping);
    assert_eq!(
        drain(&mut r),
        [
            Output::Send {
                conn: 1,
                message: RelayMessage::Error(ErrorCode::Protocol)
            },
            Output::Close { conn: 1 }
        ]
    );
    r.handle_connection(now, 2, ip(1)).unwrap();
    r.handle_malformed(2, &ProtoError::BadMagic(*b"GET "));
    assert_eq!(drain(&mut r), [Output::Close { conn: 2 }]);
    r.handle_connection(now, 3, ip(1)).unwrap();
    r.handle_malformed(3, &ProtoError::UnsupportedVersion(9));
    assert_eq!(
        drain(&mut r)[0],
        Output::Send {
            conn: 3,
            message: RelayMessage::Error(ErrorCode::Version)
        }
    );
    assert_eq!(r.stats().sources, 0);
}

#[test]
fn caps_refuse_newcomers_without_evicting() {
    let config = RelayConfig {
        max_controls: 3,
        max_controls_per_source: 2,
        max_fresh: 2,
        max_fresh_per_source: 2,
        ..RelayConfig::default()
    };
    let (mut r, now) = relay(config);
    register(&mut r, now, 1, ip(1), PeerId([1; 32]));
    register(&mut r, now, 2, ip(1), PeerId([2; 32]));
    r.handle_connection(now, 3, ip(1)).unwrap();
    r.handle_message(
        now,
        3,
        ClientMessage::Register {
            tag: tag(),
            peer: PeerId([3; 32]),
        },
    );
    assert_eq!(
        drain(&mut r)[0],
        Output::Send {
            conn: 3,
            message: RelayMessage::Error(ErrorCode::AddressLimit)
        }
    );
    register(&mut r, now, 4, ip(2), PeerId([4; 32]));
    r.handle_connection(now, 5, ip(3)).unwrap();
    r.handle_message(
        now,
        5,
        ClientMessage::Register {
            tag: tag(),
            peer: PeerId([5; 32]),
        },
    );
    assert_eq!(
        drain(&mut r)[0],
        Output::Send {
            conn: 5,
            message: RelayMessage::Error(ErrorCode::Full)
        }
    );
    // Fresh connections: two, then refused.
    r.handle_connection(now, 6, ip(4)).unwrap();
    r.handle_connection(now, 7, ip(5)).unwrap();
    assert_eq!(r.handle_connection(now, 8, ip(6)), Err(ErrorCode::Full));
    assert_eq!(r.stats().controls, 3);
}

/// One step of an arbitrary sequence.
#[derive(Debug, Clone)]
enum Step {
    Open {
        conn: u8,
        source: u8,
    },
    Register {
        conn: u8,
        peer: u8,
        tag: u8,
    },
    Lookup {
        conn: u8,
        tag: u8,
    },
    Connect {
        conn: u8,
        target: u8,
        tag: u8,
    },
    /// Accept one of the sessions invited so far (by index), or a made-up one.
    Accept {
        conn: u8,
        pick: u8,
        forged: bool,
    },
    Ping {
        conn: u8,
    },
    Malformed {
        conn: u8,
    },
    Close {
        conn: u8,
    },
    Wait {
        millis: u16,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let c = 0u8..24;
    prop_oneof![
        (c.clone(), 0u8..4).prop_map(|(conn, source)| Step::Open { conn, source }),
        (c.clone(), 0u8..6, 0u8..2).prop_map(|(conn, peer, tag)| Step::Register {
            conn,
            peer,
            tag
        }),
        (c.clone(), 0u8..2).prop_map(|(conn, tag)| Step::Lookup { conn, tag }),
        (c.clone(), 0u8..6, 0u8..2).prop_map(|(conn, target, tag)| Step::Connect {
            conn,
            target,
            tag
        }),
        (c.clone(), any::<u8>(), any::<bool>()).prop_map(|(conn, pick, forged)| Step::Accept {
            conn,
            pick,
            forged
        }),
        c.clone().prop_map(|conn| Step::Ping { conn }),
        c.clone().prop_map(|conn| Step::Malformed { conn }),
        c.prop_map(|conn| Step::Close { conn }),
        (0u16..30_000).prop_map(|millis| Step::Wait { millis }),
    ]
}

fn small_config() -> RelayConfig {
    RelayConfig {
        max_controls: 5,
        max_controls_per_source: 3,
        max_per_tag: 4,
        max_pending: 4,
        max_pending_per_source: 2,
        max_pairs: 3,
        max_spliced_per_source: 3,
        max_fresh: 6,
        max_fresh_per_source: 4,
        ..RelayConfig::default()
    }
}

impl Relay {
    /// Recounts everything from the connection table and checks it against
    /// the counters and the caps.
    fn check_invariants(&self) {
        let c = &self.config;
        let mut per: HashMap<Source, Counts> = HashMap::new();
        let mut totals = Counts::default();
        for (id, e) in &self.conns {
            let k = per.entry(e.source).or_default();
            match e.conn {
                Conn::Dialer { session } => {
                    assert_eq!(self.pending.get(&session).map(|p| p.dialer), Some(*id));
                }
                Conn::Spliced { partner } => {
                    let Some(Entry {
                        conn: Conn::Spliced { partner: back },
                        ..
                    }) = self.conns.get(&partner)
                    else {
                        panic!("spliced {id} without its partner {partner}");
                    };
                    assert_eq!(back, id);
                }
                Conn::Fresh { .. } | Conn::Control { .. } => {}
            }
            match e.conn {
                Conn::Fresh { .. } => {
                    k.fresh += 1;
                    totals.fresh += 1
                }
                Conn::Control { .. } => {
                    k.controls += 1;
                    totals.controls += 1
                }
                Conn::Dialer { .. } => {
                    k.pending += 1;
                    totals.pending += 1
                }
                Conn::Spliced { .. } => {
                    k.spliced += 1;
                    totals.spliced += 1
                }
            }
        }
        per.retain(|_, v| !v.is_zero());
        assert_eq!(per, self.counts);
        assert_eq!(totals, self.totals);
        assert_eq!(totals.spliced, 2 * self.pairs);
        assert_eq!(self.pending.len(), totals.pending);
        let registered: usize = self.tags.values().map(Vec::len).sum();
        assert_eq!(registered, totals.controls);
        assert!(totals.fresh <= c.max_fresh);
        assert!(totals.controls <= c.max_controls);
        assert!(totals.pending <= c.max_pending);
        assert!(self.pairs <= c.max_pairs);
        for k in self.counts.values() {
            assert!(k.fresh <= c.max_fresh_per_source);
            assert!(k.controls <= c.max_controls_per_source);
            assert!(k.pending <= c.max_pending_per_source);
            assert!(k.spliced <= c.max_spliced_per_source);
        }
        for list in self.tags.values() {
            assert!(list.len() <= c.max_per_tag && !list.is_empty());
            let peers: HashSet<_> = list.iter().map(|(p, _)| p).collect();
            assert_eq!(peers.len(), list.len(), "one registration per (tag, peer)");
        }
        for p in self.pending.values() {
            assert!(matches!(
                self.conns.get(&p.target).map(|e| e.conn),
                Some(Conn::Control { .. })
            ));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever happens: counters match the tables, caps hold, a splice
    /// happens only for a session the relay sent in an invitation, and at
    /// most once; nothing pending outlives its deadline by more than a sweep.
    #[test]
    fn caps_and_invariants_hold_under_any_sequence(steps in proptest::collection::vec(step(), 1..200)) {
        let (mut r, t0) = relay(small_config());
        let mut now = t0;
        let mut invited: Vec<SessionId> = Vec::new();
        let mut spliced: HashSet<SessionId> = HashSet::new();
        let mut pending_since: HashMap<SessionId, Instant> = HashMap::new();
        // Which conn accepted which session, to map Splice outputs back.
        let mut accepting: HashMap<ConnId, SessionId> = HashMap::new();
        let tags = [FolderTag([0; 32]), FolderTag([1; 32])];
        let mut next_conn_base = 0u64;
        let mut live: HashMap<u8, ConnId> = HashMap::new();
        for s in steps {
            match s {
                Step::Open { conn, source } => {
                    next_conn_base += 1;
                    if r.handle_connection(now, next_conn_base, ip(source)).is_ok() {
                        live.insert(conn, next_conn_base);
                    }
                }
                Step::Register { conn, peer, tag } => if let Some(&id) = live.get(&conn) {
                    r.handle_message(now, id, ClientMessage::Register { tag: tags[tag as usize], peer: PeerId([peer; 32]) });
                },
                Step::Lookup { conn, tag } => if let Some(&id) = live.get(&conn) {
                    r.handle_message(now, id, ClientMessage::Lookup { tag: tags[tag as usize] });
                },
                Step::Connect { conn, target, tag } => if let Some(&id) = live.get(&conn) {
                    r.handle_message(now, id, ClientMessage::Connect {
                        tag: tags[tag as usize], target: PeerId([target; 32]), from: PeerId([9; 32]), token: PairingToken([0; 32]) });
                },
                Step::Accept { conn, pick, forged } => if let Some(&id) = live.get(&conn) {
                    let session = if forged || invited.is_empty() {
                        SessionId([pick; 32])
                    } else {
                        invited[pick as usize % invited.len()]
                    };
                    accepting.insert(id, session);
                    r.handle_message(now, id, ClientMessage::Accept { session });
                },
                Step::Ping { conn } => if let Some(&id) = live.get(&conn) {
                    r.handle_message(now, id, ClientMessage::Ping);
                },
                Step::Malformed { conn } => if let Some(&id) = live.get(&conn) {
                    r.handle_malformed(id, &ProtoError::UnknownType(0x42));
                },
                Step::Close { conn } => if let Some(id) = live.remove(&conn) {
                    r.handle_closed(id);
                },
                Step::Wait { millis } => {
                    now += Duration::from_millis(u64::from(millis));
                    r.handle_timeout(now);
                }
            }
            while let Some(o) = r.poll_output() {
                match o {
                    Output::Send { message: RelayMessage::Invite { session, .. }, .. } => {
                        prop_assert!(!invited.contains(&session), "session ids are unique");
                        invited.push(session);
                        pending_since.insert(session, now);
                    }
                    Output::Send { message: RelayMessage::Peers(p), .. } => {
                        prop_assert!(p.len() <= MAX_PEERS);
                    }
                    Output::Splice { acceptor, .. } => {
                        let session = accepting[&acceptor];
                        prop_assert!(invited.contains(&session), "spliced an uninvited session");
                        prop_assert!(spliced.insert(session), "spliced a session twice");
                        let since = pending_since[&session];
                        prop_assert!(now.duration_since(since) < Duration::from_secs(10) + SWEEP);
                    }
                    _ => {}
                }
            }
            r.check_invariants();
        }
    }
}
