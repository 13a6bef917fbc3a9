//! Attachments from the shell: `kith send --file` and `kith download`
//! against a real `kith serve`, as a family would use them.

mod common;

use std::path::Path;

use common::*;

/// A file of `len` bytes that compresses to nothing useful (so no layer
/// can cheat by shrinking it).
fn random_file(path: &Path, len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn history(config: &Path, channel: &str) -> Vec<serde_json::Value> {
    kith(config, &["history", channel, "--json"], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Files under the server's file store, as (path relative to it, size).
fn stored(data: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for dir in ["blobs", "partial"] {
        let root = data.join("files").join(dir);
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    let rel = e.path().strip_prefix(data).unwrap().display().to_string();
                    out.push((rel, e.metadata().unwrap().len()));
                }
            }
        }
    }
    out
}

#[test]
fn a_file_sent_from_the_cli_is_downloaded_by_another_member_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let big = tmp.path().join("beach.bin");
    let bytes = random_file(&big, 20 << 20);
    let photo = tmp.path().join("photo.jpg");
    std::fs::write(&photo, b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00 not really a photo").unwrap();

    let id = kith(
        &alice,
        &[
            "send",
            "Family/general",
            "--file",
            big.to_str().unwrap(),
            "--file",
            photo.to_str().unwrap(),
            "from the beach",
        ],
        "",
    );
    let id = id.trim();
    let seen = history(&bob, "Family/general");
    let m = seen.iter().find(|m| m["id"] == id).expect("bob sees the message");
    assert_eq!(m["body"], "from the beach");
    let files = m["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!((files[0]["name"].as_str(), files[0]["size"].as_u64()), (Some("beach.bin"), Some(20 << 20)));
    assert_eq!(files[0]["content_type"], "application/octet-stream");
    // The type comes from the bytes: these start like a JPEG.
    assert_eq!(
        (files[1]["name"].as_str(), files[1]["content_type"].as_str()),
        (Some("photo.jpg"), Some("image/jpeg"))
    );
    assert_eq!(files[0]["blake3"].as_str().unwrap(), blake3::hash(&bytes).to_hex().as_str());
    // The plain listing names each file.
    let plain = kith(&bob, &["history", "Family/general"], "");
    assert!(plain.contains("📎 beach.bin · 21.0 MB · application/octet-stream"), "{plain}");

    let out = tmp.path().join("bob's downloads");
    let saved = kith(&bob, &["download", "Family/general", id, "--out", out.to_str().unwrap()], "");
    let paths: Vec<&str> = saved.lines().collect();
    assert_eq!(paths.len(), 2, "{saved}");
    assert_eq!(std::fs::read(out.join("beach.bin")).unwrap(), bytes, "the same bytes");
    // A second download does not overwrite the first.
    kith(&bob, &["download", "Family/general", id, "--out", out.to_str().unwrap()], "");
    assert!(out.join("beach (1).bin").exists() && out.join("photo (1).jpg").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Sent twice, the file is stored once.
    kith(&alice, &["send", "Family/general", "--file", big.to_str().unwrap()], "");
    let blobs: Vec<_> = stored(&data).into_iter().filter(|(p, _)| p.contains("blobs")).collect();
    assert_eq!(blobs.len(), 2, "{blobs:?}");
}

#[test]
fn a_file_over_the_limit_is_refused_naming_the_limit_before_any_byte_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("kith.toml"), "[limits]\nattachment_bytes = 1000000\n").unwrap();
    let server = serve(&data);
    let [alice, ..] = family_from_the_shell(tmp.path(), &server);
    let big = tmp.path().join("big.bin");
    random_file(&big, 1_000_001);
    let err = kith_fails(&alice, &["send", "Family/general", "--file", big.to_str().unwrap(), "too big"]);
    assert!(err.contains("1000001 bytes") && err.contains("at most 1000000 bytes"), "{err}");
    assert!(stored(&data).is_empty(), "nothing was stored: {:?}", stored(&data));
    assert!(history(&alice, "Family/general").iter().all(|m| m["body"] != "too big"), "and nothing was sent");
    // A file that does not exist is refused before connecting.
    let err = kith_fails(&alice, &["send", "Family/general", "--file", "/nonexistent/photo.jpg"]);
    assert!(err.contains("/nonexistent/photo.jpg"), "{err}");
}

#[test]
fn an_upload_cut_off_midway_continues_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let big = tmp.path().join("video.bin");
    let bytes = random_file(&big, 96 << 20);
    let mut sending = std::process::Command::new(KITH)
        .args(["send", "Family/general", "--file", big.to_str().unwrap(), "the whole trip"])
        .env("KITH_CONFIG_DIR", &alice)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Cut it off once some, not all, of the file is on the server.
    let partial = loop {
        let part: Vec<_> = stored(&data).into_iter().filter(|(p, _)| p.contains("partial")).collect();
        if let Some((_, len)) = part.first()
            && *len > 0
        {
            break *len;
        }
        assert!(sending.try_wait().unwrap().is_none(), "the upload finished before it could be cut off");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    sending.kill().unwrap();
    sending.wait().unwrap();
    assert!(partial < bytes.len() as u64);
    let out = std::process::Command::new(KITH)
        .args(["send", "Family/general", "--file", big.to_str().unwrap(), "the whole trip"])
        .env("KITH_CONFIG_DIR", &alice)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("video.bin: continuing from"), "{stderr}");
    let id = String::from_utf8(out.stdout).unwrap();
    let dir = tmp.path().join("got");
    kith(&bob, &["download", "Family/general", id.trim(), "--out", dir.to_str().unwrap()], "");
    assert_eq!(std::fs::read(dir.join("video.bin")).unwrap(), bytes);
}

#[test]
fn only_members_who_may_see_a_channel_fetch_its_files_and_attaching_can_be_denied() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let note = tmp.path().join("note.txt");
    std::fs::write(&note, "the surprise party is on Saturday").unwrap();
    kith(&alice, &["channel", "create", "Family/planning"], "");
    kith(
        &alice,
        &["override", "set", "Family/planning", "--role", "@everyone", "--deny", "view_channel"],
        "",
    );
    let id = kith(&alice, &["send", "Family/planning", "--file", note.to_str().unwrap()], "");
    let out = tmp.path().join("bob");
    // bob's client cannot even name the channel (the hub's own refusal is
    // a spec in kith-core's tests/files.rs).
    let err = kith_fails(&bob, &["download", "Family/planning", id.trim(), "--out", out.to_str().unwrap()]);
    assert!(err.contains("no channel #planning"), "{err}");
    assert!(!out.join("note.txt").exists());

    // Denied ATTACH_FILES in general, bob may still write but not attach.
    kith(&alice, &["override", "set", "Family/general", "--member", "bob", "--deny", "attach_files"], "");
    let err = kith_fails(&bob, &["send", "Family/general", "--file", note.to_str().unwrap(), "look"]);
    assert!(err.contains("attach files"), "{err}");
    kith(&bob, &["send", "Family/general", "words are fine"], "");
}

#[test]
fn a_deleted_messages_files_can_no_longer_be_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let note = tmp.path().join("oops.txt");
    std::fs::write(&note, "not for everyone").unwrap();
    let id = kith(&alice, &["send", "Family/general", "--file", note.to_str().unwrap()], "");
    kith(&alice, &["delete", "Family/general", id.trim()], "");
    let err = kith_fails(&bob, &["download", "Family/general", id.trim()]);
    assert!(err.contains("no such message"), "{err}");
}
