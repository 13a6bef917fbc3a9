//! `kith-bench telnet`: N telnet sessions, each signed in and looking at one
//! busy channel, against a `kith serve --telnet` child process.
//!
//! Every session is a real TCP connection that negotiates a window size,
//! creates its account through the sign-in screens, and then only reads. A
//! QUIC client sends messages into the channel at a fixed rate. Reported:
//! bytes and redraws each session receives per second, the server's CPU
//! time per redraw, and the server's memory per session. Redraws are counted
//! on the wire: every draw ends by placing the visible cursor in the input
//! box (`ESC [ ? 25 h`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::server::{ServerProcess, world};

const PASSWORD: &str = "benchmark password";
/// What the terminal gets at the end of every draw.
const DRAW_END: &[u8] = b"\x1b[?25h";
/// Sign-ins in progress at once (the server hashes a few at a time anyway).
const SIGNING_IN: usize = 32;

#[derive(Debug, Default)]
struct Counters {
    bytes: AtomicU64,
    draws: AtomicU64,
    ready: AtomicUsize,
    failed: AtomicUsize,
}

impl Counters {
    fn snapshot(&self) -> (u64, u64) {
        (self.bytes.load(Ordering::Relaxed), self.draws.load(Ordering::Relaxed))
    }
}

pub async fn run(sessions: usize, rate: u32, duration: Duration, size: &str, json_out: bool) -> Result<()> {
    let (width, height) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u8>().ok()?, h.parse::<u8>().ok()?)))
        .context("--size is WIDTHxHEIGHT, each below 255")?;
    let server = ServerProcess::start_with("full", &["--telnet", "127.0.0.1:0"], &[])?;
    let addr: SocketAddr = server.telnet.as_deref().context("no telnet= in the ready line")?.parse()?;
    let w = world(&server, 0, 1).await?;
    // Memory is measured with the password hashers at rest (their argon2
    // memory given back), before the sign-ins and after them.
    let hashers_at_rest = kith_server::auth::Hashers::RELEASE_AFTER + Duration::from_secs(1);
    tokio::time::sleep(hashers_at_rest).await;
    let (_, rss_base) = server.usage();

    let counters = Arc::new(Counters::default());
    let gate = Arc::new(Semaphore::new(SIGNING_IN));
    let started = Instant::now();
    for i in 0..sessions {
        let (counters, gate, invite) = (counters.clone(), gate.clone(), w.invite.clone());
        tokio::spawn(async move {
            if session(i, addr, &invite, (width, height), &counters, &gate).await.is_err() {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    loop {
        let (ready, failed) =
            (counters.ready.load(Ordering::Relaxed), counters.failed.load(Ordering::Relaxed));
        if failed > 0 {
            bail!("{failed} telnet sessions failed to sign in ({ready} did)");
        }
        if ready == sessions {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("only {ready} of {sessions} sessions signed in within 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sign_in_secs = started.elapsed().as_secs_f64();
    // Let the last joins' member-list updates settle, and the hashers rest.
    tokio::time::sleep(hashers_at_rest.max(Duration::from_secs(3))).await;
    let (_, rss_ready) = server.usage();

    let quiet = measure(&server, &counters, Duration::from_secs(5), || async {}).await;
    let general = w.general;
    let owner = &w.owner;
    let sent = AtomicU64::new(0);
    let busy = measure(&server, &counters, duration, || async {
        let every = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let mut tick = tokio::time::interval(every);
        let end = Instant::now() + duration;
        while Instant::now() < end {
            tick.tick().await;
            let n = sent.fetch_add(1, Ordering::Relaxed);
            let body = format!("message {n}: the quick brown fox jumps over the lazy dog");
            let _ = owner.send_message(general, &body, "").await;
        }
    })
    .await;

    let per_session_kib = rss_ready.saturating_sub(rss_base) as f64 / sessions as f64;
    let report = json!({
        "bench": "telnet",
        "sessions": sessions,
        "size": format!("{width}x{height}"),
        "sign_in_secs": sign_in_secs,
        "memory_per_session_kib": per_session_kib,
        "server_rss_mib": rss_ready as f64 / 1024.0,
        "quiet": quiet.json(sessions),
        "busy": { "rate": rate, "messages": sent.load(Ordering::Relaxed), "measured": busy.json(sessions) },
    });
    if json_out {
        println!("{report}");
    } else {
        println!("{sessions} telnet sessions at {width}x{height}, signed in in {sign_in_secs:.1} s");
        println!(
            "memory: {per_session_kib:.0} KiB per session (server RSS {:.0} MiB)",
            rss_ready as f64 / 1024.0
        );
        for (name, m) in [("quiet", &quiet), ("busy", &busy)] {
            let r = m.json(sessions);
            println!(
                "{name:>5}: {:.0} B/s and {:.1} redraws/s per session; server CPU {:.0}% = {:.0} µs per redraw",
                r["bytes_per_session_per_sec"].as_f64().unwrap_or(0.0),
                r["redraws_per_session_per_sec"].as_f64().unwrap_or(0.0),
                r["server_cpu_percent"].as_f64().unwrap_or(0.0),
                r["server_cpu_us_per_redraw"].as_f64().unwrap_or(0.0),
            );
        }
        if rate > 0 {
            println!("(busy: {rate} messages/s into the channel for {duration:?})");
        }
    }
    Ok(())
}

/// What one phase cost.
struct Measured {
    secs: f64,
    cpu_secs: f64,
    bytes: u64,
    draws: u64,
}

impl Measured {
    fn json(&self, sessions: usize) -> serde_json::Value {
        let n = sessions as f64;
        json!({
            "secs": self.secs,
            "bytes_per_session_per_sec": self.bytes as f64 / n / self.secs,
            "redraws_per_session_per_sec": self.draws as f64 / n / self.secs,
            "server_cpu_percent": 100.0 * self.cpu_secs / self.secs,
            "server_cpu_us_per_redraw": if self.draws == 0 { 0.0 } else { self.cpu_secs * 1e6 / self.draws as f64 },
        })
    }
}

async fn measure<F, Fut>(server: &ServerProcess, counters: &Counters, at_least: Duration, load: F) -> Measured
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (cpu0, _) = server.usage();
    let (bytes0, draws0) = counters.snapshot();
    let t0 = Instant::now();
    load().await;
    let left = at_least.saturating_sub(t0.elapsed());
    tokio::time::sleep(left).await;
    let (cpu1, _) = server.usage();
    let (bytes1, draws1) = counters.snapshot();
    Measured {
        secs: t0.elapsed().as_secs_f64(),
        cpu_secs: cpu1 - cpu0,
        bytes: bytes1 - bytes0,
        draws: draws1 - draws0,
    }
}

/// One telnet user: signs up through the screens, then reads forever.
async fn session(
    i: usize,
    addr: SocketAddr,
    invite: &str,
    (width, height): (u8, u8),
    counters: &Counters,
    gate: &Semaphore,
) -> Result<()> {
    const IAC: u8 = 255;
    const WILL: u8 = 251;
    const WONT: u8 = 252;
    const DO: u8 = 253;
    const SB: u8 = 250;
    const SE: u8 = 240;
    const ECHO: u8 = 1;
    const SGA: u8 = 3;
    const TTYPE: u8 = 24;
    const NAWS: u8 = 31;
    let mut permit = Some(gate.acquire().await?);
    let mut stream = TcpStream::connect(addr).await?;
    let mut hello = vec![IAC, WILL, NAWS, IAC, SB, NAWS, 0, width, 0, height, IAC, SE];
    hello.extend([IAC, DO, ECHO, IAC, DO, SGA, IAC, WONT, TTYPE]);
    stream.write_all(&hello).await?;
    // The screens take keys as fast as they come: choose, invite, name,
    // password twice.
    stream.write_all(format!("r{invite}\ruser{i}\r{PASSWORD}\r{PASSWORD}\r").as_bytes()).await?;

    let mut buf = vec![0u8; 16 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    let mut signed_in = false;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the server closed the session");
        }
        carry.extend_from_slice(&buf[..n]);
        if !signed_in {
            if carry.windows(8).any(|w| w == b"#general") {
                signed_in = true;
                carry.clear();
                counters.ready.fetch_add(1, Ordering::Relaxed);
                // Let the next session sign in.
                drop(permit.take());
            } else {
                // Keep a tail, so a name split across reads is still found.
                let keep = carry.len().min(16);
                carry.drain(..carry.len() - keep);
            }
            continue;
        }
        counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let draws = carry.windows(DRAW_END.len()).filter(|w| *w == DRAW_END).count();
        counters.draws.fetch_add(draws as u64, Ordering::Relaxed);
        let keep = carry.len().min(DRAW_END.len() - 1);
        carry.drain(..carry.len() - keep);
    }
}
