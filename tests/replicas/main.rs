//! Three hub replicas in-process (127.0.0.1, .2, .3), each with its own configuration
//! directory, sharing one PostgreSQL schema (`AIDHUB_TEST_POSTGRES_URL`) and, where the test
//! says so, one Redis (`AIDHUB_TEST_REDIS_URL`), in front of the stage's simulated partners.
//! They must behave as one hub: an answer through one replica matches a request through
//! another, a withdrawal anywhere holds everywhere, a partner's rate limit is counted across
//! them, an outage of the database fails fast and loses no acknowledged write, and a database
//! that takes no writes leaves a replica unready.
//! Each test skips (and passes) when the servers it needs are not configured.

mod proxy;

use aidhub::client::Reply;
use aidhub::ledger::{AcState, Outcome};
use aidhub::stage::bodies;
use aidhub::stage::cluster::Cluster;
use aidhub::stage::outside::{redis_prefix, redis_url, TestSchema};
use aidhub::stage::{account_id_for, eventually};
use http::Method;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The stage's hub.toml with the ledger on `schema` and `extra` appended.
fn shared(
    schema: &TestSchema,
    ledger_url: Option<&str>,
    extra: &str,
) -> impl Fn(usize, &str) -> String {
    let mut keys = schema.hub_toml_keys(4);
    if let Some(url) = ledger_url {
        keys = keys.replace(&schema.url, url);
    }
    let extra = extra.to_owned();
    move |_, toml| {
        format!(
            "{}\n{extra}",
            toml.replace("[ledger]\n", &format!("[ledger]\n{keys}"))
        )
    }
}

/// Onboards a fresh token for mspalpha/cmpone through replica `i`.
async fn onboard(cluster: &Cluster, i: usize) -> (Uuid, Reply) {
    let token = Uuid::new_v4();
    let (account_id, _) = account_id_for("cmpone", 600);
    let reply = cluster
        .call(
            i,
            "mspalpha",
            "cmpone",
            Method::POST,
            &format!("/cesim/msp/v1/users/{account_id}"),
            Some(&bodies::msp_token(&token)),
        )
        .await;
    (token, reply)
}

fn code(reply: &Reply) -> String {
    reply.code().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_through_a_is_answered_through_b_and_withdrawn_through_c() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let mut cluster = Cluster::start(3, shared(&schema, None, "")).await.unwrap();
    let (token, reply) = onboard(&cluster, 0).await;
    assert_eq!(reply.status, 201, "{:?}", reply.json());

    // The MSP's Send Activation Code reaches replica B; the CMP asked through A.
    cluster
        .deliver_async_via("mspalpha", 1, Duration::from_millis(50))
        .unwrap();
    let id = Uuid::new_v4();
    let path = format!("/v1/activation-code-requests/{token}");
    let asked = cluster
        .call(
            0,
            "cmpone",
            "mspalpha",
            Method::POST,
            &path,
            Some(&bodies::ac_request(&id, "async")),
        )
        .await;
    assert_eq!(asked.status, 201, "{:?}", asked.json());
    let msp = cluster.partners["mspalpha"].clone();
    let delivered = eventually(Duration::from_secs(10), || {
        msp.deliveries() == [(200, String::new())]
    })
    .await;
    assert!(delivered, "deliveries: {:?}", msp.deliveries());
    let cmp_saw = cluster.partners["cmpone"]
        .seen()
        .iter()
        .any(|s| s.path == format!("/cesim/msp/v1/activation-codes/{token}"));
    assert!(cmp_saw, "the code was delivered to the CMP");
    // Replica C sees the request closed as answered.
    let ledger = cluster.replicas[2]
        .running
        .as_ref()
        .unwrap()
        .hub
        .ledger()
        .clone();
    let req = ledger.request(id).await.unwrap().unwrap();
    assert!(
        matches!(
            req.state,
            AcState::Closed {
                outcome: Outcome::Answered,
                ..
            }
        ),
        "{req:?}"
    );

    // Withdrawn through C, refused through A (21).
    let withdrawn = cluster
        .call(
            2,
            "cmpone",
            "mspalpha",
            Method::DELETE,
            &format!("/v1/users/{token}"),
            None,
        )
        .await;
    assert_eq!(withdrawn.status, 204, "{:?}", withdrawn.json());
    let again = cluster
        .call(
            0,
            "cmpone",
            "mspalpha",
            Method::POST,
            &path,
            Some(&bodies::ac_request(&Uuid::new_v4(), "tcu")),
        )
        .await;
    assert_eq!(
        (again.status.as_u16(), code(&again)),
        (422, "21".to_string())
    );

    // Each replica names itself; all serve the same routing table.
    let mut routes_hashes = Vec::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let (status, body) = cluster.admin_get(i, "/config").await.unwrap();
        assert_eq!(status, 200);
        let config: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(config["replica"], *name);
        routes_hashes.push(config["routes_hash"].as_str().unwrap().to_owned());
        let (_, metrics) = cluster.admin_get(i, "/metrics").await.unwrap();
        assert!(
            metrics.contains(&format!("replica=\"{name}\"")),
            "{metrics}"
        );
        // On PostgreSQL a durable write is its commit, timed as the answer it held; the
        // embedded ledger's journal and checkpoint syncs have no counterpart to report.
        assert!(!metrics.contains("aidhub_ledger_sync_seconds"), "{metrics}");
        if i == 0 {
            // Replica a onboarded the one federation: its 201 was held for the commit.
            let held = "aidhub_ledger_settle_seconds_count{function=\"send_msp_token\"} 1";
            assert!(metrics.contains(held), "{metrics}");
        }
    }
    assert!(
        routes_hashes.windows(2).all(|w| w[0] == w[1]),
        "{routes_hashes:?}"
    );
    cluster.stop().await.unwrap();
}

/// cmpone may make 3 calls at once (burst 3) and then one every 100 s: the slow refill keeps
/// the test independent of how fast the calls go.
fn limited(routes: &str) -> String {
    routes.replacen(
        "id = \"cmpone\"\n",
        "id = \"cmpone\"\nlimits = { rate = 0.01, burst = 3 }\n",
        1,
    )
}

async fn profile_status(cluster: &Cluster, i: usize) -> Reply {
    let path = format!("/v1/profiles/status/{}", Uuid::new_v4());
    cluster
        .call(i, "cmpone", "mspalpha", Method::GET, &path, None)
        .await
}

async fn cluster_with_limit(extra: &str) -> Option<(TestSchema, Cluster)> {
    let schema = TestSchema::new()?;
    let cluster = Cluster::start(3, shared(&schema, None, extra))
        .await
        .unwrap();
    for replica in &cluster.replicas {
        let routes = replica.dir.join("routes.toml");
        std::fs::write(&routes, limited(&std::fs::read_to_string(&routes).unwrap())).unwrap();
        replica
            .running
            .as_ref()
            .unwrap()
            .hub
            .reload("test")
            .unwrap();
    }
    Some((schema, cluster))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_rate_limit_is_counted_across_replicas() {
    let Some(redis) = redis_url() else {
        return;
    };
    let prefix = redis_prefix();
    let extra = format!(
        "[limits]\nredis_url = \"{redis}\"\nredis_key_prefix = \"{prefix}\"\nredis_timeout_ms = 2000\nreplicas = 3\n"
    );
    let Some((_schema, mut cluster)) = cluster_with_limit(&extra).await else {
        return;
    };
    // One call on each replica passes the limit (the token is unknown: 404 code 20).
    for i in 0..3 {
        let reply = profile_status(&cluster, i).await;
        assert_eq!(
            (reply.status.as_u16(), code(&reply)),
            (404, "20".into()),
            "replica {i}"
        );
    }
    for i in 0..3 {
        let reply = profile_status(&cluster, i).await;
        assert_eq!(
            (reply.status.as_u16(), code(&reply)),
            (429, "200".into()),
            "replica {i}"
        );
        let (_, metrics) = cluster.admin_get(i, "/metrics").await.unwrap();
        assert!(
            metrics.contains("aidhub_rate_limit_mode{mode=\"redis\"} 1"),
            "{metrics}"
        );
    }
    cluster.stop().await.unwrap();
    // Leave nothing behind (the key would expire by itself, later).
    let mut redis = redis::Client::open(redis.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}:rate:cmpone"))
        .query_async(&mut redis)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_admits_its_local_share() {
    // Redis named but unreachable: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let extra = format!("[limits]\nredis_url = \"redis://127.0.0.1:{port}\"\nreplicas = 3\n");
    let Some((_schema, mut cluster)) = cluster_with_limit(&extra).await else {
        return;
    };
    // burst 3 over 3 replicas: one call each, then 429 on that replica.
    for i in 0..3 {
        let first = profile_status(&cluster, i).await;
        assert_eq!(first.status, 404, "replica {i}: {:?}", first.json());
        let second = profile_status(&cluster, i).await;
        assert_eq!(second.status, 429, "replica {i}");
        let (_, metrics) = cluster.admin_get(i, "/metrics").await.unwrap();
        assert!(
            metrics.contains("aidhub_rate_limit_mode{mode=\"local\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("aidhub_rate_limit_fallbacks_total 1"),
            "{metrics}"
        );
    }
    cluster.stop().await.unwrap();
}

/// Replica `i`'s `/ready` (status and body) once `want` holds of it, or after 10 s.
async fn ready_when(
    cluster: &Cluster,
    i: usize,
    want: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = cluster.admin_get(i, "/ready").await.unwrap_or_default();
        if want(status, &body) || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Makes the sessions of `role` read-only, or writable again: a role's defaults apply as a
/// session starts, so the sessions it has (the hub's pool) are ended, and the pool opens new
/// ones.
async fn read_only(admin: &tokio_postgres::Client, role: &str, on: bool) {
    let change = if on {
        "SET default_transaction_read_only = on"
    } else {
        "RESET default_transaction_read_only"
    };
    admin
        .batch_execute(&format!("ALTER ROLE \"{role}\" {change}"))
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&role],
        )
        .await
        .unwrap();
}

/// A database that takes no writes (a standby after a failover, or sessions made read-only)
/// still answers lookups, so a lookup alone would call the replica ready while it refuses
/// every call that records something. It is not ready until the database takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_takes_no_writes_leaves_the_replica_unready() {
    let Some(mut schema) = TestSchema::new() else {
        return;
    };
    let role = schema.own_role().await.unwrap();
    let (_, url) = through(&schema, None, Some(&role)).await;
    let mut cluster = Cluster::start(1, shared(&schema, Some(&url), ""))
        .await
        .unwrap();
    let (_, reply) = onboard(&cluster, 0).await;
    assert_eq!(reply.status, 201, "{:?}", reply.json());
    assert_eq!(cluster.admin_get(0, "/ready").await.unwrap().0, 200);

    let admin = schema.connect().await.unwrap();
    read_only(&admin, &role, true).await;
    let (status, body) = ready_when(&cluster, 0, |_, body| body.contains("takes no writes")).await;
    assert_eq!(status, 503, "{body}");
    let cause: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        cause["cause"],
        "ledger unavailable: PostgreSQL takes no writes: transaction_read_only is on (a \
         standby, or sessions made read-only by default_transaction_read_only)"
    );
    let (_, refused) = onboard(&cluster, 0).await;
    assert_eq!(
        (refused.status.as_u16(), code(&refused)),
        (503, "216".into()),
        "{:?}",
        refused.json()
    );

    read_only(&admin, &role, false).await;
    let (status, body) = ready_when(&cluster, 0, |status, _| status == 200).await;
    assert_eq!(status, 200, "{body}");
    let (_, again) = onboard(&cluster, 0).await;
    assert_eq!(again.status, 201, "{:?}", again.json());
    cluster.stop().await.unwrap();
}

/// The PostgreSQL server behind the test URL, and the URL rewritten to go through `via`,
/// logging in as `role` when given (with the URL's password).
async fn through(
    schema: &TestSchema,
    via: Option<SocketAddr>,
    role: Option<&str>,
) -> (SocketAddr, String) {
    let config: tokio_postgres::Config = schema.url.parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let server = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .find(SocketAddr::is_ipv4)
        .unwrap();
    let user = role.or(config.get_user()).unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or("postgres");
    let via = via.unwrap_or(server);
    (server, format!("postgres://{user}{password}@{via}/{db}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_fast_and_loses_no_acknowledged_write() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let (server, _) = through(&schema, None, None).await;
    let proxy = proxy::Proxy::start(server).await;
    let (_, url) = through(&schema, Some(proxy.addr), None).await;
    let cluster = Cluster::start(3, shared(&schema, Some(&url), ""))
        .await
        .unwrap();
    let cluster = std::sync::Arc::new(cluster);

    // Onboarding load over the three replicas while the database goes away and comes back.
    let stop_at = Instant::now() + Duration::from_secs(6);
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut unavailable = 0;
                while Instant::now() < stop_at {
                    let (token, reply) = onboard(&cluster, w % 3).await;
                    match (reply.status.as_u16(), code(&reply).as_str()) {
                        (201, _) => acknowledged.push(token),
                        (503, "216") => unavailable += 1,
                        other => panic!("unexpected answer {other:?}: {:?}", reply.json()),
                    }
                }
                (acknowledged, unavailable)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut();
    // During the outage: fast refusals, and readiness says so. An outage passes by itself:
    // it is not the embedded ledger's stop for good.
    let (status, _) = cluster.admin_get(1, "/ready").await.unwrap();
    assert_eq!(status, 503);
    let (_, metrics) = cluster.admin_get(1, "/metrics").await.unwrap();
    assert!(metrics.contains("\naidhub_ledger_stopped 0\n"), "{metrics}");
    let started = Instant::now();
    let (_, refused) = onboard(&cluster, 2).await;
    assert_eq!(
        (refused.status.as_u16(), code(&refused)),
        (503, "216".into())
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    let (status, body) = ready_when(&cluster, 1, |status, _| status == 200).await;
    assert_eq!(status, 200, "the replica recovers by itself: {body}");

    let (mut acknowledged, mut unavailable) = (Vec::new(), 0);
    for w in workers {
        let (acked, refused) = w.await.unwrap();
        acknowledged.extend(acked);
        unavailable += refused;
    }
    assert!(unavailable > 0, "the outage was seen");
    assert!(
        acknowledged.len() > 10,
        "load went through: {}",
        acknowledged.len()
    );
    // Every 201 a client saw is an active federation in the database.
    let client = schema.connect().await.unwrap();
    let rows = client
        .query(
            "SELECT msp_token FROM federations WHERE state = 'active' AND msp_token = ANY($1)",
            &[&acknowledged],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), acknowledged.len(), "no acknowledged write lost");
    eprintln!(
        "outage: {} acknowledged, {unavailable} refused with 216",
        acknowledged.len()
    );
    if let Ok(mut cluster) = std::sync::Arc::try_unwrap(cluster) {
        cluster.stop().await.unwrap();
    }
}
