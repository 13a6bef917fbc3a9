//! Sending, editing and deleting messages.

use kith_proto::v1::{self, AuditAction, event::Body as EventBody, reply::Result as ReplyResult};

use super::{Cx, Hub, MessageMeta, Outcome, Output, Read, Refusal, forbidden};
use crate::ids::{ChannelId, CommunityId, MessageId, UserId};
use crate::permissions::Permissions;
use crate::store::{AttachmentMeta, NewMessage, Write};
use crate::text::{Body, Nonce};

/// The name that mentions everyone who can see the channel.
const EVERYONE: &str = "everyone";

impl Hub {
    /// Sends a message as `cx.me` and answers with it; returns its id (the
    /// original's, for a retry with the same nonce).
    pub(super) fn post_message(
        &mut self,
        cx: Cx,
        channel: ChannelId,
        body: Body,
        nonce: Option<Nonce>,
        reply_to: Option<MessageId>,
        uploads: &[String],
    ) -> Result<MessageId, Refusal> {
        let (community, perms) = self.channel_permissions(channel, cx.me, cx.now)?;
        if let Some(nonce) = &nonce
            && let Some((original_channel, original)) = self.nonces.find(cx.me, &nonce.0, &self.timelines)
        {
            // A retry: answer with the original, whatever this request says.
            let meta = self.timelines[&original_channel].get(original).expect("indexed nonces name messages");
            if meta.deleted {
                // Sent, then deleted: say exactly that, with nothing to show.
                let mut wire = self.message_wire(
                    original,
                    original_channel,
                    meta.author,
                    String::new(),
                    meta.reply_to,
                    &[],
                    Some(nonce.0.clone()),
                );
                wire.deleted = true;
                self.reply(cx.session, cx.rid, ReplyResult::Message(wire));
            } else {
                self.emit(Output::Read { to: cx.session, request_id: cx.rid, read: Read::Message(original) });
            }
            return Ok(original);
        }
        if !perms.contains(Permissions::SEND_MESSAGES) {
            return Err(self.lacking(community, cx.me, cx.now, "send messages in this channel"));
        }
        if self.channel(channel).is_some_and(|c| c.voice) {
            return Err(Refusal::Invalid("a voice channel takes no messages"));
        }
        // The message ends their typing; a new notice may go out at once.
        self.typing.remove(&(cx.me, channel));
        if let Some(target) = reply_to
            && self.live_message(channel, target).is_none()
        {
            return Err(Refusal::NotFound("message to reply to"));
        }
        // Last: a refusal above leaves the uploads pending, for a retry.
        let attachments = self.take_uploads(cx, channel, uploads)?;
        let (mentions, everyone) = self.resolve_mentions(community, channel, perms, &body);
        let id = MessageId(self.ids.next(cx.now));
        let created_at = id.timestamp();
        self.persist(vec![Write::InsertMessage {
            message: NewMessage {
                id,
                channel,
                author: cx.me,
                body: body.0.clone(),
                nonce: nonce.as_ref().map(|n| n.0.clone()),
                reply_to,
                mentions: mentions.clone(),
                mention_everyone: everyone,
                created_at,
                attachments: attachments.clone(),
            },
        }]);
        let meta = MessageMeta {
            author: cx.me,
            reply_to,
            deleted: false,
            mentions: mentions.clone().into(),
            mention_everyone: everyone,
            nonce: nonce.as_ref().map(|n| n.0.as_str().into()),
            attachments: attachments.clone().into(),
        };
        self.insert_message(channel, id, meta);
        if let Some(u) = self.directory.get_mut(cx.me) {
            u.authored = true;
        }
        self.usage.add(cx.me, self.community_of(channel), super::files::weight(&attachments));
        if let Some(nonce) = &nonce {
            self.nonces.insert(cx.me, &nonce.0, channel, id);
        }
        let mut wire = self.message_wire(id, channel, cx.me, body.0, reply_to, &mentions, nonce.map(|n| n.0));
        wire.mention_everyone = everyone;
        wire.attachments = attachments.iter().map(AttachmentMeta::to_wire).collect();
        self.reply(cx.session, cx.rid, ReplyResult::Message(wire.clone()));
        self.fan_out_channel(channel, EventBody::MessageCreated(wire));
        Ok(id)
    }

    pub(super) fn edit_message(
        &mut self,
        cx: Cx,
        channel: ChannelId,
        message: MessageId,
        body: Body,
    ) -> Outcome {
        let meta = self.visible_message(channel, message, cx.me)?;
        if meta.author != cx.me {
            return Err(forbidden("you can only edit your own messages"));
        }
        let reply_to = meta.reply_to;
        let (community, perms) = self.channel_permissions(channel, cx.me, cx.now)?;
        if !perms.contains(Permissions::SEND_MESSAGES) {
            return Err(self.lacking(community, cx.me, cx.now, "send messages in this channel"));
        }
        let (mentions, everyone) = self.resolve_mentions(community, channel, perms, &body);
        let edited_at = cx.now.max(message.timestamp());
        self.persist(vec![Write::EditMessage {
            id: message,
            body: body.0.clone(),
            mentions: mentions.clone(),
            mention_everyone: everyone,
            edited_at,
        }]);
        let meta = self.message_mut(channel, message).expect("visible");
        meta.mentions = mentions.clone().into();
        meta.mention_everyone = everyone;
        let attachments = meta.attachments.iter().map(AttachmentMeta::to_wire).collect();
        let mut wire = self.message_wire(message, channel, cx.me, body.0, reply_to, &mentions, None);
        wire.edited_at_ms = edited_at.0;
        wire.mention_everyone = everyone;
        wire.attachments = attachments;
        self.reply(cx.session, cx.rid, ReplyResult::Message(wire.clone()));
        self.fan_out_channel(channel, EventBody::MessageUpdated(wire));
        Ok(())
    }

    pub(super) fn delete_message(&mut self, cx: Cx, channel: ChannelId, message: MessageId) -> Outcome {
        let author = self.visible_message(channel, message, cx.me)?.author;
        let mut writes = vec![Write::DeleteMessage { id: message }];
        if author != cx.me {
            let community = self.require_in(
                channel,
                cx.me,
                cx.now,
                Permissions::MANAGE_MESSAGES,
                "delete other members' messages",
            )?;
            let detail = format!(
                "by @{} in #{}",
                self.directory[&author].stored.username,
                self.channel(channel).expect("a channel the hub holds").name
            );
            writes.push(self.audit(
                cx,
                community,
                AuditAction::MessageDelete,
                Some(message.0),
                String::new(),
                detail,
            ));
        }
        self.persist(writes);
        let meta = self.message_mut(channel, message).expect("visible");
        meta.deleted = true;
        let weight = super::files::weight(&meta.attachments);
        self.usage.remove(author, self.community_of(channel), weight);
        self.reply_empty(cx.session, cx.rid);
        let deleted = v1::MessageDeleted { channel_id: channel.0, message_id: message.0 };
        self.fan_out_channel(channel, EventBody::MessageDeleted(deleted));
        Ok(())
    }

    /// A live message in `channel` that `user` may see. A message in another
    /// channel is "not found", exactly like a missing one.
    pub(super) fn visible_message(
        &self,
        channel: ChannelId,
        id: MessageId,
        user: UserId,
    ) -> Result<&MessageMeta, Refusal> {
        if !self.can_view(channel, user) {
            return Err(Refusal::NotFound("channel"));
        }
        self.live_message(channel, id).ok_or(Refusal::NotFound("message"))
    }

    /// A live message in `channel`: held, or loaded for this request.
    fn live_message(&self, channel: ChannelId, id: MessageId) -> Option<&MessageMeta> {
        let held = self.timelines.get(&channel).and_then(|t| t.get(id));
        held.or_else(|| self.stashed(channel, id)).filter(|m| !m.deleted)
    }

    /// A message in `channel`, held or loaded for this request, to change.
    fn message_mut(&mut self, channel: ChannelId, id: MessageId) -> Option<&mut MessageMeta> {
        if self.timelines.get(&channel).is_some_and(|t| t.get(id).is_some()) {
            return self.timelines.get_mut(&channel).and_then(|t| t.get_mut(id));
        }
        self.stashed_mut(channel, id)
    }

    /// Holds a new message in its channel's timeline. Past
    /// `recent_messages`, the oldest held go, and their nonces with them.
    pub(super) fn insert_message(&mut self, channel: ChannelId, id: MessageId, meta: MessageMeta) {
        let keep = self.config.recent_messages;
        let gone = self.timelines.entry(channel).or_default().insert(id, meta, keep);
        self.nonces.remove(&gone);
    }

    /// `@name` mentions of members of the community, as ids, and whether the
    /// body mentions `@everyone` with the permission to. Names of non-members
    /// are left as text, so mentions reveal nobody.
    fn resolve_mentions(
        &self,
        community: Option<CommunityId>,
        channel: ChannelId,
        perms: Permissions,
        body: &Body,
    ) -> (Vec<UserId>, bool) {
        let names = body.mention_names();
        let everyone = perms.contains(Permissions::MENTION_EVERYONE) && names.iter().any(|n| n == EVERYONE);
        let present = |id: &UserId| match community {
            Some(c) => self.communities[&c].members.contains_key(id),
            None => self.directs.get(&channel).is_some_and(|d| d.members.contains(id)),
        };
        let ids =
            names.iter().filter_map(|name| self.directory.find(name)).filter(|id| present(id)).collect();
        (ids, everyone)
    }

    /// `user`'s live messages in `community` created at or after `since`.
    pub(super) fn messages_since(
        &self,
        community: CommunityId,
        user: UserId,
        since: crate::ids::Timestamp,
    ) -> Vec<(MessageId, ChannelId)> {
        // Each of the community's channels from `since` on: recent messages
        // of this community only.
        let channels = &self.communities[&community].channels;
        let mut found: Vec<(MessageId, ChannelId)> = channels
            .keys()
            .filter_map(|ch| Some((*ch, self.timelines.get(ch)?)))
            .flat_map(|(ch, t)| t.authored_since(user, since).map(move |id| (id, ch)))
            .collect();
        // Older ones, loaded for this request.
        let older = self.stashed_authored(user).iter().map(|&(id, ch, _)| (id, ch));
        found.extend(older.filter(|(id, ch)| channels.contains_key(ch) && id.timestamp() >= since));
        found.sort();
        found.dedup();
        found
    }

    /// Marks messages deleted (their `DeleteMessage` writes already issued)
    /// and tells each channel's viewers.
    pub(super) fn messages_deleted(&mut self, author: UserId, deleted: &[(MessageId, ChannelId)]) {
        for (id, channel) in deleted {
            if let Some(m) = self.timelines.get_mut(channel).and_then(|t| t.get_mut(*id)) {
                if !m.deleted {
                    m.deleted = true;
                    let (author, weight) = (m.author, super::files::weight(&m.attachments));
                    self.usage.remove(author, self.community_of(*channel), weight);
                }
            } else if let Some(&(_, _, weight)) =
                self.stashed_authored(author).iter().find(|(i, c, _)| (i, c) == (id, channel))
            {
                // An older one, loaded for this request.
                self.usage.remove(author, self.community_of(*channel), weight);
            }
            let event = v1::MessageDeleted { channel_id: channel.0, message_id: id.0 };
            self.fan_out_channel(*channel, EventBody::MessageDeleted(event));
        }
    }
}
