//! The nine AID1 functions end to end, over HTTP/1.1 and over h2: what the caller gets back,
//! and what the partner behind the hub received — same method, path (under the target's
//! upstream prefix), query and body bytes; the four identifying headers unchanged; the
//! caller's credential replaced by the hub's credential at that partner.

use crate::common::{self, Ids};
use crate::support::{bodies, TestHub};
use aidhub::client::{Reply, Version};
use aidhub::sim::{Seen, SIM_ACTIVATION_CODE, SIM_ICCID};
use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// The path prefix of each stage partner's upstream URL.
fn upstream_prefix(id: &str) -> &'static str {
    if id == "cmptwo" {
        "/cmp-api"
    } else {
        ""
    }
}

/// One MSP and one CMP talking through the hub over one HTTP version.
struct Walk<'a> {
    hub: &'a TestHub,
    version: Version,
    msp: &'a str,
    cmp: &'a str,
}

impl Walk<'_> {
    /// Sends one call from `from` to `to` and checks that the partner received exactly it,
    /// once; returns the caller's reply.
    async fn step(
        &self,
        from: &str,
        to: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let function = format!("{method} {path} ({from} -> {to}, {:?})", self.version);
        let ids = Ids::new();
        let bytes = body.map(|b| Bytes::from(b.to_string()));
        let partner = self.hub.partner(to);
        let before = partner.seen_count();
        let caller = common::caller(self.hub, from);
        let mut headers = ids.headers();
        // Two values of a passed header, and one the hub keeps to itself.
        headers.append(http::header::ACCEPT, common::header("application/json"));
        headers.append(http::header::ACCEPT, common::header("*/*"));
        headers.insert("x-caller-trace", common::header("trace-1"));
        let reply = common::send(
            self.hub,
            self.version,
            from,
            &caller,
            to,
            method.clone(),
            path,
            bytes.clone(),
            headers,
        )
        .await;
        let seen = partner.seen();
        assert_eq!(
            seen.len(),
            before + 1,
            "{function}: the partner saw it once"
        );
        let seen = &seen[before];
        assert_eq!(seen.method, method, "{function}: method");
        assert_eq!(
            seen.path,
            format!("{}{path}", upstream_prefix(to)),
            "{function}: path and query under the upstream prefix"
        );
        assert_eq!(
            seen.body,
            bytes.clone().unwrap_or_default(),
            "{function}: body bytes"
        );
        if bytes.is_some() {
            assert_eq!(
                values(seen, "content-type"),
                ["application/json"],
                "{function}: content type"
            );
        }
        assert_eq!(
            values(seen, "cmp-request-id"),
            [ids.request.as_str()],
            "{function}: CMP-request-id unchanged"
        );
        assert_eq!(
            values(seen, "correlation-id"),
            [ids.correlation.as_str()],
            "{function}: correlation-id unchanged"
        );
        assert_eq!(values(seen, "client-id"), [from], "{function}: client-id");
        assert_eq!(values(seen, "target-id"), [to], "{function}: target-id");
        assert_eq!(
            values(seen, "api-key"),
            [format!("hubAt{to}").as_str()],
            "{function}: the caller's api-key is replaced by the hub's credential at {to}"
        );
        assert!(
            seen.headers.get(http::header::AUTHORIZATION).is_none(),
            "{function}: the caller's basic auth is dropped"
        );
        assert_eq!(
            values(seen, "accept"),
            ["application/json", "*/*"],
            "{function}: both Accept values, in order"
        );
        assert!(
            seen.headers.get("x-caller-trace").is_none(),
            "{function}: a header the spec does not name stays behind"
        );
        reply
    }

    /// Onboards a fresh token (Send MSP Token, 7.3).
    async fn send_msp_token(&self) -> Uuid {
        let (account_id, _) = self.hub.account_id(self.cmp, 600);
        let token = Uuid::new_v4();
        let path = format!("/cesim/msp/v1/users/{account_id}");
        let reply = self
            .step(
                self.msp,
                self.cmp,
                Method::POST,
                &path,
                Some(bodies::msp_token(&token)),
            )
            .await;
        expect(&reply, 201, "Send MSP Token");
        token
    }

    /// Every function once; the withdrawal calls on tokens of their own.
    async fn all_nine(&self) {
        let (msp, cmp) = (self.msp, self.cmp);
        let token = self.send_msp_token().await;

        let update = json!({"subscriptionType": "business", "customerGroup": "Fleet"});
        let path = format!("/cesim/msp/v1/subscriptions/{token}");
        let reply = self
            .step(msp, cmp, Method::PATCH, &path, Some(update))
            .await;
        expect(&reply, 201, "Update Subscription Info");

        let info = json!({"profiles": [{"iccid": SIM_ICCID, "status": "valid"}]});
        let path = format!("/cesim/msp/v1/users/{token}/profiles");
        let reply = self.step(msp, cmp, Method::POST, &path, Some(info)).await;
        expect(&reply, 200, "Send Profile Information");

        let path = format!("/v1/activation-code-requests/{token}");
        let ask = bodies::ac_request(&Uuid::new_v4(), "tcu");
        let reply = self.step(cmp, msp, Method::POST, &path, Some(ask)).await;
        assert_eq!(reply.status, 200, "Request Activation Code (sync)");
        assert_eq!(
            reply.json(),
            json!({
                "iccid": SIM_ICCID,
                "activationCode": SIM_ACTIVATION_CODE,
                "profileType": "personal",
                "swappedIccid": null,
            }),
            "the synchronous activation code reaches the CMP"
        );

        let id = Uuid::new_v4();
        let ask = bodies::ac_request(&id, "async");
        let reply = self.step(cmp, msp, Method::POST, &path, Some(ask)).await;
        expect(&reply, 201, "Request Activation Code (async)");

        let path = format!("/cesim/msp/v1/activation-codes/{token}");
        let reply = self
            .step(msp, cmp, Method::POST, &path, Some(bodies::send_ac(&id)))
            .await;
        expect(&reply, 200, "Send Activation Code");

        let path = format!("/v1/statuses/{token}");
        let status = bodies::csim_status("installed");
        let reply = self.step(cmp, msp, Method::POST, &path, Some(status)).await;
        expect(&reply, 201, "Send CSIM Status");

        let path = format!("/v1/profiles/status/{token}?iccid={SIM_ICCID}");
        let reply = self.step(cmp, msp, Method::GET, &path, None).await;
        assert_eq!(reply.status, 200, "Request Profile Status");
        assert_eq!(
            reply.json(),
            json!({"profiles": [{"iccid": SIM_ICCID, "status": "enabled"}]}),
            "the profile status reaches the CMP"
        );

        let path = format!("/v1/users/{token}");
        let reply = self.step(cmp, msp, Method::DELETE, &path, None).await;
        expect(&reply, 204, "Request Invalidate MSP Token");

        let other = self.send_msp_token().await;
        let path = format!("/cesim/msp/v1/users/{other}/invalidate");
        let reason = json!({"reason": "contract terminated"});
        let reply = self.step(msp, cmp, Method::POST, &path, Some(reason)).await;
        expect(&reply, 204, "Notify MSP Token Invalid");
    }
}

/// All values of header `name` the partner received.
fn values<'s>(seen: &'s Seen, name: &str) -> Vec<&'s str> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("<not text>"))
        .collect()
}

/// A success without a body.
#[track_caller]
fn expect(reply: &Reply, status: u16, function: &str) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{function}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(reply.body.is_empty(), "{function}: no body");
}

/// A stage whose simulated MSPs hold their async activation codes back, so the test sends
/// Send Activation Code itself, over the version under test and with known ids.
async fn stage() -> TestHub {
    TestHub::builder()
        .async_delay(Duration::from_secs(3600))
        .start()
        .await
        .expect("the stage starts")
}

#[tokio::test]
async fn nine_functions_end_to_end_over_http1() {
    let hub = stage().await;
    let walk = Walk {
        hub: &hub,
        version: Version::Http1,
        msp: "mspalpha",
        cmp: "cmpone",
    };
    walk.all_nine().await;
}

#[tokio::test]
async fn nine_functions_end_to_end_over_h2_between_another_pair() {
    let hub = stage().await;
    let walk = Walk {
        hub: &hub,
        version: Version::Http2,
        msp: "mspbeta",
        cmp: "cmpone",
    };
    walk.all_nine().await;
}

#[tokio::test]
async fn nine_functions_end_to_end_over_h2_with_a_basic_auth_cmp_and_an_upstream_path_prefix() {
    let hub = stage().await;
    let walk = Walk {
        hub: &hub,
        version: Version::Http2,
        msp: "mspalpha",
        cmp: "cmptwo",
    };
    walk.all_nine().await;
}
