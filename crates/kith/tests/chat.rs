//! `kith chat` in a real terminal: tmux runs it against a real `kith
//! serve`, `send-keys` types, `capture-pane` reads the screen.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{KITH, Served, family_from_the_shell, kith, serve, serve_on, serve_with};

/// A tmux server of its own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `kith chat ARGS` as `config`'s user in a 120×30 terminal.
    fn chat(name: &str, config: &Path, args: &[&str]) -> Tmux {
        let command = format!("env KITH_CONFIG_DIR={} {KITH} chat {}", config.display(), args.join(" "));
        Tmux::start(name, &command)
    }

    /// Runs `command` in a 120×30 terminal.
    fn start(name: &str, command: &str) -> Tmux {
        let socket = format!("kith-test-{name}-{}", std::process::id());
        let tmux = Tmux { socket };
        tmux.run(&["new-session", "-d", "-s", "chat", "-x", "120", "-y", "30", command]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "chat"])
    }

    /// Types literal text (no key names).
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "chat", "-l", text]);
    }

    fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "chat", key]);
    }

    /// Waits until the screen shows `what`; panics with the screen if it never does.
    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screen.contains(what) {
                return screen;
            }
            assert!(Instant::now() < deadline, "{} never saw {what:?}; the screen:\n{screen}", self.socket);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

/// Waits until `config`'s user finds `text` in the channel's history.
fn wait_in_history(config: &Path, channel: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let history = kith(config, &["history", channel, "--json"], "");
        if history.contains(text) {
            return;
        }
        assert!(Instant::now() < deadline, "{text:?} never reached {channel}: {history}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the screen no longer shows `what`.
fn wait_gone(term: &Tmux, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let screen = term.screen();
        if !screen.contains(what) {
            return screen;
        }
        assert!(Instant::now() < deadline, "{what:?} stayed on screen:\n{screen}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn family(tmp: &Path) -> (Served, [PathBuf; 3]) {
    let server = serve(&tmp.join("data"));
    let people = family_from_the_shell(tmp, &server);
    (server, people)
}

#[test]
fn a_message_typed_in_kith_chat_is_sent_and_others_messages_appear() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, [alice, bob, _]) = family(tmp.path());
    kith(&bob, &["send", "Family/general", "welcome, everyone"], "");

    let term = Tmux::chat("send", &alice, &[]);
    let screen = term.wait_for("● connected");
    assert!(screen.contains("#general") && screen.contains("welcome, everyone"), "{screen}");

    term.type_text("hello from a real terminal");
    term.key("Enter");
    wait_in_history(&bob, "Family/general", "hello from a real terminal");
    term.wait_for("alice hello from a real terminal");

    kith(&bob, &["send", "Family/general", "hi alice, from the shell"], "");
    term.wait_for("bob hi alice, from the shell");

    // The server refuses control characters in messages; what it lets
    // through that could still reorder text on screen is neutralised.
    kith(&bob, &["send", "Family/general", "invoice\u{202e}fdp.exe is safe"], "");
    let screen = term.wait_for("fdp.exe is safe");
    assert!(screen.contains("invoice⁇fdp.exe is safe"), "{screen}");

    // A direct message from bob shows in the sidebar with an unread badge.
    kith(&bob, &["send", "@alice", "psst"], "");
    let screen = term.wait_for("Direct messages");
    assert!(screen.lines().any(|l| l.contains("bob") && l.contains(" 1")), "{screen}");

    term.type_text("/quit");
    term.key("Enter");
}

/// The regression: a message typed during an outage longer than ~30 s was
/// dropped ("connection closed: CLOSE_CODE_SHUTDOWN").
#[test]
fn a_message_typed_during_a_long_outage_waits_until_the_server_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut server, [alice, bob, _]) = {
        let server = serve(&data);
        let people = family_from_the_shell(tmp.path(), &server);
        (server, people)
    };
    let term = Tmux::chat("outage", &alice, &[]);
    term.wait_for("● connected");
    let addr = server.addr.clone();
    let _ = server.child.kill();
    let _ = server.child.wait();
    term.type_text("did the power go out?");
    term.key("Enter");
    term.wait_for("reconnecting");
    term.wait_for("1 message waits to be sent");
    std::thread::sleep(Duration::from_secs(35));
    let restarted = serve_on(&addr, &data, &[]);
    wait_in_history(&bob, "Family/general", "did the power go out?");
    term.wait_for("● connected");
    drop(restarted);
}

#[test]
fn emoji_are_drawn_whole_in_a_real_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, [alice, bob, _]) = family(tmp.path());
    for text in [
        "fam 👨\u{200d}👩\u{200d}👧\u{200d}👦 end",
        "flag 🇫🇷 end",
        "thumb 👍\u{1f3fd} end",
        "heart ❤\u{fe0f} end",
    ] {
        kith(&bob, &["send", "Family/general", text], "");
    }
    let term = Tmux::chat("emoji", &alice, &[]);
    let screen = term.wait_for("heart");
    // What tmux stores per cell is what it drew: every person, the flag, and
    // the words after each emoji in their place.
    for shown in ["fam 👨👩👧👦 end", "flag 🇫🇷 end", "thumb 👍 end", "heart ❤ end"] {
        assert!(screen.contains(shown), "{shown:?} not drawn whole:\n{screen}");
    }
}

#[test]
fn your_own_edit_delete_and_leave_show_on_your_own_screen_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, [alice, bob, _]) = family(tmp.path());
    let term = Tmux::chat("own", &bob, &[]);
    term.wait_for("● connected");
    term.type_text("helo everyone");
    term.key("Enter");
    term.wait_for("bob helo everyone");

    // ↑ on an empty input edits the last message; the edit shows here at once.
    term.key("Up");
    term.key("C-u");
    term.type_text("hello everyone");
    term.key("Enter");
    term.wait_for("bob hello everyone (edited)");
    wait_in_history(&alice, "Family/general", "hello everyone");

    // Ctrl+↑ picks it, d deletes it: it goes from this screen too.
    term.key("C-Up");
    term.wait_for("d delete");
    term.key("d");
    wait_gone(&term, "hello everyone");

    // /leave takes Family out of the sidebar. The event and the reply may
    // be drawn in separate frames: wait for the notice, then the sidebar.
    term.type_text("/leave");
    term.key("Enter");
    term.wait_for("left Family");
    let screen = wait_gone(&term, "#general");
    assert!(screen.contains("You are not in any community yet"), "{screen}");
}

#[test]
fn a_file_uploaded_from_kith_chat_reaches_the_others_with_its_message() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, [alice, bob, _]) = family(tmp.path());
    let photo = tmp.path().join("my photo.jpg");
    let pixels = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 120, 40]));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode_image(&pixels).unwrap();
    std::fs::write(&photo, &jpeg).unwrap();
    // Stored a little smaller: even the JFIF header is metadata.
    let shown = format!("my photo.jpg · 8×8 · {} B · image/jpeg", jpeg.len() - 18);
    let term = Tmux::chat("upload", &bob, &[]);
    term.wait_for("● connected");
    term.type_text(&format!("/upload \"{}\" -- look at this", photo.display()));
    term.key("Enter");
    // On bob's own screen, under his message, as on everyone's.
    term.wait_for("bob look at this");
    term.wait_for(&shown);
    wait_in_history(&alice, "Family/general", "look at this");
    let listed = kith(&alice, &["history", "Family/general"], "");
    assert!(listed.contains(&format!("📎 {shown}")), "{listed}");

    // A file that is not there: said, and nothing sent.
    term.type_text("/upload /nonexistent/cat.png");
    term.key("Enter");
    term.wait_for("/nonexistent/cat.png");
}

#[test]
fn a_fresh_server_is_set_up_from_kith_chat_with_its_setup_code() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let code = server.setup_code.clone().expect("a fresh server prints its setup code");
    let olive = tmp.path().join("olive");
    let term = Tmux::chat("setup", &olive, &[]);
    term.wait_for("Server address or invite link");
    term.type_text(&server.addr);
    term.key("Enter");
    term.wait_for("Trust this server?");
    term.key("y");
    term.key("r");
    // A fresh server needs its setup code: asked for first, in any case.
    term.wait_for("Setup code");
    term.type_text(&code.to_lowercase());
    term.key("Enter");
    term.wait_for("Username");
    term.type_text("olive");
    term.key("Enter");
    term.wait_for("Choose a password");
    term.type_text("olive's password");
    term.key("Enter");
    term.wait_for("Password again");
    term.type_text("olive's password");
    term.key("Enter");
    term.wait_for("You are not in any community yet");

    // The owner makes a community and an invite; it names the server's
    // public address in full, and goes to the clipboard too.
    term.type_text("/community Family");
    term.key("Enter");
    term.wait_for("#general");
    term.type_text("/invite");
    term.key("Enter");
    let screen = term.wait_for("copied to your clipboard");
    let flowing: String = screen.lines().map(|l| l.split('│').nth(1).unwrap_or("").trim()).collect();
    assert!(flowing.contains(&format!("kith://{}/", server.addr)), "{screen}");
    assert!(flowing.contains(&server.fingerprint), "{screen}");
}

#[test]
fn someone_who_forgot_their_password_signs_in_to_kith_chat_with_the_owners_reset_code() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, [alice, _, _]) = family(tmp.path());
    let made = kith(&alice, &["admin", "reset-password", "bob", "--json"], "");
    let code = serde_json::from_str::<serde_json::Value>(&made).unwrap()["code"].as_str().unwrap().to_owned();
    let term = Tmux::chat("reset", &tmp.path().join("bob-laptop"), &[]);
    term.wait_for("Server address or invite link");
    term.type_text(&server.addr);
    term.key("Enter");
    term.wait_for("Trust this server?");
    term.key("y");
    term.wait_for("[c] I have a reset code");
    term.key("c");
    term.wait_for("Username");
    term.type_text("bob");
    term.key("Enter");
    term.wait_for("Reset code");
    term.type_text(&code.to_lowercase());
    term.key("Enter");
    term.wait_for("Choose a new password");
    term.type_text("bob's new password");
    term.key("Enter");
    term.wait_for("Password again");
    term.type_text("bob's new password");
    term.key("Enter");
    term.wait_for("#general");
    // The new password is the one now; the code is used up.
    kith(
        &tmp.path().join("bob-phone"),
        &["login", "bob", "--server", &server.addr, "--password-stdin"],
        "bob's new password\n",
    );
}

#[test]
fn a_newcomer_joins_from_an_invite_on_the_first_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, [alice, _, _]) = family(tmp.path());
    let created = kith(&alice, &["invite", "create", "Family", "--json"], "");
    let invite: serde_json::Value = serde_json::from_str(&created).unwrap();
    let invite = invite["invite"].as_str().unwrap().to_owned();
    kith(&alice, &["send", "Family/general", "glad you could come"], "");

    let dave = tmp.path().join("dave");
    let term = Tmux::chat("invite", &dave, &[&format!("'{invite}'")]);
    let screen = term.wait_for("the invite vouches for this identity");
    assert!(screen.contains("[l] log in   [r] create an account"), "{screen}");
    term.key("r");
    term.wait_for("Username");
    term.type_text("dave");
    term.key("Enter");
    // The rules come before the password does.
    term.wait_for("Choose a password");
    term.wait_for("at least 8 characters");
    term.type_text("dave's password");
    term.key("Enter");
    term.wait_for("Password again");
    term.type_text("dave's password");
    term.key("Enter");
    let screen = term.wait_for("glad you could come");
    assert!(!screen.contains("dave's password"), "{screen}");

    term.type_text("hi all, dave here");
    term.key("Enter");
    wait_in_history(&alice, "Family/general", "hi all, dave here");

    // The profile was saved: the scripting commands work as dave now.
    let whoami = kith(&dave, &["whoami"], "");
    assert!(whoami.starts_with("dave on "), "{whoami}");
}

#[test]
fn plain_telnet_gets_the_same_chat_rendered_by_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_with(&tmp.path().join("data"), &["--telnet", "127.0.0.1:0"]);
    let [alice, _, _] = family_from_the_shell(tmp.path(), &server);
    kith(&alice, &["send", "Family/general", "the kettle is on"], "");
    let telnet: std::net::SocketAddr =
        server.telnet.clone().expect("kith serve announces telnet=").parse().unwrap();

    // Debian's telnet client, in a real terminal.
    // (The pane outlives telnet so that its last words can be read.)
    let term = Tmux::start("telnet", &format!("telnet {} {}; sleep 60", telnet.ip(), telnet.port()));
    let screen = term.wait_for("[l] log in");
    assert!(screen.contains("unencrypted"), "{screen}");
    term.type_text("l");
    term.wait_for("Username");
    term.type_text("bob");
    term.key("Enter");
    term.wait_for("Password");
    term.type_text("bob's password!");
    let screen = term.wait_for("•••••");
    assert!(!screen.contains("bob's password"), "the password is not echoed:\n{screen}");
    term.key("Enter");
    let screen = term.wait_for("the kettle is on");
    assert!(screen.contains("#general") && screen.contains("⚠ unencrypted"), "{screen}");

    term.type_text("hello from telnet");
    term.key("Enter");
    wait_in_history(&alice, "Family/general", "hello from telnet");

    kith(&alice, &["send", "Family/general", "hi bob, welcome over telnet"], "");
    term.wait_for("alice hi bob, welcome over telnet");

    term.type_text("/exit");
    term.key("Enter");
    term.wait_for("Connection closed");
}

#[test]
fn two_people_talk_in_a_voice_channel_of_kith_chat() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, [alice, bob, _]) = family(tmp.path());
    kith(&alice, &["channel", "create", "Family/lounge", "--voice"], "");
    // Sound cards are replaced by WAV files: alice "says" one, bob's
    // speaker is another.
    let said = tmp.path().join("said.wav");
    let heard = tmp.path().join("heard.wav");
    let speech = kith_voice::speech_like(4.0);
    kith_voice::write_wav(&said, &speech).unwrap();

    let bob_term = Tmux::chat("voice-bob", &bob, &["--audio-out", heard.to_str().unwrap()]);
    bob_term.wait_for("● connected");
    bob_term.type_text("/voice join lounge");
    bob_term.key("Enter");
    bob_term.wait_for("in ♪ lounge · voice activity");

    let alice_term = Tmux::chat("voice-alice", &alice, &["--audio-in", said.to_str().unwrap()]);
    alice_term.wait_for("● connected");
    let screen = alice_term.wait_for("◌ bob");
    assert!(screen.contains("♪lounge"), "the sidebar shows who is in voice before joining: {screen}");
    alice_term.type_text("/voice join lounge");
    alice_term.key("Enter");
    // Both see her speak, and then fall quiet.
    alice_term.wait_for("◉ alice");
    bob_term.wait_for("◉ alice");
    bob_term.wait_for("◌ alice");

    // Bob mutes with Alt+M; alice sees it.
    bob_term.key("M-m");
    bob_term.wait_for("in ♪ lounge · muted");
    alice_term.wait_for("◌ bob muted");

    bob_term.type_text("/quit");
    bob_term.key("Enter");
    // Quitting finishes bob's recording.
    let deadline = Instant::now() + Duration::from_secs(30);
    let recording = loop {
        let samples = kith_voice::read_wav(&heard).unwrap_or_default();
        if samples.len() > speech.len() {
            break samples;
        }
        assert!(Instant::now() < deadline, "bob's recording never finished ({} samples)", samples.len());
        std::thread::sleep(Duration::from_millis(100));
    };
    let m = kith_voice::compare(&speech, &recording, recording.len() - speech.len());
    eprintln!("kith chat voice: {m:?}");
    // About 0.86 for the codec alone on this signal; silence scores 0.
    assert!(m.correlation > 0.7, "{m:?}");
    // Bob left voice when he quit (waited for: "◌ alice" was on screen before).
    let screen = wait_gone(&alice_term, "bob muted");
    assert!(screen.contains("◌ alice"), "{screen}");
}
