//! Content-defined chunking (FastCDC v2020) and BLAKE3 hashing of file content.

use std::io::Read;

use fastcdc::v2020::{FastCDC, Normalization};
use record::{Block, MAX_BLOCK_SIZE};

/// FastCDC size bounds for one file, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    /// No cut point before this many bytes (except at end of file).
    pub min: u32,
    /// The size the cut-point masks aim for.
    pub avg: u32,
    /// A cut is forced here; at most [`MAX_BLOCK_SIZE`].
    pub max: u32,
}

impl ChunkParams {
    const fn new(min: u32, avg: u32, max: u32) -> Self {
        Self { min, avg, max }
    }

    /// Clamps to what FastCDC v2020 accepts and records allow (even sizes,
    /// `64 ≤ min ≤ avg ≤ max ≤ 8 MiB`).
    pub fn sanitized(self) -> Self {
        let even = |v: u32| v & !1;
        let max = even(self.max.clamp(1024, MAX_BLOCK_SIZE));
        let avg = even(self.avg.clamp(256, 4 << 20).min(max));
        let min = even(self.min.clamp(64, 1 << 20).min(avg));
        Self { min, avg, max }
    }
}

/// How block sizes are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunking {
    /// By file size, in tiers (see [`tier_for`] and `docs/index-and-scan.md`).
    #[default]
    Auto,
    /// The same bounds for every file (tests, experiments).
    Fixed(ChunkParams),
}

impl Chunking {
    /// The bounds for a file of `size` bytes.
    pub fn params_for(self, size: u64) -> ChunkParams {
        match self {
            Self::Auto => tier_for(size),
            Self::Fixed(p) => p.sanitized(),
        }
    }
}

/// The tiers: small files get small blocks (good edit locality), large files get
/// large ones so their block lists stay a few thousand entries long.
///
/// | file size     | min    | avg    | max    | blocks at most about |
/// |---------------|--------|--------|--------|-------------|
/// | < 256 MiB     | 16 KiB | 64 KiB | 256 KiB | 4 096      |
/// | < 4 GiB       | 64 KiB | 256 KiB | 1 MiB  | 16 384     |
/// | < 64 GiB      | 256 KiB | 1 MiB | 4 MiB  | 65 536     |
/// | larger        | 1 MiB  | 4 MiB  | 8 MiB  | 231 000 (≈ 900 GiB) |
pub const fn tier_for(size: u64) -> ChunkParams {
    const KIB: u32 = 1024;
    const MIB: u64 = 1 << 20;
    if size < 256 * MIB {
        ChunkParams::new(16 * KIB, 64 * KIB, 256 * KIB)
    } else if size < 4096 * MIB {
        ChunkParams::new(64 * KIB, 256 * KIB, 1024 * KIB)
    } else if size < 65536 * MIB {
        ChunkParams::new(256 * KIB, 1024 * KIB, 4096 * KIB)
    } else {
        ChunkParams::new(1024 * KIB, 4096 * KIB, 8192 * KIB)
    }
}

/// The blocks and whole-file hash of some content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    /// The blocks, in order.
    pub blocks: Vec<Block>,
    /// BLAKE3 of all the bytes.
    pub hash: [u8; 32],
    /// How many bytes were read.
    pub len: u64,
}

/// Chunks and hashes everything `source` yields. `on_block` runs after each block
/// (the scanner's test hook uses it to change a file mid-read).
///
/// `buf` is scratch space, grown to `params.max` once and reused across calls so
/// that small files cost no allocation; the cut points are FastCDC v2020's over a
/// window of `max` bytes, exactly as its `StreamCDC` would find them.
pub fn hash_stream<R: Read>(
    mut source: R,
    params: ChunkParams,
    buf: &mut Vec<u8>,
    mut on_block: impl FnMut(usize),
) -> std::io::Result<Hashed> {
    let p = params.sanitized();
    let (min, avg, max) = (p.min as usize, p.avg as usize, p.max as usize);
    if buf.len() < max {
        buf.resize(max, 0);
    }
    let internal = || std::io::Error::other("chunk buffer out of range");
    let mut whole = blake3::Hasher::new();
    let mut only: Option<[u8; 32]> = None;
    let mut blocks = Vec::new();
    let mut total: u64 = 0;
    let mut len = 0usize;
    let mut eof = false;
    loop {
        while !eof && len < max {
            let free = buf.get_mut(len..max).ok_or_else(internal)?;
            match source.read(free) {
                Ok(0) => eof = true,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if len == 0 {
            break;
        }
        let window = buf.get(..len).ok_or_else(internal)?;
        let (_, cut) =
            FastCDC::with_level(window, min, avg, max, Normalization::Level1).cut(0, len);
        let cut = if cut == 0 || cut > len { len } else { cut };
        let data = buf.get(..cut).ok_or_else(internal)?;
        let hash = *blake3::hash(data).as_bytes();
        if blocks.is_empty() && eof && cut == len {
            // The only block: the file's hash is the block's (BLAKE3 of the same
            // bytes). Most small files are one block; this halves their hashing.
            only = Some(hash);
        } else {
            whole.update(data);
        }
        let size = u32::try_from(cut).map_err(|_| internal())?;
        blocks.push(Block { size, hash });
        total += u64::from(size);
        buf.copy_within(cut..len, 0);
        len -= cut;
        on_block(blocks.len());
    }
    Ok(Hashed {
        blocks,
        hash: only.unwrap_or_else(|| *whole.finalize().as_bytes()),
        len: total,
    })
}

/// Chunks and hashes a byte slice (tests, benchmarks).
pub fn hash_bytes(data: &[u8], params: ChunkParams) -> Hashed {
    // Reading from a slice cannot fail.
    hash_stream(data, params, &mut Vec::new(), |_| {}).unwrap_or(Hashed {
        blocks: Vec::new(),
        hash: *blake3::hash(data).as_bytes(),
        len: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SMALL: ChunkParams = ChunkParams {
        min: 256,
        avg: 1024,
        max: 4096,
    };

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn pieces<'a>(data: &'a [u8], h: &Hashed) -> Vec<&'a [u8]> {
        let mut at = 0;
        h.blocks
            .iter()
            .map(|b| {
                let s = &data[at..at + b.size as usize];
                at += b.size as usize;
                s
            })
            .collect()
    }

    #[test]
    fn empty_input_has_no_blocks() {
        let h = hash_bytes(&[], SMALL);
        assert!(h.blocks.is_empty());
        assert_eq!(h.hash, record::EMPTY_HASH);
    }

    #[test]
    fn tiers_respect_limits() {
        for size in [0, 1 << 20, 300 << 20, 5 << 30, 100 << 30, u64::MAX] {
            let p = tier_for(size);
            assert_eq!(p, p.sanitized());
            assert!(p.max <= MAX_BLOCK_SIZE);
        }
    }

    /// Hands out at most 7 bytes per read.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(out.len()).min(7);
            let (head, rest) = self.0.split_at(n);
            out[..n].copy_from_slice(head);
            self.0 = rest;
            Ok(n)
        }
    }

    #[test]
    fn file_hash_is_blake3_of_everything_around_the_one_block_case() {
        let max = SMALL.max as usize;
        for len in [1, 255, 256, max - 1, max, max + 1, 3 * max] {
            let data = pseudo_random(len, len as u64);
            let want = *blake3::hash(&data).as_bytes();
            let mut buf = Vec::new();
            let h = hash_stream(Trickle(&data), SMALL, &mut buf, |_| {}).unwrap();
            assert_eq!(h.hash, want, "len {len}");
            assert_eq!(h, hash_bytes(&data, SMALL), "len {len}");
            if h.blocks.len() == 1 {
                assert_eq!(h.blocks[0].hash, want);
            }
        }
    }

    proptest! {
        #[test]
        fn chunks_concatenate_back(len in 0usize..40_000, seed in any::<u64>()) {
            let data = pseudo_random(len, seed);
            let h = hash_bytes(&data, SMALL);
            let ps = pieces(&data, &h);
            prop_assert_eq!(ps.concat(), data.clone());
            prop_assert_eq!(h.hash, *blake3::hash(&data).as_bytes());
            prop_assert_eq!(h.len, len as u64);
            for (p, b) in ps.iter().zip(&h.blocks) {
                prop_assert_eq!(*blake3::hash(p).as_bytes(), b.hash);
                prop_assert!(b.size <= SMALL.max);
            }
        }

        #[test]
        fn cuts_match_fastcdc_stream(len in 0usize..30_000, seed in any::<u64>()) {
            let data = pseudo_random(len, seed);
            let ours: Vec<u32> = hash_bytes(&data, SMALL).blocks.iter().map(|b| b.size).collect();
            let theirs: Vec<u32> = fastcdc::v2020::StreamCDC::new(&data[..], 256, 1024, 4096)
                .map(|c| c.unwrap().length as u32)
                .collect();
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn insert_in_the_middle_changes_only_nearby_chunks(
            seed in any::<u64>(),
            at in 10_000usize..50_000,
            insert in proptest::collection::vec(any::<u8>(), 1..200),
        ) {
            let data = pseudo_random(60_000, seed);
            let mut edited = data[..at].to_vec();
            edited.extend_from_slice(&insert);
            edited.extend_from_slice(&data[at..]);
            let (a, b) = (hash_bytes(&data, SMALL), hash_bytes(&edited, SMALL));
            // Every cut before the insert is the same: chunking is deterministic
            // from the start of the file. (A cut exactly at the insert point may
            // move: FastCDC v2020 looks one byte ahead.)
            let mut end = 0usize;
            let mut prefix = 0;
            for blk in &a.blocks {
                end += blk.size as usize;
                if end >= at {
                    break;
                }
                prefix += 1;
            }
            prop_assert_eq!(&a.blocks[..prefix], &b.blocks[..prefix]);
            // After it, content-defined cuts resynchronise within a few blocks:
            // the new blocks cover a few max-sizes at most, out of 60 000 bytes.
            let old: std::collections::HashSet<_> = a.blocks.iter().map(|b| b.hash).collect();
            let new_bytes: u64 = b.blocks.iter().filter(|b| !old.contains(&b.hash)).map(|b| u64::from(b.size)).sum();
            prop_assert!(new_bytes <= 4 * u64::from(SMALL.max), "{} new bytes", new_bytes);
            prop_assert!(b.blocks.len() > 20);
        }
    }
}
