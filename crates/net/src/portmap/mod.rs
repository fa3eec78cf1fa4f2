//! Port mapping on the home gateway: UPnP IGD first, then PCP / NAT-PMP.
//!
//! # Brief overview
//!
//! [`PortMapper::start`] spawns one task that asks the gateway to forward our
//! listen port, TCP (the listener) and UDP (the QUIC carrier, same number),
//! from the gateway's public address to us:
//!
//! 1. UPnP: an SSDP search (multicast on the LAN), then `AddPortMapping` for
//!    external port = local port, or any port the gateway picks if that one
//!    is taken; the external IP from `GetExternalIPAddress`.
//! 2. Else PCP, falling back to NAT-PMP, to the default gateway of
//!    `/proc/net/route` on UDP port 5351; the external IP comes with the PCP
//!    answer (NAT-PMP: one more request).
//!
//! It renews at half the granted lease, starts over when a renewal fails,
//! looks again with backoff while there is no gateway (networks change), and
//! removes its mappings on [`PortMapper::shutdown`] (bounded by
//! [`PortMapConfig::shutdown_timeout`]). [`PortMapper::status`] shows what is
//! mapped. IPv4 only: IPv6 needs no translation.
//!
//! ```no_run
//! # async fn demo() {
//! let mapper = net::portmap::PortMapper::start(net::portmap::PortMapConfig::new(21025));
//! // … later, e.g. to tell a tracker or show in `status`:
//! if let Some(public) = mapper.status().tcp {
//!     println!("reachable at {public}");
//! }
//! mapper.shutdown().await;
//! # }
//! ```
//!
//! The rules are in `docs/protocol/discovery.md`, "Port mapping".

mod pcp;
mod route;
mod schedule;
mod upnp;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use pcp::PcpMapping;
use schedule::{Next, Schedule};
use upnp::UpnpMapping;

/// The lease asked of a UPnP gateway.
pub const DEFAULT_UPNP_LEASE: Duration = Duration::from_secs(3600);
/// The lifetime asked of a PCP / NAT-PMP gateway (RFC 6886's recommendation).
pub const DEFAULT_PMP_LEASE: Duration = Duration::from_secs(7200);

/// What [`PortMapper::start`] maps, where, and its timing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PortMapConfig {
    /// The local port, mapped for both TCP and UDP.
    pub port: u16,
    /// Try UPnP IGD.
    pub upnp: bool,
    /// Try PCP (and NAT-PMP, its fallback).
    pub pcp: bool,
    /// Lease asked of a UPnP gateway ([`DEFAULT_UPNP_LEASE`]).
    pub upnp_lease: Duration,
    /// Lifetime asked of a PCP / NAT-PMP gateway ([`DEFAULT_PMP_LEASE`]).
    pub pmp_lease: Duration,
    /// The address the gateway forwards to; `None`: ours on the path to the
    /// gateway.
    pub local_ip: Option<Ipv4Addr>,
    /// The PCP / NAT-PMP gateway; `None`: the default route's next hop.
    pub gateway: Option<Ipv4Addr>,
    /// How long to wait for a gateway's answer, per protocol and attempt.
    pub discovery_timeout: Duration,
    /// First delay before looking again when no gateway answered.
    pub retry_min: Duration,
    /// Longest delay between two looks.
    pub retry_max: Duration,
    /// Bound on removing the mappings at shutdown, so exit is not delayed.
    pub shutdown_timeout: Duration,
    /// The mapping's description on UPnP gateways (shown in router UIs).
    pub description: String,
}

impl PortMapConfig {
    /// Defaults for mapping `port`: both protocols, leases of 1 h (UPnP) and
    /// 2 h (PCP / NAT-PMP), 3 s per discovery, retries from 30 s to 5 min,
    /// 2 s to remove at shutdown.
    pub fn new(port: u16) -> Self {
        Self {
            port,
            upnp: true,
            pcp: true,
            upnp_lease: DEFAULT_UPNP_LEASE,
            pmp_lease: DEFAULT_PMP_LEASE,
            local_ip: None,
            gateway: None,
            discovery_timeout: Duration::from_secs(3),
            retry_min: Duration::from_secs(30),
            retry_max: Duration::from_secs(300),
            shutdown_timeout: Duration::from_secs(2),
            description: "swarmsync".into(),
        }
    }
}

impl PortMapConfig {
    /// The defaults for a listener bound to `listen`, or `None` when mapping
    /// makes no sense for it: port 0, a loopback address, or a specific IPv6
    /// address (IPv6 is not translated). A specific IPv4 address becomes
    /// [`PortMapConfig::local_ip`].
    pub fn for_listener(listen: SocketAddr) -> Option<Self> {
        if listen.port() == 0 || listen.ip().is_loopback() {
            return None;
        }
        let local_ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => None,
            IpAddr::V4(ip) => Some(ip),
            // `[::]` usually accepts IPv4 too (dual stack).
            IpAddr::V6(ip) if ip.is_unspecified() => None,
            IpAddr::V6(_) => return None,
        };
        let mut config = Self::new(listen.port());
        config.local_ip = local_ip;
        Some(config)
    }
}

/// The protocol a mapping was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortMapProtocol {
    /// UPnP Internet Gateway Device.
    Upnp,
    /// NAT Port Mapping Protocol (RFC 6886).
    NatPmp,
    /// Port Control Protocol (RFC 6887).
    Pcp,
}

impl PortMapProtocol {
    /// `"upnp"`, `"nat-pmp"` or `"pcp"`, as `status` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upnp => "upnp",
            Self::NatPmp => "nat-pmp",
            Self::Pcp => "pcp",
        }
    }
}

impl fmt::Display for PortMapProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is mapped now. All `None` until a gateway has answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortMapStatus {
    /// The protocol of the current mapping.
    pub protocol: Option<PortMapProtocol>,
    /// Public address that reaches our TCP port.
    pub tcp: Option<SocketAddr>,
    /// Public address that reaches our UDP port.
    pub udp: Option<SocketAddr>,
    /// The gateway holding the mapping.
    pub gateway: Option<IpAddr>,
    /// The lease the gateway granted (zero: permanent).
    pub lease: Option<Duration>,
    /// The latest failure (cleared by a full success), with its causes.
    pub last_error: Option<String>,
}

impl PortMapStatus {
    /// The public IP the gateway reported, if mapped.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.tcp.map(|a| a.ip())
    }
}

/// Why a mapping step failed (shown in [`PortMapStatus::last_error`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PortMapError {
    #[error("port 0 cannot be mapped")]
    PortZero,
    #[error("UPnP and PCP / NAT-PMP are both off")]
    Disabled,
    #[error("reading /proc/net/route")]
    RouteTable(#[source] std::io::Error),
    #[error("no IPv4 default route")]
    NoDefaultRoute,
    #[error("finding our address towards the gateway")]
    LocalAddress(#[source] std::io::Error),
    #[error("UPnP gateway search")]
    UpnpSearch(#[source] igd_next::SearchError),
    #[error("UPnP GetExternalIPAddress")]
    UpnpExternalIp(#[source] igd_next::GetExternalIpError),
    #[error("UPnP AddPortMapping ({protocol})")]
    UpnpAddPort {
        protocol: Proto,
        #[source]
        source: igd_next::AddPortError,
    },
    #[error("UPnP AddAnyPortMapping ({protocol})")]
    UpnpAddAnyPort {
        protocol: Proto,
        #[source]
        source: igd_next::AddAnyPortError,
    },
    #[error("PCP / NAT-PMP mapping ({protocol})")]
    Pcp {
        protocol: Proto,
        #[source]
        source: crab_nat::MappingFailure,
    },
    #[error("NAT-PMP external address")]
    NatPmpExternalIp(#[source] crab_nat::natpmp::Failure),
}

/// TCP or UDP, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        })
    }
}

/// `e` and its causes, `": "`-joined (status shows one line).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Some errors print their cause themselves; do not say it twice.
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The port-mapping task's handle. Dropping it tells the task to remove the
/// mappings in the background (if the runtime outlives it; else the leases
/// end them); [`PortMapper::shutdown`] waits for the removal.
#[derive(Debug)]
pub struct PortMapper {
    status: watch::Receiver<PortMapStatus>,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl PortMapper {
    /// Starts mapping `config.port`. Must be called inside a tokio runtime.
    /// Never fails: problems show in [`PortMapStatus::last_error`], and the
    /// task keeps looking for a gateway.
    pub fn start(config: PortMapConfig) -> Self {
        let (status_tx, status) = watch::channel(PortMapStatus::default());
        let (stop, stop_rx) = watch::channel(false);
        let shutdown_timeout = config.shutdown_timeout;
        let task = tokio::spawn(run(config, status_tx, stop_rx));
        Self {
            status,
            stop: Some(stop),
            task: Some(task),
            shutdown_timeout,
        }
    }

    /// What is mapped now.
    pub fn status(&self) -> PortMapStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every change of [`PortMapper::status`] (e.g. to
    /// announce the public address once it is known).
    pub fn watch(&self) -> watch::Receiver<PortMapStatus> {
        self.status.clone()
    }

    /// Stops the task and removes the mappings from the gateway, waiting at
    /// most [`PortMapConfig::shutdown_timeout`] (plus a little) for that.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(mut task) = self.task.take() {
            // The task bounds its removal itself; this is the backstop.
            let bound = self.shutdown_timeout + Duration::from_millis(500);
            if tokio::time::timeout(bound, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for PortMapper {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

/// A mapping held on one gateway.
#[derive(Debug)]
enum Mapping {
    Upnp(UpnpMapping),
    Pcp(PcpMapping),
}

impl Mapping {
    fn status(&self, last_error: Option<String>) -> PortMapStatus {
        let (protocol, tcp, udp, gateway, lease) = match self {
            Self::Upnp(m) => (
                PortMapProtocol::Upnp,
                m.tcp(),
                m.udp(),
                m.gateway(),
                m.lease(),
            ),
            Self::Pcp(m) => (m.protocol(), m.tcp(), m.udp(), m.gateway(), m.lease()),
        };
        PortMapStatus {
            protocol: Some(protocol),
            tcp: Some(tcp),
            udp,
            gateway: Some(gateway),
            lease: Some(lease),
            last_error,
        }
    }

    fn lease(&self) -> Duration {
        match self {
            Self::Upnp(m) => m.lease(),
            Self::Pcp(m) => m.lease(),
        }
    }

    async fn renew(&mut self, config: &PortMapConfig) -> Result<(), PortMapError> {
        match self {
            Self::Upnp(m) => m.renew(&config.description).await,
            Self::Pcp(m) => m.renew().await,
        }
    }

    async fn remove(self) {
        match self {
            Self::Upnp(m) => m.remove().await,
            Self::Pcp(m) => m.remove().await,
        }
    }
}

/// One attempt: UPnP, then PCP / NAT-PMP. On success, also why UDP could
/// not be mapped, if it could not.
async fn map(config: &PortMapConfig) -> Result<(Mapping, Option<PortMapError>), PortMapError> {
    if config.port == 0 {
        return Err(PortMapError::PortZero);
    }
    let mut first_error = None;
    if config.upnp {
        match UpnpMapping::map(config).await {
            Ok((m, udp)) => return Ok((Mapping::Upnp(m), udp)),
            Err(e) => {
                tracing::debug!(error = %chain(&e), "no UPnP mapping");
                first_error = Some(e);
            }
        }
    }
    if config.pcp {
        match PcpMapping::map(config).await {
            Ok((m, udp)) => return Ok((Mapping::Pcp(m), udp)),
            Err(e) => {
                tracing::debug!(error = %chain(&e), "no PCP / NAT-PMP mapping");
                // The later failure says more when UPnP merely found nothing.
                first_error = Some(e);
            }
        }
    }
    Err(first_error.unwrap_or(PortMapError::Disabled))
}

/// The task: map, renew, retry; remove at stop.
async fn run(
    config: PortMapConfig,
    status: watch::Sender<PortMapStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut schedule = Schedule::new(config.retry_min, config.retry_max);
    let mut mapping: Option<Mapping> = None;
    let mut next = Next::Discover(Duration::ZERO);
    loop {
        let wait = match next {
            Next::Renew(d) | Next::Discover(d) => d,
        };
        // Stop first: the handle was dropped or said so.
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep(wait) => {}
        }
        // A step talks to the gateway (seconds at most); stop may cut it
        // short. A renewal cut short leaves `mapping` in place, to be
        // removed; a first mapping cut short is lost to us, and its lease
        // ends it.
        let step = step(&config, next, &mut mapping, &mut schedule, &status);
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            n = step => next = n,
        }
    }
    if let Some(m) = mapping
        && tokio::time::timeout(config.shutdown_timeout, m.remove())
            .await
            .is_err()
    {
        tracing::debug!("removing the port mapping timed out");
    }
    status.send_replace(PortMapStatus::default());
}

/// Renews `mapping` if `next` says so and there is one, else maps afresh;
/// publishes the outcome and says what follows.
async fn step(
    config: &PortMapConfig,
    next: Next,
    mapping: &mut Option<Mapping>,
    schedule: &mut Schedule,
    status: &watch::Sender<PortMapStatus>,
) -> Next {
    if let (Next::Renew(_), Some(m)) = (next, mapping.as_mut()) {
        return match m.renew(config).await {
            Ok(()) => {
                // A UDP failure reported at mapping time still holds.
                let kept = status.borrow().last_error.clone();
                status.send_replace(m.status(kept));
                schedule.mapped(m.lease(), requested(m, config))
            }
            Err(e) => {
                tracing::info!(error = %chain(&e), "port mapping renewal failed");
                status.send_replace(PortMapStatus {
                    last_error: Some(chain(&e)),
                    ..PortMapStatus::default()
                });
                // Not removed: the gateway may have forgotten it, or may
                // give the same port to the fresh mapping that follows; a
                // lingering one ends with its lease.
                *mapping = None;
                schedule.renewal_failed()
            }
        };
    }
    match map(config).await {
        Ok((m, udp_error)) => {
            let s = m.status(udp_error.as_ref().map(|e| chain(e)));
            tracing::info!(protocol = ?s.protocol, tcp = ?s.tcp, udp = ?s.udp, "port mapped");
            status.send_replace(s);
            let n = schedule.mapped(m.lease(), requested(&m, config));
            *mapping = Some(m);
            n
        }
        Err(e) => {
            tracing::debug!(error = %chain(&e), "no port mapping");
            status.send_replace(PortMapStatus {
                last_error: Some(chain(&e)),
                ..PortMapStatus::default()
            });
            schedule.failed()
        }
    }
}

/// The lease we asked for the protocol of `m`.
fn requested(m: &Mapping, config: &PortMapConfig) -> Duration {
    match m {
        Mapping::Upnp(_) => config.upnp_lease,
        Mapping::Pcp(_) => config.pmp_lease,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_worth_mapping() {
        let config = |a: &str| PortMapConfig::for_listener(a.parse().unwrap());
        assert_eq!(
            config("0.0.0.0:21025").map(|c| (c.port, c.local_ip)),
            Some((21025, None))
        );
        assert_eq!(
            config("192.168.1.5:21025").and_then(|c| c.local_ip),
            Some(Ipv4Addr::new(192, 168, 1, 5))
        );
        assert!(config("[::]:21025").is_some());
        assert!(config("127.0.0.1:21025").is_none());
        assert!(config("[::1]:21025").is_none());
        assert!(config("[2001:db8::1]:21025").is_none());
        assert!(config("0.0.0.0:0").is_none());
    }

    #[test]
    fn error_chain_names_each_cause_once() {
        let e = PortMapError::LocalAddress(std::io::Error::other("no route"));
        assert_eq!(
            chain(&e),
            "finding our address towards the gateway: no route"
        );
    }

    #[tokio::test]
    async fn nothing_to_try_is_reported_and_shutdown_is_quick() {
        let mut config = PortMapConfig::new(21025);
        config.upnp = false;
        config.pcp = false;
        let mapper = PortMapper::start(config);
        let mut status = mapper.watch();
        let seen = tokio::time::timeout(
            Duration::from_secs(5),
            status.wait_for(|s| s.last_error.is_some()),
        )
        .await
        .unwrap()
        .unwrap()
        .clone();
        assert_eq!(
            seen.last_error.as_deref(),
            Some("UPnP and PCP / NAT-PMP are both off")
        );
        assert_eq!(seen.tcp, None);
        tokio::time::timeout(Duration::from_secs(1), mapper.shutdown())
            .await
            .unwrap();
    }
}
