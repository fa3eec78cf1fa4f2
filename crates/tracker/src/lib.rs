//! The tracker server: a thin tokio shell around [`tracker_proto::Tracker`].
//! One UDP socket, one task: each datagram goes to the sans-IO state, what it
//! wants sent is sent, and its timer runs the expiry sweep. The protocol and
//! the server's limits are in `docs/protocol/tracker.md`.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use tracker::{Server, ServerConfig};
//!
//! let server = Server::bind(ServerConfig::new("127.0.0.1:6969".parse().unwrap())).await?;
//! println!("tracker on {}", server.local_addr()?);
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![forbid(unsafe_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracker_proto::{MAX_REQUEST_LEN, Tracker, TrackerConfig};

pub use tracker_proto;

/// What to serve where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The UDP address to bind: IPv4, or IPv6 (`[::]` is dual stack where
    /// the system allows).
    pub listen: SocketAddr,
    /// Limits and intervals of the tracker itself.
    pub tracker: TrackerConfig,
    /// How often the stats line is logged (at debug level).
    pub stats_period: Duration,
}

impl ServerConfig {
    /// The default tracker on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tracker: TrackerConfig::default(),
            stats_period: Duration::from_secs(60),
        }
    }
}

/// A bound tracker, not yet serving.
#[derive(Debug)]
pub struct Server {
    socket: UdpSocket,
    tracker: Tracker,
    stats_period: Duration,
}

impl Server {
    /// Binds the socket and sets up the state (a fresh random key for
    /// connection ids). An invalid configuration is `InvalidInput`.
    pub async fn bind(config: ServerConfig) -> io::Result<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| io::Error::other(format!("random key: {e}")))?;
        let seed = getrandom::u64().map_err(|e| io::Error::other(format!("random seed: {e}")))?;
        let tracker = Tracker::new(config.tracker, key, seed, Instant::now().into_std())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let socket = UdpSocket::bind(config.listen).await?;
        Ok(Self {
            socket,
            tracker,
            stats_period: config.stats_period,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves until `stop` completes. Receive and send errors are logged and
    /// survived; a datagram is never worth stopping the tracker for.
    pub async fn run(mut self, stop: impl Future<Output = ()>) -> io::Result<()> {
        let local = self.socket.local_addr()?;
        tracing::info!(%local, "tracker listening");
        let ipv6_socket = local.is_ipv6();
        // One byte more than the largest request, so a longer datagram is
        // seen as too long instead of silently truncated into a valid one.
        let mut buf = vec![0u8; MAX_REQUEST_LEN + 1];
        let mut stats = tokio::time::interval(self.stats_period);
        stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            let wake = Instant::from_std(self.tracker.poll_timeout());
            tokio::select! {
                biased;
                () = &mut stop => break,
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => {
                        let datagram = buf.get(..n).unwrap_or_default();
                        self.tracker.handle_datagram(Instant::now().into_std(), from, datagram);
                        self.flush(ipv6_socket).await;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "receive failed");
                        // Do not spin on an error that repeats.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                () = tokio::time::sleep_until(wake) => {
                    self.tracker.handle_timeout(Instant::now().into_std());
                }
                _ = stats.tick() => {
                    let s = self.tracker.stats();
                    tracing::debug!(
                        swarms = s.swarms,
                        peers = s.peers,
                        datagrams = s.datagrams,
                        dropped = s.dropped,
                        rate_limited = s.rate_limited,
                        announces = s.announces,
                        refused = s.refused,
                        punches = s.punches,
                        errors = s.errors,
                        "tracker stats"
                    );
                }
            }
        }
        tracing::info!("tracker stopped");
        Ok(())
    }

    async fn flush(&mut self, ipv6_socket: bool) {
        while let Some(t) = self.tracker.poll_transmit() {
            let destination = match t.destination {
                // The state speaks plain IPv4; a dual-stack socket needs the
                // mapped form.
                SocketAddr::V4(v4) if ipv6_socket => {
                    SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
                }
                other => other,
            };
            if let Err(e) = self.socket.send_to(&t.payload, destination).await {
                tracing::debug!(%destination, error = %e, "send failed");
            }
        }
    }

    /// Counters and table sizes so far.
    pub fn stats(&self) -> tracker_proto::Stats {
        self.tracker.stats()
    }
}

#[cfg(test)]
mod tests {
    use tracker_proto::{Family, Request, Response};

    use super::*;

    #[tokio::test]
    async fn serves_connect_and_stops() {
        let server = Server::bind(ServerConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stop_rx.await;
        }));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut req = Vec::new();
        Request::Connect { transaction_id: 5 }.write(&mut req);
        // Garbage first: it must be ignored, not answered, not fatal.
        client.send_to(b"hello", addr).await.unwrap();
        client.send_to(&req, addr).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            Response::parse(&buf[..n], Family::V4),
            Ok(Response::Connect {
                transaction_id: 5,
                ..
            })
        ));
        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn bad_config_is_invalid_input() {
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
        config.tracker.interval = Duration::ZERO;
        let err = Server::bind(config).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
