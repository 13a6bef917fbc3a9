//! The directory: every account, the names that find one, the logins that
//! sign one in, suspensions, reset codes and the pool of guest accounts.
//!
//! Its indexes change only here, with the map they index, so a renamed
//! account (a tombstone) or a revoked login leaves nothing behind; the
//! rules about names — what counts as taken — have one implementation.

use crate::ids::{IdMap, IdSet};
use std::collections::{BTreeSet, HashMap};

use crate::ids::{Timestamp, TokenId, UserId};
use crate::request::TokenHash;
use crate::store::{StoredState, StoredUser};
use crate::text::{Username, look_alike_keys};

#[derive(Debug)]
pub(super) struct User {
    pub(super) stored: StoredUser,
    /// A guest whose session is still going (see `guest.rs`).
    pub(super) guest: bool,
    /// Wrote at least one message (so, for a guest account, it is not
    /// handed to a later guest).
    pub(super) authored: bool,
}

#[derive(Debug)]
pub(super) struct Directory {
    users: IdMap<UserId, User>,
    by_fold: HashMap<String, UserId>,
    /// Every look-alike key of every username (see `look_alike_keys`).
    by_skeleton: HashMap<String, UserId>,
    owner: Option<UserId>,
    /// The number the next guest's name is tried with.
    next_guest: u64,
    /// Guest accounts with no session that wrote nothing and are banned
    /// nowhere: a later guest gets one of these rather than a new row.
    idle_guests: BTreeSet<UserId>,
    tokens: IdMap<TokenHash, (TokenId, UserId)>,
    /// Each account's logins, so that ending them all is not a scan of
    /// every login on the server.
    tokens_of: IdMap<UserId, IdSet<TokenHash>>,
    /// Accounts suspended server-wide, and why (see `account.rs`).
    suspended: IdMap<UserId, String>,
    /// Password reset codes not yet used (their hashes), and until when.
    reset_codes: IdMap<UserId, (TokenHash, Timestamp)>,
}

impl std::ops::Index<&UserId> for Directory {
    type Output = User;

    /// The account of an id the hub holds (an author, a member, a session's).
    fn index(&self, id: &UserId) -> &User {
        &self.users[id]
    }
}

/// The look-alike key of a username as typed (`aIice`: see
/// `look_alike_keys`), when it is not its skeleton already. A name typed in
/// lower case — most are — is its own fold, and then its typed key is the
/// skeleton of its fold, which the account holds: computing it again (NFKC
/// and UTS #39 for every account at start-up) would find nothing new.
fn typed_key(u: &StoredUser) -> Option<String> {
    (u.username != u.fold).then(|| {
        let [typed, _] = look_alike_keys(&u.username);
        typed
    })
}

impl Directory {
    /// Everything the store keeps about accounts and logins. Guest names
    /// are never reused (a later guest would look like the author of an
    /// earlier one's messages), so numbering continues after the highest.
    pub(super) fn load(state: &mut StoredState) -> Self {
        let mut d = Directory {
            users: IdMap::default(),
            by_fold: HashMap::new(),
            by_skeleton: HashMap::new(),
            owner: None,
            next_guest: 1,
            idle_guests: BTreeSet::new(),
            tokens: IdMap::default(),
            tokens_of: IdMap::default(),
            suspended: state.suspended.drain(..).collect(),
            reset_codes: state
                .reset_codes
                .drain(..)
                .map(|(user, hash, until)| (user, (hash, until)))
                .collect(),
        };
        for u in state.users.drain(..) {
            d.add(u);
        }
        for t in state.tokens.drain(..) {
            d.add_token(t.hash, t.id, t.user);
        }
        let guests = d.by_fold.keys().filter_map(|f| Username::guest_number(f));
        d.next_guest = guests.max().map_or(1, |n| n.saturating_add(1));
        d
    }

    pub(super) fn add(&mut self, u: StoredUser) {
        if u.server_owner {
            self.owner = Some(u.id);
        }
        self.by_fold.insert(u.fold.clone(), u.id);
        self.by_skeleton.insert(u.skeleton.clone(), u.id);
        if let Some(typed) = typed_key(&u) {
            self.by_skeleton.entry(typed).or_insert(u.id);
        }
        self.users.insert(u.id, User { stored: u, guest: false, authored: false });
    }

    /// Whether a new account could take `name`: nobody has it, nor a name
    /// that looks like it (with or without case).
    pub(super) fn name_free(&self, name: &Username) -> bool {
        let [typed, _] = look_alike_keys(&name.name);
        ![&name.skeleton, &typed].into_iter().any(|k| self.by_skeleton.contains_key(k))
            && !self.by_fold.contains_key(&name.fold)
    }

    /// Whether `shown` (a display name) could pass for someone's username.
    pub(super) fn looks_like_a_username(&self, shown: &str) -> bool {
        look_alike_keys(shown).iter().any(|k| self.by_skeleton.contains_key(k))
    }

    /// The account a username (folded) names.
    pub(super) fn find(&self, fold: &str) -> Option<UserId> {
        self.by_fold.get(fold).copied()
    }

    pub(super) fn get(&self, id: UserId) -> Option<&User> {
        self.users.get(&id)
    }

    /// An account, to change what is not its name (names change only
    /// through [`Directory::rename`], which keeps the indexes).
    pub(super) fn get_mut(&mut self, id: UserId) -> Option<&mut User> {
        self.users.get_mut(&id)
    }

    pub(super) fn contains(&self, id: UserId) -> bool {
        self.users.contains_key(&id)
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = UserId> + '_ {
        self.users.keys().copied()
    }

    pub(super) fn owner(&self) -> Option<UserId> {
        self.owner
    }

    pub(super) fn is_owner(&self, user: UserId) -> bool {
        self.owner == Some(user)
    }

    pub(super) fn is_bot(&self, user: UserId) -> bool {
        self.users.get(&user).is_some_and(|u| u.stored.bot)
    }

    pub(super) fn is_guest(&self, user: UserId) -> bool {
        self.users.get(&user).is_some_and(|u| u.guest)
    }

    /// Gives an account new names (a deleted account's tombstone), and
    /// `update` the rest of it.
    pub(super) fn rename(&mut self, id: UserId, name: Username, update: impl FnOnce(&mut StoredUser)) {
        let Some(u) = self.users.get_mut(&id) else { return };
        for key in [Some(u.stored.skeleton.clone()), typed_key(&u.stored)].into_iter().flatten() {
            if self.by_skeleton.get(&key) == Some(&id) {
                self.by_skeleton.remove(&key);
            }
        }
        self.by_fold.remove(&u.stored.fold);
        u.stored.username = name.name;
        u.stored.fold = name.fold;
        u.stored.skeleton = name.skeleton;
        update(&mut u.stored);
        let stored = &u.stored;
        self.by_fold.insert(stored.fold.clone(), id);
        self.by_skeleton.insert(stored.skeleton.clone(), id);
        if let Some(typed) = typed_key(stored) {
            self.by_skeleton.entry(typed).or_insert(id);
        }
    }

    // ----- logins ------------------------------------------------------------

    pub(super) fn add_token(&mut self, hash: TokenHash, id: TokenId, user: UserId) {
        self.tokens.insert(hash, (id, user));
        self.tokens_of.entry(user).or_default().insert(hash);
    }

    /// The login a token's hash is, and whose.
    pub(super) fn token(&self, hash: &TokenHash) -> Option<(TokenId, UserId)> {
        self.tokens.get(hash).copied()
    }

    /// Forgets the logins of `user` that `which` picks, and says which
    /// they were (for the store).
    pub(super) fn revoke(&mut self, user: UserId, which: impl Fn(TokenId) -> bool) -> BTreeSet<TokenId> {
        let Some(hashes) = self.tokens_of.get_mut(&user) else { return BTreeSet::new() };
        let mut revoked = BTreeSet::new();
        hashes.retain(|hash| {
            let (id, _) = self.tokens[hash];
            let gone = which(id);
            if gone {
                self.tokens.remove(hash);
                revoked.insert(id);
            }
            !gone
        });
        if hashes.is_empty() {
            self.tokens_of.remove(&user);
        }
        revoked
    }

    /// Forgets every login of `user`.
    pub(super) fn revoke_all(&mut self, user: UserId) -> BTreeSet<TokenId> {
        self.revoke(user, |_| true)
    }

    // ----- suspensions and reset codes ----------------------------------------

    /// Why `user` is suspended (maybe ""), if they are.
    pub(super) fn suspension(&self, user: UserId) -> Option<&str> {
        self.suspended.get(&user).map(String::as_str)
    }

    pub(super) fn suspend(&mut self, user: UserId, reason: String) {
        self.suspended.insert(user, reason);
    }

    /// Lifts a suspension; false if there was none.
    pub(super) fn unsuspend(&mut self, user: UserId) -> bool {
        self.suspended.remove(&user).is_some()
    }

    pub(super) fn set_reset_code(&mut self, user: UserId, hash: TokenHash, until: Timestamp) {
        self.reset_codes.insert(user, (hash, until));
    }

    /// Whether `hash` is `user`'s reset code and it still stands.
    pub(super) fn reset_code_stands(&self, user: UserId, hash: &TokenHash, now: Timestamp) -> bool {
        self.reset_codes.get(&user).is_some_and(|(h, until)| h == hash && now < *until)
    }

    /// A reset code is used once.
    pub(super) fn clear_reset_code(&mut self, user: UserId) {
        self.reset_codes.remove(&user);
    }

    /// What a deleted account loses besides its names: its suspension and
    /// reset code.
    pub(super) fn clear_standing(&mut self, user: UserId) {
        self.suspended.remove(&user);
        self.clear_reset_code(user);
    }

    // ----- guests --------------------------------------------------------------

    /// A fresh guest name: numbered on from the last, skipping any taken.
    pub(super) fn next_guest_name(&mut self) -> Username {
        loop {
            let name = Username::guest(self.next_guest);
            self.next_guest += 1;
            if self.name_free(&name) {
                return name;
            }
        }
    }

    /// Puts a guest account no session uses into the pool a later guest
    /// is given one from.
    pub(super) fn park_guest(&mut self, user: UserId) {
        self.idle_guests.insert(user);
    }

    /// Takes a parked guest account that `fits` (e.g. is not banned where
    /// the visitor goes), for a new visitor.
    pub(super) fn take_guest(&mut self, fits: impl Fn(UserId) -> bool) -> Option<UserId> {
        let id = self.idle_guests.iter().copied().find(|g| fits(*g))?;
        self.idle_guests.remove(&id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Chosen;

    fn user(id: u64, name: &str) -> StoredUser {
        let n = match name.strip_prefix("guest-") {
            Some(n) => Username::guest(n.parse().unwrap()),
            None => Username::parse(name).unwrap(),
        };
        StoredUser {
            id: UserId(id),
            username: n.name,
            fold: n.fold,
            skeleton: n.skeleton,
            display_name: name.into(),
            status_text: String::new(),
            server_owner: false,
            presence: Chosen::Online,
            bot: false,
            deleted: false,
        }
    }

    fn directory(users: &[(u64, &str)]) -> Directory {
        let mut state = StoredState {
            users: users.iter().map(|(id, name)| user(*id, name)).collect(),
            ..Default::default()
        };
        Directory::load(&mut state)
    }

    #[test]
    fn a_name_is_taken_with_its_look_alikes() {
        let d = directory(&[(1, "alice")]);
        for taken in ["alice", "ALICE", "aIice", "a1ice"] {
            assert!(!d.name_free(&Username::parse(taken).unwrap()), "{taken}");
        }
        assert!(d.name_free(&Username::parse("bob").unwrap()));
        assert!(d.looks_like_a_username("Alice"));
        assert_eq!(d.find("alice"), Some(UserId(1)));
    }

    use proptest::prelude::*;

    proptest! {
        /// Skipping the typed key of a name that is its own fold loses
        /// nothing: for any username, the keys the directory holds are its
        /// skeleton and both of `look_alike_keys`.
        #[test]
        fn an_account_holds_every_look_alike_key_of_its_name(
            raw in "[a-zA-Z0-9_.\\-ıİßſǅǆКкΑαＡａ]{2,12}"
        ) {
            let Ok(name) = Username::parse(&raw) else { return Ok(()) };
            let d = directory(&[(1, &name.name)]);
            let mut held: Vec<&String> = d.by_skeleton.keys().collect();
            held.sort();
            let mut expected: Vec<String> = look_alike_keys(&name.name).into();
            expected.push(name.skeleton.clone());
            expected.sort();
            expected.dedup();
            prop_assert_eq!(held, expected.iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_renamed_account_leaves_its_old_names_free() {
        let mut d = directory(&[(1, "alice")]);
        d.rename(UserId(1), Username::deleted(1), |u| u.deleted = true);
        assert!(d.name_free(&Username::parse("alice").unwrap()));
        assert_eq!(d.find("alice"), None);
        assert_eq!(d.find(&Username::deleted(1).fold), Some(UserId(1)));
        assert!(d[&UserId(1)].stored.deleted);
        assert!(d.by_fold.values().chain(d.by_skeleton.values()).all(|id| *id == UserId(1)));
        assert_eq!(d.by_fold.len(), 1);
    }

    #[test]
    fn revoking_logins_forgets_them_everywhere() {
        let mut d = directory(&[(1, "alice"), (2, "bob")]);
        for (n, owner) in [(1u8, 1), (2, 1), (3, 2)] {
            d.add_token(TokenHash([n; 32]), TokenId(u64::from(n)), UserId(owner));
        }
        assert_eq!(d.revoke(UserId(1), |id| id == TokenId(2)), BTreeSet::from([TokenId(2)]));
        assert_eq!(d.token(&TokenHash([2; 32])), None);
        assert_eq!(d.token(&TokenHash([1; 32])), Some((TokenId(1), UserId(1))));
        assert_eq!(d.revoke_all(UserId(1)), BTreeSet::from([TokenId(1)]));
        assert_eq!(d.tokens.len(), 1);
        assert!(!d.tokens_of.contains_key(&UserId(1)));
        assert_eq!(d.revoke_all(UserId(1)), BTreeSet::new());
    }

    #[test]
    fn a_reset_code_stands_until_its_time_or_its_use() {
        let mut d = directory(&[(1, "alice")]);
        d.set_reset_code(UserId(1), TokenHash([7; 32]), Timestamp(100));
        assert!(!d.reset_code_stands(UserId(1), &TokenHash([8; 32]), Timestamp(1)));
        assert!(!d.reset_code_stands(UserId(1), &TokenHash([7; 32]), Timestamp(100)));
        assert!(d.reset_code_stands(UserId(1), &TokenHash([7; 32]), Timestamp(99)));
        d.clear_reset_code(UserId(1));
        assert!(!d.reset_code_stands(UserId(1), &TokenHash([7; 32]), Timestamp(99)));
    }

    #[test]
    fn guest_names_continue_after_the_highest_stored() {
        let mut d = directory(&[(1, "guest-7"), (2, "guest-3")]);
        assert_eq!(d.next_guest_name().name, "guest-8");
        assert_eq!(d.next_guest_name().name, "guest-9");
    }
}
