//! The `kith` binary as users and scripts run it: a real `kith serve` process
//! and real CLI invocations.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::{KITH, family_from_the_shell, kith, kith_fails, kith_fails_given, serve};
use kith_client::proto::register_request::Credential;
use kith_client::{Client, Trust};

#[test]
fn a_family_chats_from_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let (alice, bob) = (tmp.path().join("alice"), tmp.path().join("bob"));
    let code = server.setup_code.clone().expect("a fresh server prints a setup code");

    kith(
        &alice,
        &["register", "alice", "--server", &server.addr, "--setup-code", &code, "--password-stdin"],
        "alice's password\n",
    );
    let created = kith(&alice, &["community", "create", "Family", "--json"], "");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let invite = created["invite"].as_str().unwrap().to_owned();
    assert!(
        invite.ends_with(&format!("?fp={}", server.fingerprint)),
        "the invite carries the fingerprint: {invite}"
    );

    kith(&bob, &["register", "bob", "--invite", &invite, "--password-stdin"], "bob's password!\n");
    let mut tail = Command::new(KITH)
        .args(["tail", "Family/general", "--json"])
        .env("KITH_CONFIG_DIR", &bob)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Once bob's tail is connected, alice's message reaches it.
    let mut tail_out = BufReader::new(tail.stdout.take().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let id = kith(&alice, &["send", "Family/general", "hello @bob"], "");
    kith(&alice, &["send", "Family/general", "-"], "from stdin\n");
    let mut line = String::new();
    tail_out.read_line(&mut line).unwrap();
    let _ = tail.kill();
    let _ = tail.wait();
    let live: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(live["id"], id.trim());
    assert_eq!(live["author"], "alice");
    assert_eq!(live["body"], "hello @bob");
    assert_eq!(live["mentions"].as_array().unwrap().len(), 1);

    let history = kith(&bob, &["history", "Family/general", "--limit", "50", "--json"], "");
    let bodies: Vec<String> = history
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["hello @bob", "from stdin"]);
}

#[test]
fn a_changed_server_identity_is_refused_with_both_fingerprints() {
    let tmp = tempfile::tempdir().unwrap();
    let first = serve(&tmp.path().join("one"));
    let config = tmp.path().join("cfg");
    let code = first.setup_code.clone().unwrap();
    kith(
        &config,
        &["register", "alice", "--server", &first.addr, "--setup-code", &code, "--password-stdin"],
        "alice's password\n",
    );
    let (addr, pinned) = (first.addr.clone(), first.fingerprint.clone());
    drop(first);

    // Another server (another identity) answers on the same address.
    let port = addr.rsplit_once(':').unwrap().1;
    let other = tmp.path().join("two");
    let mut impostor = None;
    for _ in 0..100 {
        let mut child = Command::new(KITH)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(&other)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        if ready.starts_with("kith ready") {
            impostor = Some((child, ready));
            break;
        }
        let _ = child.wait();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (mut child, ready) = impostor.expect("the port is free again");
    let out = Command::new(KITH).args(["whoami"]).env("KITH_CONFIG_DIR", &config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let presented = ready.split("fingerprint=").nth(1).unwrap().split_whitespace().next().unwrap();
    assert!(err.contains("different identity") && err.contains(&pinned) && err.contains(presented), "{err}");
    // It says where the pin lives and the command that accepts the new one.
    let trust = format!("kith trust {addr} --fingerprint {presented}");
    assert!(err.contains("known_servers.toml") && err.contains(&trust), "{err}");

    // Accepting takes the fingerprint itself, checked against the server.
    let asked = kith_fails(&config, &["trust", &addr]);
    assert!(asked.contains(presented) && asked.contains("Compare it"), "{asked}");
    let wrong = kith_fails(&config, &["trust", &addr, "--fingerprint", &pinned]);
    assert!(wrong.contains("nothing was changed"), "{wrong}");
    let done = kith(&config, &["trust", &addr, "--fingerprint", presented], "");
    assert!(done.contains(&format!("now pinned as {presented} (was {pinned})")), "{done}");
    // This server does not know alice's token: the CLI says what to do.
    let out = Command::new(KITH).args(["whoami"]).env("KITH_CONFIG_DIR", &config).output().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was signed out") && err.contains("kith login alice"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill() {
    const MESSAGES: usize = 500;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // One account sends as fast as it can: lift its message rate limit.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("kith.toml"), "[limits]\nmessages = { burst = 0, every_ms = 1 }\n").unwrap();
    let mut server = serve(&data);
    let code = server.setup_code.clone().unwrap();
    let (client, _) = Client::connect(&server.addr, Trust::Pin(server.fingerprint.clone())).await.unwrap();
    client.register("owner", "owner's password", Some(Credential::SetupCode(code))).await.unwrap();
    let community = match client
        .request(kith_client::proto::client_message::Request::CreateCommunity(
            kith_client::proto::CreateCommunityRequest { name: "Family".into() },
        ))
        .await
        .unwrap()
    {
        kith_client::proto::reply::Result::Community(c) => c,
        other => panic!("{other:?}"),
    };
    let general = community.channels[0].id;

    // Ten concurrent senders, so commits are grouped.
    let client = Arc::new(client);
    let mut tasks = Vec::new();
    for t in 0..10 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..MESSAGES / 10 {
                ids.push(
                    client.send_message(general, &format!("{t}/{n}"), &format!("{t}-{n}")).await.unwrap().id,
                );
            }
            ids
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), MESSAGES);

    // SIGKILL: no shutdown path runs.
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let restarted = serve(&data);
    assert_eq!(restarted.fingerprint, server.fingerprint);
    let (client, _) =
        Client::connect(&restarted.addr, Trust::Pin(restarted.fingerprint.clone())).await.unwrap();
    client.login("owner", "owner's password").await.unwrap();
    let mut stored = Vec::new();
    let mut anchor = None;
    loop {
        let page = client.history(general, anchor, 100).await.unwrap();
        let Some(first) = page.first() else { break };
        anchor = Some(kith_client::proto::history_request::Anchor::Before(first.id));
        stored.extend(page.iter().map(|m| m.id));
    }
    stored.sort_unstable();
    acked.sort_unstable();
    assert_eq!(stored, acked, "every acknowledged message is in history after SIGKILL");
}

#[test]
fn a_community_is_run_and_moderated_from_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, carol] = family_from_the_shell(tmp.path(), &server);

    // Roles and a private channel.
    let role = kith(
        &alice,
        &[
            "role",
            "create",
            "Family",
            "mods",
            "--permissions",
            "kick_members,view_audit_log",
            "--rank",
            "10",
            "--json",
        ],
        "",
    );
    let role: serde_json::Value = serde_json::from_str(&role).unwrap();
    assert_eq!(role["permissions"], serde_json::json!(["kick_members", "view_audit_log"]));
    kith(&alice, &["role", "grant", "Family", "bob", "mods"], "");
    kith(&alice, &["channel", "create", "Family/staff"], "");
    kith(&alice, &["override", "set", "Family/staff", "--role", "@everyone", "--deny", "view_channel"], "");
    kith(&alice, &["override", "set", "Family/staff", "--role", "mods", "--allow", "view_channel"], "");
    kith(&bob, &["send", "Family/staff", "mods only"], "");
    let refused = kith_fails(&carol, &["send", "Family/staff", "let me in"]);
    assert!(refused.contains("no channel #staff"), "carol cannot even see #staff: {refused}");
    let unknown = kith_fails(&alice, &["role", "create", "Family", "x", "--permissions", "fly"]);
    assert!(unknown.contains("unknown permission"), "{unknown}");

    // Timeout, then kick, with reasons in the audit log.
    kith(&alice, &["timeout", "Family", "carol", "10m", "--reason", "cool off"], "");
    let timed_out = kith_fails(&carol, &["send", "Family/general", "hey"]);
    assert!(timed_out.contains("timed out"), "{timed_out}");
    // The time reads as a time, with how long is left, not as Unix ms.
    assert!(timed_out.contains("(in 10 min)") && !timed_out.contains("<t:"), "{timed_out}");
    kith(&alice, &["timeout", "Family", "carol", "0s"], "");
    kith(&carol, &["send", "Family/general", "sorry"], "");
    let refused = kith_fails(&carol, &["kick", "Family", "bob"]);
    assert!(refused.contains("lack the permission"), "{refused}");
    kith(&bob, &["kick", "Family", "carol", "--reason", "rude"], "");
    let members: Vec<serde_json::Value> = kith(&alice, &["members", "Family", "--json"], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = members.iter().map(|m| m["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(members[1]["roles"], serde_json::json!(["mods"]));
    let audit: Vec<serde_json::Value> = kith(&bob, &["audit", "Family", "--json"], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(audit[0]["action"], "kick");
    assert_eq!(audit[0]["actor"], "bob");
    assert_eq!(audit[0]["reason"], "rude");
    // The kicked member is named, though no longer a member.
    assert_eq!(audit[0]["target"], "carol");
    let text = kith(&bob, &["audit", "Family"], "");
    assert!(text.lines().next().unwrap().contains("bob  kick carol"), "{text}");
    assert!(audit.iter().any(|e| e["action"] == "timeout" && e["reason"] == "cool off"));

    // Nicknames and profile.
    kith(&bob, &["nick", "Family", "Bobby"], "");
    kith(&bob, &["profile", "--status", "on call"], "");
    let members = kith(&alice, &["members", "Family"], "");
    assert!(members.contains("bob (Bobby)  [mods]  — on call"), "{members}");
}

/// `kith serve` on `addr` with `data`, as a restarted server.
fn restart(addr: &str, data: &std::path::Path) -> std::process::Child {
    let mut child = Command::new(KITH)
        .args(["serve", "--listen", addr, "--data"])
        .arg(data)
        .env("KITH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    assert!(ready.starts_with("kith ready"), "{ready}");
    child
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig}");
}

/// The regression: after a restart, tail caught up one page of 100 and
/// silently skipped the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follows_across_a_server_restart_without_losing_a_message() {
    const MISSED: usize = 160;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("kith.toml"), "[limits]\nmessages = { burst = 0, every_ms = 1 }\n").unwrap();
    let mut server = serve(&data);
    let alice = tmp.path().join("alice");
    let code = server.setup_code.clone().unwrap();
    kith(
        &alice,
        &["register", "alice", "--server", &server.addr, "--setup-code", &code, "--password-stdin"],
        "alice's password\n",
    );
    kith(&alice, &["community", "create", "Family"], "");
    kith(&alice, &["send", "Family/general", "from before the tail"], "");
    let mut tail = Command::new(KITH)
        .args(["tail", "Family/general", "--json"])
        .env("KITH_CONFIG_DIR", &alice)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    std::thread::sleep(std::time::Duration::from_millis(500));
    kith(&alice, &["send", "Family/general", "before"], "");
    assert!(lines.next().unwrap().unwrap().contains("\"before\""));

    // The server dies, and comes back on the same address with its data but
    // none of its sessions. The tail is asleep meanwhile, so that what it
    // missed is more than one page of history when it wakes.
    let addr = server.addr.clone();
    signal(&tail, "-STOP");
    let _ = server.child.kill();
    let _ = server.child.wait();
    server.child = restart(&addr, &data);
    let (client, _) = Client::connect(&addr, Trust::Pin(server.fingerprint.clone())).await.unwrap();
    let ready = client.login("alice", "alice's password").await.unwrap();
    let general = ready.communities[0].channels[0].id;
    for i in 0..MISSED {
        client.send_message(general, &format!("after {i}"), &format!("n{i}")).await.unwrap();
    }
    signal(&tail, "-CONT");
    // tail reconnects, finds its session gone, and catches up from history,
    // page after page; then live messages follow.
    let got: Vec<String> = (0..MISSED).map(|_| lines.next().unwrap().unwrap()).collect();
    for (i, line) in got.iter().enumerate() {
        assert!(line.contains(&format!("\"after {i}\"")), "line {i}: {line}");
    }
    client.send_message(general, "live again", "live").await.unwrap();
    assert!(lines.next().unwrap().unwrap().contains("\"live again\""));
    let _ = tail.kill();
    let _ = tail.wait();
}

#[test]
fn kith_send_resends_with_its_nonce_when_the_server_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = serve(&data);
    let [alice, _, _] = family_from_the_shell(tmp.path(), &server);
    let addr = server.addr.clone();
    let _ = server.child.kill();
    let _ = server.child.wait();

    // The server is down: the send says so within its timeout, and keeps trying.
    let started = std::time::Instant::now();
    let send = Command::new(KITH)
        .args(["send", "Family/general", "while you were away", "--timeout", "1s"])
        .env("KITH_CONFIG_DIR", &alice)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    server.child = restart(&addr, &data);
    let out = send.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("no answer from") && err.contains("sending again"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let history = kith(&alice, &["history", "Family/general", "--json"], "");
    assert_eq!(history.matches("while you were away").count(), 1, "{history}");
}

#[test]
fn a_second_server_on_one_data_directory_is_refused_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first = serve(&data);
    let out = Command::new(KITH)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("KITH_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("pid {}", first.child.id())) && err.contains("already using"), "{err}");
}

#[test]
fn a_message_over_the_limit_is_refused_before_it_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, _, _] = family_from_the_shell(tmp.path(), &server);
    let long = "x".repeat(100_000);
    let err = kith_fails_given(&alice, &["send", "Family/general", "-"], long.as_bytes());
    assert!(err.contains("100000 characters") && err.contains("at most 4000"), "{err}");
}

#[test]
fn friends_talk_in_direct_and_group_conversations_from_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, carol] = family_from_the_shell(tmp.path(), &server);

    // `@bob` is the direct conversation with bob, opened on first use.
    kith(&alice, &["send", "@bob", "dinner at 7?"], "");
    kith(&alice, &["send", "@bob", "@bob bring wine"], "");
    let unread: Vec<serde_json::Value> =
        kith(&bob, &["unread", "--json"], "").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(unread.len(), 1, "{unread:?}");
    assert_eq!((unread[0]["kind"].as_str(), unread[0]["name"].as_str()), (Some("direct"), Some("@alice")));
    assert_eq!((unread[0]["unread"].as_u64(), unread[0]["mentions"].as_u64()), (Some(2), Some(1)));
    let history = kith(&bob, &["history", "@alice", "--json"], "");
    assert_eq!(history.lines().count(), 2);
    kith(&bob, &["read", "@alice"], "");
    assert_eq!(kith(&bob, &["unread"], ""), "nothing unread\n", "read means read, and it says so");
    assert_eq!(kith(&bob, &["unread", "--json"], ""), "", "scripts get no lines");
    kith(&bob, &["send", "@alice", "yes!"], "");

    // A group, named, with everyone.
    let group = kith(&carol, &["group", "create", "alice", "bob", "--name", "cousins"], "");
    assert!(group.trim().parse::<u64>().is_ok(), "{group}");
    kith(&alice, &["send", "@cousins", "hello cousins"], "");
    let dms: Vec<serde_json::Value> =
        kith(&bob, &["dms", "--json"], "").lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let cousins = dms.iter().find(|d| d["kind"] == "group").expect("bob sees the group");
    assert_eq!(cousins["name"], "cousins");
    assert_eq!(cousins["unread"], 1);
    assert_eq!(cousins["owner"], "carol");
    kith(&bob, &["group", "leave", "cousins"], "");
    let gone = kith_fails(&bob, &["send", "@cousins", "hi"]);
    assert!(gone.contains("cousins"), "{gone}");

    // Presence: dnd is kept after the command exits; invisible looks offline.
    let who = kith(&alice, &["presence", "dnd", "--json"], "");
    let me: serde_json::Value = serde_json::from_str(who.lines().next().unwrap()).unwrap();
    assert_eq!((me["user"].as_str(), me["status"].as_str()), (Some("alice"), Some("dnd")));
    kith(&carol, &["presence", "invisible"], "");
    let seen = kith(&bob, &["presence"], "");
    assert!(seen.lines().any(|l| l.starts_with("offline") && l.ends_with("carol")), "{seen}");
    assert!(
        seen.lines().any(|l| l.starts_with("offline") && l.ends_with("alice")),
        "alice's command ended: {seen}"
    );

    // Leaving every group at once; direct conversations stay.
    kith(&carol, &["group", "leave-all"], "");
    let dms = kith(&carol, &["dms", "--json"], "");
    assert!(!dms.contains("\"group\""), "{dms}");
}

#[test]
fn telnet_guest_access_is_configured_with_flags_or_kith_toml_and_half_a_setting_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let refused = |args: &[&str]| {
        let out = Command::new(KITH)
            .args(["serve", "--listen", "127.0.0.1:0", "--telnet", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(args)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(refused(&["--telnet-guests", "chat"]).contains("--telnet-guest-community"));
    assert!(refused(&["--telnet-guest-community", "Family"]).contains("--telnet-guests"));
    assert!(refused(&["--telnet-guests", "everything"]).contains("read-only"));
    assert!(refused(&["--telnet-no-passwords"]).contains("nobody in"));

    // Guests only, from kith.toml: the first screen offers nothing else.
    std::fs::create_dir_all(&data).unwrap();
    let toml = "[telnet]\nlisten = \"127.0.0.1:0\"\npasswords = false\nguests = \"read-only\"\n\
                guest_community = \"Family\"\n";
    std::fs::write(data.join("kith.toml"), toml).unwrap();
    let server = serve(&data);
    let addr = server.telnet.clone().expect("telnet= in the ready line");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    while !String::from_utf8_lossy(&seen).contains("come in as a guest") {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{}", String::from_utf8_lossy(&seen));
        let mut buf = [0u8; 4096];
        if let Ok(n) = std::io::Read::read(&mut stream, &mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
    }
    assert!(!String::from_utf8_lossy(&seen).contains("log in"));
}

#[test]
fn the_cli_prints_what_people_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    // Emoji sequences come out whole, not as `\u{200d}` escapes.
    let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
    kith(&bob, &["send", "Family/general", &format!("the {family} is here")], "");
    let history = kith(&alice, &["history", "Family/general"], "");
    assert!(history.contains(&format!("the {family} is here")), "{history}");
    assert!(!history.contains("\\u{"), "{history}");

    // A bare invite code names no server: the error says what to add.
    let bare = kith_fails(
        &tmp.path().join("dave"),
        &["register", "dave", "--invite", "ABCD2345", "--password-stdin"],
    );
    assert!(bare.contains("does not say which server") && bare.contains("--server"), "{bare}");
    // A weak password is refused with the rules, before anything is sent.
    let err = kith_fails_given(
        &tmp.path().join("dave"),
        &["register", "dave", "--server", &server.addr, "--password-stdin"],
        b"        \n",
    );
    assert!(err.contains("only spaces") && err.contains("at least 8"), "{err}");

    // A 10 MB password is no password: refused before it overflows a frame.
    let mut huge = "x".repeat(10_000_000);
    huge.push('\n');
    let err = kith_fails_given(
        &tmp.path().join("erin"),
        &["login", "alice", "--server", &server.addr, "--password-stdin"],
        huge.as_bytes(),
    );
    assert!(err.contains("longer than any kith password"), "{err}");

    // The server's help is about the server.
    let help = kith(&alice, &["serve", "--help"], "");
    assert!(!help.contains("--profile") && !help.contains("--config-dir"), "{help}");
    assert!(help.contains("[default: full]") && help.contains("--public-address"), "{help}");
}
