//! The settings that let several hub replicas behave as one: which ledger backend they share
//! (`[ledger] backend`, `url`, `pool_size`, `schema`, `timeout_ms`), where the partners' token
//! buckets live (`[limits] redis_url`, `redis_key_prefix`, `redis_timeout_ms`, `replicas`),
//! and the name a replica reports (`[admin] replica_id`).
//!
//! Validated here, from the raw mirrors, into [`LedgerBackend`], [`SharedLimits`] and a
//! replica id; [`super::HubConfig::from_str`] calls [`ledger_backend`], [`shared_limits`] and
//! [`replica_id`] and collects their problems with everyone else's.

use super::raw::{RawAdmin, RawLedger, RawLimits};
use super::{ConfigError, Secret};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Where the ledger lives.
#[derive(Debug, Clone)]
pub enum LedgerBackend {
    /// The embedded sled database under `ledger.path` (one hub process).
    Sled,
    /// A PostgreSQL database shared by every replica.
    Postgres(PostgresSettings),
}

/// `[ledger]` for `backend = "postgres"`.
#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// The connection URL (it may hold a password: never printed).
    pub url: Secret,
    /// Connections this replica keeps at most.
    pub pool_size: usize,
    /// The schema holding the hub's tables.
    pub schema: String,
    /// How long one ledger call may take, waiting for a connection included.
    pub timeout: Duration,
}

/// `[limits]` for rate limits shared by several replicas.
#[derive(Debug, Clone)]
pub struct SharedLimits {
    /// Redis holding every partner's token buckets, when configured.
    pub redis_url: Option<Secret>,
    /// Prefix of the hub's Redis keys.
    pub redis_key_prefix: String,
    /// How long a decision waits for Redis before the local share applies.
    pub redis_timeout: Duration,
    /// How many replicas share each limit; without Redis each admits `limit / replicas`.
    pub replicas: u32,
}

impl Default for SharedLimits {
    fn default() -> Self {
        SharedLimits {
            redis_url: None,
            redis_key_prefix: "aidhub".into(),
            redis_timeout: Duration::from_millis(50),
            replicas: 1,
        }
    }
}

/// Default connections per replica.
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// Default time a ledger call may take on PostgreSQL.
pub const DEFAULT_LEDGER_TIMEOUT_MS: u64 = 5_000;

/// `[ledger] backend` and the PostgreSQL keys.
pub fn ledger_backend(
    raw: &RawLedger,
    base: &Path,
    file: &str,
    errors: &mut ConfigError,
) -> LedgerBackend {
    let postgres_only = [
        ("url", raw.url.is_some()),
        ("pool_size", raw.pool_size.is_some()),
        ("schema", raw.schema.is_some()),
        ("timeout_ms", raw.timeout_ms.is_some()),
    ];
    match raw.backend.as_deref().unwrap_or("sled") {
        "sled" => {
            for (key, set) in postgres_only {
                if set {
                    errors.push(
                        file,
                        &format!("ledger.{key}"),
                        "only applies to backend = \"postgres\"",
                    );
                }
            }
            LedgerBackend::Sled
        }
        "postgres" => postgres(raw, base, file, errors).map_or(LedgerBackend::Sled, |settings| {
            LedgerBackend::Postgres(settings)
        }),
        _ => {
            errors.push(file, "ledger.backend", "must be \"sled\" or \"postgres\"");
            LedgerBackend::Sled
        }
    }
}

fn postgres(
    raw: &RawLedger,
    base: &Path,
    file: &str,
    errors: &mut ConfigError,
) -> Option<PostgresSettings> {
    let Some(spec) = &raw.url else {
        errors.push(
            file,
            "ledger.url",
            "backend = \"postgres\" needs a url (e.g. \"env:AIDHUB_DATABASE_URL\")",
        );
        return None;
    };
    let url = Secret::resolve(spec, base)
        .map_err(|e| errors.push(file, "ledger.url", e))
        .ok()?;
    if let Err(problem) = check_postgres_url(&url) {
        errors.push(file, "ledger.url", problem);
    }
    let pool_size = raw.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
    if !(1..=1000).contains(&pool_size) {
        errors.push(file, "ledger.pool_size", "must be 1..=1000");
    }
    let schema = raw.schema.clone().unwrap_or_else(|| "public".into());
    if !is_identifier(&schema) {
        errors.push(
            file,
            "ledger.schema",
            "must be 1-63 characters [a-z0-9_], not starting with a digit",
        );
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_LEDGER_TIMEOUT_MS);
    if timeout_ms == 0 {
        errors.push(file, "ledger.timeout_ms", "must be > 0");
    }
    Some(PostgresSettings {
        url,
        pool_size: pool_size.max(1) as usize,
        schema,
        timeout: Duration::from_millis(timeout_ms.max(1)),
    })
}

/// The URL must parse, and must not demand TLS: the hub speaks plain TCP to PostgreSQL
/// (loopback, a private network, or a TLS sidecar), so `sslmode=require` could never connect.
/// The message never repeats the URL, which may hold a password.
pub fn check_postgres_url(url: &Secret) -> Result<tokio_postgres::Config, String> {
    let text = url.expose_str().ok_or("the PostgreSQL URL is not UTF-8")?;
    let config = tokio_postgres::Config::from_str(text).map_err(|_| {
        "not a PostgreSQL connection URL (postgres://user[:password]@host[:port]/database)"
            .to_string()
    })?;
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(
            "sslmode=require is not supported: the hub connects to PostgreSQL without TLS \
             (use a loopback or private address, or a TLS sidecar)"
                .into(),
        );
    }
    Ok(config)
}

/// A plain lowercase SQL identifier, safe to quote into DDL.
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The Redis and replica keys of `[limits]`.
pub fn shared_limits(
    raw: &RawLimits,
    base: &Path,
    file: &str,
    errors: &mut ConfigError,
) -> SharedLimits {
    let defaults = SharedLimits::default();
    let redis_url = raw.redis_url.as_deref().and_then(|spec| {
        let url = Secret::resolve(spec, base)
            .map_err(|e| errors.push(file, "limits.redis_url", e))
            .ok()?;
        let parsed = url
            .expose_str()
            .map(redis::Client::open)
            .is_some_and(|c| c.is_ok());
        if !parsed {
            // The URL may hold a password: it is not repeated.
            errors.push(
                file,
                "limits.redis_url",
                "not a Redis URL (redis://[user:password@]host[:port][/db])",
            );
            return None;
        }
        Some(url)
    });
    let prefix = raw
        .redis_key_prefix
        .clone()
        .unwrap_or(defaults.redis_key_prefix);
    if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        errors.push(
            file,
            "limits.redis_key_prefix",
            "must be 1-64 printable characters",
        );
    }
    let timeout_ms = raw.redis_timeout_ms.unwrap_or(50);
    if !(1..=10_000).contains(&timeout_ms) {
        errors.push(file, "limits.redis_timeout_ms", "must be 1..=10000");
    }
    let replicas = raw.replicas.unwrap_or(1);
    if replicas == 0 {
        errors.push(file, "limits.replicas", "must be at least 1");
    }
    SharedLimits {
        redis_url,
        redis_key_prefix: prefix,
        redis_timeout: Duration::from_millis(timeout_ms),
        replicas: replicas.max(1),
    }
}

/// `[admin] replica_id`, or the host name.
pub fn replica_id(raw: &RawAdmin, file: &str, errors: &mut ConfigError) -> String {
    let id = raw.replica_id.clone().unwrap_or_else(hostname);
    let fits = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !fits {
        errors.push(
            file,
            "admin.replica_id",
            "must be 1-64 characters [A-Za-z0-9._-]",
        );
    }
    id
}

/// The machine's host name (a container's is its id), `unknown` if it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(text: &str) -> (LedgerBackend, Vec<String>) {
        let raw: RawLedger = toml::from_str(text).unwrap();
        let mut errors = ConfigError::default();
        let backend = ledger_backend(&raw, Path::new("/"), "hub.toml", &mut errors);
        (backend, errors.problems)
    }

    #[test]
    fn sled_is_the_default_and_refuses_postgres_keys() {
        assert!(matches!(ledger("").0, LedgerBackend::Sled));
        let (_, problems) = ledger("url = \"postgres://localhost/db\"\npool_size = 4");
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn postgres_needs_a_plain_url_and_a_safe_schema() {
        let (backend, problems) = ledger(
            "backend = \"postgres\"\nurl = \"postgres://hub:pw@127.0.0.1:5432/aidhub\"\nschema = \"aid_hub\"",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let LedgerBackend::Postgres(pg) = backend else {
            panic!("postgres expected")
        };
        assert_eq!((pg.pool_size, pg.schema.as_str()), (16, "aid_hub"));
        assert_eq!(pg.timeout, Duration::from_millis(5000));

        let (_, problems) = ledger("backend = \"postgres\"");
        assert!(problems[0].contains("ledger.url"), "{problems:?}");
        let (_, problems) = ledger(
            "backend = \"postgres\"\nurl = \"postgres://hub:secretpw@db/aidhub?sslmode=require\"\nschema = \"Bad-Name\"\npool_size = 0",
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().all(|p| !p.contains("secretpw")));
        let (_, problems) = ledger("backend = \"mysql\"");
        assert!(problems[0].contains("ledger.backend"));
    }

    #[test]
    fn limits_check_redis_and_replicas() {
        let raw: RawLimits =
            toml::from_str("redis_url = \"redis://:pw@127.0.0.1:6379/0\"\nreplicas = 3").unwrap();
        let mut errors = ConfigError::default();
        let shared = shared_limits(&raw, Path::new("/"), "hub.toml", &mut errors);
        assert!(errors.problems.is_empty(), "{:?}", errors.problems);
        assert_eq!(shared.replicas, 3);
        assert_eq!(shared.redis_timeout, Duration::from_millis(50));
        let raw: RawLimits =
            toml::from_str("redis_url = \"http://x:secretpw@y\"\nreplicas = 0").unwrap();
        let mut errors = ConfigError::default();
        shared_limits(&raw, Path::new("/"), "hub.toml", &mut errors);
        assert_eq!(errors.problems.len(), 2, "{:?}", errors.problems);
        assert!(errors.problems.iter().all(|p| !p.contains("secretpw")));
    }

    #[test]
    fn replica_ids_default_to_the_host_name() {
        let mut errors = ConfigError::default();
        let id = replica_id(&RawAdmin::default(), "hub.toml", &mut errors);
        assert!(!id.is_empty());
        let raw: RawAdmin = toml::from_str("replica_id = \"a b\"").unwrap();
        replica_id(&raw, "hub.toml", &mut errors);
        assert_eq!(errors.problems.len(), 1);
    }
}
