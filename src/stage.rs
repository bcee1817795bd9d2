//! A stage: a real hub (in-process, real sockets, real TLS) in front of simulated partners,
//! with a freshly generated PKI and configuration in a temporary directory. The demo and the
//! integration tests stand on it.
//!
//! ```ignore
//! let hub = TestHub::start().await;
//! let reply = hub.call("mspalpha", "cmpone", Method::POST, "/cesim/...", Some(&body)).await;
//! ```

pub mod cluster;
pub mod outside;
pub mod ports;

pub use ports::free_port;

use crate::account_id::{self, AccountClaims};
use crate::client::{Caller, HubClient, Reply, Version};
use crate::pki;
use crate::run::{self, Options, Running};
use crate::sim::{AsyncDelivery, Side, SimPartner};
use http::Method;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The stage's partners and the side each plays.
pub const PARTNERS: &[(&str, Side)] = &[
    ("mspalpha", Side::Msp),
    ("mspbeta", Side::Msp),
    ("cmpone", Side::Cmp),
    ("cmptwo", Side::Cmp),
];

/// What a builder calls to add TS.43 carriers (see [`Builder::carriers`]).
pub type CarrierSetup = Box<dyn FnOnce(&Path) -> Result<String, String>>;

/// Builder for a stage.
pub struct Builder {
    carriers: CarrierSetup,
    edit_routes: Box<dyn Fn(&str) -> String>,
    edit_hub: Box<dyn Fn(&str) -> String>,
    async_delay: Duration,
}

/// A running hub with its simulated partners.
pub struct TestHub {
    /// The temporary directory holding config, certificates and ledger.
    pub dir: tempfile::TempDir,
    /// The hub, until [`TestHub::stop`].
    pub running: Option<Running>,
    /// The hub's partner listener.
    pub addr: std::net::SocketAddr,
    /// The hub's browser listener (touchpoint redirects).
    pub browsers: std::net::SocketAddr,
    /// The hub's device (TS.43) listener.
    pub devices: Option<std::net::SocketAddr>,
    /// The simulated partners by id.
    pub partners: BTreeMap<String, SimPartner>,
    /// The hub configuration file.
    pub hub_toml: PathBuf,
}

/// The PKI directory of a stage directory.
pub fn certs(dir: &Path) -> PathBuf {
    dir.join("certs")
}

/// The stage PKI's entity whose server certificate TS.43 test ECSs present.
pub const ECS_ENTITY: &str = "ecs";

impl Builder {
    /// Adds TS.43 carriers: `carriers` gets the PKI directory (an ECS presents
    /// `pki::partner_server(dir, ECS_ENTITY)`), may start ECSs, and returns `[[carrier]]`
    /// tables appended to routes.toml.
    pub fn carriers(
        mut self,
        carriers: impl FnOnce(&Path) -> Result<String, String> + 'static,
    ) -> Builder {
        self.carriers = Box::new(carriers);
        self
    }

    /// Edits the generated routes.toml before the hub starts.
    pub fn routes(mut self, edit: impl Fn(&str) -> String + 'static) -> Builder {
        self.edit_routes = Box::new(edit);
        self
    }

    /// Edits the generated hub.toml before the hub starts.
    pub fn hub(mut self, edit: impl Fn(&str) -> String + 'static) -> Builder {
        self.edit_hub = Box::new(edit);
        self
    }

    /// How long simulated MSPs wait before delivering async codes.
    pub fn async_delay(mut self, delay: Duration) -> Builder {
        self.async_delay = delay;
        self
    }

    /// Generates the PKI, starts the partners and the hub.
    pub async fn start(self) -> Result<TestHub, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let certs = certs(dir.path());
        ensure_pki(&certs)?;
        let mut partners = BTreeMap::new();
        for (id, side) in PARTNERS {
            let (cert, key) = pki::partner_server(&certs, id);
            let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let sim =
                SimPartner::start(*side, any_port, &cert, &key, &pki::ca_cert(&certs)).await?;
            partners.insert(id.to_string(), sim);
        }
        let carriers = (self.carriers)(&certs)?;
        let routes = (self.edit_routes)(&format!("{}{carriers}", routes_toml(&partners)));
        std::fs::write(dir.path().join("routes.toml"), routes).map_err(|e| e.to_string())?;
        let hub_toml = dir.path().join("hub.toml");
        std::fs::write(&hub_toml, (self.edit_hub)(HUB_TOML)).map_err(|e| e.to_string())?;
        let running = run::start(Options {
            hub_toml: hub_toml.clone(),
            base: dir.path().to_path_buf(),
            partners_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            admin_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            browsers_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            devices_addr: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            grace: Duration::from_secs(5),
        })
        .await?;
        let addr = running.partners_addr;
        let browsers = running
            .browsers_addr
            .ok_or("the browser listener did not start")?;
        let devices = running.devices_addr;
        let hub = TestHub {
            dir,
            devices,
            running: Some(running),
            addr,
            browsers,
            partners,
            hub_toml,
        };
        for (id, side) in PARTNERS {
            if *side == Side::Msp {
                hub.partners[*id].deliver_async_with(AsyncDelivery {
                    hub: hub.client(id, Version::Http1)?,
                    caller: hub.caller(id)?,
                    after: self.async_delay,
                });
            }
        }
        Ok(hub)
    }
}

/// Creates the stage's PKI in `certs`: the CA, the hub's certificates and both certificates
/// of every stage partner, all valid for `localhost` and `127.0.0.1`.
pub fn ensure_pki(certs: &Path) -> Result<(), String> {
    let hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let specs: Vec<pki::PartnerCerts<'_>> = PARTNERS
        .iter()
        .map(|(id, _)| *id)
        .chain([ECS_ENTITY])
        .map(|id| pki::PartnerCerts { id, hosts: &hosts })
        .collect();
    pki::ensure(
        &pki::PkiRequest {
            dir: certs,
            hub_hosts: &hosts,
            partners: &specs,
            days: 30,
        },
        &mut |_| {},
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// The stage's hub.toml (before edits).
pub const HUB_TOML: &str = r#"
routes = "routes.toml"
[tls]
server_cert = "certs/hub-server.pem"
server_key = "certs/hub-server.key"
client_cert = "certs/hub-client.pem"
client_key = "certs/hub-client.key"
partner_ca = ["certs/ca.pem"]
[ledger]
path = "ledger"
early_answer_wait_ms = 3000
[timeouts]
connect_ms = 500
default_ms = 2000
[log]
level = "warn"
"#;

/// Each stage partner's hub credential, as routes.toml writes it.
pub fn credential(id: &str) -> &'static str {
    match id {
        "mspalpha" => r#"{ api_key = "alphaKey1" }"#,
        "mspbeta" => r#"{ api_key = "betaKey1" }"#,
        "cmpone" => r#"{ api_key = "oneKey1" }"#,
        "cmptwo" => r#"{ username = "cmptwo", password = "twoPass" }"#,
        _ => r#"{ api_key = "unknown" }"#,
    }
}

/// The account-id secret of a stage CMP.
pub fn account_secret(cmp: &str) -> String {
    format!("{cmp}-secret")
}

/// Each stage partner's `[partner.touchpoint]` table, as routes.toml writes it.
pub fn touchpoint_toml(id: &str) -> &'static str {
    match id {
        "mspalpha" => {
            "[partner.touchpoint]\nname = \"Alpha Mobile\"\n\
             login_url = \"https://login.msp.example/portal/login\"\n\
             preproduction_login_url = \"https://preprod.msp.example/portal/login?stage=1\"\n\
             redirect_domains = [\"*.msp.example\"]\n"
        }
        "mspbeta" => {
            "[partner.touchpoint]\nname = \"Beta Telecom\"\n\
             login_url = \"https://beta-msp.example/esim/login\"\n\
             redirect_domains = [\"beta-msp.example\"]\n"
        }
        "cmpone" => {
            "[partner.touchpoint]\nname = \"One Motors\"\n\
             login_url = \"https://portal.cmp.example/esim\"\n\
             redirect_domains = [\"*.cmp.example\"]\n"
        }
        "cmptwo" => {
            "[partner.touchpoint]\nname = \"Two Cars\"\n\
             login_url = \"https://www.cmptwo.example/login\"\n\
             redirect_domains = [\"www.cmptwo.example\", \"app.cmptwo.example:8443\"]\n"
        }
        _ => "",
    }
}

pub(crate) fn routes_toml(partners: &BTreeMap<String, SimPartner>) -> String {
    let ports = partners
        .iter()
        .map(|(id, sim)| (id.clone(), sim.addr.port()))
        .collect();
    routes_toml_for_ports(&ports)
}

/// The stage's routes.toml for stage partners whose upstreams listen on these loopback
/// ports (by partner id).
pub fn routes_toml_for_ports(ports: &BTreeMap<String, u16>) -> String {
    let mut out = String::new();
    for (id, side) in PARTNERS {
        let role = if *side == Side::Msp { "msp" } else { "cmp" };
        let identity = match *id {
            "mspalpha" => "cn:mspalpha".to_owned(),
            "mspbeta" => format!("uri:{}", pki::partner_uri(id)),
            "cmpone" => format!("dns:{}", pki::partner_dns(id)),
            _ => "cn:cmptwo".to_owned(),
        };
        let extra = match *id {
            "cmpone" => format!("account_id_secret = \"{}\"\n", account_secret(id)),
            "cmptwo" => format!(
                "account_id_secret = \"{}\"\ncounterparts = [\"mspalpha\"]\n",
                account_secret(id)
            ),
            _ => String::new(),
        };
        let prefix = if *id == "cmptwo" { "/cmp-api" } else { "" };
        out.push_str(&format!(
            "[[partner]]\nid = \"{id}\"\nrole = \"{role}\"\nidentities = [\"{identity}\"]\ncredential = {cred}\n{extra}\
             [partner.upstream]\nurl = \"https://127.0.0.1:{port}{prefix}\"\nca = [\"certs/ca.pem\"]\n\
             credential = {{ api_key = \"hubAt{id}\" }}\nserver_name = \"localhost\"\n{touchpoint}\n",
            cred = credential(id),
            port = ports.get(*id).copied().unwrap_or_default(),
            touchpoint = touchpoint_toml(id),
        ));
    }
    out
}

impl TestHub {
    /// A builder with the default topology.
    pub fn builder() -> Builder {
        Builder {
            carriers: Box::new(|_| Ok(String::new())),
            edit_routes: Box::new(|s| s.to_owned()),
            edit_hub: Box::new(|s| s.to_owned()),
            async_delay: Duration::from_millis(50),
        }
    }

    /// Starts the default stage.
    pub async fn start() -> Result<TestHub, String> {
        TestHub::builder().start().await
    }

    /// The stage's PKI directory.
    pub fn certs(&self) -> PathBuf {
        certs(self.dir.path())
    }

    /// A client presenting partner `id`'s certificate.
    pub fn client(&self, id: &str, version: Version) -> Result<HubClient, String> {
        let certs = self.certs();
        let (cert, key) = pki::partner_client(&certs, id);
        HubClient::new(
            &format!("https://localhost:{}", self.addr.port()),
            &pki::ca_cert(&certs),
            &cert,
            &key,
            version,
        )
    }

    /// Partner `id`'s identity and credential at the hub.
    pub fn caller(&self, id: &str) -> Result<Caller, String> {
        let running = self.running.as_ref().ok_or("the hub is stopped")?;
        let snap = running.hub.snapshot();
        let partner = snap.partner(id).ok_or_else(|| format!("no partner {id}"))?;
        Ok(Caller::for_partner(partner))
    }

    /// Calls the hub as `from` (its own certificate and credential) towards `to`.
    pub async fn call(
        &self,
        from: &str,
        to: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Reply {
        let outcome = match (self.client(from, Version::Http1), self.caller(from)) {
            (Ok(client), Ok(caller)) => client.call(&caller, to, method, path, body).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        outcome.unwrap_or_else(|e| Reply::transport_error(&e))
    }

    /// A simulated partner.
    pub fn partner(&self, id: &str) -> &SimPartner {
        &self.partners[id]
    }

    /// An account id signed by `cmp`, expiring in `expires_in` seconds, and its session id.
    pub fn account_id(&self, cmp: &str, expires_in: i64) -> (String, uuid::Uuid) {
        account_id_for(cmp, expires_in)
    }

    /// Drains the hub and flushes its ledger.
    pub async fn stop(&mut self) -> Result<(), String> {
        match self.running.take() {
            Some(running) => running.shutdown().await,
            None => Ok(()),
        }
    }
}

/// An account id signed with stage CMP `cmp`'s secret, expiring in `expires_in` seconds,
/// and its session id.
pub fn account_id_for(cmp: &str, expires_in: i64) -> (String, uuid::Uuid) {
    let sid = uuid::Uuid::new_v4();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let claims = AccountClaims {
        sid,
        exp: (now + expires_in) as u64,
        iat: Some(now as u64),
        has_ver: false,
    };
    (
        account_id::sign(&claims, Some("6789"), true, account_secret(cmp).as_bytes()),
        sid,
    )
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// Bodies the spec's examples use.
/// Valid request bodies from the spec's examples.
pub mod bodies {
    use serde_json::{json, Value};

    /// Send MSP Token.
    pub fn msp_token(token: &uuid::Uuid) -> Value {
        json!({
            "msp_token": token.to_string(),
            "phoneNumber": "b3YsYkQqi5xw1xRLsDxcfaRC1PANhnhGEICHXNvj",
            "subscriptionType": "private",
            "customerGroup": "Market_Germany",
            "iv": "N1RnMnHhudFLgi1l"
        })
    }

    /// Request Activation Code (`device` "async" makes the simulated MSP answer 201).
    pub fn ac_request(id: &uuid::Uuid, device: &str) -> Value {
        json!({
            "profileType": "personal",
            "deviceType": device,
            "imei": "",
            "eid": "89882119900000000000000000001654",
            "activationCodeRequestID": id.to_string()
        })
    }

    /// Send CSIM Status.
    pub fn csim_status(status: &str) -> Value {
        json!({"iccid": "8944500805172032953", "eid": "89882119900000000000000000001654", "status": status})
    }

    /// Send Activation Code.
    pub fn send_ac(id: &uuid::Uuid) -> Value {
        json!({
            "iccid": "8944500805172032953",
            "activationCode": "1$SMDP.AIDHUB.TEST$04386-AGYFT-A74Y8-3F815",
            "profileType": "personal",
            "activationCodeRequestID": id.to_string(),
            "swappedIccid": null
        })
    }
}
