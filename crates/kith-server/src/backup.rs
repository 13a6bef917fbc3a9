//! Backups of a data directory, taken while the server runs, and putting
//! one back while it does not.
//!
//! A backup is a directory: `kith.db` (a consistent copy of the database,
//! taken in one read transaction with `VACUUM INTO`, so the server keeps
//! accepting messages meanwhile), `files/` (every attachment the copy names,
//! each checked against its BLAKE3, and the previews), the server's identity
//! (`cert.pem`, `key.pem`: clients see the same server after a restore),
//! `kith.toml` if there is one, and `manifest.json` saying what it holds.
//!
//! Attachments are content-addressed and never change once stored, so
//! copying the ones the database copy names, after taking it, gives a
//! consistent whole — provided none is swept meanwhile: the backup leaves
//! `files/sweep.paused` in the data directory while it copies, and the
//! server's sweep waits (a marker older than a day is ignored, so a crashed
//! backup cannot stop sweeping for good).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

/// The marker that pauses the file store's sweep, under `DATA/files/`.
pub const SWEEP_PAUSED: &str = "sweep.paused";
/// A pause marker older than this is a crashed backup's: ignored.
pub const PAUSE_LIMIT: Duration = Duration::from_secs(24 * 3600);
const FORMAT: u32 = 1;

/// What `manifest.json` says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// The backup format (this is 1).
    pub format: u32,
    pub kith_version: String,
    pub created_at_ms: u64,
    /// Attachments held, and their bytes.
    pub files: u64,
    pub file_bytes: u64,
    pub database_bytes: u64,
}

/// Whether the sweep should wait: a backup is copying files.
pub fn sweep_paused(files_root: &Path, now: SystemTime) -> bool {
    std::fs::metadata(files_root.join(SWEEP_PAUSED))
        .and_then(|m| m.modified())
        .is_ok_and(|at| now.duration_since(at).unwrap_or_default() < PAUSE_LIMIT)
}

/// Removes the sweep's pause marker when the backup ends, however it ends.
struct Pause(PathBuf);

impl Drop for Pause {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `files/blobs/xx/HEX` for a BLAKE3, under `root`.
fn blob_path(root: &Path, blake3: &[u8]) -> PathBuf {
    let hex = hex(blake3);
    root.join("files").join("blobs").join(&hex[..2]).join(hex)
}

fn blake3_of(path: &Path) -> Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?)?;
    Ok(*hasher.finalize().as_bytes())
}

/// The distinct attachments a database names.
fn named_files(db: &rusqlite::Connection) -> Result<Vec<Vec<u8>>> {
    let mut q = db.prepare("SELECT DISTINCT blake3 FROM attachments")?;
    let rows = q.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn integrity(db: &rusqlite::Connection) -> Result<()> {
    let verdict: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        bail!("the database is damaged: {verdict}");
    }
    Ok(())
}

/// A private directory (0700), new or empty.
fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty; back up into a new directory", dir.display());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Copies `from` to `to` (creating its directory) and makes it durable,
/// gently: see [`paced_copy`].
fn copy_durably(from: &Path, to: &Path) -> Result<u64> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    paced_copy(from, to).with_context(|| format!("copying {}", from.display()))
}

/// Bytes written and made durable per step of [`paced_copy`], and the
/// pause after each.
const COPY_STEP: usize = 1 << 20;
const COPY_PAUSE: Duration = Duration::from_millis(2);

/// Copies a file and makes it durable without flooding the disk: hundreds
/// of megabytes flushed at once queue ahead of the server's own commits
/// (each an fsync of a few kilobytes), which then wait — back-to-back
/// backups of a 180 MB database took chat's p99 from 3 ms to 100 ms. A few
/// megabytes at a time, each synced, with a pause between, let the
/// commits slip in (BENCHMARKS.md, "Export and backup").
fn paced_copy(from: &Path, to: &Path) -> std::io::Result<u64> {
    use std::io::{Read as _, Write as _};
    let mut input = std::fs::File::open(from)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // As private as the original (the identity's key, the database).
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(
        &mut options,
        std::os::unix::fs::PermissionsExt::mode(&input.metadata()?.permissions()) & 0o777,
    );
    let mut output = options.open(to)?;
    let mut buf = vec![0u8; COPY_STEP];
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match input.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        output.write_all(&buf[..filled])?;
        output.sync_data()?;
        total += filled as u64;
        if filled < buf.len() {
            break;
        }
        std::thread::sleep(COPY_PAUSE);
    }
    output.sync_all()?;
    Ok(total)
}

/// Backs up the data directory `data` into `out` (new or empty) while a
/// server may be running on it.
pub fn backup(data: &Path, out: &Path) -> Result<Manifest> {
    let db_path = data.join("kith.db");
    if !db_path.exists() {
        bail!("{} holds no kith database", data.display());
    }
    fresh_dir(out)?;
    let files = data.join("files");
    std::fs::create_dir_all(&files)?;
    let marker = files.join(SWEEP_PAUSED);
    std::fs::write(&marker, std::process::id().to_string())?;
    let _pause = Pause(marker);

    // One read transaction: the copy is the database as of one instant,
    // and the server's writer is not held up.
    let source = rusqlite::Connection::open_with_flags(&db_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    source.busy_timeout(Duration::from_secs(30))?;
    // SQLite's own fsyncs of the copy would each flush all of it at once:
    // it is written unsynced beside the backup, then copied into place
    // gently (and the unsynced one removed before most of it reaches the disk).
    source.pragma_update(None, "synchronous", "OFF")?;
    let copy = out.join("kith.db");
    let unsynced = out.join("kith.db.unsynced");
    source
        .execute("VACUUM INTO ?1", [unsynced.to_str().context("the backup's path is not UTF-8")?])
        .context("copying the database")?;
    drop(source);
    let copied = paced_copy(&unsynced, &copy).context("writing the database's copy");
    std::fs::remove_file(&unsynced)?;
    copied?;
    // It holds password hashes and every message: for the owner alone, as
    // in the data directory.
    #[cfg(unix)]
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let db = rusqlite::Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    integrity(&db)?;

    let (mut count, mut bytes) = (0, 0);
    for blake3 in named_files(&db)? {
        let from = blob_path(data, &blake3);
        let to = blob_path(out, &blake3);
        copy_durably(&from, &to)?;
        if blake3_of(&to)?[..] != blake3[..] {
            bail!("{} does not match its BLAKE3: the data directory's copy is damaged", from.display());
        }
        let preview = data.join("files").join("previews").join(format!("{}.jpg", hex(&blake3)));
        if preview.exists() {
            copy_durably(
                &preview,
                &out.join("files").join("previews").join(format!("{}.jpg", hex(&blake3))),
            )?;
        }
        count += 1;
        bytes += std::fs::metadata(&to)?.len();
    }
    for name in ["cert.pem", "key.pem", "kith.toml"] {
        if data.join(name).exists() {
            copy_durably(&data.join(name), &out.join(name))?;
        }
    }
    let manifest = Manifest {
        format: FORMAT,
        kith_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at_ms: crate::actor::now().0,
        files: count,
        file_bytes: bytes,
        database_bytes: std::fs::metadata(&copy)?.len(),
    };
    std::fs::write(out.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::File::open(out.join("manifest.json"))?.sync_all()?;
    std::fs::File::open(out)?.sync_all()?;
    Ok(manifest)
}

/// Backups the server takes by itself (`[backups]` in kith.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Each backup is a new directory in here, `kith-<UTC time>`.
    pub dir: PathBuf,
    pub every: Duration,
    /// How many to keep: older ones are removed once a new one is whole.
    pub keep: usize,
}

/// The prefix of a scheduled backup's directory name; only these are ever
/// removed by retention.
const SCHEDULED: &str = "kith-";

/// Takes a backup of `data` into `schedule.dir` every `schedule.every` (the
/// first one period after start), then keeps the newest `schedule.keep`.
/// A failure is logged and counted, and the next one is tried on time.
pub async fn every(data: PathBuf, schedule: Schedule, metrics: std::sync::Arc<crate::metrics::Metrics>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + schedule.every, schedule.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (data, schedule) = (data.clone(), schedule.clone());
        let started = std::time::Instant::now();
        let done = tokio::task::spawn_blocking(move || scheduled(&data, &schedule)).await;
        match done {
            Ok(Ok((out, m, removed))) => {
                metrics.backup_done(crate::actor::now().0);
                tracing::info!(
                    into = %out.display(), files = m.files, bytes = m.database_bytes + m.file_bytes,
                    secs = started.elapsed().as_secs_f64(), removed, "backed up"
                );
            }
            Ok(Err(e)) => {
                metrics.backup_failed();
                tracing::error!(error = format!("{e:#}"), "a scheduled backup failed");
            }
            Err(e) => {
                metrics.backup_failed();
                tracing::error!(error = %e, "a scheduled backup failed");
            }
        }
    }
}

/// One scheduled backup and the retention after it: where it went, what
/// it holds, and how many old ones were removed.
pub fn scheduled(data: &Path, schedule: &Schedule) -> Result<(PathBuf, Manifest, usize)> {
    std::fs::create_dir_all(&schedule.dir).with_context(|| format!("creating {}", schedule.dir.display()))?;
    let now = chrono::DateTime::from_timestamp_millis(crate::actor::now().0 as i64).unwrap_or_default();
    let stamp = now.format("%Y%m%dT%H%M%S%.3fZ");
    let out = schedule.dir.join(format!("{SCHEDULED}{stamp}"));
    let manifest = match backup(data, &out) {
        Ok(m) => m,
        Err(e) => {
            // A half-made backup is not one.
            let _ = std::fs::remove_dir_all(&out);
            return Err(e);
        }
    };
    // Whole ones only, oldest first (the names sort by time).
    let mut whole: Vec<PathBuf> = std::fs::read_dir(&schedule.dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(SCHEDULED))
                && p.join("manifest.json").exists()
        })
        .collect();
    whole.sort();
    let excess = whole.len().saturating_sub(schedule.keep.max(1));
    for old in &whole[..excess] {
        std::fs::remove_dir_all(old).with_context(|| format!("removing the old backup {}", old.display()))?;
    }
    Ok((out, manifest, excess))
}

/// What a backup's `manifest.json` says, if it is a backup this kith reads.
pub fn manifest(backup: &Path) -> Result<Manifest> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(backup.join("manifest.json"))
            .with_context(|| format!("{} is not a kith backup (no manifest.json)", backup.display()))?,
    )
    .context("the backup's manifest.json is unreadable")?;
    if manifest.format != FORMAT {
        bail!("this backup is in format {}; this kith reads format {FORMAT}", manifest.format);
    }
    Ok(manifest)
}

/// Checks a backup whole: its manifest, its database's integrity, and
/// every attachment it names present and matching its BLAKE3.
pub fn verify(backup: &Path) -> Result<Manifest> {
    let manifest = manifest(backup)?;
    let db = rusqlite::Connection::open_with_flags(
        backup.join("kith.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .context("the backup has no readable kith.db")?;
    integrity(&db).context("the backup's database failed its integrity check")?;
    for blake3 in named_files(&db).context("the backup's database failed its integrity check")? {
        let path = blob_path(backup, &blake3);
        let got = blake3_of(&path).with_context(|| format!("the backup lacks the file {}", hex(&blake3)))?;
        if got[..] != blake3[..] {
            bail!("{} in the backup does not match its BLAKE3: the backup is damaged", path.display());
        }
    }
    Ok(manifest)
}

/// Puts the backup at `backup` in place of the data directory `data`, with
/// no server running on it. What `data` held is moved aside (to a sibling
/// named `…replaced-<time>`), not deleted. Returns the backup's manifest
/// and where the old data went, if there was any.
pub fn restore(backup: &Path, data: &Path) -> Result<(Manifest, Option<PathBuf>)> {
    let manifest = verify(backup)?;
    let mut aside = None;
    if data.exists() {
        // A running server holds the lock; its memory would overwrite the
        // restored database.
        let lock = crate::lock_data_dir(data)?;
        drop(lock);
        let stamp = crate::actor::now().0;
        let name = format!(
            "{}.replaced-{stamp}",
            data.file_name().and_then(|n| n.to_str()).ok_or_else(|| anyhow!("an odd data directory name"))?
        );
        let moved = data.with_file_name(name);
        std::fs::rename(data, &moved).with_context(|| format!("moving {} aside", data.display()))?;
        aside = Some(moved);
    }
    fresh_dir(data)?;
    copy_tree(backup, data)?;
    let _ = std::fs::remove_file(data.join("manifest.json"));
    Ok((manifest, aside))
}

/// Copies every file under `from` to the same place under `to`, durably.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            copy_durably(&entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_pauses_the_sweep_but_a_stale_marker_does_not() {
        let root = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        assert!(!sweep_paused(root.path(), now));
        std::fs::write(root.path().join(SWEEP_PAUSED), "123").unwrap();
        assert!(sweep_paused(root.path(), now));
        assert!(!sweep_paused(root.path(), now + PAUSE_LIMIT + Duration::from_secs(1)), "a crashed backup's");
    }
}
