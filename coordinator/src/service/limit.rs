//! The `Join` rate limit: a token bucket per peer IP address, so that no host can
//! flood the coordinator with joins (each one a database write).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many joins one address may make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JoinLimit {
    /// Joins per second an address may sustain (`--join-rate`).
    pub per_second: f64,
    /// Joins an address may make at once before the rate applies (`--join-burst`):
    /// enough for every worker process a host starts together.
    pub burst: u32,
}

impl Default for JoinLimit {
    fn default() -> JoinLimit {
        JoinLimit {
            per_second: DEFAULT_JOIN_RATE,
            burst: DEFAULT_JOIN_BURST,
        }
    }
}

/// Default sustained joins per second per address.
pub const DEFAULT_JOIN_RATE: f64 = 20.0;
/// Default joins per address at once.
pub const DEFAULT_JOIN_BURST: u32 = 256;
/// Addresses remembered before idle ones are forgotten.
const MAX_TRACKED_ADDRESSES: usize = 4096;

/// One address's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets per peer address.
#[derive(Debug)]
pub struct JoinLimiter {
    limit: JoinLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl JoinLimiter {
    /// A limiter allowing `limit`.
    pub fn new(limit: JoinLimit) -> JoinLimiter {
        JoinLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one join for `ip` at `now`; when its bucket is empty, returns how long
    /// until the next join would be admitted.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.limit.burst.max(1));
        let rate = self.limit.per_second.max(f64::MIN_POSITIVE);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED_ADDRESSES && !buckets.contains_key(&ip) {
            // A full bucket holds nothing worth remembering.
            buckets.retain(|_, bucket| refill(*bucket, now, rate, burst).tokens < burst);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        *bucket = refill(*bucket, now, rate, burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_s = (1.0 - bucket.tokens) / rate;
            Err(Duration::try_from_secs_f64(wait_s).unwrap_or(Duration::MAX))
        }
    }
}

fn refill(bucket: Bucket, now: Instant, rate: f64, burst: f64) -> Bucket {
    let elapsed_s = now.saturating_duration_since(bucket.updated).as_secs_f64();
    Bucket {
        tokens: (bucket.tokens + elapsed_s * rate).min(burst),
        updated: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_address() {
        let limiter = JoinLimiter::new(JoinLimit {
            per_second: 2.0,
            burst: 3,
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit(a, start), Ok(()));
        }
        let wait = limiter.admit(a, start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Another address has its own bucket.
        assert_eq!(limiter.admit(b, start), Ok(()));
        // Half a second gives one join back, not more.
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.admit(a, later), Ok(()));
        assert!(limiter.admit(a, later).is_err());
        // A long pause refills up to the burst only.
        let much_later = later + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.admit(a, much_later), Ok(()));
        }
        assert!(limiter.admit(a, much_later).is_err());
    }

    #[test]
    fn a_zero_rate_waits_for_ever_without_panicking() {
        let limiter = JoinLimiter::new(JoinLimit {
            per_second: 0.0,
            burst: 1,
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        limiter.admit(ip, now).unwrap();
        assert_eq!(limiter.admit(ip, now), Err(Duration::MAX));
    }

    #[test]
    fn idle_addresses_are_forgotten_when_too_many_are_tracked() {
        let limiter = JoinLimiter::new(JoinLimit {
            per_second: 1.0,
            burst: 1,
        });
        let start = Instant::now();
        for idx in 0..MAX_TRACKED_ADDRESSES as u32 {
            let ip = IpAddr::from(idx.to_be_bytes());
            limiter.admit(ip, start).unwrap();
        }
        let later = start + Duration::from_secs(5);
        limiter.admit("192.0.2.1".parse().unwrap(), later).unwrap();
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
