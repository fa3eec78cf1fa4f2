//! proptest strategies for every message type.

use std::net::SocketAddr;

use keys::{Access, PeerId, Signature};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::*;

pub(crate) fn text<const MAX: usize>() -> impl Strategy<Value = Text<MAX>> {
    // Chars, not bytes, so multi-byte UTF-8 is covered; cut to fit.
    vec(any::<char>(), 0..=MAX.min(80))
        .prop_map(|chars| Text::truncated(&chars.into_iter().collect::<String>()))
}

fn hash() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![
        Just(Access::Encrypted),
        Just(Access::ReadOnly),
        Just(Access::ReadWrite)
    ]
}

pub(crate) fn hello() -> impl Strategy<Value = Hello> {
    (
        any::<u16>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        text(),
        text(),
    )
        .prop_map(|(version, id, caps, software, device_name)| Hello {
            version,
            peer_id: PeerId(id),
            capabilities: Capabilities(caps),
            software,
            device_name,
        })
}

fn folder_state() -> impl Strategy<Value = FolderState> {
    (
        any::<u64>(),
        any::<u64>(),
        access(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(index_id, max_sequence, access, held_index_id, held_sequence)| FolderState {
                index_id,
                max_sequence,
                access,
                held_index_id,
                held_sequence,
            },
        )
}

pub(crate) fn signed_record() -> impl Strategy<Value = SignedRecord> {
    (
        vec(any::<u8>(), 0..300),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(body, a, b)| {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&a);
            sig[32..].copy_from_slice(&b);
            SignedRecord::new(body, Signature(sig)).unwrap()
        })
}

pub(crate) fn index_batch() -> impl Strategy<Value = IndexBatch> {
    (
        any::<u64>(),
        0..u64::MAX / 2,
        vec((1..1000u64, signed_record()), 0..8),
    )
        .prop_map(|(index_id, start, entries)| {
            let mut batch = IndexBatch::new(index_id);
            let mut sequence = start;
            for (step, record) in entries {
                sequence += step;
                batch.push(IndexEntry { sequence, record }).unwrap();
            }
            batch
        })
}

fn request() -> impl Strategy<Value = Request> {
    let hint = proptest::option::of(
        (text(), any::<u64>()).prop_map(|(path, offset)| BlockHint { path, offset }),
    );
    (any::<u32>(), hash(), any::<u32>(), hint).prop_map(|(request_id, hash, size, hint)| Request {
        request_id,
        hash,
        size,
        hint,
    })
}

fn response_error() -> impl Strategy<Value = ResponseError> {
    (1u8..=4).prop_map(|s| ResponseError::from_u8(s).unwrap())
}

fn response() -> impl Strategy<Value = Response> {
    let result = prop_oneof![
        vec(any::<u8>(), 0..2000).prop_map(|data| Ok(Block::new(data).unwrap())),
        response_error().prop_map(Err),
    ];
    (any::<u32>(), result).prop_map(|(request_id, result)| Response { request_id, result })
}

fn availability() -> impl Strategy<Value = Availability> {
    (text(), hash(), any::<u32>(), vec(any::<bool>(), 0..100)).prop_map(
        |(path, file_hash, first_block, bits)| Availability {
            path,
            file_hash,
            first_block,
            bits: Bitfield::from_bools(bits).unwrap(),
        },
    )
}

fn peer_exchange() -> impl Strategy<Value = PeerExchange> {
    let addrs = || vec(any::<SocketAddr>(), 0..=MAX_PEX_ADDRS);
    (addrs(), addrs()).prop_map(|(a, d)| PeerExchange::new(a, d).unwrap())
}

fn close() -> impl Strategy<Value = Close> {
    (any::<u16>(), text()).prop_map(|(code, message)| Close {
        code: CloseCode::from_u16(code),
        message,
    })
}

fn delta_op() -> impl Strategy<Value = DeltaOp> {
    prop_oneof![
        (any::<u32>(), 1..100_000u32).prop_map(|(offset, len)| DeltaOp::Copy { offset, len }),
        vec(any::<u8>(), 1..64).prop_map(|b| DeltaOp::Literal(b.into())),
    ]
}

fn index_delta() -> impl Strategy<Value = IndexDelta> {
    (
        (any::<u64>(), any::<u64>(), text(), hash(), hash()),
        vec(delta_op(), 0..8),
        any::<[u8; 32]>(),
    )
        .prop_map(|((index_id, sequence, path, base, new), ops, sig)| {
            let mut signature = [0; 64];
            signature[..32].copy_from_slice(&sig);
            IndexDelta::new(
                index_id,
                sequence,
                path,
                base,
                new,
                ops,
                Signature(signature),
            )
            .unwrap()
        })
}

fn record_reply() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(signed_record()),
    )
        .prop_map(|(index_id, sequence, record)| Record {
            index_id,
            sequence,
            record,
        })
}

fn delta_request() -> impl Strategy<Value = DeltaRequest> {
    (request(), vec(any::<u8>(), 0..4096), 256..2048u32).prop_map(|(request, basis, chunk)| {
        DeltaRequest {
            request,
            sums: BlockSums::of(&basis, chunk),
        }
    })
}

fn delta_response() -> impl Strategy<Value = DeltaResponse> {
    (any::<u32>(), vec(delta_op(), 0..8)).prop_map(|(request_id, ops)| DeltaResponse {
        request_id,
        pieces: Pieces::new(ops, MAX_BLOCK_LEN).unwrap(),
    })
}

/// Any message.
pub(crate) fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        hello().prop_map(Message::Hello),
        folder_state().prop_map(Message::FolderState),
        index_batch().prop_map(Message::Index),
        index_batch().prop_map(Message::IndexUpdate),
        request().prop_map(Message::Request),
        response().prop_map(Message::Response),
        availability().prop_map(Message::Availability),
        peer_exchange().prop_map(Message::PeerExchange),
        any::<u64>().prop_map(|nonce| Message::Ping(Ping { nonce })),
        any::<u64>().prop_map(|nonce| Message::Pong(Pong { nonce })),
        close().prop_map(Message::Close),
        index_delta().prop_map(Message::IndexDelta),
        (any::<u64>(), any::<u64>()).prop_map(|(index_id, sequence)| Message::RecordRequest(
            RecordRequest { index_id, sequence }
        )),
        record_reply().prop_map(Message::Record),
        delta_request().prop_map(Message::DeltaRequest),
        delta_response().prop_map(Message::DeltaResponse),
    ]
}
