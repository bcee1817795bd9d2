//! The PostgreSQL schema and its migrations, applied by the hub when it starts.
//!
//! Migrations are numbered SQL scripts; `schema_migrations` in the hub's schema records the
//! ones applied. [`migrate`] runs in one transaction under an advisory lock keyed by the
//! schema's name, so replicas starting together apply each migration once, in order, and the
//! others find it done; PostgreSQL's DDL is transactional, so a failed migration leaves
//! nothing half-applied. Running it again changes nothing.
//!
//! The tables keep each record whole in `record` (jsonb, the serde shape of the ledger's
//! types; `version` = the codec's schema version, which sled's values have too) beside the
//! columns the database itself needs: primary keys for uniqueness and row locks, `state` for
//! the counts, `msp`/`cmp`/`created_at` for listings, and `since` for the sweeper's index —
//! the moment a record's state began or, for an open request, its deadline.

use tokio_postgres::Client;

use super::fault::{db, Fault};

/// Every migration, in order: (version, SQL). Never edit one that has shipped; add another.
pub(super) const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r#"
CREATE TABLE federations (
    msp_token uuid PRIMARY KEY,
    state     text NOT NULL CHECK (state IN ('reserved', 'active', 'invalid')),
    since     bigint,
    record    jsonb NOT NULL,
    version   smallint NOT NULL
);
CREATE INDEX federations_sweep ON federations (state, since) WHERE state <> 'active';
CREATE TABLE requests (
    id         uuid PRIMARY KEY,
    state      text NOT NULL CHECK (state IN ('pending', 'open', 'answering', 'closed')),
    msp        text NOT NULL,
    cmp        text NOT NULL,
    created_at bigint NOT NULL,
    since      bigint NOT NULL,
    record     jsonb NOT NULL,
    version    smallint NOT NULL
);
CREATE INDEX requests_created ON requests (created_at, id);
CREATE INDEX requests_sweep ON requests (state, since);
CREATE TABLE profiles (
    msp_token uuid NOT NULL,
    iccid     text COLLATE "C" NOT NULL,
    record    jsonb NOT NULL,
    version   smallint NOT NULL,
    PRIMARY KEY (msp_token, iccid)
);
"#,
)];

/// The advisory-lock key of a schema's migrations (FNV-1a of its name): replicas migrating
/// the same schema wait for each other; different schemas do not.
fn lock_key(schema: &str) -> i64 {
    let hash = schema.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates `schema` if needed and applies the migrations it lacks; returns the versions
/// applied now (empty when it was up to date). `schema` is a checked identifier.
pub(super) async fn migrate(client: &mut Client, schema: &str) -> Result<Vec<i32>, Fault> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema)])
        .await
        .map_err(db)?;
    // Only after the lock: concurrent `IF NOT EXISTS` creations can still collide.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS \"{schema}\".schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );
         SET LOCAL search_path TO \"{schema}\";"
    ))
    .await
    .map_err(db)?;
    let done: Option<i32> = tx
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .map_err(db)?
        .get(0);
    let done = done.unwrap_or(0);
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > done) {
        tx.batch_execute(sql).await.map_err(db)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(db)?;
        applied.push(*version);
    }
    tx.commit().await.map_err(db)?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        let expected: Vec<i32> = (1..=MIGRATIONS.len() as i32).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn lock_keys_differ_per_schema() {
        assert_eq!(lock_key("aidhub"), lock_key("aidhub"));
        assert_ne!(lock_key("aidhub"), lock_key("aidhub2"));
    }
}
