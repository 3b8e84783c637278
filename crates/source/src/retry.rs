//! Retrying with exponential backoff and full jitter, honouring `Retry-After`.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::error::{Error, Result};

/// When and how often to try again after a retryable error.
///
/// The wait before attempt *n + 1* is drawn uniformly from zero to
/// `min(max_delay, initial_delay × multiplier^(n-1))` ("full jitter", so many clients that
/// failed together do not come back together). When the source asked for a wait
/// (`Retry-After`), that wait is used as it is; a wait longer than `max_delay` ends the
/// retries, so a sync does not hang on a source that is down for hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 means never retry).
    pub max_attempts: u32,
    /// The cap of the first wait.
    pub initial_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// How much the cap grows per attempt.
    pub multiplier: u32,
}

impl Default for RetryPolicy {
    /// Six attempts, waits capped at 0.5 s, 1 s, 2 s, 4 s, 8 s; at most a minute asked by
    /// `Retry-After`.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            multiplier: 2,
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait after `error` ended attempt number `attempt` (from 1), or `None` to give up.
    /// `unit` is a random number in `[0, 1)` that places the wait within its cap.
    pub fn delay(&self, attempt: u32, error: &Error, unit: f64) -> Option<Duration> {
        if !error.is_retryable() || attempt >= self.max_attempts {
            return None;
        }
        if let Some(asked) = error.retry_after() {
            return (asked <= self.max_delay).then_some(asked);
        }
        let growth = self
            .multiplier
            .max(1)
            .checked_pow(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        let cap = self
            .initial_delay
            .checked_mul(growth)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        Some(cap.mul_f64(unit.clamp(0.0, 1.0)))
    }

    /// [`delay`](Self::delay) with a fresh random `unit` (full jitter): for a caller with its
    /// own retry loop (the sync engine retries store writes with the same policy).
    pub fn jittered_delay(&self, attempt: u32, error: &Error) -> Option<Duration> {
        self.delay(attempt, error, random_unit())
    }

    /// Runs `op` until it succeeds, fails with an error retrying cannot help, or the attempts
    /// run out (the last error is returned). `sleep` waits, on whatever runtime the caller
    /// uses (`tokio::time::sleep`); `on_retry` hears of each retry (for progress and logs).
    pub async fn run<T, Op, Fut, Sl, SlFut>(
        &self,
        mut op: Op,
        mut sleep: Sl,
        mut on_retry: impl FnMut(u32, &Error, Duration),
    ) -> Result<T>
    where
        Op: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
        Sl: FnMut(Duration) -> SlFut,
        SlFut: Future<Output = ()>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => match self.delay(attempt, &e, random_unit()) {
                    Some(wait) => {
                        on_retry(attempt, &e, wait);
                        sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

/// A random number in `[0, 1)` from the standard library's per-process random hash keys
/// (jitter needs no cryptographic quality, and this crate no random-number dependency).
fn random_unit() -> f64 {
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}
