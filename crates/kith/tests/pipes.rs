//! `kith pipe`, end to end: 100 MiB from one person to another through a
//! real server, byte for byte, with the server's memory flat — and a
//! receiver that stops reading makes the sender wait, not the server hold.

mod common;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The server's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_hundred_mebibytes_pipe_through_the_server_paced_by_the_receiver() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let file = tmp.path().join("photos.tar");
    let sent = blake3::hash(&random_file(&file, 100 << 20));
    let pid = server.child.id();
    let idle = rss_kib(pid);

    // Bob waits for it; his output is read only later.
    let mut receiver = Command::new(KITH)
        .args(["pipe", "--accept", "alice"])
        .env("KITH_CONFIG_DIR", &bob)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut sender = Command::new(KITH)
        .args(["pipe", "@bob", "--name", "photos.tar"])
        .env("KITH_CONFIG_DIR", &alice)
        .stdin(std::fs::File::open(&file).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Bob is not reading: alice must wait, and the server must not hold
    // what she would send.
    let until = Instant::now() + Duration::from_secs(3);
    let mut peak = idle;
    while Instant::now() < until {
        peak = peak.max(rss_kib(pid));
        assert!(sender.try_wait().unwrap().is_none(), "the sender finished while nobody read");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Now bob reads, and all of it arrives.
    let mut got = blake3::Hasher::new();
    let mut out = receiver.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut received = 0u64;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.update(&buf[..n]);
        received += n as u64;
        if received % (8 << 20) < n as u64 {
            peak = peak.max(rss_kib(pid));
        }
    }
    let receiver = receiver.wait_with_output().unwrap();
    let sender = sender.wait_with_output().unwrap();
    assert!(sender.status.success(), "{}", String::from_utf8_lossy(&sender.stderr));
    assert!(receiver.status.success(), "{}", String::from_utf8_lossy(&receiver.stderr));
    assert_eq!(received, 100 << 20);
    assert_eq!(got.finalize(), sent, "byte for byte");
    assert!(String::from_utf8_lossy(&sender.stderr).contains("104.9 MB sent to bob"));
    let grew = peak.saturating_sub(idle);
    assert!(grew < 48 * 1024, "the server's memory grew {grew} KiB for a 100 MiB pipe");
}

#[test]
fn nobody_can_be_piped_to_who_shares_nothing_with_the_sender() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_with(&tmp.path().join("data"), &["--open-registration"]);
    let [alice, ..] = family_from_the_shell(tmp.path(), &server);
    let stranger = tmp.path().join("stranger");
    kith(
        &stranger,
        &["register", "stranger", "--server", &server.addr, "--password-stdin"],
        "a stranger's pw\n",
    );
    let err = kith_fails_given(&alice, &["pipe", "@stranger"], b"hello");
    assert!(err.contains("you share no community or conversation"), "{err}");
}
