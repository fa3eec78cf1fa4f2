use std::time::{Duration, Instant};

use keys::{Access, FolderId, PeerId};

use super::util::*;
use crate::handshake::msg::{self, Hello, kind};
use crate::{ChannelConfig, ChannelError, Handshake, PeerAccess, Role, Violation};

/// What `viewer` (holding `viewer_key`) should conclude about a peer with `peer_key`.
fn expected(viewer_key: Access, peer_key: Access) -> PeerAccess {
    let verified = if viewer_key == Access::Encrypted {
        Access::Encrypted
    } else {
        peer_key
    };
    PeerAccess {
        verified,
        claimed: peer_key,
    }
}

#[test]
fn every_pair_of_access_levels_learns_the_right_level() {
    for (i, a_level) in ALL.into_iter().enumerate() {
        for (j, b_level) in ALL.into_iter().enumerate() {
            // Alternate which side is the SRP client.
            let (pa, pb) = if (i + j) % 2 == 0 { (1, 2) } else { (2, 1) };
            let (mut a, mut b) = established(&config(pa, a_level), &config(pb, b_level));
            assert_eq!(
                a.info().peer_access,
                expected(a_level, b_level),
                "{a_level} sees {b_level}"
            );
            assert_eq!(
                b.info().peer_access,
                expected(b_level, a_level),
                "{b_level} sees {a_level}"
            );
            assert_eq!(a.peer_access(), expected(a_level, b_level).verified);
            assert_eq!(a.info().transcript_hash, b.info().transcript_hash);
            assert_eq!(a.peer_id(), PeerId([pb; 32]));
            assert_ne!(a.info().role, b.info().role);
            // And the pipe works both ways.
            a.encrypt(b"ping").unwrap();
            assert_eq!(pump(&mut a, &mut b).unwrap(), b"ping");
            b.encrypt(b"pong").unwrap();
            assert_eq!(pump(&mut b, &mut a).unwrap(), b"pong");
        }
    }
}

#[test]
fn roles_come_from_peer_ids_not_from_who_starts() {
    for (pa, pb) in [(1, 2), (2, 1)] {
        let (a, b) = established(
            &config(pa, Access::ReadWrite),
            &config(pb, Access::ReadWrite),
        );
        let want = if pa < pb { Role::Client } else { Role::Server };
        assert_eq!(a.info().role, want);
        assert_eq!(b.info().role, want.peer());
    }
    assert_eq!(
        Role::decide(&PeerId([1; 32]), &PeerId([2; 32])),
        Role::Client
    );
}

#[test]
fn wrong_secret_fails_on_both_sides_whichever_side_is_wrong() {
    for (pa, pb) in [(1, 2), (2, 1)] {
        let good = config(pa, Access::ReadWrite);
        let impostor = ChannelConfig::new(
            PeerId([pb; 32]),
            creds(Access::Encrypted).with_srp_password([0x55; 32]),
        );
        let (a, b) = run_with(&good, &impostor, true, |_, _, bytes| vec![bytes]);
        assert!(matches!(a.error(), ChannelError::AuthFailed));
        assert!(matches!(b.error(), ChannelError::AuthFailed));
    }
}

#[test]
fn mismatched_folder_version_and_self_are_clean_errors() {
    let a = config(1, Access::ReadWrite);
    let other = keys::FolderKey::ReadWrite(keys::RwSecret::from_bytes([8; 20]));
    let b = ChannelConfig::new(PeerId([2; 32]), crate::FolderCredentials::new(&other));
    let (x, y) = run(&a, &b);
    assert!(matches!(x.error(), ChannelError::FolderMismatch { .. }));
    assert!(matches!(y.error(), ChannelError::FolderMismatch { .. }));

    let (x, y) = run(&a, &config(1, Access::ReadOnly));
    assert!(matches!(x.error(), ChannelError::ConnectedToSelf));
    assert!(matches!(y.error(), ChannelError::ConnectedToSelf));

    let mut hs = Handshake::new(&a, Instant::now(), &mut det_rng(1)).unwrap();
    let hello = Hello {
        min_version: 2,
        max_version: 7,
        folder_id: a.folders()[0].folder_id(),
        peer_id: PeerId([2; 32]),
        nonce: [0; 32],
    };
    let err = hs.handle_input(&hello.encode()).unwrap_err();
    assert!(matches!(
        err,
        ChannelError::UnsupportedVersion {
            ours: (1, 1),
            theirs: (2, 7)
        }
    ));
    assert!(matches!(hs.handle_input(b"x"), Err(ChannelError::Failed)));
}

#[test]
fn listener_serving_several_folders_picks_by_folder_id() {
    let other = keys::FolderKey::ReadWrite(keys::RwSecret::from_bytes([8; 20]));
    let listener = ChannelConfig::serving(
        PeerId([9; 32]),
        vec![
            crate::FolderCredentials::new(&other),
            creds(Access::ReadOnly),
        ],
    )
    .unwrap();
    let mut quiet = Handshake::new(&listener, Instant::now(), &mut det_rng(3)).unwrap();
    assert!(
        quiet.poll_output().is_none(),
        "waits for the dialer's hello"
    );
    let (a, b) = established(&config(1, Access::ReadWrite), &listener);
    assert_eq!(a.peer_access(), Access::ReadOnly);
    assert_eq!(
        b.info().folder_id,
        config(1, Access::ReadWrite).folders()[0].folder_id()
    );

    let stranger = ChannelConfig::new(
        PeerId([1; 32]),
        crate::FolderCredentials::new(&keys::FolderKey::ReadWrite(keys::RwSecret::from_bytes(
            [1; 20],
        ))),
    );
    let (_, b) = run(&stranger, &listener);
    assert!(matches!(b.error(), ChannelError::UnknownFolder(_)));
    assert!(ChannelConfig::serving(PeerId([9; 32]), vec![]).is_err());
}

#[test]
fn handshake_times_out_on_its_deadline() {
    let cfg = config(1, Access::ReadWrite).with_handshake_timeout(Duration::from_secs(5));
    let t0 = Instant::now();
    let mut hs = Handshake::new(&cfg, t0, &mut det_rng(1)).unwrap();
    assert_eq!(hs.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    hs.handle_timeout(t0 + Duration::from_secs(4)).unwrap();
    assert!(matches!(
        hs.handle_timeout(t0 + Duration::from_secs(5)),
        Err(ChannelError::Timeout)
    ));
    assert_eq!(hs.poll_timeout(), None);
}

#[test]
fn eof_during_handshake_is_truncated() {
    let mut hs = Handshake::new(
        &config(1, Access::ReadWrite),
        Instant::now(),
        &mut det_rng(1),
    )
    .unwrap();
    hs.handle_input(&[0x53, 0x57]).unwrap();
    assert!(matches!(hs.handle_eof(), Err(ChannelError::Truncated)));
}

#[test]
fn stranger_bytes_are_bad_magic() {
    let mut hs = Handshake::new(
        &config(1, Access::ReadWrite),
        Instant::now(),
        &mut det_rng(1),
    )
    .unwrap();
    let err = hs.handle_input(b"GET / HTTP/1.1\r\n").unwrap_err();
    assert!(matches!(err, ChannelError::Peer(Violation::BadMagic)));
}

/// A handshake that has read the peer's hello and waits for A or B.
fn after_hello(our_peer: u8, their_peer: u8) -> Handshake {
    let cfg = config(our_peer, Access::ReadWrite);
    let mut hs = Handshake::new(&cfg, Instant::now(), &mut det_rng(1)).unwrap();
    let hello = Hello {
        min_version: 1,
        max_version: 1,
        folder_id: cfg.folders()[0].folder_id(),
        peer_id: PeerId([their_peer; 32]),
        nonce: [4; 32],
    };
    hs.handle_input(&hello.encode()).unwrap();
    hs
}

#[test]
fn oversized_and_zero_a_and_b_are_rejected_without_panicking() {
    // We are the server (higher id): the peer's A. We are the client: the peer's B.
    for (ours, theirs, kind) in [(2, 1, kind::SRP_A), (1, 2, kind::SRP_B)] {
        let cases: [(Vec<u8>, Violation); 5] = [
            (
                vec![0x01; 385],
                Violation::SrpPublicTooLong { len: 385, max: 384 },
            ),
            (
                vec![0xFF; 1024],
                Violation::SrpPublicTooLong {
                    len: 1024,
                    max: 384,
                },
            ),
            (vec![0; 384], Violation::SrpPublicZero),
            (vec![], Violation::SrpPublicZero),
            (vec![0xFF; 384], Violation::SrpPublicOutOfRange),
        ];
        for (value, want) in cases {
            let mut hs = after_hello(ours, theirs);
            let err = hs
                .handle_input(&msg::encode_frame(kind, &value))
                .unwrap_err();
            assert!(
                matches!(err, ChannelError::Peer(v) if v == want),
                "{kind}: {err:?} for {} bytes",
                value.len()
            );
            // The failing side tells the peer (cleartext alert: protocol violation).
            let out = hs.poll_output().unwrap();
            assert!(out.ends_with(&[kind::ALERT, 0, 1, 2]), "{out:?}");
        }
    }
}

#[test]
fn unexpected_and_malformed_messages_are_violations() {
    let mut hs = after_hello(2, 1); // server, waits for A
    let err = hs
        .handle_input(&msg::encode_frame(kind::CLIENT_PROOF, &[0; 32]))
        .unwrap_err();
    assert!(matches!(
        err,
        ChannelError::Peer(Violation::UnexpectedMessage { got: 3, .. })
    ));
    let mut hs = after_hello(2, 1);
    let err = hs.handle_input(&[kind::SRP_A, 0xFF, 0xFF]).unwrap_err();
    assert!(matches!(
        err,
        ChannelError::Peer(Violation::MessageTooLong { .. })
    ));
    let mut hs = after_hello(2, 1);
    let err = hs
        .handle_input(&msg::encode_frame(kind::ALERT, &[3]))
        .unwrap_err();
    assert!(matches!(
        err,
        ChannelError::PeerAborted(crate::AbortCode::AccessRejected)
    ));
}

#[test]
fn bit_flips_in_the_handshake_fail_cleanly() {
    let ca = config(1, Access::ReadWrite);
    let cb = config(2, Access::ReadOnly);
    // Transmissions of an honest run, to know how many there are and their sizes.
    let mut sizes = Vec::new();
    let _ = run_with(&ca, &cb, false, |_, _, bytes| {
        sizes.push(bytes.len());
        vec![bytes]
    });
    assert!(sizes.len() >= 4, "{sizes:?}");
    // The handshake proper: hellos, A/B, M1, M2 + server proof, client proof.
    for (target, &len) in sizes.iter().enumerate().take(6) {
        for pos in [0, 9, len / 2, len - 1] {
            let (a, b) = run_with(&ca, &cb, true, |_, n, mut bytes| {
                if n == target {
                    bytes[pos] ^= 0x10;
                }
                vec![bytes]
            });
            assert!(
                a.is_err() && b.is_err(),
                "flip at {target}/{pos}: {a:?} {b:?}"
            );
        }
    }
}

#[test]
fn folder_id_in_hello_names_the_folder() {
    let cfg = config(1, Access::Encrypted);
    let id: FolderId = cfg.folders()[0].folder_id();
    let mut hs = Handshake::new(&cfg, Instant::now(), &mut det_rng(5)).unwrap();
    let hello = hs.poll_output().unwrap();
    let (parsed, used) = Hello::decode(&hello).unwrap().unwrap();
    assert_eq!(used, hello.len());
    assert_eq!(parsed.folder_id, id);
    assert_eq!(parsed.peer_id, PeerId([1; 32]));
}

#[test]
fn records_of_one_session_are_rejected_by_another() {
    let ca = config(1, Access::ReadWrite);
    let cb = config(2, Access::ReadWrite);
    let (a1, b1) = run_seeded(&ca, &cb, (1, 2), false, |_, _, b| vec![b]);
    let (a2, b2) = run_seeded(&ca, &cb, (3, 4), false, |_, _, b| vec![b]);
    let (mut a1, _b1, _a2, mut b2) = (a1.session(), b1.session(), a2.session(), b2.session());
    assert_ne!(a1.info().transcript_hash, b2.info().transcript_hash);
    a1.encrypt(b"old session").unwrap();
    let rec = a1.poll_output().unwrap();
    assert!(matches!(
        b2.handle_input(&rec),
        Err(ChannelError::Peer(Violation::BadTag))
    ));
}

#[test]
fn a_reflected_access_proof_is_rejected() {
    // Send each side's own first record back to it: the proof names its sender.
    let ca = config(1, Access::ReadOnly);
    let cb = config(2, Access::ReadOnly);
    let (_, b) = run_with(&ca, &cb, false, |dir, n, bytes| {
        // The server's M2 + proof travel B to A; feed them to A untouched, but the
        // check below is done directly on the proof functions.
        let _ = (dir, n);
        vec![bytes]
    });
    let s = b.session();
    let th = s.info().transcript_hash;
    let creds = creds(Access::ReadOnly);
    let proof = crate::proof::make(&creds, Role::Server, &th);
    assert!(crate::proof::verify(&creds, Role::Server, &th, &proof).is_ok());
    assert_eq!(
        crate::proof::verify(&creds, Role::Client, &th, &proof),
        Err(Violation::BadAccessProof {
            claimed: Access::ReadOnly
        })
    );
    let rw = crate::proof::make(&super::util::creds(Access::ReadWrite), Role::Client, &th);
    assert_eq!(
        crate::proof::verify(&creds, Role::Server, &th, &rw),
        Err(Violation::BadAccessProof {
            claimed: Access::ReadWrite
        })
    );
    // An encrypted peer cannot check: it sees the claim, trusts only Encrypted.
    let enc = super::util::creds(Access::Encrypted);
    assert_eq!(
        crate::proof::verify(&enc, Role::Client, &th, &rw),
        Ok(PeerAccess {
            verified: Access::Encrypted,
            claimed: Access::ReadWrite
        })
    );
    // Malformed proofs are violations whatever we hold.
    for bad in [&[][..], &[3][..], &[0, 1][..], &[1; 5][..], &[2; 10][..]] {
        assert_eq!(
            crate::proof::verify(&enc, Role::Client, &th, bad),
            Err(Violation::MalformedAccessProof)
        );
    }
}

#[test]
fn a_lower_level_cannot_claim_a_higher_one() {
    // A read-only peer that claims read-write (it has no signing key, so it can
    // only send garbage of the right size) is caught by anyone holding the RO key.
    let th = [9u8; 32];
    let mut forged = vec![2u8];
    forged.extend_from_slice(&[0xAB; 64]);
    for viewer in [Access::ReadWrite, Access::ReadOnly] {
        assert_eq!(
            crate::proof::verify(&creds(viewer), Role::Client, &th, &forged),
            Err(Violation::BadAccessProof {
                claimed: Access::ReadWrite
            })
        );
    }
    // An encrypted peer claiming read-only with a made-up MAC.
    let mut forged = vec![1u8];
    forged.extend_from_slice(&[0xCD; 32]);
    assert_eq!(
        crate::proof::verify(&creds(Access::ReadWrite), Role::Client, &th, &forged),
        Err(Violation::BadAccessProof {
            claimed: Access::ReadOnly
        })
    );
}

/// One deterministic handshake, pinned in `testdata/transcript.txt`, which
/// `testdata/independent_check.py` recomputes from the spec (Python stdlib only).
#[test]
fn deterministic_transcript_dump() {
    let ca = config(1, Access::ReadWrite);
    let cb = config(2, Access::ReadOnly);
    let now = Instant::now();
    let mut a = Handshake::new(&ca, now, &mut det_rng(100)).unwrap();
    let mut b = Handshake::new(&cb, now, &mut det_rng(200)).unwrap();
    while !(a.is_established() && b.is_established()) {
        if let Some(x) = a.poll_output() {
            b.handle_input(&x).unwrap();
        }
        if let Some(x) = b.poll_output() {
            a.handle_input(&x).unwrap();
        }
    }
    let parts = a.transcript_parts();
    assert_eq!(parts, b.transcript_parts());
    // Handshake::new draws the nonce (32 bytes), then a or b (48 bytes).
    let ephemeral = |seed| {
        let mut rng = det_rng(seed);
        let mut nonce = [0u8; 32];
        let mut e = [0u8; 48];
        rng(&mut nonce).unwrap();
        rng(&mut e).unwrap();
        e
    };
    let (eph_a, eph_b) = (ephemeral(100), ephemeral(200));
    let th = a.take_session().unwrap().info().transcript_hash;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let pw = keys::FolderKey::ReadWrite(rw())
        .encrypted_secret()
        .srp_password();
    let mut dump = String::new();
    let mut line = |name: &str, bytes: &[u8]| dump.push_str(&format!("{name} {}\n", hex(bytes)));
    line("password", pw.as_bytes());
    line("folder", ca.folders()[0].folder_id().as_bytes());
    line("a", &eph_a);
    line("b", &eph_b);
    for (name, p) in ["ch", "sh", "ma", "mb", "m1", "m2"].iter().zip(&parts) {
        line(name, p);
    }
    line("th", &th);
    print!("{dump}");
    // testdata/independent_check.py recomputes this file from the spec alone.
    assert_eq!(dump, include_str!("../../testdata/transcript.txt"));
}

#[test]
fn a_forged_access_claim_fails_the_handshake_on_both_sides() {
    for liar_level in [Access::Encrypted, Access::ReadOnly] {
        for claim in [Access::ReadOnly, Access::ReadWrite] {
            if claim <= liar_level {
                continue;
            }
            // Either role lies; the honest side holds the RO key and can check.
            for (liar_peer, honest_peer) in [(1, 2), (2, 1)] {
                let liar =
                    ChannelConfig::new(PeerId([liar_peer; 32]), creds(liar_level).forging(claim));
                let honest = config(honest_peer, Access::ReadOnly);
                let (l, h) = run_with(&liar, &honest, true, |_, _, b| vec![b]);
                assert!(
                    matches!(
                        h.error(),
                        ChannelError::Peer(Violation::BadAccessProof { claimed }) if claimed == claim
                    ),
                    "{liar_level} claiming {claim}"
                );
                // The liar hears why, authenticated.
                assert!(
                    matches!(
                        l.error(),
                        ChannelError::PeerAborted(crate::AbortCode::AccessRejected)
                    ),
                    "{liar_level} claiming {claim}"
                );
            }
            // An encrypted peer cannot check, and trusts only its own level.
            let liar = ChannelConfig::new(PeerId([1; 32]), creds(liar_level).forging(claim));
            let (_, h) = run(&liar, &config(2, Access::Encrypted));
            let h = h.session();
            assert_eq!(
                h.info().peer_access,
                PeerAccess {
                    verified: Access::Encrypted,
                    claimed: claim
                }
            );
        }
    }
}
