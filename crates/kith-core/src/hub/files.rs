//! Attachments: who may upload what, which uploads are complete, and who
//! may fetch a message's files. The bytes never pass through the hub: it
//! grants keys ([`Output::Grant`]) that the edge's transfer streams check,
//! and it learns that an upload is stored, durably, from the edge
//! ([`Input::UploadStored`]). A message may name an upload only after that,
//! so no message ever points at bytes that are not on disk.

use crate::ids::IdMap;
use std::collections::HashMap;

use kith_proto::v1::reply::Result as ReplyResult;

use super::{Cx, Hub, Outcome, Output, Refusal, SessionId};
use crate::ids::{ChannelId, CommunityId, MessageId, Timestamp, UserId};
use crate::permissions::Permissions;
use crate::store::AttachmentMeta;
use crate::text::FileName;

/// Uploads one session may have pending at once; asking for more forgets
/// its oldest. Bounds the hub's memory whatever a client asks.
const PENDING_PER_SESSION: usize = 16;

/// How long a download key works.
const DOWNLOAD_KEY_MS: u64 = 60 * 60 * 1000;

/// What the edge's transfer streams accept, granted by the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `session` may send this file's bytes, presenting `key`.
    Upload { key: String, session: SessionId, user: UserId, size: u64, blake3: [u8; 32] },
    /// `session` may fetch `message`'s attachments, presenting `key`, until
    /// `expires_at`.
    Download { key: String, session: SessionId, message: MessageId, expires_at: Timestamp },
    /// `session` may send (`sending`) or receive the bytes of pipe `pipe`,
    /// presenting `key`; the edge joins the two ends (see `hub::pipes`).
    Pipe { key: String, session: SessionId, pipe: u64, sending: bool },
}

#[derive(Debug)]
struct Pending {
    session: SessionId,
    channel: ChannelId,
    name: FileName,
    /// Set once the edge stored the bytes: what it kept (named later).
    stored: Option<AttachmentMeta>,
}

/// Uploads granted and not yet attached, with an index by session so a
/// session's end forgets its own.
#[derive(Debug, Default)]
pub(super) struct Uploads {
    by_key: HashMap<String, Pending>,
    by_session: IdMap<SessionId, Vec<String>>,
}

impl Uploads {
    fn insert(&mut self, key: String, pending: Pending) {
        let keys = self.by_session.entry(pending.session).or_default();
        if keys.len() >= PENDING_PER_SESSION {
            let oldest = keys.remove(0);
            self.by_key.remove(&oldest);
        }
        keys.push(key.clone());
        self.by_key.insert(key, pending);
    }

    fn take(&mut self, key: &str) -> Option<Pending> {
        let pending = self.by_key.remove(key)?;
        if let Some(keys) = self.by_session.get_mut(&pending.session) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_session.remove(&pending.session);
            }
        }
        Some(pending)
    }

    /// The session ended: its keys are worthless now.
    pub(super) fn forget(&mut self, session: SessionId) {
        for key in self.by_session.remove(&session).unwrap_or_default() {
            self.by_key.remove(&key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_key.len()
    }
}

/// Bytes of files the live messages of each account and of each community
/// carry, for the quotas (a deleted message's files stop counting).
#[derive(Debug, Default)]
pub(super) struct Usage {
    by_user: IdMap<UserId, u64>,
    by_community: IdMap<CommunityId, u64>,
}

impl Usage {
    pub(super) fn add(&mut self, user: UserId, community: Option<CommunityId>, bytes: u64) {
        if bytes == 0 {
            return;
        }
        *self.by_user.entry(user).or_default() += bytes;
        if let Some(c) = community {
            *self.by_community.entry(c).or_default() += bytes;
        }
    }

    pub(super) fn remove(&mut self, user: UserId, community: Option<CommunityId>, bytes: u64) {
        fn take<K: std::hash::Hash + Eq>(map: &mut IdMap<K, u64>, key: K, bytes: u64) {
            if let Some(used) = map.get_mut(&key) {
                *used = used.saturating_sub(bytes);
                if *used == 0 {
                    map.remove(&key);
                }
            }
        }
        take(&mut self.by_user, user, bytes);
        if let Some(c) = community {
            take(&mut self.by_community, c, bytes);
        }
    }
}

/// Bytes as people read them, in refusals.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// What a message's files weigh.
pub(super) fn weight(files: &[AttachmentMeta]) -> u64 {
    files.iter().map(|a| a.size).sum()
}

impl Hub {
    /// The community a channel belongs to; `None` for a conversation.
    pub(super) fn community_of(&self, channel: ChannelId) -> Option<CommunityId> {
        self.channel(channel).map(|c| c.community)
    }

    /// Refuses a message whose files come to more than one message may carry.
    fn within_message_limit(&self, total: u64) -> Result<(), Refusal> {
        let max = self.config.max_message_attachment_bytes;
        if total > max {
            return Err(Refusal::TooLarge(format!(
                "the message's files come to {total} bytes; this server takes at most {max} bytes of files per message"
            )));
        }
        Ok(())
    }

    /// Refuses `more` bytes of files from `me` in `channel` past a quota.
    fn within_quotas(&self, me: UserId, channel: ChannelId, more: u64) -> Result<(), Refusal> {
        if let Some(quota) = self.config.user_files_quota {
            let used = self.usage.by_user.get(&me).copied().unwrap_or(0);
            if used.saturating_add(more) > quota {
                return Err(Refusal::TooLarge(format!(
                    "your files already take {} of your {} quota on this server; delete some, or ask its operator",
                    mib(used),
                    mib(quota)
                )));
            }
        }
        if let (Some(quota), Some(community)) =
            (self.config.community_files_quota, self.community_of(channel))
        {
            let used = self.usage.by_community.get(&community).copied().unwrap_or(0);
            if used.saturating_add(more) > quota {
                return Err(Refusal::TooLarge(format!(
                    "this community's files already take {} of its {} quota; ask its owner to make room",
                    mib(used),
                    mib(quota)
                )));
            }
        }
        Ok(())
    }

    pub(super) fn create_upload(
        &mut self,
        cx: Cx,
        channel: ChannelId,
        name: FileName,
        (size, message_bytes): (u64, u64),
        blake3: [u8; 32],
        key: String,
    ) -> Outcome {
        self.may_attach(cx, channel)?;
        let max = self.config.max_attachment_bytes;
        if size > max {
            return Err(Refusal::TooLarge(format!(
                "the file is {size} bytes; this server takes files of at most {max} bytes"
            )));
        }
        self.within_message_limit(message_bytes.max(size))?;
        self.within_quotas(cx.me, channel, size)?;
        self.uploads.insert(key.clone(), Pending { session: cx.session, channel, name, stored: None });
        self.emit(Output::Grant(Grant::Upload {
            key: key.clone(),
            session: cx.session,
            user: cx.me,
            size,
            blake3,
        }));
        let max_message_bytes = self.config.max_message_attachment_bytes;
        let upload = kith_proto::v1::Upload { key, max_bytes: max, max_message_bytes };
        self.reply(cx.session, cx.rid, ReplyResult::Upload(upload));
        Ok(())
    }

    /// The edge stored an upload's bytes durably and checked its hash.
    pub(super) fn upload_stored(&mut self, key: &str, kept: AttachmentMeta) {
        if let Some(p) = self.uploads.by_key.get_mut(key) {
            p.stored = Some(kept);
        }
    }

    fn may_attach(&self, cx: Cx, channel: ChannelId) -> Result<(), Refusal> {
        let (community, perms) = self.channel_permissions(channel, cx.me, cx.now)?;
        if !perms.contains(Permissions::SEND_MESSAGES) {
            return Err(self.lacking(community, cx.me, cx.now, "send messages in this channel"));
        }
        if !perms.contains(Permissions::ATTACH_FILES) {
            return Err(self.lacking(community, cx.me, cx.now, "attach files in this channel"));
        }
        if self.channel(channel).is_some_and(|c| c.voice) {
            return Err(Refusal::Invalid("a voice channel takes no messages"));
        }
        Ok(())
    }

    /// The files a message being sent names, checked and used up; all or
    /// none (a refusal leaves every upload pending).
    pub(super) fn take_uploads(
        &mut self,
        cx: Cx,
        channel: ChannelId,
        keys: &[String],
    ) -> Result<Vec<AttachmentMeta>, Refusal> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.may_attach(cx, channel)?;
        for (i, key) in keys.iter().enumerate() {
            let Some(p) = self.uploads.by_key.get(key).filter(|p| p.session == cx.session) else {
                return Err(Refusal::NotFound(
                    "upload (ask again with create_upload: keys last one connection)",
                ));
            };
            if p.channel != channel {
                return Err(Refusal::Invalid("that upload was made for another channel"));
            }
            if p.stored.is_none() {
                return Err(Refusal::Invalid(
                    "an upload is not complete yet; finish sending its bytes first",
                ));
            }
            if keys[..i].contains(key) {
                return Err(Refusal::Invalid("the same upload is named twice"));
            }
        }
        let total: u64 =
            keys.iter().filter_map(|k| self.uploads.by_key.get(k)?.stored.as_ref()).map(|s| s.size).sum();
        self.within_message_limit(total)?;
        self.within_quotas(cx.me, channel, total)?;
        Ok(keys
            .iter()
            .map(|key| {
                let p = self.uploads.take(key).expect("checked above");
                AttachmentMeta { name: p.name.0, ..p.stored.expect("checked above") }
            })
            .collect())
    }

    pub(super) fn open_attachments(
        &mut self,
        cx: Cx,
        channel: ChannelId,
        message: MessageId,
        key: String,
    ) -> Outcome {
        let meta = self.visible_message(channel, message, cx.me)?;
        let attachments: Vec<_> = meta.attachments.iter().map(AttachmentMeta::to_wire).collect();
        let expires_at = cx.now.plus_ms(DOWNLOAD_KEY_MS);
        self.emit(Output::Grant(Grant::Download {
            key: key.clone(),
            session: cx.session,
            message,
            expires_at,
        }));
        let access = kith_proto::v1::AttachmentAccess { key, expires_at_ms: expires_at.0, attachments };
        self.reply(cx.session, cx.rid, ReplyResult::AttachmentAccess(access));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(session: u64) -> Pending {
        Pending {
            session: SessionId(session),
            channel: ChannelId(1),
            name: FileName::clean("a.txt"),
            stored: None,
        }
    }

    #[test]
    fn a_session_holds_a_bounded_number_of_pending_uploads_and_its_end_forgets_them() {
        let mut u = Uploads::default();
        for i in 0..PENDING_PER_SESSION + 5 {
            u.insert(format!("k{i}"), pending(1));
        }
        u.insert("other".into(), pending(2));
        assert_eq!(u.len(), PENDING_PER_SESSION + 1);
        assert!(!u.by_key.contains_key("k0"), "the oldest went first");
        assert!(u.take("k5").is_some());
        u.forget(SessionId(1));
        assert_eq!(u.len(), 1);
        assert!(!u.by_session.contains_key(&SessionId(1)), "no index left behind");
        assert!(u.take("other").is_some());
        assert!(u.by_session.is_empty());
    }
}
