//! Reading a JSON body once: bytes into one `serde_json::Value` (refusing duplicate member
//! names), then typed access to its members by name, each failure a [`Violation`] naming the
//! JSON path (`profiles[1].status`). The per-function files only say which members they
//! want and what they must look like.

use crate::aid1::violation::{Violation, ViolationKind};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The `field` used for problems with the body as a whole.
pub(crate) const BODY: &str = "body";

/// Whether the body is empty or only JSON whitespace.
pub(crate) fn is_blank(body: &[u8]) -> bool {
    body.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Parses `body` as one JSON value, refusing duplicate member names at any depth.
pub(crate) fn parse_value(body: &[u8]) -> Result<Value, Violation> {
    let parsed = match std::str::from_utf8(body) {
        // Checked as UTF-8 whole, once: read from a `str`, serde_json does not check each
        // string again.
        Ok(text) => serde_json::from_str::<StrictValue>(text),
        // Read as bytes, serde_json names the line and column of the bad sequence.
        Err(_) => serde_json::from_slice::<StrictValue>(body),
    };
    parsed.map(|v| v.0).map_err(|e| {
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
pub(crate) fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Violation> {
    if is_blank(body) {
        return Err(Violation::new(
            ViolationKind::EmptyBody,
            BODY,
            "the request body is empty",
        ));
    }
    match parse_value(body)? {
        Value::Object(map) => Ok(map),
        Value::Null => Err(Violation::new(
            ViolationKind::EmptyBody,
            BODY,
            "the body is null",
        )),
        _ => Err(Violation::syntax(BODY, "the body must be a JSON object")),
    }
}

/// A JSON object and the path that leads to it (empty for the body itself).
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    /// The body object.
    pub(crate) fn root(map: &'a Map<String, Value>) -> Self {
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
    pub(crate) fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A required member: absent is `Syntax`, `null` is `EmptyBody`.
    pub(crate) fn required(&self, name: &str) -> Result<&'a Value, Violation> {
        match self.map.get(name) {
            None => Err(Violation::syntax(self.path_of(name), "is required")),
            Some(Value::Null) => Err(Violation::new(
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
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Violation::syntax(self.path_of(name), "must be a string")),
        }
    }

    /// A required array member, non-empty and at most `max` long.
    pub(crate) fn array(&self, name: &str, max: usize) -> Result<&'a [Value], Violation> {
        let items = self.list(name, max)?;
        if items.is_empty() {
            return Err(Violation::syntax(self.path_of(name), "must not be empty"));
        }
        Ok(items)
    }

    /// A required array member, possibly empty, at most `max` long.
    pub(crate) fn list(&self, name: &str, max: usize) -> Result<&'a [Value], Violation> {
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
        value: &'a Value,
    ) -> Result<Self, Violation> {
        let path = format!("{}[{index}]", self.path_of(name));
        match value {
            Value::Object(map) => Ok(Obj { map, path }),
            Value::Null => Err(Violation::new(
                ViolationKind::EmptyBody,
                path,
                "must not be null",
            )),
            _ => Err(Violation::syntax(path, "must be an object")),
        }
    }
}

/// A `serde_json::Value` whose objects had no duplicate member names.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom("duplicate member name"));
            }
            let StrictValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
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
        assert_eq!(map["a"], "x\u{e9}");
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        let v = parse_object(br#"{"a":1,"a":2}"#).unwrap_err();
        assert!(v.reason.contains("repeats a member name"), "{v}");
        let v = parse_object(br#"{"p":[{"x":1,"x":1}]}"#).unwrap_err();
        assert_eq!(v.kind, ViolationKind::Syntax);
        assert!(parse_object(br#"{"a":{"b":1},"c":{"b":2}}"#).is_ok());
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
