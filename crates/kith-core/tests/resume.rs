//! Specs for resuming sessions after a dropped connection: no network, no
//! disk, no clock.

mod world;

use world::*;

fn resume(w: &mut World, name: &str, session_id: &str, last_seq: u64) -> (SessionId, Vec<Kind>) {
    let s = w.connect();
    let request =
        Request::Resume { token_hash: TokenHash(*blake(name)), resume_key: session_id.into(), last_seq };
    w.send(s, request);
    let inbox = w.inbox.remove(&s).unwrap_or_default();
    (s, inbox)
}

fn event_seqs_then_reply(inbox: &[Kind]) -> (Vec<u64>, Option<&v1::reply::Result>) {
    let mut seqs = Vec::new();
    for (i, k) in inbox.iter().enumerate() {
        match k {
            Kind::Event(e) => seqs.push(e.seq),
            Kind::Reply(r) => {
                assert_eq!(i, inbox.len() - 1, "the reply comes after every replayed event");
                return (seqs, r.result.as_ref());
            }
            Kind::Error(e) => panic!("{e:?}"),
        }
    }
    (seqs, None)
}

fn bodies(inbox: &[Kind]) -> Vec<String> {
    inbox
        .iter()
        .filter_map(|k| match k {
            Kind::Event(v1::Event { body: Some(Ev::MessageCreated(m)), .. }) => Some(m.body.clone()),
            _ => None,
        })
        .collect()
}

/// Bob's session id, after the family is set up and his events are drained.
fn bobs_session(w: &mut World) -> (SessionId, u64, String, SessionId) {
    let owner = w.owner();
    let c = w.community(owner, "Family");
    let code = w.invite(owner, c.id);
    let (bob, ready) = w.register("bob", Credential::Invite(code)).unwrap();
    w.events(bob);
    w.events(owner);
    (owner, c.channels[0].id, ready.session_id, bob)
}

#[test]
fn a_resumed_session_gets_exactly_the_missed_events_in_order_then_resumed() {
    let mut w = World::default();
    let (owner, general, session_id, bob) = bobs_session(&mut w);
    assert!(!session_id.is_empty());
    for i in 0..5 {
        w.say(owner, general, &format!("m{i}"), None).unwrap();
    }
    // Bob processed two events; three more were in flight when his connection dropped.
    let seen = w.events(bob);
    let last_seq = seen[1].seq;
    w.input(Input::Disconnected { session: bob });
    assert_eq!(w.hub.detached_sessions(), 1);
    for i in 5..8 {
        w.say(owner, general, &format!("m{i}"), None).unwrap();
    }

    let (again, inbox) = resume(&mut w, "bob", &session_id, last_seq);
    let (seqs, reply) = event_seqs_then_reply(&inbox);
    assert_eq!(seqs, (last_seq + 1..=last_seq + 6).collect::<Vec<_>>());
    assert_eq!(bodies(&inbox), ["m2", "m3", "m4", "m5", "m6", "m7"]);
    assert!(matches!(reply, Some(R::Resumed(r)) if r.replayed == 6 && r.session_id == session_id));
    assert_eq!(w.hub.detached_sessions(), 0);

    // The stream simply continues on the new connection.
    w.say(owner, general, "after", None).unwrap();
    let next = w.events(again);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].seq, last_seq + 7);
}

#[test]
fn a_forged_foreign_or_expired_resume_gets_a_fresh_snapshot_that_says_why() {
    let mut w = World::default();
    let (owner, general, session_id, bob) = bobs_session(&mut w);
    let owner_session_id = format!("resume-{}", owner.0);

    // Q15: a made-up session id, and another account's session id.
    for forged in ["no-such-session", owner_session_id.as_str()] {
        let (_, inbox) = resume(&mut w, "bob", forged, 0);
        let [Kind::Reply(v1::Reply { result: Some(R::Ready(ready)), .. })] = &inbox[..] else {
            panic!("{inbox:?}")
        };
        assert_eq!(ready.resume_refused, "the session is unknown or expired");
        assert_ne!(ready.session_id, session_id);
        assert_eq!(ready.user.as_ref().unwrap().username, "bob");
        assert_eq!(ready.communities.len(), 1, "a full snapshot");
    }
    // The owner's session was not disturbed by bob naming it.
    w.say(bob, general, "still here?", None).unwrap();
    assert_eq!(w.events(owner).len(), 1);

    // A bad token is refused outright.
    let s = w.connect();
    let r = w.call(
        s,
        Request::Resume { token_hash: TokenHash([7; 32]), resume_key: session_id.clone(), last_seq: 0 },
    );
    assert_eq!(r.unwrap_err().0, ErrorCode::BadCredentials);

    // After the grace window the session is gone.
    w.input(Input::Disconnected { session: bob });
    w.now = w.now.plus_ms(HubConfig::default().resume_grace_ms);
    let (_, inbox) = resume(&mut w, "bob", &session_id, 0);
    assert!(
        matches!(&inbox[..], [Kind::Reply(v1::Reply { result: Some(R::Ready(r)), .. })] if !r.resume_refused.is_empty())
    );
    assert_eq!(w.hub.detached_sessions(), 0);
}

#[test]
fn resuming_while_the_old_connection_lingers_takes_it_over() {
    let mut w = World::default();
    let (owner, general, session_id, bob) = bobs_session(&mut w);
    w.say(owner, general, "one", None).unwrap();
    let last = w.events(bob)[0].seq;
    let (again, inbox) = resume(&mut w, "bob", &session_id, last);
    assert!(matches!(event_seqs_then_reply(&inbox), (seqs, Some(R::Resumed(_))) if seqs.is_empty()));
    assert!(w.closes.contains(&(bob, v1::CloseCode::SessionTakenOver)));
    w.say(owner, general, "two", None).unwrap();
    assert!(w.events(bob).is_empty(), "nothing more goes to the old connection");
    assert_eq!(w.events(again).len(), 1);
    // The old connection's late disconnect does not disturb the resumed session.
    w.input(Input::Disconnected { session: bob });
    assert_eq!(w.hub.detached_sessions(), 0);
}

#[test]
fn a_session_that_missed_more_than_the_replay_buffer_starts_afresh() {
    let mut w =
        World::new(HubConfig { setup_code: Some(SETUP.into()), replay_events: 10, ..HubConfig::default() });
    let (owner, general, session_id, bob) = bobs_session(&mut w);
    w.input(Input::Disconnected { session: bob });
    for i in 0..20 {
        w.say(owner, general, &format!("m{i}"), None).unwrap();
    }
    let (_, inbox) = resume(&mut w, "bob", &session_id, 0);
    let [Kind::Reply(v1::Reply { result: Some(R::Ready(ready)), .. })] = &inbox[..] else {
        panic!("{inbox:?}")
    };
    assert_eq!(ready.resume_refused, "too many events were missed to replay them");
}

#[test]
fn a_session_whose_transport_cannot_come_back_keeps_nothing_for_a_resume() {
    let mut w = World::default();
    let (owner, general, _, bob) = bobs_session(&mut w);
    // Bob signs in at a terminal as well: that connection is never resumed.
    let terminal = w.connect_once();
    let Ok(R::Ready(ready)) =
        w.call(terminal, Request::Authenticate { token_hash: TokenHash(*blake("bob")) })
    else {
        panic!("bob signs in")
    };
    assert_eq!(ready.session_id, "", "there is nothing to resume it by");
    w.events(bob);
    for i in 0..5 {
        w.say(owner, general, &format!("m{i}"), None).unwrap();
    }
    let got: Vec<Kind> = w.events(terminal).into_iter().map(Kind::Event).collect();
    assert_eq!(bodies(&got), ["m0", "m1", "m2", "m3", "m4"], "it gets every event");
    assert_eq!(w.hub.replayable_events(terminal), 0, "and keeps none of them");
    assert!(w.hub.replayable_events(bob) >= 5, "bob's other session keeps what it was sent");

    w.input(Input::Disconnected { session: terminal });
    assert_eq!(w.hub.detached_sessions(), 0, "it ended with its connection");
    let (_, inbox) = resume(&mut w, "bob", "", 0);
    assert!(
        matches!(&inbox[..], [Kind::Reply(v1::Reply { result: Some(R::Ready(r)), .. })] if !r.resume_refused.is_empty()),
        "an empty session id names no session"
    );
}

#[test]
fn a_logged_out_session_cannot_be_resumed() {
    let mut w = World::default();
    let (_, _, session_id, bob) = bobs_session(&mut w);
    w.call(bob, Request::Logout { everywhere: false }).unwrap();
    let s = w.connect();
    let r = w.call(
        s,
        Request::Resume { token_hash: TokenHash(*blake("bob")), resume_key: session_id, last_seq: 0 },
    );
    assert_eq!(r.unwrap_err().0, ErrorCode::BadCredentials, "the token died with the logout");
}

#[test]
fn a_connected_session_keeps_only_recent_events_for_replay() {
    let mut w = World::default();
    let (owner, general, session_id, bob) = bobs_session(&mut w);
    w.say(owner, general, "old", None).unwrap();
    w.now = w.now.plus_ms(kith_core::hub::REPLAY_WHILE_CONNECTED_MS + 1);
    w.say(owner, general, "recent", None).unwrap();
    let seqs: Vec<u64> = w.events(bob).iter().map(|e| e.seq).collect();
    w.input(Input::Disconnected { session: bob });
    // Whoever processed "old" resumes; whoever did not gets a snapshot.
    let (_, inbox) = resume(&mut w, "bob", &session_id, seqs[0]);
    assert!(matches!(event_seqs_then_reply(&inbox), (s, Some(R::Resumed(_))) if s == [seqs[1]]));
    let (_, inbox) = resume(&mut w, "bob", &session_id, 0);
    let [Kind::Reply(v1::Reply { result: Some(R::Ready(ready)), .. })] = &inbox[..] else {
        panic!("{inbox:?}")
    };
    assert_eq!(ready.resume_refused, "too many events were missed to replay them");
}

/// A client that leaves on purpose leaves nothing behind: no detached
/// session holding a replay buffer for the grace window, and its presence
/// goes at once. One whose network dropped can still resume.
#[test]
fn a_session_closed_on_purpose_ends_at_once_and_cannot_be_resumed() {
    let mut w = World::default();
    let (owner, _, s) = w.family(&["bob"]);
    let (phone, ready) = w.login("bob");
    w.input(Input::Closed { session: phone });
    let (fresh, inbox) = resume(&mut w, "bob", &ready.session_id, 0);
    assert!(
        matches!(&inbox[..], [Kind::Reply(v1::Reply { result: Some(R::Ready(r)), .. })] if !r.resume_refused.is_empty()),
        "{inbox:?}"
    );

    let (laptop, ready) = w.login("bob");
    w.input(Input::Disconnected { session: laptop });
    let (resumed, inbox) = resume(&mut w, "bob", &ready.session_id, 0);
    assert!(
        matches!(inbox.last(), Some(Kind::Reply(v1::Reply { result: Some(R::Resumed(_)), .. }))),
        "{inbox:?}"
    );

    w.events(owner);
    for session in [s[0], fresh, resumed] {
        w.input(Input::Closed { session });
    }
    let bob = w.id("bob");
    let events = w.events(owner);
    assert!(
        events.iter().any(|e| matches!(&e.body, Some(Ev::PresenceUpdated(p))
            if p.user_id == bob && p.status == v1::PresenceStatus::Offline as i32)),
        "bob is offline as soon as his last session closes: {events:?}"
    );
}

/// Timers are outputs: the hub says when it next needs the time, and a tick
/// then — no other input — carries out the deadline.
#[test]
fn the_hub_names_its_next_deadline_and_a_tick_carries_it_out() {
    let mut w = World::default();
    let (_, _, s) = w.family(&["bob"]);
    // An unauthenticated connection: closed at its deadline by a tick alone.
    let lurker = w.connect();
    let due = w.hub.poll_timeout().expect("a deadline");
    assert_eq!(due, w.now.plus_ms(AUTH_WITHIN_MS), "the lurker's time to sign in");
    w.now = due;
    w.hub.handle(w.now, Input::Tick);
    w.drain();
    assert!(w.closes.contains(&(lurker, v1::CloseCode::Timeout)), "{:?}", w.closes);

    // A dropped session: resumable until the grace window ends, then gone.
    w.input(Input::Disconnected { session: s[0] });
    let grace_ends = w.hub.poll_timeout().expect("the grace window's end");
    assert_eq!(grace_ends, w.now.plus_ms(HubConfig::default().resume_grace_ms));
    assert_eq!(w.hub.detached_sessions(), 1);
    w.now = grace_ends;
    w.hub.handle(w.now, Input::Tick);
    assert_eq!(w.hub.detached_sessions(), 0, "expired on time, with no other input");
    assert_eq!(w.hub.poll_timeout(), None, "nothing left to wait for");
}
