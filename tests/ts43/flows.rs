//! The Android eSIM transfer through the hub against the real, independent ECS
//! (`ts43-test-ecs`): source EAP-AKA (with an SQN resynchronisation), CheckEligibility,
//! AcquireTemporaryToken; target ManageSubscription(3) on the temporary token,
//! AcquireConfiguration polls on delayed download, ManageSubscription(4) — for both
//! generations of the AOSP client, ending with a downloadable activation code.

use super::device::{luhn, Device, DEFAULT_ACCEPT, XML_ACCEPT};
use super::ecs;
use super::milenage::{hex, Usim};
use aidhub::config::EcsSpec;
use aidhub::ledger::transfers::Stage;
use aidhub::stage::TestHub;
use aidhub::ts43::answer::decoded_activation_code;
use aidhub::upstream::{AnswerHeaders, PoolSettings, Upstream};
use bytes::Bytes;
use http::{Method, Request};
use std::sync::Arc;
use std::time::Duration;

const K: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
const OP: &str = "cdc202d5123e20f62b6d676ac72cb318";

fn usim() -> Usim {
    let k = hex(K);
    Usim {
        opc: Usim::opc_of(&k, &hex(OP)),
        k,
    }
}

/// Seeds subscribers (SQN 0x20) and eSIM profiles through the ECS admin API.
async fn seed(port: u16, certs: &std::path::Path, imsis: &[&str]) {
    let spec = EcsSpec {
        origin: format!("https://127.0.0.1:{port}/").parse().unwrap(),
        path: String::new(),
        ca: vec![aidhub::pki::ca_cert(certs)],
        client_cert: None,
        server_name: Some("localhost".into()),
    };
    let client = Upstream::carrier(&spec, PoolSettings::default()).unwrap();
    let opc = hex::encode(usim().opc);
    let subscribers: Vec<_> = imsis
        .iter()
        .map(|imsi| serde_json::json!({"imsi": imsi, "ki": K, "opc": opc, "sqn": "000000000020", "msisdn": "+15550001111"}))
        .collect();
    let profiles: Vec<_> = (0..8)
        .map(|i| {
            let base = format!("898821100000053{i:03}");
            serde_json::json!({"iccid": format!("{base}{}", luhn(&base))})
        })
        .collect();
    for (path, body) in [
        (
            "/admin/api/subscribers/bulk",
            serde_json::json!({"subscribers": subscribers}),
        ),
        (
            "/admin/api/profiles/bulk",
            serde_json::json!({"profiles": profiles}),
        ),
    ] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut request = Request::new(Bytes::from(body.to_string()));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = client.uri(path).unwrap();
            let h = request.headers_mut();
            h.insert("x-admin-key", ecs::ADMIN_KEY.parse().unwrap());
            h.insert("content-type", "application/json".parse().unwrap());
            match client
                .exchange(
                    request,
                    Duration::from_secs(10),
                    1 << 20,
                    AnswerHeaders::All,
                )
                .await
            {
                Ok(a) if a.status == 201 => break,
                Ok(a) => panic!(
                    "seeding {path}: {} {}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                ),
                // The ECS is still starting: poll until the deadline.
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("the ECS did not come up: {e}"),
            }
        }
    }
}

struct Transfer {
    activation_code: String,
    polls: u32,
}

/// The whole Android sequence for `imsi`; `older` picks the client generation.
async fn transfer(hub: &TestHub, imsi: &str, older: bool, n: u32) -> Transfer {
    let port = hub.devices.unwrap().port();
    let certs = hub.certs();
    let mut source = Device::new(port, "/ts43/acme", &format!("35693803564380{n}"), &certs)
        .with_usim(usim(), imsi);
    // The USIM has seen a later SQN than the ECS will use: the first challenge is
    // answered with a synchronisation failure and the ECS challenges again.
    source.sqn_ms = 0x30;
    let eligibility = source
        .eap_aka("operation=CheckEligibility", DEFAULT_ACCEPT)
        .await;
    assert_eq!(eligibility.status, 200);
    assert_eq!(source.resyncs, 1, "one resynchronisation");
    assert_eq!(
        eligibility.app("PrimaryAppEligibility").as_deref(),
        Some("1")
    );
    let token = eligibility
        .doc()
        .token()
        .expect("a TOKEN after EAP-AKA")
        .to_owned();
    let q = format!(
        "IMSI={imsi}&token={token}&{}&operation=AcquireTemporaryToken&operation_targets=ManageSubscription%2CAcquireConfiguration",
        source.tail()
    );
    let issued = source.get(&q, DEFAULT_ACCEPT).await;
    assert_eq!(issued.status, 200);
    assert!(
        issued.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("xml"),
        "XML for the ODSA parser although the Accept names JSON first"
    );
    let tt = issued.app("TemporaryToken").expect("a temporary token");

    let mut target = Device::new(port, "/ts43/acme", &format!("35693803564390{n}"), &certs);
    let ms3 = format!(
        "temporary_token={tt}&{}&operation=ManageSubscription&operation_type=3&terminal_eid=89882119900000000000000000001654&old_terminal_id={}",
        target.tail(),
        source.imei
    );
    let started = std::time::Instant::now();
    let transfer = target.get(&ms3, XML_ACCEPT).await;
    assert_eq!(transfer.status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    let older_token = transfer.doc().token().map(str::to_owned);
    let mut doc = transfer.doc();
    let mut polls = 0;
    if transfer.app("SubscriptionResult").as_deref() == Some("4") {
        loop {
            polls += 1;
            assert!(polls <= 4, "the download never became ready");
            let auth = match (&older_token, older) {
                (Some(t), true) => format!("IMSI=001019999999999&token={t}"),
                (None, true) => panic!("the older client got no TOKEN to poll with"),
                (_, false) => format!("temporary_token={tt}"),
            };
            let poll = target
                .get(
                    &format!("{auth}&{}&operation=AcquireConfiguration", target.tail()),
                    DEFAULT_ACCEPT,
                )
                .await;
            assert_eq!(poll.status, 200, "{}", String::from_utf8_lossy(&poll.body));
            let d = poll.doc();
            let config = d
                .application()
                .unwrap()
                .child("PrimaryConfiguration")
                .unwrap()
                .clone();
            if config.child("DownloadInfo").is_some() {
                doc = aidhub::ts43::document::Document {
                    roots: vec![aidhub::ts43::document::Characteristic {
                        kind: "APPLICATION".into(),
                        parms: vec![],
                        children: vec![config],
                    }],
                };
                break;
            }
            assert_eq!(config.parm("ServiceStatus"), Some("2"));
            assert_eq!(
                config.parm("PollingInterval"),
                Some("1"),
                "added by the hub"
            );
        }
    }
    let app = doc.application().unwrap();
    let info = app
        .child("DownloadInfo")
        .or_else(|| {
            app.child("PrimaryConfiguration")
                .and_then(|c| c.child("DownloadInfo"))
        })
        .expect("DownloadInfo");
    let code = decoded_activation_code(info.parm("ProfileActivationCode").unwrap())
        .expect("Base64 of a grammar-valid activation code");
    let update = target
        .get(
            &format!(
                "temporary_token={tt}&{}&operation=ManageSubscription&operation_type=4",
                target.tail()
            ),
            XML_ACCEPT,
        )
        .await;
    assert_eq!(
        update.status,
        200,
        "{}",
        String::from_utf8_lossy(&update.body)
    );
    assert_eq!(update.app("SubscriptionResult").as_deref(), Some("3"));
    let again = target.get(&ms3, XML_ACCEPT).await;
    assert_eq!(again.status, 403, "one transfer per temporary token");
    Transfer {
        activation_code: code.expose().to_owned(),
        polls,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn android_transfers_complete_through_the_hub_against_the_real_ecs() {
    if !ecs::available() {
        return;
    }
    let ecs_port = Arc::new(std::sync::Mutex::new(None));
    let keep = ecs_port.clone();
    let hub = TestHub::builder()
        .carriers(move |certs| {
            let ecs = ecs::start(certs)?;
            let toml = ecs::carrier_toml("acme", ecs.port, 8000);
            *keep.lock().unwrap() = Some(ecs);
            Ok(toml)
        })
        .start()
        .await
        .unwrap();
    let port = ecs_port.lock().unwrap().as_ref().unwrap().port;
    let imsis = ["001010000000001", "001020000000002", "001020000000003"];
    seed(port, &hub.certs(), &imsis).await;

    let immediate = transfer(&hub, imsis[0], false, 1).await;
    assert_eq!(immediate.polls, 0);
    assert!(
        immediate.activation_code.starts_with("1$"),
        "no LPA: prefix"
    );
    let newer = transfer(&hub, imsis[1], false, 2).await;
    assert_eq!(newer.polls, 2, "ready after two polls");
    let older = transfer(&hub, imsis[2], true, 3).await;
    assert_eq!(older.polls, 2);

    let running = hub.running.as_ref().unwrap();
    let transfers = running
        .hub
        .ts43()
        .transfers
        .transfers(Some("acme"), 10)
        .await
        .unwrap();
    assert_eq!(transfers.len(), 3);
    for t in &transfers {
        assert_eq!(t.stage, Stage::Updated, "{t:?}");
        assert_eq!(t.steps[0].stage, Stage::Eligibility);
        assert_eq!(t.steps[0].note.as_deref(), Some("eligibility=1"));
    }
    let metrics = running.hub.metrics();
    let acme: aidhub::metrics::Label = Arc::from("acme");
    let n = |what| metrics.ts43_normalisations.get(&(acme.clone(), what));
    assert!(n("base64_activation_code") >= 3);
    assert!(n("polling_interval") >= 2);
    assert!(n("temporary_token_bridged") >= 6);
    assert!(n("token_for_older_clients") >= 1);
    assert!(n("xml_for_odsa") >= 3);
    let r = |what| metrics.ts43_requirements.get(&(acme.clone(), what));
    assert_eq!(r("transfer"), 3);
    assert_eq!(r("transfer_under_5s"), 3);
    assert_eq!(r("delayed_download"), 2);
    assert_eq!(r("update_subscription"), 3);
    assert_eq!(
        r("token_with_msisdn"),
        0,
        "the open-source ECS sends no MSISDN"
    );
    let report = aidhub::ts43::scoring::report(metrics, std::slice::from_ref(&acme));
    assert_eq!(report[0]["swap_under_5s"]["share"], 1.0);
    assert_eq!(
        running.hub.ts43().vault.len(),
        3,
        "one kept session per live token"
    );
}
