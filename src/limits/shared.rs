//! Token buckets in Redis, shared by every replica: one atomic GCRA script per decision.
//!
//! GCRA (the generic cell rate algorithm) keeps one number per bucket, its *theoretical
//! arrival time*: a call is admitted when that time is no more than `(burst - 1)` emission
//! intervals ahead of now, and then moves it one interval on. The script checks every bucket
//! a call takes from (the partner's, and the function's) before moving any, reads the clock
//! of Redis (so replicas' clocks do not matter), and lets keys expire when their bucket is
//! full again. It is sent once and then called by its SHA (`EVALSHA`, reloaded by the client
//! on `NOSCRIPT`).
//!
//! Redis is on the request path with a short deadline (`limits.redis_timeout_ms`, 50 ms by
//! default). A call that fails or times out makes the replica fall back to its local share
//! (see `limits.rs`) and say so once, in the log and in `aidhub_rate_limit_fallbacks_total`;
//! while Redis is down, one call per [`PROBE_EVERY`] tries it again, the others do not wait
//! for it. The first call that succeeds makes the limits global again, logged once too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::config::{LimitSpec, SharedLimits};

/// How often a replica in fallback tries Redis again.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// KEYS: the buckets; ARGV: per bucket, the emission interval and the tolerance (µs).
/// Returns `{1, 0}` when admitted, `{0, wait_µs}` when not (nothing is taken then).
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local next_tat = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local early = tat - tolerance - now
  if early > wait then wait = early end
  next_tat[i] = tat + interval
end
if wait > 0 then return {0, math.ceil(wait)} end
for i, key in ipairs(KEYS) do
  local ttl = math.ceil((next_tat[i] - now) / 1000) + 1
  redis.call('SET', key, string.format('%.0f', next_tat[i]), 'PX', ttl)
end
return {1, 0}
"#;

/// The Redis side of the limits.
pub(super) struct Shared {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
    timeout: Duration,
    health: Arc<Health>,
}

/// Whether Redis answered last time, and when to try again if not.
struct Health {
    healthy: AtomicBool,
    retry_at_ms: AtomicU64,
    fallbacks: AtomicU64,
}

/// What Redis decided.
pub(super) enum Decision {
    /// Every bucket had a token; each gave one.
    Admitted,
    /// A bucket was empty; retry after this long.
    Refused(Duration),
}

impl Shared {
    /// A lazily connecting client for `settings.redis_url` (already validated), warmed up in
    /// the background so the first call does not pay for the connection. Must run inside
    /// the tokio runtime.
    pub(super) fn start(settings: &SharedLimits) -> Option<Shared> {
        let url = settings.redis_url.as_ref()?.expose_str()?;
        let client = redis::Client::open(url)
            .map_err(|e| tracing::error!(cause = %e, "limits.redis_url cannot be used"))
            .ok()?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| tracing::error!(cause = %e, "cannot set up the Redis client"))
            .ok()?;
        let script = Script::new(GCRA);
        let health = Arc::new(Health {
            healthy: AtomicBool::new(true),
            retry_at_ms: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        });
        let (mut warm, load, told) = (conn.clone(), script.clone(), health.clone());
        tokio::spawn(async move {
            match load.load_async(&mut warm).await {
                Ok(_) => told.up(),
                Err(e) => told.down(&e.to_string()),
            }
        });
        Some(Shared {
            conn,
            script,
            prefix: settings.redis_key_prefix.clone(),
            timeout: settings.redis_timeout,
            health,
        })
    }

    /// Whether Redis answered the last time it was asked.
    pub(super) fn healthy(&self) -> bool {
        self.health.healthy.load(Ordering::Acquire)
    }

    /// How many times this replica fell back to its local share.
    pub(super) fn fallbacks(&self) -> u64 {
        self.health.fallbacks.load(Ordering::Relaxed)
    }

    /// Takes one token from each bucket of `partner` (`None`: the partner's own bucket,
    /// `Some(f)`: its bucket for function `f`), or `None` when Redis cannot decide now.
    pub(super) async fn take(
        &self,
        partner: &str,
        buckets: &[(Option<&'static str>, LimitSpec)],
    ) -> Option<Decision> {
        if !self.healthy() && !self.health.probe_now() {
            return None;
        }
        let mut invocation = self.script.prepare_invoke();
        for (function, spec) in buckets {
            let key = match function {
                None => format!("{}:rate:{partner}", self.prefix),
                Some(f) => format!("{}:rate:{partner}:{f}", self.prefix),
            };
            let interval = 1e6 / spec.rate;
            let tolerance = interval * f64::from(spec.burst.saturating_sub(1));
            invocation
                .key(key)
                .arg(format!("{interval:.3}"))
                .arg(format!("{tolerance:.3}"));
        }
        let mut conn = self.conn.clone();
        let call = invocation.invoke_async::<(i64, i64)>(&mut conn);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((admitted, wait_us))) => {
                self.health.up();
                Some(if admitted == 1 {
                    Decision::Admitted
                } else {
                    Decision::Refused(Duration::from_micros(wait_us.max(1) as u64))
                })
            }
            Ok(Err(e)) => {
                self.health.down(&e.to_string());
                None
            }
            Err(_) => {
                self.health
                    .down(&format!("no answer within {} ms", self.timeout.as_millis()));
                None
            }
        }
    }
}

impl Health {
    /// In fallback: whether this call is the one that tries Redis again now.
    fn probe_now(&self) -> bool {
        let now = crate::aid1::lifecycle::now_ms();
        let at = self.retry_at_ms.load(Ordering::Acquire);
        now >= at
            && self
                .retry_at_ms
                .compare_exchange(
                    at,
                    now + PROBE_EVERY.as_millis() as u64,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    fn down(&self, cause: &str) {
        let next = crate::aid1::lifecycle::now_ms() + PROBE_EVERY.as_millis() as u64;
        self.retry_at_ms.store(next, Ordering::Release);
        if self.healthy.swap(false, Ordering::AcqRel) {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                %cause,
                "Redis unreachable: rate limits fall back to this replica's local share"
            );
        }
    }

    fn up(&self) {
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::info!("Redis answers again: rate limits are global again");
        }
    }
}
