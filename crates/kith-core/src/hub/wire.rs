//! Domain → wire. Views of communities and channels are per user: they show
//! only what that user may see, with that user's permissions.

use std::collections::BTreeSet;

use kith_proto::invite::InviteLink;
use kith_proto::v1;

use super::Hub;
use crate::ids::{ChannelId, CommunityId, MessageId, RoleId, UserId};
use crate::permissions::OverrideTarget;
use crate::store::StoredInvite;

impl Hub {
    pub(super) fn user_wire(&self, id: UserId) -> v1::User {
        let u = &self.directory[&id].stored;
        v1::User {
            id: id.0,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            status_text: u.status_text.clone(),
            bot: u.bot,
            deleted: u.deleted,
        }
    }

    /// The members a snapshot of `community` lists for `viewer`: all of
    /// them, or in a community past `HubConfig::full_member_list`, the
    /// viewer, the owner and whoever the viewer sees as not offline.
    fn members_listed(&self, community: CommunityId, viewer: UserId) -> Vec<UserId> {
        let c = &self.communities[&community];
        if c.members.len() <= self.config.full_member_list {
            return c.members.keys().copied().collect();
        }
        let mut listed: BTreeSet<UserId> = self
            .reachable_members(community)
            .into_iter()
            .filter(|u| self.presence_seen(*u, viewer) != v1::PresenceStatus::Offline)
            .collect();
        listed.extend([viewer, c.owner]);
        listed.into_iter().collect()
    }

    /// Whether snapshots of `community` list only part of its members.
    pub(super) fn members_paged(&self, community: CommunityId) -> bool {
        self.communities.get(&community).is_some_and(|c| c.members.len() > self.config.full_member_list)
    }

    pub(super) fn member_wire(&self, community: CommunityId, user: UserId) -> v1::Member {
        let m = &self.communities[&community].members[&user];
        v1::Member {
            user: Some(self.user_wire(user)),
            nickname: m.nickname.clone().unwrap_or_default(),
            roles: m.roles.iter().map(|r| r.0).collect(),
            timeout_until_ms: m.timeout_until.map_or(0, |t| t.0),
            joined_at_ms: m.joined_at.0,
        }
    }

    pub(super) fn role_wire(&self, community: CommunityId, id: RoleId) -> v1::Role {
        let r = &self.communities[&community].roles[&id];
        v1::Role {
            id: id.0,
            community_id: community.0,
            name: r.name.clone(),
            permissions: r.permissions.bits(),
            rank: r.rank,
        }
    }

    /// The channel or conversation as `viewer` sees it.
    pub(super) fn channel_wire(&self, id: ChannelId, viewer: UserId) -> v1::Channel {
        use v1::permission_override::Target;
        let (last_read_id, unread_count, mention_count) = self.read_counts(id, viewer);
        if let Some(d) = self.directs.get(&id) {
            return v1::Channel {
                id: id.0,
                name: d.name.clone(),
                permissions: self.direct_permissions(d, viewer).bits(),
                kind: if d.group { v1::ChannelKind::Group } else { v1::ChannelKind::Direct } as i32,
                recipients: d.members.iter().map(|u| self.user_wire(*u)).collect(),
                owner_id: d.owner.map_or(0, |u| u.0),
                last_read_id,
                unread_count,
                mention_count,
                ..Default::default()
            };
        }
        let ch = self.channel(id).expect("a channel the hub holds");
        let overrides = ch
            .overrides
            .iter()
            .map(|(target, o)| v1::PermissionOverride {
                target: Some(match target {
                    OverrideTarget::Role(r) => Target::RoleId(r.0),
                    OverrideTarget::Member(u) => Target::UserId(u.0),
                }),
                allow: o.allow.bits(),
                deny: o.deny.bits(),
            })
            .collect();
        v1::Channel {
            id: id.0,
            community_id: ch.community.0,
            name: ch.name.clone(),
            topic: ch.topic.clone(),
            overrides,
            permissions: self.channel_permissions_at(id, viewer, None).map_or(0, |(_, p)| p.bits()),
            kind: if ch.voice { v1::ChannelKind::Voice } else { v1::ChannelKind::Text } as i32,
            recipients: Vec::new(),
            owner_id: 0,
            last_read_id,
            unread_count,
            mention_count,
        }
    }

    /// The community as `viewer` (a member) sees it.
    pub(super) fn community_wire(&self, id: CommunityId, viewer: UserId) -> v1::Community {
        let c = &self.communities[&id];
        let mut roles: Vec<(&RoleId, &super::Role)> = c.roles.iter().collect();
        roles.sort_by_key(|(id, r)| (std::cmp::Reverse(r.rank), **id));
        v1::Community {
            id: id.0,
            name: c.name.clone(),
            owner_id: c.owner.0,
            channels: c
                .channels
                .keys()
                .filter(|ch| self.can_view(**ch, viewer))
                .map(|ch| self.channel_wire(*ch, viewer))
                .collect(),
            roles: roles.into_iter().map(|(r, _)| self.role_wire(id, *r)).collect(),
            members: self.members_listed(id, viewer).into_iter().map(|u| self.member_wire(id, u)).collect(),
            member_count: u32::try_from(c.members.len()).unwrap_or(u32::MAX),
            permissions: self.community_permissions(id, viewer, None).map_or(0, |p| p.bits()),
            voice_states: self.voice_states_in(id, viewer),
            commands: self.community_commands(id),
        }
    }

    pub(super) fn invite_wire(&self, i: &StoredInvite) -> v1::Invite {
        let link = self
            .config
            .public_address
            .as_deref()
            .map(|server| InviteLink::render(server, &i.code, self.config.fingerprint.as_deref()))
            .unwrap_or_default();
        let web_link = match (&self.config.public_address, self.config.web) {
            (Some(server), true) => InviteLink::render_web(server, &i.code),
            _ => String::new(),
        };
        v1::Invite {
            code: i.code.clone(),
            community_id: i.community.0,
            community_name: self.communities.get(&i.community).map(|c| c.name.clone()).unwrap_or_default(),
            max_uses: i.max_uses.unwrap_or(0),
            uses: i.uses,
            expires_at_ms: i.expires_at.map_or(0, |t| t.0),
            link,
            web_link,
            creator_name: self
                .directory
                .get(i.creator)
                .map(|u| u.stored.username.clone())
                .unwrap_or_default(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn message_wire(
        &self,
        id: MessageId,
        channel: ChannelId,
        author: UserId,
        body: String,
        reply_to: Option<MessageId>,
        mentions: &[UserId],
        nonce: Option<String>,
    ) -> v1::Message {
        v1::Message {
            id: id.0,
            channel_id: channel.0,
            author_id: author.0,
            author_name: self.directory[&author].stored.username.clone(),
            author_bot: self.directory[&author].stored.bot,
            body,
            created_at_ms: id.timestamp().0,
            edited_at_ms: 0,
            reply_to: reply_to.map_or(0, |m| m.0),
            mentions: mentions.iter().map(|u| u.0).collect(),
            nonce: nonce.unwrap_or_default(),
            mention_everyone: false,
            deleted: false,
            attachments: Vec::new(),
        }
    }
}
