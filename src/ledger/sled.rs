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
//! Writes go through a write-behind map (`behind.rs`): a transition is a read-modify-write
//! of one key under that key's lock in memory — read the pending or stored record, apply the
//! pure rule, keep the result — and a writer thread puts the results into sled. Reads see
//! pending records first, so the ledger behaves as if every write went straight to sled;
//! sled just learns of it a little later, and of changes nothing waits for at most once per
//! `behind::AGE` (a quarter second), however often one record changes.
//!
//! Durability: a call whose write an answer relayed to a partner depends on returns after
//! the writer put it into sled and flushed (one flush for all the durable writes waiting:
//! group commit): confirming a federation (the MSP's 201), withdrawing one (the 204),
//! settling a request as asynchronous (the CMP's 201), finishing an answer (the MSP's 200),
//! learning and importing, sweeping. The others — reservations and their release, opening
//! a request, closing it synchronously, claiming an answer, profiles — protect nothing once
//! the process is gone (every request in flight dies with it) and are not waited for; they
//! reach sled within `behind::AGE` and the disk with the next flush. Stats are counters kept
//! in memory (`counters.rs`), rebuilt by one scan when the database is opened (which also
//! reads every federation and request, so a record this version cannot read stops `open`
//! rather than a request later), then moved by each write: `stats` is O(1).
//!
//! sled calls are synchronous and short on the calling task (a pending lookup, or a sled
//! lookup of a cached record); writing and flushing happen on the writer thread.
//! `list_requests`, `export`, `profiles` and `sweep` scan whole trees after the writer has
//! put everything pending into sled: they are for the admin listener and background jobs,
//! not the request path.

mod behind;
mod counters;
mod filter;
mod journal;
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

use self::behind::{Change, TreeId, WriteBehind};
use self::counters::Counters;
use super::codec::{decode, id_key, profile_key, Record, Slot};
use super::rules::{self, Claimant, Step, Write};
use super::{
    AcRequest, Delivered, ExportRecord, ExportSink, Federation, ImportReport, Ledger, LedgerError,
    LedgerStats, NewAcRequest, NewFederation, Pair, Profile, ProfileEvent, RequestFilter, Settle,
    Standing, SweepReport, Withdrawal,
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
    ts43_tokens: Tree,
    ts43_bridges: Tree,
    ts43_transfers: Tree,
    counters: Counters,
    // Declared last: dropped after the trees, writing what is pending and joining the writer
    // thread (which holds the last other handle on the database) before `SledLedger` is gone.
    store: WriteBehind,
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
        Self::open_with(path, behind::CHECKPOINT_EVERY)
    }

    /// [`SledLedger::open`], flushing sled and emptying the journal every `checkpoint`
    /// (`ledger.checkpoint_ms`; the longest stretch a restart after a crash replays).
    pub fn open_with(path: &Path, checkpoint: Duration) -> Result<SledLedger, LedgerError> {
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
        let store = WriteBehind::start(path, db, [federations, requests, profiles], checkpoint)?;
        let inner = Inner {
            ts43_tokens,
            ts43_bridges,
            ts43_transfers,
            counters,
            store,
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
            // No periodic flush of sled's own: the writer flushes when it checkpoints.
            match sled::Config::new().path(path).flush_every_ms(None).open() {
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

    /// How many times durable writes were synced to disk (journal syncs) since it was opened.
    pub fn flush_count(&self) -> u64 {
        self.inner.store.flushes()
    }

    /// How many calls are waiting for their write to reach the disk right now.
    pub fn flush_waiters(&self) -> u64 {
        self.inner.store.waiting()
    }

    /// Apply `rule` to the record at `key` (atomically: under the key's lock) and keep what
    /// it writes; `durable` marks a write an answer relayed to a partner depends on.
    fn step<T: Record, R>(
        &self,
        tree: TreeId,
        key: &[u8],
        durable: bool,
        rule: impl FnOnce(Option<&T>) -> Step<T, R>,
    ) -> Result<R, LedgerError> {
        let counters = &self.inner.counters;
        self.inner
            .store
            .update(tree, key, durable, |cur: Option<&T>| {
                let step = rule(cur);
                let (change, new_slot) = match step.write {
                    None => return Ok((None, step.reply)),
                    Some(Write::Put(record)) => {
                        let slot = record.slot();
                        (Change::Put(record), Some(slot))
                    }
                    Some(Write::Delete) => (Change::Delete, None),
                };
                counters.moved(cur.map(Record::slot), new_slot);
                Ok((Some(change), step.reply))
            })?
    }

    fn federation_step<R>(
        &self,
        token: Uuid,
        durable: bool,
        rule: impl FnOnce(Option<&Federation>) -> Step<Federation, R>,
    ) -> Result<R, LedgerError> {
        self.step(TreeId::Federations, &id_key(token), durable, rule)
    }

    fn request_step<R>(
        &self,
        id: Uuid,
        durable: bool,
        rule: impl FnOnce(Option<&AcRequest>) -> Step<AcRequest, R>,
    ) -> Result<R, LedgerError> {
        self.step(TreeId::Requests, &id_key(id), durable, rule)
    }

    /// Wait for durability, then hand back `result`, whatever it is: even a refusal may
    /// rest on a durable write of another caller that is not yet on disk.
    async fn durably<R>(&self, result: Result<R, LedgerError>) -> Result<R, LedgerError> {
        self.inner.store.durable().await?;
        result
    }

    /// Like [`SledLedger::durably`], for writes made straight to sled (the TS.43 trees): waits
    /// for a sled flush.
    async fn flushed<R>(&self, result: Result<R, LedgerError>) -> Result<R, LedgerError> {
        self.inner.store.flushed().await?;
        result
    }

    fn get<T: Record>(&self, tree: TreeId, key: &[u8]) -> Result<Option<T>, LedgerError> {
        self.inner.store.get(tree, key)
    }

    /// Every record of `tree`, as sled has them: call after [`WriteBehind::written`].
    fn all<T: Record>(&self, tree: TreeId) -> impl Iterator<Item = Result<T, LedgerError>> + '_ {
        self.inner.store.tree(tree).iter().map(|entry| {
            let (key, value) = entry?;
            decode(&key, &value)
        })
    }
}

#[async_trait::async_trait]
impl Ledger for SledLedger {
    async fn federation(&self, token: Uuid) -> Result<Option<Federation>, LedgerError> {
        self.get(TreeId::Federations, &id_key(token))
    }

    async fn standing(&self, token: Uuid, pair: &Pair) -> Result<Standing, LedgerError> {
        self.inner.store.read(
            TreeId::Federations,
            &id_key(token),
            |fed: Option<&Federation>| Standing::of(fed, pair),
        )
    }

    async fn reserve_federation(
        &self,
        token: Uuid,
        pair: &Pair,
        now: u64,
        stale_after_ms: u64,
    ) -> Result<(), LedgerError> {
        self.federation_step(token, false, |cur| {
            rules::reserve(cur, token, pair, now, stale_after_ms)
        })
    }

    async fn confirm_federation(&self, fed: NewFederation) -> Result<Federation, LedgerError> {
        let result = self.federation_step(fed.msp_token, true, |cur| rules::confirm(cur, &fed));
        self.durably(result).await
    }

    async fn release_federation(&self, token: Uuid, pair: &Pair) -> Result<(), LedgerError> {
        self.federation_step(token, false, |cur| rules::release(cur, pair))
    }

    async fn learn_federation(&self, fed: NewFederation) -> Result<Federation, LedgerError> {
        let result = self.federation_step(fed.msp_token, true, |cur| rules::learn(cur, &fed));
        self.durably(result).await.map(|(fed, _)| fed)
    }

    async fn invalidate_federation(
        &self,
        token: Uuid,
        by: Withdrawal,
        reason: Option<String>,
        now: u64,
    ) -> Result<Federation, LedgerError> {
        let result =
            self.federation_step(token, true, |cur| rules::invalidate(cur, by, &reason, now));
        self.durably(result).await
    }

    async fn open_request(&self, req: NewAcRequest) -> Result<(), LedgerError> {
        // Reading the federation outside the request's step is enough: invalidation never
        // looks at requests, so a racing one simply orders after this open. Read in place.
        let fed = self.inner.store.read(
            TreeId::Federations,
            &id_key(req.msp_token),
            |fed: Option<&Federation>| rules::federation_allows(fed, &req.pair),
        )?;
        self.request_step(req.id, false, |cur| rules::open(fed.clone(), cur, &req))
    }

    async fn settle_request(
        &self,
        id: Uuid,
        settle: Settle,
        now: u64,
    ) -> Result<AcRequest, LedgerError> {
        // The 201 that follows an asynchronous settle promises an answer can be matched later.
        let durable = matches!(settle, Settle::Async { .. });
        let result = self.request_step(id, durable, |cur| rules::settle(cur, settle, now));
        if durable {
            self.durably(result).await
        } else {
            result
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
        self.request_step(id, false, |cur| {
            rules::claim(cur, &who, now, stale_after_ms)
        })
    }

    async fn finish_answer(
        &self,
        id: Uuid,
        delivered: Option<Delivered>,
        now: u64,
    ) -> Result<AcRequest, LedgerError> {
        let result = self.request_step(id, true, |cur| rules::finish(cur, delivered, now));
        self.durably(result).await
    }

    async fn request(&self, id: Uuid) -> Result<Option<AcRequest>, LedgerError> {
        self.get(TreeId::Requests, &id_key(id))
    }

    async fn record_profiles(
        &self,
        token: Uuid,
        events: &[ProfileEvent],
        now: u64,
    ) -> Result<(), LedgerError> {
        let counters = &self.inner.counters;
        events.iter().try_for_each(|event| {
            let key = profile_key(token, &event.iccid);
            let profile = rules::profile(token, event, now);
            self.inner
                .store
                .update(TreeId::Profiles, &key, false, |old: Option<&Profile>| {
                    if old.is_none() {
                        counters.add(Slot::Profile, 1);
                    }
                    Ok((Some(Change::Put(profile)), ()))
                })
        })
    }

    async fn profiles(&self, token: Uuid) -> Result<Vec<Profile>, LedgerError> {
        self.inner.store.flushed().await?;
        let mine = self
            .inner
            .store
            .tree(TreeId::Profiles)
            .scan_prefix(token.as_bytes());
        mine.map(|entry| {
            let (key, value) = entry?;
            decode(&key, &value)
        })
        .collect()
    }

    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<AcRequest>, LedgerError> {
        self.inner.store.flushed().await?;
        let mut found = Vec::new();
        for req in self.all::<AcRequest>(TreeId::Requests) {
            let req = req?;
            if rules::matches(&req, filter) {
                found.push(req);
            }
        }
        rules::order_and_limit(&mut found, filter);
        Ok(found)
    }

    async fn export(&self, sink: &mut ExportSink<'_>) -> Result<u64, LedgerError> {
        self.inner.store.flushed().await?;
        let mut count = 0;
        let feds = self
            .all(TreeId::Federations)
            .map(|r| r.map(ExportRecord::Federation));
        let reqs = self
            .all(TreeId::Requests)
            .map(|r| r.map(ExportRecord::Request));
        let profiles = self
            .all(TreeId::Profiles)
            .map(|r| r.map(ExportRecord::Profile));
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
            match self.federation_step(fed.msp_token, true, |cur| rules::learn(cur, fed)) {
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
        self.inner.store.flushed().await?;
        let mut report = SweepReport::default();
        let result = self
            .sweep_requests(now, retention_ms, &mut report)
            .and_then(|()| self.sweep_federations(now, retention_ms, &mut report));
        tracing::debug!(?report, "ledger swept");
        self.durably(result.map(|()| report)).await
    }

    async fn flush(&self) -> Result<(), LedgerError> {
        self.inner.store.flushed().await
    }

    fn sync_times(&self) -> Vec<(&'static str, &crate::metrics::Histogram)> {
        self.inner.store.sync_times()
    }

    fn failure(&self) -> Option<LedgerError> {
        self.inner.store.failure()
    }
}
