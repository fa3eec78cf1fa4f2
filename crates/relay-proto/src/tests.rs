//! Codec tests: the worked example of `docs/protocol/relay.md` §7, derivation
//! vectors, round trips, and arbitrary bytes.

use keys::{FolderId, PeerId};
use proptest::prelude::*;

use crate::*;

fn folder() -> FolderId {
    let mut id = [0u8; 20];
    for (i, b) in id.iter_mut().enumerate() {
        *b = i as u8;
    }
    FolderId(id)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `docs/protocol/relay.md` §7 names these; an independent implementation
/// checks its BLAKE3 derive_key against them.
const FOLDER_TAG_VECTOR: &str = "44e3644e5df54592b5db13d036515f2bb6e1e48ea8351bc180623a76c3231073";
const PAIRING_TOKEN_VECTOR: &str =
    "37c67a6b55f172e4b5f07d450e65dc15de821f4155f8381295f8e1bbeac53f87";

#[test]
fn derivation_vectors() {
    let tag = FolderTag::of(&folder());
    assert_eq!(hex(&tag.0), FOLDER_TAG_VECTOR);
    let (p, q) = (PeerId([0x11; 32]), PeerId([0x22; 32]));
    let token = PairingToken::of(&folder(), &p, &q);
    assert_eq!(hex(&token.0), PAIRING_TOKEN_VECTOR);
    // Either order gives the same token, and it verifies from both sides.
    assert_eq!(PairingToken::of(&folder(), &q, &p), token);
    assert!(token.verify(&folder(), &p, &q));
    assert!(token.verify(&folder(), &q, &p));
    assert!(!token.verify(&FolderId([0; 20]), &p, &q));
    assert!(!token.verify(&folder(), &p, &PeerId([0x33; 32])));
    // The tag is not the token's derivation under another name.
    assert_ne!(tag.0, token.0);
}

#[test]
fn worked_example_bytes() {
    let connect = ClientMessage::Connect {
        tag: FolderTag([0xaa; 32]),
        target: PeerId([0x11; 32]),
        from: PeerId([0x22; 32]),
        token: PairingToken([0xcc; 32]),
    };
    let mut want = vec![0x03, 0x00, 0x80];
    for b in [0xaa, 0x11, 0x22, 0xcc] {
        want.extend_from_slice(&[b; 32]);
    }
    assert_eq!(connect.to_bytes(), want);

    let invite = RelayMessage::Invite {
        from: PeerId([0x22; 32]),
        token: PairingToken([0xcc; 32]),
        session: SessionId([0xee; 32]),
    };
    let mut want = vec![0x83, 0x00, 0x60];
    for b in [0x22, 0xcc, 0xee] {
        want.extend_from_slice(&[b; 32]);
    }
    assert_eq!(invite.to_bytes(), want);

    let accept = ClientMessage::Accept {
        session: SessionId([0xee; 32]),
    };
    let mut want = vec![0x04, 0x00, 0x20];
    want.extend_from_slice(&[0xee; 32]);
    assert_eq!(accept.to_bytes(), want);
    assert_eq!(RelayMessage::Spliced.to_bytes(), [0x84, 0, 0]);
    assert_eq!(PREAMBLE, [0x53, 0x57, 0x52, 0x4c, 0x01]);
    assert_eq!(check_preamble(&PREAMBLE), Ok(()));
    assert_eq!(
        check_preamble(b"SWRL\x02"),
        Err(ProtoError::UnsupportedVersion(2))
    );
    assert_eq!(
        check_preamble(b"GET /"),
        Err(ProtoError::BadMagic(*b"GET "))
    );
}

#[test]
fn header_checks_length_before_the_body() {
    assert_eq!(
        Header::parse(&[0x01, 0x00, 0x40]),
        Ok(Header { kind: 1, len: 64 })
    );
    assert_eq!(
        Header::parse(&[0x01, 0xff, 0xff]),
        Err(ProtoError::BadLength {
            kind: 1,
            len: 65535
        })
    );
    // Peers: whole ids only, at most 32.
    assert!(Header::parse(&[0x82, 0x04, 0x00]).is_ok());
    assert!(Header::parse(&[0x82, 0x04, 0x20]).is_err());
    assert!(Header::parse(&[0x82, 0x00, 0x21]).is_err());
    assert_eq!(
        Header::parse(&[0x42, 0, 0]),
        Err(ProtoError::UnknownType(0x42))
    );
}

#[test]
fn directions_do_not_mix() {
    // A relay message is no client message and the other way round.
    assert_eq!(
        ClientMessage::decode(&RelayMessage::Pong.to_bytes()),
        Err(ProtoError::UnknownType(0x85))
    );
    assert_eq!(
        RelayMessage::decode(&ClientMessage::Ping.to_bytes()),
        Err(ProtoError::UnknownType(0x05))
    );
}

#[test]
fn error_codes_round_trip_and_unknown_ones_survive() {
    for b in 0..=255u8 {
        assert_eq!(ErrorCode::from_byte(b).to_byte(), b);
    }
    assert_eq!(ErrorCode::from_byte(200), ErrorCode::Other(200));
    assert_eq!(
        RelayMessage::decode(&[0x86, 0, 1, 4]),
        Ok((RelayMessage::Error(ErrorCode::NotAccepted), 4))
    );
}

#[test]
fn long_peer_lists_are_cut_on_write() {
    let peers: Vec<PeerId> = (0..40u8).map(|i| PeerId([i; 32])).collect();
    let bytes = RelayMessage::Peers(peers.clone()).to_bytes();
    assert_eq!(bytes.len(), HEADER_LEN + MAX_BODY_LEN);
    let (back, _) = RelayMessage::decode(&bytes).unwrap();
    assert_eq!(back, RelayMessage::Peers(peers[..MAX_PEERS].to_vec()));
}

fn id() -> impl Strategy<Value = [u8; 32]> {
    proptest::array::uniform32(any::<u8>())
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (id(), id()).prop_map(|(t, p)| ClientMessage::Register {
            tag: FolderTag(t),
            peer: PeerId(p)
        }),
        id().prop_map(|t| ClientMessage::Lookup { tag: FolderTag(t) }),
        (id(), id(), id(), id()).prop_map(|(t, a, b, k)| ClientMessage::Connect {
            tag: FolderTag(t),
            target: PeerId(a),
            from: PeerId(b),
            token: PairingToken(k)
        }),
        id().prop_map(|s| ClientMessage::Accept {
            session: SessionId(s)
        }),
        Just(ClientMessage::Ping),
    ]
}

fn relay_message() -> impl Strategy<Value = RelayMessage> {
    prop_oneof![
        Just(RelayMessage::Registered),
        proptest::collection::vec(id().prop_map(PeerId), 0..=MAX_PEERS)
            .prop_map(RelayMessage::Peers),
        (id(), id(), id()).prop_map(|(f, t, s)| RelayMessage::Invite {
            from: PeerId(f),
            token: PairingToken(t),
            session: SessionId(s)
        }),
        Just(RelayMessage::Spliced),
        Just(RelayMessage::Pong),
        any::<u8>().prop_map(|b| RelayMessage::Error(ErrorCode::from_byte(b))),
    ]
}

proptest! {
    #[test]
    fn client_messages_round_trip(m in client_message(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut bytes = m.to_bytes();
        let len = bytes.len();
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(ClientMessage::decode(&bytes), Ok((m, len)));
    }

    #[test]
    fn relay_messages_round_trip(m in relay_message(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut bytes = m.to_bytes();
        let len = bytes.len();
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(RelayMessage::decode(&bytes), Ok((m, len)));
    }

    /// Arbitrary bytes parse or give a typed error; whatever parses writes
    /// back to exactly the bytes it took.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1100)) {
        if let Ok((m, n)) = ClientMessage::decode(&bytes) {
            prop_assert_eq!(&m.to_bytes()[..], &bytes[..n]);
        }
        if let Ok((m, n)) = RelayMessage::decode(&bytes) {
            prop_assert_eq!(&m.to_bytes()[..], &bytes[..n]);
        }
        if let Ok(p) = <[u8; PREAMBLE_LEN]>::try_from(bytes.get(..PREAMBLE_LEN).unwrap_or_default()) {
            let _ = check_preamble(&p);
        }
    }

    /// Valid headers with random bodies of the claimed length.
    #[test]
    fn any_body_of_a_valid_header(kind in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..=MAX_BODY_LEN)) {
        let Ok(len) = u16::try_from(body.len()) else { return Ok(()) };
        let [hi, lo] = len.to_be_bytes();
        if let Ok(h) = Header::parse(&[kind, hi, lo]) {
            let _ = ClientMessage::parse(h, &body);
            let _ = RelayMessage::parse(h, &body);
        }
    }
}
