use std::time::Instant;

use keys::Access;
use proptest::prelude::*;

use super::util::*;
use crate::handshake::msg::{Hello, kind};
use crate::testkit::session_pair;
use crate::{Handshake, Session};

/// Cuts `bytes` at the given fractions.
fn split(bytes: &[u8], cuts: &[u16]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) * bytes.len() / usize::from(u16::MAX))
        .collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points
        .windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn records_survive_any_split(
        msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..8),
        cuts in prop::collection::vec(any::<u16>(), 0..12),
        rekey in 2u64..6,
    ) {
        let (mut a, mut b) = session_pair(rekey).unwrap();
        for m in &msgs {
            a.encrypt(m).unwrap();
        }
        a.close().unwrap();
        let stream = a.poll_output().unwrap();
        let mut got = Vec::new();
        for (i, piece) in split(&stream, &cuts).into_iter().enumerate() {
            if i % 2 == 0 {
                b.handle_input(&piece).unwrap();
            } else {
                // The adapter's path: read straight into the session's buffer.
                let spare = b.input_buffer(piece.len());
                prop_assert!(spare.len() >= piece.len());
                spare[..piece.len()].copy_from_slice(&piece);
                b.commit_input(piece.len()).unwrap();
            }
            let mut buf = [0u8; 700];
            loop {
                let n = b.read_plaintext(&mut buf);
                if n == 0 { break; }
                got.extend_from_slice(&buf[..n]);
            }
        }
        prop_assert!(b.is_peer_closed());
        b.handle_eof().unwrap();
        prop_assert_eq!(got, msgs.concat());
    }

    #[test]
    fn record_decoder_never_panics(
        junk in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(any::<u16>(), 0..6),
        prefix_records in 0usize..3,
    ) {
        let (mut a, mut b) = session_pair(3).unwrap();
        for i in 0..prefix_records {
            a.encrypt(&[i as u8; 10]).unwrap();
        }
        let mut input = a.poll_output().unwrap_or_default();
        input.extend_from_slice(&junk);
        let mut failed = false;
        for piece in split(&input, &cuts) {
            if b.handle_input(&piece).is_err() { failed = true; }
        }
        let _ = b.handle_eof();
        if failed { prop_assert!(b.poll_plaintext().is_none()); }
    }
}

proptest! {
    // Each case is a full SRP-3072 handshake: keep the count small.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn handshake_survives_any_split(
        cuts in prop::collection::vec(any::<u16>(), 0..8),
        a_level in 0usize..3,
        b_level in 0usize..3,
    ) {
        let (a, b) = run_with(
            &config(1, ALL[a_level]),
            &config(2, ALL[b_level]),
            false,
            |_, _, bytes| split(&bytes, &cuts),
        );
        let (mut a, mut b): (Session, Session) = (a.session(), b.session());
        prop_assert_eq!(a.info().peer_access.claimed, ALL[b_level]);
        a.encrypt(b"after").unwrap();
        prop_assert_eq!(pump(&mut a, &mut b).unwrap(), b"after".to_vec());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn handshake_never_panics_on_arbitrary_input(
        junk in prop::collection::vec(any::<u8>(), 0..1500),
        mode in 0u8..4,
        ours in 1u8..3,
    ) {
        let cfg = config(ours, Access::ReadOnly);
        let mut hs = Handshake::new(&cfg, Instant::now(), &mut det_rng(1)).unwrap();
        let hello = Hello {
            min_version: 1,
            max_version: 1,
            folder_id: cfg.folders()[0].folder_id(),
            peer_id: keys::PeerId([3 - ours; 32]),
            nonce: [0; 32],
        }
        .encode();
        let input = match mode {
            0 => junk,
            1 => [hello, junk].concat(),
            // A frame header of a plausible type, then junk.
            2 => {
                let kind = if ours == 1 { kind::SRP_B } else { kind::SRP_A };
                let len = u16::try_from(junk.len().min(1024)).unwrap().to_be_bytes();
                [hello, vec![kind, len[0], len[1]], junk].concat()
            }
            _ => [hello[..50].to_vec(), junk].concat(),
        };
        let _ = hs.handle_input(&input);
        let _ = hs.poll_output();
        let _ = hs.handle_eof();
        prop_assert!(!hs.is_established());
    }
}
