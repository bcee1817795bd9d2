//! `aidhub demo`: a walk-through on loopback. It starts a hub with simulated MSPs and CMPs
//! (fresh PKI, fresh ledger, in a temporary directory) and runs onboarding, a sync and an
//! async activation-code request, a CSIM status, a profile status request, profile
//! information, a subscription update and a withdrawal, printing each hop.

use crate::client::Reply;
use crate::stage::{bodies, eventually, TestHub};
use http::Method;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;
use uuid::Uuid;

/// One call of the walk: who calls whom, what, and the status the spec leads to.
struct Step {
    title: &'static str,
    from: &'static str,
    to: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    expect: u16,
}

/// Runs the walk-through; exits non-zero if any step does not end as the spec says.
pub async fn run() -> ExitCode {
    let _logging = crate::cli::init_logging(false, "warn");
    let started = TestHub::builder()
        .async_delay(Duration::from_millis(300))
        .start()
        .await;
    let mut hub = match started {
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
    let (account_id, _) = hub.account_id("cmpone", 600);
    let token = Uuid::new_v4();
    let async_id = Uuid::new_v4();
    let (first, then) = walk(&account_id, token, async_id);
    let mut failures = 0;
    for step in &first {
        failures += run_step(&hub, step).await;
    }
    failures += async_delivery(&hub, async_id).await;
    for step in &then {
        failures += run_step(&hub, step).await;
    }
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

/// The walk, before and after the asynchronous delivery.
fn walk(account_id: &str, token: Uuid, async_id: Uuid) -> (Vec<Step>, Vec<Step>) {
    let step = |title, from, to, method, path: String, body, expect| Step {
        title,
        from,
        to,
        method,
        path,
        body,
        expect,
    };
    let rac = format!("/v1/activation-code-requests/{token}");
    let first = vec![
        step(
            "Send MSP Token: onboarding federates the user's accounts",
            "mspalpha",
            "cmpone",
            Method::POST,
            format!("/cesim/msp/v1/users/{account_id}"),
            Some(bodies::msp_token(&token)),
            201,
        ),
        step(
            "Request Activation Code, synchronous",
            "cmpone",
            "mspalpha",
            Method::POST,
            rac.clone(),
            Some(bodies::ac_request(&Uuid::new_v4(), "tcu")),
            200,
        ),
        step(
            "Request Activation Code, asynchronous (201 now, the code later)",
            "cmpone",
            "mspalpha",
            Method::POST,
            rac.clone(),
            Some(bodies::ac_request(&async_id, "async")),
            201,
        ),
    ];
    let info = json!({"profiles": [{"iccid": crate::sim::SIM_ICCID, "status": "suspended", "reason": "bill unpaid"}]});
    let then = vec![
        step(
            "Send CSIM Status: the profile is installed in the car",
            "cmpone",
            "mspalpha",
            Method::POST,
            format!("/v1/statuses/{token}"),
            Some(bodies::csim_status("installed")),
            201,
        ),
        step(
            "Request Profile Status",
            "cmpone",
            "mspalpha",
            Method::GET,
            format!("/v1/profiles/status/{token}"),
            None,
            200,
        ),
        step(
            "Send Profile Information",
            "mspalpha",
            "cmpone",
            Method::POST,
            format!("/cesim/msp/v1/users/{token}/profiles"),
            Some(info),
            200,
        ),
        step(
            "Update Subscription Info",
            "mspalpha",
            "cmpone",
            Method::PATCH,
            format!("/cesim/msp/v1/subscriptions/{token}"),
            Some(json!({"subscriptionType": "business"})),
            201,
        ),
        step(
            "Request Invalidate MSP Token: the user withdraws",
            "cmpone",
            "mspalpha",
            Method::DELETE,
            format!("/v1/users/{token}"),
            None,
            204,
        ),
        step(
            "Request Activation Code after the withdrawal: refused by the hub (code 21)",
            "cmpone",
            "mspalpha",
            Method::POST,
            rac,
            Some(bodies::ac_request(&Uuid::new_v4(), "tcu")),
            422,
        ),
        step(
            "Send CSIM Status after the withdrawal: the deletion still passes",
            "cmpone",
            "mspalpha",
            Method::POST,
            format!("/v1/statuses/{token}"),
            Some(bodies::csim_status("deleted")),
            201,
        ),
    ];
    (first, then)
}

/// Sends one step and prints its hop; returns 1 if it did not end as expected.
async fn run_step(hub: &TestHub, step: &Step) -> usize {
    let reply = hub
        .call(
            step.from,
            step.to,
            step.method.clone(),
            &step.path,
            step.body.as_ref(),
        )
        .await;
    let status = reply.status.as_u16();
    let ok = status == step.expect;
    let detail = summarize(&reply);
    // The walk's only 4xx is a refusal by the hub itself: nothing went upstream.
    let route = if (400..500).contains(&status) {
        "hub (refused: nothing forwarded)".to_owned()
    } else {
        format!("hub ──mTLS──► {}", step.to)
    };
    println!(
        "\n{} {}\n    {} ──mTLS──► {route}  answered {status}{}{}",
        mark(ok),
        step.title,
        step.from,
        if detail.is_empty() { "" } else { "  " },
        detail
    );
    usize::from(!ok)
}

/// Waits for the simulated MSP's Send Activation Code; returns 1 if it did not arrive as 200.
async fn async_delivery(hub: &TestHub, id: Uuid) -> usize {
    let msp = hub.partner("mspalpha").clone();
    let delivered = eventually(Duration::from_secs(5), || !msp.deliveries().is_empty()).await;
    match msp.deliveries().first() {
        Some((status, _)) if delivered => {
            let ok = *status == 200;
            println!(
                "\n{} Send Activation Code: the MSP delivers the code for request {id}\n    mspalpha ──mTLS──► hub (matched to the open request) ──mTLS──► cmpone  answered {status}",
                mark(ok)
            );
            usize::from(!ok)
        }
        _ => {
            println!(
                "\n{} Send Activation Code: no delivery within 5 s",
                mark(false)
            );
            1
        }
    }
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✔"
    } else {
        "✘"
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
