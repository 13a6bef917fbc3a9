//! The SQLite backend: one writer connection that group-commits the hub's
//! writes, and one connection per reader thread.
//!
//! WAL mode lets readers run while the writer commits. `synchronous=FULL`
//! (the default) fsyncs every commit, so an acknowledged message survives a
//! power cut; the writer amortises that fsync over every write that queued up
//! while the previous one ran (group commit).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kith_core::permissions::{OverrideTarget, Permissions};
use kith_core::request::{Anchor, AuditQuery, Chosen, HistoryQuery, TokenHash};
use kith_core::store::{
    AttachmentMeta, AuditRow, MessageRow, StoredAudit, StoredBan, StoredChannel, StoredCommunity,
    StoredDirect, StoredInvite, StoredMember, StoredMessageMeta, StoredOverride, StoredRole, StoredState,
    StoredToken, StoredUser, Write,
};
use kith_core::store::{Load, Loaded};
use kith_core::{AuditId, ChannelId, CommunityId, MessageId, RoleId, Timestamp, TokenId, UserId};
use kith_proto::v1::AuditAction;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Backend, Batch, Reader, StoreError, Writer};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// The database file at `path`, opened with `sync`.
#[derive(Debug, Clone)]
pub struct Sqlite {
    pub path: PathBuf,
    pub sync: Sync,
}

impl Backend for Sqlite {
    type Writer = SqliteWriter;
    type Reader = SqliteReader;

    fn open_writer(&self, recent: usize) -> Result<(SqliteWriter, StoredState), StoreError> {
        let mut conn = open(&self.path, self.sync)?;
        migrate(&mut conn)?;
        let state = load(&conn, recent)?;
        // Room for every statement a commit may run (`exec`), not rusqlite's 16.
        conn.set_prepared_statement_cache_capacity(WRITE_STATEMENTS);
        Ok((SqliteWriter(conn), state))
    }

    fn open_reader(&self) -> Result<SqliteReader, StoreError> {
        open(&self.path, self.sync).map(SqliteReader)
    }
}

/// How hard commits wait for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sync {
    /// fsync on every commit: survives power loss (the default).
    Full,
    /// fsync at WAL checkpoints only: survives a process crash, may lose the
    /// last commits on power loss. Faster on slow disks.
    Normal,
}

/// Schema migrations, applied in order; `PRAGMA user_version` counts how many ran.
/// The schema this version writes: a database at a lower `user_version`
/// is brought up to it when a server opens it.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL,
    fold          TEXT NOT NULL UNIQUE,
    skeleton      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    server_owner  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    hash       BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE communities (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    owner_id   INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL
);
CREATE TABLE members (
    community_id INTEGER NOT NULL REFERENCES communities(id),
    user_id      INTEGER NOT NULL REFERENCES users(id),
    joined_at    INTEGER NOT NULL,
    PRIMARY KEY (community_id, user_id)
) WITHOUT ROWID;
CREATE TABLE channels (
    id           INTEGER PRIMARY KEY,
    community_id INTEGER NOT NULL REFERENCES communities(id),
    name         TEXT NOT NULL,
    topic        TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE TABLE invites (
    code         TEXT PRIMARY KEY,
    community_id INTEGER NOT NULL REFERENCES communities(id),
    creator_id   INTEGER NOT NULL REFERENCES users(id),
    max_uses     INTEGER,
    uses         INTEGER NOT NULL,
    expires_at   INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE TABLE messages (
    id         INTEGER PRIMARY KEY,
    channel_id INTEGER NOT NULL,
    author_id  INTEGER NOT NULL REFERENCES users(id),
    body       TEXT NOT NULL,
    nonce      TEXT,
    reply_to   INTEGER,
    mentions   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    edited_at  INTEGER,
    deleted    INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX messages_by_nonce ON messages(author_id, nonce) WHERE nonce IS NOT NULL;
CREATE INDEX messages_by_channel ON messages(channel_id, id);
"#,
    r#"
-- Roles, permissions, moderation and profiles.
ALTER TABLE users ADD COLUMN status_text TEXT NOT NULL DEFAULT '';
ALTER TABLE members ADD COLUMN nickname TEXT;
ALTER TABLE members ADD COLUMN timeout_until INTEGER;
ALTER TABLE messages ADD COLUMN mention_everyone INTEGER NOT NULL DEFAULT 0;
CREATE TABLE roles (
    id           INTEGER PRIMARY KEY,
    community_id INTEGER NOT NULL REFERENCES communities(id),
    name         TEXT NOT NULL,
    permissions  INTEGER NOT NULL,
    rank         INTEGER NOT NULL
);
-- Every existing community gets its @everyone role (id = community id) with
-- the default permissions of this version: view, send, create invites,
-- connect and speak.
INSERT INTO roles (id, community_id, name, permissions, rank)
    SELECT id, id, '@everyone', 3331, 0 FROM communities;
CREATE TABLE member_roles (
    community_id INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    role_id      INTEGER NOT NULL REFERENCES roles(id),
    PRIMARY KEY (community_id, user_id, role_id)
) WITHOUT ROWID;
-- target_kind: 0 = role, 1 = member.
CREATE TABLE channel_overrides (
    channel_id  INTEGER NOT NULL REFERENCES channels(id),
    target_kind INTEGER NOT NULL,
    target_id   INTEGER NOT NULL,
    allow       INTEGER NOT NULL,
    deny        INTEGER NOT NULL,
    PRIMARY KEY (channel_id, target_kind, target_id)
) WITHOUT ROWID;
CREATE TABLE bans (
    community_id INTEGER NOT NULL REFERENCES communities(id),
    user_id      INTEGER NOT NULL REFERENCES users(id),
    banned_by    INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (community_id, user_id)
) WITHOUT ROWID;
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    community_id INTEGER NOT NULL,
    actor_id     INTEGER NOT NULL,
    action       INTEGER NOT NULL,
    target_id    INTEGER,
    reason       TEXT NOT NULL,
    detail       TEXT NOT NULL
);
CREATE INDEX audit_by_community ON audit_log(community_id, id);
"#,
    r#"
ALTER TABLE users ADD COLUMN presence INTEGER NOT NULL DEFAULT 1;
CREATE TABLE direct_channels (
    id       INTEGER PRIMARY KEY,
    is_group INTEGER NOT NULL,
    name     TEXT NOT NULL,
    owner_id INTEGER REFERENCES users(id)
);
CREATE TABLE direct_members (
    channel_id INTEGER NOT NULL REFERENCES direct_channels(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    position   INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE TABLE read_states (
    user_id    INTEGER NOT NULL REFERENCES users(id),
    channel_id INTEGER NOT NULL,
    last_read  INTEGER NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);
"#,
    // Voice channels.
    r#"
ALTER TABLE channels ADD COLUMN voice INTEGER NOT NULL DEFAULT 0;
"#,
    // Attachments. The bytes live in the file store, named by blake3; a
    // row is what a message says about a file. Attaching files becomes one
    // of @everyone's default permissions (ATTACH_FILES = 131072), as for
    // communities created from now on.
    r#"
CREATE TABLE attachments (
    message_id   INTEGER NOT NULL REFERENCES messages(id),
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    blake3       BLOB NOT NULL,
    PRIMARY KEY (message_id, position)
) WITHOUT ROWID;
CREATE INDEX attachments_by_blake3 ON attachments(blake3);
UPDATE roles SET permissions = permissions | 131072 WHERE id = community_id;
"#,
    // Pictures' sizes, so clients reserve their space.
    r#"
ALTER TABLE attachments ADD COLUMN width INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attachments ADD COLUMN height INTEGER NOT NULL DEFAULT 0;
"#,
    // Bots: accounts without a password, and the slash commands each
    // offers (the encoded `RegisterCommandsRequest`). Using commands becomes
    // one of @everyone's default permissions (USE_COMMANDS = 524288).
    r#"
ALTER TABLE users ADD COLUMN bot INTEGER NOT NULL DEFAULT 0;
CREATE TABLE bot_commands (
    bot_id   INTEGER PRIMARY KEY REFERENCES users(id),
    commands BLOB NOT NULL
);
UPDATE roles SET permissions = permissions | 524288 WHERE id = community_id;
"#,
    // Imports from other services: which kith id each of their ids became,
    // so importing the same archive again changes nothing. Password reset
    // codes (how imported people, who have no password, get in), and
    // server-wide suspensions.
    r#"
CREATE TABLE imported (
    source     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    foreign_id TEXT NOT NULL,
    kith_id    INTEGER NOT NULL,
    PRIMARY KEY (source, kind, foreign_id)
) WITHOUT ROWID;
-- Accounts the server owner suspended, server-wide.
CREATE TABLE suspensions (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id),
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
-- Password reset codes (their SHA-256), one per account at most.
CREATE TABLE reset_codes (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id),
    hash       BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
"#,
    // Deleted accounts: the row stays as a tombstone (renamed, no password)
    // so the messages and conversations that name it still resolve.
    r#"
ALTER TABLE users ADD COLUMN deleted_at INTEGER;
"#,
    // The hub holds each channel's newest messages only (decision 6), and
    // recognises a retry's nonce among those: the store no longer insists
    // a nonce is unique forever. What it is asked instead is an author's
    // older messages (a ban's or an account deletion's) and whether
    // someone ever posted.
    r#"
DROP INDEX messages_by_nonce;
CREATE INDEX messages_by_author ON messages(author_id, id);
"#,
];

fn open(path: &Path, sync: Sync) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", if sync == Sync::Full { "FULL" } else { "NORMAL" })?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew { found: version, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn id(v: i64) -> u64 {
    v as u64
}

/// A stored SHA-256 (a token's or a reset code's).
fn token_hash(bytes: Vec<u8>) -> Result<TokenHash, rusqlite::Error> {
    bytes
        .try_into()
        .map(TokenHash)
        .map_err(|_| rusqlite::Error::InvalidColumnType(2, "hash".into(), rusqlite::types::Type::Blob))
}

fn load(conn: &Connection, recent: usize) -> Result<StoredState, StoreError> {
    let mut state = StoredState::default();
    let mut q = conn.prepare(
        "SELECT id, username, fold, skeleton, display_name, server_owner, status_text, presence, bot,
                deleted_at IS NOT NULL FROM users",
    )?;
    state.users = q
        .query_map([], |r| {
            Ok(StoredUser {
                id: UserId(id(r.get(0)?)),
                username: r.get(1)?,
                fold: r.get(2)?,
                skeleton: r.get(3)?,
                display_name: r.get(4)?,
                server_owner: r.get(5)?,
                status_text: r.get(6)?,
                presence: Chosen::from_code(r.get(7)?),
                bot: r.get(8)?,
                deleted: r.get(9)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut q = conn.prepare("SELECT id, user_id, hash FROM tokens")?;
    state.tokens = q
        .query_map([], |r| {
            Ok(StoredToken {
                id: TokenId(id(r.get(0)?)),
                user: UserId(id(r.get(1)?)),
                hash: token_hash(r.get(2)?)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut q = conn.prepare("SELECT id, name, owner_id FROM communities")?;
    state.communities = q
        .query_map([], |r| {
            Ok(StoredCommunity {
                id: CommunityId(id(r.get(0)?)),
                name: r.get(1)?,
                owner: UserId(id(r.get(2)?)),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut q =
        conn.prepare("SELECT community_id, user_id, joined_at, nickname, timeout_until FROM members")?;
    state.members = q
        .query_map([], |r| {
            Ok(StoredMember {
                community: CommunityId(id(r.get(0)?)),
                user: UserId(id(r.get(1)?)),
                joined_at: Timestamp(id(r.get(2)?)),
                nickname: r.get(3)?,
                timeout_until: r.get::<_, Option<i64>>(4)?.map(|t| Timestamp(id(t))),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut q = conn.prepare("SELECT id, community_id, name, permissions, rank FROM roles")?;
    state.roles = q
        .query_map([], |r| {
            Ok(StoredRole {
                id: RoleId(id(r.get(0)?)),
                community: CommunityId(id(r.get(1)?)),
                name: r.get(2)?,
                permissions: Permissions::from_wire(id(r.get(3)?)),
                rank: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut q = conn.prepare("SELECT community_id, user_id, role_id FROM member_roles")?;
    state.member_roles = q
        .query_map([], |r| Ok((CommunityId(id(r.get(0)?)), UserId(id(r.get(1)?)), RoleId(id(r.get(2)?)))))?
        .collect::<Result<_, _>>()?;
    let mut q =
        conn.prepare("SELECT channel_id, target_kind, target_id, allow, deny FROM channel_overrides")?;
    state.overrides = q
        .query_map([], |r| {
            let target = id(r.get(2)?);
            Ok(StoredOverride {
                channel: ChannelId(id(r.get(0)?)),
                target: match r.get::<_, i64>(1)? {
                    0 => OverrideTarget::Role(RoleId(target)),
                    _ => OverrideTarget::Member(UserId(target)),
                },
                allow: Permissions::from_wire(id(r.get(3)?)),
                deny: Permissions::from_wire(id(r.get(4)?)),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut q = conn.prepare("SELECT community_id, user_id, banned_by, reason, created_at FROM bans")?;
    state.bans = q
        .query_map([], |r| {
            Ok(StoredBan {
                community: CommunityId(id(r.get(0)?)),
                user: UserId(id(r.get(1)?)),
                by: UserId(id(r.get(2)?)),
                reason: r.get(3)?,
                at: Timestamp(id(r.get(4)?)),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut q = conn.prepare("SELECT id, community_id, name, topic, voice FROM channels")?;
    state.channels = q
        .query_map([], |r| {
            Ok(StoredChannel {
                id: ChannelId(id(r.get(0)?)),
                community: CommunityId(id(r.get(1)?)),
                name: r.get(2)?,
                topic: r.get(3)?,
                voice: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut q =
        conn.prepare("SELECT code, community_id, creator_id, max_uses, uses, expires_at FROM invites")?;
    state.invites = q
        .query_map([], |r| {
            Ok(StoredInvite {
                code: r.get(0)?,
                community: CommunityId(id(r.get(1)?)),
                creator: UserId(id(r.get(2)?)),
                max_uses: r.get(3)?,
                uses: r.get(4)?,
                expires_at: r.get::<_, Option<i64>>(5)?.map(|t| Timestamp(t as u64)),
            })
        })?
        .collect::<Result<_, _>>()?;
    load_messages(conn, recent, &mut state)?;
    let mut q = conn.prepare("SELECT id, is_group, name, owner_id FROM direct_channels")?;
    let mut directs: Vec<StoredDirect> = q
        .query_map([], |r| {
            Ok(StoredDirect {
                id: ChannelId(id(r.get(0)?)),
                group: r.get(1)?,
                name: r.get(2)?,
                owner: r.get::<_, Option<i64>>(3)?.map(|u| UserId(id(u))),
                members: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let index: HashMap<ChannelId, usize> = directs.iter().enumerate().map(|(i, d)| (d.id, i)).collect();
    let mut q =
        conn.prepare("SELECT channel_id, user_id FROM direct_members ORDER BY channel_id, position")?;
    for row in q.query_map([], |r| Ok((ChannelId(id(r.get(0)?)), UserId(id(r.get(1)?)))))? {
        let (channel, user) = row?;
        if let Some(&i) = index.get(&channel) {
            directs[i].members.push(user);
        }
    }
    state.directs = directs;
    let mut q = conn.prepare("SELECT user_id, channel_id, last_read FROM read_states")?;
    state.read_states = q
        .query_map([], |r| Ok((UserId(id(r.get(0)?)), ChannelId(id(r.get(1)?)), MessageId(id(r.get(2)?)))))?
        .collect::<Result<_, _>>()?;
    let mut q = conn.prepare("SELECT bot_id, commands FROM bot_commands")?;
    state.commands =
        q.query_map([], |r| Ok((UserId(id(r.get(0)?)), r.get(1)?)))?.collect::<Result<_, _>>()?;
    let mut q = conn.prepare("SELECT user_id, reason FROM suspensions")?;
    state.suspended =
        q.query_map([], |r| Ok((UserId(id(r.get(0)?)), r.get(1)?)))?.collect::<Result<_, _>>()?;
    let mut q = conn.prepare("SELECT user_id, hash, expires_at FROM reset_codes")?;
    state.reset_codes = q
        .query_map([], |r| Ok((UserId(id(r.get(0)?)), token_hash(r.get(1)?)?, Timestamp(id(r.get(2)?)))))?
        .collect::<Result<_, _>>()?;
    state.max_id = max_id(conn)?;
    Ok(state)
}

/// The columns [`row_to_meta`] reads, from `messages`.
const META_COLUMNS: &str =
    "SELECT id, channel_id, author_id, reply_to, nonce, deleted, mentions, mention_everyone FROM messages";

fn row_to_meta(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessageMeta> {
    Ok(StoredMessageMeta {
        id: MessageId(id(r.get(0)?)),
        channel: ChannelId(id(r.get(1)?)),
        author: UserId(id(r.get(2)?)),
        reply_to: r.get::<_, Option<i64>>(3)?.map(|m| MessageId(id(m))),
        nonce: r.get(4)?,
        deleted: r.get(5)?,
        mentions: parse_mentions(&r.get::<_, String>(6)?),
        mention_everyone: r.get(7)?,
        attachments: Vec::new(),
    })
}

/// What the hub holds of messages: each channel's newest `recent`, with
/// their files, and where older ones begin; and, over every message, what
/// each author's files weigh and who ever posted. Each query reads an
/// index range or the attachments, never every message.
fn load_messages(conn: &Connection, recent: usize, state: &mut StoredState) -> Result<(), StoreError> {
    let recent = i64::try_from(recent).unwrap_or(i64::MAX);
    let mut q = conn.prepare("SELECT id FROM channels UNION SELECT id FROM direct_channels")?;
    let channels: Vec<i64> = q.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut newest =
        conn.prepare(&format!("{META_COLUMNS} WHERE channel_id = ?1 ORDER BY id DESC LIMIT ?2"))?;
    let mut files = conn.prepare(
        "SELECT a.message_id, a.name, a.size, a.content_type, a.blake3, a.width, a.height
         FROM messages m JOIN attachments a ON a.message_id = m.id
         WHERE m.channel_id = ?1 AND m.id >= ?2 ORDER BY a.message_id, a.position",
    )?;
    let mut older = conn.prepare("SELECT 1 FROM messages WHERE channel_id = ?1 AND id < ?2 LIMIT 1")?;
    for channel in channels {
        let mut rows: Vec<StoredMessageMeta> =
            newest.query_map(params![channel, recent], row_to_meta)?.collect::<Result<_, _>>()?;
        let Some(oldest) = rows.last().map(|m| m.id.0 as i64) else { continue };
        rows.reverse();
        for row in files
            .query_map(params![channel, oldest], |r| Ok((r.get::<_, i64>(0)?, row_to_attachment(r, 1)?)))?
        {
            let (message, attachment) = row?;
            if let Ok(at) = rows.binary_search_by_key(&id(message), |m| m.id.0) {
                rows[at].attachments.push(attachment);
            }
        }
        if older.exists(params![channel, oldest])? {
            state.floors.push((ChannelId(id(channel)), MessageId(id(oldest))));
        }
        state.messages.extend(rows);
    }
    // CROSS JOIN keeps attachments the outer loop: left to itself, SQLite
    // walked every message (by author, for the GROUP BY) and looked each up
    // in attachments, 0.8 s of a start with 10 M messages and no files.
    let mut q = conn.prepare(
        "SELECT m.author_id, m.channel_id, SUM(a.size) FROM attachments a CROSS JOIN messages m
         ON m.id = a.message_id WHERE m.deleted = 0 GROUP BY m.author_id, m.channel_id",
    )?;
    state.usage = q
        .query_map([], |r| Ok((UserId(id(r.get(0)?)), ChannelId(id(r.get(1)?)), id(r.get(2)?))))?
        .collect::<Result<_, _>>()?;
    let mut q = conn
        .prepare("SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM messages m WHERE m.author_id = u.id)")?;
    state.authored = q.query_map([], |r| Ok(UserId(id(r.get(0)?))))?.collect::<Result<_, _>>()?;
    Ok(())
}

/// The highest id any table holds: where minting continues.
pub fn max_id(conn: &Connection) -> Result<u64, rusqlite::Error> {
    let max = |table: &str| -> Result<i64, rusqlite::Error> {
        conn.query_row(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"), [], |r| r.get(0))
    };
    Ok(["users", "tokens", "communities", "channels", "messages", "roles", "audit_log", "direct_channels"]
        .into_iter()
        .map(max)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .max()
        .map_or(0, id))
}

/// The database at `path`, brought up to this version's schema, for a
/// tool that writes it with no server running (`kith import`).
pub fn open_migrated(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = open(path, Sync::Full)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn mentions_text(mentions: &[UserId]) -> String {
    mentions.iter().map(|u| u.0.to_string()).collect::<Vec<_>>().join(",")
}

fn parse_mentions(text: &str) -> Vec<UserId> {
    text.split(',').filter_map(|m| m.parse().ok()).map(UserId).collect()
}

/// More than the distinct statements `apply` runs.
const WRITE_STATEMENTS: usize = 96;

/// Runs one statement of a commit, parsed once per connection and then
/// taken from its cache: parsing SQL anew for every write was a visible
/// share of the writer's time under durable ingest.
trait Run {
    fn run(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize>;
}

impl Run for Transaction<'_> {
    fn run(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

fn apply(tx: &Transaction<'_>, write: &Write) -> rusqlite::Result<()> {
    let i = |v: u64| v as i64;
    match write {
        Write::CreateUser { user, password_hash, created_at } => tx.run(
            "INSERT INTO users (id, username, fold, skeleton, display_name, password_hash, server_owner, created_at, bot)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                i(user.id.0),
                user.username,
                user.fold,
                user.skeleton,
                user.display_name,
                password_hash,
                user.server_owner,
                i(created_at.0),
                user.bot
            ],
        ),
        Write::CreateToken { token, created_at } => tx.run(
            "INSERT INTO tokens (id, user_id, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![i(token.id.0), i(token.user.0), &token.hash.0[..], i(created_at.0)],
        ),
        Write::RevokeToken { id } => tx.run("DELETE FROM tokens WHERE id = ?1", [i(id.0)]),
        Write::SetResetCode { user, hash, expires_at } => tx.run(
            "INSERT OR REPLACE INTO reset_codes (user_id, hash, expires_at) VALUES (?1, ?2, ?3)",
            params![i(user.0), &hash.0[..], i(expires_at.0)],
        ),
        Write::Suspend { user, reason, at } => tx.run(
            "INSERT OR REPLACE INTO suspensions (user_id, reason, created_at) VALUES (?1, ?2, ?3)",
            params![i(user.0), reason, i(at.0)],
        ),
        Write::Unsuspend { user } => tx.run("DELETE FROM suspensions WHERE user_id = ?1", [i(user.0)]),
        Write::DeleteAccount { user, name, at } => {
            for table in ["suspensions", "reset_codes", "read_states"] {
                tx.run(&format!("DELETE FROM {table} WHERE user_id = ?1"), [i(user.0)])?;
            }
            tx.run(
                "UPDATE users SET username = ?2, fold = ?3, skeleton = ?4, display_name = ?5, status_text = '',
                    password_hash = '', presence = ?6, deleted_at = ?7 WHERE id = ?1",
                params![i(user.0), name.name, name.fold, name.skeleton, "Deleted user", Chosen::Online.code(), i(at.0)],
            )
        }
        Write::RevokeInvite { code } => tx.run("DELETE FROM invites WHERE code = ?1", [code]),
        Write::SetPassword { user, password_hash } => {
            tx.run("DELETE FROM reset_codes WHERE user_id = ?1", [i(user.0)])?;
            tx.run("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![i(user.0), password_hash])
        }
        Write::UpdateUser { id, display_name, status_text } => tx.run(
            "UPDATE users SET display_name = ?2, status_text = ?3 WHERE id = ?1",
            params![i(id.0), display_name, status_text],
        ),
        Write::CreateCommunity { community, created_at } => tx.run(
            "INSERT INTO communities (id, name, owner_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![i(community.id.0), community.name, i(community.owner.0), i(created_at.0)],
        ),
        Write::AddMember { community, user, joined_at } => tx.run(
            "INSERT OR IGNORE INTO members (community_id, user_id, joined_at) VALUES (?1, ?2, ?3)",
            params![i(community.0), i(user.0), i(joined_at.0)],
        ),
        Write::RemoveMember { community, user } => {
            tx.run(
                "DELETE FROM member_roles WHERE community_id = ?1 AND user_id = ?2",
                params![i(community.0), i(user.0)],
            )?;
            tx.run(
                "DELETE FROM members WHERE community_id = ?1 AND user_id = ?2",
                params![i(community.0), i(user.0)],
            )
        }
        Write::UpdateMember { community, user, nickname, timeout_until } => tx.run(
            "UPDATE members SET nickname = ?3, timeout_until = ?4 WHERE community_id = ?1 AND user_id = ?2",
            params![i(community.0), i(user.0), nickname, timeout_until.map(|t| i(t.0))],
        ),
        Write::PutRole { role } => tx.run(
            "INSERT OR REPLACE INTO roles (id, community_id, name, permissions, rank) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![i(role.id.0), i(role.community.0), role.name, i(role.permissions.bits()), role.rank],
        ),
        Write::DeleteRole { id } => {
            tx.run("DELETE FROM member_roles WHERE role_id = ?1", [i(id.0)])?;
            tx.run("DELETE FROM channel_overrides WHERE target_kind = 0 AND target_id = ?1", [i(id.0)])?;
            tx.run("DELETE FROM roles WHERE id = ?1", [i(id.0)])
        }
        Write::AddMemberRole { community, user, role } => tx.run(
            "INSERT OR IGNORE INTO member_roles (community_id, user_id, role_id) VALUES (?1, ?2, ?3)",
            params![i(community.0), i(user.0), i(role.0)],
        ),
        Write::RemoveMemberRole { community, user, role } => tx.run(
            "DELETE FROM member_roles WHERE community_id = ?1 AND user_id = ?2 AND role_id = ?3",
            params![i(community.0), i(user.0), i(role.0)],
        ),
        Write::SetOverride { rule } => {
            let (kind, target) = match rule.target {
                OverrideTarget::Role(r) => (0, r.0),
                OverrideTarget::Member(u) => (1, u.0),
            };
            if rule.allow.is_empty() && rule.deny.is_empty() {
                tx.run(
                    "DELETE FROM channel_overrides WHERE channel_id = ?1 AND target_kind = ?2 AND target_id = ?3",
                    params![i(rule.channel.0), kind, i(target)],
                )
            } else {
                tx.run(
                    "INSERT OR REPLACE INTO channel_overrides (channel_id, target_kind, target_id, allow, deny)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![i(rule.channel.0), kind, i(target), i(rule.allow.bits()), i(rule.deny.bits())],
                )
            }
        }
        Write::Ban { ban } => tx.run(
            "INSERT OR REPLACE INTO bans (community_id, user_id, banned_by, reason, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![i(ban.community.0), i(ban.user.0), i(ban.by.0), ban.reason, i(ban.at.0)],
        ),
        Write::Unban { community, user } => tx.run(
            "DELETE FROM bans WHERE community_id = ?1 AND user_id = ?2",
            params![i(community.0), i(user.0)],
        ),
        Write::Audit { entry: e } => tx.run(
            "INSERT INTO audit_log (id, community_id, actor_id, action, target_id, reason, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                i(e.id.0),
                i(e.community.0),
                i(e.actor.0),
                e.action as i32,
                e.target.map(i),
                e.reason,
                e.detail
            ],
        ),
        Write::CreateChannel { channel, created_at } => tx.run(
            "INSERT INTO channels (id, community_id, name, topic, created_at, voice)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                i(channel.id.0),
                i(channel.community.0),
                channel.name,
                channel.topic,
                i(created_at.0),
                channel.voice
            ],
        ),
        Write::UpdateChannel { channel } => tx.run(
            "UPDATE channels SET name = ?2, topic = ?3 WHERE id = ?1",
            params![i(channel.id.0), channel.name, channel.topic],
        ),
        Write::DeleteChannel { id } => {
            tx.run(
                "DELETE FROM attachments WHERE message_id IN (SELECT id FROM messages WHERE channel_id = ?1)",
                [i(id.0)],
            )?;
            tx.run("DELETE FROM messages WHERE channel_id = ?1", [i(id.0)])?;
            tx.run("DELETE FROM read_states WHERE channel_id = ?1", [i(id.0)])?;
            tx.run("DELETE FROM channel_overrides WHERE channel_id = ?1", [i(id.0)])?;
            tx.run("DELETE FROM channels WHERE id = ?1", [i(id.0)])
        }
        Write::CreateInvite { invite, created_at } => tx.run(
            "INSERT INTO invites (code, community_id, creator_id, max_uses, uses, expires_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                invite.code,
                i(invite.community.0),
                i(invite.creator.0),
                invite.max_uses,
                invite.uses,
                invite.expires_at.map(|t| i(t.0)),
                i(created_at.0)
            ],
        ),
        Write::UseInvite { code } => tx.run("UPDATE invites SET uses = uses + 1 WHERE code = ?1", [code]),
        Write::InsertMessage { message: m } => {
            tx.run(
                "INSERT INTO messages (id, channel_id, author_id, body, nonce, reply_to, mentions, created_at,
                 mention_everyone) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    i(m.id.0),
                    i(m.channel.0),
                    i(m.author.0),
                    m.body,
                    m.nonce,
                    m.reply_to.map(|r| i(r.0)),
                    mentions_text(&m.mentions),
                    i(m.created_at.0),
                    m.mention_everyone
                ],
            )?;
            for (position, a) in m.attachments.iter().enumerate() {
                tx.run(
                    "INSERT INTO attachments (message_id, position, name, size, content_type, blake3, width, height)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        i(m.id.0),
                        position as i64,
                        a.name,
                        i(a.size),
                        a.content_type,
                        &a.blake3[..],
                        a.width,
                        a.height
                    ],
                )?;
            }
            Ok(1)
        }
        Write::EditMessage { id, body, mentions, mention_everyone, edited_at } => tx.run(
            "UPDATE messages SET body = ?2, mentions = ?3, edited_at = ?4, mention_everyone = ?5 WHERE id = ?1",
            params![i(id.0), body, mentions_text(mentions), i(edited_at.0), mention_everyone],
        ),
        Write::DeleteMessage { id } => {
            // The bytes go once nothing names them (the file store's sweep).
            tx.run("DELETE FROM attachments WHERE message_id = ?1", [i(id.0)])?;
            tx.run(
                "UPDATE messages SET body = '', mentions = '', mention_everyone = 0, deleted = 1 WHERE id = ?1",
                [i(id.0)],
            )
        }
        Write::PutDirect { direct } => {
            tx.run("DELETE FROM direct_members WHERE channel_id = ?1", [i(direct.id.0)])?;
            if direct.members.is_empty() {
                tx.run("DELETE FROM direct_channels WHERE id = ?1", [i(direct.id.0)])
            } else {
                tx.run(
                    "INSERT INTO direct_channels (id, is_group, name, owner_id) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, owner_id = excluded.owner_id",
                    params![i(direct.id.0), direct.group, direct.name, direct.owner.map(|u| i(u.0))],
                )?;
                for (position, user) in direct.members.iter().enumerate() {
                    tx.run(
                        "INSERT INTO direct_members (channel_id, user_id, position) VALUES (?1, ?2, ?3)",
                        params![i(direct.id.0), i(user.0), position as i64],
                    )?;
                }
                Ok(0)
            }
        }
        Write::SetReadState { user, channel, last_read: Some(m) } => tx.run(
            "INSERT INTO read_states (user_id, channel_id, last_read) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_id, channel_id) DO UPDATE SET last_read = excluded.last_read",
            params![i(user.0), i(channel.0), i(m.0)],
        ),
        Write::SetReadState { user, channel, last_read: None } => tx.run(
            "DELETE FROM read_states WHERE user_id = ?1 AND channel_id = ?2",
            params![i(user.0), i(channel.0)],
        ),
        Write::SetPresence { user, status } => tx.run(
            "UPDATE users SET presence = ?2 WHERE id = ?1",
            params![i(user.0), status.code()],
        ),
        Write::PutCommands { bot, commands } if commands.is_empty() => {
            tx.run("DELETE FROM bot_commands WHERE bot_id = ?1", [i(bot.0)])
        }
        Write::PutCommands { bot, commands } => tx.run(
            "INSERT INTO bot_commands (bot_id, commands) VALUES (?1, ?2)
             ON CONFLICT(bot_id) DO UPDATE SET commands = excluded.commands",
            params![i(bot.0), commands],
        ),
    }
    .map(drop)
}

/// The writer's connection.
#[derive(Debug)]
pub struct SqliteWriter(Connection);

impl Writer for SqliteWriter {
    fn commit(&mut self, batches: &[Batch]) -> Result<(), StoreError> {
        let tx = self.0.transaction()?;
        for (_, writes) in batches {
            for write in writes {
                apply(&tx, write)?;
            }
        }
        Ok(tx.commit()?)
    }
}

/// One reader thread's connection.
#[derive(Debug)]
pub struct SqliteReader(Connection);

/// The columns [`row_to_message`] reads, from `messages m` joined with `users u`.
const MESSAGE_COLUMNS: &str = "SELECT m.id, m.channel_id, m.author_id, u.username, m.body, m.created_at,
    m.edited_at, m.reply_to, m.mentions, m.nonce, m.mention_everyone, m.deleted, u.bot
    FROM messages m JOIN users u ON u.id = m.author_id";

impl Reader for SqliteReader {
    fn reset_code(&self, fold: &str) -> Result<Option<(UserId, TokenHash, Timestamp)>, StoreError> {
        Ok(self
            .0
            .query_row(
                "SELECT c.user_id, c.hash, c.expires_at FROM reset_codes c JOIN users u ON u.id = c.user_id
                 WHERE u.fold = ?1",
                [fold],
                |r| Ok((UserId(id(r.get(0)?)), token_hash(r.get(1)?)?, Timestamp(id(r.get(2)?)))),
            )
            .optional()?)
    }

    fn credentials(&self, fold: &str) -> Result<Option<(UserId, String)>, StoreError> {
        Ok(self
            .0
            .query_row("SELECT id, password_hash FROM users WHERE fold = ?1", [fold], |r| {
                Ok((UserId(id(r.get(0)?)), r.get(1)?))
            })
            .optional()?)
    }

    fn history(&self, q: HistoryQuery) -> Result<Vec<MessageRow>, StoreError> {
        let ch = q.channel.0 as i64;
        let limit = i64::from(q.limit);
        let query = |sql: &str, anchor: i64, limit: i64| -> Result<Vec<MessageRow>, StoreError> {
            let mut stmt = self.0.prepare_cached(&format!(
                "{MESSAGE_COLUMNS} WHERE m.channel_id = ?1 AND m.deleted = 0 {sql}"
            ))?;
            let rows = stmt.query_map(params![ch, anchor, limit], row_to_message)?;
            let mut rows: Vec<MessageRow> = rows.collect::<Result<_, _>>()?;
            for row in &mut rows {
                row.attachments = self.attachments(row.id)?;
            }
            Ok(rows)
        };
        let older = |anchor: i64, limit: i64| -> Result<Vec<MessageRow>, StoreError> {
            let mut page = query("AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3", anchor, limit)?;
            page.reverse();
            Ok(page)
        };
        let newer =
            |anchor: i64, limit: i64| query("AND m.id > ?2 ORDER BY m.id ASC LIMIT ?3", anchor, limit);
        match q.anchor {
            Anchor::Latest => older(i64::MAX, limit),
            Anchor::Before(m) => older(m.0 as i64, limit),
            Anchor::After(m) => newer(m.0 as i64, limit),
            Anchor::Around(m) => {
                // The anchor itself and up to half the page before it.
                let mut page = older(m.0 as i64 + 1, (limit + 1) / 2)?;
                let after = newer(m.0 as i64, limit - page.len() as i64)?;
                page.extend(after);
                Ok(page)
            }
        }
    }

    fn message(&self, message: MessageId) -> Result<Option<MessageRow>, StoreError> {
        let row = self
            .0
            .query_row(&format!("{MESSAGE_COLUMNS} WHERE m.id = ?1"), [message.0 as i64], row_to_message)
            .optional()?;
        let Some(mut row) = row else { return Ok(None) };
        row.attachments = self.attachments(message)?;
        Ok(Some(row))
    }

    fn attachments(&self, message: MessageId) -> Result<Vec<AttachmentMeta>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT name, size, content_type, blake3, width, height FROM attachments WHERE message_id = ?1 ORDER BY position",
        )?;
        let rows = stmt.query_map([message.0 as i64], |r| row_to_attachment(r, 0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn load(&self, load: &Load) -> Result<Loaded, StoreError> {
        Ok(match load {
            Load::Message { channel, id: message } => {
                let mut stmt =
                    self.0.prepare_cached(&format!("{META_COLUMNS} WHERE id = ?1 AND channel_id = ?2"))?;
                let meta =
                    stmt.query_row(params![message.0 as i64, channel.0 as i64], row_to_meta).optional()?;
                Loaded::Message(match meta {
                    Some(mut meta) => {
                        meta.attachments = self.attachments(*message)?;
                        Some(meta)
                    }
                    None => None,
                })
            }
            Load::Authored { author, channels, since } => {
                let mut stmt = self.0.prepare_cached(
                    "SELECT m.id, (SELECT COALESCE(SUM(a.size), 0) FROM attachments a WHERE a.message_id = m.id)
                     FROM messages m WHERE m.author_id = ?1 AND m.id >= ?2 AND m.id < ?3
                     AND m.channel_id = ?4 AND m.deleted = 0 ORDER BY m.id",
                )?;
                let mut found = Vec::new();
                for (channel, floor) in channels {
                    let args = params![author.0 as i64, since.0 as i64, floor.0 as i64, channel.0 as i64];
                    for row in
                        stmt.query_map(args, |r| Ok((MessageId(id(r.get(0)?)), *channel, id(r.get(1)?))))?
                    {
                        found.push(row?);
                    }
                }
                found.sort();
                Loaded::Authored(found)
            }
            Load::Weights { channel, floor } => {
                let mut stmt = self.0.prepare_cached(
                    "SELECT m.author_id, SUM(a.size) FROM messages m JOIN attachments a ON a.message_id = m.id
                     WHERE m.channel_id = ?1 AND m.id < ?2 AND m.deleted = 0 GROUP BY m.author_id",
                )?;
                let rows = stmt.query_map(params![channel.0 as i64, floor.0 as i64], |r| {
                    Ok((UserId(id(r.get(0)?)), id(r.get(1)?)))
                })?;
                Loaded::Weights(rows.collect::<Result<_, _>>()?)
            }
        })
    }

    fn names_file(&self, blake3: &[u8; 32]) -> Result<bool, StoreError> {
        let mut stmt = self.0.prepare_cached("SELECT 1 FROM attachments WHERE blake3 = ?1 LIMIT 1")?;
        Ok(stmt.exists([&blake3[..]])?)
    }

    fn audit(&self, q: AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let before = q.before.map_or(i64::MAX, |a| a.0 as i64);
        let mut stmt = self.0.prepare_cached(
            "SELECT a.id, a.community_id, a.actor_id, a.action, a.target_id, a.reason, a.detail,
                    actor.username,
                    COALESCE(target.username, '#' || ch.name, role.name, '')
             FROM audit_log a
             JOIN users actor ON actor.id = a.actor_id
             LEFT JOIN users target ON target.id = a.target_id
             LEFT JOIN channels ch ON ch.id = a.target_id
             LEFT JOIN roles role ON role.id = a.target_id
             WHERE a.community_id = ?1 AND a.id < ?2 ORDER BY a.id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![q.community.0 as i64, before, i64::from(q.limit)], |r| {
            Ok(AuditRow {
                entry: StoredAudit {
                    id: AuditId(id(r.get(0)?)),
                    community: CommunityId(id(r.get(1)?)),
                    actor: UserId(id(r.get(2)?)),
                    // Written by this or an older version: every code is known.
                    action: AuditAction::try_from(r.get::<_, i32>(3)?).unwrap_or(AuditAction::Unspecified),
                    target: r.get::<_, Option<i64>>(4)?.map(id),
                    reason: r.get(5)?,
                    detail: r.get(6)?,
                },
                actor_name: r.get(7)?,
                target_name: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn row_to_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    let mentions: String = r.get(8)?;
    Ok(MessageRow {
        id: MessageId(id(r.get(0)?)),
        channel: ChannelId(id(r.get(1)?)),
        author: UserId(id(r.get(2)?)),
        author_name: r.get(3)?,
        body: r.get(4)?,
        created_at: Timestamp(id(r.get(5)?)),
        edited_at: r.get::<_, Option<i64>>(6)?.map(|t| Timestamp(id(t))),
        reply_to: r.get::<_, Option<i64>>(7)?.map(|m| MessageId(id(m))),
        mentions: parse_mentions(&mentions),
        nonce: r.get(9)?,
        mention_everyone: r.get(10)?,
        deleted: r.get(11)?,
        author_bot: r.get(12)?,
        attachments: Vec::new(),
    })
}

/// An attachment's columns (name, size, content_type, blake3, width,
/// height) from `first` on.
fn row_to_attachment(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<AttachmentMeta> {
    let blake3: Vec<u8> = r.get(first + 3)?;
    Ok(AttachmentMeta {
        name: r.get(first)?,
        size: id(r.get(first + 1)?),
        content_type: r.get(first + 2)?,
        // Written by this code: always 32 bytes.
        blake3: blake3.try_into().unwrap_or([0; 32]),
        width: r.get(first + 4)?,
        height: r.get(first + 5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    /// A fresh database in its own directory (kept while the test runs).
    fn fresh() -> (tempfile::TempDir, Sqlite) {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite { path: dir.path().join("kith.db"), sync: Sync::Full };
        (dir, store)
    }

    #[test]
    fn sqlite_keeps_every_write_across_a_reopen() {
        conformance::every_write_survives_a_reopen(&fresh().1);
    }

    #[test]
    fn sqlite_holds_each_channels_newest_and_loads_the_rest() {
        conformance::a_reopen_holds_each_channels_newest_and_loads_the_rest(&fresh().1);
    }

    #[test]
    fn sqlite_applies_nothing_of_a_failed_commit() {
        conformance::a_failed_commit_applies_nothing(&fresh().1);
    }

    #[test]
    fn sqlite_answers_every_read_from_what_was_written() {
        conformance::reads_answer_from_what_was_written(&fresh().1);
    }

    #[test]
    fn sqlite_readers_see_commits_as_they_land() {
        conformance::readers_see_commits_as_they_land(&fresh().1);
    }

    /// A database written by the first schema version opens under the
    /// current one, and its communities get an `@everyone` role.
    #[test]
    fn a_version_one_database_migrates_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kith.db");
        {
            let conn = open(&path, Sync::Normal).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO users VALUES (1, 'ann', 'ann', 'ann', 'Ann', 'hash', 1, 0);
                 INSERT INTO communities VALUES (2, 'Family', 1, 0);
                 INSERT INTO members VALUES (2, 1, 0);
                 INSERT INTO channels VALUES (3, 2, 'general', '', 0);
                 INSERT INTO messages (id, channel_id, author_id, body, mentions, created_at)
                     VALUES (4, 3, 1, 'hi', '', 0);",
            )
            .unwrap();
        }
        let store = Sqlite { path, sync: Sync::Normal };
        let (_, state) = store.open_writer(kith_core::hub::RECENT_MESSAGES).unwrap();
        assert_eq!(state.roles.len(), 1);
        let everyone = &state.roles[0];
        assert_eq!((everyone.id.0, everyone.community.0, everyone.rank), (2, 2, 0));
        assert_eq!(everyone.permissions, Permissions::DEFAULT_EVERYONE);
        assert_eq!(state.members[0].nickname, None);
        assert_eq!(state.users[0].status_text, "");
        let history = store
            .open_reader()
            .unwrap()
            .history(HistoryQuery { channel: ChannelId(3), anchor: Anchor::Latest, limit: 10 })
            .unwrap();
        assert_eq!(history.len(), 1);
        assert!(!history[0].mention_everyone);
    }
}
