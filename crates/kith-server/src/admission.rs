//! Admission control at the edge, where addresses are known: connections per
//! address (rate and cap), login attempts per account and per address, and
//! the handshake rate above which clients must prove their address (QUIC
//! Retry). Every refusal says how long to wait.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, RateLimiter};
use kith_core::rate::RateLimit;

use crate::Limits;

/// Keyed buckets on the real clock; `None` never limits.
struct Keyed<K: Hash + Eq + Clone>(Option<DefaultKeyedRateLimiter<K>>);

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(limit: RateLimit) -> Self {
        Keyed(limit.quota().map(RateLimiter::keyed))
    }

    /// Takes a token, or says how many milliseconds until one is there.
    fn check(&self, key: &K) -> Result<(), u64> {
        let Some(limiter) = &self.0 else { return Ok(()) };
        // Forget idle buckets now and then so the map does not grow forever.
        if limiter.len() > 10_000 {
            limiter.retain_recent();
        }
        limiter.check_key(key).map_err(|n| wait_ms(n.wait_time_from(DefaultClock::default().now())))
    }
}

fn wait_ms(d: std::time::Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

/// The edge's admission state, shared by every connection task.
pub struct Admission {
    connects: Keyed<IpAddr>,
    logins_ip: Keyed<IpAddr>,
    logins_account: Keyed<String>,
    handshakes: Option<DefaultDirectRateLimiter>,
    cap: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    pub auth_deadline: std::time::Duration,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission").field("cap", &self.cap).finish_non_exhaustive()
    }
}

/// Why a connection or login was refused, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    pub retry_after_ms: u64,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; retry after {} ms", self.reason, self.retry_after_ms)
    }
}

/// One open connection from an address; dropping it frees its slot.
#[derive(Debug)]
pub struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("admission lock");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// How long to tell a client over its address's cap to wait: long enough
/// that a reconnect loop does not spin.
const CAP_RETRY_MS: u64 = 5_000;

impl Admission {
    pub fn new(limits: &Limits) -> Self {
        Admission {
            connects: Keyed::new(limits.connects_per_ip),
            logins_ip: Keyed::new(limits.logins_per_ip),
            logins_account: Keyed::new(limits.logins_per_account),
            handshakes: limits.handshakes.quota().map(RateLimiter::direct),
            cap: limits.connections_per_ip,
            open: Arc::default(),
            auth_deadline: limits.auth_deadline,
        }
    }

    /// Whether an unvalidated client should be sent a Retry first: true once
    /// handshakes arrive faster than the configured rate.
    pub fn under_pressure(&self) -> bool {
        self.handshakes.as_ref().is_some_and(|h| h.check().is_err())
    }

    /// Admits a new connection from `ip` (counted until the slot drops), or
    /// refuses it.
    pub fn connect(&self, ip: IpAddr) -> Result<Slot, Refused> {
        self.connects.check(&ip).map_err(|ms| Refused {
            reason: "too many new connections from your address",
            retry_after_ms: ms,
        })?;
        let mut open = self.open.lock().expect("admission lock");
        let n = open.entry(ip).or_default();
        if *n >= self.cap {
            return Err(Refused {
                reason: "too many open connections from your address",
                retry_after_ms: CAP_RETRY_MS,
            });
        }
        *n += 1;
        Ok(Slot { ip, open: self.open.clone() })
    }

    /// Admits a login attempt for `account` from `ip`, or refuses it. Checked
    /// before any password hashing, so a flood costs the server nothing.
    pub fn login(&self, ip: IpAddr, account: Option<&str>) -> Result<(), Refused> {
        self.logins_ip.check(&ip).map_err(|ms| Refused {
            reason: "too many login attempts from your address",
            retry_after_ms: ms,
        })?;
        if let Some(account) = account {
            self.logins_account.check(&account.to_owned()).map_err(|ms| Refused {
                reason: "too many login attempts for this account",
                retry_after_ms: ms,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            connects_per_ip: RateLimit::new(100, 1),
            connections_per_ip: 2,
            logins_per_account: RateLimit::new(2, 60_000),
            logins_per_ip: RateLimit::new(4, 60_000),
            ..Limits::default()
        }
    }

    #[test]
    fn an_address_has_a_cap_on_open_connections_that_frees_on_close() {
        let a = Admission::new(&limits());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = a.connect(ip).unwrap();
        let _second = a.connect(ip).unwrap();
        let refused = a.connect(ip).unwrap_err();
        assert_eq!(refused.retry_after_ms, CAP_RETRY_MS);
        assert!(a.connect("192.0.2.2".parse().unwrap()).is_ok(), "other addresses are unaffected");
        drop(first);
        assert!(a.connect(ip).is_ok(), "a closed connection frees its slot");
    }

    #[test]
    fn logins_are_throttled_per_account_and_per_address() {
        let a = Admission::new(&limits());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        a.login(ip, Some("alice")).unwrap();
        a.login(ip, Some("alice")).unwrap();
        let refused = a.login(ip, Some("alice")).unwrap_err();
        assert!(refused.reason.contains("account") && refused.retry_after_ms > 1000, "{refused}");
        // The address still had one attempt left, which bob's login uses.
        a.login(ip, Some("bob")).unwrap();
        let refused = a.login(ip, Some("carol")).unwrap_err();
        assert!(refused.reason.contains("address"), "{refused}");
        // Alice from elsewhere is still throttled: the account is the key.
        assert!(a.login("192.0.2.9".parse().unwrap(), Some("alice")).is_err());
    }
}
