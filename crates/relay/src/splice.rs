//! Copying the bytes of one spliced pair: a fixed buffer per direction, a
//! token bucket per direction, and an idle timeout over both.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use relay_proto::TokenBucket;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How one pair is copied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpliceLimits {
    /// Bytes per second per direction; 0 is unlimited.
    pub(crate) rate: u64,
    /// Close after this long without a byte either way.
    pub(crate) idle: Duration,
    /// Buffer per direction.
    pub(crate) buffer: usize,
}

/// Why a splice ended, with the bytes moved each way.
#[derive(Debug)]
pub(crate) struct SpliceEnd {
    pub(crate) dialer_to_acceptor: u64,
    pub(crate) acceptor_to_dialer: u64,
    pub(crate) reason: &'static str,
}

/// Copies until both directions have ended, one fails, or nothing moves for
/// `limits.idle`. A direction that reaches end-of-file shuts the other
/// side's write half, so TCP half-close passes through.
pub(crate) async fn run(dialer: TcpStream, acceptor: TcpStream, limits: SpliceLimits) -> SpliceEnd {
    let start = Instant::now();
    // Milliseconds since `start` of the last byte moved, either way.
    let last = AtomicU64::new(0);
    let (mut dr, mut dw) = dialer.into_split();
    let (mut ar, mut aw) = acceptor.into_split();
    let d2a = AtomicU64::new(0);
    let a2d = AtomicU64::new(0);
    let copy = async {
        tokio::try_join!(
            direction(&mut dr, &mut aw, limits, start, &last, &d2a),
            direction(&mut ar, &mut dw, limits, start, &last, &a2d),
        )
    };
    let idle = async {
        loop {
            let since = Duration::from_millis(last.load(Ordering::Relaxed));
            let quiet = start.elapsed().saturating_sub(since);
            if quiet >= limits.idle {
                return;
            }
            tokio::time::sleep(limits.idle - quiet).await;
        }
    };
    let reason = tokio::select! {
        r = copy => match r {
            Ok(_) => "closed",
            Err(_) => "error",
        },
        () = idle => "idle",
    };
    SpliceEnd {
        dialer_to_acceptor: d2a.load(Ordering::Relaxed),
        acceptor_to_dialer: a2d.load(Ordering::Relaxed),
        reason,
    }
}

async fn direction<R, W>(
    from: &mut R,
    to: &mut W,
    limits: SpliceLimits,
    start: Instant,
    last: &AtomicU64,
    moved: &AtomicU64,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; limits.buffer.max(1)];
    // A burst of one second's worth, but at least one buffer, so a full
    // read never waits longer than its own share of time.
    let burst = limits
        .rate
        .max(u64::try_from(buf.len()).unwrap_or(u64::MAX));
    let mut bucket = TokenBucket::new(limits.rate, burst, start.into_std());
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        let wait = bucket.take(Instant::now().into_std(), n as u64);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        to.write_all(buf.get(..n).unwrap_or_default()).await?;
        moved.fetch_add(n as u64, Ordering::Relaxed);
        let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        last.store(ms, Ordering::Relaxed);
    }
}
