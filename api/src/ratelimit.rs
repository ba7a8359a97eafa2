//! Per-client limits on the public intake: a citizen's app or a script may send a few petitions
//! a minute, not thousands. Over the limit the answer is 429 with `Retry-After`.
//!
//! The client is the peer address of the connection, or the first address of
//! `X-Forwarded-For` when the operator says a reverse proxy sets it (`--trust-forwarded-for`).
//! The limiter is GCRA (the `governor` crate): `per_minute` petitions a minute on average, bursts
//! of up to `burst`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, StatusCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::problem::Problem;

pub struct IntakeLimit {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trust_forwarded_for: bool,
    per_minute: u32,
}

impl IntakeLimit {
    /// `per_minute == 0` turns the limit off (benchmarks, a trusted import gateway).
    pub fn new(per_minute: u32, burst: u32, trust_forwarded_for: bool) -> IntakeLimit {
        let limiter = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst.max(1)).expect("at least one");
            governor::RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        IntakeLimit { limiter, trust_forwarded_for, per_minute }
    }

    pub fn off() -> IntakeLimit {
        IntakeLimit::new(0, 0, false)
    }

    /// Who is asking: the forwarded client when trusted, else the connection's peer.
    fn client(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        if self.trust_forwarded_for
            && let Some(forwarded) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
            && let Some(first) = forwarded.split(',').next().and_then(|ip| ip.trim().parse().ok())
        {
            return Some(first);
        }
        extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
    }

    /// `Ok` when this client may send one more petition now; a 429 problem otherwise.
    pub fn check(&self, headers: &HeaderMap, extensions: &Extensions) -> Result<(), Problem> {
        let (Some(limiter), Some(client)) = (&self.limiter, self.client(headers, extensions)) else {
            return Ok(());
        };
        match limiter.check_key(&client) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let mut problem = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many petitions from this client",
                    format!("at most {} petitions a minute per client; try again in {seconds} s", self.per_minute),
                );
                problem.retry_after_seconds = Some(seconds.max(1));
                Err(problem)
            }
        }
    }

    /// Forgets clients that have been quiet (keeps the table small); call now and then.
    pub fn forget_quiet_clients(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Runs [`IntakeLimit::forget_quiet_clients`] every minute for the life of the process.
    pub fn spawn_housekeeping(limit: std::sync::Arc<IntakeLimit>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                limit.forget_quiet_clients();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratelimit_allows_a_burst_then_answers_429_with_retry_after() {
        let limit = IntakeLimit::new(6, 2, true);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        let extensions = Extensions::new();
        assert!(limit.check(&headers, &extensions).is_ok());
        assert!(limit.check(&headers, &extensions).is_ok());
        let problem = limit.check(&headers, &extensions).unwrap_err();
        assert_eq!(problem.status, 429);
        assert!((1..=10).contains(&problem.retry_after_seconds.unwrap()), "one petition per 10 s");
        // Another client is not held back.
        headers.insert("x-forwarded-for", "203.0.113.8".parse().unwrap());
        assert!(limit.check(&headers, &extensions).is_ok());
        assert!(IntakeLimit::off().check(&headers, &extensions).is_ok());
    }
}
