//! `kith doctor`: checks a server's setup — its data directory (through
//! `kith_server::doctor`), its settings, whether it answers where it should,
//! and its backups — and says what to fix.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use kith_client::proto::{self as v1, client_message::Request};
use kith_client::{Client, Trust};
use kith_server::doctor::{Finding, Level};

pub async fn run(data: &Path, config: Option<&Path>, timeout: Duration) -> Result<()> {
    let now = kith_server::actor::now();
    let mut found = Vec::new();
    let settings = match crate::serve::file_settings(data, config) {
        Ok(s) => {
            found.push(Finding::ok("the settings (kith.toml) read cleanly"));
            Some(s)
        }
        Err(e) => {
            found.push(Finding::fail(
                format!("the settings cannot be read: {e:#}"),
                "fix the file; `kith serve --print-config` shows every key",
            ));
            None
        }
    };
    let reserve = settings.as_ref().map_or(1 << 30, |s| s.disk_reserve);
    found.extend(kith_server::doctor::check_data(data, reserve, (now.0 / 1000) as i64));
    if let Some(s) = &settings {
        if kith_server::doctor::running(data) {
            found.extend(reachable(data, s, timeout).await);
        } else {
            found.push(Finding::warn(
                "whether it answers was not checked: no server is running on this data directory",
                "start it (`kith serve`), then run `kith doctor` again",
            ));
        }
        if let Some(b) = &s.backups {
            found.push(backups(b, now.0));
        } else {
            found.push(Finding::warn(
                "no scheduled backups",
                "add [backups] to kith.toml (`kith serve --print-config` shows it), or run `kith backup` from cron",
            ));
        }
    }
    for f in &found {
        let tag = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{tag}  {}", f.what);
        if let Some(fix) = &f.fix {
            println!("      → {fix}");
        }
    }
    let failed = found.iter().filter(|f| f.level == Level::Fail).count();
    if failed > 0 {
        bail!("{failed} problem{} to fix", if failed == 1 { "" } else { "s" });
    }
    Ok(())
}

/// Whether the running server answers on this machine, and at the
/// address its invites name.
async fn reachable(data: &Path, s: &crate::serve::Settings, timeout: Duration) -> Vec<Finding> {
    let mut out = Vec::new();
    // Where it really listens (it wrote that at start), else its settings'.
    let serving = kith_server::doctor::serving(data);
    let (quic, https) = serving
        .as_ref()
        .map(|v| (v.quic.parse().unwrap_or(s.listen), v.https.as_deref().and_then(|h| h.parse().ok())))
        .unwrap_or((s.listen, s.web.then_some(s.listen)));
    let public = serving.map(|v| v.public).or_else(|| s.public_address.clone());
    let here = |a: std::net::SocketAddr| {
        if a.ip().is_unspecified() { format!("127.0.0.1:{}", a.port()) } else { a.to_string() }
    };
    let local = here(quic);
    let port = quic.port();
    let pinned = kith_server::identity::Identity::from_files(&data.join("cert.pem"), &data.join("key.pem"))
        .ok()
        .map(|i| i.fingerprint);
    let trust = pinned.clone().map_or(Trust::FirstUse, Trust::Pin);
    match answers(&local, trust, timeout).await {
        Ok(()) => out.push(Finding::ok(format!("it answers on QUIC at {local} (UDP {port})"))),
        Err(e) => out.push(Finding::fail(
            format!("it does not answer on QUIC at {local}: {e}"),
            "check its log; `listen` in kith.toml says where it listens",
        )),
    }
    if let Some(https) = https.map(here) {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&https)).await {
            Ok(Ok(_)) => out.push(Finding::ok(format!("the browser client's HTTPS port is open at {https}"))),
            _ => out.push(Finding::fail(
                format!("nothing listens for HTTPS at {https}"),
                "another program may hold the TCP port; see the server's log",
            )),
        }
    }
    match &public {
        None => {}
        Some(public) if kith_proto::invite::is_local_address(public) => out.push(Finding::warn(
            format!("invites name {public}, which works only on this machine"),
            "set public_address in kith.toml (or --public-address) to the name or address others reach it at",
        )),
        Some(public) => {
            let public = kith_proto::invite::with_default_port(public);
            // A CA-signed certificate (or another identity) is fine here:
            // the address is what is being checked.
            match answers(&public, Trust::FirstUse, timeout).await {
                Ok(()) => out.push(Finding::ok(format!("it answers at its public address {public}"))),
                Err(e) => out.push(Finding::warn(
                    format!("it does not answer at its public address {public} from this machine: {e}"),
                    format!(
                        "if people elsewhere cannot reach it either, open UDP and TCP {} in the firewall or \
                         forward them on the router (some routers cannot loop back to their own address)",
                        public.rsplit_once(':').map_or("7443", |(_, p)| p)
                    ),
                )),
            }
        }
    }
    out
}

/// Connects and asks how to join: the cheapest full round trip.
async fn answers(addr: &str, trust: Trust, timeout: Duration) -> Result<(), String> {
    let (client, _) = Client::connect_within(addr, trust, timeout).await.map_err(|e| e.to_string())?;
    let answer =
        tokio::time::timeout(timeout, client.request(Request::ServerInfo(v1::ServerInfoRequest {}))).await;
    client.close().await;
    match answer {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in time".into()),
    }
}

/// How old the newest scheduled backup is.
fn backups(schedule: &kith_server::backup::Schedule, now_ms: u64) -> Finding {
    let newest = std::fs::read_dir(&schedule.dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| kith_server::backup::manifest(&e.path()).ok())
        .map(|m| m.created_at_ms)
        .max();
    let every_ms = schedule.every.as_millis() as u64;
    match newest {
        None => Finding::warn(
            format!("no scheduled backup in {} yet", schedule.dir.display()),
            "the first is made one period after the server starts; check its log if that has passed",
        ),
        Some(at) if now_ms.saturating_sub(at) > 2 * every_ms => Finding::warn(
            format!(
                "the newest backup in {} is {} old",
                schedule.dir.display(),
                humantime::format_duration(Duration::from_secs(now_ms.saturating_sub(at) / 1000))
            ),
            "scheduled backups are failing: see the server's log and kith_backup_failures_total",
        ),
        Some(at) => Finding::ok(format!(
            "the newest backup in {} is {} old",
            schedule.dir.display(),
            humantime::format_duration(Duration::from_secs(now_ms.saturating_sub(at) / 1000))
        )),
    }
}
