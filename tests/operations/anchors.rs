//! TLS material reloaded without a restart: a new trust anchor in hub.toml admits a partner
//! of another CA, and a renewed server certificate is what new connections are shown.

use crate::common::{self, onboarding, rewrite_routes};
use aidhub::client::{Caller, HubClient, Version};
use http::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_takes_in_a_new_trust_anchor_and_a_renewed_server_certificate() {
    let (hub, admin) = common::stage_reloaded_on_request().await;
    // A second CA, with a partner of its own and a hub server certificate it signed.
    let second = hub.dir.path().join("certs2");
    let hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    aidhub::pki::ensure(
        &aidhub::pki::PkiRequest {
            dir: &second,
            hub_hosts: &hosts,
            partners: &[aidhub::pki::PartnerCerts {
                id: "mspdelta",
                hosts: &hosts,
            }],
            days: 30,
        },
        &mut |_| {},
    )
    .expect("a second PKI");
    let base = format!("https://localhost:{}", hub.addr.port());
    let (delta_cert, delta_key) = aidhub::pki::partner_client(&second, "mspdelta");
    let stage_ca = aidhub::pki::ca_cert(&hub.certs());
    let delta = HubClient::new(&base, &stage_ca, &delta_cert, &delta_key, Version::Http1)
        .expect("mspdelta's client");
    let delta_caller = Caller {
        client_id: "mspdelta".into(),
        api_key: Some("mspdeltaKey1".into()),
        basic: None,
    };
    let block = "[[partner]]\nid = \"mspdelta\"\nrole = \"msp\"\nidentities = [\"cn:mspdelta\"]\n\
         credential = { api_key = \"mspdeltaKey1\" }\n[partner.upstream]\n\
         url = \"https://127.0.0.1:9\"\nca = [\"certs/ca.pem\"]\n\
         credential = { api_key = \"hubAtmspdelta\" }\nserver_name = \"localhost\"\n";
    rewrite_routes(&hub, |routes| format!("{routes}{block}"));
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (path, body, _) = onboarding("cmpone");
    let refused = delta
        .call(&delta_caller, "cmpone", Method::POST, &path, Some(&body))
        .await;
    assert!(
        refused.is_err(),
        "a partner whose CA is not a trust anchor yet fails the handshake: {refused:?}"
    );

    // The second CA becomes a trust anchor.
    let text = std::fs::read_to_string(&hub.hub_toml).expect("hub.toml");
    let both = text.replace(
        "partner_ca = [\"certs/ca.pem\"]",
        "partner_ca = [\"certs/ca.pem\", \"certs2/ca.pem\"]",
    );
    assert_ne!(text, both);
    std::fs::write(&hub.hub_toml, both).expect("write hub.toml");
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = delta
        .call(&delta_caller, "cmpone", Method::POST, &path, Some(&body))
        .await
        .expect("mspdelta is answered once its CA is trusted");
    assert_eq!(reply.status, 201, "{:?}", reply.body);

    // A renewed server certificate (from the second CA) is presented to new connections.
    let (renewed_cert, renewed_key) = aidhub::pki::hub_server(&second);
    let (cert, key) = aidhub::pki::hub_server(&hub.certs());
    std::fs::copy(renewed_cert, cert).expect("replace the server certificate");
    std::fs::copy(renewed_key, key).expect("replace the server key");
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (alpha_cert, alpha_key) = aidhub::pki::partner_client(&hub.certs(), "mspalpha");
    let second_ca = aidhub::pki::ca_cert(&second);
    let trusting_new = HubClient::new(&base, &second_ca, &alpha_cert, &alpha_key, Version::Http1)
        .expect("a client trusting the second CA");
    let alpha = hub.caller("mspalpha").expect("mspalpha");
    let (path, body, _) = onboarding("cmpone");
    let reply = trusting_new
        .call(&alpha, "cmpone", Method::POST, &path, Some(&body))
        .await
        .expect("the renewed certificate is accepted by a client trusting its CA");
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let trusting_old = hub
        .client("mspalpha", Version::Http1)
        .expect("mspalpha's client");
    let refused = trusting_old
        .call(&alpha, "cmpone", Method::POST, &path, Some(&body))
        .await;
    assert!(
        refused.is_err(),
        "a client trusting only the first CA no longer accepts the hub: {refused:?}"
    );
    assert_eq!(admin.config().await["version"], 4);
}
