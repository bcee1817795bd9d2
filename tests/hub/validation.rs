//! Request validation, class by class, and the account id of Send MSP Token: each refusal
//! carries its spec status and code, and nothing reaches a partner.

use crate::common::{self, assert_error, header, seen_total, Ids};
use crate::support::{account_secret, bodies, TestHub};
use aidhub::account_id::{self, AccountClaims};
use aidhub::client::Version;
use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::json;
use uuid::Uuid;

/// One malformed request and how the hub must answer it.
struct Case {
    case: &'static str,
    from: &'static str,
    to: &'static str,
    method: Method,
    path: String,
    body: Option<Bytes>,
    headers: HeaderMap,
    status: u16,
    code: &'static str,
    allow: Option<&'static str>,
}

impl Case {
    /// A call from `from` to `to` with fresh ids and a JSON body.
    fn new(
        case: &'static str,
        (from, to): (&'static str, &'static str),
        method: Method,
        path: String,
        body: Option<serde_json::Value>,
        (status, code): (u16, &'static str),
    ) -> Case {
        Case {
            case,
            from,
            to,
            method,
            path,
            body: body.map(|b| Bytes::from(b.to_string())),
            headers: Ids::new().headers(),
            status,
            code,
            allow: None,
        }
    }

    async fn check(&self, hub: &TestHub) {
        for version in common::VERSIONS {
            let case = format!("{} ({version:?})", self.case);
            let before = seen_total(hub);
            let reply = common::send(
                hub,
                version,
                self.from,
                &common::caller(hub, self.from),
                self.to,
                self.method.clone(),
                &self.path,
                self.body.clone(),
                self.headers.clone(),
            )
            .await;
            assert_error(&reply, self.status, self.code, &case);
            if let Some(allow) = self.allow {
                assert_eq!(
                    reply.headers.get(http::header::ALLOW).map(|v| v.as_bytes()),
                    Some(allow.as_bytes()),
                    "{case}: Allow"
                );
            }
            assert_eq!(seen_total(hub), before, "{case}: no partner saw anything");
        }
    }
}

const MSP_TO_CMP: (&str, &str) = ("mspalpha", "cmpone");
const CMP_TO_MSP: (&str, &str) = ("cmpone", "mspalpha");

#[tokio::test]
async fn each_validation_class_is_refused_with_its_status_and_code() {
    let hub = common::stage().await;
    let token = Uuid::new_v4();
    let statuses = format!("/v1/statuses/{token}");
    let csim = || Some(bodies::csim_status("installed"));
    let mut cases = vec![
        Case::new(
            "unknown path",
            CMP_TO_MSP,
            Method::POST,
            format!("/v1/no-such-function/{token}"),
            csim(),
            (404, "209"),
        ),
        Case::new(
            "trailing slash",
            CMP_TO_MSP,
            Method::POST,
            format!("{statuses}/"),
            csim(),
            (404, "209"),
        ),
        Case {
            allow: Some("POST"),
            ..Case::new(
                "GET on Send CSIM Status",
                CMP_TO_MSP,
                Method::GET,
                statuses.clone(),
                None,
                (405, "210"),
            )
        },
        Case {
            allow: Some("PATCH"),
            ..Case::new(
                "POST on Update Subscription Info",
                MSP_TO_CMP,
                Method::POST,
                format!("/cesim/msp/v1/subscriptions/{token}"),
                Some(json!({"subscriptionType": "business"})),
                (405, "210"),
            )
        },
        Case::new(
            "msp_token that is not a UUID",
            CMP_TO_MSP,
            Method::POST,
            "/v1/statuses/not-a-uuid".to_owned(),
            csim(),
            (422, "29"),
        ),
        Case {
            headers: only("correlation-id", &Uuid::new_v4().to_string()),
            ..Case::new(
                "missing CMP-request-id",
                CMP_TO_MSP,
                Method::POST,
                statuses.clone(),
                csim(),
                (400, "91"),
            )
        },
        Case {
            headers: {
                let mut map = only("cmp-request-id", &Uuid::new_v4().to_string());
                map.insert("correlation-id", header("not-a-uuid-1234"));
                map
            },
            ..Case::new(
                "malformed correlation-id",
                CMP_TO_MSP,
                Method::POST,
                statuses.clone(),
                csim(),
                (400, "92"),
            )
        },
        Case {
            headers: {
                let mut map = Ids::new().headers();
                map.insert(http::header::CONTENT_TYPE, header("text/plain"));
                map
            },
            ..Case::new(
                "text/plain body",
                CMP_TO_MSP,
                Method::POST,
                statuses.clone(),
                csim(),
                (415, "208"),
            )
        },
        Case {
            body: Some(Bytes::new()),
            ..Case::new(
                "empty body",
                CMP_TO_MSP,
                Method::POST,
                statuses.clone(),
                None,
                (422, "60"),
            )
        },
        Case {
            body: Some(Bytes::from_static(br#"{"iccid": "8944500805172032953", "#)),
            ..Case::new(
                "invalid JSON",
                CMP_TO_MSP,
                Method::POST,
                statuses.clone(),
                None,
                (422, "91"),
            )
        },
        Case::new(
            "status outside its enum",
            CMP_TO_MSP,
            Method::POST,
            statuses.clone(),
            Some(bodies::csim_status("exploded")),
            (422, "91"),
        ),
        Case::new(
            "subscriptionType outside its enum",
            MSP_TO_CMP,
            Method::PATCH,
            format!("/cesim/msp/v1/subscriptions/{token}"),
            Some(json!({"subscriptionType": "gold"})),
            (422, "91"),
        ),
        Case::new(
            "activation code without its token field",
            MSP_TO_CMP,
            Method::POST,
            format!("/cesim/msp/v1/activation-codes/{token}"),
            Some({
                let mut body = bodies::send_ac(&Uuid::new_v4());
                body["activationCode"] = json!("1$SMDP.EXAMPLE.COM");
                body
            }),
            (422, "47"),
        ),
        Case::new(
            "profile type other than personal",
            CMP_TO_MSP,
            Method::POST,
            format!("/v1/activation-code-requests/{token}"),
            Some({
                let mut body = bodies::ac_request(&Uuid::new_v4(), "tcu");
                body["profileType"] = json!("business");
                body
            }),
            (422, "50"),
        ),
    ];
    for case in cases.drain(..) {
        case.check(&hub).await;
    }
}

/// A header map holding one header.
fn only(name: &'static str, value: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(name, header(value));
    map
}

/// A stage whose bodies are capped at 1 KiB, and the path of Send Profile Information for a
/// federation of mspalpha and cmpone on it.
async fn capped_stage() -> (TestHub, String) {
    let hub = TestHub::builder()
        .hub(|t| format!("{t}\n[limits]\nmax_body_bytes = 1024\n"))
        .start()
        .await
        .expect("the stage starts");
    let token = common::onboard(&hub, "mspalpha", "cmpone").await;
    (hub, format!("/cesim/msp/v1/users/{token}/profiles"))
}

/// A Send Profile Information body whose size `reason` sets.
fn profiles(reason: String) -> serde_json::Value {
    json!({"profiles": [{"iccid": aidhub::sim::SIM_ICCID, "status": "suspended", "reason": reason}]})
}

#[tokio::test]
async fn a_body_over_the_configured_cap_is_refused_413_207() {
    let (hub, path) = capped_stage().await;
    let case = Case::new(
        "Send Profile Information of 2 KB",
        MSP_TO_CMP,
        Method::POST,
        path,
        Some(profiles("x".repeat(2000))),
        (413, "207"),
    );
    assert!(case.body.as_ref().is_some_and(|b| b.len() > 1024));
    case.check(&hub).await;
}

/// Send MSP Token from mspalpha to cmpone with `account_id` in the path.
async fn send_msp_token(
    hub: &TestHub,
    version: Version,
    account_id: &str,
) -> aidhub::client::Reply {
    common::call(
        hub,
        version,
        "mspalpha",
        "cmpone",
        Method::POST,
        &format!("/cesim/msp/v1/users/{account_id}"),
        Some(&bodies::msp_token(&Uuid::new_v4())),
    )
    .await
}

fn claims(expires_in: i64) -> AccountClaims {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    AccountClaims {
        sid: Uuid::new_v4(),
        exp: (now + expires_in) as u64,
        iat: Some((now - 60) as u64),
        has_ver: false,
    }
}

#[tokio::test]
async fn account_ids_that_fail_verification_are_refused_with_their_codes() {
    let hub = common::stage().await;
    let (expired, _) = hub.account_id("cmpone", -5);
    let wrong_secret = account_id::sign(
        &claims(600),
        None,
        false,
        account_secret("cmptwo").as_bytes(),
    );
    let cases = [
        ("expired", expired, "11"),
        ("signed with another CMP's secret", wrong_secret, "12"),
        (
            "garbage in the path's alphabet",
            "abc.def.ghi".to_owned(),
            "19",
        ),
    ];
    for (case, account_id, code) in cases {
        for version in common::VERSIONS {
            let before = seen_total(&hub);
            let reply = send_msp_token(&hub, version, &account_id).await;
            assert_error(&reply, 422, code, &format!("{case} ({version:?})"));
            assert_eq!(seen_total(&hub), before, "{case}: nothing forwarded");
        }
    }
}

#[tokio::test]
async fn account_ids_with_exp_as_a_number_or_a_numeric_string_are_both_accepted() {
    let hub = common::stage().await;
    let secret = account_secret("cmpone");
    for exp_as_string in [false, true] {
        let account_id =
            account_id::sign(&claims(600), Some("6789"), exp_as_string, secret.as_bytes());
        assert_eq!(
            exp_claim(&account_id).is_string(),
            exp_as_string,
            "the account id carries exp as a {}",
            if exp_as_string { "string" } else { "number" }
        );
        let reply = send_msp_token(&hub, Version::Http1, &account_id).await;
        assert_eq!(
            reply.status, 201,
            "exp as string: {exp_as_string}: {:?}",
            reply.body
        );
    }
}

/// The `exp` claim of an account id, as written in its payload.
fn exp_claim(account_id: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = account_id.split('.').nth(1).expect("a payload segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("Base64url");
    let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON claims");
    claims["exp"].clone()
}

/// Sends one HTTP/1.1 request as partner `from` to `to` over a connection of its own: the
/// head with `framing` (a `Transfer-Encoding` or `Content-Length` line), then `writes`, each
/// in a write of its own so that the hub reads them as separate frames. Returns the answer's
/// status and body; an answer that does not come within 10 s fails the test.
async fn send_raw(
    hub: &TestHub,
    (from, to): (&str, &str),
    path: &str,
    framing: &str,
    writes: &[Vec<u8>],
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = hub.certs();
    let (cert, key) = aidhub::pki::partner_client(&certs, from);
    let config = aidhub::tls::client_config(&[aidhub::pki::ca_cert(&certs)], &cert, &key)
        .expect("a client configuration");
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("a TLS session");
    let caller = common::caller(hub, from);
    let ids = Ids::new();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nclient-id: {}\r\ntarget-id: {to}\r\n\
         content-type: application/json\r\n{framing}\r\n\
         cmp-request-id: {}\r\ncorrelation-id: {}\r\nconnection: close\r\n",
        caller.client_id, ids.request, ids.correlation
    );
    if let Some(key) = &caller.api_key {
        head.push_str(&format!("api-key: {key}\r\n"));
    }
    assert!(caller.basic.is_none(), "the stage's partners use api keys");
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).await.unwrap();
    for piece in writes {
        // A refusal may come, and the connection close, before the rest is read.
        if tls.write_all(piece).await.is_err() || tls.flush().await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let answer = String::from_utf8(answer).expect("a text answer");
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let (_, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head end in {answer:?}"));
    let body = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// `body` in a chunked request of `pieces` chunks, then the last chunk (see [`send_raw`]).
async fn send_chunked(
    hub: &TestHub,
    from_to: (&str, &str),
    path: &str,
    body: &[u8],
    pieces: usize,
) -> (u16, serde_json::Value) {
    let mut writes: Vec<Vec<u8>> = body
        .chunks(body.len().div_ceil(pieces))
        .map(|chunk| {
            let mut piece = format!("{:x}\r\n", chunk.len()).into_bytes();
            piece.extend_from_slice(chunk);
            piece.extend_from_slice(b"\r\n");
            piece
        })
        .collect();
    writes.push(b"0\r\n\r\n".to_vec());
    send_raw(hub, from_to, path, "transfer-encoding: chunked", &writes).await
}

/// Asserts that a raw answer ([`send_raw`]) is `status` with the spec's error body of `code`,
/// and that no partner saw a call since `before` ([`seen_total`] then).
#[track_caller]
fn assert_refused_raw(
    hub: &TestHub,
    before: usize,
    (status, error): &(u16, serde_json::Value),
    (expected, code): (u16, &str),
    case: &str,
) {
    assert_eq!(*status, expected, "{case}: {error}");
    assert_eq!(error["code"], code, "the spec's body: {error}");
    assert_eq!(seen_total(hub), before, "nothing reached a partner");
}

#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused_before_the_body_is_sent_413_207() {
    let (hub, path) = capped_stage().await;
    let before = seen_total(&hub);
    // Only the head: the hub must answer from `Content-Length` alone, not wait for 2 000
    // bytes that never come.
    let answer = send_raw(&hub, MSP_TO_CMP, &path, "content-length: 2000", &[]).await;
    let case = "refused by its declared length";
    assert_refused_raw(&hub, before, &answer, (413, "207"), case);
}

#[tokio::test]
async fn a_chunked_body_is_joined_whole_and_refused_once_over_the_cap_413_207() {
    let (hub, path) = capped_stage().await;

    // Under the cap, in four chunks: the partner gets the body whole, byte for byte.
    let body = profiles("y".repeat(700)).to_string();
    assert!(body.len() < 1024);
    let (status, _) = send_chunked(&hub, MSP_TO_CMP, &path, body.as_bytes(), 4).await;
    assert_eq!(
        status, 200,
        "a chunked Send Profile Information under the cap passes"
    );
    let seen = hub.partner("cmpone").seen();
    let last = seen.last().expect("the partner saw the call");
    assert_eq!(last.path, path);
    assert_eq!(last.body, body.as_bytes(), "the chunks joined in order");

    // Over the cap, in chunks each under it (a body that would pass but for its size):
    // refused once the total passes it.
    let before = seen_total(&hub);
    let body = profiles("z".repeat(1000)).to_string();
    assert!(body.len() > 1024);
    let answer = send_chunked(&hub, MSP_TO_CMP, &path, body.as_bytes(), 8).await;
    assert_refused_raw(&hub, before, &answer, (413, "207"), "over the cap");
}

#[tokio::test]
async fn a_body_whose_chunking_breaks_is_refused_as_unreadable_422_91() {
    let (hub, path) = capped_stage().await;
    let before = seen_total(&hub);
    // A first chunk that is fine, then a size line that is not hexadecimal.
    let writes = [b"2\r\n{}\r\n".to_vec(), b"zz\r\nxx\r\n0\r\n\r\n".to_vec()];
    let framing = "transfer-encoding: chunked";
    let answer = send_raw(&hub, MSP_TO_CMP, &path, framing, &writes).await;
    assert_refused_raw(&hub, before, &answer, (422, "91"), "an unreadable body");
    let error = &answer.1;
    let description = error["error"].as_str().unwrap_or_default();
    assert!(
        description.contains("could not be read"),
        "the description says why: {error}"
    );
}
