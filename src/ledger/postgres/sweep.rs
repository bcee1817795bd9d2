//! Retention on PostgreSQL: the `since` index finds what may be due, then each row is
//! stepped under its lock with the same retention rules sled applies, so a row another
//! replica swept (or a request changed) meanwhile is decided again and left alone.
//!
//! A withdrawn federation goes with its profiles in one transaction.

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::fault::{db, Fault};
use super::rows::{ms, step};
use super::{retry, PostgresLedger};
use crate::ledger::rules::{self, SweptFederation, SweptRequest};
use crate::ledger::{Federation, LedgerError, SweepReport};

/// Records whose state began before this are older than the retention at `now`.
fn retired(now: u64, retention_ms: u64) -> i64 {
    ms(now).saturating_sub(ms(retention_ms))
}

impl PostgresLedger {
    /// Ids of rows that may be due: a superset of what the rules will change.
    async fn candidates(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Uuid>, LedgerError> {
        let client = self.client().await?;
        let rows = client
            .query(sql, params)
            .await
            .map_err(|e| Fault::Db(e).into_ledger())?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Close or purge the requests that are due.
    pub(super) async fn sweep_requests(
        &self,
        now: u64,
        retention_ms: u64,
        report: &mut SweepReport,
    ) -> Result<(), LedgerError> {
        let due = self
            .candidates(
                "SELECT id FROM requests WHERE (state = 'open' AND since < $1) \
                 OR (state <> 'open' AND since < $2)",
                &[&ms(now), &retired(now, retention_ms)],
            )
            .await?;
        for id in due {
            let swept = self
                .step(id, |cur| rules::sweep_request(cur, now, retention_ms))
                .await?;
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
    pub(super) async fn sweep_federations(
        &self,
        now: u64,
        retention_ms: u64,
        report: &mut SweepReport,
    ) -> Result<(), LedgerError> {
        let due = self
            .candidates(
                "SELECT msp_token FROM federations WHERE state <> 'active' AND since < $1",
                &[&retired(now, retention_ms)],
            )
            .await?;
        for token in due {
            let mut tries = 0;
            let (swept, profiles) = loop {
                let outcome = self.sweep_federation(token, now, retention_ms).await;
                if let Some(result) = retry(outcome.map(Ok), &mut tries) {
                    break result?;
                }
            };
            match swept {
                Some(SweptFederation::Purged) => report.federations_purged += 1,
                Some(SweptFederation::Dropped) => report.reservations_dropped += 1,
                None => {}
            }
            report.profiles_purged += profiles;
        }
        Ok(())
    }

    /// One federation's sweep, in one transaction: the rule under the row lock, then its
    /// profiles when it was purged.
    async fn sweep_federation(
        &self,
        token: Uuid,
        now: u64,
        retention_ms: u64,
    ) -> Result<(Option<SweptFederation>, u64), Fault> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let rule = |cur: Option<&Federation>| rules::sweep_federation(cur, now, retention_ms);
        let swept = step(&tx, token, &rule).await??;
        let profiles = if swept == Some(SweptFederation::Purged) {
            let delete = tx
                .prepare_cached("DELETE FROM profiles WHERE msp_token = $1")
                .await
                .map_err(db)?;
            tx.execute(&delete, &[&token]).await.map_err(db)?
        } else {
            0
        };
        self.slow.commit(tx).await?;
        Ok((swept, profiles))
    }
}
