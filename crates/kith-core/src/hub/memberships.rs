//! Who belongs where, by user: "which communities and conversations is this
//! person in" is asked on every presence change, profile edit, snapshot and
//! group change, "which do they own" and "are they banned anywhere" at
//! community creation, account deletion and guest recycling — and none may
//! scan the server for the answer.
//!
//! The communities' member maps, owners and bans and the conversations'
//! member lists stay the truth; this is their index, kept in step by the few hub methods that
//! change membership, and checked against them after every input in debug
//! builds (the tests and the fuzzer run those).

use crate::ids::IdMap;
use std::collections::BTreeSet;

use crate::ids::{ChannelId, CommunityId, UserId};

/// One relation, by user: no empty sets are kept.
#[derive(Debug, PartialEq, Eq)]
struct ByUser<K>(IdMap<UserId, BTreeSet<K>>);

impl<K> Default for ByUser<K> {
    fn default() -> Self {
        ByUser(IdMap::default())
    }
}

impl<K: Ord + Copy> ByUser<K> {
    fn add(&mut self, user: UserId, k: K) {
        self.0.entry(user).or_default().insert(k);
    }

    fn remove(&mut self, user: UserId, k: K) {
        if let Some(set) = self.0.get_mut(&user) {
            set.remove(&k);
            if set.is_empty() {
                self.0.remove(&user);
            }
        }
    }

    fn of(&self, user: UserId) -> impl Iterator<Item = K> + '_ {
        self.0.get(&user).into_iter().flatten().copied()
    }
}

#[derive(Debug, Default)]
pub(super) struct Memberships {
    communities: ByUser<CommunityId>,
    directs: ByUser<ChannelId>,
    /// The communities each user owns (owners never change).
    owned: ByUser<CommunityId>,
    /// The communities each user is banned from.
    banned: ByUser<CommunityId>,
}

impl Memberships {
    pub fn joined(&mut self, user: UserId, community: CommunityId) {
        self.communities.add(user, community);
    }

    pub fn left(&mut self, user: UserId, community: CommunityId) {
        self.communities.remove(user, community);
    }

    /// The communities `user` is a member of, in id order.
    pub fn communities(&self, user: UserId) -> impl Iterator<Item = CommunityId> + '_ {
        self.communities.of(user)
    }

    /// A conversation's participants changed from `before` to `after`.
    pub fn direct_changed(&mut self, channel: ChannelId, before: &[UserId], after: &[UserId]) {
        for user in before.iter().filter(|u| !after.contains(u)) {
            self.directs.remove(*user, channel);
        }
        for user in after {
            self.directs.add(*user, channel);
        }
    }

    /// The conversations `user` takes part in, in id order.
    pub fn directs(&self, user: UserId) -> impl Iterator<Item = ChannelId> + '_ {
        self.directs.of(user)
    }

    /// `community` was made (or loaded) with `user` as its owner.
    pub fn founded(&mut self, user: UserId, community: CommunityId) {
        self.owned.add(user, community);
    }

    /// The communities `user` owns, in id order.
    pub fn owned(&self, user: UserId) -> impl Iterator<Item = CommunityId> + '_ {
        self.owned.of(user)
    }

    pub fn banned(&mut self, user: UserId, community: CommunityId) {
        self.banned.add(user, community);
    }

    pub fn unbanned(&mut self, user: UserId, community: CommunityId) {
        self.banned.remove(user, community);
    }

    /// Whether `user` is banned from any community.
    pub fn banned_anywhere(&self, user: UserId) -> bool {
        self.banned.0.contains_key(&user)
    }

    /// Panics unless this indexes exactly the given memberships, owners
    /// and bans.
    #[cfg(debug_assertions)]
    pub fn check<'a>(
        &self,
        communities: impl Iterator<Item = (CommunityId, &'a super::Community)>,
        directs: impl Iterator<Item = (ChannelId, UserId)>,
    ) {
        let mut expected = Memberships::default();
        for (id, c) in communities {
            for user in c.members.keys() {
                expected.joined(*user, id);
            }
            for user in c.bans.keys() {
                expected.banned(*user, id);
            }
            expected.founded(c.owner, id);
        }
        for (channel, user) in directs {
            expected.directs.add(user, channel);
        }
        assert_eq!(self.communities, expected.communities, "the community index drifted");
        assert_eq!(self.directs, expected.directs, "the conversation index drifted");
        assert_eq!(self.owned, expected.owned, "the owner index drifted");
        assert_eq!(self.banned, expected.banned, "the ban index drifted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_follows_joins_leaves_and_changed_conversations() {
        let (ann, bob) = (UserId(1), UserId(2));
        let mut m = Memberships::default();
        m.joined(ann, CommunityId(10));
        m.joined(ann, CommunityId(11));
        m.left(ann, CommunityId(10));
        assert_eq!(m.communities(ann).collect::<Vec<_>>(), [CommunityId(11)]);
        m.left(ann, CommunityId(11));
        assert!(m.communities.0.is_empty(), "no empty sets are kept");

        m.direct_changed(ChannelId(20), &[], &[ann, bob]);
        m.direct_changed(ChannelId(20), &[ann, bob], &[bob]);
        assert_eq!(m.directs(ann).count(), 0);
        assert_eq!(m.directs(bob).collect::<Vec<_>>(), [ChannelId(20)]);
        m.check(std::iter::empty(), [(ChannelId(20), bob)].into_iter());

        m.banned(ann, CommunityId(10));
        m.banned(ann, CommunityId(11));
        m.unbanned(ann, CommunityId(10));
        assert!(m.banned_anywhere(ann));
        m.unbanned(ann, CommunityId(11));
        assert!(!m.banned_anywhere(ann) && m.banned.0.is_empty());
    }
}
