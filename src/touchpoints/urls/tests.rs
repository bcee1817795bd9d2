//! Unit tests of the agreed-domain rules: wildcards, exact hosts, ports, schemes, userinfo,
//! look-alike hosts and what the parser does to tricky input.

use super::*;

fn domains(list: &[&str]) -> Vec<DomainPattern> {
    list.iter()
        .map(|d| DomainPattern::parse(d).unwrap())
        .collect()
}

fn allowed(uri: &str, list: &[&str]) -> bool {
    check_redirect(uri, &domains(list)).is_ok()
}

#[test]
fn wildcards_match_names_below_the_domain_only() {
    let list = ["*.cmp.example"];
    for uri in [
        "https://www.cmp.example/esim",
        "https://a.b.cmp.example/",
        "https://WWW.CMP.Example/esim?x=1",
        "https://www.cmp.example:443/",
    ] {
        assert!(allowed(uri, &list), "{uri}");
    }
    for uri in [
        "https://cmp.example/",
        "https://cmp.example.evil.com/",
        "https://evilcmp.example/",
        "https://www.cmp.example.evil.com/",
        "https://www.cmp.example./",
        "https://www.cmp.example:8443/",
        "https://wwwcmp.example/",
    ] {
        assert!(!allowed(uri, &list), "{uri}");
    }
}

#[test]
fn the_spec_examples() {
    // 7.1 Example 1: *.cmp.de agreed, https://www.cmp.de/esim allowed.
    assert!(allowed("https://www.cmp.de/esim", &["*.cmp.de"]));
    // 7.1 Example 2: *.cmp.com agreed, https://www.example.de/esim refused.
    assert_eq!(
        check_redirect("https://www.example.de/esim", &domains(&["*.cmp.com"])),
        Err(RedirectProblem::NotAgreed)
    );
}

#[test]
fn exact_hosts_match_only_themselves() {
    let list = ["portal.cmp.example"];
    assert!(allowed("https://portal.cmp.example/x", &list));
    assert!(allowed("https://PORTAL.cmp.example", &list));
    assert!(!allowed("https://www.portal.cmp.example/", &list));
    assert!(!allowed("https://portal.cmp.example.evil.com/", &list));
    assert!(!allowed("https://cmp.example/", &list));
}

#[test]
fn ports_must_be_agreed() {
    assert!(allowed(
        "https://dev.cmp.example:8443/",
        &["dev.cmp.example:8443"]
    ));
    assert!(!allowed(
        "https://dev.cmp.example/",
        &["dev.cmp.example:8443"]
    ));
    assert!(allowed(
        "https://a.cmp.example:8443/",
        &["*.cmp.example:8443"]
    ));
    assert!(allowed("https://a.cmp.example/", &["*.cmp.example:443"]));
}

#[test]
fn schemes_userinfo_and_fragments_are_refused() {
    let list = ["*.cmp.example"];
    let check = |uri: &str| check_redirect(uri, &domains(&list));
    for uri in [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)//www.cmp.example",
        "data:text/html,<script>alert(1)</script>",
        "http://www.cmp.example/",
        "ftp://www.cmp.example/",
    ] {
        assert_eq!(check(uri), Err(RedirectProblem::NotHttps), "{uri}");
    }
    assert_eq!(
        check("https://cmp.example@evil.com/"),
        Err(RedirectProblem::UserInfo)
    );
    assert_eq!(
        check("https://www.cmp.example:pw@evil.com/"),
        Err(RedirectProblem::UserInfo)
    );
    assert_eq!(
        check("https://www.cmp.example/#frag"),
        Err(RedirectProblem::Fragment)
    );
    for uri in ["//www.cmp.example/", "/esim", "", "www.cmp.example"] {
        assert_eq!(check(uri), Err(RedirectProblem::NotUrl), "{uri:?}");
    }
    let long = format!("https://www.cmp.example/{}", "a".repeat(REDIRECT_URI_MAX));
    assert_eq!(check(&long), Err(RedirectProblem::NotUrl));
}

#[test]
fn tricks_on_the_host_are_parsed_away() {
    let list = ["*.cmp.example"];
    // A backslash is a slash for https: the host is evil.com.
    assert!(!allowed("https://evil.com\\@www.cmp.example/", &list));
    // Percent-encoded dots are decoded in the host.
    assert!(!allowed("https://www.cmp.example%2eevil.com/", &list));
    // The host ends where the path begins; the Location is the re-serialised URL.
    let url = check_redirect("https://www.cmp.example\\.evil.com", &domains(&list)).unwrap();
    assert_eq!(url.as_str(), "https://www.cmp.example/.evil.com");
    // Tabs and newlines are stripped by the parser, never passed on.
    let url = check_redirect("https://www.cmp.example/a\r\nSet-Cookie:x", &domains(&list)).unwrap();
    assert!(!url.as_str().contains(['\r', '\n']), "{url}");
    // IP addresses are never agreed domains.
    assert!(!allowed("https://127.0.0.1/", &list));
    assert!(!allowed("https://[::1]/", &list));
}

#[test]
fn unicode_names_are_compared_in_their_ascii_form() {
    let list = ["*.bücher.example"];
    assert!(allowed("https://www.bücher.example/", &list));
    assert!(allowed("https://www.xn--bcher-kva.example/", &list));
    assert!(allowed("https://WWW.BÜCHER.example/", &list));
    assert!(!allowed("https://www.bucher.example/", &list));
    assert_eq!(
        DomainPattern::parse("*.Bücher.example")
            .unwrap()
            .to_string(),
        "*.xn--bcher-kva.example"
    );
}

#[test]
fn patterns_are_host_names() {
    for bad in [
        "https://cmp.example",
        "cmp.example/esim",
        "*",
        "*.",
        "*.com",
        "www.*.cmp.example",
        "*cmp.example",
        "cmp.example:0",
        "cmp.example:99999",
        "cmp.example:x",
        "127.0.0.1",
        "[::1]",
        "user@cmp.example",
        "",
        "cmp.example.",
        "cmp example",
    ] {
        assert!(DomainPattern::parse(bad).is_err(), "{bad:?} was accepted");
    }
    assert_eq!(
        DomainPattern::parse("Portal.CMP.example:8443")
            .unwrap()
            .to_string(),
        "portal.cmp.example:8443"
    );
}

#[test]
fn pages_must_be_https_urls() {
    assert!(parse_page("https://login.msp.example/portal/login?lang=de").is_ok());
    assert!(parse_page("https://127.0.0.1:9443/login").is_ok());
    for bad in [
        "http://login.msp.example/",
        "https://u@login.msp.example/",
        "https://login.msp.example/#x",
        "login.msp.example",
    ] {
        assert!(parse_page(bad).is_err(), "{bad}");
    }
}

#[test]
fn appended_parameters_keep_the_existing_query() {
    let mut url = Url::parse("https://client.example.com/return?foo=bar").unwrap();
    append_query(
        &mut url,
        &[("code", "100"), ("error", "Unspecified CMP content error")],
    );
    assert_eq!(
        url.as_str(),
        "https://client.example.com/return?foo=bar&code=100&error=Unspecified%20CMP%20content%20error"
    );
    let mut url = Url::parse("https://client.example.com/return").unwrap();
    append_query(&mut url, &[("id", "a.b-c_d"), ("x", "1+1=2&\r\n\"<>")]);
    assert_eq!(
        url.as_str(),
        "https://client.example.com/return?id=a.b-c_d&x=1%2B1%3D2%26%0D%0A%22%3C%3E"
    );
}
