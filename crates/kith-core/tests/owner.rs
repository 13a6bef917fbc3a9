//! Specs for password reset codes: only the server owner makes them, the
//! hub keeps only their hash, one works once and for a day, and using one
//! sets the password and ends every other login of the account; the
//! owner's other tools: suspending and deleting accounts server-wide, and invites listed
//! and revoked.

mod world;

use kith_core::hub::RESET_CODE_MS;
use world::*;

fn issue(w: &mut World, s: SessionId, name: &str, code: &str) -> Result<R, (ErrorCode, String)> {
    w.call(
        s,
        Request::IssueResetCode {
            username_fold: name.into(),
            code: code.into(),
            code_hash: TokenHash(*blake(code)),
        },
    )
}

/// A new connection redeeming `code` for `name`, signing in with `token`.
fn redeem(w: &mut World, name: &str, code: &str, token: &str) -> (SessionId, Result<R, (ErrorCode, String)>) {
    let s = w.connect();
    let user = UserId(w.id(name));
    let answer = w.call(
        s,
        Request::RedeemResetCode {
            user,
            code_hash: TokenHash(*blake(code)),
            password_hash: format!("$argon2id${token}"),
            token: token.into(),
            token_hash: TokenHash(*blake(token)),
        },
    );
    (s, answer)
}

#[test]
fn only_the_server_owner_makes_reset_codes_and_the_hub_keeps_only_their_hash() {
    let mut w = World::default();
    let (owner, _, members) = w.family(&["bob", "carol"]);
    let e = issue(&mut w, members[0], "carol", "CODE-1").unwrap_err();
    assert_eq!(e.0, ErrorCode::Forbidden);
    assert!(e.1.contains("only the server's owner"), "{}", e.1);
    let e = issue(&mut w, owner, "nobody", "CODE-1").unwrap_err();
    assert_eq!(e.0, ErrorCode::NotFound);

    let Ok(R::ResetCode(answer)) = issue(&mut w, owner, "carol", "CODE-1") else { panic!() };
    assert_eq!(answer.code, "CODE-1");
    assert_eq!(answer.user.unwrap().username, "carol");
    assert_eq!(answer.expires_at_ms, w.now.0 + RESET_CODE_MS);
    // Stored as its hash only.
    let stored: Vec<&Write> = w.writes.iter().map(|(_, wr)| wr).collect();
    assert!(
        stored
            .iter()
            .any(|wr| matches!(wr, Write::SetResetCode { hash, .. } if *hash == TokenHash(*blake("CODE-1"))))
    );
    assert!(!format!("{stored:?}").contains("CODE-1"), "the code itself is never stored");
}

#[test]
fn a_code_sets_the_password_once_and_ends_every_other_login() {
    let mut w = World::default();
    let (owner, _, members) = w.family(&["bob"]);
    let bob = members[0];
    let (bob_phone, _) = w.login("bob");
    issue(&mut w, owner, "bob", "CODE-1").unwrap();

    let (_, wrong) = redeem(&mut w, "bob", "CODE-2", "new-token");
    assert_eq!(wrong.unwrap_err().0, ErrorCode::BadCredentials);
    assert!(w.closes.is_empty(), "a wrong code changes nothing");

    let (fresh, answer) = redeem(&mut w, "bob", "CODE-1", "new-token");
    let Ok(R::Ready(ready)) = answer else { panic!("{answer:?}") };
    assert_eq!(ready.user.unwrap().username, "bob");
    assert!(w.writes.iter().any(|(_, wr)| matches!(wr,
        Write::SetPassword { user, password_hash } if user.0 == w.id("bob") && password_hash == "$argon2id$new-token")));
    for s in [bob, bob_phone] {
        assert!(w.closes.contains(&(s, v1::CloseCode::TokenRevoked)), "{s:?} was signed out");
    }
    assert!(!w.closes.iter().any(|(s, _)| *s == fresh));
    // The old token is gone; the new one works.
    let s = w.connect();
    let old = w.call(s, Request::Authenticate { token_hash: TokenHash(*blake("bob")) });
    assert_eq!(old.unwrap_err().0, ErrorCode::BadCredentials);
    let (_, again) = w.login("new-token");
    assert_eq!(again.user.unwrap().username, "bob");

    let (_, reused) = redeem(&mut w, "bob", "CODE-1", "third-token");
    assert_eq!(reused.unwrap_err().0, ErrorCode::BadCredentials, "a code works once");
}

#[test]
fn a_code_lasts_a_day_and_a_new_one_replaces_it() {
    let mut w = World::default();
    let (owner, _, _) = w.family(&["bob", "carol"]);
    issue(&mut w, owner, "bob", "OLD").unwrap();
    issue(&mut w, owner, "bob", "NEW").unwrap();
    let (_, old) = redeem(&mut w, "bob", "OLD", "t1");
    assert_eq!(old.unwrap_err().0, ErrorCode::BadCredentials, "the later code replaced it");

    issue(&mut w, owner, "carol", "CAROL").unwrap();
    w.now = w.now.plus_ms(RESET_CODE_MS);
    let (_, late) = redeem(&mut w, "carol", "CAROL", "t2");
    assert_eq!(late.unwrap_err().0, ErrorCode::BadCredentials, "expired");
}

fn suspend(
    w: &mut World,
    s: SessionId,
    name: &str,
    suspended: bool,
    reason: &str,
) -> Result<R, (ErrorCode, String)> {
    w.call(
        s,
        Request::SuspendUser {
            username_fold: name.into(),
            suspended,
            reason: kith_core::text::Reason::parse(reason).unwrap(),
        },
    )
}

#[test]
fn a_suspended_account_is_signed_out_everywhere_and_cannot_sign_in_until_lifted() {
    let mut w = World::default();
    let (owner, _, members) = w.family(&["bob", "carol"]);
    let (bob, carol) = (members[0], members[1]);
    let (bob_phone, _) = w.login("bob");
    let e = suspend(&mut w, carol, "bob", true, "").unwrap_err();
    assert!(e.1.contains("only the server's owner"), "{}", e.1);
    let e = suspend(&mut w, owner, "owner", true, "").unwrap_err();
    assert_eq!(e.0, ErrorCode::Invalid, "not the owner's own");

    suspend(&mut w, owner, "bob", true, "spamming the family").unwrap();
    for s in [bob, bob_phone] {
        assert!(w.closes.contains(&(s, v1::CloseCode::TokenRevoked)));
    }
    let s = w.connect();
    let e = w.call(s, Request::Authenticate { token_hash: TokenHash(*blake("bob")) }).unwrap_err();
    assert_eq!(e.0, ErrorCode::BadCredentials, "the old logins are revoked");
    let s = w.connect();
    let e = w
        .call(
            s,
            Request::Login {
                user: UserId(w.id("bob")),
                token: "new".into(),
                token_hash: TokenHash(*blake("new")),
            },
        )
        .unwrap_err();
    assert_eq!(e.0, ErrorCode::Forbidden);
    assert!(e.1.contains("suspended by the server's owner: spamming the family"), "{}", e.1);
    // Nor by a reset code.
    issue(&mut w, owner, "bob", "CODE").unwrap();
    let (_, redeemed) = redeem(&mut w, "bob", "CODE", "t1");
    assert_eq!(redeemed.unwrap_err().0, ErrorCode::Forbidden);
    assert!(
        w.writes
            .iter()
            .any(|(_, wr)| matches!(wr, Write::Suspend { reason, .. } if reason == "spamming the family"))
    );

    suspend(&mut w, owner, "bob", false, "").unwrap();
    let s = w.connect();
    let back = w.call(
        s,
        Request::Login {
            user: UserId(w.id("bob")),
            token: "back".into(),
            token_hash: TokenHash(*blake("back")),
        },
    );
    assert!(matches!(back, Ok(R::Ready(_))), "lifted: {back:?}");
}

#[test]
fn invites_are_listed_to_their_makers_and_moderators_and_revoked_at_once() {
    let mut w = World::default();
    let (owner, c, members) = w.family(&["bob", "carol"]);
    let (bob, carol) = (members[0], members[1]);
    let mine = w.invite(bob, c.id);
    let theirs = w.invite(carol, c.id);
    let list = |w: &mut World, s| match w.call(s, Request::ListInvites { community: CommunityId(c.id) }) {
        Ok(R::Invites(l)) => l.invites.into_iter().map(|i| (i.code, i.creator_name)).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(list(&mut w, bob), [(mine.clone(), "bob".to_owned())], "a member sees their own");
    let all = list(&mut w, owner);
    assert!(all.contains(&(mine.clone(), "bob".into())) && all.contains(&(theirs.clone(), "carol".into())));

    let e = w.call(bob, Request::RevokeInvite { code: theirs.clone() }).unwrap_err();
    assert_eq!(e.0, ErrorCode::Forbidden, "not someone else's");
    w.call(bob, Request::RevokeInvite { code: mine.clone() }).unwrap();
    assert!(w.writes.iter().any(|(_, wr)| matches!(wr, Write::RevokeInvite { code } if *code == mine)));
    let joined = w.register("dave", Credential::Invite(mine.clone()));
    assert_eq!(joined.unwrap_err(), ErrorCode::InviteInvalid, "a revoked invite works no more");
    w.call(owner, Request::RevokeInvite { code: theirs.clone() }).unwrap();
    assert!(list(&mut w, owner).iter().all(|(code, _)| *code != theirs), "a moderator revokes anyone's");
}

#[test]
fn settings_that_change_while_running_take_effect_at_once() {
    let mut w = World::default();
    let (owner, c, members) = w.family(&["bob"]);
    assert_eq!(w.register("dave", Credential::None).unwrap_err(), ErrorCode::RegistrationClosed);
    w.hub.reconfigure(HubConfig {
        open_registration: true,
        message_rate: Some(kith_core::rate::RateLimit::new(1, 60_000)),
        ..HubConfig::default()
    });
    assert!(w.register("dave", Credential::None).is_ok(), "registration opened");
    let general = c.channels[0].id;
    assert!(w.say(members[0], general, "one", None).is_ok());
    let e = w.say(members[0], general, "two", None).unwrap_err();
    assert_eq!(e.0, ErrorCode::RateLimited, "the new message rate holds");
    assert!(w.say(owner, general, "mine", None).is_ok(), "per account");
}

fn delete(w: &mut World, s: SessionId, name: &str, remove_messages: bool) -> Result<R, (ErrorCode, String)> {
    w.call(s, Request::DeleteAccount { username_fold: name.into(), remove_messages })
}

#[test]
fn a_deleted_account_leaves_a_tombstone_its_messages_stay_and_its_name_is_free() {
    let mut w = World::default();
    let (owner, c, members) = w.family(&["bob", "carol"]);
    let (bob, carol) = (members[0], members[1]);
    let general = c.channels[0].id;
    let said = message(w.say(bob, general, "hello from bob", None).unwrap());
    let group = w.call(
        carol,
        Request::OpenDirect {
            users: vec![UserId(w.id("bob")), UserId(w.id("owner"))],
            name: kith_core::text::GroupName::parse("trip").unwrap(),
        },
    );
    assert!(group.is_ok(), "{group:?}");
    w.events(carol);

    let e = delete(&mut w, carol, "bob", false).unwrap_err();
    assert!(e.1.contains("only the server's owner"), "{}", e.1);
    let Ok(R::User(tomb)) = delete(&mut w, owner, "bob", false) else { panic!() };
    let bob_id = w.id("bob");
    assert_eq!(
        (tomb.id, tomb.username.as_str(), tomb.display_name.as_str(), tomb.deleted),
        (bob_id, format!("deleted-{bob_id}").as_str(), "Deleted user", true)
    );
    assert!(w.closes.contains(&(bob, v1::CloseCode::TokenRevoked)), "signed out");
    let seen = w.events(carol);
    let left = seen.iter().any(|e| {
        matches!(&e.body, Some(v1::event::Body::MemberLeft(l))
        if l.user_id == bob_id && l.reason() == v1::MemberLeftReason::Deleted)
    });
    assert!(left, "carol sees bob leave the community: {seen:?}");
    let renamed = seen.iter().any(|e| matches!(&e.body, Some(v1::event::Body::UserUpdated(u)) if u.deleted));
    assert!(renamed, "and sees the tombstone: {seen:?}");
    assert!(
        !seen.iter().any(|e| matches!(&e.body, Some(v1::event::Body::MessageDeleted(_)))),
        "his messages stay"
    );
    assert!(
        w.writes.iter().any(|(_, wr)| matches!(wr, Write::DeleteAccount { user, .. } if user.0 == bob_id))
    );
    assert!(!w.writes.iter().any(|(_, wr)| matches!(wr, Write::DeleteMessage { id } if id.0 == said.id)));

    // The old token is revoked; the name is free for a newcomer.
    let s = w.connect();
    let old = w.call(s, Request::Authenticate { token_hash: TokenHash(*blake("bob")) });
    assert_eq!(old.unwrap_err().0, ErrorCode::BadCredentials);
    let code = w.invite(owner, c.id);
    assert!(w.register("bob", kith_core::request::Credential::Invite(code)).is_ok(), "a new bob");

    // Nothing more can be done to a tombstone.
    let tomb_name = format!("deleted-{bob_id}");
    for e in [
        delete(&mut w, owner, &tomb_name, false).unwrap_err(),
        issue(&mut w, owner, &tomb_name, "CODE").unwrap_err(),
        suspend(&mut w, owner, &tomb_name, true, "").unwrap_err(),
    ] {
        assert_eq!(e, (ErrorCode::Invalid, "that account was deleted".into()));
    }
}

#[test]
fn deleting_an_account_with_its_messages_removes_them_everywhere() {
    let mut w = World::default();
    let (owner, c, members) = w.family(&["bob", "carol"]);
    let (bob, carol) = (members[0], members[1]);
    let general = c.channels[0].id;
    let gone: Vec<u64> =
        (0..3).map(|i| message(w.say(bob, general, &format!("bob {i}"), None).unwrap()).id).collect();
    let kept = message(w.say(carol, general, "carol stays", None).unwrap()).id;
    w.events(carol);

    delete(&mut w, owner, "bob", true).unwrap();
    let deleted: Vec<u64> = w
        .writes
        .iter()
        .filter_map(|(_, wr)| match wr {
            Write::DeleteMessage { id } => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, gone);
    let told: Vec<u64> = w
        .events(carol)
        .into_iter()
        .filter_map(|e| match e.body {
            Some(v1::event::Body::MessageDeleted(d)) => Some(d.message_id),
            _ => None,
        })
        .collect();
    assert_eq!(told, gone, "carol's view loses them");
    assert!(!deleted.contains(&kept));
}

#[test]
fn the_owner_a_bot_and_a_community_owner_cannot_be_deleted() {
    let mut w = World::default();
    let (owner, _, members) = w.family(&["bob"]);
    let e = delete(&mut w, owner, "owner", false).unwrap_err();
    assert_eq!(e.0, ErrorCode::Invalid, "{}", e.1);
    w.community(members[0], "Bobs");
    let e = delete(&mut w, owner, "bob", false).unwrap_err();
    assert!(e.1.contains("they own Bobs"), "{}", e.1);
    assert!(w.closes.is_empty(), "a refusal changes nothing");
}
