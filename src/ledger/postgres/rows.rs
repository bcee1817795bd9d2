//! Records as rows, and the one way a lifecycle rule is applied to a row.
//!
//! [`step`] runs inside a transaction: it reads the row `FOR UPDATE` (so no other
//! replica can change it until this transaction ends), hands it to the pure rule from
//! `rules.rs`, and writes what the rule decided. A row that does not exist yet cannot be
//! locked; the insert then says `ON CONFLICT DO NOTHING`, and if another transaction
//! inserted the same key meanwhile (the insert waits for it to commit), the step reads the
//! now-existing row — locked this time — and asks the rule again. Uniqueness is the primary
//! key's; the order of transitions is the row lock's: no lock in the hub process is involved.

use deadpool_postgres::Transaction;
use serde_json::Value;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::Row;
use uuid::Uuid;

use super::fault::{db, Fault};
use crate::ledger::codec::{Record, VERSION};
use crate::ledger::rules::{Step, Write};
use crate::ledger::types::{AcRequest, AcState, Federation, FederationState, Profile};
use crate::ledger::LedgerError;

/// A column value for a statement.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// A record type with a table of its own, keyed by one UUID.
pub(super) trait Table: Record + Send + Sync {
    /// `SELECT version, record ... WHERE key = $1 FOR UPDATE`.
    const SELECT: &'static str;
    /// `INSERT ... ON CONFLICT DO NOTHING`, parameters as [`Table::columns`].
    const INSERT: &'static str;
    /// `UPDATE ... WHERE key = $1`, parameters as [`Table::columns`].
    const UPDATE: &'static str;
    /// `DELETE ... WHERE key = $1`.
    const DELETE: &'static str;
    /// Every column, the key first, `record` and `version` last.
    fn columns(&self) -> Result<Vec<Param>, LedgerError>;
}

/// A time (Unix ms) as PostgreSQL's bigint; times beyond year 292 million saturate.
pub(super) fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// The stored form of a record: its serde shape as jsonb.
fn record_json<T: Record>(key: &str, record: &T) -> Result<Param, LedgerError> {
    let value = serde_json::to_value(record).map_err(|e| LedgerError::Corrupt {
        key: format!("{}/{key}", T::KIND),
        reason: format!("cannot encode: {e}"),
    })?;
    Ok(Box::new(Json(value)))
}

/// Reads the `version` and `record` columns of a row as a record of type `T`.
pub(super) fn decode<T: Record>(key: &str, row: &Row) -> Result<T, LedgerError> {
    let corrupt = |reason: String| LedgerError::Corrupt {
        key: format!("{}/{key}", T::KIND),
        reason,
    };
    let version: i16 = row.try_get("version").map_err(|e| corrupt(e.to_string()))?;
    if version != i16::from(VERSION) {
        return Err(corrupt(format!("unknown schema version {version}")));
    }
    let Json(value): Json<Value> = row.try_get("record").map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| corrupt(format!("bad version 1 record: {e}")))
}

impl Table for Federation {
    const SELECT: &'static str =
        "SELECT version, record FROM federations WHERE msp_token = $1 FOR UPDATE";
    const INSERT: &'static str =
        "INSERT INTO federations (msp_token, state, since, record, version) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
    const UPDATE: &'static str =
        "UPDATE federations SET state = $2, since = $3, record = $4, version = $5 \
         WHERE msp_token = $1";
    const DELETE: &'static str = "DELETE FROM federations WHERE msp_token = $1";

    fn columns(&self) -> Result<Vec<Param>, LedgerError> {
        let (state, since) = match &self.state {
            FederationState::Reserved { at } => ("reserved", Some(ms(*at))),
            FederationState::Active => ("active", None),
            FederationState::Invalid { at, .. } => ("invalid", Some(ms(*at))),
        };
        Ok(vec![
            Box::new(self.msp_token),
            Box::new(state),
            Box::new(since),
            record_json(&self.msp_token.to_string(), self)?,
            Box::new(i16::from(VERSION)),
        ])
    }
}

impl Table for AcRequest {
    const SELECT: &'static str = "SELECT version, record FROM requests WHERE id = $1 FOR UPDATE";
    const INSERT: &'static str =
        "INSERT INTO requests (id, state, msp, cmp, created_at, since, record, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING";
    const UPDATE: &'static str = "UPDATE requests SET state = $2, msp = $3, cmp = $4, \
         created_at = $5, since = $6, record = $7, version = $8 WHERE id = $1";
    const DELETE: &'static str = "DELETE FROM requests WHERE id = $1";

    fn columns(&self) -> Result<Vec<Param>, LedgerError> {
        // `since`: when the state began, or for an open request its deadline (the sweeper's
        // index: an open request is due after `since`, any other one `retention` after it).
        let since = match self.state {
            AcState::Pending => self.created_at,
            AcState::Open { deadline } => deadline,
            AcState::Answering { at, .. } | AcState::Closed { at, .. } => at,
        };
        Ok(vec![
            Box::new(self.id),
            Box::new(self.state.name()),
            Box::new(self.pair.msp.clone()),
            Box::new(self.pair.cmp.clone()),
            Box::new(ms(self.created_at)),
            Box::new(ms(since)),
            record_json(&self.id.to_string(), self)?,
            Box::new(i16::from(VERSION)),
        ])
    }
}

/// The upsert of one profile: the last status per (token, ICCID) wins.
pub(super) const UPSERT_PROFILE: &str =
    "INSERT INTO profiles (msp_token, iccid, record, version) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (msp_token, iccid) DO UPDATE SET record = EXCLUDED.record, version = EXCLUDED.version";

/// The parameters of [`UPSERT_PROFILE`].
pub(super) fn profile_columns(p: &Profile) -> Result<Vec<Param>, LedgerError> {
    Ok(vec![
        Box::new(p.msp_token),
        Box::new(p.iccid.clone()),
        record_json(&format!("{}/{}", p.msp_token, p.iccid), p)?,
        Box::new(i16::from(VERSION)),
    ])
}

/// Parameters as the driver wants them.
pub(super) fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Applies `rule` to the row `key` of `T`'s table, in `tx`. The rule's reply comes back as
/// it is (a refusal too); the caller commits whatever was written.
pub(super) async fn step<T: Table, R>(
    tx: &Transaction<'_>,
    key: Uuid,
    rule: &(impl Fn(Option<&T>) -> Step<T, R> + Sync),
) -> Result<Result<R, LedgerError>, Fault> {
    let name = key.to_string();
    let select = tx.prepare_cached(T::SELECT).await.map_err(db)?;
    loop {
        let row = tx.query_opt(&select, &[&key]).await.map_err(db)?;
        let cur = row.map(|r| decode::<T>(&name, &r)).transpose()?;
        let step = rule(cur.as_ref());
        match step.write {
            None => return Ok(step.reply),
            Some(Write::Delete) => {
                if cur.is_some() {
                    let delete = tx.prepare_cached(T::DELETE).await.map_err(db)?;
                    tx.execute(&delete, &[&key]).await.map_err(db)?;
                }
                return Ok(step.reply);
            }
            Some(Write::Put(record)) => {
                let columns = record.columns()?;
                let sql = if cur.is_some() { T::UPDATE } else { T::INSERT };
                let statement = tx.prepare_cached(sql).await.map_err(db)?;
                let written = tx.execute(&statement, &refs(&columns)).await.map_err(db)?;
                if written == 1 {
                    return Ok(step.reply);
                }
                // Inserted by another transaction since we looked: look again, under lock.
                tracing::trace!(kind = T::KIND, "ledger insert conflict, deciding again");
            }
        }
    }
}
