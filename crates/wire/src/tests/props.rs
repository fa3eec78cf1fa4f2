//! Property tests: round trips, canonical encoding, no panics on any input,
//! chunking at every boundary.

use proptest::collection::vec;
use proptest::prelude::*;

use super::strategies::message;
use super::{decode_stream, feed_all};
use crate::*;

/// Hellos of version 2 and up may carry an extension area that is dropped,
/// so only they may re-encode to other bytes.
fn reencodes_exactly(message: &Message) -> bool {
    !matches!(message, Message::Hello(h) if h.version >= 2)
}

/// If `bytes` start with a valid frame, it re-encodes to the same bytes (or
/// at least to the same message), and the streaming decoder agrees.
fn check_any_input(bytes: &[u8]) {
    let result = decode(bytes);
    if let Ok((message, used)) = &result {
        let again = message.to_vec();
        if reencodes_exactly(message) {
            assert_eq!(&again[..], &bytes[..*used]);
        }
        assert_eq!(decode(&again), Ok((message.clone(), again.len())));
    }
    let mut decoder = FrameDecoder::new();
    let _ = feed_all(&mut decoder, bytes);
    let first = decoder_first(bytes);
    match (&result, first) {
        (Err(DecodeError::Truncated { .. }), None) => {}
        (result, Some(first)) => assert_eq!(&result.clone().map(|(m, _)| m), &first),
        (result, None) => panic!("decode gave {result:?}, FrameDecoder nothing"),
    }
}

fn decoder_first(bytes: &[u8]) -> Option<Result<Message, DecodeError>> {
    let mut decoder = FrameDecoder::new();
    let taken = decoder.handle_input(bytes);
    assert!(taken <= FrameDecoder::MAX_BUFFERED);
    decoder.poll_message()
}

/// A frame of type `ty` around `payload`, with a correct length.
fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(ty);
    out.extend_from_slice(payload);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips(m in message(), tail in vec(any::<u8>(), 0..16)) {
        let mut bytes = Vec::new();
        m.encode(&mut bytes);
        let len = bytes.len();
        prop_assert!(len - FRAME_HEADER_LEN <= MAX_FRAME_LEN);
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(decode(&bytes), Ok((m.clone(), len)));
        prop_assert_eq!(Message::decode(&bytes[..len]), Ok((m.clone(), len)));
        let mut decoder = FrameDecoder::new();
        let got = decode_stream(&mut decoder, &bytes[..len]);
        prop_assert_eq!(got, vec![Ok(m)]);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn a_split_encoding_is_the_same_frame(m in message()) {
        let mut head = Vec::new();
        let tail = m.encode_split(&mut head).map(<[u8]>::to_vec).unwrap_or_default();
        prop_assert_eq!([head, tail].concat(), m.to_vec());
    }

    #[test]
    fn any_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        check_any_input(&bytes);
    }

    #[test]
    fn any_payload_of_any_type_never_panics(ty in 0u8..=13, payload in vec(any::<u8>(), 0..400)) {
        check_any_input(&frame(ty, &payload));
    }

    #[test]
    fn small_payloads_of_any_type_never_panic(ty in 0u8..=13, payload in vec(0u8..=6, 0..80)) {
        // Small byte values make counts, lengths and flags plausible, so the
        // decoders get deep into their payloads.
        check_any_input(&frame(ty, &payload));
    }

    #[test]
    fn mutated_messages_never_panic(
        m in message(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = m.to_vec();
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        check_any_input(&bytes);
    }

    #[test]
    fn truncated_messages_ask_for_more(m in message(), cut in any::<prop::sample::Index>()) {
        let bytes = m.to_vec();
        let cut = cut.index(bytes.len());
        match decode(&bytes[..cut]) {
            Err(DecodeError::Truncated { needed }) => prop_assert!(needed <= bytes.len() - cut),
            other => prop_assert!(false, "cut at {} of {}: {:?}", cut, bytes.len(), other),
        }
    }

    #[test]
    fn stream_split_anywhere_gives_the_same_messages(
        messages in vec(message(), 1..6),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut stream = Vec::new();
        for m in &messages {
            m.encode(&mut stream);
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        let mut from = 0;
        for to in cuts.into_iter().chain([stream.len()]) {
            got.extend(decode_stream(&mut decoder, &stream[from..to]));
            from = to;
        }
        let want: Vec<_> = messages.into_iter().map(Ok).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn reading_into_spare_room_gives_what_handing_over_gives(
        bytes in vec(any::<u8>(), 0..600),
        messages in vec(message(), 0..4),
        sizes in vec(1usize..64, 1..16),
    ) {
        use bytes::BufMut;
        // Good frames, then arbitrary bytes: whatever the stream holds, reading
        // it into `spare` in reads of any size gives the same results as
        // handing it over whole.
        let mut stream = Vec::new();
        for m in &messages {
            m.encode(&mut stream);
        }
        stream.extend_from_slice(&bytes);
        let want = decode_stream(&mut FrameDecoder::new(), &stream);
        let mut decoder = FrameDecoder::new();
        let (mut rest, mut got, mut next) = (&stream[..], Vec::new(), sizes.iter().cycle());
        while !rest.is_empty() {
            while let Some(result) = decoder.poll_message() {
                got.push(result);
            }
            let mut spare = decoder.spare();
            let room = spare.remaining_mut();
            if room == 0 {
                prop_assert!(decoder.is_failed());
                break;
            }
            let n = room.min(rest.len()).min(*next.next().unwrap_or(&1));
            spare.put_slice(&rest[..n]);
            rest = &rest[n..];
            prop_assert!(decoder.buffered() <= FrameDecoder::MAX_BUFFERED);
        }
        while let Some(result) = decoder.poll_message() {
            got.push(result);
        }
        prop_assert_eq!(got, want);
    }
}
