//! Conversations outside communities: direct (two users) and groups (up to
//! 10). They carry the same messages as channels; who may take part is the
//! only difference.

use crate::ids::IdMap;
use std::collections::BTreeSet;

use kith_proto::v1::{self, event::Body as EventBody, reply::Result as ReplyResult};

use super::{Cx, Hub, Outcome, Refusal, forbidden};
use crate::ids::{ChannelId, UserId};
use crate::permissions::Permissions;
use crate::request::MAX_GROUP;
use crate::store::{StoredDirect, Write};
use crate::text::GroupName;

/// A conversation outside communities: two users, or a group of up to 10.
#[derive(Debug)]
pub(super) struct Direct {
    pub(super) group: bool,
    pub(super) name: String,
    pub(super) owner: Option<UserId>,
    /// In the order they joined.
    pub(super) members: Vec<UserId>,
}

/// Every conversation outside communities, and the one of each pair.
#[derive(Debug, Default)]
pub(super) struct Directs {
    by_id: IdMap<ChannelId, Direct>,
    /// The conversation of two of each pair (lower id first): there is one.
    pairs: IdMap<(UserId, UserId), ChannelId>,
}

impl std::ops::Index<&ChannelId> for Directs {
    type Output = Direct;

    fn index(&self, id: &ChannelId) -> &Direct {
        &self.by_id[id]
    }
}

impl Directs {
    fn insert(&mut self, id: ChannelId, d: Direct) {
        if !d.group
            && let [a, b] = d.members[..]
        {
            self.pairs.insert((a.min(b), a.max(b)), id);
        }
        self.by_id.insert(id, d);
    }

    pub(super) fn get(&self, id: &ChannelId) -> Option<&Direct> {
        self.by_id.get(id)
    }

    /// A conversation, to change its name, owner or (for a group) members.
    fn get_mut(&mut self, id: &ChannelId) -> Option<&mut Direct> {
        self.by_id.get_mut(id)
    }

    /// Forgets a conversation nobody is left in (only groups empty).
    fn remove(&mut self, id: &ChannelId) {
        if let Some(d) = self.by_id.remove(id)
            && !d.group
            && let [a, b] = d.members[..]
        {
            self.pairs.remove(&(a.min(b), a.max(b)));
        }
    }

    /// The conversation of `a` and `b`, if they have one.
    fn pair(&self, a: UserId, b: UserId) -> Option<ChannelId> {
        self.pairs.get(&(a.min(b), a.max(b))).copied()
    }

    /// Every conversation (for the index check debug builds make).
    #[cfg(debug_assertions)]
    pub(super) fn iter(&self) -> impl Iterator<Item = (&ChannelId, &Direct)> {
        self.by_id.iter()
    }
}

impl Hub {
    /// What a participant may do: view and send, except in a direct
    /// conversation with someone they no longer share a community with, which
    /// they may only read.
    pub(super) fn direct_permissions(&self, d: &Direct, user: UserId) -> Permissions {
        let read = Permissions::VIEW_CHANNEL;
        if !d.members.contains(&user) {
            return Permissions::empty();
        }
        let reachable = d.group || d.members.iter().all(|m| *m == user || self.share_community(user, *m));
        if reachable { read | Permissions::SEND_MESSAGES } else { read }
    }

    pub(super) fn share_community(&self, a: UserId, b: UserId) -> bool {
        self.memberships.communities(a).any(|c| self.communities[&c].members.contains_key(&b))
    }

    /// The conversations `user` takes part in, in id order.
    pub(super) fn directs_of(&self, user: UserId) -> Vec<ChannelId> {
        self.memberships.directs(user).collect()
    }

    /// The groups (not conversations of two) `user` takes part in.
    fn groups_of(&self, user: UserId) -> impl Iterator<Item = ChannelId> + '_ {
        self.memberships.directs(user).filter(|id| self.directs[id].group)
    }

    /// Refuses to put `user` in one more group once they are in the most
    /// one account may be (their snapshot stays loadable whatever others do).
    fn room_in_groups(&self, user: UserId) -> Outcome {
        let groups = self.groups_of(user).count();
        if groups >= super::MAX_GROUPS_PER_USER {
            let name = self.directory.get(user).map_or("?", |u| u.stored.username.as_str());
            return Err(forbidden(format!("{name} is in as many group conversations as one account may be")));
        }
        Ok(())
    }

    pub(super) fn add_direct(&mut self, d: StoredDirect) {
        if d.members.is_empty() {
            return;
        }
        self.memberships.direct_changed(d.id, &[], &d.members);
        self.directs
            .insert(d.id, Direct { group: d.group, name: d.name, owner: d.owner, members: d.members });
    }

    fn stored_direct(&self, id: ChannelId) -> StoredDirect {
        let d = &self.directs[&id];
        StoredDirect { id, group: d.group, name: d.name.clone(), owner: d.owner, members: d.members.clone() }
    }

    /// Refuses unless `other` is a user `me` shares a community with; anyone
    /// else answers like a user that does not exist.
    fn reachable(&self, me: UserId, other: UserId) -> Outcome {
        if self.is_guest(other) {
            return Err(forbidden("guests cannot be in conversations"));
        }
        if other != me && self.directory.contains(other) && self.share_community(me, other) {
            Ok(())
        } else {
            Err(Refusal::NotFound("user"))
        }
    }

    pub(super) fn open_direct(&mut self, cx: Cx, users: Vec<UserId>, name: GroupName) -> Outcome {
        let others: Vec<UserId> = users.into_iter().filter(|u| *u != cx.me).collect();
        if others.is_empty() {
            return Err(Refusal::Invalid("name at least one other user"));
        }
        for other in &others {
            self.reachable(cx.me, *other)?;
        }
        let group = others.len() > 1;
        if !group && !name.0.is_empty() {
            return Err(Refusal::Invalid("a direct conversation has no name; name only groups"));
        }
        if !group && let Some(existing) = self.directs.pair(cx.me, others[0]) {
            let wire = self.channel_wire(existing, cx.me);
            self.reply(cx.session, cx.rid, ReplyResult::Channel(wire));
            return Ok(());
        }
        if group {
            for member in std::iter::once(cx.me).chain(others.iter().copied()) {
                self.room_in_groups(member)?;
            }
        }
        let id = ChannelId(self.ids.next(cx.now));
        let members: Vec<UserId> = std::iter::once(cx.me).chain(others.iter().copied()).collect();
        let known: Vec<(UserId, Vec<UserId>)> =
            members.iter().map(|m| (*m, self.acquaintances(*m))).collect();
        let stored = StoredDirect { id, group, name: name.0, owner: group.then_some(cx.me), members };
        self.persist(vec![Write::PutDirect { direct: stored.clone() }]);
        let members = stored.members.clone();
        self.add_direct(stored);
        let wire = self.channel_wire(id, cx.me);
        self.reply(cx.session, cx.rid, ReplyResult::Channel(wire));
        self.fan_out_each(&members, |hub, u| EventBody::ChannelCreated(hub.channel_wire(id, u)));
        for (member, known) in known {
            self.introduce(member, &known, false);
        }
        Ok(())
    }

    pub(super) fn update_group(
        &mut self,
        cx: Cx,
        channel: ChannelId,
        name: Option<GroupName>,
        add: Vec<UserId>,
        remove: Vec<UserId>,
    ) -> Outcome {
        let d = self
            .directs
            .get(&channel)
            .filter(|d| d.members.contains(&cx.me))
            .ok_or(Refusal::NotFound("channel"))?;
        if !d.group {
            return Err(forbidden("a direct conversation cannot be changed; open a group instead"));
        }
        for r in &remove {
            if !d.members.contains(r) {
                return Err(Refusal::NotFound("participant"));
            }
            if *r != cx.me && d.owner != Some(cx.me) {
                return Err(forbidden("only the group's owner can remove others"));
            }
        }
        let add: Vec<UserId> = add.into_iter().filter(|u| !d.members.contains(u)).collect();
        for a in &add {
            self.reachable(cx.me, *a)?;
            self.room_in_groups(*a)?;
        }
        let d = &self.directs[&channel];
        if d.members.len() + add.len() - remove.len() > MAX_GROUP {
            return Err(Refusal::Invalid("a group has at most 10 participants"));
        }
        let before: BTreeSet<UserId> = d.members.iter().copied().collect();
        let known: Vec<(UserId, Vec<UserId>)> =
            before.iter().chain(&add).map(|m| (*m, self.acquaintances(*m))).collect();

        let d = self.directs.get_mut(&channel).expect("checked above");
        d.members.retain(|m| !remove.contains(m));
        d.members.extend(add.iter().copied());
        if let Some(GroupName(n)) = name {
            d.name = n;
        }
        if d.owner.is_some_and(|o| !d.members.contains(&o)) {
            d.owner = d.members.first().copied();
        }
        let members = d.members.clone();
        let before_list: Vec<UserId> = before.iter().copied().collect();
        self.memberships.direct_changed(channel, &before_list, &members);
        self.persist(vec![Write::PutDirect { direct: self.stored_direct(channel) }]);
        if members.is_empty() {
            self.directs.remove(&channel);
        }

        if members.contains(&cx.me) {
            let wire = self.channel_wire(channel, cx.me);
            self.reply(cx.session, cx.rid, ReplyResult::Channel(wire));
        } else {
            self.reply_empty(cx.session, cx.rid);
        }
        let deleted = v1::ChannelDeleted { community_id: 0, channel_id: channel.0 };
        self.fan_out(&remove, EventBody::ChannelDeleted(deleted));
        let stayed: Vec<UserId> = members.iter().filter(|m| before.contains(m)).copied().collect();
        self.fan_out_each(&stayed, |hub, u| EventBody::ChannelUpdated(hub.channel_wire(channel, u)));
        self.fan_out_each(&add, |hub, u| EventBody::ChannelCreated(hub.channel_wire(channel, u)));
        for (member, known) in known {
            if members.contains(&member) {
                self.introduce(member, &known, false);
            }
        }
        Ok(())
    }

    /// Takes `user` out of every group they are in: their own choice, or
    /// the server owner's (the operator's remedy for someone others keep
    /// adding to groups).
    pub(super) fn leave_groups(&mut self, cx: Cx, user: UserId) -> Outcome {
        if user != cx.me && !self.directory.is_owner(cx.me) {
            return Err(forbidden("only the server's owner can take someone else out of their groups"));
        }
        if !self.directory.contains(user) {
            return Err(Refusal::NotFound("user"));
        }
        let (groups, writes) = self.remove_from_groups(user);
        self.persist(writes);
        self.reply_empty(cx.session, cx.rid);
        self.removed_from_groups(user, groups);
        Ok(())
    }

    /// Takes `user` out of every group they are in (in memory), passing a
    /// group they own to the next member; returns the groups and the writes
    /// that persist it. [`Hub::removed_from_groups`] tells everyone after.
    pub(super) fn remove_from_groups(&mut self, user: UserId) -> (Vec<ChannelId>, Vec<Write>) {
        let groups: Vec<ChannelId> = self.groups_of(user).collect();
        let mut writes = Vec::new();
        for channel in &groups {
            let d = self.directs.get_mut(channel).expect("found above");
            let before = d.members.clone();
            d.members.retain(|m| *m != user);
            self.memberships.direct_changed(*channel, &before, &d.members);
            if d.owner == Some(user) {
                d.owner = d.members.first().copied();
            }
            writes.push(Write::PutDirect { direct: self.stored_direct(*channel) });
        }
        (groups, writes)
    }

    pub(super) fn removed_from_groups(&mut self, user: UserId, groups: Vec<ChannelId>) {
        for channel in groups {
            let deleted = v1::ChannelDeleted { community_id: 0, channel_id: channel.0 };
            self.fan_out(&[user], EventBody::ChannelDeleted(deleted));
            let stayed = self.directs[&channel].members.clone();
            if stayed.is_empty() {
                self.directs.remove(&channel);
            }
            self.fan_out_each(&stayed, |hub, u| EventBody::ChannelUpdated(hub.channel_wire(channel, u)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(group: bool, members: &[u64]) -> Direct {
        Direct {
            group,
            name: String::new(),
            owner: None,
            members: members.iter().map(|m| UserId(*m)).collect(),
        }
    }

    #[test]
    fn a_pair_has_one_conversation_whichever_way_it_is_asked() {
        let mut directs = Directs::default();
        directs.insert(ChannelId(10), direct(false, &[2, 1]));
        directs.insert(ChannelId(11), direct(true, &[1, 2]));
        assert_eq!(directs.pair(UserId(1), UserId(2)), Some(ChannelId(10)));
        assert_eq!(directs.pair(UserId(2), UserId(1)), Some(ChannelId(10)));
        assert_eq!(directs.pair(UserId(1), UserId(3)), None);
        directs.remove(&ChannelId(11));
        assert_eq!(directs.pair(UserId(1), UserId(2)), Some(ChannelId(10)), "a group is not the pair's");
        directs.remove(&ChannelId(10));
        assert_eq!(directs.pair(UserId(1), UserId(2)), None, "nothing left behind");
        assert!(directs.by_id.is_empty() && directs.pairs.is_empty());
    }
}
