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
}

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

pub async fn run(args: ServeArgs) -> Result<()> {
    let data_dir = data_dir(args.data)?;
    let file = match &args.config {
        Some(path) => read_file_config(path, true)?,
        None => read_file_config(&data_dir.join("kith.toml"), false)?,
    };
    let tls = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
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
        public_address: args.public_address.or(file.public_address),
        community_creation: match args.community_creation.or(file.community_creation) {
            Some(Creation::Owner) => kith_core::CommunityCreation::Owner,
            Some(Creation::Everyone) | None => kith_core::CommunityCreation::Everyone,
        },
        ..Config::new(listen, data_dir)
    };
    let domain = args.domain.or(file.domain);
    let acme = domain.clone().map(|domain| kith_server::acme::AcmeConfig {
        domain,
        directory: args
            .acme_directory
            .or(file.acme_directory)
            .unwrap_or_else(|| kith_server::acme::LETS_ENCRYPT.to_owned()),
        ca_root: args.acme_ca_root,
        contact: args.acme_contact.or(file.acme_contact).map(|e| format!("mailto:{e}")).into_iter().collect(),
    });
    let config = Config {
        udp_buffer: args.udp_buffer.or(file.udp_buffer).unwrap_or(config.udp_buffer),
        metrics: args.metrics.or(file.metrics),
        web: !args.no_web && file.web.unwrap_or(true),
        keep_photo_metadata: file.keep_photo_metadata.unwrap_or(false),
        // Invites name the domain the certificate is for.
        public_address: config.public_address.or(domain),
        acme,
        ..config
    };

    let telnet_file = file.telnet.unwrap_or_default();
    let guest_mode = args.telnet_guests.or(telnet_file.guests);
    let guest_community = args.telnet_guest_community.or(telnet_file.guest_community);
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
    let config = Config { telnet, ..config };

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

    let stop = tokio::select! {
        signal = shutdown_signal() => Ok(signal),
        error = server.failed() => Err(error),
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
