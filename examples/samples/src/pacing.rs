//! Token-bucket pacing of the rows written per second.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second accrue up to `capacity`; taking more than there are
/// goes into debt, and the caller waits until the debt is paid back.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` must be positive; `capacity` is the largest burst (one batch).
    #[must_use]
    pub fn new(rate: f64, capacity: f64, now: Instant) -> Self {
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            capacity: capacity.max(1.0),
            tokens: capacity.max(1.0),
            last: now,
        }
    }

    /// Take `n` tokens at `now`; returns how long to wait before using them.
    pub fn take(&mut self, n: f64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.tokens -= n;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_rate_is_the_configured_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 10.0, t0);
        let mut now = t0;
        // 1,000 rows in batches of 10, each batch used as soon as allowed
        for _ in 0..100 {
            now += b.take(10.0, now);
        }
        // the first batch is free (full bucket): 990 rows at 100/s
        let secs = (now - t0).as_secs_f64();
        assert!((secs - 9.9).abs() < 1e-6, "{secs}");
    }

    #[test]
    fn idle_time_does_not_accumulate_beyond_one_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 5.0, t0);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.take(5.0, later), Duration::ZERO);
        let wait = b.take(5.0, later);
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
    }
}
