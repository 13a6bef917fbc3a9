//! Presence (one status per user, made from all of their connections),
//! typing notices (ephemeral, never stored) and read state.

use std::collections::BTreeSet;

use kith_proto::v1::{self, PresenceStatus, event::Body as EventBody, reply::Result as ReplyResult};

use super::{Cx, Hub, Outcome};
use crate::ids::{ChannelId, CommunityId, MessageId, UserId};
use crate::permissions::Permissions;
use crate::request::Chosen;
use crate::store::Write;

/// How long a typing notice lasts unless renewed.
pub const TYPING_MS: u64 = 8_000;
/// Renewals closer together than this are not passed on.
const TYPING_REPEAT_MS: u64 = 3_000;
/// Typing entries kept before lapsed ones are swept.
const TYPING_SWEEP_AT: usize = 4096;
/// Read-state counts look at this many unread messages at most.
pub const MAX_UNREAD_COUNTED: usize = 1000;

/// What others see of a status.
fn public(status: PresenceStatus) -> PresenceStatus {
    if status == PresenceStatus::Invisible { PresenceStatus::Offline } else { status }
}

impl Hub {
    /// `user`'s presence as their own sessions see it: made from their chosen
    /// status and their connected (not detached) sessions.
    fn presence_now(&self, user: UserId) -> PresenceStatus {
        let connected: Vec<bool> = self
            .sessions
            .of_user(user)
            .filter_map(|s| self.sessions.get(s))
            .filter(|s| s.detached_at.is_none())
            .map(|s| s.afk)
            .collect();
        if connected.is_empty() {
            return PresenceStatus::Offline;
        }
        match self.directory[&user].stored.presence {
            Chosen::Invisible => PresenceStatus::Invisible,
            Chosen::Dnd => PresenceStatus::Dnd,
            Chosen::Idle => PresenceStatus::Idle,
            Chosen::Online if connected.iter().all(|afk| *afk) => PresenceStatus::Idle,
            Chosen::Online => PresenceStatus::Online,
        }
    }

    /// `user`'s presence as `viewer` sees it.
    pub(super) fn presence_seen(&self, user: UserId, viewer: UserId) -> PresenceStatus {
        let status = self.shown.get(&user).copied().unwrap_or(PresenceStatus::Offline);
        if user == viewer { status } else { public(status) }
    }

    pub(super) fn presence_wire(&self, user: UserId, viewer: UserId) -> v1::Presence {
        v1::Presence { user_id: user.0, status: self.presence_seen(user, viewer) as i32 }
    }

    /// The presences `viewer` is shown in a snapshot: everyone they can see
    /// who is not offline.
    pub(super) fn presences_for(&self, viewer: UserId) -> Vec<v1::Presence> {
        self.acquaintances(viewer)
            .into_iter()
            .filter(|u| self.presence_seen(*u, viewer) != PresenceStatus::Offline)
            .map(|u| self.presence_wire(u, viewer))
            .collect()
    }

    /// Recomputes `user`'s presence after their sessions or choice changed
    /// and sends the change: as it is to their own sessions, as others see it to
    /// everyone who can see them.
    pub(super) fn refresh_presence(&mut self, user: UserId) {
        let now = self.presence_now(user);
        let before = self.shown.get(&user).copied().unwrap_or(PresenceStatus::Offline);
        if now == before {
            return;
        }
        if now == PresenceStatus::Offline {
            self.shown.remove(&user);
        } else {
            self.shown.insert(user, now);
        }
        // The user's own sessions hear of changes while connected. Coming
        // online is in the new session's snapshot, and going offline reaches
        // only detached sessions, which would replay it needlessly on resume.
        if now != PresenceStatus::Offline && before != PresenceStatus::Offline {
            let own = v1::Presence { user_id: user.0, status: now as i32 };
            self.fan_out(&[user], EventBody::PresenceUpdated(own));
        }
        if public(before) == PresenceStatus::Offline && public(now) != PresenceStatus::Offline {
            // Snapshots of large communities list only who is around: the
            // others there learn who this is before that they are here.
            let paged: Vec<CommunityId> =
                self.memberships.communities(user).filter(|c| self.members_paged(*c)).collect();
            for community in paged {
                self.member_changed(community, user);
            }
        }
        if public(now) != public(before) {
            let others: Vec<UserId> = self.acquaintances(user).into_iter().filter(|u| *u != user).collect();
            let seen = v1::Presence { user_id: user.0, status: public(now) as i32 };
            self.fan_out(&others, EventBody::PresenceUpdated(seen));
        }
    }

    /// `user` may now see people they could not (`known` is who they could
    /// see before): tells them the presence of each newcomer who is not
    /// offline, and, `both_ways`, tells the newcomers theirs.
    pub(super) fn introduce(&mut self, user: UserId, known: &[UserId], both_ways: bool) {
        let known: BTreeSet<UserId> = known.iter().copied().collect();
        let new: Vec<UserId> = self.acquaintances(user).into_iter().filter(|u| !known.contains(u)).collect();
        for other in &new {
            if self.presence_seen(*other, user) != PresenceStatus::Offline {
                let p = self.presence_wire(*other, user);
                self.fan_out(&[user], EventBody::PresenceUpdated(p));
            }
        }
        let mine = public(self.shown.get(&user).copied().unwrap_or(PresenceStatus::Offline));
        if both_ways && mine != PresenceStatus::Offline {
            let p = v1::Presence { user_id: user.0, status: mine as i32 };
            self.fan_out(&new, EventBody::PresenceUpdated(p));
        }
    }

    pub(super) fn set_presence(&mut self, cx: Cx, status: Option<Chosen>, afk: Option<bool>) -> Outcome {
        if let Some(status) = status {
            let stored = &mut self.directory.get_mut(cx.me).expect("authenticated user exists").stored;
            if stored.presence != status {
                stored.presence = status;
                self.persist(vec![Write::SetPresence { user: cx.me, status }]);
            }
        }
        if let Some(afk) = afk {
            self.sessions.get_mut(cx.session).expect("requesting session exists").afk = afk;
        }
        self.refresh_presence(cx.me);
        let wire = self.presence_wire(cx.me, cx.me);
        self.reply(cx.session, cx.rid, ReplyResult::Presence(wire));
        Ok(())
    }

    // ----- typing ---------------------------------------------------------------

    pub(super) fn typing(&mut self, cx: Cx, channel: ChannelId) -> Outcome {
        let (community, perms) = self.channel_permissions(channel, cx.me, cx.now)?;
        if !perms.contains(Permissions::SEND_MESSAGES) {
            return Err(self.lacking(community, cx.me, cx.now, "send messages in this channel"));
        }
        self.reply_empty(cx.session, cx.rid);
        let key = (cx.me, channel);
        if self.typing.get(&key).is_some_and(|t| cx.now < t.plus_ms(TYPING_REPEAT_MS)) {
            return Ok(());
        }
        if self.typing.len() >= TYPING_SWEEP_AT {
            let now = cx.now;
            self.typing.retain(|_, t| now < t.plus_ms(TYPING_MS));
        }
        self.typing.insert(key, cx.now);
        let others: Vec<UserId> = self.viewers(channel).into_iter().filter(|u| *u != cx.me).collect();
        let notice = v1::TypingStarted {
            channel_id: channel.0,
            user_id: cx.me.0,
            until_ms: cx.now.plus_ms(TYPING_MS).0,
        };
        self.fan_out(&others, EventBody::TypingStarted(notice));
        Ok(())
    }

    // ----- read state -------------------------------------------------------------

    /// `user`'s read state in `channel`: the last message read, and how many
    /// newer messages from others there are and how many of them mention `user`.
    pub(super) fn read_counts(&self, channel: ChannelId, user: UserId) -> (u64, u32, u32) {
        let Some(timeline) = self.timelines.get(&channel) else { return (0, 0, 0) };
        let last = timeline.read(user);
        // A newcomer starts reading at their join: what was said before is
        // history to browse, not a pile of unread messages.
        let joined = self
            .channel(channel)
            .and_then(|ch| self.communities.get(&ch.community)?.members.get(&user))
            .map_or(0, |m| MessageId::first_at(m.joined_at).0);
        let after = last.map_or(0, |m| m.0 + 1).max(joined);
        let (mut unread, mut mentions) = (0, 0);
        for (_, m) in timeline.live_from(MessageId(after)).take(MAX_UNREAD_COUNTED) {
            if m.author == user {
                continue;
            }
            unread += 1;
            if m.mentions(user) {
                mentions += 1;
            }
        }
        (last.map_or(0, |m| m.0), unread, mentions)
    }

    fn read_state_wire(&self, channel: ChannelId, user: UserId) -> v1::ReadState {
        let (last_read_id, unread_count, mention_count) = self.read_counts(channel, user);
        v1::ReadState { channel_id: channel.0, last_read_id, unread_count, mention_count }
    }

    pub(super) fn ack(&mut self, cx: Cx, channel: ChannelId, message: Option<MessageId>) -> Outcome {
        self.channel_permissions(channel, cx.me, cx.now)?;
        let newest = self.timelines.get(&channel).and_then(|t| t.newest());
        let last = match (message, newest) {
            (Some(m), Some(newest)) => Some(m.min(newest)),
            _ => None,
        };
        if self.timelines.entry(channel).or_default().set_read(cx.me, last) {
            self.persist(vec![Write::SetReadState { user: cx.me, channel, last_read: last }]);
            let state = self.read_state_wire(channel, cx.me);
            self.fan_out(&[cx.me], EventBody::ReadStateUpdated(state));
        }
        self.reply_empty(cx.session, cx.rid);
        Ok(())
    }
}
