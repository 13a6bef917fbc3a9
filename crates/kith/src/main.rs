//! `kith`: the server and its command-line clients in one binary.

mod admin;
mod bots;
mod bridge;
mod chat;
mod commands;
mod doctor;
mod output;
mod pipe;
mod profile;
mod serve;
mod social;
mod voice;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, FromArgMatches, Parser, Subcommand};

/// kith: self-hosted chat for friends and family.
///
/// Run `kith serve` on the machine that keeps the data; everyone else runs
/// `kith chat` (or just `kith`, once signed in). The other commands are for
/// scripts and admins; every client command takes --json.
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// Which saved login to use.
    #[arg(long, global = true, env = "KITH_PROFILE", default_value = "default")]
    profile: String,
    /// Where profiles and pinned server identities live [default: ~/.config/kith].
    #[arg(long, global = true, env = "KITH_CONFIG_DIR", value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// How long to wait for the server to answer before saying so (and, for
    /// `send`, trying again), e.g. `5s`.
    #[arg(long, global = true, env = "KITH_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a server (zero configuration: creates its data directory, database and TLS identity).
    Serve(Box<serve::ServeArgs>),
    /// Chat in a full-screen terminal UI; the first run signs you in (`kith chat INVITE` joins too).
    Chat(chat::ChatArgs),
    /// Create an account and save it as a profile.
    Register(commands::RegisterArgs),
    /// Log in to an existing account and save it as a profile.
    Login(commands::LoginArgs),
    /// Revoke this profile's token (or every token of the account) and forget it.
    Logout {
        /// Log out every session of the account, on every device.
        #[arg(long)]
        everywhere: bool,
    },
    /// Show who this profile is logged in as, and what it can see.
    Whoami(Json),
    /// Pin a server's identity deliberately (after it changed): `kith trust
    /// HOST:PORT --fingerprint sha256:…`, the fingerprint its operator confirmed.
    Trust {
        /// `host[:port]`, as in your profile.
        server: String,
        /// The fingerprint to accept; it must be what the server presents now.
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// Create and list communities.
    #[command(subcommand)]
    Community(commands::CommunityCommand),
    /// Create invites to a community.
    #[command(subcommand)]
    Invite(commands::InviteCommand),
    /// Join a community with an invite.
    Join {
        /// An invite: `kith://HOST:PORT/CODE?fp=...` or a bare code.
        invite: String,
        #[command(flatten)]
        json: Json,
    },
    /// Leave a community.
    Leave { community: String },
    /// Create, change and delete channels (`--voice` for a voice channel).
    #[command(subcommand)]
    Channel(commands::ChannelCommand),
    /// Send a message: `kith send Family/general 'hello'`, or `-` to read stdin;
    /// `--file photo.jpg` attaches a file.
    Send(commands::SendArgs),
    /// Edit one of your messages.
    Edit {
        /// `Community/channel`, `@user` or `@group`.
        channel: String,
        id: u64,
        /// The new text, or `-` to read stdin.
        text: String,
        #[command(flatten)]
        json: Json,
    },
    /// Save the files a message carries: `kith download Family/general 123 --out ~/Pictures`.
    Download {
        /// `Community/channel`, `@user` or `@group`.
        channel: String,
        id: u64,
        /// Where to save them (default: here).
        #[arg(long, default_value = ".")]
        out: std::path::PathBuf,
    },
    /// Delete one of your messages.
    Delete {
        /// `Community/channel`, `@user` or `@group`.
        channel: String,
        id: u64,
    },
    /// Print a page of a channel's history, oldest first.
    History(commands::HistoryArgs),
    /// Follow a channel's new, edited and deleted messages until interrupted.
    Tail {
        /// `Community/channel`, `@user` or `@group`.
        channel: String,
        #[command(flatten)]
        json: Json,
    },
    /// List a community's members with their nicknames, roles and timeouts.
    Members {
        community: String,
        #[command(flatten)]
        json: Json,
    },
    /// Create, change, grant and revoke roles.
    #[command(subcommand)]
    Role(admin::RoleCommand),
    /// Allow or deny permissions per channel for a role or a member.
    #[command(subcommand)]
    Override(admin::OverrideCommand),
    /// Remove a member from a community (they may rejoin with an invite).
    Kick {
        community: String,
        user: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove someone from a community for good (until unbanned).
    Ban(admin::BanArgs),
    /// Lift a ban.
    Unban { community: String, user: String },
    /// List a community's bans.
    Bans {
        community: String,
        #[command(flatten)]
        json: Json,
    },
    /// Stop a member from sending or speaking for a while (`0` lifts it): `kith timeout Family bob 10m`.
    Timeout {
        community: String,
        user: String,
        #[arg(value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Read a community's audit log, newest first.
    Audit(admin::AuditArgs),
    /// Set your nickname in a community (`""` clears it), or another member's with --user.
    Nick {
        community: String,
        nickname: String,
        #[arg(long)]
        user: Option<String>,
    },
    /// Show or change your display name and status text.
    Profile {
        #[arg(long)]
        display_name: Option<String>,
        /// Free text shown next to your name (`""` clears it).
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Your direct conversations and groups, with unread counts.
    Dms(Json),
    /// Start, grow, shrink, rename or leave a group conversation.
    #[command(subcommand)]
    Group(social::GroupCommand),
    /// Set your presence (online, idle, dnd, invisible; kept until changed)
    /// and list who is around.
    Presence {
        #[arg(value_parser = social::parse_status)]
        status: Option<kith_client::proto::PresenceStatus>,
        #[command(flatten)]
        json: Json,
    },
    /// Channels and conversations with unread messages.
    Unread(Json),
    /// Mark a channel or conversation read.
    Read {
        /// `Community/channel`, `@user` or `@group`.
        channel: String,
    },
    /// Tell the others in a channel you are typing (lasts a few seconds).
    Typing {
        /// `Community/channel`, `@user` or `@group`.
        channel: String,
    },
    /// Talk in voice channels without a sound card: play a WAV file, record the others.
    #[command(subcommand)]
    Voice(voice::VoiceCommand),
    /// The protocol on stdin and stdout, for programs without QUIC (a bot in
    /// bash and jq, `ssh host kith bridge`): length-prefixed protobuf
    /// frames, or `--json` for one proto3-JSON object per line.
    Bridge {
        #[arg(long)]
        json: bool,
    },
    /// Copy a server's data directory while it runs: a consistent copy of
    /// the database, the attachments it names (each checked), the server's
    /// identity and settings.
    Backup {
        /// A new (or empty) directory to back up into.
        out: PathBuf,
        /// The server's data directory [default: the platform's, as `kith serve`].
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Write the server's communities, channels, people and every message as
    /// documented JSON (snapshot.json, history/CHANNEL.json) with their
    /// files, while it runs (docs/export.md). Never passwords or tokens.
    Export {
        /// A new (or empty) directory.
        out: PathBuf,
        /// Only this community (by name or id) [default: the whole server,
        /// conversations included].
        #[arg(long)]
        community: Option<String>,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Print a shell completion script: `kith completions bash >
    /// ~/.local/share/bash-completion/completions/kith` (zsh: into a
    /// directory on $fpath as `_kith`; fish: ~/.config/fish/completions/kith.fish).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (`kith man | man -l -`), or write one page per
    /// command into a directory (`kith man --out /usr/local/share/man/man1`).
    Man {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Check a server's setup and say what to fix: its data directory
    /// (permissions, database integrity and schema, disk space, certificate
    /// validity), its settings, whether it answers locally and at its public
    /// address, and its backups. Run on the server's machine.
    Doctor {
        #[arg(long)]
        data: Option<PathBuf>,
        /// The settings file [default: DATA/kith.toml].
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The server owner's administration: password resets, suspensions.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Bring an export into a stopped server: kith's own, or Discord's (--discord).
    ///
    /// A kith export keeps its ids and times, so a community can move hosts;
    /// --discord reads DiscordChatExporter's JSON. Running it twice changes
    /// nothing; a damaged export is refused whole. Imported people sign in
    /// with a code from `kith admin reset-password`.
    Import {
        /// The export's directory (for --discord, a directory of .json
        /// files or one file).
        dir: PathBuf,
        /// The export is DiscordChatExporter's JSON.
        #[arg(long)]
        discord: bool,
        /// Who owns the communities a Discord import makes [default: the
        /// server owner].
        #[arg(long, requires = "discord", value_name = "USER")]
        owner: Option<String>,
        /// Give someone in the import another name here: `--rename alice=alice_k`.
        #[arg(long, value_name = "OLD=NEW", value_parser = parse_rename)]
        rename: Vec<(String, String)>,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Put a backup in place of a data directory, with the server stopped;
    /// a damaged or foreign backup is refused, and what was there is kept
    /// aside.
    Restore {
        backup: PathBuf,
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Stream bytes to someone through the server, never stored: `kith pipe
    /// @bob < photos.tar`; they run `kith pipe --accept alice > photos.tar`.
    Pipe {
        /// `@user` to send stdin to.
        #[arg(conflicts_with = "accept")]
        to: Option<String>,
        /// Take what `USER` pipes to you, onto stdout.
        #[arg(long, value_name = "USER")]
        accept: Option<String>,
        /// What it is, for the receiver (e.g. a file name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Incoming webhooks: a URL that posts in a channel.
    #[command(subcommand)]
    Webhook(bots::WebhookCommand),
    /// Make bots and replace their tokens; list their slash commands.
    #[command(subcommand)]
    Bot(bots::BotCommand),
    /// Run a bot's slash command: `kith run Family/general /weather city=Paris`
    /// (or `city:Paris`, or just `Paris`); prints its answer.
    Run {
        /// `Community/channel`.
        channel: String,
        /// The command, with or without its `/`.
        command: String,
        /// Its options: `name=value`, `name:value`, or bare values in order.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        options: Vec<String>,
        /// The bot, when several offer the command.
        #[arg(long)]
        bot: Option<String>,
        #[command(flatten)]
        json: Json,
    },
}

#[derive(Debug, Args, Clone, Copy)]
pub struct Json {
    /// Print JSON (one object per line for streams) instead of text.
    #[arg(long)]
    json: bool,
}

/// The command line, with the client-only global flags hidden from the
/// server's help (they are accepted there, and ignored).
fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    // Propagates the global flags into every subcommand first.
    cmd.build();
    let client_only = ["profile", "config_dir", "timeout"];
    // `mut_args`, not `mut_arg`: the latter rebuilds a built arg and loses
    // its settings (clap 4.6).
    let hide = |s: clap::Command| {
        s.mut_args(|a| if client_only.contains(&a.get_id().as_str()) { a.hide(true) } else { a })
    };
    cmd.mut_subcommand("serve", hide)
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let serving = matches!(cli.command, Some(Command::Serve(_)));
    // Log lines would tear the full-screen UI; KITH_LOG still turns them on.
    let chatting = matches!(cli.command, None | Some(Command::Chat(_)));
    let default_level = if serving {
        // The WebTransport library warns each time a browser tab closes
        // its session without the closing capsule: routine, not news.
        "info,web_transport_quinn=error"
    } else if chatting {
        "off"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KITH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kith: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A server's reason is untrusted text, and may name a time.
            eprintln!("kith: {}", output::shown(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dirs = || profile::ConfigDir::new(cli.config_dir.clone());
    let ctx = || -> anyhow::Result<commands::Ctx> {
        Ok(commands::Ctx { dir: dirs()?, profile: cli.profile.clone(), timeout: cli.timeout })
    };
    let Some(command) = cli.command else {
        // `kith` alone: the chat, once there is a profile to chat as.
        let ctx = ctx()?;
        if ctx.dir.profile(&ctx.profile).is_err() {
            command().print_help()?;
            println!("\nTo start: `kith chat` (it asks for the server), or `kith serve` to run one.");
            return Ok(());
        }
        return chat::run(ctx, chat::ChatArgs::default()).await;
    };
    match command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Chat(args) => chat::run(ctx()?, args).await,
        Command::Register(args) => commands::register(ctx()?, args).await,
        Command::Login(args) => commands::login(ctx()?, args).await,
        Command::Logout { everywhere } => commands::logout(ctx()?, everywhere).await,
        Command::Whoami(json) => commands::whoami(ctx()?, json.json).await,
        Command::Trust { server, fingerprint } => commands::trust(ctx()?, &server, fingerprint).await,
        Command::Community(c) => commands::community(ctx()?, c).await,
        Command::Invite(c) => commands::invite(ctx()?, c).await,
        Command::Join { invite, json } => commands::join(ctx()?, &invite, json.json).await,
        Command::Leave { community } => commands::leave(ctx()?, &community).await,
        Command::Channel(c) => commands::channel(ctx()?, c).await,
        Command::Send(args) => commands::send(ctx()?, args).await,
        Command::Download { channel, id, out } => commands::download(ctx()?, &channel, id, &out).await,
        Command::Edit { channel, id, text, json } => {
            commands::edit(ctx()?, &channel, id, &text, json.json).await
        }
        Command::Delete { channel, id } => commands::delete(ctx()?, &channel, id).await,
        Command::History(args) => commands::history(ctx()?, args).await,
        Command::Tail { channel, json } => commands::tail(ctx()?, &channel, json.json).await,
        Command::Members { community, json } => admin::members(ctx()?, &community, json.json).await,
        Command::Role(c) => admin::role(ctx()?, c).await,
        Command::Override(c) => admin::override_(ctx()?, c).await,
        Command::Kick { community, user, reason } => admin::kick(ctx()?, &community, &user, reason).await,
        Command::Ban(args) => admin::ban(ctx()?, args).await,
        Command::Unban { community, user } => admin::unban(ctx()?, &community, &user).await,
        Command::Bans { community, json } => admin::bans(ctx()?, &community, json.json).await,
        Command::Timeout { community, user, duration, reason } => {
            admin::timeout(ctx()?, &community, &user, duration, reason).await
        }
        Command::Audit(args) => admin::audit(ctx()?, args).await,
        Command::Nick { community, nickname, user } => admin::nick(ctx()?, &community, nickname, user).await,
        Command::Profile { display_name, status, json } => {
            admin::profile(ctx()?, display_name, status, json.json).await
        }
        Command::Dms(json) => social::dms(ctx()?, json.json).await,
        Command::Group(c) => social::group(ctx()?, c).await,
        Command::Presence { status, json } => social::presence(ctx()?, status, json.json).await,
        Command::Unread(json) => social::unread(ctx()?, json.json).await,
        Command::Read { channel } => social::read(ctx()?, &channel).await,
        Command::Typing { channel } => social::typing(ctx()?, &channel).await,
        Command::Voice(c) => voice::voice(ctx()?, c).await,
        Command::Bot(c) => bots::bot(ctx()?, c).await,
        Command::Webhook(c) => bots::webhook(ctx()?, c).await,
        Command::Pipe { to, accept, name } => pipe::pipe(ctx()?, to, accept, name).await,
        Command::Bridge { json } => bridge::bridge(ctx()?, json).await,
        Command::Backup { out, data } => backup(&serve::data_dir(data)?, &out),
        Command::Export { out, community, data } => {
            export(&serve::data_dir(data)?, &out, community.as_deref())
        }
        Command::Admin(c) => admin::admin(ctx()?, c).await,
        Command::Doctor { data, config } => {
            doctor::run(
                &serve::data_dir(data)?,
                config.as_deref(),
                cli.timeout.min(std::time::Duration::from_secs(5)),
            )
            .await
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut crate::command(), "kith", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            Ok(())
        }
        Command::Man { out } => man(out.as_deref()),
        Command::Import { dir, discord, owner, rename, data } => {
            import(&serve::data_dir(data)?, &dir, discord, owner.as_deref(), &rename)
        }
        Command::Restore { backup, data } => restore(&backup, &serve::data_dir(data)?),
        Command::Run { channel, command, options, bot, json } => {
            bots::run(ctx()?, &channel, &command, &options, bot.as_deref(), json.json).await
        }
    }
}

fn backup(data: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let m = kith_server::backup::backup(data, out)?;
    println!(
        "backed up {} into {}: the database ({}) and {} files ({})",
        data.display(),
        out.display(),
        kith_tui::text::size(m.database_bytes),
        m.files,
        kith_tui::text::size(m.file_bytes)
    );
    Ok(())
}

fn restore(backup: &std::path::Path, data: &std::path::Path) -> anyhow::Result<()> {
    let (m, aside) = kith_server::backup::restore(backup, data)?;
    println!(
        "restored {} (taken {}, {} files) into {}",
        backup.display(),
        output::rfc3339(m.created_at_ms),
        m.files,
        data.display()
    );
    if let Some(aside) = aside {
        println!("what {} held before is in {}", data.display(), aside.display());
    }
    Ok(())
}

fn man(out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let cmd = command();
    match out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            std::io::Write::write_all(&mut std::io::stdout(), &page)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let n = man_pages(&cmd, "", dir)?;
            println!("wrote {n} manual pages into {}", dir.display());
        }
    }
    Ok(())
}

/// `kith.1`, `kith-serve.1`, `kith-role-create.1`, …: one page per command,
/// without clap's `help` subcommands.
fn man_pages(cmd: &clap::Command, parent: &str, dir: &std::path::Path) -> anyhow::Result<usize> {
    let name =
        if parent.is_empty() { cmd.get_name().to_owned() } else { format!("{parent}-{}", cmd.get_name()) };
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).title(&name).render(&mut page)?;
    std::fs::write(dir.join(format!("{name}.1")), page)?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        n += man_pages(sub, &name, dir)?;
    }
    Ok(n)
}

fn parse_rename(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => Ok((from.to_owned(), to.to_owned())),
        _ => Err("give OLD=NEW, e.g. alice=alice_k".to_owned()),
    }
}

fn import(
    data: &std::path::Path,
    dir: &std::path::Path,
    discord: bool,
    owner: Option<&str>,
    renames: &[(String, String)],
) -> anyhow::Result<()> {
    let bar = output::counter("messages");
    let progress = |n| bar.set_position(n);
    let (done, discord) = if discord {
        let report = kith_server::import::discord::import(data, dir, owner, renames, progress)?;
        (report.imported, Some(report))
    } else {
        (kith_server::import::import(data, dir, renames, progress)?, None)
    };
    bar.finish_and_clear();
    println!(
        "imported {} people, {} communities, {} channels, {} messages and {} files into {}",
        done.users,
        done.communities,
        done.channels,
        done.messages,
        done.files,
        data.display()
    );
    if done.present > 0 {
        println!("{} messages were already there, and were left as they are", done.present);
    }
    if let Some(r) = discord {
        if r.skipped > 0 {
            println!(
                "{} messages had neither text nor files (calls, pins, joins) and were left out",
                r.skipped
            );
        }
        if r.missing_files > 0 {
            println!(
                "{} attachments were not next to the export (DiscordChatExporter's --media saves them); \
                 their messages say so",
                r.missing_files
            );
        }
        if r.reactions > 0 {
            println!("{} reactions were left out: kith has none", r.reactions);
        }
    }
    if done.users > 0 {
        println!(
            "imported people have no password yet: give each a code from `kith admin reset-password NAME` \
             (as the server owner, with the server running)"
        );
    }
    Ok(())
}

fn export(data: &std::path::Path, out: &std::path::Path, community: Option<&str>) -> anyhow::Result<()> {
    let bar = output::counter("messages");
    let done = kith_server::export::export(data, out, community, |n| bar.set_position(n))?;
    bar.finish_and_clear();
    println!(
        "exported {} communities, {} channels, {} messages and {} files into {}",
        done.communities,
        done.channels,
        done.messages,
        done.files,
        out.display()
    );
    Ok(())
}
