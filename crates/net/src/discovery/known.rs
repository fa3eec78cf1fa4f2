//! Known hosts: `HOST:PORT` values from the command line, resolved again from
//! time to time (a DNS name may move).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use keys::FolderId;
use tokio::net::lookup_host;

use super::{Candidate, Candidates, Discovery};

/// A `HOST:PORT` value that parsed (its name may still fail to resolve).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KnownHost {
    host: String,
    port: u16,
}

/// A malformed `HOST:PORT` value, named so the user can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KnownHostError {
    /// No `:PORT` part.
    #[error("{0:?} has no port (expected HOST:PORT, e.g. example.org:41544 or [::1]:41544)")]
    MissingPort(String),
    /// The port is not a number in 1..=65535.
    #[error("{value:?} has an invalid port {port:?} (expected 1-65535)")]
    BadPort {
        /// The whole value.
        value: String,
        /// The port part.
        port: String,
    },
    /// The host part is empty or malformed.
    #[error("{0:?} has an invalid host part")]
    BadHost(String),
}

impl KnownHost {
    /// The host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for KnownHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for KnownHost {
    type Err = KnownHostError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let s = value.trim();
        let shown = || s.chars().take(256).collect::<String>();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| KnownHostError::BadHost(shown()))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(KnownHostError::BadHost(shown()));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| KnownHostError::MissingPort(shown()))?;
            (host, port)
        } else {
            let (host, port) = s
                .rsplit_once(':')
                .ok_or_else(|| KnownHostError::MissingPort(shown()))?;
            // A bare IPv6 address without brackets is ambiguous.
            if host.contains(':') {
                return Err(KnownHostError::BadHost(shown()));
            }
            (host, port)
        };
        let valid_char =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '%');
        if host.is_empty() || !host.chars().all(valid_char) {
            return Err(KnownHostError::BadHost(shown()));
        }
        let bad_port = || KnownHostError::BadPort {
            value: shown(),
            port: port.chars().take(16).collect(),
        };
        let port: u16 = port.parse().map_err(|_| bad_port())?;
        if port == 0 {
            return Err(bad_port());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

/// The known-hosts source: the same hosts for every folder. A member behind
/// them is found by the handshake; a name is resolved again every
/// `resolve_interval`.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    hosts: Arc<[KnownHost]>,
    resolve_interval: Duration,
}

impl KnownHosts {
    /// Parses `values`; the first malformed one is the error.
    pub fn parse<S: AsRef<str>>(
        values: &[S],
        resolve_interval: Duration,
    ) -> Result<Self, KnownHostError> {
        let hosts = values
            .iter()
            .map(|v| v.as_ref().parse())
            .collect::<Result<Vec<KnownHost>, _>>()?;
        Ok(Self::new(hosts, resolve_interval))
    }

    /// A source for `hosts`.
    pub fn new(hosts: Vec<KnownHost>, resolve_interval: Duration) -> Self {
        Self {
            hosts: hosts.into(),
            resolve_interval: resolve_interval.max(Duration::from_secs(1)),
        }
    }

    /// Whether there is no host at all.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

impl Discovery for KnownHosts {
    fn name(&self) -> &'static str {
        "known"
    }

    fn subscribe(&self, folder: FolderId) -> Candidates {
        let (tx, rx) = Candidates::channel();
        let hosts = Arc::clone(&self.hosts);
        let interval = self.resolve_interval;
        tokio::spawn(async move {
            loop {
                for host in hosts.iter() {
                    match lookup_host((host.host.as_str(), host.port)).await {
                        Ok(addrs) => {
                            for addr in addrs {
                                let c = Candidate {
                                    folder,
                                    addr,
                                    peer: None,
                                    source: "known",
                                    lan: false,
                                };
                                if tx.send(c).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => tracing::warn!(%host, error = %e, "cannot resolve known host"),
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = tx.closed() => return,
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_forms() {
        let h: KnownHost = "example.org:41544".parse().unwrap();
        assert_eq!((h.host(), h.port()), ("example.org", 41544));
        let h: KnownHost = " [::1]:7 ".parse().unwrap();
        assert_eq!((h.host(), h.port()), ("::1", 7));
        assert_eq!(h.to_string(), "[::1]:7");
        let h: KnownHost = "10.0.0.1:80".parse().unwrap();
        assert_eq!(h.to_string(), "10.0.0.1:80");
    }

    #[test]
    fn rejects_bad_values_naming_them() {
        assert_eq!(
            "host".parse::<KnownHost>(),
            Err(KnownHostError::MissingPort("host".into()))
        );
        assert!(matches!(
            "host:0".parse::<KnownHost>(),
            Err(KnownHostError::BadPort { .. })
        ));
        assert!(matches!(
            "host:70000".parse::<KnownHost>(),
            Err(KnownHostError::BadPort { .. })
        ));
        assert!(matches!(
            "host:x".parse::<KnownHost>(),
            Err(KnownHostError::BadPort { .. })
        ));
        assert_eq!(
            ":80".parse::<KnownHost>(),
            Err(KnownHostError::BadHost(":80".into()))
        );
        assert!(matches!(
            "::1:80".parse::<KnownHost>(),
            Err(KnownHostError::BadHost(_))
        ));
        assert!(matches!(
            "[nope]:80".parse::<KnownHost>(),
            Err(KnownHostError::BadHost(_))
        ));
        assert!(matches!(
            "[::1]80".parse::<KnownHost>(),
            Err(KnownHostError::MissingPort(_))
        ));
        assert!(matches!(
            "a b:80".parse::<KnownHost>(),
            Err(KnownHostError::BadHost(_))
        ));
        let e = KnownHosts::parse(&["a:1", "b"], Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("\"b\""), "{e}");
    }
}
