//! What a server is doing, for Prometheus (`/metrics`) and for a liveness
//! check (`/health`), on a listener of its own (`--metrics ADDR`,
//! loopback unless told otherwise: the figures are the operator's).
//!
//! Every figure is an atomic updated where the thing happens (the actor,
//! the store writer, the voice forwarder, the file store); a scrape only
//! reads them, so it costs the server nothing it would not do anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Transport {
    pub transport: String,
}

/// What a rate limit refused too many of: a per-account class (`messages`,
/// `reads`, …) or the edge's `connections` and `logins` per address.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Limit {
    pub limit: String,
}

/// Refusals by limit; the hub's classes and the edge's admission share it.
pub type RateLimited = Family<Limit, Counter>;

/// One server's figures.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Connections accepted, by transport (quic, webtransport, websocket, telnet).
    pub connections: Family<Transport, Counter>,
    /// Sessions the hub holds (connected, or detached and resumable).
    pub sessions: Gauge,
    /// Frames queued to sessions: replies, errors and every event fanned out.
    pub deliveries: Counter,
    /// Messages made durable.
    pub messages: Counter,
    /// Writes per commit (one fsync each) and how long each took.
    pub commit_writes: Histogram,
    pub commit_seconds: Histogram,
    /// Sessions cut off for not reading their events.
    pub slow_consumers: Counter,
    /// Requests and connections refused by a rate limit.
    pub rate_limited: RateLimited,
    /// Bytes queued to sessions and not yet written, summed at each scrape
    /// over the sessions alive (each registers its counter).
    outbox_bytes: Gauge,
    outboxes: std::sync::Mutex<Vec<std::sync::Weak<std::sync::atomic::AtomicUsize>>>,
    /// Voice packets forwarded to listeners, and dropped (a full queue).
    pub voice_forwarded: Counter,
    pub voice_dropped: Counter,
    /// Attachments stored, and their bytes.
    pub uploads: Counter,
    pub upload_bytes: Counter,
    /// Scheduled backups made and failed, and when the last one was made
    /// (Unix seconds): alert on its age.
    backups: Counter,
    backup_failures: Counter,
    last_backup: Gauge,
    /// The server's resident memory, read at each scrape.
    resident: Gauge,
    /// The store writer is alive (it stops for good on a disk error).
    pub store_ok: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kith");
        let m = Metrics {
            connections: Family::default(),
            sessions: Gauge::default(),
            deliveries: Counter::default(),
            messages: Counter::default(),
            commit_writes: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            // 50 µs to 0.8 s.
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 15)),
            slow_consumers: Counter::default(),
            rate_limited: Family::default(),
            outbox_bytes: Gauge::default(),
            outboxes: std::sync::Mutex::default(),
            voice_forwarded: Counter::default(),
            voice_dropped: Counter::default(),
            uploads: Counter::default(),
            upload_bytes: Counter::default(),
            backups: Counter::default(),
            backup_failures: Counter::default(),
            last_backup: Gauge::default(),
            resident: Gauge::default(),
            store_ok: AtomicBool::new(true),
            registry: Registry::default(),
        };
        registry.register("connections", "Connections accepted, by transport", m.connections.clone());
        registry.register("sessions", "Sessions held (connected or resumable)", m.sessions.clone());
        registry.register(
            "deliveries",
            "Frames queued to sessions (replies and events)",
            m.deliveries.clone(),
        );
        registry.register("messages", "Messages made durable", m.messages.clone());
        registry.register(
            "commit_writes",
            "Writes per store commit (one fsync each)",
            m.commit_writes.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time per store commit, fsync included",
            m.commit_seconds.clone(),
        );
        registry.register("slow_consumers", "Sessions cut off for not reading", m.slow_consumers.clone());
        registry.register(
            "rate_limited",
            "Requests and connections refused by a rate limit",
            m.rate_limited.clone(),
        );
        registry.register(
            "outbox_bytes",
            "Bytes queued to sessions, not yet written",
            m.outbox_bytes.clone(),
        );
        registry.register(
            "voice_forwarded",
            "Voice packets forwarded to listeners",
            m.voice_forwarded.clone(),
        );
        registry.register("voice_dropped", "Voice packets dropped on a full queue", m.voice_dropped.clone());
        registry.register("uploads", "Attachments stored", m.uploads.clone());
        registry.register("upload_bytes", "Bytes of attachments stored", m.upload_bytes.clone());
        registry.register("backups", "Scheduled backups made", m.backups.clone());
        registry.register("backup_failures", "Scheduled backups that failed", m.backup_failures.clone());
        registry.register(
            "last_backup_timestamp_seconds",
            "When the last scheduled backup was made (Unix time; 0: none yet)",
            m.last_backup.clone(),
        );
        registry.register("resident_bytes", "Resident memory of the server process", m.resident.clone());
        Metrics { registry, ..m }
    }

    /// Counts a new connection on `transport`.
    pub fn connected(&self, transport: &str) {
        self.connections.get_or_create(&Transport { transport: transport.to_owned() }).inc();
    }

    /// A scheduled backup was made at `at_ms`.
    pub fn backup_done(&self, at_ms: u64) {
        self.backups.inc();
        self.last_backup.set((at_ms / 1000) as i64);
    }

    pub fn backup_failed(&self) {
        self.backup_failures.inc();
    }

    /// Counts a session's queued bytes in `kith_outbox_bytes` while it lives.
    pub fn track_outbox(&self, queued: &Arc<std::sync::atomic::AtomicUsize>) {
        let mut all = self.outboxes.lock().unwrap_or_else(|e| e.into_inner());
        // Forget the sessions gone since, so the list stays as long as the live ones.
        if all.len() >= 64 && all.len().is_power_of_two() {
            all.retain(|w| w.strong_count() > 0);
        }
        all.push(Arc::downgrade(queued));
    }

    /// The text exposition format, as Prometheus scrapes it.
    pub fn render(&self) -> String {
        self.resident.set(resident_bytes());
        let queued: usize = {
            let mut all = self.outboxes.lock().unwrap_or_else(|e| e.into_inner());
            all.retain(|w| w.strong_count() > 0);
            all.iter().filter_map(std::sync::Weak::upgrade).map(|q| q.load(Ordering::Relaxed)).sum()
        };
        self.outbox_bytes.set(queued as i64);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// `/health`'s answer, wherever it is served: whether the server
    /// takes writes (its store writer stops for good on a disk error).
    pub fn health(&self) -> (axum::http::StatusCode, &'static str) {
        if self.store_ok.load(Ordering::Relaxed) {
            (axum::http::StatusCode::OK, "ok\n")
        } else {
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "the store failed: the server takes no writes\n")
        }
    }
}

/// This process's resident memory (Linux; 0 elsewhere).
fn resident_bytes() -> i64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        .unwrap_or(0);
    pages * 4096
}

/// `/metrics` and `/health` on `listener`, until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use axum::routing::get;
    let scrape = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = scrape.clone();
                async move { ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], m.render()) }
            }),
        )
        .route(
            "/health",
            get(move || {
                let m = metrics.clone();
                async move { m.health() }
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "the metrics listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_render_in_the_exposition_format() {
        let m = Metrics::new();
        m.connected("quic");
        m.connected("quic");
        m.messages.inc();
        m.commit_seconds.observe(0.002);
        let text = m.render();
        assert!(text.contains("kith_connections_total{transport=\"quic\"} 2"), "{text}");
        assert!(text.contains("kith_messages_total 1"), "{text}");
        assert!(text.contains("kith_commit_seconds_bucket"), "{text}");
        assert!(text.contains("kith_resident_bytes"), "{text}");
    }
}
