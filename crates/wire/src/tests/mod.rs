//! Tests of the whole crate: hand-written cases for each error, worked
//! examples that `docs/protocol/wire.md` quotes, and property tests.

mod props;
mod strategies;

use std::net::SocketAddr;

use keys::{Access, PeerId, Signature};

use crate::*;

/// Feeds `input` as one chunk, polling as needed, and returns every result.
pub(crate) fn decode_stream(
    decoder: &mut FrameDecoder,
    mut input: &[u8],
) -> Vec<Result<Message, DecodeError>> {
    let mut out = Vec::new();
    loop {
        let taken = decoder.handle_input(input);
        input = &input[taken..];
        while let Some(result) = decoder.poll_message() {
            out.push(result);
        }
        if input.is_empty() {
            return out;
        }
        assert!(taken > 0 || decoder.is_failed(), "decoder stalled");
    }
}

/// Like [`decode_stream`], for callers that only need it not to panic.
pub(crate) fn feed_all(decoder: &mut FrameDecoder, input: &[u8]) -> usize {
    decode_stream(decoder, input).len()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(ty);
    out.extend_from_slice(payload);
    out
}

fn example_hello() -> Hello {
    let mut id = [0u8; 32];
    for (i, b) in id.iter_mut().enumerate() {
        *b = i as u8;
    }
    Hello::new(
        PeerId(id),
        Text::new("swarmsync/0.1.0").unwrap(),
        Text::new("laptop").unwrap(),
    )
}

fn record(body: &[u8]) -> SignedRecord {
    SignedRecord::new(body.to_vec(), Signature([0xab; 64])).unwrap()
}

/// One message of every type, for deterministic tests.
fn one_of_each() -> Vec<Message> {
    let mut batch = IndexBatch::new(9);
    batch
        .push(IndexEntry {
            sequence: 1,
            record: record(b"first"),
        })
        .unwrap();
    batch
        .push(IndexEntry {
            sequence: 5,
            record: record(b""),
        })
        .unwrap();
    let mut bits = Bitfield::new(10).unwrap();
    bits.set(3, true);
    let addrs: Vec<SocketAddr> = vec!["10.0.0.1:4000".parse().unwrap(), "[::1]:5".parse().unwrap()];
    vec![
        Message::Hello(example_hello()),
        Message::FolderState(FolderState {
            index_id: 9,
            max_sequence: 5,
            access: Access::ReadOnly,
            held_index_id: 7,
            held_sequence: 3,
        }),
        Message::Index(batch.clone()),
        Message::IndexUpdate(IndexBatch::new(9)),
        Message::Request(Request {
            request_id: 3,
            hash: [0x11; 32],
            size: 4,
            hint: Some(BlockHint {
                path: Text::new("dir/file.txt").unwrap(),
                offset: 8,
            }),
        }),
        Message::Response(Response {
            request_id: 3,
            result: Ok(Block::new(&b"data"[..]).unwrap()),
        }),
        Message::Response(Response {
            request_id: 4,
            result: Err(ResponseError::Busy),
        }),
        Message::Availability(Availability {
            path: Text::new("big.iso").unwrap(),
            file_hash: [0x22; 32],
            first_block: 0,
            bits,
        }),
        Message::PeerExchange(PeerExchange::new(addrs, vec![]).unwrap()),
        Message::Ping(Ping { nonce: 1 }),
        Message::Pong(Pong { nonce: 1 }),
        Message::Close(Close::new(CloseCode::GoingAway, "bye")),
    ]
}

// ---- worked examples (quoted in docs/protocol/wire.md) ----

const HELLO_HEX: &str = "
    00000048 01
    0001
    000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
    0000000000000000
    0000000f 737761726d73796e632f302e312e30
    00000006 6c6170746f70";

#[test]
fn hello_worked_example() {
    let bytes = Message::Hello(example_hello()).to_vec();
    assert_eq!(hex(&bytes), hex(&unhex(HELLO_HEX)));
    assert_eq!(decode(&bytes), Ok((Message::Hello(example_hello()), 76)));
}

#[test]
fn ping_worked_example() {
    let bytes = Message::Ping(Ping {
        nonce: 0x0102_0304_0506_0708,
    })
    .to_vec();
    assert_eq!(hex(&bytes), "00000009090102030405060708");
}

#[test]
fn close_worked_example() {
    let bytes = Message::Close(Close::new(CloseCode::ProtocolViolation, "bad")).to_vec();
    assert_eq!(hex(&bytes), "0000000a0b000200000003626164");
}

#[test]
fn type_bytes_are_fixed() {
    let types: Vec<u8> = one_of_each().iter().map(|m| m.to_vec()[4]).collect();
    assert_eq!(types, [1, 2, 3, 4, 5, 6, 6, 7, 8, 9, 10, 11]);
    for ty in MessageType::ALL {
        assert_eq!(MessageType::from_u8(ty.to_u8()), Some(ty));
    }
}

// ---- truncation ----

#[test]
fn truncated_header_and_payload() {
    assert_eq!(decode(&[]), Err(DecodeError::Truncated { needed: 4 }));
    assert_eq!(decode(&[0, 0]), Err(DecodeError::Truncated { needed: 2 }));
    let ping = Message::Ping(Ping { nonce: 5 }).to_vec();
    assert_eq!(
        decode(&ping[..4]),
        Err(DecodeError::Truncated { needed: 9 })
    );
    assert_eq!(
        decode(&ping[..12]),
        Err(DecodeError::Truncated { needed: 1 })
    );
    assert!(decode(&ping[..12]).unwrap_err().is_truncated());
}

#[test]
fn payload_ending_inside_a_field_is_a_fault_not_truncation() {
    // The frame is complete; its payload is too short for a Ping.
    let err = decode(&frame(0x09, &[0; 7])).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnexpectedEnd {
            field: "ping.nonce"
        }
    );
    assert_eq!(err.close_code(), Some(CloseCode::ProtocolViolation));
}

// ---- oversized lengths and counts ----

#[test]
fn oversized_frame_length_fails_before_buffering() {
    let err = decode(&[0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooLong {
            field: "frame length",
            len: 0xffff_ffff,
            max: MAX_FRAME_LEN as u64
        }
    );
    let just_over = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
    assert!(matches!(
        decode(&just_over),
        Err(DecodeError::TooLong { .. })
    ));
    let max = (MAX_FRAME_LEN as u32).to_be_bytes();
    assert_eq!(
        decode(&max),
        Err(DecodeError::Truncated {
            needed: MAX_FRAME_LEN
        })
    );
}

#[test]
fn empty_frame_is_a_fault() {
    assert_eq!(decode(&[0, 0, 0, 0]), Err(DecodeError::EmptyFrame));
}

#[test]
fn oversized_counts_fail_without_allocating() {
    // Index claiming 4 billion entries in a 13-byte payload.
    let mut payload = 9u64.to_be_bytes().to_vec();
    payload.extend_from_slice(&u32::MAX.to_be_bytes());
    let err = decode(&frame(0x03, &payload)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooLong {
            field: "index.count",
            len: u64::from(u32::MAX),
            max: MAX_INDEX_ENTRIES as u64
        }
    );
    // Within the limit but more than the payload can hold.
    let mut payload = 9u64.to_be_bytes().to_vec();
    payload.extend_from_slice(&1000u32.to_be_bytes());
    assert_eq!(
        decode(&frame(0x03, &payload)),
        Err(DecodeError::UnexpectedEnd {
            field: "index.count"
        })
    );
    // PeerExchange with 51 added addresses.
    let mut payload = 51u32.to_be_bytes().to_vec();
    payload.extend(std::iter::repeat_n([4, 1, 2, 3, 4, 0, 80], 51).flatten());
    payload.extend_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        decode(&frame(0x08, &payload)),
        Err(DecodeError::TooLong {
            field: "pex.added_count",
            len: 51,
            max: 50
        })
    ));
    // Availability claiming more bits than allowed.
    let mut payload = 0u32.to_be_bytes().to_vec();
    payload.extend_from_slice(&[0; 36]);
    payload.extend_from_slice(&((MAX_AVAILABILITY_BITS + 1) as u32).to_be_bytes());
    assert!(matches!(
        decode(&frame(0x07, &payload)),
        Err(DecodeError::TooLong {
            field: "availability.bit_len",
            ..
        })
    ));
}

#[test]
fn oversized_strings_and_bytes() {
    let mut bytes = Message::Hello(example_hello()).to_vec();
    // Software length (at offset 4 + 1 + 2 + 32 + 8) set to 65.
    bytes[47..51].copy_from_slice(&65u32.to_be_bytes());
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::TooLong {
            field: "hello.software",
            len: 65,
            max: 64
        })
    );
    // A Response block claiming MAX_BLOCK_LEN + 1 bytes.
    let mut payload = 1u32.to_be_bytes().to_vec();
    payload.push(0);
    payload.extend_from_slice(&((MAX_BLOCK_LEN + 1) as u32).to_be_bytes());
    assert!(matches!(
        decode(&frame(0x06, &payload)),
        Err(DecodeError::TooLong {
            field: "response.data",
            ..
        })
    ));
}

// ---- unknown types ----

#[test]
fn unknown_types_can_be_skipped() {
    for ty in [0x00, 0x11, 0x7f, 0x80, 0xff] {
        let bytes = frame(ty, b"future");
        let err = decode(&bytes).unwrap_err();
        assert_eq!(err, DecodeError::UnknownType { ty, frame_len: 11 });
        assert!(err.is_skippable());
        assert_eq!(err.close_code(), None);
    }
    // An unknown type is reported only once the frame is complete.
    assert_eq!(
        decode(&frame(0x11, b"future")[..6]),
        Err(DecodeError::Truncated { needed: 5 })
    );
}

#[test]
fn frame_decoder_skips_unknown_types_and_goes_on() {
    let mut stream = frame(0x42, b"from the future");
    Message::Ping(Ping { nonce: 3 }).encode(&mut stream);
    let mut decoder = FrameDecoder::new();
    let got = decode_stream(&mut decoder, &stream);
    assert_eq!(
        got,
        [
            Err(DecodeError::UnknownType {
                ty: 0x42,
                frame_len: 20
            }),
            Ok(Message::Ping(Ping { nonce: 3 }))
        ]
    );
}

// ---- bad values ----

#[test]
fn bad_utf8() {
    let mut payload = 0u16.to_be_bytes().to_vec();
    payload.extend_from_slice(&2u32.to_be_bytes());
    payload.extend_from_slice(&[0xc3, 0x28]);
    assert_eq!(
        decode(&frame(0x0b, &payload)),
        Err(DecodeError::BadUtf8 {
            field: "close.message"
        })
    );
}

#[test]
fn bad_enum_values() {
    let state = |access: u8| {
        let mut p = [0u8; 33];
        p[16] = access;
        frame(0x02, &p)
    };
    assert!(decode(&state(2)).is_ok());
    assert!(matches!(
        decode(&state(3)),
        Err(DecodeError::BadValue {
            field: "folder_state.access",
            ..
        })
    ));
    let response = |status: u8| {
        let mut p = 7u32.to_be_bytes().to_vec();
        p.push(status);
        frame(0x06, &p)
    };
    assert!(decode(&response(4)).is_ok());
    assert!(matches!(
        decode(&response(5)),
        Err(DecodeError::BadValue {
            field: "response.status",
            ..
        })
    ));
    let mut request = Message::Request(Request {
        request_id: 1,
        hash: [0; 32],
        size: 1,
        hint: None,
    })
    .to_vec();
    *request.last_mut().unwrap() = 2;
    assert!(matches!(
        decode(&request),
        Err(DecodeError::BadValue {
            field: "request.has_hint",
            ..
        })
    ));
    let mut pex = 1u32.to_be_bytes().to_vec();
    pex.extend_from_slice(&[5, 1, 2, 3, 4, 0, 80]);
    pex.extend_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        decode(&frame(0x08, &pex)),
        Err(DecodeError::BadValue {
            field: "pex.family",
            ..
        })
    ));
}

#[test]
fn close_codes_are_never_an_error() {
    let bytes = Message::Close(Close::new(CloseCode::Other(999), "")).to_vec();
    let (m, _) = decode(&bytes).unwrap();
    assert_eq!(m, Message::Close(Close::new(CloseCode::from_u16(999), "")));
    assert_eq!(CloseCode::Other(2), CloseCode::ProtocolViolation);
}

#[test]
fn bitfield_padding_must_be_zero() {
    let mut bits = Bitfield::new(3).unwrap();
    bits.set(0, true);
    let m = Message::Availability(Availability {
        path: Text::default(),
        file_hash: [0; 32],
        first_block: 0,
        bits,
    });
    let mut bytes = m.to_vec();
    assert_eq!(*bytes.last().unwrap(), 0x80);
    *bytes.last_mut().unwrap() = 0x81;
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::BadValue {
            field: "availability.bits",
            ..
        })
    ));
}

#[test]
fn index_sequences_must_rise() {
    let batch = |seqs: &[u64]| {
        let mut p = 1u64.to_be_bytes().to_vec();
        p.extend_from_slice(&(seqs.len() as u32).to_be_bytes());
        for s in seqs {
            p.extend_from_slice(&s.to_be_bytes());
            p.extend_from_slice(&0u32.to_be_bytes());
            p.extend_from_slice(&[0; 64]);
        }
        frame(0x04, &p)
    };
    assert!(decode(&batch(&[1, 2, 9])).is_ok());
    for bad in [&[0][..], &[3, 3], &[5, 4]] {
        assert!(matches!(
            decode(&batch(bad)),
            Err(DecodeError::BadValue {
                field: "index.sequence",
                ..
            })
        ));
    }
    let mut b = IndexBatch::new(1);
    b.push(IndexEntry {
        sequence: 4,
        record: record(b""),
    })
    .unwrap();
    assert!(matches!(
        b.push(IndexEntry {
            sequence: 4,
            record: record(b"")
        }),
        Err(PushError::OutOfOrder {
            last: 4,
            got: 4,
            ..
        })
    ));
    assert!(matches!(
        IndexBatch::new(1).push(IndexEntry {
            sequence: 0,
            record: record(b"")
        }),
        Err(PushError::OutOfOrder {
            last: 0,
            got: 0,
            ..
        })
    ));
}

#[test]
fn trailing_bytes_are_a_fault() {
    let mut p = 5u64.to_be_bytes().to_vec();
    p.push(0);
    assert_eq!(
        decode(&frame(0x0a, &p)),
        Err(DecodeError::TrailingBytes { ty: 0x0a, extra: 1 })
    );
}

#[test]
fn hello_extension_is_ignored_from_version_2() {
    let mut hello = example_hello();
    let mut bytes = Message::Hello(hello.clone()).to_vec();
    bytes.extend_from_slice(b"ext");
    bytes[0..4].copy_from_slice(&75u32.to_be_bytes());
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::TrailingBytes { ty: 0x01, extra: 3 })
    );
    bytes[5..7].copy_from_slice(&2u16.to_be_bytes());
    hello.version = 2;
    assert_eq!(decode(&bytes), Ok((Message::Hello(hello), 79)));
}

// ---- limits at their edges ----

#[test]
fn largest_block_and_record_fit_one_frame() {
    let block = Block::new(vec![0x5a; MAX_BLOCK_LEN]).unwrap();
    assert!(Block::new(vec![0; MAX_BLOCK_LEN + 1]).is_err());
    let m = Message::Response(Response {
        request_id: 1,
        result: Ok(block),
    });
    let bytes = m.to_vec();
    let mut decoder = FrameDecoder::new();
    assert_eq!(decode_stream(&mut decoder, &bytes), [Ok(m)]);

    let big = SignedRecord::new(vec![1; MAX_RECORD_LEN], Signature([0; 64])).unwrap();
    assert!(SignedRecord::new(vec![1; MAX_RECORD_LEN + 1], Signature([0; 64])).is_err());
    let mut batch = IndexBatch::new(1);
    batch
        .push(IndexEntry {
            sequence: 1,
            record: big.clone(),
        })
        .unwrap();
    // A second one would pass MAX_FRAME_LEN.
    let refused = batch.push(IndexEntry {
        sequence: 2,
        record: big,
    });
    assert!(matches!(refused, Err(PushError::Full(_))));
    let m = Message::Index(batch.clone());
    let bytes = m.to_vec();
    assert_eq!(bytes.len(), batch.frame_len());
    assert_eq!(decode(&bytes), Ok((m, bytes.len())));
}

#[test]
fn batch_with_limit_takes_one_oversized_entry() {
    let mut batch = IndexBatch::with_limit(1, 10);
    batch
        .push(IndexEntry {
            sequence: 1,
            record: record(&[0; 100]),
        })
        .unwrap();
    assert!(matches!(
        batch.push(IndexEntry {
            sequence: 2,
            record: record(b"")
        }),
        Err(PushError::Full(_))
    ));
}

#[test]
fn limits_are_checked_by_constructors() {
    assert!(Text::<4>::new("12345").is_err());
    let many: Vec<SocketAddr> = (0..51)
        .map(|p| SocketAddr::from(([1, 2, 3, 4], p)))
        .collect();
    assert!(PeerExchange::new(many.clone(), vec![]).is_err());
    assert!(PeerExchange::new(vec![], many[..50].to_vec()).is_ok());
    let v6: SocketAddr = "[fe80::1%3]:9".parse().unwrap();
    let pex = PeerExchange::new(vec![v6], vec![]).unwrap();
    assert_eq!(pex.added()[0].to_string(), "[fe80::1]:9");
}

// ---- the streaming decoder ----

#[test]
fn frame_decoder_accepts_input_split_at_every_byte() {
    let messages = one_of_each();
    let mut stream = Vec::new();
    for m in &messages {
        m.encode(&mut stream);
    }
    let want: Vec<_> = messages.into_iter().map(Ok).collect();
    // Two chunks, cut at every byte boundary.
    for cut in 0..=stream.len() {
        let mut decoder = FrameDecoder::new();
        let mut got = decode_stream(&mut decoder, &stream[..cut]);
        got.extend(decode_stream(&mut decoder, &stream[cut..]));
        assert_eq!(got, want, "cut at {cut}");
        assert_eq!(decoder.buffered(), 0);
    }
    // One byte at a time.
    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    for byte in stream.chunks(1) {
        got.extend(decode_stream(&mut decoder, byte));
    }
    assert_eq!(got, want);
}

#[test]
fn frame_decoder_buffers_at_most_one_frame() {
    let mut decoder = FrameDecoder::new();
    // Two largest frames' worth of headers and zeros (type 0 is unknown).
    let mut stream = (MAX_FRAME_LEN as u32).to_be_bytes().to_vec();
    stream.resize(2 * FrameDecoder::MAX_BUFFERED, 0);
    let taken = decoder.handle_input(&stream);
    assert_eq!(taken, FrameDecoder::MAX_BUFFERED);
    assert_eq!(decoder.handle_input(&stream[taken..]), 0);
    assert_eq!(decoder.buffered(), FrameDecoder::MAX_BUFFERED);
    assert!(matches!(
        decoder.poll_message(),
        Some(Err(DecodeError::UnknownType { ty: 0, .. }))
    ));
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn frame_decoder_fails_for_good_on_a_bad_length() {
    let mut decoder = FrameDecoder::new();
    let mut stream = vec![0xff; 4];
    Message::Ping(Ping { nonce: 1 }).encode(&mut stream);
    assert_eq!(decoder.handle_input(&stream), stream.len());
    assert!(matches!(
        decoder.poll_message(),
        Some(Err(DecodeError::TooLong { .. }))
    ));
    assert!(decoder.is_failed());
    assert_eq!(decoder.poll_message(), None);
    assert_eq!(decoder.handle_input(&stream), stream.len());
    assert_eq!(decoder.poll_message(), None);
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn frame_decoder_spare_room_stops_at_each_frame_end() {
    use bytes::BufMut;
    let messages = [
        Message::Ping(Ping { nonce: 3 }),
        Message::Response(Response {
            request_id: 1,
            result: Ok(Block::new(vec![7u8; 100]).unwrap()),
        }),
        Message::Response(Response {
            request_id: 2,
            result: Ok(Block::new(vec![8u8; 2 * ZERO_COPY_MIN_LEN]).unwrap()),
        }),
        Message::Pong(Pong { nonce: 4 }),
    ];
    let frames: Vec<Vec<u8>> = messages.iter().map(Message::to_vec).collect();
    let stream = frames.concat();
    // Each frame is asked for as its prefix, then the rest of it, exactly.
    let want_rooms: Vec<usize> = frames
        .iter()
        .flat_map(|f| [FRAME_HEADER_LEN, f.len() - FRAME_HEADER_LEN])
        .collect();
    let mut decoder = FrameDecoder::new();
    let (mut rest, mut rooms, mut got) = (&stream[..], Vec::new(), Vec::new());
    while !rest.is_empty() {
        while let Some(message) = decoder.poll_message() {
            got.push(message.unwrap());
        }
        let mut spare = decoder.spare();
        let room = spare.remaining_mut();
        rooms.push(room);
        let (now, later) = rest.split_at(room.min(rest.len()));
        spare.put_slice(now);
        rest = later;
    }
    while let Some(message) = decoder.poll_message() {
        got.push(message.unwrap());
    }
    assert_eq!(rooms, want_rooms);
    assert_eq!(got, messages);
    assert_eq!(decoder.buffered(), 0);
    // Filled a byte at a time, the same messages come out.
    let mut decoder = FrameDecoder::new();
    let mut got = Vec::new();
    for &byte in &stream {
        while let Some(message) = decoder.poll_message() {
            got.push(message.unwrap());
        }
        let mut spare = decoder.spare();
        assert!(
            spare.remaining_mut() > 0,
            "no room while no frame is complete"
        );
        spare.put_u8(byte);
    }
    got.extend(decoder.poll_message().map(Result::unwrap));
    assert_eq!(got, messages);
}

#[test]
fn frame_decoder_has_no_room_after_a_bad_length() {
    use bytes::BufMut;
    let mut decoder = FrameDecoder::new();
    decoder.spare().put_slice(&[0xff; 4]);
    assert!(matches!(
        decoder.poll_message(),
        Some(Err(DecodeError::TooLong { .. }))
    ));
    assert!(decoder.is_failed());
    assert_eq!(decoder.spare().remaining_mut(), 0);
    assert_eq!(decoder.poll_message(), None);
}

#[test]
fn frame_decoder_reports_what_it_needs() {
    let bytes = Message::Ping(Ping { nonce: 1 }).to_vec();
    let mut decoder = FrameDecoder::new();
    assert_eq!(decoder.needed(), 4);
    assert_eq!(decoder.handle_input(&bytes[..6]), 6);
    assert_eq!(decoder.needed(), 7);
    assert_eq!(decoder.poll_message(), None);
}

#[test]
fn malformed_frame_does_not_stop_the_stream() {
    let mut stream = frame(0x09, &[0; 3]);
    Message::Pong(Pong { nonce: 2 }).encode(&mut stream);
    let mut decoder = FrameDecoder::new();
    let got = decode_stream(&mut decoder, &stream);
    assert_eq!(
        got,
        [
            Err(DecodeError::UnexpectedEnd {
                field: "ping.nonce"
            }),
            Ok(Message::Pong(Pong { nonce: 2 }))
        ]
    );
}

#[test]
fn large_blocks_are_not_copied_by_the_frame_decoder() {
    let data = vec![9u8; 2 * ZERO_COPY_MIN_LEN];
    let m = Message::Response(Response {
        request_id: 1,
        result: Ok(Block::new(data).unwrap()),
    });
    let mut decoder = FrameDecoder::new();
    let bytes = m.to_vec();
    assert_eq!(decoder.handle_input(&bytes), bytes.len());
    let Some(Ok(Message::Response(Response {
        result: Ok(block), ..
    }))) = decoder.poll_message()
    else {
        panic!("expected a block");
    };
    assert_eq!(block.len(), 2 * ZERO_COPY_MIN_LEN);
    assert_eq!(
        Message::Response(Response {
            request_id: 1,
            result: Ok(block)
        }),
        m
    );
}

#[test]
fn split_cuts_batches_and_keeps_order() {
    let entries = |seqs: Vec<u64>| {
        seqs.into_iter().map(|sequence| IndexEntry {
            sequence,
            record: record(&[1; 50]),
        })
    };
    // No entries: one empty batch, so an empty index can still be sent.
    let empty = IndexBatch::split(3, MAX_FRAME_LEN, entries(vec![])).unwrap();
    assert_eq!(empty.len(), 1);
    assert!(empty[0].is_empty());
    let batches = IndexBatch::split(3, 500, entries((1..=10).collect())).unwrap();
    assert!(
        batches
            .iter()
            .all(|b| b.frame_len() <= 500 && b.index_id() == 3)
    );
    let seqs: Vec<u64> = batches
        .iter()
        .flat_map(|b| b.entries())
        .map(|e| e.sequence)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    // Order is checked across batch boundaries too.
    let err = IndexBatch::split(3, 200, entries(vec![1, 2, 3, 2])).unwrap_err();
    assert!(matches!(
        err,
        PushError::OutOfOrder {
            last: 3,
            got: 2,
            ..
        }
    ));
}
