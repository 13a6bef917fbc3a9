//! Kick, ban, timeout, and the audit log they write to.

use kith_proto::v1::{self, AuditAction, MemberLeftReason, reply::Result as ReplyResult};

use super::{Ban, Cx, Hub, Outcome, Refusal, forbidden};
use crate::ids::{AuditId, CommunityId, UserId};
use crate::permissions::Permissions;
use crate::store::{StoredAudit, StoredBan, Write};
use crate::text::Reason;

impl Hub {
    /// An audit entry for an action by the caller, to persist with the action.
    pub(super) fn audit(
        &mut self,
        cx: Cx,
        community: CommunityId,
        action: AuditAction,
        target: Option<u64>,
        reason: String,
        detail: String,
    ) -> Write {
        let entry = StoredAudit {
            id: AuditId(self.ids.next(cx.now)),
            community,
            actor: cx.me,
            action,
            target,
            reason,
            detail,
        };
        Write::Audit { entry }
    }

    /// Refuses unless the caller has `needed`, `user` is another member, and
    /// the caller outranks them.
    pub(super) fn moderate(
        &self,
        cx: Cx,
        community: CommunityId,
        user: UserId,
        needed: Permissions,
        doing: &str,
    ) -> Outcome {
        self.require(community, cx.me, cx.now, needed, doing)?;
        if !self.communities[&community].members.contains_key(&user) {
            return Err(Refusal::NotFound("member"));
        }
        if user == cx.me {
            return Err(Refusal::Invalid("you cannot do that to yourself"));
        }
        self.outrank(community, cx.me, user, doing)
    }

    pub(super) fn kick(&mut self, cx: Cx, community: CommunityId, user: UserId, reason: Reason) -> Outcome {
        self.moderate(cx, community, user, Permissions::KICK_MEMBERS, "kick")?;
        let audit =
            self.audit(cx, community, AuditAction::Kick, Some(user.0), reason.0.clone(), String::new());
        self.persist(vec![Write::RemoveMember { community, user }, audit]);
        self.reply_empty(cx.session, cx.rid);
        self.remove_member(community, user, MemberLeftReason::Kicked, Some((cx.me, reason.0)));
        Ok(())
    }

    pub(super) fn ban(
        &mut self,
        cx: Cx,
        community: CommunityId,
        user: UserId,
        reason: Reason,
        delete_message_hours: u32,
    ) -> Outcome {
        let member = self.visible_community(community, cx.me)?.members.contains_key(&user);
        if member {
            self.moderate(cx, community, user, Permissions::BAN_MEMBERS, "ban")?;
        } else {
            self.require(community, cx.me, cx.now, Permissions::BAN_MEMBERS, "ban")?;
            if !self.directory.contains(user) {
                return Err(Refusal::NotFound("user"));
            }
        }
        let since =
            crate::ids::Timestamp(cx.now.0.saturating_sub(u64::from(delete_message_hours) * 3_600_000));
        let doomed =
            if delete_message_hours > 0 { self.messages_since(community, user, since) } else { Vec::new() };
        let ban = StoredBan { community, user, by: cx.me, reason: reason.0.clone(), at: cx.now };
        let mut writes = vec![Write::Ban { ban }];
        if member {
            writes.push(Write::RemoveMember { community, user });
        }
        writes.extend(doomed.iter().map(|(id, _)| Write::DeleteMessage { id: *id }));
        let detail = match doomed.len() {
            0 => String::new(),
            n => format!("deleted {n} messages of the last {delete_message_hours} h"),
        };
        writes.push(self.audit(cx, community, AuditAction::Ban, Some(user.0), reason.0.clone(), detail));
        self.persist(writes);
        self.communities
            .get_mut(&community)
            .expect("visible")
            .bans
            .insert(user, Ban { by: cx.me, reason: reason.0.clone(), at: cx.now });
        self.memberships.banned(user, community);
        self.reply_empty(cx.session, cx.rid);
        self.messages_deleted(user, &doomed);
        if member {
            self.remove_member(community, user, MemberLeftReason::Banned, Some((cx.me, reason.0)));
        }
        Ok(())
    }

    pub(super) fn unban(&mut self, cx: Cx, community: CommunityId, user: UserId) -> Outcome {
        self.require(community, cx.me, cx.now, Permissions::BAN_MEMBERS, "unban")?;
        if !self.communities[&community].bans.contains_key(&user) {
            return Err(Refusal::NotFound("ban"));
        }
        let audit = self.audit(cx, community, AuditAction::Unban, Some(user.0), String::new(), String::new());
        self.persist(vec![Write::Unban { community, user }, audit]);
        self.communities.get_mut(&community).expect("visible").bans.remove(&user);
        self.memberships.unbanned(user, community);
        self.reply_empty(cx.session, cx.rid);
        Ok(())
    }

    pub(super) fn timeout(
        &mut self,
        cx: Cx,
        community: CommunityId,
        user: UserId,
        duration_ms: u64,
        reason: Reason,
    ) -> Outcome {
        self.moderate(cx, community, user, Permissions::TIMEOUT_MEMBERS, "time out")?;
        let theirs = self.community_permissions(community, user, None)?;
        if theirs.contains(Permissions::ADMINISTRATOR) {
            return Err(forbidden("administrators cannot be timed out"));
        }
        let until = (duration_ms > 0).then(|| cx.now.plus_ms(duration_ms));
        let c = self.communities.get_mut(&community).expect("visible");
        let member = c.members.get_mut(&user).expect("moderated member");
        member.timeout_until = until;
        let nickname = member.nickname.clone();
        let detail = match until {
            Some(t) => format!("until {}", kith_proto::time_token(t.0)),
            None => "lifted".into(),
        };
        let audit = self.audit(cx, community, AuditAction::Timeout, Some(user.0), reason.0, detail);
        self.persist(vec![Write::UpdateMember { community, user, nickname, timeout_until: until }, audit]);
        self.reply(cx.session, cx.rid, ReplyResult::Member(self.member_wire(community, user)));
        self.member_changed(community, user);
        Ok(())
    }

    pub(super) fn list_bans(&mut self, cx: Cx, community: CommunityId) -> Outcome {
        self.require(community, cx.me, cx.now, Permissions::BAN_MEMBERS, "see bans")?;
        let bans = self.communities[&community]
            .bans
            .iter()
            .map(|(user, b)| v1::Ban {
                user: Some(self.user_wire(*user)),
                banned_by: b.by.0,
                reason: b.reason.clone(),
                created_at_ms: b.at.0,
            })
            .collect();
        self.reply(cx.session, cx.rid, ReplyResult::Bans(v1::BanList { bans }));
        Ok(())
    }
}
