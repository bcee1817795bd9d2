//! `aidhub demo`: a walk-through on loopback. It starts a hub with simulated MSPs and CMPs
//! (fresh PKI, fresh ledger, in a temporary directory) and runs onboarding, a sync and an
//! async activation-code request, a CSIM status, a profile status request, profile
//! information, a subscription update and a withdrawal, printing each hop.

use crate::client::Reply;
use crate::stage::{bodies, TestHub};
use http::Method;
use std::process::ExitCode;
use std::time::Duration;

/// Runs the walk-through; exits non-zero if any step does not end as the spec says.
pub async fn run() -> ExitCode {
    crate::cli::init_logging(false, "warn");
    let hub = match TestHub::builder()
        .async_delay(Duration::from_millis(300))
        .start()
        .await
    {
        Ok(hub) => hub,
        Err(e) => {
            eprintln!("demo: cannot start the hub: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "aidhub demo: hub on https://{} with simulated partners:",
        hub.addr
    );
    for (id, sim) in &hub.partners {
        println!("  {id:<9} upstream https://{}", sim.addr);
    }
    let mut failures = 0;
    let step = |title: &str, reply: &Reply, expect: u16, hops: (&str, &str)| -> usize {
        let ok = reply.status.as_u16() == expect;
        let detail = summarize(reply);
        println!(
            "\n{} {title}\n    {} ──mTLS──► hub ──mTLS──► {}  answered {}{}",
            if ok { "✔" } else { "✘" },
            hops.0,
            hops.1,
            reply.status.as_u16(),
            if detail.is_empty() {
                String::new()
            } else {
                format!("  {detail}")
            }
        );
        usize::from(!ok)
    };
    let (account_id, _) = hub.account_id("cmpone", 600);
    let token = uuid::Uuid::new_v4();
    let r = hub
        .call(
            "mspalpha",
            "cmpone",
            Method::POST,
            &format!("/cesim/msp/v1/users/{account_id}"),
            Some(&bodies::msp_token(&token)),
        )
        .await;
    failures += step(
        "Send MSP Token: onboarding federates the user's accounts",
        &r,
        201,
        ("mspalpha", "cmpone"),
    );
    let r = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::POST,
            &format!("/v1/activation-code-requests/{token}"),
            Some(&bodies::ac_request(&uuid::Uuid::new_v4(), "tcu")),
        )
        .await;
    failures += step(
        "Request Activation Code, synchronous",
        &r,
        200,
        ("cmpone", "mspalpha"),
    );
    let id = uuid::Uuid::new_v4();
    let r = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::POST,
            &format!("/v1/activation-code-requests/{token}"),
            Some(&bodies::ac_request(&id, "async")),
        )
        .await;
    failures += step(
        "Request Activation Code, asynchronous (201 now, the code later)",
        &r,
        201,
        ("cmpone", "mspalpha"),
    );
    let msp = hub.partner("mspalpha").clone();
    let delivered =
        crate::stage::eventually(Duration::from_secs(5), || !msp.deliveries().is_empty()).await;
    match msp.deliveries().first() {
        Some((status, _)) if delivered => {
            let ok = *status == 200;
            failures += usize::from(!ok);
            println!(
                "\n{} Send Activation Code: the MSP delivers the code for request {id}\n    mspalpha ──mTLS──► hub (matched to the open request) ──mTLS──► cmpone  answered {status}",
                if ok { "✔" } else { "✘" }
            );
        }
        _ => {
            failures += 1;
            println!("\n✘ Send Activation Code: no delivery within 5 s");
        }
    }
    let r = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::POST,
            &format!("/v1/statuses/{token}"),
            Some(&bodies::csim_status("installed")),
        )
        .await;
    failures += step(
        "Send CSIM Status: the profile is installed in the car",
        &r,
        201,
        ("cmpone", "mspalpha"),
    );
    let r = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::GET,
            &format!("/v1/profiles/status/{token}"),
            None,
        )
        .await;
    failures += step("Request Profile Status", &r, 200, ("cmpone", "mspalpha"));
    let info = serde_json::json!({"profiles": [{"iccid": crate::sim::SIM_ICCID, "status": "suspended", "reason": "bill unpaid"}]});
    let r = hub
        .call(
            "mspalpha",
            "cmpone",
            Method::POST,
            &format!("/cesim/msp/v1/users/{token}/profiles"),
            Some(&info),
        )
        .await;
    failures += step("Send Profile Information", &r, 200, ("mspalpha", "cmpone"));
    let update = serde_json::json!({"subscriptionType": "business"});
    let r = hub
        .call(
            "mspalpha",
            "cmpone",
            Method::PATCH,
            &format!("/cesim/msp/v1/subscriptions/{token}"),
            Some(&update),
        )
        .await;
    failures += step("Update Subscription Info", &r, 201, ("mspalpha", "cmpone"));
    let r = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::DELETE,
            &format!("/v1/users/{token}"),
            None,
        )
        .await;
    failures += step(
        "Request Invalidate MSP Token: the user withdraws",
        &r,
        204,
        ("cmpone", "mspalpha"),
    );
    let r = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::POST,
            &format!("/v1/activation-code-requests/{token}"),
            Some(&bodies::ac_request(&uuid::Uuid::new_v4(), "tcu")),
        )
        .await;
    failures += step(
        "Request Activation Code after the withdrawal: refused by the hub",
        &r,
        422,
        ("cmpone", "(refused)"),
    );
    let r = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::POST,
            &format!("/v1/statuses/{token}"),
            Some(&bodies::csim_status("deleted")),
        )
        .await;
    failures += step(
        "Send CSIM Status after the withdrawal: the deletion still passes",
        &r,
        201,
        ("cmpone", "mspalpha"),
    );
    let mut hub = hub;
    if let Err(e) = hub.stop().await {
        eprintln!("demo: shutdown: {e}");
        failures += 1;
    }
    if failures == 0 {
        println!("\nall steps ended as the spec says");
        ExitCode::SUCCESS
    } else {
        println!("\n{failures} step(s) did not end as expected");
        ExitCode::FAILURE
    }
}

/// What to show of an answer: error codes and identifiers, never an activation code.
fn summarize(reply: &Reply) -> String {
    let json = reply.json();
    if let Some(code) = json.get("code") {
        return format!("code {code}: {}", json["error"]);
    }
    let mut parts = Vec::new();
    if let Some(iccid) = json.get("iccid").and_then(|v| v.as_str()) {
        parts.push(format!("iccid {iccid}"));
    }
    if json.get("activationCode").is_some() {
        parts.push("activation code (not shown)".to_owned());
    }
    if let Some(profiles) = json.get("profiles").and_then(|v| v.as_array()) {
        parts.push(format!("{} profile(s)", profiles.len()));
    }
    parts.join(", ")
}
