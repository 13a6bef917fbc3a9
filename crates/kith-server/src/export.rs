//! `kith export`: a server's communities, channels, people and every
//! message as documented JSON (docs/export.md, `docs/export.schema.json`),
//! plus the attachment files — readable by anything, for taking the data
//! elsewhere.
//!
//! It reads the SQLite store directly (the format is the contract; the
//! schema stays the store's business) in one read transaction, so the
//! export is the server as of one instant while it keeps running, and it
//! streams: each channel's history is written row by row, its attachments
//! merged in by message id, so memory stays flat however long the history.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use kith_core::Permissions;
use rusqlite::{Connection, OpenFlags, params};
use serde_json::{Value, json};

/// What the export holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    pub communities: u64,
    pub channels: u64,
    pub messages: u64,
    pub files: u64,
}

pub const FORMAT: &str = "kith-export/1";

fn id(v: i64) -> String {
    (v as u64).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn permissions(bits: i64) -> Vec<String> {
    Permissions::from_wire(bits as u64).names()
}

/// Exports `data` (a server's data directory) into `out` (new or empty):
/// every community, or only the one named `community`. `progress(n)` is
/// told how many messages are written so far.
pub fn export(
    data: &Path,
    out: &Path,
    community: Option<&str>,
    mut progress: impl FnMut(u64),
) -> Result<Exported> {
    let db_path = data.join("kith.db");
    if !db_path.exists() {
        bail!("{} holds no kith database", data.display());
    }
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        bail!("{} is not empty; export into a new directory", out.display());
    }
    std::fs::create_dir_all(out.join("history"))?;
    std::fs::create_dir_all(out.join("files"))?;
    let mut db = Connection::open_with_flags(&db_path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    db.busy_timeout(std::time::Duration::from_secs(30))?;
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = crate::store::sqlite::schema_version();
    if version != known {
        bail!(
            "this database is at schema {version} and this kith reads schema {known}: {}",
            if version < known {
                "run this version's `kith serve` on it once (it upgrades the database), then export"
            } else {
                "export with the newer kith that wrote it"
            }
        );
    }
    // Every read below sees the same instant.
    let tx = db.transaction()?;
    let mut done = Exported::default();

    let communities: Vec<(i64, String, i64, i64)> = {
        let mut q = tx.prepare("SELECT id, name, owner_id, created_at FROM communities ORDER BY id")?;
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?
    };
    let communities: Vec<_> = match community {
        None => communities,
        Some(name) => {
            let wanted: Vec<_> = communities
                .into_iter()
                .filter(|c| c.1.eq_ignore_ascii_case(name) || id(c.0) == name)
                .collect();
            if wanted.is_empty() {
                bail!("no community called {name:?} on this server");
            }
            wanted
        }
    };
    let mut people: BTreeSet<i64> = BTreeSet::new();
    let mut community_json = Vec::new();
    for (cid, name, owner, created) in &communities {
        people.insert(*owner);
        let roles: Vec<Value> = {
            let mut q = tx.prepare("SELECT id, name, permissions, rank FROM roles WHERE community_id = ?1 ORDER BY rank DESC, id")?;
            q.query_map([cid], |r| {
                Ok(json!({"id": id(r.get(0)?), "name": r.get::<_, String>(1)?, "permissions": permissions(r.get(2)?), "rank": r.get::<_, i64>(3)?}))
            })?
            .collect::<Result<_, _>>()?
        };
        let members: Vec<(i64, Value)> = {
            let mut q = tx.prepare(
                "SELECT user_id, nickname, joined_at, timeout_until FROM members WHERE community_id = ?1 ORDER BY joined_at, user_id",
            )?;
            let rows: Vec<(i64, Option<String>, i64, Option<i64>)> = q
                .query_map([cid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?;
            let mut roles_of = tx.prepare(
                "SELECT role_id FROM member_roles WHERE community_id = ?1 AND user_id = ?2 ORDER BY role_id",
            )?;
            rows.into_iter()
                .map(|(user, nick, joined, timeout)| {
                    let roles: Vec<String> = roles_of
                        .query_map(params![cid, user], |r| r.get::<_, i64>(0))?
                        .map(|r| r.map(id))
                        .collect::<Result<_, _>>()?;
                    let mut m = json!({"user_id": id(user), "roles": roles, "joined_at": time(joined)});
                    if let Some(n) = nick {
                        m["nickname"] = n.into();
                    }
                    if let Some(t) = timeout {
                        m["timeout_until"] = time(t).into();
                    }
                    Ok((user, m))
                })
                .collect::<rusqlite::Result<_>>()?
        };
        people.extend(members.iter().map(|(u, _)| *u));
        let bans: Vec<Value> = {
            let mut q = tx.prepare("SELECT user_id, banned_by, reason, created_at FROM bans WHERE community_id = ?1 ORDER BY created_at")?;
            q.query_map([cid], |r| {
                Ok(json!({"user_id": id(r.get(0)?), "by": id(r.get(1)?), "reason": r.get::<_, String>(2)?, "at": time(r.get(3)?)}))
            })?
            .collect::<Result<_, _>>()?
        };
        let channels: Vec<(i64, String, String, bool, i64)> = {
            let mut q = tx.prepare(
                "SELECT id, name, topic, voice, created_at FROM channels WHERE community_id = ?1 ORDER BY id",
            )?;
            q.query_map([cid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut channel_json = Vec::new();
        for (ch, ch_name, topic, voice, ch_created) in channels {
            let overrides: Vec<Value> = {
                let mut q = tx.prepare("SELECT target_kind, target_id, allow, deny FROM channel_overrides WHERE channel_id = ?1 ORDER BY target_kind, target_id")?;
                q.query_map([ch], |r| {
                    let target = if r.get::<_, i64>(0)? == 0 { "role_id" } else { "user_id" };
                    Ok(json!({target: id(r.get(1)?), "allow": permissions(r.get(2)?), "deny": permissions(r.get(3)?)}))
                })?
                .collect::<Result<_, _>>()?
            };
            let (count, authors) = history(&tx, ch, data, out, &mut done, &mut progress)?;
            people.extend(authors);
            channel_json.push(json!({
                "id": id(ch), "name": ch_name, "topic": topic, "voice": voice, "created_at": time(ch_created),
                "overrides": overrides, "history": format!("history/{}.json", id(ch)), "messages": count,
            }));
            done.channels += 1;
        }
        community_json.push(json!({
            "id": id(*cid), "name": name, "owner_id": id(*owner), "created_at": time(*created),
            "roles": roles, "members": members.into_iter().map(|(_, m)| m).collect::<Vec<_>>(),
            "bans": bans, "channels": channel_json,
        }));
        done.communities += 1;
    }

    // Conversations belong to their people, not to a community: only a
    // whole-server export carries them.
    let mut conversations = Vec::new();
    if community.is_none() {
        let rows: Vec<(i64, bool, String, Option<i64>)> = {
            let mut q = tx.prepare("SELECT id, is_group, name, owner_id FROM direct_channels ORDER BY id")?;
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?
        };
        for (ch, group, name, owner) in rows {
            let members: Vec<i64> = {
                let mut q =
                    tx.prepare("SELECT user_id FROM direct_members WHERE channel_id = ?1 ORDER BY position")?;
                q.query_map([ch], |r| r.get(0))?.collect::<Result<_, _>>()?
            };
            people.extend(&members);
            let (count, authors) = history(&tx, ch, data, out, &mut done, &mut progress)?;
            people.extend(authors);
            let mut c = json!({
                "id": id(ch), "group": group, "name": name, "members": members.into_iter().map(id).collect::<Vec<_>>(),
                "history": format!("history/{}.json", id(ch)), "messages": count,
            });
            if let Some(o) = owner {
                c["owner_id"] = id(o).into();
            }
            conversations.push(c);
        }
    }

    // People: never passwords or tokens.
    let mut users = Vec::new();
    {
        let mut q = tx.prepare(
            "SELECT id, username, display_name, status_text, bot, server_owner, created_at, deleted_at IS NOT NULL
             FROM users WHERE id = ?1",
        )?;
        for u in &people {
            let row = q.query_row([u], |r| {
                let mut user = json!({
                    "id": id(r.get(0)?), "username": r.get::<_, String>(1)?, "display_name": r.get::<_, String>(2)?,
                    "status_text": r.get::<_, String>(3)?, "bot": r.get::<_, bool>(4)?, "server_owner": r.get::<_, bool>(5)?,
                    "created_at": time(r.get(6)?),
                });
                if r.get::<_, bool>(7)? {
                    user["deleted"] = true.into();
                }
                Ok(user)
            });
            match row {
                Ok(user) => users.push(user),
                Err(rusqlite::Error::QueryReturnedNoRows) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let now = crate::actor::now().0 as i64;
    let snapshot = json!({
        "format": FORMAT,
        "exported_at": time(now),
        "users": users,
        "communities": community_json,
        "conversations": conversations,
    });
    let path = out.join("snapshot.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&snapshot)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(done)
}

/// Streams one channel's messages to `history/<id>.json`, copying the
/// files they carry; returns how many and who wrote them.
fn history(
    tx: &rusqlite::Transaction<'_>,
    channel: i64,
    data: &Path,
    out: &Path,
    done: &mut Exported,
    progress: &mut impl FnMut(u64),
) -> Result<(u64, BTreeSet<i64>)> {
    let path = out.join("history").join(format!("{}.json", id(channel)));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut files = tx.prepare(
        "SELECT message_id, name, size, content_type, blake3, width, height FROM attachments
         WHERE message_id IN (SELECT id FROM messages WHERE channel_id = ?1) ORDER BY message_id, position",
    )?;
    let mut files = files.query([channel])?;
    let mut next_file = files.next()?.map(file_row).transpose()?;
    let mut q = tx.prepare(
        "SELECT m.id, m.author_id, u.username, m.body, m.created_at, m.edited_at, m.reply_to, m.mentions,
                m.mention_everyone, m.deleted
         FROM messages m JOIN users u ON u.id = m.author_id WHERE m.channel_id = ?1 ORDER BY m.id",
    )?;
    let mut rows = q.query([channel])?;
    let (mut count, mut authors) = (0u64, BTreeSet::new());
    w.write_all(b"[")?;
    while let Some(r) = rows.next()? {
        let message: i64 = r.get(0)?;
        let author: i64 = r.get(1)?;
        authors.insert(author);
        let mentions: String = r.get(7)?;
        let mut m = json!({
            "id": id(message), "author_id": id(author), "author": r.get::<_, String>(2)?,
            "time": time(r.get(4)?), "body": r.get::<_, String>(3)?,
            "mentions": mentions.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>(),
            "mention_everyone": r.get::<_, bool>(8)?, "deleted": r.get::<_, bool>(9)?,
        });
        if let Some(t) = r.get::<_, Option<i64>>(5)? {
            m["edited_at"] = time(t).into();
        }
        if let Some(to) = r.get::<_, Option<i64>>(6)? {
            m["reply_to"] = id(to).into();
        }
        let mut attached = Vec::new();
        while next_file.as_ref().is_some_and(|(of, _)| *of < message) {
            next_file = files.next()?.map(file_row).transpose()?;
        }
        while let Some((_, f)) = next_file.take_if(|(of, _)| *of == message) {
            let blake3 = f.blake3.clone();
            let copy = out.join("files").join(hex(&blake3));
            if !copy.exists() {
                let hex = hex(&blake3);
                let from = data.join("files").join("blobs").join(&hex[..2]).join(hex);
                std::fs::copy(&from, &copy).with_context(|| format!("copying {}", from.display()))?;
                done.files += 1;
            }
            attached.push(json!({
                "name": f.name, "size": f.size, "content_type": f.content_type, "blake3": hex(&blake3),
                "width": f.width, "height": f.height, "file": format!("files/{}", hex(&blake3)),
            }));
            next_file = files.next()?.map(file_row).transpose()?;
        }
        if !attached.is_empty() {
            m["attachments"] = attached.into();
        }
        if count > 0 {
            w.write_all(b",")?;
        }
        w.write_all(b"\n")?;
        serde_json::to_writer(&mut w, &m)?;
        count += 1;
        done.messages += 1;
        if done.messages.is_multiple_of(1000) {
            progress(done.messages);
        }
    }
    w.write_all(b"\n]\n")?;
    w.flush()?;
    progress(done.messages);
    Ok((count, authors))
}

struct FileRow {
    name: String,
    size: i64,
    content_type: String,
    blake3: Vec<u8>,
    width: i64,
    height: i64,
}

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, FileRow)> {
    Ok((
        r.get(0)?,
        FileRow {
            name: r.get(1)?,
            size: r.get(2)?,
            content_type: r.get(3)?,
            blake3: r.get(4)?,
            width: r.get(5)?,
            height: r.get(6)?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_795_262_400_123), "2026-11-21T12:00:00.123Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
