//! Reading a JSON body once: bytes into one [`Json`] value (refusing duplicate member names)
//! that borrows its strings from the body, then typed access to its members by name, each
//! failure a [`Violation`] naming the JSON path (`profiles[1].status`). The per-function files
//! only say which members they want and what they must look like.
//!
//! Why not `serde_json::Value`: it allocates every member name and string and keeps objects
//! in a `BTreeMap`. An AID1 body has a handful of members and is read once, so the value
//! borrows what it can from the body (a string with escapes is the exception) and keeps an
//! object's members in order in a vector; about 5 000 instructions per request went to
//! building and dropping the `Value`s of the body and of the partner's answer.

use crate::aid1::violation::{Violation, ViolationKind};
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::borrow::Cow;
use std::collections::HashSet;

/// The `field` used for problems with the body as a whole.
pub(crate) const BODY: &str = "body";

/// Whether the body is empty or only JSON whitespace.
pub(crate) fn is_blank(body: &[u8]) -> bool {
    body.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Parses `body` as one JSON value, refusing duplicate member names at any depth.
pub(crate) fn parse_value(body: &[u8]) -> Result<Json<'_>, Violation> {
    let parsed = match std::str::from_utf8(body) {
        // Checked as UTF-8 whole, once: read from a `str`, serde_json does not check each
        // string again.
        Ok(text) => serde_json::from_str::<Json>(text),
        // Read as bytes, serde_json names the line and column of the bad sequence.
        Err(_) => serde_json::from_slice::<Json>(body),
    };
    parsed.map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "the JSON text ends early",
            serde_json::error::Category::Data => "a JSON object repeats a member name",
            _ => "not valid JSON",
        };
        Violation::syntax(
            BODY,
            format!("{what} (line {}, column {})", e.line(), e.column()),
        )
    })
}

/// Parses a body that must be a JSON object: blank is [`ViolationKind::EmptyBody`], anything
/// else that is not an object is [`ViolationKind::Syntax`].
pub(crate) fn parse_object(body: &[u8]) -> Result<Members<'_>, Violation> {
    if is_blank(body) {
        return Err(Violation::new(
            ViolationKind::EmptyBody,
            BODY,
            "the request body is empty",
        ));
    }
    match parse_value(body)? {
        Json::Object(map) => Ok(map),
        Json::Null => Err(Violation::new(
            ViolationKind::EmptyBody,
            BODY,
            "the body is null",
        )),
        _ => Err(Violation::syntax(BODY, "the body must be a JSON object")),
    }
}

/// A JSON object and the path that leads to it (empty for the body itself).
pub(crate) struct Obj<'a> {
    map: &'a Members<'a>,
    path: String,
}

impl<'a> Obj<'a> {
    /// The body object.
    pub(crate) fn root(map: &'a Members<'a>) -> Self {
        Obj {
            map,
            path: String::new(),
        }
    }

    /// The JSON path of member `name`.
    pub(crate) fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// Member `name`, `None` when absent or `null`.
    pub(crate) fn get(&self, name: &str) -> Option<&'a Json<'a>> {
        self.map.get(name).filter(|v| !matches!(v, Json::Null))
    }

    /// A required member: absent is `Syntax`, `null` is `EmptyBody`.
    pub(crate) fn required(&self, name: &str) -> Result<&'a Json<'a>, Violation> {
        match self.map.get(name) {
            None => Err(Violation::syntax(self.path_of(name), "is required")),
            Some(Json::Null) => Err(Violation::new(
                ViolationKind::EmptyBody,
                self.path_of(name),
                "must not be null",
            )),
            Some(v) => Ok(v),
        }
    }

    /// A required string member.
    pub(crate) fn str(&self, name: &str) -> Result<&'a str, Violation> {
        let value = self.required(name)?;
        value
            .as_str()
            .ok_or_else(|| Violation::syntax(self.path_of(name), "must be a string"))
    }

    /// An optional string member (`null` is absent).
    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<&'a str>, Violation> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(_) => Err(Violation::syntax(self.path_of(name), "must be a string")),
        }
    }

    /// A required array member, non-empty and at most `max` long.
    pub(crate) fn array(&self, name: &str, max: usize) -> Result<&'a [Json<'a>], Violation> {
        let items = self.list(name, max)?;
        if items.is_empty() {
            return Err(Violation::syntax(self.path_of(name), "must not be empty"));
        }
        Ok(items)
    }

    /// A required array member, possibly empty, at most `max` long.
    pub(crate) fn list(&self, name: &str, max: usize) -> Result<&'a [Json<'a>], Violation> {
        let items = self
            .required(name)?
            .as_array()
            .ok_or_else(|| Violation::syntax(self.path_of(name), "must be an array"))?;
        if items.len() > max {
            return Err(Violation::syntax(
                self.path_of(name),
                format!("has more than {max} entries"),
            ));
        }
        Ok(items)
    }

    /// Entry `index` of array member `name`, which must be an object.
    pub(crate) fn entry(
        &self,
        name: &str,
        index: usize,
        value: &'a Json<'a>,
    ) -> Result<Self, Violation> {
        let path = format!("{}[{index}]", self.path_of(name));
        match value {
            Json::Object(map) => Ok(Obj { map, path }),
            Json::Null => Err(Violation::new(
                ViolationKind::EmptyBody,
                path,
                "must not be null",
            )),
            _ => Err(Violation::syntax(path, "must be an object")),
        }
    }
}

/// A JSON value whose strings borrow from the text they were read from where they can,
/// and whose objects have no duplicate member names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Members<'a>),
}

impl<'a> Json<'a> {
    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub(crate) fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// An object's members in the order they came, names unique.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Members<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Members<'a> {
    /// The value of member `name`. A linear search: AID1 objects have a handful of members,
    /// and a large object is looked up only by the few names a function reads.
    pub(crate) fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

/// The members an object's vector has room for from the start: an AID1 body has at most six
/// (Send MSP Token, Request Activation Code, Send Activation Code).
const MEMBERS: usize = 8;

/// Up to this many members, a new name is checked against the others one by one; past it, a
/// hash set keeps the check linear for a large object (the body cap allows a million bytes).
const LINEAR_NAMES: usize = 16;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Json<'de>, A::Error> {
        // Room for an AID1 object's members at once, so that the vector is not grown from 4
        // to 8 on the way (a reallocation and a copy).
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::with_capacity(MEMBERS);
        let mut names: Option<HashSet<Cow<'de, str>, foldhash::fast::RandomState>> = None;
        while let Some(name) = access.next_key_seed(Name)? {
            let repeated = match &mut names {
                Some(set) => !set.insert(name.clone()),
                None => members.iter().any(|(n, _)| *n == name),
            };
            if repeated {
                return Err(de::Error::custom("duplicate member name"));
            }
            members.push((name, access.next_value()?));
            if names.is_none() && members.len() == LINEAR_NAMES {
                names = Some(members.iter().map(|(n, _)| n.clone()).collect());
            }
        }
        Ok(Json::Object(Members(members)))
    }
}

/// A member name, borrowed from the text unless it has escapes.
struct Name;

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_bodies_are_empty() {
        for body in [&b""[..], b"  \r\n\t", b"null"] {
            let v = parse_object(body).unwrap_err();
            assert_eq!(v.kind, ViolationKind::EmptyBody);
        }
    }

    #[test]
    fn non_objects_and_garbage_are_syntax() {
        for body in [
            &b"[]"[..],
            b"\"x\"",
            b"1",
            b"{",
            b"{\"a\":}",
            b"\xff",
            b"{} {}",
            b"\xef\xbb\xbf{}",
        ] {
            let v = parse_object(body).unwrap_err();
            assert_eq!(v.kind, ViolationKind::Syntax, "{body:?}");
            assert_eq!(v.field, BODY);
        }
    }

    #[test]
    fn bad_utf8_is_placed_by_line_and_column() {
        let v = parse_object(b"{\"a\":\n  \"x\xff\"}").unwrap_err();
        assert_eq!(v.kind, ViolationKind::Syntax);
        assert!(v.reason.contains("line 2, column"), "{v}");
        let map = parse_object("{\"a\":\n  \"x\u{e9}\"}".as_bytes()).unwrap();
        assert_eq!(map.get("a").and_then(Json::as_str), Some("x\u{e9}"));
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        let v = parse_object(br#"{"a":1,"a":2}"#).unwrap_err();
        assert!(v.reason.contains("repeats a member name"), "{v}");
        let v = parse_object(br#"{"p":[{"x":1,"x":1}]}"#).unwrap_err();
        assert_eq!(v.kind, ViolationKind::Syntax);
        assert!(parse_object(br#"{"a":{"b":1},"c":{"b":2}}"#).is_ok());
    }

    /// Names are compared as read, escapes resolved, whether the object is small (checked
    /// one by one) or past [`LINEAR_NAMES`] (checked in a set), and either side of that line.
    #[test]
    fn duplicates_are_found_through_escapes_and_in_large_objects() {
        let v = parse_object(br#"{"a":1,"\u0061":2}"#).unwrap_err();
        assert!(v.reason.contains("repeats a member name"), "{v}");
        let object = |names: &[String]| {
            let members: Vec<String> = names.iter().map(|n| format!("\"{n}\":0")).collect();
            format!("{{{}}}", members.join(","))
        };
        let distinct: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
        assert!(parse_object(object(&distinct).as_bytes()).is_ok());
        for at in [1, LINEAR_NAMES - 1, LINEAR_NAMES, LINEAR_NAMES + 1, 39] {
            let mut names = distinct.clone();
            names[at] = "m0".to_owned();
            let v = parse_object(object(&names).as_bytes()).unwrap_err();
            assert!(v.reason.contains("repeats a member name"), "{at}: {v}");
            names[at] = "\\u006d0".to_owned();
            assert!(
                parse_object(object(&names).as_bytes()).is_err(),
                "{at} escaped"
            );
        }
        let many: Vec<String> = (0..50_000).map(|i| format!("n{i}")).collect();
        let text = object(&many);
        let map = parse_object(text.as_bytes()).unwrap();
        assert_eq!(map.get("n49999"), Some(&Json::Number(0.into())));
    }

    /// Strings without escapes are borrowed from the body; with escapes, they are owned.
    #[test]
    fn plain_strings_borrow_from_the_body() {
        let map = parse_object(br#"{"plain":"x","escaped":"\u00e9\n"}"#).unwrap();
        assert!(matches!(
            map.get("plain"),
            Some(Json::String(Cow::Borrowed("x")))
        ));
        assert!(matches!(
            map.get("escaped"),
            Some(Json::String(Cow::Owned(s))) if s == "\u{e9}\n"
        ));
    }

    #[test]
    fn out_of_range_numbers_are_not_reported_as_duplicates() {
        let v = parse_object(br#"{"a":1e400}"#).unwrap_err();
        assert!(v.reason.starts_with("not valid JSON"), "{v}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_object(deep.as_bytes()).is_err());
    }

    #[test]
    fn member_access_names_paths() {
        let map = parse_object(br#"{"s":"x","n":null,"i":1,"list":[{"k":2},null,3]}"#).unwrap();
        let obj = Obj::root(&map);
        assert_eq!(obj.str("s").unwrap(), "x");
        assert_eq!(obj.str("n").unwrap_err().kind, ViolationKind::EmptyBody);
        assert_eq!(obj.str("missing").unwrap_err().kind, ViolationKind::Syntax);
        assert_eq!(obj.str("i").unwrap_err().field, "i");
        assert_eq!(obj.opt_str("n").unwrap(), None);
        assert!(obj.opt_str("i").is_err());
        let list = obj.array("list", 10).unwrap();
        let first = obj.entry("list", 0, &list[0]).unwrap();
        assert_eq!(first.str("k").unwrap_err().field, "list[0].k");
        assert_eq!(
            obj.entry("list", 1, &list[1]).err().map(|v| v.kind),
            Some(ViolationKind::EmptyBody)
        );
        assert_eq!(
            obj.entry("list", 2, &list[2]).err().map(|v| v.field),
            Some("list[2]".to_owned())
        );
        assert!(obj.array("list", 2).is_err());
        assert!(obj.array("s", 2).is_err());
    }
}
