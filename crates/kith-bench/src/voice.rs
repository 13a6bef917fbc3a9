//! `kith-bench voice`: the server as a selective forwarding unit under load.
//!
//! Each of `rooms` voice channels holds `size` clients (each its own account
//! and QUIC connection); `speakers` of them per room send a 20 ms packet every
//! 20 ms for `duration`. A packet carries its send time, so each listener
//! measures the forwarding delay (send → receive, through the server on
//! loopback) and counts what never came. The load generator does no Opus
//! work, so its CPU goes to the network; packets are 80 bytes, a 32 kb/s
//! stream. `--ramp` instead grows one room with one speaker until more than
//! 0.5 % of packets are lost. `--latency` measures mouth-to-ear with real
//! Opus between two clients; `--latency --browser` between the web client in
//! headless Chromium and a native client, both ways.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use kith_client::Client;
use kith_client::proto::{self as v1, client_message::Request, reply::Result as R};
use kith_proto::voice::{VoiceHeader, client_datagram, parse_forwarded};
use serde_json::json;

use crate::server::{ServerProcess, World, sessions, world};

/// Opus bytes in one 20 ms packet at 32 kb/s.
pub(crate) const PACKET_BYTES: usize = 80;

/// How often a speaker sends a packet.
pub(crate) const PACKET_INTERVAL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub rooms: usize,
    pub size: usize,
    pub speakers: usize,
    pub duration: Duration,
}

/// What one run measured, of either server (`kith-bench voice` or `mumble`).
#[derive(Debug)]
pub(crate) struct Outcome {
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub delay: Histogram<u64>,
    pub cpu_s: f64,
    pub elapsed_s: f64,
    pub rss_kib: u64,
    /// Acknowledgement frames the clients sent (QUIC's; Mumble's UDP has none).
    pub acks: Option<u64>,
}

impl Outcome {
    pub fn loss_pct(&self) -> f64 {
        if self.expected == 0 { 0.0 } else { 100.0 * (1.0 - self.received as f64 / self.expected as f64) }
    }

    fn json(&self, bench: &str, shape: Shape) -> serde_json::Value {
        let q = |p: f64| self.delay.value_at_quantile(p) as f64 / 1000.0;
        json!({"bench": bench, "rooms": shape.rooms, "size": shape.size, "speakers": shape.speakers,
               "sent": self.sent, "forwarded_expected": self.expected, "received": self.received,
               "loss_pct": self.loss_pct(),
               "forward_delay_ms": {"p50": q(0.5), "p99": q(0.99), "max": self.delay.max() as f64 / 1000.0},
               "server_cpu_pct": self.cpu_s / self.elapsed_s * 100.0,
               "server_cpu_us_per_forwarded": self.cpu_s * 1e6 / self.received.max(1) as f64,
               "server_rss_kib": self.rss_kib, "client_acks_per_s": self.acks.map(|a| a as f64 / self.elapsed_s)})
    }

    fn line(&self, shape: Shape) -> String {
        let q = |p: f64| self.delay.value_at_quantile(p) as f64 / 1000.0;
        format!(
            "{} room(s) of {}, {} speaking: {} forwarded/s, loss {:.3} %, delay p50 {:.2} ms p99 {:.2} ms, \
             server CPU {:.0} % = {:.1} µs per forwarded packet",
            shape.rooms,
            shape.size,
            shape.speakers,
            (self.received as f64 / self.elapsed_s) as u64,
            self.loss_pct(),
            q(0.5),
            q(0.99),
            self.cpu_s / self.elapsed_s * 100.0,
            self.cpu_s * 1e6 / self.received.max(1) as f64
        ) + &self
            .acks
            .map(|a| format!(", clients sent {:.0} ACKs/s", a as f64 / self.elapsed_s))
            .unwrap_or_default()
    }
}

pub async fn run(shape: Shape, ramp: bool, json_out: bool) -> Result<()> {
    let server = ServerProcess::start_with("normal", &[], &[])?;
    if !ramp {
        let w = world(&server, shape.rooms * shape.size, 16).await?;
        let out = measure(&server, &w, shape).await?;
        print(&out, shape, json_out);
        return Ok(());
    }
    // One speaker, more and more listeners, until loss passes 0.5 %.
    let sizes = [10, 25, 50, 100, 150, 200, 300, 400, 600, 800, 1000];
    let w = world(&server, *sizes.last().expect("sizes"), 16).await?;
    for size in sizes {
        let shape = Shape { rooms: 1, size, speakers: 1, ..shape };
        let out = measure(&server, &w, shape).await?;
        print(&out, shape, json_out);
        if out.loss_pct() > 0.5 {
            break;
        }
    }
    Ok(())
}

fn print(out: &Outcome, shape: Shape, json_out: bool) {
    print_as("voice", out, shape, json_out);
}

pub(crate) fn print_as(bench: &str, out: &Outcome, shape: Shape, json_out: bool) {
    if json_out {
        println!("{}", out.json(bench, shape));
    } else {
        println!("{}", out.line(shape));
    }
}

/// The time a packet was sent, in µs since `origin`: the first 8 bytes of
/// its Opus payload, as [`stamp`] wrote them.
pub(crate) fn sent_at(opus: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(opus.get(..8)?.try_into().ok()?))
}

/// A packet's payload, stamped with its send time.
pub(crate) fn stamp(payload: &mut [u8; PACKET_BYTES], origin: Instant) {
    payload[..8].copy_from_slice(&(origin.elapsed().as_micros() as u64).to_be_bytes());
}

async fn voice_channel(owner: &Client, community_id: u64, name: String) -> Result<u64> {
    let req = v1::CreateChannelRequest {
        community_id,
        name,
        kind: v1::ChannelKind::Voice as i32,
        ..Default::default()
    };
    match owner.request(Request::CreateChannel(req)).await? {
        R::Channel(ch) => Ok(ch.id),
        _ => bail!("unexpected answer"),
    }
}

async fn measure(server: &ServerProcess, w: &World, shape: Shape) -> Result<Outcome> {
    let n = shape.rooms * shape.size;
    let clients: Vec<Arc<Client>> = sessions(server, w, n, 64).await?.into_iter().map(Arc::new).collect();
    // Fresh channels per run (a ramp makes several on one server).
    let mut rooms = Vec::new();
    for r in 0..shape.rooms {
        rooms.push(voice_channel(&w.owner, w.community, format!("room-{}-{r}", shape.size)).await?);
    }
    for (i, c) in clients.iter().enumerate() {
        let join = v1::JoinVoiceRequest { channel_id: rooms[i / shape.size], ..Default::default() };
        c.request(Request::JoinVoice(join)).await?;
    }
    let origin = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    // Listeners: count and time every packet until told to stop.
    let mut listeners = tokio::task::JoinSet::new();
    for c in &clients {
        // Voice-state events arrive as rooms fill; read them so none pile up.
        let events = c.clone();
        tokio::spawn(async move { while events.next_event().await.is_some() {} });
        let (c, received) = (c.clone(), received.clone());
        listeners.spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            while let Some(d) = c.read_datagram().await {
                let Ok(p) = parse_forwarded(d) else { continue };
                let Some(sent_us) = sent_at(&p.opus) else { continue };
                let now_us = origin.elapsed().as_micros() as u64;
                let _ = h.record(now_us.saturating_sub(sent_us).max(1));
                received.fetch_add(1, Ordering::Relaxed);
            }
            h
        });
    }
    let acks0: Vec<u64> = clients.iter().map(|c| c.transport_stats().frame_tx.acks).collect();
    let (cpu0, _) = server.usage();
    let started = Instant::now();
    // Speakers: the first `speakers` clients of each room, paced at 20 ms.
    let mut talkers = tokio::task::JoinSet::new();
    for r in 0..shape.rooms {
        for s in 0..shape.speakers.min(shape.size) {
            let c = clients[r * shape.size + s].clone();
            let duration = shape.duration;
            talkers.spawn(async move {
                let mut tick = tokio::time::interval(PACKET_INTERVAL);
                let mut sent = 0u64;
                let mut payload = [0x5au8; PACKET_BYTES];
                while started.elapsed() < duration {
                    tick.tick().await;
                    stamp(&mut payload, origin);
                    let header = VoiceHeader { seq: sent as u16, timestamp: (sent * 960) as u32 };
                    if c.send_datagram(client_datagram(header, &payload)).is_ok() {
                        sent += 1;
                    }
                }
                sent
            });
        }
    }
    let mut sent = 0;
    while let Some(s) = talkers.join_next().await {
        sent += s?;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    // Let what is in flight arrive, then stop the listeners by closing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu1, rss_kib) = server.usage();
    let acks = clients.iter().zip(&acks0).map(|(c, a0)| c.transport_stats().frame_tx.acks - a0).sum();
    for c in &clients {
        c.abort();
    }
    let mut delay = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    while let Some(h) = listeners.join_next().await {
        delay.add(&h?)?;
    }
    let expected = sent * (shape.size as u64 - 1);
    Ok(Outcome {
        sent,
        expected,
        received: received.load(Ordering::Relaxed),
        delay,
        cpu_s: cpu1 - cpu0,
        elapsed_s,
        rss_kib,
        acks: Some(acks),
    })
}

/// Two clients with real Opus: when A's audio appears in B's recording. The
/// recording is aligned with what A played; the offset, plus the 20 ms a
/// microphone takes to fill a frame, is mouth-to-ear.
pub async fn mouth_to_ear(json_out: bool) -> Result<()> {
    let server = ServerProcess::start_with("normal", &[], &[])?;
    let w = world(&server, 2, 2).await?;
    let clients = sessions(&server, &w, 2, 2).await?;
    let lounge = voice_channel(&w.owner, w.community, "lounge".into()).await?;
    for c in &clients {
        c.request(Request::JoinVoice(v1::JoinVoiceRequest { channel_id: lounge, ..Default::default() }))
            .await?;
    }
    let input = kith_voice::speech_like(3.0);
    let mut delays = Vec::new();
    for _ in 0..5 {
        let config = kith_voice::VoiceConfig::default();
        let (a, b) = tokio::join!(
            kith_voice::run(&clients[0], &input, Duration::from_secs(4), &config),
            kith_voice::run(&clients[1], &[], Duration::from_secs(4), &config),
        );
        let (_, b) = (a?, b?);
        let m = kith_voice::compare(&input, &b.samples, kith_voice::RATE as usize);
        let ms = m.delay as f64 * 1000.0 / f64::from(kith_voice::RATE) + kith_voice::FRAME_MS as f64;
        delays.push((ms, m.correlation));
    }
    delays.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (median, corr) = delays[delays.len() / 2];
    if json_out {
        println!(
            "{}",
            json!({"bench": "voice-latency", "mouth_to_ear_ms": median, "correlation": corr,
                              "runs": delays.iter().map(|d| d.0).collect::<Vec<_>>()})
        );
    } else {
        println!(
            "mouth-to-ear between two local clients: {median:.1} ms (median of {}; runs {:?}); correlation {corr:.3}",
            delays.len(),
            delays.iter().map(|d| (d.0 * 10.0).round() / 10.0).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// A syllable every second, then silence: 150 ms of a voiced tone with
/// harmonics (pitch `hz`) that starts within 5 ms. Onsets are easy to find
/// after any codec, and the browser's noise suppressor keeps it as speech
/// (a pure tone it learns as noise and removes after a few repeats).
fn clicks(seconds: usize, hz: f64) -> Vec<i16> {
    let rate = kith_voice::RATE as usize;
    let mut out = vec![0i16; seconds * rate];
    for second in 0..seconds {
        for i in 0..rate * 150 / 1000 {
            let t = i as f64 / rate as f64;
            let envelope = (t / 0.005).min(1.0) * ((0.15 - t) / 0.03).min(1.0);
            let phase = 2.0 * std::f64::consts::PI * hz * t;
            let voice = phase.sin() + 0.5 * (2.0 * phase).sin() + 0.25 * (3.0 * phase).sin();
            out[second * rate + i] = (envelope * voice * 0.3 * 32767.0) as i16;
        }
    }
    out
}

/// Sample indices where sound starts: above 5 % of full scale after 200 ms
/// below it (the rule the browser's probe applies too).
fn onsets(samples: &[i16]) -> Vec<usize> {
    let (threshold, quiet_needed) = (0.05 * 32768.0, kith_voice::RATE as usize / 5);
    let mut quiet = quiet_needed;
    let mut found = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if f64::from(*s).abs() > threshold {
            if quiet >= quiet_needed {
                found.push(i);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    found
}

/// For each mouth time, the delay to the first ear time after it (within
/// half the click period); all times in milliseconds.
fn delays(mouth: &[f64], ear: &[f64]) -> Vec<f64> {
    mouth.iter().filter_map(|m| ear.iter().find(|e| **e > *m && **e - *m < 500.0).map(|e| e - m)).collect()
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied()
}

fn epoch_ms(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The web client in headless Chromium (fake microphone playing clicks)
/// and a native client (`kith_voice::run`, as `kith voice join` uses) in
/// one voice channel: first the browser talks, then the native client (the
/// browser's echo canceller would take clicks heard and said at once for an
/// echo and remove them). The browser reports, in wall-clock
/// time, when each click entered its audio graph and when one left its
/// playback worklet (plus the output latency it reports); the native side
/// knows when each of its samples was captured and played. Both run on
/// this machine's clock.
pub async fn browser_mouth_to_ear(json_out: bool) -> Result<()> {
    use anyhow::Context as _;
    use tokio::io::AsyncBufReadExt as _;
    let server = ServerProcess::start_with("normal", &[], &[])?;
    let web = server.web.clone().context("the server serves no web client")?;
    let w = world(&server, 2, 1).await?;
    let clients = sessions(&server, &w, 2, 2).await?;
    let native = &clients[1];
    let lounge = voice_channel(&w.owner, w.community, "lounge".into()).await?;
    native
        .request(Request::JoinVoice(v1::JoinVoiceRequest { channel_id: lounge, ..Default::default() }))
        .await?;
    let dir = tempfile::tempdir()?;
    let said = dir.path().join("clicks.wav");
    kith_voice::write_wav(&said, &clicks(1, 150.0))?;
    // The browser talks for `half`, then the native client for `half`.
    let half = 10;
    let web_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut browser = tokio::process::Command::new("node")
        .arg("test/voice-latency.mjs")
        .current_dir(&web_dir)
        .env("KITH_WEB", &web)
        .env("TOKEN", &w.tokens[2])
        .env("SAID", &said)
        .env("SECONDS", (2 * half + 1).to_string())
        .env("CHROMIUM", chromium)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // Once the browser is in the channel (its first line says so).
    let mut lines = tokio::io::BufReader::new(browser.stderr.take().context("stderr")?).lines();
    while let Some(line) = lines.next_line().await? {
        if line.contains("in voice") {
            break;
        }
        eprintln!("{line}");
    }
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
        }
    });
    let mut input = vec![0; half * kith_voice::RATE as usize];
    input.extend(clicks(half, 220.0));
    let config = kith_voice::VoiceConfig::default();
    let started = std::time::SystemTime::now();
    let seconds = Duration::from_secs(2 * half as u64);
    let (browser, recording) =
        tokio::join!(browser.wait_with_output(), kith_voice::run(native, &input, seconds, &config));
    let (browser, recording) = (browser?, recording?);
    if !browser.status.success() {
        bail!("the browser side failed: {}", String::from_utf8_lossy(&browser.stdout));
    }
    let seen: serde_json::Value = serde_json::from_slice(&browser.stdout)?;
    let times = |key: &str| -> Vec<f64> {
        seen[key].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default()
    };
    let t0 = epoch_ms(started);
    let ms = |i: usize| i as f64 * 1000.0 / f64::from(kith_voice::RATE);
    // A native microphone needs a frame's time to deliver a sample the
    // call reads at its tick; the recording's sample i plays at t0 + i.
    let native_mouth: Vec<f64> =
        onsets(&input).into_iter().map(|i| t0 + ms(i) - kith_voice::FRAME_MS as f64).collect();
    let native_ear: Vec<f64> = onsets(&recording.samples).into_iter().map(|i| t0 + ms(i)).collect();
    let to_native = delays(&times("mouth"), &native_ear);
    let to_browser = delays(&native_mouth, &times("ear"));
    let (Some(up), Some(down)) = (median(to_native.clone()), median(to_browser.clone())) else {
        bail!("no click made it through: browser → native {to_native:?}, native → browser {to_browser:?}");
    };
    let round = |xs: &[f64]| xs.iter().map(|x| (x * 10.0).round() / 10.0).collect::<Vec<_>>();
    if json_out {
        println!(
            "{}",
            json!({"bench": "voice-latency-browser", "browser_to_native_ms": up, "native_to_browser_ms": down,
                   "browser_to_native_runs": to_native, "native_to_browser_runs": to_browser,
                   "audio_context": seen["latency"], "browser_encoder_ms": seen["encoderMs"],
                   "native_jitter": format!("{:?}", recording.stats.speakers.values().next())})
        );
    } else {
        println!(
            "browser → native: {up:.1} ms (median of {} syllables: {:?})\nnative → browser: {down:.1} ms (median of {} syllables: {:?})\nbrowser audio context (s): {}; its Opus encoder holds a frame {:.1} ms (median of {})\nthe native side's jitter buffer for the browser: {:?}",
            to_native.len(),
            round(&to_native),
            to_browser.len(),
            round(&to_browser),
            seen["latency"],
            seen["encoderMs"].as_f64().unwrap_or(f64::NAN),
            seen["encoded"],
            recording.stats.speakers.values().next()
        );
    }
    Ok(())
}
