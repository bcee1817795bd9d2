//! Which function a request is: [`route`] matches method, path and query against the nine
//! templates of [`Function::path_template`] and checks the path parameters.
//!
//! Rules:
//!
//! * The path must match one template exactly, segment by segment and case-sensitively: no
//!   trailing slash, no doubled slash, no `%`-escapes (a `%` never matches a literal segment
//!   and is refused in a parameter), no dot-segments.
//! * A path that matches a template with another method is
//!   [`ViolationKind::MethodNotAllowed`] (each path takes one method); a path that matches
//!   none is [`ViolationKind::UnknownFunction`].
//! * `{msp_token}`: a UUID in canonical hyphenated form, any case
//!   ([`ViolationKind::BadMspToken`]). `{account_id}`: `[A-Za-z0-9._-]+`, at most 4096,
//!   not `.` or `..` ([`ViolationKind::BadAccountId`]).
//! * Query: an empty query (`…?`) counts as none. Only Request Profile Status takes one, and
//!   only exactly `iccid=<ICCID>` (one parameter, no escapes, ICCID per [`Rules`]); anything
//!   else is [`ViolationKind::BadPathParam`].

use crate::aid1::function::Function;
use crate::aid1::request::Rules;
use crate::aid1::types::{AccountIdText, Iccid, MspToken};
use crate::aid1::violation::{Violation, ViolationKind};
use http::Method;
use std::sync::LazyLock;

/// What the method, path and query said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The function.
    pub function: Function,
    /// The `{msp_token}` path parameter (every function but Send MSP Token).
    pub msp_token: Option<crate::aid1::types::MspToken>,
    /// The `{account_id}` path parameter (Send MSP Token only; redacted in `Debug`).
    pub account_id: Option<AccountIdText>,
    /// The `?iccid=` of Request Profile Status, if given.
    pub iccid: Option<Iccid>,
}

/// [`route_with_rules`] with the default [`Rules`] (ICCIDs of 18–22 digits).
pub fn route(method: &Method, path: &str, query: Option<&str>) -> Result<Route, Violation> {
    route_with_rules(method, path, query, &Rules::default())
}

/// Matches a request to its function and checks the path parameters and query; `rules`
/// decides the ICCID length of Request Profile Status's query.
pub fn route_with_rules(
    method: &Method,
    path: &str,
    query: Option<&str>,
    rules: &Rules,
) -> Result<Route, Violation> {
    let (function, param) = match_path(path).ok_or_else(|| {
        Violation::new(
            ViolationKind::UnknownFunction,
            "path",
            "no AID1 function has this path",
        )
    })?;
    if *method != function.method() {
        return Err(Violation::new(
            ViolationKind::MethodNotAllowed {
                allow: function.method(),
            },
            "method",
            format!("{} takes {}", function.title(), function.method()),
        ));
    }
    let mut route = Route {
        function,
        msp_token: None,
        account_id: None,
        iccid: None,
    };
    if function == Function::SendMspToken {
        route.account_id = Some(
            AccountIdText::parse(param)
                .map_err(|r| Violation::new(ViolationKind::BadAccountId, "account_id", r))?,
        );
    } else {
        if param.contains('%') {
            return Err(Violation::new(
                ViolationKind::BadMspToken,
                "msp_token",
                "percent-encoding is not allowed",
            ));
        }
        route.msp_token = Some(
            MspToken::parse(param)
                .map_err(|r| Violation::new(ViolationKind::BadMspToken, "msp_token", r))?,
        );
    }
    match query.filter(|q| !q.is_empty()) {
        None => {}
        Some(q) if function == Function::RequestProfileStatus => {
            route.iccid = Some(iccid_query(q, rules)?);
        }
        Some(_) => {
            return Err(Violation::new(
                ViolationKind::BadPathParam,
                "query",
                format!("{} takes no query parameters", function.title()),
            ));
        }
    }
    Ok(route)
}

/// The most segments a template has (Notify MSP Token Invalid's six).
const MAX_SEGMENTS: usize = 6;

/// Each function's template, split into segments once.
static TEMPLATES: LazyLock<Vec<(Function, Vec<&'static str>)>> = LazyLock::new(|| {
    Function::ALL
        .into_iter()
        .map(|function| {
            let template = function.path_template().trim_start_matches('/');
            let segments: Vec<&'static str> = template.split('/').collect();
            assert!(
                segments.len() <= MAX_SEGMENTS,
                "{template}: too many segments"
            );
            (function, segments)
        })
        .collect()
});

/// The function whose template `path` fits, and the text of its one parameter segment.
fn match_path(path: &str) -> Option<(Function, &str)> {
    let rest = path.strip_prefix('/')?;
    // The path is split once, byte by byte (it is short: `str::split` paid a memchr setup per
    // segment); a path longer than every template matches none.
    let mut segments = [""; MAX_SEGMENTS];
    let mut count = 0;
    let mut start = 0;
    for (at, byte) in rest.bytes().enumerate() {
        if byte == b'/' {
            *segments.get_mut(count)? = &rest[start..at];
            count += 1;
            start = at + 1;
        }
    }
    *segments.get_mut(count)? = &rest[start..];
    count += 1;
    let segments = &segments[..count];
    TEMPLATES.iter().find_map(|(function, template)| {
        if template.len() != segments.len() {
            return None;
        }
        let mut param = None;
        for (expected, segment) in template.iter().zip(segments) {
            if expected.starts_with('{') {
                param = Some(*segment);
            } else if expected != segment {
                return None;
            }
        }
        param.map(|p| (*function, p))
    })
}

/// `iccid=<ICCID>` and nothing else.
fn iccid_query(query: &str, rules: &Rules) -> Result<Iccid, Violation> {
    let bad = |reason: &str| Violation::new(ViolationKind::BadPathParam, "iccid", reason);
    let value = query
        .strip_prefix("iccid=")
        .ok_or_else(|| bad("the only query parameter is iccid"))?;
    if value.contains(['&', ';', '=']) {
        return Err(bad("the only query parameter is iccid, given once"));
    }
    if value.contains(['%', '+']) {
        return Err(bad("escapes are not allowed"));
    }
    Iccid::parse(value, rules.strict_iccid).map_err(|r| bad(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "25bca1e2-338f-11d6-ac61-9e71138fd521";
    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOiIxNTgwNzI0MDAwIn0.ZbD3EEYryEp4yub_8Ca_PYi22TatV2N3TBuf2nNy5Bs";

    fn concrete(function: Function) -> String {
        function
            .path_template()
            .replace("{msp_token}", TOKEN)
            .replace("{account_id}", JWT)
    }

    #[test]
    fn every_function_routes() {
        for function in Function::ALL {
            let r = route(&function.method(), &concrete(function), None).unwrap();
            assert_eq!(r.function, function);
            assert_eq!(r.iccid, None);
            if function == Function::SendMspToken {
                assert_eq!(
                    r.account_id.map(|a| a.expose().to_owned()).as_deref(),
                    Some(JWT)
                );
                assert_eq!(r.msp_token, None);
            } else {
                assert_eq!(r.msp_token.map(|t| t.to_string()).as_deref(), Some(TOKEN));
            }
        }
    }

    #[test]
    fn msp_tokens_are_lower_cased() {
        let path = format!("/v1/users/{}", TOKEN.to_uppercase());
        let r = route(&Method::DELETE, &path, None).unwrap();
        assert_eq!(r.msp_token.map(|t| t.to_string()).as_deref(), Some(TOKEN));
    }

    #[test]
    fn wrong_methods_name_the_right_one() {
        for function in Function::ALL {
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::HEAD,
            ] {
                if method == function.method() {
                    continue;
                }
                let v = route(&method, &concrete(function), None).unwrap_err();
                assert_eq!(
                    v.kind,
                    ViolationKind::MethodNotAllowed {
                        allow: function.method()
                    }
                );
            }
        }
    }

    #[test]
    fn unknown_paths() {
        for path in [
            "",
            "/",
            "v1/users/25bca1e2-338f-11d6-ac61-9e71138fd521",
            "/v1/users/25bca1e2-338f-11d6-ac61-9e71138fd521/",
            "//v1/users/25bca1e2-338f-11d6-ac61-9e71138fd521",
            "/v1//users/25bca1e2-338f-11d6-ac61-9e71138fd521",
            "/V1/users/25bca1e2-338f-11d6-ac61-9e71138fd521",
            "/v1/us%65rs/25bca1e2-338f-11d6-ac61-9e71138fd521",
            "/v2/users/25bca1e2-338f-11d6-ac61-9e71138fd521",
            "/cesim/msp/v1/users/a/b/invalidate",
            "/cesim/msp/v1/users/25bca1e2-338f-11d6-ac61-9e71138fd521/invalidate/x",
            "/cesim/msp/v1/users/25bca1e2-338f-11d6-ac61-9e71138fd521/invalidate/x/y/z",
            "/v1/profiles/status",
            "/v1/profiles/status/",
        ] {
            let v = route(&Method::DELETE, path, None).unwrap_err();
            let expected = if path == "/v1/profiles/status/" {
                ViolationKind::MethodNotAllowed { allow: Method::GET }
            } else {
                ViolationKind::UnknownFunction
            };
            assert_eq!(v.kind, expected, "{path}");
        }
    }

    #[test]
    fn bad_msp_tokens() {
        for token in [
            "",
            "not-a-uuid",
            "25bca1e2338f11d6ac619e71138fd521",
            "{25bca1e2-338f-11d6-ac61-9e71138fd521}",
            "25bca1e2-338f-11d6-ac61-9e71138fd52%31",
            "25bca1e2-338f-11d6-ac61-9e71138fd5211",
            "..",
        ] {
            let v = route(&Method::POST, &format!("/v1/statuses/{token}"), None).unwrap_err();
            assert_eq!(
                (v.kind, v.field.as_str()),
                (ViolationKind::BadMspToken, "msp_token"),
                "{token}"
            );
        }
    }

    #[test]
    fn bad_account_ids_never_echo_the_value() {
        let long = "a".repeat(4097);
        for account in ["", "..", "abc%2Edef", "abc def", "abc+def", long.as_str()] {
            let v = route(
                &Method::POST,
                &format!("/cesim/msp/v1/users/{account}"),
                None,
            )
            .unwrap_err();
            assert_eq!(v.kind, ViolationKind::BadAccountId, "{account}");
            assert!(account.is_empty() || !v.to_string().contains(account));
        }
    }

    #[test]
    fn profile_status_query() {
        let path = format!("/v1/profiles/status/{TOKEN}");
        let r = route(&Method::GET, &path, Some("iccid=8944500805172032953")).unwrap();
        assert_eq!(
            r.iccid.map(|i| i.to_string()).as_deref(),
            Some("8944500805172032953")
        );
        assert!(route(&Method::GET, &path, Some(""))
            .unwrap()
            .iccid
            .is_none());
        let strict = Rules { strict_iccid: true };
        let v = route_with_rules(
            &Method::GET,
            &path,
            Some("iccid=8944500805172032953"),
            &strict,
        )
        .unwrap_err();
        assert_eq!(
            (v.kind, v.field.as_str()),
            (ViolationKind::BadPathParam, "iccid")
        );
        for query in [
            "iccid=",
            "iccid",
            "ICCID=98341201501601380129",
            "iccid=98341201501601380129&iccid=98341201501601380128",
            "iccid=98341201501601380129&x=1",
            "x=1",
            "iccid=9834120150160138012%39",
            "iccid=+98341201501601380129",
            "iccid=98341201501601380129;x",
        ] {
            let v = route(&Method::GET, &path, Some(query)).unwrap_err();
            assert_eq!(v.kind, ViolationKind::BadPathParam, "{query}");
        }
    }

    #[test]
    fn other_functions_take_no_query() {
        for function in Function::ALL
            .into_iter()
            .filter(|f| *f != Function::RequestProfileStatus)
        {
            let v = route(
                &function.method(),
                &concrete(function),
                Some("iccid=98341201501601380129"),
            )
            .unwrap_err();
            assert_eq!(
                (v.kind, v.field.as_str()),
                (ViolationKind::BadPathParam, "query")
            );
            assert!(route(&function.method(), &concrete(function), Some("")).is_ok());
        }
    }
}
