//! Voice through a real server: real QUIC datagrams, real Opus, the server
//! forwarding without decoding. Audio quality is asserted on what one client
//! recorded of what another played.

mod common;

use std::time::Duration;

use common::*;
use kith_client::Client;
use kith_client::proto::{self as v1, client_message::Request, reply::Result as R};
use kith_proto::voice::{VoiceHeader, client_datagram, forward, parse_forwarded};
use kith_voice::{Impairment, VoiceConfig, compare, speech_like};

async fn voice_channel(owner: &Client, community_id: u64, name: &str) -> u64 {
    let req = v1::CreateChannelRequest {
        community_id,
        name: name.into(),
        kind: v1::ChannelKind::Voice as i32,
        ..Default::default()
    };
    match owner.request(Request::CreateChannel(req)).await.unwrap() {
        R::Channel(ch) => ch.id,
        other => panic!("{other:?}"),
    }
}

async fn join(c: &Client, channel_id: u64) -> v1::VoiceState {
    let req = v1::JoinVoiceRequest { channel_id, ..Default::default() };
    match c.request(Request::JoinVoice(req)).await.unwrap() {
        R::VoiceState(v) => v,
        other => panic!("{other:?}"),
    }
}

/// Alice and bob (and the owner, not in voice) with both in a voice channel.
async fn alice_and_bob_in_the_lounge(server: &TestServer) -> (Family, u64) {
    let f = family(server, &["alice", "bob"]).await;
    let lounge = voice_channel(&f.owner, f.community.id, "lounge").await;
    join(&f.members[0], lounge).await;
    join(&f.members[1], lounge).await;
    (f, lounge)
}

/// The next forwarded datagram within `wait`, if any.
async fn heard(c: &Client, wait: Duration) -> Option<kith_proto::voice::Forwarded> {
    let d = tokio::time::timeout(wait, c.read_datagram()).await.ok()??;
    Some(parse_forwarded(d).expect("the server forwards well-formed datagrams"))
}

fn packet(seq: u16) -> bytes::Bytes {
    client_datagram(VoiceHeader { seq, timestamp: u32::from(seq) * 960 }, b"not really opus")
}

/// How B's recording of what A played compares with the input itself, and
/// with the input through the codec alone (what a perfect network gives).
struct Heard {
    input: kith_voice::Match,
    codec: kith_voice::Match,
    recording: kith_voice::Recording,
}

/// Conversations in real time, one at a time: two at once on a two-core
/// machine (a server and two voice sessions each, in a debug build) starve
/// each other's 20 ms ticks, and late packets are then concealed — the
/// machine's noise, not the network's or the server's.
static ONE_CONVERSATION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A plays speech-like audio for 3 s; B records.
async fn talk(impairment: Impairment) -> Heard {
    let _alone = ONE_CONVERSATION.lock().await;
    let server = TestServer::start().await;
    let (f, _) = alice_and_bob_in_the_lounge(&server).await;
    let (alice, bob) = (&f.members[0], &f.members[1]);

    let input = speech_like(3.0);
    let quiet = VoiceConfig::default();
    let listening = VoiceConfig { impairment, ..VoiceConfig::default() };
    let (a, b) = tokio::join!(
        kith_voice::run(alice, &input, Duration::from_secs(4), &quiet),
        kith_voice::run(bob, &[], Duration::from_secs(4), &listening),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.stats.sent > 100, "alice sent {} packets", a.stats.sent);
    // Alice hears nobody: her recording is silence, and matches nothing.
    let silence = compare(&input, &a.samples, 48_000);
    assert_eq!(silence.correlation, 0.0, "silence must not pass: {silence:?}");
    let m = compare(&input, &b.samples, 48_000);
    let ideal = kith_voice::round_trip(&input, quiet.bitrate).unwrap();
    let c = compare(&ideal, &b.samples, 48_000);
    eprintln!(
        "{impairment:?}: vs input {m:?}; vs codec alone {c:?}; bob's view of alice: {:?}",
        b.stats.speakers
    );
    Heard { input: m, codec: c, recording: b }
}

// The server and both voice sessions share the test's runtime: give them two
// threads so one busy task does not delay the others' 20 ms ticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_person_says_the_other_hears() {
    let heard = talk(Impairment::default()).await;
    // Opus at 32 kb/s keeps this signal at about 0.86 correlation / 5.9 dB
    // SNR (its speech mode shapes noise rather than match waveforms)...
    assert!(heard.input.correlation > 0.8, "{:?}", heard.input);
    assert!(heard.input.snr_db > 4.0, "{:?}", heard.input);
    // ... and the network adds nothing: bob's recording is what the codec
    // alone produces (sample for sample, 1.0, unless a stall of the shared
    // test machine made a packet miss its turn).
    assert!(heard.codec.correlation > 0.98, "{:?}", heard.codec);
    let alice = heard.recording.stats.speakers.values().next().expect("bob heard alice");
    assert_eq!(alice.missing, 0, "loopback loses nothing: {alice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_survives_five_percent_loss_and_twenty_ms_of_jitter() {
    let heard = talk(Impairment { loss: 0.05, jitter_ms: 20, seed: 7 }).await;
    let bob = &heard.recording;
    let alice = bob.stats.speakers.values().next().expect("bob heard alice");
    assert!(bob.stats.dropped > 0 && alice.recovered + alice.concealed > 0, "loss was injected: {alice:?}");
    // FEC rebuilds most lost frames: about 0.85 against the input and
    // 0.98-0.999 against the codec alone (runs differ in which packets the
    // jitter delays past their turn), where silence scores 0.
    assert!(heard.input.correlation > 0.75, "{:?}", heard.input);
    assert!(heard.codec.correlation > 0.9, "{:?}", heard.codec);
}

#[tokio::test]
async fn only_members_in_the_room_who_may_speak_are_heard_and_always_as_themselves() {
    let server = TestServer::start().await;
    let f = family(&server, &["alice", "bob", "carol"]).await;
    let lounge = voice_channel(&f.owner, f.community.id, "lounge").await;
    let (alice, bob, carol) = (&f.members[0], &f.members[1], &f.members[2]);
    let alice_id = join(alice, lounge).await.user_id;
    join(bob, lounge).await;
    let short = Duration::from_millis(300);

    // Carol is not in the room: what she sends goes nowhere.
    for seq in 0..20 {
        carol.send_datagram(packet(seq)).unwrap();
    }
    assert!(heard(bob, short).await.is_none(), "a non-member's packet reached bob");

    // A packet that names someone else as its sender is forwarded as the
    // one who sent it: the server stamps the sender, never the client.
    let bob_id = join(bob, lounge).await.user_id;
    let forged = forward(bob_id, &packet(1));
    alice.send_datagram(forged).unwrap();
    let got = heard(bob, Duration::from_secs(5)).await.expect("alice's packet arrives");
    assert_eq!(got.sender, alice_id);

    // Muted by herself: dropped. Unmuted: heard again (so the silence above can fail).
    let mute =
        |on| Request::UpdateVoiceState(v1::UpdateVoiceStateRequest { self_mute: Some(on), self_deaf: None });
    alice.request(mute(true)).await.unwrap();
    alice.send_datagram(packet(2)).unwrap();
    assert!(heard(bob, short).await.is_none(), "a self-muted packet reached bob");
    alice.request(mute(false)).await.unwrap();

    // Server-muted by a moderator: dropped too.
    let server_mute = |on| {
        Request::ModerateVoice(v1::ModerateVoiceRequest {
            community_id: f.community.id,
            user_id: alice_id,
            mute: Some(on),
            move_to_channel_id: None,
        })
    };
    f.owner.request(server_mute(true)).await.unwrap();
    alice.send_datagram(packet(3)).unwrap();
    assert!(heard(bob, short).await.is_none(), "a server-muted packet reached bob");
    f.owner.request(server_mute(false)).await.unwrap();
    alice.send_datagram(packet(4)).unwrap();
    assert_eq!(heard(bob, Duration::from_secs(5)).await.map(|p| p.header.seq), Some(4));

    // Malformed datagrams are dropped and change nothing.
    for junk in [&b""[..], &[9, 9, 9][..], &[1, 0, 0, 0, 0, 0, 0][..], &[1u8; 2000][..1200]] {
        let _ = alice.send_datagram(bytes::Bytes::copy_from_slice(junk));
    }
    assert!(heard(bob, short).await.is_none(), "a malformed datagram was forwarded");

    // Leaving the room stops forwarding.
    alice.request(Request::LeaveVoice(v1::LeaveVoiceRequest {})).await.unwrap();
    alice.send_datagram(packet(5)).unwrap();
    assert!(heard(bob, short).await.is_none(), "a packet from outside the room reached bob");
    canary_still_sings(alice, bob, f.general).await;
}

#[tokio::test]
async fn a_flooding_sender_is_held_to_its_packet_rate() {
    let server = TestServer::start().await;
    let (f, _) = alice_and_bob_in_the_lounge(&server).await;
    let (alice, bob) = (&f.members[0], &f.members[1]);
    // 2000 packets as fast as possible: the budget lets a burst through,
    // then 100 a second.
    let start = std::time::Instant::now();
    for seq in 0..2000u16 {
        let _ = alice.send_datagram(packet(seq));
        if seq % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let mut got = 0u64;
    while heard(bob, Duration::from_millis(500)).await.is_some() {
        got += 1;
    }
    let allowed = kith_server::voice::PACKET_BURST
        + kith_server::voice::PACKETS_PER_SECOND * start.elapsed().as_secs_f64();
    assert!(got > 0, "some packets are forwarded");
    assert!((got as f64) <= allowed + 1.0, "{got} forwarded, at most {allowed:.0} allowed");
    canary_still_sings(alice, bob, f.general).await;
}

#[tokio::test]
async fn a_deafened_listener_is_sent_nothing_and_a_text_channel_has_no_voice() {
    let server = TestServer::start().await;
    let (f, _) = alice_and_bob_in_the_lounge(&server).await;
    let (alice, bob) = (&f.members[0], &f.members[1]);
    let deaf =
        |on| Request::UpdateVoiceState(v1::UpdateVoiceStateRequest { self_mute: None, self_deaf: Some(on) });
    bob.request(deaf(true)).await.unwrap();
    alice.send_datagram(packet(1)).unwrap();
    assert!(heard(bob, Duration::from_millis(300)).await.is_none());
    bob.request(deaf(false)).await.unwrap();
    alice.send_datagram(packet(2)).unwrap();
    assert!(heard(bob, Duration::from_secs(5)).await.is_some());

    let req = v1::JoinVoiceRequest { channel_id: f.general, ..Default::default() };
    assert_eq!(code_of(alice.request(Request::JoinVoice(req)).await), v1::ErrorCode::Invalid);
}
