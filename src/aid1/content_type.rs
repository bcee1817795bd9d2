//! Chapter 6's content type: a request with a non-empty body must say `application/json`
//! (case-insensitive; parameters are allowed, but a `charset` must be UTF-8), in one
//! `Content-Type` header. A request without a body is not checked (a body where the function
//! defines none is refused by [`crate::aid1::request()`]).

use crate::aid1::function::Function;
use crate::aid1::headers::single;
use crate::aid1::violation::{Violation, ViolationKind};
use http::header::CONTENT_TYPE;
use http::HeaderMap;

/// Checks chapter 6's content type for a request to `function` whose body is `body_len`
/// bytes long.
pub fn check_content_type(
    map: &HeaderMap,
    function: Function,
    body_len: usize,
) -> Result<(), Violation> {
    if body_len == 0 {
        return Ok(());
    }
    let unsupported = |reason: String| {
        Violation::new(ViolationKind::UnsupportedMediaType, "content-type", reason)
    };
    let value = match single(map, &CONTENT_TYPE, ViolationKind::UnsupportedMediaType)? {
        Some(value) => value,
        None => {
            return Err(unsupported(format!(
                "{} needs Content-Type application/json",
                function.title()
            )))
        }
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(unsupported("must be application/json".to_owned()));
    }
    for parameter in parts {
        let (name, param_value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = param_value.trim().trim_matches('"');
            if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
                return Err(unsupported("the charset must be utf-8".to_owned()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn content_type() {
        let f = Function::SendCsimStatus;
        let ok = |value: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            check_content_type(&map, f, 10)
        };
        for value in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/json; version=1",
        ] {
            assert!(ok(value).is_ok(), "{value}");
        }
        for value in [
            "text/plain",
            "application/json-patch+json",
            "application/jsonx",
            "application/json; charset=iso-8859-1",
            "",
        ] {
            assert_eq!(
                ok(value).unwrap_err().kind,
                ViolationKind::UnsupportedMediaType,
                "{value}"
            );
        }
        let none = HeaderMap::new();
        assert_eq!(
            check_content_type(&none, f, 1).unwrap_err().kind,
            ViolationKind::UnsupportedMediaType
        );
        assert!(check_content_type(&none, Function::RequestInvalidateMspToken, 0).is_ok());
        let mut twice = HeaderMap::new();
        twice.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        twice.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(check_content_type(&twice, f, 2).is_err());
    }
}
