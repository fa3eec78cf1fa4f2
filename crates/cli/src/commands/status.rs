//! `swarmsync status DIR [--json]`.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use daemon::FolderStatus;
use daemon::state::StateDir;
use serde::Serialize;

use crate::args::StatusArgs;
use crate::exit::{Failure, ResultExt};

/// A snapshot older than this means `sync` is not running on the folder.
const FRESH: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize)]
struct Report<'a> {
    folder: String,
    running: bool,
    #[serde(flatten)]
    status: &'a FolderStatus,
}

pub(crate) fn run(args: &StatusArgs) -> Result<(), Failure> {
    if !args.dir.is_dir() {
        return Err(Failure::BadInput(anyhow::anyhow!(
            "{} is not a directory",
            args.dir.display()
        )));
    }
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| StateDir::default_for(&args.dir));
    let state = StateDir::open_existing(&state_path).bad_input()?;
    let snapshot = FolderStatus::read(&state_path);
    let running = snapshot
        .as_ref()
        .is_some_and(|s| s.is_fresh(SystemTime::now(), FRESH));
    let status = match snapshot.filter(|_| running) {
        Some(status) => status,
        None => offline_status(&state)?,
    };
    let report = Report {
        folder: args.dir.display().to_string(),
        running,
        status: &status,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).runtime()?);
    } else {
        print_text(&report);
    }
    Ok(())
}

/// What the index says when `sync` is not running.
fn offline_status(state: &StateDir) -> Result<FolderStatus, Failure> {
    let mut status = FolderStatus {
        folder_id: state.key().folder_id().to_string(),
        access: state.key().access().to_string(),
        ..FolderStatus::default()
    };
    if state.index_path().exists() {
        let index = index::Index::open(&state.index_path())
            .with_context(|| format!("reading {}", state.index_path().display()))
            .runtime()?;
        let summary = index.summary().runtime()?;
        status.files = summary.files;
        status.directories = summary.directories;
        status.bytes = summary.bytes;
    }
    Ok(status)
}

fn print_text(report: &Report<'_>) {
    let s = report.status;
    println!(
        "folder:   {} (folder id {}, {} key)",
        report.folder, s.folder_id, s.access
    );
    println!(
        "running:  {}",
        if report.running {
            "yes"
        } else {
            "no (start it with `swarmsync sync`)"
        }
    );
    println!(
        "holds:    {} files, {} directories, {}",
        s.files,
        s.directories,
        human_bytes(s.bytes)
    );
    if !report.running {
        return;
    }
    let n = &s.network;
    if !n.listen.is_empty() {
        println!(
            "network:  listening on {} (TCP and UDP); discovery: {}",
            n.listen,
            if n.discovery.is_empty() {
                "none".to_owned()
            } else {
                n.discovery.join(", ")
            }
        );
    }
    if let Some(m) = &n.port_mapping {
        match (&m.protocol, &m.tcp) {
            (Some(protocol), Some(tcp)) => println!(
                "router:   {protocol} maps TCP {tcp}{}",
                m.udp
                    .as_deref()
                    .map(|u| format!(", UDP {u}"))
                    .unwrap_or_default()
            ),
            _ => println!(
                "router:   no port mapping{}",
                m.last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        }
    }
    println!("peers:    {} connected", s.peers.len());
    for p in &s.peers {
        println!(
            "  {}  {}  {}  over {}  found by {}  down {}/s  up {}/s",
            short(&p.peer),
            p.address,
            p.access,
            or_unknown(&p.carrier),
            or_unknown(&p.found_by),
            human_bytes(p.receive_rate as u64),
            human_bytes(p.send_rate as u64)
        );
    }
    if s.to_fetch_files == 0 {
        println!("needs:    nothing, in sync with connected peers");
        return;
    }
    println!(
        "needs:    {} files, {}",
        s.to_fetch_files,
        human_bytes(s.to_fetch_bytes)
    );
    for n in &s.needed {
        let from = if n.sources.is_empty() {
            "waiting for a peer that has it".to_owned()
        } else {
            format!(
                "from {}",
                n.sources
                    .iter()
                    .map(|p| short(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        println!("  {}  ({from})", n.path);
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "?" } else { s }
}

fn short(peer: &str) -> &str {
    peer.get(..13).unwrap_or(peer)
}

/// `1.5 MB`, decimal units as disks and networks count.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{n} {name}")
    } else {
        format!("{value:.1} {name}")
    }
}
