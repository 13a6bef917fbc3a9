//! Voice channels: who is in which, muted or deafened, and the routing the
//! edges forward audio datagrams by.
//!
//! The hub never sees audio. It keeps who is in voice and publishes, per voice
//! channel, the sessions in it and whether each may speak and hears
//! ([`Output::VoiceRoom`]); the connection tasks forward packets by that table
//! without asking the hub (ARCHITECTURE.md, decision 20).
//!
//! Handlers only change `voice` (and a member's server mute); [`Hub::voice_sync`]
//! then derives everything else by comparing with what was last shown: whom
//! the permissions no longer let stay, the `voice_state_updated` events, and
//! the rooms to republish. So a role edit, an override, a timeout, a kick or a
//! dropped connection changes voice by the same path as a join.

use std::collections::{BTreeMap, BTreeSet};

use kith_proto::v1::{self, event::Body as EventBody, reply::Result as ReplyResult};

use super::{Cx, Hub, Outcome, Output, Refusal, forbidden};
use crate::ids::{ChannelId, CommunityId, SessionId, UserId};
use crate::permissions::Permissions;

/// Most users in one voice channel unless the operator says otherwise. The
/// server forwards each packet to every other member, so a room's traffic
/// grows with the square of its size.
pub const DEFAULT_VOICE_ROOM: usize = 100;

/// One user in voice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InVoice {
    /// The session whose connection carries the user's audio.
    pub session: SessionId,
    pub channel: ChannelId,
    pub self_mute: bool,
    pub self_deaf: bool,
}

/// One session's place in a voice room, as the edges forward by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct VoiceRoute {
    pub session: SessionId,
    /// Stamped on every packet this session sends.
    pub user: UserId,
    /// Its packets are forwarded (not muted by itself, a moderator, or a
    /// missing SPEAK).
    pub speaks: bool,
    /// It is sent the others' packets (not deafened).
    pub hears: bool,
}

/// Who is in voice, and what was last shown and published of it.
#[derive(Debug, Default)]
pub(super) struct Voice {
    /// Who is in voice, where.
    present: BTreeMap<UserId, InVoice>,
    /// The users in each voice channel that has any.
    rooms: BTreeMap<ChannelId, BTreeSet<UserId>>,
    /// Each user's voice state as last sent to others.
    shown: BTreeMap<UserId, v1::VoiceState>,
    /// Each room's routing as last published to the edges.
    published: BTreeMap<ChannelId, Vec<VoiceRoute>>,
    /// A session went or came during this input: voice may differ. (Other
    /// changes that matter to voice are writes: `Outbox::take_access_changed`.)
    sessions_changed: bool,
}

impl Voice {
    pub(super) fn get(&self, user: UserId) -> Option<&InVoice> {
        self.present.get(&user)
    }

    /// Puts `user` in voice (or out of it), keeping `rooms` in step.
    fn set(&mut self, user: UserId, to: Option<InVoice>) {
        if let Some(old) = self.present.remove(&user)
            && let Some(room) = self.rooms.get_mut(&old.channel)
        {
            room.remove(&user);
            if room.is_empty() {
                self.rooms.remove(&old.channel);
            }
        }
        if let Some(v) = to {
            self.rooms.entry(v.channel).or_default().insert(user);
            self.present.insert(user, v);
        }
    }

    /// Who is in voice in `channel`.
    fn room(&self, channel: ChannelId) -> impl Iterator<Item = UserId> + '_ {
        self.rooms.get(&channel).into_iter().flatten().copied()
    }

    fn room_len(&self, channel: ChannelId) -> usize {
        self.rooms.get(&channel).map_or(0, BTreeSet::len)
    }

    /// A session came or went: voice is re-derived after this input.
    pub(super) fn sessions_changed(&mut self) {
        self.sessions_changed = true;
    }

    /// Whether voice needs re-deriving after an input, given whether it
    /// changed anyone's access. Nobody in voice and nothing shown: no.
    pub(super) fn needs_sync(&mut self, access_changed: bool) -> bool {
        let changed = access_changed | std::mem::take(&mut self.sessions_changed);
        changed && !(self.present.is_empty() && self.shown.is_empty())
    }

    /// Records what `user`'s state is now shown as; `Some(before)` if that
    /// differs from what was shown.
    fn show(&mut self, user: UserId, now: Option<v1::VoiceState>) -> Option<Option<v1::VoiceState>> {
        let before = self.shown.get(&user).copied();
        if now == before {
            return None;
        }
        match now {
            Some(s) => self.shown.insert(user, s),
            None => self.shown.remove(&user),
        };
        Some(before)
    }

    /// The rooms whose routing differs from what was last published, now
    /// marked published: emptied rooms first, so a moved session's old route
    /// is withdrawn before its new one is set. Needs every present user's
    /// state shown ([`Voice::show`]), so no second permission pass is made.
    fn republish(&mut self) -> Vec<(ChannelId, Vec<VoiceRoute>)> {
        let mut rooms: BTreeMap<ChannelId, Vec<VoiceRoute>> = BTreeMap::new();
        for (user, v) in &self.present {
            let state = &self.shown[user];
            let speaks = !(state.self_mute || state.self_deaf || state.server_mute);
            let route = VoiceRoute { session: v.session, user: *user, speaks, hears: !v.self_deaf };
            rooms.entry(v.channel).or_default().push(route);
        }
        let emptied: Vec<ChannelId> =
            self.published.keys().filter(|c| !rooms.contains_key(c)).copied().collect();
        let mut changed = Vec::new();
        for channel in emptied {
            self.published.remove(&channel);
            changed.push((channel, Vec::new()));
        }
        for (channel, mut members) in rooms {
            members.sort();
            if self.published.get(&channel) != Some(&members) {
                self.published.insert(channel, members.clone());
                changed.push((channel, members));
            }
        }
        changed
    }
}

impl Hub {
    pub(super) fn join_voice(
        &mut self,
        cx: Cx,
        channel: ChannelId,
        self_mute: bool,
        self_deaf: bool,
    ) -> Outcome {
        let (community, p) = self.channel_permissions(channel, cx.me, cx.now)?;
        if !self.channel(channel).is_some_and(|c| c.voice) {
            return Err(Refusal::Invalid("that is not a voice channel"));
        }
        if !p.contains(Permissions::CONNECT) {
            return Err(self.lacking(community, cx.me, cx.now, "connect to voice in this channel"));
        }
        let already = self.voice.get(cx.me).is_some_and(|v| v.channel == channel);
        if !already && self.room_full(channel) {
            return Err(self.full());
        }
        self.set_voice(cx.me, Some(InVoice { session: cx.session, channel, self_mute, self_deaf }));
        self.voice_sync();
        let state = self.voice_wire(cx.me);
        self.reply(cx.session, cx.rid, ReplyResult::VoiceState(state));
        Ok(())
    }

    pub(super) fn leave_voice(&mut self, cx: Cx) -> Outcome {
        self.set_voice(cx.me, None);
        self.voice_sync();
        self.reply_empty(cx.session, cx.rid);
        Ok(())
    }

    pub(super) fn update_voice_state(
        &mut self,
        cx: Cx,
        self_mute: Option<bool>,
        self_deaf: Option<bool>,
    ) -> Outcome {
        let Some(mut v) = self.voice.get(cx.me).copied() else {
            return Err(Refusal::Invalid("you are not in a voice channel"));
        };
        v.self_mute = self_mute.unwrap_or(v.self_mute);
        v.self_deaf = self_deaf.unwrap_or(v.self_deaf);
        self.set_voice(cx.me, Some(v));
        self.voice_sync();
        let state = self.voice_wire(cx.me);
        self.reply(cx.session, cx.rid, ReplyResult::VoiceState(state));
        Ok(())
    }

    pub(super) fn moderate_voice(
        &mut self,
        cx: Cx,
        community: CommunityId,
        user: UserId,
        mute: Option<bool>,
        move_to: Option<Option<ChannelId>>,
    ) -> Outcome {
        if mute.is_some() {
            self.moderate(cx, community, user, Permissions::MUTE_MEMBERS, "mute members")?;
        }
        if let Some(to) = move_to {
            self.moderate(cx, community, user, Permissions::MOVE_MEMBERS, "move members")?;
            let in_here =
                self.voice.get(user).filter(|v| self.channel_home.get(&v.channel) == Some(&community));
            let Some(mut v) = in_here.copied() else {
                return Err(Refusal::Invalid("that member is not in a voice channel of this community"));
            };
            match to {
                None => self.set_voice(user, None),
                Some(to) => {
                    let (_, mine) = self.channel_permissions(to, cx.me, cx.now)?;
                    if !self.channel(to).is_some_and(|c| c.community == community && c.voice) {
                        return Err(Refusal::Invalid(
                            "move members to a voice channel of the same community",
                        ));
                    }
                    if !mine.contains(Permissions::CONNECT) {
                        return Err(forbidden("you lack the permission to connect to that channel"));
                    }
                    let theirs = self.channel_permissions_at(to, user, Some(cx.now));
                    if !theirs.is_some_and(|(_, p)| p.contains(Permissions::CONNECT)) {
                        return Err(forbidden("that member may not connect to that channel"));
                    }
                    if v.channel != to && self.room_full(to) {
                        return Err(self.full());
                    }
                    v.channel = to;
                    self.set_voice(user, Some(v));
                }
            }
        }
        if let Some(mute) = mute {
            let c = self.communities.get_mut(&community).expect("checked by moderate");
            c.members.get_mut(&user).expect("checked by moderate").voice_muted = mute;
        }
        self.voice_sync();
        self.reply_empty(cx.session, cx.rid);
        Ok(())
    }

    fn room_full(&self, channel: ChannelId) -> bool {
        self.voice.room_len(channel) >= self.config.voice_room
    }

    fn full(&self) -> Refusal {
        forbidden(format!("that voice channel is full ({} people)", self.config.voice_room))
    }

    pub(super) fn set_voice(&mut self, user: UserId, to: Option<InVoice>) {
        self.voice.set(user, to);
    }

    /// Whether `user` may still be in voice in `v.channel` now: a live,
    /// connected session, and CONNECT there (which a timeout takes away).
    fn may_stay(&self, user: UserId, v: &InVoice) -> bool {
        let connected = self
            .sessions
            .get(v.session)
            .is_some_and(|s| s.detached_at.is_none() && s.auth.is_some_and(|a| a.user == user));
        let voice_channel = self.channel(v.channel).is_some_and(|c| c.voice);
        connected
            && voice_channel
            && self
                .channel_permissions_at(v.channel, user, Some(self.now))
                .is_some_and(|(_, p)| p.contains(Permissions::CONNECT))
    }

    /// Brings everything derived from `voice` up to date: removes whoever may
    /// no longer be there, tells viewers what changed, and republishes the
    /// rooms whose routing changed. The user's own sessions are told too,
    /// the one whose request caused the change included.
    pub(super) fn voice_sync(&mut self) {
        let gone: Vec<UserId> =
            self.voice.present.iter().filter(|(u, v)| !self.may_stay(**u, v)).map(|(u, _)| *u).collect();
        for user in gone {
            self.set_voice(user, None);
        }

        // Events: each user whose state differs from what was last shown.
        let users: BTreeSet<UserId> =
            self.voice.present.keys().chain(self.voice.shown.keys()).copied().collect();
        for user in users {
            let now = self.voice.present.contains_key(&user).then(|| self.voice_wire(user));
            let Some(before) = self.voice.show(user, now) else { continue };
            let state = match &now {
                Some(s) => *s,
                None => v1::VoiceState {
                    user_id: user.0,
                    community_id: before.as_ref().map_or(0, |b| b.community_id),
                    ..Default::default()
                },
            };
            // Those who could see the old channel and those who see the new,
            // and the user's own sessions wherever they are.
            let mut to: BTreeSet<UserId> = BTreeSet::from([user]);
            for channel in [before.map(|b| b.channel_id), now.map(|n| n.channel_id)].into_iter().flatten() {
                to.extend(self.viewers(ChannelId(channel)));
            }
            let to: Vec<UserId> = to.into_iter().collect();
            self.fan_out(&to, EventBody::VoiceStateUpdated(state));
        }

        for (channel, members) in self.voice.republish() {
            // Routing is not durable state and reveals nothing unwritten:
            // it goes out at once, not behind pending commits, so a mute
            // takes effect on the next packet.
            self.outbox.emit_now(Output::VoiceRoom { channel, members });
        }
    }

    /// `user`'s voice state as everyone sees it; `user` is in voice.
    pub(super) fn voice_wire(&self, user: UserId) -> v1::VoiceState {
        let v = self.voice.get(user).expect("in voice");
        let community = self.channel_home[&v.channel];
        let moderated = self
            .communities
            .get(&community)
            .and_then(|c| c.members.get(&user))
            .is_some_and(|m| m.voice_muted);
        let speak = self
            .channel_permissions_at(v.channel, user, Some(self.now))
            .is_some_and(|(_, p)| p.contains(Permissions::SPEAK));
        v1::VoiceState {
            user_id: user.0,
            channel_id: v.channel.0,
            community_id: community.0,
            self_mute: v.self_mute,
            self_deaf: v.self_deaf,
            server_mute: moderated || !speak,
        }
    }

    /// The voice states `viewer` may see in a community (those of the voice
    /// channels it can view), for its snapshot.
    pub(super) fn voice_states_in(&self, community: CommunityId, viewer: UserId) -> Vec<v1::VoiceState> {
        let c = &self.communities[&community];
        c.channels
            .keys()
            .filter(|ch| self.voice.room_len(**ch) > 0 && self.can_view(**ch, viewer))
            .flat_map(|ch| self.voice.room(*ch))
            .map(|u| self.voice_wire(u))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_voice(session: u64, channel: u64) -> InVoice {
        InVoice {
            session: SessionId(session),
            channel: ChannelId(channel),
            self_mute: false,
            self_deaf: false,
        }
    }

    fn shown(voice: &mut Voice, user: u64, channel: u64) {
        let state = v1::VoiceState { user_id: user, channel_id: channel, ..Default::default() };
        voice.show(UserId(user), Some(state));
    }

    #[test]
    fn only_rooms_that_changed_are_republished_and_emptied_ones_go_first() {
        let mut voice = Voice::default();
        voice.set(UserId(1), Some(in_voice(10, 100)));
        voice.set(UserId(2), Some(in_voice(20, 200)));
        shown(&mut voice, 1, 100);
        shown(&mut voice, 2, 200);
        let first: Vec<ChannelId> = voice.republish().into_iter().map(|(c, _)| c).collect();
        assert_eq!(first, [ChannelId(100), ChannelId(200)]);
        assert!(voice.republish().is_empty(), "nothing changed, nothing goes out");

        // User 2 moves from room 200 to room 300 (where nobody was).
        voice.set(UserId(2), Some(in_voice(20, 300)));
        shown(&mut voice, 2, 300);
        let moved = voice.republish();
        assert_eq!(moved[0], (ChannelId(200), Vec::new()), "the old route is withdrawn first");
        assert_eq!(moved[1].0, ChannelId(300));
        assert_eq!(moved.len(), 2, "room 100 is untouched");
        assert_eq!(voice.room(ChannelId(300)).collect::<Vec<_>>(), [UserId(2)]);
        assert_eq!(voice.room_len(ChannelId(200)), 0);
    }

    #[test]
    fn a_state_is_reported_changed_once() {
        let mut voice = Voice::default();
        let state = v1::VoiceState { user_id: 1, channel_id: 5, ..Default::default() };
        assert_eq!(voice.show(UserId(1), Some(state)), Some(None));
        assert_eq!(voice.show(UserId(1), Some(state)), None);
        assert_eq!(voice.show(UserId(1), None), Some(Some(state)));
        assert!(!voice.needs_sync(true), "nobody in voice, nothing shown: nothing to do");
    }
}
