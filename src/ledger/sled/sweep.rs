//! Retention for the sled backend: a scan of each tree, then a compare-and-swap step per
//! record that is due (the step reads the record again and decides again).
//!
//! A withdrawn federation and its profiles live in two trees and go without a
//! transaction (see the module docs of `sled.rs`): profiles first, then the federation,
//! then any profile recorded meanwhile. A crash in between leaves the federation, which
//! the next sweep removes again.

use uuid::Uuid;

use super::behind::{Change, TreeId};
use super::SledLedger;
use crate::ledger::codec::Slot;
use crate::ledger::rules::{self, SweptFederation, SweptRequest};
use crate::ledger::{AcRequest, Federation, LedgerError, Profile, SweepReport};

impl SledLedger {
    /// Remove every profile of `token` that sled has (the sweep has the writer put all
    /// pending changes into sled first); how many there were.
    fn remove_profiles(&self, token: Uuid) -> Result<u64, LedgerError> {
        let store = &self.inner.store;
        let mut removed = 0;
        for key in store
            .tree(TreeId::Profiles)
            .scan_prefix(token.as_bytes())
            .keys()
        {
            let gone = store.update(TreeId::Profiles, &key?, true, |old: Option<&Profile>| {
                Ok(match old {
                    Some(_) => (Some(Change::Delete), true),
                    None => (None, false),
                })
            })?;
            if gone {
                self.inner.counters.add(Slot::Profile, -1);
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Close or purge the requests that are due.
    pub(super) fn sweep_requests(
        &self,
        now: u64,
        retention_ms: u64,
        report: &mut SweepReport,
    ) -> Result<(), LedgerError> {
        for req in self.all::<AcRequest>(TreeId::Requests) {
            let req = req?;
            // Only touch what the scan says is due; the step re-reads and re-decides.
            if rules::sweep_request(Some(&req), now, retention_ms)
                .write
                .is_none()
            {
                continue;
            }
            let swept = self.request_step(req.id, true, |cur| {
                rules::sweep_request(cur, now, retention_ms)
            })?;
            match swept {
                Some(SweptRequest::Expired) => report.expired += 1,
                Some(SweptRequest::Abandoned) => report.abandoned += 1,
                Some(SweptRequest::Purged) => report.requests_purged += 1,
                None => {}
            }
        }
        Ok(())
    }

    /// Purge withdrawn federations (with their profiles) and old reservations.
    pub(super) fn sweep_federations(
        &self,
        now: u64,
        retention_ms: u64,
        report: &mut SweepReport,
    ) -> Result<(), LedgerError> {
        for fed in self.all::<Federation>(TreeId::Federations) {
            let fed = fed?;
            let Some(due) = rules::sweepable(&fed, now, retention_ms) else {
                continue;
            };
            let token = fed.msp_token;
            let purge = due == SweptFederation::Purged;
            if purge {
                report.profiles_purged += self.remove_profiles(token)?;
            }
            match self.federation_step(token, true, |cur| {
                rules::sweep_federation(cur, now, retention_ms)
            })? {
                Some(SweptFederation::Purged) => report.federations_purged += 1,
                Some(SweptFederation::Dropped) => report.reservations_dropped += 1,
                None => {}
            }
            if purge {
                report.profiles_purged += self.remove_profiles(token)?;
            }
        }
        Ok(())
    }
}
