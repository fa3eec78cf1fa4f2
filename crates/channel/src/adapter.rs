//! The thin tokio adapter: drives [`Handshake`] and [`Session`] over any
//! `AsyncRead + AsyncWrite`, whoever dialed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::{ChannelConfig, ChannelError, Handshake, OsRandom, Session};

/// Plaintext accepted per `poll_write` (the rest waits for the next call).
const MAX_WRITE: usize = 1024 * 1024;
/// Bytes read from the stream at once (straight into the session's buffer).
const READ_BUF: usize = 256 * 1024;
/// How long we try to deliver a failure alert before giving up.
const ALERT_GRACE: Duration = Duration::from_secs(1);

/// Runs the handshake over `stream` (dialed or accepted, it does not matter) with
/// the OS random source, within the configured handshake timeout.
pub async fn establish<S>(
    mut stream: S,
    config: &ChannelConfig,
) -> Result<SecureStream<S>, ChannelError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hs = Handshake::new(config, Instant::now(), &mut OsRandom)?;
    let deadline = hs
        .poll_timeout()
        .unwrap_or_else(|| Instant::now() + config.handshake_timeout);
    let driven = tokio::time::timeout_at(deadline.into(), drive(&mut stream, &mut hs)).await;
    let error = match driven {
        Ok(Ok(session)) => return Ok(SecureStream::new(stream, session)),
        Ok(Err(e)) => e,
        Err(_elapsed) => match hs.handle_timeout(Instant::now().max(deadline)) {
            Err(e) => e,
            Ok(()) => ChannelError::Timeout,
        },
    };
    // Best effort: tell the peer why (e.g. that authentication failed).
    if let Some(alert) = hs.poll_output() {
        let _ = tokio::time::timeout(ALERT_GRACE, async {
            stream.write_all(&alert).await?;
            stream.flush().await
        })
        .await;
    }
    Err(error)
}

async fn drive<S>(stream: &mut S, hs: &mut Handshake) -> Result<Session, ChannelError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some(out) = hs.poll_output() {
            stream.write_all(&out).await?;
            stream.flush().await?;
        }
        if let Some(session) = hs.take_session() {
            return Ok(session);
        }
        let n = stream.read(&mut buf).await?;
        match buf.get(..n) {
            Some([]) | None => hs.handle_eof()?,
            Some(bytes) => hs.handle_input(bytes)?,
        }
    }
}

/// An established channel over a tokio stream: read and write plaintext.
///
/// `shutdown` sends the authenticated close. A read returns end-of-file only after
/// the peer's authenticated close; a stream cut before it is an
/// `UnexpectedEof` error carrying [`ChannelError::Truncated`].
#[derive(Debug)]
pub struct SecureStream<S> {
    inner: S,
    session: Session,
}

impl<S> SecureStream<S> {
    fn new(inner: S, session: Session) -> Self {
        Self { inner, session }
    }

    /// The sans-IO session underneath (peer access, peer id, …).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The peer's verified access level.
    pub fn peer_access(&self) -> keys::Access {
        self.session.peer_access()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncWrite + Unpin> SecureStream<S> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.session.pending_output().is_empty() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, self.session.pending_output()))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.session.consume_output(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SecureStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.session.plaintext_len() > 0 {
                // Copied in place: `buf` is often uninitialised (`read_buf`),
                // and zeroing it first would cost as much as the copy.
                while buf.remaining() > 0 {
                    let chunk = this.session.plaintext();
                    let n = chunk.len().min(buf.remaining());
                    if n == 0 {
                        break;
                    }
                    buf.put_slice(chunk.get(..n).unwrap_or_default());
                    this.session.consume_plaintext(n);
                }
                return Poll::Ready(Ok(()));
            }
            if this.session.is_peer_closed() {
                return Poll::Ready(Ok(()));
            }
            if this.session.is_failed() {
                return Poll::Ready(Err(ChannelError::Failed.into()));
            }
            let mut rb = ReadBuf::new(this.session.input_buffer(READ_BUF));
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            match rb.filled().len() {
                0 => this.session.handle_eof()?,
                n => this.session.commit_input(n)?,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SecureStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Keep at most one batch queued: send what is pending first.
        ready!(this.poll_pending(cx))?;
        let take = buf.get(..buf.len().min(MAX_WRITE)).unwrap_or(buf);
        this.session.encrypt(take)?;
        // Start sending now; if the stream is full the bytes are still accepted.
        if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(take.len()))
    }

    /// Seals what the slices hold (up to `MAX_WRITE` bytes) into records,
    /// copying each byte once: a writer that gathers a frame header and a
    /// block's bytes never copies the block into a buffer of its own first.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(bufs.len());
        let mut taken = 0;
        for buf in bufs {
            let room = MAX_WRITE - taken;
            if room == 0 {
                break;
            }
            let part = buf.get(..buf.len().min(room)).unwrap_or(buf);
            taken += part.len();
            parts.push(part);
        }
        this.session.encrypt_gathered(&parts)?;
        if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.session.is_closed() && !this.session.is_failed() {
            this.session.close()?;
        }
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
