//! Durable storage behind two traits, so that the hub, the actor and the
//! edges never name a database.
//!
//! - A [`Writer`] applies batches of the hub's [`Write`](kith_core::store::Write)s
//!   atomically and durably; [`run_writer`] group-commits on its own thread
//!   and reports the highest ticket made durable.
//! - A [`Reader`] answers the reads the hub delegates (history, one message,
//!   the audit log) and the edge's credential lookup, in domain rows.
//! - A [`Backend`] opens both and loads the hub's
//!   [`StoredState`](kith_core::store::StoredState) at start-up.
//!
//! SQLite ([`sqlite`]) is the one backend today. `conformance` is the suite
//! any backend must pass: apply every kind of write, reload, compare, and
//! answer every read.

use std::sync::{Arc, Mutex};

use kith_core::request::{AuditQuery, HistoryQuery, TokenHash};
use kith_core::store::{AttachmentMeta, AuditRow, Load, Loaded, MessageRow, StoredState, Write};
use kith_core::{MessageId, Timestamp, UserId};
use tokio::sync::mpsc;

#[cfg(test)]
mod conformance;
pub mod sqlite;

/// Why the store failed. Any of these is fatal for the writer: the server
/// stops rather than acknowledge something it could not make durable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend's own error, kept whole for the log.
    #[error("storage: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the database schema is version {found}, newer than this kith understands ({known})")]
    TooNew { found: i64, known: i64 },
    /// A reader could not open the store (logged when it happened).
    #[error("the database could not be opened for reading")]
    Closed,
}

/// A batch of writes from one `Output::Persist`, with its ticket.
pub type Batch = (u64, Vec<Write>);

/// Applies the hub's writes.
pub trait Writer: Send + 'static {
    /// Applies every batch, in order, as one atomic and durable step: when
    /// this returns `Ok`, all of them survive a power cut; when it returns
    /// an error, none of them was applied.
    fn commit(&mut self, batches: &[Batch]) -> Result<(), StoreError>;
}

/// Answers reads. Rows come back as domain types; the wire form is the
/// caller's business.
pub trait Reader {
    /// The account id and password hash for a case-folded username.
    fn credentials(&self, fold: &str) -> Result<Option<(UserId, String)>, StoreError>;
    /// The standing password reset code of a case-folded username: whose,
    /// its hash, and until when.
    fn reset_code(&self, fold: &str) -> Result<Option<(UserId, TokenHash, Timestamp)>, StoreError>;
    /// One page of a channel's history, oldest first, without deleted messages.
    fn history(&self, query: HistoryQuery) -> Result<Vec<MessageRow>, StoreError>;
    /// One message by id, deleted or not (a deleted one has an empty body).
    fn message(&self, id: MessageId) -> Result<Option<MessageRow>, StoreError>;
    /// A page of a community's audit log, newest first, with the names of
    /// whoever and whatever each entry is about.
    fn audit(&self, query: AuditQuery) -> Result<Vec<AuditRow>, StoreError>;
    /// The files a message carries, in order (none once it is deleted).
    fn attachments(&self, id: MessageId) -> Result<Vec<AttachmentMeta>, StoreError>;
    /// What the hub asks about messages older than it holds.
    fn load(&self, load: &Load) -> Result<Loaded, StoreError>;
    /// Whether any message carries the file with this BLAKE3: the file
    /// store's sweep keeps exactly those.
    fn names_file(&self, blake3: &[u8; 32]) -> Result<bool, StoreError>;
}

/// A place the server keeps its data.
pub trait Backend: Send + Sync + 'static {
    type Writer: Writer;
    type Reader: Reader;
    /// Opens the store for writing (creating or upgrading it as needed) and
    /// loads what the hub keeps in memory, with each channel's newest
    /// `recent` messages. There is one writer at a time.
    fn open_writer(&self, recent: usize) -> Result<(Self::Writer, StoredState), StoreError>;
    /// Opens one more reader; readers run alongside the writer.
    fn open_reader(&self) -> Result<Self::Reader, StoreError>;
}

/// Runs `writer` on the current thread until `batches` closes: waits for one
/// batch, takes every other batch already queued, commits them all in one
/// step (one fsync), and reports the highest ticket.
///
/// An error is reported and ends the writer: nothing after it is committed.
pub fn run_writer(
    mut writer: impl Writer,
    mut batches: mpsc::Receiver<Batch>,
    metrics: &crate::metrics::Metrics,
    committed: impl Fn(Result<u64, StoreError>),
) {
    const MAX_BATCHES_PER_COMMIT: usize = 4096;
    let mut pending = Vec::new();
    while let Some(first) = batches.blocking_recv() {
        pending.push(first);
        while pending.len() < MAX_BATCHES_PER_COMMIT
            && let Ok(next) = batches.try_recv()
        {
            pending.push(next);
        }
        let ticket = pending.last().map_or(0, |(ticket, _)| *ticket);
        let started = std::time::Instant::now();
        let result = writer.commit(&pending).map(|()| ticket);
        if result.is_ok() {
            metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
            let writes = pending.iter().flat_map(|(_, w)| w);
            let (all, messages) = writes.fold((0u64, 0u64), |(a, m), w| {
                (a + 1, m + u64::from(matches!(w, kith_core::store::Write::InsertMessage { .. })))
            });
            metrics.commit_writes.observe(all as f64);
            metrics.messages.inc_by(messages);
        } else {
            metrics.store_ok.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        pending.clear();
        let failed = result.is_err();
        committed(result);
        if failed {
            return;
        }
    }
}

/// A read job: runs on one of the pool's threads with its reader.
type ReadJob = Box<dyn FnOnce(&dyn Reader) + Send>;

/// The store's readers: a fixed set of threads, each with its own reader,
/// fed by one bounded queue. However many reads peers ask for, the server
/// holds `threads` readers and threads for them and at most `queue` waiting
/// jobs; past that, [`Readers::submit`] says the server is busy instead of
/// spawning.
#[derive(Debug)]
pub struct Readers {
    jobs: std::sync::mpsc::SyncSender<ReadJob>,
    threads: usize,
}

/// The pool's queue is full: the caller should say "busy, retry".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Readers {
    /// Starts `threads` reader threads on `backend`.
    pub fn start<B: Backend>(backend: Arc<B>, threads: usize, queue: usize) -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<ReadJob>(queue);
        // A std mutex around the receiver: held only to take the next job.
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let (rx, backend) = (rx.clone(), backend.clone());
            std::thread::Builder::new().name(format!("kith-reader-{n}")).spawn(move || {
                // Opened once, kept for the thread's life; a failure is
                // retried per job so that a transient error heals.
                let mut reader: Option<B::Reader> = None;
                loop {
                    let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(job) => job,
                        // Every sender is gone: the server stopped.
                        Err(_) => return,
                    };
                    if reader.is_none() {
                        reader = backend
                            .open_reader()
                            .inspect_err(|e| {
                                tracing::error!(error = %e, "a reader could not open the database");
                            })
                            .ok();
                    }
                    match &reader {
                        Some(reader) => job(reader),
                        // The job's sender sees its reply channel dropped.
                        None => drop(job),
                    }
                }
            })?;
        }
        Ok(Readers { jobs, threads: threads.max(1) })
    }

    /// How many reads run at once, at most.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `job` for the next free reader, or says the queue is full.
    pub fn submit(&self, job: impl FnOnce(&dyn Reader) + Send + 'static) -> Result<(), Busy> {
        self.jobs.try_send(Box::new(job)).map_err(|_| Busy)
    }

    /// Runs `f` on a reader and waits for its answer (for an async caller).
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ReadFailed> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(move |reader| {
            let _ = tx.send(f(reader));
        })
        .map_err(|_| ReadFailed::Busy)?;
        match rx.await {
            Ok(result) => result.map_err(ReadFailed::Store),
            Err(_) => Err(ReadFailed::Store(StoreError::Closed)),
        }
    }
}

/// Why [`Readers::run`] has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailed {
    #[error("the server is busy reading; try again")]
    Busy,
    #[error(transparent)]
    Store(StoreError),
}
