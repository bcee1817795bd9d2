//! Unit tests of configuration loading: every problem reported with its location.

use super::*;

const HUB: &str = r#"
[tls]
server_cert = "s.pem"
server_key = "s.key"
client_cert = "c.pem"
client_key = "c.key"
partner_ca = ["ca.pem"]
"#;

fn partner(id: &str, role: &str, extra: &str) -> String {
    format!(
        "[[partner]]\nid = \"{id}\"\nrole = \"{role}\"\nidentities = [\"cn:{id}\"]\n\
         credential = {{ api_key = \"k{id}\" }}\n{extra}\n[partner.upstream]\n\
         url = \"https://127.0.0.1:9000/p/\"\nca = [\"ca.pem\"]\ncredential = {{ api_key = \"up\" }}\n"
    )
}

#[test]
fn hub_defaults_are_the_documented_ones() {
    let c = HubConfig::from_str(HUB, "hub.toml", Path::new("/base")).unwrap();
    assert_eq!(c.partners_addr.to_string(), "127.0.0.1:8443");
    assert_eq!(c.max_body_bytes, 1 << 20);
    assert_eq!(c.routes, Path::new("/base/routes.toml"));
    assert_eq!(c.ledger.async_deadline, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(
        c.timeouts.for_function(Function::RequestActivationCode),
        Duration::from_millis(RAC_TIMEOUT_MS)
    );
    assert_eq!(
        c.timeouts.for_function(Function::SendCsimStatus),
        Duration::from_millis(DEFAULT_TIMEOUT_MS)
    );
    assert_eq!(c.timeouts.connect, Duration::from_millis(2000));
    assert_eq!(c.timeouts.upstream_idle, Duration::from_secs(90));
    assert_eq!(c.max_opening_per_upstream, 8);
    assert_eq!(c.idle_timeout, Duration::from_secs(120));
    assert_eq!(c.body_timeout, Duration::from_secs(10));
}

#[test]
fn connection_settings_are_read_and_bounded() {
    let text = format!(
        "{HUB}\n[listen]\nidle_timeout_secs = 30\nbody_timeout_secs = 4\n\
         [limits]\nmax_opening_per_upstream = 3\n\
         [timeouts]\nconnect_ms = 700\nupstream_idle_ms = 55000\n"
    );
    let c = HubConfig::from_str(&text, "hub.toml", Path::new(".")).unwrap();
    assert_eq!(c.max_opening_per_upstream, 3);
    assert_eq!(c.timeouts.connect, Duration::from_millis(700));
    assert_eq!(c.timeouts.upstream_idle, Duration::from_secs(55));
    assert_eq!(c.idle_timeout, Duration::from_secs(30));
    assert_eq!(c.body_timeout, Duration::from_secs(4));

    let text = format!(
        "{HUB}\n[listen]\nidle_timeout_secs = 0\nbody_timeout_secs = 86401\n\
         [limits]\nmax_opening_per_upstream = 0\n\
         [timeouts]\nconnect_ms = 0\nupstream_idle_ms = 0\n"
    );
    let e = HubConfig::from_str(&text, "hub.toml", Path::new(".")).unwrap_err();
    let all = e.to_string();
    assert_eq!(e.problems.len(), 5, "{all}");
    assert!(
        all.contains("hub.toml: listen.idle_timeout_secs: must be 1..=86400"),
        "{all}"
    );
    assert!(
        all.contains("hub.toml: listen.body_timeout_secs: must be 1..=86400"),
        "{all}"
    );
    assert!(
        all.contains("hub.toml: limits.max_opening_per_upstream: must be 1..=1024"),
        "{all}"
    );
    assert!(
        all.contains("hub.toml: timeouts.connect_ms: must be 1..=600000"),
        "{all}"
    );
    assert!(
        all.contains("hub.toml: timeouts.upstream_idle_ms: must be 1..=3600000"),
        "{all}"
    );
}

#[test]
fn hub_problems_are_all_listed() {
    let text = format!(
        "{HUB}\n[listen]\npartners = \"nowhere\"\n[timeouts.functions]\nno_such_fn = 5\n[log]\nformat = \"xml\"\n"
    );
    let e = HubConfig::from_str(&text, "hub.toml", Path::new(".")).unwrap_err();
    let all = e.to_string();
    assert_eq!(e.problems.len(), 3, "{all}");
    assert!(all.contains("hub.toml: listen.partners"));
    assert!(all.contains("timeouts.functions.no_such_fn"));
    assert!(all.contains("log.format"));
}

#[test]
fn unknown_keys_are_refused_with_their_line() {
    let e = HubConfig::from_str(&format!("{HUB}\nbogus = 1\n"), "hub.toml", Path::new("."))
        .unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
}

#[test]
fn routes_validate_roles_counterparts_and_secrets() {
    let text = format!(
        "{}{}",
        partner("msp1", "msp", "counterparts = [\"cmp1\"]"),
        partner("cmp1", "cmp", "account_id_secret = \"s\"")
    );
    let r = Routes::from_str(&text, "routes.toml", Path::new(".")).unwrap();
    assert_eq!(r.partners.len(), 2);
    let msp = &r.partners[0];
    assert_eq!(msp.upstream.prefix, "/p");
    assert!(msp.permits("cmp1"));
    assert!(!msp.permits("cmp2"));
    assert!(r.partners[1].account_id_secret_for("msp1").is_some());
}

#[test]
fn routes_problems_name_partner_and_key() {
    let text = format!(
        "{}{}{}",
        partner("msp1", "msp", "counterparts = [\"msp1\", \"ghost\"]"),
        partner("cmp1", "cmp", ""),
        partner("bad-id", "car", "")
    );
    let e = Routes::from_str(&text, "routes.toml", Path::new(".")).unwrap_err();
    let all = e.to_string();
    assert!(
        all.contains("partner[0] (msp1).counterparts: `msp1` is not a cmp"),
        "{all}"
    );
    assert!(all.contains("unknown partner `ghost`"), "{all}");
    assert!(
        all.contains("partner[1] (cmp1): a CMP needs account_id_secret"),
        "{all}"
    );
    assert!(all.contains("partner[2] (bad-id): id must be"), "{all}");
    assert!(all.contains("partner[2] (bad-id).role"), "{all}");
}

#[test]
fn a_partner_may_keep_its_idle_upstream_connections_for_its_own_time() {
    let with = |idle: &str| {
        format!(
            "{}{}",
            partner("msp1", "msp", "") + idle,
            partner("cmp1", "cmp", "account_id_secret = \"s\"")
        )
    };
    let r = Routes::from_str(&with("idle_ms = 55000\n"), "routes.toml", Path::new(".")).unwrap();
    assert_eq!(r.partners[0].upstream.idle, Some(Duration::from_secs(55)));
    assert_eq!(
        r.partners[1].upstream.idle, None,
        "the hub's default applies"
    );
    let e = Routes::from_str(&with("idle_ms = 0\n"), "routes.toml", Path::new(".")).unwrap_err();
    assert!(
        e.to_string()
            .contains("partner[0] (msp1).upstream.idle_ms: must be 1..=3600000"),
        "{e}"
    );
}

#[test]
fn upstreams_must_be_https_without_query() {
    let text = partner("msp1", "msp", "").replace("https://127.0.0.1:9000/p/", "http://x:1/");
    let e = Routes::from_str(&text, "routes.toml", Path::new(".")).unwrap_err();
    assert!(e.to_string().contains("must be an https:// URL"), "{e}");
    let text = partner("msp1", "msp", "").replace("https://127.0.0.1:9000/p/", "https://x:1/?a=b");
    let e = Routes::from_str(&text, "routes.toml", Path::new(".")).unwrap_err();
    assert!(e.to_string().contains("query"), "{e}");
}

#[test]
fn credentials_need_exactly_one_form() {
    let text = partner("msp1", "msp", "").replace(
        "credential = { api_key = \"kmsp1\" }",
        "credential = { api_key = \"k\", username = \"u\", password = \"p\" }",
    );
    let e = Routes::from_str(&text, "routes.toml", Path::new(".")).unwrap_err();
    assert!(
        e.to_string()
            .contains("either api_key, or username and password"),
        "{e}"
    );
    let text =
        partner("msp1", "msp", "").replace("api_key = \"kmsp1\"", "api_key = \"not-alnum!\"");
    let e = Routes::from_str(&text, "routes.toml", Path::new(".")).unwrap_err();
    assert!(e.to_string().contains("[A-Za-z0-9]+"), "{e}");
}

#[test]
fn duplicate_ids_are_refused() {
    let text = format!(
        "{}{}",
        partner("msp1", "msp", ""),
        partner("msp1", "msp", "")
    );
    let e = Routes::from_str(&text, "routes.toml", Path::new(".")).unwrap_err();
    assert!(e.to_string().contains("duplicate partner id"), "{e}");
}

#[test]
fn an_empty_routing_table_is_refused() {
    let e = Routes::from_str("", "routes.toml", Path::new(".")).unwrap_err();
    assert!(
        e.to_string().contains("at least one partner or carrier"),
        "{e}"
    );
}

#[test]
fn basic_auth_is_only_for_the_msp_hosted_api() {
    let basic = "credential = { username = \"u\", password = \"p\" }";
    let msp = partner("msp1", "msp", "").replace("credential = { api_key = \"kmsp1\" }", basic);
    let cmp = partner("cmp1", "cmp", "account_id_secret = \"s\"");
    let e = Routes::from_str(&format!("{msp}{cmp}"), "routes.toml", Path::new(".")).unwrap_err();
    assert!(
        e.to_string()
            .contains("partner[0] (msp1).credential: an MSP calls the CMP-hosted API"),
        "{e}"
    );
    let cmp_basic = partner("cmp1", "cmp", "account_id_secret = \"s\"")
        .replace("credential = { api_key = \"kcmp1\" }", basic);
    let r = Routes::from_str(&cmp_basic, "routes.toml", Path::new("."));
    assert!(
        r.is_ok(),
        "a CMP may call the MSP-hosted API with basic auth: {:?}",
        r.err()
    );
    let cmp_up = partner("cmp1", "cmp", "account_id_secret = \"s\"")
        .replace("credential = { api_key = \"up\" }", basic);
    let e = Routes::from_str(&cmp_up, "routes.toml", Path::new(".")).unwrap_err();
    assert!(
        e.to_string()
            .contains("upstream.credential: a CMP's API takes an api_key"),
        "{e}"
    );
}

#[test]
fn touchpoint_tables_are_validated_with_their_location() {
    let table = "[partner.touchpoint]\nlogin_url = \"https://portal.cmp.example/esim?lang=de\"\n\
                 preproduction_login_url = \"https://pre.cmp.example/esim\"\n\
                 redirect_domains = [\"*.CMP.example\", \"app.cmp.example:8443\"]\n";
    let text = format!(
        "{}{}{table}",
        partner("msp1", "msp", ""),
        partner("cmp1", "cmp", "account_id_secret = \"s\"")
    );
    let r = Routes::from_str(&text, "routes.toml", Path::new(".")).unwrap();
    assert!(r.partners[0].touchpoint.is_none());
    let t = r.partners[1].touchpoint.as_ref().unwrap();
    assert_eq!(t.name, "cmp1", "the name defaults to the id");
    assert_eq!(
        t.page(Environment::Preproduction).map(url::Url::as_str),
        Some("https://pre.cmp.example/esim")
    );
    let domains: Vec<String> = t.redirect_domains.iter().map(|d| d.to_string()).collect();
    assert_eq!(domains, ["*.cmp.example", "app.cmp.example:8443"]);

    let bad = "[partner.touchpoint]\nname = \"\"\nlogin_url = \"http://portal.cmp.example/\"\n\
               preproduction_login_url = \"https://u@pre.cmp.example/\"\n\
               redirect_domains = [\"*.example\", \"https://x.cmp.example\", \"a.cmp.example\", \"A.cmp.example\"]\n";
    let text = format!(
        "{}{bad}",
        partner("cmp1", "cmp", "account_id_secret = \"s\"")
    );
    let e = Routes::from_str(&text, "routes.toml", Path::new(".")).unwrap_err();
    let all = e.to_string();
    assert_eq!(e.problems.len(), 6, "{all}");
    let at = "routes.toml: partner[0] (cmp1).touchpoint";
    assert!(all.contains(&format!("{at}.name: must be 1-80")), "{all}");
    assert!(
        all.contains(&format!(
            "{at}.login_url: `http://portal.cmp.example/` must be an https:// URL"
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "{at}.preproduction_login_url: `https://u@pre.cmp.example/` must not carry a user name"
        )),
        "{all}"
    );
    assert!(
        all.contains("`*.example` would agree to a whole top-level domain"),
        "{all}"
    );
    assert!(
        all.contains("`https://x.cmp.example` must be a host name"),
        "{all}"
    );
    assert!(all.contains("`A.cmp.example` is listed twice"), "{all}");

    let empty = "[partner.touchpoint]\nlogin_url = \"https://p.cmp.example/\"\nredirect_domains = []\nbogus = 1\n";
    let text = format!(
        "{}{empty}",
        partner("cmp1", "cmp", "account_id_secret = \"s\"")
    );
    let e = Routes::from_str(&text, "routes.toml", Path::new(".")).unwrap_err();
    assert!(
        e.to_string().contains("bogus"),
        "unknown keys are refused: {e}"
    );
}

#[test]
fn the_browser_listener_is_optional_and_checked() {
    let c = HubConfig::from_str(HUB, "hub.toml", Path::new("/base")).unwrap();
    assert_eq!(c.browsers_addr, None);
    assert_eq!(
        c.tls.browsers_cert,
        Path::new("/base/s.pem"),
        "defaults to the server certificate"
    );
    let text = format!("[listen]\nbrowsers = \"127.0.0.1:8444\"\n{HUB}");
    let c = HubConfig::from_str(&text, "hub.toml", Path::new("/base")).unwrap();
    assert_eq!(c.browsers_addr.map(|a| a.port()), Some(8444));
    let text = format!("[listen]\nbrowsers = \"somewhere\"\n{HUB}browsers_cert = \"b.pem\"\n");
    let e = HubConfig::from_str(&text, "hub.toml", Path::new(".")).unwrap_err();
    let all = e.to_string();
    assert!(
        all.contains("hub.toml: listen.browsers: not an address"),
        "{all}"
    );
    assert!(
        all.contains("hub.toml: tls.browsers_cert: browsers_cert and browsers_key come together"),
        "{all}"
    );
}

const CARRIER: &str =
    "[[carrier]]\nid = \"acme\"\necs_url = \"https://127.0.0.1:9443/\"\necs_ca = [\"ca.pem\"]\n";

#[test]
fn carriers_take_documented_defaults() {
    let r = Routes::from_str(CARRIER, "routes.toml", Path::new("/b")).unwrap();
    let c = &r.carriers[0];
    assert_eq!(c.base_path, "/ts43/acme");
    assert_eq!(c.ecs.path, "");
    assert_eq!(c.normalise, Normalise::default());
    assert_eq!(c.timeout, Duration::from_secs(10));
    assert!(
        r.partners.is_empty(),
        "a carrier-only routing table is valid"
    );
    let h = HubConfig::from_str(
        &format!("[listen]\ndevices = \"127.0.0.1:8444\"\n{HUB}"),
        "hub.toml",
        Path::new("/b"),
    )
    .unwrap();
    assert_eq!(h.devices_addr.unwrap().to_string(), "127.0.0.1:8444");
}

#[test]
fn carrier_problems_are_located() {
    let text = format!(
        "{}\n[[carrier]]\nid = \"acme\"\nbase_path = \"ts43/x/\"\necs_url = \"http://e/\"\necs_ca = []\n\
         client_cert = \"c.pem\"\n[carrier.normalise]\npolling_interval_minutes = 5000\n\
         [carrier.limits]\ndevice_rate = -1.0\n\n{}",
        partner("acme", "msp", ""),
        CARRIER
    );
    let e = Routes::from_str(&text, "routes.toml", Path::new("/b")).unwrap_err();
    let all = e.to_string();
    for expected in [
        "routes.toml: carrier[0] (acme): a partner already has this id",
        "routes.toml: carrier[0] (acme).base_path: must be an absolute path",
        "routes.toml: carrier[0] (acme).ecs_url: must be an https:// URL",
        "routes.toml: carrier[0] (acme).ecs_ca: at least one trust anchor is needed",
        "routes.toml: carrier[0] (acme): client_cert and client_key come together",
        "routes.toml: carrier[0] (acme).normalise.polling_interval_minutes: must be 0 (off) to 1440 minutes",
        "routes.toml: carrier[0] (acme).limits.device_rate: rate must be a positive number",
        "routes.toml: carrier[1] (acme): duplicate carrier id",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
    }
}
