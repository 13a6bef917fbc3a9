//! Each channel's and conversation's messages as the hub keeps them (not
//! their bodies: those are the store's), owned per channel so that work on
//! one channel — deleting it, counting unread, a ban's clean-up — touches
//! that channel's messages only, never the whole server's.

use crate::ids::IdMap;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use crate::ids::{ChannelId, MessageId, Timestamp, UserId};
use crate::store::AttachmentMeta;

/// What the hub keeps of one message: enough to authorise edits, deletes and
/// replies, count unread messages and mentions, and deduplicate its nonce.
#[derive(Debug)]
pub(super) struct MessageMeta {
    pub author: UserId,
    pub reply_to: Option<MessageId>,
    pub deleted: bool,
    pub mentions: Box<[UserId]>,
    pub mention_everyone: bool,
    /// The sender's deduplication key, if it gave one ([`Nonces`] indexes it).
    pub nonce: Option<Box<str>>,
    /// The files it carries (kept so an edit's event can carry them too).
    pub attachments: Box<[AttachmentMeta]>,
}

impl MessageMeta {
    pub fn mentions(&self, user: UserId) -> bool {
        self.mention_everyone || self.mentions.contains(&user)
    }
}

/// Messages per chunk of a [`Messages`] list, at most.
const CHUNK: usize = 4096;

/// A channel's newest messages in id order, in chunks. New messages have
/// the newest id, so they are appended; an older id (a late one) is
/// inserted in place. Against a `BTreeMap` this halves the memory per
/// message (its nodes stay half full when filled in order), and unlike one
/// `Vec` it never copies the whole list to grow. Once more than `keep`
/// messages are held without the oldest chunk, that chunk goes: a busy
/// channel holds `keep` to `keep` + one chunk, whatever its history.
#[derive(Debug, Default)]
struct Messages {
    chunks: Vec<Vec<(MessageId, MessageMeta)>>,
    len: usize,
}

impl Messages {
    /// Adds (or replaces) a message; returns the chunk that made room, if
    /// one went.
    fn insert(&mut self, id: MessageId, meta: MessageMeta, keep: usize) -> Vec<(MessageId, MessageMeta)> {
        let chunk_len = CHUNK.min(keep.div_ceil(2)).max(1);
        let newest = self.chunks.last().and_then(|c| c.last()).map(|(id, _)| *id);
        if newest.is_none_or(|newest| id > newest) {
            match self.chunks.last_mut() {
                Some(last) if last.len() < chunk_len => last.push((id, meta)),
                _ => {
                    let mut chunk = Vec::with_capacity(chunk_len);
                    chunk.push((id, meta));
                    self.chunks.push(chunk);
                }
            }
            self.len += 1;
        } else {
            // The chunk whose range takes it: the last one starting at or before it.
            let c = self.chunks.partition_point(|c| c[0].0 <= id).saturating_sub(1);
            let chunk = &mut self.chunks[c];
            match chunk.binary_search_by_key(&id, |(id, _)| *id) {
                Ok(at) => chunk[at].1 = meta,
                Err(at) => {
                    chunk.insert(at, (id, meta));
                    self.len += 1;
                    if chunk.len() > 2 * chunk_len {
                        let rest = chunk.split_off(chunk_len);
                        self.chunks.insert(c + 1, rest);
                    }
                }
            }
        }
        match self.chunks.first() {
            Some(first) if self.chunks.len() > 1 && self.len - first.len() >= keep => {
                self.len -= first.len();
                self.chunks.remove(0)
            }
            _ => Vec::new(),
        }
    }

    /// Where `id` is, or would be: (chunk, index in it).
    fn find(&self, id: MessageId) -> Result<(usize, usize), (usize, usize)> {
        let c = self.chunks.partition_point(|c| c[0].0 <= id).saturating_sub(1);
        let Some(chunk) = self.chunks.get(c) else { return Err((0, 0)) };
        chunk.binary_search_by_key(&id, |(id, _)| *id).map(|i| (c, i)).map_err(|i| (c, i))
    }

    fn get(&self, id: MessageId) -> Option<&MessageMeta> {
        let (c, i) = self.find(id).ok()?;
        Some(&self.chunks[c][i].1)
    }

    fn get_mut(&mut self, id: MessageId) -> Option<&mut MessageMeta> {
        let (c, i) = self.find(id).ok()?;
        Some(&mut self.chunks[c][i].1)
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &(MessageId, MessageMeta)> {
        self.chunks.iter().flatten()
    }

    fn oldest(&self) -> Option<MessageId> {
        self.chunks.first().and_then(|c| c.first()).map(|(id, _)| *id)
    }

    /// Messages from `from` on, in id order.
    fn from(&self, from: MessageId) -> impl DoubleEndedIterator<Item = &(MessageId, MessageMeta)> {
        let (c, i) = self.find(from).unwrap_or_else(|at| at);
        // `from` may fall past the end of chunk `c` (then `i` is its length).
        let first = self.chunks.get(c).map_or(&[][..], |chunk| &chunk[i..]);
        first.iter().chain(self.chunks.iter().skip(c + 1).flatten())
    }
}

/// One channel's newest messages and its read marks. Messages older than
/// the floor are the store's alone: the hub loads one when a request needs
/// it (`Load`), and counts unread messages among the newest only.
#[derive(Debug, Default)]
pub(super) struct Timeline {
    /// The newest messages, oldest first; deleted ones stay (their nonces
    /// still deduplicate).
    messages: Messages,
    /// Every message older than this is on disk only; `None`: the channel
    /// has no such messages.
    floor: Option<MessageId>,
    /// The newest message each user has read here.
    read: IdMap<UserId, MessageId>,
}

impl Timeline {
    /// Adds a message, keeping at most about `keep`; says which messages
    /// went to make room (their nonces are unindexed by the caller). A
    /// message older than the floor stays on disk only.
    pub fn insert(&mut self, id: MessageId, meta: MessageMeta, keep: usize) -> Vec<(MessageId, MessageMeta)> {
        if self.is_cold(id) {
            return Vec::new();
        }
        let gone = self.messages.insert(id, meta, keep);
        if !gone.is_empty() {
            self.floor = self.messages.oldest();
        }
        gone
    }

    /// The channel's messages older than `floor` stay on disk.
    pub fn set_floor(&mut self, floor: MessageId) {
        self.floor = Some(floor);
    }

    pub fn floor(&self) -> Option<MessageId> {
        self.floor
    }

    /// Whether `id` is older than what is held, so only the store knows it.
    pub fn is_cold(&self, id: MessageId) -> bool {
        self.floor.is_some_and(|floor| id < floor)
    }

    /// A message held here, deleted or not.
    pub fn get(&self, id: MessageId) -> Option<&MessageMeta> {
        self.messages.get(id)
    }

    pub fn get_mut(&mut self, id: MessageId) -> Option<&mut MessageMeta> {
        self.messages.get_mut(id)
    }

    /// The newest message that is not deleted, or, if every message held is
    /// deleted, the newest one on disk only may be live: the one below the
    /// floor stands for it.
    pub fn newest(&self) -> Option<MessageId> {
        let live = self.messages.iter().rev().find(|(_, m)| !m.deleted).map(|(id, _)| *id);
        live.or_else(|| self.floor.map(|f| MessageId(f.0 - 1)))
    }

    /// Live messages held from `from` on, newest first.
    pub fn live_from(&self, from: MessageId) -> impl Iterator<Item = (MessageId, &MessageMeta)> {
        self.messages.from(from).rev().filter(|(_, m)| !m.deleted).map(|(id, m)| (*id, m))
    }

    /// `user`'s live messages held here created at or after `since`.
    pub fn authored_since(&self, user: UserId, since: Timestamp) -> impl Iterator<Item = MessageId> + '_ {
        self.messages
            .from(MessageId::first_at(since))
            .filter(move |(_, m)| m.author == user && !m.deleted)
            .map(|(id, _)| *id)
    }

    pub fn read(&self, user: UserId) -> Option<MessageId> {
        self.read.get(&user).copied()
    }

    /// Sets (or with `None`, clears) `user`'s read mark; says whether it changed.
    pub fn set_read(&mut self, user: UserId, last: Option<MessageId>) -> bool {
        let changed = self.read.get(&user).copied() != last;
        match last {
            Some(m) => self.read.insert(user, m),
            None => self.read.remove(&user),
        };
        changed
    }

    /// Every (author, nonce) of the messages held here, for unindexing.
    fn nonces(&self) -> impl Iterator<Item = (UserId, &str, MessageId)> {
        nonces_of(self.messages.iter())
    }
}

fn nonces_of<'a>(
    messages: impl Iterator<Item = &'a (MessageId, MessageMeta)>,
) -> impl Iterator<Item = (UserId, &'a str, MessageId)> {
    messages.filter_map(|(id, m)| m.nonce.as_deref().map(|n| (m.author, n, *id)))
}

/// Which message each (author, nonce) names, across every channel: a nonce
/// deduplicates per account, not per channel (proto/README.md).
///
/// Keyed by a hash of the nonce, so the nonce itself is kept once, in its
/// message's [`MessageMeta`]; candidates with the same hash are told apart
/// by comparing the nonce there. A collision costs a comparison, never a
/// wrong answer, and only among one author's own messages.
#[derive(Debug, Default)]
pub(super) struct Nonces(BTreeMap<(UserId, u64, MessageId), ChannelId>);

impl Nonces {
    fn hash(nonce: &str) -> u64 {
        // Fixed keys: the index must not depend on the process.
        let mut h = std::hash::DefaultHasher::new();
        nonce.hash(&mut h);
        h.finish()
    }

    pub fn insert(&mut self, author: UserId, nonce: &str, channel: ChannelId, id: MessageId) {
        self.0.insert((author, Self::hash(nonce), id), channel);
    }

    /// The message `author` sent with `nonce`, if any, and its channel.
    pub fn find(
        &self,
        author: UserId,
        nonce: &str,
        timelines: &IdMap<ChannelId, Timeline>,
    ) -> Option<(ChannelId, MessageId)> {
        let h = Self::hash(nonce);
        self.0
            .range((author, h, MessageId(0))..=(author, h, MessageId(u64::MAX)))
            .map(|(&(_, _, id), &channel)| (channel, id))
            .find(|(channel, id)| {
                timelines.get(channel).and_then(|t| t.get(*id)).and_then(|m| m.nonce.as_deref())
                    == Some(nonce)
            })
    }

    /// Forgets the nonces of a channel's messages (the channel is going).
    pub fn remove_all_of(&mut self, timeline: &Timeline) {
        for (author, nonce, id) in timeline.nonces() {
            self.0.remove(&(author, Self::hash(nonce), id));
        }
    }

    /// Forgets the nonces of messages the hub no longer holds: a retry
    /// is recognised among a channel's newest messages only.
    pub fn remove(&mut self, gone: &[(MessageId, MessageMeta)]) {
        for (author, nonce, id) in nonces_of(gone.iter()) {
            self.0.remove(&(author, Self::hash(nonce), id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(author: UserId, nonce: Option<&str>) -> MessageMeta {
        MessageMeta {
            author,
            reply_to: None,
            deleted: false,
            mentions: Box::new([]),
            mention_everyone: false,
            nonce: nonce.map(Into::into),
            attachments: Box::new([]),
        }
    }

    #[test]
    fn a_nonce_names_one_message_per_author_across_channels_until_its_channel_goes() {
        let (ann, bob) = (UserId(1), UserId(2));
        let (a, b) = (ChannelId(10), ChannelId(11));
        let mut timelines: IdMap<ChannelId, Timeline> = IdMap::default();
        let mut nonces = Nonces::default();
        for (channel, id, author, nonce) in [(a, 100, ann, "n1"), (b, 101, ann, "n2"), (a, 102, bob, "n1")] {
            timelines.entry(channel).or_default().insert(
                MessageId(id),
                meta(author, Some(nonce)),
                usize::MAX,
            );
            nonces.insert(author, nonce, channel, MessageId(id));
        }
        assert_eq!(nonces.find(ann, "n1", &timelines), Some((a, MessageId(100))));
        assert_eq!(nonces.find(ann, "n2", &timelines), Some((b, MessageId(101))));
        assert_eq!(nonces.find(bob, "n1", &timelines), Some((a, MessageId(102))), "per author");
        assert_eq!(nonces.find(bob, "n2", &timelines), None);

        let gone = timelines.remove(&a).unwrap();
        nonces.remove_all_of(&gone);
        assert_eq!(nonces.find(ann, "n1", &timelines), None);
        assert_eq!(
            nonces.find(ann, "n2", &timelines),
            Some((b, MessageId(101))),
            "other channels keep theirs"
        );
        assert_eq!(nonces.0.len(), 1);
    }

    #[test]
    fn candidates_with_one_hash_are_told_apart_by_the_nonce_itself() {
        let ann = UserId(1);
        let ch = ChannelId(10);
        let mut timelines: IdMap<ChannelId, Timeline> = IdMap::default();
        let mut nonces = Nonces::default();
        // Two messages indexed under the same hash, as a collision would.
        let h = Nonces::hash("real");
        for (id, nonce) in [(100, "other"), (101, "real")] {
            timelines.entry(ch).or_default().insert(MessageId(id), meta(ann, Some(nonce)), usize::MAX);
            nonces.0.insert((ann, h, MessageId(id)), ch);
        }
        assert_eq!(nonces.find(ann, "real", &timelines), Some((ch, MessageId(101))));
    }

    #[test]
    fn live_messages_skip_deleted_ones() {
        let ann = UserId(1);
        let mut t = Timeline::default();
        for id in [1, 2, 3] {
            t.insert(MessageId(id), meta(ann, None), usize::MAX);
        }
        t.get_mut(MessageId(3)).unwrap().deleted = true;
        assert_eq!(t.newest(), Some(MessageId(2)));
        assert!(t.get(MessageId(3)).is_some_and(|m| m.deleted));
        assert_eq!(t.live_from(MessageId(2)).map(|(id, _)| id.0).collect::<Vec<_>>(), [2]);
    }

    use proptest::prelude::*;

    proptest! {
        /// In any order of ids (new ones appended, an import's older ones
        /// in between, one id given twice), the chunked list answers as an
        /// ordered map would.
        #[test]
        fn chunked_messages_answer_like_an_ordered_map(
            ids in proptest::collection::vec(0u64..30_000, 1..12_000),
            probes in proptest::collection::vec(0u64..30_001, 1..50),
        ) {
            let mut chunked = Messages::default();
            let mut model = std::collections::BTreeMap::new();
            for id in &ids {
                chunked.insert(MessageId(*id), meta(UserId(*id), None), usize::MAX);
                model.insert(*id, *id);
            }
            prop_assert!(chunked.chunks.iter().all(|c| !c.is_empty() && c.len() <= 2 * CHUNK));
            let all: Vec<u64> = chunked.iter().map(|(id, _)| id.0).collect();
            prop_assert_eq!(&all, &model.keys().copied().collect::<Vec<_>>());
            for p in probes {
                prop_assert_eq!(chunked.get(MessageId(p)).map(|m| m.author.0), model.get(&p).copied());
                let from: Vec<u64> = chunked.from(MessageId(p)).map(|(id, _)| id.0).collect();
                prop_assert_eq!(from, model.range(p..).map(|(k, _)| *k).collect::<Vec<_>>());
            }
        }

        /// However ids arrive, a timeline holds the newest of them and at
        /// least `keep` once it has let any go; everything older than its
        /// floor is on disk only, and nothing at or above it is missing.
        #[test]
        fn a_timeline_holds_the_newest_messages_and_knows_where_the_rest_begin(
            ids in proptest::collection::vec(0u64..5_000, 1..3_000),
            keep in 1usize..300,
        ) {
            let mut t = Timeline::default();
            let mut model = std::collections::BTreeSet::new();
            let mut gone = 0;
            for id in &ids {
                let was_cold = t.is_cold(MessageId(*id));
                gone += t.insert(MessageId(*id), meta(UserId(*id), None), keep).len();
                if !was_cold {
                    model.insert(*id);
                }
            }
            let held: Vec<u64> = t.messages.iter().map(|(id, _)| id.0).collect();
            match t.floor() {
                None => prop_assert_eq!(gone, 0),
                Some(floor) => {
                    prop_assert_eq!(held.first().copied(), Some(floor.0));
                    prop_assert!(held.len() >= keep, "{} held, keep {}", held.len(), keep);
                    let first = t.messages.chunks[0].len();
                    prop_assert!(held.len() - first < keep);
                    prop_assert!(t.is_cold(MessageId(floor.0 - 1)) && !t.is_cold(floor));
                }
            }
            let expected: Vec<u64> =
                model.range(t.floor().map_or(0, |f| f.0)..).copied().collect();
            prop_assert_eq!(held, expected);
        }
    }
}
