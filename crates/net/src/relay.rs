//! The relay client (`docs/protocol/relay.md`): be reachable through a relay
//! ([`register`]), find a folder's peers there ([`lookup`]) and reach one
//! ([`connect`]). Every stream these give is spliced end to end with the
//! peer's; run `channel::establish` on it (the [`connect`] side as dialer,
//! the [`RelayRegistration`] side as acceptor) before trusting a byte, as
//! for any carrier: the relay sees only ciphertext.
//!
//! ```no_run
//! # async fn demo(relay: std::net::SocketAddr, folder: keys::FolderId, p: keys::PeerId, q: keys::PeerId) -> Result<(), net::relay::RelayError> {
//! use std::time::Duration;
//! // P, reachable:
//! let mut registration = net::relay::register(relay, folder, p).await?;
//! // Q, elsewhere:
//! assert!(net::relay::lookup(relay, folder).await?.contains(&p));
//! let to_p = net::relay::connect(relay, folder, q, p, Duration::from_secs(15)).await?;
//! // P again:
//! let (from_q, who) = registration.next().await.expect("registration ended");
//! assert_eq!(who, q);
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use keys::{FolderId, PeerId};
use relay_proto::{
    ClientMessage, ErrorCode, FolderTag, MessageReader, PREAMBLE, PairingToken, ProtoError,
    RelayMessage, SessionId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::tcp;

/// How often a registration pings the relay (the relay drops a control
/// connection silent for 90 s).
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// A registration ends when the relay has said nothing for this long.
pub const RELAY_SILENCE: Duration = Duration::from_secs(90);
/// Time allowed for the TCP connect to the relay and for each answer to
/// Register, Lookup and Accept.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Invitations being accepted at once per registration; more are ignored.
const MAX_ACCEPTING: usize = 8;
/// Spliced streams waiting for [`RelayRegistration::next`]; more are closed.
const MAX_WAITING: usize = 8;

/// Why a relay operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The TCP connection to the relay could not be made.
    #[error("could not reach the relay at {addr}: {source}")]
    Dial {
        /// The relay.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the relay connection failed.
    #[error("relay connection failed: {0}")]
    Io(#[from] io::Error),
    /// The relay closed the connection without an answer.
    #[error("the relay closed the connection")]
    Closed,
    /// The relay did not answer in time.
    #[error("the relay did not answer within {0:?}")]
    Timeout(Duration),
    /// The other end does not speak the relay protocol (or sent garbage).
    #[error("not a swarmsync relay, or it sent a malformed message: {0}")]
    Malformed(#[from] ProtoError),
    /// A well-formed message that makes no sense at this point.
    #[error("the relay sent an unexpected {0} message")]
    Unexpected(&'static str),
    /// A relay-wide cap is reached.
    #[error("relay refused: full")]
    Full,
    /// A per-address cap of the relay is reached.
    #[error("relay refused: too many connections from this address")]
    AddressLimit,
    /// The target is not registered at the relay for this folder.
    #[error("relay refused: the peer is not registered there for this folder")]
    UnknownPeer,
    /// The target did not accept the invitation in time.
    #[error("peer did not accept within 10 s (the relay's invitation window)")]
    NotAccepted,
    /// The relay knows no such invitation (it expired, or was taken).
    #[error("relay refused: unknown or expired session")]
    UnknownSession,
    /// The relay says we broke the protocol.
    #[error("relay refused: it says we broke the relay protocol")]
    Protocol,
    /// The relay speaks another version.
    #[error("relay refused: it does not speak relay protocol version 1")]
    Version,
    /// A newer registration of this peer for this folder took over.
    #[error("registration replaced by a newer one of the same peer and folder")]
    Replaced,
    /// An error code this version does not know.
    #[error("relay error code {0}")]
    Other(u8),
}

impl From<ErrorCode> for RelayError {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::Full => Self::Full,
            ErrorCode::AddressLimit => Self::AddressLimit,
            ErrorCode::UnknownPeer => Self::UnknownPeer,
            ErrorCode::NotAccepted => Self::NotAccepted,
            ErrorCode::UnknownSession => Self::UnknownSession,
            ErrorCode::Protocol => Self::Protocol,
            ErrorCode::Version => Self::Version,
            ErrorCode::Replaced => Self::Replaced,
            ErrorCode::Other(b) => Self::Other(b),
        }
    }
}

/// The name of a relay message, for [`RelayError::Unexpected`].
fn name(m: &RelayMessage) -> &'static str {
    match m {
        RelayMessage::Registered => "Registered",
        RelayMessage::Peers(_) => "Peers",
        RelayMessage::Invite { .. } => "Invite",
        RelayMessage::Spliced => "Spliced",
        RelayMessage::Pong => "Pong",
        RelayMessage::Error(_) => "Error",
    }
}

/// One connection to the relay before any splice: reads exactly, so after
/// `Spliced` the stream holds only the peer's bytes.
struct Link {
    stream: TcpStream,
    reader: MessageReader<RelayMessage>,
}

impl Link {
    async fn open(relay: SocketAddr) -> Result<Self, RelayError> {
        let mut stream =
            tcp::dial(relay, ANSWER_TIMEOUT)
                .await
                .map_err(|source| RelayError::Dial {
                    addr: relay,
                    source,
                })?;
        stream.write_all(&PREAMBLE).await?;
        Ok(Self {
            stream,
            reader: MessageReader::new(),
        })
    }

    async fn send(&mut self, message: ClientMessage) -> Result<(), RelayError> {
        self.stream.write_all(&message.to_bytes()).await?;
        Ok(())
    }

    /// The next message. Cancel safe: a partial message stays in the reader.
    async fn recv(&mut self) -> Result<RelayMessage, RelayError> {
        loop {
            let n = self.stream.read(self.reader.unfilled()).await?;
            let eof = n == 0;
            match self.reader.commit(n) {
                Some(Ok(m)) => return Ok(m),
                Some(Err(e)) => return Err(e.into()),
                None if eof => return Err(RelayError::Closed),
                None => {}
            }
        }
    }

    /// The next message within `timeout`; a relay Error becomes `Err`.
    async fn answer(&mut self, timeout: Duration) -> Result<RelayMessage, RelayError> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Err(_) => Err(RelayError::Timeout(timeout)),
            Ok(Ok(RelayMessage::Error(code))) => Err(code.into()),
            Ok(other) => other,
        }
    }
}

/// The peer ids registered at `relay` for `folder` (at most 32; it may
/// include our own).
pub async fn lookup(relay: SocketAddr, folder: FolderId) -> Result<Vec<PeerId>, RelayError> {
    let mut link = Link::open(relay).await?;
    link.send(ClientMessage::Lookup {
        tag: FolderTag::of(&folder),
    })
    .await?;
    match link.answer(ANSWER_TIMEOUT).await? {
        RelayMessage::Peers(peers) => Ok(peers),
        other => Err(RelayError::Unexpected(name(&other))),
    }
}

/// A stream to `target` through `relay`, spliced, for `folder`; we are `me`.
/// Run `channel::establish` on it as the dialer. `timeout` bounds the whole
/// attempt (the relay itself gives up after 10 s without an accept).
pub async fn connect(
    relay: SocketAddr,
    folder: FolderId,
    me: PeerId,
    target: PeerId,
    timeout: Duration,
) -> Result<TcpStream, RelayError> {
    let attempt = async {
        let mut link = Link::open(relay).await?;
        link.send(ClientMessage::Connect {
            tag: FolderTag::of(&folder),
            target,
            from: me,
            token: PairingToken::of(&folder, &me, &target),
        })
        .await?;
        match link.answer(timeout).await? {
            RelayMessage::Spliced => Ok(link.stream),
            other => Err(RelayError::Unexpected(name(&other))),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(RelayError::Timeout(timeout)))
}

/// Registers `me` for `folder` at `relay` and keeps the registration (with
/// heartbeats) in a task until the returned value is dropped.
pub async fn register(
    relay: SocketAddr,
    folder: FolderId,
    me: PeerId,
) -> Result<RelayRegistration, RelayError> {
    let mut link = Link::open(relay).await?;
    link.send(ClientMessage::Register {
        tag: FolderTag::of(&folder),
        peer: me,
    })
    .await?;
    match link.answer(ANSWER_TIMEOUT).await? {
        RelayMessage::Registered => {}
        other => return Err(RelayError::Unexpected(name(&other))),
    }
    let (streams_tx, streams) = mpsc::channel(MAX_WAITING);
    let (end_tx, end) = oneshot::channel();
    let control = Control {
        relay,
        folder,
        me,
        streams: streams_tx,
    };
    let task = tokio::spawn(async move {
        let why = control.run(link).await;
        tracing::debug!(%relay, error = %why, "relay registration ended");
        let _ = end_tx.send(why);
    });
    Ok(RelayRegistration { streams, end, task })
}

/// A registration at a relay: yields the spliced streams of peers whose
/// invitations carried the right pairing token. Dropping it closes the
/// control connection, which ends the registration.
#[derive(Debug)]
pub struct RelayRegistration {
    streams: mpsc::Receiver<(TcpStream, PeerId)>,
    end: oneshot::Receiver<RelayError>,
    task: tokio::task::JoinHandle<()>,
}

impl RelayRegistration {
    /// The next spliced stream and the peer id the inviter claimed (the
    /// channel handshake proves or refutes it). Run `channel::establish` on
    /// it as the acceptor. `None` once the registration has ended; then
    /// [`RelayRegistration::take_error`] says why.
    pub async fn next(&mut self) -> Option<(TcpStream, PeerId)> {
        self.streams.recv().await
    }

    /// Why the registration ended, once it has (taken once).
    pub fn take_error(&mut self) -> Option<RelayError> {
        self.end.try_recv().ok()
    }
}

impl Drop for RelayRegistration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Control {
    relay: SocketAddr,
    folder: FolderId,
    me: PeerId,
    streams: mpsc::Sender<(TcpStream, PeerId)>,
}

impl Control {
    /// Serves the control connection until it fails; returns why.
    async fn run(self, mut link: Link) -> RelayError {
        // Accepts in flight end with the control connection.
        let mut accepting = JoinSet::new();
        let permits = std::sync::Arc::new(Semaphore::new(MAX_ACCEPTING));
        let mut ping = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    if heard.elapsed() >= RELAY_SILENCE {
                        return RelayError::Timeout(RELAY_SILENCE);
                    }
                    if let Err(e) = link.send(ClientMessage::Ping).await {
                        return e;
                    }
                }
                message = link.recv() => {
                    heard = Instant::now();
                    match message {
                        Ok(RelayMessage::Pong | RelayMessage::Peers(_)) => {}
                        Ok(RelayMessage::Invite { from, token, session }) => {
                            if from == self.me || !token.verify(&self.folder, &self.me, &from) {
                                // A stranger (or a relay) guessing: not answered.
                                tracing::debug!(relay = %self.relay, ?from, "invitation with a wrong token ignored");
                                continue;
                            }
                            let Ok(permit) = permits.clone().try_acquire_owned() else {
                                tracing::debug!(relay = %self.relay, "too many invitations at once; one ignored");
                                continue;
                            };
                            let streams = self.streams.clone();
                            let relay = self.relay;
                            accepting.spawn(async move {
                                let _permit = permit;
                                match accept(relay, session).await {
                                    Ok(stream) => {
                                        // Full: the owner is not keeping up; drop it.
                                        let _ = streams.try_send((stream, from));
                                    }
                                    Err(e) => tracing::debug!(%relay, error = %e, "accepting an invitation failed"),
                                }
                            });
                        }
                        Ok(RelayMessage::Error(code)) => return code.into(),
                        Ok(other) => return RelayError::Unexpected(name(&other)),
                        Err(e) => return e,
                    }
                }
                Some(_) = accepting.join_next(), if !accepting.is_empty() => {}
            }
        }
    }
}

/// Takes the invitation `session` on a new connection.
async fn accept(relay: SocketAddr, session: SessionId) -> Result<TcpStream, RelayError> {
    let mut link = Link::open(relay).await?;
    link.send(ClientMessage::Accept { session }).await?;
    match link.answer(ANSWER_TIMEOUT).await? {
        RelayMessage::Spliced => Ok(link.stream),
        other => Err(RelayError::Unexpected(name(&other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_name_the_refusal() {
        assert_eq!(
            RelayError::from(ErrorCode::Full).to_string(),
            "relay refused: full"
        );
        assert!(
            RelayError::from(ErrorCode::NotAccepted)
                .to_string()
                .contains("did not accept within 10 s")
        );
        assert!(matches!(
            RelayError::from(ErrorCode::Other(99)),
            RelayError::Other(99)
        ));
    }

    /// A fake relay that invites with a wrong token, then a right one: only
    /// the right one is accepted.
    #[tokio::test]
    async fn only_invitations_with_the_right_token_are_accepted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let folder = FolderId([4; 20]);
        let (me, q) = (PeerId([1; 32]), PeerId([2; 32]));
        let fake = tokio::spawn(async move {
            let (mut control, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5 + 3 + 64];
            control.read_exact(&mut buf).await.unwrap();
            let mut out = PREAMBLE.to_vec();
            RelayMessage::Registered.write(&mut out);
            for (token, session) in [
                (PairingToken([0; 32]), SessionId([1; 32])),
                (PairingToken::of(&folder, &q, &me), SessionId([2; 32])),
            ] {
                RelayMessage::Invite {
                    from: q,
                    token,
                    session,
                }
                .write(&mut out);
            }
            control.write_all(&out).await.unwrap();
            // Exactly one accept comes, for session 2.
            let (mut data, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5 + 3 + 32];
            data.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf[8..], &[2; 32]);
            let mut out = PREAMBLE.to_vec();
            RelayMessage::Spliced.write(&mut out);
            out.extend_from_slice(b"peer bytes");
            data.write_all(&out).await.unwrap();
            let no_more = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
            assert!(no_more.is_err(), "a wrong-token invitation was accepted");
            control
        });
        let mut reg = register(addr, folder, me).await.unwrap();
        let (mut stream, from) = tokio::time::timeout(Duration::from_secs(5), reg.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, q);
        // Nothing of the relay's framing is left before the peer's bytes.
        let mut got = [0u8; 10];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"peer bytes");
        let _control = fake.await.unwrap();
    }
}
