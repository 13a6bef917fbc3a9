//! Conversations outside communities (`@bob`, groups), presence, unread
//! counts and typing, from the shell.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kith_client::Client;
use kith_client::proto::{self as v1, client_message::Request, reply::Result as R};
use serde_json::json;

use crate::commands::{Ctx, find_channel, session};
use crate::output::{print_json, sanitize};

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Start a group with up to 9 others: `kith group create bob carol --name 'weekend plans'`.
    Create {
        #[arg(required = true, num_args = 1..=9)]
        users: Vec<String>,
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        json: crate::Json,
    },
    /// Add people to a group (`@group` is its name or id).
    Add {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove people from a group you own.
    Remove {
        group: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Rename a group.
    Rename { group: String, name: String },
    /// Leave a group.
    Leave { group: String },
    /// Leave every group at once (direct conversations stay). The server's
    /// owner may take someone else out with --user (a name they can see, or
    /// an id): the remedy for a person others keep adding to groups.
    LeaveAll {
        #[arg(long)]
        user: Option<String>,
    },
}

/// Every user the session can see: community members and conversation partners.
fn known_users(ready: &v1::Ready) -> impl Iterator<Item = &v1::User> {
    let members = ready.communities.iter().flat_map(|c| c.members.iter().filter_map(|m| m.user.as_ref()));
    let partners = ready.direct_channels.iter().flat_map(|d| d.recipients.iter());
    ready.user.iter().chain(members).chain(partners)
}

pub(crate) fn find_user<'a>(ready: &'a v1::Ready, spec: &str) -> Result<&'a v1::User> {
    let spec = spec.trim_start_matches('@');
    known_users(ready)
        .find(|u| u.username.to_lowercase() == spec.to_lowercase() || u.id.to_string() == spec)
        .with_context(|| format!("you share no community or conversation with {:?}", sanitize(spec)))
}

fn username(ready: &v1::Ready, id: u64) -> String {
    known_users(ready).find(|u| u.id == id).map_or_else(|| id.to_string(), |u| u.username.clone())
}

/// A group by name or id.
fn find_group<'a>(ready: &'a v1::Ready, spec: &str) -> Result<&'a v1::Channel> {
    let spec = spec.trim_start_matches('@');
    ready
        .direct_channels
        .iter()
        .filter(|d| d.kind() == v1::ChannelKind::Group)
        .find(|d| d.name.to_lowercase() == spec.to_lowercase() || d.id.to_string() == spec)
        .with_context(|| format!("you are in no group {:?}", sanitize(spec)))
}

/// What a channel argument names: `Community/channel`, `@user` (the direct
/// conversation with them, opened if new) or `@group` (a group's name or id).
/// Returns the channel and its community (0 for conversations).
pub(crate) async fn resolve(client: &Client, ready: &v1::Ready, spec: &str) -> Result<(v1::Channel, u64)> {
    let Some(name) = spec.strip_prefix('@') else {
        let (c, ch) = find_channel(ready, spec)?;
        return Ok((ch.clone(), c.id));
    };
    if let Ok(group) = find_group(ready, name) {
        return Ok((group.clone(), 0));
    }
    let me = ready.user.as_ref().map_or(0, |u| u.id);
    let user = find_user(ready, name)?;
    let existing = ready.direct_channels.iter().find(|d| {
        d.kind() == v1::ChannelKind::Direct && d.recipients.iter().any(|r| r.id == user.id && r.id != me)
    });
    if let Some(d) = existing {
        return Ok((d.clone(), 0));
    }
    let open = v1::OpenDirectRequest { user_ids: vec![user.id], name: String::new() };
    match client.request(Request::OpenDirect(open)).await? {
        R::Channel(ch) => Ok((ch, 0)),
        _ => bail!("unexpected answer"),
    }
}

fn conversation_title(ready: &v1::Ready, d: &v1::Channel) -> String {
    let me = ready.user.as_ref().map_or(0, |u| u.id);
    let others: Vec<&str> = d.recipients.iter().filter(|u| u.id != me).map(|u| u.username.as_str()).collect();
    match (d.kind(), d.name.as_str()) {
        (v1::ChannelKind::Group, "") => others.join(", "),
        (v1::ChannelKind::Group, name) => name.to_owned(),
        _ => format!("@{}", others.join(", ")),
    }
}

fn channel_json(ready: &v1::Ready, d: &v1::Channel, community: Option<&str>) -> serde_json::Value {
    json!({
        "id": d.id.to_string(),
        "kind": match d.kind() {
            v1::ChannelKind::Text => "text",
            v1::ChannelKind::Direct => "direct",
            v1::ChannelKind::Group => "group",
            v1::ChannelKind::Voice => "voice",
        },
        "name": match community {
            Some(c) => format!("{c}/{}", d.name),
            None => conversation_title(ready, d),
        },
        "recipients": d.recipients.iter().map(|u| u.username.clone()).collect::<Vec<_>>(),
        "owner": (d.owner_id != 0).then(|| username(ready, d.owner_id)),
        "last_read": d.last_read_id.to_string(),
        "unread": d.unread_count,
        "mentions": d.mention_count,
    })
}

/// `kith dms`: your conversations, with unread counts.
pub async fn dms(ctx: Ctx, json: bool) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    for d in &ready.direct_channels {
        if json {
            print_json(&channel_json(&ready, d, None));
        } else {
            println!("{:>20}  {}  {}", d.id, sanitize(&conversation_title(&ready, d)), unread_note(d));
        }
    }
    client.close().await;
    Ok(())
}

fn unread_note(ch: &v1::Channel) -> String {
    match (ch.unread_count, ch.mention_count) {
        (0, _) => String::new(),
        (n, 0) => format!("({n} unread)"),
        (n, m) => format!("({n} unread, {m} mentioning you)"),
    }
}

/// `kith unread`: every channel and conversation with unread messages.
pub async fn unread(ctx: Ctx, json: bool) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let channels = ready
        .communities
        .iter()
        .flat_map(|c| c.channels.iter().map(move |ch| (Some(c.name.as_str()), ch)))
        .chain(ready.direct_channels.iter().map(|d| (None, d)));
    let mut any = false;
    for (community, ch) in channels.filter(|(_, ch)| ch.unread_count > 0) {
        any = true;
        if json {
            print_json(&channel_json(&ready, ch, community));
        } else {
            let name =
                community.map_or_else(|| conversation_title(&ready, ch), |c| format!("{c}/{}", ch.name));
            println!("{}  {}", sanitize(&name), unread_note(ch));
        }
    }
    // People get an answer; scripts reading JSON get no lines.
    if !any && !json {
        println!("nothing unread");
    }
    client.close().await;
    Ok(())
}

/// `kith read CHANNEL`: mark it read up to its newest message.
pub async fn read(ctx: Ctx, channel: &str) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let (ch, _) = resolve(&client, &ready, channel).await?;
    let newest = client.history(ch.id, None, 1).await?.last().map_or(0, |m| m.id);
    client.request(Request::Ack(v1::AckRequest { channel_id: ch.id, message_id: newest })).await?;
    client.close().await;
    Ok(())
}

/// `kith typing CHANNEL`: show others you are typing (for a few seconds).
pub async fn typing(ctx: Ctx, channel: &str) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let (ch, _) = resolve(&client, &ready, channel).await?;
    client.request(Request::Typing(v1::TypingRequest { channel_id: ch.id })).await?;
    client.close().await;
    Ok(())
}

pub async fn group(ctx: Ctx, command: GroupCommand) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let ids = |users: &[String]| -> Result<Vec<u64>> {
        users.iter().map(|u| Ok(find_user(&ready, u)?.id)).collect()
    };
    let update = |channel_id: u64| v1::UpdateGroupRequest { channel_id, ..Default::default() };
    let request = match &command {
        GroupCommand::Create { users, name, .. } => {
            if users.len() < 2 {
                bail!(
                    "a group needs at least two others; for one, send to @{}",
                    users[0].trim_start_matches('@')
                );
            }
            Request::OpenDirect(v1::OpenDirectRequest { user_ids: ids(users)?, name: name.clone() })
        }
        GroupCommand::Add { group, users } => Request::UpdateGroup(v1::UpdateGroupRequest {
            add_user_ids: ids(users)?,
            ..update(find_group(&ready, group)?.id)
        }),
        GroupCommand::Remove { group, users } => Request::UpdateGroup(v1::UpdateGroupRequest {
            remove_user_ids: ids(users)?,
            ..update(find_group(&ready, group)?.id)
        }),
        GroupCommand::Rename { group, name } => Request::UpdateGroup(v1::UpdateGroupRequest {
            name: Some(name.clone()),
            ..update(find_group(&ready, group)?.id)
        }),
        GroupCommand::LeaveAll { user } => {
            let user_id = match user {
                None => 0,
                Some(spec) => match spec.trim_start_matches('@').parse::<u64>() {
                    Ok(id) => id,
                    Err(_) => find_user(&ready, spec)?.id,
                },
            };
            Request::LeaveGroups(v1::LeaveGroupsRequest { user_id })
        }
        GroupCommand::Leave { group } => {
            let me = ready.user.as_ref().map_or(0, |u| u.id);
            Request::UpdateGroup(v1::UpdateGroupRequest {
                remove_user_ids: vec![me],
                ..update(find_group(&ready, group)?.id)
            })
        }
    };
    let answer = client.request(request).await?;
    if let (GroupCommand::Create { json, .. }, R::Channel(ch)) = (&command, &answer) {
        if json.json {
            print_json(&channel_json(&ready, ch, None));
        } else {
            println!("{}", ch.id);
        }
    }
    client.close().await;
    Ok(())
}

fn status_name(s: v1::PresenceStatus) -> &'static str {
    match s {
        v1::PresenceStatus::Offline => "offline",
        v1::PresenceStatus::Online => "online",
        v1::PresenceStatus::Idle => "idle",
        v1::PresenceStatus::Dnd => "dnd",
        v1::PresenceStatus::Invisible => "invisible",
    }
}

pub fn parse_status(s: &str) -> Result<v1::PresenceStatus, String> {
    match s {
        "online" => Ok(v1::PresenceStatus::Online),
        "idle" | "away" => Ok(v1::PresenceStatus::Idle),
        "dnd" => Ok(v1::PresenceStatus::Dnd),
        "invisible" => Ok(v1::PresenceStatus::Invisible),
        _ => Err("expected online, idle, dnd or invisible".into()),
    }
}

/// `kith presence [STATUS]`: set your status (kept until changed), then list
/// who is around.
pub async fn presence(ctx: Ctx, set: Option<v1::PresenceStatus>, json: bool) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let me = ready.user.as_ref().map_or(0, |u| u.id);
    let mut statuses: Vec<(u64, v1::PresenceStatus)> =
        ready.presences.iter().map(|p| (p.user_id, p.status())).collect();
    if let Some(status) = set {
        let request = v1::SetPresenceRequest { status: Some(status as i32), afk: None };
        if let R::Presence(p) = client.request(Request::SetPresence(request)).await? {
            statuses.retain(|(u, _)| *u != me);
            statuses.push((me, p.status()));
        }
    }
    let mut users: Vec<&v1::User> = known_users(&ready).collect();
    users.sort_by_key(|u| (u.id != me, u.username.to_lowercase()));
    users.dedup_by_key(|u| u.id);
    for u in users {
        let status = statuses.iter().find(|(id, _)| *id == u.id).map_or(v1::PresenceStatus::Offline, |s| s.1);
        if json {
            print_json(&json!({"user": u.username, "id": u.id.to_string(), "status": status_name(status),
                               "status_text": u.status_text}));
        } else {
            let text = if u.status_text.is_empty() {
                String::new()
            } else {
                format!("  {}", sanitize(&u.status_text))
            };
            println!("{:<10} {}{text}", status_name(status), sanitize(&u.username));
        }
    }
    client.close().await;
    Ok(())
}
