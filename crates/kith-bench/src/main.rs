//! `kith-bench`: load tests against a real `kith serve` child process, so the
//! server's CPU and memory are measured apart from the load generator's. Its
//! own binary, so that the `kith` people install does not carry it.
//!
//! - `chat`: N clients in one channel, S of them sending at an aggregate rate R
//!   (open loop, send time in the payload); send→ack and send→receive latency.
//!   `--stalled K` adds K clients that authenticate and then never read, to
//!   measure what a slow consumer costs everyone else.
//! - `idle`: memory per idle, authenticated connection (native QUIC, or
//!   WebTransport as the browser client holds one).
//! - `resume`: what reconnecting costs: resuming a session that missed M
//!   events, against starting afresh (snapshot plus a page of history).
//! - `ingest`: closed-loop senders; durably acknowledged messages per second.
//! - `scale`: how costs grow with history, community size and channel size
//!   (`scale.rs`).
//! - `telnet`: N telnet sessions in one busy channel (`telnet.rs`).
//! - `voice`: rooms of voice clients; loss, forwarding delay, CPU per packet (`voice.rs`).
//! - `irc`: the `chat` workload against InspIRCd, measured the same way, for
//!   comparison (`irc.rs`).
//! - `render`: the terminal client's frame time with a busy channel loaded
//!   (no server; see `render.rs`).
//!
//! The server is the `kith` binary beside this one (`cargo build --release`
//! builds both), or the one `KITH_BIN` names.

mod calls;
mod files;
mod hub;
mod irc;
mod mumble;
mod pin;
mod render;
mod scale;
mod server;
mod telnet;
mod voice;
mod web;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use kith_client::proto::{self as v1, client_message::Request, event::Body as Ev, reply::Result as R};
use serde_json::json;
use tokio::sync::watch;

use server::{ServerProcess, World, histogram, proc_usage, quantiles_ms, sessions, world};

/// Load-test a `kith serve` child process; see BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(version)]
pub struct BenchArgs {
    #[command(subcommand)]
    kind: Kind,
    /// Print one JSON object per run instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Let the server and the load generator share every core (by default,
    /// with two or more, the server gets the first core to itself).
    #[arg(long, global = true)]
    no_pin: bool,
}

#[derive(Debug, Subcommand)]
enum Kind {
    /// The hub alone (no network, no disk): what a message and a history
    /// request cost its single task, for channels of each size.
    Hub {
        #[arg(long, value_delimiter = ',', default_value = "10,1000")]
        members: Vec<usize>,
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        /// Instead: what signing in costs in communities of these sizes
        /// (the `Ready` snapshot's bytes and the hub's time).
        #[arg(long, value_delimiter = ',')]
        connect: Option<Vec<usize>>,
    },
    /// N clients in one channel; S senders at an aggregate rate R (messages/s).
    Chat {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// One or more rates, comma-separated; each is a run on the same server.
        #[arg(long, value_delimiter = ',', default_value = "100")]
        rate: Vec<u32>,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        duration: Duration,
        /// Clients that authenticate and then never read their events.
        #[arg(long, default_value_t = 0)]
        stalled: usize,
        /// Message body size in bytes (at least the timing header).
        #[arg(long, default_value_t = 64)]
        body: usize,
        /// The server's UDP buffer (`kith serve --udp-buffer`), e.g. the OS
        /// default 212992 to compare.
        #[arg(long, value_name = "BYTES")]
        server_udp_buffer: Option<usize>,
        /// Back the server's data up (`kith backup`'s code) again and again
        /// during each run, its database first padded to this many MB, to
        /// see what a backup costs the chat.
        #[arg(long, value_name = "MB")]
        backups_during: Option<u64>,
    },
    /// The `chat` workload against an IRC server (InspIRCd), measured the
    /// same way, to compare kith with it on this machine.
    Irc {
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        senders: usize,
        #[arg(long, value_delimiter = ',', default_value = "50")]
        rate: Vec<u32>,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        duration: Duration,
        /// Message body size in bytes (at least the timing header).
        #[arg(long, default_value_t = 64)]
        body: usize,
        /// The InspIRCd binary (Debian: `apt-get install inspircd`).
        #[arg(long, default_value = "/usr/sbin/inspircd")]
        inspircd: String,
    },
    /// The `voice` workload against Mumble's server (murmur), measured the
    /// same way: one room, some of it speaking.
    Mumble {
        #[command(flatten)]
        room: Room,
        /// The murmur binary (Debian: `apt-get install mumble-server`).
        #[arg(long, default_value = "/usr/sbin/murmurd")]
        murmurd: String,
    },
    /// Reconnect cost: resume after missing M events vs. a fresh session.
    Resume {
        /// Events missed while disconnected; one run each.
        #[arg(long, value_delimiter = ',', default_value = "0,100,1000")]
        missed: Vec<usize>,
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// Members of the community (the size of the fresh snapshot).
        #[arg(long, default_value_t = 50)]
        members: usize,
    },
    /// Memory per idle, authenticated connection.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        /// `quic` (native clients) or `webtransport` (as the browser client).
        #[arg(long, default_value = "quic")]
        transport: String,
    },
    /// One big attachment up and down: throughput, server CPU and memory,
    /// and chat on the same connection meanwhile (`files.rs`).
    Files {
        /// The file's size in MiB.
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        /// Instead: how long a 12-megapixel JPEG takes to preview (and to
        /// lose its metadata), no server involved.
        #[arg(long)]
        preview: bool,
    },
    /// A bot answering slash commands: the round trip one call at a time,
    /// and calls per second with many in flight (`calls.rs`).
    Calls {
        #[arg(long, default_value_t = 2000)]
        calls: usize,
        /// Calls waiting on the bot at once in the throughput run (the hub
        /// allows 100).
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
    },
    /// Frame time of `kith chat` with a busy channel loaded (no server involved).
    Render {
        /// Messages fed to the client: a page of history, then the rest as events.
        #[arg(long, default_value_t = 10_000)]
        messages: u64,
        #[arg(long, default_value_t = 200)]
        width: u16,
        #[arg(long, default_value_t = 60)]
        height: u16,
        /// Frames measured per case.
        #[arg(long, default_value_t = 2_000)]
        frames: u64,
    },
    /// N telnet sessions in one busy channel: bytes and redraws per session,
    /// server CPU per redraw, server memory per session.
    Telnet {
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Messages per second sent into the channel (by a QUIC client).
        #[arg(long, default_value_t = 5)]
        rate: u32,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        duration: Duration,
        /// The telnet window size, WIDTHxHEIGHT.
        #[arg(long, default_value = "100x30")]
        size: String,
    },
    /// Voice forwarding: rooms of clients, some speaking; loss, forwarding
    /// delay and server CPU per forwarded packet (`src/voice.rs`).
    Voice {
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        #[command(flatten)]
        room: Room,
        /// One speaker to ever more listeners, until loss passes 0.5 %.
        #[arg(long)]
        ramp: bool,
        /// Mouth-to-ear latency between two clients with real Opus.
        #[arg(long)]
        latency: bool,
        /// With --latency: between a browser (headless Chromium, the web
        /// client) and a native client, both ways. Needs Node, `npm ci` in
        /// web/, and Chromium (CHROMIUM, default /usr/bin/chromium).
        #[arg(long, requires = "latency")]
        browser: bool,
    },
    /// How costs grow with the server: start-up against stored messages,
    /// signing in against community size, CPU per delivery against channel
    /// size (`src/scale.rs`).
    Scale(scale::Curves),
    /// Durable ingest: closed-loop senders, acknowledged messages per second.
    Ingest {
        #[arg(long, default_value_t = 16)]
        senders: usize,
        /// Requests each sender keeps in flight.
        #[arg(long, default_value_t = 8)]
        in_flight: usize,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
        duration: Duration,
        /// The server's sync mode: full or normal.
        #[arg(long, default_value = "full")]
        sync: String,
    },
}

/// A voice room's shape, as `voice` and `mumble` take it.
#[derive(Debug, clap::Args)]
struct Room {
    /// Clients per room.
    #[arg(long, default_value_t = 20)]
    size: usize,
    /// Speakers per room.
    #[arg(long, default_value_t = 4)]
    speakers: usize,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
}

impl Room {
    fn shape(&self, rooms: usize) -> voice::Shape {
        voice::Shape { rooms, size: self.size, speakers: self.speakers, duration: self.duration }
    }
}

fn main() -> std::process::ExitCode {
    let args = BenchArgs::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KITH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    // Before the runtime, so that all its threads inherit the generator's cores.
    pin::apply(args.no_pin);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kith-bench: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kith-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: BenchArgs) -> Result<()> {
    match args.kind {
        Kind::Chat { clients, senders, rate, duration, stalled, body, server_udp_buffer, backups_during } => {
            let load = Load { stalled, body, server_udp_buffer, backups_during };
            chat(clients, senders, &rate, duration, load, args.json).await
        }
        Kind::Irc { clients, senders, rate, duration, body, inspircd } => {
            irc::run(&inspircd, clients, senders, &rate, duration, body, args.json).await
        }
        Kind::Mumble { room, murmurd } => mumble::run(&murmurd, room.shape(1), args.json).await,
        Kind::Hub { connect: Some(sizes), .. } => hub::connect(&sizes, args.json),
        Kind::Hub { members, messages, connect: None } => hub::run(&members, messages, args.json),
        Kind::Idle { clients, transport } => idle(clients, &transport, args.json).await,
        Kind::Files { mib, preview: false } => files::run(mib, args.json).await,
        Kind::Files { preview: true, .. } => files::preview(args.json),
        Kind::Calls { calls, in_flight } => calls::run(calls, in_flight, args.json).await,
        Kind::Render { messages, width, height, frames } => {
            render::run(messages, width, height, frames, args.json)
        }
        Kind::Resume { missed, trials, members } => resume(&missed, trials, members, args.json).await,
        Kind::Scale(curves) => scale::run(&curves, args.json).await,
        Kind::Ingest { senders, in_flight, duration, sync } => {
            ingest(senders, in_flight, duration, &sync, args.json).await
        }
        Kind::Voice { rooms, room, ramp, latency, browser } => {
            let shape = room.shape(rooms);
            match (latency, browser) {
                (true, true) => voice::browser_mouth_to_ear(args.json).await,
                (true, false) => voice::mouth_to_ear(args.json).await,
                (false, _) => voice::run(shape, ramp, args.json).await,
            }
        }
        Kind::Telnet { sessions, rate, duration, size } => {
            telnet::run(sessions, rate, duration, &size, args.json).await
        }
    }
}

/// Extra load shapes for `chat`.
#[derive(Debug, Clone, Copy)]
struct Load {
    stalled: usize,
    body: usize,
    server_udp_buffer: Option<usize>,
    backups_during: Option<u64>,
}

/// Pads a server's database with `mb` megabytes of rows no one reads, so a
/// backup of it copies as much as a server with that much history would.
fn pad_database(data: &std::path::Path, mb: u64) -> Result<()> {
    let db = rusqlite::Connection::open(data.join("kith.db"))?;
    db.busy_timeout(Duration::from_secs(30))?;
    db.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS bench_filler (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO bench_filler (body) SELECT printf('%0100d', i) FROM n;",
        rows = mb * 8_000
    ))?;
    Ok(())
}

/// Backs up `data` over and over (`kith backup`) until `stop`; how long
/// each took.
fn keep_backing_up(data: std::path::PathBuf, stop: Arc<std::sync::atomic::AtomicBool>) -> Vec<f64> {
    let mut took = Vec::new();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let out = scratch.path().join(format!("b{}", took.len()));
        let started = Instant::now();
        // `kith backup`, as an operator runs it.
        let Ok(kith) = server::kith_binary() else { break };
        let status = std::process::Command::new(kith)
            .arg("backup")
            .arg(&out)
            .arg("--data")
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("a backup failed");
            break;
        }
        took.push(started.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(&out);
    }
    took
}

/// A client that authenticates, then never reads: its connection's close
/// reason (if the server cut it) and when, in seconds after the start.
async fn stall(
    server: &ServerProcess,
    world: &World,
    i: usize,
    origin: Instant,
) -> Result<tokio::task::JoinHandle<(String, f64)>> {
    let (conn, mut send, recv) = world.connectors[0].connect_raw(&server.addr).await?;
    let auth = v1::ClientMessage {
        request_id: 1,
        request: Some(Request::Authenticate(v1::AuthenticateRequest {
            token: world.tokens[i % world.tokens.len()].clone(),
        })),
    };
    send.write_all(&kith_proto::encode_frame(&auth)).await?;
    Ok(tokio::spawn(async move {
        let _streams = (send, recv);
        let reason = conn.closed().await;
        (reason.to_string(), origin.elapsed().as_secs_f64())
    }))
}

async fn chat(
    clients: usize,
    senders: usize,
    rates: &[u32],
    duration: Duration,
    load: Load,
    json_out: bool,
) -> Result<()> {
    if senders == 0 || senders > clients {
        bail!("--senders must be between 1 and --clients");
    }
    let buffer = load.server_udp_buffer.map(|b| b.to_string());
    let flags: Vec<&str> = buffer.iter().flat_map(|b| ["--udp-buffer", b.as_str()]).collect();
    let server = ServerProcess::start_with("full", &flags, &[])?;
    let world = world(&server, senders.max(clients.min(50)), 8).await?;
    let clients = Arc::new(sessions(&server, &world, clients, 64).await?);
    if let Some(mb) = load.backups_during {
        pad_database(server.data_dir(), mb)?;
    }
    if !json_out {
        println!("{}", pin::describe());
        println!(
            "{:>6} {:>7} {:>10} {:>9} {:>28} {:>28} {:>7} {:>8} {:>6} {:>6} {:>9} {:>6} {:>6}",
            "rate",
            "sent",
            "deliv/s",
            "µs/deliv",
            "send→ack ms p50/p99/p999",
            "send→recv ms p50/p99/p999",
            "cpu%",
            "rss MiB",
            "lost",
            "gen%",
            "gen µs/d",
            "pkt/d",
            "ACK/d"
        );
    }
    for &rate in rates {
        let round = chat_round(&server, &world, &clients, senders, rate, duration, load).await?;
        if json_out {
            println!("{}", round.json());
            continue;
        }
        println!(
            "{rate:>6} {:>7} {:>10.0} {:>9.1} {:>28} {:>28} {:>7.1} {:>8.1} {:>6} {:>6.1} {:>9.1} {:>6.2} {:>6.2}",
            round.sent,
            round.delivered_per_s,
            round.server_us,
            ms3(&round.ack),
            ms3(&round.recv),
            round.cpu_pct,
            round.rss_kib as f64 / 1024.0,
            round.lost,
            round.generator_pct,
            round.generator_us,
            round.datagrams_per_delivery,
            round.acks_per_delivery,
        );
        if round.generator_bound {
            println!("       the load generator used its cores up: this run measured it, not the server");
        }
        if !round.backup_s.is_empty() {
            let mut sorted = round.backup_s.clone();
            sorted.sort_by(f64::total_cmp);
            println!(
                "       {} backups during the run, {:.2} s each (median)",
                sorted.len(),
                sorted[sorted.len() / 2]
            );
        }
        round.print_drops();
        for (reason, at) in &round.cut {
            println!("       stalled client cut after {at:.1} s: {reason}");
        }
        if round.cut.len() < load.stalled {
            println!("       {} stalled client(s) were never cut off", load.stalled - round.cut.len());
        }
    }
    drop(world);
    Ok(())
}

/// `p50/p99/p999` of a histogram of µs, in ms.
fn ms3(h: &Histogram<u64>) -> String {
    format!(
        "{:.1}/{:.1}/{:.1}",
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.value_at_quantile(0.999) as f64 / 1e3
    )
}

/// What one `chat` run at one rate measured.
struct Round {
    clients: usize,
    senders: usize,
    rate: u32,
    load: Load,
    elapsed_s: f64,
    sent: u64,
    failed: u64,
    delivered_per_s: f64,
    /// QUIC ACK frames the clients sent over the run, per delivery: each
    /// is a packet the server receives, decrypts and processes.
    acks_per_delivery: f64,
    /// Datagrams the clients received, per delivery: under 1 when the
    /// server packs several messages to one member into a packet (when
    /// they queue behind a busy core), and over it for acknowledgements
    /// of the clients' own packets.
    datagrams_per_delivery: f64,
    /// Send→acknowledgement and send→receive, µs.
    ack: Histogram<u64>,
    recv: Histogram<u64>,
    cpu_pct: f64,
    rss_kib: u64,
    lost: u64,
    /// The headline: server CPU per delivery to another member.
    server_us: f64,
    generator_us: f64,
    generator_pct: f64,
    /// The generator, not the server, set the pace.
    generator_bound: bool,
    udp_drops: Option<u64>,
    /// Datagrams the kernel dropped at the generator's sockets: deliveries
    /// QUIC had to send again, late, for the generator's sake.
    generator_udp_drops: Option<u64>,
    backup_s: Vec<f64>,
    /// Stalled clients the server cut off: why, and when (s).
    cut: Vec<(String, f64)>,
}

impl Round {
    fn print_drops(&self) {
        if let Some(n) = self.udp_drops.filter(|n| *n > 0) {
            println!("       the kernel dropped {n} datagrams at the server's UDP socket");
        }
        if let Some(n) = self.generator_udp_drops.filter(|n| *n > 0) {
            println!("       the kernel dropped {n} datagrams at the load generator's sockets");
        }
    }

    fn json(&self) -> serde_json::Value {
        let cut: Vec<serde_json::Value> =
            self.cut.iter().map(|(reason, at)| json!({"reason": reason, "at_s": at})).collect();
        json!({
            "bench": "chat", "clients": self.clients, "senders": self.senders, "rate": self.rate,
            "duration_s": self.elapsed_s, "sent": self.sent, "failed": self.failed,
            "delivered_per_s": self.delivered_per_s, "client_acks_per_delivery": self.acks_per_delivery,
            "client_datagrams_per_delivery": self.datagrams_per_delivery,
            "send_to_ack_ms": quantiles_ms(&self.ack), "send_to_receive_ms": quantiles_ms(&self.recv),
            "server_cpu_pct": self.cpu_pct, "server_rss_kib": self.rss_kib, "lost": self.lost,
            "server_us_per_delivery": self.server_us, "generator_us_per_delivery": self.generator_us,
            "generator_bound": self.generator_bound, "pinning": pin::describe(),
            "generator_cpu_pct": self.generator_pct, "body_bytes": self.load.body,
            "stalled": self.load.stalled, "stalled_cut": cut,
            "server_udp_drops": self.udp_drops, "generator_udp_drops": self.generator_udp_drops,
            "backups": self.backup_s.len(), "backup_s": self.backup_s,
        })
    }
}

/// One run of the chat workload at `rate` messages/s: the first `senders`
/// of `clients` send into #general, and every client listens.
async fn chat_round(
    server: &ServerProcess,
    world: &World,
    clients: &Arc<Vec<kith_client::Client>>,
    senders: usize,
    rate: u32,
    duration: Duration,
    load: Load,
) -> Result<Round> {
    let general = world.general;
    let origin = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..load.stalled {
        stalled.push(stall(server, world, i, origin).await?);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every session listens (the owner's too: it is a member).
    let mut listeners = tokio::task::JoinSet::new();
    for i in 0..clients.len() {
        let clients = clients.clone();
        let mut stop = stop_rx.clone();
        listeners.spawn(async move {
            let mut h = histogram();
            let c = &clients[i];
            loop {
                let event = tokio::select! {
                    _ = stop.changed() => break,
                    e = c.next_event() => e,
                };
                let Some(v1::Event { body: Some(Ev::MessageCreated(m)), .. }) = event else { continue };
                // `bench {sent_us} {sender}:{n}`. A sender's own message
                // comes back to it as well (decision 23); that is its
                // acknowledgement, measured as send→ack, not a delivery.
                let Some((sent_us, sender)) = timed(&m.body) else { continue };
                if sender != i {
                    let now_us = origin.elapsed().as_micros() as u64;
                    let _ = h.record(now_us.saturating_sub(sent_us).max(1));
                }
            }
            h
        });
    }
    let (cpu0, _) = server.usage();
    let drops0 = server.udp_drops();
    let (gen0, _) = proc_usage("self");
    // (ACK frames the clients sent, datagrams they received).
    let transport = || {
        clients
            .iter()
            .map(|c| c.transport_stats())
            .fold((0u64, 0u64), |(a, d), s| (a + s.frame_tx.acks, d + s.udp_rx.datagrams))
    };
    let transport0 = transport();
    let generator_drops = || -> Option<u64> {
        let ports = world.connectors.iter().map(|c| c.local_addr().ok().map(|a| a.port()));
        ports.map(|p| kith_server::udp_drops(p?)).sum()
    };
    let generator_drops0 = generator_drops();
    let backing_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let backups = load.backups_during.map(|_| {
        let (data, stop) = (server.data_dir().to_owned(), backing_up.clone());
        std::thread::spawn(move || keep_backing_up(data, stop))
    });
    let started = Instant::now();
    let per_sender = Duration::from_secs_f64(senders as f64 / f64::from(rate.max(1)));
    let mut sends = tokio::task::JoinSet::new();
    for s in 0..senders {
        let clients = clients.clone();
        sends.spawn(async move {
            let mut tick = sender_ticks(s, senders, per_sender);
            let mut inflight = tokio::task::JoinSet::new();
            let mut n = 0u64;
            while started.elapsed() < duration {
                tick.tick().await;
                let clients = clients.clone();
                n += 1;
                inflight.spawn(async move {
                    let t = origin.elapsed().as_micros() as u64;
                    let body = timed_body(t, s, n, load.body);
                    let ok = clients[s].send_message(general, &body, "").await.is_ok();
                    (ok, origin.elapsed().as_micros() as u64 - t)
                });
            }
            let mut h = histogram();
            let mut failed = 0u64;
            while let Some(r) = inflight.join_next().await {
                match r {
                    Ok((true, us)) => {
                        let _ = h.record(us.max(1));
                    }
                    _ => failed += 1,
                }
            }
            (h, failed)
        });
    }
    let mut ack = histogram();
    let mut failed = 0;
    while let Some(r) = sends.join_next().await {
        let (h, f) = r?;
        ack.add(&h)?;
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, rss_kib) = server.usage();
    let (gen1, _) = proc_usage("self");
    let transport1 = transport();
    let (client_acks, client_datagrams) = (transport1.0 - transport0.0, transport1.1 - transport0.1);
    let generator_pct = (gen1 - gen0) / elapsed * 100.0;
    backing_up.store(true, std::sync::atomic::Ordering::Relaxed);
    let backup_s = match backups {
        Some(t) => t.join().map_err(|_| anyhow::anyhow!("the backup thread panicked"))?,
        None => Vec::new(),
    };
    // Let deliveries in flight land, then stop listening.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let mut recv = histogram();
    while let Some(h) = listeners.join_next().await {
        recv.add(&h?)?;
    }
    let expected = ack.len() * (clients.len() as u64 - 1);
    let per_delivery_us = |cpu_s: f64| cpu_s * 1e6 / recv.len().max(1) as f64;
    // A generator near the end of its cores, not the server, set the pace.
    let generator_cores = pin::plan()
        .map_or(std::thread::available_parallelism().map_or(1, |n| n.get()), |p| p.generator.len());
    // A stalled client still connected after the run was never cut off.
    let mut cut = Vec::new();
    for handle in stalled {
        if handle.is_finished() {
            cut.push(handle.await?);
        } else {
            handle.abort();
        }
    }
    Ok(Round {
        clients: clients.len(),
        senders,
        rate,
        load,
        elapsed_s: elapsed,
        sent: ack.len() + failed,
        failed,
        delivered_per_s: recv.len() as f64 / elapsed,
        acks_per_delivery: client_acks as f64 / recv.len().max(1) as f64,
        datagrams_per_delivery: client_datagrams as f64 / recv.len().max(1) as f64,
        lost: expected.saturating_sub(recv.len()),
        cpu_pct: (cpu1 - cpu0) / elapsed * 100.0,
        rss_kib,
        server_us: per_delivery_us(cpu1 - cpu0),
        generator_us: per_delivery_us(gen1 - gen0),
        generator_pct,
        generator_bound: generator_pct >= 90.0 * generator_cores as f64,
        udp_drops: server.udp_drops().zip(drops0).map(|(b, a)| b.saturating_sub(a)),
        generator_udp_drops: generator_drops().zip(generator_drops0).map(|(b, a)| b.saturating_sub(a)),
        backup_s,
        cut,
        ack,
        recv,
    })
}

/// When sender `s` of `senders` sends, every `per_sender`: the senders'
/// phases spread so the aggregate rate is steady, not a burst of S messages
/// every S/R seconds.
fn sender_ticks(s: usize, senders: usize, per_sender: Duration) -> tokio::time::Interval {
    let phase = per_sender.mul_f64(s as f64 / senders as f64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, per_sender);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    tick
}

/// A message body that says when it was sent (µs since the run's origin) and
/// by whom: `bench {t} {s}:{n} ` padded with dots to `len` bytes.
fn timed_body(t: u64, s: usize, n: u64, len: usize) -> String {
    let mut body = format!("bench {t} {s}:{n} ");
    let pad = len.saturating_sub(body.len()).max(8);
    body.extend(std::iter::repeat_n('.', pad));
    body
}

/// `(sent time in µs, sender)` of a [`timed_body`].
fn timed(body: &str) -> Option<(u64, usize)> {
    let mut words = body.strip_prefix("bench ")?.split(' ');
    let sent = words.next()?.parse().ok()?;
    let sender = words.next()?.split(':').next()?.parse().ok()?;
    Some((sent, sender))
}

fn quantiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v.get(((v.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    (at(0.5), at(0.9))
}

async fn resume(missed: &[usize], trials: usize, members: usize, json_out: bool) -> Result<()> {
    let server = ServerProcess::start("full")?;
    let world = world(&server, members.max(2), 2).await?;
    let token = world.tokens[1].clone();
    let connector = &world.connectors[0];
    if !json_out {
        println!(
            "{:>7} {:>8} {:>24} {:>24}",
            "missed", "replayed", "resume ms p50/p90", "fresh+history ms p50/p90"
        );
    }
    for &m in missed {
        let (mut resumed_ms, mut fresh_ms, mut replayed) = (Vec::new(), Vec::new(), 0);
        for _ in 0..trials {
            let (a, _) = connector.connect(&server.addr).await?;
            let ready = a.authenticate(&token).await?;
            a.abort();
            for n in 0..m {
                world.owner.send_message(world.general, &format!("missed {n}"), "").await?;
            }

            let started = Instant::now();
            let (b, _) = connector.connect(&server.addr).await?;
            let request =
                v1::ResumeRequest { token: token.clone(), session_id: ready.session_id.clone(), last_seq: 0 };
            match b.request(Request::Resume(request)).await? {
                R::Resumed(r) => replayed = r.replayed,
                other => bail!("the resume was refused: {other:?}"),
            }
            resumed_ms.push(started.elapsed().as_secs_f64() * 1e3);
            b.close().await;

            let started = Instant::now();
            let (c, _) = connector.connect(&server.addr).await?;
            c.authenticate(&token).await?;
            c.history(world.general, None, 100).await?;
            fresh_ms.push(started.elapsed().as_secs_f64() * 1e3);
            c.close().await;
        }
        let (r50, r90) = quantiles(resumed_ms);
        let (f50, f90) = quantiles(fresh_ms);
        if json_out {
            println!(
                "{}",
                json!({"bench": "resume", "missed": m, "replayed": replayed, "trials": trials, "members": members,
                       "resume_ms": {"p50": r50, "p90": r90}, "fresh_and_history_ms": {"p50": f50, "p90": f90}})
            );
        } else {
            println!(
                "{m:>7} {replayed:>8} {:>24} {:>24}",
                format!("{r50:.1}/{r90:.1}"),
                format!("{f50:.1}/{f90:.1}")
            );
        }
    }
    Ok(())
}

async fn idle(n: usize, transport: &str, json_out: bool) -> Result<()> {
    let server = ServerProcess::start("full")?;
    let world = world(&server, 1, 16).await?;
    let web = match transport {
        "quic" => None,
        "webtransport" => Some(web::client(&server).await?),
        other => bail!("--transport is quic or webtransport, not {other}"),
    };
    // Registering the accounts above hashed passwords; the hashing threads
    // hold their memory (19 MiB each) until idle this long. Measured any
    // sooner, that memory leaves during the run and hides the connections'.
    tokio::time::sleep(kith_server::auth::Hashers::RELEASE_AFTER + Duration::from_secs(1)).await;
    let (_, before) = server.usage();
    let started = Instant::now();
    let (clients, web_sessions) = match &web {
        None => (sessions(&server, &world, n, 256).await?, Vec::new()),
        Some(client) => {
            let mut held = Vec::with_capacity(n);
            let mut tasks = tokio::task::JoinSet::new();
            let gate = Arc::new(tokio::sync::Semaphore::new(256));
            for i in 0..n {
                let permit = gate.clone().acquire_owned().await?;
                let client = client.clone();
                let token = world.tokens[i % world.tokens.len()].clone();
                let addr = server.addr.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    web::session_at(&client, &addr, &token).await
                });
            }
            while let Some(s) = tasks.join_next().await {
                held.push(s??);
            }
            (Vec::new(), held)
        }
    };
    let connect_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, after) = server.usage();
    let per = (after.saturating_sub(before)) as f64 / n as f64;
    if json_out {
        println!(
            "{}",
            json!({"bench": "idle", "transport": transport, "clients": n, "rss_before_kib": before, "rss_after_kib": after,
                   "rss_per_connection_kib": per, "connect_s": connect_s})
        );
    } else {
        println!(
            "{n} idle {transport} connections: server RSS {:.1} MiB → {:.1} MiB, {per:.1} KiB per connection (connected in {connect_s:.1} s)",
            before as f64 / 1024.0,
            after as f64 / 1024.0
        );
    }
    drop(clients);
    drop(web_sessions);
    drop(world.owner);
    Ok(())
}

async fn ingest(
    senders: usize,
    in_flight: usize,
    duration: Duration,
    sync: &str,
    json_out: bool,
) -> Result<()> {
    let server = ServerProcess::start(sync)?;
    let world = world(&server, senders.min(50), 4).await?;
    let clients = Arc::new(sessions(&server, &world, senders, 64).await?);
    let general = world.general;
    // Every sent message also comes back to its sender (and the other
    // senders) as an event: read them, as any client does.
    let mut readers = tokio::task::JoinSet::new();
    for s in 0..senders {
        let clients = clients.clone();
        readers.spawn(async move { while clients[s].next_event().await.is_some() {} });
    }
    let (cpu0, _) = server.usage();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in 0..senders {
        for w in 0..in_flight {
            let clients = clients.clone();
            tasks.spawn(async move {
                let mut h = histogram();
                let mut n = 0u64;
                while started.elapsed() < duration {
                    let t = Instant::now();
                    let body = format!("ingest {s}/{w}/{n} ........................................");
                    if clients[s].send_message(general, &body, &format!("{s}-{w}-{n}")).await.is_err() {
                        break;
                    }
                    let _ = h.record((t.elapsed().as_micros() as u64).max(1));
                    n += 1;
                }
                h
            });
        }
    }
    let mut ack = histogram();
    while let Some(h) = tasks.join_next().await {
        ack.add(&h?)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, rss) = server.usage();
    let rate = ack.len() as f64 / elapsed;
    let cpu_pct = (cpu1 - cpu0) / elapsed * 100.0;
    if json_out {
        println!(
            "{}",
            json!({"bench": "ingest", "sync": sync, "senders": senders, "in_flight": in_flight,
                   "acked": ack.len(), "acked_per_s": rate, "send_to_ack_ms": quantiles_ms(&ack),
                   "server_cpu_pct": cpu_pct, "server_rss_kib": rss})
        );
    } else {
        println!(
            "sync={sync} senders={senders}×{in_flight}: {rate:.0} acked messages/s, ack p50 {:.1} ms p99 {:.1} ms, server CPU {cpu_pct:.0}%",
            ack.value_at_quantile(0.5) as f64 / 1e3,
            ack.value_at_quantile(0.99) as f64 / 1e3
        );
    }
    drop(world);
    Ok(())
}
