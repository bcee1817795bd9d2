//! Every refusal: a small page with the right status, no `Location`, plain words, the way
//! back to the `from` partner's registered page when it is known, and user input escaped.

use crate::common::*;
use http::Method;

/// `GET /touchpoints/mspalpha/onboarding` from cmpone with a fresh account id and `back`.
async fn to_alpha(hub: &crate::support::TestHub, back: &str) -> aidhub::client::Reply {
    let id = account_id(hub, "cmpone", 600);
    get(
        hub,
        &format!(
            "/touchpoints/mspalpha/onboarding?from=cmpone&id={id}&redirect_uri={}",
            enc(back)
        ),
    )
    .await
}

#[tokio::test]
async fn redirect_uris_outside_the_agreed_domains_are_refused() {
    let hub = stage().await;
    for back in [
        "https://cmp.example.evil.com/esim",
        "https://www.cmp.example.evil.com/",
        "https://evilcmp.example/",
        "https://cmp.example/",
        "https://www.example.de/esim", // 7.1 Example 2
        "https://www.cmp.example:8443/",
        "https://127.0.0.1/",
        "https://evil.com\\@www.cmp.example/",
    ] {
        let html = refused(
            &to_alpha(&hub, back).await,
            403,
            &[
                "<title>We stopped an unsafe redirect</title>",
                "One Motors has not registered with us",
                "redirect_not_agreed",
            ],
        );
        assert_eq!(
            way_back(&html).as_deref(),
            Some("https://portal.cmp.example/esim"),
            "the way back is the CMP's registered page, never the redirect_uri"
        );
    }
    assert_eq!(
        counted(&hub, "cmpone", "mspalpha", "to_msp", "redirect_not_agreed"),
        8
    );
}

#[tokio::test]
async fn userinfo_scripts_data_and_fragments_are_not_addresses() {
    let hub = stage().await;
    for back in [
        "https://cmp.example@evil.com/",
        "https://www.cmp.example@evil.com/",
        "javascript:alert(document.domain)//www.cmp.example",
        "data:text/html,<script>alert(1)</script>",
        "http://www.cmp.example/esim",
        "https://www.cmp.example/esim#frag",
        "//www.cmp.example/esim",
    ] {
        let html = refused(
            &to_alpha(&hub, back).await,
            400,
            &["not a valid secure (https) web address"],
        );
        assert!(
            !html.contains("evil.com") && !html.contains("alert"),
            "{html}"
        );
    }
}

#[tokio::test]
async fn encoded_line_breaks_never_reach_a_header() {
    let hub = stage().await;
    let id = account_id(&hub, "cmpone", 600);
    let reply = get(
        &hub,
        &format!(
            "/touchpoints/mspalpha/onboarding?from=cmpone&id={id}&redirect_uri=https%3A%2F%2Fwww.cmp.example%2F%0d%0aSet-Cookie%3A%20x%3D1"
        ),
    )
    .await;
    refused(
        &reply,
        400,
        &["“redirect_uri” in the link contains characters that are not allowed"],
    );
    let reply = get(
        &hub,
        "/touchpoints/mspalpha/return?from=cmpone&redirect_uri=https%3A%2F%2Fa.msp.example%2F&code=100&error=x%0D%0ALocation:%20https://evil.com",
    )
    .await;
    refused(&reply, 400, &["“error” in the link contains characters"]);
    let reply = get(&hub, "/touchpoints/cmpone/onboarding?from=mspalpha%0d%0a&redirect_uri=https%3A%2F%2Fa.msp.example%2F").await;
    refused(&reply, 400, &["“from”"]);
}

#[tokio::test]
async fn expired_forged_and_malformed_account_ids_are_refused() {
    let hub = stage().await;
    let back = enc("https://www.cmp.example/esim");
    let path = |id: &str| {
        format!("/touchpoints/mspalpha/onboarding?from=cmpone&id={id}&redirect_uri={back}")
    };
    let expired = account_id(&hub, "cmpone", -5);
    refused(
        &get(&hub, &path(&expired)).await,
        403,
        &[
            "This link has expired",
            "go back to One Motors",
            "account_id_expired",
        ],
    );
    // Signed by another CMP: not cmpone's signature.
    let forged = account_id(&hub, "cmptwo", 600);
    refused(
        &get(&hub, &path(&forged)).await,
        403,
        &["This link could not be verified", "issued by One Motors"],
    );
    refused(
        &get(&hub, &path("not-a-jwt")).await,
        400,
        &["This link could not be verified", "account_id_malformed"],
    );
    // The same checks on the way back (7.2.1).
    let reply = get(
        &hub,
        &format!(
            "/touchpoints/mspalpha/return?from=cmpone&redirect_uri={}&id={expired}",
            enc("https://a.msp.example/return")
        ),
    )
    .await;
    refused(&reply, 403, &["This link has expired"]);
    assert_eq!(
        counted(
            &hub,
            "cmpone",
            "mspalpha",
            "back_to_msp",
            "account_id_expired"
        ),
        1
    );
}

#[tokio::test]
async fn missing_duplicate_and_unknown_parameters_are_refused() {
    let hub = stage().await;
    let id = account_id(&hub, "cmpone", 600);
    let back = enc("https://www.cmp.example/esim");
    let onboarding = "/touchpoints/mspalpha/onboarding";
    let cases = [
        (
            format!("{onboarding}?from=cmpone&redirect_uri={back}"),
            "lacks the value “id”",
        ),
        (
            format!("{onboarding}?from=cmpone&id={id}"),
            "lacks the value “redirect_uri”",
        ),
        (
            format!("{onboarding}?id={id}&redirect_uri={back}"),
            "lacks the value “from”",
        ),
        (
            format!(
                "{onboarding}?from=cmpone&id={id}&redirect_uri={back}&redirect_uri={}",
                enc("https://evil.com/")
            ),
            "gives the value “redirect_uri” more than once",
        ),
        (
            format!("{onboarding}?from=cmpone&from=cmpone&id={id}&redirect_uri={back}"),
            "“from” more than once",
        ),
        (
            format!("{onboarding}?from=cmpone&id={id}&redirect_uri={back}&utm_source=x"),
            "a value we do not know (“utm_source”)",
        ),
        (
            format!("{onboarding}?from=cmpone&id=&redirect_uri={back}"),
            "The value “id” in the link is empty",
        ),
        (
            format!("{onboarding}?from=cmpone&id={id}&redirect_uri={back}&env=staging"),
            "The value “env” in the link is not valid",
        ),
        (
            format!(
                "{onboarding}?from=cmpone&id={}&redirect_uri={back}",
                "a".repeat(5000)
            ),
            "“id” in the link is too long",
        ),
    ];
    for (path, says) in &cases {
        let html = refused(
            &get(&hub, path).await,
            400,
            &["This link is incomplete or damaged", says],
        );
        let from_known = !path.contains("?id=") && !path.contains("from=cmpone&from=cmpone");
        assert_eq!(
            way_back(&html).is_some(),
            from_known,
            "a way back only when `from` was read: {path}"
        );
    }
}

#[tokio::test]
async fn return_parameters_are_one_outcome_with_a_spec_code() {
    let hub = stage().await;
    let id = account_id(&hub, "cmpone", 600);
    let base = format!(
        "/touchpoints/mspalpha/return?from=cmpone&redirect_uri={}",
        enc("https://a.msp.example/return?foo=bar")
    );
    for (rest, says) in [
        (
            format!("&id={id}&code=100"),
            "“code” in the link is not valid",
        ),
        (
            format!("&id={id}&error=x"),
            "“error” in the link is not valid",
        ),
        ("&code=999".to_owned(), "“code” in the link is not valid"),
        ("&code=1%2B1".to_owned(), "“code” in the link is not valid"),
        ("&error=only".to_owned(), "lacks the value “id”"),
        (String::new(), "lacks the value “id”"),
        (
            format!("&code=100&error={}", "e".repeat(513)),
            "“error” in the link is too long",
        ),
        (
            "&code=100&env=preproduction".to_owned(),
            "a value we do not know (“env”)",
        ),
    ] {
        refused(&get(&hub, &format!("{base}{rest}")).await, 400, &[says]);
    }
}

#[tokio::test]
async fn user_input_is_shown_escaped_only() {
    let hub = stage().await;
    let script = "<script>alert('x')</script>";
    let reply = get(
        &hub,
        &format!(
            "/touchpoints/cmpone/onboarding?from={}&redirect_uri=https%3A%2F%2Fa.msp.example%2F",
            enc(script)
        ),
    )
    .await;
    let html = refused(
        &reply,
        403,
        &["&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"],
    );
    assert!(!html.contains(script));
    let reply = get(
        &hub,
        &format!(
            "/touchpoints/cmpone/onboarding?from=mspalpha&redirect_uri=https%3A%2F%2Fa.msp.example%2F&{}=1",
            enc("\"><img src=x onerror=alert(1)>")
        ),
    )
    .await;
    let html = refused(
        &reply,
        400,
        &["&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"],
    );
    assert!(!html.contains("<img"));
}

#[tokio::test]
async fn unknown_partners_and_pairs_without_agreement_are_refused() {
    let hub = stage().await;
    let back = enc("https://www.beta-msp.example/");
    refused(
        &get(
            &hub,
            &format!("/touchpoints/nosuch/onboarding?from=mspbeta&redirect_uri={back}"),
        )
        .await,
        404,
        &["We could not find this service", "(“nosuch”)"],
    );
    refused(
        &get(
            &hub,
            &format!("/touchpoints/cmpone/onboarding?from=nosuch&redirect_uri={back}"),
        )
        .await,
        403,
        &["comes from “nosuch”, which is not connected"],
    );
    // cmptwo agreed with mspalpha only.
    let html = refused(
        &get(
            &hub,
            &format!(
                "/touchpoints/cmptwo/onboarding?from=mspbeta&redirect_uri={}",
                enc("https://beta-msp.example/")
            ),
        )
        .await,
        403,
        &["Beta Telecom and Two Cars have no agreement to link your accounts"],
    );
    assert_eq!(
        way_back(&html).as_deref(),
        Some("https://beta-msp.example/esim/login")
    );
    assert_eq!(
        counted(&hub, "mspbeta", "cmptwo", "to_cmp", "no_agreement"),
        1
    );
    let id = account_id(&hub, "cmptwo", 600);
    refused(
        &get(
            &hub,
            &format!("/touchpoints/mspbeta/return?from=cmptwo&redirect_uri={back}&id={id}"),
        )
        .await,
        403,
        &["Two Cars and Beta Telecom have no agreement"],
    );
    // Two MSPs are not a pair.
    refused(
        &get(
            &hub,
            &format!("/touchpoints/mspalpha/onboarding?from=mspbeta&id={id}&redirect_uri={back}"),
        )
        .await,
        403,
        &["have no agreement"],
    );
}

#[tokio::test]
async fn partners_outside_the_directory_are_unknown_here() {
    let hub = crate::support::TestHub::builder()
        .routes(|s| s.replace(aidhub::stage::touchpoint_toml("mspbeta"), ""))
        .start()
        .await
        .expect("the stage starts");
    refused(
        &get(&hub, "/touchpoints/mspbeta/return?from=cmpone&redirect_uri=https%3A%2F%2Fbeta-msp.example%2F&code=100").await,
        404,
        &["(“mspbeta”) that is not connected to this onboarding directory"],
    );
    refused(
        &get(&hub, "/touchpoints/cmpone/onboarding?from=mspbeta&redirect_uri=https%3A%2F%2Fbeta-msp.example%2F").await,
        403,
        &["comes from “mspbeta”"],
    );
}

#[tokio::test]
async fn other_paths_methods_and_pages_are_not_found() {
    let hub = stage().await;
    let back = enc("https://www.beta-msp.example/");
    refused(&get(&hub, "/").await, 404, &["Page not found"]);
    refused(
        &get(&hub, "/touchpoints/cmpone/elsewhere").await,
        404,
        &["Page not found"],
    );
    refused(
        &get(
            &hub,
            &format!("/touchpoints/cmpone/return?from=mspalpha&redirect_uri={back}"),
        )
        .await,
        404,
        &["Page not found"],
    );
    let reply = request(
        &hub,
        Method::POST,
        "/touchpoints/cmpone/onboarding?from=mspalpha",
    )
    .await;
    refused(&reply, 405, &["Page not found"]);
    assert_eq!(reply.headers["allow"], "GET, HEAD");
    // mspbeta registered no pre-production page.
    let id = account_id(&hub, "cmpone", 600);
    refused(
        &get(&hub, &format!("/touchpoints/mspbeta/onboarding?from=cmpone&id={id}&redirect_uri={}&env=preproduction", enc("https://www.cmp.example/"))).await,
        404,
        &["Beta Telecom has not registered a pre-production (test) page"],
    );
}

#[tokio::test]
async fn the_partner_listener_is_untouched() {
    let hub = stage().await;
    // The AID1 listener still demands a client certificate and knows no touchpoints.
    let roots = aidhub::tls::read_roots(&[aidhub::pki::ca_cert(&hub.certs())]).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(aidhub::tls::provider())
        .with_protocol_versions(aidhub::tls::VERSIONS)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let outcome = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"GET /touchpoints/cmpone/onboarding HTTP/1.1\r\nhost: x\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        tls.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    }
    .await;
    assert!(
        outcome.is_err() || outcome.as_ref().is_ok_and(|b| b.is_empty()),
        "no answer without a client certificate: {outcome:?}"
    );
}
