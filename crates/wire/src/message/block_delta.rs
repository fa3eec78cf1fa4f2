//! DeltaRequest and DeltaResponse: fetching a changed block as the difference
//! from an old block the asker holds (rsync's algorithm, inside one block).
//!
//! Blocks are content-defined, so an edit of a file changes only the block or
//! two around it, but each of those is sent whole: up to a MiB for a 100-byte
//! insert in a large file. A receiver that still holds the old bytes at that
//! place (the *basis*) sends checksums of its fixed-size chunks; the sender
//! answers with the block as pieces of the basis and literal bytes. The result
//! is checked against the block's BLAKE3 hash as any block is, so a bad delta
//! costs a retry, never a wrong byte.

use crate::MAX_BLOCK_LEN;
use crate::codec::{Put, Reader};
use crate::error::DecodeError;
use crate::message::Payload;
use crate::message::block::Request;
use crate::message::delta::{DeltaOp, Pieces};

/// The smallest chunk a basis may be cut into.
pub const MIN_CHUNK_LEN: u32 = 256;

/// Bytes of a chunk's strong checksum: the first bytes of its BLAKE3 hash.
pub const STRONG_LEN: usize = 8;

/// The checksums of one chunk of a basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkSum {
    /// [`weak_sum`] of the chunk.
    pub weak: u32,
    /// The first [`STRONG_LEN`] bytes of the chunk's BLAKE3 hash.
    pub strong: [u8; STRONG_LEN],
}

/// The checksums of a basis cut into chunks of `chunk_len` bytes; a shorter
/// last piece of the basis has none.
///
/// Layout: `chunk_len u32 | count u32 | (weak u32 | strong [8]) × count`;
/// `MIN_CHUNK_LEN ≤ chunk_len` and `count × chunk_len ≤ MAX_BLOCK_LEN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockSums {
    chunk_len: u32,
    sums: Vec<ChunkSum>,
}

impl BlockSums {
    /// The checksums of `basis` (at most [`MAX_BLOCK_LEN`] bytes are used) in
    /// chunks of `chunk_len` (raised to [`MIN_CHUNK_LEN`]).
    pub fn of(basis: &[u8], chunk_len: u32) -> Self {
        let chunk_len = chunk_len.max(MIN_CHUNK_LEN);
        let usable = basis.get(..MAX_BLOCK_LEN).unwrap_or(basis);
        let sums = usable
            .chunks_exact(chunk_len as usize)
            .map(|chunk| ChunkSum {
                weak: weak_sum(chunk),
                strong: strong_sum(chunk),
            })
            .collect();
        Self { chunk_len, sums }
    }

    /// A good chunk length for a basis of `len` bytes: about √(12 × len), the
    /// balance between the checksums sent (12 bytes a chunk) and the bytes
    /// around an edit that no chunk matches, as a power of two.
    pub fn chunk_len_for(len: usize) -> u32 {
        let ideal = ((12 * len) as f64).sqrt() as u32;
        ideal.next_power_of_two().clamp(MIN_CHUNK_LEN, 1 << 16)
    }

    /// The chunk length.
    pub fn chunk_len(&self) -> u32 {
        self.chunk_len
    }

    /// The checksums, chunk by chunk.
    pub fn sums(&self) -> &[ChunkSum] {
        &self.sums
    }

    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        8 + self.sums.len() * (4 + STRONG_LEN)
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.chunk_len);
        out.put_u32(self.sums.len() as u32);
        for s in &self.sums {
            out.put_u32(s.weak);
            out.extend_from_slice(&s.strong);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let chunk_len = r.u32("sums.chunk_len")?;
        if chunk_len < MIN_CHUNK_LEN || chunk_len as usize > MAX_BLOCK_LEN {
            return Err(DecodeError::BadValue {
                field: "sums.chunk_len",
                reason: "must be 256 ..= 8 MiB",
            });
        }
        let max = MAX_BLOCK_LEN / chunk_len as usize;
        let count = r.count("sums.count", max, 4 + STRONG_LEN)?;
        let mut sums = Vec::with_capacity(count);
        for _ in 0..count {
            sums.push(ChunkSum {
                weak: r.u32("sums.weak")?,
                strong: r.array("sums.strong")?,
            });
        }
        Ok(Self { chunk_len, sums })
    }

    /// `block` as pieces of the basis these checksums describe, if that is
    /// at most `max_wire_len` bytes on the wire. Copies are of whole chunks.
    ///
    /// rsync's search: a window of one chunk slides over `block` a byte at a
    /// time with a rolling weak checksum; where it matches a chunk's, the
    /// strong checksum decides. The strong checks are bounded (a peer's
    /// checksums could all share one weak value), and the search gives up
    /// once the literal bytes alone exceed `max_wire_len`.
    pub fn delta_of(&self, block: &[u8], max_wire_len: usize) -> Option<Pieces> {
        let n = self.chunk_len as usize;
        if self.sums.is_empty() || block.len() < n {
            return None;
        }
        // The first chunk with each pair of sums: one lookup per strong check,
        // however many chunks a peer gave the same weak sum.
        let mut weak_sums = std::collections::HashSet::with_capacity(self.sums.len());
        let mut chunks = std::collections::HashMap::with_capacity(self.sums.len());
        for (i, s) in self.sums.iter().enumerate() {
            weak_sums.insert(s.weak);
            chunks.entry((s.weak, s.strong)).or_insert(i as u32);
        }
        // Strong checks hash at most about four times the block.
        let mut strong_budget = (4 * block.len() / n).max(64);
        let mut ops: Vec<DeltaOp> = Vec::new();
        let mut wire_len = 8;
        let mut literal_from = 0;
        let mut at = 0;
        let mut rolling = Rolling::new(block.get(..n)?);
        loop {
            let weak = rolling.sum();
            let found = if weak_sums.contains(&weak) && strong_budget > 0 {
                strong_budget -= 1;
                block
                    .get(at..at + n)
                    .and_then(|window| chunks.get(&(weak, strong_sum(window))).copied())
            } else {
                None
            };
            if let Some(chunk) = found {
                if literal_from < at {
                    let literal = block.get(literal_from..at)?;
                    wire_len += 5 + literal.len();
                    ops.push(DeltaOp::Literal(bytes::Bytes::copy_from_slice(literal)));
                }
                let offset = chunk * self.chunk_len;
                match ops.last_mut() {
                    Some(DeltaOp::Copy { offset: o, len }) if *o + *len == offset => {
                        *len += self.chunk_len;
                    }
                    _ => {
                        wire_len += 9;
                        ops.push(DeltaOp::Copy {
                            offset,
                            len: self.chunk_len,
                        });
                    }
                }
                at += n;
                literal_from = at;
                match block.get(at..at + n) {
                    Some(window) => rolling = Rolling::new(window),
                    None => break,
                }
            } else {
                let (Some(&out), Some(&into)) = (block.get(at), block.get(at + n)) else {
                    break;
                };
                rolling.roll(out, into);
                at += 1;
            }
            if wire_len + (at - literal_from) > max_wire_len {
                return None;
            }
        }
        if literal_from < block.len() {
            let literal = block.get(literal_from..)?;
            wire_len += 5 + literal.len();
            ops.push(DeltaOp::Literal(bytes::Bytes::copy_from_slice(literal)));
        }
        if wire_len > max_wire_len {
            return None;
        }
        Pieces::new(ops, MAX_BLOCK_LEN)
    }
}

/// rsync's weak checksum of `data`: `a` = the sum of the bytes, `b` = the sum
/// of each byte times its distance from the end (`len − i`), both mod 2^16;
/// the checksum is `a | b << 16`.
pub fn weak_sum(data: &[u8]) -> u32 {
    Rolling::new(data).sum()
}

fn strong_sum(data: &[u8]) -> [u8; STRONG_LEN] {
    let hash = blake3::hash(data);
    let mut strong = [0; STRONG_LEN];
    strong.copy_from_slice(
        hash.as_bytes()
            .get(..STRONG_LEN)
            .unwrap_or(&[0; STRONG_LEN]),
    );
    strong
}

/// [`weak_sum`] of a window that slides a byte at a time.
struct Rolling {
    a: u32,
    b: u32,
    len: u32,
}

impl Rolling {
    fn new(window: &[u8]) -> Self {
        let len = window.len() as u32;
        let (mut a, mut b) = (0u32, 0u32);
        for (i, &x) in window.iter().enumerate() {
            a = a.wrapping_add(u32::from(x));
            b = b.wrapping_add((len - i as u32).wrapping_mul(u32::from(x)));
        }
        Self { a, b, len }
    }

    fn sum(&self) -> u32 {
        (self.a & 0xffff) | ((self.b & 0xffff) << 16)
    }

    /// Moves the window one byte on: `out` leaves at the front, `into` joins
    /// at the back.
    fn roll(&mut self, out: u8, into: u8) {
        self.a = self
            .a
            .wrapping_sub(u32::from(out))
            .wrapping_add(u32::from(into));
        self.b = self
            .b
            .wrapping_sub(self.len.wrapping_mul(u32::from(out)))
            .wrapping_add(self.a);
    }
}

/// Asks for a block, offering the checksums of a basis the asker holds.
/// Sent only when both Hellos set
/// [`Capabilities::BLOCK_DELTA`](crate::Capabilities::BLOCK_DELTA).
///
/// Layout: the fields of a [`Request`] (`request_id`, `hash`, `size`, hint),
/// then [`BlockSums`]. Answered by a [`Response`](crate::Response) (the block
/// whole, or why not) or a [`DeltaResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeltaRequest {
    /// The block wanted, as in a Request.
    pub request: Request,
    /// The checksums of the basis.
    pub sums: BlockSums,
}

impl Payload for DeltaRequest {
    fn put(&self, out: &mut Vec<u8>) {
        self.request.put(out);
        self.sums.put(out);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request = Request::read(r)?;
        let sums = BlockSums::read(r)?;
        Ok(Self { request, sums })
    }
}

/// Answers a [`DeltaRequest`]: the block as pieces of the asker's basis
/// (copies are byte ranges of the basis) and literal bytes.
///
/// Layout: `request_id u32 | pieces` (at most [`MAX_BLOCK_LEN`] bytes made).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeltaResponse {
    /// The request answered.
    pub request_id: u32,
    /// The block.
    pub pieces: Pieces,
}

impl DeltaResponse {
    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        4 + self.pieces.wire_len()
    }
}

impl Payload for DeltaResponse {
    fn put(&self, out: &mut Vec<u8>) {
        out.put_u32(self.request_id);
        self.pieces.put(out);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let request_id = r.u32("delta_response.request_id")?;
        let pieces = Pieces::read(r, MAX_BLOCK_LEN)?;
        Ok(Self { request_id, pieces })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn the_rolling_sum_equals_the_sum_of_each_window() {
        let data = noise(5000, 1);
        let n = 700;
        let mut rolling = Rolling::new(&data[..n]);
        for at in 0..data.len() - n {
            assert_eq!(rolling.sum(), weak_sum(&data[at..at + n]), "at {at}");
            rolling.roll(data[at], data[at + n]);
        }
    }

    #[test]
    fn an_insertion_costs_about_a_chunk() {
        let old = noise(256 << 10, 2);
        let mut new = old.clone();
        new.splice(100_000..100_000, [0x5a; 100]);
        let chunk = BlockSums::chunk_len_for(old.len());
        let sums = BlockSums::of(&old, chunk);
        let pieces = sums.delta_of(&new, new.len()).unwrap();
        assert_eq!(pieces.apply(&old).unwrap(), new);
        let literal: usize = pieces
            .ops()
            .iter()
            .filter_map(|op| match op {
                DeltaOp::Literal(b) => Some(b.len()),
                DeltaOp::Copy { .. } => None,
            })
            .sum();
        assert!(
            literal <= 100 + 2 * chunk as usize,
            "{literal} literal bytes"
        );
        assert!(pieces.wire_len() + sums.wire_len() < 8 << 10);
    }

    #[test]
    fn unrelated_data_is_no_delta_and_related_data_rebuilds_exactly() {
        let old = noise(64 << 10, 3);
        let sums = BlockSums::of(&old, 1024);
        let other = noise(64 << 10, 4);
        assert!(sums.delta_of(&other, other.len() / 2).is_none());
        let cases = [
            old.clone(),
            old[1000..].to_vec(),
            [&old[30_000..], &old[..30_000]].concat(),
            [&old[..], &old[..5000]].concat(),
            old.iter()
                .map(|b| b ^ 1)
                .take(2000)
                .chain(old[2000..].iter().copied())
                .collect(),
        ];
        for new in cases {
            let pieces = sums.delta_of(&new, usize::MAX).unwrap();
            assert_eq!(pieces.apply(&old).unwrap(), new);
        }
    }

    #[test]
    fn checksums_that_all_share_one_weak_value_cost_a_bounded_search() {
        // A hostile asker: every chunk claims the weak sum of every window.
        let block = vec![0u8; 1 << 20];
        let weak = weak_sum(&block[..256]);
        let sums = BlockSums {
            chunk_len: 256,
            sums: vec![
                ChunkSum {
                    weak,
                    strong: [9; 8],
                };
                4096
            ],
        };
        // It answers (all literal), having hashed at most about 4 MiB.
        assert!(sums.delta_of(&block, usize::MAX).is_some());
    }

    #[test]
    fn a_chunk_length_out_of_range_is_malformed() {
        let request = Request {
            request_id: 1,
            hash: [0; 32],
            size: 10,
            hint: None,
        };
        for (chunk_len, ok) in [
            (255, false),
            (256, true),
            (8 << 20, true),
            ((8 << 20) + 1, false),
        ] {
            let message = crate::Message::DeltaRequest(DeltaRequest {
                request: request.clone(),
                sums: BlockSums {
                    chunk_len,
                    sums: vec![],
                },
            });
            let bytes = message.to_vec();
            assert_eq!(crate::decode(&bytes).is_ok(), ok, "{chunk_len}");
        }
    }
}
