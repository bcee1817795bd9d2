//! The ledger's lifecycle rules as partners see them, over real mutual TLS through a real hub
//! in front of simulated partners (issue 3, "The ledger"): federations recorded on onboarding
//! and bound to their pair, withdrawals, activation-code requests matched to their answers
//! (early answers included), and profiles kept per federation.

mod support;

use aidhub::client::Reply;
use aidhub::ledger::{AcState, FederationState, Ledger, Outcome, Pair, ProfileSource, Withdrawal};
use aidhub::sim::{Fault, SIM_ICCID};
use http::Method;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::{bodies, edit, eventually, TestHub};
use uuid::Uuid;

/// A profile that a swap replaces (19 digits, like the simulated MSP's own ICCID).
const OLD_ICCID: &str = "8944500805172032961";
/// A profile named only by Send Profile Information.
const OTHER_ICCID: &str = "8944500805172032979";

async fn stage() -> TestHub {
    TestHub::start().await.expect("the stage starts")
}

fn ledger(hub: &TestHub) -> Arc<dyn Ledger> {
    hub.running
        .as_ref()
        .expect("the hub runs")
        .hub
        .ledger()
        .clone()
}

fn refused(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_deref()),
        (status, Some(code)),
        "expected {status} code {code}, got {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
}

fn ok(reply: &Reply, status: u16) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "expected {status}, got {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
}

/// Send MSP Token from `msp` to `cmp` for a fresh token; the answer, the token and the
/// session id of the account id.
async fn send_token(hub: &TestHub, msp: &str, cmp: &str, token: Uuid) -> (Reply, Uuid) {
    let (account_id, sid) = hub.account_id(cmp, 600);
    let reply = hub
        .call(
            msp,
            cmp,
            Method::POST,
            &format!("/cesim/msp/v1/users/{account_id}"),
            Some(&bodies::msp_token(&token)),
        )
        .await;
    (reply, sid)
}

/// A federation of `msp` and `cmp` the CMP accepted: its token and session id.
async fn onboard(hub: &TestHub, msp: &str, cmp: &str) -> (Uuid, Uuid) {
    let token = Uuid::new_v4();
    let (reply, sid) = send_token(hub, msp, cmp, token).await;
    ok(&reply, 201);
    (token, sid)
}

async fn ask_code(
    hub: &TestHub,
    cmp: &str,
    msp: &str,
    token: Uuid,
    body: &serde_json::Value,
) -> Reply {
    hub.call(
        cmp,
        msp,
        Method::POST,
        &format!("/v1/activation-code-requests/{token}"),
        Some(body),
    )
    .await
}

async fn ask(hub: &TestHub, cmp: &str, msp: &str, token: Uuid, id: Uuid, device: &str) -> Reply {
    ask_code(hub, cmp, msp, token, &bodies::ac_request(&id, device)).await
}

async fn answer_code(hub: &TestHub, msp: &str, cmp: &str, token: Uuid, id: Uuid) -> Reply {
    hub.call(
        msp,
        cmp,
        Method::POST,
        &format!("/cesim/msp/v1/activation-codes/{token}"),
        Some(&bodies::send_ac(&id)),
    )
    .await
}

async fn csim_status(hub: &TestHub, cmp: &str, msp: &str, token: Uuid, status: &str) -> Reply {
    hub.call(
        cmp,
        msp,
        Method::POST,
        &format!("/v1/statuses/{token}"),
        Some(&bodies::csim_status(status)),
    )
    .await
}

/// The Send Activation Code calls partner `cmp` received for request `id`.
fn codes_received(hub: &TestHub, cmp: &str, id: Uuid) -> usize {
    hub.partner(cmp)
        .seen()
        .iter()
        .filter(|s| s.path.starts_with("/cesim/msp/v1/activation-codes/"))
        .filter(|s| {
            serde_json::from_slice::<serde_json::Value>(&s.body)
                .is_ok_and(|b| b["activationCodeRequestID"] == id.to_string())
        })
        .count()
}

async fn request_state(hub: &TestHub, id: Uuid) -> AcState {
    ledger(hub)
        .request(id)
        .await
        .expect("the ledger reads")
        .unwrap_or_else(|| panic!("request {id} is recorded"))
        .state
}

fn closed_as(state: &AcState) -> Option<Outcome> {
    match state {
        AcState::Closed { outcome, .. } => Some(*outcome),
        _ => None,
    }
}

/// The MSP answers every Request Activation Code for `token` with a bare 201 and never
/// delivers by itself: the test sends the Send Activation Code when it wants.
fn hold_answers(hub: &TestHub, msp: &str, token: Uuid) {
    hub.partner(msp).fault(
        &format!("/v1/activation-code-requests/{token}"),
        Fault::Answer(201, String::new()),
    );
}

/// Opens an async request for `token` whose answer the test sends itself.
async fn open_request(hub: &TestHub, cmp: &str, msp: &str, token: Uuid) -> Uuid {
    hold_answers(hub, msp, token);
    let id = Uuid::new_v4();
    ok(&ask(hub, cmp, msp, token, id, "async").await, 201);
    assert!(matches!(request_state(hub, id).await, AcState::Open { .. }));
    id
}

#[tokio::test]
async fn a_federation_lives_from_onboarding_through_codes_swap_and_withdrawal() {
    let hub = stage().await;
    let ledger = ledger(&hub);
    let (token, sid) = onboard(&hub, "mspalpha", "cmpone").await;
    let fed = ledger.federation(token).await.unwrap().expect("recorded");
    assert_eq!(fed.pair, Pair::new("mspalpha", "cmpone"));
    assert_eq!(fed.state, FederationState::Active);
    assert_eq!(fed.sid, Some(sid), "the sid comes from the account id");
    assert_eq!(fed.subscription_type.as_deref(), Some("private"));
    assert!(!fed.learned);

    // Synchronous code: the request closes with the answer.
    let sync_id = Uuid::new_v4();
    let r = ask(&hub, "cmpone", "mspalpha", token, sync_id, "tcu").await;
    ok(&r, 200);
    assert_eq!(
        closed_as(&request_state(&hub, sync_id).await),
        Some(Outcome::Sync)
    );

    // Asynchronous code: 201 now; the MSP's Send Activation Code is matched and routed to
    // the asking CMP.
    let async_id = Uuid::new_v4();
    let r = ask(&hub, "cmpone", "mspalpha", token, async_id, "async").await;
    ok(&r, 201);
    let msp = hub.partner("mspalpha").clone();
    assert!(
        eventually(Duration::from_secs(5), || !msp.deliveries().is_empty()).await,
        "the simulated MSP delivered its code"
    );
    assert_eq!(msp.deliveries(), vec![(200, String::new())]);
    let delivered: Vec<_> = hub
        .partner("cmpone")
        .seen()
        .into_iter()
        .filter(|s| s.path == format!("/cesim/msp/v1/activation-codes/{token}"))
        .collect();
    assert_eq!(delivered.len(), 1, "cmpone got the code once");
    assert_eq!(delivered[0].headers["target-id"], "cmpone");
    assert_eq!(delivered[0].headers["client-id"], "mspalpha");
    let body: serde_json::Value = serde_json::from_slice(&delivered[0].body).unwrap();
    assert_eq!(body["activationCodeRequestID"], async_id.to_string());
    assert_eq!(codes_received(&hub, "cmptwo", async_id), 0);
    assert_eq!(
        closed_as(&request_state(&hub, async_id).await),
        Some(Outcome::Answered)
    );

    // A swap: the MSP names the replaced profile as swappedIccid; it is dead.
    let swap_id = Uuid::new_v4();
    let mut swap = bodies::ac_request(&swap_id, "tcu");
    swap["replaceIccid"] = json!(OLD_ICCID);
    let r = ask_code(&hub, "cmpone", "mspalpha", token, &swap).await;
    ok(&r, 200);
    assert_eq!(r.json()["swappedIccid"], OLD_ICCID);
    assert_eq!(
        closed_as(&request_state(&hub, swap_id).await),
        Some(Outcome::Sync)
    );

    // Profile information from the MSP and a profile status answer are kept too.
    let info = json!({"profiles": [{"iccid": OTHER_ICCID, "status": "suspended"}]});
    let r = hub
        .call(
            "mspalpha",
            "cmpone",
            Method::POST,
            &format!("/cesim/msp/v1/users/{token}/profiles"),
            Some(&info),
        )
        .await;
    ok(&r, 200);
    let r = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::GET,
            &format!("/v1/profiles/status/{token}"),
            None,
        )
        .await;
    ok(&r, 200);
    let status_of = |profiles: &[aidhub::ledger::Profile], iccid: &str| {
        profiles
            .iter()
            .find(|p| p.iccid == iccid)
            .map(|p| (p.status.clone(), p.source))
    };
    let profiles = ledger.profiles(token).await.unwrap();
    assert_eq!(
        status_of(&profiles, SIM_ICCID),
        Some(("enabled".into(), ProfileSource::ProfileStatusAnswer))
    );
    ok(
        &csim_status(&hub, "cmpone", "mspalpha", token, "installed").await,
        201,
    );
    let profiles = ledger.profiles(token).await.unwrap();
    assert_eq!(
        status_of(&profiles, SIM_ICCID),
        Some(("installed".into(), ProfileSource::CsimStatus))
    );

    // Withdrawal by the CMP: no new codes, but the deletion status still passes.
    let r = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::DELETE,
            &format!("/v1/users/{token}"),
            None,
        )
        .await;
    ok(&r, 204);
    let fed = ledger.federation(token).await.unwrap().expect("kept");
    assert!(
        matches!(
            fed.state,
            FederationState::Invalid {
                by: Withdrawal::CmpRequested,
                ..
            }
        ),
        "withdrawn: {:?}",
        fed.state
    );
    let seen_before = hub.partner("mspalpha").seen_count();
    let refused_id = Uuid::new_v4();
    let r = ask(&hub, "cmpone", "mspalpha", token, refused_id, "tcu").await;
    refused(&r, 422, "21");
    assert_eq!(
        hub.partner("mspalpha").seen_count(),
        seen_before,
        "refused before forwarding"
    );
    assert_eq!(ledger.request(refused_id).await.unwrap(), None);
    ok(
        &csim_status(&hub, "cmpone", "mspalpha", token, "deleted").await,
        201,
    );

    let mut profiles = ledger.profiles(token).await.unwrap();
    profiles.sort_by(|a, b| a.iccid.cmp(&b.iccid));
    let summary: Vec<_> = profiles
        .iter()
        .map(|p| (p.msp_token, p.iccid.as_str(), p.status.as_str(), p.source))
        .collect();
    assert_eq!(
        summary,
        vec![
            (token, SIM_ICCID, "deleted", ProfileSource::CsimStatus),
            (token, OLD_ICCID, "swapped", ProfileSource::Swapped),
            (
                token,
                OTHER_ICCID,
                "suspended",
                ProfileSource::ProfileInformation
            ),
        ]
    );

    // Profiles are per federation: another token of the same pair has none.
    let (second, _) = onboard(&hub, "mspalpha", "cmpone").await;
    assert!(ledger.profiles(second).await.unwrap().is_empty());
}

#[tokio::test]
async fn notify_msp_token_invalid_withdraws_and_reonboarding_is_a_new_federation() {
    let hub = stage().await;
    let ledger = ledger(&hub);
    let (token, _) = onboard(&hub, "mspalpha", "cmpone").await;
    let r = hub
        .call(
            "mspalpha",
            "cmpone",
            Method::POST,
            &format!("/cesim/msp/v1/users/{token}/invalidate"),
            Some(&json!({"reason": "contract ended"})),
        )
        .await;
    ok(&r, 204);
    let fed = ledger.federation(token).await.unwrap().expect("kept");
    match &fed.state {
        FederationState::Invalid { by, reason, .. } => assert_eq!(
            (*by, reason.as_deref()),
            (Withdrawal::MspNotified, Some("contract ended"))
        ),
        other => panic!("not withdrawn: {other:?}"),
    }
    let r = ask(&hub, "cmpone", "mspalpha", token, Uuid::new_v4(), "tcu").await;
    refused(&r, 422, "21");
    ok(
        &csim_status(&hub, "cmpone", "mspalpha", token, "deleted").await,
        201,
    );

    // The withdrawn token is never used again, not even to onboard.
    let cmp_seen = hub.partner("cmpone").seen_count();
    let (r, _) = send_token(&hub, "mspalpha", "cmpone", token).await;
    refused(&r, 422, "21");
    assert_eq!(hub.partner("cmpone").seen_count(), cmp_seen);

    // Re-onboarding with a new token is a separate federation that works.
    let (fresh, sid) = onboard(&hub, "mspalpha", "cmpone").await;
    let new_fed = ledger.federation(fresh).await.unwrap().expect("recorded");
    assert_eq!(
        (new_fed.state, new_fed.sid),
        (FederationState::Active, Some(sid))
    );
    assert!(matches!(
        ledger.federation(token).await.unwrap().unwrap().state,
        FederationState::Invalid { .. }
    ));
    let r = ask(&hub, "cmpone", "mspalpha", fresh, Uuid::new_v4(), "tcu").await;
    ok(&r, 200);
}

#[tokio::test]
async fn a_token_is_honoured_only_between_its_two_partners() {
    let hub = stage().await;
    let (token, _) = onboard(&hub, "mspalpha", "cmpone").await;
    let seen = |id: &str| hub.partner(id).seen_count();
    let before: Vec<usize> = ["mspalpha", "mspbeta", "cmpone", "cmptwo"]
        .map(seen)
        .to_vec();

    // Another MSP towards the right CMP.
    let info = json!({"profiles": [{"iccid": SIM_ICCID, "status": "valid"}]});
    let r = hub
        .call(
            "mspbeta",
            "cmpone",
            Method::POST,
            &format!("/cesim/msp/v1/users/{token}/profiles"),
            Some(&info),
        )
        .await;
    refused(&r, 404, "20");
    let r = hub
        .call(
            "mspbeta",
            "cmpone",
            Method::PATCH,
            &format!("/cesim/msp/v1/subscriptions/{token}"),
            Some(&json!({"subscriptionType": "business"})),
        )
        .await;
    refused(&r, 404, "20");
    // Another CMP towards the right MSP.
    let r = ask(&hub, "cmptwo", "mspalpha", token, Uuid::new_v4(), "tcu").await;
    refused(&r, 404, "20");
    refused(
        &csim_status(&hub, "cmptwo", "mspalpha", token, "enabled").await,
        404,
        "20",
    );
    let r = hub
        .call(
            "cmptwo",
            "mspalpha",
            Method::DELETE,
            &format!("/v1/users/{token}"),
            None,
        )
        .await;
    refused(&r, 404, "20");
    // The right CMP towards another MSP.
    let r = ask(&hub, "cmpone", "mspbeta", token, Uuid::new_v4(), "tcu").await;
    refused(&r, 404, "20");
    // A token nobody sent.
    let unknown = Uuid::new_v4();
    let r = ask(&hub, "cmpone", "mspalpha", unknown, Uuid::new_v4(), "tcu").await;
    refused(&r, 404, "20");
    let r = hub
        .call(
            "mspalpha",
            "cmpone",
            Method::POST,
            &format!("/cesim/msp/v1/users/{unknown}/invalidate"),
            Some(&json!({})),
        )
        .await;
    refused(&r, 404, "20");

    let after: Vec<usize> = ["mspalpha", "mspbeta", "cmpone", "cmptwo"]
        .map(seen)
        .to_vec();
    assert_eq!(after, before, "no refused call reached a partner");
    let fed = ledger(&hub).federation(token).await.unwrap().unwrap();
    assert_eq!(
        fed.state,
        FederationState::Active,
        "foreign withdrawal had no effect"
    );
    assert_eq!(ledger(&hub).federation(unknown).await.unwrap(), None);

    // Its own pair still passes.
    ok(
        &csim_status(&hub, "cmpone", "mspalpha", token, "enabled").await,
        201,
    );
}

#[tokio::test]
async fn a_token_held_by_one_pair_is_refused_to_another() {
    let hub = stage().await;
    let (token, _) = onboard(&hub, "mspalpha", "cmpone").await;
    let cmp_seen = (
        hub.partner("cmpone").seen_count(),
        hub.partner("cmptwo").seen_count(),
    );

    // The same msp_token from another MSP to the same CMP, and from the same MSP to
    // another CMP.
    let (r, _) = send_token(&hub, "mspbeta", "cmpone", token).await;
    refused(&r, 422, "23");
    let (r, _) = send_token(&hub, "mspalpha", "cmptwo", token).await;
    refused(&r, 422, "23");
    assert_eq!(
        (
            hub.partner("cmpone").seen_count(),
            hub.partner("cmptwo").seen_count()
        ),
        cmp_seen,
        "refused before forwarding"
    );
    let fed = ledger(&hub).federation(token).await.unwrap().unwrap();
    assert_eq!(
        (fed.pair, fed.state),
        (Pair::new("mspalpha", "cmpone"), FederationState::Active)
    );

    // A retry by the holding pair is not a conflict.
    let (r, _) = send_token(&hub, "mspalpha", "cmpone", token).await;
    ok(&r, 201);
}

#[tokio::test]
async fn migration_mode_learns_a_tokens_first_use_on_either_side() {
    let hub = TestHub::builder()
        .routes(|r| {
            let r = edit(
                r,
                "id = \"mspbeta\"\n",
                "id = \"mspbeta\"\nmigration = [\"cmpone\"]\n",
            );
            edit(
                &r,
                "id = \"cmptwo\"\n",
                "id = \"cmptwo\"\nmigration = [\"mspalpha\"]\n",
            )
        })
        .start()
        .await
        .expect("the stage starts");
    let ledger = ledger(&hub);

    // The MSP lists the CMP: a CMP's first use of an unknown token passes and is learned.
    let token = Uuid::new_v4();
    let r = ask(&hub, "cmpone", "mspbeta", token, Uuid::new_v4(), "tcu").await;
    ok(&r, 200);
    let fed = ledger.federation(token).await.unwrap().expect("learned");
    assert_eq!(
        (fed.pair, fed.state, fed.learned),
        (
            Pair::new("mspbeta", "cmpone"),
            FederationState::Active,
            true
        )
    );
    ok(
        &csim_status(&hub, "cmpone", "mspbeta", token, "installed").await,
        201,
    );
    // Once learned, it is bound to that pair like any other.
    let r = ask(&hub, "cmpone", "mspalpha", token, Uuid::new_v4(), "tcu").await;
    refused(&r, 404, "20");

    // The CMP lists the MSP: an MSP's first use is learned the same way.
    let other = Uuid::new_v4();
    let info = json!({"profiles": [{"iccid": SIM_ICCID, "status": "valid"}]});
    let r = hub
        .call(
            "mspalpha",
            "cmptwo",
            Method::POST,
            &format!("/cesim/msp/v1/users/{other}/profiles"),
            Some(&info),
        )
        .await;
    ok(&r, 200);
    let fed = ledger.federation(other).await.unwrap().expect("learned");
    assert_eq!(
        (fed.pair, fed.learned),
        (Pair::new("mspalpha", "cmptwo"), true)
    );

    // Pairs not in migration mode still refuse unknown tokens.
    let unknown = Uuid::new_v4();
    let r = ask(&hub, "cmpone", "mspalpha", unknown, Uuid::new_v4(), "tcu").await;
    refused(&r, 404, "20");
    assert_eq!(ledger.federation(unknown).await.unwrap(), None);
}

#[tokio::test]
async fn activation_code_answers_must_match_their_open_request() {
    let hub = stage().await;
    let (token, _) = onboard(&hub, "mspalpha", "cmpone").await;
    let (second_token, _) = onboard(&hub, "mspalpha", "cmpone").await;
    let (alpha_two, _) = onboard(&hub, "mspalpha", "cmptwo").await;
    let (beta_one, _) = onboard(&hub, "mspbeta", "cmpone").await;
    let id = open_request(&hub, "cmpone", "mspalpha", token).await;

    // Unknown id.
    refused(
        &answer_code(&hub, "mspalpha", "cmpone", token, Uuid::new_v4()).await,
        422,
        "30",
    );
    // Another MSP's request is as unknown as one that never existed.
    refused(
        &answer_code(&hub, "mspbeta", "cmpone", beta_one, id).await,
        422,
        "30",
    );
    // The right MSP, but towards another CMP than the one that asked.
    refused(
        &answer_code(&hub, "mspalpha", "cmptwo", alpha_two, id).await,
        422,
        "39",
    );
    // The right pair, but another token than the request's.
    refused(
        &answer_code(&hub, "mspalpha", "cmpone", second_token, id).await,
        422,
        "39",
    );
    assert_eq!(codes_received(&hub, "cmpone", id), 0);
    assert_eq!(codes_received(&hub, "cmptwo", id), 0);
    assert!(
        matches!(request_state(&hub, id).await, AcState::Open { .. }),
        "refused answers leave the request open"
    );

    // A second request with the same id is refused before forwarding.
    let msp_seen = hub.partner("mspalpha").seen_count();
    let r = ask(&hub, "cmpone", "mspalpha", token, id, "async").await;
    refused(&r, 422, "39");
    assert_eq!(hub.partner("mspalpha").seen_count(), msp_seen);

    // The rightful answer passes once; a second one is refused as answered.
    ok(
        &answer_code(&hub, "mspalpha", "cmpone", token, id).await,
        200,
    );
    assert_eq!(
        closed_as(&request_state(&hub, id).await),
        Some(Outcome::Answered)
    );
    refused(
        &answer_code(&hub, "mspalpha", "cmpone", token, id).await,
        422,
        "31",
    );
    assert_eq!(codes_received(&hub, "cmpone", id), 1);

    // A synchronous request's id cannot be reused or answered either.
    let sync_id = Uuid::new_v4();
    hub.partner("mspalpha").clear_faults();
    ok(
        &ask(&hub, "cmpone", "mspalpha", token, sync_id, "tcu").await,
        200,
    );
    refused(
        &ask(&hub, "cmpone", "mspalpha", token, sync_id, "tcu").await,
        422,
        "39",
    );
    refused(
        &answer_code(&hub, "mspalpha", "cmpone", token, sync_id).await,
        422,
        "31",
    );
    assert_eq!(codes_received(&hub, "cmpone", sync_id), 0);
}

#[tokio::test]
async fn an_answer_after_the_deadline_is_refused_as_expired() {
    let hub = TestHub::builder()
        .hub(|h| edit(h, "[ledger]\n", "[ledger]\nasync_deadline_secs = 1\n"))
        .start()
        .await
        .expect("the stage starts");
    let (token, _) = onboard(&hub, "mspalpha", "cmpone").await;
    let opened = aidhub::aid1::lifecycle::now_ms();
    let id = open_request(&hub, "cmpone", "mspalpha", token).await;
    let AcState::Open { deadline } = request_state(&hub, id).await else {
        unreachable!("open_request checked it")
    };
    assert!(
        (opened + 1000..=opened + 3000).contains(&deadline),
        "the deadline is async_deadline_secs after the 201: {deadline} vs {opened}"
    );
    assert!(
        eventually(Duration::from_secs(5), || aidhub::aid1::lifecycle::now_ms()
            > deadline)
        .await
    );
    refused(
        &answer_code(&hub, "mspalpha", "cmpone", token, id).await,
        422,
        "31",
    );
    assert_eq!(
        closed_as(&request_state(&hub, id).await),
        Some(Outcome::Expired)
    );
    assert_eq!(codes_received(&hub, "cmpone", id), 0);
}

/// A stage whose MSPs answer Request Activation Code (for `deviceType` `async`) with a 201
/// that takes `slow` to come, and never deliver the code by themselves: the test plays the
/// MSP's early Send Activation Code. (The simulated MSP schedules its own delivery only once
/// the fault delay is over, so it cannot race its own 201.)
async fn slow_201_stage(slow: Duration, early_answer_wait_ms: u64) -> TestHub {
    let hub = TestHub::builder()
        .async_delay(Duration::from_secs(3600))
        .hub(move |h| {
            edit(
                h,
                "early_answer_wait_ms = 3000",
                &format!("early_answer_wait_ms = {early_answer_wait_ms}"),
            )
        })
        .start()
        .await
        .expect("the stage starts");
    hub.partner("mspalpha")
        .fault("/v1/activation-code-requests/", Fault::Delay(slow));
    hub
}

/// Sends Request Activation Code and, once the MSP holds it (its 201 not yet relayed), the
/// early Send Activation Code; both replies.
async fn race_early_answer(hub: &TestHub, token: Uuid, id: Uuid) -> (Reply, Reply) {
    let body = bodies::ac_request(&id, "async");
    let ask = ask_code(hub, "cmpone", "mspalpha", token, &body);
    let answer = async {
        let msp = hub.partner("mspalpha").clone();
        let asked =
            |s: &aidhub::sim::Seen| s.path == format!("/v1/activation-code-requests/{token}");
        assert!(
            eventually(Duration::from_secs(5), || msp.seen().iter().any(asked)).await,
            "the request reached the MSP"
        );
        assert_eq!(
            request_state(hub, id).await,
            AcState::Pending,
            "the answer is early: the 201 has not been recorded"
        );
        answer_code(hub, "mspalpha", "cmpone", token, id).await
    };
    tokio::join!(ask, answer)
}

#[tokio::test]
async fn an_early_answer_waits_for_its_201_and_is_delivered_once() {
    let hub = slow_201_stage(Duration::from_millis(700), 3000).await;
    let (token, _) = onboard(&hub, "mspalpha", "cmpone").await;
    let id = Uuid::new_v4();
    let (asked, answered) = race_early_answer(&hub, token, id).await;
    ok(&asked, 201);
    ok(&answered, 200);
    // The answer was sent while the request was pending (checked in the race) and a claim
    // succeeds only on an open request: it waited for the 201 to be recorded.
    assert_eq!(
        codes_received(&hub, "cmpone", id),
        1,
        "the CMP got the code exactly once"
    );
    assert_eq!(
        closed_as(&request_state(&hub, id).await),
        Some(Outcome::Answered)
    );
    refused(
        &answer_code(&hub, "mspalpha", "cmpone", token, id).await,
        422,
        "31",
    );
    assert_eq!(codes_received(&hub, "cmpone", id), 1);
}

#[tokio::test]
async fn an_early_answer_whose_201_is_too_late_gets_a_retryable_503() {
    let hub = slow_201_stage(Duration::from_millis(1200), 150).await;
    let (token, _) = onboard(&hub, "mspalpha", "cmpone").await;
    let id = Uuid::new_v4();
    let (asked, answered) = race_early_answer(&hub, token, id).await;
    refused(&answered, 503, "215");
    let retry_after = answered.headers.get(http::header::RETRY_AFTER);
    assert_eq!(retry_after.and_then(|v| v.to_str().ok()), Some("1"));
    assert_eq!(
        codes_received(&hub, "cmpone", id),
        0,
        "nothing reached the CMP"
    );
    // The 201 came in the end, and the MSP's retry is delivered: nothing was lost.
    ok(&asked, 201);
    assert!(matches!(
        request_state(&hub, id).await,
        AcState::Open { .. }
    ));
    ok(
        &answer_code(&hub, "mspalpha", "cmpone", token, id).await,
        200,
    );
    assert_eq!(codes_received(&hub, "cmpone", id), 1);
}

/// A CMP that hangs up while the MSP still holds its async Request Activation Code does not
/// leave the lifecycle half-way: when the connection closes, hyper drops the call's future,
/// the rest of the walk moves to a task of its own (`proxy::Finish`), and the MSP's 201,
/// relayed to no one, still opens the request.
#[tokio::test]
async fn a_caller_that_hangs_up_mid_call_still_has_the_partners_answer_recorded() {
    // The MSP holds its 201 long enough for the pending check below to come first on a busy
    // machine.
    let hub = slow_201_stage(Duration::from_millis(1500), 3000).await;
    let (token, _) = onboard(&hub, "mspalpha", "cmpone").await;
    let id = Uuid::new_v4();
    let body = bodies::ac_request(&id, "async");
    let msp = hub.partner("mspalpha").clone();
    let asked = |s: &aidhub::sim::Seen| s.path == format!("/v1/activation-code-requests/{token}");
    // The call's future, and with it the client and its connection, is dropped as soon as
    // the MSP holds the request.
    let held = tokio::select! {
        reply = ask_code(&hub, "cmpone", "mspalpha", token, &body) => {
            panic!("the call ended before the MSP answered: {}", reply.status)
        }
        held = eventually(Duration::from_secs(5), || msp.seen().iter().any(asked)) => held,
    };
    assert!(held, "the request reached the MSP");
    assert_eq!(request_state(&hub, id).await, AcState::Pending);
    let mut state = AcState::Pending;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        state = request_state(&hub, id).await;
        if state != AcState::Pending {
            break;
        }
    }
    assert!(
        matches!(state, AcState::Open { .. }),
        "the MSP's 201 was recorded after the caller left: {state:?}"
    );
}
