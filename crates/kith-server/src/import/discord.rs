//! `kith import --discord`: channels exported by DiscordChatExporter (its
//! JSON format, the de-facto archive of a Discord server) into kith.
//!
//! - A guild becomes a community owned by the importing operator (or
//!   `--owner`); each exported channel becomes a text channel.
//! - Authors and mentioned people become placeholder accounts with their
//!   Discord names (made unique here): no password, so nobody can sign in
//!   as one until the owner hands its person a one-time code.
//! - Messages keep their original times, edits, replies (when the message
//!   replied to is in the import) and mentions, and their attachments when
//!   the files are next to the export (DiscordChatExporter's `--media`).
//!   An attachment whose file is not there becomes a line in the message
//!   saying so. kith has no reactions, so they are counted and dropped.
//! - kith ids are minted in the export's order (ids order a channel, and
//!   encode the time a server minted them, not the message's): the table
//!   `imported` remembers which Discord id became which, so importing the
//!   same export again, or a later one with more messages, adds only what
//!   is new.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use kith_core::Permissions;
use kith_core::ids::Timestamp;
use kith_core::text::{Body, ChannelName, CommunityName, FileName, Topic, Username};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Imported, NewAttachment, NewMessage, NewUser, Target, into_data_dir, located};

const SOURCE: &str = "discord";
/// 2015-01-01T00:00:00Z: the zero of Discord's snowflake ids.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// What a Discord import did, beyond what it added.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub imported: Imported,
    /// Messages with neither text nor files (calls, pins, joins).
    pub skipped: u64,
    /// Attachments whose files were not next to the export.
    pub missing_files: u64,
    /// Reactions dropped (kith has none).
    pub reactions: u64,
}

#[derive(Deserialize)]
struct Guild {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct Channel {
    id: String,
    name: String,
    topic: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    id: String,
    timestamp: String,
    timestamp_edited: Option<String>,
    #[serde(default)]
    content: String,
    author: Author,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    reactions: Vec<IgnoredAny>,
    #[serde(default)]
    mentions: Vec<Author>,
    reference: Option<Reference>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Author {
    id: String,
    name: String,
    nickname: Option<String>,
    #[serde(default)]
    is_bot: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attachment {
    url: String,
    file_name: String,
    file_size_bytes: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reference {
    message_id: Option<String>,
}

/// One part of an export file, in the order the file gives them.
enum Part {
    Guild(Guild),
    Channel(Channel),
    Message(Message),
}

type Sink<'f> = &'f mut dyn FnMut(Part) -> Result<()>;

/// The top-level object, read key by key so `messages` streams.
struct ExportFile<'f>(Sink<'f>);

impl<'de> DeserializeSeed<'de> for ExportFile<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ExportFile<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a DiscordChatExporter JSON export (an object with guild, channel and messages)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let sink = self.0;
        while let Some(key) = map.next_key::<String>()? {
            let part = match key.as_str() {
                "guild" => Part::Guild(map.next_value()?),
                "channel" => Part::Channel(map.next_value()?),
                "messages" => {
                    map.next_value_seed(Messages(&mut *sink))?;
                    continue;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            sink(part).map_err(|e| A::Error::custom(format!("{e:#}")))?;
        }
        Ok(())
    }
}

struct Messages<'f>(Sink<'f>);

impl<'de> DeserializeSeed<'de> for Messages<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Messages<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0usize;
        while let Some(m) = seq.next_element::<Message>()? {
            (self.0)(Part::Message(m)).map_err(|e| A::Error::custom(format!("[{n}]: {e:#}")))?;
            n += 1;
        }
        Ok(())
    }
}

fn time(s: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| anyhow!("{s:?} is not an ISO 8601 time"))
}

/// The time a Discord id was minted.
fn snowflake_time(id: &str) -> i64 {
    id.parse::<u64>().map_or(0, |v| ((v >> 22) + DISCORD_EPOCH_MS) as i64)
}

/// What survives of Discord text in a kith message: no control characters
/// but newline and tab, at most a message's length.
fn clean_text(s: &str) -> String {
    s.chars().filter(|&c| !c.is_control() || c == '\n' || c == '\t').take(Body::MAX_CHARS).collect()
}

/// A channel-name slug from any Discord channel (or thread) name.
fn slug(name: &str) -> String {
    let mut s: String = name
        .trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').chars().take(28).collect()
}

/// `a%20b` → `a b` (DiscordChatExporter writes local paths URL-encoded).
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut n = 0;
    while n < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[n] == b'%'
            && let (Some(Some(hi)), Some(Some(lo))) =
                (bytes.get(n + 1).map(|&b| hex(b)), bytes.get(n + 2).map(|&b| hex(b)))
        {
            out.push((hi * 16 + lo) as u8);
            n += 3;
        } else {
            out.push(bytes[n]);
            n += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Importer<'a, 'c> {
    t: &'a mut Target<'c>,
    owner: u64,
    now: Timestamp,
    /// The export's directory, resolved: attachments must lie inside it.
    root: PathBuf,
    /// The directory of the file being read (local paths are relative to it).
    dir: PathBuf,
    community: Option<u64>,
    channel: Option<u64>,
    /// A channel named before its guild.
    pending: Option<Channel>,
    report: Report,
}

impl Importer<'_, '_> {
    fn take(&mut self, part: Part) -> Result<()> {
        match part {
            Part::Guild(g) => {
                self.guild(&g)?;
                match self.pending.take() {
                    Some(c) => self.channel(&c),
                    None => Ok(()),
                }
            }
            // A file that names its channel first (DiscordChatExporter's put
            // the guild first): the channel waits for it.
            Part::Channel(c) if self.community.is_none() => {
                self.pending = Some(c);
                Ok(())
            }
            Part::Channel(c) => self.channel(&c),
            Part::Message(m) => self.message(&m).with_context(|| format!("the message {}", m.id)),
        }
    }

    fn guild(&mut self, g: &Guild) -> Result<()> {
        if g.id == "0" {
            bail!("this is a direct-message export: kith imports a server's (a guild's) channels");
        }
        if let Some(id) = self.t.mapped(SOURCE, "guild", &g.id)? {
            self.community = Some(id);
            return Ok(());
        }
        let id = self.t.ids.next(self.now);
        let name = CommunityName::parse(&g.name)
            .or_else(|_| CommunityName::parse(&clean_text(&g.name).chars().take(32).collect::<String>()))
            .map(|n| n.0)
            .unwrap_or_else(|_| "Discord".to_owned());
        let at = self.now.0 as i64;
        self.t.community(id, &name, self.owner, at)?;
        self.t.role(id, id, "@everyone", Permissions::DEFAULT_EVERYONE, 0)?;
        self.t.member(id, self.owner, at, None, None)?;
        self.t.map(SOURCE, "guild", &g.id, id)?;
        self.community = Some(id);
        Ok(())
    }

    fn channel(&mut self, c: &Channel) -> Result<()> {
        let community = self.community.expect("a channel waits for its guild");
        if let Some(id) = self.t.mapped(SOURCE, "channel", &c.id)? {
            self.channel = Some(id);
            return Ok(());
        }
        let id = self.t.ids.next(self.now);
        let base = ChannelName::parse(&c.name).map(|n| n.0).unwrap_or_else(|_| slug(&c.name));
        let base = if base.is_empty() { "channel".to_owned() } else { base };
        // Two Discord channels may share a name (in different categories).
        let mut name = base.clone();
        for n in 2.. {
            if !self.t.channel_named(community, &name)? {
                break;
            }
            name = format!("{base}-{n}");
        }
        let topic = c.topic.as_deref().map(clean_text).unwrap_or_default();
        let topic = Topic::parse(&topic)
            .or_else(|_| Topic::parse(&topic.replace('\n', " ").chars().take(256).collect::<String>()))
            .map(|t| t.0)
            .unwrap_or_default();
        self.t.channel(community, id, &name, &topic, false, self.now.0 as i64)?;
        self.t.map(SOURCE, "channel", &c.id, id)?;
        self.channel = Some(id);
        Ok(())
    }

    /// The kith account standing for a Discord user, made on first sight,
    /// and a member of the community from `at`.
    fn person(&mut self, a: &Author, at: i64) -> Result<u64> {
        let community = self.community.expect("messages come after the guild");
        let id = match self.t.mapped(SOURCE, "user", &a.id)? {
            Some(id) => id,
            None => {
                let name = self.free_name(a)?;
                let id = self.t.ids.next(self.now);
                self.t.user(&NewUser {
                    id,
                    username: name.name.clone(),
                    display_name: a.nickname.clone().unwrap_or_else(|| a.name.clone()),
                    status_text: String::new(),
                    bot: a.is_bot,
                    server_owner: false,
                    created_at: snowflake_time(&a.id),
                    deleted: false,
                })?;
                self.t.map(SOURCE, "user", &a.id, id)?;
                id
            }
        };
        self.t.member(community, id, at, None, None)?;
        Ok(id)
    }

    /// A username for a Discord user that nobody here has: their Discord
    /// name (or its `--rename`), cleaned, with `-2`, `-3`… if taken.
    fn free_name(&self, a: &Author) -> Result<Username> {
        let wanted = self.t.renamed(&a.name);
        let base: String = wanted
            .chars()
            .map(|c| if c == ' ' { '_' } else { c })
            .filter(|&c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .take(Username::MAX_CHARS - 4)
            .collect();
        let candidates = std::iter::once(base.clone())
            .chain((2..100).map(|n| format!("{base}-{n}")))
            .chain(std::iter::once(format!("discord-{}", a.id)));
        for candidate in candidates {
            if let Ok(name) = Username::parse(&candidate)
                && !self.t.name_taken(&name)?
            {
                return Ok(name);
            }
        }
        bail!("no free username for the Discord user {:?} ({})", a.name, a.id)
    }

    /// A file the export carries, if it lies inside the export.
    fn local_file(&self, url: &str) -> Option<PathBuf> {
        if url.starts_with("http://") || url.starts_with("https://") {
            return None;
        }
        let url = url.replace('\\', "/");
        [url.clone(), percent_decoded(&url)].into_iter().find_map(|relative| {
            let path = self.dir.join(relative).canonicalize().ok()?;
            (path.starts_with(&self.root) && path.is_file()).then_some(path)
        })
    }

    fn message(&mut self, m: &Message) -> Result<()> {
        let Some(channel) = self.channel else {
            bail!("the file lists its messages before naming its guild and channel")
        };
        if self.t.mapped(SOURCE, "message", &m.id)?.is_some() {
            self.t.done.present += 1;
            return Ok(());
        }
        let at = time(&m.timestamp).context("timestamp")?;
        let edited_at = m.timestamp_edited.as_deref().map(time).transpose().context("timestampEdited")?;
        let author = self.person(&m.author, at)?;
        let mut mentions = Vec::new();
        for who in &m.mentions {
            let id = self.person(who, at)?;
            if !mentions.contains(&id) {
                mentions.push(id);
            }
        }
        let mut body = clean_text(&m.content);
        let mut files = Vec::new();
        for a in &m.attachments {
            match self.local_file(&a.url) {
                Some(path) => {
                    let stored = self.t.files.take(&path).map_err(|e| anyhow!("{}: {e}", a.file_name))?;
                    self.t.done.files += 1;
                    files.push(NewAttachment {
                        name: FileName::clean(&a.file_name).0,
                        size: stored.size,
                        content_type: stored.content_type,
                        blake3: stored.blake3,
                        width: stored.width,
                        height: stored.height,
                    });
                }
                None => {
                    self.report.missing_files += 1;
                    let note = format!(
                        "[{} ({} bytes) was not in the Discord export]",
                        FileName::clean(&a.file_name).0,
                        a.file_size_bytes
                    );
                    if !body.is_empty() {
                        body.push('\n');
                    }
                    body.push_str(&note);
                }
            }
        }
        let body: String = body.chars().take(Body::MAX_CHARS).collect();
        self.report.reactions += m.reactions.len() as u64;
        if body.trim().is_empty() && files.is_empty() {
            self.report.skipped += 1;
            return Ok(());
        }
        // A reply points into its own channel (a forwarded message's
        // reference may name another).
        let reply_to = match m.reference.as_ref().and_then(|r| r.message_id.as_deref()) {
            Some(to) => match self.t.mapped(SOURCE, "message", to)? {
                Some(id) if self.t.message_channel(id)? == Some(channel) => Some(id),
                _ => None,
            },
            None => None,
        };
        let id = self.t.ids.next(self.now);
        let mention_everyone = body.contains("@everyone") || body.contains("@here");
        self.t.message(
            &NewMessage {
                id,
                channel,
                author,
                body: if body.trim().is_empty() { String::new() } else { body },
                created_at: at,
                edited_at,
                reply_to,
                mentions,
                mention_everyone,
                deleted: false,
            },
            &files,
        )?;
        self.t.map(SOURCE, "message", &m.id, id)?;
        Ok(())
    }
}

/// The export files at `path`: the file itself, or each `*.json` in the
/// directory (not below it: `*_Files/` holds the attachments).
fn export_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "{} holds no .json files: export the channels with DiscordChatExporter's JSON format",
            path.display()
        );
    }
    Ok(files)
}

/// Imports the DiscordChatExporter export at `path` (a `.json` file or a
/// directory of them) into the data directory `data`. The communities
/// made belong to `owner` (a username here) or else the server owner.
pub fn import(
    data: &Path,
    path: &Path,
    owner: Option<&str>,
    renames: &[(String, String)],
    mut progress: impl FnMut(u64),
) -> Result<Report> {
    let files = export_files(path)?;
    let root = if path.is_file() { path.parent().unwrap_or(Path::new(".")) } else { path }
        .canonicalize()
        .with_context(|| format!("reading {}", path.display()))?;
    let mut report = Report::default();
    let imported = into_data_dir(data, renames, &mut progress, |t| {
        let owner = match owner {
            Some(name) => {
                t.user_named(name)?.ok_or_else(|| anyhow!("this server has no account called {name:?}"))?
            }
            None => t.owner()?.ok_or_else(|| {
                anyhow!(
                    "this server has no owner yet to own the imported communities: run `kith serve`, \
                     register with its setup code, stop it, and import again (or name one with --owner)"
                )
            })?,
        };
        let now = crate::actor::now();
        for file in &files {
            let name = file.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let mut importer = Importer {
                t: &mut *t,
                owner,
                now,
                root: root.clone(),
                dir: file.parent().unwrap_or(Path::new(".")).to_owned(),
                community: None,
                channel: None,
                pending: None,
                report,
            };
            let reader = std::io::BufReader::new(
                std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?,
            );
            let mut de = serde_json::Deserializer::from_reader(reader);
            let mut track = serde_path_to_error::Track::new();
            let result = {
                let mut sink = |part: Part| importer.take(part);
                ExportFile(&mut sink).deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track))
            };
            if let Err(e) = result {
                return Err(located(&name, serde_path_to_error::Error::new(track.path(), e)));
            }
            de.end().map_err(|e| anyhow!("{name}: {e}"))?;
            if importer.channel.is_none() {
                bail!("{name}: not a DiscordChatExporter channel export (it names no guild and channel)");
            }
            report = importer.report;
        }
        t.finish_progress();
        Ok(())
    })?;
    report.imported = imported;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discord_names_become_slugs_and_paths_are_decoded() {
        assert_eq!(slug("Off Topic 🎉"), "off-topic");
        assert_eq!(slug("--A  b--"), "a-b");
        assert_eq!(percent_decoded("a%20b%2Fc%zz"), "a b/c%zz");
        assert_eq!(snowflake_time("175928847299117063"), 1_462_015_105_796);
        assert_eq!(clean_text("a\u{7}b\nc"), "ab\nc");
    }
}
