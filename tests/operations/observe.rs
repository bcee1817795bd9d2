//! The admin listener's views checked against the traffic sent: exact request, refusal,
//! upstream-error and handshake counters, histogram counts, ledger gauges; health,
//! readiness, the configuration in force, the partner list, the ledger views; and the
//! admin token.

use crate::common::{
    self, assert_error, assert_metric, metric, no_watch, onboard, rac_path, rps_path, scs_path,
    until, Admin, WITHIN,
};
use crate::support::{bodies, TestHub};
use aidhub::config::HubConfig;
use aidhub::sim::{Fault, SIM_ICCID};
use http::Method;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_admin_views_match_the_traffic_sent() {
    let hub = TestHub::builder()
        .hub(|h| {
            no_watch(&h.replace(
                "default_ms = 2000",
                "default_ms = 2000\n[timeouts.functions]\nrequest_profile_status = 300",
            ))
        })
        .routes(|r| {
            common::append_to_partner(
                r,
                "mspalpha",
                "[partner.limits]\nrate = 100\nburst = 200\nmax_in_flight = 8",
            )
        })
        .start()
        .await
        .expect("the stage starts");
    let admin = Admin::of(&hub);
    hub.partner("mspalpha")
        .fault("/v1/profiles/status/", Fault::Delay(Duration::from_secs(1)));

    // The traffic: one onboarding, three Send CSIM Status, two unknown targets, one upstream
    // time-out, one synchronous activation code.
    let token = onboard(&hub, "mspalpha", "cmpone").await;
    let status = bodies::csim_status("installed");
    for i in 0..3 {
        let reply = hub
            .call(
                "cmpone",
                "mspalpha",
                Method::POST,
                &scs_path(&token),
                Some(&status),
            )
            .await;
        assert_eq!(reply.status, 201, "Send CSIM Status {i}: {:?}", reply.body);
    }
    let after_status = federation(&admin, &token).await;
    for _ in 0..2 {
        let reply = hub
            .call(
                "cmpone",
                "mspnobody",
                Method::POST,
                &scs_path(&token),
                Some(&status),
            )
            .await;
        assert_error(&reply, 404, "93", "an unknown target");
    }
    let reply = hub
        .call("cmpone", "mspalpha", Method::GET, &rps_path(&token), None)
        .await;
    assert_error(&reply, 504, "204", "an upstream time-out");
    let request_id = Uuid::new_v4();
    let ask = bodies::ac_request(&request_id, "tcu");
    let reply = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::POST,
            &rac_path(&token),
            Some(&ask),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // A certificate from the stage CA that no partner of the table holds.
    let (_stranger, _) = common::new_msp(&hub, "mspstranger").await;
    let stranger = hub
        .client("mspstranger", aidhub::client::Version::Http1)
        .expect("a client with the stranger's certificate");
    let caller = aidhub::client::Caller {
        client_id: "mspstranger".into(),
        api_key: Some("mspstrangerKey1".into()),
        basic: None,
    };
    let refused = stranger
        .call(
            &caller,
            "cmpone",
            Method::POST,
            &scs_path(&token),
            Some(&status),
        )
        .await;
    assert!(
        refused.is_err(),
        "an unknown certificate fails the handshake"
    );

    let handshake =
        "aidhub_tls_handshake_failures_total{listener=\"partners\",reason=\"unknown_partner\"}";
    let admin_ref = &admin;
    let counted = until(WITHIN, || async move {
        metric(&admin_ref.metrics().await, handshake) == Some(1.0)
    })
    .await;
    let text = admin.metrics().await;
    assert!(counted, "{handshake} 1 in\n{text}");
    let requests = |caller: &str, target: &str, function: &str, status: u16| {
        format!("aidhub_requests_total{{caller=\"{caller}\",target=\"{target}\",function=\"{function}\",status=\"{status}\"}}")
    };
    assert_metric(
        &text,
        &requests("mspalpha", "cmpone", "send_msp_token", 201),
        1.0,
    );
    assert_metric(
        &text,
        &requests("cmpone", "mspalpha", "send_csim_status", 201),
        3.0,
    );
    assert_metric(
        &text,
        &requests("cmpone", "-", "send_csim_status", 404),
        2.0,
    );
    assert_metric(
        &text,
        &requests("cmpone", "mspalpha", "request_profile_status", 504),
        1.0,
    );
    assert_metric(
        &text,
        &requests("cmpone", "mspalpha", "request_activation_code", 200),
        1.0,
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("aidhub_requests_total{"))
        .count();
    assert_eq!(series, 5, "no other requests were counted:\n{text}");
    assert_metric(
        &text,
        "aidhub_refused_total{reason=\"unknown_target\",code=\"93\"}",
        2.0,
    );
    assert_metric(
        &text,
        "aidhub_refused_total{reason=\"upstream\",code=\"204\"}",
        1.0,
    );
    assert_metric(
        &text,
        "aidhub_upstream_errors_total{target=\"mspalpha\",kind=\"timeout\"}",
        1.0,
    );
    assert_metric(
        &text,
        "aidhub_request_duration_seconds_count{function=\"send_csim_status\"}",
        5.0,
    );
    assert_metric(
        &text,
        "aidhub_request_duration_seconds_bucket{function=\"send_csim_status\",le=\"+Inf\"}",
        5.0,
    );
    assert_metric(
        &text,
        "aidhub_upstream_duration_seconds_count{target=\"mspalpha\",function=\"send_csim_status\"}",
        3.0,
    );
    assert_metric(
        &text,
        "aidhub_upstream_duration_seconds_count{target=\"mspalpha\",function=\"request_profile_status\"}",
        1.0,
    );
    // Every forwarded request is timed to its exchange's start, the refused ones not at all;
    // the timed-out Request Profile Status waited 300 ms on its partner, not on its admission.
    let admitted = |function: &str, part: &str| {
        format!("aidhub_request_admission_seconds_{part}{{function=\"{function}\"}}")
    };
    assert_metric(&text, &admitted("send_csim_status", "count"), 3.0);
    assert_metric(&text, &admitted("request_profile_status", "count"), 1.0);
    assert_metric(&text, &admitted("request_activation_code", "count"), 1.0);
    assert_metric(&text, &admitted("send_msp_token", "count"), 1.0);
    let exchange = metric(
        &text,
        "aidhub_upstream_duration_seconds_sum{target=\"mspalpha\",function=\"request_profile_status\"}",
    )
    .expect("the time-out's exchange is timed");
    let admission = metric(&text, &admitted("request_profile_status", "sum"))
        .expect("the time-out's admission is timed");
    assert!(
        exchange >= 0.3 && admission < exchange,
        "admission {admission} s, exchange {exchange} s:\n{text}"
    );
    // Every answer with ledger work is counted once in the time it was held for its record;
    // the timed-out Request Profile Status never had an answer to hold.
    let settled =
        |function: &str| format!("aidhub_ledger_settle_seconds_count{{function=\"{function}\"}}");
    assert_metric(&text, &settled("send_msp_token"), 1.0);
    assert_metric(&text, &settled("send_csim_status"), 3.0);
    assert_metric(&text, &settled("request_activation_code"), 1.0);
    assert_eq!(
        metric(&text, &settled("request_profile_status")),
        None,
        "{text}"
    );
    assert_metric(
        &text,
        "aidhub_ledger_settle_seconds_bucket{function=\"send_csim_status\",le=\"+Inf\"}",
        3.0,
    );
    // The one durable write (Send MSP Token's 201) cost the embedded ledger one journal
    // sync; checkpoints are timed too, however many the test's seconds held.
    assert!(
        text.contains("# TYPE aidhub_ledger_sync_seconds histogram"),
        "{text}"
    );
    assert_metric(
        &text,
        "aidhub_ledger_sync_seconds_count{kind=\"journal\"}",
        1.0,
    );
    assert_metric(
        &text,
        "aidhub_ledger_sync_seconds_bucket{kind=\"journal\",le=\"+Inf\"}",
        1.0,
    );
    assert!(
        metric(
            &text,
            "aidhub_ledger_sync_seconds_count{kind=\"checkpoint\"}"
        )
        .is_some(),
        "{text}"
    );
    assert_metric(&text, "aidhub_ledger_federations{state=\"active\"}", 1.0);
    assert_metric(&text, "aidhub_ledger_requests{state=\"closed\"}", 1.0);
    assert_metric(&text, "aidhub_in_flight{target=\"mspalpha\"}", 0.0);
    // Answered exchanges leave their keep-alive connection in the pool; cmptwo saw no call.
    let idle = metric(
        &text,
        "aidhub_upstream_idle_connections{target=\"mspalpha\"}",
    );
    assert!(idle.is_some_and(|n| n >= 1.0), "{idle:?}\n{text}");
    assert_metric(
        &text,
        "aidhub_upstream_idle_connections{target=\"cmptwo\"}",
        0.0,
    );
    // The calls came one at a time: none waited for a connection. Every connection kept was
    // opened (a partner closing its connections makes this count climb past the kept ones).
    assert!(
        text.contains("# TYPE aidhub_upstream_connections_opened_total counter"),
        "{text}"
    );
    let opened = metric(
        &text,
        "aidhub_upstream_connections_opened_total{target=\"mspalpha\"}",
    );
    assert!(
        opened.is_some_and(|n| n >= idle.unwrap_or(1.0)),
        "{opened:?}\n{text}"
    );
    assert_metric(
        &text,
        "aidhub_upstream_connections_opened_total{target=\"cmptwo\"}",
        0.0,
    );
    assert_metric(
        &text,
        "aidhub_upstream_connection_waits_total{target=\"mspalpha\"}",
        0.0,
    );
    let snap = hub.running.as_ref().expect("running").hub.snapshot();
    assert_metric(
        &text,
        &format!(
            "aidhub_config_info{{version=\"1\",hash=\"{}\",routes_hash=\"{}\",replica=\"{}\"}}",
            snap.hash, snap.routes_hash, snap.config.admin.replica_id
        ),
        1.0,
    );

    // Health, readiness, the configuration in force.
    assert_eq!(admin.get("/health").await.status, 200);
    assert_eq!(admin.get("/ready").await.status, 200);
    let config = admin.config().await;
    assert_eq!(config["version"], snap.version);
    assert_eq!(config["hash"], snap.hash.as_str());
    assert_eq!(config["partners"], 4);
    assert!(
        config["loaded_at"].as_u64().is_some_and(|t| t > 0),
        "{config}"
    );
    assert!(config["last_reload_error"].is_null(), "{config}");

    // Partners with their limits and live state.
    let partners = admin.get("/partners").await.json();
    let list = partners.as_array().expect("a list of partners");
    assert_eq!(list.len(), 4, "{partners}");
    let alpha = list
        .iter()
        .find(|p| p["id"] == "mspalpha")
        .expect("mspalpha");
    assert_eq!(alpha["role"], "msp");
    assert_eq!(
        alpha["limits"],
        json!({"rate": {"rate": 100.0, "burst": 200}, "functions": {}, "max_in_flight": 8})
    );
    assert_eq!(alpha["in_flight"], 0);
    let one = list.iter().find(|p| p["id"] == "cmpone").expect("cmpone");
    assert_eq!(one["role"], "cmp");
    assert!(one["limits"]["rate"].is_null(), "{one}");
    assert_eq!(one["limits"]["max_in_flight"], 256, "the hub-wide default");

    // The ledger views: the federation, its profile as Send CSIM Status left it and as the
    // activation code's answer replaced it, and the requests.
    assert_eq!(
        after_status["federation"]["pair"],
        json!({"msp": "mspalpha", "cmp": "cmpone"})
    );
    assert_eq!(after_status["federation"]["state"]["is"], "active");
    let profile = |view: &serde_json::Value| {
        let profiles = view["profiles"].as_array().cloned().unwrap_or_default();
        assert_eq!(profiles.len(), 1, "one profile: {view}");
        let p = &profiles[0];
        assert_eq!(p["iccid"], SIM_ICCID, "{view}");
        (p["source"].clone(), p["status"].clone())
    };
    assert_eq!(
        profile(&after_status),
        (json!("csim_status"), json!("installed"))
    );
    assert_eq!(
        profile(&federation(&admin, &token).await),
        (json!("sync_answer"), json!("issued"))
    );
    let unknown = admin
        .get(&format!("/ledger/federations/{}", Uuid::new_v4()))
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(admin.get("/ledger/federations/nope").await.status, 400);
    let open = admin.get("/ledger/requests").await;
    assert_eq!(open.json(), json!([]), "no open request: {}", open.body);
    let all = admin.get("/ledger/requests?all=true").await.json();
    let all = all.as_array().expect("a list of requests");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["id"], request_id.to_string());
    assert_eq!(all[0]["state"]["is"], "closed");
    assert_eq!(all[0]["state"]["outcome"]["is"], "sync");
    assert_eq!(admin.get("/ledger/requests?bogus=1").await.status, 400);
}

/// `GET /ledger/federations/{token}`, asserting 200.
async fn federation(admin: &Admin, token: &Uuid) -> serde_json::Value {
    let view = admin.get(&format!("/ledger/federations/{token}")).await;
    assert_eq!(view.status, 200, "{}", view.body);
    view.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_required_except_for_health_and_readiness() {
    let hub = TestHub::builder()
        .hub(|h| no_watch(&format!("{h}\n[admin]\ntoken = \"adminToken1\"\n")))
        .start()
        .await
        .expect("the stage starts");
    let open = Admin::of(&hub);
    assert_eq!(open.get("/health").await.status, 200);
    assert_eq!(open.get("/ready").await.status, 200);
    for path in ["/config", "/metrics", "/partners", "/ledger/requests"] {
        assert_eq!(
            open.get(path).await.status,
            401,
            "GET {path} without a token"
        );
    }
    assert_eq!(open.post("/reload").await.status, 401);
    let wrong = open.with_token("adminToken2");
    assert_eq!(wrong.get("/config").await.status, 401, "a wrong token");
    let admin = open.with_token("adminToken1");
    let config = admin.config().await;
    assert_eq!(
        config["version"], 1,
        "the refused reload did not run: {config}"
    );
    assert_eq!(admin.get("/metrics").await.status, 200);
    assert_eq!(admin.post("/reload").await.status, 200);
}

#[test]
fn a_non_loopback_admin_listener_needs_a_token() {
    let hub = format!(
        "{}\n[admin]\nlisten = \"0.0.0.0:9090\"\n",
        aidhub::stage::HUB_TOML
    );
    let refused = HubConfig::from_str(&hub, "hub.toml", Path::new("/srv"))
        .expect_err("an open admin listener without a token");
    assert_eq!(
        refused.problems,
        ["hub.toml: admin.token: required when admin.listen is not a loopback address"]
    );
    let with_token = format!("{hub}token = \"adminToken1\"\n");
    HubConfig::from_str(&with_token, "hub.toml", Path::new("/srv"))
        .expect("a token makes it acceptable");
}
