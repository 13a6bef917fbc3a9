//! End-to-end specs: a real server on 127.0.0.1:0 and real QUIC clients.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kith_client::proto::{
    self as v1, ErrorCode, client_message::Request, event::Body as Ev, reply::Result as R,
};
use kith_client::{Client, Error, Trust};

#[tokio::test]
async fn two_users_in_one_channel_receive_each_others_messages() {
    let server = TestServer::start().await;
    let f = family(&server, &["bob"]).await;
    let bob = &f.members[0];

    let sent = f.owner.send_message(f.general, "hi bob", "").await.unwrap();
    let got = next_message(bob).await;
    assert_eq!((got.id, got.body.as_str(), got.author_name.as_str()), (sent.id, "hi bob", "owner"));

    let reply = bob.send_message(f.general, "hi owner", "").await.unwrap();
    // A sender's own session gets its message as an event too, in order.
    assert_eq!(next_message(&f.owner).await.id, sent.id);
    assert_eq!(next_message(bob).await.id, reply.id);
    let got = next_message(&f.owner).await;
    assert_eq!(got.id, reply.id);
    assert!(reply.id > sent.id);
}

#[tokio::test]
async fn interleaved_senders_are_seen_in_one_total_order_by_everyone() {
    const PER_SENDER: usize = 200;
    let server = TestServer::start().await;
    let f = family(&server, &["s1", "s2", "s3", "watcher1", "watcher2"]).await;
    let members: Vec<Arc<Client>> = f.members.into_iter().map(Arc::new).collect();
    let (senders, watchers) = members.split_at(3);

    let mut tasks = Vec::new();
    for (i, s) in senders.iter().enumerate() {
        let s = s.clone();
        let general = f.general;
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..PER_SENDER {
                acked.push(
                    s.send_message(general, &format!("{i}:{n}"), &format!("{i}-{n}")).await.unwrap().id,
                );
            }
            acked
        }));
    }
    let mut own: Vec<Vec<u64>> = Vec::new();
    for t in tasks {
        own.push(t.await.unwrap());
    }
    let total = 3 * PER_SENDER;
    let general = f.general;

    // Watchers see everything, in one order, which is id order.
    let mut orders = Vec::new();
    for w in watchers.iter().chain([&Arc::new(f.owner)]) {
        let mut seen = Vec::new();
        while seen.len() < total {
            seen.push(next_message(w).await.id);
        }
        assert!(seen.windows(2).all(|p| p[0] < p[1]), "events arrive in id order");
        orders.push(seen);
    }
    assert!(orders.windows(2).all(|p| p[0] == p[1]), "every watcher sees the same order");

    // Each sender sees every message as an event, its own included, in that order.
    for (s, acked) in senders.iter().zip(&own) {
        let mut seen = Vec::new();
        while seen.len() < total {
            seen.push(next_message(s).await.id);
        }
        assert_eq!(seen, orders[0]);
        let mine: Vec<u64> = seen.iter().filter(|id| acked.contains(id)).copied().collect();
        assert_eq!(&mine, acked, "its own messages arrive as events in the order they were acked");
    }

    // And history agrees.
    let mut history = Vec::new();
    let mut before = None;
    loop {
        let anchor = before.map(v1::history_request::Anchor::Before);
        let page = watchers[0].history(general, anchor, 100).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = Some(page[0].id);
        history.splice(0..0, page.into_iter().map(|m| m.id));
    }
    assert_eq!(history, orders[0]);
}

#[tokio::test]
async fn the_same_nonce_twice_makes_one_message() {
    let server = TestServer::start().await;
    let f = family(&server, &[]).await;
    let first = f.owner.send_message(f.general, "once", "nonce-1").await.unwrap();
    let again = f.owner.send_message(f.general, "twice?", "nonce-1").await.unwrap();
    assert_eq!(again, first, "the original comes back unchanged (Q18)");
    let history = f.owner.history(f.general, None, 50).await.unwrap();
    assert_eq!(history.len(), 1);
}

#[tokio::test]
async fn the_same_nonce_on_two_connections_at_once_makes_one_message() {
    let server = TestServer::start().await;
    let f = family(&server, &[]).await;
    let token = {
        let c = server.client().await;
        c.login("owner", PASSWORD).await.unwrap().token
    };
    for round in 0..20 {
        let a = server.client().await;
        let b = server.client().await;
        a.authenticate(&token).await.unwrap();
        b.authenticate(&token).await.unwrap();
        let nonce = format!("race-{round}");
        let (ra, rb) = tokio::join!(
            a.send_message(f.general, "from a", &nonce),
            b.send_message(f.general, "from b", &nonce)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.id, rb.id, "Q17: both get the same id");
        assert_eq!(ra.body, rb.body);
    }
    let history = f.owner.history(f.general, None, 100).await.unwrap();
    assert_eq!(history.len(), 20, "exactly one message per nonce");
}

#[tokio::test]
async fn server_assigns_the_time() {
    let server = TestServer::start().await;
    let f = family(&server, &[]).await;
    let before = now_ms();
    let m = f.owner.send_message(f.general, "what time is it", "").await.unwrap();
    let after = now_ms();
    assert!((before..=after).contains(&m.created_at_ms), "Q19: {before} <= {} <= {after}", m.created_at_ms);
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test]
async fn history_pages_before_after_and_around() {
    use v1::history_request::Anchor;
    let server = TestServer::start().await;
    let f = family(&server, &[]).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(f.owner.send_message(f.general, &format!("m{n}"), "").await.unwrap().id);
    }
    let page = |anchor, limit| f.owner.history(f.general, anchor, limit);
    let latest: Vec<u64> = page(None, 10).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(latest, ids[20..]);
    let before: Vec<u64> =
        page(Some(Anchor::Before(ids[10])), 5).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(before, ids[5..10]);
    let after: Vec<u64> = page(Some(Anchor::After(ids[10])), 5).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(after, ids[11..16]);
    let around: Vec<u64> =
        page(Some(Anchor::Around(ids[15])), 6).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(around, ids[13..19]);
    assert_eq!(page(None, 1000).await.unwrap().len(), 30, "limit clamps to 100, not an error");
}

#[tokio::test]
async fn edits_deletes_and_replies_reach_other_members() {
    let server = TestServer::start().await;
    let f = family(&server, &["bob"]).await;
    let bob = &f.members[0];
    let m = f.owner.send_message(f.general, "typo", "").await.unwrap();
    next_message(bob).await;

    let edit = v1::EditMessageRequest { channel_id: f.general, message_id: m.id, body: "fixed".into() };
    f.owner.request(Request::EditMessage(edit)).await.unwrap();
    let reply = v1::SendMessageRequest {
        channel_id: f.general,
        body: "nice".into(),
        nonce: String::new(),
        reply_to: m.id,
        uploads: Vec::new(),
    };
    let R::Message(r) = bob.request(Request::SendMessage(reply)).await.unwrap() else { panic!() };
    assert_eq!(r.reply_to, m.id);
    let delete = v1::DeleteMessageRequest { channel_id: f.general, message_id: m.id };
    f.owner.request(Request::DeleteMessage(delete)).await.unwrap();

    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(5), bob.next_event()).await.unwrap().unwrap();
        match e.body {
            Some(Ev::MessageUpdated(u)) => kinds.push(format!("edit {}", u.body)),
            Some(Ev::MessageDeleted(d)) => kinds.push(format!("delete {}", d.message_id == m.id)),
            _ => {}
        }
    }
    assert_eq!(kinds, ["edit fixed", "delete true"]);
    let history = bob.history(f.general, None, 50).await.unwrap();
    assert_eq!(history.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["nice"]);
}

#[tokio::test]
async fn communities_channels_and_invites_work_end_to_end() {
    let server = TestServer::start().await;
    let f = family(&server, &["bob"]).await;
    let bob = &f.members[0];

    // Only the owner manages channels.
    let create = |name: &str| {
        Request::CreateChannel(v1::CreateChannelRequest {
            community_id: f.community.id,
            name: name.into(),
            topic: "pics".into(),
            ..Default::default()
        })
    };
    assert_eq!(code_of(bob.request(create("photos")).await), ErrorCode::Forbidden);
    let R::Channel(photos) = f.owner.request(create("photos")).await.unwrap() else { panic!() };
    let event = tokio::time::timeout(Duration::from_secs(5), bob.next_event()).await.unwrap().unwrap();
    assert!(matches!(event.body, Some(Ev::ChannelCreated(c)) if c.id == photos.id));

    let rename =
        v1::UpdateChannelRequest { channel_id: photos.id, name: Some("pictures".into()), topic: None };
    let R::Channel(renamed) = f.owner.request(Request::UpdateChannel(rename)).await.unwrap() else {
        panic!()
    };
    assert_eq!((renamed.name.as_str(), renamed.topic.as_str()), ("pictures", "pics"));

    // Leaving hides the community; the owner cannot leave.
    let leave = |id| Request::LeaveCommunity(v1::LeaveCommunityRequest { community_id: id });
    assert_eq!(code_of(f.owner.request(leave(f.community.id)).await), ErrorCode::Forbidden);
    bob.request(leave(f.community.id)).await.unwrap();
    assert_eq!(code_of(bob.send_message(f.general, "still here?", "").await), ErrorCode::NotFound);

    // A limited invite runs out.
    let req = v1::CreateInviteRequest { community_id: f.community.id, max_uses: 1, expires_in_ms: 0 };
    let R::Invite(once) = f.owner.request(Request::CreateInvite(req)).await.unwrap() else { panic!() };
    let join = |code: &str| Request::JoinCommunity(v1::JoinCommunityRequest { code: code.into() });
    bob.request(join(&once.code)).await.unwrap();
    let (carol, _) = server.member("carol", &f.invite).await;
    assert_eq!(code_of(carol.request(join(&once.code)).await), ErrorCode::InviteInvalid);
}

#[tokio::test]
async fn logout_closes_every_connection_of_that_token_within_a_second() {
    let server = TestServer::start().await;
    let (_owner, ready) = server.owner("owner").await;
    let other = server.client().await;
    other.authenticate(&ready.token).await.unwrap();
    let me = server.client().await;
    me.authenticate(&ready.token).await.unwrap();

    me.request(Request::Logout(v1::LogoutRequest { everywhere: false })).await.unwrap();
    let reason =
        tokio::time::timeout(Duration::from_secs(1), other.closed()).await.expect("closed within 1 s");
    assert!(reason.contains("TOKEN_REVOKED"), "{reason}");
    let again = server.client().await;
    assert_eq!(code_of(again.authenticate(&ready.token).await), ErrorCode::BadCredentials);
}

#[tokio::test]
async fn a_client_pinned_to_one_identity_refuses_another_on_the_same_address() {
    let first = TestServer::start().await;
    let addr = first.addr.clone();
    let pinned = first.fingerprint.clone();
    first.server.shutdown().await.unwrap();

    let impostor = TestServer::start_with(|c| c.listen = addr.parse().unwrap()).await;
    assert_ne!(impostor.fingerprint, pinned);
    let err = Client::connect(&addr, Trust::Pin(pinned.clone())).await.unwrap_err();
    match &err {
        Error::IdentityChanged { pinned: p, presented, .. } => {
            assert_eq!(p, &pinned);
            assert_eq!(presented, &impostor.fingerprint);
        }
        other => panic!("expected IdentityChanged, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains(&pinned) && text.contains(&impostor.fingerprint), "the error shows both: {text}");
}

#[tokio::test]
async fn the_identity_and_everything_acknowledged_survive_a_restart() {
    let server = TestServer::start().await;
    let f = family(&server, &["bob"]).await;
    let m = f.owner.send_message(f.general, "remember me", "n").await.unwrap();
    let (addr, fp) = (server.addr.clone(), server.fingerprint.clone());
    let TestServer { server: s, dir, .. } = server;
    s.shutdown().await.unwrap();

    let restarted =
        start_retrying(kith_server::Config::new(addr.parse().unwrap(), dir.path().join("data"))).await;
    assert_eq!(restarted.fingerprint(), fp);
    assert!(restarted.setup_code().is_none(), "the owner persists");
    let (c, _) = Client::connect(&addr, Trust::Pin(fp)).await.unwrap();
    let ready = c.login("bob", PASSWORD).await.unwrap();
    assert_eq!(ready.communities[0].members.len(), 2);
    let history = c.history(f.general, None, 10).await.unwrap();
    assert_eq!(history, vec![m.clone()]);
    // The nonce still deduplicates after the restart.
    let owner = Client::connect(&addr, Trust::Pin(restarted.fingerprint().into())).await.unwrap().0;
    owner.login("owner", PASSWORD).await.unwrap();
    assert_eq!(owner.send_message(f.general, "again", "n").await.unwrap(), m);
    let ids: HashSet<u64> = owner.history(f.general, None, 10).await.unwrap().iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 1);
}

/// A server holds only each channel's newest `recent_messages`; older ones
/// are read from the store when a request names one, before and after a
/// restart, and nobody can tell the difference.
#[tokio::test]
async fn messages_older_than_the_held_window_can_still_be_edited_deleted_and_replied_to() {
    let server = TestServer::start_with(|c| c.limits.recent_messages = 4).await;
    let f = family(&server, &["bob"]).await;
    let bob = &f.members[0];
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(f.owner.send_message(f.general, &format!("m{n}"), &format!("n{n}")).await.unwrap().id);
    }
    let edit = |id, body: &str| {
        Request::EditMessage(v1::EditMessageRequest {
            channel_id: f.general,
            message_id: id,
            body: body.into(),
        })
    };
    let delete =
        |id| Request::DeleteMessage(v1::DeleteMessageRequest { channel_id: f.general, message_id: id });
    let reply_to = |id| {
        Request::SendMessage(v1::SendMessageRequest {
            channel_id: f.general,
            body: "re".into(),
            nonce: String::new(),
            reply_to: id,
            uploads: Vec::new(),
        })
    };

    let R::Message(edited) = f.owner.request(edit(ids[0], "m0 fixed")).await.unwrap() else { panic!() };
    assert_eq!((edited.id, edited.body.as_str()), (ids[0], "m0 fixed"));
    assert!(edited.edited_at_ms > 0);
    assert_eq!(code_of(bob.request(edit(ids[1], "mine now")).await), ErrorCode::Forbidden);
    f.owner.request(delete(ids[1])).await.unwrap();
    assert_eq!(code_of(f.owner.request(delete(ids[1])).await), ErrorCode::NotFound, "deleted once");
    let R::Message(reply) = bob.request(reply_to(ids[2])).await.unwrap() else { panic!() };
    assert_eq!(reply.reply_to, ids[2]);

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(5), bob.next_event()).await.unwrap().unwrap();
        match e.body {
            Some(Ev::MessageUpdated(u)) => seen.push(format!("edit {} {}", u.id == ids[0], u.body)),
            Some(Ev::MessageDeleted(d)) => seen.push(format!("delete {}", d.message_id == ids[1])),
            _ => {}
        }
    }
    assert_eq!(seen, ["edit true m0 fixed", "delete true"]);
    // A retry of a message that left the window is not recognised (the
    // window is what a nonce is checked against), and makes a new message.
    assert_ne!(f.owner.send_message(f.general, "m0", "n0").await.unwrap().id, ids[0]);

    let (addr, fp) = (server.addr.clone(), server.fingerprint.clone());
    let TestServer { server: s, dir, .. } = server;
    s.shutdown().await.unwrap();
    let mut config = kith_server::Config::new(addr.parse().unwrap(), dir.path().join("data"));
    config.limits = kith_server::Limits::unlimited();
    config.limits.recent_messages = 4;
    let _restarted = start_retrying(config).await;
    let owner = Client::connect(&addr, Trust::Pin(fp)).await.unwrap().0;
    owner.login("owner", PASSWORD).await.unwrap();

    let R::Message(again) = owner.request(edit(ids[3], "m3 fixed")).await.unwrap() else { panic!() };
    assert_eq!(again.body, "m3 fixed");
    let bodies: Vec<String> =
        owner.history(f.general, None, 100).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(
        bodies,
        ["m0 fixed", "m2", "m3 fixed", "m4", "m5", "m6", "m7", "m8", "m9", "re", "m0"],
        "history in order, with the edits and without the deleted message"
    );
}

/// The client library, for programs built on it: submit many requests now,
/// await the answers later, and they are carried out in submission order.
#[tokio::test]
async fn pipelined_sends_arrive_in_the_order_they_were_submitted() {
    let server = TestServer::start().await;
    let f = family(&server, &["bob"]).await;
    let bob = &f.members[0];
    let mut answers = Vec::new();
    for n in 0..200 {
        let send = v1::SendMessageRequest {
            channel_id: f.general,
            body: format!("line {n}"),
            nonce: format!("p{n}"),
            reply_to: 0,
            uploads: Vec::new(),
        };
        answers.push(f.owner.submit(Request::SendMessage(send)).await.unwrap());
    }
    let mut ids = Vec::new();
    for answer in answers {
        match answer.answer().await.unwrap() {
            R::Message(m) => ids.push(m.id),
            other => panic!("{other:?}"),
        }
    }
    assert!(ids.windows(2).all(|p| p[0] < p[1]), "ids follow submission order");
    let mut seen = Vec::new();
    while seen.len() < 200 {
        seen.push(next_message(bob).await.body);
    }
    assert_eq!(seen, (0..200).map(|n| format!("line {n}")).collect::<Vec<_>>());
    // What is already queued can be taken without waiting.
    let mut own = 0;
    for _ in 0..250 {
        let drained = f.owner.drain_events().await;
        own += drained.iter().filter(|e| matches!(e.body, Some(Ev::MessageCreated(_)))).count();
        if own >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(own, 200, "the sender's own 200 messages, as events");
    assert!(f.owner.drain_events().await.is_empty());
}
