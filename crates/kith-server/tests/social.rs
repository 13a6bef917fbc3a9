//! Presence, typing, read state and conversations against a real server
//! with real clients.

mod common;

use std::time::Duration;

use common::*;
use kith_client::proto::{self as v1, client_message::Request, event::Body as Ev, reply::Result as R};

/// The next event `pick` accepts, waiting at most five seconds.
async fn next<T>(c: &kith_client::Client, mut pick: impl FnMut(Ev) -> Option<T>) -> T {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), c.next_event())
            .await
            .expect("an event within 5 s")
            .expect("connection open");
        if let Some(t) = event.body.and_then(&mut pick) {
            return t;
        }
    }
}

/// Waits for `user`'s presence to be reported as `status`.
async fn presence(c: &kith_client::Client, user: u64, status: v1::PresenceStatus) {
    next(c, |e| match e {
        Ev::PresenceUpdated(p) if p.user_id == user && p.status() == status => Some(()),
        _ => None,
    })
    .await
}

async fn set_status(c: &kith_client::Client, status: v1::PresenceStatus) {
    let req = v1::SetPresenceRequest { status: Some(status as i32), afk: None };
    c.request(Request::SetPresence(req)).await.unwrap();
}

#[tokio::test]
async fn presence_and_typing_reach_the_others_and_invisible_looks_offline() {
    let server = TestServer::start().await;
    let f = family(&server, &["bob"]).await;
    let bob_id = {
        let (_, ready) = server.client().await.login("bob", PASSWORD).await.map(|r| ((), r)).unwrap();
        ready.user.unwrap().id
    };
    // That second login came and went; bob is online throughout.
    let bob = &f.members[0];

    set_status(bob, v1::PresenceStatus::Dnd).await;
    presence(&f.owner, bob_id, v1::PresenceStatus::Dnd).await;

    bob.request(Request::Typing(v1::TypingRequest { channel_id: f.general })).await.unwrap();
    let typing = next(&f.owner, |e| match e {
        Ev::TypingStarted(t) => Some(t),
        _ => None,
    })
    .await;
    assert_eq!((typing.channel_id, typing.user_id), (f.general, bob_id));

    set_status(bob, v1::PresenceStatus::Invisible).await;
    presence(&f.owner, bob_id, v1::PresenceStatus::Offline).await;
    let watcher = server.client().await;
    let ready = watcher.login("owner", PASSWORD).await.unwrap();
    assert!(ready.presences.iter().all(|p| p.user_id != bob_id), "invisible is left out like offline");

    set_status(bob, v1::PresenceStatus::Online).await;
    presence(&f.owner, bob_id, v1::PresenceStatus::Online).await;
    bob.finish().await;
    presence(&f.owner, bob_id, v1::PresenceStatus::Offline).await;
}

#[tokio::test]
async fn a_direct_conversation_with_unread_state_synced_across_sessions() {
    let server = TestServer::start().await;
    let f = family(&server, &["bob"]).await;
    let bob = &f.members[0];
    let owner_id = f.community.owner_id;
    let dm = match bob
        .request(Request::OpenDirect(v1::OpenDirectRequest { user_ids: vec![owner_id], name: String::new() }))
        .await
        .unwrap()
    {
        R::Channel(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(dm.kind(), v1::ChannelKind::Direct);
    let seen = next(&f.owner, |e| match e {
        Ev::ChannelCreated(c) => Some(c),
        _ => None,
    })
    .await;
    assert_eq!(seen.id, dm.id);

    let first = bob.send_message(dm.id, "psst @owner", "n-1").await.unwrap();
    bob.send_message(dm.id, "second", "n-2").await.unwrap();
    assert_eq!(next_message(&f.owner).await.id, first.id);

    // A second session of the owner sees two unread, one mentioning them.
    let phone = server.client().await;
    let ready = phone.login("owner", PASSWORD).await.unwrap();
    let listed = ready.direct_channels.iter().find(|d| d.id == dm.id).unwrap();
    assert_eq!((listed.unread_count, listed.mention_count), (2, 1));

    // Reading on the phone clears it on the desktop.
    phone.request(Request::Ack(v1::AckRequest { channel_id: dm.id, message_id: first.id })).await.unwrap();
    let synced = next(&f.owner, |e| match e {
        Ev::ReadStateUpdated(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(
        (synced.channel_id, synced.last_read_id, synced.unread_count, synced.mention_count),
        (dm.id, first.id, 1, 0)
    );
    // History works as in any channel.
    let history = f.owner.history(dm.id, None, 10).await.unwrap();
    assert_eq!(history.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["psst @owner", "second"]);
}

#[tokio::test]
async fn conversations_read_state_and_chosen_presence_survive_a_restart() {
    let server = TestServer::start().await;
    let f = family(&server, &["bob", "carol"]).await;
    let (bob, carol) = (&f.members[0], &f.members[1]);
    let carol_ready = server.client().await.login("carol", PASSWORD).await.unwrap();
    let carol_id = carol_ready.user.unwrap().id;
    let others: Vec<u64> = [f.community.owner_id, carol_id].into();
    let group = match bob
        .request(Request::OpenDirect(v1::OpenDirectRequest { user_ids: others, name: "trip".into() }))
        .await
        .unwrap()
    {
        R::Channel(c) => c,
        other => panic!("{other:?}"),
    };
    let m1 = bob.send_message(group.id, "one", "").await.unwrap();
    bob.send_message(group.id, "two", "").await.unwrap();
    carol.request(Request::Ack(v1::AckRequest { channel_id: group.id, message_id: m1.id })).await.unwrap();
    set_status(carol, v1::PresenceStatus::Dnd).await;

    let (addr, data) = (server.addr.clone(), server.dir.path().join("data"));
    let TestServer { server: s, dir: _dir, .. } = server;
    drop(f);
    s.shutdown().await.unwrap();
    let restarted = start_retrying(kith_server::Config::new(addr.parse().unwrap(), data)).await;
    let (c, _) = kith_client::Client::connect(&addr, kith_client::Trust::Pin(restarted.fingerprint().into()))
        .await
        .unwrap();
    let ready = c.login("carol", PASSWORD).await.unwrap();
    let g = ready.direct_channels.iter().find(|d| d.id == group.id).expect("the group is still there");
    assert_eq!((g.name.as_str(), g.recipients.len(), g.owner_id), ("trip", 3, group.owner_id));
    assert_eq!((g.last_read_id, g.unread_count), (m1.id, 1));
    let mine = ready.presences.iter().find(|p| p.user_id == carol_id).unwrap();
    assert_eq!(mine.status(), v1::PresenceStatus::Dnd, "a chosen status is kept");
    let history = c.history(group.id, None, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    restarted.shutdown().await.unwrap();
}
