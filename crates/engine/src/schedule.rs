//! Which block to ask which peer for.
//!
//! The scheduler holds the files this peer needs (one exact version each) and, for
//! every connected peer, which of those versions it holds whole or in part. The
//! daemon feeds it what happens and polls it for requests:
//!
//! ```text
//! add_file / remove_file / mark_local          what we need, what we already hold
//! peer_connected / peer_disconnected           who is there
//! peer_has_file / peer_has_blocks              what they hold (index, availability)
//! poll_request(now)   → Request                until None, after every input
//! handle_block / handle_bad_block / handle_timeout(now)
//! poll_complete()     → path                   files whose every block is here
//! ```
//!
//! Sources are never fixed per file: each request goes to whichever peer can serve
//! it now, so a peer that connects late takes its share at once (the weakness of
//! pullers that pick a file's source from the first index to arrive).
//!
//! Choice of block, in order:
//! 1. Only the first [`ScheduleConfig::active_files`] incomplete files that some
//!    connected peer can serve are worked on at once, so files finish one after
//!    another instead of all being half-done.
//! 2. Among their missing blocks, the rarest first: the one the fewest connected
//!    peers can serve, so a block only one peer has is fetched while that peer is
//!    still there. Ties go to the earlier file and block.
//! 3. Endgame: when nothing is missing that a peer could fetch, an idle peer asks for
//!    a block already requested from one other peer; whichever copy arrives first
//!    counts, so one slow peer cannot hold up the end of a sync. A peer keeps at
//!    most [`ScheduleConfig::endgame_depth`] requests outstanding in the endgame.
//!
//! Each peer has a pipeline of outstanding requests sized from its measured rate
//! (enough bytes to cover [`ScheduleConfig::pipeline_time`] of transfer, at least
//! [`ScheduleConfig::min_pipeline`] requests and [`ScheduleConfig::min_pipeline_bytes`]),
//! so fast peers are kept busy and slow ones are not flooded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use keys::PeerId;
use record::{FileRecord, RelPath};

/// Tuning of the scheduler.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// Files worked on at once.
    pub active_files: usize,
    /// Requests a peer always may have outstanding, whatever its rate.
    pub min_pipeline: usize,
    /// Bytes a peer always may have outstanding: before its rate is known, a
    /// pipeline of eight one-block small files kept a fast link a tenth busy.
    pub min_pipeline_bytes: u64,
    /// Transfer time a peer's outstanding requests should cover.
    pub pipeline_time: Duration,
    /// Most bytes outstanding at one peer.
    pub max_pipeline_bytes: u64,
    /// A request unanswered this long is given up and the block asked elsewhere.
    pub request_timeout: Duration,
    /// Endgame duplicates a peer asks for only while it has fewer requests than
    /// this outstanding: enough to finish a straggler's last blocks, without an
    /// idle peer filling its whole pipeline with blocks that are on their way
    /// already (3 % of the bytes twice over, three peers swarming one).
    pub endgame_depth: usize,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            active_files: 64,
            min_pipeline: 8,
            min_pipeline_bytes: 2 << 20,
            pipeline_time: Duration::from_millis(250),
            max_pipeline_bytes: 32 << 20,
            request_timeout: Duration::from_secs(60),
            endgame_depth: 4,
        }
    }
}

/// Ask `peer` for block `index` of the version `file_hash` of `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Whom to ask.
    pub peer: PeerId,
    /// The file.
    pub path: RelPath,
    /// The whole-file hash of the wanted version.
    pub file_hash: [u8; 32],
    /// Which block of that version.
    pub index: usize,
    /// Its offset in the file.
    pub offset: u64,
    /// Its length.
    pub size: u32,
    /// Its BLAKE3 hash, which the answer must match.
    pub hash: [u8; 32],
}

/// What an arriving block meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first copy: write it.
    Accepted,
    /// Already here (an endgame duplicate, or a file no longer needed): drop it.
    Unneeded,
}

/// Files and bytes still to fetch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Files not yet complete.
    pub files: usize,
    /// Bytes of blocks neither here nor held locally.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BlockState {
    Missing,
    /// Outstanding at these peers, since these times (two at most, in the endgame).
    Requested(Vec<(PeerId, Instant)>),
    /// Here: downloaded or available from a local copy.
    Done,
}

#[derive(Debug)]
struct FileNeed {
    record: FileRecord,
    offsets: Vec<u64>,
    blocks: Vec<BlockState>,
    left: usize,
    reported: bool,
}

impl FileNeed {
    fn new(record: FileRecord) -> Self {
        let offsets = record
            .blocks
            .iter()
            .scan(0u64, |at, b| {
                let here = *at;
                *at += u64::from(b.size);
                Some(here)
            })
            .collect();
        let blocks = vec![BlockState::Missing; record.blocks.len()];
        let left = blocks.len();
        Self {
            record,
            offsets,
            blocks,
            left,
            reported: false,
        }
    }

    fn finish(&mut self, index: usize) -> bool {
        match self.blocks.get_mut(index) {
            Some(state) if *state != BlockState::Done => {
                *state = BlockState::Done;
                self.left -= 1;
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
struct PeerState {
    /// Versions (path → file hash) the peer holds whole.
    whole: HashMap<RelPath, [u8; 32]>,
    /// Versions the peer holds in part, with one flag per block.
    partial: HashMap<RelPath, ([u8; 32], Vec<bool>)>,
    in_flight: usize,
    in_flight_bytes: u64,
    /// Smoothed delivery rate, bytes per second.
    rate: f64,
    sample_bytes: u64,
    sample_start: Option<Instant>,
    /// Nothing to ask this peer for, as of the last poll; cleared by any input that
    /// could give it work, so idle peers cost nothing per poll.
    idle: bool,
}

/// What a peer holds of one needed version, looked up once per file rather than
/// once per block.
#[derive(Debug, Clone, Copy)]
enum Holding<'a> {
    Nothing,
    Whole,
    Some(&'a [bool]),
}

impl Holding<'_> {
    fn has(self, index: usize) -> bool {
        match self {
            Self::Nothing => false,
            Self::Whole => true,
            Self::Some(bits) => bits.get(index) == Some(&true),
        }
    }
}

impl PeerState {
    fn holding(&self, need: &FileNeed) -> Holding<'_> {
        let path = &need.record.path;
        if self.whole.get(path) == Some(&need.record.hash) {
            return Holding::Whole;
        }
        match self.partial.get(path) {
            Some((hash, bits)) if *hash == need.record.hash => Holding::Some(bits),
            _ => Holding::Nothing,
        }
    }

    fn can_serve(&self, need: &FileNeed, index: usize) -> bool {
        self.holding(need).has(index)
    }

    fn has_room(&self, config: &ScheduleConfig) -> bool {
        if self.in_flight_bytes >= config.max_pipeline_bytes {
            return false;
        }
        if self.in_flight < config.min_pipeline || self.in_flight_bytes < config.min_pipeline_bytes
        {
            return true;
        }
        let budget = self.rate * config.pipeline_time.as_secs_f64();
        (self.in_flight_bytes as f64) < budget
    }

    fn record_delivery(&mut self, bytes: u64, now: Instant) {
        const SAMPLE: Duration = Duration::from_millis(200);
        self.sample_bytes += bytes;
        let start = *self.sample_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= SAMPLE {
            let sample = self.sample_bytes as f64 / elapsed.as_secs_f64();
            self.rate = if self.rate == 0.0 {
                sample
            } else {
                0.7 * self.rate + 0.3 * sample
            };
            self.sample_bytes = 0;
            self.sample_start = Some(now);
        }
    }
}

/// The block scheduler of one folder. See the module docs for the poll order.
#[derive(Debug, Default)]
pub struct Scheduler {
    config: ScheduleConfig,
    /// Needed files in the order they were added.
    files: BTreeMap<u64, FileNeed>,
    order: HashMap<RelPath, u64>,
    next_order: u64,
    peers: HashMap<PeerId, PeerState>,
    /// Keys of files whose last block arrived, in that order, not yet reported
    /// (so `poll_complete` never walks all needed files; a key whose file was
    /// removed meanwhile is skipped).
    complete: VecDeque<u64>,
    /// No file with a smaller key has a missing block: `pick` starts there, so
    /// the files fully on their way (a thousand one-block files, with a 32 MiB
    /// pipeline of small files) are not walked again for every request. Any
    /// block set back to missing lowers it; 0 is always safe.
    missing_from: u64,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(config: ScheduleConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Needs `record` (a live file; its blocks all missing). Replaces any other
    /// version of the same path that was needed.
    pub fn add_file(&mut self, record: FileRecord) {
        self.remove_file(&record.path);
        let key = self.next_order;
        self.next_order += 1;
        self.order.insert(record.path.clone(), key);
        let need = FileNeed::new(record);
        if need.left == 0 {
            self.complete.push_back(key);
        }
        self.files.insert(key, need);
        self.wake_all();
    }

    /// No longer needs `path` (applied, superseded or deleted). Outstanding requests
    /// for it are forgotten; their answers will be [`Arrival::Unneeded`].
    pub fn remove_file(&mut self, path: &RelPath) {
        let Some(key) = self.order.remove(path) else {
            return;
        };
        if let Some(need) = self.files.remove(&key) {
            for (state, block) in need.blocks.iter().zip(&need.record.blocks) {
                if let BlockState::Requested(at) = state {
                    for (peer, _) in at {
                        self.release(peer, block.size);
                    }
                }
            }
        }
    }

    /// Block `index` of `path` is already here (a local copy will be used).
    pub fn mark_local(&mut self, path: &RelPath, index: usize) {
        let Some(key) = self.order.get(path).copied() else {
            return;
        };
        if let Some(need) = self.files.get_mut(&key)
            && need.finish(index)
            && need.left == 0
        {
            self.complete.push_back(key);
        }
    }

    /// A peer connected.
    pub fn peer_connected(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_default();
    }

    /// A peer went away: what was outstanding at it is asked elsewhere.
    pub fn peer_disconnected(&mut self, peer: &PeerId) {
        if self.peers.remove(peer).is_none() {
            return;
        }
        for need in self.files.values_mut() {
            for state in &mut need.blocks {
                forget_request(state, peer);
            }
        }
        self.missing_from = 0;
        self.wake_all();
    }

    /// `peer` holds the version `file_hash` of `path` whole.
    pub fn peer_has_file(&mut self, peer: &PeerId, path: &RelPath, file_hash: [u8; 32]) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.partial.remove(path);
            state.whole.insert(path.clone(), file_hash);
            state.idle = false;
        }
    }

    /// `peer` holds the blocks flagged in `have` of the version `file_hash` of
    /// `path` (it is still downloading that version itself).
    pub fn peer_has_blocks(
        &mut self,
        peer: &PeerId,
        path: &RelPath,
        file_hash: [u8; 32],
        have: Vec<bool>,
    ) {
        if let Some(state) = self.peers.get_mut(peer)
            && state.whole.get(path) != Some(&file_hash)
        {
            state.partial.insert(path.clone(), (file_hash, have));
            state.idle = false;
        }
    }

    /// `peer` no longer holds any version of `path`.
    pub fn peer_lost_file(&mut self, peer: &PeerId, path: &RelPath) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.whole.remove(path);
            state.partial.remove(path);
        }
    }

    /// The next request to send, if any peer has room and something to serve.
    /// Call until `None` after every input.
    pub fn poll_request(&mut self, now: Instant) -> Option<Request> {
        let mut peers: Vec<(PeerId, usize)> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.idle && p.has_room(&self.config))
            .map(|(id, p)| (*id, p.in_flight))
            .collect();
        // The least busy peer asks first; ids break ties so runs are repeatable.
        peers.sort_unstable_by_key(|(id, busy)| (*busy, *id));
        for (peer, _) in peers {
            let (picked, missing_from) = self.pick(&peer);
            self.missing_from = missing_from;
            if let Some((key, index)) = picked {
                return self.issue(peer, key, index, now);
            }
            if let Some(state) = self.peers.get_mut(&peer) {
                state.idle = true;
            }
        }
        None
    }

    /// A block arrived from `peer` and matched its hash (the caller checks).
    pub fn handle_block(
        &mut self,
        peer: &PeerId,
        path: &RelPath,
        file_hash: [u8; 32],
        index: usize,
        now: Instant,
    ) -> Arrival {
        let size = self.block_size(path, index).unwrap_or(0);
        if let Some(state) = self.peers.get_mut(peer) {
            state.record_delivery(u64::from(size), now);
        }
        // A file no longer needed had its requests released when it was removed.
        let Some(key) = self.order.get(path).copied() else {
            return Arrival::Unneeded;
        };
        let Some(need) = self.files.get_mut(&key) else {
            return Arrival::Unneeded;
        };
        if need.record.hash != file_hash {
            return Arrival::Unneeded;
        }
        let requested_from = match need.blocks.get(index) {
            Some(BlockState::Requested(at)) => at.iter().map(|(p, _)| *p).collect(),
            _ => Vec::new(),
        };
        let fresh = need.finish(index);
        if fresh && need.left == 0 {
            self.complete.push_back(key);
        }
        for other in requested_from {
            self.release(&other, size);
        }
        if fresh {
            Arrival::Accepted
        } else {
            Arrival::Unneeded
        }
    }

    /// Block `index` of the version `file_hash` from `peer` failed verification,
    /// or the peer said it does not have it: ask someone else, and stop counting on
    /// `peer` for that version. An answer about a version no longer needed changes
    /// nothing (its requests were released when it was replaced).
    pub fn handle_bad_block(
        &mut self,
        peer: &PeerId,
        path: &RelPath,
        file_hash: [u8; 32],
        index: usize,
    ) {
        if self
            .need_mut(path)
            .is_some_and(|n| n.record.hash == file_hash)
        {
            self.handle_refused(peer, path, file_hash, index);
            self.peer_lost_file(peer, path);
        }
    }

    /// `peer` could not serve block `index` of version `file_hash` right now (it is
    /// busy): the block is asked again, of it or another peer, and the peer still
    /// counts as holding the version.
    pub fn handle_refused(
        &mut self,
        peer: &PeerId,
        path: &RelPath,
        file_hash: [u8; 32],
        index: usize,
    ) {
        let Some(key) = self.order.get(path).copied() else {
            return;
        };
        let Some(need) = self.files.get_mut(&key) else {
            return;
        };
        if need.record.hash != file_hash {
            return;
        }
        self.missing_from = self.missing_from.min(key);
        let size = need.record.blocks.get(index).map_or(0, |b| b.size);
        let was_asked = match need.blocks.get_mut(index) {
            Some(state @ BlockState::Requested(_)) => {
                let asked =
                    matches!(state, BlockState::Requested(at) if at.iter().any(|(p, _)| p == peer));
                forget_request(state, peer);
                asked
            }
            _ => false,
        };
        if was_asked {
            self.release(peer, size);
        }
        self.wake_all();
    }

    /// Gives up requests older than the timeout, so the blocks are asked elsewhere.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timeout = self.config.request_timeout;
        let mut expired = Vec::new();
        for need in self.files.values_mut() {
            for (state, block) in need.blocks.iter_mut().zip(&need.record.blocks) {
                if let BlockState::Requested(at) = state {
                    at.retain(|(peer, since)| {
                        let keep = now.saturating_duration_since(*since) < timeout;
                        if !keep {
                            expired.push((*peer, block.size));
                        }
                        keep
                    });
                    if at.is_empty() {
                        *state = BlockState::Missing;
                    }
                }
            }
        }
        if !expired.is_empty() {
            self.missing_from = 0;
            self.wake_all();
        }
        for (peer, size) in expired {
            self.release(&peer, size);
        }
    }

    /// When the oldest outstanding request will time out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.files
            .values()
            .flat_map(|need| &need.blocks)
            .filter_map(|state| match state {
                BlockState::Requested(at) => at.iter().map(|(_, since)| *since).min(),
                _ => None,
            })
            .min()
            .map(|oldest| oldest + self.config.request_timeout)
    }

    /// A file whose every block is here, to be assembled and moved into place.
    /// Each is reported once; call [`remove_file`](Self::remove_file) when applied.
    pub fn poll_complete(&mut self) -> Option<RelPath> {
        while let Some(key) = self.complete.pop_front() {
            if let Some(need) = self.files.get_mut(&key)
                && need.left == 0
                && !need.reported
            {
                need.reported = true;
                return Some(need.record.path.clone());
            }
        }
        None
    }

    /// What is still to fetch.
    pub fn progress(&self) -> Progress {
        let mut progress = Progress::default();
        for need in self.files.values().filter(|n| n.left > 0) {
            progress.files += 1;
            for (state, block) in need.blocks.iter().zip(&need.record.blocks) {
                if *state != BlockState::Done {
                    progress.bytes += u64::from(block.size);
                }
            }
        }
        progress
    }

    /// Whether some needed file still has blocks to come ([`progress`](Self::progress)
    /// counts them all; this stops at the first).
    pub fn has_files_left(&self) -> bool {
        self.files.values().any(|n| n.left > 0)
    }

    /// Whether `path` is needed and which peers could serve some of it now.
    pub fn sources(&self, path: &RelPath) -> Vec<PeerId> {
        let Some(need) = self.order.get(path).and_then(|k| self.files.get(k)) else {
            return Vec::new();
        };
        let mut peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| (0..need.blocks.len()).any(|i| p.can_serve(need, i)))
            .map(|(id, _)| *id)
            .collect();
        peers.sort_unstable();
        peers
    }

    fn need_mut(&mut self, path: &RelPath) -> Option<&mut FileNeed> {
        let key = self.order.get(path)?;
        self.files.get_mut(key)
    }

    fn block_size(&self, path: &RelPath, index: usize) -> Option<u32> {
        let need = self.files.get(self.order.get(path)?)?;
        need.record.blocks.get(index).map(|b| b.size)
    }

    fn wake_all(&mut self) {
        for state in self.peers.values_mut() {
            state.idle = false;
        }
    }

    fn release(&mut self, peer: &PeerId, size: u32) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.in_flight = state.in_flight.saturating_sub(1);
            state.in_flight_bytes = state.in_flight_bytes.saturating_sub(u64::from(size));
            // Room for an endgame duplicate again (see `endgame_depth`).
            state.idle = false;
        }
    }

    /// The block `peer` should fetch next: the rarest missing block among the
    /// first files it can help with, else an endgame duplicate. One pass in file
    /// order that stops after `active_files` files with something missing, so the
    /// cost is the size of that window plus the files already fully requested.
    /// Also returns the new [`missing_from`](Self::missing_from).
    fn pick(&self, peer: &PeerId) -> (Option<(u64, usize)>, u64) {
        let mut missing_from = self.missing_from;
        let Some(me) = self.peers.get(peer) else {
            return (None, missing_from);
        };
        let others: Vec<&PeerState> = self
            .peers
            .iter()
            .filter(|(id, _)| *id != peer)
            .map(|(_, p)| p)
            .collect();
        let mut best: Option<(usize, u64, usize)> = None;
        let mut endgame: Option<(u64, usize)> = None;
        let mut active = 0;
        let mut theirs: Vec<Holding<'_>> = Vec::with_capacity(others.len());
        let endgame_room = me.in_flight < self.config.endgame_depth;
        // An endgame duplicate may be in any file still in flight.
        let start = if endgame_room { 0 } else { missing_from };
        let mut clean_so_far = true;
        for (key, need) in self.files.range(start..) {
            let has_missing = need.left > 0 && need.blocks.contains(&BlockState::Missing);
            if clean_so_far && !has_missing {
                missing_from = missing_from.max(key + 1);
            } else {
                clean_so_far = false;
            }
            if need.left == 0 {
                continue;
            }
            // A file whose every block is on its way has nothing for this peer
            // unless it may take an endgame duplicate: skip it before the
            // lookups of who holds it (with many one-block files in flight, those
            // lookups were most of the cost of a request).
            if !endgame_room && !has_missing {
                continue;
            }
            let mine = me.holding(need);
            if matches!(mine, Holding::Nothing) {
                continue;
            }
            theirs.clear();
            theirs.extend(others.iter().map(|p| p.holding(need)));
            // No block of this file has fewer holders than us and the peers that
            // hold all of it: the first with that few ends the search of the file
            // (a large file's blocks are otherwise all looked at for every request).
            let floor = 1 + theirs
                .iter()
                .filter(|h| matches!(h, Holding::Whole))
                .count();
            let mut missing_here = false;
            for (index, state) in need.blocks.iter().enumerate() {
                match state {
                    BlockState::Missing if mine.has(index) => {
                        missing_here = true;
                        let holders = 1 + theirs.iter().filter(|h| h.has(index)).count();
                        if best.is_none_or(|(h, _, _)| holders < h) {
                            best = Some((holders, *key, index));
                        }
                        if holders == floor {
                            break;
                        }
                    }
                    BlockState::Requested(at)
                        if endgame.is_none()
                            && endgame_room
                            && at.len() == 1
                            && at.iter().all(|(p, _)| p != peer)
                            && mine.has(index) =>
                    {
                        endgame = Some((*key, index));
                    }
                    _ => {}
                }
            }
            if missing_here {
                active += 1;
                // Nothing is rarer than a block only we can ask for.
                if active >= self.config.active_files || best.is_some_and(|(h, _, _)| h == 1) {
                    break;
                }
            }
        }
        // The endgame starts only when nothing at all is missing for this peer.
        (
            best.map(|(_, key, index)| (key, index)).or(endgame),
            missing_from,
        )
    }

    fn issue(&mut self, peer: PeerId, key: u64, index: usize, now: Instant) -> Option<Request> {
        let need = self.files.get_mut(&key)?;
        let block = *need.record.blocks.get(index)?;
        let offset = *need.offsets.get(index)?;
        let state = need.blocks.get_mut(index)?;
        match state {
            BlockState::Missing => *state = BlockState::Requested(vec![(peer, now)]),
            BlockState::Requested(at) => at.push((peer, now)),
            BlockState::Done => return None,
        }
        let request = Request {
            peer,
            path: need.record.path.clone(),
            file_hash: need.record.hash,
            index,
            offset,
            size: block.size,
            hash: block.hash,
        };
        if let Some(state) = self.peers.get_mut(&peer) {
            state.in_flight += 1;
            state.in_flight_bytes += u64::from(block.size);
        }
        Some(request)
    }
}

fn forget_request(state: &mut BlockState, peer: &PeerId) {
    if let BlockState::Requested(at) = state {
        at.retain(|(p, _)| p != peer);
        if at.is_empty() {
            *state = BlockState::Missing;
        }
    }
}

#[cfg(test)]
mod tests;
