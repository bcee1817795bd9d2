//! Keeps `openapi/aid1.yaml` (the AID1 interface as the hub serves it to partners) and the
//! hub's validator and error mapping in agreement: a change to either side without the other
//! fails here.
//!
//! Every probe is built from the document itself. Each request and answer schema carries a
//! complete valid `example`; a probe changes one member of it (removes it, sets it to `null`,
//! to each documented enumeration value, to a value outside the enumeration, to a string of
//! exactly `maxLength` characters and of one more, …) and asks the validator, which must
//! accept exactly what the document allows. Paths go through the route matcher, headers
//! through the header validator, and the error codes the document lists are compared with
//! what [`HubError::status_and_code`] produces for every condition the hub can refuse on.

use aidhub::account_id::AccountIdError;
use aidhub::aid1::{self, Credential, Function, Role, Rules, Violation, ViolationKind};
use aidhub::error::{error_body, HubCode, HubError};
use aidhub::upstream::UpstreamFault;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_yaml::from_str(include_str!("../openapi/aid1.yaml"))
            .expect("openapi/aid1.yaml is YAML that maps to JSON (status keys quoted)")
    })
}

/// Follows local `$ref`s.
fn resolve(value: &'static Value) -> &'static Value {
    let mut value = value;
    for _ in 0..16 {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{reference}: only local references are used"));
        value = doc()
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{reference} resolves to nothing"));
    }
    panic!("$ref chain too long (a cycle?)")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn path_item(f: Function) -> &'static Value {
    doc()["paths"]
        .get(f.path_template())
        .unwrap_or_else(|| panic!("no path {} for {f}", f.path_template()))
}

fn operation(f: Function) -> &'static Value {
    path_item(f)
        .get(f.method().as_str().to_ascii_lowercase())
        .unwrap_or_else(|| panic!("{} has no {} operation", f.path_template(), f.method()))
}

/// Path-item and operation parameters, resolved.
fn parameters(f: Function) -> Vec<&'static Value> {
    [path_item(f), operation(f)]
        .into_iter()
        .filter_map(|v| v.get("parameters").and_then(Value::as_array))
        .flatten()
        .map(resolve)
        .collect()
}

fn parameters_in(f: Function, place: &str) -> Vec<&'static Value> {
    parameters(f)
        .into_iter()
        .filter(|p| p["in"] == place)
        .collect()
}

fn responses(f: Function) -> &'static serde_json::Map<String, Value> {
    operation(f)["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{f}: no responses"))
}

fn is_success(status: &str) -> bool {
    status.len() == 3 && status.starts_with('2')
}

/// The JSON schema of a response or request body, if it has one.
fn json_schema(holder: &'static Value) -> Option<&'static Value> {
    resolve(holder)
        .get("content")
        .and_then(|c| c.get("application/json"))
        .map(|m| resolve(&m["schema"]))
}

fn names(list: Option<&Value>) -> BTreeSet<String> {
    list.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("a name").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn types(schema: &Value) -> BTreeSet<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => BTreeSet::from([t.as_str()]),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The codes an error response lists in `x-aidhub-codes`.
fn listed_codes(response: &Value) -> BTreeSet<u16> {
    names(response.get("x-aidhub-codes"))
        .iter()
        .map(|c| {
            c.parse()
                .unwrap_or_else(|_| panic!("code {c} is not a number"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Body probes
// ---------------------------------------------------------------------------------------

/// One step of a JSON path.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn show(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn get<'v>(value: &'v Value, path: &[Step]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(*i),
    })
}

fn get_mut<'v>(value: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get_mut(k),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// `example` with the member at `path` set to `new`, or removed when `new` is `None`.
fn with(example: &Value, path: &[Step], new: Option<Value>) -> Value {
    let mut body = example.clone();
    let (last, parent) = path.split_last().expect("a member path");
    let parent = get_mut(&mut body, parent).expect("the member's parent is in the example");
    match (last, new) {
        (Step::Key(k), Some(v)) => {
            parent
                .as_object_mut()
                .expect("an object")
                .insert(k.clone(), v);
        }
        (Step::Key(k), None) => {
            parent.as_object_mut().expect("an object").remove(k);
        }
        (Step::Index(i), Some(v)) => parent[*i] = v,
        (Step::Index(_), None) => unreachable!("array entries are not removed"),
    }
    body
}

/// A documented member: where it is, its schema, the object schema it belongs to.
struct Member {
    path: Vec<Step>,
    schema: &'static Value,
    parent: &'static Value,
    required: bool,
}

/// Every member of `object` and, recursively, of its objects and of the first entry of its
/// arrays (as far as the example reaches).
fn members(object: &'static Value, example: &Value, at: &[Step], out: &mut Vec<Member>) {
    let object = resolve(object);
    let required = names(object.get("required"));
    let Some(properties) = object.get("properties").and_then(Value::as_object) else {
        return;
    };
    for name in &required {
        assert!(
            properties.contains_key(name),
            "{name} is required but not described"
        );
    }
    for (name, schema) in properties {
        let schema = resolve(schema);
        let mut path = at.to_vec();
        path.push(Step::Key(name.clone()));
        out.push(Member {
            path: path.clone(),
            schema,
            parent: object,
            required: required.contains(name),
        });
        let present = get(example, &path);
        if types(schema).contains("object") && present.is_some() {
            members(schema, example, &path, out);
        }
        if let Some(items) = schema.get("items") {
            if present
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                path.push(Step::Index(0));
                members(items, example, &path, out);
            }
        }
    }
}

/// The cross-member rules the document states beside the member rules (`anyOf` of required
/// members without examples, `dependentSchemas` with `if`/`then`), evaluated on `object`.
fn object_rules_hold(schema: &'static Value, object: &Value) -> bool {
    let any_of = match schema.get("anyOf").and_then(Value::as_array) {
        Some(alternatives) if !are_shapes(alternatives) => {
            alternatives.iter().any(|a| rule_holds(a, object))
        }
        _ => true,
    };
    let dependent = schema
        .get("dependentSchemas")
        .and_then(Value::as_object)
        .is_none_or(|deps| {
            deps.iter().all(|(key, dep)| {
                object.get(key).is_none()
                    || !rule_holds(&dep["if"], object)
                    || rule_holds(&dep["then"], object)
            })
        });
    any_of && dependent
}

/// The subset of JSON Schema the document's cross-member rules use: `required` and each
/// property's `type`.
fn rule_holds(rule: &Value, object: &Value) -> bool {
    let required = names(rule.get("required"))
        .iter()
        .all(|n| object.get(n).is_some());
    let typed = rule
        .get("properties")
        .and_then(Value::as_object)
        .is_none_or(|props| {
            props.iter().all(|(name, schema)| {
                object
                    .get(name)
                    .is_none_or(|v| types(schema).contains(json_type(v)))
            })
        });
    required && typed
}

/// Whether `oneOf`/`anyOf` alternatives are body shapes (each with its own example) rather
/// than cross-member rules.
fn are_shapes(alternatives: &'static [Value]) -> bool {
    alternatives
        .iter()
        .all(|a| resolve(a).get("example").is_some())
}

/// The shapes a body schema allows: the alternatives of a `oneOf`/`anyOf` that each carry
/// an example, or the schema itself.
fn shapes(schema: &'static Value) -> Vec<&'static Value> {
    let schema = resolve(schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            if are_shapes(alternatives) {
                return alternatives.iter().map(resolve).collect();
            }
        }
    }
    vec![schema]
}

/// A string of `n` characters: `base` cut, or extended with its last character (so it keeps
/// the base's pattern: Base64, digits, a matching id …).
fn filler(base: &str, n: usize) -> String {
    let count = base.chars().count();
    if n <= count {
        base.chars().take(n).collect()
    } else {
        let last = base.chars().last().unwrap_or('x');
        base.chars()
            .chain(std::iter::repeat_n(last, n - count))
            .collect()
    }
}

/// Free text: no pattern, enumeration, format or encoding, so any character counts as one.
fn free_text(schema: &Value) -> bool {
    ["pattern", "enum", "format", "contentEncoding"]
        .iter()
        .all(|k| schema.get(k).is_none())
}

/// The words AID.02 uses in its enumerations (7.3, 7.5, 7.7, 7.8, 7.10).
const SPEC_WORDS: [&str; 13] = [
    "private",
    "business",
    "unknown",
    "invalid",
    "valid",
    "suspended",
    "personal",
    "deleted",
    "enabled",
    "disabled",
    "installed",
    "installation_failed",
    "prepared",
];

/// Every string of every `enum` in `value` (the document's vocabulary).
fn enum_words(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(values)) = map.get("enum") {
                out.extend(values.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            map.values().for_each(|v| enum_words(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| enum_words(v, out)),
        _ => {}
    }
}

/// Values outside a documented enumeration: near misses of each value (another case, a
/// suffix, empty) and every other enumeration word of the document and of AID.02, so that
/// a value the document forgot is tried too.
fn outsiders(values: &[Value]) -> Vec<Value> {
    let mut words = BTreeSet::new();
    enum_words(doc(), &mut words);
    words.extend(SPEC_WORDS.iter().map(|w| (*w).to_owned()));
    for v in values.iter().filter_map(Value::as_str) {
        words.extend([format!("{v}x"), v.to_uppercase(), String::new()]);
    }
    words
        .into_iter()
        .map(Value::String)
        .filter(|candidate| !values.contains(candidate))
        .collect()
}

/// The validator under test, as a verdict on a body.
type Verdict<'a> = &'a dyn Fn(&[u8]) -> Result<(), String>;

/// Runs probes against one verdict and keeps every disagreement.
struct Prober<'a> {
    label: String,
    verdict: Verdict<'a>,
    failures: Vec<String>,
    counts: BTreeMap<&'static str, usize>,
}

impl Prober<'_> {
    fn expect(&mut self, kind: &'static str, body: &Value, accept: bool, what: &str) {
        *self.counts.entry(kind).or_default() += 1;
        let bytes = serde_json::to_vec(body).expect("serialises");
        match ((self.verdict)(&bytes), accept) {
            (Ok(()), true) | (Err(_), false) => {}
            (Err(reason), true) => self.failures.push(format!(
                "{}: {what}: the document allows it, the validator refuses it ({reason})",
                self.label
            )),
            (Ok(()), false) => self.failures.push(format!(
                "{}: {what}: the document refuses it, the validator accepts it",
                self.label
            )),
        }
    }

    /// Every probe on every shape of `schema`.
    fn body(&mut self, schema: &'static Value) {
        let label = self.label.clone();
        for shape in shapes(schema) {
            let title = shape.get("title").and_then(Value::as_str).unwrap_or("body");
            self.label = format!("{label} ({title})");
            let example = shape
                .get("example")
                .unwrap_or_else(|| panic!("{}: the schema has no example", self.label))
                .clone();
            self.expect("example", &example, true, "the example");
            self.alternatives(shape, &example);
            let mut list = Vec::new();
            members(shape, &example, &[], &mut list);
            for member in &list {
                self.member(member, &example);
            }
        }
        self.label = label;
    }

    /// An `anyOf` of required members ("at least one of"): each alternative alone is enough,
    /// none is refused.
    fn alternatives(&mut self, shape: &'static Value, example: &Value) {
        let Some(alternatives) = shape.get("anyOf").and_then(Value::as_array) else {
            return;
        };
        if are_shapes(alternatives) {
            return;
        }
        let mentioned: BTreeSet<String> = alternatives
            .iter()
            .flat_map(|a| names(a.get("required")))
            .collect();
        let without = |keep: &BTreeSet<String>| {
            let mut body = example.clone();
            for name in mentioned.difference(keep) {
                body.as_object_mut().expect("an object").remove(name);
            }
            body
        };
        for alternative in alternatives {
            let keep = names(alternative.get("required"));
            let body = without(&keep);
            assert!(
                object_rules_hold(shape, &body),
                "{}: inconsistent",
                self.label
            );
            self.expect("any-of", &body, true, &format!("only {keep:?}"));
        }
        let body = without(&BTreeSet::new());
        self.expect("any-of", &body, false, &format!("none of {mentioned:?}"));
    }

    fn member(&mut self, m: &Member, example: &Value) {
        let name = show(&m.path);
        let parent_path = &m.path[..m.path.len() - 1];
        let rules = |body: &Value| {
            get(body, parent_path).is_some_and(|parent| object_rules_hold(m.parent, parent))
        };
        // Presence.
        let body = with(example, &m.path, None);
        if m.required {
            self.expect("required", &body, false, &format!("without `{name}`"));
        } else if get(example, &m.path).is_some() {
            let accept = rules(&body);
            self.expect("optional", &body, accept, &format!("without `{name}`"));
        }
        // Null.
        let body = with(example, &m.path, Some(Value::Null));
        let kinds = types(m.schema);
        let accept = (kinds.is_empty() || kinds.contains("null")) && rules(&body);
        self.expect("null", &body, accept, &format!("`{name}` = null"));
        // Enumerations.
        if let Some(values) = m.schema.get("enum").and_then(Value::as_array) {
            for value in values {
                let body = with(example, &m.path, Some(value.clone()));
                let accept = rules(&body);
                self.expect("enum", &body, accept, &format!("`{name}` = {value}"));
            }
            for value in outsiders(values) {
                let body = with(example, &m.path, Some(value.clone()));
                self.expect("enum", &body, false, &format!("`{name}` = {value}"));
            }
        }
        // Lengths.
        if kinds.contains("string") {
            self.lengths(m, example, &name, &rules);
        }
        // An empty array.
        if kinds.contains("array") {
            let body = with(example, &m.path, Some(json!([])));
            let accept = m
                .schema
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                == 0
                && rules(&body);
            self.expect("items", &body, accept, &format!("`{name}` = []"));
        }
    }

    fn lengths(&mut self, m: &Member, example: &Value, name: &str, rules: &dyn Fn(&Value) -> bool) {
        let base = get(example, &m.path)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or_else(|| m.schema.get("example").and_then(Value::as_str))
            .unwrap_or("x")
            .to_owned();
        let free = free_text(m.schema);
        let probe = |p: &mut Self, kind: &'static str, text: String, accept: bool| {
            let what = format!(
                "`{name}` of {} {}characters",
                text.chars().count(),
                if text.is_ascii() { "" } else { "non-ASCII " }
            );
            let body = with(example, &m.path, Some(Value::String(text)));
            let accept = accept && rules(&body);
            p.expect(kind, &body, accept, &what);
        };
        if let Some(max) = m.schema.get("maxLength").and_then(Value::as_u64) {
            let max = max as usize;
            probe(self, "maxLength", filler(&base, max), true);
            // Base64 of maxLength+1 characters is never valid; up to +4 one of them would be.
            let extra = if m.schema.get("contentEncoding").is_some() {
                4
            } else {
                1
            };
            for n in max + 1..=max + extra {
                probe(self, "maxLength", filler(&base, n), false);
            }
            if free {
                probe(self, "maxLength", "\u{e9}".repeat(max), true);
                probe(self, "maxLength", "\u{e9}".repeat(max + 1), false);
            }
        }
        if let Some(min) = m.schema.get("minLength").and_then(Value::as_u64) {
            let min = min as usize;
            if min > 0 {
                probe(self, "minLength", filler(&base, min - 1), false);
            }
            if free {
                probe(self, "minLength", filler(&base, min), true);
            }
        }
    }
}

/// Probes `schema` with `verdict`, adding to `failures` and `counts`.
fn probe_body(
    label: String,
    schema: &'static Value,
    verdict: Verdict<'_>,
    failures: &mut Vec<String>,
    counts: &mut BTreeMap<&'static str, usize>,
) {
    let mut prober = Prober {
        label,
        verdict,
        failures: Vec::new(),
        counts: BTreeMap::new(),
    };
    prober.body(schema);
    failures.append(&mut prober.failures);
    for (kind, n) in prober.counts {
        *counts.entry(kind).or_default() += n;
    }
}

/// Fails with every disagreement, or when a kind of probe ran fewer times than expected (a
/// document that lost its examples or rules must not pass by probing nothing).
fn finish(failures: &[String], counts: &BTreeMap<&str, usize>, minimum: &[(&str, usize)]) {
    for (kind, at_least) in minimum {
        let ran = counts.get(kind).copied().unwrap_or(0);
        assert!(
            ran >= *at_least,
            "only {ran} {kind} probes ran (expected at least {at_least}): {counts:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "the document and the validator disagree:\n  {}",
        failures.join("\n  ")
    );
}

fn request_verdict(f: Function) -> impl Fn(&[u8]) -> Result<(), String> {
    move |body| {
        aid1::request(f, body, &Rules::default())
            .map(drop)
            .map_err(|v| v.to_string())
    }
}

fn answer_verdict(f: Function, status: u16) -> impl Fn(&[u8]) -> Result<(), String> {
    move |body| {
        aid1::answer(f, status, body, &Rules::default())
            .map(drop)
            .map_err(|b| b.reason)
    }
}

// ---------------------------------------------------------------------------------------
// What the hub sends
// ---------------------------------------------------------------------------------------

/// Where an error can arise.
#[derive(Clone, Copy, Debug)]
enum Scope {
    /// On any function.
    Every,
    /// On these functions only.
    Only(&'static [Function]),
    /// On every function but this one.
    AllBut(Function),
    /// On the functions that take a request body.
    WithBody,
    /// Before a function is known (a path or method no function has).
    Path,
}

impl Scope {
    fn covers(self, f: Function) -> bool {
        match self {
            Scope::Every => true,
            Scope::Only(list) => list.contains(&f),
            Scope::AllBut(other) => f != other,
            Scope::WithBody => f.has_request_body(),
            Scope::Path => false,
        }
    }
}

const SMT: Function = Function::SendMspToken;
const SAC: Function = Function::SendActivationCode;
const RAC: Function = Function::RequestActivationCode;

/// Where the hub can refuse with `error`, read from the code that raises it (src/aid1/
/// exchange.rs, lifecycle.rs, the validator, src/proxy.rs, src/limits.rs). The matches are
/// exhaustive on purpose: a new condition does not compile until its place here (and in the
/// document) is decided.
fn scope(error: &HubError) -> Scope {
    match error {
        HubError::Invalid(v) => match &v.kind {
            ViolationKind::UnknownFunction | ViolationKind::MethodNotAllowed { .. } => {
                Scope::Path
            }
            ViolationKind::BadAccountId => Scope::Only(&[SMT]),
            ViolationKind::BadRequestId | ViolationKind::ProfileTypeUnknown => {
                Scope::Only(&[RAC, SAC])
            }
            ViolationKind::ActivationCodeFormat => Scope::Only(&[SAC]),
            ViolationKind::EmptyBody => Scope::WithBody,
            // The path's msp_token, or Send MSP Token's body member.
            ViolationKind::BadMspToken
            // A query string on any function.
            | ViolationKind::BadPathParam
            | ViolationKind::MissingHeader
            | ViolationKind::BadHeader
            | ViolationKind::BadCorrelationId
            | ViolationKind::BadCredential
            // A body without the content type, even where none is defined.
            | ViolationKind::UnsupportedMediaType
            | ViolationKind::Syntax => Scope::Every,
        },
        HubError::AccountId(e) => match e {
            AccountIdError::Expired
            | AccountIdError::BadSignature
            | AccountIdError::Malformed(_) => Scope::Only(&[SMT]),
        },
        HubError::TokenTaken => Scope::Only(&[SMT]),
        HubError::TokenUnknown => Scope::AllBut(SMT),
        HubError::TokenWithdrawn => Scope::Only(&[SMT, RAC]),
        HubError::RequestUnknown | HubError::RequestClosed | HubError::RequestPending => {
            Scope::Only(&[SAC])
        }
        HubError::RequestOther(_) => Scope::Only(&[RAC, SAC]),
        HubError::Upstream { fault, .. } => match fault {
            UpstreamFault::Refused
            | UpstreamFault::Connect(_)
            | UpstreamFault::Tls(_)
            | UpstreamFault::Timeout(_)
            | UpstreamFault::Reset
            | UpstreamFault::Protocol(_)
            | UpstreamFault::TooLarge => Scope::Every,
        },
        HubError::BodyTooLarge { .. }
        | HubError::UnknownCertificate
        | HubError::ClientIdMismatch
        | HubError::BadCredential
        | HubError::UnknownTarget { .. }
        | HubError::NotPermitted { .. }
        | HubError::LedgerUnavailable
        | HubError::RateLimited { .. }
        | HubError::Overloaded { .. }
        | HubError::Contract { .. }
        | HubError::Internal(_) => Scope::Every,
        // The browser-facing touchpoint listener's refusals: never on the AID1 API.
        HubError::Touchpoint(_) => Scope::Only(&[]),
        // TS.43 refusals are made on the device listener only, never on an AID1 function.
        HubError::Ts43 { .. } => Scope::Path,
    }
}

fn violation(kind: ViolationKind) -> HubError {
    HubError::Invalid(Violation::new(kind, "field", "reason"))
}

fn upstream(fault: UpstreamFault) -> HubError {
    HubError::Upstream {
        partner: "p".into(),
        fault,
    }
}

/// One instance of every condition [`scope`] distinguishes.
fn witnesses() -> Vec<HubError> {
    vec![
        violation(ViolationKind::UnknownFunction),
        violation(ViolationKind::MethodNotAllowed { allow: Method::GET }),
        violation(ViolationKind::BadMspToken),
        violation(ViolationKind::BadAccountId),
        violation(ViolationKind::BadPathParam),
        violation(ViolationKind::MissingHeader),
        violation(ViolationKind::BadHeader),
        violation(ViolationKind::BadCorrelationId),
        violation(ViolationKind::BadCredential),
        violation(ViolationKind::UnsupportedMediaType),
        violation(ViolationKind::EmptyBody),
        violation(ViolationKind::Syntax),
        violation(ViolationKind::BadRequestId),
        violation(ViolationKind::ActivationCodeFormat),
        violation(ViolationKind::ProfileTypeUnknown),
        HubError::BodyTooLarge { limit: 1 },
        HubError::UnknownCertificate,
        HubError::ClientIdMismatch,
        HubError::BadCredential,
        HubError::UnknownTarget { id: "x".into() },
        HubError::NotPermitted { reason: "r".into() },
        HubError::AccountId(AccountIdError::Expired),
        HubError::AccountId(AccountIdError::BadSignature),
        HubError::AccountId(AccountIdError::Malformed("m".into())),
        HubError::TokenUnknown,
        HubError::TokenWithdrawn,
        HubError::TokenTaken,
        HubError::RequestUnknown,
        HubError::RequestClosed,
        HubError::RequestOther("o".into()),
        HubError::RequestPending,
        HubError::LedgerUnavailable,
        HubError::RateLimited {
            retry_after: Duration::from_secs(1),
        },
        HubError::Overloaded {
            partner: "p".into(),
        },
        upstream(UpstreamFault::Refused),
        upstream(UpstreamFault::Connect("c".into())),
        upstream(UpstreamFault::Tls("t".into())),
        upstream(UpstreamFault::Timeout(Duration::from_secs(1))),
        upstream(UpstreamFault::Reset),
        upstream(UpstreamFault::Protocol("p".into())),
        upstream(UpstreamFault::TooLarge),
        HubError::Contract {
            partner: "p".into(),
            reason: "r".into(),
        },
        HubError::Internal("i".into()),
    ]
}

fn status_and_code(error: &HubError) -> (u16, u16) {
    let (status, code) = error.status_and_code();
    (status.as_u16(), code)
}

/// The hub's proprietary codes; the match stops compiling when one is added, so that
/// [`HubCode::all`] and the document are revisited.
fn proprietary(code: HubCode) -> u16 {
    match code {
        HubCode::RateLimited
        | HubCode::UpstreamBusy
        | HubCode::UpstreamUnreachable
        | HubCode::UpstreamTls
        | HubCode::UpstreamTimeout
        | HubCode::UpstreamBroken
        | HubCode::UpstreamContract
        | HubCode::BodyTooLarge
        | HubCode::UnsupportedMediaType
        | HubCode::UnknownFunction
        | HubCode::MethodNotAllowed
        | HubCode::NotPermitted
        | HubCode::BadCredential
        | HubCode::ClientIdMismatch
        | HubCode::UnknownCertificate
        | HubCode::RequestPending
        | HubCode::LedgerUnavailable => code as u16,
    }
}

/// The table of the document's description: code → (statuses, range).
fn code_table() -> BTreeMap<u16, (BTreeSet<u16>, String)> {
    let description = doc()["info"]["description"]
        .as_str()
        .expect("info.description");
    let mut table = BTreeMap::new();
    for line in description.lines().map(str::trim) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || !line.starts_with('|') {
            continue;
        }
        let Ok(code) = cells[1].parse::<u16>() else {
            continue;
        };
        let statuses = cells[2]
            .split(',')
            .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("status {s}")))
            .collect();
        let previous = table.insert(code, (statuses, cells[3].to_owned()));
        assert!(previous.is_none(), "code {code} is listed twice");
    }
    table
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn the_document_describes_exactly_the_nine_functions() {
    let paths: BTreeSet<&str> = doc()["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let templates: BTreeSet<&str> = Function::ALL.iter().map(|f| f.path_template()).collect();
    assert_eq!(paths, templates);
    for f in Function::ALL {
        let methods: Vec<&str> = METHODS
            .into_iter()
            .filter(|m| path_item(f).get(*m).is_some())
            .collect();
        assert_eq!(
            methods,
            [f.method().as_str().to_ascii_lowercase()],
            "{f}: one method per path"
        );
        let op = operation(f);
        assert_eq!(op["operationId"], f.name(), "{f}");
        assert_eq!(op["summary"], f.title(), "{f}");
        let description = op["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(&format!("AID.02 {},", f.section())),
            "{f}: the description names section {}",
            f.section()
        );
    }
}

#[test]
fn documented_success_statuses_are_the_validators() {
    for f in Function::ALL {
        let documented: Vec<u16> = responses(f)
            .keys()
            .filter(|s| is_success(s))
            .map(|s| s.parse().expect("a status"))
            .collect();
        assert_eq!(documented, f.success_statuses(), "{f}");
        for status in f.success_statuses() {
            let response = &responses(f)[&status.to_string()];
            // A body is documented exactly where the answer checker wants one.
            let checked = aid1::answer(f, *status, b"", &Rules::default()).is_err();
            assert_eq!(json_schema(response).is_some(), checked, "{f} {status}");
        }
        for status in 200..300 {
            if !f.success_statuses().contains(&status) {
                assert!(
                    aid1::answer(f, status, b"", &Rules::default()).is_err(),
                    "{f}: the answer checker takes an undocumented {status}"
                );
            }
        }
    }
}

#[test]
fn request_bodies_are_documented_exactly_where_the_validator_takes_one() {
    for f in Function::ALL {
        let body = operation(f).get("requestBody");
        assert_eq!(body.is_some(), f.has_request_body(), "{f}");
        let empty_ok = aid1::request(f, b"", &Rules::default()).is_ok();
        let Some(body) = body else {
            assert!(
                empty_ok,
                "{f}: no body documented, yet an empty one is refused"
            );
            assert!(
                aid1::request(f, b"{}", &Rules::default()).is_err(),
                "{f}: no body documented, yet one is accepted"
            );
            continue;
        };
        let body = resolve(body);
        let required = body["required"].as_bool().unwrap_or(false);
        assert_eq!(required, f.body_required(), "{f}");
        assert_eq!(required, !empty_ok, "{f}: an empty body");
        let types: Vec<&String> = body["content"]
            .as_object()
            .expect("content")
            .keys()
            .collect();
        assert_eq!(types, ["application/json"], "{f}");
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(aid1::check_content_type(&headers, f, 2).is_ok());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(aid1::check_content_type(&headers, f, 2).is_err());
    }
}

#[test]
fn request_body_members_enums_and_lengths_agree_with_the_validator() {
    let mut failures = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in Function::ALL.into_iter().filter(|f| f.has_request_body()) {
        let schema = json_schema(&operation(f)["requestBody"]).expect("a JSON schema");
        let label = format!("{} request", f.name());
        let verdict = request_verdict(f);
        probe_body(label, schema, &verdict, &mut failures, &mut counts);
    }
    finish(
        &failures,
        &counts,
        &[
            ("example", 9),
            ("required", 15),
            ("optional", 10),
            ("null", 40),
            ("enum", 20),
            ("maxLength", 30),
            ("minLength", 5),
            ("any-of", 4),
            ("items", 1),
        ],
    );
}

#[test]
fn answer_body_members_enums_and_lengths_agree_with_the_answer_checker() {
    let mut failures = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in Function::ALL {
        for (status, response) in responses(f) {
            let Some(schema) = json_schema(response) else {
                continue;
            };
            // `default` is any partner error answer the hub relays.
            let code = if status == "default" {
                599
            } else {
                status.parse().expect("a status")
            };
            let label = format!("{} answer {status}", f.name());
            let verdict = answer_verdict(f, code);
            probe_body(label, schema, &verdict, &mut failures, &mut counts);
        }
    }
    finish(
        &failures,
        &counts,
        &[
            ("example", 100),
            ("required", 100),
            ("enum", 5),
            ("maxLength", 9),
            ("items", 1),
        ],
    );
}

#[test]
fn the_route_matcher_agrees_with_every_documented_path() {
    for f in Function::ALL {
        let mut path = f.path_template().to_owned();
        let path_params = parameters_in(f, "path");
        let placeholders = f.path_template().matches('{').count();
        assert_eq!(path_params.len(), placeholders, "{f}: path parameters");
        let mut examples = BTreeMap::new();
        for p in &path_params {
            let name = p["name"].as_str().expect("a name");
            let example = p["example"].as_str().expect("an example");
            assert_eq!(p["required"], true, "{f}: {name}");
            path = path.replace(&format!("{{{name}}}"), example);
            examples.insert(name, (example, *p));
        }
        assert!(!path.contains('{'), "{f}: {path} keeps a placeholder");
        let r = aid1::route(&f.method(), &path, None)
            .unwrap_or_else(|v| panic!("{f}: {path} is refused: {v}"));
        assert_eq!(r.function, f);
        match examples.get("msp_token") {
            Some((token, _)) => assert_eq!(
                r.msp_token.map(|t| t.to_string()),
                Some(token.to_ascii_lowercase())
            ),
            None => assert_eq!(r.msp_token, None),
        }
        match examples.get("account_id") {
            Some((id, _)) => assert_eq!(r.account_id.as_ref().map(|a| a.expose()), Some(*id)),
            None => assert!(r.account_id.is_none()),
        }
        // The query: documented exactly where the matcher takes one.
        let query = parameters_in(f, "query");
        if let Some(q) = query.first() {
            assert_eq!(query.len(), 1);
            assert_eq!(q["required"], false);
            let example = q["example"].as_str().expect("an example");
            let text = format!("{}={example}", q["name"].as_str().expect("a name"));
            let r = aid1::route(&f.method(), &path, Some(&text))
                .unwrap_or_else(|v| panic!("{f}: ?{text} is refused: {v}"));
            assert_eq!(r.iccid.map(|i| i.to_string()).as_deref(), Some(example));
        } else {
            let v = aid1::route(&f.method(), &path, Some("iccid=98341201501601380129"))
                .expect_err("no query is documented");
            assert_eq!(v.kind, ViolationKind::BadPathParam, "{f}");
        }
        // Every other method is refused, naming the documented one.
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] {
            let method: Method = method.parse().expect("a method");
            if method == f.method() {
                continue;
            }
            let v = aid1::route(&method, &path, None).expect_err("another method");
            assert_eq!(
                v.kind,
                ViolationKind::MethodNotAllowed { allow: f.method() },
                "{f} {method}"
            );
        }
        // Length caps and excluded values of the path parameters.
        for (name, (example, p)) in &examples {
            let schema = &p["schema"];
            let at = |value: &str| {
                let concrete = f
                    .path_template()
                    .replace(&format!("{{{name}}}"), value)
                    .replace("{msp_token}", "25bca1e2-338f-11d6-ac61-9e71138fd521");
                aid1::route(&f.method(), &concrete, None)
            };
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                let max = max as usize;
                assert!(at(&filler(example, max)).is_ok(), "{f}: {name} of {max}");
                assert!(
                    at(&filler(example, max + 1)).is_err(),
                    "{f}: {name} of {max}+1"
                );
            }
            for excluded in names(schema.get("not").and_then(|n| n.get("enum"))) {
                assert!(at(&excluded).is_err(), "{f}: {name} = {excluded}");
            }
        }
        let description = path_item(f)["description"].as_str().unwrap_or_default();
        let (status, code) = status_and_code(&violation(ViolationKind::MethodNotAllowed {
            allow: f.method(),
        }));
        assert!(
            description.contains(&status.to_string()) && description.contains(&format!("`{code}`")),
            "{f}: the path's description names {status} code {code}"
        );
    }
}

#[test]
fn the_header_validator_agrees_with_the_documented_headers() {
    let five = BTreeSet::from([
        "cmp-request-id",
        "correlation-id",
        "api-key",
        "client-id",
        "target-id",
    ]);
    for f in Function::ALL {
        let documented = parameters_in(f, "header");
        let names: BTreeSet<String> = documented
            .iter()
            .map(|p| p["name"].as_str().expect("a name").to_ascii_lowercase())
            .collect();
        assert_eq!(
            names.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            five,
            "{f}"
        );
        let mut map = HeaderMap::new();
        for p in &documented {
            let name = HeaderName::from_bytes(p["name"].as_str().unwrap_or_default().as_bytes())
                .expect("a header name");
            let example = p["example"].as_str().expect("an example");
            map.insert(
                name,
                HeaderValue::from_str(example).expect("a header value"),
            );
        }
        let headers = aid1::headers(&map).unwrap_or_else(|v| panic!("{f}: the examples: {v}"));
        assert!(matches!(headers.credential, Credential::ApiKey(_)));
        for p in &documented {
            let name = p["name"].as_str().unwrap_or_default().to_ascii_lowercase();
            let example = p["example"].as_str().unwrap_or_default();
            let mut without = map.clone();
            without.remove(name.as_str());
            match (
                p["required"].as_bool().unwrap_or(false),
                aid1::headers(&without),
            ) {
                (true, Err(v)) => {
                    assert_eq!(
                        (v.kind, v.field),
                        (ViolationKind::MissingHeader, name.clone())
                    );
                }
                (false, Ok(_)) => {}
                (required, result) => {
                    panic!("{f}: {name} required={required}, without it: {result:?}")
                }
            }
            if let Some(max) = p["schema"].get("maxLength").and_then(Value::as_u64) {
                let max = max as usize;
                for (n, ok) in [(max, true), (max + 1, false)] {
                    let mut probe = map.clone();
                    let value = HeaderValue::from_str(&filler(example, n)).expect("a value");
                    probe.insert(
                        HeaderName::from_bytes(name.as_bytes()).expect("a name"),
                        value,
                    );
                    assert_eq!(aid1::headers(&probe).is_ok(), ok, "{f}: {name} of {n}");
                }
            }
        }
    }
}

#[test]
fn security_follows_the_api_set_of_each_function() {
    let schemes = &doc()["components"]["securitySchemes"];
    assert_eq!(schemes["mutualTLS"]["type"], "mutualTLS");
    assert_eq!(
        (&schemes["apiKey"]["in"], &schemes["apiKey"]["name"]),
        (&json!("header"), &json!("api-key"))
    );
    assert_eq!(
        (&schemes["basic"]["type"], &schemes["basic"]["scheme"]),
        (&json!("http"), &json!("basic"))
    );
    for f in Function::ALL {
        let expected = match f.host() {
            // "An API key SHALL be used for each request to CMP CESIM MSP API."
            Role::Cmp => json!([{"mutualTLS": [], "apiKey": []}]),
            // The MSP chooses an API key or basic authentication.
            Role::Msp => json!([{"mutualTLS": [], "apiKey": []}, {"mutualTLS": [], "basic": []}]),
        };
        assert_eq!(operation(f)["security"], expected, "{f}");
    }
}

#[test]
fn the_code_table_lists_exactly_the_codes_the_hub_sends() {
    let table = code_table();
    let mut sent: BTreeMap<u16, BTreeSet<u16>> = BTreeMap::new();
    for error in witnesses() {
        let (status, code) = status_and_code(&error);
        sent.entry(code).or_default().insert(status);
    }
    let documented: BTreeMap<u16, BTreeSet<u16>> = table
        .iter()
        .map(|(code, (statuses, _))| (*code, statuses.clone()))
        .collect();
    assert_eq!(documented, sent, "code → statuses");
    let all = HubCode::all();
    assert_eq!(all.len(), 17, "HubCode::all() lists every code");
    let codes: BTreeSet<u16> = all.iter().map(|c| proprietary(*c)).collect();
    assert_eq!(codes.len(), all.len());
    for (code, (_, range)) in &table {
        if *code >= 200 {
            assert!(codes.contains(code), "{code} is no HubCode");
            assert_eq!(range, "hub", "{code}");
        } else {
            assert!((10..=103).contains(code), "{code} is outside Table 10");
            assert_eq!(range, "spec", "{code}");
        }
    }
    for code in &codes {
        assert!(
            table.contains_key(code),
            "HubCode {code} is not in the table"
        );
    }
}

#[test]
fn each_operation_documents_the_statuses_and_codes_the_hub_sends_for_it() {
    for f in Function::ALL {
        let mut expected: BTreeMap<u16, BTreeSet<u16>> = BTreeMap::new();
        let mut retry_after = BTreeSet::new();
        for error in witnesses().iter().filter(|e| scope(e).covers(f)) {
            let (status, code) = status_and_code(error);
            expected.entry(status).or_default().insert(code);
            if error.response().headers().contains_key(RETRY_AFTER) {
                retry_after.insert(status);
            }
        }
        let mut documented: BTreeMap<u16, BTreeSet<u16>> = BTreeMap::new();
        for (status, response) in responses(f) {
            if is_success(status) || status == "default" {
                continue;
            }
            let response = resolve(response);
            let status: u16 = status.parse().expect("a status");
            let codes = listed_codes(response);
            let description = response["description"].as_str().unwrap_or_default();
            for code in &codes {
                assert!(
                    description.contains(&format!("`{code}`")),
                    "{f} {status}: the description does not explain code {code}"
                );
            }
            assert_eq!(
                json_schema(response),
                Some(resolve(&doc()["components"]["schemas"]["ErrorBody"])),
                "{f} {status}: the hub's error body"
            );
            if retry_after.contains(&status) {
                assert!(
                    response["headers"].get("Retry-After").is_some(),
                    "{f} {status}: Retry-After"
                );
            }
            documented.insert(status, codes);
        }
        assert_eq!(documented, expected, "{f}: status → hub codes");
        for status in f.error_statuses() {
            assert!(
                documented.contains_key(status),
                "{f}: the spec's {status} is not documented"
            );
        }
        let relayed = responses(f)
            .get("default")
            .expect("the relayed partner errors");
        assert!(
            json_schema(relayed).is_some(),
            "{f}: default has the error body"
        );
    }
}

#[test]
fn every_error_the_hub_sends_has_the_documented_body() {
    let schema = resolve(&doc()["components"]["schemas"]["ErrorBody"]);
    let properties: BTreeSet<&String> = schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .collect();
    let required = names(schema.get("required"));
    assert_eq!(
        properties,
        required.iter().collect::<BTreeSet<_>>(),
        "both members are required"
    );
    for error in witnesses() {
        let response = error.response();
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let (_, code) = status_and_code(&error);
        let body: Value =
            serde_json::from_slice(&error_body(code, &error.description())).expect("JSON");
        let keys: BTreeSet<&String> = body.as_object().expect("an object").keys().collect();
        assert_eq!(keys, properties, "{error:?}");
        assert_eq!(body["code"], code.to_string());
        assert!(body["error"].is_string());
    }
}
