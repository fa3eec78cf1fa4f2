//! `swarmsync scan DIR [--state DIR] [--json]`: one full scan into the folder's
//! index, and a summary. The scanner on its own, for users and benchmarks.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use daemon::state::{SecretOrigin, StateDir, StateError};
use index::{Index, IndexError};
use serde::Serialize;

use crate::args::ScanArgs;
use crate::commands::status::human_bytes;
use crate::exit::{Failure, ResultExt};

/// SQLite's primary result code for "database is locked" (`SQLITE_BUSY`).
const SQLITE_BUSY: i32 = 5;

/// What `--json` prints (field names are part of the CLI's API).
#[derive(Debug, Serialize)]
struct Report {
    folder: String,
    files: u64,
    directories: u64,
    symlinks: u64,
    bytes: u64,
    hashed_files: u64,
    hashed_bytes: u64,
    added: u64,
    changed: u64,
    deleted: u64,
    records_changed: u64,
    skipped: u64,
    seconds: f64,
}

pub(crate) fn run(args: &ScanArgs) -> Result<(), Failure> {
    // Unlike `sync`, a missing folder is not created: there would be nothing to scan.
    if !args.dir.is_dir() {
        return Err(Failure::BadInput(anyhow::anyhow!(
            "{} is not a directory",
            args.dir.display()
        )));
    }
    let state = if args.json {
        open_state_quietly(&args.dir, args.state.as_deref())?
    } else {
        super::sync::open_folder(&args.dir, args.state.as_deref(), None)?
    };
    let key = state.key();
    if key.ro_key().is_none() {
        return Err(Failure::BadInput(anyhow::anyhow!(
            "this folder holds only the encrypted key; scanning needs its read-write or read-only key"
        )));
    }
    let root = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("resolving {}", args.dir.display()))
        .runtime()?;
    // Exclusive, as the daemon opens it: a running `sync` cannot start meanwhile,
    // and the scan's many small reads are cheaper.
    let index_path = state.index_path();
    let mut index = Index::open_exclusive(&index_path).map_err(|e| open_failure(&index_path, e))?;
    let options = scan::ScanOptions::new(state.peer_id().short(), key.signing_key());
    let started = Instant::now();
    let summary = scan::scan_once(&root, &mut index, &options)
        .with_context(|| format!("scanning {}", root.display()))
        .runtime()?;
    let seconds = started.elapsed().as_secs_f64();
    drop(index);

    let report = Report {
        folder: args.dir.display().to_string(),
        files: summary.files,
        directories: summary.directories,
        symlinks: summary.symlinks,
        bytes: summary.bytes,
        hashed_files: summary.rehashed_files,
        hashed_bytes: summary.rehashed_bytes,
        added: summary.added,
        changed: summary.changed,
        deleted: summary.deleted,
        records_changed: summary.added + summary.changed + summary.deleted,
        skipped: summary.skipped_total,
        seconds,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).runtime()?);
        // Problems with single entries still reach the user, on stderr.
        print_notes(&mut std::io::stderr(), &summary);
    } else {
        print_text(&report);
        print_notes(&mut std::io::stdout(), &summary);
    }
    Ok(())
}

/// `open_folder` for `--json`: stdout must hold only the JSON, so the notice of a
/// newly made secret goes to stderr.
fn open_state_quietly(dir: &Path, state: Option<&Path>) -> Result<StateDir, Failure> {
    let path = state.map_or_else(|| StateDir::default_for(dir), Path::to_owned);
    let (state, origin) = StateDir::open_or_create(&path, None).map_err(|e| match e {
        StateError::NotADirectory(_) => Failure::BadInput(e.into()),
        _ => Failure::Runtime(e.into()),
    })?;
    if origin == SecretOrigin::Created {
        eprintln!(
            "Created a new folder secret for {}; it is stored in {}.",
            dir.display(),
            state.path().join("secret").display()
        );
    }
    Ok(state)
}

/// A locked index means a `sync` owns the folder: say so instead of SQLite's words.
fn open_failure(path: &Path, e: IndexError) -> Failure {
    let locked = matches!(&e, IndexError::Sqlite { source, .. }
        if source.sqlite_error().is_some_and(|f| f.extended_code & 0xff == SQLITE_BUSY));
    if locked {
        Failure::Runtime(anyhow::anyhow!(
            "the index {} is locked: a `swarmsync sync` is running on this folder; \
             stop it first (it scans the folder itself)",
            path.display()
        ))
    } else {
        Failure::Runtime(anyhow::Error::new(e).context(format!("opening {}", path.display())))
    }
}

fn print_text(r: &Report) {
    println!(
        "scanned:  {} files, {} directories, {} symlinks, {}",
        r.files,
        r.directories,
        r.symlinks,
        human_bytes(r.bytes)
    );
    println!(
        "hashed:   {} files, {}",
        r.hashed_files,
        human_bytes(r.hashed_bytes)
    );
    println!(
        "records:  {} changed ({} added, {} changed, {} deleted)",
        r.records_changed, r.added, r.changed, r.deleted
    );
    println!("time:     {:.3} s", r.seconds);
}

/// What the scan could not record or had doubts about. Best effort: a closed
/// stream must not turn a finished scan into a failure.
fn print_notes(out: &mut dyn Write, s: &scan::ScanSummary) {
    for b in &s.bad_patterns {
        let _ = writeln!(out, "warning: {b} (the other rules apply)");
    }
    for skipped in &s.skipped {
        let _ = writeln!(out, "skipped {}: {}", skipped.path, skipped.reason);
    }
    let unlisted = s.skipped_total.saturating_sub(s.skipped.len() as u64);
    if unlisted > 0 {
        let _ = writeln!(out, "skipped … and {unlisted} more");
    }
    for (dir, e) in &s.unlistable {
        let _ = writeln!(
            out,
            "warning: cannot list {dir} ({e}); nothing below it was marked deleted"
        );
    }
    if s.windows_flagged_total > 0 {
        let _ = writeln!(
            out,
            "note: {} names cannot be created on Windows (e.g. {})",
            s.windows_flagged_total,
            s.windows_flagged
                .first()
                .map_or_else(String::new, |(p, why)| format!("{p}: {why}"))
        );
    }
    for (a, b) in &s.case_collisions {
        let _ = writeln!(out, "note: {a} and {b} differ only in case");
    }
}
