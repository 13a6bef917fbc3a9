//! Floods that once cost the server without bound, each measured against
//! the cap it must now stay under (shared/BAD_INPUTS.md, R): file
//! descriptors and threads read from /proc for the whole test process,
//! which holds the server.

mod common;

use std::time::Duration;

use common::*;
use kith_client::proto::{self as v1, ErrorCode, client_message::Request, reply::Result as R};

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
    let server = TestServer::start().await;
    let f = family(&server, &["canary"]).await;
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
    eprintln!(
        "history flood of {FLOOD}: {pages} answered, {slowed} told to slow down; fds {fds0} -> peak {fds_peak}, \
         threads {threads0} -> peak {threads_peak}"
    );
    assert_eq!(pages + slowed, FLOOD, "every request is answered");
    assert!(pages >= 8, "reads are served while refused ones are told when to retry");
    // Caps: no new reader connection (each is 3 files: db, -wal, -shm) and no
    // new thread per read; a little slack for the runtime and the client.
    assert!(fds_peak <= fds0 + 8, "fds {fds0} -> {fds_peak}");
    assert!(threads_peak <= threads0 + 4, "threads {threads0} -> {threads_peak}");
    canary_still_sings(&f.members[0], &f.owner, f.general).await;
}
