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
    /// Refusals, for the metrics.
    refused: crate::metrics::RateLimited,
    connects: Keyed<IpAddr>,
    logins_ip: Keyed<IpAddr>,
    /// Guesses at one account from one address: tight, so that a stranger's
    /// guesses never lock the owner out from their own address.
    logins_account_ip: Keyed<(String, IpAddr)>,
    /// Guesses at one account from anywhere: ten times looser, a ceiling on
    /// guessing from many addresses.
    logins_account: Keyed<String>,
    /// IPv6 addresses count per prefix of this many bits: one home or host
    /// gets a /64 (or more) to pick addresses from.
    ipv6_prefix: u8,
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
    /// Counts its refusals in `refused` (`connections`, `logins`).
    pub fn new(limits: &Limits, refused: crate::metrics::RateLimited) -> Self {
        Admission {
            refused,
            connects: Keyed::new(limits.connects_per_ip),
            logins_ip: Keyed::new(limits.logins_per_ip),
            logins_account_ip: Keyed::new(limits.logins_per_account),
            logins_account: Keyed::new(RateLimit::new(
                limits.logins_per_account.burst.saturating_mul(10),
                limits.logins_per_account.every_ms / 10,
            )),
            ipv6_prefix: limits.ipv6_prefix.min(128),
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

    fn count(&self, limit: &str) {
        self.refused.get_or_create(&crate::metrics::Limit { limit: limit.to_owned() }).inc();
    }

    /// Admits a new connection from `ip` (counted until the slot drops), or
    /// refuses it.
    pub fn connect(&self, ip: IpAddr) -> Result<Slot, Refused> {
        let admitted = self.try_connect(ip);
        if admitted.is_err() {
            self.count("connections");
        }
        admitted
    }

    fn try_connect(&self, ip: IpAddr) -> Result<Slot, Refused> {
        let ip = self.key(ip);
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
        let admitted = self.try_login(ip, account);
        if admitted.is_err() {
            self.count("logins");
        }
        admitted
    }

    fn try_login(&self, ip: IpAddr, account: Option<&str>) -> Result<(), Refused> {
        let ip = self.key(ip);
        self.logins_ip.check(&ip).map_err(|ms| Refused {
            reason: "too many login attempts from your address",
            retry_after_ms: ms,
        })?;
        if let Some(account) = account {
            let refused =
                |ms| Refused { reason: "too many login attempts for this account", retry_after_ms: ms };
            self.logins_account_ip.check(&(account.to_owned(), ip)).map_err(refused)?;
            self.logins_account.check(&account.to_owned()).map_err(refused)?;
        }
        Ok(())
    }

    /// The address as limits count it: an IPv6 address by its prefix, an
    /// IPv4-mapped one as the IPv4 address it is.
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u128::from(v6);
                    let keep = u32::from(self.ipv6_prefix);
                    let mask = if keep == 0 { 0 } else { u128::MAX << (128 - keep) };
                    IpAddr::V6((bits & mask).into())
                }
            },
            v4 => v4,
        }
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
        let a = Admission::new(&limits(), Default::default());
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
        let a = Admission::new(&limits(), Default::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        a.login(ip, Some("alice")).unwrap();
        a.login(ip, Some("alice")).unwrap();
        let refused = a.login(ip, Some("alice")).unwrap_err();
        assert!(refused.reason.contains("account") && refused.retry_after_ms > 1000, "{refused}");
        // The address still had one attempt left, which bob's login uses.
        a.login(ip, Some("bob")).unwrap();
        let refused = a.login(ip, Some("carol")).unwrap_err();
        assert!(refused.reason.contains("address"), "{refused}");
        // Alice from her own address is not locked out by those guesses.
        assert!(a.login("192.0.2.9".parse().unwrap(), Some("alice")).is_ok());
        // Guessing from many addresses meets the account-wide ceiling (10×).
        let many =
            (10..40).filter(|n| a.login(format!("192.0.2.{n}").parse().unwrap(), Some("alice")).is_err());
        assert!(many.count() > 0, "the account-wide ceiling holds");
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ones_as_ipv4() {
        let a = Admission::new(&limits(), Default::default());
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_home: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let _first = a.connect(one).unwrap();
        let _second = a.connect(same_home).unwrap();
        assert!(a.connect("2001:db8:1:2::77".parse().unwrap()).is_err(), "one /64 shares the cap");
        assert!(a.connect("2001:db8:1:3::1".parse().unwrap()).is_ok(), "the next /64 is another home");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(a.key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
