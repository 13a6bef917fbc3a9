//! Who may do what: Discord's permission model as pure functions.
//!
//! A community has roles; `@everyone` (whose id is the community's id) holds
//! what every member may do, and a member's other roles add to it. Channels
//! carry overrides for a role or a member. [`channel_permissions`] folds all
//! of that into the permissions one member has in one channel; the algorithm
//! is also specified, for client authors, on `Permission` in proto/kith.proto.

use std::collections::BTreeMap;

use bitflags::bitflags;
use kith_proto::v1::Permission as Wire;

use crate::ids::{RoleId, UserId};

bitflags! {
    /// A set of permissions. The bits are the wire's `Permission` values.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Permissions: u64 {
        const VIEW_CHANNEL = Wire::ViewChannel as u64;
        const SEND_MESSAGES = Wire::SendMessages as u64;
        const MANAGE_MESSAGES = Wire::ManageMessages as u64;
        const MANAGE_CHANNELS = Wire::ManageChannels as u64;
        const MANAGE_ROLES = Wire::ManageRoles as u64;
        const KICK_MEMBERS = Wire::KickMembers as u64;
        const BAN_MEMBERS = Wire::BanMembers as u64;
        const TIMEOUT_MEMBERS = Wire::TimeoutMembers as u64;
        const CREATE_INVITES = Wire::CreateInvites as u64;
        const MENTION_EVERYONE = Wire::MentionEveryone as u64;
        const CONNECT = Wire::Connect as u64;
        const SPEAK = Wire::Speak as u64;
        const MUTE_MEMBERS = Wire::MuteMembers as u64;
        const MOVE_MEMBERS = Wire::MoveMembers as u64;
        const ADMINISTRATOR = Wire::Administrator as u64;
        const VIEW_AUDIT_LOG = Wire::ViewAuditLog as u64;
        const MANAGE_NICKNAMES = Wire::ManageNicknames as u64;
        const ATTACH_FILES = Wire::AttachFiles as u64;
        const MANAGE_BOTS = Wire::ManageBots as u64;
        const USE_COMMANDS = Wire::UseCommands as u64;
    }
}

impl Permissions {
    /// What `@everyone` may do in a new community.
    pub const DEFAULT_EVERYONE: Permissions = Permissions::VIEW_CHANNEL
        .union(Permissions::SEND_MESSAGES)
        .union(Permissions::ATTACH_FILES)
        .union(Permissions::USE_COMMANDS)
        .union(Permissions::CREATE_INVITES)
        .union(Permissions::CONNECT)
        .union(Permissions::SPEAK);

    /// From a wire field; bits this version does not know are dropped.
    pub fn from_wire(bits: u64) -> Self {
        Self::from_bits_truncate(bits)
    }

    /// Lowercase names (`send_messages`), for people and the audit log.
    pub fn names(self) -> Vec<String> {
        self.iter_names().map(|(name, _)| name.to_ascii_lowercase()).collect()
    }

    /// Parses one lowercase or uppercase permission name.
    pub fn by_name(name: &str) -> Option<Self> {
        Self::from_name(&name.to_ascii_uppercase())
    }
}

/// Allow and deny bits for one role or member in one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Override {
    pub allow: Permissions,
    pub deny: Permissions,
}

impl Override {
    fn apply(self, p: Permissions) -> Permissions {
        (p - self.deny) | self.allow
    }
}

/// Whom an override is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OverrideTarget {
    Role(RoleId),
    Member(UserId),
}

/// Everything about one member that their permissions depend on.
#[derive(Debug, Clone)]
pub struct Standing {
    pub user: UserId,
    pub owner: bool,
    /// The permissions of the community's `@everyone` role.
    pub everyone: Permissions,
    /// The member's other roles and their permissions.
    pub roles: Vec<(RoleId, Permissions)>,
    /// A timeout is in force now.
    pub timed_out: bool,
    /// A guest's ceiling: whatever the roles say, never more than this.
    pub ceiling: Option<Permissions>,
}

/// What a guest may do at most: read, and write if the operator allows it.
pub fn guest_ceiling(can_send: bool) -> Permissions {
    if can_send { Permissions::VIEW_CHANNEL | Permissions::SEND_MESSAGES } else { Permissions::VIEW_CHANNEL }
}

/// The member's permissions across the community, before channel overrides.
pub fn community_permissions(s: &Standing) -> Permissions {
    community_unceiled(s) & s.ceiling.unwrap_or(Permissions::all())
}

fn community_unceiled(s: &Standing) -> Permissions {
    if s.owner {
        return Permissions::all();
    }
    let base = s.roles.iter().fold(s.everyone, |p, (_, r)| p | *r);
    if base.contains(Permissions::ADMINISTRATOR) {
        return Permissions::all();
    }
    if s.timed_out {
        return base & Permissions::VIEW_CHANNEL;
    }
    base
}

/// The member's permissions in a channel with these overrides; empty if the
/// member may not view the channel. `everyone` is the community's
/// `@everyone` role id.
pub fn channel_permissions(
    s: &Standing,
    everyone: RoleId,
    overrides: &BTreeMap<OverrideTarget, Override>,
) -> Permissions {
    let p = channel_unceiled(s, everyone, overrides) & s.ceiling.unwrap_or(Permissions::all());
    if p.contains(Permissions::VIEW_CHANNEL) { p } else { Permissions::empty() }
}

fn channel_unceiled(
    s: &Standing,
    everyone: RoleId,
    overrides: &BTreeMap<OverrideTarget, Override>,
) -> Permissions {
    if s.owner {
        return Permissions::all();
    }
    let base = s.roles.iter().fold(s.everyone, |p, (_, r)| p | *r);
    if base.contains(Permissions::ADMINISTRATOR) {
        return Permissions::all();
    }
    let mut p = base;
    if let Some(o) = overrides.get(&OverrideTarget::Role(everyone)) {
        p = o.apply(p);
    }
    let roles = s
        .roles
        .iter()
        .filter_map(|(id, _)| overrides.get(&OverrideTarget::Role(*id)))
        .fold(Override::default(), |acc, o| Override { allow: acc.allow | o.allow, deny: acc.deny | o.deny });
    p = roles.apply(p);
    if let Some(o) = overrides.get(&OverrideTarget::Member(s.user)) {
        p = o.apply(p);
    }
    if !p.contains(Permissions::VIEW_CHANNEL) {
        return Permissions::empty();
    }
    if s.timed_out {
        return Permissions::VIEW_CHANNEL;
    }
    p
}

/// Rank for "nobody acts on someone ranked at or above them": the owner
/// outranks everyone, otherwise the highest rank among one's roles
/// (`@everyone` is 0).
pub fn rank(owner: bool, role_ranks: impl IntoIterator<Item = u32>) -> u64 {
    if owner { u64::MAX } else { role_ranks.into_iter().max().map_or(0, u64::from) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EVERYONE: RoleId = RoleId(1);
    const MODERATOR: RoleId = RoleId(2);
    const ADMIN: RoleId = RoleId(3);
    const CAROL: UserId = UserId(13);

    fn moderator() -> Permissions {
        Permissions::MANAGE_MESSAGES | Permissions::KICK_MEMBERS | Permissions::TIMEOUT_MEMBERS
    }

    fn standing(subject: &str) -> Standing {
        let member = |user: u64, roles: Vec<(RoleId, Permissions)>| Standing {
            user: UserId(user),
            owner: false,
            everyone: Permissions::DEFAULT_EVERYONE,
            roles,
            timed_out: false,
            ceiling: None,
        };
        match subject {
            "owner" => Standing { owner: true, ..member(10, vec![]) },
            "admin" => member(11, vec![(ADMIN, Permissions::ADMINISTRATOR)]),
            "moderator" => member(12, vec![(MODERATOR, moderator())]),
            "carol" => member(CAROL.0, vec![]),
            "member" => member(14, vec![]),
            "timed-out" => Standing { timed_out: true, ..member(15, vec![]) },
            "timed-out-mod" => Standing { timed_out: true, ..member(16, vec![(MODERATOR, moderator())]) },
            "guest" => Standing { ceiling: Some(guest_ceiling(false)), ..member(17, vec![]) },
            "chatty-guest" => Standing { ceiling: Some(guest_ceiling(true)), ..member(18, vec![]) },
            // Roles never lift a guest above the ceiling.
            "guest-admin" => Standing {
                ceiling: Some(guest_ceiling(true)),
                ..member(19, vec![(ADMIN, Permissions::ADMINISTRATOR)])
            },
            _ => unreachable!("{subject}"),
        }
    }

    fn channel(name: &str) -> BTreeMap<OverrideTarget, Override> {
        let deny = |p| Override { allow: Permissions::empty(), deny: p };
        let allow = |p| Override { allow: p, deny: Permissions::empty() };
        match name {
            // No overrides.
            "general" => BTreeMap::new(),
            // Hidden from everyone but moderators.
            "staff" => BTreeMap::from([
                (OverrideTarget::Role(EVERYONE), deny(Permissions::VIEW_CHANNEL)),
                (OverrideTarget::Role(MODERATOR), allow(Permissions::VIEW_CHANNEL)),
            ]),
            // Read-only except for moderators.
            "announcements" => BTreeMap::from([
                (OverrideTarget::Role(EVERYONE), deny(Permissions::SEND_MESSAGES)),
                (OverrideTarget::Role(MODERATOR), allow(Permissions::SEND_MESSAGES)),
            ]),
            // Carol alone may not speak here, and carol alone may manage it.
            "carols-corner" => BTreeMap::from([(
                OverrideTarget::Member(CAROL),
                Override { allow: Permissions::MANAGE_CHANNELS, deny: Permissions::SEND_MESSAGES },
            )]),
            _ => unreachable!("{name}"),
        }
    }

    /// The action letters of the table, in column order.
    const ACTIONS: [(char, Permissions); 6] = [
        ('V', Permissions::VIEW_CHANNEL),
        ('S', Permissions::SEND_MESSAGES),
        ('M', Permissions::MANAGE_MESSAGES),
        ('C', Permissions::MANAGE_CHANNELS),
        ('K', Permissions::KICK_MEMBERS),
        ('I', Permissions::CREATE_INVITES),
    ];

    /// Subject × channel → which actions are allowed ('.' = refused).
    /// V view, S send, M manage messages, C manage channels, K kick, I invite.
    const MATRIX: &[(&str, [&str; 4])] = &[
        //               general   staff     announcements carols-corner
        ("owner", ["VSMCKI", "VSMCKI", "VSMCKI", "VSMCKI"]),
        ("admin", ["VSMCKI", "VSMCKI", "VSMCKI", "VSMCKI"]),
        ("moderator", ["VSM.KI", "VSM.KI", "VSM.KI", "VSM.KI"]),
        ("carol", ["VS...I", "......", "V....I", "V..C.I"]),
        ("member", ["VS...I", "......", "V....I", "VS...I"]),
        ("timed-out", ["V.....", "......", "V.....", "V....."]),
        ("timed-out-mod", ["V.....", "V.....", "V.....", "V....."]),
        ("guest", ["V.....", "......", "V.....", "V....."]),
        ("chatty-guest", ["VS....", "......", "V.....", "VS...."]),
        ("guest-admin", ["VS....", "VS....", "VS....", "VS...."]),
    ];

    #[test]
    fn the_permission_matrix() {
        let channels = ["general", "staff", "announcements", "carols-corner"];
        let mut failures = Vec::new();
        for (subject, row) in MATRIX {
            let s = standing(subject);
            for (ch, expected) in channels.iter().zip(row) {
                let got = channel_permissions(&s, EVERYONE, &channel(ch));
                let shown: String =
                    ACTIONS.iter().map(|(c, p)| if got.contains(*p) { *c } else { '.' }).collect();
                if shown != *expected {
                    failures.push(format!("{subject} in #{ch}: expected {expected}, got {shown}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn community_permissions_ignore_channel_overrides_but_not_timeouts() {
        assert_eq!(community_permissions(&standing("owner")), Permissions::all());
        assert_eq!(community_permissions(&standing("admin")), Permissions::all());
        assert!(community_permissions(&standing("moderator")).contains(Permissions::KICK_MEMBERS));
        assert_eq!(community_permissions(&standing("timed-out-mod")), Permissions::VIEW_CHANNEL);
    }

    #[test]
    fn ranks_order_owner_then_roles_then_everyone() {
        assert_eq!(rank(true, [1]), u64::MAX);
        assert_eq!(rank(false, [3, 9, 1]), 9);
        assert_eq!(rank(false, []), 0);
    }

    #[test]
    fn names_round_trip() {
        for (name, p) in Permissions::all().iter_names() {
            assert_eq!(Permissions::by_name(&name.to_ascii_lowercase()), Some(p));
        }
        assert_eq!(Permissions::by_name("fly"), None);
        assert_eq!(Permissions::from_wire(u64::MAX), Permissions::all());
    }

    fn perms() -> impl Strategy<Value = Permissions> {
        any::<u64>().prop_map(Permissions::from_wire)
    }

    fn overrides() -> impl Strategy<Value = BTreeMap<OverrideTarget, Override>> {
        let target = prop_oneof![
            (1u64..4).prop_map(|r| OverrideTarget::Role(RoleId(r))),
            (10u64..12).prop_map(|u| OverrideTarget::Member(UserId(u))),
        ];
        proptest::collection::btree_map(
            target,
            (perms(), perms()).prop_map(|(allow, deny)| Override { allow, deny }),
            0..5,
        )
    }

    proptest! {
        #[test]
        fn permission_laws(
            everyone in perms(),
            roles in proptest::collection::vec((2u64..4, perms()), 0..3),
            ov in overrides(),
            timed_out: bool,
            guest: Option<bool>,
        ) {
            let s = Standing {
                user: UserId(10),
                owner: false,
                everyone,
                roles: roles.into_iter().map(|(r, p)| (RoleId(r), p)).collect(),
                timed_out,
                ceiling: None,
            };
            // A guest gets what the same member would, cut to the ceiling
            // (and nothing at all without view).
            if let Some(can_send) = guest {
                let ceiling = guest_ceiling(can_send);
                let g = Standing { ceiling: Some(ceiling), ..s.clone() };
                let cut = channel_permissions(&s, RoleId(1), &ov) & ceiling;
                let expected = if cut.contains(Permissions::VIEW_CHANNEL) { cut } else { Permissions::empty() };
                prop_assert_eq!(channel_permissions(&g, RoleId(1), &ov), expected);
                prop_assert_eq!(community_permissions(&g), community_permissions(&s) & ceiling);
            }
            let p = channel_permissions(&s, RoleId(1), &ov);
            let base = community_permissions(&s);
            if base == Permissions::all() {
                // Administrators are never limited by overrides or timeouts.
                prop_assert_eq!(p, Permissions::all());
            } else {
                // No view, nothing at all.
                prop_assert!(p.is_empty() || p.contains(Permissions::VIEW_CHANNEL));
                if timed_out {
                    prop_assert!(Permissions::VIEW_CHANNEL.contains(p));
                }
                // The member's own override has the last word.
                if let Some(o) = ov.get(&OverrideTarget::Member(UserId(10))) {
                    if !p.is_empty() {
                        prop_assert!(p.contains(o.allow - o.deny) || timed_out);
                    }
                    prop_assert!(!p.intersects(o.deny - o.allow));
                }
            }
            let owner = Standing { owner: true, ..s };
            prop_assert_eq!(channel_permissions(&owner, RoleId(1), &ov), Permissions::all());
        }
    }
}
