//! Permission lookups, roles, and member updates (roles and nicknames).

use std::collections::BTreeMap;

use kith_proto::v1::{self, AuditAction, event::Body as EventBody, reply::Result as ReplyResult};

use super::{Community, Cx, Hub, Outcome, Refusal, Role, forbidden};
use crate::ids::{ChannelId, CommunityId, RoleId, Timestamp, UserId};
use crate::permissions::{self, OverrideTarget, Permissions, Standing};
use crate::store::{StoredRole, Write};
use crate::text::{Nickname, RoleName};

/// What one member sees of a community: their community-wide permissions and
/// each channel they may view with their permissions there. When it changes,
/// the member is sent the community afresh.
pub(super) type View = (Permissions, Vec<(ChannelId, Permissions)>);

impl Hub {
    /// The `@everyone` role of a community has the community's id.
    pub(super) fn everyone(community: CommunityId) -> RoleId {
        RoleId(community.0)
    }

    /// The inputs to the permission functions for `user` in `community`, or
    /// `None` if they are not a member. `now: None` ignores timeouts (what
    /// clients are shown: they apply `timeout_until_ms` themselves).
    fn standing(
        c: &Community,
        community: CommunityId,
        user: UserId,
        now: Option<Timestamp>,
    ) -> Option<Standing> {
        let member = c.members.get(&user)?;
        let everyone =
            c.roles.get(&Self::everyone(community)).map_or(Permissions::empty(), |r| r.permissions);
        Some(Standing {
            user,
            owner: c.owner == user,
            everyone,
            roles: member
                .roles
                .iter()
                .filter_map(|id| c.roles.get(id).map(|r| (*id, r.permissions)))
                .collect(),
            timed_out: now.is_some_and(|now| member.timed_out(now)),
            ceiling: member.ceiling,
        })
    }

    /// The community, if `user` is a member (otherwise it does not exist for them).
    pub(super) fn visible_community(&self, id: CommunityId, user: UserId) -> Result<&Community, Refusal> {
        self.communities
            .get(&id)
            .filter(|c| c.members.contains_key(&user))
            .ok_or(Refusal::NotFound("community"))
    }

    /// `user`'s community-wide permissions, if they are a member.
    pub(super) fn community_permissions(
        &self,
        community: CommunityId,
        user: UserId,
        now: Option<Timestamp>,
    ) -> Result<Permissions, Refusal> {
        let c = self.visible_community(community, user)?;
        let s = Self::standing(c, community, user, now).expect("member");
        Ok(permissions::community_permissions(&s))
    }

    /// Refuses unless `user` is a member with `needed` community-wide.
    pub(super) fn require(
        &self,
        community: CommunityId,
        user: UserId,
        now: Timestamp,
        needed: Permissions,
        doing: &str,
    ) -> Outcome {
        let p = self.community_permissions(community, user, Some(now))?;
        if !p.contains(needed) {
            return Err(self.lacking(Some(community), user, now, doing));
        }
        Ok(())
    }

    /// The refusal for a missing permission: a timeout says so and until when.
    pub(super) fn lacking(
        &self,
        community: Option<CommunityId>,
        user: UserId,
        now: Timestamp,
        doing: &str,
    ) -> Refusal {
        let member = community.and_then(|community| self.communities.get(&community)?.members.get(&user));
        match member {
            Some(m) if m.timeout_until.is_some_and(|t| t > now) => forbidden(format!(
                "you are timed out in this community until {}",
                kith_proto::time_token(m.timeout_until.expect("checked").0)
            )),
            Some(m) if m.ceiling.is_some() => {
                forbidden(format!("guests may not {doing}; create an account to do more"))
            }
            _ => forbidden(format!("you lack the permission to {doing}")),
        }
    }

    /// `user`'s permissions in a channel they may view (with the channel's
    /// community, `None` for a conversation); a channel they may not view is
    /// "not found".
    pub(super) fn channel_permissions(
        &self,
        channel: ChannelId,
        user: UserId,
        now: Timestamp,
    ) -> Result<(Option<CommunityId>, Permissions), Refusal> {
        let p = self.channel_permissions_at(channel, user, Some(now));
        match p {
            Some((community, p)) if !p.is_empty() => Ok((community, p)),
            _ => Err(Refusal::NotFound("channel")),
        }
    }

    pub(super) fn channel_permissions_at(
        &self,
        channel: ChannelId,
        user: UserId,
        now: Option<Timestamp>,
    ) -> Option<(Option<CommunityId>, Permissions)> {
        if let Some(d) = self.directs.get(&channel) {
            return d.members.contains(&user).then(|| (None, self.direct_permissions(d, user)));
        }
        let ch = self.channel(channel)?;
        let c = self.communities.get(&ch.community)?;
        let s = Self::standing(c, ch.community, user, now)?;
        let p = permissions::channel_permissions(&s, Self::everyone(ch.community), &ch.overrides);
        Some((Some(ch.community), p))
    }

    /// Refuses unless `user` has `needed` in a community channel they can
    /// see. (Conversations grant nothing `require_in` is asked for.)
    pub(super) fn require_in(
        &self,
        channel: ChannelId,
        user: UserId,
        now: Timestamp,
        needed: Permissions,
        doing: &str,
    ) -> Result<CommunityId, Refusal> {
        let (community, p) = self.channel_permissions(channel, user, now)?;
        match community {
            Some(community) if p.contains(needed) => Ok(community),
            _ => Err(self.lacking(community, user, now, doing)),
        }
    }

    /// Whether `user` may view `channel` (timeouts never hide a channel).
    pub(super) fn can_view(&self, channel: ChannelId, user: UserId) -> bool {
        self.channel_permissions_at(channel, user, None).is_some_and(|(_, p)| !p.is_empty())
    }

    /// Members who may view a channel.
    pub(super) fn viewers(&self, channel: ChannelId) -> Vec<UserId> {
        if let Some(d) = self.directs.get(&channel) {
            return d.members.clone();
        }
        let Some(community) = self.channel(channel).map(|ch| ch.community) else { return Vec::new() };
        self.reachable_members(community).into_iter().filter(|u| self.can_view(channel, *u)).collect()
    }

    pub(super) fn rank(&self, community: CommunityId, user: UserId) -> u64 {
        let Some(c) = self.communities.get(&community) else { return 0 };
        let roles = c.members.get(&user).into_iter().flat_map(|m| &m.roles);
        permissions::rank(c.owner == user, roles.filter_map(|r| c.roles.get(r)).map(|r| r.rank))
    }

    /// Refuses unless `actor` outranks `target` (a member of `community`).
    pub(super) fn outrank(
        &self,
        community: CommunityId,
        actor: UserId,
        target: UserId,
        doing: &str,
    ) -> Outcome {
        if self.rank(community, actor) <= self.rank(community, target) {
            return Err(forbidden(format!("you cannot {doing} someone ranked at or above you")));
        }
        Ok(())
    }

    /// A role of the community, other than `@everyone`, the actor ranks above.
    fn manageable_role(&self, community: CommunityId, actor: UserId, role: RoleId) -> Result<&Role, Refusal> {
        let c = &self.communities[&community];
        if role == Self::everyone(community) {
            return Err(Refusal::Invalid("@everyone cannot be assigned, renamed, re-ranked or deleted"));
        }
        let r = c.roles.get(&role).ok_or(Refusal::NotFound("role"))?;
        if u64::from(r.rank) >= self.rank(community, actor) {
            return Err(forbidden(format!("the role {} is ranked at or above yours", r.name)));
        }
        Ok(r)
    }

    /// What each member sees of a community, for noticing changes.
    pub(super) fn views(&self, community: CommunityId) -> BTreeMap<UserId, View> {
        let Some(c) = self.communities.get(&community) else { return BTreeMap::new() };
        c.members.keys().map(|u| (*u, self.view(community, *u))).collect()
    }

    fn view(&self, community: CommunityId, user: UserId) -> View {
        let c = &self.communities[&community];
        let base = self.community_permissions(community, user, None).unwrap_or_default();
        // Channel permissions themselves, not just visibility, are part of the view.
        let channels = c
            .channels
            .keys()
            .filter_map(|ch| {
                let (_, p) = self.channel_permissions_at(*ch, user, None)?;
                (!p.is_empty()).then_some((*ch, p))
            })
            .collect();
        (base, channels)
    }

    /// Sends `community_updated` to every member whose view changed since
    /// `before` was taken.
    pub(super) fn resync(&mut self, community: CommunityId, before: BTreeMap<UserId, View>) {
        for (user, view) in self.views(community) {
            if before.get(&user) != Some(&view) {
                let wire = self.community_wire(community, user);
                self.fan_out(&[user], EventBody::CommunityUpdated(wire));
            }
        }
    }

    // ----- requests -----------------------------------------------------------

    pub(super) fn create_role(
        &mut self,
        cx: Cx,
        community: CommunityId,
        name: RoleName,
        permissions: Permissions,
        rank: u32,
    ) -> Outcome {
        self.manage_roles(cx, community, permissions)?;
        if u64::from(rank) >= self.rank(community, cx.me) {
            return Err(forbidden("a new role must rank below your own"));
        }
        if self.communities[&community].roles.len() >= super::MAX_ROLES_PER_COMMUNITY {
            return Err(Refusal::Invalid("this community has the maximum number of roles"));
        }
        let role =
            StoredRole { id: RoleId(self.ids.next(cx.now)), community, name: name.0, permissions, rank };
        let detail = format!("{} (rank {rank}): {}", role.name, permissions.names().join(", "));
        let audit =
            self.audit(cx, community, AuditAction::RoleCreate, Some(role.id.0), String::new(), detail);
        self.persist(vec![Write::PutRole { role: role.clone() }, audit]);
        self.communities
            .get_mut(&community)
            .expect("visible")
            .roles
            .insert(role.id, Role { name: role.name.clone(), permissions, rank });
        let wire = self.role_wire(community, role.id);
        self.reply(cx.session, cx.rid, ReplyResult::Role(wire.clone()));
        self.fan_out_community(community, EventBody::RoleCreated(wire));
        Ok(())
    }

    /// Refuses unless the caller has MANAGE_ROLES and every permission in
    /// `granting`.
    fn manage_roles(&self, cx: Cx, community: CommunityId, granting: Permissions) -> Outcome {
        self.require(community, cx.me, cx.now, Permissions::MANAGE_ROLES, "manage roles")?;
        let mine = self.community_permissions(community, cx.me, Some(cx.now))?;
        if !mine.contains(granting) {
            let missing = (granting - mine).names().join(", ");
            return Err(forbidden(format!("you cannot grant permissions you lack: {missing}")));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn update_role(
        &mut self,
        cx: Cx,
        community: CommunityId,
        role: RoleId,
        name: Option<RoleName>,
        permissions: Option<Permissions>,
        rank: Option<u32>,
    ) -> Outcome {
        self.manage_roles(cx, community, permissions.unwrap_or_default())?;
        let everyone = role == Self::everyone(community);
        let old = if everyone {
            if name.is_some() || rank.is_some() {
                return Err(Refusal::Invalid("@everyone cannot be renamed or re-ranked"));
            }
            self.communities[&community].roles[&role].clone()
        } else {
            self.manageable_role(community, cx.me, role)?.clone()
        };
        if let Some(rank) = rank
            && u64::from(rank) >= self.rank(community, cx.me)
        {
            return Err(forbidden("a role must rank below your own"));
        }
        let new = Role {
            name: name.map_or(old.name.clone(), |n| n.0),
            permissions: permissions.unwrap_or(old.permissions),
            rank: rank.unwrap_or(old.rank),
        };
        let mut changes = Vec::new();
        if new.name != old.name {
            changes.push(format!("name: {} → {}", old.name, new.name));
        }
        if new.rank != old.rank {
            changes.push(format!("rank: {} → {}", old.rank, new.rank));
        }
        let (added, removed) = (new.permissions - old.permissions, old.permissions - new.permissions);
        changes.extend(added.names().into_iter().map(|p| format!("+{p}")));
        changes.extend(removed.names().into_iter().map(|p| format!("-{p}")));
        let audit = self.audit(
            cx,
            community,
            AuditAction::RoleUpdate,
            Some(role.0),
            String::new(),
            changes.join(", "),
        );
        let stored = StoredRole {
            id: role,
            community,
            name: new.name.clone(),
            permissions: new.permissions,
            rank: new.rank,
        };
        self.persist(vec![Write::PutRole { role: stored }, audit]);
        let before = self.views(community);
        self.communities.get_mut(&community).expect("visible").roles.insert(role, new);
        let wire = self.role_wire(community, role);
        self.reply(cx.session, cx.rid, ReplyResult::Role(wire.clone()));
        self.fan_out_community(community, EventBody::RoleUpdated(wire));
        self.resync(community, before);
        Ok(())
    }

    pub(super) fn delete_role(&mut self, cx: Cx, community: CommunityId, role: RoleId) -> Outcome {
        self.manage_roles(cx, community, Permissions::empty())?;
        let name = self.manageable_role(community, cx.me, role)?.name.clone();
        let audit = self.audit(cx, community, AuditAction::RoleDelete, Some(role.0), String::new(), name);
        self.persist(vec![Write::DeleteRole { id: role }, audit]);
        let before = self.views(community);
        let c = self.communities.get_mut(&community).expect("visible");
        c.roles.remove(&role);
        for m in c.members.values_mut() {
            m.roles.remove(&role);
        }
        for ch in c.channels.values_mut() {
            ch.overrides.remove(&OverrideTarget::Role(role));
        }
        self.reply_empty(cx.session, cx.rid);
        let deleted = v1::RoleDeleted { community_id: community.0, role_id: role.0 };
        self.fan_out_community(community, EventBody::RoleDeleted(deleted));
        self.resync(community, before);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn update_member(
        &mut self,
        cx: Cx,
        community: CommunityId,
        user: UserId,
        nickname: Option<Nickname>,
        add_roles: Vec<RoleId>,
        remove_roles: Vec<RoleId>,
    ) -> Outcome {
        let c = self.visible_community(community, cx.me)?;
        let member = c.members.get(&user).ok_or(Refusal::NotFound("member"))?.clone();
        let mut writes = Vec::new();
        let mut updated = member.clone();
        if let Some(nick) = nickname
            && nick.0 != member.nickname
        {
            if user != cx.me {
                self.require(community, cx.me, cx.now, Permissions::MANAGE_NICKNAMES, "change nicknames")?;
                self.outrank(community, cx.me, user, "rename")?;
                let detail = format!("nickname: {}", nick.0.as_deref().unwrap_or("(cleared)"));
                writes.push(self.audit(
                    cx,
                    community,
                    AuditAction::MemberNickname,
                    Some(user.0),
                    String::new(),
                    detail,
                ));
            }
            if let Some(n) = &nick.0 {
                self.refuse_look_alike(community, user, n, "nickname")?;
            }
            updated.nickname = nick.0;
            writes.push(Write::UpdateMember {
                community,
                user,
                nickname: updated.nickname.clone(),
                timeout_until: updated.timeout_until,
            });
        }
        let adding: Vec<RoleId> = add_roles.into_iter().filter(|r| !member.roles.contains(r)).collect();
        let removing: Vec<RoleId> = remove_roles.into_iter().filter(|r| member.roles.contains(r)).collect();
        if !adding.is_empty() || !removing.is_empty() {
            self.require(community, cx.me, cx.now, Permissions::MANAGE_ROLES, "manage roles")?;
            if user != cx.me {
                self.outrank(community, cx.me, user, "change the roles of")?;
            }
            let mut names = Vec::new();
            for r in &adding {
                names.push(format!("+{}", self.manageable_role(community, cx.me, *r)?.name));
                writes.push(Write::AddMemberRole { community, user, role: *r });
                updated.roles.insert(*r);
            }
            for r in &removing {
                names.push(format!("-{}", self.manageable_role(community, cx.me, *r)?.name));
                writes.push(Write::RemoveMemberRole { community, user, role: *r });
                updated.roles.remove(r);
            }
            writes.push(self.audit(
                cx,
                community,
                AuditAction::MemberRoles,
                Some(user.0),
                String::new(),
                names.join(", "),
            ));
        }
        if writes.is_empty() {
            let wire = self.member_wire(community, user);
            self.reply(cx.session, cx.rid, ReplyResult::Member(wire));
            return Ok(());
        }
        self.persist(writes);
        let before = self.views(community);
        self.communities.get_mut(&community).expect("visible").members.insert(user, updated);
        self.member_changed(community, user);
        let wire = self.member_wire(community, user);
        self.reply(cx.session, cx.rid, ReplyResult::Member(wire));
        self.resync(community, before);
        Ok(())
    }

    /// Tells every member about a member's new state.
    pub(super) fn member_changed(&mut self, community: CommunityId, user: UserId) {
        let updated =
            v1::MemberUpdated { community_id: community.0, member: Some(self.member_wire(community, user)) };
        self.fan_out_community(community, EventBody::MemberUpdated(updated));
    }
}
