//! Client certificates the hub refuses during the TLS handshake, before any HTTP is read:
//! one from a CA the hub does not trust, one from the trusted CA that names no partner, and
//! one that is revoked by a configured CRL. Each refused client gets a transport error, no
//! HTTP answer, and no partner sees anything; a partner with a good certificate still works.

use crate::common::{self, seen_total};
use crate::support::{bodies, TestHub};
use aidhub::client::{HubClient, Reply, Version};
use aidhub::pki;
use http::Method;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Writes a certificate and key PEM pair into `dir` as `<stem>.pem` / `<stem>.key`.
fn write_pair(dir: &Path, stem: &str, (cert, key): (String, String)) -> (PathBuf, PathBuf) {
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    std::fs::write(&cert_path, cert).expect("write the certificate");
    std::fs::write(&key_path, key).expect("write the key");
    (cert_path, key_path)
}

/// A client that trusts the hub but presents `cert`/`key`.
fn client_with(hub: &TestHub, cert: &Path, key: &Path, version: Version) -> HubClient {
    HubClient::new(
        &format!("https://localhost:{}", hub.addr.port()),
        &pki::ca_cert(&hub.certs()),
        cert,
        key,
        version,
    )
    .expect("a client")
}

/// A call from `client` as mspalpha (its own client-id and credential) towards cmpone: a
/// valid Send MSP Token.
async fn onboard_as_mspalpha(hub: &TestHub, client: &HubClient) -> Result<Reply, String> {
    let (account_id, _) = hub.account_id("cmpone", 600);
    client
        .call(
            &common::caller(hub, "mspalpha"),
            "cmpone",
            Method::POST,
            &format!("/cesim/msp/v1/users/{account_id}"),
            Some(&bodies::msp_token(&Uuid::new_v4())),
        )
        .await
}

/// Asserts that the handshake was refused: no HTTP answer at all, and nothing forwarded.
async fn assert_handshake_refused(hub: &TestHub, client: &HubClient, case: &str) {
    let before = seen_total(hub);
    match onboard_as_mspalpha(hub, client).await {
        Err(cause) => assert!(!cause.is_empty(), "{case}: a transport error"),
        Ok(reply) => panic!(
            "{case}: the hub answered HTTP {} instead of refusing the handshake",
            reply.status
        ),
    }
    assert_eq!(seen_total(hub), before, "{case}: no partner saw anything");
}

/// The stage's own mspalpha still onboards: the refusals are about the certificate alone.
async fn assert_mspalpha_works(hub: &TestHub, case: &str) {
    for version in common::VERSIONS {
        let client = common::client(hub, "mspalpha", version);
        let reply = onboard_as_mspalpha(hub, &client)
            .await
            .unwrap_or_else(|e| panic!("{case}: mspalpha over {version:?}: {e}"));
        assert_eq!(reply.status, 201, "{case}: mspalpha over {version:?}");
    }
}

#[tokio::test]
async fn a_certificate_from_a_foreign_ca_fails_the_handshake() {
    let hub = common::stage().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let (cert, key) = write_pair(
        dir.path(),
        "foreign",
        pki::foreign_leaf("mspalpha").expect("a foreign certificate"),
    );
    for version in common::VERSIONS {
        let client = client_with(&hub, &cert, &key, version);
        let case = format!("foreign CA, CN mspalpha, {version:?}");
        assert_handshake_refused(&hub, &client, &case).await;
    }
    assert_mspalpha_works(&hub, "after foreign certificates").await;
}

#[tokio::test]
async fn a_trusted_certificate_that_names_no_partner_fails_the_handshake() {
    let hub = common::stage().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let spec = pki::LeafSpec::partner_client("mspgamma");
    let (cert, key) = write_pair(
        dir.path(),
        "mspgamma",
        pki::issue(&hub.certs(), &spec).expect("a certificate from the stage CA"),
    );
    for version in common::VERSIONS {
        let client = client_with(&hub, &cert, &key, version);
        let case = format!("stage CA, CN mspgamma, {version:?}");
        assert_handshake_refused(&hub, &client, &case).await;
    }
    assert_mspalpha_works(&hub, "after an unknown identity").await;
}

/// The stage's CA is made inside `start`, so the CRL test brings a second partner CA of its
/// own (absolute paths in hub.toml): mspalpha's certificate from it is revoked, cmpone's is
/// not. Partners of the stage CA are left out: no CRL of their CA is configured, so their
/// revocation status is unknown, and the hub refuses that too (rustls' default policy).
#[tokio::test]
async fn a_revoked_certificate_fails_the_handshake_while_an_unrevoked_one_works() {
    let own = tempfile::tempdir().expect("a temp dir");
    let ca = common::own_ca(own.path(), &["mspalpha", "cmpone"]);
    let (revoked_cert, revoked_key) = pki::partner_client(own.path(), "mspalpha");
    let (good_cert, good_key) = pki::partner_client(own.path(), "cmpone");
    let revoked_pem = std::fs::read_to_string(&revoked_cert).expect("read the certificate");
    let crl = own.path().join("revoked.crl");
    pki::revoke(own.path(), &[&revoked_pem], &crl).expect("a CRL");
    let trust = format!(
        "partner_ca = [\"certs/ca.pem\", \"{}\"]\ncrls = [\"{}\"]",
        ca.display(),
        crl.display()
    );
    let hub = TestHub::builder()
        .hub(move |t| t.replace("partner_ca = [\"certs/ca.pem\"]", &trust))
        .start()
        .await
        .expect("the stage starts with a CRL");

    for version in common::VERSIONS {
        let client = client_with(&hub, &revoked_cert, &revoked_key, version);
        let case = format!("revoked mspalpha certificate, {version:?}");
        assert_handshake_refused(&hub, &client, &case).await;

        let before = seen_total(&hub);
        let client = client_with(&hub, &good_cert, &good_key, version);
        let token = Uuid::new_v4();
        let reply = client
            .call(
                &common::caller(&hub, "cmpone"),
                "mspalpha",
                Method::POST,
                &format!("/v1/statuses/{token}"),
                Some(&bodies::csim_status("installed")),
            )
            .await
            .unwrap_or_else(|e| panic!("unrevoked cmpone certificate, {version:?}: {e}"));
        // The handshake passed and the hub answered: the token is simply unknown (code 20).
        common::assert_error(&reply, 404, "20", "unrevoked cmpone certificate");
        assert_eq!(seen_total(&hub), before);
    }
}

/// The usual case: the stage CA's own CRL revokes mspbeta's client certificate (written once
/// the stage runs, then loaded with a reload); mspbeta is refused at the handshake while
/// mspalpha, from the same CA, keeps working.
#[tokio::test]
async fn a_partner_revoked_by_its_ca_fails_the_handshake_while_other_partners_still_work() {
    let hub = common::stage().await;
    let certs = hub.certs();
    let (beta_cert, beta_key) = pki::partner_client(&certs, "mspbeta");
    let beta_pem = std::fs::read_to_string(&beta_cert).expect("read the certificate");
    pki::revoke(&certs, &[&beta_pem], &certs.join("revoked.crl")).expect("a CRL");
    let toml = std::fs::read_to_string(&hub.hub_toml).expect("read hub.toml");
    let toml = toml.replace(
        "partner_ca = [\"certs/ca.pem\"]",
        "partner_ca = [\"certs/ca.pem\"]\ncrls = [\"certs/revoked.crl\"]",
    );
    std::fs::write(&hub.hub_toml, toml).expect("write hub.toml");
    let running = hub.running.as_ref().expect("the hub runs");
    let snapshot = running
        .hub
        .reload("test")
        .expect("the reload takes the CRL");
    assert_eq!(snapshot.config.tls.crls, [certs.join("revoked.crl")]);

    for version in common::VERSIONS {
        let client = client_with(&hub, &beta_cert, &beta_key, version);
        let before = seen_total(&hub);
        let (account_id, _) = hub.account_id("cmpone", 600);
        let outcome = client
            .call(
                &common::caller(&hub, "mspbeta"),
                "cmpone",
                Method::POST,
                &format!("/cesim/msp/v1/users/{account_id}"),
                Some(&bodies::msp_token(&Uuid::new_v4())),
            )
            .await;
        assert!(
            outcome.is_err(),
            "revoked mspbeta, {version:?}: the hub answered {outcome:?}"
        );
        assert_eq!(
            seen_total(&hub),
            before,
            "revoked mspbeta: nothing forwarded"
        );
    }
    assert_mspalpha_works(&hub, "mspalpha beside a revoked mspbeta").await;
}
