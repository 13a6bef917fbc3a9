//! The telnet gateway, spoken to over real sockets: people sign in, chat
//! with QUIC users, and hostile clients (../shared/BAD_INPUTS.md, T1–T18)
//! get a clear close while everyone else carries on.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::telnet::*;
use common::*;
use kith_server::telnet::TelnetConfig;

/// A server with the telnet gateway on a free loopback port.
async fn serve(tweak: impl FnOnce(&mut kith_server::Config)) -> (TestServer, SocketAddr) {
    let server = TestServer::start_with(|c| {
        c.telnet = Some(TelnetConfig::new("127.0.0.1:0".parse().unwrap()));
        tweak(c);
    })
    .await;
    let addr = server.server.telnet_addr().expect("telnet enabled");
    (server, addr)
}

#[tokio::test]
async fn a_newcomer_signs_up_over_telnet_and_chats_with_a_quic_user() {
    let (server, addr) = serve(|_| {}).await;
    let family = family(&server, &["bob"]).await;
    let bob = &family.members[0];
    let welcome = bob.send_message(family.general, "welcome, whoever comes by telnet", "").await.unwrap();
    assert_eq!(next_message(bob).await.id, welcome.id, "bob's own session sees it too");

    let mut carol = Tn::connect(addr).await;
    let first = carol.until_shows("[r] create an account").await;
    assert!(first.contains("unencrypted"), "the sign-in screen says telnet is unencrypted:\n{first}");
    carol.register("carol", PASSWORD, &family.invite).await;
    let screen = carol.until_shows("welcome, whoever comes by telnet").await;
    for expected in ["Family", "#general", "bob", "unencrypted"] {
        assert!(screen.contains(expected), "missing {expected:?}:\n{screen}");
    }
    assert!(
        !String::from_utf8_lossy(&carol.raw).contains(PASSWORD),
        "the password is never sent back to the terminal"
    );

    carol.typed("hello from telnet\r").await;
    let seen = next_message(bob).await;
    assert_eq!((seen.body.as_str(), seen.author_name.as_str()), ("hello from telnet", "carol"));

    bob.send_message(family.general, "hi carol, I'm on QUIC", "").await.unwrap();
    carol.until_shows("hi carol, I'm on QUIC").await;

    // Resizing re-lays the screen out at the new size.
    carol.resize(60, 20).await;
    carol.until(|t| t.text().lines().all(|l| l.chars().count() <= 60), "a 60-column layout").await;
    carol.until_shows("hi carol").await;

    // /list shows the channels with member counts; /exit leaves.
    carol.typed("/list\r").await;
    carol.until_shows("Family (3 members)").await;
    carol.esc().await;
    carol.typed("/exit\r").await;
    carol.until_closed(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_existing_account_logs_in_and_a_wrong_password_is_refused_without_echo() {
    let (server, addr) = serve(|_| {}).await;
    let family = family(&server, &["dave"]).await;

    let mut t = Tn::connect(addr).await;
    t.log_in("dave", "not the password").await;
    let screen = t.until_shows("username and password do not match").await;
    assert!(!screen.contains("not the password"), "{screen}");
    t.typed("\r").await; // the username is kept; Enter moves on to the password
    t.until_shows("Password").await;
    t.typed(&format!("{PASSWORD}\r")).await;
    t.until_shows("#general").await;
    canary_still_sings(&family.owner, &family.members[0], family.general).await;
}

#[tokio::test]
async fn guests_come_in_without_an_account_and_only_as_far_as_the_operator_allows() {
    use kith_server::telnet::GuestAccess;
    let read_only = GuestAccess { community: "family".into(), can_send: false };
    let (server, addr) = serve(|c| c.telnet.as_mut().unwrap().guests = Some(read_only)).await;
    let family = family(&server, &["bob"]).await;
    let bob = &family.members[0];
    bob.send_message(family.general, "said before any guest came", "").await.unwrap();

    let mut guest = Tn::connect(addr).await;
    guest.until_shows("[l] log in   [r] create an account   [g] come in as a guest").await;
    guest.typed("g").await;
    let screen = guest.until_shows("said before any guest came").await;
    for expected in ["guest-1", "#general", "bob", "unencrypted"] {
        assert!(screen.contains(expected), "missing {expected:?}:\n{screen}");
    }
    guest.typed("may I?\r").await;
    guest.until_shows("guests may not send messages").await;
    bob.send_message(family.general, "guests can still read this", "").await.unwrap();
    guest.until_shows("guests can still read this").await;
    // The refused line stays in the input box; Ctrl+U clears it.
    guest.typed("\u{15}/exit\r").await;
    guest.until_closed(Duration::from_secs(5)).await;
    drop(server);

    // Guests who may write, and no passwords at all over telnet.
    let chat = GuestAccess { community: "Family".into(), can_send: true };
    let (server, addr) = serve(|c| {
        let t = c.telnet.as_mut().unwrap();
        t.guests = Some(chat);
        t.passwords = false;
    })
    .await;
    let family = common::family(&server, &["bob"]).await;
    let mut guest = Tn::connect(addr).await;
    let screen = guest.until_shows("[g] come in as a guest").await;
    assert!(!screen.contains("[l] log in"), "{screen}");
    guest.typed("l").await;
    assert!(!guest.text().contains("Username"));
    guest.typed("g").await;
    guest.until_shows("guest-1").await;
    guest.typed("hello, I'm just visiting\r").await;
    let seen = next_message(&family.members[0]).await;
    assert_eq!((seen.body.as_str(), seen.author_name.as_str()), ("hello, I'm just visiting", "guest-1"));
    canary_still_sings(&family.owner, &family.members[0], family.general).await;

    // After a restart the guest is nobody's member and nobody can log in as
    // it, but what it wrote is still there under its name.
    drop(guest);
    let (quic, fp) = (server.addr.clone(), server.fingerprint.clone());
    let TestServer { server: s, dir, .. } = server;
    s.shutdown().await.unwrap();
    let mut config = kith_server::Config::new(quic.parse().unwrap(), dir.path().join("data"));
    config.limits = kith_server::Limits::unlimited();
    let _restarted = start_retrying(config).await;
    let (bob, _) = kith_client::Client::connect(&quic, kith_client::Trust::Pin(fp.clone())).await.unwrap();
    let ready = bob.login("bob", PASSWORD).await.unwrap();
    let members: Vec<String> =
        ready.communities[0].members.iter().map(|m| m.user.as_ref().unwrap().username.clone()).collect();
    assert!(!members.iter().any(|m| m.starts_with("guest-")), "{members:?}");
    let history = bob.history(family.general, None, 10).await.unwrap();
    assert!(history.iter().any(|m| m.author_name == "guest-1" && m.body == "hello, I'm just visiting"));
    let (impostor, _) = kith_client::Client::connect(&quic, kith_client::Trust::Pin(fp)).await.unwrap();
    for password in ["", "guest", PASSWORD] {
        assert!(impostor.login("guest-1", password).await.is_err(), "{password:?}");
    }
}

#[tokio::test]
async fn on_a_fresh_server_the_owner_sets_up_everything_over_telnet() {
    let (server, addr) = serve(|_| {}).await;
    let setup_code = server.server.setup_code().expect("a fresh server has a setup code").to_owned();

    let mut owner = Tn::connect(addr).await;
    owner.register("olive", PASSWORD, &setup_code).await;
    owner.until_shows("/community <name>").await;
    owner.typed("/community Home\r").await;
    owner.until_shows("created Home").await;
    owner.until_shows("#general  Home").await;
    owner.typed("/channel recipes what we cook\r").await;
    owner.until_shows("#recipes  Home").await;
    owner.typed("first!\r").await;
    owner.until_shows("olive first!").await;

    // Someone joins with an invite the owner made on the telnet screen.
    owner.typed("/invite\r").await;
    owner.until_shows("kith://").await;
    let screen = owner.text();
    let code = screen
        .split("kith://")
        .nth(1)
        .and_then(|rest| rest.split('/').nth(1))
        .and_then(|rest| rest.split('?').next())
        .expect("an invite link on screen")
        .to_owned();
    let (bob, ready) = server.member("bob", &code).await;
    let home = &ready.communities[0];
    assert_eq!(home.name, "Home");
    let recipes = home.channels.iter().find(|c| c.name == "recipes").expect("#recipes");
    assert_eq!(recipes.topic, "what we cook");
    bob.send_message(recipes.id, "pancakes on sunday", "").await.unwrap();
    owner.until_shows("pancakes on sunday").await;
}

#[tokio::test]
async fn a_client_that_will_not_let_the_server_echo_is_warned_before_typing_a_password() {
    let (_server, addr) = serve(|_| {}).await;
    let mut t = Tn::connect(addr).await;
    t.until_shows("[l] log in").await;
    t.send(&[IAC, DONT, ECHO]).await;
    let screen = t.until_shows("your telnet client shows what you type").await;
    assert!(screen.contains("[l] log in"), "{screen}");
}

#[tokio::test]
async fn an_invite_made_over_telnet_names_the_servers_public_address_not_the_telnet_port() {
    let (server, addr) = serve(|c| c.public_address = Some("chat.example.org".into())).await;
    let family = family(&server, &[]).await;
    let mut carol = Tn::connect(addr).await;
    carol.register("carol", PASSWORD, &family.invite).await;
    carol.until_shows("#general").await;
    carol.typed("/invite\r").await;
    let screen = carol.until_shows("copied to your clipboard").await;
    let flowing: String = screen.lines().map(|l| l.split('│').nth(1).unwrap_or("").trim()).collect();
    assert!(flowing.contains("kith://chat.example.org:7443/"), "{screen}");
    assert!(!flowing.contains(&addr.port().to_string()), "not the telnet port:\n{screen}");
    // The clipboard request went to carol's own terminal (OSC 52).
    assert!(String::from_utf8_lossy(&carol.raw).contains("\u{1b}]52;c;"), "no OSC 52 sent");
}

/// The regression: a resize was drawn only at the next key.
#[tokio::test]
async fn a_resized_window_is_redrawn_at_once_without_a_key() {
    let (server, addr) = serve(|_| {}).await;
    let family = family(&server, &[]).await;
    let mut carol = Tn::connect(addr).await;
    carol.register("carol", PASSWORD, &family.invite).await;
    carol.until_shows("#general").await;
    // Let the screen settle: nothing more to draw.
    while carol.read_for(Duration::from_millis(300)).await {}
    carol.resize(120, 30).await;
    carol
        .until(
            |t| t.text().lines().any(|l| l.trim_end().chars().count() > 100),
            "a redraw at 120 columns, with no key pressed",
        )
        .await;
}
