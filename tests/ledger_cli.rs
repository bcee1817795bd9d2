//! `aidhub ledger …` on a stopped hub's files (issue 3, "The ledger"): `stats`, `show`,
//! `requests`, `export`, and `import` of federations made before the hub, which a hub
//! started afterwards honours.

mod support;

use aidhub::client::Reply;
use aidhub::ledger::{AcState, ExportRecord, FederationState, LedgerStats, Pair};
use aidhub::run::{self, Options};
use aidhub::sim::{Fault, SIM_ICCID};
use http::Method;
use serde_json::json;
use std::process::{Command, Output};
use std::time::Duration;
use support::{bodies, TestHub};
use uuid::Uuid;

/// Runs `aidhub --config hub.toml ledger <args>` in the stage's directory.
fn ledger_cli(hub: &TestHub, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aidhub"))
        .args(["--config", "hub.toml", "ledger"])
        .args(args)
        .current_dir(hub.dir.path())
        .env_remove("RUST_LOG")
        .env_remove("AIDHUB_CONFIG")
        .output()
        .expect("aidhub runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {}: {}{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn stats(hub: &TestHub) -> LedgerStats {
    serde_json::from_str(&succeeded(&ledger_cli(hub, &["stats"]))).expect("stats are JSON")
}

fn status(reply: &Reply) -> (u16, Option<String>) {
    (reply.status.as_u16(), reply.code())
}

async fn onboard(hub: &TestHub, msp: &str, cmp: &str) -> Uuid {
    let token = Uuid::new_v4();
    let (account_id, _) = hub.account_id(cmp, 600);
    let r = hub
        .call(
            msp,
            cmp,
            Method::POST,
            &format!("/cesim/msp/v1/users/{account_id}"),
            Some(&bodies::msp_token(&token)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    token
}

async fn ask_code(
    hub: &TestHub,
    cmp: &str,
    msp: &str,
    token: Uuid,
    id: Uuid,
    device: &str,
) -> Reply {
    hub.call(
        cmp,
        msp,
        Method::POST,
        &format!("/v1/activation-code-requests/{token}"),
        Some(&bodies::ac_request(&id, device)),
    )
    .await
}

/// A stopped stage whose ledger holds two federations of mspalpha and cmpone (the first
/// with a profile), one closed (sync) and one open (async) request: the tokens and ids.
async fn stopped_stage() -> (TestHub, [Uuid; 2], [Uuid; 2]) {
    let mut hub = TestHub::start().await.expect("the stage starts");
    let first = onboard(&hub, "mspalpha", "cmpone").await;
    let second = onboard(&hub, "mspalpha", "cmpone").await;
    let sync_id = Uuid::new_v4();
    assert_eq!(
        ask_code(&hub, "cmpone", "mspalpha", first, sync_id, "tcu")
            .await
            .status,
        200
    );
    // The MSP answers 201 and never delivers: the request stays open.
    hub.partner("mspalpha").fault(
        "/v1/activation-code-requests/",
        Fault::Answer(201, String::new()),
    );
    let open_id = Uuid::new_v4();
    assert_eq!(
        ask_code(&hub, "cmpone", "mspalpha", second, open_id, "async")
            .await
            .status,
        201
    );
    hub.partner("mspalpha").clear_faults();
    hub.stop().await.expect("the hub stops");
    (hub, [first, second], [sync_id, open_id])
}

/// Starts a hub again on the stage's files (the simulated partners kept running).
async fn restart(hub: &mut TestHub) {
    let running = run::start(Options {
        hub_toml: hub.hub_toml.clone(),
        base: hub.dir.path().to_path_buf(),
        partners_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        admin_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        browsers_addr: None,
        devices_addr: None,
        grace: Duration::from_secs(1),
    })
    .await
    .expect("the hub restarts");
    hub.addr = running.partners_addr;
    hub.running = Some(running);
}

#[tokio::test]
async fn inspection_commands_show_a_stopped_hubs_records() {
    let (hub, [first, second], [sync_id, open_id]) = stopped_stage().await;

    let s = stats(&hub);
    assert_eq!(
        (
            s.federations_active,
            s.requests_open,
            s.requests_closed,
            s.profiles
        ),
        (2, 1, 1, 1),
        "{s:?}"
    );

    let shown: serde_json::Value =
        serde_json::from_str(&succeeded(&ledger_cli(&hub, &["show", &first.to_string()])))
            .expect("show prints JSON");
    assert_eq!(shown["federation"]["msp_token"], first.to_string());
    assert_eq!(
        shown["federation"]["pair"],
        json!({"msp": "mspalpha", "cmp": "cmpone"})
    );
    assert_eq!(shown["federation"]["state"], json!({"is": "active"}));
    assert_eq!(shown["federation"]["subscription_type"], "private");
    assert_eq!(shown["profiles"][0]["iccid"], SIM_ICCID);
    assert_eq!(shown["profiles"].as_array().map(Vec::len), Some(1));
    let unknown = Uuid::new_v4();
    let out = ledger_cli(&hub, &["show", &unknown.to_string()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("no federation with msp_token {unknown}")),
        "{}",
        stderr(&out)
    );

    let ids = |args: &[&str]| -> Vec<Uuid> {
        succeeded(&ledger_cli(&hub, args))
            .lines()
            .map(|l| {
                serde_json::from_str::<aidhub::ledger::AcRequest>(l)
                    .expect("a request line")
                    .id
            })
            .collect()
    };
    assert_eq!(
        ids(&["requests"]),
        vec![open_id],
        "open requests by default"
    );
    let mut all = ids(&["requests", "--all"]);
    all.sort();
    let mut expected = vec![sync_id, open_id];
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(ids(&["requests", "--all", "--partner", "cmpone"]).len(), 2);
    assert!(ids(&["requests", "--all", "--partner", "cmptwo"]).is_empty());
    assert!(ids(&["requests", "--older-than-secs", "3600"]).is_empty());

    let export = succeeded(&ledger_cli(&hub, &["export"]));
    let records: Vec<ExportRecord> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(
        records.len(),
        5,
        "2 federations, 2 requests, 1 profile:\n{export}"
    );
    assert!(records.iter().any(|r| matches!(r,
        ExportRecord::Federation(f) if f.msp_token == second && f.state == FederationState::Active)));
    assert!(records.iter().any(|r| matches!(r,
        ExportRecord::Request(q) if q.id == open_id && matches!(q.state, AcState::Open { .. }))));
    let file = hub.dir.path().join("export.jsonl");
    let out = ledger_cli(
        &hub,
        &["export", "--out", file.to_str().expect("UTF-8 path")],
    );
    succeeded(&out);
    assert_eq!(
        std::fs::read_to_string(&file).expect("the export file"),
        export
    );
}

#[tokio::test]
async fn the_ledger_commands_refuse_while_the_hub_runs_on_the_files() {
    let hub = TestHub::start().await.expect("the stage starts");
    let out = ledger_cli(&hub, &["stats"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is the hub still running on it?"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn imported_federations_are_honoured_by_the_next_hub() {
    let (mut hub, [known, _], _) = stopped_stage().await;
    let before = stats(&hub);

    // A file with a bad line imports nothing and names the line.
    let never = Uuid::new_v4();
    let bad = hub.dir.path().join("bad.jsonl");
    let lines = [
        json!({"msp_token": never, "msp": "mspbeta", "cmp": "cmpone"}).to_string(),
        r#"{"msp_token": "not-a-uuid", "msp": "mspbeta", "cmp": "cmpone"}"#.to_owned(),
    ];
    std::fs::write(&bad, lines.join("\n")).expect("bad.jsonl");
    let out = ledger_cli(&hub, &["import", "bad.jsonl"]);
    assert!(!out.status.success(), "a bad line fails the import");
    assert!(
        stderr(&out).contains("bad.jsonl: line 2:"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("nothing imported"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stats(&hub), before, "nothing was imported");

    // A good file: one new, one already present, one held by another pair.
    let imported = Uuid::new_v4();
    let sid = Uuid::new_v4();
    let good = hub.dir.path().join("good.jsonl");
    let lines = [
        json!({"msp_token": imported, "msp": "mspbeta", "cmp": "cmpone", "sid": sid, "subscription_type": "business"}).to_string(),
        String::new(),
        json!({"msp_token": known, "msp": "mspalpha", "cmp": "cmpone"}).to_string(),
        json!({"msp_token": known, "msp": "mspbeta", "cmp": "cmpone"}).to_string(),
    ];
    std::fs::write(&good, lines.join("\n") + "\n").expect("good.jsonl");
    let out = succeeded(&ledger_cli(&hub, &["import", "good.jsonl"]));
    assert!(
        out.contains("imported 1 of 3 federation(s); 1 already present; 1 conflicting"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "conflict: {known} is held by another MSP/CMP pair"
        )),
        "{out}"
    );
    let shown: serde_json::Value = serde_json::from_str(&succeeded(&ledger_cli(
        &hub,
        &["show", &imported.to_string()],
    )))
    .expect("show prints JSON");
    let fed: aidhub::ledger::Federation =
        serde_json::from_value(shown["federation"].clone()).expect("a federation");
    assert_eq!(
        (
            fed.pair,
            fed.state,
            fed.learned,
            fed.sid,
            fed.subscription_type.as_deref()
        ),
        (
            Pair::new("mspbeta", "cmpone"),
            FederationState::Active,
            true,
            Some(sid),
            Some("business")
        )
    );
    assert_eq!(
        stats(&hub).federations_active,
        before.federations_active + 1
    );

    // A hub started afterwards honours the imported federation, in both directions, and
    // still knows nothing of the refused file's token.
    restart(&mut hub).await;
    let r = ask_code(&hub, "cmpone", "mspbeta", imported, Uuid::new_v4(), "tcu").await;
    assert_eq!(
        status(&r),
        (200, None),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let info = json!({"profiles": [{"iccid": SIM_ICCID, "status": "valid"}]});
    let r = hub
        .call(
            "mspbeta",
            "cmpone",
            Method::POST,
            &format!("/cesim/msp/v1/users/{imported}/profiles"),
            Some(&info),
        )
        .await;
    assert_eq!(status(&r), (200, None));
    let r = ask_code(&hub, "cmpone", "mspbeta", never, Uuid::new_v4(), "tcu").await;
    assert_eq!(status(&r), (404, Some("20".into())));
    // The conflicting line changed nothing: the token still serves only its own pair.
    let r = ask_code(&hub, "cmpone", "mspbeta", known, Uuid::new_v4(), "tcu").await;
    assert_eq!(status(&r), (404, Some("20".into())));
    let r = ask_code(&hub, "cmpone", "mspalpha", known, Uuid::new_v4(), "tcu").await;
    assert_eq!(status(&r), (200, None));
    hub.stop().await.expect("the hub stops");
}
