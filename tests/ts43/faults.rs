//! A scripted fake ECS (real TLS, in the test) for what the real one never does: business
//! outcomes with a non-200 status, a DownloadInfo without ProfileIccid, an expiry AOSP
//! cannot parse, a raw activation code, no PollingInterval, 503 with Retry-After, a slow
//! answer — and the hub's own refusals of devices, which never reach the carrier.

use super::device::{Device, DEFAULT_ACCEPT, XML_ACCEPT};
use super::fake::xml;
use aidhub::stage::TestHub;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The scripted answer for a request whose `terminal_id` names the case.
async fn script(query: &str) -> Response<Full<Bytes>> {
    let case = query
        .split('&')
        .find_map(|p| p.strip_prefix("terminal_id="))
        .unwrap_or("");
    let ok = r#"<parm name="OperationResult" value="1"/>"#;
    let (status, body, extra): (u16, String, Option<(&str, &str)>) = match case {
        "nopoll" => (
            200,
            xml(&format!(
                r#"{ok}<characteristic type="PrimaryConfiguration"><parm name="ServiceStatus" value="2"/></characteristic>"#
            )),
            None,
        ),
        "rawac" => (
            200,
            xml(&format!(
                r#"{ok}<parm name="SubscriptionResult" value="2"/><characteristic type="DownloadInfo"><parm name="ProfileIccid" value="8988211000000530082"/><parm name="ProfileActivationCode" value="LPA:1$SMDP.EXAMPLE.COM$04386-AGYFT-A74Y8-3F815"/></characteristic>"#
            )),
            Some(("set-cookie", "session=abc123; Secure; Path=/")),
        ),
        "noiccid" => (
            200,
            xml(&format!(
                r#"{ok}<parm name="SubscriptionResult" value="2"/><characteristic type="DownloadInfo"><parm name="ProfileActivationCode" value="MSRTTURQLkVYQU1QTEUuQ09NJEFCQy0xMjM="/></characteristic>"#
            )),
            None,
        ),
        "badexpiry" => (
            200,
            xml(&format!(
                r#"{ok}<parm name="TemporaryToken" value="tt"/><parm name="TemporaryTokenExpiry" value="tomorrow"/><parm name="OperationTargets" value="ManageSubscription"/>"#
            )),
            None,
        ),
        "busy" => (503, "maintenance".into(), Some(("retry-after", "7"))),
        "biz500" => (
            500,
            xml(
                r#"<parm name="OperationResult" value="100"/><parm name="PrimaryAppEligibility" value="0"/><parm name="GeneralErrorText" value="Account suspended"/>"#,
            ),
            None,
        ),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (200, xml(ok), None)
        }
        _ => (200, xml(ok), None),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    let ct = if status == 503 {
        "text/plain"
    } else {
        "text/vnd.wap.connectivity-xml"
    };
    response
        .headers_mut()
        .insert("content-type", ct.parse().unwrap());
    if let Some((name, value)) = extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// Starts the fake ECS on a loopback port; counts the requests it gets.
fn fake_ecs(certs: &std::path::Path, hits: Arc<AtomicU64>) -> Result<u16, String> {
    super::fake::start(certs, move |parts: http::request::Parts| {
        hits.fetch_add(1, Ordering::SeqCst);
        let query = parts.uri.query().unwrap_or("").to_owned();
        async move { script(&query).await }
    })
}

fn auth(case: &str) -> String {
    format!("IMSI=001010000000009&token=tok&terminal_id={case}&app=ap2009&vers=0&entitlement_version=9.0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_faults_are_checked_normalised_or_passed_through() {
    let hits = Arc::new(AtomicU64::new(0));
    let counted = hits.clone();
    let hub = TestHub::builder()
        .carriers(move |certs| {
            let port = fake_ecs(certs, counted)?;
            Ok(super::ecs::carrier_toml("fake", port, 1000))
        })
        .start()
        .await
        .unwrap();
    let port = hub.devices.unwrap().port();
    let mut phone = Device::new(port, "/ts43/fake", "unused", &hub.certs());

    let r = phone
        .get(
            &format!("{}&operation=AcquireConfiguration", auth("nopoll")),
            DEFAULT_ACCEPT,
        )
        .await;
    let config = r
        .doc()
        .application()
        .unwrap()
        .child("PrimaryConfiguration")
        .unwrap()
        .clone();
    assert_eq!(config.parm("PollingInterval"), Some("1"));

    let post = serde_json::json!({"IMSI": "001010000000009", "token": "tok", "terminal_id": "nopoll",
        "app": "[ap2009]", "vers": "0", "operation": "AcquireConfiguration"});
    let r = phone.post_json(&post, DEFAULT_ACCEPT).await;
    assert_eq!(r.status, 200, "the JSON POST variant");

    let r = phone
        .get(
            &format!(
                "{}&operation=ManageSubscription&operation_type=0",
                auth("rawac")
            ),
            XML_ACCEPT,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["set-cookie"], "session=abc123; Secure; Path=/",
        "cookies cross unchanged"
    );
    let code = r
        .doc()
        .application()
        .unwrap()
        .child("DownloadInfo")
        .unwrap()
        .parm("ProfileActivationCode")
        .unwrap()
        .to_owned();
    assert_eq!(
        code,
        "MSRTTURQLkVYQU1QTEUuQ09NJDA0Mzg2LUFHWUZULUE3NFk4LTNGODE1"
    );

    let r = phone
        .get(
            &format!(
                "{}&operation=ManageSubscription&operation_type=0",
                auth("noiccid")
            ),
            XML_ACCEPT,
        )
        .await;
    assert_eq!(
        r.status, 502,
        "a DownloadInfo the phone cannot use is not relayed"
    );

    let r = phone
        .get(
            &format!(
                "{}&operation=AcquireTemporaryToken&operation_targets=ManageSubscription",
                auth("badexpiry")
            ),
            DEFAULT_ACCEPT,
        )
        .await;
    assert_eq!(r.status, 502);

    let r = phone
        .get(
            &format!("{}&operation=CheckEligibility", auth("busy")),
            DEFAULT_ACCEPT,
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), &r.headers["retry-after"]),
        (503, &"7".parse::<http::HeaderValue>().unwrap())
    );
    assert_eq!(&r.body[..], b"maintenance");

    let r = phone
        .get(
            &format!("{}&operation=CheckEligibility", auth("biz500")),
            DEFAULT_ACCEPT,
        )
        .await;
    assert_eq!(r.status, 200, "a business outcome reaches the phone as 200");
    assert_eq!(
        r.app("GeneralErrorText").as_deref(),
        Some("Account suspended")
    );

    let r = phone
        .get(
            &format!("{}&operation=CheckEligibility", auth("slow")),
            DEFAULT_ACCEPT,
        )
        .await;
    assert_eq!(r.status, 504);

    // The hub's own refusals never reach the carrier.
    let before = hits.load(Ordering::SeqCst);
    let r = phone
        .get(
            &format!("{}&operation=FlyToTheMoon", auth("x")),
            DEFAULT_ACCEPT,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.app("OperationResult").as_deref(), Some("101"));
    let r = phone
        .get(
            &format!("{}&operation=CheckEligibility&terminal_eid=12", auth("x")),
            "application/json",
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].to_str().unwrap().contains("json"));
    assert_eq!(r.app("OperationResult").as_deref(), Some("102"));
    let r = phone
        .get("terminal_id=x&operation=CheckEligibility", DEFAULT_ACCEPT)
        .await;
    assert_eq!(r.status, 400, "no authentication group");
    let r = phone.get("temporary_token=never-issued&terminal_id=x&app=ap2009&operation=ManageSubscription&operation_type=3", XML_ACCEPT).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "the carrier was not troubled"
    );

    let metrics = hub.running.as_ref().unwrap().hub.metrics();
    let fake: aidhub::metrics::Label = Arc::from("fake");
    let v = |what| metrics.ts43_violations.get(&(fake.clone(), what));
    assert_eq!(v("download_info"), 1);
    assert_eq!(v("temporary_token_expiry"), 1);
    assert_eq!(v("non_200_business_outcome"), 1);
    assert_eq!(v("no_polling_interval"), 0, "fixed before the check");
    assert_eq!(v("polling_interval"), 1);
    let text = metrics.render("");
    assert!(
        text.contains(
            "aidhub_ts43_carrier_violations_total{carrier=\"fake\",what=\"download_info\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains(
        "aidhub_ts43_normalisations_total{carrier=\"fake\",what=\"base64_activation_code\"} 1"
    ));
}
