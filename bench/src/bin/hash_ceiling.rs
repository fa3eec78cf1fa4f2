//! The CPU side of the scan ceiling: how fast this machine chunks and hashes
//! bytes already in memory, per core and on every core, for `bench/scan.py`.
//!
//! ```text
//! cargo run --release -p bench --bin hash_ceiling             # 256 MiB buffer
//! HASH_CEILING_MIB=64 cargo run --release -p bench --bin hash_ceiling
//! ```
//!
//! Measured, each on one thread and on N threads at once (N = available cores,
//! each thread over the same read-only buffer, rates summed):
//! - `blake3`: one BLAKE3 pass (`blake3::hash`), what `b3sum` does per byte;
//! - `fastcdc`: FastCDC v2020 cut points alone, with the scanner's tier for a
//!   256 MiB file;
//! - `scan_hash`: `scan::chunk::hash_stream`, the scanner's whole per-file work
//!   (cut points, BLAKE3 per block and BLAKE3 of the whole file).
//!
//! Best of 3 runs each, since the machine is shared. The last line is JSON.
#![forbid(unsafe_code)]

use std::time::Instant;

use fastcdc::v2020::{FastCDC, Normalization};
use scan::chunk::{Chunking, hash_stream};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const RUNS: usize = 3;

/// Incompressible bytes, like the benchmark's files (xorshift, no RNG crate).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// One pass of `kind` over `data`; returns a value so the work is not elided.
fn pass(kind: &str, data: &[u8]) -> Result<u64> {
    // The tier of the benchmark's 256 MiB files, whatever the buffer's size.
    let params = Chunking::Auto.params_for(256 << 20);
    match kind {
        "blake3" => Ok(u64::from(blake3::hash(data).as_bytes()[0])),
        "fastcdc" => Ok(FastCDC::with_level(
            data,
            params.min as usize,
            params.avg as usize,
            params.max as usize,
            Normalization::Level1,
        )
        .count() as u64),
        "scan_hash" => {
            let mut buf = Vec::new();
            Ok(hash_stream(data, params, &mut buf, |_| {})?.blocks.len() as u64)
        }
        _ => Err(format!("unknown pass {kind}").into()),
    }
}

/// Best aggregate rate in GB/s of `threads` threads each running `pass` once.
fn rate(kind: &str, data: &[u8], threads: usize) -> Result<f64> {
    let mut best = 0.0f64;
    for _ in 0..RUNS {
        let start = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = (0..threads)
                .map(|_| s.spawn(move || pass(kind, data)))
                .collect();
            for h in handles {
                h.join().map_err(|_| "hashing thread panicked")??;
            }
            Ok(())
        })?;
        let secs = start.elapsed().as_secs_f64();
        best = best.max((threads * data.len()) as f64 / secs / 1e9);
    }
    Ok(best)
}

fn main() -> Result<()> {
    let mib: usize = std::env::var("HASH_CEILING_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let data = noise(mib << 20);
    let mut json = Vec::new();
    for kind in ["blake3", "fastcdc", "scan_hash"] {
        let one = rate(kind, &data, 1)?;
        let all = rate(kind, &data, cores)?;
        println!("{kind:>10}: {one:6.2} GB/s on 1 thread, {all:6.2} GB/s on {cores}");
        json.push(format!(
            "\"{kind}_1t_GBps\": {one:.3}, \"{kind}_{cores}t_GBps\": {all:.3}"
        ));
    }
    println!(
        "{{\"cores\": {cores}, \"mib\": {mib}, {}}}",
        json.join(", ")
    );
    Ok(())
}
