//! A token bucket in exact integer arithmetic: the pacing logic of RateControlledFileReader,
//! kept apart from files and timers so it can be tested on its own.

use std::time::Duration;

use tokio::time::Instant;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Fills at `rate` bytes per second up to two chunks' worth. Amounts are kept in
/// byte-nanoseconds so no fraction of a token is ever lost to rounding.
///
/// Why two chunks: a timer always wakes a little late, and the time it overslept must be credited
/// or every chunk pays for it and the average rate drifts low. With room for a second chunk the
/// credit is kept, while a reader that was held up (backpressure) can catch up by at most one
/// chunk.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: u128,
    burst: i128,
    /// Bytes available, times 10⁹. Negative after taking more than the burst in one go.
    level: i128,
    last: Instant,
}

impl TokenBucket {
    /// A bucket for chunks of up to `chunk` bytes at `rate` bytes per second, holding one chunk
    /// (the first may go at once). A zero `rate` or `chunk` counts as 1.
    pub(crate) fn new(rate: u64, chunk: u64, now: Instant) -> Self {
        let chunk = i128::from(chunk.max(1)) * NANOS_PER_SEC as i128;
        TokenBucket {
            rate: u128::from(rate.max(1)),
            burst: 2 * chunk,
            level: chunk,
            last: now,
        }
    }

    /// Takes `n` bytes' worth if the bucket holds them (or is full, for an `n` larger than the
    /// burst, which then leaves a debt) and returns `None`; otherwise takes nothing and returns how
    /// long until it will.
    pub(crate) fn take(&mut self, n: u64, now: Instant) -> Option<Duration> {
        self.refill(now);
        let want = (i128::from(n) * NANOS_PER_SEC as i128).min(self.burst);
        if self.level >= want {
            self.level -= i128::from(n) * NANOS_PER_SEC as i128;
            return None;
        }
        // `want > level`, so the difference is positive; round up so the wake-up is never early.
        let missing = (want - self.level) as u128;
        let nanos = missing.div_ceil(self.rate);
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.last = now.max(self.last);
        // elapsed·rate in byte-nanoseconds; saturate rather than overflow after absurd idle times.
        let added = i128::try_from(elapsed.saturating_mul(self.rate)).unwrap_or(i128::MAX);
        self.level = self.level.saturating_add(added).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_pays_out_its_burst_then_paces() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 100, t0);
        assert_eq!(b.take(100, t0), None);
        assert_eq!(b.take(100, t0), Some(Duration::from_millis(100)));
        assert_eq!(
            b.take(100, t0 + Duration::from_millis(99)),
            Some(Duration::from_millis(1))
        );
        assert_eq!(b.take(100, t0 + Duration::from_millis(100)), None);
    }

    #[test]
    fn waking_late_is_credited_so_the_average_holds() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 100, t0);
        let mut now = t0;
        let mut sent = 0;
        while sent < 10_000 {
            match b.take(100, now) {
                None => sent += 100,
                // A timer that always fires 3 ms late.
                Some(wait) => now += wait + Duration::from_millis(3),
            }
        }
        // 9 900 bytes after the first burst at 1 000 B/s: 9.9 s, not 9.9 s + 99 × 3 ms.
        let elapsed = now - t0;
        assert!(elapsed < Duration::from_millis(9_990), "{elapsed:?}");
        assert!(elapsed >= Duration::from_millis(9_900), "{elapsed:?}");
    }

    #[test]
    fn the_bucket_never_holds_more_than_two_chunks() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 100, t0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.take(100, later), None);
        assert_eq!(b.take(100, later), None);
        assert_eq!(b.take(1, later), Some(Duration::from_millis(1)));
    }

    #[test]
    fn a_request_larger_than_the_burst_leaves_a_debt() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, 100, t0);
        assert_eq!(b.take(300, t0), Some(Duration::from_millis(100)));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.take(300, t1), None);
        assert_eq!(b.take(100, t1), Some(Duration::from_millis(200)));
    }
}
