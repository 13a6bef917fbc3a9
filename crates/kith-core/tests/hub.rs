//! Specs for the hub, driven by hand: no network, no disk, no clock.

mod world;

use world::*;

#[test]
fn first_registration_needs_the_setup_code_and_becomes_owner() {
    let mut w = World::default();
    assert_eq!(w.register("alice", Credential::None).unwrap_err(), ErrorCode::RegistrationClosed);
    assert_eq!(
        w.register("alice", Credential::SetupCode("WRONG".into())).unwrap_err(),
        ErrorCode::RegistrationClosed
    );
    let (_, ready) = w.register("alice", Credential::SetupCode(SETUP.into())).unwrap();
    assert!(ready.server_owner);
    assert_eq!(ready.token, "token-alice");
    // The code is one-time.
    assert_eq!(
        w.register("bob", Credential::SetupCode(SETUP.into())).unwrap_err(),
        ErrorCode::RegistrationClosed
    );
}

#[test]
fn registration_after_the_owner_needs_an_invite_unless_open() {
    let mut w = World::default();
    w.owner();
    assert_eq!(w.register("bob", Credential::None).unwrap_err(), ErrorCode::RegistrationClosed);

    let mut open = World::new(HubConfig {
        open_registration: true,
        setup_code: Some(SETUP.into()),
        ..HubConfig::default()
    });
    open.owner();
    let (_, ready) = open.register("bob", Credential::None).unwrap();
    assert!(!ready.server_owner);
}

#[test]
fn registering_with_an_invite_joins_its_community() {
    let mut w = World::default();
    let owner = w.owner();
    let c = w.community(owner, "Family");
    let code = w.invite(owner, c.id);
    assert!(
        matches!(&w.events(owner)[..], [v1::Event { body: Some(Ev::CommunityJoined(j)), .. }] if j.id == c.id),
        "the creator's own session is told of the new community too"
    );
    let (_, ready) = w.register("bob", Credential::Invite(code)).unwrap();
    assert_eq!(ready.communities.len(), 1);
    assert_eq!(ready.communities[0].name, "Family");
    let joined = w.events(owner);
    let bob = ready.user.unwrap().id;
    assert!(
        matches!(&joined[..], [
            v1::Event { body: Some(Ev::MemberJoined(m)), .. },
            v1::Event { body: Some(Ev::PresenceUpdated(p)), .. },
        ] if m.member.as_ref().unwrap().user.as_ref().unwrap().username == "bob"
            && p.user_id == bob && p.status == v1::PresenceStatus::Online as i32),
        "the owner sees bob join, then come online: {joined:?}"
    );
}

#[test]
fn confusable_usernames_are_taken() {
    let mut w = World::new(HubConfig {
        open_registration: true,
        setup_code: Some(SETUP.into()),
        ..HubConfig::default()
    });
    w.owner();
    w.register("alice", Credential::None).unwrap();
    for twin in ["ALICE", "\u{0430}lice", "ａｌｉｃｅ", "a1ice"] {
        assert_eq!(w.register(twin, Credential::None).unwrap_err(), ErrorCode::Taken, "{twin}");
    }
    // A mixed-script name that collides with nobody is still refused.
    assert_eq!(w.register("b\u{043E}b", Credential::None).unwrap_err(), ErrorCode::Invalid);
}

#[test]
fn acknowledgement_and_fan_out_wait_for_the_commit() {
    let mut w = World::default();
    let (owner, c, members) = w.family(&["bob"]);
    let general = c.channels[0].id;
    w.auto_commit = false;
    let rid = w.send(
        owner,
        Request::SendMessage {
            channel: ChannelId(general),
            body: Body::parse("hello").unwrap(),
            nonce: None,
            reply_to: None,
            uploads: Vec::new(),
        },
    );
    assert!(w.take_answer(owner, rid).is_none(), "no ack before commit");
    assert!(w.events(members[0]).is_empty(), "nobody sees an uncommitted message");
    assert!(matches!(w.writes.last(), Some((_, Write::InsertMessage { .. }))));
    w.commit();
    let ack = message(w.take_answer(owner, rid).unwrap().unwrap());
    let events = w.events(members[0]);
    assert!(
        matches!(&events[..], [v1::Event { seq: 1, body: Some(Ev::MessageCreated(m)) }] if m.id == ack.id && m.body == "hello")
    );
}

#[test]
fn a_quick_answer_never_overtakes_an_uncommitted_one() {
    let mut w = World::default();
    let (owner, c, _) = w.family(&[]);
    w.auto_commit = false;
    let first = w.send(
        owner,
        Request::SendMessage {
            channel: ChannelId(c.channels[0].id),
            body: Body::parse("one").unwrap(),
            nonce: None,
            reply_to: None,
            uploads: Vec::new(),
        },
    );
    // A request that writes nothing still waits behind the pending write.
    let second = w.send(owner, Request::LeaveCommunity { community: CommunityId(c.id) });
    assert!(w.take_answer(owner, second).is_none());
    w.commit();
    let inbox = &w.inbox[&owner];
    let order: Vec<u64> = inbox
        .iter()
        .map(|k| match k {
            Kind::Reply(r) => r.request_id,
            Kind::Error(e) => e.request_id,
            Kind::Event(_) => 0,
        })
        .collect();
    // The message's own event follows its reply; the refusal waits behind both.
    assert_eq!(order, [first, 0, second]);
}

#[test]
fn retry_with_the_same_nonce_returns_the_original_and_writes_nothing() {
    let mut w = World::default();
    let (owner, c, _) = w.family(&[]);
    let general = c.channels[0].id;
    let original = message(w.say(owner, general, "hello", Some("n-1")).unwrap());
    let writes_before = w.writes.len();
    let rid = w.send(
        owner,
        Request::SendMessage {
            channel: ChannelId(general),
            body: Body::parse("different text").unwrap(),
            nonce: Some(Nonce::parse("n-1").unwrap().unwrap()),
            reply_to: None,
            uploads: Vec::new(),
        },
    );
    assert_eq!(w.writes.len(), writes_before, "no second message");
    assert_eq!(w.reads.last(), Some(&(owner, rid, Read::Message(MessageId(original.id)))));
}

/// A channel's messages go with it, and so do their nonces (as the store's
/// rows do); every other channel's stay.
#[test]
fn deleting_a_channel_frees_its_nonces_and_keeps_every_other_channels() {
    let mut w = World::default();
    let (owner, c, _) = w.family(&[]);
    let general = c.channels[0].id;
    let second = match w
        .call(
            owner,
            Request::CreateChannel {
                community: CommunityId(c.id),
                name: ChannelName::parse("second").unwrap(),
                topic: Topic::parse("").unwrap(),
                voice: false,
            },
        )
        .unwrap()
    {
        R::Channel(ch) => ch.id,
        r => panic!("{r:?}"),
    };
    w.say(owner, general, "in general", Some("a")).unwrap();
    let kept = message(w.say(owner, second, "in second", Some("b")).unwrap());
    w.call(owner, Request::DeleteChannel { channel: ChannelId(general) }).unwrap();

    let inserts =
        |w: &World| w.writes.iter().filter(|(_, wr)| matches!(wr, Write::InsertMessage { .. })).count();
    let before = inserts(&w);
    let reused = message(w.say(owner, second, "a again", Some("a")).unwrap());
    assert_eq!(inserts(&w), before + 1, "the deleted channel's nonce is free again");
    assert_eq!((reused.channel_id, reused.body.as_str()), (second, "a again"));

    let rid = w.send(
        owner,
        Request::SendMessage {
            channel: ChannelId(second),
            body: Body::parse("retry").unwrap(),
            nonce: Some(Nonce::parse("b").unwrap().unwrap()),
            reply_to: None,
            uploads: Vec::new(),
        },
    );
    assert_eq!(inserts(&w), before + 1, "the other channel's nonce still deduplicates");
    assert_eq!(w.reads.last(), Some(&(owner, rid, Read::Message(MessageId(kept.id)))));
}

#[test]
fn outsiders_get_not_found_and_change_nothing() {
    let mut w = World::new(HubConfig {
        open_registration: true,
        setup_code: Some(SETUP.into()),
        ..HubConfig::default()
    });
    let (owner, c, _) = w.family(&[]);
    let general = c.channels[0].id;
    let msg = message(w.say(owner, general, "family only", None).unwrap());
    let (eve, _) = w.register("eve", Credential::None).unwrap();
    let writes_before = w.writes.len();

    let attempts = [
        Request::SendMessage {
            channel: ChannelId(general),
            body: Body::parse("hi").unwrap(),
            nonce: None,
            reply_to: None,
            uploads: Vec::new(),
        },
        Request::History(HistoryQuery { channel: ChannelId(general), anchor: Anchor::Latest, limit: 50 }),
        Request::EditMessage {
            channel: ChannelId(general),
            message: MessageId(msg.id),
            body: Body::parse("x").unwrap(),
        },
        Request::DeleteMessage { channel: ChannelId(general), message: MessageId(msg.id) },
        Request::CreateChannel {
            community: CommunityId(c.id),
            name: ChannelName::parse("x").unwrap(),
            topic: Topic::parse("").unwrap(),
            voice: false,
        },
        Request::DeleteChannel { channel: ChannelId(general) },
        Request::LeaveCommunity { community: CommunityId(c.id) },
    ];
    for attempt in attempts {
        let desc = format!("{attempt:?}");
        let (code, _) = w.call(eve, attempt).unwrap_err();
        assert_eq!(code, ErrorCode::NotFound, "{desc}");
    }
    // A missing channel answers exactly like an invisible one.
    let (_, missing) = w.say(eve, 12345, "hi", None).unwrap_err();
    let (_, hidden) = w.say(eve, general, "hi", None).unwrap_err();
    assert_eq!(missing, hidden);
    assert_eq!(w.writes.len(), writes_before);
    assert!(w.reads.is_empty());
}

#[test]
fn edits_and_replies_across_channels_are_not_found() {
    let mut w = World::default();
    let (owner, c, _) = w.family(&[]);
    let general = c.channels[0].id;
    let other = match w
        .call(
            owner,
            Request::CreateChannel {
                community: CommunityId(c.id),
                name: ChannelName::parse("other").unwrap(),
                topic: Topic::parse("").unwrap(),
                voice: false,
            },
        )
        .unwrap()
    {
        R::Channel(ch) => ch.id,
        r => panic!("{r:?}"),
    };
    let msg = message(w.say(owner, general, "in general", None).unwrap());
    let reply = Request::SendMessage {
        channel: ChannelId(other),
        body: Body::parse("re").unwrap(),
        nonce: None,
        reply_to: Some(MessageId(msg.id)),
        uploads: Vec::new(),
    };
    assert_eq!(w.call(owner, reply).unwrap_err().0, ErrorCode::NotFound);
    let edit = Request::EditMessage {
        channel: ChannelId(other),
        message: MessageId(msg.id),
        body: Body::parse("x").unwrap(),
    };
    assert_eq!(w.call(owner, edit).unwrap_err().0, ErrorCode::NotFound);
    let ok = Request::SendMessage {
        channel: ChannelId(general),
        body: Body::parse("re").unwrap(),
        nonce: None,
        reply_to: Some(MessageId(msg.id)),
        uploads: Vec::new(),
    };
    assert_eq!(message(w.call(owner, ok).unwrap()).reply_to, msg.id);
}

#[test]
fn only_the_author_edits_and_the_owner_may_also_delete() {
    let mut w = World::default();
    let (owner, c, members) = w.family(&["bob"]);
    let general = c.channels[0].id;
    let bobs = message(w.say(members[0], general, "bob's words", None).unwrap());
    let edit = |text: &str| Request::EditMessage {
        channel: ChannelId(general),
        message: MessageId(bobs.id),
        body: Body::parse(text).unwrap(),
    };
    assert_eq!(w.call(owner, edit("owner edit")).unwrap_err().0, ErrorCode::Forbidden);
    let edited = message(w.call(members[0], edit("bob's better words")).unwrap());
    assert!(edited.edited_at_ms > 0);
    assert_eq!(edited.body, "bob's better words");
    let events = w.events(owner);
    assert!(
        matches!(events.last(), Some(v1::Event { body: Some(Ev::MessageUpdated(m)), .. }) if m.body == "bob's better words")
    );

    let delete = Request::DeleteMessage { channel: ChannelId(general), message: MessageId(bobs.id) };
    assert!(matches!(w.call(owner, delete).unwrap(), R::Empty(_)));
    let events = w.events(members[0]);
    assert!(
        matches!(events.last(), Some(v1::Event { body: Some(Ev::MessageDeleted(d)), .. }) if d.message_id == bobs.id)
    );
}

#[test]
fn mentions_resolve_to_members_only() {
    let mut w = World::new(HubConfig {
        open_registration: true,
        setup_code: Some(SETUP.into()),
        ..HubConfig::default()
    });
    let owner = w.owner();
    let c = w.community(owner, "Family");
    let code = w.invite(owner, c.id);
    let (_, bob) = w.register("bob", Credential::Invite(code)).unwrap();
    w.register("stranger", Credential::None).unwrap();
    let m = message(w.say(owner, c.channels[0].id, "hi @Bob and @stranger", None).unwrap());
    assert_eq!(m.mentions, [bob.user.unwrap().id]);
}

#[test]
fn logout_revokes_the_token_and_closes_its_other_connections() {
    let mut w = World::default();
    let owner = w.owner();
    let second = w.connect();
    let hash = TokenHash(*blake("owner"));
    assert!(matches!(w.call(second, Request::Authenticate { token_hash: hash }).unwrap(), R::Ready(_)));
    assert!(matches!(w.call(owner, Request::Logout { everywhere: false }).unwrap(), R::Empty(_)));
    assert!(w.closes.contains(&(second, v1::CloseCode::TokenRevoked)));
    assert!(w.closes.contains(&(owner, v1::CloseCode::Normal)));
    let third = w.connect();
    assert_eq!(
        w.call(third, Request::Authenticate { token_hash: hash }).unwrap_err().0,
        ErrorCode::BadCredentials
    );
}

#[test]
fn requests_before_login_and_second_logins_are_refused() {
    let mut w = World::default();
    let s = w.connect();
    let err = w.call(s, Request::CreateCommunity { name: CommunityName::parse("x").unwrap() }).unwrap_err();
    assert_eq!(err.0, ErrorCode::NotAuthenticated);
    let owner = w.owner();
    let again = w.call(owner, Request::Authenticate { token_hash: TokenHash(*blake("owner")) });
    assert_eq!(again.unwrap_err().0, ErrorCode::AlreadyAuthenticated);
    assert!(w.writes.iter().all(|(_, wr)| !matches!(wr, Write::CreateCommunity { .. })));
}

#[test]
fn invites_expire_and_run_out() {
    let mut w = World::new(HubConfig {
        open_registration: true,
        setup_code: Some(SETUP.into()),
        ..HubConfig::default()
    });
    let owner = w.owner();
    let c = w.community(owner, "Family");
    let once = Request::CreateInvite {
        community: CommunityId(c.id),
        max_uses: Some(1),
        expires_in_ms: None,
        code: "once".into(),
    };
    w.call(owner, once).unwrap();
    let brief = Request::CreateInvite {
        community: CommunityId(c.id),
        max_uses: None,
        expires_in_ms: Some(10),
        code: "brief".into(),
    };
    w.call(owner, brief).unwrap();

    let (a, _) = w.register("aaa", Credential::None).unwrap();
    let (b, _) = w.register("bbb", Credential::None).unwrap();
    assert!(matches!(w.call(a, Request::JoinCommunity { code: "once".into() }).unwrap(), R::Community(_)));
    assert_eq!(
        w.call(b, Request::JoinCommunity { code: "once".into() }).unwrap_err().0,
        ErrorCode::InviteInvalid
    );
    w.now = w.now.plus_ms(60_000);
    assert_eq!(
        w.call(b, Request::JoinCommunity { code: "brief".into() }).unwrap_err().0,
        ErrorCode::InviteInvalid
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Send {
            who: usize,
            channel: usize,
            nonce: Option<u8>,
        },
        Edit {
            who: usize,
            pick: usize,
        },
        Delete {
            who: usize,
            pick: usize,
        },
        History {
            who: usize,
            channel: usize,
        },
        /// Commit up to some fraction of what is outstanding.
        Commit {
            fraction: u8,
        },
        Tick {
            ms: u16,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3usize, 0..2usize, proptest::option::of(0..4u8)).prop_map(|(who, channel, nonce)| Op::Send { who, channel, nonce }),
            1 => (0..3usize, any::<usize>()).prop_map(|(who, pick)| Op::Edit { who, pick }),
            1 => (0..3usize, any::<usize>()).prop_map(|(who, pick)| Op::Delete { who, pick }),
            1 => (0..3usize, 0..2usize).prop_map(|(who, channel)| Op::History { who, channel }),
            2 => (0..=4u8).prop_map(|fraction| Op::Commit { fraction }),
            1 => any::<u16>().prop_map(|ms| Op::Tick { ms }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever the interleaving of requests and commits: every request is
        /// answered exactly once, nothing reaches a session before the write it
        /// depends on is durable, each session's events are numbered without gaps
        /// and its messages arrive in id order, and ids never repeat.
        #[test]
        fn the_hub_keeps_its_promises(ops in proptest::collection::vec(op(), 1..120)) {
            let mut w = World::default();
            let (owner, c, members) = w.family(&["bob", "carol"]);
            let second = match w.call(owner, Request::CreateChannel {
                community: CommunityId(c.id),
                name: ChannelName::parse("second").unwrap(),
                topic: Topic::parse("").unwrap(),
                voice: false,
            }).unwrap() { R::Channel(ch) => ch.id, r => panic!("{r:?}") };
            let channels = [c.channels[0].id, second];
            let people = [owner, members[0], members[1]];
            for p in people { w.events(p); }
            w.inbox.clear();
            let base: Vec<u64> = people.iter().map(|p| w.last_seq.get(p).copied().unwrap_or(0)).collect();
            w.auto_commit = false;

            let mut asked: Vec<(SessionId, u64)> = Vec::new();
            let mut sent: Vec<(u64, u64)> = Vec::new(); // (message id, channel)
            for op in ops {
                match op {
                    Op::Send { who, channel, nonce } => {
                        let rid = w.send(people[who], Request::SendMessage {
                            channel: ChannelId(channels[channel]),
                            body: Body::parse("x").unwrap(),
                            nonce: nonce.map(|n| Nonce(format!("n{n}"))),
                            reply_to: None,
                            uploads: Vec::new(),
                        });
                        asked.push((people[who], rid));
                    }
                    Op::Edit { who, pick } | Op::Delete { who, pick } if !sent.is_empty() => {
                        let (id, channel) = sent[pick % sent.len()];
                        let request = if matches!(op, Op::Edit { .. }) {
                            Request::EditMessage { channel: ChannelId(channel), message: MessageId(id), body: Body::parse("y").unwrap() }
                        } else {
                            Request::DeleteMessage { channel: ChannelId(channel), message: MessageId(id) }
                        };
                        asked.push((people[who], w.send(people[who], request)));
                    }
                    Op::Edit { .. } | Op::Delete { .. } => {}
                    Op::History { who, channel } => {
                        let q = HistoryQuery { channel: ChannelId(channels[channel]), anchor: Anchor::Latest, limit: 10 };
                        asked.push((people[who], w.send(people[who], Request::History(q))));
                    }
                    Op::Commit { fraction } => {
                        let outstanding = w.issued - w.committed;
                        let ticket = w.committed + outstanding * u64::from(fraction) / 4;
                        if ticket > w.committed {
                            w.committed = ticket;
                            w.hub.handle(w.now, Input::Committed { ticket });
                            w.drain();
                        }
                    }
                    Op::Tick { ms } => w.now = w.now.plus_ms(u64::from(ms)),
                }
                // Anything delivered so far depends only on committed writes.
                for (ticket, write) in &w.writes {
                    if let Write::InsertMessage { message } = write {
                        let delivered = w.inbox.values().flatten().any(|k| match k {
                            Kind::Reply(r) => matches!(&r.result, Some(R::Message(m)) if m.id == message.id.0),
                            Kind::Event(e) => matches!(&e.body, Some(Ev::MessageCreated(m)) if m.id == message.id.0),
                            Kind::Error(_) => false,
                        });
                        prop_assert!(!delivered || *ticket <= w.committed, "message {} shown before commit", message.id);
                        if !sent.iter().any(|(id, _)| *id == message.id.0) {
                            sent.push((message.id.0, message.channel.0));
                        }
                    }
                }
            }
            w.commit();

            // Exactly one answer (reply, error or read) per request.
            for (session, rid) in &asked {
                let answers = w.inbox.get(session).into_iter().flatten().filter(|k| match k {
                    Kind::Reply(r) => r.request_id == *rid,
                    Kind::Error(e) => e.request_id == *rid,
                    Kind::Event(_) => false,
                }).count() + w.reads.iter().filter(|(s, r, _)| s == session && r == rid).count();
                prop_assert_eq!(answers, 1, "request {} answered {} times", rid, answers);
            }
            // Ids increase in write order, and a nonce is used once per author.
            let inserted: Vec<&NewMessageRef> = w.writes.iter().filter_map(|(_, wr)| match wr {
                Write::InsertMessage { message } => Some(message),
                _ => None,
            }).collect();
            prop_assert!(inserted.windows(2).all(|p| p[0].id < p[1].id));
            let mut nonces = std::collections::HashSet::new();
            for m in &inserted {
                if let Some(n) = &m.nonce {
                    prop_assert!(nonces.insert((m.author, n.clone())), "duplicate nonce");
                }
            }
            // Per session: seq continues 1, 2, 3… and new messages come in id order.
            for (p, base) in people.into_iter().zip(base) {
                let events = w.events(p);
                let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
                prop_assert_eq!(seqs, (base + 1..=base + events.len() as u64).collect::<Vec<_>>());
                let created: Vec<u64> = events.iter().filter_map(|e| match &e.body {
                    Some(Ev::MessageCreated(m)) => Some(m.id),
                    _ => None,
                }).collect();
                prop_assert!(created.windows(2).all(|p| p[0] < p[1]));
            }
        }
    }

    type NewMessageRef = kith_core::store::NewMessage;
}

/// The bug a newcomer hit first: their own edit, delete, nickname, topic,
/// presence or leave showed for everyone but themselves. The rule is now
/// one: an event reaches every session that may see the change, the one
/// whose request made it included, and the user's other devices too.
#[test]
fn every_change_reaches_the_session_that_made_it_and_the_users_other_devices() {
    use kith_core::request::Chosen;
    use kith_core::text::Nickname;
    let mut w = World::default();
    let (owner, c, s) = w.family(&["alice"]);
    let alice = s[0];
    let (phone, _) = w.login("alice");
    let general = c.channels[0].id;
    let me = UserId(w.id("alice"));
    let mine = message(w.say(alice, general, "helo", None).unwrap()).id;
    let both = |w: &mut World, what: &str, pick: &dyn Fn(&Ev) -> bool| {
        for (session, who) in [(alice, "the acting session"), (phone, "the other device")] {
            let events = w.events(session);
            assert!(events.iter().filter_map(|e| e.body.as_ref()).any(pick), "{who} sees {what}: {events:?}");
        }
        w.events(owner);
    };
    both(&mut w, "its own message", &|e| matches!(e, Ev::MessageCreated(m) if m.id == mine));

    let edit = Request::EditMessage {
        channel: ChannelId(general),
        message: MessageId(mine),
        body: Body::parse("hello").unwrap(),
    };
    w.call(alice, edit).unwrap();
    both(&mut w, "its edit", &|e| matches!(e, Ev::MessageUpdated(m) if m.body == "hello"));

    let nick = Request::UpdateMember {
        community: CommunityId(c.id),
        user: me,
        nickname: Some(Nickname::parse("Ali").unwrap()),
        add_roles: vec![],
        remove_roles: vec![],
    };
    w.call(alice, nick).unwrap();
    both(
        &mut w,
        "its nickname",
        &|e| matches!(e, Ev::MemberUpdated(u) if u.member.as_ref().is_some_and(|m| m.nickname == "Ali")),
    );

    let status = Request::SetPresence { status: Some(Chosen::Dnd), afk: None };
    w.call(alice, status).unwrap();
    both(
        &mut w,
        "its presence",
        &|e| matches!(e, Ev::PresenceUpdated(p) if p.status == v1::PresenceStatus::Dnd as i32),
    );

    let profile = Request::UpdateProfile {
        display_name: Some(DisplayName::parse("Alice A.").unwrap()),
        status_text: None,
    };
    w.call(alice, profile).unwrap();
    both(&mut w, "its profile", &|e| matches!(e, Ev::UserUpdated(u) if u.display_name == "Alice A."));

    w.call(alice, Request::DeleteMessage { channel: ChannelId(general), message: MessageId(mine) }).unwrap();
    both(&mut w, "its delete", &|e| matches!(e, Ev::MessageDeleted(d) if d.message_id == mine));

    // The owner's topic reaches the owner's own session as well.
    let (laptop, _) = w.login("owner");
    let topic = Request::UpdateChannel {
        channel: ChannelId(general),
        name: None,
        topic: Some(Topic::parse("dinner plans").unwrap()),
    };
    w.call(owner, topic).unwrap();
    for session in [owner, laptop] {
        let events = w.events(session);
        assert!(
            events
                .iter()
                .any(|e| matches!(&e.body, Some(Ev::ChannelUpdated(ch)) if ch.topic == "dinner plans")),
            "the owner sees its topic: {events:?}"
        );
    }

    w.call(alice, Request::LeaveCommunity { community: CommunityId(c.id) }).unwrap();
    both(&mut w, "that it left", &|e| matches!(e, Ev::CommunityLeft(l) if l.community_id == c.id));
}

#[test]
fn a_retried_send_of_a_deleted_message_says_it_was_sent_and_deleted() {
    let mut w = World::default();
    let (owner, c, _) = w.family(&[]);
    let general = c.channels[0].id;
    let sent = message(w.say(owner, general, "oops", Some("n-1")).unwrap());
    w.call(owner, Request::DeleteMessage { channel: ChannelId(general), message: MessageId(sent.id) })
        .unwrap();
    let again = message(w.say(owner, general, "oops", Some("n-1")).unwrap());
    assert_eq!((again.id, again.deleted, again.body.as_str()), (sent.id, true, ""));
    assert!(w.reads.is_empty(), "nothing to read: the hub knows it is gone");
}
