//! Channel throughput over loopback TCP against raw TCP in the same run, and
//! handshakes per second.
//!
//! ```text
//! cargo run --release -p bench --bin channel_throughput            # 1 GiB each way
//! CHANNEL_BENCH_MIB=256 cargo run --release -p bench --bin channel_throughput
//! ```
//!
//! Each transfer sends the same number of bytes both ways at once over one
//! connection. "1 core" runs both endpoints on one current-thread tokio runtime,
//! so the numbers are what one core does for sender and receiver together;
//! "2 threads" uses a multi-thread runtime with two workers. Raw and channel
//! rounds alternate and the best of each is reported, to damp noise from other
//! load on the machine.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use channel::{ChannelConfig, FolderCredentials, Handshake, OsRandom, establish};
use keys::{FolderKey, PeerId, RwSecret};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const CHUNK: usize = 1 << 20;
const MIB: f64 = 1024.0 * 1024.0;

fn configs() -> (ChannelConfig, ChannelConfig) {
    let rw = FolderKey::ReadWrite(RwSecret::from_bytes([42; 20]));
    let ro = FolderKey::ReadOnly(RwSecret::from_bytes([42; 20]).ro_key());
    (
        ChannelConfig::new(PeerId([1; 32]), FolderCredentials::new(&rw)),
        ChannelConfig::new(PeerId([2; 32]), FolderCredentials::new(&ro)),
    )
}

/// Writes `bytes` and reads until end of stream, at once; returns bytes read.
async fn pump<S>(stream: S, bytes: u64) -> Result<u64>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = async move {
        let buf = vec![0xA5u8; CHUNK];
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
            w.write_all(buf.get(..n).unwrap_or(&buf)).await?;
            left -= n as u64;
        }
        w.shutdown().await
    };
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(total);
            }
            total += n as u64;
        }
    };
    let (w, r) = tokio::join!(writer, reader);
    w?;
    Ok(r?)
}

async fn tcp_pair() -> Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (a, b) = (dialed?, accepted?.0);
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    Ok((a, b))
}

/// Seconds to move `bytes` each way over raw TCP.
async fn raw_round(bytes: u64) -> Result<f64> {
    let (a, b) = tcp_pair().await?;
    let t = Instant::now();
    let (x, y) = tokio::join!(pump(a, bytes), pump(b, bytes));
    check(x?, y?, bytes)?;
    Ok(t.elapsed().as_secs_f64())
}

/// Seconds to move `bytes` each way through the channel (handshake not counted).
async fn channel_round(bytes: u64) -> Result<f64> {
    let (ca, cb) = configs();
    let (a, b) = tcp_pair().await?;
    let (a, b) = tokio::join!(establish(a, &ca), establish(b, &cb));
    let (a, b) = (a?, b?);
    let t = Instant::now();
    let (x, y) = tokio::join!(pump(a, bytes), pump(b, bytes));
    check(x?, y?, bytes)?;
    Ok(t.elapsed().as_secs_f64())
}

fn check(x: u64, y: u64, want: u64) -> Result<()> {
    if x != want || y != want {
        return Err(format!("moved {x} and {y} bytes, expected {want}").into());
    }
    Ok(())
}

fn throughput(rt: &tokio::runtime::Runtime, label: &str, bytes: u64, rounds: usize) -> Result<()> {
    let mut raw = f64::MAX;
    let mut chan = f64::MAX;
    for _ in 0..rounds {
        raw = raw.min(rt.block_on(raw_round(bytes))?);
        chan = chan.min(rt.block_on(channel_round(bytes))?);
    }
    let both = 2.0 * bytes as f64 / MIB;
    println!(
        "{label:<10} raw TCP {:>8.0} MiB/s   channel {:>8.0} MiB/s   channel/raw {:>5.1} %   \
         ({} MiB each way, best of {rounds})",
        both / raw,
        both / chan,
        100.0 * raw / chan,
        bytes >> 20,
    );
    Ok(())
}

/// Sans-IO only: both sides in memory, no sockets.
fn handshakes_in_memory(n: u32) -> Result<Duration> {
    let (ca, cb) = configs();
    let t = Instant::now();
    for _ in 0..n {
        let now = Instant::now();
        let mut x = Handshake::new(&ca, now, &mut OsRandom)?;
        let mut y = Handshake::new(&cb, now, &mut OsRandom)?;
        while !(x.is_established() && y.is_established()) {
            let mut moved = false;
            if let Some(b) = x.poll_output() {
                y.handle_input(&b)?;
                moved = true;
            }
            if let Some(b) = y.poll_output() {
                x.handle_input(&b)?;
                moved = true;
            }
            if !moved {
                return Err("handshake stalled".into());
            }
        }
    }
    Ok(t.elapsed() / n)
}

/// One direction, sender and receiver each on its own thread (own core when
/// free) with its own current-thread runtime; returns MiB/s.
fn one_way(bytes: u64, secure: bool) -> Result<f64> {
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = std::thread::spawn(move || -> Result<u64> {
        rt()?.block_on(async move {
            let (s, _) = listener.accept()?;
            s.set_nonblocking(true)?;
            let s = TcpStream::from_std(s)?;
            s.set_nodelay(true)?;
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            if secure {
                let (_, cb) = configs();
                let mut s = establish(s, &cb).await?;
                loop {
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(total);
                    }
                    total += n as u64;
                }
            } else {
                let mut s = s;
                loop {
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(total);
                    }
                    total += n as u64;
                }
            }
        })
    });
    let elapsed = rt()?.block_on(async move {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let buf = vec![0xA5u8; CHUNK];
        async fn send<W: AsyncWrite + Unpin>(
            mut w: W,
            buf: &[u8],
            bytes: u64,
        ) -> std::io::Result<()> {
            let mut left = bytes;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(buf.len()).min(buf.len());
                w.write_all(buf.get(..n).unwrap_or(buf)).await?;
                left -= n as u64;
            }
            w.shutdown().await
        }
        if secure {
            let (ca, _) = configs();
            let s = establish(s, &ca).await?;
            let t = Instant::now();
            send(s, &buf, bytes).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(t)
        } else {
            let t = Instant::now();
            send(s, &buf, bytes).await?;
            Ok(t)
        }
    })?;
    let got = receiver.join().map_err(|_| "receiver panicked")??;
    let secs = elapsed.elapsed().as_secs_f64();
    check(got, bytes, bytes)?;
    Ok(bytes as f64 / MIB / secs)
}

/// The record layer alone: encrypt, hand over, decrypt, read, all in memory.
fn records_in_memory(bytes: u64) -> Result<f64> {
    let (ca, cb) = configs();
    let now = Instant::now();
    let mut x = Handshake::new(&ca, now, &mut OsRandom)?;
    let mut y = Handshake::new(&cb, now, &mut OsRandom)?;
    while !(x.is_established() && y.is_established()) {
        if let Some(b) = x.poll_output() {
            y.handle_input(&b)?;
        }
        if let Some(b) = y.poll_output() {
            x.handle_input(&b)?;
        }
    }
    let (Some(mut x), Some(mut y)) = (x.take_session(), y.take_session()) else {
        return Err("no session".into());
    };
    // Deliver the access proofs.
    if let Some(b) = x.poll_output() {
        y.handle_input(&b)?;
    }
    if let Some(b) = y.poll_output() {
        x.handle_input(&b)?;
    }
    let chunk = vec![0x5Au8; 256 * 1024];
    let mut sink = vec![0u8; CHUNK];
    let mut wire = Vec::new();
    let t = Instant::now();
    let mut moved = 0u64;
    while moved < bytes {
        x.encrypt(&chunk)?;
        wire.clear();
        wire.extend_from_slice(x.pending_output());
        let n = x.pending_output().len();
        x.consume_output(n);
        for piece in wire.chunks(128 * 1024) {
            // As the adapter does: the transport writes into the session's buffer.
            let spare = y.input_buffer(piece.len());
            let n = piece.len().min(spare.len());
            spare
                .get_mut(..n)
                .ok_or("short buffer")?
                .copy_from_slice(piece.get(..n).ok_or("short")?);
            y.commit_input(n)?;
            while y.read_plaintext(&mut sink) > 0 {}
        }
        moved += chunk.len() as u64;
    }
    Ok(bytes as f64 / MIB / t.elapsed().as_secs_f64())
}

/// The ceiling: AES-128-GCM (ring) sealing and opening 64 KiB in place, no copies.
fn aead_alone(bytes: u64) -> Result<f64> {
    use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7; 16]).map_err(|_| "key")?);
    let mut buf = vec![0x5Au8; 64 * 1024];
    let t = Instant::now();
    let mut done = 0u64;
    let mut seq = 0u64;
    while done < bytes {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&seq.to_be_bytes());
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([0u8; 4]),
                &mut buf,
            )
            .map_err(|_| "seal")?;
        key.open_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([0u8; 4]),
            tag,
            &mut buf,
            0..,
        )
        .map_err(|_| "open")?;
        seq += 1;
        done += buf.len() as u64;
    }
    Ok(bytes as f64 / MIB / t.elapsed().as_secs_f64())
}

async fn handshakes_tcp(n: u32) -> Result<Duration> {
    let (ca, cb) = configs();
    let t = Instant::now();
    for _ in 0..n {
        let (a, b) = tcp_pair().await?;
        let (a, b) = tokio::join!(establish(a, &ca), establish(b, &cb));
        let (mut a, mut b) = (a?, b?);
        a.shutdown().await?;
        b.shutdown().await?;
    }
    Ok(t.elapsed() / n)
}

fn main() -> Result<()> {
    let mib: u64 = std::env::var("CHANNEL_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let rounds: usize = std::env::var("CHANNEL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let bytes = mib << 20;
    println!("channel_throughput: {mib} MiB each way, loopback TCP, release build");

    let one = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    throughput(&one, "1 core", bytes, rounds)?;
    let two = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    throughput(&two, "2 threads", bytes, rounds)?;

    let (mut raw, mut chan) = (0f64, 0f64);
    for _ in 0..rounds {
        raw = raw.max(one_way(bytes, false)?);
        chan = chan.max(one_way(bytes, true)?);
    }
    println!(
        "one way    raw TCP {raw:>8.0} MiB/s   channel {chan:>8.0} MiB/s   channel/raw {:>5.1} %   \
         (sender and receiver on their own threads, {} MiB, best of {rounds})",
        100.0 * chan / raw,
        bytes >> 20
    );
    println!(
        "records    in memory, one direction, 1 core (encrypt + decrypt): {:>6.0} MiB/s",
        records_in_memory(bytes)?
    );

    println!(
        "aead       AES-128-GCM seal + open in place, 64 KiB, 1 core:       {:>6.0} MiB/s",
        aead_alone(bytes)?
    );

    let n = 40;
    let mem = handshakes_in_memory(n)?;
    println!(
        "handshake  in memory (both sides, one thread): {:>6.2} ms each, {:>5.0} /s",
        mem.as_secs_f64() * 1e3,
        1.0 / mem.as_secs_f64()
    );
    let tcp = one.block_on(handshakes_tcp(n))?;
    println!(
        "handshake  loopback TCP (both sides, 1 core):  {:>6.2} ms each, {:>5.0} /s",
        tcp.as_secs_f64() * 1e3,
        1.0 / tcp.as_secs_f64()
    );
    Ok(())
}
