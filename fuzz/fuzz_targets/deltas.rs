//! The delta searches never panic, and what they produce rebuilds exactly.
//!
//! - `wire::BlockSums::delta_of`: with the checksums of a basis, the pieces
//!   applied to that basis give the block back; with checksums that describe
//!   something else (a hostile asker's), it still answers or declines.
//! - `record::delta::diff`: for two valid record bodies, the pieces give the
//!   new body back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::BlockSums;

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let chunk_len = 256 + u32::from(u16::from_be_bytes([a, b]) % 4096);
    let split = rest.len() / 2;
    let (basis, block) = rest.split_at(split);
    let sums = BlockSums::of(basis, chunk_len);
    if let Some(pieces) = sums.delta_of(block, usize::MAX) {
        assert_eq!(pieces.apply(basis).expect("copies stay in the basis"), block);
    }
    // The same checksums offered for another basis: any answer, no panic.
    let _ = sums.delta_of(basis, block.len());

    if record::FileRecord::decode(basis).is_ok() && record::FileRecord::decode(block).is_ok() {
        let pieces = record::delta::diff(basis, block).expect("both are records");
        let mut rebuilt = Vec::new();
        for piece in pieces {
            match piece {
                record::delta::Piece::Copy { offset, len } => {
                    rebuilt.extend_from_slice(&basis[offset..offset + len]);
                }
                record::delta::Piece::Literal { offset, len } => {
                    rebuilt.extend_from_slice(&block[offset..offset + len]);
                }
            }
        }
        assert_eq!(rebuilt, block);
    }
});
