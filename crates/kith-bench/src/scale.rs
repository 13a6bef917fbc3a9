//! `kith-bench scale`: how the server's costs grow with the server.
//!
//! - **history**: start-up time and memory against stored messages. A data
//!   directory gets N messages in #general, written by the store's own
//!   writer with no server running; then `kith serve` is timed from exec to
//!   its ready line, and its RSS read there.
//! - **members**: what signing in costs against community size. N members
//!   (offline) are written the same way, one of them with a token; that
//!   member connects, and the bench reports the `Ready` snapshot's size and
//!   the time from dialling to holding it.
//! - **online**: server CPU per delivery against channel size: the `chat`
//!   workload with N members online in one channel, at a rate that keeps
//!   the deliveries per second the same for every N.
//!
//! Each curve should be flat (or linear where the thing measured grows):
//! BENCHMARKS.md says where it is not.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use kith_client::Connector;
use kith_core::ids::IdGen;
use kith_core::request::Chosen;
use kith_core::store::{NewMessage, StoredToken, StoredUser, Write};
use kith_core::text::Username;
use kith_core::{ChannelId, CommunityId, MessageId, Timestamp, TokenId, UserId};
use kith_server::store::sqlite::Sqlite;
use kith_server::store::{Backend, Writer};
use prost::Message as _;
use serde_json::json;

use crate::server::{ServerProcess, Stopped, sessions, world};
use crate::{Load, chat_round, ms3};

/// Which curves, at which sizes.
#[derive(Debug, clap::Args)]
pub struct Curves {
    /// Stored messages to start with, one data directory each (empty: skip).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "10000,1000000,10000000")]
    history: Vec<usize>,
    /// Community sizes to sign in to (members, all offline).
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "1000,10000,100000")]
    members: Vec<usize>,
    /// Members online in one channel, for the fan-out curve.
    #[arg(long, value_delimiter = ',', num_args = 0.., default_value = "100,1000,10000")]
    online: Vec<usize>,
    /// Deliveries per second in every fan-out run: the senders' aggregate
    /// rate is this over the number of other members.
    #[arg(long, default_value_t = 20_000)]
    deliveries: u32,
    /// Each fan-out run's length.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
    /// Start-ups and sign-ins timed per size (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

pub async fn run(curves: &Curves, json_out: bool) -> Result<()> {
    if !curves.history.is_empty() {
        history(&curves.history, curves.runs, json_out).await?;
    }
    if !curves.members.is_empty() {
        members(&curves.members, curves.runs, json_out).await?;
    }
    if !curves.online.is_empty() {
        online(&curves.online, curves.deliveries, curves.duration, json_out).await?;
    }
    Ok(())
}

/// A fresh server with its owner and community, stopped: the data
/// directory to fill.
async fn prepared() -> Result<(Stopped, Place)> {
    let server = ServerProcess::start("full")?;
    let world = world(&server, 0, 1).await?;
    let place = Place { community: CommunityId(world.community), general: ChannelId(world.general) };
    drop(world);
    Ok((server.stop(), place))
}

#[derive(Debug, Clone, Copy)]
struct Place {
    community: CommunityId,
    general: ChannelId,
}

/// Applies `writes` to the stopped server's database with the store's own
/// writer, in large commits, minting ids after the highest stored one.
fn fill(
    data: &Path,
    writes: impl FnOnce(IdGen, UserId, Timestamp) -> Box<dyn Iterator<Item = Write>>,
) -> Result<()> {
    let path = data.join("kith.db");
    let (owner, last) = {
        let db = rusqlite::Connection::open(&path)?;
        let owner: i64 = db.query_row("SELECT id FROM users WHERE server_owner = 1", [], |r| r.get(0))?;
        (UserId(owner as u64), kith_server::store::sqlite::max_id(&db)?)
    };
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_millis() as u64;
    let backend = Sqlite { path, sync: kith_server::Sync::Normal };
    let (mut writer, _) = backend.open_writer(0)?;
    let mut writes = writes(IdGen::after(last), owner, Timestamp(now));
    loop {
        let batch: Vec<Write> = writes.by_ref().take(50_000).collect();
        if batch.is_empty() {
            return Ok(());
        }
        writer.commit(&[(0, batch)])?;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn history(sizes: &[usize], runs: usize, json_out: bool) -> Result<()> {
    if !json_out {
        println!("start-up against stored messages (exec to ready; RSS at ready)");
        println!(
            "{:>12} {:>10} {:>22} {:>12} {:>9}",
            "messages", "fill s", "start s (runs)", "median s", "RSS MiB"
        );
    }
    for &n in sizes {
        let (stopped, place) = prepared().await?;
        let filled = Instant::now();
        fill(stopped.data_dir(), |mut ids, owner, now| {
            Box::new((0..n).map(move |i| Write::InsertMessage {
                message: NewMessage {
                    id: MessageId(ids.next(now)),
                    channel: place.general,
                    author: owner,
                    body: format!("stored message {i:>84}"),
                    nonce: None,
                    reply_to: None,
                    mentions: Vec::new(),
                    mention_everyone: false,
                    created_at: now,
                    attachments: Vec::new(),
                },
            }))
        })?;
        let fill_s = filled.elapsed().as_secs_f64();
        let (mut starts, mut rss) = (Vec::new(), Vec::new());
        let mut stopped = stopped;
        for _ in 0..runs.max(1) {
            let (server, took) = stopped.start()?;
            starts.push(took.as_secs_f64());
            rss.push(server.usage().1 as f64 / 1024.0);
            stopped = server.stop();
        }
        let start_s = median(starts.clone());
        let rss_mib = median(rss);
        if json_out {
            println!(
                "{}",
                json!({"bench": "scale-history", "messages": n, "fill_s": fill_s, "start_s": starts,
                       "start_median_s": start_s, "rss_mib": rss_mib})
            );
        } else {
            let runs: Vec<String> = starts.iter().map(|s| format!("{s:.3}")).collect();
            println!("{n:>12} {fill_s:>10.1} {:>22} {start_s:>12.3} {rss_mib:>9.1}", runs.join(", "));
        }
    }
    Ok(())
}

async fn members(sizes: &[usize], runs: usize, json_out: bool) -> Result<()> {
    if !json_out {
        println!("signing in against community size (members offline; one signs in)");
        println!(
            "{:>9} {:>11} {:>22} {:>11} {:>9} {:>9}",
            "members", "Ready bytes", "sign-in ms (runs)", "median ms", "start s", "RSS MiB"
        );
    }
    for &n in sizes {
        let (stopped, place) = prepared().await?;
        let (token, token_hash) = kith_server::auth::new_token();
        fill(stopped.data_dir(), |mut ids, _, now| {
            let mut first = Some(token_hash);
            Box::new((0..n.saturating_sub(1)).flat_map(move |i| {
                let user = UserId(ids.next(now));
                let name = Username::parse(&format!("member{i}")).expect("a valid username");
                let mut writes = vec![
                    Write::CreateUser {
                        user: StoredUser {
                            id: user,
                            username: name.name.clone(),
                            fold: name.fold,
                            skeleton: name.skeleton,
                            display_name: name.name,
                            status_text: String::new(),
                            server_owner: false,
                            presence: Chosen::Online,
                            bot: false,
                            deleted: false,
                        },
                        // No password verifies against this: these members sign in with tokens or not at all.
                        password_hash: "!".into(),
                        created_at: now,
                    },
                    Write::AddMember { community: place.community, user, joined_at: now },
                ];
                if let Some(hash) = first.take() {
                    let token = StoredToken { id: TokenId(ids.next(now)), user, hash };
                    writes.push(Write::CreateToken { token, created_at: now });
                }
                writes
            }))
        })?;
        let (server, start) = stopped.start()?;
        let rss_mib = server.usage().1 as f64 / 1024.0;
        let connector = Connector::new(kith_client::Trust::Pin(server.fingerprint().to_owned()), false)?;
        let (mut took, mut bytes) = (Vec::new(), 0);
        for _ in 0..runs.max(1) {
            let dialled = Instant::now();
            let (client, _) = connector.connect(&server.addr).await?;
            let ready = client.authenticate(&token).await.context("the member's sign-in")?;
            took.push(dialled.elapsed().as_secs_f64() * 1e3);
            bytes = ready.encoded_len();
            client.close().await;
        }
        let ms = median(took.clone());
        if json_out {
            println!(
                "{}",
                json!({"bench": "scale-members", "members": n, "ready_bytes": bytes, "sign_in_ms": took,
                       "sign_in_median_ms": ms, "start_s": start.as_secs_f64(), "rss_mib": rss_mib})
            );
        } else {
            let runs: Vec<String> = took.iter().map(|t| format!("{t:.1}")).collect();
            println!(
                "{n:>9} {bytes:>11} {:>22} {ms:>11.1} {:>9.3} {rss_mib:>9.1}",
                runs.join(", "),
                start.as_secs_f64()
            );
        }
    }
    Ok(())
}

async fn online(sizes: &[usize], deliveries: u32, duration: Duration, json_out: bool) -> Result<()> {
    const SENDERS: usize = 10;
    if !json_out {
        println!("{}", crate::pin::describe());
        println!(
            "fan-out against channel size ({deliveries} deliveries/s, {SENDERS} senders, 100-byte messages)"
        );
        println!(
            "{:>7} {:>6} {:>10} {:>9} {:>28} {:>7} {:>8} {:>6} {:>6} {:>9} {:>6} {:>6}",
            "online",
            "rate",
            "deliv/s",
            "µs/deliv",
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
    for &n in sizes {
        let n = n.max(SENDERS + 1);
        let server = ServerProcess::start("full")?;
        let world = world(&server, 50, 8).await?;
        let clients = Arc::new(sessions(&server, &world, n, 64).await?);
        let rate = (deliveries / (n as u32 - 1)).max(1);
        let load = Load { stalled: 0, body: 100, server_udp_buffer: None, backups_during: None };
        let round = chat_round(&server, &world, &clients, SENDERS, rate, duration, load).await?;
        if json_out {
            let mut j = round.json();
            j["bench"] = json!("scale-online");
            println!("{j}");
        } else {
            println!(
                "{n:>7} {rate:>6} {:>10.0} {:>9.1} {:>28} {:>7.1} {:>8.1} {:>6} {:>6.1} {:>9.1} {:>6.2} {:>6.2}",
                round.delivered_per_s,
                round.server_us,
                ms3(&round.recv),
                round.cpu_pct,
                round.rss_kib as f64 / 1024.0,
                round.lost,
                round.generator_pct,
                round.generator_us,
                round.datagrams_per_delivery,
                round.acks_per_delivery
            );
            if round.generator_bound {
                println!(
                    "        the load generator used its cores up: this run measured it, not the server"
                );
            }
            round.print_drops();
        }
    }
    Ok(())
}
