//! Communities, invites, membership and channels.

use std::collections::{BTreeMap, BTreeSet};

use kith_proto::v1::{
    self, AuditAction, MemberLeftReason, event::Body as EventBody, reply::Result as ReplyResult,
};

use super::{Channel, Community, Cx, Hub, Member, Outcome, Refusal, Role, forbidden};
use crate::ids::{ChannelId, CommunityId, Timestamp, UserId};
use crate::permissions::{Override, OverrideTarget, Permissions};
use crate::store::{StoredChannel, StoredCommunity, StoredInvite, StoredOverride, StoredRole, Write};
use crate::text::{ChannelName, CommunityName, Topic};

impl Hub {
    pub(super) fn create_community(&mut self, cx: Cx, name: CommunityName) -> Outcome {
        if self.config.community_creation == super::CommunityCreation::Owner
            && !self.directory.is_owner(cx.me)
        {
            return Err(forbidden(
                "on this server only its owner creates communities; ask them for one, or for an invite",
            ));
        }
        if self.memberships.owned(cx.me).count() >= super::MAX_COMMUNITIES_OWNED {
            return Err(forbidden(format!(
                "you already own {} communities, the most one account may",
                super::MAX_COMMUNITIES_OWNED
            )));
        }
        let community = CommunityId(self.ids.next(cx.now));
        let general = ChannelId(self.ids.next(cx.now));
        let stored = StoredCommunity { id: community, name: name.0, owner: cx.me };
        let everyone = StoredRole {
            id: Self::everyone(community),
            community,
            name: "@everyone".into(),
            permissions: Permissions::DEFAULT_EVERYONE,
            rank: 0,
        };
        let channel = StoredChannel {
            id: general,
            community,
            name: "general".into(),
            topic: String::new(),
            voice: false,
        };
        self.persist(vec![
            Write::CreateCommunity { community: stored.clone(), created_at: cx.now },
            Write::PutRole { role: everyone.clone() },
            Write::AddMember { community, user: cx.me, joined_at: cx.now },
            Write::CreateChannel { channel: channel.clone(), created_at: cx.now },
        ]);
        self.memberships.founded(cx.me, community);
        self.communities.insert(
            community,
            Community {
                name: stored.name,
                owner: cx.me,
                members: BTreeMap::from([(cx.me, Member::new(cx.now))]),
                channels: BTreeMap::new(),
                roles: BTreeMap::from([(
                    everyone.id,
                    Role { name: everyone.name, permissions: everyone.permissions, rank: 0 },
                )]),
                bans: BTreeMap::new(),
            },
        );
        self.memberships.joined(cx.me, community);
        self.add_channel(channel);
        let wire = self.community_wire(community, cx.me);
        self.reply(cx.session, cx.rid, ReplyResult::Community(wire.clone()));
        self.fan_out(&[cx.me], EventBody::CommunityJoined(wire));
        Ok(())
    }

    pub(super) fn create_invite(
        &mut self,
        cx: Cx,
        community: CommunityId,
        max_uses: Option<u32>,
        expires_in_ms: Option<u64>,
        code: String,
    ) -> Outcome {
        self.require(community, cx.me, cx.now, Permissions::CREATE_INVITES, "create invites")?;
        let usable = |i: &&StoredInvite| {
            i.community == community
                && i.expires_at.is_none_or(|t| cx.now < t)
                && i.max_uses.is_none_or(|max| i.uses < max)
        };
        if self.invites.values().filter(usable).count() >= super::MAX_INVITES_PER_COMMUNITY {
            return Err(forbidden(format!(
                "this community has {} invites that still work, the most it may; let some expire first",
                super::MAX_INVITES_PER_COMMUNITY
            )));
        }
        if self.invites.contains_key(&code) {
            // 2^-60-ish odds with the edge's random codes; refuse rather than overwrite.
            return Err(Refusal::Taken("invite code"));
        }
        let invite = StoredInvite {
            code,
            community,
            creator: cx.me,
            max_uses,
            uses: 0,
            expires_at: expires_in_ms.map(|ms| cx.now.plus_ms(ms)),
        };
        let detail = format!(
            "max uses {}, expires {}",
            max_uses.map_or("unlimited".into(), |n| n.to_string()),
            invite.expires_at.map_or("never".into(), |t| kith_proto::time_token(t.0)),
        );
        let audit = self.audit(cx, community, AuditAction::InviteCreate, None, String::new(), detail);
        self.persist(vec![Write::CreateInvite { invite: invite.clone(), created_at: cx.now }, audit]);
        let wire = self.invite_wire(&invite);
        self.invites.insert(invite.code.clone(), invite);
        self.reply(cx.session, cx.rid, ReplyResult::Invite(wire));
        Ok(())
    }

    pub(super) fn join_community(&mut self, cx: Cx, code: String) -> Outcome {
        let (community, code) = self.usable_invite(&code, cx.now, Some(cx.me))?;
        if !self.communities[&community].members.contains_key(&cx.me) {
            self.add_member(cx.now, community, cx.me, Some(code));
        }
        self.reply(cx.session, cx.rid, ReplyResult::Community(self.community_wire(community, cx.me)));
        Ok(())
    }

    /// The invites that still work: all of them for a member who may ban
    /// members, else the caller's own; in code order.
    pub(super) fn list_invites(&mut self, cx: Cx, community: CommunityId) -> Outcome {
        let all =
            self.community_permissions(community, cx.me, Some(cx.now))?.contains(Permissions::BAN_MEMBERS);
        let mut invites: Vec<&StoredInvite> = self
            .invites
            .values()
            .filter(|i| i.community == community && (all || i.creator == cx.me))
            .filter(|i| i.expires_at.is_none_or(|t| cx.now < t) && i.max_uses.is_none_or(|max| i.uses < max))
            .collect();
        invites.sort_by(|a, b| a.code.cmp(&b.code));
        let invites = invites.into_iter().map(|i| self.invite_wire(i)).collect();
        self.reply(cx.session, cx.rid, ReplyResult::Invites(v1::InviteList { invites }));
        Ok(())
    }

    /// Revokes an invite: its creator's, or anyone's for a member who may ban.
    pub(super) fn revoke_invite(&mut self, cx: Cx, code: &str) -> Outcome {
        let i = self.invite(code).ok_or(Refusal::NotFound("invite"))?;
        let (community, creator, code) = (i.community, i.creator, i.code.clone());
        // Outside the community, it does not exist.
        let p = self
            .community_permissions(community, cx.me, Some(cx.now))
            .map_err(|_| Refusal::NotFound("invite"))?;
        if creator != cx.me && !p.contains(Permissions::BAN_MEMBERS) {
            return Err(self.lacking(Some(community), cx.me, cx.now, "revoke others' invites"));
        }
        let audit = self.audit(cx, community, AuditAction::InviteRevoke, None, String::new(), code.clone());
        self.persist(vec![Write::RevokeInvite { code: code.clone() }, audit]);
        self.invites.remove(&code);
        self.reply_empty(cx.session, cx.rid);
        Ok(())
    }

    /// A page of a community's members, for a member (the snapshot of a
    /// large community lists only who is around).
    pub(super) fn list_members(
        &mut self,
        cx: Cx,
        community: CommunityId,
        after: UserId,
        limit: usize,
    ) -> Outcome {
        let c = self.visible_community(community, cx.me)?;
        let range = (std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded);
        let mut page: Vec<UserId> = c.members.range(range).map(|(u, _)| *u).take(limit + 1).collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let next_after_user_id = if more { page.last().map_or(0, |u| u.0) } else { 0 };
        let members = page.iter().map(|u| self.member_wire(community, *u)).collect();
        let answer = v1::MemberPage { community_id: community.0, members, next_after_user_id };
        self.reply(cx.session, cx.rid, ReplyResult::MemberPage(answer));
        Ok(())
    }

    pub(super) fn leave_community(&mut self, cx: Cx, community: CommunityId) -> Outcome {
        let c = self.visible_community(community, cx.me)?;
        if c.owner == cx.me {
            return Err(forbidden("the owner cannot leave their community"));
        }
        self.persist(vec![Write::RemoveMember { community, user: cx.me }]);
        self.reply_empty(cx.session, cx.rid);
        self.remove_member(community, cx.me, MemberLeftReason::Left, None);
        Ok(())
    }

    /// Drops a member from memory and tells everyone concerned. The caller
    /// persisted the removal.
    /// `by`: the moderator who removed them and the reason they gave.
    pub(super) fn remove_member(
        &mut self,
        community: CommunityId,
        user: UserId,
        reason: MemberLeftReason,
        by: Option<(UserId, String)>,
    ) {
        self.communities.get_mut(&community).expect("member's community").members.remove(&user);
        self.memberships.left(user, community);
        let (by_user_id, moderator_reason) = by.map_or((0, String::new()), |(u, why)| (u.0, why));
        let left = v1::CommunityLeft {
            community_id: community.0,
            reason: reason as i32,
            by_user_id,
            moderator_reason,
        };
        self.fan_out(&[user], EventBody::CommunityLeft(left));
        let left = v1::MemberLeft { community_id: community.0, user_id: user.0, reason: reason as i32 };
        self.fan_out_community(community, EventBody::MemberLeft(left));
        if self.offers_commands(user) {
            self.commands_changed(&[community]);
        }
    }

    pub(super) fn create_channel(
        &mut self,
        cx: Cx,
        community: CommunityId,
        name: ChannelName,
        topic: Topic,
        voice: bool,
    ) -> Outcome {
        self.require(community, cx.me, cx.now, Permissions::MANAGE_CHANNELS, "manage channels")?;
        if self.communities[&community].channels.len() >= super::MAX_CHANNELS_PER_COMMUNITY {
            return Err(Refusal::Invalid("this community has the maximum number of channels"));
        }
        if self.channel_named(community, &name).is_some() {
            return Err(Refusal::Taken("channel name"));
        }
        let channel = StoredChannel {
            id: ChannelId(self.ids.next(cx.now)),
            community,
            name: name.0,
            topic: topic.0,
            voice,
        };
        let audit = self.audit(
            cx,
            community,
            AuditAction::ChannelCreate,
            Some(channel.id.0),
            String::new(),
            format!("#{}", channel.name),
        );
        self.persist(vec![Write::CreateChannel { channel: channel.clone(), created_at: cx.now }, audit]);
        self.add_channel(channel.clone());
        let wire = self.channel_wire(channel.id, cx.me);
        self.reply(cx.session, cx.rid, ReplyResult::Channel(wire));
        self.fan_out_channel_personal(channel.id, EventBody::ChannelCreated);
        Ok(())
    }

    pub(super) fn update_channel(
        &mut self,
        cx: Cx,
        channel: ChannelId,
        name: Option<ChannelName>,
        topic: Option<Topic>,
    ) -> Outcome {
        let community =
            self.require_in(channel, cx.me, cx.now, Permissions::MANAGE_CHANNELS, "manage channels")?;
        if let Some(name) = &name
            && self.channel_named(community, name).is_some_and(|other| other != channel)
        {
            return Err(Refusal::Taken("channel name"));
        }
        let ch = self.channel_mut(channel).expect("visible");
        let mut changes = Vec::new();
        if let Some(ChannelName(name)) = name
            && name != ch.name
        {
            changes.push(format!("name: #{} → #{name}", ch.name));
            ch.name = name;
        }
        if let Some(Topic(topic)) = topic
            && topic != ch.topic
        {
            changes.push("topic".to_owned());
            ch.topic = topic;
        }
        let stored = StoredChannel {
            id: channel,
            community,
            name: ch.name.clone(),
            topic: ch.topic.clone(),
            voice: ch.voice,
        };
        let audit = self.audit(
            cx,
            community,
            AuditAction::ChannelUpdate,
            Some(channel.0),
            String::new(),
            changes.join(", "),
        );
        self.persist(vec![Write::UpdateChannel { channel: stored }, audit]);
        let wire = self.channel_wire(channel, cx.me);
        self.reply(cx.session, cx.rid, ReplyResult::Channel(wire));
        self.fan_out_channel_personal(channel, EventBody::ChannelUpdated);
        Ok(())
    }

    pub(super) fn delete_channel(&mut self, cx: Cx, channel: ChannelId) -> Outcome {
        let community =
            self.require_in(channel, cx.me, cx.now, Permissions::MANAGE_CHANNELS, "manage channels")?;
        let viewers = self.viewers(channel);
        let name = format!("#{}", self.channel(channel).expect("visible").name);
        let audit =
            self.audit(cx, community, AuditAction::ChannelDelete, Some(channel.0), String::new(), name);
        self.persist(vec![Write::DeleteChannel { id: channel }, audit]);
        self.channel_home.remove(&channel);
        self.communities.get_mut(&community).expect("visible").channels.remove(&channel);
        // The channel's own messages and read marks only, not the server's.
        if let Some(timeline) = self.timelines.remove(&channel) {
            self.nonces.remove_all_of(&timeline);
            for (_, m) in timeline.live_from(crate::ids::MessageId(0)) {
                self.usage.remove(m.author, Some(community), super::files::weight(&m.attachments));
            }
        }
        // And the older ones', loaded for this request.
        for (author, bytes) in self.stashed_weights().to_vec() {
            self.usage.remove(author, Some(community), bytes);
        }
        self.reply_empty(cx.session, cx.rid);
        let deleted = v1::ChannelDeleted { community_id: community.0, channel_id: channel.0 };
        self.fan_out(&viewers, EventBody::ChannelDeleted(deleted));
        Ok(())
    }

    pub(super) fn set_override(
        &mut self,
        cx: Cx,
        channel: ChannelId,
        target: OverrideTarget,
        rule: Override,
    ) -> Outcome {
        let community =
            self.require_in(channel, cx.me, cx.now, Permissions::MANAGE_CHANNELS, "manage channels")?;
        let (_, mine) = self.channel_permissions(channel, cx.me, cx.now)?;
        let touching = rule.allow | rule.deny;
        if !mine.contains(touching) {
            let missing = (touching - mine).names().join(", ");
            return Err(forbidden(format!("you cannot allow or deny permissions you lack: {missing}")));
        }
        let what = match target {
            OverrideTarget::Role(role) => {
                let r = self.communities[&community].roles.get(&role).ok_or(Refusal::NotFound("role"))?;
                if role != Self::everyone(community) && u64::from(r.rank) >= self.rank(community, cx.me) {
                    return Err(forbidden(format!("the role {} is ranked at or above yours", r.name)));
                }
                r.name.clone()
            }
            OverrideTarget::Member(user) => {
                if !self.communities[&community].members.contains_key(&user) {
                    return Err(Refusal::NotFound("member"));
                }
                if user != cx.me {
                    self.outrank(community, cx.me, user, "override the permissions of")?;
                }
                format!("@{}", self.directory[&user].stored.username)
            }
        };
        let ch = self.channel(channel).expect("visible");
        let clearing = rule == Override::default();
        if !clearing
            && !ch.overrides.contains_key(&target)
            && ch.overrides.len() >= super::MAX_OVERRIDES_PER_CHANNEL
        {
            return Err(Refusal::Invalid("this channel has the maximum number of overrides"));
        }
        let detail = if clearing {
            format!("#{} {what}: cleared", ch.name)
        } else {
            format!(
                "#{} {what}: allow [{}] deny [{}]",
                ch.name,
                rule.allow.names().join(", "),
                rule.deny.names().join(", ")
            )
        };
        let audit =
            self.audit(cx, community, AuditAction::OverrideSet, Some(channel.0), String::new(), detail);
        let stored = StoredOverride { channel, target, allow: rule.allow, deny: rule.deny };
        self.persist(vec![Write::SetOverride { rule: stored }, audit]);
        let before = self.views(community);
        let viewers_before = self.viewers(channel);
        let ch = self.channel_mut(channel).expect("visible");
        if clearing {
            ch.overrides.remove(&target);
        } else {
            ch.overrides.insert(target, rule);
        }
        let wire = self.channel_wire(channel, cx.me);
        self.reply(cx.session, cx.rid, ReplyResult::Channel(wire));
        // Whoever's view changed gets the community afresh; those whose view
        // did not change still learn the channel's new overrides.
        let changed: BTreeSet<UserId> = self
            .views(community)
            .into_iter()
            .filter(|(u, v)| before.get(u) != Some(v))
            .map(|(u, _)| u)
            .collect();
        self.resync(community, before);
        let unchanged: Vec<UserId> = viewers_before.into_iter().filter(|u| !changed.contains(u)).collect();
        self.fan_out_personal(&unchanged, channel, EventBody::ChannelUpdated);
        Ok(())
    }

    /// Sends a channel event to its viewers, each with their own permissions.
    fn fan_out_channel_personal(&mut self, channel: ChannelId, event: fn(v1::Channel) -> EventBody) {
        let viewers = self.viewers(channel);
        self.fan_out_personal(&viewers, channel, event);
    }

    fn fan_out_personal(
        &mut self,
        users: &[UserId],
        channel: ChannelId,
        event: fn(v1::Channel) -> EventBody,
    ) {
        for user in users {
            let wire = self.channel_wire(channel, *user);
            self.fan_out(&[*user], event(wire));
        }
    }

    // ----- state helpers ----------------------------------------------------------

    pub(super) fn add_channel(&mut self, ch: StoredChannel) {
        let Some(c) = self.communities.get_mut(&ch.community) else { return };
        let channel = Channel {
            community: ch.community,
            name: ch.name,
            topic: ch.topic,
            overrides: BTreeMap::new(),
            voice: ch.voice,
        };
        c.channels.insert(ch.id, channel);
        self.channel_home.insert(ch.id, ch.community);
    }

    /// A channel, found through the community that owns it.
    pub(super) fn channel(&self, id: ChannelId) -> Option<&Channel> {
        self.communities.get(self.channel_home.get(&id)?)?.channels.get(&id)
    }

    pub(super) fn channel_mut(&mut self, id: ChannelId) -> Option<&mut Channel> {
        self.communities.get_mut(self.channel_home.get(&id)?)?.channels.get_mut(&id)
    }

    /// Adds a member (consuming an invite use if one is given) and tells the
    /// other members and the new member's other sessions.
    pub(super) fn add_member(
        &mut self,
        now: Timestamp,
        community: CommunityId,
        user: UserId,
        invite: Option<String>,
    ) {
        let mut writes = Vec::new();
        if let Some(code) = invite
            && let Some(i) = self.invites.get_mut(&code)
        {
            i.uses += 1;
            writes.push(Write::UseInvite { code });
        }
        writes.push(Write::AddMember { community, user, joined_at: now });
        self.persist(writes);
        self.join_without_writing(community, user, Member::new(now));
    }

    /// Puts `user` in `community` in memory and tells everyone concerned.
    /// The caller persisted what needs persisting.
    pub(super) fn join_without_writing(&mut self, community: CommunityId, user: UserId, member: Member) {
        let known = self.acquaintances(user);
        let others = self.reachable_members(community);
        let c = self.communities.get_mut(&community).expect("joining a live community");
        c.members.insert(user, member);
        self.memberships.joined(user, community);
        let joined =
            v1::MemberJoined { community_id: community.0, member: Some(self.member_wire(community, user)) };
        self.fan_out(&others, EventBody::MemberJoined(joined));
        let wire = self.community_wire(community, user);
        self.fan_out(&[user], EventBody::CommunityJoined(wire));
        self.introduce(user, &known, true);
        if self.offers_commands(user) {
            self.commands_changed(&[community]);
        }
    }

    /// An invite by its code. Codes minted today are upper case, so a code
    /// typed in lower case finds them; older mixed-case codes match exactly.
    fn invite(&self, code: &str) -> Option<&StoredInvite> {
        self.invites.get(code).or_else(|| self.invites.get(&crate::request::code_key(code)))
    }

    /// The community an invite leads to, if it can still be used by `user`,
    /// and the invite's code as stored.
    pub(super) fn usable_invite(
        &self,
        code: &str,
        now: Timestamp,
        user: Option<UserId>,
    ) -> Result<(CommunityId, String), Refusal> {
        let i = self.invite(code).ok_or(Refusal::InviteInvalid)?;
        let expired = i.expires_at.is_some_and(|t| now >= t);
        let used_up = i.max_uses.is_some_and(|max| i.uses >= max);
        let Some(c) = self.communities.get(&i.community) else { return Err(Refusal::InviteInvalid) };
        if expired || used_up {
            return Err(Refusal::InviteInvalid);
        }
        if user.is_some_and(|u| c.bans.contains_key(&u)) {
            return Err(forbidden("you are banned from this community"));
        }
        Ok((i.community, i.code.clone()))
    }

    fn channel_named(&self, community: CommunityId, name: &ChannelName) -> Option<ChannelId> {
        let c = self.communities.get(&community)?;
        c.channels.iter().find(|(_, ch)| ch.name == name.0).map(|(id, _)| *id)
    }
}
