//! Accounts and sessions: register, login, token authentication, logout, and
//! the caller's profile.

use std::collections::BTreeSet;

use kith_proto::v1::{
    self, CloseCode, MemberLeftReason, event::Body as EventBody, reply::Result as ReplyResult,
};

use super::{Auth, Cx, Hub, Outcome, Output, Refusal, forbidden};
use crate::ids::{CommunityId, SessionId, Timestamp, TokenId, UserId};
use crate::request::{Chosen, Credential, Registration, TokenHash, code_key};
use crate::store::{StoredToken, StoredUser, Write};
use crate::text::{DisplayName, StatusText, Username, look_alike_keys};

/// What a deleted account is called wherever it still shows.
const DELETED_DISPLAY_NAME: &str = "Deleted user";

/// How long a password reset code stands.
pub const RESET_CODE_MS: u64 = 24 * 3600 * 1000;

impl Hub {
    pub(super) fn register(
        &mut self,
        now: Timestamp,
        session: SessionId,
        rid: u64,
        reg: &Registration,
    ) -> Outcome {
        if !self.directory.name_free(&reg.username) {
            return Err(Refusal::Taken("username"));
        }
        // A display name is what others see: it may not pass for someone
        // else's username.
        if self.directory.looks_like_a_username(&reg.display_name.0) {
            return Err(Refusal::Invalid(
                "that display name looks like another person's username; pick another",
            ));
        }
        if reg.username.is_mixed_script() {
            return Err(Refusal::Invalid("username mixes scripts (e.g. Latin with Cyrillic look-alikes)"));
        }
        let mut join = None;
        let server_owner = match (&reg.credential, self.directory.owner()) {
            (Credential::SetupCode(code), None)
                if self.config.setup_code.as_deref().map(code_key) == Some(code_key(code)) =>
            {
                true
            }
            (Credential::SetupCode(_), None) => {
                return Err(Refusal::RegistrationClosed(
                    "that setup code is not this server's: use the one `kith serve` printed when it \
                     first started (case and dashes do not matter)",
                ));
            }
            (_, None) => {
                return Err(Refusal::RegistrationClosed(
                    "this server has no owner yet: register with the setup code it printed when it started",
                ));
            }
            (Credential::SetupCode(_), Some(_)) => {
                return Err(Refusal::RegistrationClosed("this server already has an owner"));
            }
            (Credential::Invite(code), Some(_)) => {
                join = Some(self.usable_invite(code, now, None)?);
                false
            }
            (Credential::None, Some(_)) if self.config.open_registration => false,
            (Credential::None, Some(_)) => {
                return Err(Refusal::RegistrationClosed("registration on this server needs an invite"));
            }
        };

        let user = StoredUser {
            id: UserId(self.ids.next(now)),
            username: reg.username.name.clone(),
            fold: reg.username.fold.clone(),
            skeleton: reg.username.skeleton.clone(),
            display_name: reg.display_name.0.clone(),
            status_text: String::new(),
            server_owner,
            presence: Chosen::Online,
            bot: false,
            deleted: false,
        };
        let token = StoredToken { id: TokenId(self.ids.next(now)), user: user.id, hash: reg.token_hash };
        self.persist(vec![
            Write::CreateUser {
                user: user.clone(),
                password_hash: reg.password_hash.clone(),
                created_at: now,
            },
            Write::CreateToken { token: token.clone(), created_at: now },
        ]);
        let id = user.id;
        self.directory.add(user);
        if server_owner {
            self.config.setup_code = None;
        }
        self.directory.add_token(token.hash, token.id, id);
        if let Some((community, code)) = join {
            self.add_member(now, community, id, Some(code));
        }
        self.bind(session, rid, Auth { user: id, token: Some(token.id) }, reg.token.clone(), String::new());
        Ok(())
    }

    /// What creating an account takes right now, and where invites point.
    pub(super) fn server_info(&self) -> v1::ServerInfo {
        let registration = match self.directory.owner() {
            None => v1::Registration::SetupCode,
            Some(_) if self.config.open_registration => v1::Registration::Open,
            Some(_) => v1::Registration::Invite,
        };
        v1::ServerInfo {
            registration: registration as i32,
            public_address: self.config.public_address.clone().unwrap_or_default(),
        }
    }

    pub(super) fn login(
        &mut self,
        now: Timestamp,
        session: SessionId,
        rid: u64,
        user: UserId,
        token: String,
        token_hash: TokenHash,
    ) -> Outcome {
        // A bot signs in with its token only (its stored hash is empty, so
        // no password matches it anyway).
        if !self.directory.contains(user) || self.is_bot(user) {
            return Err(Refusal::BadCredentials);
        }
        self.refuse_suspended(user)?;
        let stored = StoredToken { id: TokenId(self.ids.next(now)), user, hash: token_hash };
        self.persist(vec![Write::CreateToken { token: stored.clone(), created_at: now }]);
        self.directory.add_token(token_hash, stored.id, user);
        self.bind(session, rid, Auth { user, token: Some(stored.id) }, token, String::new());
        Ok(())
    }

    /// The server owner's: an account suspended server-wide cannot sign
    /// in, and every login it has ends now; lifting it lets it sign in again.
    pub(super) fn suspend_user(
        &mut self,
        cx: Cx,
        username_fold: &str,
        suspended: bool,
        reason: String,
    ) -> Outcome {
        if !self.directory.is_owner(cx.me) {
            return Err(forbidden("only the server's owner can suspend accounts"));
        }
        let user = self.directory.find(username_fold).ok_or(Refusal::NotFound("user"))?;
        if user == cx.me {
            return Err(Refusal::Invalid("the server's owner cannot suspend their own account"));
        }
        self.refuse_deleted(user)?;
        if suspended {
            let writes = vec![Write::Suspend { user, reason: reason.clone(), at: cx.now }];
            self.directory.suspend(user, reason);
            self.end_every_login(user, writes, "this account was suspended by the server's owner");
        } else if self.directory.unsuspend(user) {
            self.persist(vec![Write::Unsuspend { user }]);
        }
        let wire = self.user_wire(user);
        self.reply(cx.session, cx.rid, ReplyResult::User(wire));
        Ok(())
    }

    /// The server owner's: deletes an account. What stays is a tombstone
    /// (`deleted-ID`, "Deleted user", no password) so that replies and
    /// conversations still read; with `remove_messages`, every message it
    /// wrote anywhere is deleted too.
    pub(super) fn delete_account(&mut self, cx: Cx, username_fold: &str, remove_messages: bool) -> Outcome {
        if !self.directory.is_owner(cx.me) {
            return Err(forbidden("only the server's owner can delete accounts"));
        }
        let user = self.directory.find(username_fold).ok_or(Refusal::NotFound("user"))?;
        if user == cx.me {
            return Err(Refusal::Invalid("the server's owner cannot delete their own account"));
        }
        if self.is_bot(user) {
            return Err(Refusal::Invalid(
                "a bot is not deleted as an account: give it a new token to cut it off, and kick it",
            ));
        }
        if self.is_guest(user) {
            return Err(Refusal::Invalid("a guest's account ends when they leave"));
        }
        self.refuse_deleted(user)?;
        let owned: Vec<&str> =
            self.memberships.owned(user).map(|c| self.communities[&c].name.as_str()).collect();
        if !owned.is_empty() {
            return Err(Refusal::Unfit(format!(
                "they own {}: a community's owner cannot be deleted while it exists",
                owned.join(", ")
            )));
        }
        // Told before they leave: everyone who could see them sees the tombstone.
        let audience = self.acquaintances(user);
        let communities: Vec<CommunityId> = self.memberships.communities(user).collect();
        let mut writes: Vec<Write> =
            communities.iter().map(|&community| Write::RemoveMember { community, user }).collect();
        let (groups, group_writes) = self.remove_from_groups(user);
        writes.extend(group_writes);
        let tombstone = Username::deleted(user.0);
        writes.push(Write::DeleteAccount { user, name: tombstone.clone(), at: cx.now });
        let mut doomed = Vec::new();
        for (&channel, timeline) in &mut self.timelines {
            timeline.set_read(user, None);
            if remove_messages {
                doomed.extend(timeline.authored_since(user, Timestamp(0)).map(|id| (id, channel)));
            }
        }
        if remove_messages {
            // Older ones, loaded for this request.
            doomed.extend(self.stashed_authored(user).iter().map(|&(id, channel, _)| (id, channel)));
        }
        doomed.sort();
        doomed.dedup();
        writes.extend(doomed.iter().map(|&(id, _)| Write::DeleteMessage { id }));
        self.directory.clear_standing(user);
        self.directory.rename(user, tombstone, |u| {
            u.display_name = DELETED_DISPLAY_NAME.into();
            u.status_text = String::new();
            u.presence = Chosen::Online;
            u.deleted = true;
        });
        self.end_every_login(user, writes, "this account was deleted by the server's owner");
        let wire = self.user_wire(user);
        self.reply(cx.session, cx.rid, ReplyResult::User(wire.clone()));
        for community in communities {
            self.remove_member(community, user, MemberLeftReason::Deleted, None);
        }
        self.removed_from_groups(user, groups);
        self.messages_deleted(user, &doomed);
        self.fan_out(&audience, EventBody::UserUpdated(wire));
        Ok(())
    }

    /// A deleted account is a tombstone: nothing more can be done to it.
    fn refuse_deleted(&self, user: UserId) -> Outcome {
        match self.directory[&user].stored.deleted {
            true => Err(Refusal::Invalid("that account was deleted")),
            false => Ok(()),
        }
    }

    /// Persists `writes` with the revocation of every login `user` has,
    /// then closes each of their sessions with `reason`.
    fn end_every_login(&mut self, user: UserId, mut writes: Vec<Write>, reason: &str) {
        let revoked = self.directory.revoke_all(user);
        writes.extend(revoked.iter().map(|&id| Write::RevokeToken { id }));
        self.persist(writes);
        let sessions: Vec<SessionId> = self.sessions.of_user(user).collect();
        for s in sessions {
            self.drop_session(s);
            self.emit(Output::Close { session: s, code: CloseCode::TokenRevoked, reason: reason.into() });
        }
        self.refresh_presence(user);
    }

    /// Refuses a sign-in to a suspended account, saying so: whoever gets
    /// this far holds the account's password, code or token.
    pub(super) fn refuse_suspended(&self, user: UserId) -> Outcome {
        match self.directory.suspension(user) {
            None => Ok(()),
            Some("") => Err(forbidden("this account is suspended by the server's owner")),
            Some(why) => Err(forbidden(format!("this account is suspended by the server's owner: {why}"))),
        }
    }

    /// The server owner's: a one-time code with which someone sets a new
    /// password (an imported account has none; people forget theirs).
    pub(super) fn issue_reset_code(
        &mut self,
        cx: Cx,
        username_fold: &str,
        code: String,
        code_hash: TokenHash,
    ) -> Outcome {
        if !self.directory.is_owner(cx.me) {
            return Err(forbidden("only the server's owner can reset a password"));
        }
        let user = self.directory.find(username_fold).ok_or(Refusal::NotFound("user"))?;
        if self.is_bot(user) {
            return Err(Refusal::Invalid("a bot has no password: give it a new token instead"));
        }
        if self.is_guest(user) {
            return Err(Refusal::Invalid("a guest has no account to reset"));
        }
        self.refuse_deleted(user)?;
        let expires_at = cx.now.plus_ms(RESET_CODE_MS);
        self.directory.set_reset_code(user, code_hash, expires_at);
        self.persist(vec![Write::SetResetCode { user, hash: code_hash, expires_at }]);
        let web_link = match (&self.config.public_address, self.config.web) {
            (Some(server), true) => kith_proto::invite::InviteLink::render_reset(
                server,
                &self.directory[&user].stored.username,
                &code,
            ),
            _ => String::new(),
        };
        let answer =
            v1::ResetCode { user: Some(self.user_wire(user)), code, expires_at_ms: expires_at.0, web_link };
        self.reply(cx.session, cx.rid, ReplyResult::ResetCode(answer));
        Ok(())
    }

    /// A reset code used: the new password replaces the old, every earlier
    /// login of the account ends, and this session signs in.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn redeem_reset_code(
        &mut self,
        now: Timestamp,
        session: SessionId,
        rid: u64,
        user: UserId,
        code_hash: TokenHash,
        password_hash: String,
        token: String,
        token_hash: TokenHash,
    ) -> Outcome {
        if !self.directory.reset_code_stands(user, &code_hash, now) {
            return Err(Refusal::BadCredentials);
        }
        self.refuse_suspended(user)?;
        self.directory.clear_reset_code(user);
        let writes = vec![Write::SetPassword { user, password_hash }];
        self.end_every_login(user, writes, "this account's password was reset");
        let stored = StoredToken { id: TokenId(self.ids.next(now)), user, hash: token_hash };
        self.persist(vec![Write::CreateToken { token: stored.clone(), created_at: now }]);
        self.directory.add_token(token_hash, stored.id, user);
        self.bind(session, rid, Auth { user, token: Some(stored.id) }, token, String::new());
        Ok(())
    }

    /// Marks the session authenticated and answers with the `Ready` snapshot
    /// (`resume_refused` says why, when it answers a failed resume).
    pub(super) fn bind(
        &mut self,
        session: SessionId,
        rid: u64,
        auth: Auth,
        token: String,
        resume_refused: String,
    ) {
        let Some(session_id) = self.sessions.bind(session, auth) else { return };
        self.refresh_presence(auth.user);
        let communities =
            self.memberships.communities(auth.user).map(|id| self.community_wire(id, auth.user)).collect();
        let ready = v1::Ready {
            user: Some(self.user_wire(auth.user)),
            token,
            server_owner: self.directory.is_owner(auth.user),
            communities,
            session_id,
            resume_refused,
            direct_channels: self
                .directs_of(auth.user)
                .into_iter()
                .map(|id| self.channel_wire(id, auth.user))
                .collect(),
            presences: self.presences_for(auth.user),
        };
        self.reply(session, rid, ReplyResult::Ready(ready));
        // Pipes offered while this user was away: this session hears of them.
        for offer in self.offers_for(auth.user) {
            let event = super::Outgoing::event(EventBody::PipeOffered(offer));
            let entry = self.journal(&event);
            self.deliver(session, entry, &event);
            self.journal.settle(entry);
        }
    }

    pub(super) fn logout(&mut self, session: SessionId, rid: u64, auth: Auth, everywhere: bool) -> Outcome {
        let revoked = self.directory.revoke(auth.user, |id| everywhere || auth.token == Some(id));
        if !revoked.is_empty() {
            self.persist(revoked.iter().map(|&id| Write::RevokeToken { id }).collect());
        }
        self.reply_empty(session, rid);

        let sessions: Vec<SessionId> = self.sessions.of_user(auth.user).collect();
        for s in sessions {
            let token = self.sessions.auth(s).and_then(|a| a.token);
            // This session ends either way (a guest's has no token to revoke).
            if s != session && !token.is_some_and(|t| revoked.contains(&t)) {
                continue;
            }
            let (code, reason) = if s == session {
                (CloseCode::Normal, "logged out")
            } else {
                (CloseCode::TokenRevoked, "this login was revoked")
            };
            // Forget it now so nothing more is sent to it (and it cannot be
            // resumed); the edge then closes it.
            self.drop_session(s);
            self.emit(Output::Close { session: s, code, reason: reason.into() });
        }
        self.refresh_presence(auth.user);
        Ok(())
    }

    pub(super) fn update_profile(
        &mut self,
        cx: Cx,
        display_name: Option<DisplayName>,
        status_text: Option<StatusText>,
    ) -> Outcome {
        if let Some(DisplayName(d)) = &display_name {
            let communities: Vec<CommunityId> = self.memberships.communities(cx.me).collect();
            for community in communities {
                self.refuse_look_alike(community, cx.me, d, "display name")?;
            }
        }
        let u = &mut self.directory.get_mut(cx.me).expect("authenticated user exists").stored;
        if let Some(DisplayName(d)) = display_name {
            u.display_name = d;
        }
        if let Some(StatusText(s)) = status_text {
            u.status_text = s;
        }
        let (display_name, status_text) = (u.display_name.clone(), u.status_text.clone());
        self.persist(vec![Write::UpdateUser { id: cx.me, display_name, status_text }]);
        let wire = self.user_wire(cx.me);
        self.reply(cx.session, cx.rid, ReplyResult::User(wire.clone()));
        let audience = self.acquaintances(cx.me);
        self.fan_out(&audience, EventBody::UserUpdated(wire));
        Ok(())
    }

    /// Refuses a name for `user` that others in `community` could take for
    /// another member: one that looks like (UTS #39 confusables, with and
    /// without case) another member's username, display name or nickname.
    pub(super) fn refuse_look_alike(
        &self,
        community: CommunityId,
        user: UserId,
        name: &str,
        what: &str,
    ) -> Outcome {
        let wanted = look_alike_keys(name);
        let c = &self.communities[&community];
        for (other, m) in &c.members {
            if *other == user {
                continue;
            }
            let u = &self.directory[other].stored;
            let theirs = [Some(u.username.as_str()), Some(u.display_name.as_str()), m.nickname.as_deref()];
            for shown in theirs.into_iter().flatten() {
                let keys = look_alike_keys(shown);
                if wanted.iter().any(|w| keys.contains(w)) {
                    return Err(forbidden(format!(
                        "that {what} looks like {}'s name in {}: pick one people can tell apart",
                        u.username, c.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// `user` and everyone who shares a community or a conversation with
    /// them: who sees their profile and presence — of those in communities,
    /// the ones an event can reach ([`Hub::reachable_members`]).
    pub(super) fn acquaintances(&self, user: UserId) -> Vec<UserId> {
        let mut all = BTreeSet::from([user]);
        for c in self.memberships.communities(user) {
            all.extend(self.reachable_members(c));
        }
        for d in self.memberships.directs(user) {
            all.extend(self.directs[&d].members.iter().copied());
        }
        all.into_iter().collect()
    }
}
