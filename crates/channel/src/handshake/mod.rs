//! The handshake state machine: hello, SRP-6a, keys, access proofs.
//!
//! One state per step (rustls style); a message that does not fit the state is a
//! [`Violation::UnexpectedMessage`]. See `docs/protocol/channel.md` for the bytes.

pub(crate) mod msg;

use std::fmt;
use std::time::Instant;

use hkdf::Hkdf;
use keys::{FolderId, PeerId};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use self::msg::{Hello, NONCE_LEN, kind};
use crate::config::{ChannelConfig, FolderCredentials};
use crate::proof::{self, PeerAccess};
use crate::record::{Direction, Receiver, Sender};
use crate::session::{Session, SessionInfo};
use crate::srp::{self, ClientVerifier, EPHEMERAL_LEN, PROOF_LEN, ServerVerifier};
use crate::{AbortCode, ChannelError, RandomSource, Violation};

/// The protocol versions this implementation speaks (inclusive).
pub const SUPPORTED_VERSIONS: (u16, u16) = (1, 1);

/// Which SRP part a side plays. Decided from the hellos, never from who dialed:
/// the side with the lower peer id (compared as bytes) is the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The SRP client: sends A and M1.
    Client,
    /// The SRP server: sends B and M2.
    Server,
}

impl Role {
    /// The byte that names this role in access proofs (1 client, 2 server).
    pub const fn to_byte(self) -> u8 {
        match self {
            Self::Client => 1,
            Self::Server => 2,
        }
    }

    /// The other role.
    pub const fn peer(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }

    /// The role of the side with `ours` when the other side has `theirs`.
    pub fn decide(ours: &PeerId, theirs: &PeerId) -> Self {
        if ours < theirs {
            Self::Client
        } else {
            Self::Server
        }
    }
}

/// What the hellos settled.
struct Negotiated {
    role: Role,
    version: u16,
    creds: FolderCredentials,
    peer_id: PeerId,
    client_hello: Vec<u8>,
    server_hello: Vec<u8>,
}

/// The SRP messages exactly as sent, for the transcript.
#[derive(Default)]
struct SrpMessages {
    a: Vec<u8>,
    b: Vec<u8>,
    m1: Vec<u8>,
    m2: Vec<u8>,
}

/// The record layer, running once the keys are up.
struct Keys {
    send: Sender,
    recv: Receiver,
    transcript_hash: [u8; 32],
}

enum State {
    AwaitHello,
    ClientAwaitB,
    ClientAwaitM2(Box<ClientVerifier>),
    ServerAwaitA,
    ServerAwaitM1(Box<ServerVerifier>),
    AwaitProof(Box<Keys>),
    Done(Box<Keys>, PeerAccess),
    Taken,
    Failed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::AwaitHello => "awaiting the hello",
            Self::ClientAwaitB => "awaiting SRP B",
            Self::ClientAwaitM2(_) => "awaiting the server's SRP proof",
            Self::ServerAwaitA => "awaiting SRP A",
            Self::ServerAwaitM1(_) => "awaiting the client's SRP proof",
            Self::AwaitProof(_) => "awaiting the access proof",
            Self::Done(..) => "established",
            Self::Taken => "handed over",
            Self::Failed => "failed",
        }
    }
}

/// One side of a channel handshake, sans-IO.
///
/// # Driving it
///
/// 1. [`Handshake::new`]; then send everything [`Handshake::poll_output`] yields
///    (the hello, unless this side serves several folders and waits for the
///    peer's hello to pick one).
/// 2. Repeat: feed bytes from the peer to [`Handshake::handle_input`] (any split),
///    an end of stream to [`Handshake::handle_eof`], and the timer to
///    [`Handshake::handle_timeout`] when [`Handshake::poll_timeout`] is due; after
///    each call, send everything `poll_output` yields, then re-arm the timer from
///    `poll_timeout`.
/// 3. When [`Handshake::is_established`], take the [`Session`] with
///    [`Handshake::take_session`]. Output not yet polled and any records that
///    arrived behind the handshake move into the session.
///
/// On an error the handshake is dead: every later call returns
/// [`ChannelError::Failed`]. Poll the output once more and send it: it may hold
/// an alert telling the peer why (for example that authentication failed).
pub struct Handshake {
    config: ChannelConfig,
    state: State,
    deadline: Instant,
    nonce: [u8; NONCE_LEN],
    ephemeral: Zeroizing<[u8; EPHEMERAL_LEN]>,
    local_hello: Option<Vec<u8>>,
    negotiated: Option<Negotiated>,
    srp_messages: SrpMessages,
    inbuf: Vec<u8>,
    out: Vec<u8>,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("state", &self.state.name())
            .field("role", &self.negotiated.as_ref().map(|n| n.role))
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts a handshake at `now`, drawing the hello nonce and the SRP ephemeral
    /// secret from `rng` (all the randomness the channel ever needs).
    pub fn new<R: RandomSource + ?Sized>(
        config: &ChannelConfig,
        now: Instant,
        rng: &mut R,
    ) -> Result<Self, ChannelError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)?;
        let mut ephemeral = Zeroizing::new([0u8; EPHEMERAL_LEN]);
        rng.fill(ephemeral.as_mut())?;
        let mut hs = Self {
            config: config.clone(),
            state: State::AwaitHello,
            deadline: now + config.handshake_timeout,
            nonce,
            ephemeral,
            local_hello: None,
            negotiated: None,
            srp_messages: SrpMessages::default(),
            inbuf: Vec::new(),
            out: Vec::new(),
        };
        match config.folders.as_ref() {
            [] => return Err(ChannelError::Config("no folder")),
            [only] => {
                let folder = only.folder_id();
                hs.send_hello(folder);
            }
            _ => {}
        }
        Ok(hs)
    }

    fn send_hello(&mut self, folder_id: FolderId) {
        let hello = Hello {
            min_version: SUPPORTED_VERSIONS.0,
            max_version: SUPPORTED_VERSIONS.1,
            folder_id,
            peer_id: self.config.peer_id,
            nonce: self.nonce,
        }
        .encode();
        self.out.extend_from_slice(&hello);
        self.local_hello = Some(hello);
    }

    /// Feeds bytes received from the peer.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        if matches!(self.state, State::Failed | State::Taken) {
            return Err(ChannelError::Failed);
        }
        let result = self.process(bytes);
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// The peer closed the stream: the handshake cannot finish.
    pub fn handle_eof(&mut self) -> Result<(), ChannelError> {
        if matches!(self.state, State::Failed | State::Taken) {
            return Err(ChannelError::Failed);
        }
        if let State::Done(keys, _) = &self.state
            && keys.recv.is_closed()
            && !keys.recv.has_partial()
        {
            return Ok(());
        }
        self.state = State::Failed;
        Err(ChannelError::Truncated)
    }

    /// Tells the handshake the time; fails it once the deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ChannelError> {
        match self.state {
            State::Failed | State::Taken => Err(ChannelError::Failed),
            State::Done(..) => Ok(()),
            _ if now >= self.deadline => {
                self.state = State::Failed;
                Err(ChannelError::Timeout)
            }
            _ => Ok(()),
        }
    }

    /// When [`Handshake::handle_timeout`] must be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Done(..) | State::Failed | State::Taken => None,
            _ => Some(self.deadline),
        }
    }

    /// Bytes to send to the peer, if any.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.out))
        }
    }

    /// Whether the handshake is complete and [`Handshake::take_session`] will
    /// return the session.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Done(..))
    }

    /// The peer's id, once its hello has arrived.
    pub fn peer_id(&self) -> Option<PeerId> {
        self.negotiated.as_ref().map(|n| n.peer_id)
    }

    /// Our SRP role, once the hellos are exchanged.
    pub fn role(&self) -> Option<Role> {
        self.negotiated.as_ref().map(|n| n.role)
    }

    /// The established session, once (afterwards the handshake is spent).
    pub fn take_session(&mut self) -> Option<Session> {
        if !self.is_established() {
            return None;
        }
        let State::Done(keys, peer_access) = std::mem::replace(&mut self.state, State::Taken)
        else {
            return None;
        };
        let neg = self.negotiated.as_ref()?;
        let info = SessionInfo {
            peer_id: neg.peer_id,
            folder_id: neg.creds.folder_id(),
            version: neg.version,
            role: neg.role,
            local_access: neg.creds.access(),
            peer_access,
            transcript_hash: keys.transcript_hash,
        };
        let Keys { send, recv, .. } = *keys;
        Some(Session::new(
            info,
            send,
            recv,
            std::mem::take(&mut self.out),
        ))
    }

    /// The transcript parts in hash order (tests only).
    #[cfg(test)]
    pub(crate) fn transcript_parts(&self) -> Vec<Vec<u8>> {
        let m = &self.srp_messages;
        match &self.negotiated {
            Some(n) => vec![
                n.client_hello.clone(),
                n.server_hello.clone(),
                m.a.clone(),
                m.b.clone(),
                m.m1.clone(),
                m.m2.clone(),
            ],
            None => Vec::new(),
        }
    }

    fn process(&mut self, bytes: &[u8]) -> Result<(), ChannelError> {
        if let State::AwaitProof(keys) | State::Done(keys, _) = &mut self.state {
            keys.recv.handle_input(bytes)?;
            return self.check_proof();
        }
        self.inbuf.extend_from_slice(bytes);
        loop {
            match self.state {
                State::AwaitHello => {
                    let Some((hello, used)) = Hello::decode(&self.inbuf)? else {
                        return Ok(());
                    };
                    let raw: Vec<u8> = self.inbuf.drain(..used).collect();
                    self.on_hello(&hello, raw)?;
                }
                State::AwaitProof(_) => {
                    let rest = std::mem::take(&mut self.inbuf);
                    return self.process(&rest);
                }
                State::Done(..) | State::Taken | State::Failed => return Ok(()),
                _ => {
                    let Some((kind, body, used)) = msg::decode_frame(&self.inbuf)? else {
                        return Ok(());
                    };
                    let body = body.to_vec();
                    let raw: Vec<u8> = self.inbuf.drain(..used).collect();
                    self.on_message(kind, &body, raw)?;
                }
            }
        }
    }

    fn on_hello(&mut self, hello: &Hello, raw: Vec<u8>) -> Result<(), ChannelError> {
        let ours = SUPPORTED_VERSIONS;
        let theirs = (hello.min_version, hello.max_version);
        let version = ours.1.min(theirs.1);
        if version < ours.0.max(theirs.0) {
            return Err(ChannelError::UnsupportedVersion { ours, theirs });
        }
        if hello.peer_id == self.config.peer_id {
            return Err(ChannelError::ConnectedToSelf);
        }
        let creds = match self.config.folders.as_ref() {
            [only] => {
                if only.folder_id() != hello.folder_id {
                    return Err(ChannelError::FolderMismatch {
                        ours: only.folder_id(),
                        theirs: hello.folder_id,
                    });
                }
                only.clone()
            }
            many => {
                let found = many.iter().find(|c| c.folder_id() == hello.folder_id);
                let found = found
                    .ok_or(ChannelError::UnknownFolder(hello.folder_id))?
                    .clone();
                self.send_hello(hello.folder_id);
                found
            }
        };
        let local_hello = self.local_hello.clone().unwrap_or_default();
        let role = Role::decide(&self.config.peer_id, &hello.peer_id);
        let (client_hello, server_hello) = match role {
            Role::Client => (local_hello, raw),
            Role::Server => (raw, local_hello),
        };
        match role {
            Role::Client => {
                let a_pub = srp::client_public(&self.ephemeral);
                let m = msg::encode_frame(kind::SRP_A, &a_pub);
                self.out.extend_from_slice(&m);
                self.srp_messages.a = m;
                self.state = State::ClientAwaitB;
            }
            Role::Server => {
                let b_pub = srp::server_public(&self.ephemeral, creds.verifier());
                let m = msg::encode_frame(kind::SRP_B, &b_pub);
                self.out.extend_from_slice(&m);
                self.srp_messages.b = m;
                self.state = State::ServerAwaitA;
            }
        }
        self.negotiated = Some(Negotiated {
            role,
            version,
            creds,
            peer_id: hello.peer_id,
            client_hello,
            server_hello,
        });
        Ok(())
    }

    fn on_message(&mut self, kind: u8, body: &[u8], raw: Vec<u8>) -> Result<(), ChannelError> {
        if kind == kind::ALERT {
            return Err(match body {
                [code] => match AbortCode::from_byte(*code) {
                    AbortCode::AuthFailed => ChannelError::AuthFailed,
                    other => ChannelError::PeerAborted(other),
                },
                _ => Violation::BadLength {
                    what: "alert",
                    len: body.len(),
                    want: 1,
                }
                .into(),
            });
        }
        let unexpected = Violation::UnexpectedMessage {
            got: kind,
            state: self.state.name(),
        };
        let neg = self.negotiated.as_ref().ok_or(unexpected)?;
        let creds = neg.creds.clone();
        match (&self.state, kind) {
            (State::ClientAwaitB, kind::SRP_B) => {
                let verifier = srp::client_process(
                    &self.ephemeral,
                    &creds.folder_id(),
                    creds.password(),
                    creds.salt(),
                    body,
                )?;
                self.srp_messages.b = raw;
                let m = msg::encode_frame(kind::CLIENT_PROOF, verifier.proof());
                self.out.extend_from_slice(&m);
                self.srp_messages.m1 = m;
                self.state = State::ClientAwaitM2(Box::new(verifier));
            }
            (State::ServerAwaitA, kind::SRP_A) => {
                let verifier = srp::server_process(
                    &self.ephemeral,
                    &creds.folder_id(),
                    creds.salt(),
                    creds.verifier(),
                    body,
                )?;
                self.srp_messages.a = raw;
                self.state = State::ServerAwaitM1(Box::new(verifier));
            }
            (State::ServerAwaitM1(verifier), kind::CLIENT_PROOF) => {
                check_proof_len("SRP client proof M1", body)?;
                let k = srp::server_finish(verifier, body).ok_or(ChannelError::AuthFailed)?;
                let m = msg::encode_frame(kind::SERVER_PROOF, verifier.proof());
                self.out.extend_from_slice(&m);
                self.srp_messages.m1 = raw;
                self.srp_messages.m2 = m;
                self.start_records(&k)?;
            }
            (State::ClientAwaitM2(verifier), kind::SERVER_PROOF) => {
                check_proof_len("SRP server proof M2", body)?;
                let k = srp::client_finish(verifier, body).ok_or(ChannelError::AuthFailed)?;
                self.srp_messages.m2 = raw;
                self.start_records(&k)?;
            }
            _ => return Err(unexpected.into()),
        }
        Ok(())
    }

    /// K is agreed: derive the keys, queue our access proof, switch to records.
    fn start_records(&mut self, k: &[u8; PROOF_LEN]) -> Result<(), ChannelError> {
        let neg = self.negotiated.as_ref().ok_or(ChannelError::Failed)?;
        let m = &self.srp_messages;
        let mut h = Sha256::new();
        for part in [
            &neg.client_hello,
            &neg.server_hello,
            &m.a,
            &m.b,
            &m.m1,
            &m.m2,
        ] {
            h.update(part);
        }
        let transcript_hash: [u8; 32] = h.finalize().into();
        let (c2s, s2c) = traffic_secrets(k, &transcript_hash)?;
        let (send, recv) = match neg.role {
            Role::Client => (c2s, s2c),
            Role::Server => (s2c, c2s),
        };
        let mut send = Sender::new(Direction::new(send)?, self.config.rekey_after);
        let recv = Receiver::new(Direction::new(recv)?);
        // a or b is spent: wipe it now rather than at drop (forward secrecy).
        self.ephemeral = Zeroizing::new([0u8; EPHEMERAL_LEN]);
        let our_proof = proof::make(&neg.creds, neg.role, &transcript_hash);
        send.access_proof(&our_proof, &mut self.out)?;
        self.state = State::AwaitProof(Box::new(Keys {
            send,
            recv,
            transcript_hash,
        }));
        Ok(())
    }

    fn check_proof(&mut self) -> Result<(), ChannelError> {
        let State::AwaitProof(keys) = &mut self.state else {
            return Ok(());
        };
        let Some(payload) = keys.recv.take_proof() else {
            return Ok(());
        };
        let neg = self.negotiated.as_ref().ok_or(ChannelError::Failed)?;
        let access = proof::verify(&neg.creds, neg.role.peer(), &keys.transcript_hash, &payload)?;
        if let State::AwaitProof(keys) = std::mem::replace(&mut self.state, State::Failed) {
            self.state = State::Done(keys, access);
        }
        Ok(())
    }

    /// Records the failure and queues what the peer should hear about it.
    fn fail(&mut self, e: &ChannelError) {
        let code = AbortCode::for_error(e);
        match (&mut self.state, code) {
            // Our direction is still cleartext and the peer reads frames: an alert.
            (State::ClientAwaitB | State::ServerAwaitA | State::ServerAwaitM1(_), Some(code)) => {
                let alert = msg::encode_frame(kind::ALERT, &[code.to_byte()]);
                self.out.extend_from_slice(&alert);
            }
            // Our direction is encrypted: an authenticated close with the reason.
            (State::AwaitProof(keys) | State::Done(keys, _), Some(code))
                if !keys.send.is_closed() =>
            {
                let _ = keys.send.close(code.to_byte(), &mut self.out);
            }
            _ => {}
        }
        if let State::AwaitProof(keys) | State::Done(keys, _) = &mut self.state {
            keys.recv.fail();
        }
        self.state = State::Failed;
    }
}

/// The first traffic secrets (client to server, server to client):
/// `HKDF-Expand(HKDF-Extract(salt = transcript hash, ikm = K), label, 32)`.
pub(crate) type Secret = Zeroizing<[u8; 32]>;

pub(crate) fn traffic_secrets(
    k: &[u8; PROOF_LEN],
    transcript_hash: &[u8; 32],
) -> Result<(Secret, Secret), ChannelError> {
    let prk = Hkdf::<Sha256>::new(Some(transcript_hash), k);
    let mut c2s = Zeroizing::new([0u8; 32]);
    let mut s2c = Zeroizing::new([0u8; 32]);
    prk.expand(LABEL_C2S, c2s.as_mut())
        .and_then(|()| prk.expand(LABEL_S2C, s2c.as_mut()))
        .map_err(|_| ChannelError::Crypto("hkdf expand"))?;
    Ok((c2s, s2c))
}

const LABEL_C2S: &[u8] = b"swarmsync v1 c2s traffic";
const LABEL_S2C: &[u8] = b"swarmsync v1 s2c traffic";

fn check_proof_len(what: &'static str, body: &[u8]) -> Result<(), Violation> {
    if body.len() == PROOF_LEN {
        Ok(())
    } else {
        Err(Violation::BadLength {
            what,
            len: body.len(),
            want: PROOF_LEN,
        })
    }
}
