//! Token buckets (the `governor` crate's GCRA) that run on a clock the caller
//! sets, so the hub stays free of clocks and its tests control time. The
//! edges use the same [`RateLimit`] settings on the real clock.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::ids::Timestamp;

/// A token bucket: up to `burst` at once, refilled one every `every_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub burst: u32,
    pub every_ms: u64,
}

impl RateLimit {
    pub const fn new(burst: u32, every_ms: u64) -> Self {
        RateLimit { burst, every_ms }
    }

    /// The governor quota, or `None` for a limit that limits nothing.
    pub fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.burst)?;
        Some(Quota::with_period(Duration::from_millis(self.every_ms.max(1)))?.allow_burst(burst))
    }
}

/// A clock that reads whatever time it was last told.
#[derive(Debug, Clone, Default)]
struct SetClock(Arc<AtomicU64>);

impl Clock for SetClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Duration::from_millis(self.0.load(Ordering::Relaxed)))
    }
}

type Limiter<K> = RateLimiter<K, HashMapStateStore<K>, SetClock, NoOpMiddleware<Nanos>>;

/// One bucket per key, on the caller's clock.
pub struct Buckets<K: Hash + Eq + Clone> {
    limiter: Option<Limiter<K>>,
    clock: SetClock,
    checks: u32,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for Buckets<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buckets").field("limited", &self.limiter.is_some()).finish_non_exhaustive()
    }
}

/// How often idle buckets are forgotten, in checks.
const SWEEP_EVERY: u32 = 4096;

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// `None` (or a zero burst) never limits.
    pub fn new(limit: Option<RateLimit>) -> Self {
        let clock = SetClock::default();
        let limiter =
            limit.and_then(RateLimit::quota).map(|q| RateLimiter::hashmap_with_clock(q, clock.clone()));
        Buckets { limiter, clock, checks: 0 }
    }

    /// Takes one token from `key`'s bucket at `now`, or says how many
    /// milliseconds until one is available.
    pub fn check(&mut self, now: Timestamp, key: &K) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        // The clock only moves forward, like the hub's.
        self.clock.0.fetch_max(now.0, Ordering::Relaxed);
        self.checks += 1;
        if self.checks.is_multiple_of(SWEEP_EVERY) {
            limiter.retain_recent();
        }
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            (wait.as_millis() as u64).max(1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_period() {
        let mut b = Buckets::new(Some(RateLimit::new(3, 1000)));
        let t = Timestamp(1_000_000);
        for _ in 0..3 {
            assert_eq!(b.check(t, &1), Ok(()));
        }
        assert_eq!(b.check(t, &1), Err(1000), "the fourth waits a whole period");
        assert_eq!(b.check(t, &2), Ok(()), "another key has its own bucket");
        assert_eq!(b.check(Timestamp(t.0 + 400), &1), Err(600));
        assert_eq!(b.check(Timestamp(t.0 + 1000), &1), Ok(()));
        assert_eq!(b.check(Timestamp(t.0 + 1000), &1), Err(1000));
    }

    #[test]
    fn no_limit_never_refuses() {
        let mut b = Buckets::new(None);
        for _ in 0..10_000 {
            assert_eq!(b.check(Timestamp(0), &1), Ok(()));
        }
    }
}
