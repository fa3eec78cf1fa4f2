//! The relay server: a thin tokio shell around [`relay_proto::Relay`]. One
//! actor task owns the sans-IO state; one task per TCP connection reads its
//! messages exactly and writes what the actor says; a spliced pair is copied
//! by the acceptor's task through a fixed buffer per direction, paced by a
//! token bucket. The protocol and the limits are in
//! `docs/protocol/relay.md`.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use relay::{Server, ServerConfig};
//!
//! let server = Server::bind(ServerConfig::new("127.0.0.1:22067".parse().unwrap())).await?;
//! println!("relay on {}", server.local_addr()?);
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![forbid(unsafe_code)]

mod conn;
mod splice;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay_proto::{ConnId, Output, PREAMBLE, Relay, RelayConfig, RelayMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub use relay_proto;

use crate::conn::{Command, Event};
use crate::splice::SpliceLimits;

/// Default bandwidth cap of one spliced direction: 10 MB/s.
pub const DEFAULT_RATE_LIMIT: u64 = 10_000_000;
/// Default idle timeout of a spliced pair.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default copy buffer per direction.
pub const DEFAULT_BUFFER: usize = 64 * 1024;

/// Commands queued to one connection before it counts as stuck and is
/// dropped (a client that does not read its control connection).
const COMMAND_QUEUE: usize = 32;
/// Events queued from all connections to the actor (connection tasks wait
/// when it is full, which slows their reading).
const EVENT_QUEUE: usize = 1024;

/// What to serve where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The TCP address to bind.
    pub listen: SocketAddr,
    /// Caps and timeouts of the relay's state.
    pub relay: RelayConfig,
    /// Bytes per second per spliced direction; 0 is unlimited.
    pub rate_limit: u64,
    /// A spliced pair with no byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// Copy buffer per spliced direction, in bytes.
    pub buffer: usize,
    /// How often the stats line is logged (at debug level).
    pub stats_period: Duration,
}

impl ServerConfig {
    /// The default relay on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            relay: RelayConfig::default(),
            rate_limit: DEFAULT_RATE_LIMIT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            buffer: DEFAULT_BUFFER,
            stats_period: Duration::from_secs(60),
        }
    }
}

/// The relay's counters, readable while it runs.
#[derive(Debug, Clone, Default)]
pub struct StatsHandle(Arc<Mutex<relay_proto::Stats>>);

impl StatsHandle {
    /// The counters and table sizes as of the last event.
    pub fn get(&self) -> relay_proto::Stats {
        self.0.lock().map(|s| *s).unwrap_or_default()
    }
}

/// A bound relay, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    relay: Relay,
    limits: SpliceLimits,
    stats_period: Duration,
    stats: StatsHandle,
}

impl Server {
    /// Binds the listener and sets up the state (a fresh random session
    /// key). An invalid configuration is `InvalidInput`.
    pub async fn bind(config: ServerConfig) -> io::Result<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| io::Error::other(format!("random key: {e}")))?;
        let seed = getrandom::u64().map_err(|e| io::Error::other(format!("random seed: {e}")))?;
        let relay = Relay::new(config.relay, key, seed, Instant::now().into_std())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if config.idle_timeout.is_zero() || config.buffer == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "idle timeout and buffer size must be above zero",
            ));
        }
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Self {
            listener,
            relay,
            limits: SpliceLimits {
                rate: config.rate_limit,
                idle: config.idle_timeout,
                buffer: config.buffer,
            },
            stats_period: config.stats_period,
            stats: StatsHandle::default(),
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle to the counters, for tests and monitoring.
    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// Serves until `stop` completes. Accept errors are logged and survived;
    /// no connection is worth stopping the relay for. On stop, every
    /// connection and splice is dropped.
    pub async fn run(self, stop: impl Future<Output = ()>) -> io::Result<()> {
        let local = self.listener.local_addr()?;
        tracing::info!(%local, "relay listening");
        let Self {
            listener,
            relay,
            limits,
            stats_period,
            stats,
        } = self;
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let mut actor = Actor {
            relay,
            limits,
            conns: HashMap::new(),
            events_tx,
            next_id: 0,
            stats,
        };
        let mut events = events;
        // Connection tasks end when the set is dropped at stop.
        let mut tasks = tokio::task::JoinSet::new();
        let mut stats_tick = tokio::time::interval(stats_period);
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            let wake = Instant::from_std(actor.relay.poll_timeout());
            tokio::select! {
                biased;
                () = &mut stop => break,
                Some(event) = events.recv() => actor.handle_event(event),
                accepted = listener.accept() => match accepted {
                    Ok((stream, from)) => actor.handle_accept(&mut tasks, stream, from),
                    Err(e) => {
                        // Out of descriptors, typically: do not spin.
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = tokio::time::sleep_until(wake) => {
                    actor.relay.handle_timeout(Instant::now().into_std());
                    actor.flush();
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = stats_tick.tick() => {
                    let s = actor.relay.stats();
                    tracing::debug!(
                        fresh = s.fresh,
                        controls = s.controls,
                        pending = s.pending,
                        pairs = s.pairs,
                        refused = s.refused,
                        expired = s.expired,
                        spliced = s.spliced,
                        violations = s.violations,
                        "relay stats"
                    );
                }
            }
        }
        tasks.shutdown().await;
        tracing::info!("relay stopped");
        Ok(())
    }
}

/// The owner of the sans-IO state and of the way to every connection.
struct Actor {
    relay: Relay,
    limits: SpliceLimits,
    conns: HashMap<ConnId, mpsc::Sender<Command>>,
    events_tx: mpsc::Sender<Event>,
    next_id: ConnId,
    stats: StatsHandle,
}

impl Actor {
    fn handle_accept(
        &mut self,
        tasks: &mut tokio::task::JoinSet<()>,
        stream: TcpStream,
        from: SocketAddr,
    ) {
        self.next_id += 1;
        let id = self.next_id;
        let now = Instant::now().into_std();
        if let Err(code) = self.relay.handle_connection(now, id, from.ip()) {
            // Refused at the door: one non-blocking write, no task, so a
            // flood costs nothing but the accept.
            let mut answer = PREAMBLE.to_vec();
            RelayMessage::Error(code).write(&mut answer);
            let _ = stream.try_write(&answer);
            tracing::trace!(%from, ?code, "connection refused");
            self.publish();
            return;
        }
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        self.conns.insert(id, tx);
        tasks.spawn(conn::run(id, stream, self.events_tx.clone(), rx));
        self.publish();
    }

    fn handle_event(&mut self, event: Event) {
        let now = Instant::now().into_std();
        match event {
            Event::Message(id, message) => self.relay.handle_message(now, id, message),
            Event::Malformed(id, error) => {
                tracing::trace!(conn = id, %error, "malformed input");
                self.relay.handle_malformed(id, &error);
            }
            Event::Closed(id) => {
                self.conns.remove(&id);
                self.relay.handle_closed(id);
            }
            Event::SpliceEnded { dialer, acceptor } => {
                for id in [dialer, acceptor] {
                    self.conns.remove(&id);
                    self.relay.handle_closed(id);
                }
            }
        }
        self.flush();
    }

    /// Carries out what the state wants, never waiting on a connection.
    fn flush(&mut self) {
        while let Some(output) = self.relay.poll_output() {
            match output {
                Output::Send { conn, message } => self.command(conn, Command::Send(message)),
                Output::Close { conn } => {
                    self.command(conn, Command::Close);
                    // Its task ends after the close; nothing more goes to it.
                    self.conns.remove(&conn);
                }
                Output::Splice { dialer, acceptor } => {
                    let (tx, rx) = oneshot::channel();
                    self.command(dialer, Command::GiveStream(tx));
                    self.command(
                        acceptor,
                        Command::Splice {
                            dialer,
                            stream: rx,
                            limits: self.limits,
                        },
                    );
                    // Both tasks now belong to the splice; the acceptor's
                    // reports its end.
                    self.conns.remove(&dialer);
                    self.conns.remove(&acceptor);
                }
            }
        }
        self.publish();
    }

    fn command(&mut self, conn: ConnId, command: Command) {
        let Some(tx) = self.conns.get(&conn) else {
            return;
        };
        if tx.try_send(command).is_err() {
            // Stuck (not reading) or gone: drop it rather than wait.
            tracing::debug!(conn, "connection not keeping up; dropped");
            self.conns.remove(&conn);
            self.relay.handle_closed(conn);
        }
    }

    fn publish(&self) {
        if let Ok(mut s) = self.stats.0.lock() {
            *s = self.relay.stats();
        }
    }
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}
