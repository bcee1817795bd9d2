//! Per-partner limits: token buckets (governor) per calling partner and, optionally, per
//! partner and function; and a hub-wide cap on requests in flight towards each upstream, so a
//! slow partner cannot pile up the hub's connections.
//!
//! The buckets and gates live here, outside the configuration snapshot, so a reload keeps
//! every bucket whose quota did not change — another partner's new limit never resets this
//! partner's bucket — and in-flight counts survive reloads.
//!
//! Several replicas share a partner's limit: with `[limits] redis_url` the buckets live in
//! Redis (`limits/shared.rs`) and the limit is global; without Redis, or while it cannot be
//! reached, each replica admits its *local share*, `limit / replicas` (`[limits] replicas`;
//! the burst rounded down, at least 1), in governor buckets of its own. The in-flight caps
//! are always per replica.

mod shared;

use crate::config::{LimitSpec, Partner, SharedLimits};
use crate::error::HubError;
use crate::FastDashMap as DashMap;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

struct Bucket {
    spec: LimitSpec,
    limiter: DefaultDirectRateLimiter,
}

/// Buckets and in-flight gates for every partner.
pub struct Limits {
    buckets: DashMap<(Arc<str>, Option<&'static str>), Arc<Bucket>>,
    in_flight: DashMap<Arc<str>, Arc<AtomicUsize>>,
    replicas: AtomicU32,
    shared: Option<shared::Shared>,
}

impl Default for Limits {
    /// One replica, no Redis: every partner's whole limit, locally.
    fn default() -> Self {
        Limits {
            buckets: DashMap::default(),
            in_flight: DashMap::default(),
            replicas: AtomicU32::new(1),
            shared: None,
        }
    }
}

/// Where rate-limit decisions are made right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In Redis, for every replica together.
    Redis,
    /// In this replica, on its local share.
    Local,
}

impl Mode {
    /// `redis` or `local`, as the metric labels it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Redis => "redis",
            Mode::Local => "local",
        }
    }
}

/// A request counted against an upstream's in-flight cap until dropped.
pub struct InFlight {
    count: Arc<AtomicUsize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limits {
    /// Limits for a replica of `settings.replicas`, in Redis when `settings.redis_url` is
    /// set. Must run inside the tokio runtime (the Redis client connects in the background).
    pub fn new(settings: &SharedLimits) -> Limits {
        Limits {
            replicas: AtomicU32::new(settings.replicas.max(1)),
            shared: shared::Shared::start(settings),
            ..Limits::default()
        }
    }

    /// A reload changed `[limits] replicas`: local shares follow from the next call on.
    pub fn set_replicas(&self, replicas: u32) {
        self.replicas.store(replicas.max(1), Ordering::Relaxed);
    }

    /// Where decisions are made now: Redis while it answers, else locally.
    pub fn mode(&self) -> Mode {
        match &self.shared {
            Some(shared) if shared.healthy() => Mode::Redis,
            _ => Mode::Local,
        }
    }

    /// How many times this replica fell back from Redis to its local share.
    pub fn fallbacks(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.fallbacks())
    }

    /// Takes one token from `partner`'s bucket and from its bucket for `function`, if it has
    /// them: in Redis when it answers in time, else from this replica's local share.
    /// Refuses with 429 and the time until a token is free.
    pub async fn admit(&self, partner: &Partner, function: &'static str) -> Result<(), HubError> {
        // The narrower bucket first: locally, a call it refuses costs no partner-wide token
        // (in Redis every bucket is checked before any is taken).
        let mut buckets = Vec::with_capacity(2);
        if let Some(spec) = partner.limits.functions.get(function) {
            buckets.push((Some(function), *spec));
        }
        if let Some(spec) = partner.limits.rate {
            buckets.push((None, spec));
        }
        if buckets.is_empty() {
            return Ok(());
        }
        if let Some(shared) = &self.shared {
            match shared.take(&partner.id, &buckets).await {
                Some(shared::Decision::Admitted) => return Ok(()),
                Some(shared::Decision::Refused(retry_after)) => {
                    return Err(HubError::RateLimited { retry_after })
                }
                None => {}
            }
        }
        let replicas = self.replicas.load(Ordering::Relaxed);
        for (function, spec) in buckets {
            self.take(&partner.id, function, spec.share(replicas))?;
        }
        Ok(())
    }

    /// Drops the buckets and gates of partners and limits `snap` no longer has, so a limit
    /// removed and later added back starts with a full bucket. In-flight gates of partners
    /// still configured are kept (their requests are still counted).
    pub fn retain(&self, snap: &crate::snapshot::Snapshot) {
        let replicas = self.replicas.load(Ordering::Relaxed);
        let local = |spec: Option<&LimitSpec>| spec.map(|s| s.share(replicas));
        self.buckets.retain(|(key, scope), bucket| match *scope {
            // TS.43 buckets: quota checked on use; device buckets are evicted by size.
            Some("ts43_carrier") => snap.carrier(key).is_some(),
            Some("ts43_device") => true,
            None => snap
                .partner(key)
                .is_some_and(|p| local(p.limits.rate.as_ref()) == Some(bucket.spec)),
            Some(f) => snap
                .partner(key)
                .is_some_and(|p| local(p.limits.functions.get(f)) == Some(bucket.spec)),
        });
        self.in_flight.retain(|partner, count| {
            snap.partner(partner).is_some() || count.load(Ordering::Acquire) > 0
        });
    }

    /// Takes one token from the bucket `(key, scope)` of quota `spec` (TS.43: a carrier's
    /// bucket, or a device's keyed by the hash of its `terminal_id`). Device buckets are
    /// many: past 100 000 keys, the full ones of `scope` are dropped.
    pub fn admit_keyed(
        &self,
        key: &Arc<str>,
        scope: &'static str,
        spec: LimitSpec,
    ) -> Result<(), HubError> {
        if self.buckets.len() > 100_000 {
            let full = |b: &Bucket| {
                let burst =
                    std::num::NonZeroU32::new(b.spec.burst).unwrap_or(std::num::NonZeroU32::MIN);
                matches!(b.limiter.check_n(burst), Ok(Ok(())))
            };
            self.buckets
                .retain(|(_, s), b| *s != Some(scope) || !full(b));
        }
        self.take(key, Some(scope), spec)
    }

    fn take(
        &self,
        partner: &Arc<str>,
        function: Option<&'static str>,
        spec: LimitSpec,
    ) -> Result<(), HubError> {
        let bucket = self.bucket(partner, function, spec);
        bucket
            .limiter
            .check()
            .map_err(|not_until| HubError::RateLimited {
                retry_after: not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                )),
            })
    }

    fn bucket(
        &self,
        partner: &Arc<str>,
        function: Option<&'static str>,
        spec: LimitSpec,
    ) -> Arc<Bucket> {
        let key = (partner.clone(), function);
        if let Some(bucket) = self.buckets.get(&key) {
            if bucket.spec == spec {
                return bucket.clone();
            }
        }
        // New, or its quota changed by a reload: a fresh bucket for this key only.
        let bucket = Arc::new(Bucket {
            spec,
            limiter: RateLimiter::direct(spec.quota()),
        });
        self.buckets.insert(key, bucket.clone());
        bucket
    }

    /// Counts a request in flight towards `target`; refuses with 503 when `max` are already.
    pub fn enter(&self, target: &Arc<str>, max: usize) -> Result<InFlight, HubError> {
        let count = match self.in_flight.get(target) {
            Some(c) => c.clone(),
            None => self.in_flight.entry(target.clone()).or_default().clone(),
        };
        if count.fetch_add(1, Ordering::AcqRel) >= max {
            count.fetch_sub(1, Ordering::AcqRel);
            return Err(HubError::Overloaded {
                partner: target.to_string(),
            });
        }
        Ok(InFlight { count })
    }

    /// Requests in flight towards `target` now.
    pub fn in_flight(&self, target: &str) -> usize {
        self.in_flight
            .get(target)
            .map_or(0, |c| c.load(Ordering::Acquire))
    }
}

impl LimitSpec {
    /// One replica's share of this limit among `replicas`: the rate divided, the burst
    /// divided and rounded down, at least 1.
    pub fn share(self, replicas: u32) -> LimitSpec {
        let n = replicas.max(1);
        LimitSpec {
            rate: self.rate / f64::from(n),
            burst: (self.burst / n).max(1),
        }
    }

    /// The governor quota: `rate` per second, `burst` at once.
    pub fn quota(&self) -> Quota {
        let period = std::time::Duration::from_secs_f64(1.0 / self.rate);
        // `rate` and `burst` were validated positive when the configuration was loaded.
        let burst = std::num::NonZeroU32::new(self.burst).unwrap_or(std::num::NonZeroU32::MIN);
        Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MIN))
            .allow_burst(burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_share_divides_rate_and_burst() {
        let spec = LimitSpec {
            rate: 3.0,
            burst: 3,
        };
        assert_eq!(spec.share(1), spec);
        assert_eq!(
            spec.share(3),
            LimitSpec {
                rate: 1.0,
                burst: 1
            }
        );
        assert_eq!(
            LimitSpec {
                rate: 10.0,
                burst: 5
            }
            .share(4)
            .burst,
            1
        );
        assert_eq!(spec.share(0), spec);
    }
}
