//! Messages older than the hub holds (decision 6): a request that names
//! one waits for the store, then runs as if it had always been there.

mod world;
use kith_core::store::{Load, Loaded, StoredMessageMeta};
use world::*;

/// A family whose #general holds more than the hub keeps (four here), and
/// the ids of the owner's ten messages, oldest first.
fn busy_family() -> (World, SessionId, SessionId, u64, Vec<u64>) {
    let mut w =
        World::new(HubConfig { setup_code: Some(SETUP.into()), recent_messages: 4, ..HubConfig::default() });
    let (owner, c, members) = w.family(&["bob"]);
    let general = c.channels[0].id;
    let ids = (0..10)
        .map(|n| message(w.say(owner, general, &format!("message {n}"), Some(&format!("n{n}"))).unwrap()).id)
        .collect();
    (w, owner, members[0], general, ids)
}

trait SayLater {
    fn say_later(&mut self, s: SessionId, channel: u64, text: &str, nonce: &str);
}

impl SayLater for World {
    /// Sends without waiting for an answer (a retry's comes from the store).
    fn say_later(&mut self, s: SessionId, channel: u64, text: &str, nonce: &str) {
        self.send(
            s,
            Request::SendMessage {
                channel: ChannelId(channel),
                body: Body::parse(text).unwrap(),
                nonce: Nonce::parse(nonce).unwrap(),
                reply_to: None,
                uploads: Vec::new(),
            },
        );
    }
}

fn stored(id: u64, channel: u64, author: u64) -> StoredMessageMeta {
    StoredMessageMeta {
        id: MessageId(id),
        channel: ChannelId(channel),
        author: UserId(author),
        reply_to: None,
        nonce: None,
        deleted: false,
        mentions: Vec::new(),
        mention_everyone: false,
        attachments: Vec::new(),
    }
}

fn edit(channel: u64, id: u64, text: &str) -> Request {
    Request::EditMessage {
        channel: ChannelId(channel),
        message: MessageId(id),
        body: Body::parse(text).unwrap(),
    }
}

#[test]
fn editing_an_old_message_waits_for_the_store_then_runs_as_usual() {
    let (mut w, owner, bob, general, ids) = busy_family();
    let owner_id = w.id("owner");
    let rid = w.send(owner, edit(general, ids[0], "fixed"));
    assert!(w.take_answer(owner, rid).is_none(), "no answer before the store's");
    let (load, asked) = w.loads.pop().expect("the hub asks the store");
    assert_eq!(asked, Load::Message { channel: ChannelId(general), id: MessageId(ids[0]) });
    w.input(Input::Loaded {
        id: load,
        loaded: Some(Loaded::Message(Some(stored(ids[0], general, owner_id)))),
    });
    let edited = message(w.take_answer(owner, rid).expect("answered").unwrap());
    assert_eq!((edited.id, edited.body.as_str()), (ids[0], "fixed"));
    assert!(w.writes.iter().any(|(_, wr)| matches!(wr, Write::EditMessage { id, .. } if id.0 == ids[0])));
    let seen = w.events(bob);
    assert!(seen.iter().any(|e| matches!(&e.body, Some(Ev::MessageUpdated(m)) if m.id == ids[0])));

    // Bob may not edit it, whatever the store says.
    let rid = w.send(bob, edit(general, ids[0], "mine now"));
    let (load, _) = w.loads.pop().unwrap();
    w.input(Input::Loaded {
        id: load,
        loaded: Some(Loaded::Message(Some(stored(ids[0], general, owner_id)))),
    });
    assert_eq!(w.take_answer(bob, rid).unwrap().unwrap_err().0, ErrorCode::Forbidden);

    // A recent message needs no load.
    let rid = w.send(owner, edit(general, ids[9], "recent"));
    assert!(w.loads.is_empty());
    assert!(w.take_answer(owner, rid).unwrap().is_ok());
}

#[test]
fn an_old_message_the_store_does_not_have_is_not_found_and_a_busy_store_says_retry() {
    let (mut w, owner, _bob, general, ids) = busy_family();
    let rid = w.send(owner, edit(general, ids[0] - 1, "nothing there"));
    let (load, _) = w.loads.pop().unwrap();
    w.input(Input::Loaded { id: load, loaded: Some(Loaded::Message(None)) });
    assert_eq!(w.take_answer(owner, rid).unwrap().unwrap_err().0, ErrorCode::NotFound);

    let rid =
        w.send(owner, Request::DeleteMessage { channel: ChannelId(general), message: MessageId(ids[1]) });
    let (load, _) = w.loads.pop().unwrap();
    w.input(Input::Loaded { id: load, loaded: None });
    let (code, reason) = w.take_answer(owner, rid).unwrap().unwrap_err();
    assert_eq!(code, ErrorCode::RateLimited, "{reason}");
    assert!(!w.writes.iter().any(|(_, wr)| matches!(wr, Write::DeleteMessage { .. })), "nothing deleted");
}

#[test]
fn a_retry_is_recognised_among_the_recent_messages_only() {
    let (mut w, owner, _bob, general, ids) = busy_family();
    w.say_later(owner, general, "message 9", "n9");
    let read = w.reads.pop().map(|(_, _, read)| read);
    assert_eq!(read, Some(Read::Message(MessageId(ids[9]))), "a recent nonce answers with the original");
    let new = message(w.say(owner, general, "message 0", Some("n0")).unwrap());
    assert!(new.id > ids[9], "a nonce of a message the hub let go is a new message");
}
