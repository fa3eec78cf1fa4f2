//! One connection's task: writes the preamble, reads messages exactly and
//! hands them to the actor, writes what the actor sends, and on a splice
//! either gives its stream away (dialer) or runs the copy (acceptor).

use std::time::Duration;

use relay_proto::{ClientMessage, ConnId, MessageReader, PREAMBLE, ProtoError, RelayMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::splice::{self, SpliceLimits};

/// A write that takes longer than this ends the connection (a client that
/// does not read must not hold the task).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the acceptor waits for the dialer's stream to be handed over.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connection tells the actor.
#[derive(Debug)]
pub(crate) enum Event {
    Message(ConnId, ClientMessage),
    Malformed(ConnId, ProtoError),
    Closed(ConnId),
    /// A spliced pair ended (both connections are gone).
    SpliceEnded {
        dialer: ConnId,
        acceptor: ConnId,
    },
}

/// What the actor tells a connection.
#[derive(Debug)]
pub(crate) enum Command {
    Send(RelayMessage),
    Close,
    /// Dialer: give the stream to the acceptor's task and end.
    GiveStream(oneshot::Sender<TcpStream>),
    /// Acceptor: take the dialer's stream, answer both Spliced, copy.
    Splice {
        dialer: ConnId,
        stream: oneshot::Receiver<TcpStream>,
        limits: SpliceLimits,
    },
}

pub(crate) async fn run(
    id: ConnId,
    mut stream: TcpStream,
    events: mpsc::Sender<Event>,
    mut commands: mpsc::Receiver<Command>,
) {
    let closed = serve(id, &mut stream, &events, &mut commands).await;
    match closed {
        Ended::Closed => {
            let _ = events.send(Event::Closed(id)).await;
        }
        Ended::Give(to) => {
            // If the acceptor's task is gone the stream comes back and is
            // dropped; the actor hears of the pair's end from the acceptor.
            let _ = to.send(stream);
        }
        Ended::Splice {
            dialer,
            stream: other,
            limits,
        } => {
            let outcome = match tokio::time::timeout(HANDOVER_TIMEOUT, other).await {
                Ok(Ok(mut dialer_stream)) => {
                    let spliced = RelayMessage::Spliced.to_bytes();
                    let told = tokio::time::timeout(WRITE_TIMEOUT, async {
                        dialer_stream.write_all(&spliced).await?;
                        stream.write_all(&spliced).await
                    })
                    .await;
                    if matches!(told, Ok(Ok(()))) {
                        tracing::debug!(dialer, acceptor = id, "spliced");
                        let end = splice::run(dialer_stream, stream, limits).await;
                        tracing::debug!(
                            dialer,
                            acceptor = id,
                            reason = end.reason,
                            dialer_to_acceptor = end.dialer_to_acceptor,
                            acceptor_to_dialer = end.acceptor_to_dialer,
                            "splice ended"
                        );
                    }
                    Some(())
                }
                _ => None,
            };
            if outcome.is_none() {
                tracing::debug!(dialer, acceptor = id, "dialer left before the splice");
            }
            let _ = events
                .send(Event::SpliceEnded {
                    dialer,
                    acceptor: id,
                })
                .await;
        }
    }
}

enum Ended {
    Closed,
    Give(oneshot::Sender<TcpStream>),
    Splice {
        dialer: ConnId,
        stream: oneshot::Receiver<TcpStream>,
        limits: SpliceLimits,
    },
}

async fn serve(
    id: ConnId,
    stream: &mut TcpStream,
    events: &mpsc::Sender<Event>,
    commands: &mut mpsc::Receiver<Command>,
) -> Ended {
    if !matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&PREAMBLE)).await,
        Ok(Ok(()))
    ) {
        return Ended::Closed;
    }
    let mut reader = MessageReader::<ClientMessage>::new();
    // After a malformed message: wait for the actor's answer, read no more.
    let mut reading = true;
    loop {
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(Command::Send(message)) => {
                    let bytes = message.to_bytes();
                    let sent = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return Ended::Closed;
                    }
                }
                Some(Command::Close) | None => {
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.shutdown()).await;
                    return Ended::Closed;
                }
                Some(Command::GiveStream(to)) => return Ended::Give(to),
                Some(Command::Splice { dialer, stream: other, limits }) => {
                    return Ended::Splice { dialer, stream: other, limits };
                }
            },
            read = stream.read(reader.unfilled()), if reading => match read {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(n) => match reader.commit(n) {
                    None => {}
                    Some(Ok(message)) if events.send(Event::Message(id, message)).await.is_err() => {
                        return Ended::Closed;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        reading = false;
                        if events.send(Event::Malformed(id, e)).await.is_err() {
                            return Ended::Closed;
                        }
                    }
                },
            },
        }
    }
}
