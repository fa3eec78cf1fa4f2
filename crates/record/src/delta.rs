//! Which parts of a record body can be copied from an older body of the same
//! file: what a sender needs to send a changed record as a delta (the wire's
//! `IndexDelta`, `docs/protocol/wire.md`).
//!
//! A body is a header of some tens of bytes and then the block list, 36 bytes a
//! block (`docs/protocol/records.md` §2). An edit of a large file changes its
//! header and a few of its content-defined blocks; the blocks before and after
//! the edit are the same (shifted in position when the edit changed the count).
//! So the header is compared byte by byte from its start, and each new block is
//! looked for among the old ones, continuing a run of consecutive old blocks
//! where it can.

use std::collections::HashMap;

use crate::{FileRecord, RecordError};

/// Bytes a block takes in a body.
const BLOCK_ENTRY_LEN: usize = 4 + 32;

/// A piece of the new body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// The new body continues with `len` bytes of the base from `offset`.
    Copy {
        /// Offset in the base body.
        offset: usize,
        /// Length, at least 1.
        len: usize,
    },
    /// The new body continues with its own bytes `offset .. offset + len`.
    Literal {
        /// Offset in the new body.
        offset: usize,
        /// Length, at least 1.
        len: usize,
    },
}

impl Piece {
    /// Bytes of the new body this piece stands for.
    pub const fn len(&self) -> usize {
        match *self {
            Self::Copy { len, .. } | Self::Literal { len, .. } => len,
        }
    }

    /// True when the piece stands for no bytes (never made by [`diff`]).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How `new` is made of pieces of `base` and of its own bytes, in order; both
/// must be valid record bodies. Adjacent pieces are merged, and none is empty.
pub fn diff(base: &[u8], new: &[u8]) -> Result<Vec<Piece>, RecordError> {
    let base_blocks = blocks_start(base)?;
    let new_blocks = blocks_start(new)?;
    let mut pieces = Pieces::default();

    // The header: its unchanged start (format, path, kind …) is copied.
    let head = |body: &[u8], end: usize| body.get(..end).unwrap_or_default().to_vec();
    let (base_head, new_head) = (head(base, base_blocks), head(new, new_blocks));
    let same = base_head
        .iter()
        .zip(&new_head)
        .take_while(|(a, b)| a == b)
        .count();
    pieces.copy(0, same);
    pieces.literal(same, new_blocks - same);

    // The blocks: each one found among the old ones, preferring the one right
    // after the last copied, so an unchanged stretch is one piece.
    let old = entries(base, base_blocks);
    let mut first_at: HashMap<&[u8; BLOCK_ENTRY_LEN], usize> = HashMap::with_capacity(old.len());
    for (i, e) in old.iter().enumerate() {
        first_at.entry(e).or_insert(i);
    }
    let mut next_old: Option<usize> = None;
    for (j, entry) in entries(new, new_blocks).into_iter().enumerate() {
        let found = match next_old {
            Some(k) if old.get(k) == Some(&entry) => Some(k),
            _ => first_at.get(entry).copied(),
        };
        match found {
            Some(k) => {
                pieces.copy(base_blocks + k * BLOCK_ENTRY_LEN, BLOCK_ENTRY_LEN);
                next_old = Some(k + 1);
            }
            None => {
                pieces.literal(new_blocks + j * BLOCK_ENTRY_LEN, BLOCK_ENTRY_LEN);
                next_old = None;
            }
        }
    }
    Ok(pieces.0)
}

/// The block entries of a body whose list starts at `start`.
fn entries(body: &[u8], start: usize) -> Vec<&[u8; BLOCK_ENTRY_LEN]> {
    body.get(start..)
        .unwrap_or_default()
        .chunks_exact(BLOCK_ENTRY_LEN)
        .filter_map(|e| e.try_into().ok())
        .collect()
}

/// Where the block list of a valid body starts.
fn blocks_start(body: &[u8]) -> Result<usize, RecordError> {
    let record = FileRecord::decode(body)?;
    // A decoded body ends with its blocks, so this cannot underflow.
    Ok(body.len() - record.blocks.len() * BLOCK_ENTRY_LEN)
}

/// Pieces, merged as they are added.
#[derive(Default)]
struct Pieces(Vec<Piece>);

impl Pieces {
    fn copy(&mut self, offset: usize, len: usize) {
        self.push(Piece::Copy { offset, len });
    }

    fn literal(&mut self, offset: usize, len: usize) {
        self.push(Piece::Literal { offset, len });
    }

    /// Adds `piece`, extending the last one when it continues it.
    fn push(&mut self, piece: Piece) {
        if piece.is_empty() {
            return;
        }
        let continued = match (self.0.last_mut(), piece) {
            (
                Some(Piece::Copy { offset, len }),
                Piece::Copy {
                    offset: next,
                    len: more,
                },
            )
            | (
                Some(Piece::Literal { offset, len }),
                Piece::Literal {
                    offset: next,
                    len: more,
                },
            ) if *offset + *len == next => {
                *len += more;
                true
            }
            _ => false,
        };
        if !continued {
            self.0.push(piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use keys::ShortId;

    use super::*;
    use crate::{Block, FileKind, RelPath, Timestamp, VersionVector};

    fn record(blocks: &[u8], secs: i64) -> Vec<u8> {
        let blocks: Vec<Block> = blocks
            .iter()
            .map(|&b| Block {
                size: 1000,
                hash: [b; 32],
            })
            .collect();
        let size = 1000 * blocks.len() as u64;
        FileRecord {
            path: RelPath::new("big/file.img").unwrap(),
            kind: FileKind::File,
            size,
            modified: Timestamp { secs, nanos: 0 },
            mode: 0o644,
            version: VersionVector::new().incremented(ShortId(9)),
            deleted: false,
            blocks,
            hash: if size == 0 {
                crate::EMPTY_HASH
            } else {
                [secs as u8; 32]
            },
        }
        .encode()
        .unwrap()
    }

    fn apply(base: &[u8], new: &[u8], pieces: &[Piece]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            match *p {
                Piece::Copy { offset, len } => out.extend_from_slice(&base[offset..offset + len]),
                Piece::Literal { offset, len } => out.extend_from_slice(&new[offset..offset + len]),
            }
        }
        out
    }

    fn literal_bytes(pieces: &[Piece]) -> usize {
        pieces
            .iter()
            .filter(|p| matches!(p, Piece::Literal { .. }))
            .map(Piece::len)
            .sum()
    }

    #[test]
    fn an_insertion_costs_its_blocks_and_the_changed_header() {
        let old: Vec<u8> = (0..200).collect();
        let mut edited = old.clone();
        edited.splice(100..101, [250, 251]);
        let (base, new) = (record(&old, 1), record(&edited, 2));
        let pieces = diff(&base, &new).unwrap();
        assert_eq!(apply(&base, &new, &pieces), new);
        // Two new blocks and the header from its size field on: well under
        // one block list's worth.
        assert!(
            literal_bytes(&pieces) < 2 * BLOCK_ENTRY_LEN + 100,
            "{pieces:?}"
        );
        assert!(pieces.len() <= 6, "{pieces:?}");
    }

    #[test]
    fn scattered_edits_deletions_and_moves_rebuild_exactly() {
        let old: Vec<u8> = (0..120).collect();
        let cases: Vec<Vec<u8>> = vec![
            (0..120).rev().collect(),
            (0..120).filter(|b| b % 7 != 0).collect(),
            (60..120).chain(0..60).collect(),
            vec![],
            (0..120)
                .map(|b| if b % 10 == 0 { 200 } else { b })
                .collect(),
            (0..240).map(|b| (b % 120) as u8).collect(),
        ];
        for edited in cases {
            let (base, new) = (record(&old, 1), record(&edited, 2));
            let pieces = diff(&base, &new).unwrap();
            assert_eq!(apply(&base, &new, &pieces), new);
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
    }

    #[test]
    fn a_body_that_is_not_a_record_is_an_error() {
        let good = record(&[1, 2, 3], 1);
        assert!(diff(&good, b"not a record").is_err());
        assert!(diff(b"", &good).is_err());
    }
}
