//! `kith doctor`: what can be checked of a server's setup from its data
//! directory, whether or not it is running — permissions, the database's
//! integrity and schema, disk space, the TLS identity's validity, an owner
//! — each with what to do about it. (The CLI adds what needs the network
//! and the settings: reachability, backups.)

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check's outcome, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(what: impl Into<String>) -> Self {
        Finding { level: Level::Ok, what: what.into(), fix: None }
    }
    pub fn warn(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding { level: Level::Warn, what: what.into(), fix: Some(fix.into()) }
    }
    pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding { level: Level::Fail, what: what.into(), fix: Some(fix.into()) }
    }
}

/// A certificate this close to its end is worth a warning.
const CERT_WARN_DAYS: i64 = 21;

/// Checks the data directory `data`; `reserve` is the free space uploads
/// keep (`[limits] disk_reserve_bytes`), `now_secs` the time.
pub fn check_data(data: &Path, reserve: u64, now_secs: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    let shown = data.display();
    if !data.is_dir() {
        out.push(Finding::fail(
            format!("there is no data directory at {shown}"),
            "run `kith serve` once to make one, or point at it with --data",
        ));
        return out;
    }
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(data) {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(Finding::warn(
                format!("{shown} is open to other users (mode {mode:o}): it holds every message and the server's key"),
                format!("chmod 700 {shown}"),
            ));
        } else {
            out.push(Finding::ok(format!("{shown} is private (mode {mode:o})")));
        }
    }
    if running(data) {
        out.push(Finding::ok("a server is running on it"));
    } else {
        out.push(Finding::ok("no server is running on it now"));
    }
    out.extend(check_database(data));
    out.push(check_disk(data, reserve));
    out.extend(check_identity(data, now_secs));
    out
}

/// Where the server running on `data` listens, as it wrote at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    pub quic: String,
    pub https: Option<String>,
    /// The address its invites name.
    pub public: String,
}

pub fn serving(data: &Path) -> Option<Serving> {
    let text = std::fs::read_to_string(data.join(crate::SERVING)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(Serving {
        quic: v["quic"].as_str()?.to_owned(),
        https: v["https"].as_str().map(str::to_owned),
        public: v["public"].as_str()?.to_owned(),
    })
}

/// Whether a server holds the data directory's lock.
pub fn running(data: &Path) -> bool {
    data.join("kith.lock").exists() && crate::lock_data_dir(data).is_err()
}

fn check_database(data: &Path) -> Vec<Finding> {
    let path = data.join("kith.db");
    if !path.exists() {
        return vec![Finding::fail(
            format!("{} holds no database (kith.db)", data.display()),
            "run `kith serve` on it once, or restore a backup with `kith restore`",
        )];
    }
    let db = match rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(db) => db,
        Err(e) => {
            return vec![Finding::fail(format!("kith.db cannot be opened: {e}"), "check its owner and mode")];
        }
    };
    let _ = db.busy_timeout(std::time::Duration::from_secs(10));
    let mut out = Vec::new();
    let version: rusqlite::Result<i64> = db.pragma_query_value(None, "user_version", |r| r.get(0));
    let known = crate::store::sqlite::schema_version();
    match version {
        Ok(v) if v == known => out.push(Finding::ok(format!("the database is at this kith's schema ({v})"))),
        Ok(v) if v < known => out.push(Finding::warn(
            format!("the database is at schema {v}; this kith writes {known}"),
            "the next `kith serve` upgrades it: take a `kith backup` first",
        )),
        Ok(v) => out.push(Finding::fail(
            format!("the database was written by a newer kith (schema {v}; this one knows {known})"),
            "run the newer kith that wrote it",
        )),
        Err(e) => out.push(Finding::fail(format!("the database cannot be read: {e}"), "restore a backup")),
    }
    let verdict: rusqlite::Result<String> = db.query_row("PRAGMA quick_check", [], |r| r.get(0));
    match verdict {
        Ok(v) if v == "ok" => out.push(Finding::ok("the database passes its integrity check")),
        Ok(v) => out.push(Finding::fail(
            format!("the database is damaged: {v}"),
            "stop the server and `kith restore` the newest backup (`kith backup` often, or [backups] in kith.toml)",
        )),
        Err(e) => out.push(Finding::fail(format!("the integrity check could not run: {e}"), "restore a backup")),
    }
    let owners: rusqlite::Result<i64> =
        db.query_row("SELECT COUNT(*) FROM users WHERE server_owner", [], |r| r.get(0));
    if owners.is_ok_and(|n| n == 0) {
        out.push(Finding::warn(
            "the server has no owner yet",
            "register with the setup code `kith serve` prints when it starts",
        ));
    }
    out
}

fn check_disk(data: &Path, reserve: u64) -> Finding {
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    match fs4::available_space(data) {
        Ok(free) if free < reserve => Finding::fail(
            format!(
                "{:.1} GiB free, under the {:.1} GiB kept in reserve: uploads are refused",
                gib(free),
                gib(reserve)
            ),
            "free space on that disk, or lower [limits] disk_reserve_bytes",
        ),
        Ok(free) if free < reserve.saturating_mul(4) => Finding::warn(
            format!("{:.1} GiB free: uploads stop at {:.1} GiB", gib(free), gib(reserve)),
            "free space on that disk soon",
        ),
        Ok(free) => Finding::ok(format!("{:.1} GiB free on its disk", gib(free))),
        Err(e) => Finding::warn(format!("the free space cannot be read: {e}"), "check the disk"),
    }
}

/// The generated identity (`cert.pem`) and an ACME certificate, if any.
fn check_identity(data: &Path, now_secs: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    let acme = data.join("acme");
    let mut files: Vec<std::path::PathBuf> = vec![data.join("cert.pem")];
    if let Ok(entries) = std::fs::read_dir(&acme) {
        files.extend(
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| {
                p.extension().is_some_and(|x| x == "pem") && !p.to_string_lossy().contains("key")
            }),
        );
    }
    for path in files {
        if !path.exists() {
            out.push(Finding::warn(
                format!("{} is missing", path.display()),
                "`kith serve` makes a new identity, and every client will be told the server changed: \
                 restore cert.pem and key.pem from a backup if you have them",
            ));
            continue;
        }
        out.push(check_certificate(&path, now_secs));
    }
    out
}

fn check_certificate(path: &Path, now_secs: i64) -> Finding {
    let name = path.display();
    let Some(leaf) = CertificateDer::pem_file_iter(path).ok().and_then(|mut certs| certs.next()?.ok()) else {
        return Finding::fail(format!("{name} holds no readable certificate"), "restore it from a backup");
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&leaf) else {
        return Finding::fail(format!("{name} is not a valid certificate"), "restore it from a backup");
    };
    let not_after = cert.validity().not_after.timestamp();
    let days = (not_after - now_secs) / 86_400;
    let until = chrono::DateTime::from_timestamp(not_after, 0)
        .map_or(String::new(), |t| t.format("%Y-%m-%d").to_string());
    let fingerprint = kith_proto::fingerprint(&leaf);
    if not_after <= now_secs {
        Finding::fail(
            format!("{name} expired {} days ago", -days),
            "for the generated identity: clients pin it, so it keeps working for them; for a CA's, renew it \
             (with --domain, kith renews by itself: check its log)",
        )
    } else if days < CERT_WARN_DAYS {
        Finding::warn(
            format!("{name} expires in {days} days"),
            "renew it (with --domain, kith renews with a third of its life left: check the log if it has not)",
        )
    } else {
        Finding::ok(format!("{name} is valid until {until} ({fingerprint})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_data_directory_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let found = check_data(&dir.path().join("nothing"), 0, 0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].level, Level::Fail);
        assert!(found[0].fix.as_deref().unwrap().contains("kith serve"));
    }

    #[test]
    fn a_damaged_database_and_a_missing_identity_are_named_with_their_fix() {
        let dir = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("kith.db"), b"this is not a database at all, not even close").unwrap();
        let found = check_data(dir.path(), 0, 0);
        let said = |level: Level, part: &str| found.iter().any(|f| f.level == level && f.what.contains(part));
        assert!(said(Level::Warn, "open to other users"), "{found:#?}");
        assert!(said(Level::Fail, "cannot be read") || said(Level::Fail, "damaged"), "{found:#?}");
        assert!(said(Level::Warn, "cert.pem is missing"), "{found:#?}");
    }
}
