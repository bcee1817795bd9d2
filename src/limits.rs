//! Per-partner limits: token buckets (governor) per calling partner and, optionally, per
//! partner and function; and a hub-wide cap on requests in flight towards each upstream, so a
//! slow partner cannot pile up the hub's connections.
//!
//! The buckets and gates live here, outside the configuration snapshot, so a reload keeps
//! every bucket whose quota did not change — another partner's new limit never resets this
//! partner's bucket — and in-flight counts survive reloads.

use crate::config::{LimitSpec, Partner};
use crate::error::HubError;
use dashmap::DashMap;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Bucket {
    spec: LimitSpec,
    limiter: DefaultDirectRateLimiter,
}

/// Buckets and in-flight gates for every partner.
#[derive(Default)]
pub struct Limits {
    buckets: DashMap<(Arc<str>, Option<&'static str>), Arc<Bucket>>,
    in_flight: DashMap<Arc<str>, Arc<AtomicUsize>>,
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
    /// Takes one token from `partner`'s bucket and from its bucket for `function`, if it has
    /// them. Refuses with 429 and the time until a token is free.
    pub fn admit(&self, partner: &Partner, function: &'static str) -> Result<(), HubError> {
        // The narrower bucket first: a call it refuses costs no partner-wide token.
        if let Some(spec) = partner.limits.functions.get(function) {
            self.take(&partner.id, Some(function), *spec)?;
        }
        if let Some(spec) = partner.limits.rate {
            self.take(&partner.id, None, spec)?;
        }
        Ok(())
    }

    /// Drops the buckets and gates of partners and limits `snap` no longer has, so a limit
    /// removed and later added back starts with a full bucket. In-flight gates of partners
    /// still configured are kept (their requests are still counted).
    pub fn retain(&self, snap: &crate::snapshot::Snapshot) {
        self.buckets.retain(|(key, scope), bucket| match *scope {
            // TS.43 buckets: quota checked on use; device buckets are evicted by size.
            Some("ts43_carrier") => snap.carrier(key).is_some(),
            Some("ts43_device") => true,
            None => snap
                .partner(key)
                .is_some_and(|p| p.limits.rate == Some(bucket.spec)),
            Some(f) => snap
                .partner(key)
                .is_some_and(|p| p.limits.functions.get(f) == Some(&bucket.spec)),
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
