//! A simulated network of peers for the engine (after quinn-proto's test `Pair`):
//! every node runs a real [`Folder`]; an in-memory shell plays disk and index,
//! links are message queues delivered in steps, and links can be cut and
//! restored. Nothing here touches a socket, the clock or the disk.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use keys::{FolderSigningKey, PeerId, RwSecret, ShortId};
use record::{Block, FileKind, FileRecord, RelPath, SignedRecord, Timestamp, VersionVector};

use crate::decide::LoserFate;
use crate::folder::{Action, Folder, FolderConfig, LocalEntry};
use crate::schedule::{Arrival, Request, ScheduleConfig};

/// Block size of the simulation: tiny, so small files have several blocks.
const BLOCK: usize = 4;

#[derive(Debug, Clone)]
enum Message {
    Records(Vec<SignedRecord>),
    Request(Request),
    Response {
        request: Request,
        data: Option<Vec<u8>>,
    },
}

/// One simulated device.
pub(crate) struct Node {
    pub(crate) id: PeerId,
    short: ShortId,
    folder: Folder,
    index: BTreeMap<RelPath, (LocalEntry, SignedRecord)>,
    /// The folder on "disk": files only; directories are implied.
    pub(crate) files: BTreeMap<RelPath, Vec<u8>>,
    /// `.sync/Archive/`: every replaced or deleted version.
    pub(crate) archive: Vec<Vec<u8>>,
    /// Blocks received for files being fetched.
    temps: BTreeMap<(RelPath, [u8; 32]), BTreeMap<usize, Vec<u8>>>,
}

/// The network.
pub(crate) struct SimNet {
    key: FolderSigningKey,
    pub(crate) nodes: Vec<Node>,
    links: BTreeSet<(usize, usize)>,
    /// Messages in flight per link, with the step at which they arrive.
    queues: BTreeMap<(usize, usize), VecDeque<(u64, Message)>>,
    steps: u64,
    /// Steps a message takes on a link.
    latency: u64,
    /// Block requests and responses lost, per thousand.
    loss: u64,
    rng: u64,
    /// Block requests sent so far, by every node.
    pub(crate) block_requests: u64,
    /// Local changes gathered to be announced in one message (one scan).
    held: Option<Vec<SignedRecord>>,
    now: Instant,
    /// Every content ever written by a user, and whether the user overwrote or
    /// deleted it themselves (then losing it is their doing, not ours).
    pub(crate) written: Vec<(Vec<u8>, bool)>,
    /// Wall-clock seconds, shared: modification times follow real time, so a
    /// later edit has a later time on every device.
    clock: i64,
}

fn blocks_of(content: &[u8]) -> Vec<Block> {
    content
        .chunks(BLOCK)
        .map(|c| Block {
            size: c.len() as u32,
            hash: *blake3::hash(c).as_bytes(),
        })
        .collect()
}

impl SimNet {
    pub(crate) fn new(n: usize) -> Self {
        let key = RwSecret::from_bytes([42; 20]).signing_key();
        let nodes = (0..n)
            .map(|i| {
                let mut id = [0u8; 32];
                id[0] = i as u8 + 1;
                let config = FolderConfig {
                    ro_key: key.ro_key(),
                    signer: Some(key.clone()),
                    schedule: ScheduleConfig {
                        request_timeout: Duration::from_secs(5),
                        ..ScheduleConfig::default()
                    },
                };
                Node {
                    id: PeerId(id),
                    short: PeerId(id).short(),
                    folder: Folder::new(config),
                    index: BTreeMap::new(),
                    files: BTreeMap::new(),
                    archive: Vec::new(),
                    temps: BTreeMap::new(),
                }
            })
            .collect();
        Self {
            key,
            nodes,
            links: BTreeSet::new(),
            queues: BTreeMap::new(),
            steps: 0,
            latency: 1,
            loss: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            block_requests: 0,
            held: None,
            now: Instant::now(),
            written: Vec::new(),
            clock: 1,
        }
    }

    /// Connects a and b; like a real connection, both send their whole index.
    pub(crate) fn connect(&mut self, a: usize, b: usize) {
        if a == b || !self.links.insert((a.min(b), a.max(b))) {
            return;
        }
        for (from, to) in [(a, b), (b, a)] {
            let peer = self.nodes[to].id;
            self.nodes[from].folder.peer_connected(peer);
            let all = self.nodes[from]
                .index
                .values()
                .filter(|(l, _)| !l.local_only)
                .map(|(_, s)| s.clone())
                .collect();
            self.send(from, to, Message::Records(all));
        }
    }

    /// Cuts the link between a and b; what was in flight is lost.
    pub(crate) fn disconnect(&mut self, a: usize, b: usize) {
        if !self.links.remove(&(a.min(b), a.max(b))) {
            return;
        }
        self.queues.remove(&(a, b));
        self.queues.remove(&(b, a));
        let (ida, idb) = (self.nodes[a].id, self.nodes[b].id);
        self.nodes[a].folder.peer_disconnected(&idb);
        self.nodes[b].folder.peer_disconnected(&ida);
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    /// Messages take `steps` steps to cross a link.
    pub(crate) fn latency(mut self, steps: u64) -> Self {
        self.latency = steps.max(1);
        self
    }

    /// Loses block requests and responses at `per_mille` / 1000 (records travel
    /// in order and complete, like a TCP stream; a lost block is a stalled peer).
    pub(crate) fn loss(mut self, per_mille: u64) -> Self {
        self.loss = per_mille;
        self
    }

    fn send(&mut self, from: usize, to: usize, message: Message) {
        if !self.connected(from, to) {
            return;
        }
        if matches!(message, Message::Request(_)) {
            self.block_requests += 1;
        }
        if self.loss > 0 && !matches!(message, Message::Records(_)) {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if self.rng % 1000 < self.loss {
                return;
            }
        }
        let due = self.steps + self.latency;
        self.queues
            .entry((from, to))
            .or_default()
            .push_back((due, message));
    }

    fn broadcast(&mut self, from: usize, signed: SignedRecord) {
        for to in 0..self.nodes.len() {
            self.send(from, to, Message::Records(vec![signed.clone()]));
        }
    }

    /// A user on node `n` writes `content` to `path`.
    pub(crate) fn write(&mut self, n: usize, path: &str, content: &[u8]) {
        let path = RelPath::new(path).expect("test path");
        let node = &mut self.nodes[n];
        if let Some(old) = node.files.get(&path)
            && let Some(entry) = self
                .written
                .iter_mut()
                .find(|(c, by_user)| c == old && !*by_user)
        {
            entry.1 = true;
        }
        self.written.push((content.to_vec(), false));
        self.clock += 1;
        let version = node
            .index
            .get(&path)
            .map(|(l, _)| l.record.version.clone())
            .unwrap_or_default();
        let record = FileRecord {
            path: path.clone(),
            kind: FileKind::File,
            size: content.len() as u64,
            modified: Timestamp {
                secs: self.clock,
                nanos: 0,
            },
            mode: 0o644,
            version: version.incremented(node.short),
            deleted: false,
            blocks: blocks_of(content),
            hash: *blake3::hash(content).as_bytes(),
        };
        node.files.insert(path.clone(), content.to_vec());
        self.commit_local(n, record);
    }

    /// A user on node `n` deletes `path`.
    pub(crate) fn delete(&mut self, n: usize, path: &str) {
        let path = RelPath::new(path).expect("test path");
        let node = &mut self.nodes[n];
        let Some(old) = node.files.remove(&path) else {
            return;
        };
        if let Some(entry) = self
            .written
            .iter_mut()
            .find(|(c, by_user)| *c == old && !*by_user)
        {
            entry.1 = true;
        }
        self.clock += 1;
        let version = node
            .index
            .get(&path)
            .map(|(l, _)| l.record.version.clone())
            .unwrap_or_default();
        let record = tombstone(path, version.incremented(node.short), self.clock);
        self.commit_local(n, record);
    }

    /// What the scanner does with a local change: index, sign, announce.
    fn commit_local(&mut self, n: usize, record: FileRecord) {
        let signed = SignedRecord::sign(&record, &self.key).expect("valid record");
        let path = record.path.clone();
        let node = &mut self.nodes[n];
        node.index.insert(
            path.clone(),
            (
                LocalEntry {
                    record,
                    local_only: false,
                },
                signed.clone(),
            ),
        );
        let index = &node.index;
        node.folder
            .handle_local_change(&path, &|p: &RelPath| index.get(p).map(|(l, _)| l.clone()));
        match &mut self.held {
            Some(held) => held.push(signed),
            None => self.broadcast(n, signed),
        }
    }

    /// A user on node `n` renames `from` to `to`; the scanner sees both sides in
    /// one scan and announces them together.
    pub(crate) fn rename(&mut self, n: usize, from: &str, to: &str) {
        let Some(content) = self.nodes[n]
            .files
            .get(&RelPath::new(from).expect("test path"))
            .cloned()
        else {
            return;
        };
        self.held = Some(Vec::new());
        self.delete(n, from);
        self.write(n, to, &content);
        let records = self.held.take().unwrap_or_default();
        for to in 0..self.nodes.len() {
            self.send(n, to, Message::Records(records.clone()));
        }
    }

    /// Delivers one message on every link and runs every node's actions. Returns
    /// whether anything happened.
    pub(crate) fn step(&mut self) -> bool {
        self.now += Duration::from_millis(10);
        self.steps += 1;
        let mut busy = false;
        let keys: Vec<(usize, usize)> = self.queues.keys().copied().collect();
        for (from, to) in keys {
            let Some(queue) = self.queues.get_mut(&(from, to)) else {
                continue;
            };
            busy |= !queue.is_empty();
            if queue.front().is_some_and(|(due, _)| *due <= self.steps)
                && let Some((_, message)) = queue.pop_front()
            {
                self.deliver(from, to, message);
            }
        }
        for n in 0..self.nodes.len() {
            busy |= self.run_actions(n);
        }
        busy
    }

    /// Steps until nothing moves (bounded).
    pub(crate) fn drive(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                // Let timeouts fire once in case something stalled.
                self.now += Duration::from_secs(10);
                for node in &mut self.nodes {
                    node.folder.handle_timeout(self.now);
                }
                if !(0..self.nodes.len()).any(|n| self.run_actions(n)) && !self.step() {
                    return;
                }
            }
        }
        panic!("the simulation did not settle");
    }

    fn deliver(&mut self, from: usize, to: usize, message: Message) {
        let peer = self.nodes[from].id;
        match message {
            Message::Records(records) => {
                let node = &mut self.nodes[to];
                let index = &node.index;
                let rejected = node.folder.handle_records(peer, records, &|p: &RelPath| {
                    index.get(p).map(|(l, _)| l.clone())
                });
                assert!(
                    rejected.is_empty(),
                    "honest peers send valid records: {rejected:?}"
                );
            }
            Message::Request(request) => {
                // Serve by hash from whatever file holds the block.
                let data = find_block(&self.nodes[to].files, &request.hash);
                self.send(to, from, Message::Response { request, data });
            }
            Message::Response { request, data } => {
                let node = &mut self.nodes[to];
                match data {
                    Some(bytes) if *blake3::hash(&bytes).as_bytes() == request.hash => {
                        let arrival = node.folder.handle_block(
                            &peer,
                            &request.path,
                            request.file_hash,
                            request.index,
                            self.now,
                        );
                        if arrival == Arrival::Accepted {
                            node.temps
                                .entry((request.path.clone(), request.file_hash))
                                .or_default()
                                .insert(request.index, bytes);
                        }
                    }
                    _ => node.folder.handle_bad_block(
                        &peer,
                        &request.path,
                        request.file_hash,
                        request.index,
                    ),
                }
            }
        }
    }

    fn run_actions(&mut self, n: usize) -> bool {
        let mut any = false;
        while let Some(action) = self.nodes[n].folder.poll_action(self.now) {
            any = true;
            self.apply(n, action);
        }
        any
    }

    fn apply(&mut self, n: usize, action: Action) {
        if std::env::var_os("SIM_TRACE").is_some() {
            let what = match &action {
                Action::Request(r) => format!("request {} #{}", r.path, r.index),
                Action::FindLocalBlocks { path, record } => {
                    format!("lookup {path} {:?}", record.version)
                }
                Action::Finalize { record, .. } => format!(
                    "finalize {} {:?} {}",
                    record.path, record.version, record.modified.secs
                ),
                Action::Delete { record, .. } => {
                    format!("delete {} {:?}", record.path, record.version)
                }
                Action::UpdateMetadata { record, .. } => format!(
                    "metadata {} {:?} del={}",
                    record.path, record.version, record.deleted
                ),
                Action::CreateDir { record, .. } | Action::CreateSymlink { record, .. } => {
                    format!("create {}", record.path)
                }
                Action::MoveAside { path, to } => format!("move aside {path} -> {to:?}"),
                Action::DiscardTemporary { path, .. } => format!("discard {path}"),
            };
            if !what.starts_with("request") {
                eprintln!("node{n}: {what}");
            }
        }
        match action {
            Action::Request(request) => {
                let to = self
                    .nodes
                    .iter()
                    .position(|node| node.id == request.peer)
                    .expect("known peer");
                self.send(n, to, Message::Request(request));
            }
            Action::DiscardTemporary { path, file_hash } => {
                self.nodes[n].temps.remove(&(path, file_hash));
            }
            Action::FindLocalBlocks { path, record } => {
                let node = &mut self.nodes[n];
                // Temporaries belong to one version; blocks already in it stay.
                let temp = node.temps.entry((path.clone(), record.hash)).or_default();
                let mut present = Vec::new();
                for (i, block) in record.blocks.iter().enumerate() {
                    if let Some(bytes) = find_block(&node.files, &block.hash) {
                        temp.insert(i, bytes);
                        present.push(i);
                    }
                }
                node.folder
                    .handle_local_blocks(&path, record.hash, &present);
            }
            Action::Finalize { signed, record } => {
                let node = &mut self.nodes[n];
                let parts = node
                    .temps
                    .remove(&(record.path.clone(), record.hash))
                    .unwrap_or_default();
                let content: Vec<u8> = parts.into_values().flatten().collect();
                assert_eq!(
                    *blake3::hash(&content).as_bytes(),
                    record.hash,
                    "assembled file matches"
                );
                if let Some(old) = node.files.insert(record.path.clone(), content) {
                    node.archive.push(old);
                }
                self.store_applied(n, record, signed);
            }
            Action::Delete { signed, record } => {
                let node = &mut self.nodes[n];
                if let Some(old) = node.files.remove(&record.path) {
                    node.archive.push(old);
                }
                self.store_applied(n, record, signed);
            }
            Action::UpdateMetadata { signed, record }
            | Action::CreateDir { signed, record }
            | Action::CreateSymlink { signed, record } => {
                self.store_applied(n, record, signed);
            }
            Action::MoveAside { path, to } => {
                let node = &mut self.nodes[n];
                let moved_time = node
                    .index
                    .remove(&path)
                    .map(|(l, _)| l.record.modified)
                    .unwrap_or_default();
                let content = node.files.remove(&path);
                match (to, content) {
                    // Never overwrite: a name already taken sends the loser to the
                    // archive (the real shell does the same).
                    (LoserFate::ConflictCopy(copy), Some(content))
                        if !node.files.contains_key(&copy) =>
                    {
                        node.files.insert(copy.clone(), content.clone());
                        // The scanner finds the copy and indexes it as a new file; a
                        // move keeps the modification time.
                        let record = FileRecord {
                            path: copy,
                            kind: FileKind::File,
                            size: content.len() as u64,
                            modified: moved_time,
                            mode: 0o644,
                            version: VersionVector::new().incremented(node.short),
                            deleted: false,
                            blocks: blocks_of(&content),
                            hash: *blake3::hash(&content).as_bytes(),
                        };
                        self.commit_local(n, record);
                    }
                    (_, Some(content)) => node.archive.push(content),
                    (_, None) => {}
                }
                let node = &mut self.nodes[n];
                let index = &node.index;
                node.folder
                    .handle_moved_aside(&path, &|p: &RelPath| index.get(p).map(|(l, _)| l.clone()));
            }
        }
    }

    fn store_applied(&mut self, n: usize, record: FileRecord, signed: SignedRecord) {
        let node = &mut self.nodes[n];
        node.index.insert(
            record.path.clone(),
            (
                LocalEntry {
                    record: record.clone(),
                    local_only: false,
                },
                signed.clone(),
            ),
        );
        let index = &node.index;
        node.folder
            .handle_applied(&record, &|p: &RelPath| index.get(p).map(|(l, _)| l.clone()));
        // Forward what we accepted, so A → B → C works when A and C never meet.
        self.broadcast(n, signed);
    }

    /// Whether every node holds the same files and has nothing left to do.
    pub(crate) fn converged(&self) -> bool {
        let first = &self.nodes[0].files;
        self.nodes
            .iter()
            .all(|n| n.files == *first && n.folder.is_idle())
    }

    /// Contents written by users and not removed by those users themselves that no
    /// node holds as a file or in its archive.
    pub(crate) fn lost(&self) -> Vec<Vec<u8>> {
        self.written
            .iter()
            .filter(|(_, by_user)| !by_user)
            .map(|(c, _)| c.clone())
            .filter(|c| {
                !self
                    .nodes
                    .iter()
                    .any(|n| n.files.values().any(|f| f == c) || n.archive.contains(c))
            })
            .collect()
    }
}

fn tombstone(path: RelPath, version: VersionVector, secs: i64) -> FileRecord {
    FileRecord {
        path,
        kind: FileKind::File,
        size: 0,
        modified: Timestamp { secs, nanos: 0 },
        mode: 0o644,
        version,
        deleted: true,
        blocks: Vec::new(),
        hash: [0; 32],
    }
}

fn find_block(files: &BTreeMap<RelPath, Vec<u8>>, hash: &[u8; 32]) -> Option<Vec<u8>> {
    files.values().find_map(|content| {
        content
            .chunks(BLOCK)
            .find(|c| blake3::hash(c).as_bytes() == hash)
            .map(<[u8]>::to_vec)
    })
}

#[cfg(test)]
mod tests;
