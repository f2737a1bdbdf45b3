//! Exponential backoff with full jitter.
//!
//! Every retry loop in the worker (polls, heartbeats, reports) waits a random
//! time between zero and an exponentially growing cap, so that many hosts
//! throttled at once spread their retries instead of retrying in lockstep
//! (the "full jitter" scheme from the AWS Architecture Blog).

use std::time::Duration;

/// Backoff state for one retry loop.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Waits grow from `base` and never exceed `cap`.
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The ceiling of the next wait: `min(cap, base * 2^attempt)`.
    pub(crate) fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next wait: uniformly random in `[0, ceiling]`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    /// Forgets past failures after a success.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many waits have been handed out since the last reset.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut ceilings = vec![];
        for _ in 0..6 {
            ceilings.push(b.ceiling().as_millis());
            b.next_delay();
        }
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let delays: Vec<Duration> = (0..200)
            .map(|_| {
                b.reset();
                b.next_delay()
            })
            .collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(100)));
        // Full jitter: the spread covers most of the range, not one value.
        let min = delays.iter().min().unwrap();
        let max = delays.iter().max().unwrap();
        assert!(*max - *min > Duration::from_millis(50), "{min:?}..{max:?}");
    }

    #[test]
    fn reset_starts_over_and_huge_attempts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_secs(60));
        assert_eq!(b.attempts(), 100);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }
}
