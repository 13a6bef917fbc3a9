//! The scripting commands. Each connects, authenticates with the profile's
//! token, does one thing, and prints text or (with --json) JSON.

use std::io::Read as _;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kith_client::proto::{self as v1, client_message::Request, event::Body as Ev, reply::Result as R};
use kith_client::{Client, Trust};
use serde_json::json;

use crate::output::{MessageJson, human, print_json, rfc3339, sanitize};
use crate::profile::{ConfigDir, Profile};
use kith_proto::invite::{InviteLink, with_default_port};

#[derive(Debug)]
pub struct Ctx {
    pub dir: ConfigDir,
    pub profile: String,
    /// How long to wait for the server (`--timeout`).
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    username: String,
    /// Server address, `host[:port]` (port 7443 by default). Not needed with --invite.
    #[arg(long)]
    server: Option<String>,
    /// An invite from a member: `kith://HOST:PORT/CODE?fp=...`. Joins its community too.
    #[arg(long, conflicts_with = "setup_code")]
    invite: Option<String>,
    /// The owner setup code the server printed on its first start.
    #[arg(long)]
    setup_code: Option<String>,
    /// Shown instead of the username.
    #[arg(long)]
    display_name: Option<String>,
    /// Read the password from the first line of stdin instead of the terminal.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    json: crate::Json,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    username: String,
    /// Server address, `host[:port]`.
    #[arg(long)]
    server: String,
    /// Read the password from the first line of stdin instead of the terminal.
    #[arg(long)]
    password_stdin: bool,
    /// A bot: read its token (from `kith bot create`) from the first line
    /// of stdin instead of a password.
    #[arg(long, conflicts_with = "password_stdin")]
    token_stdin: bool,
    /// Choose a new password with a one-time code from the server's owner
    /// (`kith admin reset-password`): for an imported account, or a
    /// forgotten password. Ends every other login of the account.
    #[arg(long, conflicts_with = "token_stdin")]
    code: Option<String>,
    #[command(flatten)]
    json: crate::Json,
}

#[derive(Debug, Subcommand)]
pub enum CommunityCommand {
    /// Create a community (with a `general` channel) and print an invite to it.
    Create {
        name: String,
        #[command(flatten)]
        json: crate::Json,
    },
    /// List your communities and their channels.
    List(crate::Json),
}

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create an invite; prints `kith://HOST:PORT/CODE?fp=...`.
    Create {
        community: String,
        /// How many times it can be used (default: unlimited).
        #[arg(long)]
        max_uses: Option<u32>,
        /// How long it stays valid, e.g. `1h`, `7days` (default: forever).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        #[command(flatten)]
        json: crate::Json,
    },
    /// List a community's invites that still work: all of them if you may
    /// ban members, else yours.
    List {
        community: String,
        #[command(flatten)]
        json: crate::Json,
    },
    /// Make an invite stop working (who joined with it stays): yours, or
    /// anyone's if you may ban members.
    Revoke {
        /// The invite, as a link or its code.
        invite: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel: `kith channel create Family/photos --topic '...'`,
    /// or a voice channel: `kith channel create Family/lounge --voice`.
    Create {
        /// `Community/name`.
        channel: String,
        #[arg(long, default_value = "")]
        topic: String,
        /// A voice channel (join it with `kith voice join`).
        #[arg(long)]
        voice: bool,
    },
    /// Rename a channel or change its topic.
    Edit {
        /// `Community/channel`.
        channel: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        topic: Option<String>,
    },
    /// Delete a channel and all its messages.
    Delete {
        /// `Community/channel`.
        channel: String,
    },
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// `Community/channel`, `@user` (a direct conversation) or `@group`.
    channel: String,
    /// The message, or `-` to read it from stdin (may be left out when
    /// files are attached).
    #[arg(default_value = "", required_unless_present = "file")]
    text: String,
    /// Attach a file (repeat for more, up to 10): photos, videos, anything.
    /// A dropped upload continues where it stopped when sent again.
    #[arg(long, value_name = "PATH")]
    file: Vec<std::path::PathBuf>,
    /// Reply to this message id.
    #[arg(long)]
    reply_to: Option<u64>,
    /// Idempotency key: sending again with the same nonce never duplicates
    /// the message (default: random).
    #[arg(long)]
    nonce: Option<String>,
    #[command(flatten)]
    json: crate::Json,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// `Community/channel`, `@user` or `@group`.
    channel: String,
    /// Messages per page (server maximum: 100).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only messages older than this id.
    #[arg(long, conflicts_with_all = ["after", "around"])]
    before: Option<u64>,
    /// Only messages newer than this id.
    #[arg(long, conflicts_with = "around")]
    after: Option<u64>,
    /// Messages around this id.
    #[arg(long)]
    around: Option<u64>,
    #[command(flatten)]
    json: crate::Json,
}

/// Connects, pinning the server's identity on first use and refusing a
/// changed one. An invite's fingerprint counts as a pin.
async fn connect(ctx: &Ctx, server: &str, invite_fp: Option<&str>) -> Result<Client> {
    let dir = &ctx.dir;
    let pinned = dir.pinned(server)?;
    let trust = match (&pinned, invite_fp) {
        (Some(pin), Some(fp)) if pin != fp => bail!(
            "the invite says {server} is {fp}, but {pin} is pinned for it; \
             if the server's identity changed on purpose, remove it from known_servers.toml"
        ),
        (Some(pin), _) => Trust::Pin(pin.clone()),
        (None, Some(fp)) => Trust::Pin(fp.to_owned()),
        (None, None) => Trust::FirstUse,
    };
    let (client, seen) = Client::connect_within(server, trust.clone(), ctx.timeout)
        .await
        .map_err(|e| identity_alarm(&ctx.dir, e))?;
    if pinned.is_none()
        && let Some(fp) = seen.fingerprint
    {
        dir.pin(server, &fp)?;
        if trust == Trust::FirstUse && !seen.ca_valid {
            eprintln!(
                "kith: first connection to {server}; pinned its identity {fp}\n      \
                 (compare with the server's `kith ready` line; a different identity will be refused)"
            );
        }
    }
    Ok(client)
}

/// A changed server identity, said as the alarm it is, with what to do; any
/// other error as it is.
pub(crate) fn identity_alarm(dir: &ConfigDir, e: kith_client::Error) -> anyhow::Error {
    match &e {
        kith_client::Error::IdentityChanged { addr, presented, .. } => {
            anyhow::anyhow!("{}", identity_advice(dir, &e.to_string(), addr, presented))
        }
        _ => e.into(),
    }
}

/// What an identity alarm says beyond the two fingerprints: where the pin
/// lives and how to accept the new identity deliberately.
pub(crate) fn identity_advice(dir: &ConfigDir, alarm: &str, addr: &str, presented: &str) -> String {
    format!(
        "⚠ {alarm}.\nThe pin is in {}. If the operator confirms the new fingerprint, accept it with:\n    \
         kith trust {addr} --fingerprint {presented}",
        dir.known_servers().display()
    )
}

/// Connects and authenticates as the current profile.
pub(crate) async fn session(ctx: &Ctx) -> Result<(Client, v1::Ready, Profile)> {
    let profile = ctx.dir.profile(&ctx.profile)?;
    let client = connect(ctx, &profile.server, None).await?;
    let mut ready = client.authenticate(&profile.token).await.map_err(|e| signed_out(e, ctx, &profile))?;
    // Commands find people by name in the snapshot: a large community's
    // lists only who is around, so the rest is paged in.
    client.complete_members(&mut ready).await.context("listing the members of a large community")?;
    Ok((client, ready, profile))
}

/// A saved token the server no longer takes was signed out (a logout
/// elsewhere, a password reset): say so, and how to sign in again.
fn signed_out(e: kith_client::Error, ctx: &Ctx, profile: &Profile) -> anyhow::Error {
    if matches!(e, kith_client::Error::IdentityChanged { .. }) {
        return identity_alarm(&ctx.dir, e);
    }
    if e.code() == Some(v1::ErrorCode::BadCredentials) {
        let flag =
            if ctx.profile == "default" { String::new() } else { format!(" --profile {}", ctx.profile) };
        return anyhow::anyhow!(
            "your saved login as {} on {} was signed out (a logout elsewhere, or a new password): \
             log in again with `kith login {}{flag} --server {}`",
            profile.username,
            profile.server,
            profile.username,
            profile.server
        );
    }
    anyhow::Error::new(e).context(format!("logging in as {} (profile {:?})", profile.username, ctx.profile))
}

fn read_password(from_stdin: bool, confirm: bool) -> Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    let prompt = if confirm {
        format!("Choose a password ({}): ", kith_proto::limits::PASSWORD_RULES)
    } else {
        "Password: ".to_owned()
    };
    let password =
        rpassword::prompt_password(prompt).context("no terminal to ask on; use --password-stdin")?;
    if confirm && rpassword::prompt_password("Password (again): ")? != password {
        bail!("the passwords differ");
    }
    Ok(password)
}

fn print_ready(ready: &v1::Ready, server: &str, json: bool) {
    let user = ready.user.clone().unwrap_or_default();
    if json {
        print_json(&json!({
            "user": user.username, "user_id": user.id.to_string(), "server": server,
            "server_owner": ready.server_owner,
            "communities": ready.communities.iter().map(community_json).collect::<Vec<_>>(),
        }));
    } else {
        let owner = if ready.server_owner { " (server owner)" } else { "" };
        println!("{} on {server}{owner}", sanitize(&user.username));
        for c in &ready.communities {
            print_community(c);
        }
    }
}

fn community_json(c: &v1::Community) -> serde_json::Value {
    json!({
        "id": c.id.to_string(), "name": c.name, "owner_id": c.owner_id.to_string(),
        "channels": c.channels.iter().map(|ch| json!({"id": ch.id.to_string(), "name": ch.name, "topic": ch.topic})).collect::<Vec<_>>(),
        "members": c.members.iter().map(|m| m.user.as_ref().map(|u| u.username.clone()).unwrap_or_default()).collect::<Vec<_>>(),
        "permissions": kith_core::Permissions::from_wire(c.permissions).names(),
    })
}

fn print_community(c: &v1::Community) {
    println!("{}  ({} members)", sanitize(&c.name), c.members.len());
    for ch in &c.channels {
        let topic =
            if ch.topic.is_empty() { String::new() } else { format!("  — {}", sanitize(&ch.topic)) };
        println!("  #{}{topic}", sanitize(&ch.name));
    }
}

/// Saves a fresh login as the current profile and shows it.
async fn logged_in(ctx: &Ctx, client: Client, server: &str, ready: &v1::Ready, json: bool) -> Result<()> {
    let username = ready.user.as_ref().map(|u| u.username.clone()).unwrap_or_default();
    let profile = Profile { server: server.to_owned(), username, token: ready.token.clone() };
    ctx.dir.save_profile(&ctx.profile, profile)?;
    print_ready(ready, server, json);
    client.close().await;
    Ok(())
}

pub async fn register(ctx: Ctx, args: RegisterArgs) -> Result<()> {
    let invite = args.invite.as_deref().map(InviteLink::parse).transpose()?;
    let server = match (&args.server, invite.as_ref().and_then(|i| i.server.clone())) {
        (Some(s), _) => with_default_port(s),
        (None, Some(s)) => s,
        (None, None) if invite.is_some() => bail!(
            "a bare invite code does not say which server it is for: add --server HOST[:PORT], \
             or pass the whole kith:// link"
        ),
        (None, None) => bail!("which server? pass --server HOST[:PORT], or --invite with a kith:// link"),
    };
    let password = read_password(args.password_stdin, !args.password_stdin)?;
    if let Some(problem) = kith_proto::limits::password_problem(&password) {
        bail!("{problem} ({})", kith_proto::limits::PASSWORD_RULES);
    }
    let client = connect(&ctx, &server, invite.as_ref().and_then(|i| i.fingerprint.as_deref())).await?;
    let credential = match (&invite, args.setup_code) {
        (Some(i), _) => Some(v1::register_request::Credential::InviteCode(i.code.clone())),
        (None, Some(code)) => Some(v1::register_request::Credential::SetupCode(code)),
        (None, None) => None,
    };
    let request = v1::RegisterRequest {
        username: args.username.clone(),
        password,
        display_name: args.display_name.unwrap_or_default(),
        credential,
    };
    let R::Ready(ready) = client.request(Request::Register(request)).await? else {
        bail!("unexpected answer")
    };
    logged_in(&ctx, client, &server, &ready, args.json.json).await
}

pub async fn login(ctx: Ctx, args: LoginArgs) -> Result<()> {
    let server = with_default_port(&args.server);
    if args.token_stdin {
        let mut token = String::new();
        std::io::stdin().read_line(&mut token)?;
        let token = token.trim();
        let client = connect(&ctx, &server, None).await?;
        let mut ready = client.authenticate(token).await?;
        let name = ready.user.as_ref().map(|u| u.username.clone()).unwrap_or_default();
        if !name.eq_ignore_ascii_case(&args.username) {
            client.close().await;
            bail!("that token is {}'s, not {}'s", sanitize(&name), sanitize(&args.username));
        }
        // Authenticating hands out no new token: the profile keeps this one.
        ready.token = token.to_owned();
        return logged_in(&ctx, client, &server, &ready, args.json.json).await;
    }
    let password = read_password(args.password_stdin, args.code.is_some())?;
    // No account can have it; sending it would only overflow a frame.
    if password.len() > kith_proto::limits::PASSWORD_MAX_BYTES {
        bail!(
            "that password is longer than any kith password can be ({} bytes at most)",
            kith_proto::limits::PASSWORD_MAX_BYTES
        );
    }
    let client = connect(&ctx, &server, None).await?;
    let ready = match &args.code {
        Some(code) => client.redeem_reset_code(&args.username, code, &password).await.map_err(|e| {
            if e.code() == Some(v1::ErrorCode::BadCredentials) {
                anyhow::anyhow!(
                    "that code is not {}'s, was used already, or has expired (codes last a day): ask the \
                     server's owner for a new one",
                    sanitize(&args.username)
                )
            } else {
                e.into()
            }
        })?,
        None => client.login(&args.username, &password).await?,
    };
    logged_in(&ctx, client, &server, &ready, args.json.json).await
}

pub async fn logout(ctx: Ctx, everywhere: bool) -> Result<()> {
    let (client, _, _) = session(&ctx).await?;
    client.request(Request::Logout(v1::LogoutRequest { everywhere })).await?;
    ctx.dir.forget_profile(&ctx.profile)?;
    eprintln!("logged out");
    Ok(())
}

/// `kith trust`: replaces a pin with the identity the server presents now,
/// only if the user names that identity (checked against the server, so a
/// typo pins nothing).
pub async fn trust(ctx: Ctx, server: &str, fingerprint: Option<String>) -> Result<()> {
    let server = with_default_port(server);
    let (client, seen) = Client::connect_within(&server, Trust::FirstUse, ctx.timeout).await?;
    client.close().await;
    let presented = seen.fingerprint.context("the server presented no certificate")?;
    let pinned = ctx.dir.pinned(&server)?;
    let Some(wanted) = fingerprint else {
        bail!(
            "{server} presents {presented}{}.\nCompare it with what the server's operator sees, then run:\n    \
             kith trust {server} --fingerprint {presented}",
            pinned.as_ref().map_or(String::new(), |p| format!(" (pinned: {p})"))
        );
    };
    if wanted.trim().to_ascii_lowercase() != presented {
        bail!("{server} presents {presented}, not {}; nothing was changed", sanitize(&wanted));
    }
    ctx.dir.pin(&server, &presented)?;
    match pinned {
        Some(old) if old != presented => println!("{server} is now pinned as {presented} (was {old})"),
        _ => println!("{server} is pinned as {presented}"),
    }
    Ok(())
}

pub async fn whoami(ctx: Ctx, json: bool) -> Result<()> {
    let (client, ready, profile) = session(&ctx).await?;
    print_ready(&ready, &profile.server, json);
    client.close().await;
    Ok(())
}

pub(crate) fn find_community<'a>(ready: &'a v1::Ready, spec: &str) -> Result<&'a v1::Community> {
    let matches: Vec<_> = ready
        .communities
        .iter()
        .filter(|c| c.name.to_lowercase() == spec.to_lowercase() || c.id.to_string() == spec)
        .collect();
    match matches[..] {
        [one] => Ok(one),
        [] => bail!("you are in no community called {:?}", sanitize(spec)),
        _ => bail!(
            "several communities are called {:?}; use an id: {}",
            sanitize(spec),
            matches.iter().map(|c| c.id.to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Resolves `Community/channel` (names or ids).
pub(crate) fn find_channel<'a>(
    ready: &'a v1::Ready,
    spec: &str,
) -> Result<(&'a v1::Community, &'a v1::Channel)> {
    let Some((community, channel)) = spec.rsplit_once('/') else {
        bail!("name a channel as Community/channel, e.g. Family/general");
    };
    let c = find_community(ready, community)?;
    let channel = channel.trim_start_matches('#');
    let ch = c
        .channels
        .iter()
        .find(|ch| ch.name == channel.to_lowercase() || ch.id.to_string() == channel)
        .with_context(|| format!("{} has no channel #{}", sanitize(&c.name), sanitize(channel)))?;
    Ok((c, ch))
}

async fn create_invite(
    client: &Client,
    profile: &Profile,
    dir: &ConfigDir,
    community_id: u64,
    max_uses: Option<u32>,
    expires: Option<std::time::Duration>,
) -> Result<(v1::Invite, String)> {
    let request = v1::CreateInviteRequest {
        community_id,
        max_uses: max_uses.unwrap_or(0),
        expires_in_ms: expires.map_or(0, |d| d.as_millis() as u64),
    };
    let R::Invite(invite) = client.request(Request::CreateInvite(request)).await? else {
        bail!("unexpected answer")
    };
    // The server's link names its public address; an older server's is
    // built from the address this profile uses.
    let text = if invite.link.is_empty() {
        let fp = dir.pinned(&profile.server)?;
        InviteLink::render(&profile.server, &invite.code, fp.as_deref())
    } else {
        sanitize(&invite.link)
    };
    if InviteLink::parse(&text).is_ok_and(|l| l.is_local()) {
        eprintln!(
            "kith: this invite names this machine, so it works only here; the server's operator can \
             set --public-address to the name others reach it by"
        );
    }
    Ok((invite, text))
}

pub async fn community(ctx: Ctx, command: CommunityCommand) -> Result<()> {
    let (client, ready, profile) = session(&ctx).await?;
    match command {
        CommunityCommand::Create { name, json } => {
            let request = v1::CreateCommunityRequest { name };
            let R::Community(c) = client.request(Request::CreateCommunity(request)).await? else {
                bail!("unexpected answer")
            };
            let (wire, invite) = create_invite(&client, &profile, &ctx.dir, c.id, None, None).await?;
            if json.json {
                let mut value = community_json(&c);
                value["invite"] = invite.into();
                value["web_invite"] = sanitize(&wire.web_link).into();
                print_json(&value);
            } else {
                println!("created {} with #general. Invite others with:", sanitize(&c.name));
                println!("{invite}");
                print_web_link(&wire);
            }
        }
        CommunityCommand::List(json) => {
            if json.json {
                for c in &ready.communities {
                    print_json(&community_json(c));
                }
            } else {
                ready.communities.iter().for_each(print_community);
            }
        }
    }
    client.close().await;
    Ok(())
}

/// The browser link of an invite, for people with nothing installed.
fn print_web_link(invite: &v1::Invite) {
    if !invite.web_link.is_empty() {
        println!("or, in a browser: {}", sanitize(&invite.web_link));
    }
}

pub async fn invite(ctx: Ctx, command: InviteCommand) -> Result<()> {
    let (community, max_uses, expires, json) = match command {
        InviteCommand::Create { community, max_uses, expires, json } => (community, max_uses, expires, json),
        InviteCommand::List { community, json } => return list_invites(ctx, &community, json.json).await,
        InviteCommand::Revoke { invite } => return revoke_invite(ctx, &invite).await,
    };
    let (client, ready, profile) = session(&ctx).await?;
    let c = find_community(&ready, &community)?;
    let (invite, text) = create_invite(&client, &profile, &ctx.dir, c.id, max_uses, expires).await?;
    if json.json {
        print_json(&json!({
            "invite": text, "web_invite": sanitize(&invite.web_link), "code": invite.code,
            "community": invite.community_name, "max_uses": invite.max_uses,
            "expires_ms": invite.expires_at_ms,
        }));
    } else {
        println!("{text}");
        print_web_link(&invite);
    }
    client.close().await;
    Ok(())
}

async fn list_invites(ctx: Ctx, community: &str, json: bool) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let c = find_community(&ready, community)?;
    let R::Invites(list) =
        client.request(Request::ListInvites(v1::ListInvitesRequest { community_id: c.id })).await?
    else {
        bail!("unexpected answer")
    };
    for i in &list.invites {
        let uses = if i.max_uses == 0 {
            format!("{} uses", i.uses)
        } else {
            format!("{}/{} uses", i.uses, i.max_uses)
        };
        let expires = if i.expires_at_ms == 0 {
            "never expires".to_owned()
        } else {
            format!("expires {}", rfc3339(i.expires_at_ms))
        };
        if json {
            print_json(&json!({
                "code": i.code, "creator": sanitize(&i.creator_name), "uses": i.uses,
                "max_uses": i.max_uses, "expires_ms": i.expires_at_ms, "link": sanitize(&i.link),
            }));
        } else {
            println!("{}  by {}, {uses}, {expires}", i.code, sanitize(&i.creator_name));
        }
    }
    if list.invites.is_empty() && !json {
        eprintln!("no invites that still work in {}", sanitize(&c.name));
    }
    client.close().await;
    Ok(())
}

async fn revoke_invite(ctx: Ctx, invite: &str) -> Result<()> {
    let code = InviteLink::parse(invite)?.code;
    let (client, _, _) = session(&ctx).await?;
    client.request(Request::RevokeInvite(v1::RevokeInviteRequest { code: code.clone() })).await?;
    eprintln!("revoked the invite {code}: it no longer works");
    client.close().await;
    Ok(())
}

pub async fn join(ctx: Ctx, invite: &str, json: bool) -> Result<()> {
    let invite = InviteLink::parse(invite)?;
    let (client, _, profile) = session(&ctx).await?;
    if let Some(server) = &invite.server
        && *server != profile.server
    {
        bail!(
            "that invite is for {server}, but profile {:?} is on {}; use --profile",
            ctx.profile,
            profile.server
        );
    }
    let R::Community(c) =
        client.request(Request::JoinCommunity(v1::JoinCommunityRequest { code: invite.code })).await?
    else {
        bail!("unexpected answer")
    };
    if json {
        print_json(&community_json(&c))
    } else {
        print_community(&c)
    }
    client.close().await;
    Ok(())
}

pub async fn leave(ctx: Ctx, community: &str) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let c = find_community(&ready, community)?;
    client.request(Request::LeaveCommunity(v1::LeaveCommunityRequest { community_id: c.id })).await?;
    eprintln!("left {}", sanitize(&c.name));
    client.close().await;
    Ok(())
}

pub async fn channel(ctx: Ctx, command: ChannelCommand) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    match command {
        ChannelCommand::Create { channel, topic, voice } => {
            let (community, name) = channel.rsplit_once('/').context("name it as Community/name")?;
            let c = find_community(&ready, community)?;
            let kind = if voice { v1::ChannelKind::Voice } else { v1::ChannelKind::Text };
            let request =
                v1::CreateChannelRequest { community_id: c.id, name: name.into(), topic, kind: kind as i32 };
            let R::Channel(ch) = client.request(Request::CreateChannel(request)).await? else {
                bail!("unexpected answer")
            };
            let what = if voice { "voice channel" } else { "channel" };
            println!("created {what} #{} in {}", sanitize(&ch.name), sanitize(&c.name));
        }
        ChannelCommand::Edit { channel, name, topic } => {
            let (_, ch) = find_channel(&ready, &channel)?;
            let request = v1::UpdateChannelRequest { channel_id: ch.id, name, topic };
            let R::Channel(ch) = client.request(Request::UpdateChannel(request)).await? else {
                bail!("unexpected answer")
            };
            println!("#{}: {}", sanitize(&ch.name), sanitize(&ch.topic));
        }
        ChannelCommand::Delete { channel } => {
            let (_, ch) = find_channel(&ready, &channel)?;
            client.request(Request::DeleteChannel(v1::DeleteChannelRequest { channel_id: ch.id })).await?;
            eprintln!("deleted #{}", sanitize(&ch.name));
        }
    }
    client.close().await;
    Ok(())
}

fn text_arg(text: &str) -> Result<String> {
    if text != "-" {
        return Ok(text.to_owned());
    }
    let mut buf = String::new();
    std::io::stdin().read_to_string(&mut buf).context("reading the message from stdin")?;
    Ok(buf.strip_suffix('\n').map(|s| s.strip_suffix('\r').unwrap_or(s)).unwrap_or(&buf).to_owned())
}

fn random_nonce() -> String {
    use rand::Rng;
    let n: u128 = rand::rng().random();
    format!("{n:032x}")
}

/// How long `kith send` keeps trying through a lost connection.
const RESEND_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// Refuses a message the server would refuse, before connecting, with the rule.
fn check_body(body: &str) -> Result<()> {
    let chars = body.chars().count();
    let max = kith_proto::limits::MESSAGE_MAX_CHARS;
    if body.trim().is_empty() {
        bail!("the message is empty");
    }
    if chars > max {
        bail!(
            "the message is {chars} characters long; a message may have at most {max} (split it, or send a file)"
        );
    }
    Ok(())
}

pub async fn send(ctx: Ctx, args: SendArgs) -> Result<()> {
    let body = text_arg(&args.text)?;
    if args.file.is_empty() || !body.is_empty() {
        check_body(&body)?;
    }
    if args.file.len() > kith_proto::limits::MAX_ATTACHMENTS {
        bail!("a message carries at most {} files", kith_proto::limits::MAX_ATTACHMENTS);
    }
    for path in &args.file {
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if !meta.is_file() {
            bail!("{} is not a file", path.display());
        }
    }
    let nonce = args.nonce.clone().unwrap_or_else(random_nonce);
    let deadline = tokio::time::Instant::now() + RESEND_FOR;
    let mut attempt = 0u32;
    // Each try connects afresh and sends with the same nonce: if an earlier
    // try reached the server, the answer is that message, never a second one.
    let m = loop {
        let error = match send_once(&ctx, &args, &body, &nonce).await {
            Ok(m) => break m,
            Err(e) => e,
        };
        let lost = error.downcast_ref::<kith_client::Error>().is_some_and(|e| {
            matches!(
                e,
                kith_client::Error::Closed(_)
                    | kith_client::Error::Unreachable { .. }
                    | kith_client::Error::Timeout { .. }
                    | kith_client::Error::Connect { .. }
            )
        });
        if !lost || tokio::time::Instant::now() >= deadline {
            return Err(error);
        }
        attempt += 1;
        eprintln!(
            "kith: {}; sending again (attempt {})",
            crate::output::shown(&format!("{error:#}")),
            attempt + 1
        );
        tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt.min(4)))).await;
    };
    if args.json.json {
        print_json(&MessageJson::new("message", &args.channel, &m))
    } else {
        println!("{}", m.id)
    }
    Ok(())
}

/// One connection's try at a send, waiting out rate limits as asked.
async fn send_once(ctx: &Ctx, args: &SendArgs, body: &str, nonce: &str) -> Result<v1::Message> {
    let (client, ready, _) = session(ctx).await?;
    let (ch, _) = crate::social::resolve(&client, &ready, &args.channel).await?;
    let mut uploads = Vec::with_capacity(args.file.len());
    // Said with every file, so that a message too big is refused before
    // the first byte goes out.
    let message_bytes: u64 =
        args.file.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    for path in &args.file {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let bar = crate::output::progress(&name);
        let mut first = true;
        let key = client.upload(ch.id, path, message_bytes, |sent, total| {
            if std::mem::take(&mut first) && sent > 0 && sent < total {
                bar.suspend(|| {
                    eprintln!(
                        "{}: continuing from {} of {}",
                        sanitize(&name),
                        kith_tui::text::size(sent),
                        kith_tui::text::size(total)
                    )
                });
            }
            bar.set_length(total);
            bar.set_position(sent);
        });
        let key = key.await.inspect_err(|_| bar.abandon())?;
        bar.finish();
        uploads.push(key);
    }
    let request = v1::SendMessageRequest {
        channel_id: ch.id,
        body: body.to_owned(),
        nonce: nonce.to_owned(),
        reply_to: args.reply_to.unwrap_or(0),
        uploads,
    };
    // Scripts send in loops: when told to slow down, wait as asked and send
    // again (the nonce makes the retry safe).
    let mut waits = 0;
    let answer = loop {
        match client.request_within(Request::SendMessage(request.clone()), ctx.timeout).await {
            Err(e) if waits < 10 && e.retry_after().is_some() => {
                waits += 1;
                tokio::time::sleep(e.retry_after().unwrap_or_default()).await;
            }
            answer => break answer?,
        }
    };
    client.close().await;
    let R::Message(m) = answer else { bail!("unexpected answer") };
    Ok(m)
}

/// Fetches what message `id` carries into `out` (a file name already there
/// is not overwritten: the copy gets a number), with progress, checking
/// each file's BLAKE3. Prints each file's path.
pub async fn download(ctx: Ctx, channel: &str, id: u64, out: &std::path::Path) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let (ch, _) = crate::social::resolve(&client, &ready, channel).await?;
    let access = client.open_attachments(ch.id, id).await?;
    if access.attachments.is_empty() {
        bail!("message {id} carries no files");
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    for (index, a) in access.attachments.iter().enumerate() {
        // The server cleaned the name; clean it again here, as a path.
        let name = kith_core::text::FileName::clean(&a.name).0;
        let hash: String = a.blake3.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let partial = out.join(format!(".{name}.{hash}.part"));
        let bar = crate::output::progress(&name);
        let fetched = client.download(&access, index as u32, &partial, |got, total| {
            bar.set_length(total);
            bar.set_position(got);
        });
        fetched.await.inspect_err(|_| bar.abandon())?;
        bar.finish();
        let target = unused(&out.join(&name));
        std::fs::rename(&partial, &target).with_context(|| format!("{}", target.display()))?;
        println!("{}", sanitize(&target.display().to_string()));
    }
    client.close().await;
    Ok(())
}

/// `path`, or `name (1).ext`, `name (2).ext`… if it exists.
fn unused(path: &std::path::Path) -> std::path::PathBuf {
    if !path.exists() {
        return path.to_owned();
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    (1..)
        .map(|n| path.with_file_name(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .expect("some number is free")
}

pub async fn edit(ctx: Ctx, channel: &str, id: u64, text: &str, json: bool) -> Result<()> {
    let body = text_arg(text)?;
    check_body(&body)?;
    let (client, ready, _) = session(&ctx).await?;
    let (ch, _) = crate::social::resolve(&client, &ready, channel).await?;
    let request = v1::EditMessageRequest { channel_id: ch.id, message_id: id, body };
    let R::Message(m) = client.request(Request::EditMessage(request)).await? else {
        bail!("unexpected answer")
    };
    if json {
        print_json(&MessageJson::new("edit", channel, &m))
    } else {
        println!("{}", human(&m))
    }
    client.close().await;
    Ok(())
}

pub async fn delete(ctx: Ctx, channel: &str, id: u64) -> Result<()> {
    let (client, ready, _) = session(&ctx).await?;
    let (ch, _) = crate::social::resolve(&client, &ready, channel).await?;
    client
        .request(Request::DeleteMessage(v1::DeleteMessageRequest { channel_id: ch.id, message_id: id }))
        .await?;
    client.close().await;
    Ok(())
}

pub async fn history(ctx: Ctx, args: HistoryArgs) -> Result<()> {
    use v1::history_request::Anchor;
    let (client, ready, _) = session(&ctx).await?;
    let (ch, _) = crate::social::resolve(&client, &ready, &args.channel).await?;
    let anchor = match (args.before, args.after, args.around) {
        (Some(id), _, _) => Some(Anchor::Before(id)),
        (_, Some(id), _) => Some(Anchor::After(id)),
        (_, _, Some(id)) => Some(Anchor::Around(id)),
        _ => None,
    };
    for m in client.history(ch.id, anchor, args.limit).await? {
        if args.json.json {
            print_json(&MessageJson::new("message", &args.channel, &m))
        } else {
            println!("{}", human(&m))
        }
    }
    client.close().await;
    Ok(())
}

/// A session that reconnects and resumes by itself, as the current profile.
pub(crate) async fn lasting_session(ctx: &Ctx) -> Result<(kith_client::Session, v1::Ready, Profile)> {
    let profile = ctx.dir.profile(&ctx.profile)?;
    // Registering or logging in pinned the server; if the pin was removed,
    // pin it the way every one-shot command does before keeping a session.
    if ctx.dir.pinned(&profile.server)?.is_none() {
        connect(ctx, &profile.server, None).await?.close().await;
    }
    let pin = ctx.dir.pinned(&profile.server)?.context("the server's identity could not be pinned")?;
    let (session, ready) =
        start_session(ctx, &profile.server, &pin, &profile.token).await.map_err(|e| match e
            .downcast::<kith_client::Error>()
        {
            Ok(e) => signed_out(e, ctx, &profile),
            Err(e) => e.context(format!("logging in as {} (profile {:?})", profile.username, ctx.profile)),
        })?;
    Ok((session, ready, profile))
}

/// Starts a resuming session with a pinned server identity.
pub(crate) async fn start_session(
    ctx: &Ctx,
    server: &str,
    pin: &str,
    token: &str,
) -> Result<(kith_client::Session, v1::Ready)> {
    let remote = tokio::net::lookup_host(server).await?.next().context("cannot resolve the server")?;
    let mut connector = kith_client::Connector::new(Trust::Pin(pin.to_owned()), remote.is_ipv6())?;
    connector.set_connect_timeout(ctx.timeout);
    Ok(kith_client::Session::start(connector, server, token, Default::default()).await?)
}

pub async fn tail(ctx: Ctx, channel: &str, json: bool) -> Result<()> {
    let (session, ready, _) = lasting_session(&ctx).await?;
    let (ch, community) = crate::social::resolve(&session.client(), &ready, channel).await?;
    let id = ch.id;
    // Where the tail starts: a lost session is caught up from here on.
    let mut last_seen = session.client().history(id, None, 1).await?.last().map(|m| m.id);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let update = tokio::select! {
            _ = &mut interrupted => break,
            update = session.next_update() => update,
        };
        let event = match update {
            None => bail!("the session ended"),
            Some(kith_client::Update::Ended { reason, identity: Some(change) }) => {
                bail!("{}", identity_advice(&ctx.dir, &reason, &change.addr, &change.presented))
            }
            Some(kith_client::Update::Ended { reason, identity: None }) => {
                bail!("the session ended: {reason}")
            }
            Some(kith_client::Update::Reconnecting { attempt, delay, reason }) => {
                if attempt == 0 {
                    eprintln!("kith: connection lost ({}); reconnecting", sanitize(&reason));
                }
                tracing::debug!(attempt, ?delay, "reconnecting");
                continue;
            }
            Some(kith_client::Update::Resumed { replayed }) => {
                eprintln!("kith: reconnected; {replayed} missed events delivered");
                continue;
            }
            Some(kith_client::Update::Reset(_)) => {
                // The server could not replay what we missed: read it from
                // history, page after page, until caught up. Never a gap.
                eprintln!("kith: reconnected with a fresh session; catching up from history");
                let mut caught = 0;
                loop {
                    let anchor = last_seen.map(v1::history_request::Anchor::After);
                    let page = session.client().history(id, anchor, 100).await?;
                    for m in &page {
                        print_message("message", channel, m, json);
                        last_seen = Some(m.id);
                    }
                    caught += page.len();
                    if page.len() < 100 {
                        break;
                    }
                }
                eprintln!("kith: caught up {caught} messages");
                use std::io::Write as _;
                std::io::stdout().flush()?;
                continue;
            }
            Some(kith_client::Update::Event(event)) => event,
        };
        match event.body {
            Some(Ev::MessageCreated(m)) if m.channel_id == id => {
                // Already printed while catching up.
                if last_seen.is_some_and(|seen| m.id <= seen) {
                    continue;
                }
                last_seen = Some(m.id);
                print_message("message", channel, &m, json);
            }
            Some(Ev::MessageUpdated(m)) if m.channel_id == id => print_message("edit", channel, &m, json),
            Some(Ev::MessageDeleted(d)) if d.channel_id == id => {
                if json {
                    print_json(
                        &json!({"type": "delete", "id": d.message_id.to_string(), "channel": channel}),
                    );
                } else {
                    println!("(message {} deleted)", d.message_id);
                }
            }
            Some(Ev::ChannelDeleted(d)) if d.channel_id == id => bail!("the channel was deleted"),
            Some(Ev::CommunityUpdated(c)) if c.id == community && c.channels.iter().all(|ch| ch.id != id) => {
                bail!("you may no longer see this channel")
            }
            Some(Ev::CommunityLeft(l)) if l.community_id == community && community != 0 => {
                bail!("you are no longer in this community")
            }
            // Scripts may want to show "… is typing"; people reading text do not.
            Some(Ev::TypingStarted(t)) if t.channel_id == id && json => print_json(&json!({
                "type": "typing",
                "channel": channel,
                "user_id": t.user_id.to_string(),
                "user": username(&ready, t.user_id),
                "until": crate::output::rfc3339(t.until_ms),
            })),
            _ => continue,
        }
        // Scripts read line by line; don't let output sit in a buffer.
        use std::io::Write as _;
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// A user's name from what the snapshot shows (members, conversation
/// participants), if it shows them.
fn username(ready: &v1::Ready, user: u64) -> Option<String> {
    let members = ready.communities.iter().flat_map(|c| c.members.iter().filter_map(|m| m.user.as_ref()));
    let recipients = ready.direct_channels.iter().flat_map(|d| d.recipients.iter());
    members.chain(recipients).find(|u| u.id == user).map(|u| u.username.clone())
}

fn print_message(kind: &'static str, channel: &str, m: &v1::Message, json: bool) {
    if json { print_json(&MessageJson::new(kind, channel, m)) } else { println!("{}", human(m)) }
}
