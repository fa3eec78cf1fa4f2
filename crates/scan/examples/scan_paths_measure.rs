//! How `scan_paths` does on a folder whose files arrive a few at a time, as on a
//! sync destination: `cargo run --release -p scan --example scan_paths_measure --
//! DIR [PATHS_PER_CALL]`. Lists DIR's files, then records them with one
//! `scan_paths` call per PATHS_PER_CALL paths (default 1, as the daemon does
//! after applying one record) into a throwaway index; prints the time taken.
//! Count the threads it starts with `strace -f -c -e trace=clone,clone3`.
use std::path::{Path, PathBuf};
use std::time::Instant;

fn files(root: &Path, dir: &Path, out: &mut Vec<record::RelPath>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            if p.file_name().is_some_and(|n| n == ".sync") {
                continue;
            }
            files(root, &p, out)?;
        } else if let Some(rel) = p
            .strip_prefix(root)
            .ok()
            .and_then(|r| r.to_str())
            .and_then(|r| record::RelPath::new(r).ok())
        {
            out.push(rel);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: scan_paths_measure DIR [PATHS_PER_CALL]")?,
    );
    let per_call: usize = args.next().map_or(Ok(1), |n| n.parse())?;
    let mut paths = Vec::new();
    files(&dir, &dir, &mut paths)?;
    let db = tempfile::tempdir()?;
    let mut index = index::Index::open(&db.path().join("index.db"))?;
    let key = keys::RwSecret::from_bytes([7; 20]).signing_key();
    let opts = scan::ScanOptions::new(keys::ShortId(1), Some(key));
    let t = Instant::now();
    let mut added = 0;
    for chunk in paths.chunks(per_call.max(1)) {
        added += scan::scan_paths(&dir, &mut index, &opts, chunk)?.added;
    }
    println!(
        "{} files, {} per call, {} calls: {:.2?}, {added} added",
        paths.len(),
        per_call,
        paths.len().div_ceil(per_call.max(1)),
        t.elapsed()
    );
    Ok(())
}
