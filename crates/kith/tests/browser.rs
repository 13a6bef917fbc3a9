//! The browser client, end to end: headless Chromium (driven by Playwright,
//! web/test/browser.mjs) joins from an invite link and chats with a `kith`
//! CLI user, over WebTransport and over the WebSocket fallback.
//!
//! Needs Node, `npm ci` in web/ and Chromium (`.ci/run` installs all
//! three). Without them the test says it was skipped — except under CI
//! (`CI=true`), where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{KITH, kith, serve, which};

/// Node, Playwright and Chromium, or why they cannot be had here.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| ["chromium", "chromium-browser"].iter().find_map(|b| which(b)));
    let missing = if which("node").is_none() {
        Some("node is not installed")
    } else if !web.join("node_modules/playwright-core").exists() {
        Some("web/node_modules is missing (run `npm ci` in web/)")
    } else if chromium.is_none() {
        Some("chromium is not installed")
    } else {
        None
    };
    match missing {
        None => Some((web, chromium.expect("checked"))),
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the browser tests cannot run under CI: {why} (.ci/run installs it)")
        }
        Some(why) => {
            eprintln!("SKIPPED: the browser test needs Node, Playwright and Chromium: {why}");
            None
        }
    }
}

/// A server with alice (the owner, on the CLI) in Family, 120 messages
/// already in #general; runs the browser spec over `transport`.
fn a_newcomer_joins_from_a_link_and_chats_with_the_cli(transport: &str) {
    let Some((web, chromium)) = browser() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (server, alice, invite) = family(tmp.path());
    for i in 1..=120 {
        kith(&alice, &["send", "Family/general", &format!("message number {i}")], "");
    }
    // A photo for alice to send: a 240×160 gradient.
    let photo = tmp.path().join("sunset.png");
    image::RgbImage::from_fn(240, 160, |x, y| image::Rgb([255, (x + y) as u8, (160 - y.min(160)) as u8]))
        .save(&photo)
        .unwrap();
    let shots = screenshots();
    let out = spec(&web, &chromium, &server, &alice, &invite, transport)
        .env("SHOTS", &shots)
        .env("PHOTO", &photo)
        .output()
        .expect("node runs");
    report(out, &shots);
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

/// The browser spec, set up to run against `server` with alice on the CLI.
fn spec(
    web: &Path,
    chromium: &Path,
    server: &common::Served,
    alice: &Path,
    invite: &str,
    transport: &str,
) -> Command {
    let mut node = Command::new("node");
    node.arg("test/browser.mjs")
        .current_dir(web)
        .env("KITH_BIN", KITH)
        .env("KITH_WEB", server.web.as_deref().expect("the web client is on by default"))
        .env("ALICE", alice)
        .env("INVITE", invite)
        .env("TRANSPORT", transport)
        .env("SHOTS", screenshots())
        .env("CHROMIUM", chromium);
    node
}

fn report(out: std::process::Output, shots: &Path) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\nscreenshots in {}", shots.display());
    assert!(
        out.status.success(),
        "the browser spec failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh server, alice (its owner, on the CLI) with Family, and an
/// invite code to it.
fn family(tmp: &Path) -> (common::Served, PathBuf, String) {
    family_with(tmp, "")
}

/// `family`, with a kith.toml for the server.
fn family_with(tmp: &Path, config: &str) -> (common::Served, PathBuf, String) {
    std::fs::create_dir_all(tmp.join("data")).unwrap();
    std::fs::write(tmp.join("data").join("kith.toml"), config).unwrap();
    let server = serve(&tmp.join("data"));
    let alice = tmp.join("alice");
    let created = common::owner_creates_family(&alice, &server);
    let link = created["invite"].as_str().unwrap();
    let invite = link.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    assert_eq!(
        created["web_invite"].as_str().unwrap(),
        format!("https://{}/invite/{invite}", server.addr),
        "invites carry a browser link"
    );
    (server, alice, invite)
}

#[test]
fn a_newcomer_joins_from_an_invite_link_in_a_browser_over_webtransport() {
    a_newcomer_joins_from_a_link_and_chats_with_the_cli("webtransport");
}

#[test]
fn the_same_over_the_websocket_fallback() {
    a_newcomer_joins_from_a_link_and_chats_with_the_cli("websocket");
}

/// A browser user talks (Chromium's fake microphone plays a WAV file) to a
/// `kith voice join --output` recorder, whose recording must match what was
/// said; then the CLI user talks back and the browser shows her speaking.
#[test]
fn a_browser_user_and_a_kith_voice_user_hear_each_other() {
    let Some((web, chromium)) = browser() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (server, alice, invite) = family(tmp.path());
    kith(&alice, &["channel", "create", "Family/lounge", "--voice"], "");
    let said = tmp.path().join("said.wav");
    let heard = tmp.path().join("heard.wav");
    // Two seconds of speech, then a second of silence that voice activity
    // leaves out: listeners must see the gap in the timestamps.
    let speech = kith_voice::speech_like(2.0);
    let mut file = speech.clone();
    file.resize(3 * kith_voice::RATE as usize, 0);
    kith_voice::write_wav(&said, &file).unwrap();
    let shots = screenshots();
    let out = spec(&web, &chromium, &server, &alice, &invite, "webtransport")
        .env("SCENARIO", "voice")
        .env("SAID", &said)
        .env("HEARD", &heard)
        .output()
        .expect("node runs");
    report(out, &shots);
    let recording = kith_voice::read_wav(&heard).unwrap();
    // The fake microphone loops the file; somewhere in the first seconds a
    // whole loop starts.
    let m = kith_voice::compare(&speech, &recording, 4 * kith_voice::RATE as usize);
    // The browser's echo canceller and noise suppressor (on, as for every
    // user) reshape the waveform, so sample-exact correlation is low (about
    // 0.37; 0.9998 with them off). What must survive is what was said: its
    // loudness contour, syllable by syllable, compared in 10 ms steps.
    let said = envelope(&speech);
    let got = envelope(&recording[m.delay.min(recording.len())..]);
    let contour = pearson(&said, &got[..said.len().min(got.len())]);
    println!("browser → kith voice: {m:?}, loudness contour correlation {contour:.3}");
    assert!(contour > 0.8, "contour {contour:.3}, {m:?}");
}

/// Mean absolute amplitude per 10 ms.
fn envelope(samples: &[i16]) -> Vec<f64> {
    samples.chunks(480).map(|c| c.iter().map(|s| f64::from(*s).abs()).sum::<f64>() / c.len() as f64).collect()
}

/// Pearson correlation of two equally long series (the shorter's length).
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mean = |x: &[f64]| x.iter().sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 { 0.0 } else { cov / (va * vb).sqrt() }
}

/// A channel of photos opened under tight read limits: every photo still
/// shows (the page waits out each "slow down" and asks again for the
/// links it needs), rather than some staying blank.
#[test]
fn a_channel_full_of_photos_shows_every_one_even_when_told_to_slow_down() {
    let Some((web, chromium)) = browser() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (server, alice, invite) =
        family_with(tmp.path(), "[limits]\nreads = { burst = 4, every_ms = 100 }\n");
    let photo = tmp.path().join("pebble.png");
    image::RgbImage::from_fn(120, 80, |x, y| image::Rgb([(x * 2) as u8, (y * 3) as u8, 200]))
        .save(&photo)
        .unwrap();
    for i in 1..=12 {
        kith(
            &alice,
            &["send", "Family/general", "--file", photo.to_str().unwrap(), &format!("photo {i}")],
            "",
        );
    }
    let shots = screenshots();
    let out = spec(&web, &chromium, &server, &alice, &invite, "webtransport")
        .env("SCENARIO", "photos")
        .env("SHOTS", &shots)
        .output()
        .expect("node runs");
    report(out, &shots);
}

/// Two browser users and alice in `kith chat` (under tmux) in one channel:
/// each one's message reaches the other two.
#[test]
fn two_browser_users_and_a_kith_chat_user_talk_in_one_channel() {
    let Some((web, chromium)) = browser() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (server, alice, invite) = family(tmp.path());
    let shots = screenshots();
    let out = spec(&web, &chromium, &server, &alice, &invite, "webtransport")
        .env("SCENARIO", "three")
        .output()
        .expect("node runs");
    report(out, &shots);
}

/// A bot in the community (the Python example, through `kith bridge`), and
/// a browser user who runs its slash commands.
#[test]
fn a_browser_user_runs_a_bots_slash_commands() {
    let Some((web, chromium)) = browser() else { return };
    if !common::have("the browser's bot spec", &["python3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (server, alice, invite) = family(tmp.path());
    let made: serde_json::Value =
        serde_json::from_str(&kith(&alice, &["bot", "create", "Family", "helper", "--json"], "")).unwrap();
    let helper = tmp.path().join("helper");
    let token = format!("{}\n", made["token"].as_str().unwrap());
    kith(&helper, &["login", "helper", "--server", &server.addr, "--token-stdin"], &token);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bots");
    let mut bot = Command::new("python3")
        .arg("echo.py")
        .current_dir(&examples)
        .env("KITH", KITH)
        .env("KITH_CONFIG_DIR", &helper)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Ready once it says so.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(bot.stderr.take().unwrap()));
    assert!(lines.any(|l| l.is_ok_and(|l| l.contains("ready"))), "the bot started");
    let shots = screenshots();
    let out = spec(&web, &chromium, &server, &alice, &invite, "webtransport")
        .env("SCENARIO", "bots")
        .output()
        .expect("node runs");
    let _ = bot.kill();
    let _ = bot.wait();
    report(out, &shots);
}

/// Past `member_list`, a browser lists who is around and pages the rest.
#[test]
fn a_browser_user_in_a_large_community_sees_who_is_around_and_pages_the_rest() {
    let Some((web, chromium)) = browser() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (server, alice, invite) = family_with(tmp.path(), "[limits]\nmember_list = 3\n");
    for name in ["bob", "carol", "dave", "erin"] {
        let home = tmp.path().join(name);
        kith(
            &home,
            &["register", name, "--server", &server.addr, "--invite", &invite, "--password-stdin"],
            &format!("{name}'s password\n"),
        );
    }
    let shots = screenshots();
    let out = spec(&web, &chromium, &server, &alice, &invite, "webtransport")
        .env("SCENARIO", "large")
        .output()
        .expect("node runs");
    report(out, &shots);
}

#[test]
fn a_member_sets_a_password_from_the_owners_reset_link() {
    let Some((web, chromium)) = browser() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (server, alice, invite) = family(tmp.path());
    let bob = tmp.path().join("bob");
    kith(
        &bob,
        &["register", "bob", "--server", &server.addr, "--invite", &invite, "--password-stdin"],
        "bob's old password\n",
    );
    let shots = screenshots();
    let out = spec(&web, &chromium, &server, &alice, &invite, "webtransport")
        .env("SCENARIO", "reset")
        .output()
        .expect("node runs");
    report(out, &shots);
    // His old login (the CLI's saved token) ended with the new password.
    let e = common::kith_fails(&bob, &["whoami"]);
    assert!(e.contains("signed out"), "{e}");
}
