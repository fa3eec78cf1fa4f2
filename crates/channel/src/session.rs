//! The established channel: a secure, ordered byte stream in both directions.

use std::fmt;

use keys::{Access, FolderId, PeerId};

use crate::proof::PeerAccess;
use crate::record::{Receiver, Sender};
use crate::{AbortCode, ChannelError, Role};

/// What the handshake established.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The peer's id (from its hello; authenticated by the transcript).
    pub peer_id: PeerId,
    /// The folder this channel is for.
    pub folder_id: FolderId,
    /// The protocol version agreed.
    pub version: u16,
    /// Our SRP role.
    pub role: Role,
    /// Our own access level.
    pub local_access: Access,
    /// The peer's access level, as verified and as claimed.
    pub peer_access: PeerAccess,
    /// SHA-256 of the handshake transcript: unique to this session, usable as a
    /// channel binding by the layers above.
    pub transcript_hash: [u8; 32],
}

/// An established channel, sans-IO.
///
/// * Send: [`Session::encrypt`] queues records; [`Session::poll_output`] (or
///   [`Session::pending_output`] + [`Session::consume_output`]) hands them over in
///   order. Key updates are inserted by themselves. [`Session::close`] queues the
///   authenticated close; nothing can be sent after it.
/// * Receive: feed bytes to [`Session::handle_input`] (any split), or read them
///   straight into [`Session::input_buffer`] and [`Session::commit_input`] them;
///   then take the plaintext with [`Session::poll_plaintext`] or
///   [`Session::read_plaintext`].
///   At the end of the stream call [`Session::handle_eof`]: without the peer's
///   close first, that is [`ChannelError::Truncated`].
///
/// Received plaintext stays buffered until it is read: feed input only as fast as
/// the plaintext is consumed (the tokio adapter reads only when the buffer is
/// empty), or memory grows with it.
///
/// After any error the session is dead: buffered plaintext is discarded, every
/// later call fails with [`ChannelError::Failed`], and at most a close record
/// telling the peer why remains to be sent (poll the output once more).
pub struct Session {
    info: SessionInfo,
    pub(crate) send: Sender,
    pub(crate) recv: Receiver,
    out: Vec<u8>,
    out_pos: usize,
    failed: bool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.info)
            .field("send", &self.send.dir.position())
            .field("recv", &self.recv.dir.position())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(info: SessionInfo, send: Sender, recv: Receiver, out: Vec<u8>) -> Self {
        Self {
            info,
            send,
            recv,
            out,
            out_pos: 0,
            failed: false,
        }
    }

    /// What the handshake established.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The peer's verified access level: what to trust it with.
    pub fn peer_access(&self) -> Access {
        self.info.peer_access.verified
    }

    /// The peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.info.peer_id
    }

    /// Queues `plaintext` as data records (up to 64 KiB each).
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<(), ChannelError> {
        if self.failed {
            return Err(ChannelError::Failed);
        }
        self.send.data(plaintext, &mut self.out)
    }

    /// [`encrypt`](Self::encrypt) of the concatenation of `parts`, each byte
    /// copied once (into its record).
    pub fn encrypt_gathered(&mut self, parts: &[&[u8]]) -> Result<(), ChannelError> {
        if self.failed {
            return Err(ChannelError::Failed);
        }
        self.send.data_gathered(parts, &mut self.out)
    }

    /// Queues the authenticated close: we send nothing more. The peer may still
    /// send until it closes too.
    pub fn close(&mut self) -> Result<(), ChannelError> {
        if self.failed {
            return Err(ChannelError::Failed);
        }
        if self.send.is_closed() {
            return Ok(());
        }
        self.send.close(0, &mut self.out)
    }

    /// Whether we have queued our close.
    pub fn is_closed(&self) -> bool {
        self.send.is_closed()
    }

    /// Feeds bytes received from the peer.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        if self.failed {
            return Err(ChannelError::Failed);
        }
        let result = self.recv.handle_input(bytes);
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// Space to read at least `min` bytes from the transport into directly, saving
    /// the copy [`Session::handle_input`] makes; report them with
    /// [`Session::commit_input`]. Empty once the session has failed.
    pub fn input_buffer(&mut self, min: usize) -> &mut [u8] {
        if self.failed {
            return &mut [];
        }
        self.recv.input_buffer(min)
    }

    /// The first `n` bytes of [`Session::input_buffer`] now hold bytes from the
    /// peer: processes them like [`Session::handle_input`].
    pub fn commit_input(&mut self, n: usize) -> Result<(), ChannelError> {
        if self.failed {
            return Err(ChannelError::Failed);
        }
        let result = self.recv.commit_input(n);
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// The peer's stream ended. Fine after its authenticated close; otherwise the
    /// stream was cut: [`ChannelError::Truncated`].
    pub fn handle_eof(&mut self) -> Result<(), ChannelError> {
        if self.failed {
            return Err(ChannelError::Failed);
        }
        if self.recv.is_closed() {
            return Ok(());
        }
        let e = ChannelError::Truncated;
        self.fail(&e);
        Err(e)
    }

    fn fail(&mut self, e: &ChannelError) {
        self.failed = true;
        self.recv.fail();
        if let Some(code) = AbortCode::for_error(e)
            && !self.send.is_closed()
        {
            let _ = self.send.close(code.to_byte(), &mut self.out);
        }
    }

    /// Whether the peer has closed its direction (authenticated).
    pub fn is_peer_closed(&self) -> bool {
        self.recv.is_closed()
    }

    /// Whether the session has failed.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// All authenticated plaintext received and not yet read.
    pub fn poll_plaintext(&mut self) -> Option<Vec<u8>> {
        if self.failed { None } else { self.recv.take() }
    }

    /// Copies received plaintext into `buf`; returns the number of bytes.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> usize {
        if self.failed { 0 } else { self.recv.read(buf) }
    }

    /// Received plaintext ready to read, in place: the next record's payload,
    /// or what is left of it (empty when there is none). Mark what was used
    /// with [`consume_plaintext`](Self::consume_plaintext).
    pub fn plaintext(&self) -> &[u8] {
        if self.failed {
            &[]
        } else {
            self.recv.plaintext()
        }
    }

    /// Marks the first `n` bytes of [`plaintext`](Self::plaintext) read.
    pub fn consume_plaintext(&mut self, n: usize) {
        if !self.failed {
            self.recv.consume(n);
        }
    }

    /// Bytes of received plaintext ready to read.
    pub fn plaintext_len(&self) -> usize {
        if self.failed {
            0
        } else {
            self.recv.available()
        }
    }

    /// Records to send, if any.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            return None;
        }
        let mut all = std::mem::take(&mut self.out);
        all.drain(..self.out_pos);
        self.out_pos = 0;
        Some(all)
    }

    /// Records to send, without taking them; see [`Session::consume_output`].
    pub fn pending_output(&self) -> &[u8] {
        self.out.get(self.out_pos..).unwrap_or(&[])
    }

    /// Marks the first `n` bytes of [`Session::pending_output`] as sent.
    pub fn consume_output(&mut self, n: usize) {
        self.out_pos = self.out_pos.saturating_add(n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// (key epoch, records under the current key) for our sending direction.
    pub fn send_position(&self) -> (u64, u64) {
        self.send.dir.position()
    }

    /// (key epoch, records under the current key) for the receiving direction.
    pub fn recv_position(&self) -> (u64, u64) {
        self.recv.dir.position()
    }

    /// Test hook: the (traffic secret, nonce) the next sent record will use.
    #[cfg(test)]
    pub(crate) fn peek_send_nonce(&self) -> ([u8; 32], [u8; 12]) {
        self.send.dir.peek_nonce()
    }
}
