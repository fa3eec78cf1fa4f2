//! A byte stream fed to `wire::FrameDecoder` in chunks of arbitrary sizes, or
//! read into its spare room in reads of arbitrary sizes, gives exactly what
//! the same stream gives in one piece, never buffers more than one largest
//! frame, and every message it yields re-encodes to itself.
//!
//! Input: one seed byte choosing the chunk sizes, then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{DecodeError, FrameDecoder, Message};

/// Feeds `stream` in chunks of the sizes `next_len` picks and collects every
/// result.
fn run(stream: &[u8], mut next_len: impl FnMut() -> usize) -> Vec<Result<Message, DecodeError>> {
    let mut decoder = FrameDecoder::new();
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(next_len().clamp(1, rest.len()));
        rest = tail;
        let mut chunk = chunk;
        while !chunk.is_empty() {
            let taken = decoder.handle_input(chunk);
            assert!(decoder.buffered() <= FrameDecoder::MAX_BUFFERED);
            chunk = &chunk[taken..];
            let before = out.len();
            while let Some(result) = decoder.poll_message() {
                out.push(result);
            }
            // Progress: either input was taken or a message came out.
            assert!(taken > 0 || out.len() > before || decoder.is_failed());
        }
    }
    out
}

/// Like [`run`], but the stream is put straight into the decoder's spare
/// room, as a connection's reader does, at most `next_len` bytes at a time.
fn run_spare(
    stream: &[u8],
    mut next_len: impl FnMut() -> usize,
) -> Vec<Result<Message, DecodeError>> {
    use bytes::BufMut;
    let mut decoder = FrameDecoder::new();
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        while let Some(result) = decoder.poll_message() {
            out.push(result);
        }
        let mut spare = decoder.spare();
        let room = spare.remaining_mut();
        if room == 0 {
            // Only a failed decoder has no room once polled empty.
            assert!(decoder.is_failed());
            break;
        }
        let (now, later) = rest.split_at(room.min(rest.len()).min(next_len().max(1)));
        spare.put_slice(now);
        rest = later;
        assert!(decoder.buffered() <= FrameDecoder::MAX_BUFFERED);
    }
    while let Some(result) = decoder.poll_message() {
        out.push(result);
    }
    out
}

/// Chunk sizes from 1 up to a bound, both chosen by `seed` (xorshift32: a
/// different pattern per seed).
fn sizes(seed: u8) -> impl FnMut() -> usize {
    let mut state = u32::from(seed) | 1;
    let max = usize::from(seed % 64) + 1;
    move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize % max + 1
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = run(stream, || usize::MAX);
    assert_eq!(whole, run(stream, sizes(seed)));
    assert_eq!(whole, run_spare(stream, sizes(seed)));
    for message in whole.into_iter().flatten() {
        let bytes = message.to_vec();
        assert_eq!(wire::decode(&bytes), Ok((message, bytes.len())));
    }
});
