//! Running a server: backups end to end (`kith backup` copies a running
//! server's data while people keep chatting, `kith restore` puts it back on a
//! stopped one, and the restored server is the same server with the same
//! history and files), exports in the documented format, and what it reports
//! on `--metrics`.

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

/// The value of one sample line (`name{labels} value`).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
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
    assert!(sample(&text, "kith_commit_seconds_count") >= 2.0);
    assert!(sample(&text, "kith_deliveries_total") > 0.0);
    assert!(sample(&text, "kith_resident_bytes") > 1e6);
    assert_eq!(sample(&text, "kith_slow_consumers_total"), 0.0);
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
