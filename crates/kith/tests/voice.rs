//! `kith voice` from the shell: two headless clients in a voice channel of a
//! real `kith serve`, one saying a WAV file, the other recording it.

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn two_people_talk_with_kith_voice_join_and_the_recording_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("data"));
    let [alice, bob, _] = family_from_the_shell(tmp.path(), &server);
    let out = kith(&alice, &["channel", "create", "Family/lounge", "--voice"], "");
    assert!(out.contains("created voice channel #lounge"), "{out}");

    let said = tmp.path().join("said.wav");
    let heard = tmp.path().join("heard.wav");
    let speech = kith_voice::speech_like(2.0);
    kith_voice::write_wav(&said, &speech).unwrap();

    // Bob listens for 4 s; alice joins a moment later and says 2 s of audio.
    let listen = |config: &std::path::Path, args: &[&str]| {
        Command::new(KITH)
            .args(args)
            .env("KITH_CONFIG_DIR", config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let heard_arg = heard.to_str().unwrap();
    let bob_run = listen(
        &bob,
        &["voice", "join", "Family/lounge", "--mute", "--output", heard_arg, "--duration", "4s"],
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
    let listed = kith(&alice, &["voice", "list"], "");
    assert!(listed.contains("Family/lounge: bob (muted)"), "{listed}");
    let alice_run = listen(&alice, &["voice", "join", "Family/lounge", "--input", said.to_str().unwrap()]);
    let alice_out = alice_run.wait_with_output().unwrap();
    let bob_out = bob_run.wait_with_output().unwrap();
    assert!(alice_out.status.success(), "{}", String::from_utf8_lossy(&alice_out.stderr));
    assert!(bob_out.status.success(), "{}", String::from_utf8_lossy(&bob_out.stderr));
    let report = String::from_utf8_lossy(&bob_out.stderr);
    assert!(report.contains("alice: "), "bob reports hearing alice: {report}");

    let recording = kith_voice::read_wav(&heard).unwrap();
    let m = kith_voice::compare(&speech, &recording, 3 * kith_voice::RATE as usize);
    eprintln!("{m:?}");
    // About 0.86 (the codec's own figure on this signal); silence scores 0.
    assert!(m.correlation > 0.7, "{m:?}");
    // Both have left: nobody is listed any more.
    let listed = kith(&alice, &["voice", "list"], "");
    assert_eq!(listed.trim(), "Family/lounge:");
}
