//! The server under load: a `kith serve` child process with a temporary
//! data directory and the rate limits lifted, and the accounts the benches
//! drive it with.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use kith_client::proto::{self as v1, client_message::Request, reply::Result as R};
use kith_client::{Client, Connector, Trust};
use serde_json::json;
use tokio::sync::Semaphore;

/// A `kith serve` child on 127.0.0.1:0 with a temporary data directory.
pub struct ServerProcess {
    child: Reaped,
    pub addr: String,
    fingerprint: String,
    setup_code: String,
    /// `--sync`: full or normal.
    sync: String,
    /// The telnet gateway's address, if it was started with one.
    pub telnet: Option<String>,
    /// `https://HOST:PORT/`, the web client, unless started `--no-web`.
    pub web: Option<String>,
    data: tempfile::TempDir,
}

/// A server the bench started (kith, or one it is compared with): killed
/// and reaped when dropped, measured from /proc.
#[derive(Debug)]
pub struct Reaped(pub Child);

impl Reaped {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// (user + system CPU seconds, resident memory in KiB) from /proc.
    pub fn usage(&self) -> (f64, u64) {
        proc_usage(&self.0.id().to_string())
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ServerProcess {
    /// Datagrams the kernel dropped at the server's UDP socket so far.
    pub fn udp_drops(&self) -> Option<u64> {
        let port = self.addr.rsplit_once(':')?.1.parse().ok()?;
        kith_server::udp_drops(port)
    }

    pub fn start(sync: &str) -> Result<Self> {
        Self::start_with(sync, &[], &[])
    }

    /// With extra `kith serve` flags and environment variables.
    pub fn start_with(sync: &str, flags: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        let data = tempfile::tempdir()?;
        // The load comes from one address and a few accounts, far faster than
        // people: lift the rate limits (connection cap included).
        let off = "{ burst = 0, every_ms = 1 }";
        let limits = [
            "messages",
            "typing",
            "reads",
            "changes",
            "profile",
            "groups",
            "voice",
            "answers",
            "logins_per_account",
            "logins_per_ip",
            "connects_per_ip",
            "handshakes",
        ]
        .map(|k| format!("{k} = {off}\n"))
        .concat();
        std::fs::write(
            data.path().join("kith.toml"),
            format!(
                "[limits]\n{limits}connections_per_ip = 1000000\nvoice_room = 1000\nattachment_bytes = 1099511627776\n"
            ),
        )?;
        let mut child = spawn(data.path(), sync, flags, env, Stdio::piped())?;
        let stderr = BufReader::new(child.stderr.take().context("stderr")?);
        let ready = announced(&mut child)?;
        let setup_code = stderr
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split("--setup-code ").nth(1).map(|c| c.trim().to_owned()))
            .context("no setup code")?;
        Self::running(child, &ready, setup_code, sync.to_owned(), data)
    }

    /// Stops the server and keeps its data directory, to change it with
    /// no server running and start the server on it again.
    pub fn stop(self) -> Stopped {
        drop(self.child);
        Stopped { data: self.data, setup_code: self.setup_code, sync: self.sync }
    }

    fn running(
        child: Child,
        ready: &str,
        setup_code: String,
        sync: String,
        data: tempfile::TempDir,
    ) -> Result<Self> {
        let field = |key: &str| ready.split_whitespace().find_map(|w| w.strip_prefix(key)).map(str::to_owned);
        let (Some(addr), Some(fingerprint)) = (field("quic="), field("fingerprint=")) else {
            bail!("kith serve did not announce itself: {ready:?}");
        };
        crate::pin::server(child.id()).context("pinning the server to its core")?;
        let telnet = field("telnet=");
        let web = field("web=");
        Ok(Self { child: Reaped(child), addr, fingerprint, setup_code, sync, telnet, web, data })
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// `sha256:<hex>` of the server's identity.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// (user + system CPU seconds, resident memory in KiB) from /proc.
    pub fn usage(&self) -> (f64, u64) {
        self.child.usage()
    }
}

/// A stopped server's data directory.
pub struct Stopped {
    data: tempfile::TempDir,
    setup_code: String,
    sync: String,
}

impl Stopped {
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// Starts `kith serve` on the directory again, and how long it took
    /// from exec to announcing itself ready.
    pub fn start(self) -> Result<(ServerProcess, std::time::Duration)> {
        let started = std::time::Instant::now();
        // No setup code to read this time, and its banner would repeat at
        // every start: its stderr goes nowhere (a failed start still shows,
        // as a missing ready line).
        let mut child = spawn(self.data.path(), &self.sync, &[], &[], Stdio::null())?;
        let ready = announced(&mut child)?;
        let took = started.elapsed();
        Ok((ServerProcess::running(child, &ready, self.setup_code, self.sync, self.data)?, took))
    }
}

/// `kith serve` on `data`, on 127.0.0.1:0, with its stdout piped.
fn spawn(
    data: &std::path::Path,
    sync: &str,
    flags: &[&str],
    env: &[(&str, &str)],
    stderr: Stdio,
) -> Result<Child> {
    Command::new(kith_binary()?)
        .args(["serve", "--listen", "127.0.0.1:0", "--sync", sync, "--data"])
        .arg(data)
        .args(flags)
        .envs(env.iter().copied())
        .env("KITH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .context("starting kith serve")
}

/// The line a server prints on stdout once it is ready.
fn announced(child: &mut Child) -> Result<String> {
    let mut ready = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut ready)?;
    Ok(ready)
}

/// (user + system CPU seconds, resident memory in KiB) of a process, from /proc.
pub fn proc_usage(pid: &str) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports in USER_HZ, which is 100 on every mainstream build.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (cpu, rss)
}

/// The owner, a community, and `accounts` more registered users' tokens.
pub struct World {
    pub owner: Client,
    pub community: u64,
    pub general: u64,
    /// An invite to the community (any number of uses).
    pub invite: String,
    pub tokens: Vec<String>,
    pub connectors: Vec<Connector>,
}

pub const PASSWORD: &str = "benchmark password";

pub async fn world(server: &ServerProcess, accounts: usize, connectors: usize) -> Result<World> {
    let connectors: Vec<Connector> = (0..connectors.max(1))
        .map(|_| {
            // The generator's sockets take a server's worth of traffic too:
            // an OS-default buffer would drop datagrams and blame the server.
            let options = kith_client::ConnectorOptions {
                recv_buffer: Some(4 << 20),
                send_buffer: Some(4 << 20),
                ..Default::default()
            };
            Connector::with_options(Trust::Pin(server.fingerprint.clone()), false, options)
        })
        .collect::<Result<_, _>>()?;
    let (owner, _) = connectors[0].connect(&server.addr).await?;
    let setup = v1::register_request::Credential::SetupCode(server.setup_code.clone());
    let ready = owner.register("owner", PASSWORD, Some(setup)).await?;
    let R::Community(c) =
        owner.request(Request::CreateCommunity(v1::CreateCommunityRequest { name: "Bench".into() })).await?
    else {
        bail!("unexpected answer");
    };
    let invite = v1::CreateInviteRequest { community_id: c.id, max_uses: 0, expires_in_ms: 0 };
    let R::Invite(invite) = owner.request(Request::CreateInvite(invite)).await? else {
        bail!("unexpected answer")
    };
    let mut tokens = vec![ready.token];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..accounts {
        // As many sign-ups in flight as connectors: the server refuses
        // password hashing beyond its queue, as it would a crowd.
        if tasks.len() >= connectors.len()
            && let Some(token) = tasks.join_next().await
        {
            tokens.push(token??);
        }
        let (client, _) = connectors[i % connectors.len()].connect(&server.addr).await?;
        let code = invite.code.clone();
        tasks.spawn(async move {
            let credential = v1::register_request::Credential::InviteCode(code);
            client.register(&format!("user{i}"), PASSWORD, Some(credential)).await.map(|r| r.token)
        });
    }
    while let Some(token) = tasks.join_next().await {
        tokens.push(token??);
    }
    Ok(World { owner, community: c.id, general: c.channels[0].id, invite: invite.code, tokens, connectors })
}

/// `n` authenticated connections, opened `concurrency` at a time; the
/// first `accounts + 1` are each a different account.
pub async fn sessions(
    server: &ServerProcess,
    world: &World,
    n: usize,
    concurrency: usize,
) -> Result<Vec<Client>> {
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await?;
        let connect = world.connectors[i % world.connectors.len()].connect(&server.addr);
        let token = world.tokens[i % world.tokens.len()].clone();
        let (client, _) = connect.await?;
        tasks.spawn(async move {
            let _permit = permit;
            client.authenticate(&token).await.map(|_| client)
        });
    }
    let mut clients = Vec::with_capacity(n);
    while let Some(client) = tasks.join_next().await {
        clients.push(client??);
    }
    Ok(clients)
}

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

pub fn quantiles_ms(h: &Histogram<u64>) -> serde_json::Value {
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    json!({"p50": q(0.50), "p99": q(0.99), "p999": q(0.999), "max": h.max() as f64 / 1000.0, "count": h.len()})
}

/// The `kith` binary to serve with: `KITH_BIN`, or the one beside this
/// program (cargo puts them in the same directory).
pub fn kith_binary() -> Result<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("KITH_BIN") {
        return Ok(path.into());
    }
    let beside = std::env::current_exe()?.with_file_name(format!("kith{}", std::env::consts::EXE_SUFFIX));
    if beside.exists() {
        return Ok(beside);
    }
    bail!("no kith binary beside kith-bench: build it (cargo build --release) or set KITH_BIN")
}
