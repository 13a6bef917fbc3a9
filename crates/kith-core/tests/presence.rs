//! Specs for presence, typing, read state and per-account rate limits in the
//! hub: no network, no disk, no clock.

mod world;

use kith_core::rate::RateLimit;
use kith_core::request::Chosen;
use v1::PresenceStatus as P;
use world::*;

/// The presence updates among `events`, as (user, status).
fn presences(events: &[v1::Event]) -> Vec<(u64, P)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Some(Ev::PresenceUpdated(p)) => Some((p.user_id, p.status())),
            _ => None,
        })
        .collect()
}

fn typing(events: &[v1::Event]) -> Vec<v1::TypingStarted> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Some(Ev::TypingStarted(t)) => Some(*t),
            _ => None,
        })
        .collect()
}

fn status_in(ready: &v1::Ready, user: u64) -> P {
    ready.presences.iter().find(|p| p.user_id == user).map_or(P::Offline, |p| p.status())
}

impl World {
    fn presence(&mut self, s: SessionId, status: Option<Chosen>, afk: Option<bool>) -> P {
        match self.call(s, Request::SetPresence { status, afk }).unwrap() {
            R::Presence(p) => p.status(),
            other => panic!("{other:?}"),
        }
    }

    fn typing(&mut self, s: SessionId, channel: u64) -> Result<R, (ErrorCode, String)> {
        self.call(s, Request::Typing { channel: ChannelId(channel) })
    }

    fn ack(&mut self, s: SessionId, channel: u64, message: u64) {
        let req = Request::Ack {
            channel: ChannelId(channel),
            message: (message != 0).then_some(MessageId(message)),
        };
        self.call(s, req).unwrap();
    }
}

#[test]
fn one_presence_is_made_from_all_of_a_users_connections() {
    let mut w = World::default();
    let (owner, _, sessions) = w.family(&["bob"]);
    let (bob, owner_id) = (w.id("bob"), w.id("owner"));
    let (bob_phone, ready) = w.login("bob");
    assert_eq!(status_in(&ready, owner_id), P::Online, "the snapshot has the others' presence");
    assert!(presences(&w.events(owner)).is_empty(), "a second connection changes nothing others see");

    // Away from one device: still online, as long as another is in use.
    assert_eq!(w.presence(sessions[0], None, Some(true)), P::Online);
    assert!(presences(&w.events(owner)).is_empty());
    assert_eq!(w.presence(bob_phone, None, Some(true)), P::Idle);
    assert_eq!(presences(&w.events(owner)), [(bob, P::Idle)]);
    assert_eq!(presences(&w.events(sessions[0])), [(bob, P::Idle)], "bob's other session is told too");
    assert_eq!(w.presence(bob_phone, None, Some(false)), P::Online);
    assert_eq!(presences(&w.events(owner)), [(bob, P::Online)]);

    // A chosen status is the account's, whichever session chose it.
    assert_eq!(w.presence(bob_phone, Some(Chosen::Dnd), None), P::Dnd);
    assert_eq!(presences(&w.events(owner)), [(bob, P::Dnd)]);
    assert!(w.writes.iter().any(|(_, wr)| matches!(wr, Write::SetPresence { status: Chosen::Dnd, .. })));

    // Closing one connection leaves bob online; closing the last makes him offline.
    w.input(Input::Disconnected { session: bob_phone });
    assert!(presences(&w.events(owner)).is_empty());
    w.input(Input::Disconnected { session: sessions[0] });
    assert_eq!(presences(&w.events(owner)), [(bob, P::Offline)]);
    let (_, ready) = w.login("owner");
    assert_eq!(status_in(&ready, bob), P::Offline, "offline users are left out of snapshots");
}

#[test]
fn an_invisible_user_looks_offline_to_everyone_else() {
    let mut w = World::default();
    let (owner, _, sessions) = w.family(&["bob"]);
    let bob = w.id("bob");
    assert_eq!(w.presence(sessions[0], Some(Chosen::Invisible), None), P::Invisible);
    assert_eq!(presences(&w.events(owner)), [(bob, P::Offline)], "others see offline");
    let (bob2, ready) = w.login("bob");
    assert_eq!(status_in(&ready, bob), P::Invisible, "bob's own sessions see the truth");
    assert!(presences(&w.events(owner)).is_empty(), "a new invisible connection reveals nothing");
    let (_, ready) = w.login("owner");
    assert_eq!(status_in(&ready, bob), P::Offline);

    // Going from invisible to offline changes nothing the others see.
    w.input(Input::Disconnected { session: bob2 });
    w.input(Input::Disconnected { session: sessions[0] });
    assert!(presences(&w.events(owner)).is_empty());
    // The choice is kept: bob comes back invisible.
    let (_, ready) = w.login("bob");
    assert_eq!(status_in(&ready, bob), P::Invisible);
    assert!(presences(&w.events(owner)).is_empty());
}

#[test]
fn people_who_become_visible_to_each_other_learn_each_others_presence() {
    let mut w = World::default();
    let (owner, _family, sessions) = w.family(&["bob"]);
    let work = w.community(owner, "Work");
    let code = w.invite(owner, work.id);
    let (dave, _) = w.register("dave", Credential::Invite(code)).unwrap();
    for s in [owner, sessions[0], dave] {
        w.events(s);
    }
    // Dave (who knows only the owner) joins the family and meets bob.
    let family_code = w.invite(owner, _family.id);
    w.call(dave, Request::JoinCommunity { code: family_code }).unwrap();
    assert_eq!(presences(&w.events(dave)), [(w.id("bob"), P::Online)]);
    assert_eq!(presences(&w.events(sessions[0])), [(w.id("dave"), P::Online)]);
    assert!(presences(&w.events(owner)).is_empty(), "the owner already knew dave's presence");
}

#[test]
fn typing_reaches_the_channel_viewers_expires_and_is_never_stored() {
    let mut w = World::default();
    let (owner, c, sessions) = w.family(&["bob"]);
    let general = c.channels[0].id;
    let (bob, bob_phone) = (sessions[0], w.login("bob").0);
    let writes_before = w.writes.len();
    w.typing(bob, general).unwrap();
    let seen = typing(&w.events(owner));
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].channel_id, seen[0].user_id), (general, w.id("bob")));
    assert_eq!(seen[0].until_ms, w.now.0 + kith_core::hub::TYPING_MS, "it lapses unless renewed");
    assert!(typing(&w.events(bob_phone)).is_empty(), "the typist's own sessions are not told");
    assert_eq!(w.writes.len(), writes_before, "typing is never stored");

    // Renewals within 3 s are absorbed; later ones go out.
    w.typing(bob, general).unwrap();
    assert!(typing(&w.events(owner)).is_empty());
    w.now = w.now.plus_ms(3_000);
    w.typing(bob, general).unwrap();
    assert_eq!(typing(&w.events(owner)).len(), 1);
    // Sending ends the typing: the next notice goes out at once.
    w.say(bob, general, "hi", None).unwrap();
    w.typing(bob, general).unwrap();
    assert_eq!(typing(&w.events(owner)).len(), 1);

    // Typing where one may not send is refused like sending.
    assert_eq!(w.typing(bob, 424242).unwrap_err().0, ErrorCode::NotFound);
}

#[test]
fn typing_and_messages_are_rate_limited_per_account_and_say_when_to_retry() {
    let mut w = World::new(HubConfig {
        setup_code: Some(SETUP.into()),
        message_rate: Some(RateLimit::new(3, 1_000)),
        typing_rate: Some(RateLimit::new(2, 5_000)),
        ..HubConfig::default()
    });
    let (owner, c, sessions) = w.family(&["bob"]);
    let general = c.channels[0].id;
    let bob = sessions[0];
    for n in 0..3 {
        w.say(bob, general, &format!("{n}"), None).unwrap();
    }
    w.events(owner);
    let writes = w.writes.len();
    let rid = w.send(
        bob,
        Request::SendMessage {
            channel: ChannelId(general),
            body: Body::parse("one too many").unwrap(),
            nonce: None,
            reply_to: None,
            uploads: Vec::new(),
        },
    );
    let refusal = w.inbox.get_mut(&bob).unwrap().iter().find_map(|k| match k {
        Kind::Error(e) if e.request_id == rid => Some(e.clone()),
        _ => None,
    });
    let refusal = refusal.expect("an error");
    assert_eq!(refusal.code(), ErrorCode::RateLimited);
    assert!((900..=1_000).contains(&refusal.retry_after_ms), "{refusal:?}");
    assert_eq!(w.writes.len(), writes, "nothing was stored");
    assert!(w.events(owner).is_empty(), "and nobody was told");
    w.say(owner, general, "others are unaffected", None).unwrap();

    w.now = w.now.plus_ms(refusal.retry_after_ms);
    w.say(bob, general, "after waiting", None).unwrap();

    w.typing(bob, general).unwrap();
    w.typing(bob, general).unwrap();
    let (code, reason) = w.typing(bob, general).unwrap_err();
    assert_eq!(code, ErrorCode::RateLimited, "{reason}");
}

#[test]
fn a_session_that_ignores_rate_limit_refusals_is_disconnected() {
    let mut w = World::new(HubConfig {
        setup_code: Some(SETUP.into()),
        message_rate: Some(RateLimit::new(1, 60_000)),
        refusal_rate: Some(RateLimit::new(20, 1_000)),
        ..HubConfig::default()
    });
    let (owner, c, sessions) = w.family(&["bob"]);
    let general = c.channels[0].id;
    let bob = sessions[0];
    w.say(bob, general, "one", None).unwrap();
    for n in 0..20 {
        assert_eq!(w.say(bob, general, &format!("{n}"), None).unwrap_err().0, ErrorCode::RateLimited);
        assert!(w.closes.is_empty(), "refusals within the allowance are only refusals");
    }
    assert_eq!(w.say(bob, general, "flood", None).unwrap_err().0, ErrorCode::RateLimited);
    assert_eq!(w.closes, [(bob, v1::CloseCode::RateLimited)], "sustained flooding ends the session");
    assert_eq!(presences(&w.events(owner)), [(w.id("bob"), P::Offline)]);
    // It cannot be resumed: the session is gone.
    assert_eq!(w.hub.detached_sessions(), 0);
}

#[test]
fn read_state_counts_unread_messages_and_mentions_and_syncs_across_sessions() {
    let mut w = World::default();
    let (owner, c, sessions) = w.family(&["bob"]);
    let general = c.channels[0].id;
    let bob = sessions[0];
    let first = message(w.say(owner, general, "one", None).unwrap()).id;
    let second = message(w.say(owner, general, "two @bob", None).unwrap()).id;
    w.say(bob, general, "my own messages are never unread", None).unwrap();
    let third = message(w.say(owner, general, "three", None).unwrap()).id;

    let (phone, ready) = w.login("bob");
    let ch = &ready.communities[0].channels[0];
    assert_eq!((ch.last_read_id, ch.unread_count, ch.mention_count), (0, 3, 1));
    w.events(bob);
    w.events(owner);

    w.ack(phone, general, first);
    let synced: Vec<v1::ReadState> = w
        .events(bob)
        .into_iter()
        .filter_map(|e| match e.body {
            Some(Ev::ReadStateUpdated(r)) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(synced.len(), 1, "bob's other session hears of it");
    assert_eq!((synced[0].last_read_id, synced[0].unread_count, synced[0].mention_count), (first, 2, 1));
    assert!(w.events(owner).is_empty(), "nobody else does");
    assert!(w.writes.iter().any(|(_, wr)| matches!(wr,
        Write::SetReadState { last_read: Some(m), .. } if m.0 == first)));

    // Past the newest message is clamped to it; marking backwards unreads.
    w.ack(phone, general, u64::MAX >> 1);
    let (_, ready) = w.login("bob");
    let ch = &ready.communities[0].channels[0];
    assert_eq!((ch.last_read_id, ch.unread_count, ch.mention_count), (third, 0, 0));
    w.ack(phone, general, second);
    let (_, ready) = w.login("bob");
    assert_eq!(ready.communities[0].channels[0].unread_count, 1);

    // A hidden channel cannot be acked.
    let err = w.call(phone, Request::Ack { channel: ChannelId(999), message: None }).unwrap_err();
    assert_eq!(err.0, ErrorCode::NotFound);
}
