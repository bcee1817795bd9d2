//! [`PostgresLedger`]: the ledger in a PostgreSQL database that several hub replicas share.
//!
//! Three tables (`schema.rs`): `federations`, `requests`, `profiles`, each row holding its
//! record whole beside the columns the database needs. Every transition is one transaction:
//! read the row `FOR UPDATE`, apply the same pure rule the sled backend applies, write the
//! result, commit (`rows.rs`). Uniqueness comes from primary keys and `ON CONFLICT`, the
//! order of transitions from row locks, so replicas on different machines cannot both win a
//! token or both claim an answer; a deadlock or serialization failure reruns the transaction.
//!
//! Durability: a mutating call returns after its `COMMIT` (with PostgreSQL's default
//! `synchronous_commit = on`, on disk; what it read was committed, so durable, too).
//! `flush` has nothing left to do.
//!
//! Connections come from a pool (deadpool, `ledger.pool_size` per replica) opened without
//! TLS; a call that cannot get a connection, or whose connection breaks, fails with
//! [`LedgerError::Unavailable`] within `ledger.timeout_ms`, and the pool opens fresh
//! connections once the server is back. `stats` is one counting query (an index scan per
//! table, O(records) on the server): for `/ledger/stats` and `/metrics`, not for probes.
//! The sweeper selects due rows through the `since` index and then steps each one like a
//! request would, so replicas sweeping at once do each change only once.

mod fault;
mod rows;
mod schema;
mod sweep;

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;
use uuid::Uuid;

use self::fault::{db, Fault};
use self::rows::{decode, ms, profile_columns, refs, step, Table, UPSERT_PROFILE};
use super::rules::{self, Claimant, Step};
use super::{
    AcRequest, Delivered, ExportRecord, ExportSink, Federation, ImportReport, Ledger, LedgerError,
    LedgerStats, NewAcRequest, NewFederation, Pair, Profile, ProfileEvent, RequestFilter, Settle,
    SweepReport, Withdrawal,
};
use crate::config::PostgresSettings;

/// How often a transaction that lost a deadlock or serialization conflict is run again.
const RETRIES: usize = 8;

/// A [`Ledger`] in PostgreSQL; a cheap handle, clones share the pool.
#[derive(Clone)]
pub struct PostgresLedger {
    pool: Pool,
    schema: String,
    timeout: Duration,
}

impl fmt::Debug for PostgresLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No URL: it may hold a password.
        f.debug_struct("PostgresLedger")
            .field("schema", &self.schema)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresLedger {
    /// Opens a pool on `settings.url` and brings the schema up to date (see `schema.rs`).
    /// Fails with [`LedgerError::Unavailable`] if the database cannot be reached.
    pub async fn connect(settings: &PostgresSettings) -> Result<PostgresLedger, LedgerError> {
        let mut config = crate::config::cluster::check_postgres_url(&settings.url)
            .map_err(LedgerError::Storage)?;
        config.options(format!("-c search_path={}", settings.schema));
        config.application_name("aidhub");
        config.connect_timeout(settings.timeout.min(Duration::from_secs(5)));
        config.keepalives_idle(Duration::from_secs(30));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.timeout))
            .create_timeout(Some(settings.timeout))
            .recycle_timeout(Some(settings.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| LedgerError::Storage(format!("PostgreSQL pool: {e}")))?;
        let ledger = PostgresLedger {
            pool,
            schema: settings.schema.clone(),
            timeout: settings.timeout,
        };
        let applied = ledger
            .bounded(async {
                let mut client = ledger.client().await?;
                schema::migrate(&mut client, &ledger.schema)
                    .await
                    .map_err(Fault::into_ledger)
            })
            .await?;
        let stats = ledger.stats().await?;
        tracing::info!(schema = %ledger.schema, migrations_applied = ?applied, ?stats, "ledger opened on PostgreSQL");
        Ok(ledger)
    }

    /// Drops `settings.schema` with everything in it (the benchmark's scratch schema).
    pub async fn drop_schema(settings: &PostgresSettings) -> Result<(), LedgerError> {
        let config = crate::config::cluster::check_postgres_url(&settings.url)
            .map_err(LedgerError::Storage)?;
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| Fault::Db(e).into_ledger())?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                settings.schema
            ))
            .await
            .map_err(|e| Fault::Db(e).into_ledger())
    }

    /// The schema this ledger's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    async fn client(&self) -> Result<Object, LedgerError> {
        self.pool.get().await.map_err(fault::pool)
    }

    /// Runs one ledger call within the configured time; past it the call is unavailable.
    async fn bounded<R>(
        &self,
        call: impl Future<Output = Result<R, LedgerError>>,
    ) -> Result<R, LedgerError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(LedgerError::Unavailable(format!(
                "PostgreSQL did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Applies `rule` to one row in a transaction of its own, committed before returning.
    async fn step<T: Table, R: Send>(
        &self,
        key: Uuid,
        rule: impl Fn(Option<&T>) -> Step<T, R> + Sync,
    ) -> Result<R, LedgerError> {
        self.bounded(async {
            let mut tries = 0;
            loop {
                let mut client = self.client().await?;
                let tx = client.transaction().await.map_err(db);
                let outcome = match tx {
                    Ok(tx) => match step(&tx, key, &rule).await {
                        Ok(reply) => tx.commit().await.map(|()| reply).map_err(db),
                        Err(fault) => Err(fault),
                    },
                    Err(fault) => Err(fault),
                };
                match retry(outcome, &mut tries) {
                    Some(result) => return result,
                    None => continue,
                }
            }
        })
        .await
    }

    async fn open_request_once(
        &self,
        req: &NewAcRequest,
    ) -> Result<Result<(), LedgerError>, Fault> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // FOR SHARE: no withdrawal of the token commits between this read and the insert.
        let read = tx
            .prepare_cached(
                "SELECT version, record FROM federations WHERE msp_token = $1 FOR SHARE",
            )
            .await
            .map_err(db)?;
        let fed = tx.query_opt(&read, &[&req.msp_token]).await.map_err(db)?;
        let fed: Option<Federation> = fed
            .map(|row| decode(&req.msp_token.to_string(), &row))
            .transpose()?;
        let reply = step(&tx, req.id, &|cur: Option<&AcRequest>| {
            rules::open(fed.as_ref(), cur, req)
        })
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(reply)
    }

    async fn record_profiles_once(&self, profiles: &[Profile]) -> Result<(), Fault> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let upsert = tx.prepare_cached(UPSERT_PROFILE).await.map_err(db)?;
        for profile in profiles {
            let columns = profile_columns(profile)?;
            tx.execute(&upsert, &refs(&columns)).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// Every row of one query, handed to `sink` as it streams in.
    async fn stream<T: super::codec::Record>(
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
}

/// Sorts out one attempt of a transaction: done (`Some`), or run it again (`None`).
fn retry<R>(
    outcome: Result<Result<R, LedgerError>, Fault>,
    tries: &mut usize,
) -> Option<Result<R, LedgerError>> {
    match outcome {
        Ok(reply) => Some(reply),
        Err(fault) if fault.is_retryable() && *tries < RETRIES => {
            *tries += 1;
            tracing::debug!(
                tries = *tries,
                "ledger transaction conflict, running it again"
            );
            None
        }
        Err(fault) => Some(Err(fault.into_ledger())),
    }
}

#[async_trait::async_trait]
impl Ledger for PostgresLedger {
    async fn federation(&self, token: Uuid) -> Result<Option<Federation>, LedgerError> {
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

    async fn reserve_federation(
        &self,
        token: Uuid,
        pair: &Pair,
        now: u64,
        stale_after_ms: u64,
    ) -> Result<(), LedgerError> {
        self.step(token, |cur| {
            rules::reserve(cur, token, pair, now, stale_after_ms)
        })
        .await
    }

    async fn confirm_federation(&self, fed: NewFederation) -> Result<Federation, LedgerError> {
        self.step(fed.msp_token, |cur| rules::confirm(cur, &fed))
            .await
    }

    async fn release_federation(&self, token: Uuid, pair: &Pair) -> Result<(), LedgerError> {
        self.step(token, |cur| rules::release(cur, pair)).await
    }

    async fn learn_federation(&self, fed: NewFederation) -> Result<Federation, LedgerError> {
        self.step(fed.msp_token, |cur| rules::learn(cur, &fed))
            .await
            .map(|(fed, _)| fed)
    }

    async fn invalidate_federation(
        &self,
        token: Uuid,
        by: Withdrawal,
        reason: Option<String>,
        now: u64,
    ) -> Result<Federation, LedgerError> {
        self.step(token, |cur| rules::invalidate(cur, by, &reason, now))
            .await
    }

    async fn open_request(&self, req: NewAcRequest) -> Result<(), LedgerError> {
        self.bounded(async {
            let mut tries = 0;
            loop {
                if let Some(result) = retry(self.open_request_once(&req).await, &mut tries) {
                    return result;
                }
            }
        })
        .await
    }

    async fn settle_request(
        &self,
        id: Uuid,
        settle: Settle,
        now: u64,
    ) -> Result<AcRequest, LedgerError> {
        self.step(id, |cur| rules::settle(cur, settle, now)).await
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
        self.step(id, |cur| rules::claim(cur, &who, now, stale_after_ms))
            .await
    }

    async fn finish_answer(
        &self,
        id: Uuid,
        delivered: Option<Delivered>,
        now: u64,
    ) -> Result<AcRequest, LedgerError> {
        self.step(id, |cur| rules::finish(cur, delivered, now))
            .await
    }

    async fn request(&self, id: Uuid) -> Result<Option<AcRequest>, LedgerError> {
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

    async fn record_profiles(
        &self,
        token: Uuid,
        events: &[ProfileEvent],
        now: u64,
    ) -> Result<(), LedgerError> {
        if events.is_empty() {
            return Ok(());
        }
        let profiles: Vec<Profile> = events
            .iter()
            .map(|event| rules::profile(token, event, now))
            .collect();
        self.bounded(async {
            let mut tries = 0;
            loop {
                let outcome = self.record_profiles_once(&profiles).await.map(Ok);
                if let Some(result) = retry(outcome, &mut tries) {
                    return result;
                }
            }
        })
        .await
    }

    async fn profiles(&self, token: Uuid) -> Result<Vec<Profile>, LedgerError> {
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

    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<AcRequest>, LedgerError> {
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

    async fn export(&self, sink: &mut ExportSink<'_>) -> Result<u64, LedgerError> {
        // Not bounded by the call timeout: an export of a large ledger takes its time.
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

    async fn import_federations(
        &self,
        lines: Vec<NewFederation>,
    ) -> Result<ImportReport, LedgerError> {
        let mut report = ImportReport::default();
        for fed in &lines {
            match self.step(fed.msp_token, |cur| rules::learn(cur, fed)).await {
                Ok((_, true)) => report.added += 1,
                Ok((_, false)) => report.already_present += 1,
                Err(LedgerError::TokenTaken) => report.conflicting.push(fed.msp_token),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// One counting query (see the module docs).
    async fn stats(&self) -> Result<LedgerStats, LedgerError> {
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

    async fn sweep(&self, now: u64, retention_ms: u64) -> Result<SweepReport, LedgerError> {
        let mut report = SweepReport::default();
        self.sweep_requests(now, retention_ms, &mut report).await?;
        self.sweep_federations(now, retention_ms, &mut report)
            .await?;
        tracing::debug!(?report, "ledger swept");
        Ok(report)
    }

    /// Nothing to do: every mutating call returned after its `COMMIT`.
    async fn flush(&self) -> Result<(), LedgerError> {
        Ok(())
    }
}
