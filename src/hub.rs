//! The hub's shared state behind one cheap-to-clone handle: the configuration snapshot now in
//! force, the ledger, the limits registry, the metrics, and the reload bookkeeping.

use crate::config::ConfigError;
use crate::ledger::Ledger;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A handle on the running hub's state.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    ledger: Arc<dyn Ledger>,
    ts43: crate::ts43::Ts43State,
    limits: Limits,
    metrics: Metrics,
    source: Source,
    versions: AtomicU64,
    /// Serialises reloads (SIGHUP, file watch and admin call may race).
    reloading: Mutex<Option<String>>,
}

/// Where the configuration comes from, for reloads.
#[derive(Debug, Clone)]
pub struct Source {
    /// `config/hub.toml`.
    pub hub_toml: PathBuf,
    /// The directory relative paths resolve against.
    pub base: PathBuf,
}

impl Hub {
    /// Wraps a first snapshot, an open ledger and the TS.43 state. Must run inside the tokio
    /// runtime (the limits' Redis client, when configured, connects in the background).
    pub fn new(
        snapshot: Snapshot,
        ledger: Arc<dyn Ledger>,
        ts43: crate::ts43::Ts43State,
        source: Source,
    ) -> Hub {
        let version = snapshot.version;
        let limits = Limits::new(&snapshot.config.shared_limits);
        Hub {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(snapshot),
                ledger,
                ts43,
                limits,
                metrics: Metrics::default(),
                source,
                versions: AtomicU64::new(version),
                reloading: Mutex::new(None),
            }),
        }
    }

    /// The configuration now in force. Callers keep the `Arc` for a whole request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot.load_full()
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.inner.ledger
    }

    /// TS.43 temporary tokens, transfers and kept source sessions.
    pub fn ts43(&self) -> &crate::ts43::Ts43State {
        &self.inner.ts43
    }

    /// Rate-limit buckets and in-flight gates.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Where the configuration is read from.
    pub fn source(&self) -> &Source {
        &self.inner.source
    }

    /// The problems of the last refused reload, until a reload succeeds.
    pub fn last_reload_error(&self) -> Option<String> {
        lock(&self.inner.reloading).clone()
    }

    /// Reads the whole configuration again and swaps it in only if all of it is valid; says
    /// why otherwise (logged, counted, kept for the admin API). `trigger` names the cause.
    pub fn reload(&self, trigger: &str) -> Result<Arc<Snapshot>, ConfigError> {
        let mut last_error = lock(&self.inner.reloading);
        let source = &self.inner.source;
        let previous = self.snapshot();
        let version = self.inner.versions.load(Ordering::SeqCst) + 1;
        match Snapshot::load_after(&source.hub_toml, &source.base, version, Some(&previous)) {
            Ok(next) => {
                self.inner.versions.store(version, Ordering::SeqCst);
                let next = Arc::new(next);
                let (added, removed) = previous.partner_diff(&next);
                self.inner
                    .limits
                    .set_replicas(next.config.shared_limits.replicas);
                self.inner.snapshot.store(next.clone());
                self.inner.limits.retain(&next);
                *last_error = None;
                self.inner.metrics.reloads.inc("ok");
                tracing::info!(
                    trigger,
                    version,
                    hash = %next.hash,
                    unchanged = next.hash == previous.hash,
                    added = ?added,
                    removed = ?removed,
                    "configuration reloaded"
                );
                Ok(next)
            }
            Err(e) => {
                self.inner.metrics.reloads.inc("failed");
                tracing::error!(trigger, problems = %e.to_string().replace('\n', "; "), "reload refused; the previous configuration keeps serving");
                *last_error = Some(e.to_string());
                Err(e)
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded value is a plain Option<String>: a panic elsewhere cannot corrupt it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
