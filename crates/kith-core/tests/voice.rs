//! Voice channels in the hub: who is where, muted or deafened, who may see
//! it, and the routing the edges forward audio by. No IO, no clock.

mod world;

use kith_core::permissions::{Override, OverrideTarget, Permissions};
use kith_core::request::Request;
use kith_core::text::Reason;
use kith_core::{RoleId, UserId};
use world::*;

fn voice_channel(w: &mut World, s: SessionId, community: u64, name: &str) -> u64 {
    let req = Request::CreateChannel {
        community: CommunityId(community),
        name: ChannelName::parse(name).unwrap(),
        topic: Topic::parse("").unwrap(),
        voice: true,
    };
    match w.call(s, req).unwrap() {
        R::Channel(ch) => {
            assert_eq!(ch.kind(), v1::ChannelKind::Voice);
            ch.id
        }
        other => panic!("{other:?}"),
    }
}

fn join(w: &mut World, s: SessionId, channel: u64) -> Result<v1::VoiceState, (ErrorCode, String)> {
    let req = Request::JoinVoice { channel: ChannelId(channel), self_mute: false, self_deaf: false };
    w.call(s, req).map(|r| match r {
        R::VoiceState(v) => v,
        other => panic!("{other:?}"),
    })
}

fn voice_events(w: &mut World, s: SessionId) -> Vec<v1::VoiceState> {
    w.events(s)
        .into_iter()
        .filter_map(|e| match e.body {
            Some(Ev::VoiceStateUpdated(v)) => Some(v),
            _ => None,
        })
        .collect()
}

/// (user, speaks, hears) of each session in a room, in session order.
fn room(w: &World, channel: u64) -> Vec<(u64, bool, bool)> {
    w.rooms
        .get(&ChannelId(channel))
        .map_or(Vec::new(), |m| m.iter().map(|r| (r.user.0, r.speaks, r.hears)).collect())
}

fn set_voice(w: &mut World, s: SessionId, mute: Option<bool>, deaf: Option<bool>) -> v1::VoiceState {
    match w.call(s, Request::UpdateVoiceState { self_mute: mute, self_deaf: deaf }).unwrap() {
        R::VoiceState(v) => v,
        other => panic!("{other:?}"),
    }
}

#[test]
fn joining_a_voice_channel_tells_everyone_who_can_see_it_and_routes_audio() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let lounge = voice_channel(&mut w, owner, c.id, "lounge");
    w.events(alice);
    w.events(bob);

    let me = join(&mut w, alice, lounge).unwrap();
    assert_eq!((me.user_id, me.channel_id, me.community_id), (w.id("alice"), lounge, c.id));
    assert!(!me.self_mute && !me.server_mute);
    // The joiner has the reply, and the event like everyone else.
    assert_eq!(voice_events(&mut w, alice), vec![me]);
    assert_eq!(voice_events(&mut w, bob), vec![me]);
    assert_eq!(room(&w, lounge), vec![(w.id("alice"), true, true)]);

    join(&mut w, bob, lounge).unwrap();
    assert_eq!(room(&w, lounge), vec![(w.id("alice"), true, true), (w.id("bob"), true, true)]);
    // Anyone logging in now sees both in the snapshot.
    let (_, ready) = w.login("owner");
    let states = &ready.communities[0].voice_states;
    assert_eq!(states.iter().map(|v| v.user_id).collect::<Vec<_>>(), vec![w.id("alice"), w.id("bob")]);

    // Text channels are not for voice, and voice channels take no messages.
    let general = c.channels[0].id;
    assert_eq!(join(&mut w, alice, general).unwrap_err().0, ErrorCode::Invalid);
    assert_eq!(w.say(alice, lounge, "hello?", None).unwrap_err().0, ErrorCode::Invalid);
    assert_eq!(join(&mut w, alice, 424242).unwrap_err().0, ErrorCode::NotFound);
    // Still there after the failed attempts.
    assert_eq!(room(&w, lounge).len(), 2);
}

#[test]
fn mute_and_deafen_change_the_routing_and_leaving_empties_the_room() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let lounge = voice_channel(&mut w, owner, c.id, "lounge");
    join(&mut w, alice, lounge).unwrap();
    join(&mut w, bob, lounge).unwrap();
    let (a, b) = (w.id("alice"), w.id("bob"));
    w.events(bob);

    let muted = set_voice(&mut w, alice, Some(true), None);
    assert!(muted.self_mute);
    assert_eq!(voice_events(&mut w, bob), vec![muted]);
    assert_eq!(room(&w, lounge), vec![(a, false, true), (b, true, true)]);

    // Deafened: hears nothing and is not heard; undeafened: back as before.
    set_voice(&mut w, alice, Some(false), Some(true));
    assert_eq!(room(&w, lounge), vec![(a, false, false), (b, true, true)]);
    set_voice(&mut w, alice, None, Some(false));
    assert_eq!(room(&w, lounge), vec![(a, true, true), (b, true, true)]);

    w.call(alice, Request::LeaveVoice).unwrap();
    let left = voice_events(&mut w, bob);
    assert_eq!(left.last().map(|v| (v.user_id, v.channel_id)), Some((a, 0)));
    w.call(bob, Request::LeaveVoice).unwrap();
    assert!(w.rooms.is_empty(), "an empty room is withdrawn: {:?}", w.rooms);
    // Not in voice: nothing to mute, and leaving again is harmless.
    let err = w.call(bob, Request::UpdateVoiceState { self_mute: Some(true), self_deaf: None });
    assert_eq!(err.unwrap_err().0, ErrorCode::Invalid);
    w.call(bob, Request::LeaveVoice).unwrap();
}

#[test]
fn permissions_decide_who_may_connect_and_speak() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let lounge = voice_channel(&mut w, owner, c.id, "lounge");
    let (a, b) = (w.id("alice"), w.id("bob"));
    let everyone = OverrideTarget::Role(RoleId(c.id));
    let rule = |deny| Request::SetOverride {
        channel: ChannelId(lounge),
        target: everyone,
        rule: Override { allow: Permissions::empty(), deny },
    };

    // Without CONNECT nobody gets in; the reason says which permission.
    w.call(owner, rule(Permissions::CONNECT)).unwrap();
    let (code, reason) = join(&mut w, alice, lounge).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(reason.contains("connect"), "{reason}");

    // Without SPEAK they may listen, shown as server-muted, and are not forwarded.
    w.call(owner, rule(Permissions::SPEAK)).unwrap();
    assert!(join(&mut w, alice, lounge).unwrap().server_mute);
    join(&mut w, bob, lounge).unwrap();
    assert_eq!(room(&w, lounge), vec![(a, false, true), (b, false, true)]);
    // Giving SPEAK back unmutes them at once, by the same sync as a join.
    w.call(owner, rule(Permissions::empty())).unwrap();
    assert_eq!(room(&w, lounge), vec![(a, true, true), (b, true, true)]);
    w.events(bob);

    // Taking CONNECT away while they are in removes them, and says so.
    w.call(owner, rule(Permissions::CONNECT)).unwrap();
    assert!(w.rooms.is_empty());
    let gone = voice_events(&mut w, bob);
    assert!(gone.iter().any(|v| v.user_id == b && v.channel_id == 0), "{gone:?}");
}

#[test]
fn moderators_server_mute_and_move_members_ranked_below_them() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let lounge = voice_channel(&mut w, owner, c.id, "lounge");
    let quiet = voice_channel(&mut w, owner, c.id, "quiet-room");
    let (a, b) = (w.id("alice"), w.id("bob"));
    join(&mut w, alice, lounge).unwrap();
    join(&mut w, bob, lounge).unwrap();
    let mute = |user, mute| Request::ModerateVoice {
        community: CommunityId(c.id),
        user: UserId(user),
        mute: Some(mute),
        move_to: None,
    };

    // Members cannot mute each other.
    let (code, _) = w.call(alice, mute(b, true)).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);

    w.events(alice);
    w.call(owner, mute(b, true)).unwrap();
    assert_eq!(room(&w, lounge), vec![(a, true, true), (b, false, true)]);
    assert!(voice_events(&mut w, alice).iter().any(|v| v.user_id == b && v.server_mute));
    // Leaving and rejoining does not lift a moderator's mute.
    w.call(bob, Request::LeaveVoice).unwrap();
    assert!(join(&mut w, bob, lounge).unwrap().server_mute);
    w.call(owner, mute(b, false)).unwrap();
    assert_eq!(room(&w, lounge), vec![(a, true, true), (b, true, true)]);

    // Move bob to the quiet room: both rooms are republished.
    let to = |ch| Request::ModerateVoice {
        community: CommunityId(c.id),
        user: UserId(b),
        mute: None,
        move_to: Some(ch),
    };
    w.call(owner, to(Some(ChannelId(quiet)))).unwrap();
    assert_eq!(room(&w, lounge), vec![(a, true, true)]);
    assert_eq!(room(&w, quiet), vec![(b, true, true)]);
    // Only into voice channels, and disconnecting is a move to nowhere.
    let general = ChannelId(c.channels[0].id);
    assert_eq!(w.call(owner, to(Some(general))).unwrap_err().0, ErrorCode::Invalid);
    w.call(owner, to(None)).unwrap();
    assert!(room(&w, quiet).is_empty());
    assert_eq!(w.call(owner, to(None)).unwrap_err().0, ErrorCode::Invalid, "bob is not in voice now");
}

#[test]
fn voice_ends_with_the_connection_a_timeout_or_a_kick_and_follows_the_latest_session() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let lounge = voice_channel(&mut w, owner, c.id, "lounge");
    let (a, b) = (w.id("alice"), w.id("bob"));

    // A second session of alice joining takes her voice over.
    join(&mut w, alice, lounge).unwrap();
    let (alice2, _) = w.login("alice");
    join(&mut w, alice2, lounge).unwrap();
    let routes = w.rooms[&ChannelId(lounge)].clone();
    assert_eq!(routes.iter().map(|r| (r.session, r.user.0)).collect::<Vec<_>>(), vec![(alice2, a)]);

    // Its connection dropping ends voice at once (not when the session expires).
    w.input(Input::Disconnected { session: alice2 });
    assert!(w.rooms.is_empty());

    // A timeout takes CONNECT away, so it takes the member out of voice.
    join(&mut w, bob, lounge).unwrap();
    let timeout = Request::Timeout {
        community: CommunityId(c.id),
        user: UserId(b),
        duration_ms: 60_000,
        reason: Reason::default(),
    };
    w.call(owner, timeout).unwrap();
    assert!(w.rooms.is_empty());
    let (code, reason) = join(&mut w, bob, lounge).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(reason.contains("timed out"), "{reason}");

    // A kicked member is out of voice too.
    let code = w.invite(owner, c.id);
    let (carol, _) = w.register("carol", Credential::Invite(code)).unwrap();
    join(&mut w, carol, lounge).unwrap();
    let kick = Request::Kick {
        community: CommunityId(c.id),
        user: UserId(w.id("carol")),
        reason: Reason::default(),
    };
    w.call(owner, kick).unwrap();
    assert!(w.rooms.is_empty());
}

#[test]
fn those_who_cannot_see_a_voice_channel_see_nobody_in_it() {
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let (alice, bob) = (s[0], s[1]);
    let staff = voice_channel(&mut w, owner, c.id, "staff");
    let hide = Request::SetOverride {
        channel: ChannelId(staff),
        target: OverrideTarget::Member(UserId(w.id("bob"))),
        rule: Override { allow: Permissions::empty(), deny: Permissions::VIEW_CHANNEL },
    };
    w.call(owner, hide).unwrap();
    w.events(bob);
    join(&mut w, alice, staff).unwrap();
    assert!(voice_events(&mut w, bob).is_empty());
    let (_, ready) = w.login("bob");
    assert!(ready.communities[0].voice_states.is_empty());
    assert_eq!(join(&mut w, bob, staff).unwrap_err().0, ErrorCode::NotFound);
}

#[test]
fn a_full_room_refuses_one_more_but_not_those_already_in_it() {
    let mut w =
        World::new(HubConfig { setup_code: Some(SETUP.into()), voice_room: 2, ..HubConfig::default() });
    let (owner, c, s) = w.family(&["alice", "bob"]);
    let lounge = voice_channel(&mut w, owner, c.id, "lounge");
    join(&mut w, s[0], lounge).unwrap();
    join(&mut w, s[1], lounge).unwrap();
    let (code, reason) = join(&mut w, owner, lounge).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(reason.contains("full (2 people)"), "{reason}");
    // Joining again where one already is, is not one more.
    join(&mut w, s[0], lounge).unwrap();
    assert_eq!(room(&w, lounge).len(), 2);
}
