//! The chat workload against an IRC server, for the comparison issue 23 asks
//! for: InspIRCd (Debian's `inspircd`), started here with a config of its
//! own, pinned as `kith serve` is, loaded by the same kind of generator —
//! N clients in one channel, S senders at an aggregate rate R, the send time
//! in the message — and measured the same way: server CPU per delivery from
//! /proc, send→receive latency at every other member. IRC has no
//! acknowledgement (the sender's copy never comes back) and keeps nothing on
//! disk; it has no TLS on this port.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, watch};

use crate::pin;
use crate::server::{Reaped, histogram, proc_usage, quantiles_ms};

/// The channel every client joins.
const CHANNEL: &str = "#bench";

/// An InspIRCd child process in a temporary directory; killed on drop.
struct Ircd {
    child: Reaped,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Ircd {
    /// Starts `binary` on a free loopback port with limits that never get in
    /// the way of the load (no flood control, no DNS or ident lookups).
    async fn start(binary: &str) -> Result<Ircd> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.path().join("inspircd.conf");
        std::fs::write(
            &config,
            format!(
                r#"<server name="bench.kith.test" description="kith-bench" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="bench" allow="127.0.0.1" maxchans="20" timeout="60" pingfreq="600"
  hardsendq="67108864" softsendq="8388608" recvq="65536" threshold="1000000000"
  commandrate="1000000000" fakelag="no" localmax="100000" globalmax="100000"
  resolvehostnames="no" useident="no" limit="100000">
<performance softlimit="100000" somaxconn="4096" clonesonconnect="no">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{log}">
"#,
                log = dir.path().join("ircd.log").display()
            ),
        )?;
        let child = std::process::Command::new(binary)
            .arg("--config")
            .arg(&config)
            .args(["--nofork", "--nopid", "--runasroot"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary} (Debian: apt-get install inspircd)"))?;
        let ircd = Ircd { child: Reaped(child), port, _dir: dir };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                pin::server(ircd.child.id())?;
                return Ok(ircd);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{binary} did not listen on 127.0.0.1:{port} within 5 s")
    }

    fn usage(&self) -> (f64, u64) {
        self.child.usage()
    }
}

/// One registered client in the channel.
struct Member {
    lines: BufReader<OwnedReadHalf>,
    /// The sender's side; senders are the first S members.
    write: Arc<Mutex<OwnedWriteHalf>>,
}

/// Reads lines until one contains `needle`.
async fn until(lines: &mut BufReader<OwnedReadHalf>, needle: &str) -> Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            bail!("the IRC server closed the connection before {needle:?}");
        }
        if String::from_utf8_lossy(&line).contains(needle) {
            return Ok(());
        }
    }
}

async fn join(port: u16, i: usize) -> Result<Member> {
    let (read, mut write) = TcpStream::connect(("127.0.0.1", port)).await?.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(format!("NICK b{i}\r\nUSER b{i} 0 * :bench\r\n").as_bytes()).await?;
    until(&mut lines, " 001 ").await?;
    write.write_all(format!("JOIN {CHANNEL}\r\n").as_bytes()).await?;
    // 366: the end of the channel's member list, sent once the join is done.
    until(&mut lines, " 366 ").await?;
    Ok(Member { lines, write: Arc::new(Mutex::new(write)) })
}

/// `(sent time in µs, sender)` from `:nick!user@host PRIVMSG #bench :bench {t} {s}:{n} …`.
fn timing(line: &[u8]) -> Option<(u64, usize)> {
    let line = std::str::from_utf8(line).ok()?;
    let (_, text) = line.split_once(" PRIVMSG #bench :")?;
    crate::timed(text)
}

pub async fn run(
    binary: &str,
    clients: usize,
    senders: usize,
    rates: &[u32],
    duration: Duration,
    body: usize,
    json_out: bool,
) -> Result<()> {
    if senders == 0 || senders > clients {
        bail!("--senders must be between 1 and --clients");
    }
    let ircd = Ircd::start(binary).await?;
    // Joined 64 at a time, as `kith-bench chat` signs its clients in.
    let mut members = Vec::with_capacity(clients);
    for start in (0..clients).step_by(64) {
        let mut batch = tokio::task::JoinSet::new();
        for i in start..clients.min(start + 64) {
            let port = ircd.port;
            batch.spawn(async move { (i, join(port, i).await) });
        }
        let mut joined = Vec::new();
        while let Some(r) = batch.join_next().await {
            let (i, m) = r?;
            joined.push((i, m?));
        }
        joined.sort_by_key(|(i, _)| *i);
        members.extend(joined.into_iter().map(|(_, m)| m));
    }
    // Every write half stays open for the whole run: dropping one shuts the
    // connection's sending side, and the server takes that as leaving.
    let writers: Vec<_> = members.iter().map(|m| m.write.clone()).collect();
    let mut readers: Vec<BufReader<OwnedReadHalf>> = members.into_iter().map(|m| m.lines).collect();
    if !json_out {
        println!("{}", pin::describe());
        println!(
            "{:>6} {:>7} {:>10} {:>9} {:>28} {:>7} {:>8} {:>6} {:>6} {:>9}",
            "rate",
            "sent",
            "deliv/s",
            "µs/deliv",
            "send→recv ms p50/p99/p999",
            "cpu%",
            "rss MiB",
            "lost",
            "gen%",
            "gen µs/d"
        );
    }
    let origin = Instant::now();
    let mut settle = true;
    for &rate in rates {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut listeners = tokio::task::JoinSet::new();
        for (i, mut lines) in readers.drain(..).enumerate() {
            let mut stop = stop_rx.clone();
            listeners.spawn(async move {
                let mut h = histogram();
                let mut line = Vec::new();
                loop {
                    // `read_until` keeps what it read in `line` if the stop
                    // wins, and the next run's reader goes on from there.
                    let read = tokio::select! {
                        _ = stop.changed() => break,
                        r = lines.read_until(b'\n', &mut line) => r,
                    };
                    if !matches!(read, Ok(n) if n > 0) {
                        break;
                    }
                    if let Some((sent_us, sender)) = timing(&line)
                        && sender != i
                    {
                        let now_us = origin.elapsed().as_micros() as u64;
                        let _ = h.record(now_us.saturating_sub(sent_us).max(1));
                    }
                    line.clear();
                }
                (i, lines, h)
            });
        }
        if std::mem::take(&mut settle) {
            // The joins' announcements (each member saw everyone after it
            // join) drain before anything is measured.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let (cpu0, _) = ircd.usage();
        let (gen0, _) = proc_usage("self");
        let started = Instant::now();
        let per_sender = Duration::from_secs_f64(senders as f64 / f64::from(rate.max(1)));
        let mut sends = tokio::task::JoinSet::new();
        for (s, write) in writers.iter().take(senders).cloned().enumerate() {
            sends.spawn(async move {
                let mut tick = crate::sender_ticks(s, senders, per_sender);
                let mut n = 0u64;
                let mut failed = 0u64;
                while started.elapsed() < duration {
                    tick.tick().await;
                    n += 1;
                    let text = crate::timed_body(origin.elapsed().as_micros() as u64, s, n, body);
                    let line = format!("PRIVMSG {CHANNEL} :{text}\r\n");
                    if write.lock().await.write_all(line.as_bytes()).await.is_err() {
                        failed += 1;
                    }
                }
                (n, failed)
            });
        }
        let (mut sent, mut failed) = (0u64, 0u64);
        while let Some(r) = sends.join_next().await {
            let (n, f) = r?;
            sent += n;
            failed += f;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let (cpu1, rss) = ircd.usage();
        let (gen1, _) = proc_usage("self");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = stop_tx.send(true);
        let mut recv = histogram();
        let mut back = Vec::new();
        while let Some(r) = listeners.join_next().await {
            let (i, lines, h) = r?;
            recv.add(&h)?;
            back.push((i, lines));
        }
        back.sort_by_key(|(i, _)| *i);
        readers = back.into_iter().map(|(_, lines)| lines).collect();
        report(Report {
            rate,
            clients,
            senders,
            sent: sent - failed,
            elapsed,
            server_cpu_s: cpu1 - cpu0,
            generator_cpu_s: gen1 - gen0,
            rss_kib: rss,
            recv: &recv,
            json_out,
        });
    }
    Ok(())
}

struct Report<'a> {
    rate: u32,
    clients: usize,
    senders: usize,
    sent: u64,
    elapsed: f64,
    server_cpu_s: f64,
    generator_cpu_s: f64,
    rss_kib: u64,
    recv: &'a Histogram<u64>,
    json_out: bool,
}

fn report(r: Report) {
    let delivered = r.recv.len() as f64 / r.elapsed;
    let per_delivery = |cpu_s: f64| cpu_s * 1e6 / r.recv.len().max(1) as f64;
    let lost = (r.sent * (r.clients as u64 - 1)).saturating_sub(r.recv.len());
    let (server_pct, generator_pct) =
        (r.server_cpu_s / r.elapsed * 100.0, r.generator_cpu_s / r.elapsed * 100.0);
    if r.json_out {
        println!(
            "{}",
            json!({
                "bench": "irc", "clients": r.clients, "senders": r.senders, "rate": r.rate,
                "duration_s": r.elapsed, "sent": r.sent, "delivered_per_s": delivered,
                "send_to_receive_ms": quantiles_ms(r.recv), "server_cpu_pct": server_pct,
                "server_rss_kib": r.rss_kib, "lost": lost,
                "server_us_per_delivery": per_delivery(r.server_cpu_s),
                "generator_us_per_delivery": per_delivery(r.generator_cpu_s),
                "generator_cpu_pct": generator_pct, "pinning": pin::describe(),
            })
        );
        return;
    }
    let q = |at: f64| r.recv.value_at_quantile(at) as f64 / 1e3;
    println!(
        "{:>6} {:>7} {delivered:>10.0} {:>9.1} {:>28} {server_pct:>7.1} {:>8.1} {lost:>6} {generator_pct:>6.1} {:>9.1}",
        r.rate,
        r.sent,
        per_delivery(r.server_cpu_s),
        format!("{:.1}/{:.1}/{:.1}", q(0.5), q(0.99), q(0.999)),
        r.rss_kib as f64 / 1024.0,
        per_delivery(r.generator_cpu_s),
    );
}
