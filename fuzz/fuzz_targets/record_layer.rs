//! Arbitrary bytes fed to an established session's record decoder.
//!
//! The first byte picks the rekey interval, the split size, and whether the input
//! is raw or valid records (made from the input) with one byte corrupted.
#![no_main]

use channel::fuzzing::session_pair;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mut a, mut b) = session_pair(2 + u64::from(mode & 3)).unwrap();
    let input = if mode & 4 != 0 {
        // Valid records carrying the input, one byte corrupted at a spot the
        // input picks: must be refused, with no plaintext past the damage.
        let (&spot, payload) = rest.split_first().unwrap_or((&0, &[]));
        for piece in payload.chunks(1 + usize::from(spot)) {
            a.encrypt(piece).unwrap();
        }
        a.close().unwrap();
        let mut records = a.poll_output().unwrap();
        let at = usize::from(spot) * records.len() / 256;
        if let Some(byte) = records.get_mut(at) {
            *byte ^= 1 << (mode >> 5);
        }
        records
    } else {
        rest.to_vec()
    };
    let chunk = 1 + usize::from(mode >> 3) * 13;
    let mut got = Vec::new();
    let mut failed = false;
    for (i, piece) in input.chunks(chunk).enumerate() {
        // Alternate the copying path and the read-into-the-session path.
        let result = if i % 2 == 0 {
            b.handle_input(piece)
        } else {
            let spare = b.input_buffer(piece.len());
            let n = piece.len().min(spare.len());
            spare[..n].copy_from_slice(&piece[..n]);
            b.commit_input(n)
        };
        if result.is_err() {
            failed = true;
            break;
        }
        got.extend(b.poll_plaintext().unwrap_or_default());
    }
    if failed {
        assert!(b.poll_plaintext().is_none());
        assert!(b.handle_input(b"x").is_err());
    } else {
        let _ = b.handle_eof();
    }
    if mode & 4 != 0 && !failed {
        // A corrupted stream can only look clean if it stopped short.
        assert!(got.len() <= rest.len());
    }
});
