//! Rate limits and admission control against a real server: floods are
//! refused with a time to retry (then cut off), and nobody else notices.

mod common;

use std::time::Duration;

use common::*;
use kith_client::proto::{self as v1, client_message::Request};
use kith_core::rate::RateLimit;
use kith_server::Limits;

fn limits(tweak: impl FnOnce(&mut Limits)) -> impl FnOnce(&mut kith_server::Config) {
    move |config| {
        let mut l = Limits::unlimited();
        tweak(&mut l);
        config.limits = l;
    }
}

/// T16: one session sends as fast as it can. It is told to slow down (with
/// a time to retry), then disconnected; the others' messages all go through.
#[tokio::test]
async fn a_flooding_session_is_limited_then_cut_off_and_others_are_unaffected() {
    let server = TestServer::start_with(limits(|l| l.messages = RateLimit::new(10, 100))).await;
    let f = family(&server, &["flooder", "carol"]).await;
    let (flooder, carol) = (&f.members[0], &f.members[1]);

    let (mut accepted, mut refused, mut retry_after) = (0, 0, Duration::ZERO);
    let mut cut_off = false;
    for n in 0..2_000 {
        match flooder.send_message(f.general, &format!("flood {n}"), "").await {
            Ok(_) => accepted += 1,
            Err(e) if e.code() == Some(v1::ErrorCode::RateLimited) => {
                refused += 1;
                retry_after = retry_after.max(e.retry_after().expect("a refusal says when to retry"));
                assert!(e.to_string().contains("retry in"), "a visible notice: {e}");
            }
            Err(_) => {
                cut_off = true;
                break;
            }
        }
    }
    assert!(cut_off, "sustained flooding ends the connection");
    assert_eq!(flooder.close_code(), Some(v1::CloseCode::RateLimited), "{:?}", flooder.close_reason());
    assert!((10..100).contains(&accepted), "the burst and a little refill got through: {accepted}");
    assert!(refused >= 50, "{refused}");
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(100));

    // Carol, in the same channel, is unaffected; the owner saw exactly what was accepted.
    for n in 0..10 {
        carol.send_message(f.general, &format!("carol {n}"), "").await.unwrap();
    }
    let (mut floods, mut carols) = (0, 0);
    while carols < 10 {
        let m = next_message(&f.owner).await;
        if m.body.starts_with("flood") {
            floods += 1;
        } else {
            carols += 1;
        }
    }
    assert_eq!(floods, accepted, "refused messages reached nobody");
}

/// T14: idle connections are closed at the authentication deadline, and an
/// address over its connection cap is turned away at once with a time to retry.
#[tokio::test]
async fn connections_per_address_are_capped_and_must_authenticate_in_time() {
    let server = TestServer::start_with(limits(|l| {
        l.connections_per_ip = 3;
        l.auth_deadline = Duration::from_millis(700);
    }))
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let c = server.client().await;
        // Open the control stream without authenticating.
        let req = Request::CreateCommunity(v1::CreateCommunityRequest { name: "x".into() });
        assert_eq!(code_of(c.request(req).await), v1::ErrorCode::NotAuthenticated);
        idle.push(c);
    }
    let over = server.client().await;
    let req = Request::CreateCommunity(v1::CreateCommunityRequest { name: "x".into() });
    assert!(over.request(req).await.is_err());
    assert_eq!(over.close_code(), Some(v1::CloseCode::RateLimited));
    let reason = over.close_reason().unwrap();
    assert!(reason.contains("too many open connections") && reason.contains("retry after"), "{reason}");

    for c in &idle {
        let reason = tokio::time::timeout(Duration::from_secs(5), c.closed()).await.expect("closed in time");
        assert_eq!(c.close_code(), Some(v1::CloseCode::Timeout), "{reason}");
    }
    // Their slots are free again, and someone who authenticates in time stays.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (owner, _) = server.owner("owner").await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    create_community(&owner, "Family").await;
}

/// A4: password guessing against one account is throttled before any
/// hashing, whoever guesses; other accounts log in normally.
#[tokio::test]
async fn login_attempts_are_throttled_per_account() {
    let server = TestServer::start_with(limits(|l| {
        l.logins_per_account = RateLimit::new(3, 60_000);
        l.logins_per_ip = RateLimit::new(100, 1);
    }))
    .await;
    let f = family(&server, &["bob"]).await;
    drop(f);
    for _ in 0..3 {
        let c = server.client().await;
        assert_eq!(code_of(c.login("owner", "wrong password").await), v1::ErrorCode::BadCredentials);
    }
    let c = server.client().await;
    let err = c.login("owner", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), Some(v1::ErrorCode::RateLimited), "{err}");
    assert!(err.retry_after().unwrap() > Duration::from_secs(10), "{err:?}");
    let c = server.client().await;
    c.login("bob", PASSWORD).await.expect("another account is unaffected");
}

/// Q12: when handshakes arrive faster than the threshold, clients must first
/// prove their address with a QUIC Retry; real clients still connect.
#[tokio::test]
async fn under_handshake_pressure_clients_are_retried_and_still_connect() {
    let server = TestServer::start_with(limits(|l| l.handshakes = RateLimit::new(1, 60_000))).await;
    let (owner, _) = server.owner("owner").await;
    let community = create_community(&owner, "Family").await;
    let invite = create_invite(&owner, community.id).await;
    for name in ["bob", "carol", "dave"] {
        let (c, ready) = server.member(name, &invite).await;
        assert_eq!(ready.communities.len(), 1);
        c.send_message(community.channels[0].id, "made it", "").await.unwrap();
    }
}
