//! The reads: one row by key, a token's profiles, request listings, counts and export.
//! None takes a lock; each sees what was committed when it ran.

use std::pin::pin;

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::fault::Fault;
use super::rows::{decode, ms};
use super::PostgresLedger;
use crate::ledger::{
    AcRequest, ExportRecord, ExportSink, Federation, LedgerError, LedgerStats, Profile,
    RequestFilter,
};

impl PostgresLedger {
    /// Every row of one query, handed to `sink` as it streams in.
    async fn stream<T: crate::ledger::codec::Record>(
        &self,
        sql: &str,
        key: impl Fn(&tokio_postgres::Row) -> String,
        wrap: impl Fn(T) -> ExportRecord,
        sink: &mut ExportSink<'_>,
    ) -> Result<u64, LedgerError> {
        use futures_util::TryStreamExt;
        let client = self.client().await?;
        let no_params: [&(dyn ToSql + Sync); 0] = [];
        let rows = client
            .query_raw(sql, no_params)
            .await
            .map_err(|e| Fault::Db(e).into_ledger())?;
        let mut rows = pin!(rows);
        let mut count = 0;
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|e| Fault::Db(e).into_ledger())?
        {
            sink(wrap(decode(&key(&row), &row)?))?;
            count += 1;
        }
        Ok(count)
    }

    /// The federation of `token`: [`Ledger::federation`](crate::ledger::Ledger::federation).
    pub(super) async fn get_federation(
        &self,
        token: Uuid,
    ) -> Result<Option<Federation>, LedgerError> {
        self.bounded(async {
            let client = self.client().await?;
            let read = client
                .prepare_cached("SELECT version, record FROM federations WHERE msp_token = $1")
                .await
                .map_err(|e| Fault::Db(e).into_ledger())?;
            let row = client
                .query_opt(&read, &[&token])
                .await
                .map_err(|e| Fault::Db(e).into_ledger())?;
            row.map(|r| decode(&token.to_string(), &r)).transpose()
        })
        .await
    }

    /// The request `id`: [`Ledger::request`](crate::ledger::Ledger::request).
    pub(super) async fn get_request(&self, id: Uuid) -> Result<Option<AcRequest>, LedgerError> {
        self.bounded(async {
            let client = self.client().await?;
            let read = client
                .prepare_cached("SELECT version, record FROM requests WHERE id = $1")
                .await
                .map_err(|e| Fault::Db(e).into_ledger())?;
            let row = client
                .query_opt(&read, &[&id])
                .await
                .map_err(|e| Fault::Db(e).into_ledger())?;
            row.map(|r| decode(&id.to_string(), &r)).transpose()
        })
        .await
    }

    /// The profiles of `token` by ICCID (byte order): [`Ledger::profiles`](crate::ledger::Ledger::profiles).
    pub(super) async fn get_profiles(&self, token: Uuid) -> Result<Vec<Profile>, LedgerError> {
        self.bounded(async {
            let client = self.client().await?;
            let read = client
                .prepare_cached(
                    "SELECT iccid, version, record FROM profiles WHERE msp_token = $1 ORDER BY iccid",
                )
                .await
                .map_err(|e| Fault::Db(e).into_ledger())?;
            let rows = client
                .query(&read, &[&token])
                .await
                .map_err(|e| Fault::Db(e).into_ledger())?;
            rows.iter()
                .map(|row| decode(&format!("{token}/{}", row.get::<_, String>("iccid")), row))
                .collect()
        })
        .await
    }

    /// Filtered, ordered and cut by the database: [`Ledger::list_requests`](crate::ledger::Ledger::list_requests).
    pub(super) async fn select_requests(
        &self,
        filter: &RequestFilter,
    ) -> Result<Vec<AcRequest>, LedgerError> {
        let older_than = filter
            .older_than_ms
            .map(|older| ms(filter.now).saturating_sub(ms(older)));
        let limit = filter.limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        self.bounded(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT id, version, record FROM requests \
                     WHERE (NOT $1 OR state <> 'closed') \
                       AND ($2::text IS NULL OR msp = $2 OR cmp = $2) \
                       AND ($3::bigint IS NULL OR created_at < $3) \
                     ORDER BY created_at, id LIMIT $4",
                    &[&filter.open_only, &filter.partner, &older_than, &limit],
                )
                .await
                .map_err(|e| Fault::Db(e).into_ledger())?;
            rows.iter()
                .map(|row| decode(&row.get::<_, Uuid>("id").to_string(), row))
                .collect()
        })
        .await
    }

    /// Federations, requests, profiles, each streamed in key order: [`Ledger::export`](crate::ledger::Ledger::export). Not bounded by the call timeout: a large export takes its time.
    pub(super) async fn export_all(&self, sink: &mut ExportSink<'_>) -> Result<u64, LedgerError> {
        let uuid_key = |row: &tokio_postgres::Row| row.get::<_, Uuid>(0).to_string();
        let feds = self
            .stream(
                "SELECT msp_token, version, record FROM federations ORDER BY msp_token",
                uuid_key,
                ExportRecord::Federation,
                sink,
            )
            .await?;
        let reqs = self
            .stream(
                "SELECT id, version, record FROM requests ORDER BY id",
                uuid_key,
                ExportRecord::Request,
                sink,
            )
            .await?;
        let profile_key = |row: &tokio_postgres::Row| {
            format!("{}/{}", row.get::<_, Uuid>(0), row.get::<_, String>(1))
        };
        let profiles = self
            .stream(
                "SELECT msp_token, iccid, version, record FROM profiles ORDER BY msp_token, iccid",
                profile_key,
                ExportRecord::Profile,
                sink,
            )
            .await?;
        Ok(feds + reqs + profiles)
    }

    /// One counting query: [`Ledger::stats`](crate::ledger::Ledger::stats).
    pub(super) async fn count(&self) -> Result<LedgerStats, LedgerError> {
        self.bounded(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT 'federation', state, count(*) FROM federations GROUP BY state \
                     UNION ALL SELECT 'request', state, count(*) FROM requests GROUP BY state \
                     UNION ALL SELECT 'profile', '', count(*) FROM profiles",
                    &[],
                )
                .await
                .map_err(|e| Fault::Db(e).into_ledger())?;
            let mut stats = LedgerStats::default();
            for row in rows {
                let (kind, state, n): (&str, &str, i64) = (row.get(0), row.get(1), row.get(2));
                let n = u64::try_from(n).unwrap_or(0);
                let field = match (kind, state) {
                    ("federation", "reserved") => &mut stats.federations_reserved,
                    ("federation", "active") => &mut stats.federations_active,
                    ("federation", "invalid") => &mut stats.federations_invalid,
                    ("request", "pending") => &mut stats.requests_pending,
                    ("request", "open") => &mut stats.requests_open,
                    ("request", "answering") => &mut stats.requests_answering,
                    ("request", "closed") => &mut stats.requests_closed,
                    ("profile", _) => &mut stats.profiles,
                    _ => continue,
                };
                *field = n;
            }
            Ok(stats)
        })
        .await
    }
}
