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

use common::{KITH, kith, serve};

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

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// A server with alice (the owner, on the CLI) in Family, 120 messages
/// already in #general; runs the browser spec over `transport`.
fn a_newcomer_joins_from_a_link_and_chats_with_the_cli(transport: &str) {
    let Some((web, chromium)) = browser() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let alice = tmp.path().join("alice");
    let code = server.setup_code.clone().expect("a fresh server prints a setup code");
    kith(
        &alice,
        &["register", "alice", "--server", &server.addr, "--setup-code", &code, "--password-stdin"],
        "alice's password\n",
    );
    let created: serde_json::Value =
        serde_json::from_str(&kith(&alice, &["community", "create", "Family", "--json"], "")).unwrap();
    let link = created["invite"].as_str().unwrap();
    let invite = link.rsplit('/').next().unwrap().split('?').next().unwrap();
    for i in 1..=120 {
        kith(&alice, &["send", "Family/general", &format!("message number {i}")], "");
    }
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let out = Command::new("node")
        .arg("test/browser.mjs")
        .current_dir(&web)
        .env("KITH_BIN", KITH)
        .env("KITH_WEB", server.web.as_deref().expect("the web client is on by default"))
        .env("ALICE", &alice)
        .env("INVITE", invite)
        .env("TRANSPORT", transport)
        .env("SHOTS", &shots)
        .env("CHROMIUM", chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\nscreenshots in {}", shots.display());
    assert!(
        out.status.success(),
        "the browser spec failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_newcomer_joins_from_an_invite_link_in_a_browser_over_webtransport() {
    a_newcomer_joins_from_a_link_and_chats_with_the_cli("webtransport");
}

#[test]
fn the_same_over_the_websocket_fallback() {
    a_newcomer_joins_from_a_link_and_chats_with_the_cli("websocket");
}
