//! kith-server: the async shell around the hub.
//!
//! ```text
//!  QUIC connections ──frames──► quic::serve ──Input──► actor (owns Hub) ──Persist──► store writer thread
//!        ▲                                              │    ▲                            │
//!        └──────────── per-session outbox ◄─── Send ────┘    └────── Committed ───────────┘
//! ```
//!
//! [`Server::start`] binds everything and returns once connections are
//! accepted; [`Server::shutdown`] stops accepting, flushes the store and
//! closes every connection with a reason.

pub mod acme;
pub mod actor;
pub mod admission;
pub mod auth;
pub mod backup;
pub mod doctor;
pub mod edge;
pub mod export;
pub mod files;
pub mod identity;
pub mod import;
pub mod metrics;
pub mod store;
pub mod voice;
pub mod webcert;

pub use edge::{quic, telnet};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::{Context, Result, anyhow};
use kith_core::rate::RateLimit;
use kith_core::store::StoredState;
use kith_core::{Hub, HubConfig};
use quinn::crypto::rustls::QuicServerConfig;
use tokio::sync::mpsc;

use crate::actor::ToHub;
use crate::identity::Identity;
use crate::store::sqlite::Sqlite;
use crate::store::{Backend, Readers, StoreError};

pub use crate::store::sqlite::Sync;

/// Everything the server needs to start. Defaults are chosen by the binary.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP address for QUIC; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Holds the database and the generated TLS identity. Created if missing.
    pub data_dir: PathBuf,
    /// Let anyone register without an invite (once an owner exists).
    pub open_registration: bool,
    /// Where to serve `/metrics` and `/health` (HTTP, no TLS: loopback,
    /// or a network only the operator reaches); `None`: nowhere.
    pub metrics: Option<SocketAddr>,
    /// An operator-supplied certificate chain and key (PEM); both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub sync: Sync,
    /// How long a dropped session stays resumable.
    pub resume_grace: std::time::Duration,
    /// Bytes queued for one session before it is disconnected as a slow
    /// consumer.
    pub outbox_bytes: usize,
    pub limits: Limits,
    /// The telnet gateway, if enabled.
    pub telnet: Option<telnet::TelnetConfig>,
    /// `host[:port]` that people elsewhere reach this server at; invites
    /// name it. `None`: [`public_address`] guesses.
    pub public_address: Option<String>,
    /// Who may create communities.
    pub community_creation: kith_core::CommunityCreation,
    /// Kernel receive and send buffers of the UDP socket, in bytes. At tens
    /// of thousands of deliveries a second the OS default (~208 KiB) fills
    /// between two reads and the kernel drops datagrams (QUIC resends them,
    /// late); 4 MiB holds about a second of that.
    pub udp_buffer: usize,
    /// Serve the browser client over HTTPS on TCP, on the same port number
    /// as QUIC (WebTransport shares the UDP port either way).
    pub web: bool,
    /// Obtain and renew the browsers' certificate by ACME.
    pub acme: Option<acme::AcmeConfig>,
    /// Keep photos' metadata (GPS, camera, time) as uploaded. Off by
    /// default: it is taken out before anyone else can fetch the photo.
    pub keep_photo_metadata: bool,
    /// Backups the server takes itself, if asked for.
    pub backups: Option<backup::Schedule>,
}

/// Rate limits and admission control. The defaults suit a server reachable
/// from the internet; a token bucket with `burst: 0` limits nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Messages sent, edited or deleted, per account.
    pub messages: RateLimit,
    /// The same per guest, on top of `messages` (telnet guest access).
    pub guest_messages: RateLimit,
    /// Typing notices, per account.
    pub typing: RateLimit,
    /// History pages, audit log and ban list reads, and read marks, per account.
    pub reads: RateLimit,
    /// Community changes (channels, roles, overrides, members, invites,
    /// joining, leaving, moderation), per account.
    pub changes: RateLimit,
    /// Profile and presence changes, per account.
    pub profile: RateLimit,
    /// Opening and changing conversations, per account.
    pub groups: RateLimit,
    /// Joining, leaving and muting in voice, per account.
    pub voice: RateLimit,
    /// A bot's answers to calls, per bot.
    pub answers: RateLimit,
    /// Login attempts per username (before any password is checked).
    pub logins_per_account: RateLimit,
    /// Login and registration attempts per IP address.
    pub logins_per_ip: RateLimit,
    /// New connections per IP address.
    pub connects_per_ip: RateLimit,
    /// Open connections per IP address (a household behind one NAT shares one).
    pub connections_per_ip: usize,
    /// Handshakes per second, server-wide, above which new connections must
    /// first prove their address with a QUIC Retry (one extra round trip;
    /// spoofed floods never complete it).
    pub handshakes: RateLimit,
    /// A connection that has not authenticated by then is closed.
    pub auth_deadline: std::time::Duration,
    /// A frame must arrive whole within this of its first byte.
    pub frame_deadline: std::time::Duration,
    /// Per-address limits count an IPv6 address by its first this many bits.
    pub ipv6_prefix: u8,
    /// People in one voice channel at most.
    pub voice_room: usize,
    /// Communities up to this many members are listed whole in snapshots.
    pub member_list: usize,
    /// Messages per channel the hub holds in memory; older ones stay on
    /// disk until a request needs one.
    pub recent_messages: usize,
    /// The largest file one upload may be.
    pub attachment_bytes: u64,
    /// The most one message's files may come to.
    pub message_attachment_bytes: u64,
    /// Bytes of files one account's, and one community's, messages may
    /// carry; `None`: no limit.
    pub attachment_quota_per_user: Option<u64>,
    pub attachment_quota_per_community: Option<u64>,
    /// Uploads are refused while fewer bytes than this would stay free on
    /// the data directory's disk.
    pub disk_reserve: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            messages: RateLimit::new(20, 200),
            // A stranger may say hello, not hold the floor.
            guest_messages: RateLimit::new(3, 5000),
            typing: RateLimit::new(10, 1000),
            reads: kith_core::hub::limits::READ_RATE,
            changes: kith_core::hub::limits::CHANGE_RATE,
            profile: kith_core::hub::limits::PROFILE_RATE,
            groups: kith_core::hub::limits::GROUP_RATE,
            voice: kith_core::hub::limits::VOICE_RATE,
            answers: kith_core::hub::limits::ANSWER_RATE,
            logins_per_account: RateLimit::new(5, 12_000),
            logins_per_ip: RateLimit::new(20, 3_000),
            // Scripts run `kith send` in loops: ten new connections a second
            // from one address is use, not abuse.
            connects_per_ip: RateLimit::new(60, 100),
            connections_per_ip: 64,
            handshakes: RateLimit::new(200, 10),
            auth_deadline: std::time::Duration::from_secs(15),
            frame_deadline: quic::FRAME_DEADLINE,
            ipv6_prefix: 64,
            voice_room: kith_core::hub::DEFAULT_VOICE_ROOM,
            member_list: kith_core::hub::FULL_MEMBER_LIST,
            recent_messages: kith_core::hub::RECENT_MESSAGES,
            attachment_bytes: kith_core::hub::DEFAULT_MAX_ATTACHMENT_BYTES,
            message_attachment_bytes: kith_core::hub::DEFAULT_MAX_MESSAGE_ATTACHMENT_BYTES,
            attachment_quota_per_user: Some(kith_core::hub::DEFAULT_USER_FILES_QUOTA),
            attachment_quota_per_community: Some(kith_core::hub::DEFAULT_COMMUNITY_FILES_QUOTA),
            disk_reserve: 1 << 30,
        }
    }
}

impl Limits {
    /// No rate limits and no practical per-address cap, for tests and
    /// benchmarks that drive the server hard from one address. The
    /// authentication deadline stays.
    pub fn unlimited() -> Self {
        let off = RateLimit::new(0, 1);
        Limits {
            messages: off,
            guest_messages: off,
            typing: off,
            reads: off,
            changes: off,
            profile: off,
            groups: off,
            voice: off,
            answers: off,
            logins_per_account: off,
            logins_per_ip: off,
            connects_per_ip: off,
            connections_per_ip: 100_000,
            handshakes: off,
            ..Limits::default()
        }
    }
}

impl Config {
    /// The defaults, listening on `listen` and keeping data in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Config {
        Config {
            listen,
            data_dir,
            open_registration: false,
            metrics: None,
            tls: None,
            sync: Sync::Full,
            resume_grace: std::time::Duration::from_secs(120),
            outbox_bytes: edge::OUTBOX_BYTES,
            limits: Limits::default(),
            telnet: None,
            public_address: None,
            community_creation: kith_core::CommunityCreation::Everyone,
            udp_buffer: 4 * 1024 * 1024,
            web: true,
            acme: None,
            keep_photo_metadata: false,
            backups: None,
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// Held while the server runs: one server per data directory.
    _lock: std::fs::File,
    /// Watches the UDP socket for kernel drops.
    drops: tokio::task::JoinHandle<()>,
    local_addr: SocketAddr,
    public_address: String,
    fingerprint: String,
    setup_code: Option<String>,
    owner_code: Option<(String, String)>,
    endpoint: quinn::Endpoint,
    hub: mpsc::Sender<ToHub>,
    actor: tokio::task::JoinHandle<Result<(), StoreError>>,
    writer: std::thread::JoinHandle<()>,
    accept: tokio::task::JoinHandle<()>,
    telnet: Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>,
    web: Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>,
    /// Obtains and renews the ACME certificate, if asked to.
    acme: Option<tokio::task::JoinHandle<()>>,
    /// Sweeps the file store of what no message names.
    sweeper: tokio::task::JoinHandle<()>,
    /// Scheduled backups, if asked for.
    backups: Option<tokio::task::JoinHandle<()>>,
    /// `/metrics` and `/health`, if asked for.
    metrics: Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>,
}

/// QUIC endpoint settings whose secrets derive from the server's private key
/// and so survive a restart: the stateless-reset key, and the key that
/// connection ids are checked with. A restarted server then recognises its
/// predecessor's connection ids as its own and resets those connections at
/// once; clients reconnect (and resume) right away instead of waiting out
/// the idle timeout.
fn endpoint_config(key: &rustls::pki_types::PrivateKeyDer<'_>) -> quinn::EndpointConfig {
    use sha2::Digest;
    let derive = |label: &[u8]| -> [u8; 32] {
        sha2::Sha256::new().chain_update(label).chain_update(key.secret_der()).finalize().into()
    };
    let reset = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &derive(b"kith stateless reset v1\0"));
    let cid_key = u64::from_le_bytes(derive(b"kith connection ids v1\0")[..8].try_into().expect("8 bytes"));
    let mut config = quinn::EndpointConfig::new(Arc::new(reset));
    config.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    config
}

/// Reader threads (each with its own SQLite connection): reads run this many
/// at a time, whatever peers ask for.
const READER_THREADS: usize = 4;
/// Password hashing threads: argon2 runs this many at once, in 19 MiB each,
/// allocated once (decision 4).
const HASHER_THREADS: usize = 2;
/// Sign-ins waiting for a hasher before new ones are told to retry: a few
/// seconds' worth (a hash takes ~30 ms).
const HASH_QUEUE: usize = 128;

/// Reads waiting for a reader thread before new ones are refused as "busy".
const READ_QUEUE: usize = 1024;

/// Inputs queued for the hub before connection tasks wait.
const HUB_INBOX: usize = 4096;
/// Write batches queued for the store before the hub waits on the disk.
const WRITER_QUEUE: usize = 8192;

impl Server {
    pub async fn start(config: Config) -> Result<Server> {
        create_private_dir(&config.data_dir)?;
        let lock = lock_data_dir(&config.data_dir)?;
        let identity = match &config.tls {
            Some((cert, key)) => Identity::from_files(cert, key)?,
            None => Identity::load_or_generate(&config.data_dir)?,
        };
        let db = config.data_dir.join("kith.db");
        private_database(&db)?;
        let store = Arc::new(Sqlite { path: db.clone(), sync: config.sync });
        let (writer, mut state) = store
            .open_writer(config.limits.recent_messages)
            .with_context(|| format!("opening {}", db.display()))?;

        let needs_owner = !state.users.iter().any(|u| u.server_owner);
        let setup_code = needs_owner.then(auth::grouped_code);
        let owner_code = owner_reset_code(&db, &mut state).context("making the owner's reset code")?;
        // Bound before the hub exists, so that invites name the real port.
        let (socket, tcp) = bind_ports(&config).await?;
        let public_address = match &config.public_address {
            Some(a) => kith_proto::invite::with_default_port(a),
            None => guess_public_address(socket.local_addr()?),
        };
        let hub = Hub::new(
            state,
            HubConfig {
                setup_code: setup_code.clone(),
                public_address: Some(public_address.clone()),
                fingerprint: Some(identity.fingerprint.clone()),
                ..hub_config(&config)
            },
        );

        let metrics = Arc::new(metrics::Metrics::new());
        let (batch_tx, batch_rx) = mpsc::channel(WRITER_QUEUE);
        let (commit_tx, commit_rx) = mpsc::unbounded_channel();
        let written = metrics.clone();
        let writer = std::thread::Builder::new().name("kith-store-writer".into()).spawn(move || {
            store::run_writer(writer, batch_rx, &written, |report| {
                // The actor may already be gone at shutdown; nothing to tell then.
                let _ = commit_tx.send(report);
            })
        })?;
        let readers = Arc::new(Readers::start(store, READER_THREADS, READ_QUEUE)?);
        let (hub_tx, hub_rx) = mpsc::channel(HUB_INBOX);
        let files = Arc::new(
            files::Files::open(&config.data_dir, config.limits.disk_reserve, config.keep_photo_metadata)
                .with_context(|| format!("opening the file store in {}", config.data_dir.display()))?,
        );
        let actor = tokio::spawn(actor::run(
            hub,
            hub_rx,
            commit_rx,
            batch_tx,
            readers.clone(),
            files.clone(),
            metrics.clone(),
        ));
        let sweeper = tokio::spawn(files::sweep_every(files.clone(), readers.clone(), files::SWEEP_EVERY));
        let backups = config
            .backups
            .clone()
            .map(|schedule| tokio::spawn(backup::every(config.data_dir.clone(), schedule, metrics.clone())));

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Without an operator's certificate, browsers get WebTransport by hash.
        let self_signed = config.tls.is_none();
        let certs = Arc::new(webcert::Resolver::new(
            identity.certs.clone(),
            identity.key.clone_key(),
            provider.clone(),
            self_signed,
        )?);
        let web_tls = tcp.as_ref().map(|_| https_config(&certs, &provider)).transpose()?;
        let acme = match (&config.acme, &tcp) {
            (Some(acme), Some(_)) => Some(acme::start(acme.clone(), certs.clone(), &config.data_dir)?),
            (Some(_), None) => {
                return Err(anyhow!("--domain needs the HTTPS port (it answers the CA's challenge there)"));
            }
            (None, _) => None,
        };
        let endpoint = quinn::Endpoint::new(
            endpoint_config(&identity.key),
            Some(server_config(certs.clone(), &provider)?),
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        let local_addr = endpoint.local_addr()?;
        let edge = Arc::new(edge::Edge {
            hub: hub_tx.clone(),
            readers,
            hashers: auth::Hashers::start(HASHER_THREADS, HASH_QUEUE, auth::Hashers::RELEASE_AFTER)?,
            next_session: AtomicU64::new(1),
            outbox_bytes: config.outbox_bytes,
            admission: admission::Admission::new(&config.limits, metrics.rate_limited.clone()),
            frame_deadline: config.limits.frame_deadline,
            files,
            metrics: metrics.clone(),
            pipes: edge::pipes::Pipes::default(),
        });
        let metrics_listener = match config.metrics {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening for metrics on {addr}"))?;
                let addr = listener.local_addr()?;
                Some((addr, tokio::spawn(metrics::serve(listener, metrics.clone()))))
            }
            None => None,
        };
        let telnet = match &config.telnet {
            Some(t) => Some(start_telnet(t, &edge, &identity.fingerprint).await?),
            None => None,
        };
        let web = match (tcp, web_tls) {
            (Some(listener), Some(tls)) => {
                let site = Arc::new(edge::web::Site {
                    fingerprint: identity.fingerprint.clone(),
                    certs: certs.clone(),
                });
                let addr = listener.local_addr()?;
                Some((addr, tokio::spawn(edge::web::accept_loop(listener, tls, edge.clone(), site))))
            }
            _ => None,
        };
        let accept = tokio::spawn(quic::accept_loop(endpoint.clone(), edge));
        let drops = tokio::spawn(watch_udp_drops(local_addr.port()));
        // Where this server really listens (port 0 picks one), for `kith
        // doctor` and the operator; stale once the lock is free.
        let serving = serde_json::json!({
            "pid": std::process::id(),
            "quic": local_addr.to_string(),
            "https": web.as_ref().map(|(a, _)| a.to_string()),
            "public": public_address,
        });
        std::fs::write(config.data_dir.join(SERVING), serving.to_string())
            .with_context(|| format!("writing {}", config.data_dir.join(SERVING).display()))?;
        Ok(Server {
            metrics: metrics_listener,
            drops,
            _lock: lock,
            public_address,
            local_addr,
            fingerprint: identity.fingerprint,
            setup_code,
            owner_code,
            endpoint,
            hub: hub_tx,
            actor,
            writer,
            accept,
            telnet,
            web,
            acme,
            sweeper,
            backups,
        })
    }

    /// Applies what can change while the server runs (`kith serve` on
    /// SIGHUP): who may register and create communities, the per-account
    /// rate limits, voice room size, upload limits and quotas. The rest
    /// (addresses, TLS, per-address admission, storage) waits for a restart.
    pub async fn reconfigure(&self, config: &Config) {
        let _ = self.hub.send(ToHub::Reconfigure(Box::new(hub_config(config)))).await;
    }

    /// Where `/metrics` and `/health` are served, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// Where the HTTPS server (the browser client) listens, if enabled.
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web.as_ref().map(|(addr, _)| *addr)
    }

    /// Where the telnet gateway listens, if it is enabled.
    pub fn telnet_addr(&self) -> Option<SocketAddr> {
        self.telnet.as_ref().map(|(addr, _)| *addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `host:port` that invites name.
    pub fn public_address(&self) -> &str {
        &self.public_address
    }

    /// `sha256:<hex>` of the server certificate.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The one-time owner setup code, while the server has no owner.
    pub fn setup_code(&self) -> Option<&str> {
        self.setup_code.as_deref()
    }

    /// The owner's name and a password reset code, while the owner has no
    /// password (their account was imported): nobody else could give them one.
    pub fn owner_code(&self) -> Option<(&str, &str)> {
        self.owner_code.as_ref().map(|(name, code)| (name.as_str(), code.as_str()))
    }

    /// Resolves if the server stops on its own (a store failure).
    pub async fn failed(&mut self) -> anyhow::Error {
        match (&mut self.actor).await {
            Ok(Ok(())) => anyhow!("the hub stopped"),
            Ok(Err(e)) => anyhow!(e).context("the store failed"),
            Err(e) => anyhow!(e).context("the hub task failed"),
        }
    }

    /// Stops accepting, lets the store commit what it has (acknowledging it),
    /// closes every connection with a reason, and waits for them briefly.
    pub async fn shutdown(self) -> Result<()> {
        self.endpoint.set_server_config(None);
        self.drops.abort();
        if let Some((_, m)) = &self.metrics {
            m.abort();
        }
        for (_, accept) in self.telnet.iter().chain(&self.web) {
            accept.abort();
        }
        if let Some(acme) = &self.acme {
            acme.abort();
        }
        self.sweeper.abort();
        if let Some(backups) = &self.backups {
            backups.abort();
        }
        let _ = self.hub.send(ToHub::Shutdown).await;
        let result = if self.actor.is_finished() { Ok(()) } else { self.actor.await? };
        let writer = self.writer;
        tokio::task::spawn_blocking(move || writer.join())
            .await?
            .map_err(|_| anyhow!("the store writer panicked"))?;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.endpoint.wait_idle()).await;
        self.endpoint.close(0u32.into(), b"shutdown");
        let _ = self.accept.await;
        result.context("the store failed")
    }
}

/// Binds the telnet gateway. Telnet is cleartext, so only loopback is
/// allowed unless the operator opted in; then it says so in the log.
async fn start_telnet(
    config: &telnet::TelnetConfig,
    edge: &Arc<edge::Edge>,
    fingerprint: &str,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    match &config.guests {
        None if !config.passwords => {
            return Err(anyhow!("the telnet gateway would let nobody in: offer passwords, guests, or both"));
        }
        Some(g) if g.community.trim().is_empty() => {
            return Err(anyhow!("telnet guest access needs the name of the community guests join"));
        }
        Some(g) => tracing::info!(
            community = %g.community,
            can_send = g.can_send,
            "telnet guests may come in without an account"
        ),
        None => {}
    }
    let ip = config.listen.ip();
    if !ip.is_loopback() {
        if !config.allow_public {
            return Err(anyhow!(
                "telnet is unencrypted, so it listens on loopback only; to serve it on {} anyway, \
                 opt in (`--telnet-public`, or `public = true` under [telnet])",
                config.listen
            ));
        }
        tracing::warn!(
            listen = %config.listen,
            "the telnet gateway is open beyond this machine: everything its users type, passwords \
             included, crosses the network in clear"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening for telnet on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let gateway = Arc::new(telnet::Gateway::new(config, fingerprint));
    Ok((addr, tokio::spawn(telnet::accept_loop(listener, edge.clone(), gateway))))
}

/// The UDP port's TLS: kith's own protocol for native clients, HTTP/3 for
/// browsers' WebTransport, each with the certificate [`webcert::Resolver`]
/// picks.
fn server_config(
    certs: Arc<webcert::Resolver>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<quinn::ServerConfig> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    tls.alpn_protocols = vec![kith_proto::ALPN.to_vec(), edge::webtransport::ALPN.to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    config.transport_config(Arc::new(quic::transport_config()));
    Ok(config)
}

/// The TCP port's TLS (HTTPS): a CA-signed certificate if there is one,
/// else the server's identity, which browsers accept once by hand; and the
/// ACME challenge (`acme-tls/1`) while a certificate is being obtained.
fn https_config(
    certs: &Arc<webcert::Resolver>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<rustls::ServerConfig>> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certs.https());
    tls.alpn_protocols = vec![b"http/1.1".to_vec(), webcert::ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(tls))
}

/// Binds the UDP socket and, for the web client, TCP on the same port
/// number. With port 0 the kernel picks the UDP port; should that number be
/// taken on TCP, another pair is tried.
async fn bind_ports(config: &Config) -> Result<(std::net::UdpSocket, Option<tokio::net::TcpListener>)> {
    let context = || format!("listening on {}", config.listen);
    for _ in 0..16 {
        let socket = bind_udp(config.listen, config.udp_buffer).with_context(context)?;
        if !config.web {
            return Ok((socket, None));
        }
        let port = socket.local_addr()?.port();
        let addr = SocketAddr::new(config.listen.ip(), port);
        match tokio::net::TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((socket, Some(tcp))),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && config.listen.port() == 0 => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("listening for HTTPS on TCP {addr} (the web client)"));
            }
        }
    }
    Err(anyhow!("no port was free on both UDP and TCP")).with_context(context)
}

/// Takes `DATA/kith.lock` for as long as the returned file stays open, and
/// writes this process's id in it. Two servers on one database would each
/// believe their memory is the truth (edits answered "no such message",
/// ids minted twice); the second one is refused, naming the first.
/// The hub's settings from the server's, but for what only a start knows
/// (the setup code, the address invites name, the identity).
fn hub_config(config: &Config) -> HubConfig {
    HubConfig {
        open_registration: config.open_registration,
        resume_grace_ms: config.resume_grace.as_millis().try_into().unwrap_or(u64::MAX),
        message_rate: Some(config.limits.messages),
        guest_message_rate: Some(config.limits.guest_messages),
        typing_rate: Some(config.limits.typing),
        read_rate: Some(config.limits.reads),
        change_rate: Some(config.limits.changes),
        profile_rate: Some(config.limits.profile),
        group_rate: Some(config.limits.groups),
        voice_rate: Some(config.limits.voice),
        answer_rate: Some(config.limits.answers),
        voice_room: config.limits.voice_room,
        full_member_list: config.limits.member_list,
        recent_messages: config.limits.recent_messages,
        community_creation: config.community_creation,
        web: config.web,
        max_attachment_bytes: config.limits.attachment_bytes,
        max_message_attachment_bytes: config.limits.message_attachment_bytes,
        user_files_quota: config.limits.attachment_quota_per_user,
        community_files_quota: config.limits.attachment_quota_per_community,
        ..HubConfig::default()
    }
}

/// While the server owner has no password (an imported account), a fresh
/// reset code for them at every start, stored before the hub loads `state`:
/// the owner is the one who hands out codes, so the server must hand them
/// theirs. Returns their name and the code.
fn owner_reset_code(db: &std::path::Path, state: &mut StoredState) -> Result<Option<(String, String)>> {
    use rusqlite::OptionalExtension as _;
    let conn = rusqlite::Connection::open(db)?;
    let owner: Option<(i64, String)> = conn
        .query_row("SELECT id, username FROM users WHERE server_owner AND password_hash = ''", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((id, name)) = owner else { return Ok(None) };
    let code = auth::grouped_code();
    let hash = auth::token_hash(&kith_core::request::code_key(&code));
    let until = actor::now().plus_ms(kith_core::hub::RESET_CODE_MS);
    conn.execute(
        "INSERT OR REPLACE INTO reset_codes (user_id, hash, expires_at) VALUES (?1, ?2, ?3)",
        rusqlite::params![id, &hash.0[..], until.0 as i64],
    )?;
    let user = kith_core::UserId(id as u64);
    state.reset_codes.retain(|(u, _, _)| *u != user);
    state.reset_codes.push((user, hash, until));
    Ok(Some((name, code)))
}

/// The file in the data directory that says where a running server listens
/// (`{"pid", "quic", "https", "public"}`).
pub const SERVING: &str = "kith.serving";

pub(crate) fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("kith.lock");
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let who = match pid.trim() {
                "" => "another kith serve".to_owned(),
                pid => format!("another kith serve (pid {pid})"),
            };
            return Err(anyhow!(
                "{who} is already using {}; stop it first, or give this one its own --data",
                dir.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    file.sync_all()?;
    Ok(file)
}

/// Creates the data directory 0700, or makes an existing one so: it holds
/// password hashes, tokens and every message. A directory others could read
/// is fixed, and the log says so.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making {} private", dir.display()))?;
            tracing::warn!(
                dir = %dir.display(),
                was = format!("{mode:o}"),
                "the data directory was open to other users; it is now 0700 (owner only)"
            );
        }
    }
    Ok(())
}

/// The database and its WAL and shared-memory files, 0600. SQLite gives the
/// -wal and -shm files the database file's permissions, so creating that
/// one 0600 covers all three; existing ones are fixed.
pub(crate) fn private_database(db: &std::path::Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(db)
            .with_context(|| format!("creating {}", db.display()))?;
        for suffix in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
            if let Ok(meta) = std::fs::metadata(&path)
                && meta.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("making {} private", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Where others probably reach a server bound to `bound`, when the operator
/// did not say: the address it is bound to, or — bound to every interface —
/// the address this machine would use to reach the outside (found by
/// "connecting" a UDP socket, which sends nothing), or else `localhost`,
/// which the caller should warn about.
pub fn guess_public_address(bound: SocketAddr) -> String {
    let port = bound.port();
    if !bound.ip().is_unspecified() {
        return SocketAddr::new(bound.ip(), port).to_string();
    }
    // Documentation-range addresses: a route lookup, never a packet.
    for probe in ["192.0.2.1:9", "[2001:db8::1]:9"] {
        let local = if probe.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
        let found = std::net::UdpSocket::bind(local)
            .and_then(|s| s.connect(probe).and_then(|()| s.local_addr()))
            .map(|a| a.ip());
        if let Ok(ip) = found
            && !ip.is_unspecified()
            && !ip.is_loopback()
        {
            return SocketAddr::new(ip, port).to_string();
        }
    }
    format!("localhost:{port}")
}

/// A UDP socket with `buffer` bytes of kernel buffer each way, or as much as
/// the kernel allows (it caps what an unprivileged process gets at
/// `net.core.rmem_max` / `wmem_max`; a smaller buffer is logged, not fatal).
fn bind_udp(addr: SocketAddr, buffer: usize) -> std::io::Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    // Linux reports twice what it grants (bookkeeping included).
    let granted = socket.recv_buffer_size().unwrap_or(0) / if cfg!(target_os = "linux") { 2 } else { 1 };
    if granted < buffer {
        tracing::warn!(
            wanted = buffer,
            granted,
            "the kernel capped the UDP receive buffer; under heavy load datagrams may be dropped \
             (raise net.core.rmem_max and net.core.wmem_max)"
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Datagrams the kernel dropped for the UDP socket on `port` because its
/// receive buffer was full (Linux: the `drops` column of /proc/net/udp{,6}).
pub fn udp_drops(port: u16) -> Option<u64> {
    let port = format!(":{port:04X} ");
    let mut found = None;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1).unwrap_or("");
            if format!("{local} ").contains(&port) {
                let drops: u64 = line.split_whitespace().last().and_then(|d| d.parse().ok()).unwrap_or(0);
                found = Some(found.unwrap_or(0) + drops);
            }
        }
    }
    found
}

/// Says, at most once a minute, when the kernel dropped datagrams.
async fn watch_udp_drops(port: u16) {
    let mut last = udp_drops(port).unwrap_or(0);
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    every.tick().await;
    loop {
        every.tick().await;
        let Some(now) = udp_drops(port) else { return };
        if now > last {
            tracing::warn!(
                dropped = now - last,
                "the UDP receive buffer overflowed in the last minute; raise udp_buffer in kith.toml \
                 (and net.core.rmem_max)"
            );
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn the_kernels_drop_count_is_found_for_a_bound_socket() {
        let socket = super::bind_udp("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let port = socket.local_addr().unwrap().port();
        assert_eq!(super::udp_drops(port), Some(0));
        assert_eq!(super::udp_drops(1), None, "no socket there");
    }
}
