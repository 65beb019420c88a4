//! Sliding-window rate limits, in memory, for one server process (self-registration: per
//! email address and per client IP address).
//!
//! In memory is enough for one process: a restart forgets the counts (at most one more
//! window's worth of attempts), and several processes behind a load balancer each count
//! their own (the limit is then per process). Keys are SHA-256 hashes, so the table never
//! holds an email address. The table is bounded: when it grows past [`MAX_KEYS`] the
//! idle keys are dropped, and if it is still full, attempts are refused (fail closed)
//! rather than letting memory grow without bound.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Keys kept at most (each a few dozen bytes plus its timestamps).
pub const MAX_KEYS: usize = 100_000;

/// Attempts in the last `window_us`, per key.
pub struct RateLimiter {
    window_us: i64,
    seen: Mutex<HashMap<[u8; 32], VecDeque<i64>>>,
}

/// One limit to check: a key (hashed here) and how many attempts it may have per window.
pub struct Limit<'a> {
    pub kind: &'static str,
    pub key: &'a str,
    pub max: u32,
}

impl RateLimiter {
    pub fn new(window_us: i64) -> RateLimiter {
        RateLimiter {
            window_us,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records one attempt under every limit at `now_us`, if each still allows one; if any
    /// does not, records nothing and returns `false`.
    pub fn allow(&self, limits: &[Limit<'_>], now_us: i64) -> bool {
        let keys: Vec<([u8; 32], u32)> = limits
            .iter()
            .map(|l| {
                let mut h = Sha256::new();
                h.update(l.kind.as_bytes());
                h.update([0]);
                h.update(l.key.as_bytes());
                (h.finalize().into(), l.max)
            })
            .collect();
        let since = now_us - self.window_us;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_KEYS {
            seen.retain(|_, times| times.back().is_some_and(|t| *t > since));
        }
        for (key, max) in &keys {
            if let Some(times) = seen.get_mut(key) {
                while times.front().is_some_and(|t| *t <= since) {
                    times.pop_front();
                }
                if times.len() >= *max as usize {
                    return false;
                }
            } else if *max == 0 || seen.len() + keys.len() > MAX_KEYS {
                return false;
            }
        }
        for (key, _) in keys {
            seen.entry(key).or_default().push_back(now_us);
        }
        true
    }
}

/// The client key of an IP address: the address itself for IPv4, the /64 network for IPv6
/// (one subscriber usually has a whole /64, so counting single addresses would be no limit).
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600 * 1_000_000;

    fn limits<'a>(address: &'a str, ip: &'a str) -> [Limit<'a>; 2] {
        [
            Limit {
                kind: "address",
                key: address,
                max: 2,
            },
            Limit {
                kind: "ip",
                key: ip,
                max: 3,
            },
        ]
    }

    #[test]
    fn counts_per_key_within_the_window() {
        let r = RateLimiter::new(HOUR);
        assert!(r.allow(&limits("a@x.org", "1.2.3.4"), 0));
        assert!(r.allow(&limits("a@x.org", "1.2.3.4"), 1));
        // The address is used up; the refusal records nothing against the IP.
        assert!(!r.allow(&limits("a@x.org", "1.2.3.4"), 2));
        assert!(r.allow(&limits("b@x.org", "1.2.3.4"), 3));
        // The IP is used up now, whatever the address.
        assert!(!r.allow(&limits("c@x.org", "1.2.3.4"), 4));
        assert!(r.allow(&limits("c@x.org", "5.6.7.8"), 5));
        // An hour after the first attempts they no longer count.
        assert!(r.allow(&limits("a@x.org", "1.2.3.4"), HOUR + 1));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let a = client_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = client_key("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(client_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
    }
}
