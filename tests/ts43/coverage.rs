//! The TS.43 paths the flows and faults leave out, against a scripted fake ECS that writes
//! down every request it gets: the per-device rate limit (`[carrier.limits] device_rate`),
//! the admin views `/ts43/transfers` and `/ts43/carriers` over real HTTP, and
//! `aidhub ledger transfers` on a stopped hub's sled ledger — none of which shows a
//! temporary token, IMSI, ICCID or any other subscriber secret in clear.

use super::device::{Device, DEFAULT_ACCEPT, XML_ACCEPT};
use super::fake::{self, xml};
use aidhub::ledger::transfers::Transfer;
use aidhub::stage::cluster::admin_get;
use aidhub::stage::TestHub;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::{json, Value};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// The profile the fake ECS hands out.
const ICCID: &str = "8988211000000530082";
/// The subscriber's number in AcquireTemporaryToken answers.
const MSISDN: &str = "+15550009999";
/// The target's eUICC.
const EID: &str = "89882119900000000000000000001654";
/// `1$SMDP.EXAMPLE.COM$ABC-123` in Base64.
const ACTIVATION_CODE: &str = "MSRTTURQLkVYQU1QTEUuQ09NJEFCQy0xMjM=";

/// What the fake ECS got (`terminal_id`, `operation` of each request, in order) and the
/// temporary tokens it issued.
#[derive(Default)]
struct EcsLog {
    seen: Vec<(String, String)>,
    issued: Vec<String>,
}

type Log = Arc<Mutex<EcsLog>>;

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

/// The fake ECS: a successful answer to each step of a transfer, a fresh temporary token on
/// every AcquireTemporaryToken (the hub's bridging ones included).
fn answer(log: &Log, query: &str) -> Response<Full<Bytes>> {
    let operation = param(query, "operation").unwrap_or("");
    let mut log = log.lock().unwrap();
    log.seen.push((
        param(query, "terminal_id").unwrap_or("").to_owned(),
        operation.to_owned(),
    ));
    let ok = r#"<parm name="OperationResult" value="1"/>"#;
    let app = match (operation, param(query, "operation_type")) {
        ("CheckEligibility", _) => format!(r#"{ok}<parm name="PrimaryAppEligibility" value="1"/>"#),
        ("AcquireTemporaryToken", _) => {
            let token = format!("ttSecret{}", uuid::Uuid::new_v4().simple());
            log.issued.push(token.clone());
            format!(
                r#"{ok}<parm name="TemporaryToken" value="{token}"/><parm name="TemporaryTokenExpiry" value="2099-01-01T00:00:00Z"/><parm name="OperationTargets" value="ManageSubscription,AcquireConfiguration"/><parm name="MSISDN" value="{MSISDN}"/>"#
            )
        }
        ("ManageSubscription", Some("3")) => format!(
            r#"{ok}<parm name="SubscriptionResult" value="2"/><characteristic type="DownloadInfo"><parm name="ProfileIccid" value="{ICCID}"/><parm name="ProfileActivationCode" value="{ACTIVATION_CODE}"/></characteristic>"#
        ),
        ("ManageSubscription", Some("4")) => {
            format!(r#"{ok}<parm name="SubscriptionResult" value="3"/>"#)
        }
        _ => ok.to_owned(),
    };
    let mut response = Response::new(Full::new(Bytes::from(xml(&app))));
    response.headers_mut().insert(
        "content-type",
        "text/vnd.wap.connectivity-xml".parse().unwrap(),
    );
    response
}

/// A stage whose carriers `ids` (at `/ts43/<id>`) share one fake ECS; `edit` adjusts their
/// `[[carrier]]` tables.
async fn stage(ids: &[&str], edit: fn(String) -> String) -> (TestHub, Log) {
    let log = Log::default();
    let kept = log.clone();
    let ids: Vec<String> = ids.iter().map(|&id| id.to_owned()).collect();
    let hub = TestHub::builder()
        .carriers(move |certs| {
            let port = fake::start(certs, move |parts: http::request::Parts| {
                std::future::ready(answer(&kept, parts.uri.query().unwrap_or("")))
            })?;
            let tables: String = ids
                .iter()
                .map(|id| super::ecs::carrier_toml(id, port, 2000))
                .collect();
            Ok(edit(tables))
        })
        .start()
        .await
        .unwrap();
    (hub, log)
}

/// An eSIM transfer on `carrier` for `imsi` (phones numbered `n`): the source's
/// CheckEligibility and AcquireTemporaryToken on fast re-authentication; with `complete`,
/// the target's ManageSubscription 3 (the profile) and 4 (bridged: the ECS spent the
/// temporary token). Returns every secret the phones saw or sent.
async fn transfer(hub: &TestHub, carrier: &str, imsi: &str, n: u32, complete: bool) -> Vec<String> {
    let port = hub.devices.unwrap().port();
    let path = format!("/ts43/{carrier}");
    let mut source = Device::new(port, &path, &format!("35693803564380{n}"), &hub.certs());
    let fast = format!("IMSI={imsi}&token=fastAuthSecret{n}");
    let r = source
        .get(
            &format!("{fast}&{}&operation=CheckEligibility", source.tail()),
            DEFAULT_ACCEPT,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.app("PrimaryAppEligibility").as_deref(), Some("1"));
    let r = source
        .get(
            &format!(
                "{fast}&{}&operation=AcquireTemporaryToken&operation_targets=ManageSubscription%2CAcquireConfiguration",
                source.tail()
            ),
            DEFAULT_ACCEPT,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let tt = r.app("TemporaryToken").expect("a temporary token");
    assert_eq!(r.app("MSISDN").as_deref(), Some(MSISDN));
    let mut secrets = vec![
        imsi.to_owned(),
        format!("fastAuthSecret{n}"),
        tt.clone(),
        MSISDN.to_owned(),
    ];
    if !complete {
        return secrets;
    }
    let mut target = Device::new(port, &path, &format!("35693803564390{n}"), &hub.certs());
    let r = target
        .get(
            &format!(
                "temporary_token={tt}&{}&operation=ManageSubscription&operation_type=3&terminal_eid={EID}&old_terminal_id={}",
                target.tail(),
                source.imei
            ),
            XML_ACCEPT,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.app("SubscriptionResult").as_deref(), Some("2"));
    let older = r
        .doc()
        .token()
        .expect("the hub's TOKEN for the older client")
        .to_owned();
    let r = target
        .get(
            &format!(
                "temporary_token={tt}&{}&operation=ManageSubscription&operation_type=4",
                target.tail()
            ),
            XML_ACCEPT,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.app("SubscriptionResult").as_deref(), Some("3"));
    secrets.extend([
        older,
        ICCID.to_owned(),
        EID.to_owned(),
        ACTIVATION_CODE.to_owned(),
    ]);
    secrets
}

/// Panics naming the first of `secrets` that `text` (`what`) shows in clear.
fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{what} shows a secret in clear ({secret}): {text}"
        );
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn stages(t: &Value) -> Vec<&str> {
    t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_over_its_rate_gets_429_with_retry_after_while_another_device_passes() {
    let (hub, log) = stage(&["metered"], |tables| {
        let edited = tables.replace(
            "device_rate = 50.0\ndevice_burst = 50",
            "device_rate = 0.01\ndevice_burst = 1",
        );
        assert_ne!(edited, tables, "the device limit is set");
        edited
    })
    .await;
    let port = hub.devices.unwrap().port();
    let mut a = Device::new(port, "/ts43/metered", "356938035643811", &hub.certs());
    let mut b = Device::new(port, "/ts43/metered", "356938035643822", &hub.certs());
    let query = |phone: &Device| {
        format!(
            "IMSI=001010000000031&token=fastAuthSecret&{}&operation=CheckEligibility",
            phone.tail()
        )
    };
    let (qa, qb) = (query(&a), query(&b));

    let first = a.get(&qa, DEFAULT_ACCEPT).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.app("PrimaryAppEligibility").as_deref(), Some("1"));
    // One token every 100 s, burst 1: A's bucket is empty, B's is full.
    let (again, other) = tokio::join!(a.get(&qa, DEFAULT_ACCEPT), b.get(&qb, DEFAULT_ACCEPT));
    assert_eq!(
        again.status,
        429,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    let retry_after: u64 = again.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(
        (60..=100).contains(&retry_after),
        "the next token in ~100 s: {retry_after}"
    );
    assert!(again.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(&again.body[..], b"rate limit exceeded", "no document");
    assert_eq!(
        other.status,
        200,
        "{}",
        String::from_utf8_lossy(&other.body)
    );
    assert_eq!(other.app("PrimaryAppEligibility").as_deref(), Some("1"));

    let seen = log.lock().unwrap().seen.clone();
    let reached = |phone: &Device| (phone.imei.clone(), "CheckEligibility".to_owned());
    assert_eq!(
        seen,
        [reached(&a), reached(&b)],
        "the refused request never reached the ECS"
    );
    let metrics = hub.running.as_ref().unwrap().hub.metrics();
    assert_eq!(
        metrics
            .rate_limited
            .get(&(Arc::from("device"), "CheckEligibility")),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_shows_transfers_by_carrier_and_carrier_scores_with_no_secret_in_clear() {
    let (hub, log) = stage(&["alpha", "beta"], |tables| tables).await;
    let mut secrets = transfer(&hub, "alpha", "001010000000021", 1, true).await;
    secrets.extend(transfer(&hub, "beta", "001010000000022", 2, false).await);
    let issued = log.lock().unwrap().issued.clone();
    assert_eq!(
        issued.len(),
        3,
        "two sources' tokens and one bridging token"
    );
    secrets.extend(issued);
    let running = hub.running.as_ref().unwrap();
    let admin = running.admin_addr;

    let (status, body) = admin_get(admin, "/ts43/transfers?carrier=alpha")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_no_secret("/ts43/transfers", &body, &secrets);
    let list: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "alpha's only: {body}"
    );
    let t = &list[0];
    assert_eq!(
        keys(t),
        [
            "carrier",
            "created_at",
            "id",
            "stage",
            "steps",
            "updated_at"
        ]
    );
    assert_eq!(keys(&t["steps"][0]), ["at", "note", "stage"]);
    assert_eq!(
        (&t["carrier"], &t["stage"]),
        (&json!("alpha"), &json!("updated"))
    );
    assert_eq!(
        stages(t),
        [
            "eligibility",
            "token_issued",
            "transfer_requested",
            "download_info",
            "updated"
        ]
    );
    assert_eq!(t["steps"][0]["note"], "eligibility=1");
    assert_eq!(t["created_at"], t["steps"][0]["at"]);
    assert_eq!(t["updated_at"], t["steps"][4]["at"]);
    let ledger = running
        .hub
        .ts43()
        .transfers
        .transfers(Some("alpha"), 10)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_value::<Vec<Transfer>>(list.clone()).unwrap(),
        ledger,
        "the ledger's record"
    );

    let (_, body) = admin_get(admin, "/ts43/transfers?carrier=beta")
        .await
        .unwrap();
    assert_no_secret("/ts43/transfers", &body, &secrets);
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(
        (&list[0]["carrier"], &list[0]["stage"]),
        (&json!("beta"), &json!("token_issued"))
    );
    assert_eq!(
        stages(&list[0]),
        ["eligibility", "token_issued"],
        "where it stopped"
    );
    let (_, body) = admin_get(admin, "/ts43/transfers").await.unwrap();
    let all: Vec<Transfer> = serde_json::from_str(&body).unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].updated_at >= all[1].updated_at, "newest first");
    let (_, body) = admin_get(admin, "/ts43/transfers?carrier=nobody")
        .await
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!([]));

    let (status, body) = admin_get(admin, "/ts43/carriers").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_no_secret("/ts43/carriers", &body, &secrets);
    let report: Value = serde_json::from_str(&body).expect("JSON");
    let snap = running.hub.snapshot();
    let port = snap.routes.carriers[0].ecs.origin.port_u16().unwrap();
    let ecs = format!("https://127.0.0.1:{port}");
    assert_eq!(
        report,
        json!([
            {
                "carrier": "alpha",
                "base_path": "/ts43/alpha",
                "ecs": ecs,
                "swap_under_5s": {"transfers": 1, "under_5s": 1, "share": 1.0},
                "delayed_download": {"delayed": 0, "polls": 0, "completed_by_polling": 0},
                "general_error_text_on_failures": {"failures": 0, "with_text": 0, "share": null},
                "msisdn_in_acquire_temporary_token": {"tokens": 1, "with_msisdn": 1, "share": 1.0},
                "eligibility": {"enabled": 1, "disabled": 0, "incompatible": 0},
                "activation_steps": {"separate": 1, "combined": 0, "updates": 1},
                "normalisations_needed": {
                    "xml_for_odsa": 2,
                    "temporary_token_bridged": 1,
                    "token_for_older_clients": 1
                },
                "violations": {}
            },
            {
                "carrier": "beta",
                "base_path": "/ts43/beta",
                "ecs": ecs,
                "swap_under_5s": {"transfers": 0, "under_5s": 0, "share": null},
                "delayed_download": {"delayed": 0, "polls": 0, "completed_by_polling": 0},
                "general_error_text_on_failures": {"failures": 0, "with_text": 0, "share": null},
                "msisdn_in_acquire_temporary_token": {"tokens": 1, "with_msisdn": 1, "share": 1.0},
                "eligibility": {"enabled": 1, "disabled": 0, "incompatible": 0},
                "activation_steps": {"separate": 0, "combined": 0, "updates": 0},
                "normalisations_needed": {"xml_for_odsa": 2},
                "violations": {}
            }
        ])
    );
}

/// Runs `aidhub --config hub.toml ledger <args>` in the stage's directory.
fn ledger_cli(hub: &TestHub, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aidhub"))
        .args(["--config", "hub.toml", "ledger"])
        .args(args)
        .current_dir(hub.dir.path())
        .env_remove("RUST_LOG")
        .env_remove("AIDHUB_CONFIG")
        .output()
        .expect("aidhub runs")
}

/// The transfers `ledger transfers <args>` prints, one JSON object a line.
fn listed(hub: &TestHub, args: &[&str], secrets: &[String]) -> Vec<Transfer> {
    let out = ledger_cli(hub, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secret("ledger transfers", &stdout, secrets);
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_transfers_lists_a_stopped_hubs_transfers_by_carrier_without_secrets() {
    let (mut hub, log) = stage(&["alpha", "beta"], |tables| tables).await;
    let mut secrets = transfer(&hub, "alpha", "001010000000041", 1, true).await;
    secrets.extend(transfer(&hub, "beta", "001010000000042", 2, true).await);
    secrets.extend(transfer(&hub, "alpha", "001010000000043", 3, false).await);
    secrets.extend(log.lock().unwrap().issued.clone());
    let kept = hub
        .running
        .as_ref()
        .unwrap()
        .hub
        .ts43()
        .transfers
        .transfers(None, 10)
        .await
        .unwrap();
    assert_eq!(kept.len(), 3);
    hub.stop().await.unwrap();

    let all = listed(&hub, &["transfers"], &secrets);
    assert_eq!(
        all, kept,
        "every transfer, newest first, as the hub kept it"
    );
    let alpha = listed(&hub, &["transfers", "--carrier", "alpha"], &secrets);
    let expected: Vec<_> = kept
        .iter()
        .filter(|t| t.carrier == "alpha")
        .cloned()
        .collect();
    assert_eq!(alpha.len(), 2);
    assert_eq!(alpha, expected);
    let beta = listed(&hub, &["transfers", "--carrier", "beta"], &secrets);
    assert_eq!(beta.len(), 1);
    assert_eq!(beta[0].carrier, "beta");
    assert_eq!(
        beta[0].stage,
        aidhub::ledger::transfers::Stage::Updated,
        "{:?}",
        beta[0]
    );
    assert!(listed(&hub, &["transfers", "--carrier", "nobody"], &secrets).is_empty());
}
