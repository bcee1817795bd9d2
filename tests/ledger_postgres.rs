//! The PostgreSQL ledger against a real server (`AIDHUB_TEST_POSTGRES_URL`; skipped when
//! unset): the whole conformance suite, migrations run by several replicas at once, races
//! between two replicas for one token and one answer, a record of an unknown version, and a
//! server that cannot be reached. Each test works in a schema of its own.

use aidhub::ledger::conformance::{self, new_fed, new_req, pair_a, STALE_MS};
use aidhub::ledger::{Ledger, LedgerError, Pair, PostgresLedger, Settle};
use aidhub::stage::outside::TestSchema;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

async fn open(schema: &TestSchema, pool: usize) -> PostgresLedger {
    PostgresLedger::connect(&schema.settings(pool))
        .await
        .expect("the test database answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_postgres() {
    let mut schemas = Vec::new();
    for check in conformance::ALL {
        let Some(schema) = TestSchema::new() else {
            return;
        };
        eprintln!("conformance check {} on postgres", check.name);
        let ledger = open(&schema, 2).await;
        (check.run)(&ledger).await;
        schemas.push(schema);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_when_replicas_start_together() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let starts = (0..4).map(|_| {
        let settings = schema.settings(1);
        tokio::spawn(async move { PostgresLedger::connect(&settings).await.map(drop) })
    });
    for start in starts.collect::<Vec<_>>() {
        start.await.unwrap().expect("every replica starts");
    }
    // Once more, later: nothing left to apply, nothing applied twice.
    open(&schema, 1).await;
    let client = schema.connect().await.unwrap();
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, vec![1]);
}

/// Two replicas (two pools on one schema), many callers: one pair wins a token, and one
/// caller wins an answer; the database decides, not a lock in the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_race_for_one_token_and_one_answer() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let replicas: [Arc<dyn Ledger>; 2] = [
        Arc::new(open(&schema, 4).await),
        Arc::new(open(&schema, 4).await),
    ];
    let token = Uuid::new_v4();
    let tries = (0..24).map(|i| {
        let ledger = replicas[i % 2].clone();
        let pair = Pair::new("m1", format!("c{i}"));
        tokio::spawn(async move {
            let won = ledger.reserve_federation(token, &pair, 10, 60_000).await;
            (pair, won)
        })
    });
    let mut winners = Vec::new();
    for t in tries.collect::<Vec<_>>() {
        match t.await.unwrap() {
            (pair, Ok(())) => winners.push(pair),
            (_, Err(e)) => assert_eq!(e, LedgerError::TokenTaken),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one pair reserves the token");
    let fed = replicas[1].federation(token).await.unwrap().unwrap();
    assert_eq!(fed.pair, winners[0]);

    let (a, id, tok) = (pair_a(), Uuid::new_v4(), Uuid::new_v4());
    replicas[0]
        .open_request(new_req(id, tok, &a, 1))
        .await
        .unwrap();
    replicas[1]
        .settle_request(
            id,
            Settle::Async {
                deadline: 1_000_000,
            },
            2,
        )
        .await
        .unwrap();
    let claims = (0..16).map(|i| {
        let ledger = replicas[i % 2].clone();
        let a = a.clone();
        tokio::spawn(async move {
            ledger
                .claim_answer(id, &a.msp, &a.cmp, tok, 3, STALE_MS)
                .await
        })
    });
    let mut claimed = 0;
    for c in claims.collect::<Vec<_>>() {
        match c.await.unwrap() {
            Ok(_) => claimed += 1,
            Err(e) => assert_eq!(e, LedgerError::RequestBusy),
        }
    }
    assert_eq!(claimed, 1, "exactly one answer is forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_an_unknown_version_is_corrupt_not_a_panic() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let ledger = open(&schema, 1).await;
    let token = Uuid::new_v4();
    ledger
        .confirm_federation(new_fed(token, &pair_a(), 1))
        .await
        .unwrap();
    let client = schema.connect().await.unwrap();
    client
        .execute(
            "UPDATE federations SET version = 2 WHERE msp_token = $1",
            &[&token],
        )
        .await
        .unwrap();
    let read = ledger.federation(token).await;
    assert!(
        matches!(&read, Err(LedgerError::Corrupt { key, reason })
            if key == &format!("federation/{token}") && reason.contains("version 2")),
        "{read:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_quickly() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut settings = schema.settings(1);
    settings.url =
        aidhub::config::Secret::literal(&format!("postgres://postgres@127.0.0.1:{port}/test"));
    settings.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let failed = PostgresLedger::connect(&settings).await;
    assert!(
        matches!(failed, Err(LedgerError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// `aidhub ledger stats|show|requests` read the PostgreSQL ledger the configuration names,
/// beside a running replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_commands_work_on_postgres() {
    let Some(schema) = TestSchema::new() else {
        return;
    };
    let ledger = open(&schema, 1).await;
    let token = Uuid::new_v4();
    ledger
        .confirm_federation(new_fed(token, &pair_a(), 1))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hub_toml = dir.path().join("hub.toml");
    let toml = format!(
        "[tls]\nserver_cert = \"s.pem\"\nserver_key = \"s.key\"\nclient_cert = \"c.pem\"\n\
         client_key = \"c.key\"\npartner_ca = [\"ca.pem\"]\n[ledger]\n{}",
        schema.hub_toml_keys(1)
    );
    std::fs::write(&hub_toml, toml).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_aidhub"))
            .arg("--config")
            .arg(&hub_toml)
            .arg("ledger")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let stats: serde_json::Value = serde_json::from_str(&run(&["stats"])).unwrap();
    assert_eq!(stats["federations_active"], 1);
    let shown: serde_json::Value =
        serde_json::from_str(&run(&["show", &token.to_string()])).unwrap();
    assert_eq!(shown["federation"]["pair"]["msp"], "m1");
    assert_eq!(run(&["requests", "--all"]), "");
}
