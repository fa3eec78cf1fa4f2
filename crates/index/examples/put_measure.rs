//! The cost of writing records, as a scan writes them: `cargo run --release -p
//! index --example put_measure -- [FILES] [DB] [PER_TRANSACTION]`. Builds FILES (default 100 000)
//! signed one-block records (not timed), then times writing them into a fresh
//! index at DB (default a temporary directory) the way the scanner does: a
//! stat-only lookup, then `put_seen_checked`, PER_TRANSACTION (default 1 000,
//! the scanner's) per transaction.
use std::time::Instant;

use index::{Index, LocalStat, Update};
use keys::{RwSecret, ShortId};
use record::{Block, FileKind, FileRecord, RelPath, SignedRecord, Timestamp, VersionVector};

/// 32 well-mixed bytes from `x` (splitmix64), standing in for a BLAKE3 hash.
fn pseudo_hash(mut x: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    out
}

/// User + system CPU seconds of this process so far (Linux; 0 elsewhere).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let tmp = tempfile::tempdir()?;
    let db = args
        .next()
        .filter(|d| !d.is_empty())
        .map_or_else(|| tmp.path().join("index.db"), std::path::PathBuf::from);
    let per_tx: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let key = RwSecret::from_bytes([3; 20]).signing_key();
    let t = Instant::now();
    let updates = (0..n)
        .map(|i| {
            let size = 1024 + (i as u32 * 7919) % 15_000;
            let record = FileRecord {
                path: RelPath::new(format!("d{:04}/f{i:06}.bin", i % 1000))?,
                kind: FileKind::File,
                size: u64::from(size),
                modified: Timestamp {
                    secs: 1_700_000_000,
                    nanos: i as u32,
                },
                mode: 0o644,
                version: VersionVector::new().incremented(ShortId(1)),
                deleted: false,
                blocks: vec![Block {
                    size,
                    hash: pseudo_hash(i as u64),
                }],
                hash: pseudo_hash((i + n) as u64),
            };
            let signed = Some(SignedRecord::sign(&record, &key)?);
            let local = Some(LocalStat {
                size: u64::from(size),
                modified: record.modified,
                inode: i as u64,
            });
            Ok(Update {
                record,
                signed,
                local_only: false,
                local,
            }
            .check()?)
        })
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    println!("{n} records built in {:.2?}", t.elapsed());
    let mut ix = Index::open(&db)?;
    let t = Instant::now();
    let cpu = cpu_secs();
    let mut w = ix.write()?;
    for (i, u) in updates.into_iter().enumerate() {
        if w.stored_state(&u.record().path)?.is_some() {
            return Err("record already there".into());
        }
        w.put_seen_checked(u)?;
        if i % per_tx.max(1) == per_tx.max(1) - 1 {
            w.commit()?;
            w = ix.write()?;
        }
    }
    w.commit()?;
    let el = t.elapsed();
    let cpu = cpu_secs() - cpu;
    println!(
        "written in {el:.2?} ({:.1} µs per record), CPU {cpu:.2} s ({:.1} µs per record); index {} KiB",
        el.as_secs_f64() * 1e6 / n as f64,
        cpu * 1e6 / n as f64,
        std::fs::metadata(&db)?.len() / 1024
    );
    Ok(())
}
