//! Per-partner rate limits (token buckets per caller and per caller and function) and the
//! upstream in-flight cap: what the refused caller gets, that the partner behind never sees
//! the refused call, that other partners are unaffected, and that a reload keeps the buckets
//! whose limits did not change.
//!
//! Governor's clock is not tokio's, so the buckets refill at 1 token per 20 s
//! (`rate = 0.05`): no refill can happen while a test runs.

use crate::common::{
    self, assert_error, assert_metric, no_watch, onboard, onboarding, rac_path, retry_after,
    rewrite_routes, scs_path, Admin, WITHIN,
};
use crate::support::{bodies, TestHub};
use aidhub::client::Reply;
use aidhub::sim::Fault;
use http::Method;
use std::time::Duration;
use uuid::Uuid;

const MSPALPHA_LIMIT: &str = "[partner.limits]\nrate = 0.05\nburst = 2";
const CMPONE_RAC_LIMIT: &str =
    "[partner.limits.functions]\nrequest_activation_code = { rate = 0.05, burst = 1 }";

async fn send_msp_token(hub: &TestHub, msp: &str) -> Reply {
    let (path, body, _) = onboarding("cmpone");
    hub.call(msp, "cmpone", Method::POST, &path, Some(&body))
        .await
}

async fn rac(hub: &TestHub, from: &str, to: &str, token: &Uuid) -> Reply {
    let ask = bodies::ac_request(&Uuid::new_v4(), "tcu");
    hub.call(from, to, Method::POST, &rac_path(token), Some(&ask))
        .await
}

async fn csim_status(hub: &TestHub, from: &str, to: &str, token: &Uuid) -> Reply {
    let status = bodies::csim_status("installed");
    hub.call(from, to, Method::POST, &scs_path(token), Some(&status))
        .await
}

#[track_caller]
fn assert_rate_limited(reply: &Reply, case: &str) {
    assert_error(reply, 429, "200", case);
    assert!(
        retry_after(reply) >= 1,
        "{case}: Retry-After of at least 1 s"
    );
}

/// Seen requests of `partner`'s backend whose path starts with `prefix`.
fn seen(hub: &TestHub, partner: &str, prefix: &str) -> usize {
    hub.partner(partner)
        .seen()
        .iter()
        .filter(|s| s.path.starts_with(prefix))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_refuse_with_429_per_partner_and_function_and_survive_other_partners_reloads() {
    let hub = TestHub::builder()
        .hub(no_watch)
        .routes(|r| {
            let r = common::append_to_partner(r, "mspalpha", MSPALPHA_LIMIT);
            common::append_to_partner(&r, "cmpone", CMPONE_RAC_LIMIT)
        })
        .start()
        .await
        .expect("the stage starts");
    let admin = Admin::of(&hub);
    let beta_token = onboard(&hub, "mspbeta", "cmpone").await;

    // mspalpha: a burst of 2, then 429 without reaching cmpone.
    let onboardings = seen(&hub, "cmpone", "/cesim/msp/v1/users/");
    for i in 0..2 {
        let reply = send_msp_token(&hub, "mspalpha").await;
        assert_eq!(
            reply.status, 201,
            "call {i} within the burst: {:?}",
            reply.body
        );
    }
    let reply = send_msp_token(&hub, "mspalpha").await;
    assert_rate_limited(&reply, "mspalpha's third call");
    assert_eq!(
        seen(&hub, "cmpone", "/cesim/msp/v1/users/"),
        onboardings + 2,
        "cmpone saw only the two calls within the limit"
    );

    // cmpone has no limit of its own on Send CSIM Status: unaffected.
    for i in 0..5 {
        let reply = csim_status(&hub, "cmpone", "mspbeta", &beta_token).await;
        assert_eq!(
            reply.status, 201,
            "cmpone's Send CSIM Status {i}: {:?}",
            reply.body
        );
    }

    // cmpone's per-function limit: one Request Activation Code, then 429.
    let reply = rac(&hub, "cmpone", "mspbeta", &beta_token).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let reply = rac(&hub, "cmpone", "mspbeta", &beta_token).await;
    assert_rate_limited(&reply, "cmpone's second Request Activation Code");
    assert_eq!(
        seen(&hub, "mspbeta", "/v1/activation-code-requests/"),
        1,
        "mspbeta saw only the request within the limit"
    );
    let reply = csim_status(&hub, "cmpone", "mspbeta", &beta_token).await;
    assert_eq!(
        reply.status, 201,
        "other functions still pass: {:?}",
        reply.body
    );

    let metrics = admin.metrics().await;
    assert_metric(
        &metrics,
        "aidhub_rate_limited_total{partner=\"mspalpha\",function=\"send_msp_token\"}",
        1.0,
    );
    assert_metric(
        &metrics,
        "aidhub_rate_limited_total{partner=\"cmpone\",function=\"request_activation_code\"}",
        1.0,
    );
    assert_metric(
        &metrics,
        "aidhub_refused_total{reason=\"rate_limited\",code=\"200\"}",
        2.0,
    );

    // A reload that changes mspalpha's limit only: mspalpha gets its new bucket (3 at once),
    // cmpone's Request Activation Code bucket stays empty.
    rewrite_routes(&hub, |r| r.replace("burst = 2", "burst = 3"));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = rac(&hub, "cmpone", "mspbeta", &beta_token).await;
    assert_rate_limited(
        &reply,
        "cmpone's bucket is not reset by mspalpha's new limit",
    );
    for i in 0..3 {
        let reply = send_msp_token(&hub, "mspalpha").await;
        assert_eq!(
            reply.status, 201,
            "call {i} within the new burst: {:?}",
            reply.body
        );
    }
    let reply = send_msp_token(&hub, "mspalpha").await;
    assert_rate_limited(&reply, "mspalpha beyond its new burst");

    let partners = admin.get("/partners").await.json();
    let limits = |id: &str| {
        partners
            .as_array()
            .and_then(|all| all.iter().find(|p| p["id"] == id))
            .map(|p| p["limits"].clone())
            .unwrap_or_else(|| panic!("{id} in /partners: {partners}"))
    };
    assert_eq!(
        limits("mspalpha")["rate"],
        serde_json::json!({"rate": 0.05, "burst": 3})
    );
    assert_eq!(
        limits("cmpone")["functions"],
        serde_json::json!({"request_activation_code": {"rate": 0.05, "burst": 1}})
    );
    assert!(limits("cmpone")["rate"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_cap_refuses_with_503_while_the_upstream_is_busy() {
    let hub = TestHub::builder()
        .hub(no_watch)
        .routes(|r| common::append_to_partner(r, "mspalpha", "[partner.limits]\nmax_in_flight = 1"))
        .start()
        .await
        .expect("the stage starts");
    let admin = Admin::of(&hub);
    let first_token = onboard(&hub, "mspalpha", "cmpone").await;
    let second_token = onboard(&hub, "mspalpha", "cmpone").await;
    let msp = hub.partner("mspalpha").clone();
    msp.fault(
        "/v1/activation-code-requests/",
        Fault::Delay(Duration::from_millis(800)),
    );

    let (cmp, caller) = common::partner(&hub, "cmpone");
    let ask = bodies::ac_request(&Uuid::new_v4(), "tcu");
    let first = tokio::spawn(async move {
        cmp.call(
            &caller,
            "mspalpha",
            Method::POST,
            &rac_path(&first_token),
            Some(&ask),
        )
        .await
    });
    let held = crate::support::eventually(WITHIN, || {
        msp.seen()
            .iter()
            .any(|s| s.path.starts_with("/v1/activation-code-requests/"))
    })
    .await;
    assert!(held, "mspalpha holds the first request");
    let partners = admin.get("/partners").await.json();
    let alpha = partners
        .as_array()
        .and_then(|all| all.iter().find(|p| p["id"] == "mspalpha"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(alpha["in_flight"], 1, "{alpha}");
    assert_eq!(alpha["limits"]["max_in_flight"], 1, "{alpha}");

    let second = rac(&hub, "cmpone", "mspalpha", &second_token).await;
    assert_error(
        &second,
        503,
        "201",
        "a second request while one is in flight",
    );
    assert!(retry_after(&second) >= 1);
    let first = first
        .await
        .expect("the first call's task")
        .expect("the first call is answered");
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(
        seen(&hub, "mspalpha", "/v1/activation-code-requests/"),
        1,
        "mspalpha saw only the admitted request"
    );
    // The slot is free again.
    msp.clear_faults();
    let reply = rac(&hub, "cmpone", "mspalpha", &second_token).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let metrics = admin.metrics().await;
    assert_metric(
        &metrics,
        "aidhub_refused_total{reason=\"upstream_busy\",code=\"201\"}",
        1.0,
    );
    assert_metric(&metrics, "aidhub_in_flight{target=\"mspalpha\"}", 0.0);
}
