//! The saved routing table: `STATE_DIR/dht-nodes`, one `IP:PORT` per line,
//! loaded at start as extra bootstrap nodes so a restart does not depend on
//! the public routers. Nothing in it is trusted: a node that does not answer
//! is simply not used, and a damaged file only costs the shortcut.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};

/// The file's name inside the state directory.
pub(crate) const NODES_FILE: &str = "dht-nodes";
/// Most nodes written (and read back).
pub(crate) const MAX_NODES: usize = 256;
/// Longest file read; the rest is ignored (256 lines are about 6 KiB).
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// First line of the file, for the curious reader.
const HEADER: &str =
    "# swarmsync DHT nodes seen last run (IP:PORT per line), rewritten automatically";

/// The file for `state_dir`.
pub(crate) fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join(NODES_FILE)
}

/// The addresses in `text`, deduplicated, at most [`MAX_NODES`], and how many
/// non-empty, non-comment lines did not parse.
pub(crate) fn parse(text: &str) -> (Vec<SocketAddrV4>, usize) {
    let mut seen = HashSet::new();
    let mut nodes = Vec::new();
    let mut bad = 0;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<SocketAddrV4>() {
            Ok(addr) if addr.port() != 0 && !addr.ip().is_unspecified() => {
                if nodes.len() < MAX_NODES && seen.insert(addr) {
                    nodes.push(addr);
                }
            }
            _ => bad += 1,
        }
    }
    (nodes, bad)
}

/// The saved nodes, or none: a missing file is normal, an unreadable or
/// damaged one is logged and ignored (never fatal). Blocking.
pub(crate) fn load(path: &Path) -> Vec<SocketAddrV4> {
    let mut text = String::new();
    let read = fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES).read_to_string(&mut text));
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring the saved DHT nodes");
            return Vec::new();
        }
    }
    let (nodes, bad) = parse(&text);
    if bad > 0 {
        tracing::warn!(
            path = %path.display(),
            bad,
            kept = nodes.len(),
            "ignoring malformed lines of the saved DHT nodes"
        );
    }
    nodes
}

/// Replaces the file with `nodes` (at most [`MAX_NODES`]): written to a
/// temporary beside it and renamed, so a reader or a crash never sees half a
/// file. Blocking.
pub(crate) fn store(path: &Path, nodes: &[SocketAddrV4]) -> io::Result<()> {
    let mut text = String::with_capacity(32 * nodes.len().min(MAX_NODES) + HEADER.len() + 1);
    text.push_str(HEADER);
    text.push('\n');
    for node in nodes.iter().take(MAX_NODES) {
        text.push_str(&node.to_string());
        text.push('\n');
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_capped_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let mut nodes: Vec<SocketAddrV4> = (0..300u16)
            .map(|i| SocketAddrV4::new([10, 0, (i >> 8) as u8, i as u8].into(), 6881))
            .collect();
        nodes.insert(1, nodes[0]);
        store(&path, &nodes).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# "), "{text}");
        assert_eq!(text.lines().count(), MAX_NODES + 1);
        let loaded = load(&path);
        assert_eq!(loaded.len(), MAX_NODES - 1, "the duplicate is dropped");
        assert_eq!(loaded[0], nodes[0]);
        assert_eq!(loaded[1], nodes[2]);
        assert!(!dir.path().join("dht-nodes.tmp").exists());
    }

    #[test]
    fn damaged_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert!(load(&path).is_empty(), "missing");
        fs::write(&path, b"\xff\xfe\x00garbage\n1.2.3.4:5\n").unwrap();
        assert!(load(&path).is_empty(), "not UTF-8");
        fs::write(
            &path,
            "nonsense\n1.2.3.4:5\n[::1]:6\n0.0.0.0:7\n9.9.9.9:0\n\n# c\n",
        )
        .unwrap();
        assert_eq!(load(&path), ["1.2.3.4:5".parse::<SocketAddrV4>().unwrap()]);
        let (_, bad) = parse("nonsense\n1.2.3.4:5\n[::1]:6\n0.0.0.0:7\n9.9.9.9:0\n");
        assert_eq!(bad, 4);
        fs::create_dir(dir.path().join("d")).unwrap();
        assert!(load(&dir.path().join("d")).is_empty(), "a directory");
    }
}
