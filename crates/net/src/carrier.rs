//! What a channel runs on: one byte stream, whichever transport carries it.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::quic::QuicStream;

/// The transports a channel can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CarrierKind {
    /// A direct TCP connection.
    Tcp,
    /// A direct QUIC connection over UDP (one bidirectional stream).
    Quic,
    /// A TCP connection to a relay, spliced to the peer's.
    Relay,
}

impl CarrierKind {
    /// Its name in status and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Quic => "quic",
            Self::Relay => "relay",
        }
    }

    /// Whether the bytes go straight to the peer (not through a relay).
    pub fn is_direct(self) -> bool {
        !matches!(self, Self::Relay)
    }
}

impl fmt::Display for CarrierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The byte stream under a channel.
#[derive(Debug)]
pub enum Carrier {
    /// Direct TCP.
    Tcp(TcpStream),
    /// Direct QUIC.
    Quic(QuicStream),
    /// TCP through a relay.
    Relay(TcpStream),
}

impl Carrier {
    /// Which transport it is.
    pub fn kind(&self) -> CarrierKind {
        match self {
            Self::Tcp(_) => CarrierKind::Tcp,
            Self::Quic(_) => CarrierKind::Quic,
            Self::Relay(_) => CarrierKind::Relay,
        }
    }
}

impl AsyncRead for Carrier {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) | Self::Relay(s) => Pin::new(s).poll_read(cx, buf),
            Self::Quic(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Carrier {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) | Self::Relay(s) => Pin::new(s).poll_write(cx, buf),
            Self::Quic(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) | Self::Relay(s) => Pin::new(s).poll_flush(cx),
            Self::Quic(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) | Self::Relay(s) => Pin::new(s).poll_shutdown(cx),
            Self::Quic(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) | Self::Relay(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Quic(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) | Self::Relay(s) => s.is_write_vectored(),
            Self::Quic(s) => s.is_write_vectored(),
        }
    }
}
