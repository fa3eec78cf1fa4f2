//! The UDP carrier: QUIC (quinn) on the same port number as TCP, one
//! bidirectional stream per connection, our channel inside it.
//!
//! QUIC requires TLS 1.3. Its certificate is a throwaway self-signed one made
//! at start and accepted without checks: TLS here only gives QUIC its packet
//! protection and congestion-controlled streams. Who the peer is and what it
//! may do is proven by the SRP channel that runs inside the stream, end to
//! end, exactly as on TCP (its own AES-GCM records included), so a party in
//! the middle of the TLS session learns and changes nothing
//! (`docs/protocol/wire.md`, carriers).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// ALPN of swarmsync over QUIC; anything else is refused by TLS.
pub const ALPN: &[u8] = b"swarmsync/1";
/// The server name the dialer puts in its TLS hello (not checked).
const SERVER_NAME: &str = "swarmsync";
/// A connection that carries nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Keepalives well inside the idle timeout and typical NAT UDP timeouts (30 s+).
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Flow-control windows: enough for a fast long-distance link (16 MiB in
/// flight is 1.3 Gbit/s at 100 ms), bounded per connection.
const STREAM_WINDOW: u32 = 16 << 20;
const CONNECTION_WINDOW: u32 = 24 << 20;

/// Completes once the peer has received everything we sent (or the stream
/// or connection is gone).
type Delivered = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// One QUIC connection's single bidirectional stream.
pub struct QuicStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    /// Kept so the connection lives as long as the stream.
    connection: quinn::Connection,
    /// Set by the first `poll_shutdown`.
    closing: Option<Delivered>,
}

impl std::fmt::Debug for QuicStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicStream")
            .field("remote", &self.connection.remote_address())
            .field("closing", &self.closing.is_some())
            .finish_non_exhaustive()
    }
}

impl QuicStream {
    /// The peer's address (it may change: QUIC survives migrations).
    pub fn remote(&self) -> SocketAddr {
        self.connection.remote_address()
    }
}

impl AsyncRead for QuicStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.get_mut().send), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().send), cx)
    }

    /// Finishes the stream and waits until the peer has it all: unlike a TCP
    /// socket's, a QUIC connection's unsent data dies with the process, so a
    /// last message (the channel's authenticated close) would be lost.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let closing = this.closing.get_or_insert_with(|| {
            // Already finished or reset: nothing more will be sent anyway.
            let _ = this.send.finish();
            let stopped = this.send.stopped();
            Box::pin(async move {
                let _ = stopped.await;
            })
        });
        closing.as_mut().poll(cx).map(Ok)
    }
}

/// A QUIC endpoint that both dials and accepts, on `socket` (bound by the
/// caller to the TCP listener's port number).
pub fn endpoint(socket: std::net::UdpSocket) -> io::Result<quinn::Endpoint> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
        .map_err(io::Error::other)?;
    let cert = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());

    let mut server_tls = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key.into())
        .map_err(io::Error::other)?;
    server_tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(server_tls).map_err(io::Error::other)?,
    ));
    server.transport_config(transport());

    let mut client_tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    client_tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut client = quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(client_tls).map_err(io::Error::other)?,
    ));
    client.transport_config(transport());

    let mut endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    // Both values are far below the varint limits, so neither conversion fails.
    t.max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    t.keep_alive_interval(Some(KEEPALIVE));
    t.stream_receive_window(quinn::VarInt::from_u32(STREAM_WINDOW));
    t.receive_window(quinn::VarInt::from_u32(CONNECTION_WINDOW));
    t.send_window(u64::from(CONNECTION_WINDOW));
    // One stream per connection, opened by the dialer.
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(1));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    // BBR, not quinn's default Cubic: on a 40 ms path with 1 % random loss (Wi-Fi,
    // mobile) Cubic gets 2 % of the link and BBR 28 %, with the same rate on a
    // clean link (docs/BENCHMARKS.md, Carriers). quinn marks its BBR experimental;
    // the carrier tests and the benchmark exercise it.
    t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    Arc::new(t)
}

/// Connects to `addr` and opens the stream, within `timeout`.
pub async fn dial(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<QuicStream> {
    let connect = async {
        let connection = endpoint
            .connect(addr, SERVER_NAME)
            .map_err(io::Error::other)?
            .await
            .map_err(io::Error::other)?;
        let (send, recv) = connection.open_bi().await.map_err(io::Error::other)?;
        Ok(QuicStream {
            send,
            recv,
            connection,
            closing: None,
        })
    };
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "QUIC connect timed out"))?
}

/// Completes an incoming connection and takes the stream its dialer opens,
/// within `timeout` (the dialer writes at once).
pub async fn accept(incoming: quinn::Incoming, timeout: Duration) -> io::Result<QuicStream> {
    let accept = async {
        let connection = incoming.await.map_err(io::Error::other)?;
        let (send, recv) = connection.accept_bi().await.map_err(io::Error::other)?;
        Ok(QuicStream {
            send,
            recv,
            connection,
            closing: None,
        })
    };
    tokio::time::timeout(timeout, accept)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "QUIC accept timed out"))?
}

/// Accepts any certificate, but still checks the handshake signatures made
/// with it (so the TLS session itself is sound); identity comes from the
/// channel.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn local_endpoint() -> quinn::Endpoint {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        endpoint(socket).unwrap()
    }

    #[tokio::test]
    async fn a_stream_carries_bytes_both_ways() {
        let (a, b) = (local_endpoint(), local_endpoint());
        let b_addr = b.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let incoming = b.accept().await.unwrap();
            let mut stream = accept(incoming, Duration::from_secs(5)).await.unwrap();
            let mut got = vec![0u8; 1 << 20];
            stream.read_exact(&mut got).await.unwrap();
            stream.write_all(b"done").await.unwrap();
            stream.shutdown().await.unwrap();
            // Keep the endpoint until the dialer has read everything.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
            got
        });
        let mut stream = dial(&a, b_addr, Duration::from_secs(5)).await.unwrap();
        let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
        stream.write_all(&data).await.unwrap();
        let mut answer = [0u8; 4];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"done");
        stream.shutdown().await.unwrap();
        assert_eq!(server.await.unwrap(), data);
    }

    #[tokio::test]
    async fn dialing_nobody_times_out() {
        let a = local_endpoint();
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = dial(&a, silent.local_addr().unwrap(), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
