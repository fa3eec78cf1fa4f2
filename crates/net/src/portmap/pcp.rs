//! PCP, falling back to NAT-PMP, through `crab_nat`: UDP requests to the
//! default gateway's port 5351.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::time::Duration;

use crab_nat::{
    InternetProtocol, PortMapping, PortMappingOptions, PortMappingType, TimeoutConfig, natpmp,
};

use super::{PortMapConfig, PortMapError, PortMapProtocol, Proto, route};

/// The mappings we hold on one PCP or NAT-PMP gateway.
#[derive(Debug)]
pub(crate) struct PcpMapping {
    gateway: Ipv4Addr,
    tcp: PortMapping,
    /// `None` if the gateway refused the UDP mapping.
    udp: Option<PortMapping>,
    external_ip: IpAddr,
    timeouts: TimeoutConfig,
}

impl PcpMapping {
    /// Maps `config.port` for TCP and UDP on the default gateway (or
    /// `config.gateway`). Returns the mapping and, if only TCP could be
    /// mapped, why UDP failed.
    pub(crate) async fn map(
        config: &PortMapConfig,
    ) -> Result<(Self, Option<PortMapError>), PortMapError> {
        let gateway = match config.gateway {
            Some(g) => g,
            None => route::default_gateway()
                .map_err(PortMapError::RouteTable)?
                .ok_or(PortMapError::NoDefaultRoute)?,
        };
        let client = match config.local_ip {
            Some(ip) => IpAddr::V4(ip),
            None => route::local_ip_towards(gateway.into()).map_err(PortMapError::LocalAddress)?,
        };
        let port = NonZeroU16::new(config.port).ok_or(PortMapError::PortZero)?;
        let timeouts = timeouts(config.discovery_timeout);
        let options = |external| PortMappingOptions {
            external_port: Some(external),
            lifetime_seconds: Some(secs(config.pmp_lease)),
            timeout_config: Some(timeouts),
        };
        let map = |protocol, external| {
            PortMapping::new(gateway.into(), client, protocol, port, options(external))
        };
        let tcp = map(InternetProtocol::Tcp, port)
            .await
            .map_err(|source| PortMapError::Pcp {
                protocol: Proto::Tcp,
                source,
            })?;
        // Ask for TCP's external port for UDP too: one number to tell peers.
        let (udp, udp_error) = match map(InternetProtocol::Udp, tcp.external_port()).await {
            Ok(m) => (Some(m), None),
            Err(source) => (
                None,
                Some(PortMapError::Pcp {
                    protocol: Proto::Udp,
                    source,
                }),
            ),
        };
        let external_ip = match tcp.mapping_type() {
            PortMappingType::Pcp { external_ip, .. } => external_ip,
            PortMappingType::NatPmp => natpmp::external_address(gateway.into(), Some(timeouts))
                .await
                .map(IpAddr::V4)
                .map_err(PortMapError::NatPmpExternalIp)?,
        };
        let mapping = Self {
            gateway,
            tcp,
            udp,
            external_ip,
            timeouts,
        };
        Ok((mapping, udp_error))
    }

    /// Renews both mappings (the gateway may move them to another external
    /// port; we read them back after). NAT-PMP's external IP is asked again.
    pub(crate) async fn renew(&mut self) -> Result<(), PortMapError> {
        self.tcp.renew().await.map_err(|source| PortMapError::Pcp {
            protocol: Proto::Tcp,
            source,
        })?;
        if let Some(udp) = &mut self.udp {
            udp.renew().await.map_err(|source| PortMapError::Pcp {
                protocol: Proto::Udp,
                source,
            })?;
        }
        self.external_ip = match self.tcp.mapping_type() {
            PortMappingType::Pcp { external_ip, .. } => external_ip,
            PortMappingType::NatPmp => {
                natpmp::external_address(self.gateway.into(), Some(self.timeouts))
                    .await
                    .map(IpAddr::V4)
                    .map_err(PortMapError::NatPmpExternalIp)?
            }
        };
        Ok(())
    }

    /// Deletes both mappings; failures are logged (the lease ends them).
    pub(crate) async fn remove(self) {
        let udp = async {
            match self.udp {
                Some(m) => Some(m.try_drop().await),
                None => None,
            }
        };
        let (tcp, udp) = tokio::join!(self.tcp.try_drop(), udp);
        if let Err((e, _)) = tcp {
            tracing::debug!(error = %e, "removing the TCP mapping");
        }
        if let Some(Err((e, _))) = udp {
            tracing::debug!(error = %e, "removing the UDP mapping");
        }
    }

    pub(crate) fn protocol(&self) -> PortMapProtocol {
        match self.tcp.mapping_type() {
            PortMappingType::NatPmp => PortMapProtocol::NatPmp,
            PortMappingType::Pcp { .. } => PortMapProtocol::Pcp,
        }
    }

    pub(crate) fn gateway(&self) -> IpAddr {
        self.gateway.into()
    }

    pub(crate) fn tcp(&self) -> SocketAddr {
        SocketAddr::new(self.external_ip, self.tcp.external_port().get())
    }

    pub(crate) fn udp(&self) -> Option<SocketAddr> {
        let udp = self.udp.as_ref()?;
        Some(SocketAddr::new(self.external_ip, udp.external_port().get()))
    }

    /// The shorter of the two granted lifetimes: renewals serve both.
    pub(crate) fn lease(&self) -> Duration {
        let tcp = self.tcp.lifetime();
        let lifetime = self.udp.as_ref().map_or(tcp, |u| u.lifetime().min(tcp));
        Duration::from_secs(lifetime.into())
    }
}

/// Request timing: a quick first retry, all tries together within about
/// `budget` so a network without such a gateway does not hold discovery up.
fn timeouts(budget: Duration) -> TimeoutConfig {
    let initial = (budget / 8).max(Duration::from_millis(50));
    TimeoutConfig {
        initial_timeout: initial,
        // initial · (1 + 2 + 4) ≈ budget.
        max_retries: 2,
        max_retry_timeout: Some(budget / 2),
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1)
}
