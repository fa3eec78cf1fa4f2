//! Carrying out the engine's plan on disk: lookups of local blocks, requests,
//! completed files made durable in batches, deletions, moves aside.

use super::*;

/// Completed files flushed together at most; and bytes.
const FLUSH_FILES: usize = 1024;
const FLUSH_BYTES: u64 = 256 << 20;
/// Longest a completed file waits to be flushed (when no batch is out). Short:
/// a batch collects anyway while the one before is being flushed, so waiting
/// longer only left the disk idle (at 200 ms the first files of a transfer
/// landed 0.2 s later, and the whole took no less).
const FLUSH_AFTER: Duration = Duration::from_millis(10);
/// Files moved into place remembered for the watcher's report of them.
const OWN_WRITES: usize = 16_384;

/// Files this thread moved into place and stored, with what it stored of them
/// on disk, until the watcher reports them: a path whose file is still exactly
/// that (size, mtime, inode) is one the index already matches, so it is not
/// scanned again (with every received file reported back by the watcher, those
/// scans were a seventh of a small-file receiver's folder thread).
#[derive(Debug, Default)]
pub(crate) struct OwnWrites {
    stored: HashMap<RelPath, LocalStat>,
}

impl OwnWrites {
    fn insert(&mut self, path: RelPath, local: LocalStat) {
        // Forgetting costs only a scan that finds nothing new.
        if self.stored.len() >= OWN_WRITES {
            self.stored.clear();
        }
        self.stored.insert(path, local);
    }
}

impl FolderTask {
    /// Carries out the engine's plan until it has nothing more to do.
    pub(super) fn drive(&mut self, now: Instant) {
        while let Some(action) = self.engine.poll_action(now) {
            match action {
                Action::Request(request) => self.request(request),
                Action::FindLocalBlocks { path, record } => self.find_local_blocks(&path, &record),
                Action::Finalize { signed, record } => self.finalize(signed, record),
                Action::Delete { signed, record } => {
                    let done = self.disk.delete(&record.path);
                    self.applied(done.map(|()| None), signed, record);
                }
                Action::CreateDir { signed, record } => {
                    let done = self.disk.create_dir(&record).and_then(|()| {
                        self.disk
                            .path(&record.path)
                            .and_then(|p| local_stat(&p))
                            .map(Some)
                    });
                    self.applied(done, signed, record);
                }
                Action::CreateSymlink { signed, record } => {
                    let done = match &record.kind {
                        FileKind::Symlink { target } => self.disk.create_symlink(&record, target),
                        _ => Ok(()),
                    };
                    let stat = done.and_then(|()| {
                        self.disk
                            .path(&record.path)
                            .and_then(|p| local_stat(&p))
                            .map(Some)
                    });
                    self.applied(stat, signed, record);
                }
                Action::UpdateMetadata { signed, record } => {
                    let done = self.disk.update_metadata(&record);
                    self.applied(done, signed, record);
                }
                Action::MoveAside { path, to } => self.move_aside(&path, &to),
                Action::DiscardTemporary { path, file_hash } => {
                    self.disk.discard_temp(&path, &file_hash)
                }
            }
        }
    }

    fn request(&mut self, request: BlockRequest) {
        let Some(peer) = self.peers.get(&request.peer) else {
            self.engine.peer_disconnected(&request.peer);
            return;
        };
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        let hint = Text::new(request.path.as_str()).ok().map(|path| BlockHint {
            path,
            offset: request.offset,
        });
        let (link, deltas) = (peer.link.clone(), peer.deltas.blocks);
        let message = self.block_request(id, &request, hint, deltas);
        link.send(message);
        self.requests.insert(id, (Instant::now(), request));
    }

    /// Copies into the new version's temporary every block some local file holds
    /// (the temporary is created by the first block written to it).
    fn find_local_blocks(&mut self, path: &RelPath, record: &FileRecord) {
        let mut present = Vec::new();
        // Its place must be one we may write to (no link on the way) before any
        // block is fetched for it.
        if let Err(e) = self.disk.temp_path(path, &record.hash) {
            report_io("creating the temporary of", path, &e);
            self.apply_failed(path, None);
            return;
        }
        let mut offset = 0u64;
        for (i, block) in record.blocks.iter().enumerate() {
            let found = self.find_block(super::Serve::Local, None, block.size, &block.hash);
            if let Some(data) = found {
                match self.disk.write_block(path, &record.hash, offset, &data) {
                    Ok(()) => present.push(i),
                    Err(e) => {
                        report_io("writing a block of", path, &e);
                        self.apply_failed(path, None);
                        return;
                    }
                }
            }
            offset += u64::from(block.size);
        }
        self.engine.handle_local_blocks(path, record.hash, &present);
    }

    fn finalize(&mut self, signed: SignedRecord, record: FileRecord) {
        // Never overwrite a local edit the index has not seen yet: rescan the path
        // first, and let the engine reconsider if it changed.
        if self.changed_on_disk(&record.path) {
            let seq = |index: &Index| index.get(&record.path).ok().flatten().map(|e| e.sequence);
            let before = seq(&self.index);
            if let Err(e) = self.scan_paths(std::slice::from_ref(&record.path)) {
                tracing::warn!(path = %record.path, error = %e, "rescan before replacing failed");
                self.apply_failed(&record.path, None);
                return;
            }
            if seq(&self.index) != before {
                // A local edit: the engine has reconsidered (see `after_scan`).
                return;
            }
        }
        self.writeback.forget(&record.path, &record.hash);
        match self.disk.prepare(&record) {
            Ok(()) => {
                tracing::debug!(path = %record.path, "complete, waiting to be flushed");
                self.finalizing_since.get_or_insert_with(Instant::now);
                self.finalizing_bytes += record.size;
                self.finalizing.push((signed, record));
            }
            Err(e) => {
                report_io("completing", &record.path, &e);
                self.apply_failed(&record.path, Some(signed));
            }
        }
    }

    /// Moves every completed file of this batch into place with one flush of the
    /// file system before the renames and one after them (see `Disk::commit`), and
    /// stores their records in one transaction: each file is durable before it is
    /// reported done, without an fsync pair per file. The first flush is the
    /// flushing thread's, when there is one (`crate::flush`): the batch is then
    /// finished by [`finish_flush`](Self::finish_flush), and the next one waits.
    pub(super) fn flush_finalized(&mut self) {
        if self.finalizing.is_empty() || self.flushing.is_some() {
            return;
        }
        self.finalizing_since = None;
        self.finalizing_bytes = 0;
        let batch = std::mem::take(&mut self.finalizing);
        let records: Vec<&FileRecord> = batch.iter().map(|(_, r)| r).collect();
        let mut temps = self.disk.temps_of(&records);
        if let Some(flusher) = &self.flusher {
            match flusher.send(temps) {
                Ok(()) => {
                    self.flushing = Some(batch);
                    return;
                }
                Err(back) => {
                    self.flusher = None;
                    temps = back;
                }
            }
        }
        let flushed = crate::disk::flush_paths(self.disk.root(), &temps);
        self.store_flushed(batch, flushed);
    }

    /// Finishes the batch the flushing thread has flushed, if it has (`wait`:
    /// once it has).
    pub(super) fn finish_flush(&mut self, wait: bool) {
        let Some(batch) = &self.flushing else {
            return;
        };
        let flushed = match self.flusher.as_ref().map(|f| f.done(wait)) {
            Some(crate::flush::Done::Pending) => return,
            Some(crate::flush::Done::Flushed(flushed)) => flushed,
            // The thread is gone, with or without the batch: flush it here.
            Some(crate::flush::Done::Gone) | None => {
                let records: Vec<&FileRecord> = batch.iter().map(|(_, r)| r).collect();
                let flushed =
                    crate::disk::flush_paths(self.disk.root(), &self.disk.temps_of(&records));
                self.flusher = None;
                flushed
            }
        };
        if let Some(batch) = self.flushing.take() {
            self.store_flushed(batch, flushed);
        }
    }

    /// Moves a flushed batch into place, stores it, and tells the engine.
    fn store_flushed(
        &mut self,
        batch: Vec<(SignedRecord, FileRecord)>,
        flushed: Vec<std::io::Result<()>>,
    ) {
        let started = Instant::now();
        let records: Vec<&FileRecord> = batch.iter().map(|(_, r)| r).collect();
        let results = self.disk.commit_flushed(&records, flushed);
        tracing::debug!(files = records.len(), took = ?started.elapsed(), "moved into place");
        let mut stored: Vec<(FileRecord, SignedRecord)> = Vec::with_capacity(batch.len());
        let mut failed: Vec<(RelPath, SignedRecord)> = Vec::new();
        match self.index.write() {
            Err(e) => {
                tracing::error!(error = %e, "index write failed");
                failed.extend(batch.into_iter().map(|(s, r)| (r.path, s)));
            }
            Ok(mut writer) => {
                for ((signed, record), result) in batch.into_iter().zip(results) {
                    let local = match result {
                        Ok(local) => local,
                        Err(e) => {
                            report_io("moving into place", &record.path, &e);
                            failed.push((record.path, signed));
                            continue;
                        }
                    };
                    let update = Update {
                        record: record.clone(),
                        signed: Some(signed.clone()),
                        local_only: false,
                        local: Some(local),
                    };
                    match writer.put(update) {
                        Ok(_) => {
                            self.own_writes.insert(record.path.clone(), local);
                            stored.push((record, signed));
                        }
                        Err(e) => {
                            tracing::error!(path = %record.path, error = %e, "storing a record failed");
                            failed.push((record.path, signed));
                        }
                    }
                }
                if let Err(e) = writer.commit() {
                    tracing::error!(error = %e, "index commit failed");
                    failed.extend(stored.drain(..).map(|(r, s)| (r.path, s)));
                }
            }
        }
        for (path, signed) in failed {
            self.apply_failed(&path, Some(signed));
        }
        let index = &self.index;
        for (record, _) in &stored {
            tracing::debug!(path = %record.path, "applied");
            self.engine
                .handle_applied(record, &|p: &RelPath| lookup(index, p));
        }
    }

    /// Completed files wait to be flushed together, but not long: until many are
    /// waiting, some time has passed, or nothing else is being fetched.
    pub(super) fn flush_due(&self, now: Instant) -> bool {
        if self.finalizing.is_empty() {
            return false;
        }
        self.finalizing.len() >= FLUSH_FILES
            || self.finalizing_bytes >= FLUSH_BYTES
            || self
                .finalizing_since
                .is_some_and(|t| now.saturating_duration_since(t) >= FLUSH_AFTER)
            || !self.engine.has_files_left()
    }

    /// `paths` less those this thread just moved into place and stored, still
    /// as it left them (each is let through once only: a later change to it is
    /// scanned). What is at them then is what the index holds, so a scan would
    /// find nothing to do.
    pub(super) fn unless_own_writes(&mut self, paths: &[RelPath]) -> Vec<RelPath> {
        if self.own_writes.stored.is_empty() {
            return paths.to_vec();
        }
        paths
            .iter()
            .filter(|path| {
                let Some(stored) = self.own_writes.stored.remove(*path) else {
                    return true;
                };
                let now = self.disk.path(path).and_then(|p| local_stat(&p));
                now.ok() != Some(stored)
            })
            .cloned()
            .collect()
    }

    /// Whether what is at `path` differs from what the index last saw there.
    fn changed_on_disk(&self, path: &RelPath) -> bool {
        // Nothing there (a new file): nothing to lose, and no index read.
        let Some(on_disk) = self.disk.path(path).and_then(|p| local_stat(&p)).ok() else {
            return false;
        };
        let known = self.index.get(path).ok().flatten().and_then(|e| e.local);
        known != Some(on_disk)
    }

    fn applied(
        &mut self,
        done: std::io::Result<Option<LocalStat>>,
        signed: SignedRecord,
        record: FileRecord,
    ) {
        match done {
            Ok(local) => {
                let update = Update {
                    record: record.clone(),
                    signed: Some(signed),
                    local_only: false,
                    local,
                };
                if let Err(e) = self.index.put(update) {
                    tracing::error!(path = %record.path, error = %e, "storing a record failed");
                    self.apply_failed(&record.path, None);
                    return;
                }
                tracing::debug!(path = %record.path, deleted = record.deleted, "applied");
                let index = &self.index;
                self.engine
                    .handle_applied(&record, &|p: &RelPath| lookup(index, p));
            }
            Err(e) => {
                report_io("applying", &record.path, &e);
                self.apply_failed(&record.path, Some(signed));
            }
        }
    }

    fn move_aside(&mut self, path: &RelPath, to: &LoserFate) {
        let moved = match to {
            LoserFate::ConflictCopy(copy) => self
                .disk
                .move_aside(path, copy)
                .map(|moved| moved.then(|| copy.clone())),
            LoserFate::Archive | LoserFate::Nothing => {
                self.disk.archive_existing(path).map(|()| None)
            }
        };
        match moved {
            Ok(copy) => {
                if let Err(e) = self.index.write().and_then(|mut w| {
                    w.remove(path)?;
                    w.commit()
                }) {
                    tracing::error!(%path, error = %e, "index update failed");
                }
                if let Some(copy) = copy {
                    tracing::warn!(%path, %copy, "conflict: the other version keeps the name, ours is kept beside it");
                    if let Err(e) = self.scan_paths(std::slice::from_ref(&copy)) {
                        tracing::warn!(path = %copy, error = %e, "indexing the conflict copy failed");
                    }
                }
                let index = &self.index;
                self.engine
                    .handle_moved_aside(path, &|p: &RelPath| lookup(index, p));
            }
            Err(e) => {
                report_io("moving aside", path, &e);
                self.apply_failed(path, None);
            }
        }
    }
}
