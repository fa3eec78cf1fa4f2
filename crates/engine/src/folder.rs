//! One folder's sync logic: remote records in, a plan of actions out.
//!
//! The daemon owns the disk, the index and the sockets; this owns the decisions.
//! Inputs are `handle_*` calls, outputs come from [`Folder::poll_action`], which the
//! daemon calls until `None` after every input:
//!
//! ```text
//! handle_records(peer, records, index)   a peer's index or index update
//! handle_availability(peer, …)           blocks a peer holds of a file it is fetching
//! peer_connected / peer_disconnected
//! handle_local_blocks(path, hash, idx)   answer to Action::FindLocalBlocks
//! handle_block / handle_bad_block        answers to Action::Request
//! handle_applied(record) / handle_moved_aside(path) / handle_apply_failed(path)
//! handle_local_change(path, index)       the scanner changed a path we are fetching
//! handle_timeout(now)
//! poll_action(now) → Action
//! ```
//!
//! Deletions wait until every file being fetched has had its local blocks looked
//! up, so a rename (a delete plus a create with the same blocks) copies the blocks
//! from the old file instead of downloading them.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use keys::FolderSigningKey;
use keys::{PeerId, RoKey};
use record::{
    FileKind, FileRecord, RecordError, RelPath, SignedRecord, VerifiedRecord, VersionOrdering,
    VersionVector,
};

use crate::decide::{Decision, Local, LoserFate, Side, decide};
use crate::schedule::{Arrival, Progress, Request, ScheduleConfig, Scheduler};

/// What the folder's index holds for a path, as the engine needs it.
#[derive(Debug, Clone)]
pub struct LocalEntry {
    /// The record.
    pub record: FileRecord,
    /// A read-only peer's own change: never signed, never announced.
    pub local_only: bool,
}

/// Read access to the folder's index: the engine asks, it never writes.
pub trait LocalIndex {
    /// The record held for `path`, if any.
    fn get(&self, path: &RelPath) -> Option<LocalEntry>;
}

impl<F: Fn(&RelPath) -> Option<LocalEntry>> LocalIndex for F {
    fn get(&self, path: &RelPath) -> Option<LocalEntry> {
        self(path)
    }
}

/// A record that was refused, to be logged with the peer that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Who sent it.
    pub peer: PeerId,
    /// Why it was refused.
    pub reason: RecordError,
}

/// A step for the daemon to carry out. Every action that changes the folder also
/// stores `signed` in the index when it succeeds, and reports back with
/// [`Folder::handle_applied`] or [`Folder::handle_apply_failed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Move our version of `path` out of the way of the winner of a conflict, and
    /// drop its record from the index (the scanner indexes a conflict copy as a new
    /// file). Nothing else for that path is planned until this is applied; then the
    /// winner is taken.
    MoveAside {
        /// The path whose local version lost.
        path: RelPath,
        /// Where it goes: a conflict copy (which the scanner then picks up as a new
        /// file) or the archive.
        to: LoserFate,
    },
    /// Create (or fix the mode of) a directory.
    CreateDir {
        /// The record to store.
        signed: SignedRecord,
        /// Its decoded form.
        record: FileRecord,
    },
    /// Create or replace a symlink (the old entry goes to the archive).
    CreateSymlink {
        /// The record to store.
        signed: SignedRecord,
        /// Its decoded form.
        record: FileRecord,
    },
    /// Archive whatever is at the path and store the tombstone.
    Delete {
        /// The tombstone to store.
        signed: SignedRecord,
        /// Its decoded form.
        record: FileRecord,
    },
    /// The content is already here; only the record changed (time, mode or
    /// version): set them and store the record.
    UpdateMetadata {
        /// The record to store.
        signed: SignedRecord,
        /// Its decoded form.
        record: FileRecord,
    },
    /// A file is needed: look up which of its blocks exist locally (any file, the
    /// old version, a leftover partial), copy them into the file's temporary, and
    /// answer with [`Folder::handle_local_blocks`]. Temporaries belong to one
    /// version (path and file hash): a newer version of the path starts afresh.
    FindLocalBlocks {
        /// The file.
        path: RelPath,
        /// Its decoded record (blocks, sizes, offsets implied).
        record: FileRecord,
    },
    /// Ask a peer for a block.
    Request(Request),
    /// A version being fetched is no longer wanted: remove its temporary.
    DiscardTemporary {
        /// The file.
        path: RelPath,
        /// The abandoned version's hash (temporaries belong to one version).
        file_hash: [u8; 32],
    },
    /// Every block of the file is in its temporary: check the whole-file hash,
    /// fsync, archive the old version, rename into place, set time and mode, store
    /// the record.
    Finalize {
        /// The record to store.
        signed: SignedRecord,
        /// Its decoded form.
        record: FileRecord,
    },
}

/// Settings of one folder's engine.
#[derive(Debug, Clone)]
pub struct FolderConfig {
    /// The folder's read-only key, which verifies every record.
    pub ro_key: RoKey,
    /// The signing key, on read-write peers: it settles concurrent versions into
    /// one record (read-only peers follow what read-write peers settle).
    pub signer: Option<FolderSigningKey>,
    /// Scheduler tuning.
    pub schedule: ScheduleConfig,
}

#[derive(Debug)]
struct Needed {
    /// The peer whose announcement made us need it.
    from: PeerId,
    signed: SignedRecord,
    record: FileRecord,
    looked_up: bool,
    /// What the concurrent versions this one beat had seen, to settle with once
    /// it is here.
    settle_with: Option<VersionVector>,
    /// The record handed out in `Action::Finalize` (settled), once it was.
    finalizing: Option<FileRecord>,
}

/// The sync logic of one folder. See the module docs for the call order.
#[derive(Debug)]
pub struct Folder {
    ro_key: RoKey,
    signer: Option<FolderSigningKey>,
    scheduler: Scheduler,
    /// Boxed: a `Needed` is ~0.5 KB, and a table of them inline cost that for
    /// every spare slot too (4 MB of 5,000 files' receiver, 8 MB while growing).
    needed: HashMap<RelPath, Box<Needed>>,
    /// Paths with an action out that must be applied before anything else is
    /// planned for them, with the record to reconsider afterwards.
    busy: HashMap<RelPath, Option<(PeerId, SignedRecord)>>,
    held_deletes: Vec<(SignedRecord, FileRecord)>,
    /// Versions of ours moved aside for a winner, to settle the winner with.
    settle_after_move: HashMap<RelPath, VersionVector>,
    actions: VecDeque<Action>,
}

impl Folder {
    /// A folder with nothing needed yet.
    pub fn new(config: FolderConfig) -> Self {
        Self {
            ro_key: config.ro_key,
            signer: config.signer,
            scheduler: Scheduler::new(config.schedule),
            needed: HashMap::new(),
            busy: HashMap::new(),
            held_deletes: Vec::new(),
            settle_after_move: HashMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// A peer's records. Each is verified before anything else; a bad one is
    /// returned for logging and the rest still count.
    pub fn handle_records(
        &mut self,
        peer: PeerId,
        records: Vec<SignedRecord>,
        index: &impl LocalIndex,
    ) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        let mut accepted = Vec::with_capacity(records.len());
        for signed in records {
            match signed.into_verified(&self.ro_key) {
                Ok(verified) => accepted.push(verified),
                Err(reason) => rejected.push(Rejected { peer, reason }),
            }
        }
        rejected.extend(self.handle_verified(peer, accepted, index));
        rejected
    }

    /// [`handle_records`](Self::handle_records) for records already verified,
    /// e.g. on the connection's own thread so the folder's is not spent on
    /// signatures. One verified against another folder's key is rejected.
    pub fn handle_verified(
        &mut self,
        peer: PeerId,
        mut records: Vec<VerifiedRecord>,
        index: &impl LocalIndex,
    ) -> Vec<Rejected> {
        let mut rejected = Vec::new();
        records.retain(|v| {
            let ours = v.verified_with(&self.ro_key);
            if !ours {
                rejected.push(Rejected {
                    peer,
                    reason: RecordError::BadSignature,
                });
            }
            ours
        });
        // Parents before children, so directories exist before what is in them.
        records.sort_by(|a, b| {
            a.record()
                .path
                .components()
                .cmp(b.record().path.components())
        });
        for verified in records {
            let (signed, record) = verified.into_parts();
            self.consider(peer, signed, record, index);
        }
        rejected
    }

    fn consider(
        &mut self,
        peer: PeerId,
        signed: SignedRecord,
        record: FileRecord,
        index: &impl LocalIndex,
    ) {
        let path = record.path.clone();
        if let Some(waiting) = self.busy.get_mut(&path) {
            // Reconsidered once the action in flight is applied; the winner waits.
            let newer = match waiting {
                Some((_, queued)) => queued
                    .verify(&self.ro_key)
                    .is_ok_and(|q| supersedes(&q, &record)),
                None => true,
            };
            if newer {
                *waiting = Some((peer, signed));
            }
            return;
        }
        // A version accepted but not yet on disk (a file being fetched, a deletion
        // waiting its turn) is what we hold for this path: compare with it, not
        // with the older record the index still has.
        if let Some((pending, settled_with)) = self.pending(&path) {
            if pending == record {
                // Another source for the version we are fetching.
                self.scheduler.peer_has_file(&peer, &path, record.hash);
                return;
            }
            if !supersedes(&pending, &record) {
                return;
            }
            self.drop_pending(&path);
            let mut settle_with = settled_with;
            if concurrent(&pending, &record) {
                settle_with = Some(merge(settle_with.as_ref(), &pending.version));
            }
            let local = index.get(&path);
            self.take(peer, signed, record, local.as_ref(), settle_with);
            return;
        }
        let local = index.get(&path);
        let local_ref = local.as_ref().map(|l| Local {
            record: &l.record,
            local_only: l.local_only,
        });
        let decision = decide(local_ref, &record);
        // Concurrent versions settle into one that has seen both, so a stale record
        // of either lineage can never come back (see `settle`).
        let ours = local
            .as_ref()
            .filter(|l| !l.local_only && concurrent(&l.record, &record));
        match decision {
            // A losing version with content is kept as a conflict copy by the peer
            // that holds it, which then settles; settling here first would make
            // that peer's version look merely old, and it would be archived instead.
            Decision::Conflict {
                winner: Side::Local,
                loser: LoserFate::ConflictCopy(_),
            } => {}
            Decision::Keep
            | Decision::Conflict {
                winner: Side::Local,
                ..
            } => {
                let Some(ours) = ours else { return };
                if let Some((signed, merged)) = self.settle(&ours.record, &record.version) {
                    self.busy.insert(path, None);
                    self.actions.push_back(Action::UpdateMetadata {
                        signed,
                        record: merged,
                    });
                }
            }
            Decision::Take
            | Decision::Conflict {
                winner: Side::Remote,
                ..
            } => {
                let settle_with = ours
                    .map(|o| o.record.version.clone())
                    .or_else(|| self.settle_after_move.remove(&path));
                match decision {
                    Decision::Conflict { loser, .. } if loser != LoserFate::Nothing => {
                        if let Some(with) = settle_with {
                            self.settle_after_move.insert(path.clone(), with);
                        }
                        self.busy.insert(path.clone(), Some((peer, signed)));
                        self.actions
                            .push_back(Action::MoveAside { path, to: loser });
                    }
                    _ => self.take(peer, signed, record, local.as_ref(), settle_with),
                }
            }
        }
    }

    /// The version accepted for `path` but not yet applied, with what it is to be
    /// settled with.
    fn pending(&self, path: &RelPath) -> Option<(FileRecord, Option<VersionVector>)> {
        if let Some(needed) = self.needed.get(path) {
            return Some((needed.record.clone(), needed.settle_with.clone()));
        }
        self.held_deletes
            .iter()
            .find(|(_, r)| r.path == *path)
            .map(|(_, r)| (r.clone(), None))
    }

    fn drop_pending(&mut self, path: &RelPath) {
        self.forget_need(path);
        self.held_deletes.retain(|(_, held)| held.path != *path);
    }

    /// Stops fetching `path`; its temporary is to be removed.
    fn forget_need(&mut self, path: &RelPath) -> Option<Box<Needed>> {
        let needed = self.needed.remove(path)?;
        self.scheduler.remove_file(path);
        self.actions.push_back(Action::DiscardTemporary {
            path: path.clone(),
            file_hash: needed.record.hash,
        });
        Some(needed)
    }

    /// `keep` with a version that has also seen `other`, signed: what a read-write
    /// peer stores after resolving concurrent versions, so a stale record of either
    /// lineage can never come back. Ed25519 signatures are deterministic, so every
    /// peer that settles the same pair makes the same bytes. Read-only peers cannot
    /// sign and keep the winner as it is.
    fn settle(
        &self,
        keep: &FileRecord,
        other: &VersionVector,
    ) -> Option<(SignedRecord, FileRecord)> {
        settle(self.signer.as_ref()?, keep, other)
    }

    /// Takes `record` in place of `local`. When it beat concurrent versions,
    /// `settle_with` is what they had seen: the stored record is settled with it,
    /// at once where the content is already here, at [`Action::Finalize`] for a
    /// file still to fetch (settling earlier would vouch for content that may never
    /// arrive, and outlive the deletion that should supersede it).
    fn take(
        &mut self,
        peer: PeerId,
        signed: SignedRecord,
        record: FileRecord,
        local: Option<&LocalEntry>,
        settle_with: Option<VersionVector>,
    ) {
        let path = record.path.clone();
        self.drop_pending(&path);
        let fetch = record.kind == FileKind::File && !record.deleted;
        let same_content = local.is_some_and(|l| {
            !l.record.deleted && l.record.kind == record.kind && l.record.hash == record.hash
        });
        if fetch && !same_content {
            self.scheduler.add_file(record.clone());
            self.scheduler.peer_has_file(&peer, &path, record.hash);
            self.actions.push_back(Action::FindLocalBlocks {
                path: path.clone(),
                record: record.clone(),
            });
            self.needed.insert(
                path,
                Box::new(Needed {
                    from: peer,
                    signed,
                    record,
                    looked_up: false,
                    settle_with,
                    finalizing: None,
                }),
            );
            return;
        }
        let (signed, record) = settle_with
            .and_then(|with| self.settle(&record, &with))
            .unwrap_or((signed, record));
        if record.deleted {
            self.held_deletes.push((signed, record));
            return;
        }
        let action = match &record.kind {
            _ if same_content => Action::UpdateMetadata { signed, record },
            FileKind::Directory => Action::CreateDir { signed, record },
            FileKind::Symlink { .. } | FileKind::File => Action::CreateSymlink { signed, record },
        };
        self.busy.insert(path, None);
        self.actions.push_back(action);
    }

    /// A peer holds some blocks of a version it is still fetching.
    /// Only a version being fetched is kept track of, and only as many flags as it
    /// has blocks: a peer cannot grow our memory with availability of other files.
    pub fn handle_availability(
        &mut self,
        peer: &PeerId,
        path: &RelPath,
        file_hash: [u8; 32],
        mut have: Vec<bool>,
    ) {
        let Some(blocks) = self.blocks_needed(path, file_hash) else {
            return;
        };
        have.truncate(blocks);
        self.scheduler.peer_has_blocks(peer, path, file_hash, have);
    }

    /// How many blocks the version `file_hash` of `path` has, if it is being fetched.
    pub fn blocks_needed(&self, path: &RelPath, file_hash: [u8; 32]) -> Option<usize> {
        self.needed
            .get(path)
            .filter(|n| n.record.hash == file_hash)
            .map(|n| n.record.blocks.len())
    }

    /// A peer connected (its records come through [`handle_records`](Self::handle_records)).
    pub fn peer_connected(&mut self, peer: PeerId) {
        self.scheduler.peer_connected(peer);
    }

    /// A peer went away; what was outstanding there is asked elsewhere.
    pub fn peer_disconnected(&mut self, peer: &PeerId) {
        self.scheduler.peer_disconnected(peer);
    }

    /// The answer to [`Action::FindLocalBlocks`] for the version `file_hash`: these
    /// blocks are in its temporary. An answer for a version no longer needed is
    /// ignored.
    pub fn handle_local_blocks(&mut self, path: &RelPath, file_hash: [u8; 32], present: &[usize]) {
        let Some(needed) = self.needed.get_mut(path) else {
            return;
        };
        if needed.record.hash != file_hash {
            return;
        }
        needed.looked_up = true;
        for &index in present {
            self.scheduler.mark_local(path, index);
        }
    }

    /// A block arrived and matched its hash; write it only if `Accepted`.
    pub fn handle_block(
        &mut self,
        peer: &PeerId,
        path: &RelPath,
        file_hash: [u8; 32],
        index: usize,
        now: Instant,
    ) -> Arrival {
        self.scheduler
            .handle_block(peer, path, file_hash, index, now)
    }

    /// Block `index` of version `file_hash` failed its hash check or the peer
    /// could not serve it.
    pub fn handle_bad_block(
        &mut self,
        peer: &PeerId,
        path: &RelPath,
        file_hash: [u8; 32],
        index: usize,
    ) {
        self.scheduler
            .handle_bad_block(peer, path, file_hash, index);
    }

    /// The action that stores `record` was carried out (and the record stored).
    /// A newer version of the path that arrived meanwhile stays needed.
    pub fn handle_applied(&mut self, record: &FileRecord, index: &impl LocalIndex) {
        let path = &record.path;
        if self
            .needed
            .get(path)
            .is_some_and(|n| n.record == *record || n.finalizing.as_ref() == Some(record))
        {
            self.needed.remove(path);
            self.scheduler.remove_file(path);
        }
        self.release(path, index);
    }

    /// The [`Action::MoveAside`] of `path` was carried out.
    pub fn handle_moved_aside(&mut self, path: &RelPath, index: &impl LocalIndex) {
        self.release(path, index);
    }

    fn release(&mut self, path: &RelPath, index: &impl LocalIndex) {
        if let Some(Some((peer, signed))) = self.busy.remove(path) {
            // A record that waited (the winner after a MoveAside, or a newer one).
            if let Ok(record) = signed.verify(&self.ro_key) {
                self.consider(peer, signed, record, index);
            }
        }
    }

    /// The action for `path` failed (disk full, the file changed meanwhile, …):
    /// the path is dropped from the plan. A file being fetched is returned with the
    /// peer that announced it, for the daemon to hand back later through
    /// [`handle_records`](Self::handle_records) (it comes again with the next index
    /// exchange anyway).
    pub fn handle_apply_failed(&mut self, path: &RelPath) -> Option<(PeerId, SignedRecord)> {
        self.busy.remove(path);
        self.settle_after_move.remove(path);
        self.forget_need(path).map(|n| (n.from, n.signed))
    }

    /// The scanner recorded a local change to `path`: a version being fetched for it
    /// is reconsidered against the new local one.
    pub fn handle_local_change(&mut self, path: &RelPath, index: &impl LocalIndex) {
        let Some(needed) = self.forget_need(path) else {
            return;
        };
        self.consider(needed.from, needed.signed, needed.record, index);
    }

    /// A peer was too busy to serve block `index` of version `file_hash`; it is
    /// asked again (the peer still holds it).
    pub fn handle_refused(
        &mut self,
        peer: &PeerId,
        path: &RelPath,
        file_hash: [u8; 32],
        index: usize,
    ) {
        self.scheduler.handle_refused(peer, path, file_hash, index);
    }

    /// Gives up requests that took too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.scheduler.handle_timeout(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.scheduler.poll_timeout()
    }

    /// The next action. Call until `None` after every input.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        while let Some(action) = self.actions.pop_front() {
            if let Action::DiscardTemporary { path, file_hash } = &action
                && self
                    .needed
                    .get(path)
                    .is_some_and(|n| n.record.hash == *file_hash)
            {
                // Wanted again meanwhile: its temporary, and what is in it, stay.
                continue;
            }
            return Some(action);
        }
        if let Some(needed) = self
            .scheduler
            .poll_complete()
            .and_then(|p| self.needed.get_mut(&p))
        {
            let settled = self.signer.as_ref().zip(needed.settle_with.as_ref());
            let (signed, record) = settled
                .and_then(|(signer, with)| settle(signer, &needed.record, with))
                .unwrap_or_else(|| (needed.signed.clone(), needed.record.clone()));
            needed.finalizing = Some(record.clone());
            return Some(Action::Finalize { signed, record });
        }
        if let Some(request) = self.scheduler.poll_request(now) {
            return Some(Action::Request(request));
        }
        self.release_deletes()
    }

    fn release_deletes(&mut self) -> Option<Action> {
        if self.held_deletes.is_empty() || self.needed.values().any(|n| !n.looked_up) {
            return None;
        }
        // Children before parents, so directories are empty when their turn comes.
        self.held_deletes
            .sort_by(|a, b| a.1.path.components().cmp(b.1.path.components()));
        let at = self
            .held_deletes
            .iter()
            .rposition(|(_, r)| !self.busy.contains_key(&r.path))?;
        let (signed, record) = self.held_deletes.remove(at);
        self.busy.insert(record.path.clone(), None);
        Some(Action::Delete { signed, record })
    }

    /// What is still to fetch.
    pub fn progress(&self) -> Progress {
        self.scheduler.progress()
    }

    /// Whether some file still has blocks to come.
    pub fn has_files_left(&self) -> bool {
        self.scheduler.has_files_left()
    }

    /// Whether nothing is planned or in flight: the folder is in sync with what
    /// its peers announced.
    pub fn is_idle(&self) -> bool {
        self.needed.is_empty()
            && self.busy.is_empty()
            && self.held_deletes.is_empty()
            && self.actions.is_empty()
    }

    /// Paths still needed, in no particular order.
    pub fn needed_paths(&self) -> impl Iterator<Item = RelPath> + '_ {
        self.needed.keys().cloned()
    }

    /// Paths still needed, with the peers that could serve them now (for `status`).
    pub fn needed(&self) -> Vec<(RelPath, Vec<PeerId>)> {
        let mut out: Vec<_> = self
            .needed
            .keys()
            .map(|p| (p.clone(), self.scheduler.sources(p)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// See [`Folder::settle`].
fn settle(
    signer: &FolderSigningKey,
    keep: &FileRecord,
    other: &VersionVector,
) -> Option<(SignedRecord, FileRecord)> {
    let mut merged = keep.clone();
    merged.version = keep.version.merge(other);
    let signed = SignedRecord::sign(&merged, signer).ok()?;
    Some((signed, merged))
}

fn merge(a: Option<&VersionVector>, b: &VersionVector) -> VersionVector {
    a.map_or_else(|| b.clone(), |a| a.merge(b))
}

/// Whether two records are versions neither of which has seen the other.
fn concurrent(a: &FileRecord, b: &FileRecord) -> bool {
    match a.version.compare(&b.version) {
        VersionOrdering::Concurrent => true,
        VersionOrdering::Equal => a != b,
        VersionOrdering::Greater | VersionOrdering::Lesser => false,
    }
}

/// Whether `new` wins over `old` by the rules of [`decide`].
fn supersedes(old: &FileRecord, new: &FileRecord) -> bool {
    let old = Local {
        record: old,
        local_only: false,
    };
    matches!(
        decide(Some(old), new),
        Decision::Take
            | Decision::Conflict {
                winner: Side::Remote,
                ..
            }
    )
}

#[cfg(test)]
mod tests;
