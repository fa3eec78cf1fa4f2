//! What to do when a peer announces a version of a path.
//!
//! Version vectors order most pairs of versions: the newer one wins and the older is
//! archived by whoever replaces it. Concurrent versions are a conflict, resolved by a
//! rule every peer applies alike, so they all end with the same winner under the
//! name and the same loser beside it as a conflict copy:
//!
//! 1. Concurrent versions with the same content (kind, deletion, hash, link target)
//!    are no conflict at all: the tie-break below picks the record to keep.
//! 2. A live entry beats a deletion: a modification is never lost to a delete.
//! 3. A directory beats a file or symlink, so the directory's children stay valid;
//!    the file is kept as a conflict copy.
//! 4. Otherwise the later modification time wins; equal times go to the greater
//!    content hash (see [`tie_break`]).
//!
//! The loser, if it has content (a live file or symlink), is kept as
//! `name.sync-conflict-YYYYMMDD-HHMMSS-<peer>.ext`, where time and peer are the
//! loser's modification time and the peer that made its last change. A loser that
//! already is a conflict copy goes to the archive instead, so copies of copies never
//! pile up. Nothing is dropped either way.

use std::cmp::Ordering;

use keys::ShortId;
use record::{FileKind, FileRecord, RelPath, VersionOrdering, conflict_path, is_conflict_name};

/// Our side of a comparison: the record we hold for a path.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// The record.
    pub record: &'a FileRecord,
    /// A change a read-only peer made itself: never signed, never announced, and
    /// it always yields to a signed change from the folder.
    pub local_only: bool,
}

/// Which of the two versions a decision keeps under the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The version we hold.
    Local,
    /// The version the peer announced.
    Remote,
}

/// Where the losing version of a conflict goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoserFate {
    /// It has no content to keep (a deletion or a directory that merges).
    Nothing,
    /// Kept beside the winner under this conflict-copy name.
    ConflictCopy(RelPath),
    /// Moved to the archive (`.sync/Archive/`).
    Archive,
}

/// The outcome of comparing our record for a path with a peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// We hold this version or a newer one: nothing to do.
    Keep,
    /// Take the peer's version; ours, if any, is older and goes to the archive.
    Take,
    /// The versions are concurrent.
    Conflict {
        /// The version that keeps the name.
        winner: Side,
        /// What happens to the other one.
        loser: LoserFate,
    },
}

/// Decides what to do with `remote`, a version a peer announced, given `local`.
pub fn decide(local: Option<Local<'_>>, remote: &FileRecord) -> Decision {
    let Some(local) = local else {
        return Decision::Take;
    };
    let ours = local.record;
    if local.local_only {
        // A read-only peer's own edit cannot stand against the folder: a newer signed
        // version replaces it and the edit is kept beside it. An older or equal one
        // changes nothing.
        return match ours.version.compare(&remote.version) {
            VersionOrdering::Concurrent | VersionOrdering::Lesser if same_content(ours, remote) => {
                Decision::Take
            }
            VersionOrdering::Concurrent | VersionOrdering::Lesser => Decision::Conflict {
                winner: Side::Remote,
                loser: loser_fate(ours, &remote.version),
            },
            VersionOrdering::Equal | VersionOrdering::Greater => Decision::Keep,
        };
    }
    let ordering = match ours.version.compare(&remote.version) {
        // Equal vectors over different records should not happen (a peer that lost
        // its index and counted again could cause it); resolve it like a conflict so
        // both sides still agree.
        VersionOrdering::Equal if ours != remote => VersionOrdering::Concurrent,
        ordering => ordering,
    };
    match ordering {
        VersionOrdering::Equal | VersionOrdering::Greater => Decision::Keep,
        VersionOrdering::Lesser => Decision::Take,
        VersionOrdering::Concurrent => {
            let winner = conflict_winner(ours, remote);
            if same_content(ours, remote) {
                // Both sides already hold these bytes; only the record differs.
                return match winner {
                    Side::Local => Decision::Keep,
                    Side::Remote => Decision::Take,
                };
            }
            let (lost, won) = match winner {
                Side::Local => (remote, ours),
                Side::Remote => (ours, remote),
            };
            Decision::Conflict {
                winner,
                loser: loser_fate(lost, &won.version),
            }
        }
    }
}

/// Rules 2–4 of the module docs. Symmetric: `conflict_winner(a, b)` names the same
/// record as `conflict_winner(b, a)`.
pub fn conflict_winner(local: &FileRecord, remote: &FileRecord) -> Side {
    let rank = |r: &FileRecord| (!r.deleted, !r.deleted && r.kind == FileKind::Directory);
    let order = rank(local)
        .cmp(&rank(remote))
        .then_with(|| local.modified.cmp(&remote.modified))
        .then_with(|| tie_break(local, remote));
    if order == Ordering::Less {
        Side::Remote
    } else {
        Side::Local
    }
}

/// A total order on records that every peer computes alike: the content hash,
/// then the mode, then the version vectors entry by entry. Content first, because
/// settling (see `folder`) rewrites version vectors but never content: the winner
/// between two contents must not change when either is settled.
fn tie_break(a: &FileRecord, b: &FileRecord) -> Ordering {
    a.hash
        .cmp(&b.hash)
        .then_with(|| a.mode.cmp(&b.mode))
        .then_with(|| a.version.entries().cmp(b.version.entries()))
}

fn same_content(a: &FileRecord, b: &FileRecord) -> bool {
    a.deleted == b.deleted && (a.deleted || (a.kind == b.kind && a.hash == b.hash))
}

fn loser_fate(lost: &FileRecord, winner_version: &record::VersionVector) -> LoserFate {
    let has_content = !lost.deleted && lost.kind != FileKind::Directory;
    if !has_content {
        return LoserFate::Nothing;
    }
    if is_conflict_name(lost.path.file_name()) {
        return LoserFate::Archive;
    }
    match conflict_path(
        &lost.path,
        lost.modified,
        last_changer(lost, winner_version),
    ) {
        Ok(path) => LoserFate::ConflictCopy(path),
        // A name so long the marker cannot fit even shortened: keep it in the archive.
        Err(_) => LoserFate::Archive,
    }
}

/// The peer whose change made `lost` differ from the winner: among the peers the
/// loser counts further than the winner, the one with the highest counter (then
/// the highest id). Every peer computes the same.
fn last_changer(lost: &FileRecord, winner_version: &record::VersionVector) -> ShortId {
    lost.version
        .entries()
        .iter()
        .filter(|(peer, count)| *count > winner_version.get(*peer))
        .max_by_key(|(peer, count)| (*count, *peer))
        .or_else(|| lost.version.entries().last())
        .map_or(ShortId(0), |(peer, _)| *peer)
}

#[cfg(test)]
mod tests;
