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
//! A commit that takes 100 ms or longer is named in the log, at most once a second
//! (`slow.rs`), as a stalled journal sync is on sled.
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
mod reads;
mod rows;
mod schema;
mod slow;
mod sweep;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use uuid::Uuid;

use self::fault::{db, Fault};
use self::rows::{decode, profile_columns, refs, step, Table, UPSERT_PROFILE};
use self::slow::SlowCommits;
use super::rules::{self, Claimant, Step};
use super::{
    AcRequest, Delivered, ExportSink, Federation, ImportReport, Ledger, LedgerError, LedgerStats,
    NewAcRequest, NewFederation, Pair, Profile, ProfileEvent, RequestFilter, Settle, SweepReport,
    Withdrawal,
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
    /// Commits slow enough to name in the log (`slow.rs`).
    slow: Arc<SlowCommits>,
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
            slow: Arc::default(),
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

    /// Whether the server takes writes. A standby (the old primary after a failover, say)
    /// or sessions made read-only (`default_transaction_read_only`) still answer every
    /// lookup, while every call that records something is refused (SQLSTATE 25006: 503
    /// code 216), so a lookup alone would call such a replica ready.
    async fn takes_writes(&self) -> Result<(), LedgerError> {
        self.bounded(async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT current_setting('transaction_read_only') = 'on'",
                    &[],
                )
                .await
                .map_err(|e| Fault::Db(e).into_ledger())?;
            let read_only: bool = row.try_get(0).map_err(|e| Fault::Db(e).into_ledger())?;
            if read_only {
                return Err(LedgerError::Unavailable(
                    "PostgreSQL takes no writes: transaction_read_only is on (a standby, or \
                     sessions made read-only by default_transaction_read_only)"
                        .into(),
                ));
            }
            Ok(())
        })
        .await
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
                        Ok(reply) => self.slow.commit(tx).await.map(|()| reply),
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
        let fed = rules::federation_allows(fed.as_ref(), &req.pair);
        let reply = step(&tx, req.id, &|cur: Option<&AcRequest>| {
            rules::open(fed.clone(), cur, req)
        })
        .await?;
        self.slow.commit(tx).await?;
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
        self.slow.commit(tx).await
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
        self.get_federation(token).await
    }

    async fn ready(&self) -> Result<(), LedgerError> {
        self.takes_writes().await?;
        self.get_federation(Uuid::nil()).await.map(drop)
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
        self.get_request(id).await
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
        self.get_profiles(token).await
    }

    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<AcRequest>, LedgerError> {
        self.select_requests(filter).await
    }

    async fn export(&self, sink: &mut ExportSink<'_>) -> Result<u64, LedgerError> {
        self.export_all(sink).await
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
        self.count().await
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
