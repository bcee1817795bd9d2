//! The hub's shared state: the current configuration snapshot and the ledger, behind one
//! cheap-to-clone handle.

use crate::config::ConfigError;
use crate::ledger::Ledger;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A handle on the running hub's state.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    snapshot: ArcSwap<Snapshot>,
    ledger: Arc<dyn Ledger>,
    source: Source,
    versions: AtomicU64,
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
    /// Wraps a first snapshot and an open ledger.
    pub fn new(snapshot: Snapshot, ledger: Arc<dyn Ledger>, source: Source) -> Hub {
        let version = snapshot.version;
        Hub {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(snapshot),
                ledger,
                source,
                versions: AtomicU64::new(version),
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

    /// Reads the configuration again; swaps it in only if all of it is valid.
    pub fn reload(&self) -> Result<Arc<Snapshot>, ConfigError> {
        let version = self.inner.versions.fetch_add(1, Ordering::SeqCst) + 1;
        let source = &self.inner.source;
        let next = Arc::new(Snapshot::load(&source.hub_toml, &source.base, version)?);
        self.inner.snapshot.store(next.clone());
        Ok(next)
    }
}
