//! [`SledLedger`]: the ledger in an embedded sled 0.34 database.
//!
//! Three trees: `federations` (key: token), `requests` (key: request id) and `profiles`
//! (key: token ++ ICCID); values are versioned records (`codec.rs`). Every transition is
//! a compare-and-swap loop on one key: read, apply the pure rule, swap if the record is
//! still the one read, otherwise read again. The request path only looks up keys.
//!
//! No sled transactions or batches: in sled 0.34 the first one switches every tree
//! operation of the process to a global lock, and each takes it for writing. The one
//! change touching two trees, purging a withdrawn federation with its profiles, is
//! ordered instead so that a crash half-way leaves something the next sweep finishes
//! (`sweep.rs`).
//!
//! Durability: a call whose write an answer relayed to a partner depends on returns after a
//! group commit (`group_commit.rs`) made its write, and anything it read, durable:
//! confirming a federation (the MSP's 201), withdrawing one (the 204), settling a request
//! as asynchronous (the CMP's 201), finishing an answer (the MSP's 200), learning and
//! importing. The others — reservations and their release, opening a request, closing it
//! synchronously, claiming an answer, profiles — protect nothing once the process is gone
//! (every request in flight dies with it) and are not waited for; they reach the disk with
//! the next group commit, which writes everything before it. Stats are counters kept in memory
//! (`counters.rs`), rebuilt by one scan when the database is opened (which also reads
//! every federation and request, so a record this version cannot read stops `open`
//! rather than a request later), then moved by each committed write: `stats` is O(1).
//!
//! sled calls are synchronous and made on the calling task: lookups and swaps are short
//! (the hot records are cached); only the flush blocks for long, and it runs on the
//! flusher thread. `list_requests`, `export` and `sweep` scan whole trees: they are for
//! the admin listener and background jobs, not the request path.

mod counters;
mod group_commit;
#[cfg(test)]
mod model_tests;
mod sweep;
#[cfg(test)]
mod tests;
mod transfers;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sled::Tree;
use uuid::Uuid;

use self::counters::Counters;
use self::group_commit::GroupCommit;
use super::codec::{decode, encode, id_key, profile_key, Record, Slot};
use super::rules::{self, Claimant, Step, Write};
use super::{
    AcRequest, Delivered, ExportRecord, ExportSink, Federation, ImportReport, Ledger, LedgerError,
    LedgerStats, NewAcRequest, NewFederation, Pair, Profile, ProfileEvent, RequestFilter, Settle,
    SweepReport, Withdrawal,
};

impl From<sled::Error> for LedgerError {
    fn from(e: sled::Error) -> LedgerError {
        LedgerError::Storage(e.to_string())
    }
}

/// A [`Ledger`] stored in a sled database; a cheap handle, clones share it.
#[derive(Clone)]
pub struct SledLedger {
    inner: Arc<Inner>,
}

struct Inner {
    federations: Tree,
    requests: Tree,
    profiles: Tree,
    ts43_tokens: Tree,
    ts43_bridges: Tree,
    ts43_transfers: Tree,
    counters: Counters,
    // Declared last: dropped after the trees, joining the flusher thread (which holds the
    // last other handle on the database) before `SledLedger` is gone.
    commits: GroupCommit,
}

impl fmt::Debug for SledLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledLedger")
            .field("stats", &self.inner.counters.snapshot())
            .field("flushes", &self.flush_count())
            .field("flush_waiters", &self.flush_waiters())
            .finish_non_exhaustive()
    }
}

impl SledLedger {
    /// Open (or create) the ledger in the directory `path`.
    ///
    /// Reads every federation and request once to count them: O(records) at start-up,
    /// and [`LedgerError::Corrupt`] if one cannot be read by this version.
    ///
    /// sled releases a closed database's file lock from its background threads, a moment
    /// after the last handle is dropped: a reopen in the same process (a restart in a
    /// test, say) may find it still taken, so `open` retries for up to
    /// [`SledLedger::LOCK_WAIT`] before giving up (another process holding it, likely).
    pub fn open(path: &Path) -> Result<SledLedger, LedgerError> {
        let db = Self::open_db(path)?;
        let federations = db.open_tree("federations")?;
        let requests = db.open_tree("requests")?;
        let profiles = db.open_tree("profiles")?;
        // TS.43 temporary tokens and transfers (`sled/transfers.rs`).
        let ts43_tokens = db.open_tree("ts43_tokens")?;
        let ts43_bridges = db.open_tree("ts43_bridges")?;
        let ts43_transfers = db.open_tree("ts43_transfers")?;
        let counters = Counters::default();
        counters.count::<Federation>(&federations)?;
        counters.count::<AcRequest>(&requests)?;
        counters.add(
            Slot::Profile,
            i64::try_from(profiles.len()).unwrap_or(i64::MAX),
        );
        let stats = counters.snapshot();
        tracing::info!(path = %path.display(), ?stats, "ledger opened");
        let commits = GroupCommit::start(db)?;
        let inner = Inner {
            federations,
            requests,
            profiles,
            ts43_tokens,
            ts43_bridges,
            ts43_transfers,
            counters,
            commits,
        };
        Ok(SledLedger {
            inner: Arc::new(inner),
        })
    }

    /// How long [`SledLedger::open`] waits for the database's file lock.
    pub const LOCK_WAIT: Duration = Duration::from_secs(5);

    fn open_db(path: &Path) -> Result<sled::Db, LedgerError> {
        let deadline = Instant::now() + Self::LOCK_WAIT;
        loop {
            match sled::Config::new().path(path).open() {
                // sled 0.34 reports a taken lock only in the message of an `Other` error.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                opened => return Ok(opened?),
            }
        }
    }

    /// How many flushes to disk this ledger has made since it was opened.
    pub fn flush_count(&self) -> u64 {
        self.inner.commits.flushes()
    }

    /// How many calls are waiting for their write to reach the disk right now.
    pub fn flush_waiters(&self) -> u64 {
        self.inner.commits.waiting()
    }

    /// Apply `rule` to the record at `key` with compare-and-swap, retrying on conflict.
    ///
    /// `rule` may run several times, so it is a `Fn`: it cannot change what it captured.
    fn step<T: Record, R>(
        &self,
        tree: &Tree,
        key: &[u8],
        rule: impl Fn(Option<&T>) -> Step<T, R>,
    ) -> Result<R, LedgerError> {
        loop {
            let old = tree.get(key)?;
            let cur = old.as_deref().map(|v| decode::<T>(key, v)).transpose()?;
            let step = rule(cur.as_ref());
            let (new, new_slot) = match &step.write {
                None => return step.reply,
                Some(Write::Put(record)) => (Some(encode(key, record)?), Some(record.slot())),
                Some(Write::Delete) => (None, None),
            };
            if tree.compare_and_swap(key, old, new)?.is_ok() {
                self.inner.counters.moved(cur.map(|c| c.slot()), new_slot);
                return step.reply;
            }
            tracing::trace!(kind = T::KIND, "ledger compare-and-swap conflict, retrying");
        }
    }

    fn federation_step<R>(
        &self,
        token: Uuid,
        rule: impl Fn(Option<&Federation>) -> Step<Federation, R>,
    ) -> Result<R, LedgerError> {
        self.step(&self.inner.federations, &id_key(token), rule)
    }

    fn request_step<R>(
        &self,
        id: Uuid,
        rule: impl Fn(Option<&AcRequest>) -> Step<AcRequest, R>,
    ) -> Result<R, LedgerError> {
        self.step(&self.inner.requests, &id_key(id), rule)
    }

    /// Hands back `result` without waiting for a flush: for writes no answer relayed to a
    /// partner depends on (see the module docs). They reach the disk with the next group
    /// commit or sled's own periodic flush.
    fn eventually<R>(&self, result: Result<R, LedgerError>) -> Result<R, LedgerError> {
        result
    }

    /// Wait for durability, then hand back `result`, whatever it is: even a refusal may
    /// rest on a write of another caller that is not yet on disk.
    async fn durably<R>(&self, result: Result<R, LedgerError>) -> Result<R, LedgerError> {
        self.inner.commits.durable().await?;
        result
    }

    fn get<T: Record>(tree: &Tree, key: &[u8]) -> Result<Option<T>, LedgerError> {
        tree.get(key)?.map(|v| decode(key, &v)).transpose()
    }

    fn all<T: Record>(tree: &Tree) -> impl Iterator<Item = Result<T, LedgerError>> + '_ {
        tree.iter().map(|entry| {
            let (key, value) = entry?;
            decode(&key, &value)
        })
    }
}

#[async_trait::async_trait]
impl Ledger for SledLedger {
    async fn federation(&self, token: Uuid) -> Result<Option<Federation>, LedgerError> {
        Self::get(&self.inner.federations, &id_key(token))
    }

    async fn reserve_federation(
        &self,
        token: Uuid,
        pair: &Pair,
        now: u64,
        stale_after_ms: u64,
    ) -> Result<(), LedgerError> {
        let result = self.federation_step(token, |cur| {
            rules::reserve(cur, token, pair, now, stale_after_ms)
        });
        self.eventually(result)
    }

    async fn confirm_federation(&self, fed: NewFederation) -> Result<Federation, LedgerError> {
        let result = self.federation_step(fed.msp_token, |cur| rules::confirm(cur, &fed));
        self.durably(result).await
    }

    async fn release_federation(&self, token: Uuid, pair: &Pair) -> Result<(), LedgerError> {
        let result = self.federation_step(token, |cur| rules::release(cur, pair));
        self.eventually(result)
    }

    async fn learn_federation(&self, fed: NewFederation) -> Result<Federation, LedgerError> {
        let result = self.federation_step(fed.msp_token, |cur| rules::learn(cur, &fed));
        self.durably(result).await.map(|(fed, _)| fed)
    }

    async fn invalidate_federation(
        &self,
        token: Uuid,
        by: Withdrawal,
        reason: Option<String>,
        now: u64,
    ) -> Result<Federation, LedgerError> {
        let result = self.federation_step(token, |cur| rules::invalidate(cur, by, &reason, now));
        self.durably(result).await
    }

    async fn open_request(&self, req: NewAcRequest) -> Result<(), LedgerError> {
        // Reading the federation outside the swap is enough: invalidation never looks at
        // requests, so a racing one simply orders after this open.
        let result = Self::get::<Federation>(&self.inner.federations, &id_key(req.msp_token))
            .and_then(|fed| self.request_step(req.id, |cur| rules::open(fed.as_ref(), cur, &req)));
        self.eventually(result)
    }

    async fn settle_request(
        &self,
        id: Uuid,
        settle: Settle,
        now: u64,
    ) -> Result<AcRequest, LedgerError> {
        let result = self.request_step(id, |cur| rules::settle(cur, settle, now));
        if matches!(settle, Settle::Async { .. }) {
            // The 201 that follows promises an answer can be matched later.
            self.durably(result).await
        } else {
            self.eventually(result)
        }
    }

    async fn claim_answer(
        &self,
        id: Uuid,
        msp: &str,
        cmp: &str,
        token: Uuid,
        now: u64,
        stale_after_ms: u64,
    ) -> Result<AcRequest, LedgerError> {
        let who = Claimant { msp, cmp, token };
        let result = self.request_step(id, |cur| rules::claim(cur, &who, now, stale_after_ms));
        self.eventually(result)
    }

    async fn finish_answer(
        &self,
        id: Uuid,
        delivered: Option<Delivered>,
        now: u64,
    ) -> Result<AcRequest, LedgerError> {
        let result = self.request_step(id, |cur| rules::finish(cur, delivered, now));
        self.durably(result).await
    }

    async fn request(&self, id: Uuid) -> Result<Option<AcRequest>, LedgerError> {
        Self::get(&self.inner.requests, &id_key(id))
    }

    async fn record_profiles(
        &self,
        token: Uuid,
        events: &[ProfileEvent],
        now: u64,
    ) -> Result<(), LedgerError> {
        let result = events.iter().try_for_each(|event| {
            let key = profile_key(token, &event.iccid);
            let value = encode(&key, &rules::profile(token, event, now))?;
            if self.inner.profiles.insert(key, value)?.is_none() {
                self.inner.counters.add(Slot::Profile, 1);
            }
            Ok(())
        });
        self.eventually(result)
    }

    async fn profiles(&self, token: Uuid) -> Result<Vec<Profile>, LedgerError> {
        let mine = self.inner.profiles.scan_prefix(token.as_bytes());
        mine.map(|entry| {
            let (key, value) = entry?;
            decode(&key, &value)
        })
        .collect()
    }

    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<AcRequest>, LedgerError> {
        let mut found = Vec::new();
        for req in Self::all::<AcRequest>(&self.inner.requests) {
            let req = req?;
            if rules::matches(&req, filter) {
                found.push(req);
            }
        }
        rules::order_and_limit(&mut found, filter);
        Ok(found)
    }

    async fn export(&self, sink: &mut ExportSink<'_>) -> Result<u64, LedgerError> {
        let mut count = 0;
        let feds = Self::all(&self.inner.federations).map(|r| r.map(ExportRecord::Federation));
        let reqs = Self::all(&self.inner.requests).map(|r| r.map(ExportRecord::Request));
        let profiles = Self::all(&self.inner.profiles).map(|r| r.map(ExportRecord::Profile));
        for record in feds.chain(reqs).chain(profiles) {
            sink(record?)?;
            count += 1;
        }
        Ok(count)
    }

    async fn import_federations(
        &self,
        lines: Vec<NewFederation>,
    ) -> Result<ImportReport, LedgerError> {
        let mut report = ImportReport::default();
        let mut result = Ok(());
        for fed in &lines {
            match self.federation_step(fed.msp_token, |cur| rules::learn(cur, fed)) {
                Ok((_, true)) => report.added += 1,
                Ok((_, false)) => report.already_present += 1,
                Err(LedgerError::TokenTaken) => report.conflicting.push(fed.msp_token),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // One flush for the whole import, also when it stopped half-way.
        self.durably(result.map(|()| report)).await
    }

    /// O(1): the in-memory counters (see the module docs).
    async fn stats(&self) -> Result<LedgerStats, LedgerError> {
        Ok(self.inner.counters.snapshot())
    }

    async fn sweep(&self, now: u64, retention_ms: u64) -> Result<SweepReport, LedgerError> {
        let mut report = SweepReport::default();
        let result = self
            .sweep_requests(now, retention_ms, &mut report)
            .and_then(|()| self.sweep_federations(now, retention_ms, &mut report));
        tracing::debug!(?report, "ledger swept");
        self.durably(result.map(|()| report)).await
    }

    async fn flush(&self) -> Result<(), LedgerError> {
        self.inner.commits.durable().await
    }
}
