//! TS.43 configuration documents as characteristic trees: the XML `wap-provisioningdoc`
//! (nested `<characteristic type="…">` holding `<parm name="…" value="…"/>`) and the JSON
//! form (`"Vers"`, `"Token"` and one object per app ID), parsed into one [`Document`] and
//! written back in either format.
//!
//! The XML reader is small and hand-written for this subset, with AOSP's tolerances: the
//! root element's name is not checked, text between elements is ignored, and a bare `&`
//! that starts no entity is read as itself (AOSP rewrites `&` before parsing because
//! "some server doesn't escape" it). Parm names are looked up case-insensitively,
//! characteristic types case-sensitively, as AOSP does. `Debug` never prints a value:
//! documents carry tokens, phone numbers and activation codes.

use bytes::Bytes;
use std::fmt;

use super::Format;

/// Deepest nesting accepted (the transfer documents use four levels).
const MAX_DEPTH: usize = 16;

/// One `<parm>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Parm {
    /// Its name, as written.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl fmt::Debug for Parm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=…", self.name)
    }
}

/// One `<characteristic>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Characteristic {
    /// Its `type`.
    pub kind: String,
    /// Its parms, in order.
    pub parms: Vec<Parm>,
    /// Nested characteristics, in order.
    pub children: Vec<Characteristic>,
}

/// A whole document: the characteristics under the root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    /// Top-level characteristics (`VERS`, `TOKEN`, `APPLICATION`…).
    pub roots: Vec<Characteristic>,
}

impl Characteristic {
    /// A characteristic of `kind` with `parms`.
    pub fn new(kind: &str, parms: &[(&str, &str)]) -> Characteristic {
        Characteristic {
            kind: kind.to_owned(),
            parms: parms
                .iter()
                .map(|(n, v)| Parm {
                    name: (*n).to_owned(),
                    value: (*v).to_owned(),
                })
                .collect(),
            children: Vec::new(),
        }
    }

    /// The value of parm `name` (case-insensitive, as AOSP reads it).
    pub fn parm(&self, name: &str) -> Option<&str> {
        self.parms
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_str())
    }

    /// Sets parm `name`, replacing its value or appending it.
    pub fn set_parm(&mut self, name: &str, value: &str) {
        match self
            .parms
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(p) => p.value = value.to_owned(),
            None => self.parms.push(Parm {
                name: name.to_owned(),
                value: value.to_owned(),
            }),
        }
    }

    /// The first child of `kind` (case-sensitive).
    pub fn child(&self, kind: &str) -> Option<&Characteristic> {
        self.children.iter().find(|c| c.kind == kind)
    }

    /// The first child of `kind`, mutable.
    pub fn child_mut(&mut self, kind: &str) -> Option<&mut Characteristic> {
        self.children.iter_mut().find(|c| c.kind == kind)
    }
}

impl Document {
    /// The first top-level characteristic of `kind`.
    pub fn root(&self, kind: &str) -> Option<&Characteristic> {
        self.roots.iter().find(|c| c.kind == kind)
    }

    /// The first `APPLICATION`.
    pub fn application(&self) -> Option<&Characteristic> {
        self.root("APPLICATION")
    }

    /// The first `APPLICATION`, mutable.
    pub fn application_mut(&mut self) -> Option<&mut Characteristic> {
        self.roots.iter_mut().find(|c| c.kind == "APPLICATION")
    }

    /// `TOKEN/token`, if the document carries one.
    pub fn token(&self) -> Option<&str> {
        self.root("TOKEN").and_then(|t| t.parm("token"))
    }

    /// Reads a body in `format`.
    pub fn parse(body: &[u8], format: Format) -> Result<Document, String> {
        let text = std::str::from_utf8(body).map_err(|_| "the document is not UTF-8")?;
        match format {
            Format::Xml => xml::parse(text),
            Format::Json => parse_json(text),
        }
    }

    /// Writes the document in `format`.
    pub fn serialise(&self, format: Format) -> Bytes {
        match format {
            Format::Xml => Bytes::from(self.to_xml()),
            Format::Json => Bytes::from(self.to_json()),
        }
    }

    fn to_xml(&self) -> String {
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<wap-provisioningdoc version=\"1.1\">\n",
        );
        for c in &self.roots {
            xml_characteristic(&mut out, c, 1);
        }
        out.push_str("</wap-provisioningdoc>\n");
        out
    }

    fn to_json(&self) -> String {
        let mut out = String::from("{");
        let mut first = true;
        for c in &self.roots {
            let (key, skip_app_id) = match c.kind.as_str() {
                "VERS" => ("Vers".to_owned(), false),
                "TOKEN" => ("Token".to_owned(), false),
                "APPLICATION" => match c.parm("AppID") {
                    Some(app) => (app.to_owned(), true),
                    None => ("APPLICATION".to_owned(), false),
                },
                other => (other.to_owned(), false),
            };
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&json_string(&key));
            out.push(':');
            json_object(&mut out, c, skip_app_id);
        }
        out.push('}');
        out
    }
}

/// The hub's own refusal document: `OperationResult` and `GeneralErrorText` for `app`.
pub fn refusal(app: &str, result: u16, text: &str) -> Document {
    let result = result.to_string();
    Document {
        roots: vec![
            Characteristic::new("VERS", &[("version", "0"), ("validity", "0")]),
            Characteristic::new(
                "APPLICATION",
                &[
                    ("AppID", app),
                    ("OperationResult", &result),
                    ("GeneralErrorText", text),
                ],
            ),
        ],
    }
}

fn xml_characteristic(out: &mut String, c: &Characteristic, depth: usize) {
    let pad = "  ".repeat(depth);
    out.push_str(&format!(
        "{pad}<characteristic type=\"{}\">\n",
        xml_escape(&c.kind)
    ));
    for p in &c.parms {
        out.push_str(&format!(
            "{pad}  <parm name=\"{}\" value=\"{}\"/>\n",
            xml_escape(&p.name),
            xml_escape(&p.value)
        ));
    }
    for child in &c.children {
        xml_characteristic(out, child, depth + 1);
    }
    out.push_str(&format!("{pad}</characteristic>\n"));
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn json_object(out: &mut String, c: &Characteristic, skip_app_id: bool) {
    out.push('{');
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push(',');
        }
        first = false;
    };
    for p in &c.parms {
        if skip_app_id && p.name == "AppID" {
            continue;
        }
        sep(out);
        out.push_str(&json_string(&p.name));
        out.push(':');
        out.push_str(&json_string(&p.value));
    }
    let mut done: Vec<&str> = Vec::new();
    for child in &c.children {
        if done.contains(&child.kind.as_str()) {
            continue;
        }
        done.push(&child.kind);
        let same: Vec<&Characteristic> =
            c.children.iter().filter(|k| k.kind == child.kind).collect();
        sep(out);
        out.push_str(&json_string(&child.kind));
        out.push(':');
        if same.len() == 1 {
            json_object(out, child, false);
        } else {
            out.push('[');
            for (i, k) in same.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_object(out, k, false);
            }
            out.push(']');
        }
    }
    out.push('}');
}

fn parse_json(text: &str) -> Result<Document, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("the JSON document is not an object".into());
    };
    let mut roots = Vec::new();
    for (key, value) in map {
        let (kind, app) = match key.as_str() {
            "Vers" | "VERS" => ("VERS".to_owned(), None),
            "Token" | "TOKEN" => ("TOKEN".to_owned(), None),
            k if is_app_id(k) => ("APPLICATION".to_owned(), Some(k.to_owned())),
            k => (k.to_owned(), None),
        };
        let mut items = json_characteristics(&kind, &value, 1)?;
        if let Some(app) = app {
            for item in &mut items {
                item.parms.insert(
                    0,
                    Parm {
                        name: "AppID".into(),
                        value: app.clone(),
                    },
                );
            }
        }
        roots.extend(items);
    }
    Ok(Document { roots })
}

fn is_app_id(key: &str) -> bool {
    key.len() == 6 && key.starts_with("ap") && key[2..].bytes().all(|b| b.is_ascii_digit())
}

fn json_characteristics(
    kind: &str,
    value: &serde_json::Value,
    depth: usize,
) -> Result<Vec<Characteristic>, String> {
    if depth > MAX_DEPTH {
        return Err("the document nests too deep".into());
    }
    match value {
        serde_json::Value::Object(map) => {
            let mut c = Characteristic {
                kind: kind.to_owned(),
                ..Characteristic::default()
            };
            for (key, v) in map {
                match v {
                    serde_json::Value::Object(_) => {
                        c.children.extend(json_characteristics(key, v, depth + 1)?)
                    }
                    serde_json::Value::Array(items)
                        if items.iter().all(|i| i.is_object()) && !items.is_empty() =>
                    {
                        c.children.extend(json_characteristics(key, v, depth + 1)?)
                    }
                    other => c.parms.push(Parm {
                        name: key.clone(),
                        value: json_scalar(other),
                    }),
                }
            }
            Ok(vec![c])
        }
        serde_json::Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                out.extend(json_characteristics(kind, item, depth + 1)?);
            }
            Ok(out)
        }
        _ => Err(format!("`{kind}` is not an object")),
    }
}

fn json_scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Array(items) => {
            items.iter().map(json_scalar).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    }
}

mod xml;

#[cfg(test)]
mod tests;
