//! Community administration from the shell: members, roles, channel
//! overrides, moderation, the audit log, nicknames and the profile.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kith_client::Client;
use kith_client::proto::{self as v1, client_message::Request, reply::Result as R};
use kith_core::Permissions;
use serde_json::json;

use crate::commands::{Ctx, find_channel, find_community, session};
use crate::output::{print_json, rfc3339, sanitize};

/// The server owner's commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Make a one-time code (valid a day) with which someone chooses a new
    /// password: for people whose accounts were imported, or who forgot
    /// theirs. Their old password works until the code is used.
    ResetPassword {
        user: String,
        #[command(flatten)]
        json: crate::Json,
    },
    /// Suspend an account across the whole server: its logins end now, and
    /// it cannot sign in until `kith admin unsuspend`. Its memberships and
    /// messages stay.
    Suspend {
        user: String,
        /// Shown to them when they try to sign in.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a suspension.
    Unsuspend { user: String },
    /// Delete an account for good: its logins end, it leaves every
    /// community and group, and its name is free again. Its messages stay,
    /// shown as "Deleted user", unless --remove-messages. Someone who owns
    /// a community cannot be deleted. This cannot be undone, so it asks for
    /// --yes.
    DeleteAccount {
        user: String,
        /// Also delete every message they wrote, everywhere.
        #[arg(long)]
        remove_messages: bool,
        /// Yes, delete it.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// List a community's roles, highest rank first.
    List {
        community: String,
        #[command(flatten)]
        json: crate::Json,
    },
    /// Create a role: `kith role create Family mods --permissions kick_members,manage_messages --rank 10`.
    Create {
        community: String,
        name: String,
        /// Comma-separated permission names (see `kith role permissions`).
        #[arg(long, default_value = "")]
        permissions: String,
        /// 1-1000000; must be below your own rank.
        #[arg(long, default_value_t = 1)]
        rank: u32,
        #[command(flatten)]
        json: crate::Json,
    },
    /// Change a role's name, permissions or rank (`@everyone`: permissions only).
    Edit {
        community: String,
        role: String,
        #[arg(long)]
        name: Option<String>,
        /// The full new set, comma-separated (`none` for no permissions).
        #[arg(long)]
        permissions: Option<String>,
        #[arg(long)]
        rank: Option<u32>,
        #[command(flatten)]
        json: crate::Json,
    },
    /// Delete a role.
    Delete { community: String, role: String },
    /// Give a member a role.
    Grant { community: String, user: String, role: String },
    /// Take a role from a member.
    Revoke { community: String, user: String, role: String },
    /// List every permission name.
    Permissions,
}

#[derive(Debug, Subcommand)]
pub enum OverrideCommand {
    /// Allow or deny permissions for one role or member in one channel.
    Set {
        /// `Community/channel`.
        channel: String,
        #[command(flatten)]
        target: OverrideTargetArg,
        /// Comma-separated permission names to allow.
        #[arg(long, default_value = "")]
        allow: String,
        /// Comma-separated permission names to deny.
        #[arg(long, default_value = "")]
        deny: String,
    },
    /// Remove a role's or member's override in a channel.
    Clear {
        /// `Community/channel`.
        channel: String,
        #[command(flatten)]
        target: OverrideTargetArg,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct OverrideTargetArg {
    /// The role (`@everyone` for everyone).
    #[arg(long)]
    role: Option<String>,
    /// The member's username.
    #[arg(long)]
    member: Option<String>,
}

#[derive(Debug, Args)]
pub struct BanArgs {
    community: String,
    /// A username (of a member) or a user id.
    user: String,
    #[arg(long, default_value = "")]
    reason: String,
    /// Also delete their messages of this last period, e.g. `24h` (at most 7 days).
    #[arg(long, value_parser = humantime::parse_duration)]
    delete_messages: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    community: String,
    /// Entries per page (server maximum: 100).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only entries older than this id.
    #[arg(long)]
    before: Option<u64>,
    #[command(flatten)]
    json: crate::Json,
}

fn parse_permissions(list: &str) -> Result<Permissions> {
    let mut p = Permissions::empty();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty() && *n != "none") {
        p |= Permissions::by_name(name)
            .with_context(|| format!("unknown permission {name:?}; see `kith role permissions`"))?;
    }
    Ok(p)
}

fn permission_list(bits: u64) -> String {
    let names = Permissions::from_wire(bits).names();
    if names.is_empty() { "(none)".into() } else { names.join(",") }
}

fn member_name(m: &v1::Member) -> &str {
    m.user.as_ref().map_or("", |u| u.username.as_str())
}

/// A member by username (case-insensitive) or id.
fn find_member<'a>(c: &'a v1::Community, spec: &str) -> Result<&'a v1::Member> {
    let spec = spec.trim_start_matches('@');
    c.members
        .iter()
        .find(|m| {
            let u = m.user.as_ref();
            u.is_some_and(|u| u.username.to_lowercase() == spec.to_lowercase() || u.id.to_string() == spec)
        })
        .with_context(|| format!("{} has no member {:?}", sanitize(&c.name), sanitize(spec)))
}

/// A member's id, or a numeric user id for someone who is not a member.
fn user_id(c: &v1::Community, spec: &str) -> Result<u64> {
    match find_member(c, spec) {
        Ok(m) => Ok(m.user.as_ref().map_or(0, |u| u.id)),
        Err(e) => spec.parse().map_err(|_| e),
    }
}

fn find_role<'a>(c: &'a v1::Community, spec: &str) -> Result<&'a v1::Role> {
    c.roles
        .iter()
        .find(|r| r.name.to_lowercase() == spec.to_lowercase() || r.id.to_string() == spec)
        .with_context(|| format!("{} has no role {:?}", sanitize(&c.name), sanitize(spec)))
}

fn role_json(r: &v1::Role) -> serde_json::Value {
    json!({"id": r.id.to_string(), "name": r.name, "rank": r.rank,
           "permissions": Permissions::from_wire(r.permissions).names()})
}

fn print_role(r: &v1::Role, json: bool) {
    if json {
        print_json(&role_json(r));
    } else {
        println!("{:>7}  {}  {}", r.rank, sanitize(&r.name), permission_list(r.permissions));
    }
}

pub async fn admin(ctx: Ctx, command: AdminCommand) -> Result<()> {
    if let AdminCommand::DeleteAccount { user, yes: false, .. } = &command {
        bail!("this deletes the account of {} for good: run it again with --yes", sanitize(user));
    }
    let (client, _, profile) = session(&ctx).await?;
    match command {
        AdminCommand::ResetPassword { user, json } => {
            let username = user.trim_start_matches('@').to_owned();
            let R::ResetCode(answer) = call(
                &client,
                Request::ResetPassword(v1::ResetPasswordRequest { username: username.clone() }),
            )
            .await?
            else {
                bail!("the server answered a reset with something else");
            };
            let name = answer.user.map(|u| u.username).unwrap_or(username);
            if json.json {
                print_json(&json!({
                    "user": name, "code": answer.code, "expires_at": rfc3339(answer.expires_at_ms),
                    "server": profile.server, "web_link": sanitize(&answer.web_link),
                }));
            } else {
                println!(
                    "A one-time code for {name}, valid until {}:\n\n    {}\n\nGive it to {name} (in person, or \
                     another way you trust); they choose a password with it:\n\n    kith login {name} --server {} \
                     --code {}",
                    rfc3339(answer.expires_at_ms),
                    answer.code,
                    profile.server,
                    answer.code,
                    name = sanitize(&name)
                );
                if !answer.web_link.is_empty() {
                    println!("\nor, in a browser:\n\n    {}", sanitize(&answer.web_link));
                }
            }
        }
        AdminCommand::Suspend { user, reason } => {
            let username = user.trim_start_matches('@').to_owned();
            let r = v1::SuspendUserRequest { username, suspended: true, reason };
            call(&client, Request::SuspendUser(r)).await?;
            eprintln!("suspended {}: their logins ended, and they cannot sign in", sanitize(&user));
        }
        AdminCommand::Unsuspend { user } => {
            let username = user.trim_start_matches('@').to_owned();
            let r = v1::SuspendUserRequest { username, suspended: false, reason: String::new() };
            call(&client, Request::SuspendUser(r)).await?;
            eprintln!("{} may sign in again", sanitize(&user));
        }
        AdminCommand::DeleteAccount { user, remove_messages, .. } => {
            let what = if remove_messages { "the account and every message it wrote" } else { "the account" };
            let username = user.trim_start_matches('@').to_owned();
            let r = v1::DeleteAccountRequest { username, remove_messages };
            let R::User(tomb) = call(&client, Request::DeleteAccount(r)).await? else {
                bail!("the server answered with something other than the account");
            };
            eprintln!(
                "deleted {what} of {}; what is left shows as {}",
                sanitize(&user),
                sanitize(&tomb.username)
            );
        }
    }
    client.close().await;
    Ok(())
}

async fn call(client: &Client, request: Request) -> Result<R> {
    Ok(client.request(request).await?)
}

pub async fn role(ctx: Ctx, command: RoleCommand) -> Result<()> {
    if let RoleCommand::Permissions = command {
        for (name, _) in Permissions::all().iter_names() {
            println!("{}", name.to_ascii_lowercase());
        }
        return Ok(());
    }
    let (client, ready, _) = session(&ctx).await?;
    match command {
        RoleCommand::Permissions => unreachable!("answered above"),
        RoleCommand::List { community, json } => {
            for r in &find_community(&ready, &community)?.roles {
                print_role(r, json.json);
            }
        }
        RoleCommand::Create { community, name, permissions, rank, json } => {
            let c = find_community(&ready, &community)?;
            let permissions = parse_permissions(&permissions)?.bits();
            let request = v1::CreateRoleRequest { community_id: c.id, name, permissions, rank };
            let R::Role(r) = call(&client, Request::CreateRole(request)).await? else {
                bail!("unexpected answer")
            };
            print_role(&r, json.json);
        }
        RoleCommand::Edit { community, role, name, permissions, rank, json } => {
            let c = find_community(&ready, &community)?;
            let r = find_role(c, &role)?;
            let request = v1::UpdateRoleRequest {
                community_id: c.id,
                role_id: r.id,
                name,
                permissions: permissions.as_deref().map(parse_permissions).transpose()?.map(|p| p.bits()),
                rank,
            };
            let R::Role(r) = call(&client, Request::UpdateRole(request)).await? else {
                bail!("unexpected answer")
            };
            print_role(&r, json.json);
        }
        RoleCommand::Delete { community, role } => {
            let c = find_community(&ready, &community)?;
            let r = find_role(c, &role)?;
            call(&client, Request::DeleteRole(v1::DeleteRoleRequest { community_id: c.id, role_id: r.id }))
                .await?;
            eprintln!("deleted role {}", sanitize(&r.name));
        }
        RoleCommand::Grant { community, user, role } => {
            change_roles(&client, &ready, &community, &user, &role, true).await?;
        }
        RoleCommand::Revoke { community, user, role } => {
            change_roles(&client, &ready, &community, &user, &role, false).await?;
        }
    }
    client.close().await;
    Ok(())
}

async fn change_roles(
    client: &Client,
    ready: &v1::Ready,
    community: &str,
    user: &str,
    role: &str,
    grant: bool,
) -> Result<()> {
    let c = find_community(ready, community)?;
    let m = find_member(c, user)?;
    let r = find_role(c, role)?;
    let (add_roles, remove_roles) = if grant { (vec![r.id], vec![]) } else { (vec![], vec![r.id]) };
    let request = v1::UpdateMemberRequest {
        community_id: c.id,
        user_id: m.user.as_ref().map_or(0, |u| u.id),
        nickname: None,
        add_roles,
        remove_roles,
    };
    call(client, Request::UpdateMember(request)).await?;
    let (verb, prep) = if grant { ("gave", "to") } else { ("took", "from") };
    eprintln!("{verb} {} {prep} {}", sanitize(&r.name), sanitize(member_name(m)));
    Ok(())
}

pub async fn override_(ctx: Ctx, command: OverrideCommand) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let (channel, target, allow, deny) = match command {
        OverrideCommand::Set { channel, target, allow, deny } => {
            (channel, target, parse_permissions(&allow)?, parse_permissions(&deny)?)
        }
        OverrideCommand::Clear { channel, target } => {
            (channel, target, Permissions::empty(), Permissions::empty())
        }
    };
    let (c, ch) = find_channel(&ready, &channel)?;
    use v1::permission_override::Target;
    let target = match (&target.role, &target.member) {
        (Some(role), _) => Target::RoleId(find_role(c, role)?.id),
        (_, Some(member)) => Target::UserId(user_id(c, member)?),
        (None, None) => bail!("name a --role or a --member"),
    };
    let request = v1::SetChannelOverrideRequest {
        channel_id: ch.id,
        permission_override: Some(v1::PermissionOverride {
            target: Some(target),
            allow: allow.bits(),
            deny: deny.bits(),
        }),
    };
    let R::Channel(ch) = call(&client, Request::SetChannelOverride(request)).await? else {
        bail!("unexpected answer")
    };
    eprintln!("#{} now has {} override(s)", sanitize(&ch.name), ch.overrides.len());
    client.close().await;
    Ok(())
}

pub async fn members(ctx: Ctx, community: &str, json: bool) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let c = find_community(&ready, community)?;
    let role_name =
        |id: &u64| c.roles.iter().find(|r| r.id == *id).map_or(id.to_string(), |r| r.name.clone());
    for m in &c.members {
        let user = m.user.clone().unwrap_or_default();
        let roles: Vec<String> = m.roles.iter().map(role_name).collect();
        if json {
            print_json(&json!({
                "id": user.id.to_string(), "username": user.username, "display_name": user.display_name,
                "status": user.status_text, "nickname": m.nickname, "roles": roles,
                "owner": user.id == c.owner_id,
                "timeout_until": (m.timeout_until_ms > 0).then(|| rfc3339(m.timeout_until_ms)),
                "joined_at": rfc3339(m.joined_at_ms),
            }));
        } else {
            let mut line = sanitize(&user.username);
            if !m.nickname.is_empty() {
                line.push_str(&format!(" ({})", sanitize(&m.nickname)));
            }
            if user.id == c.owner_id {
                line.push_str("  owner");
            }
            if !roles.is_empty() {
                line.push_str(&format!("  [{}]", sanitize(&roles.join(", "))));
            }
            if m.timeout_until_ms > 0 {
                line.push_str(&format!(
                    "  timed out until {}",
                    crate::output::shown(&kith_proto::time_token(m.timeout_until_ms))
                ));
            }
            if !user.status_text.is_empty() {
                line.push_str(&format!("  — {}", sanitize(&user.status_text)));
            }
            println!("{line}");
        }
    }
    client.close().await;
    Ok(())
}

pub async fn kick(ctx: Ctx, community: &str, user: &str, reason: String) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let c = find_community(&ready, community)?;
    let m = find_member(c, user)?;
    let user_id = m.user.as_ref().map_or(0, |u| u.id);
    call(&client, Request::Kick(v1::KickRequest { community_id: c.id, user_id, reason })).await?;
    eprintln!("kicked {} from {}", sanitize(member_name(m)), sanitize(&c.name));
    client.close().await;
    Ok(())
}

pub async fn ban(ctx: Ctx, args: BanArgs) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let c = find_community(&ready, &args.community)?;
    let user_id = user_id(c, &args.user)?;
    let hours = args.delete_messages.map_or(0, |d| d.as_secs().div_ceil(3600));
    let request = v1::BanRequest {
        community_id: c.id,
        user_id,
        reason: args.reason,
        delete_message_hours: u32::try_from(hours).unwrap_or(u32::MAX),
    };
    call(&client, Request::Ban(request)).await?;
    eprintln!("banned {} from {}", sanitize(&args.user), sanitize(&c.name));
    client.close().await;
    Ok(())
}

/// The bans of a community, for `bans` and for resolving `unban` names.
async fn ban_list(client: &Client, community: u64) -> Result<Vec<v1::Ban>> {
    let R::Bans(list) =
        call(client, Request::ListBans(v1::ListBansRequest { community_id: community })).await?
    else {
        bail!("unexpected answer")
    };
    Ok(list.bans)
}

pub async fn unban(ctx: Ctx, community: &str, user: &str) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let c = find_community(&ready, community)?;
    let bans = ban_list(&client, c.id).await?;
    let wanted = user.trim_start_matches('@').to_lowercase();
    let user_id = bans
        .iter()
        .filter_map(|b| b.user.as_ref())
        .find(|u| u.username.to_lowercase() == wanted || u.id.to_string() == wanted)
        .map(|u| u.id)
        .with_context(|| format!("{} is not banned from {}", sanitize(user), sanitize(&c.name)))?;
    call(&client, Request::Unban(v1::UnbanRequest { community_id: c.id, user_id })).await?;
    eprintln!("unbanned {}", sanitize(user));
    client.close().await;
    Ok(())
}

pub async fn bans(ctx: Ctx, community: &str, json: bool) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let c = find_community(&ready, community)?;
    for b in ban_list(&client, c.id).await? {
        let user = b.user.unwrap_or_default();
        if json {
            print_json(&json!({
                "user_id": user.id.to_string(), "username": user.username, "reason": b.reason,
                "banned_by": b.banned_by.to_string(), "at": rfc3339(b.created_at_ms),
            }));
        } else {
            let reason =
                if b.reason.is_empty() { String::new() } else { format!(": {}", sanitize(&b.reason)) };
            println!("{}  {} {}{reason}", rfc3339(b.created_at_ms), sanitize(&user.username), user.id);
        }
    }
    client.close().await;
    Ok(())
}

pub async fn timeout(
    ctx: Ctx,
    community: &str,
    user: &str,
    duration: std::time::Duration,
    reason: String,
) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let c = find_community(&ready, community)?;
    let m = find_member(c, user)?;
    let request = v1::TimeoutRequest {
        community_id: c.id,
        user_id: m.user.as_ref().map_or(0, |u| u.id),
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        reason,
    };
    let R::Member(m) = call(&client, Request::Timeout(request)).await? else { bail!("unexpected answer") };
    if m.timeout_until_ms == 0 {
        eprintln!("lifted the timeout of {}", sanitize(member_name(&m)));
    } else {
        eprintln!(
            "{} is timed out until {}",
            sanitize(member_name(&m)),
            crate::output::shown(&kith_proto::time_token(m.timeout_until_ms))
        );
    }
    client.close().await;
    Ok(())
}

pub async fn audit(ctx: Ctx, args: AuditArgs) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let c = find_community(&ready, &args.community)?;
    let request =
        v1::AuditLogRequest { community_id: c.id, before: args.before.unwrap_or(0), limit: args.limit };
    let R::AuditLog(page) = call(&client, Request::AuditLog(request)).await? else {
        bail!("unexpected answer")
    };
    // The server names actors and targets; an id is the fallback for
    // something since deleted.
    let named = |name: &str, id: u64| if name.is_empty() { id.to_string() } else { name.to_owned() };
    for e in page.entries {
        let action = v1::AuditAction::try_from(e.action)
            .map_or("unknown".into(), |a| a.as_str_name().trim_start_matches("AUDIT_ACTION_").to_lowercase());
        if args.json.json {
            print_json(&json!({
                "id": e.id.to_string(), "at": rfc3339(e.created_at_ms), "actor_id": e.actor_id.to_string(),
                "actor": named(&e.actor_name, e.actor_id), "action": action,
                "target_id": (e.target_id != 0).then(|| e.target_id.to_string()),
                "target": (e.target_id != 0).then(|| named(&e.target_name, e.target_id)),
                "reason": e.reason, "detail": e.detail,
            }));
        } else {
            let when = crate::output::shown(&kith_proto::time_token(e.created_at_ms));
            let mut line = format!("{when}  {}  {action}", sanitize(&named(&e.actor_name, e.actor_id)));
            if e.target_id != 0 {
                line.push_str(&format!(" {}", sanitize(&named(&e.target_name, e.target_id))));
            }
            if !e.detail.is_empty() {
                line.push_str(&format!("  {}", crate::output::shown(&e.detail)));
            }
            if !e.reason.is_empty() {
                line.push_str(&format!("  (reason: {})", sanitize(&e.reason)));
            }
            println!("{line}");
        }
    }
    client.close().await;
    Ok(())
}

pub async fn nick(ctx: Ctx, community: &str, nickname: String, user: Option<String>) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let c = find_community(&ready, community)?;
    let me = ready.user.as_ref().map_or(0, |u| u.id);
    let user_id = match &user {
        Some(u) => user_id(c, u)?,
        None => me,
    };
    let request = v1::UpdateMemberRequest {
        community_id: c.id,
        user_id,
        nickname: Some(nickname),
        add_roles: vec![],
        remove_roles: vec![],
    };
    let R::Member(m) = call(&client, Request::UpdateMember(request)).await? else {
        bail!("unexpected answer")
    };
    if m.nickname.is_empty() {
        eprintln!("{} has no nickname in {}", sanitize(member_name(&m)), sanitize(&c.name));
    } else {
        eprintln!("{} is {} in {}", sanitize(member_name(&m)), sanitize(&m.nickname), sanitize(&c.name));
    }
    client.close().await;
    Ok(())
}

pub async fn profile(
    ctx: Ctx,
    display_name: Option<String>,
    status: Option<String>,
    json: bool,
) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let user = if display_name.is_none() && status.is_none() {
        ready.user.clone().unwrap_or_default()
    } else {
        let request = v1::UpdateProfileRequest { display_name, status_text: status };
        let R::User(u) = call(&client, Request::UpdateProfile(request)).await? else {
            bail!("unexpected answer")
        };
        u
    };
    if json {
        print_json(&json!({"id": user.id.to_string(), "username": user.username,
                           "display_name": user.display_name, "status": user.status_text}));
    } else {
        println!("{} ({})", sanitize(&user.display_name), sanitize(&user.username));
        if !user.status_text.is_empty() {
            println!("{}", sanitize(&user.status_text));
        }
    }
    client.close().await;
    Ok(())
}
