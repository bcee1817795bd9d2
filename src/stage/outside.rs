//! The outside servers some tests need: a PostgreSQL schema of their own and a Redis key
//! prefix of their own, so tests run in parallel against one server and leave nothing behind.
//!
//! The servers are named by `AIDHUB_TEST_POSTGRES_URL` and `AIDHUB_TEST_REDIS_URL`; when a
//! variable is unset, [`TestSchema::new`] / [`redis_url`] print why the test is skipped and
//! return `None`, and the test passes without running.

use crate::config::cluster::check_postgres_url;
use crate::config::{PostgresSettings, Secret};
use std::time::Duration;

/// The variable naming the test PostgreSQL, e.g. `postgres://postgres@127.0.0.1:5432/test`.
pub const POSTGRES_ENV: &str = "AIDHUB_TEST_POSTGRES_URL";
/// The variable naming the test Redis, e.g. `redis://127.0.0.1:6379`.
pub const REDIS_ENV: &str = "AIDHUB_TEST_REDIS_URL";

fn from_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {name} is not set");
            None
        }
    }
}

/// The test Redis, or `None` (and a line saying the test is skipped).
pub fn redis_url() -> Option<String> {
    from_env(REDIS_ENV)
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("aidhub-test-{}", uuid::Uuid::new_v4().simple())
}

/// A schema of the test PostgreSQL that exists for one test: dropped (with everything in
/// it, and the role [`TestSchema::own_role`] made) when this value is dropped, even when the
/// test panicked.
#[derive(Debug)]
pub struct TestSchema {
    /// The server's URL.
    pub url: String,
    /// The schema's name (`aidhub_t_<random>`); the hub creates it on start.
    pub name: String,
    /// The login role made for this test, if any.
    role: Option<String>,
}

impl TestSchema {
    /// A fresh schema name on the test server, or `None` when none is configured.
    pub fn new() -> Option<TestSchema> {
        let url = from_env(POSTGRES_ENV)?;
        let name = format!("aidhub_t_{}", uuid::Uuid::new_v4().simple());
        Some(TestSchema {
            url,
            name,
            role: None,
        })
    }

    /// Makes a login role of this test's own (named like the schema, a superuser with the
    /// URL's password), for a test that changes a role's session defaults (`ALTER ROLE … SET`)
    /// without touching any other test's connections. The URL's user must be a superuser.
    pub async fn own_role(&mut self) -> Result<String, String> {
        let config = check_postgres_url(&Secret::literal(&self.url))?;
        let password = config
            .get_password()
            .map(|p| {
                format!(
                    " PASSWORD '{}'",
                    String::from_utf8_lossy(p).replace('\'', "''")
                )
            })
            .unwrap_or_default();
        let role = self.name.clone();
        self.connect()
            .await?
            .batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN SUPERUSER{password}"))
            .await
            .map_err(|e| e.to_string())?;
        self.role = Some(role.clone());
        Ok(role)
    }

    /// Ledger settings on this schema with `pool_size` connections.
    pub fn settings(&self, pool_size: usize) -> PostgresSettings {
        PostgresSettings {
            url: Secret::literal(&self.url),
            pool_size,
            schema: self.name.clone(),
            timeout: Duration::from_secs(5),
        }
    }

    /// The `[ledger]` keys of a hub.toml using this schema.
    pub fn hub_toml_keys(&self, pool_size: usize) -> String {
        format!(
            "backend = \"postgres\"\nurl = \"{}\"\nschema = \"{}\"\npool_size = {pool_size}\ntimeout_ms = 3000\n",
            self.url, self.name
        )
    }

    /// A plain connection to the server, for checks behind the ledger's back.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, String> {
        let config = check_postgres_url(&Secret::literal(&self.url))?;
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("SET search_path TO \"{}\"", self.name))
            .await
            .map_err(|e| e.to_string())?;
        Ok(client)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let drop_role = self.role.as_ref().map_or(String::new(), |role| {
            format!("; DROP ROLE IF EXISTS \"{role}\"")
        });
        // A thread with its own runtime: this may run inside (or after) the test's runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let config = check_postgres_url(&Secret::literal(&url))?;
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE{drop_role}"
                    ))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}
