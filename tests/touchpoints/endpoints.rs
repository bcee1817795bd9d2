//! The three redirects, exactly as AID.02 7.1 and 7.2 write them, and their metric.

use crate::common::*;
use http::Method;

/// 7.1 Redirect to MSP Content: the CMP's portal sends the user to the MSP's login page with
/// the account id and a redirect_uri in the CMP's agreed domains.
#[tokio::test]
async fn redirect_to_msp_content_carries_id_and_redirect_uri() {
    let hub = stage().await;
    let id = account_id(&hub, "cmpone", 600);
    let back = "https://www.cmp.example/esim?state=42";
    let reply = get(
        &hub,
        &format!(
            "/touchpoints/mspalpha/onboarding?from=cmpone&id={id}&redirect_uri={}",
            enc(back)
        ),
    )
    .await;
    assert_eq!(
        location(&reply),
        format!(
            "https://login.msp.example/portal/login?id={id}&redirect_uri=https%3A%2F%2Fwww.cmp.example%2Fesim%3Fstate%3D42"
        )
    );
    assert_eq!(
        counted(&hub, "cmpone", "mspalpha", "to_msp", "redirected"),
        1
    );
}

#[tokio::test]
async fn env_preproduction_selects_the_pre_production_page() {
    let hub = stage().await;
    let id = account_id(&hub, "cmpone", 600);
    let query = format!(
        "from=cmpone&id={id}&redirect_uri={}",
        enc("https://test.cmp.example/")
    );
    let pre = get(
        &hub,
        &format!("/touchpoints/mspalpha/onboarding?{query}&env=preproduction"),
    )
    .await;
    assert_eq!(
        location(&pre),
        format!(
            "https://preprod.msp.example/portal/login?stage=1&id={id}&redirect_uri=https%3A%2F%2Ftest.cmp.example%2F"
        ),
        "the page's own query comes first"
    );
    let prod = get(
        &hub,
        &format!("/touchpoints/mspalpha/onboarding?{query}&env=production"),
    )
    .await;
    assert!(location(&prod).starts_with("https://login.msp.example/portal/login?id="));
}

/// 7.1 Redirect to CMP content: the MSP's portal sends the user to the CMP's page with a
/// redirect_uri in the MSP's agreed domains — the spec's example, byte for byte.
#[tokio::test]
async fn redirect_to_cmp_content_is_the_specs_example() {
    let hub = stage().await;
    let reply = get(
        &hub,
        "/touchpoints/cmpone/onboarding?from=mspalpha&redirect_uri=https%3A%2F%2Fclient.msp.example%2Freturn%3Ffoo%3Dbar",
    )
    .await;
    assert_eq!(
        location(&reply),
        "https://portal.cmp.example/esim?redirect_uri=https%3A%2F%2Fclient.msp.example%2Freturn%3Ffoo%3Dbar"
    );
    assert_eq!(
        counted(&hub, "mspalpha", "cmpone", "to_cmp", "redirected"),
        1
    );
}

/// 7.2.1: back to the MSP's redirect_uri with `&id=…` after its own `foo=bar`.
#[tokio::test]
async fn successful_completion_appends_the_account_id() {
    let hub = stage().await;
    let id = account_id(&hub, "cmpone", 600);
    let reply = get(
        &hub,
        &format!(
            "/touchpoints/mspalpha/return?from=cmpone&redirect_uri=https%3A%2F%2Fclient.msp.example%2Freturn%3Ffoo%3Dbar&id={id}"
        ),
    )
    .await;
    assert_eq!(
        location(&reply),
        format!("https://client.msp.example/return?foo=bar&id={id}")
    );
    assert_eq!(
        counted(&hub, "cmpone", "mspalpha", "back_to_msp", "redirected"),
        1
    );
}

/// 7.2.2: back to the MSP's redirect_uri with `&code=…&error=…`.
#[tokio::test]
async fn unsuccessful_completion_appends_code_and_error() {
    let hub = stage().await;
    let base = "/touchpoints/mspalpha/return?from=cmpone&redirect_uri=https%3A%2F%2Fclient.msp.example%2Freturn%3Ffoo%3Dbar";
    let reply = get(
        &hub,
        &format!("{base}&code=100&error=Unspecified%20CMP%20content%20error"),
    )
    .await;
    assert_eq!(
        location(&reply),
        "https://client.msp.example/return?foo=bar&code=100&error=Unspecified%20CMP%20content%20error"
    );
    // Form encoding (`+` for a space) reads the same; `error` is optional; 200–300 are the
    // proprietary range.
    let reply = get(&hub, &format!("{base}&code=102&error=aborted+by+user")).await;
    assert_eq!(
        location(&reply),
        "https://client.msp.example/return?foo=bar&code=102&error=aborted%20by%20user"
    );
    let reply = get(&hub, &format!("{base}&code=250")).await;
    assert_eq!(
        location(&reply),
        "https://client.msp.example/return?foo=bar&code=250"
    );
}

#[tokio::test]
async fn per_msp_secrets_sign_the_account_ids_for_that_msp() {
    let hub = crate::support::TestHub::builder()
        .routes(|s| {
            s.replace(
                "account_id_secret = \"cmpone-secret\"\n",
                "account_id_secret = \"cmpone-secret\"\naccount_id_secrets = { mspbeta = \"cmpone-for-beta\" }\n",
            )
        })
        .start()
        .await
        .expect("the stage starts");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = aidhub::account_id::AccountClaims {
        sid: uuid::Uuid::new_v4(),
        exp: now + 600,
        iat: Some(now),
        has_ver: false,
    };
    let for_beta = aidhub::account_id::sign(&claims, None, false, b"cmpone-for-beta");
    let back = enc("https://portal.cmp.example/done");
    let path = |id: &str, msp: &str| {
        format!("/touchpoints/{msp}/onboarding?from=cmpone&id={id}&redirect_uri={back}")
    };
    assert_eq!(get(&hub, &path(&for_beta, "mspbeta")).await.status, 302);
    let default = account_id(&hub, "cmpone", 600);
    refused(
        &get(&hub, &path(&default, "mspbeta")).await,
        403,
        &["could not confirm that this link was issued by One Motors"],
    );
    assert_eq!(get(&hub, &path(&default, "mspalpha")).await.status, 302);
}

#[tokio::test]
async fn head_is_answered_like_get() {
    let hub = stage().await;
    let reply = request(
        &hub,
        Method::HEAD,
        "/touchpoints/cmpone/onboarding?from=mspalpha&redirect_uri=https%3A%2F%2Fa.msp.example%2F",
    )
    .await;
    assert_eq!(
        location(&reply),
        "https://portal.cmp.example/esim?redirect_uri=https%3A%2F%2Fa.msp.example%2F"
    );
}

#[tokio::test]
async fn redirects_are_in_the_metrics_text() {
    let hub = stage().await;
    get(
        &hub,
        "/touchpoints/cmpone/onboarding?from=mspalpha&redirect_uri=https%3A%2F%2Fa.msp.example%2F",
    )
    .await;
    get(
        &hub,
        "/touchpoints/cmpone/onboarding?from=mspalpha&redirect_uri=https%3A%2F%2Fevil.example%2F",
    )
    .await;
    get(
        &hub,
        "/touchpoints/cmpone/onboarding?from=nobody&redirect_uri=x",
    )
    .await;
    let running = hub.running.as_ref().unwrap();
    let text = running.hub.metrics().render("");
    for line in [
        "aidhub_touchpoint_redirects_total{from=\"mspalpha\",to=\"cmpone\",kind=\"to_cmp\",outcome=\"redirected\"} 1",
        "aidhub_touchpoint_redirects_total{from=\"mspalpha\",to=\"cmpone\",kind=\"to_cmp\",outcome=\"redirect_not_agreed\"} 1",
        "aidhub_touchpoint_redirects_total{from=\"unknown\",to=\"cmpone\",kind=\"to_cmp\",outcome=\"unknown_from\"} 1",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
}
