//! Identifiers and time. The hub never reads a clock: every input carries a
//! [`Timestamp`], and ids are minted from it by [`IdGen`].

use std::fmt;

/// A map keyed by ids the server mints (users, channels, sessions, token
/// hashes), hashed with foldhash. An id is one integer, and std's SipHash,
/// built to resist keys chosen to collide, took a fifth of the hub's time
/// in `kith-bench hub`. No peer can choose an id, so that resistance buys
/// nothing here; maps keyed by what peers send (names, invite and resume
/// codes) keep std's hasher.
pub type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A set of ids the server mints; see [`IdMap`].
pub type IdSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn plus_ms(self, ms: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

/// 2026-01-01T00:00:00Z in Unix milliseconds: the zero point of snowflake ids.
pub const ID_EPOCH_MS: u64 = 1_767_225_600_000;
const SEQUENCE_BITS: u32 = 22;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl $name {
            /// The creation time encoded in the id.
            pub fn timestamp(self) -> Timestamp {
                Timestamp((self.0 >> SEQUENCE_BITS) + ID_EPOCH_MS)
            }

            /// The smallest id minted at or after `t`.
            pub fn first_at(t: Timestamp) -> Self {
                $name(t.0.saturating_sub(ID_EPOCH_MS) << SEQUENCE_BITS)
            }
        }
    )*};
}

id_type!(
    /// An account.
    UserId,
    /// A community ("server" in Discord's words).
    CommunityId,
    /// A text channel in a community.
    ChannelId,
    /// A message.
    MessageId,
    /// A login token (its id, not its secret).
    TokenId,
    /// A role in a community. A community's `@everyone` role has the
    /// community's own id.
    RoleId,
    /// An audit log entry.
    AuditId,
);

/// A connection, numbered by the edge that accepted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// Mints snowflake ids: 42 bits of milliseconds since [`ID_EPOCH_MS`], then a
/// 22-bit sequence.
///
/// Ids strictly increase even if the clock steps back or more than 4 million
/// ids are asked for in one millisecond: the generator then runs ahead of the
/// clock until the clock catches up.
#[derive(Debug, Clone)]
pub struct IdGen {
    last: u64,
}

impl IdGen {
    /// Continues after `last`, the highest id ever issued (0 for none).
    pub fn after(last: u64) -> Self {
        Self { last }
    }

    pub fn next(&mut self, now: Timestamp) -> u64 {
        let from_clock = now.0.saturating_sub(ID_EPOCH_MS) << SEQUENCE_BITS;
        self.last = from_clock.max(self.last + 1);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_when_the_clock_steps_back() {
        let mut ids = IdGen::after(0);
        let t = Timestamp(ID_EPOCH_MS + 10_000);
        let a = ids.next(t);
        let b = ids.next(Timestamp(t.0 - 5_000));
        let c = ids.next(t);
        assert!(a < b && b < c);
    }

    #[test]
    fn id_encodes_its_creation_time() {
        let mut ids = IdGen::after(0);
        let t = Timestamp(ID_EPOCH_MS + 123_456);
        assert_eq!(MessageId(ids.next(t)).timestamp(), t);
    }
}
