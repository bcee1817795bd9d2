//! Refusals about who calls whom: a `client-id` that is not the certificate's partner, a
//! missing or wrong credential (or the other kind than the routing table says), an unknown
//! target, a role pair outside the AID1 table, and a pair without an agreement. Each is
//! answered with its status and spec error body, and no partner sees anything.

use crate::common::{self, assert_error, seen_total, Ids};
use crate::support::{bodies, TestHub};
use aidhub::client::Caller;
use bytes::Bytes;
use http::Method;
use serde_json::Value;
use uuid::Uuid;

/// One refused call: `cert` presents its certificate, `caller` its headers.
struct Refused<'a> {
    case: &'a str,
    cert: &'a str,
    caller: Caller,
    target: &'a str,
    method: Method,
    path: String,
    body: Option<Value>,
    status: u16,
    code: &'a str,
}

impl Refused<'_> {
    /// Sends the call over both versions; asserts the error and that nothing was forwarded.
    async fn check(&self, hub: &TestHub) {
        for version in common::VERSIONS {
            let before = seen_total(hub);
            let reply = common::send(
                hub,
                version,
                self.cert,
                &self.caller,
                self.target,
                self.method.clone(),
                &self.path,
                self.body.as_ref().map(|b| Bytes::from(b.to_string())),
                Ids::new().headers(),
            )
            .await;
            let case = format!("{} ({version:?})", self.case);
            assert_error(&reply, self.status, self.code, &case);
            assert_eq!(seen_total(hub), before, "{case}: no partner saw anything");
        }
    }
}

/// A valid MSP → CMP call shape (Notify MSP Token Invalid on a random token).
fn msp_call(
    case: &'static str,
    cert: &'static str,
    caller: Caller,
    target: &'static str,
) -> Refused<'static> {
    Refused {
        case,
        cert,
        caller,
        target,
        method: Method::POST,
        path: format!("/cesim/msp/v1/users/{}/invalidate", Uuid::new_v4()),
        body: Some(serde_json::json!({"reason": "test"})),
        status: 0,
        code: "",
    }
}

/// A valid CMP → MSP call shape (Request Profile Status on a random token).
fn cmp_call(
    case: &'static str,
    cert: &'static str,
    caller: Caller,
    target: &'static str,
) -> Refused<'static> {
    Refused {
        method: Method::GET,
        path: format!("/v1/profiles/status/{}", Uuid::new_v4()),
        body: None,
        ..msp_call(case, cert, caller, target)
    }
}

fn with_api_key(client_id: &str, key: Option<&str>) -> Caller {
    Caller {
        client_id: client_id.to_owned(),
        api_key: key.map(str::to_owned),
        basic: None,
    }
}

fn with_basic(client_id: &str, user: &str, password: &str) -> Caller {
    Caller {
        client_id: client_id.to_owned(),
        api_key: None,
        basic: Some((user.to_owned(), password.to_owned())),
    }
}

#[tokio::test]
async fn a_client_id_that_is_not_the_certificates_partner_is_refused_403_213() {
    let hub = common::stage().await;
    // mspalpha's certificate, claiming to be mspbeta with mspbeta's own valid credential.
    let spoof = common::caller(&hub, "mspbeta");
    let call = Refused {
        status: 403,
        code: "213",
        ..msp_call("mspalpha's cert as mspbeta", "mspalpha", spoof, "cmpone")
    };
    call.check(&hub).await;
    let spoof = common::caller(&hub, "cmpone");
    let call = Refused {
        status: 403,
        code: "213",
        ..msp_call("mspalpha's cert as cmpone", "mspalpha", spoof, "cmptwo")
    };
    call.check(&hub).await;
}

#[tokio::test]
async fn a_missing_wrong_or_wrong_kind_of_credential_is_refused_401_212() {
    let hub = common::stage().await;
    let cases = [
        (
            "mspalpha without api-key",
            "mspalpha",
            with_api_key("mspalpha", None),
        ),
        (
            "mspalpha with a wrong api-key",
            "mspalpha",
            with_api_key("mspalpha", Some("alphaKey2")),
        ),
        (
            "mspalpha with another partner's api-key",
            "mspalpha",
            with_api_key("mspalpha", Some("oneKey1")),
        ),
        (
            "mspalpha with basic auth where an api-key is configured",
            "mspalpha",
            with_basic("mspalpha", "mspalpha", "alphaKey1"),
        ),
        (
            "mspbeta without credential",
            "mspbeta",
            with_api_key("mspbeta", None),
        ),
    ];
    for (case, cert, caller) in cases {
        let call = Refused {
            status: 401,
            code: "212",
            ..msp_call(case, cert, caller, "cmpone")
        };
        call.check(&hub).await;
    }
    // cmptwo authenticates with basic auth (the MSP-hosted API allows it).
    let basic_cases = [
        (
            "cmptwo with an api-key where basic auth is configured",
            with_api_key("cmptwo", Some("twoPass")),
        ),
        (
            "cmptwo with a wrong password",
            with_basic("cmptwo", "cmptwo", "twoPass2"),
        ),
        (
            "cmptwo with a wrong user",
            with_basic("cmptwo", "mspalpha", "twoPass"),
        ),
        ("cmptwo without credential", with_api_key("cmptwo", None)),
    ];
    for (case, caller) in basic_cases {
        let call = Refused {
            status: 401,
            code: "212",
            ..cmp_call(case, "cmptwo", caller, "mspalpha")
        };
        call.check(&hub).await;
    }
}

#[tokio::test]
async fn an_unknown_target_is_refused_404_93() {
    let hub = common::stage().await;
    let call = Refused {
        status: 404,
        code: "93",
        ..msp_call(
            "mspalpha -> cmpnine",
            "mspalpha",
            common::caller(&hub, "mspalpha"),
            "cmpnine",
        )
    };
    call.check(&hub).await;
}

#[tokio::test]
async fn role_pairs_outside_the_aid1_table_are_refused_403_211() {
    let hub = common::stage().await;
    let token = Uuid::new_v4();
    let csim = Some(bodies::csim_status("installed"));
    let invalidate = Some(serde_json::json!({"reason": "test"}));
    let cases = [
        (
            "an MSP calling an MSP-hosted function on another MSP",
            "mspalpha",
            "mspbeta",
            format!("/v1/statuses/{token}"),
            csim.clone(),
        ),
        (
            "an MSP calling an MSP-hosted function on a CMP",
            "mspalpha",
            "cmpone",
            format!("/v1/statuses/{token}"),
            csim.clone(),
        ),
        (
            "an MSP targeting an MSP with a CMP-hosted function",
            "mspalpha",
            "mspbeta",
            format!("/cesim/msp/v1/users/{token}/invalidate"),
            invalidate.clone(),
        ),
        (
            "a CMP calling a CMP-hosted /cesim function on an MSP",
            "cmpone",
            "mspalpha",
            format!("/cesim/msp/v1/users/{token}/invalidate"),
            invalidate.clone(),
        ),
        (
            "a CMP calling a CMP-hosted /cesim function on a CMP",
            "cmpone",
            "cmptwo",
            format!("/cesim/msp/v1/users/{token}/invalidate"),
            invalidate,
        ),
        (
            "a CMP targeting a CMP with an MSP-hosted function",
            "cmpone",
            "cmptwo",
            format!("/v1/statuses/{token}"),
            csim,
        ),
    ];
    for (case, from, to, path, body) in cases {
        let call = Refused {
            case,
            cert: from,
            caller: common::caller(&hub, from),
            target: to,
            method: Method::POST,
            path,
            body,
            status: 403,
            code: "211",
        };
        call.check(&hub).await;
    }
}

#[tokio::test]
async fn a_pair_without_an_agreement_is_refused_403_211() {
    let hub = common::stage().await;
    // cmptwo lists only mspalpha as counterpart.
    let (account_id, _) = hub.account_id("cmptwo", 600);
    let onboarding = Refused {
        case: "mspbeta -> cmptwo, Send MSP Token",
        cert: "mspbeta",
        caller: common::caller(&hub, "mspbeta"),
        target: "cmptwo",
        method: Method::POST,
        path: format!("/cesim/msp/v1/users/{account_id}"),
        body: Some(bodies::msp_token(&Uuid::new_v4())),
        status: 403,
        code: "211",
    };
    onboarding.check(&hub).await;
    let reverse = Refused {
        case: "cmptwo -> mspbeta, Send CSIM Status",
        cert: "cmptwo",
        caller: common::caller(&hub, "cmptwo"),
        target: "mspbeta",
        method: Method::POST,
        path: format!("/v1/statuses/{}", Uuid::new_v4()),
        body: Some(bodies::csim_status("installed")),
        status: 403,
        code: "211",
    };
    reverse.check(&hub).await;
    // The agreed pairs pass the same check.
    common::onboard(&hub, "mspalpha", "cmptwo").await;
    common::onboard(&hub, "mspbeta", "cmpone").await;
}
