//! `kith import`: a kith export (docs/export.md) — or, in [`discord`], a
//! Discord archive — into a server's data directory, with the server
//! stopped (the hub holds its state in memory and would not see rows
//! written under it).
//!
//! Everything goes in one transaction: an import that fails anywhere (a
//! malformed file, a name that clashes) leaves the database as it was;
//! files already copied into the store are then unreferenced, and swept.
//! Ids are kept, and rows already present are left as they are, so
//! importing the same export twice changes nothing, and importing a newer
//! export of the same server adds only what is new.
//!
//! Imported people have no password (nor tokens: exports never carry
//! them). Each signs in once with a one-time code from the server's owner
//! (`kith admin reset-password`) and chooses one.

pub mod discord;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use kith_core::Permissions;
use kith_core::ids::IdGen;
use kith_core::text::{
    Body, ChannelName, CommunityName, DisplayName, GroupName, Nickname, Reason, RoleName, StatusText, Topic,
    Username,
};
use rusqlite::{OptionalExtension as _, Transaction, params};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};

use crate::files::Files;

/// What an import added (rows already present are not counted).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub users: u64,
    pub communities: u64,
    pub channels: u64,
    pub messages: u64,
    pub files: u64,
    /// Messages the server already had.
    pub present: u64,
}

/// A person to import.
pub(crate) struct NewUser {
    pub id: u64,
    pub username: String,
    pub display_name: String,
    pub status_text: String,
    pub bot: bool,
    pub server_owner: bool,
    pub created_at: i64,
    /// A deleted account's tombstone (its name is `deleted-ID` here too).
    pub deleted: bool,
}

/// A message to import.
pub(crate) struct NewMessage {
    pub id: u64,
    pub channel: u64,
    pub author: u64,
    pub body: String,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub reply_to: Option<u64>,
    pub mentions: Vec<u64>,
    pub mention_everyone: bool,
    pub deleted: bool,
}

/// A file a message carries, once it is in the store.
pub(crate) struct NewAttachment {
    pub name: String,
    pub size: u64,
    pub content_type: String,
    pub blake3: [u8; 32],
    pub width: u32,
    pub height: u32,
}

/// The database being imported into, in its one transaction.
pub(crate) struct Target<'c> {
    tx: Transaction<'c>,
    pub files: Files,
    has_owner: bool,
    pub ids: IdGen,
    pub done: Imported,
    /// Folded username → the name to give that person here.
    renames: HashMap<String, String>,
    progress: &'c mut dyn FnMut(u64),
}

/// Runs `f` against the data directory `data` (created if new) in one
/// transaction, committed only if `f` succeeds.
pub(crate) fn into_data_dir(
    data: &Path,
    renames: &[(String, String)],
    progress: &mut dyn FnMut(u64),
    f: impl FnOnce(&mut Target<'_>) -> Result<()>,
) -> Result<Imported> {
    // Private, as `kith serve` makes it: it will hold every message.
    crate::create_private_dir(data)?;
    // A running server holds the lock: it would not see the import, and
    // its writes would interleave with it.
    let _lock = crate::lock_data_dir(data)?;
    crate::private_database(&data.join("kith.db"))?;
    let mut db = crate::store::sqlite::open_migrated(&data.join("kith.db"))
        .map_err(|e| anyhow!("opening {}: {e}", data.join("kith.db").display()))?;
    let files = Files::open(data, 0, false).with_context(|| format!("opening {}/files", data.display()))?;
    let tx = db.transaction()?;
    let has_owner =
        tx.query_row("SELECT EXISTS (SELECT 1 FROM users WHERE server_owner)", [], |r| r.get(0))?;
    let max = crate::store::sqlite::max_id(&tx)?;
    let mut target = Target {
        tx,
        files,
        has_owner,
        ids: IdGen::after(max),
        done: Imported::default(),
        renames: renames.iter().map(|(from, to)| (Username::fold(from), to.clone())).collect(),
        progress,
    };
    f(&mut target)?;
    let Target { tx, done, .. } = target;
    tx.commit().context("committing the import")?;
    Ok(done)
}

fn i(v: u64) -> i64 {
    v as i64
}

impl Target<'_> {
    /// Adds a person unless their id is already here. A new person's name
    /// must be free on this server (`--rename` gives them another).
    pub fn user(&mut self, u: &NewUser) -> Result<()> {
        if self.tx.query_row("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)", [i(u.id)], |r| r.get(0))? {
            return Ok(());
        }
        let name = if u.deleted {
            Username::deleted(u.id)
        } else {
            let wanted = self.renamed(&u.username);
            Username::parse(&wanted).map_err(|e| anyhow!("the user {:?}: {e}", u.username))?
        };
        let clash: Option<String> = self
            .tx
            .query_row(
                "SELECT username FROM users WHERE fold = ?1 OR skeleton = ?2",
                params![name.fold, name.skeleton],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(theirs) = clash {
            bail!(
                "the import's user {:?} would clash with this server's account {theirs:?}: give them another \
                 name with --rename {}=NEWNAME",
                name.name,
                name.name
            );
        }
        let display_name = DisplayName::parse(&u.display_name).map_or_else(|_| name.name.clone(), |d| d.0);
        let status_text = StatusText::parse(&u.status_text).map(|s| s.0).unwrap_or_default();
        // One owner per server: the one already here, else the export's.
        let owner = u.server_owner && !self.has_owner;
        self.has_owner |= owner;
        // No password: an empty hash matches none, so the person signs in
        // with a one-time code from the owner and chooses one.
        self.tx.execute(
            "INSERT INTO users (id, username, fold, skeleton, display_name, password_hash, server_owner,
                                created_at, bot, status_text, deleted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, '', ?6, ?7, ?8, ?9, CASE WHEN ?10 THEN ?7 END)",
            params![
                i(u.id),
                name.name,
                name.fold,
                name.skeleton,
                display_name,
                owner,
                u.created_at,
                u.bot,
                status_text,
                u.deleted
            ],
        )?;
        self.done.users += 1;
        Ok(())
    }

    /// The name `--rename` gives someone called `name` in the import.
    pub fn renamed(&self, name: &str) -> String {
        self.renames.get(&Username::fold(name)).cloned().unwrap_or_else(|| name.to_owned())
    }

    /// Adds a community unless it is here; an id naming a different
    /// community here is refused.
    pub fn community(&mut self, id: u64, name: &str, owner: u64, created_at: i64) -> Result<()> {
        let here: Option<i64> = self
            .tx
            .query_row("SELECT created_at FROM communities WHERE id = ?1", [i(id)], |r| r.get(0))
            .optional()?;
        match here {
            Some(at) if at == created_at => return Ok(()),
            Some(_) => bail!("the community {name:?} has the id of another community on this server ({id})"),
            None => {}
        }
        let name = CommunityName::parse(name).map_err(|e| anyhow!("the community {name:?}: {e}"))?;
        self.tx.execute(
            "INSERT INTO communities (id, name, owner_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![i(id), name.0, i(owner), created_at],
        )?;
        self.done.communities += 1;
        Ok(())
    }

    /// A role. The community's own id is its `@everyone`.
    pub fn role(
        &mut self,
        community: u64,
        id: u64,
        name: &str,
        permissions: Permissions,
        rank: i64,
    ) -> Result<()> {
        let name = if id == community {
            "@everyone".to_owned()
        } else {
            RoleName::parse(name).map_err(|e| anyhow!("the role {name:?}: {e}"))?.0
        };
        self.tx.execute(
            "INSERT OR IGNORE INTO roles (id, community_id, name, permissions, rank) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![i(id), i(community), name, i(permissions.bits()), rank],
        )?;
        Ok(())
    }

    pub fn member(
        &mut self,
        community: u64,
        user: u64,
        joined_at: i64,
        nickname: Option<&str>,
        timeout_until: Option<i64>,
    ) -> Result<()> {
        let nickname = match nickname {
            Some(n) => Nickname::parse(n).map_err(|e| anyhow!("the nickname {n:?}: {e}"))?.0,
            None => None,
        };
        self.tx.execute(
            "INSERT OR IGNORE INTO members (community_id, user_id, joined_at, nickname, timeout_until)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![i(community), i(user), joined_at, nickname, timeout_until],
        )?;
        Ok(())
    }

    pub fn member_role(&mut self, community: u64, user: u64, role: u64) -> Result<()> {
        self.tx.execute(
            "INSERT OR IGNORE INTO member_roles (community_id, user_id, role_id) VALUES (?1, ?2, ?3)",
            params![i(community), i(user), i(role)],
        )?;
        Ok(())
    }

    pub fn ban(&mut self, community: u64, user: u64, by: u64, reason: &str, at: i64) -> Result<()> {
        let reason = Reason::parse(reason).map_err(|e| anyhow!("a ban's reason: {e}"))?;
        self.tx.execute(
            "INSERT OR IGNORE INTO bans (community_id, user_id, banned_by, reason, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![i(community), i(user), i(by), reason.0, at],
        )?;
        Ok(())
    }

    /// Adds a channel unless it is here; an id naming another community's
    /// channel is refused.
    pub fn channel(
        &mut self,
        community: u64,
        id: u64,
        name: &str,
        topic: &str,
        voice: bool,
        created_at: i64,
    ) -> Result<()> {
        let here: Option<i64> = self
            .tx
            .query_row("SELECT community_id FROM channels WHERE id = ?1", [i(id)], |r| r.get(0))
            .optional()?;
        match here {
            Some(c) if c == i(community) => return Ok(()),
            Some(_) => bail!("the channel {name:?} has the id of another channel on this server ({id})"),
            None => {}
        }
        let name = ChannelName::parse(name).map_err(|e| anyhow!("the channel {name:?}: {e}"))?;
        let topic = Topic::parse(topic).map_err(|e| anyhow!("the channel {:?}'s topic: {e}", name.0))?;
        self.tx.execute(
            "INSERT INTO channels (id, community_id, name, topic, created_at, voice) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![i(id), i(community), name.0, topic.0, created_at, voice],
        )?;
        self.done.channels += 1;
        Ok(())
    }

    /// Whether `community` has a channel called `name`.
    pub fn channel_named(&self, community: u64, name: &str) -> Result<bool> {
        Ok(self.tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM channels WHERE community_id = ?1 AND name = ?2)",
            params![i(community), name],
            |r| r.get(0),
        )?)
    }

    /// A channel override; `role` says whether `target` is a role or a member.
    pub fn channel_override(
        &mut self,
        channel: u64,
        role: bool,
        target: u64,
        allow: Permissions,
        deny: Permissions,
    ) -> Result<()> {
        self.tx.execute(
            "INSERT OR IGNORE INTO channel_overrides (channel_id, target_kind, target_id, allow, deny)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![i(channel), if role { 0 } else { 1 }, i(target), i(allow.bits()), i(deny.bits())],
        )?;
        Ok(())
    }

    /// A direct conversation (`group`: a named group) and its members, in order.
    pub fn conversation(
        &mut self,
        id: u64,
        group: bool,
        name: &str,
        owner: Option<u64>,
        members: &[u64],
    ) -> Result<()> {
        let name = if group {
            GroupName::parse(name).map_err(|e| anyhow!("the group {name:?}: {e}"))?.0
        } else {
            String::new()
        };
        let added = self.tx.execute(
            "INSERT OR IGNORE INTO direct_channels (id, is_group, name, owner_id) VALUES (?1, ?2, ?3, ?4)",
            params![i(id), group, name, owner.map(i)],
        )?;
        if added == 0 {
            return Ok(());
        }
        for (position, user) in members.iter().enumerate() {
            self.tx.execute(
                "INSERT INTO direct_members (channel_id, user_id, position) VALUES (?1, ?2, ?3)",
                params![i(id), i(*user), position as i64],
            )?;
        }
        self.done.channels += 1;
        Ok(())
    }

    /// Adds a message and its files unless its id is here; returns whether
    /// it was added.
    pub fn message(&mut self, m: &NewMessage, files: &[NewAttachment]) -> Result<bool> {
        // A deleted message keeps its place with an empty body; one with
        // files may have no text.
        if !(m.deleted || (m.body.is_empty() && !files.is_empty())) {
            Body::parse(&m.body).map_err(|e| anyhow!("{e}"))?;
        }
        let mentions = m.mentions.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let added = self.tx.execute(
            "INSERT OR IGNORE INTO messages (id, channel_id, author_id, body, reply_to, mentions, created_at,
                                             edited_at, deleted, mention_everyone)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                i(m.id),
                i(m.channel),
                i(m.author),
                m.body,
                m.reply_to.map(i),
                mentions,
                m.created_at,
                m.edited_at,
                m.deleted,
                m.mention_everyone
            ],
        )?;
        if added == 0 {
            let channel: i64 =
                self.tx
                    .query_row("SELECT channel_id FROM messages WHERE id = ?1", [i(m.id)], |r| r.get(0))?;
            if channel != i(m.channel) {
                bail!("the message {} has the id of a message in another channel on this server", m.id);
            }
            self.done.present += 1;
        } else {
            for (position, f) in files.iter().enumerate() {
                self.tx.execute(
                    "INSERT INTO attachments (message_id, position, name, size, content_type, blake3, width, height)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        i(m.id),
                        position as i64,
                        f.name,
                        i(f.size),
                        f.content_type,
                        &f.blake3[..],
                        f.width,
                        f.height
                    ],
                )?;
            }
            self.done.messages += 1;
        }
        let seen = self.done.messages + self.done.present;
        if seen.is_multiple_of(1000) {
            (self.progress)(seen);
        }
        Ok(added > 0)
    }

    /// The kith id an earlier import of `source` gave a `kind` of thing
    /// with `foreign` id there.
    pub fn mapped(&self, source: &str, kind: &str, foreign: &str) -> Result<Option<u64>> {
        Ok(self
            .tx
            .query_row(
                "SELECT kith_id FROM imported WHERE source = ?1 AND kind = ?2 AND foreign_id = ?3",
                params![source, kind, foreign],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|v| v as u64))
    }

    /// Remembers which kith id a foreign one became.
    pub fn map(&mut self, source: &str, kind: &str, foreign: &str, id: u64) -> Result<()> {
        self.tx.execute(
            "INSERT INTO imported (source, kind, foreign_id, kith_id) VALUES (?1, ?2, ?3, ?4)",
            params![source, kind, foreign, i(id)],
        )?;
        Ok(())
    }

    /// The channel a message here is in.
    pub fn message_channel(&self, id: u64) -> Result<Option<u64>> {
        Ok(self
            .tx
            .query_row("SELECT channel_id FROM messages WHERE id = ?1", [i(id)], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|v| v as u64))
    }

    /// The server owner, if it has one.
    pub fn owner(&self) -> Result<Option<u64>> {
        Ok(self
            .tx
            .query_row("SELECT id FROM users WHERE server_owner", [], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|v| v as u64))
    }

    /// The id of the account called `name` here.
    pub fn user_named(&self, name: &str) -> Result<Option<u64>> {
        Ok(self
            .tx
            .query_row("SELECT id FROM users WHERE fold = ?1", [Username::fold(name)], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|v| v as u64))
    }

    /// Whether a username (or one that looks like it) is taken here.
    pub fn name_taken(&self, name: &Username) -> Result<bool> {
        Ok(self.tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE fold = ?1 OR skeleton = ?2)",
            params![name.fold, name.skeleton],
            |r| r.get(0),
        )?)
    }

    pub fn finish_progress(&mut self) {
        (self.progress)(self.done.messages + self.done.present);
    }
}

// ---- The kith export format ------------------------------------------------

/// An id in an export: a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Id(u64);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Id).map_err(|_| D::Error::custom(format!("{s:?} is not an id (a decimal string)")))
    }
}

/// A time in an export: RFC 3339, as Unix milliseconds.
#[derive(Debug, Clone, Copy)]
struct Time(i64);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| Time(t.timestamp_millis()))
            .map_err(|_| D::Error::custom(format!("{s:?} is not an RFC 3339 time")))
    }
}

/// Permission names, as bits.
#[derive(Debug, Clone, Copy)]
struct Perms(Permissions);

impl<'de> Deserialize<'de> for Perms {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        let mut all = Permissions::empty();
        for n in names {
            all |= Permissions::by_name(&n)
                .ok_or_else(|| D::Error::custom(format!("{n:?} is not a permission this kith knows")))?;
        }
        Ok(Perms(all))
    }
}

#[derive(Deserialize)]
struct Snapshot {
    format: String,
    users: Vec<SnapshotUser>,
    communities: Vec<SnapshotCommunity>,
    conversations: Vec<SnapshotConversation>,
}

#[derive(Deserialize)]
struct SnapshotUser {
    id: Id,
    username: String,
    display_name: String,
    status_text: String,
    bot: bool,
    server_owner: bool,
    created_at: Time,
    #[serde(default)]
    deleted: bool,
}

#[derive(Deserialize)]
struct SnapshotCommunity {
    id: Id,
    name: String,
    owner_id: Id,
    created_at: Time,
    roles: Vec<SnapshotRole>,
    members: Vec<SnapshotMember>,
    bans: Vec<SnapshotBan>,
    channels: Vec<SnapshotChannel>,
}

#[derive(Deserialize)]
struct SnapshotRole {
    id: Id,
    name: String,
    permissions: Perms,
    rank: i64,
}

#[derive(Deserialize)]
struct SnapshotMember {
    user_id: Id,
    roles: Vec<Id>,
    joined_at: Time,
    nickname: Option<String>,
    timeout_until: Option<Time>,
}

#[derive(Deserialize)]
struct SnapshotBan {
    user_id: Id,
    by: Id,
    reason: String,
    at: Time,
}

#[derive(Deserialize)]
struct SnapshotChannel {
    id: Id,
    name: String,
    topic: String,
    voice: bool,
    created_at: Time,
    overrides: Vec<SnapshotOverride>,
    history: String,
}

#[derive(Deserialize)]
struct SnapshotOverride {
    role_id: Option<Id>,
    user_id: Option<Id>,
    allow: Perms,
    deny: Perms,
}

#[derive(Deserialize)]
struct SnapshotConversation {
    id: Id,
    group: bool,
    name: String,
    members: Vec<Id>,
    owner_id: Option<Id>,
    history: String,
}

#[derive(Deserialize)]
struct HistoryMessage {
    id: Id,
    author_id: Id,
    time: Time,
    body: String,
    mentions: Vec<Id>,
    mention_everyone: bool,
    deleted: bool,
    edited_at: Option<Time>,
    reply_to: Option<Id>,
    #[serde(default)]
    attachments: Vec<HistoryAttachment>,
}

#[derive(Deserialize)]
struct HistoryAttachment {
    name: String,
    size: u64,
    content_type: String,
    blake3: String,
    width: u32,
    height: u32,
    file: String,
}

/// Parses a JSON file whole, naming the field and line of what is wrong.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path, name: &str) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| located(name, e))
}

fn located(name: &str, e: serde_path_to_error::Error<serde_json::Error>) -> anyhow::Error {
    let path = e.path().to_string();
    if path == "." || path.is_empty() {
        anyhow!("{name}: {}", e.into_inner())
    } else {
        anyhow!("{name}: {path}: {}", e.into_inner())
    }
}

/// Reads a JSON array of `T` one element at a time (memory stays flat),
/// handing each to `each`; an error names the element and the line.
pub(crate) fn each_in_array<T: serde::de::DeserializeOwned>(
    path: &Path,
    name: &str,
    each: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    struct Each<T, F>(F, std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>, F: FnMut(T) -> Result<()>> DeserializeSeed<'de> for Each<T, F> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de, T: Deserialize<'de>, F: FnMut(T) -> Result<()>> Visitor<'de> for Each<T, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
            let mut n = 0usize;
            while let Some(item) = seq.next_element::<T>()? {
                // The path names elements that fail to parse; this names one
                // whose handling failed.
                (self.0)(item).map_err(|e| A::Error::custom(format!("[{n}]: {e:#}")))?;
                n += 1;
            }
            Ok(())
        }
    }
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
    let mut track = serde_path_to_error::Track::new();
    let result = Each(each, std::marker::PhantomData)
        .deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    match result {
        Ok(()) => de.end().map_err(|e| anyhow!("{name}: {e}")),
        Err(e) => Err(located(name, serde_path_to_error::Error::new(track.path(), e))),
    }
}

/// The file a snapshot names, which must be where the format puts it (so
/// a hostile export cannot point outside itself).
fn history_path(dir: &Path, named: &str, id: Id) -> Result<PathBuf> {
    let expected = format!("history/{}.json", id.0);
    if named != expected {
        bail!("snapshot.json names the history {named:?} for {}; the format puts it at {expected:?}", id.0);
    }
    Ok(dir.join(expected))
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (n, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * n..2 * n + 2], 16).ok()?;
    }
    Some(out)
}

/// Imports the kith export in `dir` into the data directory `data`.
/// `renames` gives people whose names are taken here another one;
/// `progress(n)` hears how many messages are read so far.
pub fn import(
    data: &Path,
    dir: &Path,
    renames: &[(String, String)],
    mut progress: impl FnMut(u64),
) -> Result<Imported> {
    let snapshot: Snapshot = read_json(&dir.join("snapshot.json"), "snapshot.json")?;
    if snapshot.format != crate::export::FORMAT {
        bail!(
            "snapshot.json is in the format {:?}; this kith reads {:?}",
            snapshot.format,
            crate::export::FORMAT
        );
    }
    // Every reference must name someone the export holds.
    let people: BTreeSet<Id> = snapshot.users.iter().map(|u| u.id).collect();
    let known = |id: Id, what: String| -> Result<u64> {
        if people.contains(&id) {
            Ok(id.0)
        } else {
            bail!("snapshot.json: {what} is {}, who is not among its users", id.0)
        }
    };
    into_data_dir(data, renames, &mut progress, |t| {
        for (n, u) in snapshot.users.iter().enumerate() {
            t.user(&NewUser {
                id: u.id.0,
                username: u.username.clone(),
                display_name: u.display_name.clone(),
                status_text: u.status_text.clone(),
                bot: u.bot,
                server_owner: u.server_owner,
                created_at: u.created_at.0,
                deleted: u.deleted,
            })
            .with_context(|| format!("snapshot.json: users[{n}]"))?;
        }
        for (n, c) in snapshot.communities.iter().enumerate() {
            let at = |what: &str| format!("communities[{n}].{what}");
            let owner = known(c.owner_id, at("owner_id"))?;
            t.community(c.id.0, &c.name, owner, c.created_at.0)
                .with_context(|| format!("snapshot.json: {}", at("name")))?;
            if !c.roles.iter().any(|r| r.id == c.id) {
                bail!("snapshot.json: {} lacks the community's @everyone role (id {})", at("roles"), c.id.0);
            }
            let roles: BTreeSet<Id> = c.roles.iter().map(|r| r.id).collect();
            for (k, r) in c.roles.iter().enumerate() {
                t.role(c.id.0, r.id.0, &r.name, r.permissions.0, r.rank)
                    .with_context(|| format!("snapshot.json: {}", at(&format!("roles[{k}]"))))?;
            }
            for (k, m) in c.members.iter().enumerate() {
                let user = known(m.user_id, at(&format!("members[{k}].user_id")))?;
                t.member(c.id.0, user, m.joined_at.0, m.nickname.as_deref(), m.timeout_until.map(|t| t.0))
                    .with_context(|| format!("snapshot.json: {}", at(&format!("members[{k}]"))))?;
                for role in &m.roles {
                    if !roles.contains(role) {
                        bail!(
                            "snapshot.json: {}: {} is not one of the community's roles",
                            at(&format!("members[{k}].roles")),
                            role.0
                        );
                    }
                    t.member_role(c.id.0, user, role.0)?;
                }
            }
            for (k, b) in c.bans.iter().enumerate() {
                let user = known(b.user_id, at(&format!("bans[{k}].user_id")))?;
                let by = known(b.by, at(&format!("bans[{k}].by")))?;
                t.ban(c.id.0, user, by, &b.reason, b.at.0)
                    .with_context(|| format!("snapshot.json: {}", at(&format!("bans[{k}]"))))?;
            }
            for (k, ch) in c.channels.iter().enumerate() {
                let here = at(&format!("channels[{k}]"));
                t.channel(c.id.0, ch.id.0, &ch.name, &ch.topic, ch.voice, ch.created_at.0)
                    .with_context(|| format!("snapshot.json: {here}"))?;
                for (o, ov) in ch.overrides.iter().enumerate() {
                    let (role, target) = match (ov.role_id, ov.user_id) {
                        (Some(r), None) if roles.contains(&r) => (true, r.0),
                        (None, Some(u)) => (false, known(u, format!("{here}.overrides[{o}].user_id"))?),
                        _ => bail!(
                            "snapshot.json: {here}.overrides[{o}] must name one of the community's roles (role_id) or a user (user_id)"
                        ),
                    };
                    t.channel_override(ch.id.0, role, target, ov.allow.0, ov.deny.0)?;
                }
                let path = history_path(dir, &ch.history, ch.id)?;
                history(t, dir, &path, &ch.history, ch.id.0, &people)?;
            }
        }
        for (n, c) in snapshot.conversations.iter().enumerate() {
            let members = c
                .members
                .iter()
                .enumerate()
                .map(|(k, m)| known(*m, format!("conversations[{n}].members[{k}]")))
                .collect::<Result<Vec<_>>>()?;
            let owner = c.owner_id.map(|o| known(o, format!("conversations[{n}].owner_id"))).transpose()?;
            t.conversation(c.id.0, c.group, &c.name, owner, &members)
                .with_context(|| format!("snapshot.json: conversations[{n}]"))?;
            let path = history_path(dir, &c.history, c.id)?;
            history(t, dir, &path, &c.history, c.id.0, &people)?;
        }
        t.finish_progress();
        Ok(())
    })
}

/// One channel's history file, streamed into the target.
fn history(
    t: &mut Target<'_>,
    dir: &Path,
    path: &Path,
    name: &str,
    channel: u64,
    people: &BTreeSet<Id>,
) -> Result<()> {
    let person = |id: Id, what: &str| -> Result<u64> {
        if people.contains(&id) {
            Ok(id.0)
        } else {
            bail!("{what} is {}, who is not among snapshot.json's users", id.0)
        }
    };
    each_in_array(path, name, |m: HistoryMessage| {
        let mut files = Vec::with_capacity(m.attachments.len());
        for a in &m.attachments {
            let blake3 =
                unhex(&a.blake3).ok_or_else(|| anyhow!("{:?} is not a BLAKE3 (64 hex digits)", a.blake3))?;
            if a.file != format!("files/{}", a.blake3) {
                bail!(
                    "the attachment {:?} points at {:?}; the format puts it at files/{}",
                    a.name,
                    a.file,
                    a.blake3
                );
            }
            let source = dir.join("files").join(&a.blake3);
            let size = std::fs::metadata(&source)
                .with_context(|| format!("the export lacks the file {} ({:?})", a.file, a.name))?
                .len();
            if size != a.size {
                bail!("{} holds {size} bytes; the message says {:?} has {}", a.file, a.name, a.size);
            }
            let new = !t.files.blob(&blake3).exists();
            t.files.adopt(&source, &blake3).map_err(|e| anyhow!(e))?;
            t.done.files += u64::from(new);
            files.push(NewAttachment {
                name: kith_core::text::FileName::clean(&a.name).0,
                size: a.size,
                content_type: a.content_type.clone(),
                blake3,
                width: a.width,
                height: a.height,
            });
        }
        let message = NewMessage {
            id: m.id.0,
            channel,
            author: person(m.author_id, "author_id")?,
            body: m.body,
            created_at: m.time.0,
            edited_at: m.edited_at.map(|t| t.0),
            reply_to: m.reply_to.map(|r| r.0),
            mentions: m.mentions.iter().map(|u| person(*u, "a mention")).collect::<Result<_>>()?,
            mention_everyone: m.mention_everyone,
            deleted: m.deleted,
        };
        t.message(&message, &files)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_is_read_element_by_element_and_errors_name_the_element_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, "[\n{\"n\": 1},\n{\"n\": \"two\"}\n]\n").unwrap();
        #[derive(Deserialize)]
        struct N {
            #[allow(dead_code)]
            n: u32,
        }
        let mut seen = 0;
        let e = each_in_array(&path, "a.json", |_: N| {
            seen += 1;
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(seen, 1);
        assert!(e.starts_with("a.json: [1].n: invalid type"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn an_error_from_the_handler_names_the_element() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, "[1, 2, 3]").unwrap();
        let e =
            each_in_array(&path, "a.json", |n: u32| if n == 3 { bail!("three is too many") } else { Ok(()) })
                .unwrap_err()
                .to_string();
        assert!(e.starts_with("a.json: [2]: three is too many"), "{e}");
    }

    #[test]
    fn ids_are_decimal_strings_and_hex_is_checked() {
        assert_eq!(serde_json::from_str::<Id>("\"18446744073709551615\"").unwrap(), Id(u64::MAX));
        assert!(serde_json::from_str::<Id>("12").is_err(), "a number is not an id");
        assert!(unhex(&"ab".repeat(32)).is_some());
        assert!(unhex(&"zz".repeat(32)).is_none());
        assert!(unhex("../../etc/passwd").is_none());
    }
}
