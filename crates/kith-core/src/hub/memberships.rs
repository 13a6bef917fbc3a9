//! Who belongs where, by user: "which communities and conversations is this
//! person in" is asked on every presence change, profile edit, snapshot and
//! group change, and must not scan the server for the answer.
//!
//! The communities' member maps and the conversations' member lists stay the
//! truth; this is their index, kept in step by the few hub methods that
//! change membership, and checked against them after every input in debug
//! builds (the tests and the fuzzer run those).

use std::collections::{BTreeSet, HashMap};

use crate::ids::{ChannelId, CommunityId, UserId};

#[derive(Debug, Default)]
pub(super) struct Memberships {
    communities: HashMap<UserId, BTreeSet<CommunityId>>,
    directs: HashMap<UserId, BTreeSet<ChannelId>>,
}

impl Memberships {
    pub fn joined(&mut self, user: UserId, community: CommunityId) {
        self.communities.entry(user).or_default().insert(community);
    }

    pub fn left(&mut self, user: UserId, community: CommunityId) {
        if let Some(set) = self.communities.get_mut(&user) {
            set.remove(&community);
            if set.is_empty() {
                self.communities.remove(&user);
            }
        }
    }

    /// The communities `user` is a member of, in id order.
    pub fn communities(&self, user: UserId) -> impl Iterator<Item = CommunityId> + '_ {
        self.communities.get(&user).into_iter().flatten().copied()
    }

    /// A conversation's participants changed from `before` to `after`.
    pub fn direct_changed(&mut self, channel: ChannelId, before: &[UserId], after: &[UserId]) {
        for user in before.iter().filter(|u| !after.contains(u)) {
            if let Some(set) = self.directs.get_mut(user) {
                set.remove(&channel);
                if set.is_empty() {
                    self.directs.remove(user);
                }
            }
        }
        for user in after {
            self.directs.entry(*user).or_default().insert(channel);
        }
    }

    /// The conversations `user` takes part in, in id order.
    pub fn directs(&self, user: UserId) -> impl Iterator<Item = ChannelId> + '_ {
        self.directs.get(&user).into_iter().flatten().copied()
    }

    /// Panics unless this indexes exactly the given memberships.
    #[cfg(debug_assertions)]
    pub fn check(
        &self,
        communities: impl Iterator<Item = (CommunityId, UserId)>,
        directs: impl Iterator<Item = (ChannelId, UserId)>,
    ) {
        let mut expected = Memberships::default();
        for (community, user) in communities {
            expected.joined(user, community);
        }
        for (channel, user) in directs {
            expected.directs.entry(user).or_default().insert(channel);
        }
        assert_eq!(self.communities, expected.communities, "the community index drifted");
        assert_eq!(self.directs, expected.directs, "the conversation index drifted");
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
        assert!(m.communities.is_empty(), "no empty sets are kept");

        m.direct_changed(ChannelId(20), &[], &[ann, bob]);
        m.direct_changed(ChannelId(20), &[ann, bob], &[bob]);
        assert_eq!(m.directs(ann).count(), 0);
        assert_eq!(m.directs(bob).collect::<Vec<_>>(), [ChannelId(20)]);
        m.check(std::iter::empty(), [(ChannelId(20), bob)].into_iter());
    }
}
