//! End-to-end specs for dropped connections and slow consumers: a real
//! server on 127.0.0.1:0 and real QUIC clients.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use kith_client::proto::{
    self as v1, ErrorCode, client_message::Request, event::Body as Ev, reply::Result as R,
};
use kith_client::{Backoff, Connector, Session, Trust, Update};

const FAST: Backoff = Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(200) };

fn connector(server: &TestServer) -> Connector {
    Connector::new(Trust::Pin(server.fingerprint.clone()), false).unwrap()
}

/// The next update, waiting at most ten seconds.
async fn next(session: &Session) -> Update {
    tokio::time::timeout(Duration::from_secs(10), session.next_update())
        .await
        .expect("an update within 10 s")
        .expect("the session goes on")
}

#[tokio::test]
async fn a_receiver_cut_off_mid_burst_resumes_and_sees_every_message_once_in_order() {
    const BURST: usize = 1000;
    let server = TestServer::start().await;
    let f = family(&server, &[]).await;
    let (bob, ready) = server.member("bob", &f.invite).await;
    bob.close().await;
    let (session, _) = Session::start(connector(&server), &server.addr, &ready.token, FAST).await.unwrap();

    let owner = Arc::new(f.owner);
    let sender = {
        let owner = owner.clone();
        tokio::spawn(async move {
            for i in 0..BURST {
                owner.send_message(f.general, &format!("m{i}"), &format!("n{i}")).await.unwrap();
            }
        })
    };
    let mut bodies = Vec::new();
    let (mut cut, mut reconnecting, mut resumed) = (false, 0, 0);
    while bodies.len() < BURST {
        match next(&session).await {
            Update::Event(v1::Event { body: Some(Ev::MessageCreated(m)), .. }) => {
                bodies.push(m.body);
                if bodies.len() == BURST / 3 && !cut {
                    cut = true;
                    session.drop_connection();
                }
            }
            Update::Event(_) => {}
            Update::Reconnecting { .. } => reconnecting += 1,
            Update::Resumed { .. } => resumed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    sender.await.unwrap();
    assert!(reconnecting >= 1 && resumed == 1, "reconnecting {reconnecting}, resumed {resumed}");
    let expected: Vec<String> = (0..BURST).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected, "every message exactly once, in order");
}

#[tokio::test]
async fn an_expired_resume_falls_back_to_a_snapshot_and_history_without_loss() {
    let server = TestServer::start_with(|c| c.resume_grace = Duration::from_millis(100)).await;
    let f = family(&server, &[]).await;
    let (bob, ready) = server.member("bob", &f.invite).await;
    bob.close().await;
    // The first reconnect comes well after the grace window.
    let slow = Backoff { initial: Duration::from_millis(800), max: Duration::from_secs(1) };
    let (session, _) = Session::start(connector(&server), &server.addr, &ready.token, slow).await.unwrap();
    let first = f.owner.send_message(f.general, "before", "").await.unwrap();
    let seen = loop {
        if let Update::Event(v1::Event { body: Some(Ev::MessageCreated(m)), .. }) = next(&session).await {
            break m;
        }
    };
    assert_eq!(seen.id, first.id);
    session.drop_connection();
    for i in 0..20 {
        f.owner.send_message(f.general, &format!("while away {i}"), "").await.unwrap();
    }
    let ready = loop {
        match next(&session).await {
            Update::Reset(ready) => break ready,
            Update::Reconnecting { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(ready.resume_refused, "the session is unknown or expired");
    // The client catches up from history: nothing is lost.
    let missed = session
        .client()
        .history(f.general, Some(v1::history_request::Anchor::After(seen.id)), 100)
        .await
        .unwrap();
    let bodies: Vec<String> = missed.into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, (0..20).map(|i| format!("while away {i}")).collect::<Vec<_>>());
    // And the new session streams again.
    let after = f.owner.send_message(f.general, "welcome back", "").await.unwrap();
    loop {
        if let Update::Event(v1::Event { seq, body: Some(Ev::MessageCreated(m)), .. }) = next(&session).await
        {
            assert_eq!((seq, m.id), (1, after.id), "a fresh session counts from 1");
            break;
        }
    }
}

#[tokio::test]
async fn q15_forged_resumes_get_a_fresh_snapshot_and_bad_tokens_are_refused() {
    let server = TestServer::start().await;
    let f = family(&server, &[]).await;
    let (bob, ready) = server.member("bob", &f.invite).await;
    let resume = |token: &str, session_id: &str| {
        Request::Resume(v1::ResumeRequest { token: token.into(), session_id: session_id.into(), last_seq: 7 })
    };
    let forger = server.client().await;
    let R::Ready(fresh) =
        forger.request(resume(&ready.token, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await.unwrap()
    else {
        panic!()
    };
    assert!(!fresh.resume_refused.is_empty());
    assert_ne!(fresh.session_id, ready.session_id);
    let stranger = server.client().await;
    let refused = stranger.request(resume("kith_not-a-token", &ready.session_id)).await;
    assert_eq!(code_of(refused), ErrorCode::BadCredentials);
    // Bob's live session was not taken over by either.
    canary_still_sings(&f.owner, &bob, f.general).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_and_nobody_else_notices() {
    const CHATTERS: usize = 50;
    const EACH: usize = 30;
    // A small limit so the stalled client trips it quickly: it first absorbs
    // its QUIC receive window (~1.2 MB), then its outbox fills.
    let server = TestServer::start_with(|c| c.outbox_bytes = 256 * 1024).await;
    let f = family(&server, &[]).await;
    let connector = connector(&server);

    // The stalled client authenticates, then never reads again.
    let (_, ready) = server.member("sleepy", &f.invite).await;
    let (stalled, mut send, _recv) = connector.connect_raw(&server.addr).await.unwrap();
    let auth = v1::ClientMessage {
        request_id: 1,
        request: Some(Request::Authenticate(v1::AuthenticateRequest { token: ready.token })),
    };
    send.write_all(&kith_proto::encode_frame(&auth)).await.unwrap();

    let mut chatters = Vec::new();
    for i in 0..CHATTERS {
        let (c, _) = server.member(&format!("chatter{i}"), &f.invite).await;
        chatters.push(Arc::new(c));
    }
    let body = "x".repeat(1000);
    let mut tasks = Vec::new();
    for c in &chatters {
        let (c, body) = (c.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            // Chatting, not flooding: a message every 20 ms from each.
            for _ in 0..EACH {
                c.send_message(f.general, &body, "").await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let mut readers = Vec::new();
    for c in &chatters {
        let c = c.clone();
        readers.push(tokio::spawn(async move {
            let mut got = 0;
            while got < (CHATTERS - 1) * EACH {
                let e = tokio::time::timeout(Duration::from_secs(30), c.next_event())
                    .await
                    .expect("events keep coming");
                if let Some(v1::Event { body: Some(Ev::MessageCreated(_)), .. }) = e {
                    got += 1;
                }
            }
            got
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), (CHATTERS - 1) * EACH, "every other chatter's message arrived");
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), stalled.closed()).await.expect("cut off");
    let quinn::ConnectionError::ApplicationClosed(close) = closed else { panic!("{closed:?}") };
    assert_eq!(close.error_code.into_inner(), v1::CloseCode::SlowConsumer as u64);
    for c in &chatters {
        assert!(c.close_reason().is_none(), "no chatter was disconnected");
    }
}

/// A server that comes back with another identity is an alarm: the session
/// ends saying so (both fingerprints), instead of retrying for ever.
#[tokio::test]
async fn a_changed_identity_ends_the_session_instead_of_retrying() {
    let server = TestServer::start().await;
    let (_, ready) = server.owner("owner").await;
    let (session, _) = Session::start(connector(&server), &server.addr, &ready.token, FAST).await.unwrap();
    let addr: std::net::SocketAddr = server.addr.parse().unwrap();
    let pinned = server.fingerprint.clone();
    server.server.shutdown().await.unwrap();
    let other = tempfile::tempdir().unwrap();
    let impostor = start_retrying(kith_server::Config::new(addr, other.path().join("data"))).await;
    let ended = loop {
        match next(&session).await {
            Update::Ended { reason, identity } => break (reason, identity),
            Update::Reconnecting { .. } => continue,
            other => panic!("{other:?}"),
        }
    };
    let change = ended.1.expect("the identity change is named");
    assert_eq!(
        (change.pinned.as_str(), change.presented.as_str()),
        (pinned.as_str(), impostor.fingerprint())
    );
    assert!(ended.0.contains(&pinned) && ended.0.contains(impostor.fingerprint()), "{}", ended.0);
    assert!(session.next_update().await.is_none(), "no more attempts");
}
