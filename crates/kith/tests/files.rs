//! Attachments from the shell: `kith send --file` and `kith download`
//! against a real `kith serve`, as a family would use them.

mod common;

use std::path::Path;

use common::*;

/// A real 8×8 JPEG, with no metadata to take out.
pub fn tiny_jpeg() -> Vec<u8> {
    let pixels = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 120, 40]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut out).encode_image(&pixels).unwrap();
    out
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
    std::fs::write(&photo, tiny_jpeg()).unwrap();

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
    // The type comes from the bytes.
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
    std::fs::write(
        data.join("kith.toml"),
        "[limits]\nattachment_bytes = 1000000\nmessage_attachment_bytes = 1500000\n",
    )
    .unwrap();
    let server = serve(&data);
    let [alice, ..] = family_from_the_shell(tmp.path(), &server);
    let big = tmp.path().join("big.bin");
    random_file(&big, 1_000_001);
    let err = kith_fails(&alice, &["send", "Family/general", "--file", big.to_str().unwrap(), "too big"]);
    assert!(err.contains("1000001 bytes") && err.contains("at most 1000000 bytes"), "{err}");
    assert!(stored(&data).is_empty(), "nothing was stored: {:?}", stored(&data));
    assert!(history(&alice, "Family/general").iter().all(|m| m["body"] != "too big"), "and nothing was sent");
    // Two files each within the limit, together over one message's: refused
    // as early.
    let (one, two) = (tmp.path().join("one.bin"), tmp.path().join("two.bin"));
    random_file(&one, 800_000);
    random_file(&two, 800_000);
    let args = ["send", "Family/general", "--file", one.to_str().unwrap(), "--file", two.to_str().unwrap()];
    let err = kith_fails(&alice, &args);
    assert!(
        err.contains("1600000 bytes") && err.contains("at most 1500000 bytes of files per message"),
        "{err}"
    );
    assert!(stored(&data).is_empty(), "nothing was stored: {:?}", stored(&data));
    // A file that does not exist is refused before connecting.
    let err = kith_fails(&alice, &["send", "Family/general", "--file", "/nonexistent/photo.jpg"]);
    assert!(err.contains("/nonexistent/photo.jpg"), "{err}");
}

/// Bytes of the (one) partial upload on the server.
fn partial_len(data: &Path) -> u64 {
    stored(data).into_iter().find(|(p, _)| p.contains("partial")).map_or(0, |(_, len)| len)
}

/// Starts `kith send --file path` and returns once some, not all, of the
/// file is on the server (to be cut off there).
fn send_until_partly_stored(config: &Path, data: &Path, path: &Path, text: &str) -> std::process::Child {
    let mut sending = std::process::Command::new(KITH)
        .args(["send", "Family/general", "--file", path.to_str().unwrap(), text])
        .env("KITH_CONFIG_DIR", config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while partial_len(data) == 0 {
        assert!(sending.try_wait().unwrap().is_none(), "the upload finished before it could be cut off");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    sending
}

#[test]
fn an_upload_cut_off_midway_continues_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let big = tmp.path().join("video.bin");
    let bytes = random_file(&big, 96 << 20);
    let mut sending = send_until_partly_stored(&alice, &data, &big, "the whole trip");
    let partial = partial_len(&data);
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
fn an_upload_cut_off_by_a_server_crash_continues_after_the_restart_and_nothing_dangles() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = serve(&data);
    let addr = server.addr.clone();
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let big = tmp.path().join("album.bin");
    let bytes = random_file(&big, 96 << 20);
    let mut sending = send_until_partly_stored(&alice, &data, &big, "the album");
    // SIGKILL: no shutdown path runs.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let _ = sending.kill();
    let _ = sending.wait();
    assert!(stored(&data).iter().all(|(p, _)| !p.contains("blobs")), "no blob from a cut-off upload");

    let _server = serve_on(&addr, &data, &[]);
    assert!(history(&bob, "Family/general").iter().all(|m| m["body"] != "the album"), "no message either");
    let out = std::process::Command::new(KITH)
        .args(["send", "Family/general", "--file", big.to_str().unwrap(), "the album"])
        .env("KITH_CONFIG_DIR", &alice)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("album.bin: continuing from"),
        "what reached the disk before the crash is kept: {stderr}"
    );
    let id = String::from_utf8(out.stdout).unwrap();
    let dir = tmp.path().join("got");
    kith(&bob, &["download", "Family/general", id.trim(), "--out", dir.to_str().unwrap()], "");
    assert_eq!(std::fs::read(dir.join("album.bin")).unwrap(), bytes);
    let left: Vec<_> = stored(&data).into_iter().filter(|(p, _)| p.contains("partial")).collect();
    assert!(left.is_empty(), "{left:?}");
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

/// An Exif APP1 segment (little-endian TIFF) saying the photo is rotated
/// (orientation 6) and where it was taken.
fn exif_with_gps() -> Vec<u8> {
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value);
    };
    // IFD0 at 8: orientation, and the GPS IFD's offset (38).
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0112, 3, 1, [6, 0, 0, 0]);
    entry(&mut t, 0x8825, 4, 1, 38u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    // GPS IFD at 38: latitude N, 48° 51' 30" (rationals at 68).
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, 5, 3, 68u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    for (n, d) in [(48u32, 1u32), (51, 1), (30, 1)] {
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&d.to_le_bytes());
    }
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((t.len() + 8) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&t);
    app1
}

fn exif_fields(jpeg: &[u8]) -> Vec<exif::Tag> {
    match exif::Reader::new().read_from_container(&mut std::io::Cursor::new(jpeg)) {
        Ok(e) => e.fields().map(|f| f.tag).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_photo_loses_where_it_was_taken_and_stays_upright() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    // A real JPEG (64×32), with GPS and a rotation in its Exif.
    let pixels = image::RgbImage::from_fn(64, 32, |x, y| image::Rgb([(x * 4) as u8, (y * 8) as u8, 128]));
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut plain).encode_image(&pixels).unwrap();
    let mut photo = plain[..2].to_vec();
    photo.extend(exif_with_gps());
    photo.extend_from_slice(&plain[2..]);
    let tags = exif_fields(&photo);
    assert!(tags.contains(&exif::Tag::GPSLatitude) && tags.contains(&exif::Tag::Orientation), "{tags:?}");
    let path = tmp.path().join("eiffel.jpg");
    std::fs::write(&path, &photo).unwrap();

    let id =
        kith(&alice, &["send", "Family/general", "--file", path.to_str().unwrap(), "look where we are"], "");
    let out = tmp.path().join("bob");
    kith(&bob, &["download", "Family/general", id.trim(), "--out", out.to_str().unwrap()], "");
    let got = std::fs::read(out.join("eiffel.jpg")).unwrap();
    let tags = exif_fields(&got);
    assert!(!tags.iter().any(|t| t.context() == exif::Context::Gps), "GPS survived: {tags:?}");
    assert_eq!(tags, [exif::Tag::Orientation], "only the orientation is kept");
    let exif = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(&got)).unwrap();
    let orientation = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).unwrap();
    assert_eq!(orientation.value.get_uint(0), Some(6), "still upright once shown");
    let decoded = image::load_from_memory(&got).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (64, 32), "the picture itself is whole");
    assert!(got.len() < photo.len());
    // What the message says matches what was kept.
    let m = history(&bob, "Family/general").into_iter().find(|m| m["id"] == id.trim()).unwrap();
    assert_eq!(m["attachments"][0]["size"].as_u64(), Some(got.len() as u64));
    assert_eq!(m["attachments"][0]["content_type"], "image/jpeg");
    // Its size as shown: orientation 6 turns the 64 × 32 frame upright.
    assert_eq!(
        (m["attachments"][0]["width"].as_u64(), m["attachments"][0]["height"].as_u64()),
        (Some(32), Some(64))
    );
}

/// An ISO media box: its length, its type, its payload.
fn iso_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    [&((payload.len() + 8) as u32).to_be_bytes()[..], kind, payload].concat()
}

#[test]
fn a_phone_video_loses_where_it_was_taken_and_plays_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    // A QuickTime movie as a phone writes it, reduced to its boxes: the
    // place in the movie's user data, the samples in `mdat`.
    let place = iso_box(b"\xA9xyz", b"+48.8584+002.2945/");
    let moov = iso_box(b"moov", &[iso_box(b"mvhd", &[0; 100]), iso_box(b"udta", &place)].concat());
    let samples = b"the frames and the sound, untouched";
    let movie = [iso_box(b"ftyp", b"qt  \0\0\0\0qt  "), moov, iso_box(b"mdat", samples)].concat();
    let path = tmp.path().join("beach.mov");
    std::fs::write(&path, &movie).unwrap();
    let id = kith(&alice, &["send", "Family/general", "--file", path.to_str().unwrap()], "");
    let out = tmp.path().join("bob");
    kith(&bob, &["download", "Family/general", id.trim(), "--out", out.to_str().unwrap()], "");
    let got = std::fs::read(out.join("beach.mov")).unwrap();
    assert_eq!(got.len(), movie.len(), "the same layout: sample offsets still hold");
    assert!(!got.windows(7).any(|w| w == b"48.8584"), "the place survived");
    assert!(got.ends_with(samples));
    let m = history(&bob, "Family/general").into_iter().find(|m| m["id"] == id.trim()).unwrap();
    assert_eq!(m["attachments"][0]["content_type"], "video/quicktime");
}

#[test]
fn a_decompression_bomb_is_refused_saying_how_big_it_claims_to_be() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let [alice, ..] = family_from_the_shell(tmp.path(), &server);
    // A PNG that says it is 40 000 × 40 000 pixels: 1.6 gigapixels, about
    // 5 GB once decoded, from a few bytes of zeros compressed. The server
    // refuses it from its header, before anything could decode it.
    let bomb = tmp.path().join("bomb.png");
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend_from_slice(&40_000u32.to_be_bytes());
    png.extend_from_slice(&40_000u32.to_be_bytes());
    png.extend_from_slice(b"\x08\x00\x00\x00\x00\0\0\0\0");
    png.extend_from_slice(b"\0\0\0\x0bIDAT\x78\x9c\xed\xc1\x01\x0d\0\0\0\xc2\xa0\0\0\0\0");
    png.extend_from_slice(b"\0\0\0\0IEND\xaeB`\x82");
    std::fs::write(&bomb, &png).unwrap();
    let err = kith_fails(&alice, &["send", "Family/general", "--file", bomb.to_str().unwrap(), "boom"]);
    assert!(err.contains("40000×40000") && err.contains("at most 200 megapixels"), "{err}");
    assert!(stored(&data).iter().all(|(p, _)| !p.contains("blobs")), "nothing kept");
}

#[test]
fn a_file_that_claims_to_be_a_jpeg_but_is_broken_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, ..] = family_from_the_shell(tmp.path(), &server);
    let path = tmp.path().join("truncated.jpg");
    // A JPEG's start (SOI, APP0 JFIF) and then nothing.
    std::fs::write(&path, b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00").unwrap();
    let err = kith_fails(&alice, &["send", "Family/general", "--file", path.to_str().unwrap(), "broken"]);
    assert!(err.contains("not a valid one"), "{err}");
}

#[test]
fn an_empty_file_and_a_hostile_name_are_stored_inert_and_shown_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    // Bidi override and a zero-width space in the name; no bytes at all.
    let path = tmp.path().join("\u{202E}fdp.exe\u{200B}");
    std::fs::write(&path, b"").unwrap();
    let id = kith(&alice, &["send", "Family/general", "--file", path.to_str().unwrap()], "");
    let plain = kith(&bob, &["history", "Family/general"], "");
    assert!(plain.contains("📎 fdp.exe · 0 B · application/octet-stream"), "{plain}");
    let out = tmp.path().join("got");
    kith(&bob, &["download", "Family/general", id.trim(), "--out", out.to_str().unwrap()], "");
    assert_eq!(std::fs::read(out.join("fdp.exe")).unwrap(), b"");
}
