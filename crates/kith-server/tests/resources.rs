//! Floods that once cost the server without bound, each measured against
//! the cap it must now stay under (shared/BAD_INPUTS.md, R): file
//! descriptors and threads read from /proc for the whole test process,
//! which holds the server.

mod common;

use std::time::Duration;

use common::*;
use kith_client::proto::{self as v1, ErrorCode, client_message::Request, reply::Result as R};

/// The tests here measure the whole process: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Open file descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Threads of this process.
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

/// The regression: each history read was its own blocking task, and the
/// reader pool opened a connection whenever none was idle, never closing
/// one — 5 000 pipelined reads took a server from 16 to 750 open files and
/// 516 threads, and four such connections starved the telnet gateway's
/// accept loop for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_flood_holds_a_fixed_number_of_readers_and_threads() {
    const FLOOD: usize = 5_000;
    let _alone = SERIAL.lock().await;
    let server = TestServer::start().await;
    let f = family(&server, &["canary", "listener"]).await;
    f.owner.send_message(f.general, "something to read", "").await.unwrap();
    // Warm: the readers have opened their connections.
    for _ in 0..8 {
        f.owner.history(f.general, None, 1).await.unwrap();
    }
    let (fds0, threads0) = (fds(), threads());

    let sampler = tokio::spawn(async {
        let (mut fds_peak, mut threads_peak) = (0, 0);
        for _ in 0..200 {
            fds_peak = fds_peak.max(fds());
            threads_peak = threads_peak.max(threads());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (fds_peak, threads_peak)
    });
    let mut members = f.members.into_iter().map(std::sync::Arc::new);
    let (canary, listener) = (members.next().unwrap(), members.next().unwrap());
    let (stop, singing) = canary_during(canary.clone(), listener.clone(), f.general);
    let mut answers = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let read = v1::HistoryRequest { channel_id: f.general, anchor: None, limit: 1 };
        answers.push(f.owner.submit(Request::History(read)).await.unwrap());
    }
    let (mut pages, mut slowed) = (0, 0);
    for answer in answers {
        match answer.answer().await {
            Ok(R::Messages(_)) => pages += 1,
            Err(e) if e.code() == Some(ErrorCode::RateLimited) && e.retry_after().is_some() => slowed += 1,
            other => panic!("{other:?}"),
        }
    }
    let (fds_peak, threads_peak) = sampler.await.unwrap();
    let _ = stop.send(());
    let (median, worst) = median_and_max_ms(singing.await.unwrap());
    eprintln!(
        "history flood of {FLOOD}: {pages} answered, {slowed} told to slow down; fds {fds0} -> peak {fds_peak}, \
         threads {threads0} -> peak {threads_peak}; canary {median:.1} ms median, {worst:.1} ms worst"
    );
    assert_eq!(pages + slowed, FLOOD, "every request is answered");
    assert!(pages >= 8, "reads are served while refused ones are told when to retry");
    // Caps: no new reader connection (each is 3 files: db, -wal, -shm) and no
    // new thread per read; a little slack for the runtime and the client.
    assert!(fds_peak <= fds0 + 8, "fds {fds0} -> {fds_peak}");
    assert!(threads_peak <= threads0 + 4, "threads {threads0} -> {threads_peak}");
    canary_still_sings(&canary, &listener, f.general).await;
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The regression: each hash allocated its 19 MiB on whichever of up to
/// ~120 blocking threads ran it, and glibc kept it in that thread's arena:
/// waves of failed logins for unknown users (no account needed) took a
/// server to 3.5 GB. Now two hashing threads own their memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_failed_logins_cost_two_hashers_worth_of_memory() {
    const LOGINS: usize = 200;
    const HASHERS: u64 = 2;
    let _alone = SERIAL.lock().await;
    let server = TestServer::start().await;
    let f = family(&server, &["canary", "listener"]).await;
    let mut members = f.members.into_iter().map(std::sync::Arc::new);
    let (canary, listener) = (members.next().unwrap(), members.next().unwrap());
    // Connect first: what is measured is the logins, not the connections.
    let mut clients = Vec::new();
    for _ in 0..LOGINS {
        clients.push(std::sync::Arc::new(server.client().await));
    }
    let idle = rss_kib();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = tokio::spawn({
        let done = done.clone();
        async move {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        }
    });
    let (stop, singing) = canary_during(canary.clone(), listener.clone(), f.general);
    for wave in 0..3 {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, c) in clients.iter().enumerate() {
            let c = c.clone();
            tasks.spawn(async move { c.login(&format!("nobody-{wave}-{i}"), "wrong password").await });
        }
        while let Some(done) = tasks.join_next().await {
            let err = done.unwrap().expect_err("nobody logs in");
            assert!(matches!(err.code(), Some(ErrorCode::BadCredentials | ErrorCode::RateLimited)), "{err}");
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = rss_kib().max(sampler.await.unwrap());
    let cap = idle + HASHERS * 19 * 1024 + 48 * 1024;
    let _ = stop.send(());
    let (median, worst) = median_and_max_ms(singing.await.unwrap());
    eprintln!(
        "{LOGINS} concurrent failed logins, 3 waves: RSS {idle} KiB idle -> {peak} KiB peak (cap {cap}); \
         canary {median:.1} ms median, {worst:.1} ms worst"
    );
    assert!(peak <= cap, "RSS {idle} -> {peak} KiB, over the cap of {cap}");
    canary_still_sings(&canary, &listener, f.general).await;
}

/// Hashing memory is held while people sign in, not forever: once nobody
/// has for a few seconds, each hasher gives its 19 MiB back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_memory_goes_back_once_nobody_is_signing_in() {
    const HASHERS: u64 = 2;
    let _alone = SERIAL.lock().await;
    let server = TestServer::start().await;
    let f = family(&server, &[]).await;
    // Two at once, so that both hashers have worked.
    let (_ada, _bea) = tokio::join!(server.member("ada", &f.invite), server.member("bea", &f.invite));
    let busy = rss_kib();
    tokio::time::sleep(kith_server::auth::Hashers::RELEASE_AFTER + Duration::from_secs(2)).await;
    let rested = rss_kib();
    eprintln!("RSS {busy} KiB after two sign-ups -> {rested} KiB at rest");
    assert!(
        rested + (HASHERS * 19 - 4) * 1024 <= busy,
        "RSS {busy} -> {rested} KiB: the hashers kept their memory"
    );
}

/// A session is never cut off for the size of its own snapshot: a `Ready`
/// larger than the whole outbox still goes out (only a session that does
/// not read its events is a slow consumer).
#[tokio::test]
async fn a_snapshot_larger_than_the_outbox_still_logs_in() {
    let _alone = SERIAL.lock().await;
    let server = TestServer::start_with(|c| c.outbox_bytes = 64 * 1024).await;
    let (owner, _) = server.owner("owner").await;
    let community = owner.create_community("Big").await.unwrap();
    for n in 0..100 {
        let create = v1::CreateChannelRequest {
            community_id: community.id,
            name: format!("c{n}"),
            topic: "t".repeat(1000),
            kind: v1::ChannelKind::Text as i32,
        };
        owner.request(Request::CreateChannel(create)).await.unwrap();
    }
    let again = server.client().await;
    let ready = again.login("owner", PASSWORD).await.expect("logs in");
    let bytes = prost::Message::encoded_len(&ready);
    assert!(bytes > 64 * 1024, "the snapshot ({bytes} bytes) is larger than the outbox");
    assert_eq!(ready.communities[0].channels.len(), 101);
}

/// The regression: a telnet connection that had not signed in cost ~3 MB
/// (two cell buffers of its window, 300×120 at most), so 504 of them took a
/// server from 0.43 to 1.93 GB. Before signing in there is no screen kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnet_connections_that_never_sign_in_cost_kilobytes() {
    use common::telnet::*;
    const CONNECTIONS: usize = 200;
    let _alone = SERIAL.lock().await;
    let server = TestServer::start_with(|c| {
        c.telnet = Some(kith_server::telnet::TelnetConfig::new("127.0.0.1:0".parse().unwrap()));
    })
    .await;
    let addr = server.server.telnet_addr().unwrap();
    // One first, so what the gateway allocates once is not counted.
    let mut warm = Tn::connect(addr).await;
    warm.until_shows("[l] log in").await;
    let before = rss_kib();
    // Raw connections (no emulator on this end, which lives in this process
    // too): agree to NAWS, report 300×120, press `l`, read until the prompt.
    let mut idle = Vec::new();
    for _ in 0..CONNECTIONS {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut hello = vec![255, 251, 31]; // IAC WILL NAWS
        hello.extend(naws_bytes(1, 44, 0, 120));
        hello.push(b'l');
        stream.write_all(&hello).await.unwrap();
        let mut tail = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n =
                tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "closed before the prompt");
            tail.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&tail).contains("Username") {
                break;
            }
            let keep = tail.len().saturating_sub(64);
            tail.drain(..keep);
        }
        idle.push(stream);
    }
    let after = rss_kib();
    let per = (after.saturating_sub(before)) * 1024 / CONNECTIONS as u64;
    eprintln!(
        "{CONNECTIONS} telnet connections at 300×120, not signed in: RSS {before} -> {after} KiB, {per} B each"
    );
    // Both ends are in this process; the client's end is a socket.
    assert!(per <= 64 * 1024, "{per} bytes per connection");
    drop(idle);
}
