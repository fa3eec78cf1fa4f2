//! Codec tests: the worked examples of `docs/protocol/tracker.md`, error
//! cases and round trips.

use std::net::SocketAddr;

use proptest::prelude::*;

use crate::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn example_announce() -> AnnounceRequest {
    AnnounceRequest {
        connection_id: 0x0123_4567_89ab_cdef,
        transaction_id: 42,
        info_hash: [0x11; 20],
        peer_id: *b"-SW0001-abcdefghijkl",
        downloaded: 0,
        left: 1000,
        uploaded: 0,
        event: Event::Started,
        ip: 0,
        key: 0xdead_beef,
        num_want: -1,
        port: 41544,
    }
}

#[test]
fn spec_example_connect() {
    let req = hex("00 00 04 17 27 10 19 80  00 00 00 00  12 34 56 78");
    assert_eq!(
        Request::parse(&req),
        Ok(Request::Connect {
            transaction_id: 0x1234_5678
        })
    );
    let resp = hex("00 00 00 00  12 34 56 78  01 23 45 67 89 ab cd ef");
    let parsed = Response::parse(&resp, Family::V4).unwrap();
    assert_eq!(
        parsed,
        Response::Connect {
            transaction_id: 0x1234_5678,
            connection_id: 0x0123_4567_89ab_cdef
        }
    );
    let mut out = Vec::new();
    parsed.write(&mut out);
    assert_eq!(out, resp);
}

#[test]
fn spec_example_announce() {
    let bytes = hex(concat!(
        "01 23 45 67 89 ab cd ef  00 00 00 01  00 00 00 2a",
        "11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11",
        "2d 53 57 30 30 30 31 2d 61 62 63 64 65 66 67 68 69 6a 6b 6c",
        "00 00 00 00 00 00 00 00  00 00 00 00 00 00 03 e8  00 00 00 00 00 00 00 00",
        "00 00 00 02  00 00 00 00  de ad be ef  ff ff ff ff  a2 48",
    ));
    assert_eq!(bytes.len(), ANNOUNCE_REQUEST_LEN);
    let req = Request::Announce(example_announce());
    let mut out = Vec::new();
    req.write(&mut out);
    assert_eq!(out, bytes);
    assert_eq!(Request::parse(&bytes), Ok(req));

    let resp = hex(concat!(
        "00 00 00 01  00 00 00 2a  00 00 07 08  00 00 00 01  00 00 00 01",
        "7f 00 00 01 a2 48  0a 00 00 02 1a e1",
    ));
    let expected = Response::Announce(AnnounceResponse {
        transaction_id: 42,
        interval: 1800,
        leechers: 1,
        seeders: 1,
        peers: PeerList::V4(vec![
            "127.0.0.1:41544".parse().unwrap(),
            "10.0.0.2:6881".parse().unwrap(),
        ]),
    });
    assert_eq!(Response::parse(&resp, Family::V4), Ok(expected.clone()));
    let mut out = Vec::new();
    expected.write(&mut out);
    assert_eq!(out, resp);
    // The same bytes over IPv6 are not a whole number of 18-byte peers.
    assert!(matches!(
        Response::parse(&resp, Family::V6),
        Err(ProtoError::RaggedList { .. })
    ));
}

#[test]
fn spec_example_extensions() {
    let addr = hex("ff ee dd cc bb aa 99 88  53 57 00 01  00 00 00 05");
    assert_eq!(
        Request::parse(&addr),
        Ok(Request::Address {
            connection_id: 0xffee_ddcc_bbaa_9988,
            transaction_id: 5
        })
    );
    let resp = hex("53 57 00 01  00 00 00 05  04 c0 00 02 01 1a e1");
    assert_eq!(
        Response::parse(&resp, Family::V4),
        Ok(Response::Address {
            transaction_id: 5,
            address: "192.0.2.1:6881".parse().unwrap()
        })
    );
    let punch = hex(concat!(
        "ff ee dd cc bb aa 99 88  53 57 00 02  00 00 00 06",
        "11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11",
        "04 c6 33 64 07 a2 48",
    ));
    let parsed = Request::parse(&punch).unwrap();
    assert_eq!(
        parsed,
        Request::Punch(PunchRequest {
            connection_id: 0xffee_ddcc_bbaa_9988,
            transaction_id: 6,
            info_hash: [0x11; 20],
            target: "198.51.100.7:41544".parse().unwrap(),
        })
    );
    let notify = hex(concat!(
        "53 57 00 03  00 00 00 00",
        "11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11",
        "04 c0 00 02 01 1a e1",
    ));
    assert_eq!(
        Response::parse(&notify, Family::V4),
        Ok(Response::PunchNotify {
            transaction_id: 0,
            info_hash: [0x11; 20],
            peer: "192.0.2.1:6881".parse().unwrap()
        })
    );
    assert!(notify.len() <= punch.len());
}

#[test]
fn rejects_bad_connect_and_short_datagrams() {
    let mut req = hex("00 00 04 17 27 10 19 81  00 00 00 00  12 34 56 78");
    assert_eq!(
        Request::parse(&req),
        Err(ProtoError::BadProtocolId(0x0417_2710_1981))
    );
    req.truncate(15);
    assert!(matches!(
        Request::parse(&req),
        Err(ProtoError::Truncated { needed: 1, .. })
    ));
    assert!(matches!(
        Request::parse(&[]),
        Err(ProtoError::Truncated { .. })
    ));
    let mut announce = Vec::new();
    Request::Announce(example_announce()).write(&mut announce);
    announce.pop();
    let err = Request::parse(&announce).unwrap_err();
    assert!(matches!(err, ProtoError::Truncated { .. }));
    assert!(!err.deserves_error_reply());
}

#[test]
fn content_errors_deserve_a_reply_garbage_does_not() {
    let mut announce = Vec::new();
    Request::Announce(example_announce()).write(&mut announce);
    announce[83] = 9; // event
    let err = Request::parse(&announce).unwrap_err();
    assert_eq!(err, ProtoError::BadEvent(9));
    assert!(err.deserves_error_reply());
    let header = RequestHeader::peek(&announce).unwrap();
    assert_eq!(header.transaction_id, 42);

    let unknown = hex("01 23 45 67 89 ab cd ef  00 00 00 09  00 00 00 01");
    assert!(Request::parse(&unknown).unwrap_err().deserves_error_reply());
    let empty_scrape = hex("01 23 45 67 89 ab cd ef  00 00 00 02  00 00 00 01");
    assert_eq!(
        Request::parse(&empty_scrape),
        Err(ProtoError::BadScrapeCount(0))
    );
    let mut ragged = empty_scrape.clone();
    ragged.extend_from_slice(&[0; 21]);
    let err = Request::parse(&ragged).unwrap_err();
    assert!(matches!(err, ProtoError::RaggedList { .. }));
    assert!(!err.deserves_error_reply());
    let long = vec![0u8; MAX_REQUEST_LEN + 1];
    assert!(matches!(
        Request::parse(&long),
        Err(ProtoError::TooLong { .. })
    ));
}

#[test]
fn announce_options_after_the_fixed_part_are_ignored() {
    let mut bytes = Vec::new();
    let req = Request::Announce(example_announce());
    req.write(&mut bytes);
    // BEP 41: option type 2 (URL data), length 3, "/ab".
    bytes.extend_from_slice(&[2, 3, b'/', b'a', b'b']);
    assert_eq!(Request::parse(&bytes), Ok(req));
}

#[test]
fn parses_at_most_the_peer_cap() {
    let mut bytes = hex("00 00 00 01  00 00 00 01  00 00 07 08  00 00 00 00  00 00 00 00");
    bytes.extend(std::iter::repeat_n([10, 0, 0, 1, 0, 80], 600).flatten());
    let Ok(Response::Announce(a)) = Response::parse(&bytes, Family::V4) else {
        panic!("not an announce");
    };
    assert_eq!(a.peers.len(), MAX_PARSED_PEERS);
}

#[test]
fn error_message_is_capped_and_lossy() {
    let mut bytes = hex("00 00 00 03  00 00 00 01");
    bytes.extend_from_slice(&[0xff; 2000]);
    let Ok(Response::Error { message, .. }) = Response::parse(&bytes, Family::V4) else {
        panic!("not an error");
    };
    assert_eq!(message.chars().count(), MAX_ERROR_MESSAGE);
}

fn arb_endpoint() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

fn arb_event() -> impl Strategy<Value = Event> {
    (0u32..4).prop_map(|n| Event::from_u32(n).unwrap())
}

fn arb_request() -> impl Strategy<Value = Request> {
    let announce = (
        any::<(u64, u32, [u8; 20], [u8; 20])>(),
        any::<(u64, u64, u64)>(),
        arb_event(),
        any::<(u32, u32, i32, u16)>(),
    )
        .prop_map(
            |(
                (connection_id, transaction_id, info_hash, peer_id),
                (d, l, u),
                event,
                (ip, key, num_want, port),
            )| {
                Request::Announce(AnnounceRequest {
                    connection_id,
                    transaction_id,
                    info_hash,
                    peer_id,
                    downloaded: d,
                    left: l,
                    uploaded: u,
                    event,
                    ip,
                    key,
                    num_want,
                    port,
                })
            },
        );
    prop_oneof![
        any::<u32>().prop_map(|transaction_id| Request::Connect { transaction_id }),
        announce,
        (
            any::<(u64, u32)>(),
            proptest::collection::vec(any::<[u8; 20]>(), 1..=MAX_SCRAPE_HASHES)
        )
            .prop_map(|((connection_id, transaction_id), info_hashes)| {
                Request::Scrape(ScrapeRequest {
                    connection_id,
                    transaction_id,
                    info_hashes,
                })
            }),
        any::<(u64, u32)>().prop_map(|(connection_id, transaction_id)| Request::Address {
            connection_id,
            transaction_id
        }),
        (any::<(u64, u32, [u8; 20])>(), arb_endpoint()).prop_map(
            |((connection_id, transaction_id, info_hash), target)| {
                Request::Punch(PunchRequest {
                    connection_id,
                    transaction_id,
                    info_hash,
                    target,
                })
            }
        ),
    ]
}

fn arb_response() -> impl Strategy<Value = (Response, Family)> {
    let v4 = proptest::collection::vec(any::<([u8; 4], u16)>(), 0..50).prop_map(|v| {
        PeerList::V4(
            v.into_iter()
                .map(|(ip, p)| std::net::SocketAddrV4::new(ip.into(), p))
                .collect(),
        )
    });
    let v6 = proptest::collection::vec(any::<([u8; 16], u16)>(), 0..50).prop_map(|v| {
        PeerList::V6(
            v.into_iter()
                .map(|(ip, p)| std::net::SocketAddrV6::new(ip.into(), p, 0, 0))
                .collect(),
        )
    });
    let announce = (any::<(u32, u32, u32, u32)>(), prop_oneof![v4, v6]).prop_map(
        |((transaction_id, interval, leechers, seeders), peers)| {
            let family = match peers {
                PeerList::V4(_) => Family::V4,
                PeerList::V6(_) => Family::V6,
            };
            (
                Response::Announce(AnnounceResponse {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers,
                }),
                family,
            )
        },
    );
    let others = prop_oneof![
        any::<(u32, u64)>().prop_map(|(transaction_id, connection_id)| Response::Connect {
            transaction_id,
            connection_id
        }),
        (
            any::<u32>(),
            proptest::collection::vec(any::<(u32, u32, u32)>(), 0..=MAX_SCRAPE_HASHES)
        )
            .prop_map(|(transaction_id, v)| Response::Scrape {
                transaction_id,
                stats: v
                    .into_iter()
                    .map(|(seeders, completed, leechers)| ScrapeStats {
                        seeders,
                        completed,
                        leechers
                    })
                    .collect()
            }),
        (any::<u32>(), "[a-z ]{0,100}").prop_map(|(transaction_id, message)| Response::Error {
            transaction_id,
            message
        }),
        (any::<u32>(), arb_endpoint()).prop_map(|(transaction_id, address)| Response::Address {
            transaction_id,
            address
        }),
        (any::<u32>(), proptest::option::of(arb_endpoint())).prop_map(|(transaction_id, at)| {
            Response::Punch {
                transaction_id,
                result: at.map_or(PunchResult::UnknownTarget, PunchResult::Notified),
            }
        }),
        (any::<u32>(), any::<[u8; 20]>(), arb_endpoint()).prop_map(
            |(transaction_id, info_hash, peer)| Response::PunchNotify {
                transaction_id,
                info_hash,
                peer
            }
        ),
    ];
    prop_oneof![
        announce,
        (others, prop_oneof![Just(Family::V4), Just(Family::V6)])
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(req in arb_request()) {
        let mut bytes = Vec::new();
        req.write(&mut bytes);
        prop_assert_eq!(bytes.len(), req.encoded_len());
        prop_assert!(bytes.len() <= MAX_REQUEST_LEN);
        prop_assert_eq!(Request::parse(&bytes), Ok(req));
    }

    #[test]
    fn responses_round_trip((resp, family) in arb_response()) {
        let mut bytes = Vec::new();
        resp.write(&mut bytes);
        prop_assert_eq!(bytes.len(), resp.encoded_len());
        prop_assert_eq!(Response::parse(&bytes, family), Ok(resp));
    }

    #[test]
    fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(req) = Request::parse(&bytes) {
            let mut out = Vec::new();
            req.write(&mut out);
            prop_assert!(bytes.starts_with(&out) || matches!(req, Request::Scrape(_)));
            prop_assert_eq!(Request::parse(&out), Ok(req));
        }
        let _ = Response::parse(&bytes, Family::V4);
        let _ = Response::parse(&bytes, Family::V6);
    }
}
