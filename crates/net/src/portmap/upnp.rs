//! UPnP IGD through `igd-next`: SSDP search, then SOAP calls to the gateway.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use igd_next::aio::Gateway;
use igd_next::aio::tokio::{Tokio, search_gateway};
use igd_next::{AddAnyPortError, AddPortError, PortMappingProtocol, SearchOptions};

use super::{PortMapConfig, PortMapError, Proto, route};

/// The mappings we hold on one UPnP gateway.
#[derive(Debug)]
pub(crate) struct UpnpMapping {
    gateway: Gateway<Tokio>,
    /// Our address and port, where the gateway forwards to.
    local: SocketAddr,
    external_ip: IpAddr,
    tcp: u16,
    /// `None` if the gateway refused the UDP mapping (TCP alone still helps).
    udp: Option<u16>,
    /// Seconds we ask for; 0 once the gateway said it only does permanent
    /// leases.
    lease: u32,
}

impl UpnpMapping {
    /// Finds a gateway by SSDP and maps `config.port` for TCP and UDP.
    /// Returns the mapping and, if only TCP could be mapped, why UDP failed.
    pub(crate) async fn map(
        config: &PortMapConfig,
    ) -> Result<(Self, Option<PortMapError>), PortMapError> {
        let mut options = SearchOptions::default();
        options.timeout = Some(config.discovery_timeout);
        options.single_search_timeout = Some(config.discovery_timeout);
        let gateway = search_gateway(options)
            .await
            .map_err(PortMapError::UpnpSearch)?;
        let local_ip = match config.local_ip {
            Some(ip) => IpAddr::V4(ip),
            None => {
                route::local_ip_towards(gateway.addr.ip()).map_err(PortMapError::LocalAddress)?
            }
        };
        let local = SocketAddr::new(local_ip, config.port);
        let external_ip = gateway
            .get_external_ip()
            .await
            .map_err(PortMapError::UpnpExternalIp)?;
        let mut lease = secs(config.upnp_lease);
        let tcp = map_one(
            &gateway,
            PortMappingProtocol::TCP,
            config.port,
            local,
            &mut lease,
            &config.description,
        )
        .await?;
        // The same external port for UDP if we can: one number to tell peers.
        let (udp, udp_error) = match map_one(
            &gateway,
            PortMappingProtocol::UDP,
            tcp,
            local,
            &mut lease,
            &config.description,
        )
        .await
        {
            Ok(port) => (Some(port), None),
            Err(e) => (None, Some(e)),
        };
        let mapping = Self {
            gateway,
            local,
            external_ip,
            tcp,
            udp,
            lease,
        };
        Ok((mapping, udp_error))
    }

    /// Asks for the same mappings again, which extends their lease (and
    /// recreates them if the gateway lost them). The external IP is asked
    /// again too: it may have changed.
    pub(crate) async fn renew(&mut self, description: &str) -> Result<(), PortMapError> {
        self.external_ip = self
            .gateway
            .get_external_ip()
            .await
            .map_err(PortMapError::UpnpExternalIp)?;
        self.renew_one(PortMappingProtocol::TCP, self.tcp, description)
            .await?;
        if let Some(udp) = self.udp {
            self.renew_one(PortMappingProtocol::UDP, udp, description)
                .await?;
        }
        Ok(())
    }

    async fn renew_one(
        &self,
        protocol: PortMappingProtocol,
        external: u16,
        description: &str,
    ) -> Result<(), PortMapError> {
        self.gateway
            .add_port(protocol, external, self.local, self.lease, description)
            .await
            .map_err(|source| PortMapError::UpnpAddPort {
                protocol: proto(protocol),
                source,
            })
    }

    /// Deletes both mappings; errors are logged, not returned: at exit there
    /// is nothing more to do, and the lease ends them anyway.
    pub(crate) async fn remove(self) {
        let tcp = self.gateway.remove_port(PortMappingProtocol::TCP, self.tcp);
        let udp = async {
            match self.udp {
                Some(port) => Some(
                    self.gateway
                        .remove_port(PortMappingProtocol::UDP, port)
                        .await,
                ),
                None => None,
            }
        };
        let (tcp, udp) = tokio::join!(tcp, udp);
        if let Err(e) = tcp {
            tracing::debug!(error = %e, "removing the UPnP TCP mapping");
        }
        if let Some(Err(e)) = udp {
            tracing::debug!(error = %e, "removing the UPnP UDP mapping");
        }
    }

    pub(crate) fn gateway(&self) -> IpAddr {
        self.gateway.addr.ip()
    }

    pub(crate) fn tcp(&self) -> SocketAddr {
        SocketAddr::new(self.external_ip, self.tcp)
    }

    pub(crate) fn udp(&self) -> Option<SocketAddr> {
        self.udp.map(|p| SocketAddr::new(self.external_ip, p))
    }

    /// The lease the gateway holds the mappings for (0: permanent).
    pub(crate) fn lease(&self) -> Duration {
        Duration::from_secs(self.lease.into())
    }
}

/// Maps `external` (else any port) to `local`. A gateway that takes only
/// permanent leases gets one, and `lease` becomes 0 for the renewals.
async fn map_one(
    gateway: &Gateway<Tokio>,
    protocol: PortMappingProtocol,
    external: u16,
    local: SocketAddr,
    lease: &mut u32,
    description: &str,
) -> Result<u16, PortMapError> {
    let add = |lease| gateway.add_port(protocol, external, local, lease, description);
    let mut result = add(*lease).await;
    if matches!(result, Err(AddPortError::OnlyPermanentLeasesSupported)) {
        *lease = 0;
        result = add(0).await;
    }
    match result {
        Ok(()) => return Ok(external),
        // Someone else has that port, or the gateway does not let us pick
        // (SamePortValuesRequired is when the gateway wants external =
        // internal and external ≠ internal, e.g. UDP after TCP got another
        // port): let it choose.
        Err(AddPortError::PortInUse | AddPortError::SamePortValuesRequired) => {}
        Err(source) => {
            return Err(PortMapError::UpnpAddPort {
                protocol: proto(protocol),
                source,
            });
        }
    }
    let any = |lease| gateway.add_any_port(protocol, local, lease, description);
    let mut result = any(*lease).await;
    if matches!(result, Err(AddAnyPortError::OnlyPermanentLeasesSupported)) {
        *lease = 0;
        result = any(0).await;
    }
    result.map_err(|source| PortMapError::UpnpAddAnyPort {
        protocol: proto(protocol),
        source,
    })
}

fn proto(p: PortMappingProtocol) -> Proto {
    match p {
        PortMappingProtocol::TCP => Proto::Tcp,
        PortMappingProtocol::UDP => Proto::Udp,
    }
}

/// A lease in whole seconds, at least 1 (0 would ask for a permanent one).
fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1)
}
