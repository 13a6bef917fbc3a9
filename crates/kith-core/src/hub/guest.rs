//! Guests: people let in without an account by a gateway whose operator
//! allows it (the telnet gateway's guest access).
//!
//! A guest gets a fresh account named `guest-N` with no password (nobody can
//! ever log in to it), joins one community for as long as its session lasts,
//! and leaves it when the session ends. Its permissions there are capped:
//! reading, and writing only if the gateway allows it (at the guest rate).
//! It cannot manage anything, invite, join other communities, or open or be
//! added to conversations. Its sessions cannot be resumed.
//!
//! The account row is stored (a guest's messages, a ban on it, its read
//! states all refer to it); its membership is not: after a restart no guest
//! is in any community. A guest that wrote something keeps its name for
//! good, so no later guest inherits its messages; one that wrote nothing
//! (and is banned nowhere) goes to the next visitor, so that sign-ins do not
//! pile up rows.

use kith_proto::v1::MemberLeftReason;

use super::{Auth, Hub, Member, Outcome, forbidden};
use crate::ids::{CommunityId, SessionId, Timestamp, UserId};
use crate::permissions::guest_ceiling;
use crate::request::{Chosen, Request};
use crate::store::{StoredUser, Write};
use crate::text::Username;

impl Hub {
    /// Signs `session` in as a new guest of the community named `community`
    /// (the oldest of that name, matched without regard to case).
    pub(super) fn guest_sign_in(
        &mut self,
        now: Timestamp,
        session: SessionId,
        rid: u64,
        community: &str,
        can_send: bool,
    ) -> Outcome {
        let wanted = Username::fold(community);
        let Some(community) =
            self.communities.iter().find(|(_, c)| Username::fold(&c.name) == wanted).map(|(id, _)| *id)
        else {
            return Err(forbidden(
                "guest access is not available: the community guests join does not exist; \
                 ask the server's owner",
            ));
        };
        let bans = &self.communities[&community].bans;
        if let Some(id) = self.directory.take_guest(|g| !bans.contains_key(&g)) {
            // A visitor before this one left nothing behind: this visitor
            // takes its account (and name) instead of a new row.
            self.forget_read_marks(id, community);
            self.directory.get_mut(id).expect("an idle guest's account").guest = true;
            let member = Member { ceiling: Some(guest_ceiling(can_send)), ..Member::new(now) };
            self.join_without_writing(community, id, member);
            self.bind(session, rid, Auth { user: id, token: None }, String::new(), String::new());
            return Ok(());
        }
        let username = self.directory.next_guest_name();
        let user = StoredUser {
            id: UserId(self.ids.next(now)),
            display_name: username.name.clone(),
            username: username.name,
            fold: username.fold,
            skeleton: username.skeleton,
            status_text: String::new(),
            server_owner: false,
            presence: Chosen::Online,
            bot: false,
            deleted: false,
        };
        // An empty hash is no PHC string: every password check fails.
        self.persist(vec![Write::CreateUser {
            user: user.clone(),
            password_hash: String::new(),
            created_at: now,
        }]);
        let id = user.id;
        self.directory.add(user);
        self.directory.get_mut(id).expect("just added").guest = true;
        // Joined in memory only (see the module docs), with the ceiling.
        let member = Member { ceiling: Some(guest_ceiling(can_send)), ..Member::new(now) };
        self.join_without_writing(community, id, member);
        // Guests have no token: nothing can authenticate or resume as one.
        self.bind(session, rid, Auth { user: id, token: None }, String::new(), String::new());
        Ok(())
    }

    pub(super) fn is_guest(&self, user: UserId) -> bool {
        self.directory.is_guest(user)
    }

    /// What a guest may ask for: reading, writing (permissions still
    /// decide), and the small things a reader does.
    pub(super) fn guest_may(request: &Request) -> Outcome {
        match request {
            Request::Logout { .. }
            | Request::History(_)
            | Request::SendMessage { .. }
            | Request::EditMessage { .. }
            | Request::DeleteMessage { .. }
            | Request::Typing { .. }
            | Request::Ack { .. }
            | Request::SetPresence { .. } => Ok(()),
            _ => Err(forbidden("guests can read and (where allowed) write; create an account for more")),
        }
    }

    /// The guest's last session is gone: it leaves its community, and its
    /// account stays only as the author of what it wrote.
    pub(super) fn end_guest(&mut self, user: UserId) {
        let Some(u) = self.directory.get_mut(user) else { return };
        u.guest = false;
        let joined: Vec<CommunityId> = self.memberships.communities(user).collect();
        for community in joined {
            self.remove_member(community, user, MemberLeftReason::Left, None);
        }
        if self.recyclable_guest(user) {
            self.directory.park_guest(user);
        }
    }

    /// A guest account that can go to a later visitor: it wrote nothing
    /// (nobody would take the newcomer for its author) and is banned
    /// nowhere.
    pub(super) fn recyclable_guest(&self, user: UserId) -> bool {
        self.directory.get(user).is_some_and(|u| !u.authored && !u.guest)
            && !self.memberships.banned_anywhere(user)
    }

    /// Clears `user`'s read marks in `community`'s channels (persisted), so
    /// that a recycled guest account starts reading afresh.
    fn forget_read_marks(&mut self, user: UserId, community: CommunityId) {
        let channels: Vec<_> = self.communities[&community].channels.keys().copied().collect();
        let writes: Vec<Write> = channels
            .into_iter()
            .filter(|ch| self.timelines.get_mut(ch).is_some_and(|t| t.set_read(user, None)))
            .map(|channel| Write::SetReadState { user, channel, last_read: None })
            .collect();
        if !writes.is_empty() {
            self.persist(writes);
        }
    }
}
