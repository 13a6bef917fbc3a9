//! `kith serve`: configuration from flags, environment and a TOML file (in
//! that order of precedence), then the server until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use kith_core::rate::RateLimit;
use kith_server::telnet::{GuestAccess, TelnetConfig};
use kith_server::{Config, Limits, Server, Sync};
use serde::Deserialize;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// UDP address for QUIC [default: [::]:7443]. Port 0 picks a free port.
    #[arg(long, env = "KITH_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data directory: database and TLS identity [default: ~/.local/share/kith].
    #[arg(long, env = "KITH_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// TOML config file [default: DATA/kith.toml if it exists]. Keys: listen,
    /// open_registration, tls_cert, tls_key, sync, and [limits] and [telnet]
    /// tables (see the README).
    #[arg(long, env = "KITH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Let anyone register without an invite (once an owner exists).
    #[arg(long, env = "KITH_OPEN_REGISTRATION")]
    open_registration: bool,
    /// PEM certificate chain to use instead of the generated identity (with --tls-key).
    #[arg(long, env = "KITH_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "KITH_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How hard commits wait for the disk: `full` (fsync each commit; survives
    /// power loss) or `normal` (survives a crash of kith, not of the machine)
    /// [default: full].
    #[arg(long, env = "KITH_SYNC", value_name = "MODE", value_parser = parse_sync)]
    sync: Option<Sync>,
    /// Serve the chat to plain telnet clients on this TCP address (e.g.
    /// 127.0.0.1:2323). Telnet is unencrypted: only loopback, unless
    /// --telnet-public.
    #[arg(long, env = "KITH_TELNET", value_name = "ADDR")]
    telnet: Option<SocketAddr>,
    /// Allow --telnet on a non-loopback address, knowing that what telnet users
    /// type (passwords too) crosses the network in clear.
    #[arg(long, env = "KITH_TELNET_PUBLIC")]
    telnet_public: bool,
    /// Let telnet users in without an account, as guest-N: `read-only`, or
    /// `chat` (they may write, at the guest message rate). Needs
    /// --telnet-guest-community.
    #[arg(long, env = "KITH_TELNET_GUESTS", value_name = "MODE", value_parser = parse_guests)]
    telnet_guests: Option<GuestMode>,
    /// The community telnet guests join (by name).
    #[arg(long, env = "KITH_TELNET_GUEST_COMMUNITY", value_name = "NAME")]
    telnet_guest_community: Option<String>,
    /// Offer telnet users guest access only: no password sign-in (nothing
    /// secret then crosses the network in clear).
    #[arg(long, env = "KITH_TELNET_NO_PASSWORDS")]
    telnet_no_passwords: bool,
    /// The address people elsewhere reach this server at, `HOST[:PORT]`
    /// (e.g. chat.example.org); every invite names it [default: the address
    /// this machine uses to reach the network].
    #[arg(long, env = "KITH_PUBLIC_ADDRESS", value_name = "HOST[:PORT]")]
    public_address: Option<String>,
    /// Who may create communities: `everyone` or `owner` (the server owner
    /// only) [default: everyone].
    #[arg(long, env = "KITH_COMMUNITY_CREATION", value_name = "WHO", value_parser = parse_creation)]
    community_creation: Option<Creation>,
    /// Bytes of kernel buffer for the UDP socket, each way [default: 4194304].
    #[arg(long, env = "KITH_UDP_BUFFER", value_name = "BYTES")]
    udp_buffer: Option<usize>,
    /// Serve Prometheus metrics (`/metrics`) and a health check (`/health`)
    /// over plain HTTP on this TCP address, e.g. 127.0.0.1:9464 [default:
    /// off]. Keep it on loopback or a network only you reach.
    #[arg(long, env = "KITH_METRICS", value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// This server's domain name: obtain and renew a certificate browsers
    /// trust for it by ACME (TLS-ALPN-01 on the HTTPS port, so the port must
    /// be reachable as DOMAIN:443 or the address invites name), kept in
    /// DATA/acme; invites then name the domain.
    #[arg(long, env = "KITH_DOMAIN", value_name = "DOMAIN", conflicts_with_all = ["tls_cert", "no_web"])]
    domain: Option<String>,
    /// The ACME CA's directory URL [default: Let's Encrypt].
    #[arg(long, env = "KITH_ACME_DIRECTORY", value_name = "URL", requires = "domain")]
    acme_directory: Option<String>,
    /// A PEM root certificate to trust for the ACME CA's own API (a test CA).
    #[arg(long, env = "KITH_ACME_CA_ROOT", value_name = "FILE", requires = "domain")]
    acme_ca_root: Option<PathBuf>,
    /// An e-mail address the CA may write to about this certificate.
    #[arg(long, env = "KITH_ACME_CONTACT", value_name = "EMAIL", requires = "domain")]
    acme_contact: Option<String>,
    /// Do not serve the browser client (HTTPS on TCP, same port number);
    /// WebTransport on the UDP port stays, for pages served elsewhere.
    #[arg(long, env = "KITH_NO_WEB")]
    no_web: bool,
    /// Print a commented kith.toml with every key at its default, and exit
    /// (`kith serve --print-config > DATA/kith.toml`, then edit).
    #[arg(long)]
    print_config: bool,
}

/// A kith.toml with every key, each at its default (taken from the code
/// that applies it, so it cannot drift) and commented; keys without a
/// default are shown commented out.
pub fn example_config() -> String {
    let l = Limits::default();
    let base = Config::new("[::]:7443".parse().expect("a valid address"), PathBuf::new());
    let telnet = TelnetConfig::new("127.0.0.1:2323".parse().expect("a valid address"));
    let rate = |r: RateLimit| format!("{{ burst = {}, every_ms = {} }}", r.burst, r.every_ms);
    let quota = |q: Option<u64>| q.unwrap_or(0);
    format!(
        r#"# kith.toml: the settings of `kith serve`, read from DATA/kith.toml (or
# --config FILE). Every key is optional and shown at its default; flags and
# KITH_* environment variables win over this file. See the README's
# "Running a server".

# UDP address for QUIC and WebTransport; the browser client is served over
# HTTPS on TCP at the same port number.
listen = "{listen}"
# The name or address people elsewhere reach this server at; invites name it.
# public_address = "chat.example.org"
# Let anyone register without an invite (once an owner exists).
open_registration = {open}
# Who may create communities: "everyone" or "owner" (the server owner only).
community_creation = "everyone"
# "full": fsync every commit (survives power loss); "normal": survives a
# crash of kith, not of the machine.
sync = "full"
# Bytes of kernel buffer for the UDP socket, each way.
udp_buffer = {udp}
# Serve the browser client.
web = {web}
# Keep photos' and videos' Exif, GPS, XMP and the like as uploaded.
keep_photo_metadata = {keep}
# Prometheus /metrics and /health over plain HTTP (keep it private).
# metrics = "127.0.0.1:9464"
# A certificate of your own instead of the generated identity.
# tls_cert = "/etc/kith/fullchain.pem"
# tls_key = "/etc/kith/privkey.pem"
# Or one by ACME for this domain (TLS-ALPN-01 on the HTTPS port).
# domain = "chat.example.org"
# acme_directory = "{acme}"
# acme_contact = "you@example.org"

# Rates are {{ burst = N, every_ms = M }}: N at once, one more every M ms;
# burst = 0 turns one off.
[limits]
# Messages sent, edited or deleted, per account.
messages = {messages}
# The same per telnet guest, on top of `messages`.
guest_messages = {guest_messages}
# Typing notices, per account.
typing = {typing}
# History pages, audit log, bans and read marks, per account.
reads = {reads}
# Community changes (channels, roles, members, invites, moderation), per account.
changes = {changes}
# Profile and presence changes, per account.
profile = {profile}
# Opening and changing conversations, per account.
groups = {groups}
# Joining, leaving and muting in voice, per account.
voice = {voice}
# A bot's answers to calls, per bot.
answers = {answers}
# Login attempts per username from one address, before any hashing.
logins_per_account = {logins_per_account}
# Login, registration and guest sign-ins per address.
logins_per_ip = {logins_per_ip}
# New connections per address.
connects_per_ip = {connects_per_ip}
# Server-wide handshakes; above it, new clients first pass a QUIC Retry.
handshakes = {handshakes}
# Open connections per address.
connections_per_ip = {connections_per_ip}
# Connections not signed in by then are closed.
auth_deadline_secs = {auth_deadline}
# People in one voice channel at most.
voice_room = {voice_room}
# Communities up to this many members are listed whole at sign-in; larger
# ones list who is around, and clients page through the rest.
member_list = {member_list}
# Messages per channel held in memory (the newest); older ones are read
# from disk when someone edits, deletes or replies to one. Unread counts
# and retries' nonces are found among these.
recent_messages = {recent_messages}
# Per-address limits count an IPv6 address by its first this many bits.
ipv6_prefix = {ipv6_prefix}
# The largest file one upload may be, and all of one message's files.
attachment_bytes = {attachment_bytes}
message_attachment_bytes = {message_attachment_bytes}
# Bytes of files one account's, and one community's, messages may carry (0: no quota).
attachment_quota_per_user = {quota_user}
attachment_quota_per_community = {quota_community}
# Uploads are refused while less than this would stay free on the disk.
disk_reserve_bytes = {disk_reserve}

# The chat over plain telnet (unencrypted): off unless `listen` is set.
[telnet]
# listen = "127.0.0.1:2323"
# Allow a non-loopback address, knowing passwords cross the network in clear.
public = {telnet_public}
sign_in_deadline_secs = {sign_in}
write_deadline_secs = {write}
# Offer password sign-in (false: guest access only).
passwords = {passwords}
# Guests without an account: "read-only" or "chat", in this community.
# guests = "read-only"
# guest_community = "Family"

# Backups the server takes itself, each a new directory kith-<UTC time> in
# `dir` (as `kith backup` makes; `kith restore` puts one back). Off unless
# `dir` is set.
[backups]
# dir = "/var/backups/kith"
every = "{backup_every}"
keep = {backups_kept}
"#,
        backup_every = humantime::format_duration(BACKUP_EVERY),
        backups_kept = BACKUPS_KEPT,
        listen = base.listen,
        open = base.open_registration,
        udp = base.udp_buffer,
        web = base.web,
        keep = base.keep_photo_metadata,
        acme = kith_server::acme::LETS_ENCRYPT,
        messages = rate(l.messages),
        guest_messages = rate(l.guest_messages),
        typing = rate(l.typing),
        reads = rate(l.reads),
        changes = rate(l.changes),
        profile = rate(l.profile),
        groups = rate(l.groups),
        voice = rate(l.voice),
        answers = rate(l.answers),
        logins_per_account = rate(l.logins_per_account),
        logins_per_ip = rate(l.logins_per_ip),
        connects_per_ip = rate(l.connects_per_ip),
        handshakes = rate(l.handshakes),
        connections_per_ip = l.connections_per_ip,
        auth_deadline = l.auth_deadline.as_secs(),
        voice_room = l.voice_room,
        member_list = l.member_list,
        recent_messages = l.recent_messages,
        ipv6_prefix = l.ipv6_prefix,
        attachment_bytes = l.attachment_bytes,
        message_attachment_bytes = l.message_attachment_bytes,
        quota_user = quota(l.attachment_quota_per_user),
        quota_community = quota(l.attachment_quota_per_community),
        disk_reserve = l.disk_reserve,
        telnet_public = telnet.allow_public,
        sign_in = telnet.sign_in_deadline.as_secs(),
        write = telnet.write_deadline.as_secs(),
        passwords = telnet.passwords,
    )
}

/// Who may create communities (`community_creation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Creation {
    Everyone,
    Owner,
}

fn parse_creation(s: &str) -> Result<Creation, String> {
    match s {
        "everyone" => Ok(Creation::Everyone),
        "owner" => Ok(Creation::Owner),
        _ => Err("expected `everyone` or `owner`".into()),
    }
}

/// What telnet guests may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum GuestMode {
    ReadOnly,
    Chat,
}

fn parse_guests(s: &str) -> Result<GuestMode, String> {
    match s {
        "read-only" => Ok(GuestMode::ReadOnly),
        "chat" => Ok(GuestMode::Chat),
        _ => Err("expected `read-only` or `chat`".into()),
    }
}

fn parse_sync(s: &str) -> Result<Sync, String> {
    match s {
        "full" => Ok(Sync::Full),
        "normal" => Ok(Sync::Normal),
        _ => Err("expected `full` or `normal`".into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    open_registration: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    sync: Option<Sync>,
    public_address: Option<String>,
    community_creation: Option<Creation>,
    /// Bytes of kernel buffer for the UDP socket, each way.
    udp_buffer: Option<usize>,
    /// `/metrics` and `/health` on this address.
    metrics: Option<SocketAddr>,
    /// Serve the browser client over HTTPS (default true).
    web: Option<bool>,
    /// ACME: `domain`, and optionally `acme_directory`, `acme_contact`.
    domain: Option<String>,
    acme_directory: Option<String>,
    acme_contact: Option<String>,
    /// Keep photos' Exif, XMP and the like (GPS included) as uploaded
    /// (default false: they are taken out).
    keep_photo_metadata: Option<bool>,
    #[serde(default)]
    limits: FileLimits,
    telnet: Option<FileTelnet>,
    backups: Option<FileBackups>,
}

/// `[backups]` in kith.toml: the server backs itself up.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackups {
    /// Unset: no scheduled backups.
    dir: Option<PathBuf>,
    /// A duration: `24h`, `6h`, `30m`.
    every: Option<String>,
    keep: Option<usize>,
}

impl FileBackups {
    fn schedule(self) -> Result<Option<kith_server::backup::Schedule>> {
        let Some(dir) = self.dir else { return Ok(None) };
        let every = match &self.every {
            Some(e) => humantime::parse_duration(e).with_context(|| format!("[backups] every = {e:?}"))?,
            None => BACKUP_EVERY,
        };
        if every < std::time::Duration::from_secs(1) {
            bail!("[backups] every must be at least a second");
        }
        Ok(Some(kith_server::backup::Schedule { dir, every, keep: self.keep.unwrap_or(BACKUPS_KEPT) }))
    }
}

const BACKUP_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const BACKUPS_KEPT: usize = 7;

/// `[telnet]` in kith.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTelnet {
    listen: Option<SocketAddr>,
    public: Option<bool>,
    sign_in_deadline_secs: Option<u64>,
    write_deadline_secs: Option<u64>,
    passwords: Option<bool>,
    guests: Option<GuestMode>,
    guest_community: Option<String>,
}

/// `[limits]` in kith.toml: each rate is `{ burst = N, every_ms = M }` (up to
/// N at once, one more every M ms; `burst = 0` turns it off).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    messages: Option<FileRate>,
    guest_messages: Option<FileRate>,
    typing: Option<FileRate>,
    reads: Option<FileRate>,
    changes: Option<FileRate>,
    profile: Option<FileRate>,
    groups: Option<FileRate>,
    voice: Option<FileRate>,
    answers: Option<FileRate>,
    logins_per_account: Option<FileRate>,
    logins_per_ip: Option<FileRate>,
    connects_per_ip: Option<FileRate>,
    handshakes: Option<FileRate>,
    connections_per_ip: Option<usize>,
    auth_deadline_secs: Option<u64>,
    voice_room: Option<usize>,
    member_list: Option<usize>,
    recent_messages: Option<usize>,
    ipv6_prefix: Option<u8>,
    attachment_bytes: Option<u64>,
    message_attachment_bytes: Option<u64>,
    /// 0: no quota.
    attachment_quota_per_user: Option<u64>,
    attachment_quota_per_community: Option<u64>,
    disk_reserve_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRate {
    burst: u32,
    every_ms: u64,
}

impl FileLimits {
    fn apply(&self, mut l: Limits) -> Limits {
        let rate = |f: Option<FileRate>, d: RateLimit| f.map_or(d, |f| RateLimit::new(f.burst, f.every_ms));
        l.messages = rate(self.messages, l.messages);
        l.guest_messages = rate(self.guest_messages, l.guest_messages);
        l.typing = rate(self.typing, l.typing);
        l.reads = rate(self.reads, l.reads);
        l.changes = rate(self.changes, l.changes);
        l.profile = rate(self.profile, l.profile);
        l.groups = rate(self.groups, l.groups);
        l.voice = rate(self.voice, l.voice);
        l.answers = rate(self.answers, l.answers);
        l.logins_per_account = rate(self.logins_per_account, l.logins_per_account);
        l.logins_per_ip = rate(self.logins_per_ip, l.logins_per_ip);
        l.connects_per_ip = rate(self.connects_per_ip, l.connects_per_ip);
        l.handshakes = rate(self.handshakes, l.handshakes);
        l.connections_per_ip = self.connections_per_ip.unwrap_or(l.connections_per_ip);
        l.voice_room = self.voice_room.unwrap_or(l.voice_room).max(2);
        l.member_list = self.member_list.unwrap_or(l.member_list).max(1);
        l.recent_messages = self.recent_messages.unwrap_or(l.recent_messages).max(1);
        l.ipv6_prefix = self.ipv6_prefix.unwrap_or(l.ipv6_prefix).min(128);
        l.attachment_bytes = self.attachment_bytes.unwrap_or(l.attachment_bytes);
        l.message_attachment_bytes = self.message_attachment_bytes.unwrap_or(l.message_attachment_bytes);
        l.disk_reserve = self.disk_reserve_bytes.unwrap_or(l.disk_reserve);
        let quota = |set: Option<u64>, default| set.map_or(default, |q| (q > 0).then_some(q));
        l.attachment_quota_per_user = quota(self.attachment_quota_per_user, l.attachment_quota_per_user);
        l.attachment_quota_per_community =
            quota(self.attachment_quota_per_community, l.attachment_quota_per_community);
        if let Some(secs) = self.auth_deadline_secs {
            l.auth_deadline = std::time::Duration::from_secs(secs);
        }
        l
    }
}

/// What `kith doctor` needs of a server's settings.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub public_address: Option<String>,
    pub web: bool,
    pub disk_reserve: u64,
    pub backups: Option<kith_server::backup::Schedule>,
}

/// The settings a `kith serve --data DATA [--config FILE]` would read from
/// its file (flags and environment aside), or why they cannot be read.
pub fn file_settings(data: &Path, config: Option<&Path>) -> Result<Settings> {
    let file = match config {
        Some(path) => read_file_config(path, true)?,
        None => read_file_config(&data.join("kith.toml"), false)?,
    };
    Ok(Settings {
        listen: file.listen.unwrap_or_else(|| "[::]:7443".parse().expect("a valid address")),
        public_address: file.public_address.or(file.domain),
        web: file.web.unwrap_or(true),
        disk_reserve: file.limits.apply(Limits::default()).disk_reserve,
        backups: match file.backups {
            Some(b) => b.schedule()?,
            None => None,
        },
    })
}

fn read_file_config(path: &Path, required: bool) -> Result<FileConfig> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The data directory: `--data`, or the platform's (`~/.local/share/kith`).
pub fn data_dir(arg: Option<PathBuf>) -> Result<PathBuf> {
    match arg {
        Some(d) => Ok(d),
        None => Ok(directories::ProjectDirs::from("", "", "kith")
            .context("cannot find a home directory; pass --data")?
            .data_dir()
            .to_owned()),
    }
}

/// The server's configuration from flags, environment and the file, in
/// that order of precedence (at start, and again on SIGHUP).
fn config_of(args: &ServeArgs) -> Result<Config> {
    let data_dir = data_dir(args.data.clone())?;
    let file = match &args.config {
        Some(path) => read_file_config(path, true)?,
        None => read_file_config(&data_dir.join("kith.toml"), false)?,
    };
    let tls = match (args.tls_cert.clone().or(file.tls_cert), args.tls_key.clone().or(file.tls_key)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => bail!("tls_cert and tls_key go together"),
    };
    let listen = args.listen.or(file.listen).unwrap_or_else(|| "[::]:7443".parse().expect("valid address"));
    let config = Config {
        open_registration: args.open_registration || file.open_registration.unwrap_or(false),
        tls,
        sync: args.sync.or(file.sync).unwrap_or(Sync::Full),
        limits: file.limits.apply(Limits::default()),
        public_address: args.public_address.clone().or(file.public_address),
        community_creation: match args.community_creation.or(file.community_creation) {
            Some(Creation::Owner) => kith_core::CommunityCreation::Owner,
            Some(Creation::Everyone) | None => kith_core::CommunityCreation::Everyone,
        },
        ..Config::new(listen, data_dir)
    };
    let domain = args.domain.clone().or(file.domain);
    let acme = domain.clone().map(|domain| kith_server::acme::AcmeConfig {
        domain,
        directory: args
            .acme_directory
            .clone()
            .or(file.acme_directory)
            .unwrap_or_else(|| kith_server::acme::LETS_ENCRYPT.to_owned()),
        ca_root: args.acme_ca_root.clone(),
        contact: args
            .acme_contact
            .clone()
            .or(file.acme_contact)
            .map(|e| format!("mailto:{e}"))
            .into_iter()
            .collect(),
    });
    let config = Config {
        udp_buffer: args.udp_buffer.or(file.udp_buffer).unwrap_or(config.udp_buffer),
        metrics: args.metrics.or(file.metrics),
        web: !args.no_web && file.web.unwrap_or(true),
        keep_photo_metadata: file.keep_photo_metadata.unwrap_or(false),
        backups: match file.backups {
            Some(b) => b.schedule()?,
            None => None,
        },
        // Invites name the domain the certificate is for.
        public_address: config.public_address.or(domain),
        acme,
        ..config
    };

    let telnet_file = file.telnet.unwrap_or_default();
    let guest_mode = args.telnet_guests.or(telnet_file.guests);
    let guest_community = args.telnet_guest_community.clone().or(telnet_file.guest_community);
    let guests = match (guest_mode, guest_community) {
        (Some(mode), Some(community)) => Some(GuestAccess { community, can_send: mode == GuestMode::Chat }),
        (Some(_), None) => bail!("telnet guests need a community to join: --telnet-guest-community NAME"),
        (None, Some(_)) => {
            bail!("a guest community without guest access: add --telnet-guests read-only|chat")
        }
        (None, None) => None,
    };
    let telnet = args.telnet.or(telnet_file.listen).map(|listen| {
        let mut t = TelnetConfig::new(listen);
        t.allow_public = args.telnet_public || telnet_file.public.unwrap_or(false);
        if let Some(secs) = telnet_file.sign_in_deadline_secs {
            t.sign_in_deadline = std::time::Duration::from_secs(secs);
        }
        if let Some(secs) = telnet_file.write_deadline_secs {
            t.write_deadline = std::time::Duration::from_secs(secs);
        }
        t.passwords = !args.telnet_no_passwords && telnet_file.passwords.unwrap_or(true);
        t.guests = guests;
        t.utc_offset_secs = chrono::Local::now().offset().local_minus_utc();
        t
    });
    Ok(Config { telnet, ..config })
}

pub async fn run(args: ServeArgs) -> Result<()> {
    if args.print_config {
        print!("{}", example_config());
        return Ok(());
    }
    let config = config_of(&args)?;

    let mut server = Server::start(config.clone()).await?;
    let addr = server.local_addr();
    let hint_addr = server.public_address().to_owned();
    if kith_proto::invite::is_local_address(&hint_addr) {
        eprintln!(
            "kith: invites will name {hint_addr}, which works only on this machine; \
             set --public-address HOST (or public_address in kith.toml) to the name or address others use"
        );
    }
    tracing::info!(data = %config.data_dir.display(), %addr, "kith is serving");
    if let Some(code) = server.setup_code() {
        eprintln!();
        eprintln!("  This server has no owner yet. Create the owner account with:");
        eprintln!();
        eprintln!("      kith register <your-name> --server {hint_addr} --setup-code {code}");
        eprintln!();
        eprintln!("  The code works once, and only until an owner exists.");
        eprintln!();
    } else if let Some((owner, code)) = server.owner_code() {
        eprintln!();
        eprintln!("  This server's owner, {owner}, was imported and has no password yet. Choose one with:");
        eprintln!();
        eprintln!("      kith login {owner} --server {hint_addr} --code {code}");
        eprintln!();
        eprintln!("  The code works once, for a day; each start makes a new one until it is used.");
        eprintln!();
    } else {
        eprintln!("Connect with: kith login <name> --server {hint_addr}");
    }
    if server.web_addr().is_some() {
        eprintln!("In a browser: https://{hint_addr}/ (the browser warns once about the certificate unless");
        eprintln!("  it is CA-signed; its fingerprint is {})", server.fingerprint());
    }
    if let Some(telnet) = server.telnet_addr() {
        eprintln!("Telnet gateway (unencrypted): telnet {} {}", telnet.ip(), telnet.port());
    }
    // The one machine-readable line, printed once connections are accepted.
    let telnet = server.telnet_addr().map(|a| format!(" telnet={a}")).unwrap_or_default();
    let web = server.web_addr().map(|a| format!(" web=https://{a}/")).unwrap_or_default();
    let metrics = server.metrics_addr().map(|a| format!(" metrics=http://{a}/")).unwrap_or_default();
    println!(
        "kith ready quic={addr} fingerprint={} public={hint_addr}{telnet}{web}{metrics}",
        server.fingerprint()
    );

    let stop = loop {
        tokio::select! {
            signal = shutdown_signal() => break Ok(signal),
            error = server.failed() => break Err(error),
            () = reload_signal() => match config_of(&args) {
                // What can change while it runs: who may register and create
                // communities, the per-account rate limits, upload limits.
                Ok(fresh) => {
                    server.reconfigure(&fresh).await;
                    tracing::info!("reloaded the settings");
                }
                Err(e) => tracing::error!(error = format!("{e:#}"), "the settings did not reload; the old ones stay"),
            },
        }
    };
    match stop {
        Ok(signal) => {
            signal?;
            tracing::info!("shutting down");
            server.shutdown().await
        }
        Err(error) => Err(error),
    }
}

/// SIGHUP: the operator asks for the settings to be read again. Never
/// resolves where there is no such signal.
async fn reload_signal() {
    #[cfg(unix)]
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        hup.recv().await;
        return;
    }
    std::future::pending::<()>().await
}

async fn shutdown_signal() -> Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_config_names_every_key_and_reads_back_as_the_defaults() {
        let text = example_config();
        // deny_unknown_fields: every key printed is one the server reads.
        let file: FileConfig = toml::from_str(&text).expect("the example parses");
        // Every limit is set in it, and to what the server uses anyway.
        let limits = format!("{:?}", file.limits);
        assert!(!limits.contains("None"), "a [limits] key is missing from the example: {limits}");
        assert_eq!(format!("{:?}", file.limits.apply(Limits::default())), format!("{:?}", Limits::default()));
        let telnet = file.telnet.expect("a [telnet] table");
        assert!(telnet.listen.is_none(), "telnet stays off");
        let base = Config::new("[::]:7443".parse().unwrap(), PathBuf::new());
        assert_eq!(file.listen, Some(base.listen));
        assert_eq!(file.udp_buffer, Some(base.udp_buffer));
        assert_eq!(file.sync, Some(Sync::Full));
        let backups = file.backups.expect("a [backups] table");
        assert!(backups.dir.is_none(), "backups stay off until a directory is named");
        assert_eq!(backups.every.as_deref().map(humantime::parse_duration).unwrap().unwrap(), BACKUP_EVERY);
        assert_eq!(backups.keep, Some(BACKUPS_KEPT));
    }
}
