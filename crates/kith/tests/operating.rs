//! Running a server: backups end to end (`kith backup` copies a running
//! server's data while people keep chatting, `kith restore` puts it back on a
//! stopped one, and the restored server is the same server with the same
//! history and files), exports in the documented format, imports (a kith
//! export moving hosts, a Discord archive coming in) with the reset codes
//! that let imported people in, and what it reports on `--metrics`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;

fn history(config: &Path) -> Vec<serde_json::Value> {
    kith(config, &["history", "Family/general", "--json", "--limit", "100"], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn backup(args: &[&str]) -> std::process::Output {
    std::process::Command::new(KITH).args(args).stdin(std::process::Stdio::null()).output().unwrap()
}

#[test]
fn a_backup_taken_while_people_chat_restores_the_same_server_history_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let photo = tmp.path().join("photo.bin");
    std::fs::write(&photo, (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>()).unwrap();
    let with_file =
        kith(&alice, &["send", "Family/general", "--file", photo.to_str().unwrap(), "the photo"], "");
    kith(&bob, &["send", "Family/general", "before the backup"], "");

    // Bob keeps talking while the backup runs: the server never pauses.
    let stop = Arc::new(AtomicBool::new(false));
    let talker = {
        let (stop, bob) = (stop.clone(), bob.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 40 {
                kith(&bob, &["send", "Family/general", &format!("during {n}")], "");
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = tmp.path().join("backup");
    let made = backup(&["backup", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(said.contains("and 1 files"), "{said}");
    stop.store(true, Ordering::Relaxed);
    let sent_during = talker.join().unwrap();
    assert!(sent_during > 0, "messages went through during the backup");
    assert!(!data.join("files/sweep.paused").exists(), "the sweep is not left paused");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            (mode(&out), mode(&out.join("kith.db")), mode(&out.join("key.pem"))),
            (0o700, 0o600, 0o600)
        );
    }
    let before = history(&alice);

    // Another backup into the same directory is refused, not mixed in.
    let again = backup(&["backup", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // The server stops; the backup goes back in place of its data.
    let addr = server.addr.clone();
    let fingerprint = server.fingerprint.clone();
    drop(server);
    let restored = backup(&["restore", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    assert!(String::from_utf8_lossy(&restored.stdout).contains("held before is in"));
    let server = serve_on(&addr, &data, &[]);
    assert_eq!(server.fingerprint, fingerprint, "the same identity: clients see the same server");
    let after = history(&alice);
    let bodies = |h: &[serde_json::Value]| {
        h.iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let (before, after) = (bodies(&before), bodies(&after));
    assert!(after.contains(&"before the backup".to_owned()) && after.contains(&"the photo".to_owned()));
    // Exactly a prefix of what was said: nothing invented, nothing missing
    // in the middle (messages sent after the copy was taken are not in it).
    assert_eq!(after[..], before[..after.len()], "the backup is one instant of the history");
    let got = tmp.path().join("got");
    kith(&bob, &["download", "Family/general", with_file.trim(), "--out", got.to_str().unwrap()], "");
    assert_eq!(std::fs::read(got.join("photo.bin")).unwrap(), std::fs::read(&photo).unwrap());
}

#[test]
fn a_restore_refuses_a_running_server_and_a_damaged_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, ..] = family_from_the_shell(tmp.path(), &server);
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "the recipe").unwrap();
    kith(&alice, &["send", "Family/general", "--file", file.to_str().unwrap()], "");
    let out = tmp.path().join("backup");
    assert!(backup(&["backup", out.to_str().unwrap(), "--data", data.to_str().unwrap()]).status.success());

    let refused = backup(&["restore", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && why.contains("already using"), "a running server: {why}");
    drop(server);

    // A damaged file in the backup: refused, and the data left as it was.
    let blob = walk(&out.join("files/blobs")).pop().expect("one file");
    std::fs::write(&blob, "the recipe, altered").unwrap();
    let refused = backup(&["restore", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && why.contains("does not match its BLAKE3"), "{why}");
    assert!(data.join("kith.db").exists(), "nothing was moved");
    // Not a backup at all.
    let refused = backup(&["restore", tmp.path().to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a kith backup"));
    // A damaged database.
    std::fs::write(&blob, "the recipe").unwrap();
    let db = out.join("kith.db");
    let mut bytes = std::fs::read(&db).unwrap();
    let half = bytes.len() / 2;
    bytes.truncate(half);
    std::fs::write(&db, bytes).unwrap();
    let refused = backup(&["restore", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && why.contains("integrity"), "{why}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// A plain-HTTP GET; returns (status line, body).
fn get(base: &str, path: &str) -> (String, String) {
    use std::io::{Read as _, Write as _};
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of one sample of a scrape, parsed as the Prometheus text
/// format: `name` or `name{label="value"}`; for a histogram, its count.
/// Every metric must say what it is (HELP).
fn sample(text: &str, name: &str) -> f64 {
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    let (metric, label) = match name.split_once('{') {
        Some((m, l)) => {
            let (k, v) = l.trim_end_matches('}').split_once('=').expect("label=value");
            (m, Some((k, v.trim_matches('"'))))
        }
        None => (name, None),
    };
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    let family = metric.trim_end_matches("_total");
    assert!(scrape.docs.contains_key(family) || scrape.docs.contains_key(metric), "{metric} has no HELP");
    match &found.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
        prometheus_parse::Value::Summary(_) => panic!("{name} is a summary"),
    }
}

#[test]
fn an_operator_sees_the_servers_figures_and_health_on_the_metrics_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_with(&tmp.path().join("data"), &["--metrics", "127.0.0.1:0"]);
    let base = server.metrics.clone().expect("the ready line names the metrics listener");
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "the recipe").unwrap();
    kith(&alice, &["send", "Family/general", "--file", file.to_str().unwrap(), "hello"], "");
    kith(&bob, &["send", "Family/general", "hi"], "");

    let (status, text) = get(&base, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(sample(&text, "kith_messages_total") >= 2.0);
    assert!(sample(&text, "kith_connections_total{transport=\"quic\"}") >= 5.0, "every CLI run connects");
    assert_eq!(sample(&text, "kith_uploads_total"), 1.0);
    assert_eq!(sample(&text, "kith_upload_bytes_total"), 10.0);
    assert!(sample(&text, "kith_commit_seconds") >= 2.0, "commits, each timed");
    assert!(sample(&text, "kith_deliveries_total") > 0.0);
    assert!(sample(&text, "kith_resident_bytes") > 1e6);
    assert_eq!(sample(&text, "kith_slow_consumers_total"), 0.0);
    assert!(sample(&text, "kith_outbox_bytes") >= 0.0);

    // Refusals by rate limits count, by limit: typing notices past their
    // burst (per account), and logins past theirs (per address). The twelve
    // notices go on one connection (the stdio bridge), back to back: twelve
    // CLI runs could be slow enough on a busy machine for the bucket to refill.
    let listed = kith(&bob, &["community", "list", "--json"], "");
    let family: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    let general = family["channels"][0]["id"].as_str().unwrap().to_owned();
    let mut bridge = std::process::Command::new(KITH)
        .args(["bridge", "--json"])
        .env("KITH_CONFIG_DIR", &bob)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_bridge = bridge.stdin.take().unwrap();
    use std::io::Write as _;
    for id in 1..=12 {
        writeln!(to_bridge, r#"{{"requestId": "{id}", "typing": {{"channelId": "{general}"}}}}"#).unwrap();
    }
    let answers = std::io::BufRead::lines(std::io::BufReader::new(bridge.stdout.take().unwrap()));
    let refused = answers
        .map(Result::unwrap)
        // Answers name their request (the Ready and events do not).
        .filter(|l| l.contains(r#""requestId""#))
        .take(12)
        .filter(|l| l.contains("RATE_LIMITED"))
        .count();
    assert!(refused >= 1, "twelve typing notices at once pass their burst of ten");
    drop(to_bridge);
    bridge.wait().unwrap();
    let stranger = tmp.path().join("stranger");
    for _ in 0..7 {
        kith_fails_given(
            &stranger,
            &["login", "alice", "--server", &server.addr, "--password-stdin"],
            b"guess!!!!\n",
        );
    }
    let text = get(&base, "/metrics").1;
    assert!(sample(&text, "kith_rate_limited_total{limit=\"typing notices\"}") >= 1.0, "{text}");
    assert!(sample(&text, "kith_rate_limited_total{limit=\"logins\"}") >= 1.0, "{text}");
    let (status, body) = get(&base, "/health");
    assert!(status.contains("200") && body == "ok\n", "{status} {body:?}");
}

#[test]
fn an_export_is_the_documented_json_with_every_message_and_file_and_no_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, bob, carol] = family_from_the_shell(tmp.path(), &server);
    let file = tmp.path().join("recipe.txt");
    std::fs::write(&file, "flour, eggs, love").unwrap();
    let first =
        kith(&alice, &["send", "Family/general", "--file", file.to_str().unwrap(), "grandma's recipe"], "");
    kith(&bob, &["send", "Family/general", "@alice thanks!"], "");
    let gone = kith(&carol, &["send", "Family/general", "oops"], "");
    kith(&carol, &["delete", "Family/general", gone.trim()], "");
    kith(&bob, &["send", "@carol", "psst"], "");
    kith(&alice, &["channel", "create", "Family/staff"], "");
    kith(&alice, &["override", "set", "Family/staff", "--role", "@everyone", "--deny", "view_channel"], "");

    let out = tmp.path().join("export");
    let made = backup(&["export", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(said.contains("1 communities, 2 channels, 4 messages and 1 files"), "{said}");

    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/export.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("snapshot.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(&snapshot).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "snapshot.json breaks the schema: {errors:?}");
    let message_schema = validator_for_message(&schema);

    let family = &snapshot["communities"][0];
    assert_eq!(family["name"], "Family");
    let general = &family["channels"][0];
    let history: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join(general["history"].as_str().unwrap())).unwrap())
            .unwrap();
    for m in &history {
        let errors: Vec<String> = message_schema.iter_errors(m).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{m} breaks the schema: {errors:?}");
    }
    let bodies: Vec<&str> = history.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["grandma's recipe", "@alice thanks!", ""], "in order; the deleted one kept, empty");
    assert_eq!(history[2]["deleted"], true);
    assert_eq!(history[0]["id"], first.trim());
    let alice_id =
        snapshot["users"].as_array().unwrap().iter().find(|u| u["username"] == "alice").unwrap()["id"]
            .clone();
    assert_eq!(history[1]["mentions"][0], alice_id, "mentions resolve to the exported users");
    let attached = &history[0]["attachments"][0];
    let bytes = std::fs::read(out.join(attached["file"].as_str().unwrap())).unwrap();
    assert_eq!(bytes, b"flour, eggs, love");
    assert_eq!(attached["blake3"], blake3::hash(&bytes).to_hex().as_str());
    let staff = &family["channels"][1];
    assert_eq!(staff["overrides"][0]["deny"][0], "view_channel");
    assert_eq!(snapshot["conversations"].as_array().unwrap().len(), 1, "bob and carol's conversation");

    // Nothing secret anywhere in the export.
    let mut all = String::new();
    for f in walk(&out) {
        all.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
    }
    for secret in ["argon2", "password", "kith_", "token"] {
        assert!(!all.contains(secret), "{secret} in the export");
    }

    // One community alone: no conversations.
    let only = tmp.path().join("family");
    assert!(
        backup(&[
            "export",
            only.to_str().unwrap(),
            "--community",
            "family",
            "--data",
            data.to_str().unwrap()
        ])
        .status
        .success()
    );
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(only.join("snapshot.json")).unwrap()).unwrap();
    assert!(snapshot["conversations"].as_array().unwrap().is_empty());
    drop(server);
}

/// A validator for one history element (`$defs/message`).
fn validator_for_message(schema: &serde_json::Value) -> jsonschema::Validator {
    let mut message = schema.clone();
    let defs = schema["$defs"].clone();
    message = serde_json::json!({"$schema": message["$schema"], "$defs": defs, "$ref": "#/$defs/message"});
    jsonschema::validator_for(&message).unwrap()
}

/// Every file under `dir`, by its path inside it, with its bytes; the
/// snapshot's `exported_at` (the one thing that differs between two
/// exports of the same data) taken out.
fn export_contents(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    walk(dir)
        .into_iter()
        .map(|f| {
            let name = f.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let mut bytes = std::fs::read(&f).unwrap();
            if name == "snapshot.json" {
                let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                v.as_object_mut().unwrap().remove("exported_at");
                bytes = serde_json::to_vec_pretty(&v).unwrap();
            }
            (name, bytes)
        })
        .collect()
}

fn run_ok(args: &[&str]) -> String {
    let out = backup(args);
    assert!(out.status.success(), "kith {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_community_moves_hosts_through_export_and_import_and_its_people_sign_in_with_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let old_host = tmp.path().join("old");
    let server = serve(&old_host);
    let [alice, bob, carol] = family_from_the_shell(tmp.path(), &server);
    let file = tmp.path().join("recipe.txt");
    std::fs::write(&file, "flour, eggs, love").unwrap();
    let first =
        kith(&alice, &["send", "Family/general", "--file", file.to_str().unwrap(), "grandma's recipe"], "");
    kith(&bob, &["send", "Family/general", "@alice thanks!", "--reply-to", first.trim()], "");
    let typo = kith(&carol, &["send", "Family/general", "tpyo"], "");
    kith(&carol, &["edit", "Family/general", typo.trim(), "typo"], "");
    let gone = kith(&carol, &["send", "Family/general", "oops"], "");
    kith(&carol, &["delete", "Family/general", gone.trim()], "");
    kith(&bob, &["send", "@carol", "psst"], "");
    kith(&alice, &["channel", "create", "Family/staff"], "");
    kith(&alice, &["override", "set", "Family/staff", "--role", "@everyone", "--deny", "view_channel"], "");
    kith(&alice, &["role", "create", "Family", "cooks", "--permissions", "manage_messages"], "");
    kith(&alice, &["role", "grant", "Family", "bob", "cooks"], "");
    kith(&alice, &["nick", "Family", "Grandma Bob", "--user", "bob"], "");
    drop(server);

    let export = |data: &Path, name: &str| {
        let out = tmp.path().join(name);
        run_ok(&["export", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
        out
    };
    let first_export = export(&old_host, "export-1");

    // Into a fresh data directory: a new host.
    let new_host = tmp.path().join("new");
    let said = run_ok(&["import", first_export.to_str().unwrap(), "--data", new_host.to_str().unwrap()]);
    assert!(said.contains("imported 3 people, 1 communities, 3 channels, 5 messages and 1 files"), "{said}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            (mode(&new_host), mode(&new_host.join("kith.db"))),
            (0o700, 0o600),
            "as private as kith serve makes it"
        );
    }
    let second_export = export(&new_host, "export-2");
    assert_eq!(
        export_contents(&first_export),
        export_contents(&second_export),
        "export → import → export gives the same files"
    );

    // Again: nothing changes.
    let said = run_ok(&["import", first_export.to_str().unwrap(), "--data", new_host.to_str().unwrap()]);
    assert!(said.contains("imported 0 people, 0 communities, 0 channels, 0 messages and 0 files"), "{said}");
    assert!(said.contains("5 messages were already there"), "{said}");
    assert_eq!(export_contents(&first_export), export_contents(&export(&new_host, "export-3")));

    // The new host starts; its owner was imported without a password, so
    // the server hands them a code, and they hand the others theirs.
    let server = serve(&new_host);
    assert!(server.setup_code.is_none(), "the imported owner is the owner");
    let new_alice = tmp.path().join("alice-new");
    let refused = kith_fails_given(
        &new_alice,
        &["login", "alice", "--server", &server.addr, "--password-stdin"],
        b"alice's password\n",
    );
    assert!(refused.contains("wrong username or password") || refused.contains("password"), "{refused}");
    let code = server.owner_code.clone().expect("the server prints the owner's code");
    kith(
        &new_alice,
        &["login", "alice", "--server", &server.addr, "--code", &code, "--password-stdin"],
        "alice's new password\n",
    );
    let reset: serde_json::Value =
        serde_json::from_str(&kith(&new_alice, &["admin", "reset-password", "bob", "--json"], "")).unwrap();
    let bob_code = reset["code"].as_str().unwrap();
    let new_bob = tmp.path().join("bob-new");
    let wrong = kith_fails_given(
        &new_bob,
        &["login", "bob", "--server", &server.addr, "--code", "AAAA-BBBB-CCCC", "--password-stdin"],
        b"bob's new password\n",
    );
    assert!(wrong.contains("was used already, or has expired"), "{wrong}");
    kith(
        &new_bob,
        &["login", "bob", "--server", &server.addr, "--code", bob_code, "--password-stdin"],
        "bob's new password\n",
    );
    let used = kith_fails_given(
        &tmp.path().join("bob-again"),
        &["login", "bob", "--server", &server.addr, "--code", bob_code, "--password-stdin"],
        b"bob's other password\n",
    );
    assert!(used.contains("was used already"), "a code works once: {used}");
    let not_owner = kith_fails(&new_bob, &["admin", "reset-password", "carol"]);
    assert!(not_owner.contains("only the server's owner"), "{not_owner}");
    // Guessing carol's code is throttled like guessing a password (A4).
    kith(&new_alice, &["admin", "reset-password", "carol"], "");
    let guess = |n: usize| {
        kith_fails_given(
            &tmp.path().join(format!("guesser-{n}")),
            &["login", "carol", "--server", &server.addr, "--code", "AAAA-BBBB-CCCC", "--password-stdin"],
            b"a guessed password\n",
        )
    };
    let answers: Vec<String> = (0..8).map(guess).collect();
    assert!(answers[0].contains("was used already, or has expired"), "{}", answers[0]);
    assert!(answers.last().unwrap().contains("too many login attempts"), "{answers:#?}");

    // The history is there, with its times, files, replies, edits and names.
    let moved = history(&new_bob);
    let bodies: Vec<&str> = moved.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["grandma's recipe", "@alice thanks!", "typo"]);
    assert_eq!(moved[0]["id"], first.trim(), "ids kept");
    let channel = moved[0]["channel_id"].as_str().unwrap();
    let old: Vec<serde_json::Value> = serde_json::from_slice(
        &std::fs::read(first_export.join("history").join(format!("{channel}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(moved[0]["time"], old[0]["time"], "original times kept");
    assert_eq!(moved[1]["reply_to"], first.trim());
    assert!(moved[2]["edited_ms"].is_u64(), "{}", moved[2]);
    let saved = tmp.path().join("saved");
    std::fs::create_dir_all(&saved).unwrap();
    kith(&new_bob, &["download", "Family/general", first.trim(), "--out", saved.to_str().unwrap()], "");
    assert_eq!(std::fs::read(saved.join("recipe.txt")).unwrap(), b"flour, eggs, love");
    let members = kith(&new_bob, &["members", "Family", "--json"], "");
    assert!(members.contains("Grandma Bob") && members.contains("cooks"), "{members}");
    let dms = kith(&new_bob, &["history", "@carol", "--json"], "");
    assert!(dms.contains("psst"), "{dms}");
    drop(server);
}

#[test]
fn a_damaged_export_is_refused_whole_with_the_file_and_field_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    for n in 0..3 {
        kith(&alice, &["send", "Family/general", &format!("hello {n}")], "");
    }
    kith(&bob, &["send", "@alice", "hi"], "");
    drop(server);
    let export = tmp.path().join("export");
    run_ok(&["export", export.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(export.join("snapshot.json")).unwrap()).unwrap();
    let general = snapshot["communities"][0]["channels"][0]["history"].as_str().unwrap().to_owned();

    let target = tmp.path().join("target");
    let refused = |why: &str| {
        let out = backup(&["import", export.to_str().unwrap(), "--data", target.to_str().unwrap()]);
        assert!(!out.status.success(), "{why}: the import should fail");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // Nothing half-imported: no community, no message.
        if target.join("kith.db").exists() {
            let db = rusqlite::Connection::open(target.join("kith.db")).unwrap();
            let rows: i64 = db
                .query_row("SELECT (SELECT COUNT(*) FROM messages) + (SELECT COUNT(*) FROM users)", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(rows, 0, "{why}: nothing half-imported");
        }
        stderr
    };

    // A message whose author is a number, not an id string, on line 3 of
    // the channel's history (the conversation after it would import fine).
    let history_path = export.join(&general);
    let original = std::fs::read_to_string(&history_path).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
    let author =
        serde_json::from_str::<serde_json::Value>(lines[2].trim_end_matches(',')).unwrap()["author_id"]
            .as_str()
            .unwrap()
            .to_owned();
    lines[2] = lines[2].replace(&format!("\"author_id\":\"{author}\""), &format!("\"author_id\":{author}"));
    std::fs::write(&history_path, lines.join("\n")).unwrap();
    let e = refused("a malformed history");
    assert!(e.contains(&general) && e.contains("[1].author_id") && e.contains("line 3"), "{e}");
    std::fs::write(&history_path, &original).unwrap();

    // A snapshot pointing a history outside the export.
    let mut bad = snapshot.clone();
    bad["communities"][0]["channels"][0]["history"] = "../../etc/passwd".into();
    std::fs::write(export.join("snapshot.json"), serde_json::to_vec_pretty(&bad).unwrap()).unwrap();
    let e = refused("a history outside the export");
    assert!(e.contains("the format puts it at"), "{e}");

    // A member who is nobody.
    let mut bad = snapshot.clone();
    bad["communities"][0]["members"][1]["user_id"] = "12345".into();
    std::fs::write(export.join("snapshot.json"), serde_json::to_vec_pretty(&bad).unwrap()).unwrap();
    let e = refused("an unknown member");
    assert!(e.contains("communities[0].members[1].user_id is 12345, who is not among its users"), "{e}");

    // The repaired export goes in.
    std::fs::write(export.join("snapshot.json"), serde_json::to_vec_pretty(&snapshot).unwrap()).unwrap();
    let said = run_ok(&["import", export.to_str().unwrap(), "--data", target.to_str().unwrap()]);
    assert!(said.contains("4 messages"), "{said}");
}

const DISCORD_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/discord");

#[test]
fn a_discord_export_comes_in_with_its_times_replies_mentions_and_photos() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, _, _] = family_from_the_shell(tmp.path(), &server);
    let addr = server.addr.clone();
    drop(server);

    let import = || run_ok(&["import", "--discord", DISCORD_SAMPLE, "--data", data.to_str().unwrap()]);
    let said = import();
    assert!(said.contains("imported 5 people, 1 communities, 2 channels, 11 messages and 2 files"), "{said}");
    assert!(said.contains("2 messages had neither text nor files"), "the join and the pin: {said}");
    assert!(said.contains("1 attachments were not next to the export"), "{said}");
    assert!(said.contains("2 reactions were left out"), "{said}");
    let again = import();
    assert!(
        again.contains("imported 0 people, 0 communities, 0 channels, 0 messages and 0 files"),
        "{again}"
    );
    assert!(again.contains("11 messages were already there"), "{again}");

    let server = serve_on(&addr, &data, &[]);
    let history = |channel: &str| -> Vec<serde_json::Value> {
        kith(&alice, &["history", channel, "--json", "--limit", "100"], "")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let general = history("The Hendersons/general");
    let said: Vec<(&str, &str)> =
        general.iter().map(|m| (m["author"].as_str().unwrap(), m["body"].as_str().unwrap())).collect();
    assert_eq!(said.len(), 8, "{said:#?}");
    assert_eq!(said[0], ("marta", "Welcome to our family server everyone! 🎉 Please be nice."));
    assert_eq!(said[3].0, "Grandpa_Joe", "a name Discord allowed and kith does not, cleaned");
    assert_eq!(general[0]["time"], "2020-05-15T19:02:11.482Z", "the original time");
    assert_eq!(general[3]["edited_ms"], 1_589_571_418_112u64, "the edit's time");
    assert_eq!(general[2]["reply_to"], general[1]["id"], "a reply points at what it answered");
    assert_eq!(general[4]["reply_to"], general[3]["id"]);
    let marta = &general[0]["author_id"];
    assert_eq!(general[1]["mentions"][0], *marta, "@Mom is marta");
    assert_eq!(general[5]["author"], "Carl-bot");
    assert_eq!(general[5]["author_bot"], true);
    assert_eq!(
        general[6]["body"],
        "what are we getting her\n[gift_ideas.pdf (48213 bytes) was not in the Discord export]"
    );
    assert_eq!(general[7]["time"], "2023-05-10T08:14:02.640Z");

    let photos = history("The Hendersons/photos");
    assert_eq!(photos.len(), 3);
    let sunset = &photos[0]["attachments"][0];
    assert_eq!(
        (sunset["name"].as_str(), sunset["content_type"].as_str()),
        (Some("sunset.jpg"), Some("image/jpeg"))
    );
    assert_eq!((sunset["width"].as_u64(), sunset["height"].as_u64()), (Some(96), Some(64)));
    assert_eq!(photos[1]["reply_to"], photos[0]["id"]);
    assert_eq!(photos[2]["body"], "", "a photo alone");
    let saved = tmp.path().join("saved");
    std::fs::create_dir_all(&saved).unwrap();
    kith(
        &alice,
        &[
            "download",
            "The Hendersons/photos",
            photos[2]["id"].as_str().unwrap(),
            "--out",
            saved.to_str().unwrap(),
        ],
        "",
    );
    assert!(image::open(saved.join("IMG_4471.jpg")).is_ok(), "the photo itself came in");

    // The people are placeholders until claimed: marta gets in with a code
    // from the owner, and her messages are hers.
    let members = kith(&alice, &["members", "The Hendersons", "--json"], "");
    for name in ["marta", "jake_h", "lily.h", "Grandpa_Joe", "Carl-bot"] {
        assert!(members.contains(&format!("\"{name}\"")), "{name} in {members}");
    }
    let reset: serde_json::Value =
        serde_json::from_str(&kith(&alice, &["admin", "reset-password", "marta", "--json"], "")).unwrap();
    let marta_config = tmp.path().join("marta");
    kith(
        &marta_config,
        &[
            "login",
            "marta",
            "--server",
            &server.addr,
            "--code",
            reset["code"].as_str().unwrap(),
            "--password-stdin",
        ],
        "marta's own password\n",
    );
    let mine = kith(&marta_config, &["history", "The Hendersons/general", "--json"], "");
    assert!(mine.contains("Welcome to our family server"), "{mine}");
    drop(server);
}

#[test]
fn a_hostile_discord_export_reads_nothing_outside_itself_and_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, _, _] = family_from_the_shell(tmp.path(), &server);
    let addr = server.addr.clone();
    drop(server);
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "the server's own file").unwrap();
    let export = tmp.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    let author = serde_json::json!({"id": "1", "name": "mallory\u{202e}", "isBot": false});
    let message = |id: &str, content: &str, url: &str| {
        serde_json::json!({"id": id, "type": "Default", "timestamp": "2022-01-01T00:00:00+00:00",
            "content": content, "author": author,
            "attachments": [{"url": url, "fileName": "x.txt", "fileSizeBytes": 21}]})
    };
    let file = serde_json::json!({
        "guild": {"id": "9", "name": "Evil"}, "channel": {"id": "10", "name": "general"},
        "messages": [
            message("100", "look", "../secret.txt"),
            message("101", &format!("{}\u{7}", "a".repeat(2_000_000)), &secret.display().to_string()),
        ],
    });
    std::fs::write(export.join("evil.json"), serde_json::to_vec(&file).unwrap()).unwrap();
    let said = run_ok(&["import", "--discord", export.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert!(said.contains("2 attachments were not next to the export"), "neither path is read: {said}");

    let server = serve_on(&addr, &data, &[]);
    let history: Vec<serde_json::Value> = kith(&alice, &["history", "Evil/general", "--json"], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|m| m["attachments"].is_null()), "no file came in");
    let long = history[1]["body"].as_str().unwrap();
    assert_eq!(long.chars().count(), 4000, "a message's length at most");
    assert!(!long.contains('\u{7}'));
    assert_eq!(history[0]["author"], "mallory", "the bidi override is not part of the name");
    drop(server);

    // A time that is not one: refused whole, the file and message named.
    let mut bad = file.clone();
    bad["messages"][0]["timestamp"] = "yesterday".into();
    bad["messages"][0]["id"] = "200".into();
    std::fs::write(export.join("evil.json"), serde_json::to_vec(&bad).unwrap()).unwrap();
    let out = backup(&["import", "--discord", export.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("evil.json") && e.contains("\"yesterday\""), "{e}");
}

#[test]
fn a_server_backs_itself_up_on_schedule_and_keeps_the_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let backups = tmp.path().join("backups");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("kith.toml"),
        format!("[backups]\ndir = {:?}\nevery = \"1s\"\nkeep = 2\n", backups.to_str().unwrap()),
    )
    .unwrap();
    let server = serve_with(&data, &["--metrics", "127.0.0.1:0"]);
    let base = server.metrics.clone().unwrap();
    let [alice, _, _] = family_from_the_shell(tmp.path(), &server);
    kith(&alice, &["send", "Family/general", "before the backups"], "");
    let made = || sample(&get(&base, "/metrics").1, "kith_backups_total");
    let start = made();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while made() < start + 3.0 {
        assert!(std::time::Instant::now() < deadline, "three more backups within a minute");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let text = get(&base, "/metrics").1;
    assert_eq!(sample(&text, "kith_backup_failures_total"), 0.0);
    assert!(sample(&text, "kith_last_backup_timestamp_seconds") > 1.7e9);
    drop(server);

    let mut kept: Vec<_> = std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().path()).collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "only the newest two are kept: {kept:?}");
    let newest = kept.last().unwrap();
    let restored = tmp.path().join("restored");
    run_ok(&["restore", newest.to_str().unwrap(), "--data", restored.to_str().unwrap()]);
    let db = rusqlite::Connection::open(restored.join("kith.db")).unwrap();
    let said: String =
        db.query_row("SELECT body FROM messages ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(said, "before the backups");
}

/// After the owner acted on carol's account: her saved login no longer
/// works, and signing in again with her password fails; what that said.
fn carol_is_signed_out(tmp: &Path, server: &Served, carol: &Path) -> String {
    let e = kith_fails(carol, &["whoami"]);
    assert!(e.contains("signed out") || e.contains("log in"), "carol's saved login is gone: {e}");
    kith_fails_given(
        &tmp.join("carol-again"),
        &["login", "carol", "--server", &server.addr, "--password-stdin"],
        b"carol's password\n",
    )
}

#[test]
fn the_owner_suspends_an_account_and_revokes_invites_from_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, carol] = family_from_the_shell(tmp.path(), &server);

    let made = kith(&bob, &["invite", "create", "Family", "--json"], "");
    let code = serde_json::from_str::<serde_json::Value>(&made).unwrap()["code"].as_str().unwrap().to_owned();
    let listed = kith(&alice, &["invite", "list", "Family"], "");
    assert!(listed.contains(&format!("{code}  by bob")), "{listed}");
    let refused = kith_fails(&carol, &["invite", "revoke", &code]);
    assert!(refused.contains("lack the permission to revoke others' invites"), "{refused}");
    kith(&bob, &["invite", "revoke", &code], "");
    assert!(!kith(&alice, &["invite", "list", "Family"], "").contains(&code));
    let dave = tmp.path().join("dave");
    let e = kith_fails_given(
        &dave,
        &["register", "dave", "--server", &server.addr, "--invite", &code, "--password-stdin"],
        b"dave's password\n",
    );
    assert!(e.to_lowercase().contains("invite"), "{e}");

    kith(&alice, &["admin", "suspend", "carol", "--reason", "spamming the family"], "");
    let e = carol_is_signed_out(tmp.path(), &server, &carol);
    assert!(e.contains("suspended by the server's owner: spamming the family"), "{e}");
    kith(&alice, &["admin", "unsuspend", "carol"], "");
    kith(
        &tmp.path().join("carol-back"),
        &["login", "carol", "--server", &server.addr, "--password-stdin"],
        "carol's password\n",
    );
    let e = kith_fails(&bob, &["admin", "suspend", "carol"]);
    assert!(e.contains("only the server's owner"), "{e}");
}

#[test]
fn the_owner_deletes_an_account_keeping_or_removing_what_it_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, carol] = family_from_the_shell(tmp.path(), &server);
    kith(&bob, &["send", "Family/general", "bob was here"], "");
    kith(&carol, &["send", "Family/general", "carol was here"], "");

    let e = kith_fails(&alice, &["admin", "delete-account", "carol"]);
    assert!(e.contains("run it again with --yes"), "{e}");
    assert!(kith(&carol, &["whoami"], "").contains("carol"), "nothing happened without --yes");
    let e = kith_fails(&bob, &["admin", "delete-account", "carol", "--yes"]);
    assert!(e.contains("only the server's owner"), "{e}");

    kith(&alice, &["admin", "delete-account", "carol", "--yes"], "");
    let e = carol_is_signed_out(tmp.path(), &server, &carol);
    assert!(e.contains("username and password do not match"), "{e}");
    let kept = history(&alice);
    let carols = kept.iter().find(|m| m["body"] == "carol was here").expect("her message stays");
    assert!(carols["author"].as_str().unwrap().starts_with("deleted-"), "{carols}");

    kith(&alice, &["admin", "delete-account", "bob", "--remove-messages", "--yes"], "");
    let bodies: Vec<String> =
        history(&alice).iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
    assert!(
        !bodies.iter().any(|b| b == "bob was here") && bodies.contains(&"carol was here".into()),
        "{bodies:?}"
    );
    // The name is free again.
    let invite = kith(&alice, &["invite", "create", "Family", "--json"], "");
    let code =
        serde_json::from_str::<serde_json::Value>(&invite).unwrap()["code"].as_str().unwrap().to_owned();
    kith(
        &tmp.path().join("new-bob"),
        &["register", "bob", "--server", &server.addr, "--invite", &code, "--password-stdin"],
        "a new bob's password\n",
    );

    // An export carries the tombstone, marked, and an import keeps it one.
    let data = tmp.path().join("data");
    let users = |dir: &Path| {
        let snapshot: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("snapshot.json")).unwrap()).unwrap();
        snapshot["users"].as_array().unwrap().clone()
    };
    let out = tmp.path().join("export");
    run_ok(&["export", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    let exported = users(&out);
    let tomb = exported.iter().find(|u| u["deleted"] == true).expect("carol's tombstone is exported");
    assert!(
        tomb["username"].as_str().unwrap().starts_with("deleted-") && tomb["display_name"] == "Deleted user"
    );
    let moved = tmp.path().join("moved");
    run_ok(&["import", out.to_str().unwrap(), "--data", moved.to_str().unwrap()]);
    let again = tmp.path().join("again");
    run_ok(&["export", again.to_str().unwrap(), "--data", moved.to_str().unwrap()]);
    assert_eq!(users(&again), exported, "the same people, the tombstone still one");
}

#[test]
fn kith_doctor_checks_a_running_server_and_says_what_to_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Invites that name this machine only.
    let server = serve_with(&data, &["--public-address", "127.0.0.1:9"]);
    owner_creates_family(&tmp.path().join("alice"), &server);
    let out = backup(&["doctor", "--data", data.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "ok    a server is running on it",
        "ok    the database passes its integrity check",
        &format!("ok    it answers on QUIC at {}", server.addr),
        "ok    the browser client's HTTPS port is open",
        "warn  no scheduled backups",
    ] {
        assert!(said.contains(line), "{line:?} in:\n{said}");
    }
    assert!(said.contains("warn  invites name 127.0.0.1:9, which works only on this machine"), "{said}");
    drop(server);

    // Stopped, with a broken setting: it says which and how to fix it.
    std::fs::write(data.join("kith.toml"), "[limits]\nmessages = 5\n").unwrap();
    let out = backup(&["doctor", "--data", data.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success());
    assert!(said.contains("FAIL  the settings cannot be read") && said.contains("--print-config"), "{said}");
    assert!(said.contains("ok    no server is running on it now"), "{said}");
}

#[test]
fn a_sighup_reloads_who_may_register_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("kith.toml"), "open_registration = false\n").unwrap();
    let server = serve(&data);
    owner_creates_family(&tmp.path().join("alice"), &server);
    let register = |name: &str| {
        std::process::Command::new(KITH)
            .args(["register", name, "--server", &server.addr, "--password-stdin"])
            .env("KITH_CONFIG_DIR", tmp.path().join(name))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(b"a long password\n")?;
                c.wait_with_output()
            })
            .unwrap()
    };
    let refused = register("dave");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("needs an invite"));

    std::fs::write(data.join("kith.toml"), "open_registration = true\n").unwrap();
    let hup =
        std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    // The reload is the server's next turn; a moment at most.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        if register(&format!("erin{n}")).status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "registration opened after SIGHUP");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A broken file is refused and the running settings stay.
    std::fs::write(data.join("kith.toml"), "open_registration = maybe\n").unwrap();
    std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(register("frank").status.success(), "still open");
}

#[test]
fn an_export_taken_while_five_people_send_is_one_consistent_instant() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, bob, carol] = family_from_the_shell(tmp.path(), &server);
    let first = kith(&alice, &["send", "Family/general", "the first message"], "").trim().to_owned();
    // History enough that the export takes a while: rows written straight
    // into the stopped server's database, older than anything sent later.
    let addr = server.addr.clone();
    drop(server);
    {
        let db = rusqlite::Connection::open(data.join("kith.db")).unwrap();
        let (channel, author): (i64, i64) = db
            .query_row("SELECT channel_id, author_id FROM messages WHERE id = ?1", [&first], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        db.execute_batch(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
             INSERT INTO messages (id, channel_id, author_id, body, mentions, created_at, deleted, mention_everyone)
             SELECT {first} - 200001 + i, {channel}, {author}, 'filler ' || i, '', 0, 0, 0 FROM n;"
        ))
        .unwrap();
    }
    // Five senders at full speed, two of them the same person.
    std::fs::write(data.join("kith.toml"), "[limits]\nmessages = { burst = 0, every_ms = 1 }\n").unwrap();
    let server = serve_on(&addr, &data, &[]);
    let file = tmp.path().join("note.txt");
    std::fs::write(&file, "a note").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = [&alice, &bob, &carol, &alice, &bob]
        .into_iter()
        .enumerate()
        .map(|(n, who)| {
            let (who, stop, file) = (who.clone(), stop.clone(), file.clone());
            std::thread::spawn(move || {
                let mut last: Option<String> = None;
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    let text = format!("sender {n} message {sent}");
                    let mut args = vec!["send", "Family/general", text.as_str()];
                    let reply = last.clone();
                    if let Some(to) = &reply {
                        args.extend(["--reply-to", to.as_str()]);
                    }
                    if sent % 5 == 0 {
                        args.extend(["--file", file.to_str().unwrap()]);
                    }
                    last = Some(kith(&who, &args, "").trim().to_owned());
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = tmp.path().join("export");
    run_ok(&["export", out.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let sent: usize = senders.into_iter().map(|t| t.join().unwrap()).sum();
    drop(server);

    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("snapshot.json")).unwrap()).unwrap();
    let general = &snapshot["communities"][0]["channels"][0];
    let history: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join(general["history"].as_str().unwrap())).unwrap())
            .unwrap();
    assert_eq!(
        general["messages"].as_u64().unwrap() as usize,
        history.len(),
        "the snapshot counts what the history holds"
    );
    let ids: std::collections::BTreeSet<u64> =
        history.iter().map(|m| m["id"].as_str().unwrap().parse().unwrap()).collect();
    for m in &history {
        if let Some(to) = m["reply_to"].as_str() {
            assert!(ids.contains(&to.parse().unwrap()), "a reply's target is in the export: {m}");
        }
        for a in m["attachments"].as_array().into_iter().flatten() {
            assert!(
                out.join(a["file"].as_str().unwrap()).exists(),
                "an attachment's file is in the export: {m}"
            );
        }
    }
    // The same instant as a quiescent read: every message up to the newest
    // exported one, and none after.
    let newest = *ids.last().unwrap();
    let db = rusqlite::Connection::open(data.join("kith.db")).unwrap();
    let mut q = db.prepare("SELECT id FROM messages WHERE channel_id = (SELECT channel_id FROM messages WHERE id = ?1) AND id <= ?1 ORDER BY id").unwrap();
    let then: std::collections::BTreeSet<u64> =
        q.query_map([newest as i64], |r| r.get::<_, i64>(0)).unwrap().map(|r| r.unwrap() as u64).collect();
    assert_eq!(ids, then, "the export is the channel as of one instant");
    let during = history.iter().filter(|m| m["body"].as_str().unwrap().starts_with("sender ")).count();
    assert!(
        during > 0 && sent > during,
        "messages were sent during the export ({during} in it of {sent} sent)"
    );
}
