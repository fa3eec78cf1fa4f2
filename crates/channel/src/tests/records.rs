use std::collections::HashSet;

use super::util::pump;
use crate::record::{self, MAX_PAYLOAD, MAX_RECORD_LEN};
use crate::testkit::session_pair;
use crate::{ChannelError, MAX_RECORDS_PER_KEY, Session, Violation};

fn pair() -> (Session, Session) {
    session_pair(crate::DEFAULT_REKEY_AFTER).unwrap()
}

/// Encrypts each message separately and returns the records one by one.
fn records(s: &mut Session, msgs: &[&[u8]]) -> Vec<Vec<u8>> {
    msgs.iter()
        .map(|m| {
            s.encrypt(m).unwrap();
            s.poll_output().unwrap()
        })
        .collect()
}

fn violation(e: ChannelError) -> Violation {
    match e {
        ChannelError::Peer(v) => v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn round_trip_large_and_empty() {
    let (mut a, mut b) = pair();
    let big: Vec<u8> = (0..3 * MAX_PAYLOAD + 5).map(|i| (i % 251) as u8).collect();
    a.encrypt(&big).unwrap();
    a.encrypt(b"").unwrap();
    let out = a.poll_output().unwrap();
    // Four records: three full ones and the rest.
    assert_eq!(out.len(), big.len() + 4 * (4 + 1 + 16));
    b.handle_input(&out).unwrap();
    assert_eq!(b.poll_plaintext().unwrap(), big);
    assert!(b.poll_plaintext().is_none());
}

#[test]
fn gathered_parts_are_sealed_as_their_concatenation() {
    let (mut a, mut b) = pair();
    let big: Vec<u8> = (0..2 * MAX_PAYLOAD + 7).map(|i| (i % 241) as u8).collect();
    let parts: [&[u8]; 5] = [b"head", &[], &big, b"x", &big[..MAX_PAYLOAD - 3]];
    a.encrypt_gathered(&parts).unwrap();
    let out = a.poll_output().unwrap();
    let whole = parts.concat();
    // Full records, then the rest: as many as for the concatenation.
    let records = whole.len().div_ceil(MAX_PAYLOAD);
    assert_eq!(out.len(), whole.len() + records * (4 + 1 + 16));
    b.handle_input(&out).unwrap();
    let mut got = Vec::new();
    while let Some(p) = b.poll_plaintext() {
        got.extend_from_slice(&p);
    }
    assert_eq!(got, whole);
    // Nothing at all makes no record.
    a.encrypt_gathered(&[&[], &[]]).unwrap();
    assert!(a.poll_output().is_none());
}

#[test]
fn rejects_any_flipped_bit_and_releases_nothing() {
    let (mut a, _) = pair();
    let rec = records(&mut a, &[b"attack at dawn"]).remove(0);
    for i in 0..rec.len() {
        for bit in [0x01, 0x80] {
            let (mut a, mut b) = pair();
            let mut rec = records(&mut a, &[b"attack at dawn"]).remove(0);
            rec[i] ^= bit;
            match b.handle_input(&rec) {
                Err(ChannelError::Peer(
                    Violation::BadTag
                    | Violation::RecordTooLong { .. }
                    | Violation::RecordTooShort { .. },
                )) => {}
                // A length made longer but still legal: the record never completes.
                Ok(()) => assert!(matches!(b.handle_eof(), Err(ChannelError::Truncated))),
                Err(other) => panic!("byte {i}: {other:?}"),
            }
            assert!(b.poll_plaintext().is_none(), "byte {i}: plaintext released");
        }
    }
}

#[test]
fn rejects_dropped_duplicated_replayed_and_reordered_records() {
    let msgs: [&[u8]; 3] = [b"one", b"two", b"three"];
    // Dropped: 0 then 2.
    let (mut a, mut b) = pair();
    let r = records(&mut a, &msgs);
    b.handle_input(&r[0]).unwrap();
    assert_eq!(
        violation(b.handle_input(&r[2]).unwrap_err()),
        Violation::BadTag
    );
    // Duplicated: 0, 0.
    let (mut a, mut b) = pair();
    let r = records(&mut a, &msgs);
    b.handle_input(&r[0]).unwrap();
    assert_eq!(
        violation(b.handle_input(&r[0]).unwrap_err()),
        Violation::BadTag
    );
    // Replayed later: 0, 1, 0.
    let (mut a, mut b) = pair();
    let r = records(&mut a, &msgs);
    b.handle_input(&[r[0].clone(), r[1].clone()].concat())
        .unwrap();
    assert_eq!(b.poll_plaintext().unwrap(), b"onetwo");
    assert_eq!(
        violation(b.handle_input(&r[0]).unwrap_err()),
        Violation::BadTag
    );
    // Reordered: 1 before 0.
    let (mut a, mut b) = pair();
    let r = records(&mut a, &msgs);
    assert_eq!(
        violation(b.handle_input(&r[1]).unwrap_err()),
        Violation::BadTag
    );
    // Reflected: a record sent back to its sender.
    let (mut a, _) = pair();
    let r = records(&mut a, &msgs);
    assert_eq!(
        violation(a.handle_input(&r[0]).unwrap_err()),
        Violation::BadTag
    );
}

#[test]
fn after_a_failure_nothing_more_is_released() {
    let (mut a, mut b) = pair();
    let r = records(&mut a, &[b"good", b"bad", b"later"]);
    let mut bad = r[1].clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    // The good record and the bad one in one call: the good plaintext is dropped too.
    let err = b.handle_input(&[r[0].clone(), bad].concat()).unwrap_err();
    assert_eq!(violation(err), Violation::BadTag);
    assert!(b.poll_plaintext().is_none());
    assert_eq!(b.read_plaintext(&mut [0; 16]), 0);
    assert!(matches!(b.handle_input(&r[2]), Err(ChannelError::Failed)));
    assert!(matches!(b.encrypt(b"x"), Err(ChannelError::Failed)));
    // It told the peer, authenticated, why it gave up.
    let abort = b.poll_output().unwrap();
    assert!(matches!(
        a.handle_input(&abort),
        Err(ChannelError::PeerAborted(
            crate::AbortCode::ProtocolViolation
        ))
    ));
}

#[test]
fn truncation_is_detected_and_close_is_clean() {
    // Cut between records.
    let (mut a, mut b) = pair();
    a.encrypt(b"partial").unwrap();
    b.handle_input(&a.poll_output().unwrap()).unwrap();
    assert!(matches!(b.handle_eof(), Err(ChannelError::Truncated)));
    assert!(b.poll_plaintext().is_none());
    // Cut inside a record.
    let (mut a, mut b) = pair();
    a.encrypt(b"partial").unwrap();
    let out = a.poll_output().unwrap();
    b.handle_input(&out[..out.len() - 3]).unwrap();
    assert!(matches!(b.handle_eof(), Err(ChannelError::Truncated)));
    // Cut off the close.
    let (mut a, mut b) = pair();
    a.encrypt(b"all").unwrap();
    a.close().unwrap();
    let out = a.poll_output().unwrap();
    b.handle_input(&out[..out.len() - 1]).unwrap();
    assert!(matches!(b.handle_eof(), Err(ChannelError::Truncated)));
    // Whole: clean.
    let (mut a, mut b) = pair();
    a.encrypt(b"all").unwrap();
    a.close().unwrap();
    assert!(matches!(a.encrypt(b"more"), Err(ChannelError::Closed)));
    b.handle_input(&a.poll_output().unwrap()).unwrap();
    assert!(b.is_peer_closed());
    assert_eq!(b.poll_plaintext().unwrap(), b"all");
    b.handle_eof().unwrap();
    // b can still send (half close).
    b.encrypt(b"bye").unwrap();
    a.handle_input(&b.poll_output().unwrap()).unwrap();
    assert_eq!(a.poll_plaintext().unwrap(), b"bye");
}

#[test]
fn data_after_close_is_a_violation() {
    let (mut a, mut b) = pair();
    a.close().unwrap();
    let close = a.poll_output().unwrap();
    b.handle_input(&close).unwrap();
    assert_eq!(
        violation(b.handle_input(&[0, 0, 0, 17]).unwrap_err()),
        Violation::DataAfterClose
    );
}

#[test]
fn oversized_and_undersized_records_fail_on_the_header() {
    let (_, mut b) = pair();
    let len = u32::try_from(MAX_RECORD_LEN + 1).unwrap().to_be_bytes();
    assert!(matches!(
        violation(b.handle_input(&len).unwrap_err()),
        Violation::RecordTooLong {
            len: 65554,
            max: 65553
        }
    ));
    let (_, mut b) = pair();
    b.handle_input(&[0xFF]).unwrap();
    assert!(matches!(
        violation(b.handle_input(&[0xFF, 0xFF, 0xFF]).unwrap_err()),
        Violation::RecordTooLong { .. }
    ));
    let (_, mut b) = pair();
    assert!(matches!(
        violation(b.handle_input(&[0, 0, 0, 16]).unwrap_err()),
        Violation::RecordTooShort { len: 16, min: 17 }
    ));
}

#[test]
fn nonces_never_repeat_and_keys_update_at_the_threshold() {
    let (mut a, mut b) = session_pair(4).unwrap();
    let mut seen = HashSet::new();
    let mut positions = Vec::new();
    for i in 0..40u32 {
        // The (traffic secret, nonce) the next record will use is fresh, always.
        assert!(seen.insert(a.peek_send_nonce()), "reuse at record {i}");
        a.encrypt(&i.to_be_bytes()).unwrap();
        positions.push(a.send_position());
        let got = pump(&mut a, &mut b).unwrap();
        assert_eq!(got, i.to_be_bytes());
    }
    // Three data records per key, then the key update (the 4th record) moves on.
    assert_eq!(positions[0], (0, 1));
    assert_eq!(positions[1], (0, 2));
    assert_eq!(positions[2], (1, 0));
    assert_eq!(positions[3], (1, 1));
    assert_eq!(positions[39], (13, 1));
    assert_eq!(b.recv_position(), a.send_position());
    // Counters strictly increase within a key.
    for w in positions.windows(2) {
        assert!(w[1] > w[0]);
    }
}

#[test]
fn a_peer_that_never_updates_its_key_hits_the_hard_limit() {
    let (mut a, mut b) = pair();
    a.encrypt(b"x").unwrap();
    let rec = a.poll_output().unwrap();
    b.recv.dir.set_seq(MAX_RECORDS_PER_KEY);
    assert_eq!(
        violation(b.handle_input(&rec).unwrap_err()),
        Violation::KeyExhausted
    );
    // And the sender can never reach it: it would fail rather than reuse a nonce.
    let (mut a, _) = pair();
    a.send.dir.set_seq(MAX_RECORDS_PER_KEY);
    assert!(matches!(a.encrypt(b"x"), Err(ChannelError::Crypto(_))));
}

#[test]
fn key_update_with_payload_and_unknown_types_are_rejected() {
    use crate::record::kind;
    for (ty, payload, want) in [
        (
            kind::KEY_UPDATE,
            &b"x"[..],
            Violation::MalformedControl("key-update"),
        ),
        (kind::CLOSE, &b""[..], Violation::MalformedControl("close")),
        (
            kind::ACCESS_PROOF,
            &b""[..],
            Violation::UnexpectedAccessProof,
        ),
        (0x42, &b""[..], Violation::UnknownRecordType(0x42)),
    ] {
        let (mut a, mut b) = pair();
        let mut out = Vec::new();
        a.send.seal_for_tests(ty, payload, &mut out).unwrap();
        assert_eq!(violation(b.handle_input(&out).unwrap_err()), want);
    }
    let _ = record::MIN_RECORD_LEN;
}

#[test]
fn close_at_the_rekey_threshold_is_the_last_record() {
    // Regression (found by proptest): a close that filled the key's share was
    // followed by a key update, which the peer rightly called data after close.
    let (mut a, mut b) = session_pair(2).unwrap();
    a.close().unwrap();
    b.handle_input(&a.poll_output().unwrap()).unwrap();
    b.handle_eof().unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Pinned key-schedule vectors, also printed in docs/protocol/channel.md §7.
#[test]
fn key_schedule_vectors() {
    use crate::record::Direction;
    let (c2s, s2c) = crate::handshake::traffic_secrets(&[0x01; 32], &[0x02; 32]).unwrap();
    let mut d = Direction::new(c2s.clone()).unwrap();
    let (key0, iv0) = d.key_iv();
    d.ratchet_for_tests();
    let (key1, iv1) = d.key_iv();
    let got = [
        hex(&*c2s),
        hex(&*s2c),
        hex(&key0),
        hex(&iv0),
        hex(&key1),
        hex(&iv1),
    ];
    println!("{got:#?}");
    let want = [
        "39c1a882ba788882819a21c71f54d4042f92668ff5bc529b2111339fa0642cb9",
        "346535fc18424ba33f0116880d24c70c7d37261a6b27393451f2bf6030562ab1",
        "ac2d7281f401c2daa3dab573313f96d0",
        "163bdbeb00cd741f95634b62",
        "98c5703da06ecd7725e6af1368c6de37",
        "d1a54e7f8428c98f06b4f915",
    ];
    assert_eq!(got, want.map(String::from));
    // The first two records under that key: data "hello" (seq 0), then close (seq 1).
    let mut sender = crate::record::Sender::new(Direction::new(c2s).unwrap(), 1 << 24);
    let mut out = Vec::new();
    sender.data(b"hello", &mut out).unwrap();
    sender.close(0, &mut out).unwrap();
    assert_eq!(
        hex(&out),
        "00000016f392e000a6e61437e40da02ba8157eaf09203e57e3b2\
         00000012070e455ffdce40c0c3cf298b7815e84b5b5f"
    );
}
