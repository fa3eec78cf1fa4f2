//! The folder task: one thread per folder that owns its index and its engine,
//! and carries out the engine's plan on disk and on the peers' connections.
//!
//! Everything that touches the folder's state goes through this thread's event
//! queue ([`FolderEvent`]), in order: peers' messages, their arrival and
//! departure, the watcher's changed paths, ticks. After each event the engine
//! is polled until it has nothing more to do, and peers are sent whatever the
//! index gained since they were last told.

mod apply;
mod basis;
mod delta;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use engine::decide::LoserFate;
use engine::folder::{Action, Folder, FolderConfig, LocalEntry};
use engine::schedule::{Arrival, Request as BlockRequest, ScheduleConfig};
use index::{Index, LocalStat, Update};
use keys::{Access, FolderKey, PeerId};
use record::{FileKind, FileRecord, RelPath, SignedRecord};
use scan::ScanOptions;
use tokio::sync::mpsc;
use wire::{
    Block, BlockHint, FolderState, Hello, IndexBatch, IndexEntry, Message, ResponseError, Text,
};

use crate::DaemonError;
use crate::disk::{Disk, local_stat};
use crate::peer::PeerLink;
use crate::status::{FolderStatus, MAX_NEEDED, NeededStatus, PeerStatus, StatusHandle, now_ms};

/// Who a block is read for (see `FolderTask::find_block`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serve {
    /// A peer, which checks it.
    Peer,
    /// One of our files.
    Local,
}

/// Most bytes of responses waiting unsent to one peer before we answer "busy".
const MAX_QUEUED_BYTES: u64 = 32 << 20;
/// Bytes of block responses kept queued to one peer: further block requests
/// wait, unread, until its writer is down to [`crate::peer::DRAINED_BYTES`]. A
/// peer's pipeline is sized for its link (up to 32 MiB); reading every block it
/// asks for at once only held those bytes in our memory instead of its requests.
/// The socket's own buffer (megabytes, tuned by the kernel) covers the link;
/// this only has to cover reading the next block, and 8 MiB held ~6 MB more
/// of a sender's peak memory than 2 for the same speed over loopback.
const SERVE_QUEUE_BYTES: u64 = 2 << 20;
/// Block requests of one peer held back at most; beyond, it is told "busy".
const MAX_HELD_REQUESTS: usize = 4096;
/// Bytes of the checksums of a peer's held delta requests at most (one can
/// carry ~400 KB of them, for an 8 MiB basis); beyond, it is told "busy".
const MAX_HELD_SUMS_BYTES: usize = 4 << 20;
/// Rejected records of one batch logged one by one; the rest are counted.
const MAX_REJECTS_LOGGED: usize = 20;
/// Events handled before completed files are flushed to disk together.
const MAX_EVENT_BATCH: usize = 512;
/// Payload bytes of one index batch: small enough not to hold up responses.
const INDEX_BATCH_BYTES: usize = 1 << 20;

/// Something for the folder task to handle.
#[derive(Debug)]
pub(crate) enum FolderEvent {
    /// A peer's channel is up.
    PeerUp {
        /// Who.
        peer: PeerId,
        /// How to reach it.
        link: PeerLink,
    },
    /// A message from a peer (but index batches: [`FolderEvent::Records`]).
    Message {
        /// Who sent it.
        peer: PeerId,
        /// What.
        message: Message,
        /// The peer's share of the inbound byte budget this message holds,
        /// returned when the event is dropped (see `peer.rs`).
        _budget: tokio::sync::OwnedSemaphorePermit,
    },
    /// A block a peer sent for a request, hashed on the connection's side.
    Block {
        /// Who sent it.
        peer: PeerId,
        /// The request it answers.
        request_id: u32,
        /// Its bytes, and their BLAKE3.
        data: bytes::Bytes,
        hash: [u8; 32],
        /// As for [`FolderEvent::Message`].
        _budget: tokio::sync::OwnedSemaphorePermit,
    },
    /// A peer's index batch, its signatures checked on the connection's side
    /// (so the folder thread, which does everything else, is not spent on them).
    Records {
        /// Who sent it.
        peer: PeerId,
        /// The batch's index id and last sequence.
        index_id: u64,
        last: Option<u64>,
        /// Records whose signature held.
        records: Vec<record::VerifiedRecord>,
        /// Why the others were refused.
        rejected: Vec<record::RecordError>,
        /// As for [`FolderEvent::Message`].
        _budget: tokio::sync::OwnedSemaphorePermit,
    },
    /// A peer's channel ended.
    PeerDown {
        /// Who.
        peer: PeerId,
        /// Which of its channels ([`PeerLink::generation`]).
        generation: u64,
    },
    /// The watcher saw these paths change.
    LocalChange(Vec<RelPath>),
    /// Scan the whole folder.
    Rescan,
    /// Time passes: retry timeouts.
    Tick,
    /// A peer's send queue has room for the block requests held back.
    Drained {
        /// Whose.
        peer: PeerId,
    },
    /// The batch of completed files handed to the flushing thread is durable
    /// (see `crate::flush`).
    Flushed,
    /// Stop.
    Shutdown,
}

struct Peer {
    link: PeerLink,
    /// The last sequence of our index this peer holds; `None` until its
    /// FolderState says where to resume.
    sent: Option<u64>,
    /// The peer's index id and the last sequence of it we received.
    received: Option<(u64, u64)>,
    /// `received` as last stored in the index.
    stored: Option<(u64, u64)>,
    /// Block bytes received from and sent to it.
    received_bytes: u64,
    sent_bytes: u64,
    /// The same at the last status snapshot, for rates.
    last_sample: (u64, u64),
    /// Records sent as deltas, both ways.
    deltas: delta::DeltaState,
    /// Its block requests held back until its send queue has room.
    held: VecDeque<Held>,
    /// The wire bytes of the checksums of the delta requests in `held`.
    held_sums_bytes: usize,
}

/// A block request of a peer, waiting for room in its send queue.
#[derive(Debug)]
enum Held {
    Block(wire::Request),
    Delta(wire::DeltaRequest),
}

impl Peer {
    fn new(link: PeerLink) -> Self {
        Self {
            link,
            sent: None,
            received: None,
            stored: None,
            received_bytes: 0,
            sent_bytes: 0,
            last_sample: (0, 0),
            deltas: delta::DeltaState::default(),
            held: VecDeque::new(),
            held_sums_bytes: 0,
        }
    }
}

/// The state of one folder's thread.
pub(crate) struct FolderTask {
    disk: Disk,
    writeback: crate::writeback::Writeback,
    index: Index,
    engine: Folder,
    /// Checks records rebuilt from deltas (batches are checked by `peer.rs`).
    ro_key: keys::RoKey,
    /// Records known to be valid: each one sent is added, so its echo is not
    /// verified again (see `record::KnownRecords`).
    known: std::sync::Arc<record::KnownRecords>,
    scan: ScanOptions,
    me: PeerId,
    access: Access,
    peers: HashMap<PeerId, Peer>,
    /// Requests sent and not yet answered, with when they were sent.
    requests: HashMap<u32, (Instant, BlockRequest)>,
    /// The bases offered with DeltaRequests among them.
    bases: basis::Bases,
    next_request: u32,
    software: String,
    state_dir: PathBuf,
    folder_id: String,
    status: StatusHandle,
    last_status: Option<Instant>,
    /// Files complete and prepared, to be moved into place at the end of the
    /// event batch.
    finalizing: Vec<(SignedRecord, FileRecord)>,
    finalizing_since: Option<Instant>,
    finalizing_bytes: u64,
    /// The thread that flushes a batch, and the batch it is flushing.
    flusher: Option<crate::flush::Flusher>,
    flushing: Option<Vec<(SignedRecord, FileRecord)>>,
    /// Files stored after moving them into place, until the watcher reports them.
    own_writes: apply::OwnWrites,
    /// How long `.sync/Archive/` keeps replaced and deleted versions.
    archive_keep: Duration,
    /// Changes that failed (disk full, …), to try again at the given time.
    retries: Vec<(Instant, PeerId, SignedRecord)>,
    /// The index summary, with the index sequence it was counted at.
    summary: (Option<u64>, index::Summary),
}

fn lookup(index: &Index, path: &RelPath) -> Option<LocalEntry> {
    match index.get(path) {
        Ok(entry) => entry.map(|e| LocalEntry {
            record: e.record,
            local_only: e.local_only,
        }),
        Err(e) => {
            tracing::error!(%path, error = %e, "index read failed");
            None
        }
    }
}

impl FolderTask {
    pub(crate) fn open(
        root: PathBuf,
        state_dir: PathBuf,
        index_path: &std::path::Path,
        key: &FolderKey,
        me: PeerId,
        status: StatusHandle,
        archive_keep: Duration,
    ) -> Result<Self, DaemonError> {
        let ro_key = key.ro_key().ok_or(DaemonError::EncryptedNotSupported)?;
        let signer = key.signing_key();
        let index = Index::open_exclusive(index_path)?;
        let scan = ScanOptions::new(me.short(), signer.clone());
        let engine = Folder::new(FolderConfig {
            ro_key: ro_key.clone(),
            signer,
            schedule: ScheduleConfig::default(),
        });
        let removed = crate::disk::remove_stale_temporaries(&root);
        if removed > 0 {
            tracing::info!(removed, "removed temporaries left by an earlier run");
        }
        Ok(Self {
            disk: Disk::new(root),
            writeback: crate::writeback::Writeback::start(),
            index,
            engine,
            ro_key,
            known: std::sync::Arc::default(),
            scan,
            me,
            access: key.access(),
            peers: HashMap::new(),
            requests: HashMap::new(),
            bases: basis::Bases::default(),
            next_request: 1,
            software: format!("swarmsync/{}", env!("CARGO_PKG_VERSION")),
            state_dir,
            folder_id: key.folder_id().to_string(),
            status,
            last_status: None,
            retries: Vec::new(),
            finalizing: Vec::new(),
            finalizing_since: None,
            finalizing_bytes: 0,
            flusher: None,
            flushing: None,
            own_writes: apply::OwnWrites::default(),
            archive_keep,
            summary: (None, index::Summary::default()),
        })
    }

    /// Records known to be valid, for the connections to share: a copy met
    /// again (every peer announces what it took) is not checked twice.
    pub(crate) fn known_records(&self) -> std::sync::Arc<record::KnownRecords> {
        self.known.clone()
    }

    /// Runs until [`FolderEvent::Shutdown`] or until every sender is gone;
    /// `wake` is for the flushing thread.
    pub(crate) fn run(
        mut self,
        mut events: mpsc::Receiver<FolderEvent>,
        wake: mpsc::WeakSender<FolderEvent>,
    ) -> Result<(), DaemonError> {
        self.flusher = crate::flush::Flusher::start(self.disk.root().to_owned(), wake);
        self.full_scan()?;
        'run: while let Some(first) = events.blocking_recv() {
            // Take what else is waiting too: files completed in one batch are made
            // durable together (see `flush_finalized`).
            let mut batch = vec![first];
            while batch.len() < MAX_EVENT_BATCH {
                match events.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            self.disk.forget_checked_dirs();
            let mut stop = false;
            for event in batch {
                let now = Instant::now();
                match event {
                    FolderEvent::Shutdown => {
                        stop = true;
                        break;
                    }
                    FolderEvent::PeerUp { peer, link } => self.peer_up(peer, link),
                    FolderEvent::PeerDown { peer, generation } => {
                        // A channel that was already replaced changes nothing.
                        if self
                            .peers
                            .get(&peer)
                            .is_some_and(|p| p.link.generation == generation)
                        {
                            self.peer_down(&peer);
                        }
                    }
                    FolderEvent::Message { peer, message, .. } => {
                        self.handle_message(peer, message, now)
                    }
                    FolderEvent::Block {
                        peer,
                        request_id,
                        data,
                        hash,
                        ..
                    } => self.accept_response(peer, request_id, Ok((data, hash)), now),
                    FolderEvent::Records {
                        peer,
                        index_id,
                        last,
                        records,
                        rejected,
                        ..
                    } => self.handle_verified(peer, index_id, last, records, rejected),
                    FolderEvent::LocalChange(paths) => {
                        let paths = self.unless_own_writes(&paths);
                        if !paths.is_empty() {
                            self.scan_paths(&paths)?;
                        }
                    }
                    FolderEvent::Rescan => self.full_scan()?,
                    FolderEvent::Tick => {
                        self.engine.handle_timeout(now);
                        self.forget_stale_requests(now);
                        self.retry_due(now);
                    }
                    FolderEvent::Drained { peer } => self.serve_held(peer),
                    FolderEvent::Flushed => self.finish_flush(false),
                }
                self.drive(now);
            }
            // A writer whose wake-up found the event queue full is not missed.
            let holding: Vec<PeerId> = (self.peers.iter())
                .filter(|(_, p)| !p.held.is_empty())
                .map(|(id, _)| *id)
                .collect();
            for peer in holding {
                self.serve_held(peer);
            }
            // A wake-up that found the queue full is not missed either.
            self.finish_flush(stop);
            let now = Instant::now();
            if stop || self.flush_due(now) {
                self.flush_finalized();
                self.finish_flush(stop);
            }
            self.drive(now);
            self.announce();
            self.refresh_status(now);
            if stop {
                break 'run;
            }
        }
        // Files completed before the queue closed are not fetched again.
        self.finish_flush(true);
        self.flush_finalized();
        self.finish_flush(true);
        for peer in self.peers.values() {
            peer.link.send(Message::Close(wire::Close::new(
                wire::CloseCode::GoingAway,
                "stopping",
            )));
        }
        // A stopped folder publishes no status.
        let _ = std::fs::remove_file(self.state_dir.join(crate::status::STATUS_FILE));
        Ok(())
    }

    fn full_scan(&mut self) -> Result<(), DaemonError> {
        let before = self.needed_sequences(None);
        let now = std::time::SystemTime::now();
        let pruned = crate::disk::prune_archive(self.disk.root(), self.archive_keep, now);
        if pruned > 0 {
            tracing::info!(pruned, "removed archived versions past their keeping time");
        }
        let summary = scan::scan_once(self.disk.root(), &mut self.index, &self.scan)?;
        if summary.changed_anything() {
            tracing::info!("scan: {summary}");
        }
        self.after_scan(before);
        Ok(())
    }

    fn scan_paths(&mut self, paths: &[RelPath]) -> Result<(), DaemonError> {
        let before = self.needed_sequences(Some(paths));
        let summary = scan::scan_paths(self.disk.root(), &mut self.index, &self.scan, paths)?;
        if summary.changed_anything() {
            tracing::info!("local change: {summary}");
        }
        self.after_scan(before);
        Ok(())
    }

    /// Index sequences of the paths being fetched (those at or below `scope`,
    /// or all), to tell which a scan changed.
    fn needed_sequences(&self, scope: Option<&[RelPath]>) -> Vec<(RelPath, Option<u64>)> {
        self.engine
            .needed_paths()
            .filter(|path| scope.is_none_or(|s| s.iter().any(|dir| path.starts_with(dir))))
            .map(|path| {
                let seq = self.index.get(&path).ok().flatten().map(|e| e.sequence);
                (path, seq)
            })
            .collect()
    }

    /// A local change to a path being fetched is reconsidered: the user's edit is
    /// never overwritten by a version that did not see it.
    fn after_scan(&mut self, before: Vec<(RelPath, Option<u64>)>) {
        for (path, seq) in before {
            let now_seq = self.index.get(&path).ok().flatten().map(|e| e.sequence);
            if now_seq != seq {
                let index = &self.index;
                self.engine
                    .handle_local_change(&path, &|p: &RelPath| lookup(index, p));
            }
        }
    }

    fn peer_up(&mut self, peer: PeerId, link: PeerLink) {
        tracing::info!(peer = %peer, remote = %link.remote, access = %link.access, "peer connected");
        let mut hello = Hello::new(
            self.me,
            Text::truncated(&self.software),
            Text::truncated(""),
        );
        hello.capabilities = wire::Capabilities(
            wire::Capabilities::RECORD_DELTA.0 | wire::Capabilities::BLOCK_DELTA.0,
        );
        link.send(Message::Hello(hello));
        let held = self.index.peer_state(&peer).ok().flatten();
        link.send(Message::FolderState(FolderState {
            index_id: self.index.index_id().0,
            max_sequence: self.index.sequence(),
            access: self.access,
            held_index_id: held.map_or(0, |h| h.index_id.0),
            held_sequence: held.map_or(0, |h| h.sequence),
        }));
        link.greeted.notify_one();
        if link.access == Access::Encrypted {
            // Encrypted peers must never see names or content in the clear; until
            // encrypted storage lands they get nothing.
            tracing::warn!(peer = %peer, "encrypted peers are not supported yet; nothing is shared with it");
        }
        if self.peers.contains_key(&peer) {
            // A new channel replaces the old one: what was asked there is asked again.
            self.peer_down(&peer);
        }
        self.engine.peer_connected(peer);
        self.peers.insert(peer, Peer::new(link));
    }

    fn peer_down(&mut self, peer: &PeerId) {
        if self.peers.remove(peer).is_some() {
            tracing::info!(peer = %peer, "peer disconnected");
        }
        self.requests.retain(|_, (_, r)| r.peer != *peer);
        let requests = &self.requests;
        self.bases.retain(|id| requests.contains_key(&id));
        self.engine.peer_disconnected(peer);
    }

    fn handle_message(&mut self, peer: PeerId, message: Message, now: Instant) {
        let Some(link) = self.peers.get(&peer).map(|p| p.link.clone()) else {
            return;
        };
        if link.access == Access::Encrypted {
            return;
        }
        match message {
            Message::Request(request) => self.hold(peer, &link, Held::Block(request)),
            // Held like plain requests: answering one reads the block too, and
            // searches it.
            Message::DeltaRequest(request) => self.hold(peer, &link, Held::Delta(request)),
            // A block comes as `FolderEvent::Block`, hashed by the reader; what
            // is left here is the refusals.
            Message::Response(response) => {
                let result = response.result.map(|b| hashed(b.into_bytes()));
                self.accept_response(peer, response.request_id, result, now);
            }
            Message::DeltaResponse(response) => self.receive_delta_block(peer, response, now),
            Message::Availability(a) => {
                // Flags are built only up to the block count of a version we fetch,
                // whatever `first_block` a peer claims.
                if let Ok(path) = RelPath::new(a.path.as_str())
                    && let Some(blocks) = self.engine.blocks_needed(&path, a.file_hash)
                {
                    let first = a.first_block as usize;
                    let have = (0..blocks)
                        .map(|i| i >= first && i - first < a.bits.len() && a.bits.get(i - first))
                        .collect();
                    self.engine
                        .handle_availability(&peer, &path, a.file_hash, have);
                }
            }
            Message::Ping(ping) => {
                link.send(Message::Pong(wire::Pong { nonce: ping.nonce }));
            }
            Message::Hello(hello) => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    let theirs = hello.capabilities;
                    p.deltas.records = theirs.contains(wire::Capabilities::RECORD_DELTA);
                    p.deltas.blocks = theirs.contains(wire::Capabilities::BLOCK_DELTA);
                }
            }
            Message::IndexDelta(delta) => self.receive_delta(peer, delta),
            Message::RecordRequest(request) => self.answer_record_request(&link, request),
            Message::Record(reply) => self.receive_record(peer, reply),
            Message::FolderState(state) => {
                // Resume where the peer's copy of our index ends, if it is of this index.
                let ours = self.index.index_id().0;
                let from = if state.held_index_id == ours {
                    state.held_sequence.min(self.index.sequence())
                } else {
                    0
                };
                if from > 0 {
                    tracing::info!(peer = %peer, from, "peer holds our index up to here; sending only what is newer");
                }
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.sent = Some(from);
                }
            }
            _ => {}
        }
    }

    /// A batch whose records were verified by the connection's task.
    fn handle_verified(
        &mut self,
        peer: PeerId,
        index_id: u64,
        last: Option<u64>,
        records: Vec<record::VerifiedRecord>,
        mut rejected: Vec<record::RecordError>,
    ) {
        let Some(link) = self.peers.get(&peer).map(|p| &p.link) else {
            return;
        };
        if link.access == Access::Encrypted {
            return;
        }
        let index = &self.index;
        let refused = self
            .engine
            .handle_verified(peer, records, &|p: &RelPath| lookup(index, p));
        rejected.extend(refused.into_iter().map(|r| r.reason));
        if let (Some(p), Some(last)) = (self.peers.get_mut(&peer), last) {
            p.received = Some((index_id, last));
        }
        // A flood of bad records must not flood the log as well.
        for reason in rejected.iter().take(MAX_REJECTS_LOGGED) {
            tracing::warn!(peer = %peer, reason = %reason, "rejected a record");
        }
        if rejected.len() > MAX_REJECTS_LOGGED {
            tracing::warn!(
                peer = %peer,
                more = rejected.len() - MAX_REJECTS_LOGGED,
                "rejected more records in the same batch"
            );
        }
    }

    /// Queues a block request of `peer` behind its others (or answers "busy"
    /// when too many wait), then serves what its send queue has room for.
    fn hold(&mut self, peer: PeerId, link: &PeerLink, request: Held) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let (id, sums) = match &request {
            Held::Block(r) => (r.request_id, 0),
            Held::Delta(r) => (r.request.request_id, r.sums.wire_len()),
        };
        if p.held.len() >= MAX_HELD_REQUESTS || p.held_sums_bytes + sums > MAX_HELD_SUMS_BYTES {
            link.send(Message::Response(wire::Response {
                request_id: id,
                result: Err(ResponseError::Busy),
            }));
            return;
        }
        p.held_sums_bytes += sums;
        p.held.push_back(request);
        self.serve_held(peer);
    }

    /// Answers `peer`'s held block requests, in order, while its send queue
    /// has room: a block is read only when it will be sent soon.
    fn serve_held(&mut self, peer: PeerId) {
        let Some(link) = self.peers.get(&peer).map(|p| p.link.clone()) else {
            return;
        };
        loop {
            while link.queued_bytes() < SERVE_QUEUE_BYTES {
                let Some(request) = self.peers.get_mut(&peer).and_then(|p| p.held.pop_front())
                else {
                    return;
                };
                let sent = match request {
                    Held::Block(request) => self.serve(&link, request),
                    Held::Delta(request) => {
                        if let Some(p) = self.peers.get_mut(&peer) {
                            p.held_sums_bytes =
                                p.held_sums_bytes.saturating_sub(request.sums.wire_len());
                        }
                        self.serve_delta(&link, request)
                    }
                };
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.sent_bytes += sent;
                }
            }
            if !link.wake_when_drained() {
                return;
            }
        }
    }

    /// Answers a block request from local files, verified before it is sent.
    /// Returns the block bytes sent.
    fn serve(&self, link: &PeerLink, request: wire::Request) -> u64 {
        let error = if link.queued_bytes() > MAX_QUEUED_BYTES {
            ResponseError::Busy
        } else if request.size == 0 || request.size > record::MAX_BLOCK_SIZE {
            ResponseError::Invalid
        } else {
            match self.find_block(
                Serve::Peer,
                request.hint.as_ref(),
                request.size,
                &request.hash,
            ) {
                Some(data) => return self.send_block(link, request.request_id, data),
                None => ResponseError::NotFound,
            }
        };
        link.send(Message::Response(wire::Response {
            request_id: request.request_id,
            result: Err(error),
        }));
        0
    }

    /// Sends `data` (a verified block) as the answer to request `id`; returns
    /// the bytes sent.
    fn send_block(&self, link: &PeerLink, id: u32, data: Vec<u8>) -> u64 {
        let result = Block::new(data).map_err(|_| ResponseError::Internal);
        let sent = result.as_ref().map_or(0, |b| b.as_bytes().len() as u64);
        link.send(Message::Response(wire::Response {
            request_id: id,
            result,
        }));
        sent
    }

    /// A local block with this hash, read back and checked. `Serve::Peer`
    /// skips the check of a file unchanged since it was hashed (the asking
    /// peer checks every block); a block copied into one of our own files is
    /// always checked.
    fn find_block(
        &self,
        purpose: Serve,
        hint: Option<&BlockHint>,
        size: u32,
        hash: &[u8; 32],
    ) -> Option<Vec<u8>> {
        // The disk state recorded when a file's blocks were hashed: while the
        // file still matches it, what is read is what was hashed.
        let hashed = |path: &RelPath| {
            if purpose == Serve::Local {
                return None;
            }
            self.index
                .stored_state(path)
                .ok()
                .flatten()
                .filter(|s| !s.deleted && s.kind == FileKind::File)
                .and_then(|s| s.local)
        };
        let read = |path: &RelPath, offset| {
            self.disk
                .read_block_trusting(path, offset, size, hash, hashed(path))
        };
        if let Some(hint) = hint
            && let Ok(path) = RelPath::new(hint.path.as_str())
            && let Some(data) = read(&path, hint.offset)
        {
            return Some(data);
        }
        let locations = self.index.block_locations(hash, 8).unwrap_or_default();
        locations
            .iter()
            .filter(|l| l.size == size)
            .find_map(|l| read(&l.path, l.offset))
    }

    /// The answer to request `id`: the block, or why not.
    fn accept_response(
        &mut self,
        peer: PeerId,
        id: u32,
        result: Result<(bytes::Bytes, [u8; 32]), ResponseError>,
        now: Instant,
    ) {
        let Some((sent, request)) = self.requests.remove(&id) else {
            return;
        };
        if request.peer != peer {
            self.requests.insert(id, (sent, request));
            return;
        }
        // A basis offered with it is done with, whatever the answer.
        self.bases.take(id);
        let (data, hash) = match result {
            Ok(received) => received,
            Err(ResponseError::Busy) => {
                // Not a missing block: ask again (a busy peer is still a source).
                self.engine
                    .handle_refused(&peer, &request.path, request.file_hash, request.index);
                return;
            }
            Err(e) => {
                tracing::debug!(peer = %peer, path = %request.path, error = ?e, "block not served");
                self.engine.handle_bad_block(
                    &peer,
                    &request.path,
                    request.file_hash,
                    request.index,
                );
                return;
            }
        };
        if data.len() != request.size as usize || hash != request.hash {
            tracing::warn!(peer = %peer, path = %request.path, "a block did not match its hash");
            self.engine
                .handle_bad_block(&peer, &request.path, request.file_hash, request.index);
            return;
        }
        let arrival =
            self.engine
                .handle_block(&peer, &request.path, request.file_hash, request.index, now);
        if arrival != Arrival::Accepted {
            return;
        }
        match self
            .disk
            .write_block(&request.path, &request.file_hash, request.offset, &data)
        {
            Ok(()) => {
                let disk = &self.disk;
                self.writeback
                    .wrote(&request.path, &request.file_hash, data.len() as u64, || {
                        disk.temp_path(&request.path, &request.file_hash).ok()
                    });
            }
            Err(e) => {
                report_io("writing a block of", &request.path, &e);
                self.apply_failed(&request.path, None);
            }
        }
    }

    /// Sends each peer what our index gained since it was last told.
    fn announce(&mut self) {
        let index_id = self.index.index_id().0;
        for peer in self.peers.values_mut() {
            let Some(from) = peer.sent else { continue };
            if peer.link.access == Access::Encrypted || from >= self.index.sequence() {
                continue;
            }
            let first = from == 0;
            let mut sent = from;
            let mut batch = IndexBatch::with_limit(index_id, INDEX_BATCH_BYTES);
            let mut messages = Vec::new();
            let flush = |batch: &mut IndexBatch, messages: &mut Vec<Message>| {
                if batch.is_empty() {
                    return;
                }
                let full =
                    std::mem::replace(batch, IndexBatch::with_limit(index_id, INDEX_BATCH_BYTES));
                messages.push(if first && messages.is_empty() {
                    Message::Index(full)
                } else {
                    Message::IndexUpdate(full)
                });
            };
            for entry in self.index.announce_since(from, index::DEFAULT_BATCH) {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the index failed");
                        break;
                    }
                };
                sent = sent.max(entry.sequence);
                let Some(signed) = entry.signed else { continue };
                // A large record the peer was sent the previous version of
                // goes as the difference from it.
                if peer.deltas.records
                    && from > 0
                    && signed.body().len() >= index::PREVIOUS_MIN_BODY
                    && let Ok(Some(previous)) = self.index.previous(&entry.record.path)
                    && previous.sequence <= from
                    && let Some(d) = delta::make_delta(
                        index_id,
                        entry.sequence,
                        &entry.record.path,
                        &previous.body,
                        &signed,
                    )
                {
                    flush(&mut batch, &mut messages);
                    messages.push(Message::IndexDelta(d));
                    continue;
                }
                self.known.remember(&self.ro_key, &signed);
                let (body, signature) = signed.into_parts();
                let Ok(record) = wire::SignedRecord::new(body, signature) else {
                    continue;
                };
                let entry = IndexEntry {
                    sequence: entry.sequence,
                    record,
                };
                if let Err(wire::PushError::Full(entry)) = batch.push(entry) {
                    flush(&mut batch, &mut messages);
                    let _ = batch.push(entry);
                }
            }
            flush(&mut batch, &mut messages);
            for message in messages {
                peer.link.send(message);
            }
            peer.sent = Some(sent.max(self.index.sequence()));
        }
    }
}

impl FolderTask {
    /// Refreshes the status snapshot about once a second (and the index summary
    /// every few seconds: it counts rows).
    fn refresh_status(&mut self, now: Instant) {
        let elapsed = match self.last_status {
            Some(at) if now.saturating_duration_since(at) < Duration::from_secs(1) => return,
            Some(at) => now.saturating_duration_since(at).as_secs_f64(),
            None => 1.0,
        };
        self.last_status = Some(now);
        // Counting rows costs: only when the index changed since the last count.
        if self.summary.0 != Some(self.index.sequence())
            && let Ok(summary) = self.index.summary()
        {
            self.summary = (Some(self.index.sequence()), summary);
        }
        self.store_peer_progress();
        let summary = self.summary.1;
        let progress = self.engine.progress();
        let peers = self
            .peers
            .iter_mut()
            .map(|(id, p)| {
                let (r0, s0) = p.last_sample;
                p.last_sample = (p.received_bytes, p.sent_bytes);
                PeerStatus {
                    peer: id.to_string(),
                    address: p.link.remote.to_string(),
                    found_by: p.link.source.to_owned(),
                    carrier: p.link.carrier.name().to_owned(),
                    access: p.link.access.to_string(),
                    received_bytes: p.received_bytes,
                    sent_bytes: p.sent_bytes,
                    receive_rate: (p.received_bytes - r0) as f64 / elapsed,
                    send_rate: (p.sent_bytes - s0) as f64 / elapsed,
                }
            })
            .collect();
        let needed = self
            .engine
            .needed()
            .into_iter()
            .take(MAX_NEEDED)
            .map(|(path, sources)| NeededStatus {
                path: path.to_string(),
                sources: sources.iter().map(ToString::to_string).collect(),
            })
            .collect();
        let status = FolderStatus {
            folder_id: self.folder_id.clone(),
            access: self.access.to_string(),
            updated_unix_ms: now_ms(),
            files: summary.files,
            directories: summary.directories,
            bytes: summary.bytes,
            to_fetch_files: progress.files,
            to_fetch_bytes: progress.bytes,
            peers,
            needed,
            network: self.status.network(),
        };
        if let Err(e) = status.write(&self.state_dir) {
            tracing::debug!(error = %e, "writing the status file failed");
        }
        self.status.set(status);
    }
}

/// A request unanswered this long is forgotten (well past the engine's timeout).
const STALE_REQUEST: Duration = Duration::from_secs(300);
/// How long a failed change waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Most failed changes remembered for a retry.
const MAX_RETRIES: usize = 10_000;

impl FolderTask {
    /// Drops `path` from the plan and remembers its record to try again later: a
    /// full disk stops writing, and writing resumes once there is space.
    fn apply_failed(&mut self, path: &RelPath, signed: Option<SignedRecord>) {
        let returned = self.engine.handle_apply_failed(path);
        let retry = returned.or_else(|| signed.map(|s| (self.me, s)));
        if let Some((peer, signed)) = retry
            && self.retries.len() < MAX_RETRIES
        {
            self.retries
                .push((Instant::now() + RETRY_AFTER, peer, signed));
        }
    }

    /// Remembers how far each peer's index was received, so the next connection
    /// resumes there. Only while nothing is pending: every record received up to
    /// there is then applied, or decided against, and none would be skipped.
    fn store_peer_progress(&mut self) {
        if !self.engine.is_idle() || !self.retries.is_empty() {
            return;
        }
        for (id, peer) in &mut self.peers {
            let Some((index_id, sequence)) = peer.received else {
                continue;
            };
            // A record asked for whole has not come yet.
            if !peer.deltas.unresolved.is_empty() {
                continue;
            }
            if peer.stored == peer.received {
                continue;
            }
            let state = index::PeerState {
                index_id: index::IndexId(index_id),
                sequence,
            };
            match self.index.set_peer_state(id, state) {
                Ok(()) => peer.stored = peer.received,
                Err(e) => tracing::warn!(error = %e, "storing a peer's progress failed"),
            }
        }
    }

    /// Forgets requests a peer never answered: the engine gave up on them at
    /// its timeout and asked again under a new id; an answer this late is dropped.
    fn forget_stale_requests(&mut self, now: Instant) {
        self.requests
            .retain(|_, (sent, _)| now.saturating_duration_since(*sent) < STALE_REQUEST);
        let requests = &self.requests;
        self.bases.retain(|id| requests.contains_key(&id));
    }

    /// Hands failed changes whose time has come back to the engine.
    fn retry_due(&mut self, now: Instant) {
        if self.retries.is_empty() {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.retries = later;
        for (_, peer, signed) in due {
            let index = &self.index;
            let rejected = self
                .engine
                .handle_records(peer, vec![signed], &|p: &RelPath| lookup(index, p));
            for r in rejected {
                tracing::warn!(reason = %r.reason, "a retried record no longer verifies");
            }
        }
    }
}

/// A received block with its BLAKE3, as [`FolderTask::accept_response`] takes it.
pub(crate) fn hashed(data: bytes::Bytes) -> (bytes::Bytes, [u8; 32]) {
    let hash = *blake3::hash(&data).as_bytes();
    (data, hash)
}

fn report_io(doing: &str, path: &RelPath, e: &std::io::Error) {
    if e.raw_os_error() == Some(28) {
        tracing::error!(%path, "disk full while {doing} it: nothing was lost; it is retried when peers announce again");
    } else {
        tracing::error!(%path, error = %e, "failed {doing} it");
    }
}

/// How often the folder task is woken to retry timeouts.
pub(crate) const TICK: Duration = Duration::from_millis(100);
