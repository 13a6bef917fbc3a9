//! Each channel's and conversation's messages as the hub keeps them (not
//! their bodies: those are the store's), owned per channel so that work on
//! one channel — deleting it, counting unread, a ban's clean-up — touches
//! that channel's messages only, never the whole server's.

use std::collections::{BTreeMap, HashMap};
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

/// Messages per chunk of a [`Messages`] list.
const CHUNK: usize = 4096;

/// A channel's messages in id order, in chunks of [`CHUNK`]. New messages
/// have the newest id, so they are appended; an older id (an import's) is
/// inserted in place. Against a `BTreeMap` this halves the memory per
/// message (its nodes stay half full when filled in order), and unlike one
/// `Vec` it never copies the whole history to grow: a channel of ten
/// million messages grows by one chunk.
#[derive(Debug, Default)]
struct Messages {
    chunks: Vec<Vec<(MessageId, MessageMeta)>>,
}

impl Messages {
    fn insert(&mut self, id: MessageId, meta: MessageMeta) {
        let newest = self.chunks.last().and_then(|c| c.last()).map(|(id, _)| *id);
        if newest.is_none_or(|newest| id > newest) {
            match self.chunks.last_mut() {
                Some(last) if last.len() < CHUNK => last.push((id, meta)),
                _ => {
                    let mut chunk = Vec::with_capacity(CHUNK);
                    chunk.push((id, meta));
                    self.chunks.push(chunk);
                }
            }
            return;
        }
        // The chunk whose range takes it: the last one starting at or before it.
        let c = self.chunks.partition_point(|c| c[0].0 <= id).saturating_sub(1);
        let chunk = &mut self.chunks[c];
        match chunk.binary_search_by_key(&id, |(id, _)| *id) {
            Ok(at) => chunk[at].1 = meta,
            Err(at) => {
                chunk.insert(at, (id, meta));
                if chunk.len() > 2 * CHUNK {
                    let rest = chunk.split_off(CHUNK);
                    self.chunks.insert(c + 1, rest);
                }
            }
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

    /// Messages from `from` on, in id order.
    fn from(&self, from: MessageId) -> impl DoubleEndedIterator<Item = &(MessageId, MessageMeta)> {
        let (c, i) = self.find(from).unwrap_or_else(|at| at);
        // `from` may fall past the end of chunk `c` (then `i` is its length).
        let first = self.chunks.get(c).map_or(&[][..], |chunk| &chunk[i..]);
        first.iter().chain(self.chunks.iter().skip(c + 1).flatten())
    }
}

/// One channel's messages and read marks.
#[derive(Debug, Default)]
pub(super) struct Timeline {
    /// Every message, oldest first; deleted ones stay (their nonces still
    /// deduplicate, as the store's rows do).
    messages: Messages,
    /// The newest message each user has read here.
    read: HashMap<UserId, MessageId>,
}

impl Timeline {
    pub fn insert(&mut self, id: MessageId, meta: MessageMeta) {
        self.messages.insert(id, meta);
    }

    /// A message here, deleted or not.
    pub fn get(&self, id: MessageId) -> Option<&MessageMeta> {
        self.messages.get(id)
    }

    pub fn get_mut(&mut self, id: MessageId) -> Option<&mut MessageMeta> {
        self.messages.get_mut(id)
    }

    /// A message here that is not deleted.
    pub fn live(&self, id: MessageId) -> Option<&MessageMeta> {
        self.get(id).filter(|m| !m.deleted)
    }

    /// The newest message that is not deleted.
    pub fn newest(&self) -> Option<MessageId> {
        self.messages.iter().rev().find(|(_, m)| !m.deleted).map(|(id, _)| *id)
    }

    /// Live messages from `from` on, newest first.
    pub fn live_from(&self, from: MessageId) -> impl Iterator<Item = (MessageId, &MessageMeta)> {
        self.messages.from(from).rev().filter(|(_, m)| !m.deleted).map(|(id, m)| (*id, m))
    }

    /// `user`'s live messages created at or after `since`.
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

    /// Every (author, nonce) of the messages here, for unindexing.
    fn nonces(&self) -> impl Iterator<Item = (UserId, &str, MessageId)> {
        self.messages.iter().filter_map(|(id, m)| m.nonce.as_deref().map(|n| (m.author, n, *id)))
    }
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
        timelines: &HashMap<ChannelId, Timeline>,
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
        let mut timelines: HashMap<ChannelId, Timeline> = HashMap::new();
        let mut nonces = Nonces::default();
        for (channel, id, author, nonce) in [(a, 100, ann, "n1"), (b, 101, ann, "n2"), (a, 102, bob, "n1")] {
            timelines.entry(channel).or_default().insert(MessageId(id), meta(author, Some(nonce)));
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
        let mut timelines: HashMap<ChannelId, Timeline> = HashMap::new();
        let mut nonces = Nonces::default();
        // Two messages indexed under the same hash, as a collision would.
        let h = Nonces::hash("real");
        for (id, nonce) in [(100, "other"), (101, "real")] {
            timelines.entry(ch).or_default().insert(MessageId(id), meta(ann, Some(nonce)));
            nonces.0.insert((ann, h, MessageId(id)), ch);
        }
        assert_eq!(nonces.find(ann, "real", &timelines), Some((ch, MessageId(101))));
    }

    #[test]
    fn live_messages_skip_deleted_ones() {
        let ann = UserId(1);
        let mut t = Timeline::default();
        for id in [1, 2, 3] {
            t.insert(MessageId(id), meta(ann, None));
        }
        t.get_mut(MessageId(3)).unwrap().deleted = true;
        assert_eq!(t.newest(), Some(MessageId(2)));
        assert_eq!(t.live(MessageId(3)).map(|m| m.author), None);
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
                chunked.insert(MessageId(*id), meta(UserId(*id), None));
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
    }
}
