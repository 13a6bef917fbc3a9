//! Specs for direct conversations and groups in the hub: no network, no disk,
//! no clock.

mod world;

use kith_core::UserId;
use kith_core::text::{GroupName, Reason};
use world::*;

fn channel(r: R) -> v1::Channel {
    match r {
        R::Channel(c) => c,
        other => panic!("expected a channel, got {other:?}"),
    }
}

fn created(events: &[v1::Event]) -> Vec<v1::Channel> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Some(Ev::ChannelCreated(c)) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

impl World {
    fn open(&mut self, s: SessionId, users: &[u64], name: &str) -> Result<R, (ErrorCode, String)> {
        let users = users.iter().map(|u| UserId(*u)).collect();
        self.call(s, Request::OpenDirect { users, name: GroupName::parse(name).unwrap() })
    }

    fn update_group(
        &mut self,
        s: SessionId,
        channel: u64,
        add: &[u64],
        remove: &[u64],
    ) -> Result<R, (ErrorCode, String)> {
        self.call(
            s,
            Request::UpdateGroup {
                channel: ChannelId(channel),
                name: None,
                add: add.iter().map(|u| UserId(*u)).collect(),
                remove: remove.iter().map(|u| UserId(*u)).collect(),
            },
        )
    }
}

#[test]
fn two_members_talk_privately_with_every_message_feature() {
    let mut w = World::default();
    let (owner, _, sessions) = w.family(&["bob", "carol"]);
    let (bob, carol) = (sessions[0], sessions[1]);
    let dm = channel(w.open(bob, &[w.id("owner")], "").unwrap());
    assert_eq!(dm.kind(), v1::ChannelKind::Direct);
    assert_eq!(dm.community_id, 0);
    let names: Vec<&str> = dm.recipients.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["bob", "owner"]);
    assert_eq!(created(&w.events(owner)).len(), 1, "the other side sees it at once");
    assert_eq!(created(&w.events(bob)).len(), 1, "and so does the opener's own session");
    assert!(w.writes.iter().any(|(_, wr)| matches!(wr, Write::PutDirect { direct } if direct.id.0 == dm.id)));

    // Opening it again (from either side) is the same conversation.
    assert_eq!(channel(w.open(owner, &[w.id("bob")], "").unwrap()).id, dm.id);
    assert!(created(&w.events(bob)).is_empty());

    // Messages: replies, nonces, edits, history; only the two see them.
    let hi = message(w.say(bob, dm.id, "hi @owner", Some("n1")).unwrap());
    assert_eq!(hi.mentions, [w.id("owner")]);
    let resend = Request::SendMessage {
        channel: ChannelId(dm.id),
        body: Body::parse("hi @owner").unwrap(),
        nonce: Nonce::parse("n1").unwrap(),
        reply_to: None,
        uploads: Vec::new(),
    };
    w.send(bob, resend);
    assert!(
        matches!(w.reads.last(), Some((s, _, Read::Message(m))) if *s == bob && m.0 == hi.id),
        "a resend is answered with the original"
    );
    let got = w.events(owner);
    assert!(matches!(&got[..], [v1::Event { body: Some(Ev::MessageCreated(m)), .. }] if m.id == hi.id));
    let edit = Request::EditMessage {
        channel: ChannelId(dm.id),
        message: MessageId(hi.id),
        body: Body::parse("hello").unwrap(),
    };
    w.call(bob, edit).unwrap();
    let reply = Request::SendMessage {
        channel: ChannelId(dm.id),
        body: Body::parse("hey").unwrap(),
        nonce: None,
        reply_to: Some(MessageId(hi.id)),
        uploads: Vec::new(),
    };
    assert_eq!(message(w.call(owner, reply).unwrap()).reply_to, hi.id);
    w.send(
        owner,
        Request::History(HistoryQuery { channel: ChannelId(dm.id), anchor: Anchor::Latest, limit: 50 }),
    );
    assert!(
        w.reads.iter().any(|(s, _, r)| *s == owner && matches!(r, Read::History(q) if q.channel.0 == dm.id))
    );

    // Carol: the conversation does not exist for her.
    assert_eq!(w.say(carol, dm.id, "let me in", None).unwrap_err().0, ErrorCode::NotFound);
    let read =
        Request::History(HistoryQuery { channel: ChannelId(dm.id), anchor: Anchor::Latest, limit: 50 });
    assert_eq!(w.call(carol, read).unwrap_err().0, ErrorCode::NotFound);
    assert!(w.events(carol).is_empty(), "and she hears nothing of it");
    // Nobody deletes the other's messages, not even a server owner.
    let del = Request::DeleteMessage { channel: ChannelId(dm.id), message: MessageId(hi.id) };
    assert_eq!(w.call(owner, del).unwrap_err().0, ErrorCode::Forbidden);

    // A fresh session lists it with its unread count.
    let (_, ready) = w.login("owner");
    assert_eq!(ready.direct_channels.len(), 1);
    assert_eq!(ready.direct_channels[0].id, dm.id);
    assert_eq!(ready.direct_channels[0].unread_count, 1);
}

#[test]
fn a_direct_conversation_needs_a_shared_community() {
    let mut w = World::default();
    let (owner, family, sessions) = w.family(&["bob"]);
    let bob = sessions[0];
    // Someone the caller shares nothing with answers like nobody.
    let work = w.community(owner, "Work");
    let code = w.invite(owner, work.id);
    let (stranger, _) = w.register("stranger", Credential::Invite(code)).unwrap();
    assert_eq!(w.open(bob, &[w.id("stranger")], "").unwrap_err().0, ErrorCode::NotFound);
    assert_eq!(w.open(stranger, &[w.id("bob")], "").unwrap_err().0, ErrorCode::NotFound);
    assert_eq!(w.open(bob, &[987654321], "").unwrap_err().0, ErrorCode::NotFound);

    // Once they no longer share one, the history stays readable, but
    // nothing more can be sent.
    let dm = channel(w.open(bob, &[w.id("owner")], "").unwrap());
    w.say(bob, dm.id, "before", None).unwrap();
    let kick = Request::Kick {
        community: CommunityId(family.id),
        user: UserId(w.id("bob")),
        reason: Reason::default(),
    };
    w.call(owner, kick).unwrap();
    let (code, reason) = w.say(bob, dm.id, "after", None).unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden, "{reason}");
    let (_, ready) = w.login("bob");
    assert_eq!(ready.direct_channels[0].permissions, kith_core::Permissions::VIEW_CHANNEL.bits());
}

#[test]
fn groups_of_up_to_ten_with_an_owner_who_may_remove_others() {
    let names = ["bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "ken"];
    let mut w = World::default();
    let (owner, _, sessions) = w.family(&names);
    let id = |w: &World, n: &str| w.id(n);
    let group = channel(w.open(owner, &[id(&w, "bob"), id(&w, "carol")], "weekend plans").unwrap());
    assert_eq!(group.kind(), v1::ChannelKind::Group);
    assert_eq!(group.name, "weekend plans");
    assert_eq!(group.owner_id, id(&w, "owner"));
    assert_eq!(created(&w.events(sessions[0])).len(), 1);
    assert_eq!(created(&w.events(sessions[1])).len(), 1);
    assert!(created(&w.events(sessions[2])).is_empty(), "dave is not in it");

    // Anyone in it may add people they know, up to ten in all.
    let seven: Vec<u64> = names[2..9].iter().map(|n| id(&w, n)).collect();
    let grown = channel(w.update_group(sessions[0], group.id, &seven, &[]).unwrap());
    assert_eq!(grown.recipients.len(), 10);
    assert_eq!(created(&w.events(sessions[2])).len(), 1, "dave now sees it");
    let (code, _) = w.update_group(sessions[0], group.id, &[id(&w, "ken")], &[]).unwrap_err();
    assert_eq!(code, ErrorCode::Invalid, "an eleventh is refused");

    // Only the owner removes others; anyone may leave.
    let carol = id(&w, "carol");
    assert_eq!(w.update_group(sessions[0], group.id, &[], &[carol]).unwrap_err().0, ErrorCode::Forbidden);
    w.events(sessions[1]);
    w.update_group(owner, group.id, &[], &[carol]).unwrap();
    let gone = w.events(sessions[1]);
    assert!(gone.iter().any(|e| matches!(&e.body, Some(Ev::ChannelDeleted(d)) if d.channel_id == group.id)));
    assert_eq!(w.say(sessions[1], group.id, "still here?", None).unwrap_err().0, ErrorCode::NotFound);

    // The owner leaves: the longest-standing participant owns it now.
    assert!(matches!(w.update_group(owner, group.id, &[], &[id(&w, "owner")]).unwrap(), R::Empty(_)));
    let updated = w.events(sessions[0]);
    let last = updated.iter().rev().find_map(|e| match &e.body {
        Some(Ev::ChannelUpdated(c)) if c.id == group.id => Some(c.clone()),
        _ => None,
    });
    assert_eq!(last.expect("bob hears of it").owner_id, id(&w, "bob"));
    message(w.say(sessions[0], group.id, "still us", None).unwrap());
    // A direct conversation is not a group.
    let dm = channel(w.open(owner, &[id(&w, "bob")], "").unwrap());
    assert_eq!(w.update_group(owner, dm.id, &[carol], &[]).unwrap_err().0, ErrorCode::Forbidden);
}
