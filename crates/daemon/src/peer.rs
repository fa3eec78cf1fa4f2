//! The two tasks of one peer connection: a reader that decodes wire frames from
//! the secure stream and hands them to the folder, and a writer that encodes what
//! the folder sends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use keys::{Access, PeerId, RoKey};
use record::{KnownRecords, SignedRecord, VerifiedRecord};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use wire::{Close, CloseCode, FrameDecoder, IndexBatch, Message};

use crate::folder::FolderEvent;
use crate::pex::PexInbound;

/// What the folder holds of a connected peer: where to send, and how many bytes
/// wait unsent (the folder refuses to queue more than a bound, so a peer that
/// asks without reading cannot fill our memory).
#[derive(Debug, Clone)]
pub(crate) struct PeerLink {
    pub(crate) tx: mpsc::UnboundedSender<Message>,
    pub(crate) queue: Arc<SendQueue>,
    pub(crate) access: Access,
    pub(crate) remote: std::net::SocketAddr,
    /// The discovery source that found it, or "incoming".
    pub(crate) source: &'static str,
    /// What carries the channel.
    pub(crate) carrier: net::CarrierKind,
    /// Tells this channel from an earlier or later one to the same peer.
    pub(crate) generation: u64,
    /// Notified once Hello and FolderState are queued: anything else sent on
    /// the channel (peer exchange) waits for it, as Hello comes first.
    pub(crate) greeted: Arc<tokio::sync::Notify>,
}

impl PeerLink {
    /// Queues `message`; false if the writer is gone.
    pub(crate) fn send(&self, message: Message) -> bool {
        let len = message_cost(&message);
        self.queue.bytes.fetch_add(len, Ordering::Relaxed);
        self.tx.send(message).is_ok()
    }

    pub(crate) fn queued_bytes(&self) -> u64 {
        self.queue.bytes.load(Ordering::Relaxed)
    }

    /// Asks the writer for a [`FolderEvent::Drained`] once the queue is down
    /// to [`DRAINED_BYTES`]; true if it already is (then no event comes).
    pub(crate) fn wake_when_drained(&self) -> bool {
        self.queue.wake_wanted.store(true, Ordering::SeqCst);
        // The writer may have drained the queue before it could see the flag.
        if self.queue.bytes.load(Ordering::SeqCst) <= DRAINED_BYTES {
            self.queue.wake_wanted.store(false, Ordering::SeqCst);
            return true;
        }
        false
    }
}

/// What a connection's writer shares with the folder thread.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    /// Bytes queued and not yet written (see `message_cost`).
    bytes: AtomicU64,
    /// Set while the folder holds requests back until the queue drains.
    wake_wanted: AtomicBool,
}

/// Queued bytes at which a writer wakes a folder that holds requests back: half
/// of what the folder keeps queued, so the next blocks are read while the
/// writer still has the other half to send.
pub(crate) const DRAINED_BYTES: u64 = 1 << 20;

/// Bytes a message is counted for in the send queue.
fn message_cost(message: &Message) -> u64 {
    match message {
        Message::Response(r) => r
            .result
            .as_ref()
            .map_or(16, |b| b.as_bytes().len() as u64 + 16),
        Message::Index(b) | Message::IndexUpdate(b) => b.frame_len() as u64,
        Message::IndexDelta(d) => d.payload_len() as u64,
        Message::Record(r) => r.record.as_ref().map_or(64, |r| r.wire_len() as u64),
        Message::DeltaRequest(r) => r.sums.wire_len() as u64 + 64,
        Message::DeltaResponse(r) => r.wire_len() as u64 + 16,
        _ => 64,
    }
}

/// Most bytes of one peer's decoded messages waiting for the folder thread: a
/// peer that sends faster than the folder handles is slowed by its own TCP
/// window, and memory is bounded by bytes, not by a count of 16 MiB frames.
/// What waits in the socket's buffer (megabytes, tuned by the kernel) is not
/// held here: this only has to keep the folder thread fed while the next block
/// is decrypted and hashed. 32 MiB raised a receiving peer's peak RSS to about
/// 90 MB for 1 GiB over loopback, 8 MiB to ~32 MB for 256 MiB, 2 MiB ~22 MB, at
/// the same speed. Index batches waiting in the ordered lane have a second
/// budget of this size, so that blocks keep flowing while they are checked.
const MAX_INBOUND_BYTES: usize = 2 << 20;

/// The cost in permits (KiB) of a message held for the folder.
fn inbound_permits(message: &Message) -> u32 {
    let bytes = match message {
        Message::Index(b) | Message::IndexUpdate(b) => b.frame_len(),
        Message::Response(r) => r.result.as_ref().map_or(0, |b| b.as_bytes().len()),
        Message::IndexDelta(d) => d.payload_len(),
        Message::Record(r) => r.record.as_ref().map_or(0, wire::SignedRecord::wire_len),
        // Up to 128 KiB of bits. Counted as one permit each, a budget's 2,048
        // permits let a peer park ~270 MB of them for the folder.
        Message::Availability(a) => a.path.len() + a.bits.len().div_ceil(8),
        Message::DeltaRequest(r) => r.sums.wire_len(),
        Message::DeltaResponse(r) => r.wire_len(),
        _ => 0,
    };
    u32::try_from(bytes / 1024 + 1).unwrap_or(u32::MAX)
}

/// What the reading side does itself rather than hand to the folder thread.
pub(crate) struct Inbound {
    /// Takes in the peer's PeerExchange (none when PEX is off).
    pub(crate) pex: Option<PexInbound>,
    /// Checks the signatures of index batches.
    pub(crate) verifier: RoKey,
    /// Records known to be valid, whose check is skipped.
    pub(crate) known: Arc<KnownRecords>,
}

/// Runs one connection until either side ends it, then tells the folder.
pub(crate) async fn run<S>(
    stream: S,
    peer: PeerId,
    generation: u64,
    link_rx: mpsc::UnboundedReceiver<Message>,
    queue: Arc<SendQueue>,
    events: mpsc::Sender<FolderEvent>,
    inbound: Inbound,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let (close_tx, close_rx) = tokio::sync::oneshot::channel();
    let drained = Drained {
        queue,
        events: events.clone(),
        peer,
    };
    let mut write = tokio::spawn(write_loop(writer, link_rx, drained, close_rx));
    let Inbound {
        pex,
        verifier,
        known,
    } = inbound;
    let (lane_tx, lane_rx) = mpsc::unbounded_channel();
    let checker = Checker {
        peer,
        key: verifier,
        known,
        events: events.clone(),
    };
    let lane = tokio::spawn(ordered_lane(lane_rx, checker));
    let read = read_loop(reader, peer, &events, pex, lane_tx).await;
    // What the peer sent in order before it left is still taken in (its
    // sender is gone with `read_loop`); after a fault, nothing more is.
    if read.is_err() {
        lane.abort();
    }
    let _ = lane.await;
    match read {
        Ok(Ended::Eof) => tracing::info!(peer = %peer, "peer closed the connection"),
        // The peer said goodbye and why: nothing to answer (wire.md §7).
        Ok(Ended::Closed(close)) => tracing::info!(
            peer = %peer,
            code = ?close.code,
            reason = %close.message,
            "peer closed the connection"
        ),
        Err(e) => {
            tracing::info!(peer = %peer, error = %e, "connection ended");
            // Tell the peer why (wire.md §7), then give up on it.
            let _ = close_tx.send(Close::new(CloseCode::ProtocolViolation, &e));
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), &mut write).await;
        }
    }
    write.abort();
    let _ = events
        .send(FolderEvent::PeerDown { peer, generation })
        .await;
}

/// How a connection's reading side ended without a fault of the peer.
enum Ended {
    /// The stream ended (or the folder stopped listening).
    Eof,
    /// The peer sent Close.
    Closed(Close),
}

/// What waits in a connection's ordered lane.
enum Ordered {
    /// An index batch, its signatures still to be checked.
    Batch(IndexBatch, OwnedSemaphorePermit),
    /// A message that must not overtake the batches before it.
    Event(FolderEvent),
}

/// Whether `message` must reach the folder after the index batches received
/// before it: it refers to records they carry (a delta applies to the version
/// before it; availability is of a version the folder must know).
fn follows_index(message: &Message) -> bool {
    matches!(
        message,
        Message::Index(_)
            | Message::IndexUpdate(_)
            | Message::IndexDelta(_)
            | Message::Record(_)
            | Message::Availability(_)
    )
}

/// Checks index batches and passes them, and what follows them, to the
/// folder in the order received. It runs beside the reader, so that blocks
/// (asked for by records already handed over) are not held up behind the
/// signatures of the next batches: a joining device's first index is
/// thousands of records, ~0.3 s of checking on two cores, and its first
/// blocks waited for all of it.
async fn ordered_lane(mut lane: mpsc::UnboundedReceiver<Ordered>, checker: Checker) {
    while let Some(item) = lane.recv().await {
        let sent = match item {
            Ordered::Batch(batch, permit) => checker.check_and_send(batch, permit).await,
            Ordered::Event(event) => checker.events.send(event).await.is_ok(),
        };
        if !sent {
            return;
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: R,
    peer: PeerId,
    events: &mpsc::Sender<FolderEvent>,
    mut pex: Option<PexInbound>,
    lane: mpsc::UnboundedSender<Ordered>,
) -> Result<Ended, String> {
    let mut decoder = FrameDecoder::new();
    let budget = Arc::new(Semaphore::new(MAX_INBOUND_BYTES / 1024));
    // Index batches have a budget of their own: blocks still flow while the
    // lane is full of records to check.
    let ordered_budget = Arc::new(Semaphore::new(MAX_INBOUND_BYTES / 1024));
    loop {
        while let Some(message) = decoder.poll_message() {
            match message {
                Ok(Message::Close(close)) => return Ok(Ended::Closed(close)),
                // Peer exchange is the network's business, not the folder's.
                Ok(Message::PeerExchange(exchange)) => {
                    if let Some(pex) = pex.as_mut() {
                        pex.receive(&exchange);
                    }
                }
                Ok(message) => {
                    let permits = inbound_permits(&message).min(MAX_INBOUND_BYTES as u32 / 1024);
                    // A block is hashed here, not on the folder thread, which
                    // has the writes to do; and before waiting for room, so
                    // that the hashing overlaps those writes.
                    let message = match message {
                        Message::Response(wire::Response {
                            request_id,
                            result: Ok(block),
                        }) => Ok((request_id, crate::folder::hashed(block.into_bytes()))),
                        message => Err(message),
                    };
                    let ordered = message.as_ref().is_err_and(follows_index);
                    let from = if ordered { &ordered_budget } else { &budget };
                    let Ok(permit) = from.clone().acquire_many_owned(permits).await else {
                        return Ok(Ended::Eof);
                    };
                    let event = match message {
                        Ok((request_id, (data, hash))) => FolderEvent::Block {
                            peer,
                            request_id,
                            data,
                            hash,
                            _budget: permit,
                        },
                        Err(Message::Index(batch) | Message::IndexUpdate(batch)) => {
                            if lane.send(Ordered::Batch(batch, permit)).is_err() {
                                return Ok(Ended::Eof);
                            }
                            continue;
                        }
                        Err(message) => FolderEvent::Message {
                            peer,
                            message,
                            _budget: permit,
                        },
                    };
                    let sent = if ordered {
                        lane.send(Ordered::Event(event)).is_ok()
                    } else {
                        events.send(event).await.is_ok()
                    };
                    if !sent {
                        return Ok(Ended::Eof);
                    }
                }
                Err(e) if e.is_skippable() => {
                    tracing::debug!(peer = %peer, error = %e, "skipped a message of an unknown type");
                }
                Err(e) => return Err(format!("protocol violation: {e}")),
            }
        }
        if decoder.is_failed() {
            return Err("protocol violation: undecodable stream".into());
        }
        // Straight into the frame's own buffer: no copy on the way.
        let n = reader
            .read_buf(&mut decoder.spare())
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(Ended::Eof);
        }
    }
}

/// Batches with more records than this are verified on a blocking thread;
/// smaller ones cost less than the hand-over.
const VERIFY_INLINE: usize = 16;

/// Records verified and handed to the folder at a time: the folder starts on
/// the first ones while the rest are checked (a whole 1 MiB batch of small
/// files' records is ~4,000 signatures, ~0.1 s in batches on this machine
/// before the first request).
const VERIFY_CHUNK: usize = 256;

/// The records of an index batch, as the engine takes them.
fn signed_records(batch: IndexBatch) -> Vec<SignedRecord> {
    batch
        .into_entries()
        .into_iter()
        .map(|e| {
            let (body, signature) = e.record.into_parts();
            SignedRecord::from_parts(body.to_vec(), signature)
        })
        .collect()
}

/// Checks the signatures of index batches off the folder thread (and, for a
/// large batch, off the runtime's workers too).
struct Checker {
    peer: PeerId,
    key: RoKey,
    known: Arc<KnownRecords>,
    events: mpsc::Sender<FolderEvent>,
}

impl Checker {
    /// Verifies `batch` in chunks, each sent to the folder as soon as it is
    /// checked; the batch's last sequence goes with the last chunk only (the
    /// peer's progress is stored when the whole batch is in). Up to
    /// [`verify_threads`] chunks are checked at once, and sent in order. False
    /// when the folder or the runtime is going away.
    async fn check_and_send(&self, batch: IndexBatch, budget: OwnedSemaphorePermit) -> bool {
        let (index_id, last) = (batch.index_id(), batch.last_sequence());
        let mut records = signed_records(batch);
        if records.len() <= VERIFY_INLINE {
            let (good, bad) = check_records(records, &self.key, &self.known);
            return self.send(index_id, last, good, bad, budget).await;
        }
        // Each chunk holds its share of the batch's budget until the folder is
        // done with it; the last one holds what is left.
        let share = budget.num_permits() / records.len().div_ceil(VERIFY_CHUNK).max(1);
        let mut budget = Some(budget);
        let mut checking = VecDeque::new();
        loop {
            while checking.len() < verify_threads() && !records.is_empty() {
                let rest = records.split_off(records.len().min(VERIFY_CHUNK));
                let chunk = std::mem::replace(&mut records, rest);
                let (key, known) = (self.key.clone(), self.known.clone());
                checking.push_back(tokio::task::spawn_blocking(move || {
                    check_records(chunk, &key, &known)
                }));
            }
            let Some(next) = checking.pop_front() else {
                return true;
            };
            let Ok((good, bad)) = next.await else {
                return false;
            };
            let final_chunk = records.is_empty() && checking.is_empty();
            let permit = if final_chunk {
                budget.take()
            } else {
                budget.as_mut().and_then(|b| b.split(share))
            };
            let Some(permit) = permit else {
                return false;
            };
            let last = last.filter(|_| final_chunk);
            if !self.send(index_id, last, good, bad, permit).await {
                return false;
            }
        }
    }

    async fn send(
        &self,
        index_id: u64,
        last: Option<u64>,
        records: Vec<VerifiedRecord>,
        rejected: Vec<record::RecordError>,
        budget: OwnedSemaphorePermit,
    ) -> bool {
        let event = FolderEvent::Records {
            peer: self.peer,
            index_id,
            last,
            records,
            rejected,
            _budget: budget,
        };
        self.events.send(event).await.is_ok()
    }
}

/// The records whose signature holds, and why the others were refused.
fn check_records(
    records: Vec<SignedRecord>,
    key: &RoKey,
    known: &KnownRecords,
) -> (Vec<VerifiedRecord>, Vec<record::RecordError>) {
    let mut good = Vec::with_capacity(records.len());
    let mut bad = Vec::new();
    for checked in record::verify_records(records, key, known) {
        match checked {
            Ok(v) => good.push(v),
            Err(e) => bad.push(e),
        }
    }
    (good, bad)
}

/// Chunks of one batch checked at once: one per core, at most 4 (a joining
/// device's first batches were one core verifying while the folder waited).
fn verify_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)))
}

/// Writes `messages` as frames in one gathered write: headers and small
/// messages are encoded into `head`, blocks are sent from where they are (the
/// channel copies each byte once, into its record).
async fn write_gathered<W: AsyncWrite + Unpin>(
    writer: &mut W,
    messages: &[Message],
    head: &mut Vec<u8>,
) -> std::io::Result<()> {
    head.clear();
    // Where in `head` each block's bytes go.
    let mut cuts: Vec<(usize, &[u8])> = Vec::new();
    for message in messages {
        if let Some(tail) = message.encode_split(head) {
            cuts.push((head.len(), tail));
        }
    }
    let mut slices: Vec<std::io::IoSlice<'_>> = Vec::with_capacity(2 * cuts.len() + 1);
    let mut from = 0;
    for (end, tail) in cuts {
        slices.push(std::io::IoSlice::new(
            head.get(from..end).unwrap_or_default(),
        ));
        slices.push(std::io::IoSlice::new(tail));
        from = end;
    }
    if from < head.len() {
        slices.push(std::io::IoSlice::new(head.get(from..).unwrap_or_default()));
    }
    let mut rest: &mut [std::io::IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        let n = writer.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        std::io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// How a writer tells the folder that its queue has room again.
struct Drained {
    queue: Arc<SendQueue>,
    events: mpsc::Sender<FolderEvent>,
    peer: PeerId,
}

impl Drained {
    /// Counts `cost` bytes as written, and wakes the folder if it asked to be.
    fn written(&self, cost: u64) {
        let bytes = &self.queue.bytes;
        // SeqCst with `wake_when_drained`: either the folder sees the bytes gone
        // or this sees its flag.
        let left = bytes.fetch_sub(cost.min(bytes.load(Ordering::Relaxed)), Ordering::SeqCst);
        if left.saturating_sub(cost) <= DRAINED_BYTES
            && self.queue.wake_wanted.swap(false, Ordering::SeqCst)
        {
            // A full event queue needs no wake-up: the folder looks at what it
            // held back after every batch of events.
            let _ = self
                .events
                .try_send(FolderEvent::Drained { peer: self.peer });
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Message>,
    drained: Drained,
    mut close: tokio::sync::oneshot::Receiver<Close>,
) {
    let mut out = Vec::with_capacity(1 << 20);
    let mut batch: Vec<Message> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            reason = &mut close => {
                if let Ok(reason) = reason {
                    out.clear();
                    Message::Close(reason).encode(&mut out);
                    let _ = writer.write_all(&out).await;
                    let _ = writer.shutdown().await;
                }
                return;
            }
            message = rx.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        // Coalesce what is already waiting into one write, up to a MiB (and one
        // message: a block may be larger).
        let mut cost = message_cost(&first);
        batch.clear();
        batch.push(first);
        while cost < 1 << 20 {
            match rx.try_recv() {
                Ok(next) => {
                    cost += message_cost(&next);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        if write_gathered(&mut writer, &batch, &mut out).await.is_err()
            || writer.flush().await.is_err()
        {
            return;
        }
        drained.written(cost);
    }
    let mut bye = Vec::new();
    Message::Close(Close::new(CloseCode::Normal, "shutting down")).encode(&mut bye);
    let _ = writer.write_all(&bye).await;
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_and_writer() -> (PeerLink, Drained, mpsc::Receiver<FolderEvent>) {
        let (tx, _rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::channel(4);
        let queue = Arc::new(SendQueue::default());
        let peer = PeerId([7; keys::PEER_ID_LEN]);
        let link = PeerLink {
            tx,
            queue: queue.clone(),
            access: Access::ReadWrite,
            remote: "127.0.0.1:1".parse().expect("an address"),
            source: "test",
            carrier: net::CarrierKind::Tcp,
            generation: 1,
            greeted: Arc::new(tokio::sync::Notify::new()),
        };
        let writer = Drained {
            queue,
            events,
            peer,
        };
        (link, writer, events_rx)
    }

    #[test]
    fn a_folder_waiting_for_room_is_woken_once_the_queue_drains() {
        let (link, writer, mut events) = link_and_writer();
        let step = DRAINED_BYTES;
        link.queue.bytes.store(3 * step, Ordering::SeqCst);
        assert!(
            !link.wake_when_drained(),
            "three times the mark is not drained"
        );
        writer.written(step);
        assert!(
            events.try_recv().is_err(),
            "twice the mark left: no wake-up yet"
        );
        writer.written(step);
        assert!(matches!(
            events.try_recv(),
            Ok(FolderEvent::Drained { peer }) if peer == writer.peer
        ));
        // Once: a later drain wakes no one who did not ask again.
        writer.written(step / 2);
        assert!(events.try_recv().is_err());
        assert_eq!(link.queued_bytes(), step / 2);
    }

    #[test]
    fn a_queue_already_drained_is_reported_at_once_and_sends_no_event() {
        let (link, writer, mut events) = link_and_writer();
        link.queue.bytes.store(DRAINED_BYTES, Ordering::SeqCst);
        assert!(link.wake_when_drained());
        writer.written(1 << 20);
        assert!(events.try_recv().is_err());
    }

    /// The lane is never drained here, as if the checker were busy with the
    /// batch's signatures: the block behind the batch still reaches the
    /// folder, and what refers to the batch's records waits behind it.
    #[tokio::test]
    async fn blocks_overtake_a_batch_being_checked_and_index_messages_do_not() {
        let mut stream = Vec::new();
        Message::Index(IndexBatch::new(1)).encode(&mut stream);
        let block = wire::Block::new(vec![9u8; 1000]).expect("a block");
        Message::Response(wire::Response {
            request_id: 5,
            result: Ok(block),
        })
        .encode(&mut stream);
        Message::IndexUpdate(IndexBatch::new(1)).encode(&mut stream);
        let peer = PeerId([7; keys::PEER_ID_LEN]);
        let (events, mut events_rx) = mpsc::channel(4);
        let (lane, mut lane_rx) = mpsc::unbounded_channel();
        let ended = read_loop(stream.as_slice(), peer, &events, None, lane).await;
        assert!(matches!(ended, Ok(Ended::Eof)));
        assert!(matches!(
            events_rx.try_recv(),
            Ok(FolderEvent::Block { request_id: 5, ref data, .. }) if data[..] == [9u8; 1000][..]
        ));
        assert!(events_rx.try_recv().is_err());
        assert!(matches!(lane_rx.try_recv(), Ok(Ordered::Batch(..))));
        assert!(matches!(lane_rx.try_recv(), Ok(Ordered::Batch(..))));
        assert!(lane_rx.try_recv().is_err());
    }

    #[test]
    fn availability_costs_its_bits() {
        let availability = |bits| {
            Message::Availability(wire::Availability {
                path: wire::Text::new("a/b").expect("a path"),
                file_hash: [0; 32],
                first_block: 0,
                bits: wire::Bitfield::new(bits).expect("bits"),
            })
        };
        assert_eq!(inbound_permits(&availability(8)), 1);
        let most = availability(wire::MAX_AVAILABILITY_BITS);
        assert_eq!(inbound_permits(&most), 129);
    }
}
