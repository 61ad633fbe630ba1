//! 熔断器: a per-department circuit breaker, so a dead department fails fast instead of making every
//! caseworker wait for its timeout.
//!
//! States (documented in `schemas/README.md` for operators too):
//!
//! ```text
//!            N consecutive failures                 cool-down elapsed, next call
//!  Closed ─────────────────────────▶ Open ───────────────────────────────▶ HalfOpen
//!    ▲  success resets the count       ▲  calls fail fast (circuit_open)      │ exactly one trial call;
//!    │                                 │                                      │ others fail fast
//!    └──────────── trial succeeds ─────┼──────────────────────────────────────┤
//!                                      └──────────── trial fails ─────────────┘
//! ```
//!
//! - Closed: calls pass. A failure increments the consecutive-failure count; a success resets it.
//!   When the count reaches `failure_threshold`, the breaker opens for `cool_down`.
//! - Open: calls are refused immediately with the time left. When `cool_down` has elapsed, the next
//!   call becomes the half-open trial.
//! - HalfOpen: exactly one trial call is in flight; all other calls are refused. The trial's success
//!   closes the breaker, its failure re-opens it for a fresh `cool_down`. If the trial is abandoned
//!   (its future dropped without an outcome) the slot is freed for the next call.
//!
//! Only outcomes that say the department is unhealthy count as failures (timeouts, connection
//! failures, 5xx, malformed or badly signed answers); a department that answers, even with a
//! refusal, is healthy. The clock is `tokio::time::Instant`, so tests run on paused time.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Breaker settings for one department.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open before a half-open trial.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// The observable state, for metrics and the operator console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed { consecutive_failures: u32 },
    Open { retry_in: Duration },
    HalfOpen { trial_in_flight: bool },
}

impl BreakerState {
    /// Stable code: `closed`, `open`, `half_open`.
    pub fn code(&self) -> &'static str {
        match self {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// A circuit breaker. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: Arc<Mutex<State>>,
}

/// Permission to make one call. Report the outcome with [`Permit::success`] or
/// [`Permit::failure`]; dropping it without an outcome counts as neither.
#[derive(Debug)]
#[must_use = "report the call's outcome with success() or failure()"]
pub struct Permit {
    breaker: CircuitBreaker,
    /// True when this permit is the half-open trial.
    trial: bool,
    reported: bool,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config: BreakerConfig {
                failure_threshold: config.failure_threshold.max(1),
                ..config
            },
            state: Arc::new(Mutex::new(State::Closed { failures: 0 })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere while holding it; the state is still a
        // valid enum value, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ask to make a call. `Err(retry_in)` when the breaker refuses (open, or a half-open trial is
    /// already in flight; `retry_in` is zero in the latter case).
    pub fn try_acquire(&self) -> Result<Permit, Duration> {
        let mut st = self.lock();
        let now = Instant::now();
        let trial = match *st {
            State::Closed { .. } => false,
            State::Open { until } if now < until => return Err(until - now),
            State::Open { .. }
            | State::HalfOpen {
                trial_in_flight: false,
            } => {
                *st = State::HalfOpen {
                    trial_in_flight: true,
                };
                true
            }
            State::HalfOpen {
                trial_in_flight: true,
            } => return Err(Duration::ZERO),
        };
        Ok(Permit {
            breaker: self.clone(),
            trial,
            reported: false,
        })
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        let st = self.lock();
        match *st {
            State::Closed { failures } => BreakerState::Closed {
                consecutive_failures: failures,
            },
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    BreakerState::Open {
                        retry_in: until - now,
                    }
                } else {
                    BreakerState::HalfOpen {
                        trial_in_flight: false,
                    }
                }
            }
            State::HalfOpen { trial_in_flight } => BreakerState::HalfOpen { trial_in_flight },
        }
    }

    fn on_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    fn on_failure(&self, trial: bool) {
        let mut st = self.lock();
        let open = State::Open {
            until: Instant::now() + self.config.cool_down,
        };
        *st = match *st {
            _ if trial => open,
            State::Closed { failures } if failures + 1 >= self.config.failure_threshold => open,
            State::Closed { failures } => State::Closed {
                failures: failures + 1,
            },
            // A late failure from a call admitted before the breaker opened: already open or
            // probing, nothing to add.
            other => other,
        };
    }

    fn on_abandoned(&self, trial: bool) {
        if trial {
            let mut st = self.lock();
            if let State::HalfOpen { .. } = *st {
                *st = State::HalfOpen {
                    trial_in_flight: false,
                };
            }
        }
    }
}

impl Permit {
    /// The call showed the department healthy.
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.on_success();
    }

    /// The call showed the department unhealthy.
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.on_failure(self.trial);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.on_abandoned(self.trial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(30);

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            cool_down: COOL,
        })
    }

    fn fail(b: &CircuitBreaker) {
        b.try_acquire().expect("admitted").failure();
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_consecutive_failures() {
        let b = breaker();
        fail(&b);
        fail(&b);
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                consecutive_failures: 2
            }
        );
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open { retry_in: COOL });
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.try_acquire().unwrap_err(), Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count() {
        let b = breaker();
        fail(&b);
        fail(&b);
        b.try_acquire().unwrap().success();
        fail(&b);
        fail(&b);
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                consecutive_failures: 2
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_one_trial_and_closes_on_success() {
        let b = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(COOL).await;
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen {
                trial_in_flight: false
            }
        );
        let trial = b.try_acquire().expect("trial admitted");
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen {
                trial_in_flight: true
            }
        );
        assert_eq!(b.try_acquire().unwrap_err(), Duration::ZERO);
        trial.success();
        assert_eq!(
            b.state(),
            BreakerState::Closed {
                consecutive_failures: 0
            }
        );
        b.try_acquire().expect("closed again").success();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_reopens_for_a_fresh_cool_down() {
        let b = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(COOL + Duration::from_secs(5)).await;
        fail(&b); // the trial
        assert_eq!(b.state(), BreakerState::Open { retry_in: COOL });
        tokio::time::advance(COOL - Duration::from_millis(1)).await;
        assert!(b.try_acquire().is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(b.try_acquire().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_frees_the_slot() {
        let b = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(COOL).await;
        drop(b.try_acquire().expect("trial"));
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen {
                trial_in_flight: false
            }
        );
        b.try_acquire().expect("next trial").success();
        assert_eq!(b.state().code(), "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn late_failures_do_not_extend_an_open_breaker() {
        let b = breaker();
        let late = b.try_acquire().unwrap();
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        late.failure();
        assert_eq!(
            b.state(),
            BreakerState::Open {
                retry_in: Duration::from_secs(20)
            }
        );
    }
}
