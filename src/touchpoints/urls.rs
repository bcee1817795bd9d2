//! The agreed-domain rules of AID.02 7.1 ("the domains to which the MSP performs redirects
//! must be agreed and specified"): a partner's [`DomainPattern`]s as `routes.toml` writes
//! them, and the checks a `redirect_uri` must pass before the hub sends a browser there.
//!
//! Every URL is parsed by the WHATWG parser of the `url` crate, which lowercases the host,
//! applies IDNA (a Unicode host becomes its `xn--` form), percent-decodes and validates it,
//! drops the default port and strips tabs and newlines. Matching works on that parsed host,
//! never on the text, and the hub's `Location` is the parsed URL serialised again, so what
//! the browser follows is exactly what was checked.
//!
//! Decisions:
//!
//! * **https only**; `javascript:`, `data:`, `http:` and relative references are refused.
//! * **No userinfo** (`https://cmp.example@evil.com`) and **no fragment** (`#…`).
//! * **`*.cmp.example`** matches any name below `cmp.example` at any depth (`www.cmp.example`,
//!   `a.b.cmp.example`), never `cmp.example` itself (list it too when the bare domain is
//!   agreed: 7.1's Example 1 agrees `*.cmp.de` for `www.cmp.de`), nor `evilcmp.example` or
//!   `cmp.example.evil.com`. A wildcard stands only as the whole first label and must cover
//!   at least two labels (`*.example` is refused).
//! * **Ports.** A pattern without a port matches only the default port (443); a pattern may
//!   name one port (`portal.cmp.example:8443`, `*.cmp.example:8443`) and then matches only it.
//! * **Hosts are domain names.** IP addresses are neither patterns nor matched; a host with a
//!   trailing dot (`www.cmp.example.`) is a different name and is not matched.

use std::fmt;
use url::{Host, Url};

/// Longest `redirect_uri` the hub accepts, in bytes.
pub const REDIRECT_URI_MAX: usize = 2048;

/// One agreed redirect domain: an exact host or `*.` + a domain, with an optional port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainPattern {
    /// `*.` in front: names below `host` match, `host` itself does not.
    wildcard: bool,
    /// Lowercase ASCII (IDNA-encoded) domain.
    host: String,
    /// The one port that matches; `None` means the default port only.
    port: Option<u16>,
}

impl DomainPattern {
    /// Parses `www.cmp.example`, `*.cmp.example`, `portal.cmp.example:8443`, a Unicode name.
    pub fn parse(text: &str) -> Result<DomainPattern, String> {
        if text.contains("://") || text.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{text}` must be a host name (`portal.cmp.example`, `*.cmp.example`), not a URL"
            ));
        }
        let (name, port) = match text.rsplit_once(':') {
            Some((name, port)) => {
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("`{text}`: `{port}` is not a port (1-65535)"))?;
                // 443 is the default port, which the parser drops from URLs.
                (name, (port != 443).then_some(port))
            }
            None => (text, None),
        };
        let (wildcard, domain) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        if domain.contains('*') {
            return Err(format!(
                "`{text}`: a wildcard may only stand as the whole first label (`*.cmp.example`)"
            ));
        }
        let host = match Host::parse(domain) {
            Ok(Host::Domain(host)) if !host.is_empty() && !host.ends_with('.') => host,
            Ok(Host::Domain(_)) => return Err(format!("`{text}` is not a domain name")),
            Ok(Host::Ipv4(_) | Host::Ipv6(_)) => {
                return Err(format!(
                    "`{text}`: redirect domains are domain names, not IP addresses"
                ))
            }
            Err(e) => return Err(format!("`{text}` is not a domain name: {e}")),
        };
        if wildcard && !host.contains('.') {
            return Err(format!(
                "`{text}` would agree to a whole top-level domain; name the partner's own domain"
            ));
        }
        Ok(DomainPattern {
            wildcard,
            host,
            port,
        })
    }

    /// Whether `host` (already parsed, lowercase) on `port` (`None`: the default) matches.
    pub fn matches(&self, host: &str, port: Option<u16>) -> bool {
        if port != self.port {
            return false;
        }
        if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(self.host.as_str())
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Why a `redirect_uri` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectProblem {
    /// Not an absolute URL, or longer than [`REDIRECT_URI_MAX`].
    NotUrl,
    /// Another scheme than `https` (`javascript:`, `data:`, `http:` …).
    NotHttps,
    /// It carries a user name or password (`https://cmp.example@evil.com`).
    UserInfo,
    /// It carries a fragment.
    Fragment,
    /// Its host is not one of the agreed domains (or has no domain name at all).
    NotAgreed,
}

impl fmt::Display for RedirectProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RedirectProblem::NotUrl => "not an absolute URL",
            RedirectProblem::NotHttps => "not https",
            RedirectProblem::UserInfo => "carries a user name or password",
            RedirectProblem::Fragment => "carries a fragment",
            RedirectProblem::NotAgreed => "host not among the agreed domains",
        })
    }
}

/// Parses a `redirect_uri` and checks everything but the agreed domains.
pub fn parse_redirect(text: &str) -> Result<Url, RedirectProblem> {
    if text.len() > REDIRECT_URI_MAX {
        return Err(RedirectProblem::NotUrl);
    }
    let url = Url::parse(text).map_err(|_| RedirectProblem::NotUrl)?;
    if url.scheme() != "https" {
        return Err(RedirectProblem::NotHttps);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectProblem::UserInfo);
    }
    if url.fragment().is_some() {
        return Err(RedirectProblem::Fragment);
    }
    Ok(url)
}

/// Whether `url`'s host and port match one of `domains`.
pub fn agreed(url: &Url, domains: &[DomainPattern]) -> bool {
    match url.host() {
        Some(Host::Domain(host)) => domains.iter().any(|d| d.matches(host, url.port())),
        _ => false,
    }
}

/// Parses a `redirect_uri` and checks it against `domains`.
pub fn check_redirect(text: &str, domains: &[DomainPattern]) -> Result<Url, RedirectProblem> {
    let url = parse_redirect(text)?;
    if agreed(&url, domains) {
        Ok(url)
    } else {
        Err(RedirectProblem::NotAgreed)
    }
}

/// A partner's registered touchpoint page (`login_url`): an https URL without userinfo or
/// fragment; a query is allowed (the hub appends its parameters after it).
pub fn parse_page(text: &str) -> Result<Url, String> {
    parse_redirect(text).map_err(|problem| match problem {
        RedirectProblem::NotHttps => format!("`{text}` must be an https:// URL"),
        RedirectProblem::UserInfo => format!("`{text}` must not carry a user name or password"),
        RedirectProblem::Fragment => format!("`{text}` must not carry a fragment"),
        RedirectProblem::NotUrl | RedirectProblem::NotAgreed => {
            format!("`{text}` is not an absolute URL")
        }
    })
}

/// Appends `name=value` pairs to `url`'s query, after the pairs it has, each value
/// percent-encoded (a space as `%20`, which form decoders and URI decoders both read back).
pub fn append_query(url: &mut Url, pairs: &[(&str, &str)]) {
    let mut query = url.query().unwrap_or_default().to_owned();
    for (name, value) in pairs {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(name);
        query.push('=');
        // byte_serialize writes a space as `+` and a literal `+` as `%2B`, so every `+` left
        // in its output stands for a space.
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        query.push_str(&encoded.replace('+', "%20"));
    }
    url.set_query(Some(&query));
}

#[cfg(test)]
mod tests;
