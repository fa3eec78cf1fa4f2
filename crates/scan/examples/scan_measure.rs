//! Quick measurement: `cargo run --release -p scan --example scan_measure -- DIR`.
//! Scans DIR twice into a throwaway index and prints times and summaries.
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: scan_measure DIR")?;
    let db = tempfile::tempdir()?;
    let mut index = index::Index::open(&db.path().join("index.db"))?;
    let opts = scan::ScanOptions::new(keys::ShortId(1), None);
    for round in ["first", "unchanged"] {
        let t = Instant::now();
        let s = scan::scan_once(std::path::Path::new(&dir), &mut index, &opts)?;
        println!("{round} scan: {:.2?}\n{s}", t.elapsed());
    }
    let size = std::fs::metadata(db.path().join("index.db"))?.len();
    println!("index: {} KiB", size / 1024);
    Ok(())
}
