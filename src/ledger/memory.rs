//! [`MemoryLedger`]: the ledger in ordered maps behind one mutex, nothing on disk.
//!
//! It is the reference model the sled backend is compared with in the model-based tests
//! (it applies the same rules to the simplest storage there is, and counts its stats by
//! looking at every record instead of keeping counters), and a test double for the rest
//! of the crate. It is not durable: a dropped `MemoryLedger` forgets everything.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

use super::codec::Record;
use super::rules::{self, Claimant, Step, SweptFederation, SweptRequest, Write};
use super::{
    AcRequest, Delivered, ExportRecord, ExportSink, Federation, ImportReport, Ledger, LedgerError,
    LedgerStats, NewAcRequest, NewFederation, Pair, Profile, ProfileEvent, RequestFilter, Settle,
    SweepReport, Withdrawal,
};

/// An in-memory [`Ledger`]; clones share the same records.
#[derive(Clone, Debug, Default)]
pub struct MemoryLedger {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    federations: BTreeMap<Uuid, Federation>,
    requests: BTreeMap<Uuid, AcRequest>,
    profiles: BTreeMap<(Uuid, String), Profile>,
}

/// Apply a rule's decision to `map` and return its reply.
fn apply<K: Ord, T, R>(
    map: &mut BTreeMap<K, T>,
    key: K,
    step: Step<T, R>,
) -> Result<R, LedgerError> {
    match step.write {
        Some(Write::Put(record)) => {
            map.insert(key, record);
        }
        Some(Write::Delete) => {
            map.remove(&key);
        }
        None => {}
    }
    step.reply
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> MemoryLedger {
        MemoryLedger::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section applies a decision already made by a pure rule, so a
        // panic elsewhere cannot leave the maps half-changed: a poisoned lock is safe to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn federation_step<R>(
        &self,
        token: Uuid,
        rule: impl FnOnce(Option<&Federation>) -> Step<Federation, R>,
    ) -> Result<R, LedgerError> {
        let mut state = self.state();
        let step = rule(state.federations.get(&token));
        apply(&mut state.federations, token, step)
    }

    fn request_step<R>(
        &self,
        id: Uuid,
        rule: impl FnOnce(Option<&AcRequest>) -> Step<AcRequest, R>,
    ) -> Result<R, LedgerError> {
        let mut state = self.state();
        let step = rule(state.requests.get(&id));
        apply(&mut state.requests, id, step)
    }

    fn remove_profiles(state: &mut State, token: Uuid) -> u64 {
        let before = state.profiles.len();
        state.profiles.retain(|(t, _), _| *t != token);
        (before - state.profiles.len()) as u64
    }
}

#[async_trait::async_trait]
impl Ledger for MemoryLedger {
    async fn federation(&self, token: Uuid) -> Result<Option<Federation>, LedgerError> {
        Ok(self.state().federations.get(&token).cloned())
    }

    async fn reserve_federation(
        &self,
        token: Uuid,
        pair: &Pair,
        now: u64,
        stale_after_ms: u64,
    ) -> Result<(), LedgerError> {
        self.federation_step(token, |cur| {
            rules::reserve(cur, token, pair, now, stale_after_ms)
        })
    }

    async fn confirm_federation(&self, fed: NewFederation) -> Result<Federation, LedgerError> {
        self.federation_step(fed.msp_token, |cur| rules::confirm(cur, &fed))
    }

    async fn release_federation(&self, token: Uuid, pair: &Pair) -> Result<(), LedgerError> {
        self.federation_step(token, |cur| rules::release(cur, pair))
    }

    async fn learn_federation(&self, fed: NewFederation) -> Result<Federation, LedgerError> {
        self.federation_step(fed.msp_token, |cur| rules::learn(cur, &fed))
            .map(|(fed, _)| fed)
    }

    async fn invalidate_federation(
        &self,
        token: Uuid,
        by: Withdrawal,
        reason: Option<String>,
        now: u64,
    ) -> Result<Federation, LedgerError> {
        self.federation_step(token, |cur| rules::invalidate(cur, by, &reason, now))
    }

    async fn open_request(&self, req: NewAcRequest) -> Result<(), LedgerError> {
        let mut state = self.state();
        let fed = rules::federation_allows(state.federations.get(&req.msp_token), &req.pair);
        let step = rules::open(fed, state.requests.get(&req.id), &req);
        apply(&mut state.requests, req.id, step)
    }

    async fn settle_request(
        &self,
        id: Uuid,
        settle: Settle,
        now: u64,
    ) -> Result<AcRequest, LedgerError> {
        self.request_step(id, |cur| rules::settle(cur, settle, now))
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
        self.request_step(id, |cur| rules::claim(cur, &who, now, stale_after_ms))
    }

    async fn finish_answer(
        &self,
        id: Uuid,
        delivered: Option<Delivered>,
        now: u64,
    ) -> Result<AcRequest, LedgerError> {
        self.request_step(id, |cur| rules::finish(cur, delivered, now))
    }

    async fn request(&self, id: Uuid) -> Result<Option<AcRequest>, LedgerError> {
        Ok(self.state().requests.get(&id).cloned())
    }

    async fn record_profiles(
        &self,
        token: Uuid,
        events: &[ProfileEvent],
        now: u64,
    ) -> Result<(), LedgerError> {
        let mut state = self.state();
        for event in events {
            let key = (token, event.iccid.clone());
            state
                .profiles
                .insert(key, rules::profile(token, event, now));
        }
        Ok(())
    }

    async fn profiles(&self, token: Uuid) -> Result<Vec<Profile>, LedgerError> {
        let state = self.state();
        let range = (token, String::new())..;
        let mine = state
            .profiles
            .range(range)
            .take_while(|((t, _), _)| *t == token);
        Ok(mine.map(|(_, p)| p.clone()).collect())
    }

    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<AcRequest>, LedgerError> {
        let state = self.state();
        let mut found: Vec<AcRequest> = state
            .requests
            .values()
            .filter(|r| rules::matches(r, filter))
            .cloned()
            .collect();
        rules::order_and_limit(&mut found, filter);
        Ok(found)
    }

    async fn export(&self, sink: &mut ExportSink<'_>) -> Result<u64, LedgerError> {
        let records: Vec<ExportRecord> = {
            let state = self.state();
            let feds = state
                .federations
                .values()
                .cloned()
                .map(ExportRecord::Federation);
            let reqs = state.requests.values().cloned().map(ExportRecord::Request);
            let profiles = state.profiles.values().cloned().map(ExportRecord::Profile);
            feds.chain(reqs).chain(profiles).collect()
        };
        let count = records.len() as u64;
        records.into_iter().try_for_each(sink)?;
        Ok(count)
    }

    async fn import_federations(
        &self,
        lines: Vec<NewFederation>,
    ) -> Result<ImportReport, LedgerError> {
        let mut report = ImportReport::default();
        for fed in &lines {
            match self.federation_step(fed.msp_token, |cur| rules::learn(cur, fed)) {
                Ok((_, true)) => report.added += 1,
                Ok((_, false)) => report.already_present += 1,
                Err(LedgerError::TokenTaken) => report.conflicting.push(fed.msp_token),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Counts by looking at every record: O(records), fine for a model and a test double.
    async fn stats(&self) -> Result<LedgerStats, LedgerError> {
        let state = self.state();
        let mut stats = LedgerStats::default();
        let slots = (state.federations.values().map(Record::slot))
            .chain(state.requests.values().map(Record::slot))
            .chain(state.profiles.values().map(Record::slot));
        for slot in slots {
            *slot.field(&mut stats) += 1;
        }
        Ok(stats)
    }

    async fn sweep(&self, now: u64, retention_ms: u64) -> Result<SweepReport, LedgerError> {
        let mut report = SweepReport::default();
        let mut state = self.state();
        let ids: Vec<Uuid> = state.requests.keys().copied().collect();
        for id in ids {
            let step = rules::sweep_request(state.requests.get(&id), now, retention_ms);
            match apply(&mut state.requests, id, step)? {
                Some(SweptRequest::Expired) => report.expired += 1,
                Some(SweptRequest::Abandoned) => report.abandoned += 1,
                Some(SweptRequest::Purged) => report.requests_purged += 1,
                None => {}
            }
        }
        let tokens: Vec<Uuid> = state.federations.keys().copied().collect();
        for token in tokens {
            let step = rules::sweep_federation(state.federations.get(&token), now, retention_ms);
            match apply(&mut state.federations, token, step)? {
                Some(SweptFederation::Purged) => {
                    report.federations_purged += 1;
                    report.profiles_purged += Self::remove_profiles(&mut state, token);
                }
                Some(SweptFederation::Dropped) => report.reservations_dropped += 1,
                None => {}
            }
        }
        Ok(report)
    }

    async fn flush(&self) -> Result<(), LedgerError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::conformance;

    #[tokio::test]
    async fn conformance_suite() {
        for check in conformance::ALL {
            eprintln!("conformance check {} on memory", check.name);
            (check.run)(&MemoryLedger::new()).await;
        }
    }
}
