//! A test phone that speaks TS.43 as the AOSP library does (notes §1.2–1.3): GET with the
//! parameters in AOSP's order, the EAP-AKA challenge answered with a USIM computed here
//! (`milenage.rs`), the `Set-Cookie` of the challenge echoed on the POST to the bare URL,
//! AOSP's Accept headers. It talks to the hub's device listener over real TLS.

use super::milenage::{k_aut, mac, Usim};
use aidhub::config::EcsSpec;
use aidhub::ts43::document::Document;
use aidhub::ts43::Format;
use aidhub::upstream::{AnswerHeaders, PoolSettings, Upstream};
use base64::Engine as _;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{HeaderMap, Method, Request, StatusCode};
use std::path::Path;
use std::time::Duration;

/// AOSP's Accept for the first (EAP) request.
pub const EAP_ACCEPT: &str = "application/vnd.gsma.eap-relay.v1.0+json";
/// AOSP's default Accept.
pub const DEFAULT_ACCEPT: &str = "application/json, text/vnd.wap.connectivity-xml";
/// The XML Accept (ManageSubscription).
pub const XML_ACCEPT: &str = "text/vnd.wap.connectivity-xml";

/// An answer.
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as a document (by its content type).
    pub fn doc(&self) -> Document {
        let ct = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let format = Format::of_content_type(ct).unwrap_or_else(|| panic!("no document: {ct}"));
        Document::parse(&self.body, format)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// `APPLICATION/<name>`.
    pub fn app(&self, name: &str) -> Option<String> {
        self.doc()
            .application()
            .and_then(|a| a.parm(name))
            .map(str::to_owned)
    }
}

/// One phone.
pub struct Device {
    client: Upstream,
    path: String,
    /// Its IMEI.
    pub imei: String,
    cookies: Vec<String>,
    usim: Option<(Usim, String)>,
    /// The USIM's highest accepted SQN.
    pub sqn_ms: u64,
    /// How many sync failures it sent.
    pub resyncs: u32,
}

impl Device {
    /// A phone reaching the hub's device listener on `port` at `path`.
    pub fn new(port: u16, path: &str, imei: &str, certs: &Path) -> Device {
        let spec = EcsSpec {
            origin: format!("https://127.0.0.1:{port}/").parse().unwrap(),
            path: String::new(),
            ca: vec![aidhub::pki::ca_cert(certs)],
            client_cert: None,
            server_name: Some("localhost".into()),
        };
        Device {
            client: Upstream::carrier(&spec, PoolSettings::default()).unwrap(),
            path: path.to_owned(),
            imei: imei.to_owned(),
            cookies: Vec::new(),
            usim: None,
            sqn_ms: 0,
            resyncs: 0,
        }
    }

    /// Puts a SIM in: its IMSI and keys.
    pub fn with_usim(mut self, usim: Usim, imsi: &str) -> Device {
        self.usim = Some((usim, imsi.to_owned()));
        self
    }

    /// The parameters every request carries after the auth group (AOSP's order).
    pub fn tail(&self) -> String {
        format!(
            "terminal_id={}&app=ap2009&terminal_vendor=Goog&terminal_model=Pixel8&terminal_sw_version=14&vers=0&entitlement_version=9.0",
            self.imei
        )
    }

    async fn send(
        &mut self,
        method: Method,
        query: Option<&str>,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let target = match query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        };
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = self.client.uri(&target).unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        if !self.cookies.is_empty() {
            request
                .headers_mut()
                .insert(COOKIE, self.cookies.join("; ").parse().unwrap());
        }
        let answer = self
            .client
            .exchange(
                request,
                Duration::from_secs(20),
                1 << 20,
                AnswerHeaders::All,
            )
            .await
            .expect("the hub answers");
        // A plain jar: name=value of every Set-Cookie, whatever its attributes.
        for value in answer.headers.get_all(SET_COOKIE) {
            let pair = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            self.cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            self.cookies.push(pair);
        }
        Reply {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        }
    }

    /// A GET with `query` and `accept`.
    pub async fn get(&mut self, query: &str, accept: &str) -> Reply {
        self.send(
            Method::GET,
            Some(query),
            &[("accept", accept)],
            Bytes::new(),
        )
        .await
    }

    /// A POST of the JSON variant.
    pub async fn post_json(&mut self, body: &serde_json::Value, accept: &str) -> Reply {
        let headers = [("accept", accept), ("content-type", "application/json")];
        self.send(Method::POST, None, &headers, Bytes::from(body.to_string()))
            .await
    }

    /// Full authentication with EAP-AKA for `operation_params`; answers re-challenges and
    /// resynchronisations (at most 3 rounds, as AOSP). Returns the final answer.
    pub async fn eap_aka(&mut self, operation_params: &str, accept: &str) -> Reply {
        let (usim, imsi) = self.usim.clone().expect("a USIM");
        let identity = format!("0{imsi}@nai.epc.mnc001.mcc001.3gppnetwork.org");
        let query = format!(
            "EAP_ID={}&{}&{operation_params}",
            identity.replace('@', "%40"),
            self.tail()
        );
        let mut reply = self.get(&query, super::device::EAP_ACCEPT).await;
        for _ in 0..3 {
            let is_json = reply
                .headers
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.to_str().unwrap().contains("json"));
            let packet = match serde_json::from_slice::<serde_json::Value>(&reply.body) {
                Ok(v) if is_json && v.get("eap-relay-packet").is_some() => {
                    base64::engine::general_purpose::STANDARD
                        .decode(v["eap-relay-packet"].as_str().unwrap())
                        .unwrap()
                }
                _ => return reply,
            };
            assert_eq!(reply.status, 200, "AOSP takes the challenge only with 200");
            let response = self.answer_challenge(&usim, &identity, &packet);
            let body = serde_json::json!({
                "eap-relay-packet": base64::engine::general_purpose::STANDARD.encode(response)
            });
            let accept = format!("{EAP_ACCEPT}, {accept}");
            let headers = [("content-type", EAP_ACCEPT), ("accept", accept.as_str())];
            reply = self
                .send(Method::POST, None, &headers, Bytes::from(body.to_string()))
                .await;
        }
        reply
    }

    /// The USIM's answer: AKA-Challenge with AT_RES and AT_MAC, or a sync failure.
    fn answer_challenge(&mut self, usim: &Usim, identity: &str, packet: &[u8]) -> Vec<u8> {
        assert_eq!(&packet[..1], &[1], "an EAP request");
        assert_eq!(&packet[4..6], &[23, 1], "AKA-Challenge");
        let id = packet[1];
        let (mut rand, mut autn) = ([0u8; 16], [0u8; 16]);
        let mut at = 8;
        while at + 2 <= packet.len() {
            let len = usize::from(packet[at + 1]) * 4;
            match packet[at] {
                1 => rand.copy_from_slice(&packet[at + 4..at + 20]),
                2 => autn.copy_from_slice(&packet[at + 4..at + 20]),
                _ => {}
            }
            at += len.max(4);
        }
        let v = usim.vector(&rand);
        let sqn: [u8; 6] = std::array::from_fn(|i| autn[i] ^ v.ak[i]);
        let amf: [u8; 2] = [autn[6], autn[7]];
        let (mac_a, _) = usim.f1(&rand, &sqn, &amf);
        assert_eq!(&autn[8..], &mac_a, "the network authenticates (MAC-A)");
        let sqn_value = u64::from_be_bytes([0, 0, sqn[0], sqn[1], sqn[2], sqn[3], sqn[4], sqn[5]]);
        let mut out = vec![2, id, 0, 0, 23];
        if sqn_value <= self.sqn_ms {
            self.resyncs += 1;
            let ms: [u8; 6] = self.sqn_ms.to_be_bytes()[2..].try_into().unwrap();
            let ak_star = usim.f5_star(&rand);
            let (_, mac_s) = usim.f1(&rand, &ms, &[0, 0]);
            out.extend([4, 0, 0, 4, 4]);
            out.extend((0..6).map(|i| ms[i] ^ ak_star[i]));
            out.extend(mac_s);
            let len = out.len() as u16;
            out[2..4].copy_from_slice(&len.to_be_bytes());
            return out;
        }
        self.sqn_ms = sqn_value;
        out.extend([1, 0, 0]);
        out.extend([3, 3, 0, 64]);
        out.extend(v.res);
        let mac_at = out.len() + 4;
        out.extend([11, 5, 0, 0]);
        out.extend([0u8; 16]);
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        let key = k_aut(identity, &v.ik, &v.ck);
        let m = mac(&key, &out);
        out[mac_at..mac_at + 16].copy_from_slice(&m);
        out
    }
}

/// The Luhn check digit of `digits`.
pub fn luhn(digits: &str) -> char {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}
