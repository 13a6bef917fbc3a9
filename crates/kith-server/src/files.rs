//! The file store: attachments' bytes on the operator's disk, named by
//! their BLAKE3 (the same file uploaded twice is kept once), and the keys
//! the hub granted for moving them.
//!
//! Layout under the data directory:
//! - `files/blobs/ab/abcdef…` — complete files, each checked against its
//!   hash, fsynced, then renamed into place (the directory fsynced too);
//! - `files/partial/USER-abcdef…` — an upload so far, appended to; a new
//!   upload of the same file by the same account continues it.
//!
//! A message may name an upload only once it is a blob ([`kith_core::Input::UploadStored`]
//! comes after the rename), so no message points at missing bytes. A
//! crash leaves at most a blob nothing names, or a partial file:
//! [`Files::sweep`] removes both once they are old enough not to be an
//! upload in progress.

use std::collections::{HashMap, VecDeque};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use kith_core::store::AttachmentMeta;
use kith_core::{Grant, MessageId, SessionId, Timestamp, UserId};
use kith_media::strip::Stripped;

use crate::store::Reader;

/// Keys held at most; the oldest go first. Each session may hold 16
/// uploads and the hub's rate limits pace the rest.
const MAX_GRANTS: usize = 65_536;

/// How long an upload key works (its session usually ends sooner).
const UPLOAD_KEY: Duration = Duration::from_secs(24 * 3600);

/// A blob nothing names survives this long (an upload that finished but
/// whose message is still being sent), and a partial upload this long after
/// its last byte (to be continued).
pub const BLOB_GRACE: Duration = Duration::from_secs(3600);
pub const PARTIAL_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Bytes sniffed for a file's type.
const SNIFF: usize = 8192;

/// Uploads committed at once ([`Files::commits`]).
const COMMITS: usize = 2;

#[derive(Debug, Clone)]
enum Key {
    Upload { session: SessionId, user: UserId, size: u64, blake3: [u8; 32], until: Instant },
    Download { session: SessionId, message: MessageId, expires_at: Timestamp },
    Pipe { session: SessionId, pipe: u64, sending: bool, until: Instant },
}

/// How long a pipe key works: the offer lasts a minute, and the receiver's
/// key is presented as soon as it is had.
const PIPE_KEY: Duration = Duration::from_secs(120);

#[derive(Debug, Default)]
struct Keys {
    by_key: HashMap<String, Key>,
    order: VecDeque<String>,
}

/// An upload the key allows.
#[derive(Debug, Clone, Copy)]
pub struct UploadKey {
    pub user: UserId,
    pub size: u64,
    pub blake3: [u8; 32],
}

#[derive(Debug)]
pub struct Files {
    root: PathBuf,
    /// Keep at least this many bytes free on the disk.
    reserve: u64,
    /// Store photos as uploaded, metadata and all (the operator's choice;
    /// off by default).
    keep_metadata: bool,
    keys: Mutex<Keys>,
    /// Commits (hashing, metadata removal, previews) at once: each reads a
    /// whole file and a preview decodes a whole picture, so a burst of
    /// uploads waits its turn instead of taking every core and gigabytes.
    pub commits: tokio::sync::Semaphore,
    /// A lock per partial file being received: the same account sending the
    /// same file on two connections at once takes turns (the second then
    /// finds it stored) instead of writing one file from both.
    receiving: Mutex<HashMap<PathBuf, std::sync::Weak<tokio::sync::Mutex<()>>>>,
}

/// A file made durable: what the message will say about it. A photo's
/// metadata was taken out, so its hash and size may differ from the
/// upload's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub content_type: String,
    pub blake3: [u8; 32],
    pub size: u64,
    /// A picture's size in pixels (0 × 0 otherwise).
    pub width: u32,
    pub height: u32,
}

impl Files {
    /// Opens (creating) the store under `data_dir`.
    pub fn open(data_dir: &Path, reserve: u64, keep_metadata: bool) -> std::io::Result<Files> {
        let root = data_dir.join("files");
        std::fs::create_dir_all(root.join("blobs"))?;
        std::fs::create_dir_all(root.join("partial"))?;
        std::fs::create_dir_all(root.join("previews"))?;
        let commits = tokio::sync::Semaphore::new(COMMITS);
        Ok(Files {
            root,
            reserve,
            keep_metadata,
            keys: Mutex::default(),
            commits,
            receiving: Mutex::default(),
        })
    }

    /// Accepts a key the hub granted.
    pub fn grant(&self, grant: Grant) {
        let (key, entry) = match grant {
            Grant::Upload { key, session, user, size, blake3 } => {
                (key, Key::Upload { session, user, size, blake3, until: Instant::now() + UPLOAD_KEY })
            }
            Grant::Download { key, session, message, expires_at } => {
                (key, Key::Download { session, message, expires_at })
            }
            Grant::Pipe { key, session, pipe, sending } => {
                (key, Key::Pipe { session, pipe, sending, until: Instant::now() + PIPE_KEY })
            }
        };
        let mut keys = self.keys.lock().expect("keys lock");
        while keys.order.len() >= MAX_GRANTS {
            let Some(oldest) = keys.order.pop_front() else { break };
            keys.by_key.remove(&oldest);
        }
        keys.order.push_back(key.clone());
        keys.by_key.insert(key, entry);
    }

    /// The upload `key` allows on `session`'s connection, or (`None`) by
    /// link: the browser's HTTPS uploads travel on other connections than
    /// its session, and the key is the authorisation.
    pub fn upload_key(&self, key: &str, session: Option<SessionId>) -> Option<UploadKey> {
        match self.keys.lock().expect("keys lock").by_key.get(key)? {
            Key::Upload { session: s, user, size, blake3, until }
                if session.is_none_or(|session| *s == session) && *until > Instant::now() =>
            {
                Some(UploadKey { user: *user, size: *size, blake3: *blake3 })
            }
            _ => None,
        }
    }

    /// The pipe end `key` is for on `session`: (pipe, sending). Used up by
    /// the asking: an end is joined once.
    pub fn pipe_key(&self, key: &str, session: SessionId) -> Option<(u64, bool)> {
        let mut keys = self.keys.lock().expect("keys lock");
        match keys.by_key.get(key)? {
            Key::Pipe { session: s, pipe, sending, until } if *s == session && *until > Instant::now() => {
                let end = (*pipe, *sending);
                keys.by_key.remove(key);
                Some(end)
            }
            _ => None,
        }
    }

    /// The message whose files `key` opens for `session`, until it expires.
    pub fn download_key(&self, key: &str, session: SessionId, now: Timestamp) -> Option<MessageId> {
        match self.keys.lock().expect("keys lock").by_key.get(key)? {
            Key::Download { session: s, message, expires_at } if *s == session && *expires_at > now => {
                Some(*message)
            }
            _ => None,
        }
    }

    /// The message whose files `key` opens by link (the browser's `/files/`
    /// URLs, fetched on connections other than the session's), until it
    /// expires: the key is the authorisation.
    pub fn link_key(&self, key: &str, now: Timestamp) -> Option<MessageId> {
        match self.keys.lock().expect("keys lock").by_key.get(key)? {
            Key::Download { message, expires_at, .. } if *expires_at > now => Some(*message),
            _ => None,
        }
    }

    pub fn blob(&self, blake3: &[u8; 32]) -> PathBuf {
        let hex = hex(blake3);
        self.root.join("blobs").join(&hex[..2]).join(hex)
    }

    /// A picture's preview (a small JPEG), if one was made.
    fn preview(&self, blake3: &[u8; 32]) -> PathBuf {
        self.root.join("previews").join(format!("{}.jpg", hex(blake3)))
    }

    /// The file a download of `a` gets, and the type to say it is: its
    /// preview if `preview` is asked for and the server made one, else the
    /// attachment itself. The one rule for both edges (QUIC and HTTPS).
    pub fn served(&self, a: &AttachmentMeta, preview: bool) -> (PathBuf, String) {
        if preview && a.content_type.starts_with("image/") {
            let path = self.preview(&a.blake3);
            if path.exists() {
                return (path, "image/jpeg".to_owned());
            }
        }
        (self.blob(&a.blake3), a.content_type.clone())
    }

    /// The turn to write the partial file `path`, held until dropped.
    pub async fn receive_turn(&self, path: &Path) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut all = self.receiving.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|_, w| w.strong_count() > 0);
            match all.get(path).and_then(std::sync::Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
                    all.insert(path.to_owned(), std::sync::Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    pub fn partial(&self, user: UserId, blake3: &[u8; 32]) -> PathBuf {
        self.root.join("partial").join(format!("{}-{}", user.0, hex(blake3)))
    }

    /// Refuses before the disk fills: `more` bytes must leave the reserve.
    pub fn room_for(&self, more: u64) -> Result<(), String> {
        let free =
            fs4::available_space(&self.root).map_err(|e| format!("the server cannot see its disk: {e}"))?;
        if free < more.saturating_add(self.reserve) {
            return Err(format!(
                "the server's disk is nearly full ({free} bytes free, {} kept in reserve); ask its operator",
                self.reserve
            ));
        }
        Ok(())
    }

    /// Checks a complete partial upload and makes it a blob: hash, type,
    /// metadata out of photos, fsync, rename, fsync the directory.
    /// Blocking; run off the runtime. Returns what was stored, or why the
    /// bytes were refused (the partial file is removed then: the upload
    /// starts over).
    pub fn commit(&self, partial: &Path, blake3: &[u8; 32]) -> Result<Stored, String> {
        let fail = |what: &str, e: std::io::Error| format!("{what}: {e}");
        let (hash, head, size) = hash_file(partial).map_err(|e| fail("reading the upload", e))?;
        if &hash != blake3 {
            let _ = std::fs::remove_file(partial);
            return Err(
                "the bytes received do not have the BLAKE3 the upload declared; send the file again".into()
            );
        }
        let content_type = kith_media::content_type(&head);
        // Photos are rewritten without their metadata (or, if the operator
        // keeps it, still read through: that checks them and finds their size).
        let clean = partial.with_extension("clean");
        let result = std::fs::File::open(partial).and_then(|input| {
            if self.keep_metadata {
                kith_media::strip::strip(&content_type, input, std::io::sink())
            } else {
                kith_media::strip::strip(&content_type, input, std::fs::File::create(&clean)?)
            }
        });
        let stored = |blake3, size, (width, height)| Stored {
            content_type: content_type.clone(),
            blake3,
            size,
            width,
            height,
        };
        let (source, stored) = match result {
            Ok(Stripped::Cleaned { width, height }) if !self.keep_metadata => {
                let _ = std::fs::remove_file(partial);
                let (hash, _, size) = hash_file(&clean).map_err(|e| fail("reading the cleaned photo", e))?;
                (clean, stored(hash, size, (width, height)))
            }
            Ok(Stripped::Cleaned { width, height }) => {
                (partial.to_owned(), stored(hash, size, (width, height)))
            }
            Ok(Stripped::Untouched) => {
                let _ = std::fs::remove_file(&clean);
                (partial.to_owned(), stored(hash, size, (0, 0)))
            }
            Err(e) => {
                let _ = std::fs::remove_file(partial);
                let _ = std::fs::remove_file(&clean);
                return Err(match e.kind() {
                    std::io::ErrorKind::Unsupported => e.to_string(),
                    _ => format!("the file looks like {content_type} but is not a valid one ({e})"),
                });
            }
        };
        std::fs::File::open(&source).and_then(|f| f.sync_all()).map_err(|e| fail("syncing the upload", e))?;
        let blob = self.blob(&stored.blake3);
        let dir = blob.parent().expect("blobs have a parent");
        std::fs::create_dir_all(dir).map_err(|e| fail("making the blob directory", e))?;
        std::fs::rename(&source, &blob).map_err(|e| fail("storing the upload", e))?;
        sync_dir(dir).map_err(|e| fail("syncing the blob directory", e))?;
        // A preview is a convenience: without one, clients show the picture.
        if let Err(e) = self.make_preview(&blob, &stored) {
            tracing::warn!(error = %e, "making a preview failed");
        }
        Ok(stored)
    }

    fn make_preview(&self, blob: &Path, stored: &Stored) -> std::io::Result<()> {
        let input = std::io::BufReader::new(std::fs::File::open(blob)?);
        let Some(jpeg) = kith_media::thumbnail::thumbnail(&stored.content_type, input)? else {
            return Ok(());
        };
        let path = self.preview(&stored.blake3);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, jpeg)?;
        std::fs::rename(tmp, path)
    }

    /// Takes a file from elsewhere (an import) into the store exactly as it
    /// is, once its bytes are checked against `blake3`; makes its preview.
    /// Blocking.
    pub fn adopt(&self, source: &Path, blake3: &[u8; 32]) -> Result<(), String> {
        let blob = self.blob(blake3);
        if blob.exists() {
            return Ok(());
        }
        let (hash, head, _) = hash_file(source).map_err(|e| format!("reading {}: {e}", source.display()))?;
        if &hash != blake3 {
            return Err(format!("{} does not match its BLAKE3: the export is damaged", source.display()));
        }
        let partial = self.root.join("partial").join(format!("import-{}", hex(blake3)));
        std::fs::copy(source, &partial)
            .and_then(|_| std::fs::File::open(&partial)?.sync_all())
            .map_err(|e| format!("copying {}: {e}", source.display()))?;
        let dir = blob.parent().expect("blobs have a parent");
        std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::rename(&partial, &blob))
            .and_then(|_| sync_dir(dir))
            .map_err(|e| format!("storing {}: {e}", source.display()))?;
        // Only the type matters to the preview.
        let stored = Stored {
            content_type: kith_media::content_type(&head),
            blake3: *blake3,
            size: 0,
            width: 0,
            height: 0,
        };
        if let Err(e) = self.make_preview(&blob, &stored) {
            tracing::warn!(error = %e, "making a preview failed");
        }
        Ok(())
    }

    /// Takes a file from elsewhere (an import from another service) into
    /// the store as an upload would be: typed, its metadata removed, its
    /// preview made. Blocking.
    pub fn take(&self, source: &Path) -> Result<Stored, String> {
        let (blake3, _, _) = hash_file(source).map_err(|e| format!("reading {}: {e}", source.display()))?;
        let partial = self.root.join("partial").join(format!("import-{}", hex(&blake3)));
        std::fs::copy(source, &partial).map_err(|e| format!("copying {}: {e}", source.display()))?;
        self.commit(&partial, &blake3)
    }

    /// What a stored blob is (for an upload the store already holds):
    /// its type, and a picture's size in pixels, read again from its bytes.
    /// Blocking.
    pub fn describe(&self, blake3: &[u8; 32]) -> std::io::Result<Stored> {
        let (_, head, size) = hash_file(&self.blob(blake3))?;
        let content_type = kith_media::content_type(&head);
        let file = std::fs::File::open(self.blob(blake3))?;
        let (width, height) = match kith_media::strip::strip(&content_type, file, std::io::sink()) {
            Ok(Stripped::Cleaned { width, height }) => (width, height),
            _ => (0, 0),
        };
        Ok(Stored { content_type, blake3: *blake3, size, width, height })
    }

    /// Removes blobs no message names (older than [`BLOB_GRACE`]) and
    /// partial uploads untouched for [`PARTIAL_GRACE`]. Blocking. Returns
    /// how many files and bytes went.
    pub fn sweep(&self, reader: &dyn Reader, now: SystemTime) -> std::io::Result<(u64, u64)> {
        let old = |meta: &std::fs::Metadata, grace: Duration| {
            meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age >= grace)
        };
        let (mut files, mut bytes) = (0, 0);
        if crate::backup::sweep_paused(&self.root, now) {
            // A backup is copying the files its database copy names.
            return Ok((files, bytes));
        }
        for entry in std::fs::read_dir(self.root.join("partial"))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_file() && old(&meta, PARTIAL_GRACE) {
                std::fs::remove_file(entry.path())?;
                (files, bytes) = (files + 1, bytes + meta.len());
            }
        }
        for entry in std::fs::read_dir(self.root.join("previews"))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(blake3) = name.to_str().and_then(|n| n.strip_suffix(".jpg")).and_then(unhex) else {
                continue;
            };
            if !self.blob(&blake3).exists() {
                std::fs::remove_file(entry.path())?;
            }
        }
        for dir in std::fs::read_dir(self.root.join("blobs"))? {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(dir.path())? {
                let entry = entry?;
                let meta = entry.metadata()?;
                let Some(blake3) = entry.file_name().to_str().and_then(unhex) else { continue };
                if !old(&meta, BLOB_GRACE) {
                    continue;
                }
                match reader.names_file(&blake3) {
                    Ok(true) => {}
                    Ok(false) => {
                        std::fs::remove_file(entry.path())?;
                        (files, bytes) = (files + 1, bytes + meta.len());
                    }
                    Err(e) => return Err(std::io::Error::other(e.to_string())),
                }
            }
        }
        Ok((files, bytes))
    }
}

/// How often the store is swept (and once at start).
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Sweeps `files` at start and then every `period`, on a reader.
pub async fn sweep_every(
    files: std::sync::Arc<Files>,
    readers: std::sync::Arc<crate::store::Readers>,
    period: Duration,
) {
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let f = files.clone();
        let swept = readers.run(move |db| Ok(f.sweep(db, SystemTime::now()))).await;
        match swept {
            Ok(Ok((0, _))) => {}
            Ok(Ok((n, bytes))) => tracing::info!(files = n, bytes, "swept files no message names"),
            Ok(Err(e)) => tracing::warn!(error = %e, "sweeping the file store failed"),
            Err(e) => tracing::warn!(error = %e, "sweeping the file store failed"),
        }
    }
}

/// A file's BLAKE3, its first bytes (for its type) and its length.
fn hash_file(path: &Path) -> std::io::Result<([u8; 32], Vec<u8>, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut head = Vec::with_capacity(SNIFF);
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if head.len() < SNIFF {
            let take = (SNIFF - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((*hasher.finalize().as_bytes(), head, size))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_names_round_trip() {
        let h = *blake3::hash(b"x").as_bytes();
        assert_eq!(unhex(&hex(&h)), Some(h));
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn keys_work_only_for_their_session_and_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path(), 0, false).unwrap();
        let blake3 = [7; 32];
        files.grant(Grant::Upload {
            key: "u".into(),
            session: SessionId(1),
            user: UserId(9),
            size: 5,
            blake3,
        });
        files.grant(Grant::Download {
            key: "d".into(),
            session: SessionId(1),
            message: MessageId(3),
            expires_at: Timestamp(1000),
        });
        assert_eq!(files.upload_key("u", Some(SessionId(1))).map(|k| (k.user, k.size)), Some((UserId(9), 5)));
        assert!(files.upload_key("u", Some(SessionId(2))).is_none(), "another connection");
        assert!(files.upload_key("u", None).is_some(), "by link");
        assert!(files.upload_key("d", Some(SessionId(1))).is_none(), "a download key uploads nothing");
        assert_eq!(files.download_key("d", SessionId(1), Timestamp(999)), Some(MessageId(3)));
        assert!(files.download_key("d", SessionId(1), Timestamp(1000)).is_none(), "expired");
        assert!(files.download_key("nope", SessionId(1), Timestamp(0)).is_none());
    }

    #[test]
    fn a_commit_checks_the_hash_and_keeps_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path(), 0, false).unwrap();
        let body = b"hello, family".repeat(1000);
        let blake3 = *blake3::hash(&body).as_bytes();
        let partial = files.partial(UserId(1), &blake3);
        std::fs::write(&partial, &body).unwrap();
        let stored = files.commit(&partial, &blake3).unwrap();
        assert_eq!(
            stored,
            Stored {
                content_type: "application/octet-stream".into(),
                blake3,
                size: body.len() as u64,
                width: 0,
                height: 0
            }
        );
        assert_eq!(std::fs::read(files.blob(&blake3)).unwrap(), body);
        assert!(!partial.exists());
        // Wrong bytes for the declared hash: refused, and the partial goes.
        std::fs::write(&partial, b"something else").unwrap();
        assert!(files.commit(&partial, &blake3).unwrap_err().contains("BLAKE3"));
        assert!(!partial.exists());
    }

    /// A store that names exactly these files.
    struct Naming(Vec<[u8; 32]>);

    impl Reader for Naming {
        fn load(
            &self,
            _: &kith_core::store::Load,
        ) -> Result<kith_core::store::Loaded, crate::store::StoreError> {
            Err(crate::store::StoreError::Closed)
        }
        fn credentials(&self, _: &str) -> Result<Option<(UserId, String)>, crate::store::StoreError> {
            Ok(None)
        }
        fn reset_code(
            &self,
            _: &str,
        ) -> Result<Option<(UserId, kith_core::request::TokenHash, Timestamp)>, crate::store::StoreError>
        {
            Ok(None)
        }
        fn history(
            &self,
            _: kith_core::request::HistoryQuery,
        ) -> Result<Vec<kith_core::store::MessageRow>, crate::store::StoreError> {
            Ok(Vec::new())
        }
        fn message(
            &self,
            _: MessageId,
        ) -> Result<Option<kith_core::store::MessageRow>, crate::store::StoreError> {
            Ok(None)
        }
        fn audit(
            &self,
            _: kith_core::request::AuditQuery,
        ) -> Result<Vec<kith_core::store::AuditRow>, crate::store::StoreError> {
            Ok(Vec::new())
        }
        fn attachments(
            &self,
            _: MessageId,
        ) -> Result<Vec<kith_core::store::AttachmentMeta>, crate::store::StoreError> {
            Ok(Vec::new())
        }
        fn names_file(&self, blake3: &[u8; 32]) -> Result<bool, crate::store::StoreError> {
            Ok(self.0.contains(blake3))
        }
    }

    #[test]
    fn the_sweep_removes_what_no_message_names_once_it_is_old_enough() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path(), 0, false).unwrap();
        let store = |body: &[u8]| {
            let blake3 = *blake3::hash(body).as_bytes();
            let partial = files.partial(UserId(1), &blake3);
            std::fs::write(&partial, body).unwrap();
            files.commit(&partial, &blake3).unwrap();
            blake3
        };
        let (named, orphan) = (store(b"in a message"), store(b"its message never committed"));
        let partial = files.partial(UserId(2), &[9; 32]);
        std::fs::write(&partial, b"half an upload").unwrap();
        let reader = Naming(vec![named]);
        let now = SystemTime::now();

        // Young: an upload whose message is on its way, one being continued.
        assert_eq!(files.sweep(&reader, now + Duration::from_secs(1800)).unwrap(), (0, 0));
        let (n, bytes) = files.sweep(&reader, now + BLOB_GRACE + Duration::from_secs(60)).unwrap();
        assert_eq!((n, bytes), (1, 27));
        assert!(files.blob(&named).exists() && !files.blob(&orphan).exists() && partial.exists());
        assert_eq!(files.sweep(&reader, now + PARTIAL_GRACE + Duration::from_secs(60)).unwrap(), (1, 14));
        assert!(!partial.exists() && files.blob(&named).exists());
    }
}
