//! `kith-bench files`: one big attachment up and down over loopback QUIC,
//! as `kith send --file` and `kith download` move it. Reports throughput,
//! the server's CPU and peak memory while it moves (memory must stay flat:
//! the file is streamed, never held), and the acknowledgement time of chat
//! messages sent on the same connection meanwhile (the control stream must
//! not queue behind the file's stream).

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kith_client::Client;
use kith_client::proto::{self as v1, client_message::Request};
use serde_json::json;
use tokio::sync::watch;

use crate::server::{ServerProcess, histogram, quantiles_ms, sessions, world};

/// A file of `mib` MiB of bytes no layer can compress.
fn big_file(path: &std::path::Path, mib: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for b in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b.copy_from_slice(&state.to_le_bytes());
        }
        f.write_all(&chunk)?;
    }
    f.flush()?;
    Ok(())
}

/// Sends a short message every 100 ms until `stop`, recording how long
/// each took to be acknowledged (durably stored), in microseconds.
async fn chat_while(
    client: &Client,
    channel: u64,
    mut stop: watch::Receiver<bool>,
) -> Result<hdrhistogram::Histogram<u64>> {
    let mut acks = histogram();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return Ok(acks),
        }
        n += 1;
        let send = v1::SendMessageRequest {
            channel_id: channel,
            body: format!("still here {n}"),
            nonce: format!("ping-{n}"),
            ..Default::default()
        };
        let t = Instant::now();
        client.request(Request::SendMessage(send)).await?;
        acks.record(t.elapsed().as_micros() as u64)?;
    }
}

/// The server's peak resident memory (KiB) until `stop`.
async fn peak_rss(server: &ServerProcess, mut stop: watch::Receiver<bool>) -> u64 {
    let mut peak = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        peak = peak.max(server.usage().1);
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return peak,
        }
    }
}

struct Leg {
    secs: f64,
    cpu_s: f64,
    peak_rss_kib: u64,
    acks: hdrhistogram::Histogram<u64>,
}

/// Runs `transfer` while chatting on `client` and watching the server.
async fn measure<F: std::future::Future<Output = Result<()>>>(
    server: &ServerProcess,
    client: &Client,
    channel: u64,
    transfer: F,
) -> Result<Leg> {
    let (stop_tx, stop) = watch::channel(false);
    let (cpu0, _) = server.usage();
    let t0 = Instant::now();
    let moved = async {
        let r = transfer.await;
        let secs = t0.elapsed().as_secs_f64();
        let _ = stop_tx.send(true);
        r.map(|()| secs)
    };
    let (secs, acks, peak) =
        tokio::join!(moved, chat_while(client, channel, stop.clone()), peak_rss(server, stop));
    let (cpu1, _) = server.usage();
    Ok(Leg { secs: secs?, cpu_s: cpu1 - cpu0, peak_rss_kib: peak, acks: acks? })
}

pub async fn run(mib: u64, json_out: bool) -> Result<()> {
    let server = ServerProcess::start("normal")?;
    let w = world(&server, 1, 1).await?;
    let clients = sessions(&server, &w, 2, 2).await?;
    let (me, other) = (&clients[0], &clients[1]);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.bin");
    big_file(&path, mib)?;
    let bytes = mib << 20;
    let (_, idle_rss) = server.usage();
    // The same chat with nothing else going on: the normal range.
    let quiet = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(())
    };
    let baseline = measure(&server, me, w.general, quiet).await?.acks;

    // The client hashes the file first (BLAKE3); the transfer is timed from
    // its first byte out.
    let started = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let key = Arc::new(std::sync::Mutex::new(String::new()));
    let up = {
        let (started, key, path) = (started.clone(), key.clone(), path.clone());
        async move {
            let k = me
                .upload(w.general, &path, 0, |sent, _| {
                    if sent == 0 {
                        started.store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
                    }
                })
                .await?;
            *key.lock().expect("key") = k;
            Ok(())
        }
    };
    let upload = measure(&server, me, w.general, up).await?;
    let hashing_s = started.load(Ordering::Relaxed) as f64 / 1e6;
    let upload_s = upload.secs - hashing_s;
    let key = key.lock().expect("key").clone();
    let send = v1::SendMessageRequest {
        channel_id: w.general,
        body: "the big one".into(),
        uploads: vec![key],
        ..Default::default()
    };
    let v1::reply::Result::Message(m) = me.request(Request::SendMessage(send)).await? else {
        bail!("unexpected")
    };

    let access = other.open_attachments(w.general, m.id).await?;
    let out = dir.path().join("down.bin");
    let down = async {
        other.download(&access, 0, &out, |_, _| {}).await?;
        Ok(())
    };
    let download = measure(&server, other, w.general, down).await?;
    // The download's time includes the client's BLAKE3 check of what it saved.

    let mbps = |secs: f64| bytes as f64 / 1e6 / secs;
    if json_out {
        println!(
            "{}",
            json!({"bench": "files", "mib": mib,
                "upload": {"mb_per_s": mbps(upload_s), "secs": upload_s, "client_hash_secs": hashing_s,
                           "server_cpu_s": upload.cpu_s, "server_peak_rss_kib": upload.peak_rss_kib,
                           "chat_ack_ms": quantiles_ms(&upload.acks)},
                "download": {"mb_per_s": mbps(download.secs), "secs": download.secs,
                             "server_cpu_s": download.cpu_s, "server_peak_rss_kib": download.peak_rss_kib,
                             "chat_ack_ms": quantiles_ms(&download.acks)},
                "server_idle_rss_kib": idle_rss, "chat_ack_ms_alone": quantiles_ms(&baseline)})
        );
    } else {
        let q = |h: &hdrhistogram::Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        println!(
            "{mib} MiB up: {:.0} MB/s ({:.1} s after {:.1} s hashing), server CPU {:.1} s, peak RSS {} MiB (idle {} MiB); chat acks meanwhile p50 {:.1} ms p99 {:.1} ms ({} sent)",
            mbps(upload_s),
            upload_s,
            hashing_s,
            upload.cpu_s,
            upload.peak_rss_kib / 1024,
            idle_rss / 1024,
            q(&upload.acks, 0.5),
            q(&upload.acks, 0.99),
            upload.acks.len()
        );
        println!(
            "{mib} MiB down: {:.0} MB/s ({:.1} s, hash check included), server CPU {:.1} s, peak RSS {} MiB; chat acks meanwhile p50 {:.1} ms p99 {:.1} ms ({} sent)",
            mbps(download.secs),
            download.secs,
            download.cpu_s,
            download.peak_rss_kib / 1024,
            q(&download.acks, 0.5),
            q(&download.acks, 0.99),
            download.acks.len()
        );
        println!(
            "chat acks with nothing else moving: p50 {:.1} ms p99 {:.1} ms ({} sent)",
            q(&baseline, 0.5),
            q(&baseline, 0.99),
            baseline.len()
        );
    }
    Ok(())
}

/// A 12-megapixel photo (4000 × 3000, JPEG quality 90, with detail in it
/// so the encoder cannot shortcut): how long its metadata removal and its
/// preview take, medians of five, on one core.
pub fn preview(json_out: bool) -> Result<()> {
    let picture = image::RgbImage::from_fn(4000, 3000, |x, y| {
        let v = ((x * 7 + y * 13) ^ (x * y / 97)) as u8;
        image::Rgb([v, v.wrapping_mul(3), (x / 16) as u8])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&picture)?;
    let mut strip_ms = Vec::new();
    let mut preview_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        kith_media::strip::strip("image/jpeg", std::io::Cursor::new(&jpeg), std::io::sink())?;
        strip_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let small = kith_media::thumbnail::thumbnail("image/jpeg", std::io::Cursor::new(&jpeg))?;
        preview_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if small.is_none() {
            bail!("no preview made");
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (strip, preview) = (median(strip_ms), median(preview_ms));
    if json_out {
        println!(
            "{}",
            json!({"bench": "preview", "jpeg_bytes": jpeg.len(), "strip_ms": strip, "preview_ms": preview})
        );
    } else {
        println!(
            "12 MP JPEG ({:.1} MB): metadata removal {strip:.1} ms, preview ({} px) {preview:.0} ms (medians of 5)",
            jpeg.len() as f64 / 1e6,
            kith_media::thumbnail::SIDE
        );
    }
    Ok(())
}
