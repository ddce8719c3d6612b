//! The OpenAPI description checked against the server: the routes in
//! `src/http`, and a checker that validates every answer a scenario gets
//! against the documented schema, made strict.

use onair_loadtest::http::{http, HttpResponse};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// `.route("PATH", get(..).post(..))` calls in src/http: (method, path)
/// pairs, for every path but the web app's pages (web.rs) and the plain
/// listener's redirect and ACME challenge (redirect.rs).
pub fn routes_in_source() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "web.rs" || name == "redirect.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + 7..];
            // The call's arguments, up to the matching parenthesis.
            let mut depth = 1;
            let mut end = 0;
            for (j, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = j;
                    break;
                }
            }
            let call = &rest[..end];
            let Some(q1) = call.find('"') else { continue };
            let Some(q2) = call[q1 + 1..].find('"') else {
                continue;
            };
            let path = &call[q1 + 1..q1 + 1 + q2];
            let handlers = &call[q1 + 2 + q2..];
            for m in ["get", "post", "put", "patch", "delete"] {
                let bare = format!("{m}(");
                let found = handlers.match_indices(&bare).any(|(k, _)| {
                    k == 0
                        || !handlers.as_bytes()[k - 1].is_ascii_alphanumeric()
                            && handlers.as_bytes()[k - 1] != b'_'
                });
                if found {
                    out.push((m.to_string(), path.to_string()));
                }
            }
        }
    }
    out
}

pub fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.clone(), path.clone()));
        }
    }
    ops
}

/// `schema` with every `$ref` replaced by what it names and every `allOf`
/// merged into one object, and every object that lists its properties
/// closed to others (`additionalProperties: false`): a field the document
/// does not name fails validation.
pub fn strict(doc: &Value, schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                let name = r.strip_prefix("#/components/schemas/").expect("local ref");
                let target = &doc["components"]["schemas"][name];
                assert!(target.is_object(), "{r} names no schema");
                return strict(doc, target);
            }
            let mut out = Map::new();
            for (k, v) in map {
                let v = match k.as_str() {
                    "properties" => Value::Object(
                        v.as_object()
                            .unwrap()
                            .iter()
                            .map(|(name, s)| (name.clone(), strict(doc, s)))
                            .collect(),
                    ),
                    "items" => strict(doc, v),
                    "oneOf" | "anyOf" => Value::Array(
                        v.as_array()
                            .unwrap()
                            .iter()
                            .map(|s| strict(doc, s))
                            .collect(),
                    ),
                    _ => v.clone(),
                };
                out.insert(k.clone(), v);
            }
            if let Some(parts) = out.remove("allOf") {
                let mut properties = Map::new();
                let mut required = Vec::new();
                for part in parts.as_array().unwrap() {
                    let part = strict(doc, part);
                    if let Some(p) = part["properties"].as_object() {
                        properties.extend(p.clone());
                    }
                    if let Some(r) = part["required"].as_array() {
                        required.extend(r.iter().cloned());
                    }
                }
                out.insert("type".into(), json!("object"));
                out.insert("properties".into(), Value::Object(properties));
                out.insert("required".into(), Value::Array(required));
            }
            if out.contains_key("properties") && !out.contains_key("additionalProperties") {
                out.insert("additionalProperties".into(), json!(false));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// What the scenario checked: per operation, the statuses it saw.
pub struct Checker {
    doc: Value,
    pub seen: BTreeMap<(String, String), BTreeSet<u16>>,
}

pub enum Body<'a> {
    None,
    Json(Value),
    Raw(&'a str, &'a [u8]),
}

impl Checker {
    pub fn new(doc: Value) -> Checker {
        Checker {
            doc,
            seen: BTreeMap::new(),
        }
    }

    /// Sends the request and checks the answer against the document.
    pub async fn call(
        &mut self,
        addr: SocketAddr,
        method: &str,
        (template, path): (&str, &str),
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> HttpResponse {
        let mut h = headers.to_vec();
        let bytes = match &body {
            Body::None => Vec::new(),
            Body::Json(v) => {
                h.push(("Content-Type", "application/json"));
                v.to_string().into_bytes()
            }
            Body::Raw(ctype, b) => {
                h.push(("Content-Type", ctype));
                b.to_vec()
            }
        };
        let r = http(addr, method, path, &h, &bytes).await;
        self.check(method, template, &r, true);
        r
    }

    pub fn check(&mut self, method: &str, template: &str, r: &HttpResponse, with_body: bool) {
        let m = method.to_lowercase();
        let what = format!("{method} {template}");
        let op = &self.doc["paths"][template][&m];
        assert!(op.is_object(), "{what} is not documented");
        let documented = &op["responses"][r.status.to_string()];
        assert!(
            documented.is_object(),
            "{what}: {} is not documented: {}",
            r.status,
            r.text()
        );
        self.seen
            .entry((m, template.to_string()))
            .or_default()
            .insert(r.status);
        let ctype = r.header("content-type").unwrap_or("").to_string();
        let Some(content) = documented["content"].as_object() else {
            assert!(
                r.body.is_empty(),
                "{what}: {} is documented without a body, but has {:?}",
                r.status,
                r.text()
            );
            return;
        };
        let base = ctype.split(';').next().unwrap_or("").trim();
        let media = content
            .get(ctype.as_str())
            .or_else(|| content.get(base))
            .unwrap_or_else(|| {
                panic!(
                    "{what}: {} came as {ctype:?}, documented as {:?}",
                    r.status,
                    content.keys().collect::<Vec<_>>()
                )
            });
        if !with_body {
            return;
        }
        let schema = &media["schema"];
        if base == "application/json" {
            let schema = strict(&self.doc, schema);
            let validator = jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|e| panic!("{what}: its schema does not compile: {e}"));
            let body = r.json();
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{what}: {} does not match its schema: {errors:?}\nbody: {body}\nschema: {schema}",
                r.status
            );
        } else if schema["format"] != "binary" {
            assert!(
                std::str::from_utf8(&r.body).is_ok(),
                "{what}: a text body that is not UTF-8"
            );
        }
    }

    /// Operations documented, of those `keep` takes (given the
    /// operation), never answered with one of their documented successes
    /// (below 400: a 2xx, an upgrade, or a browser navigation's redirect).
    pub fn unreached(&self, keep: impl Fn(&Value) -> bool) -> Vec<String> {
        documented_operations(&self.doc)
            .into_iter()
            .filter(|(m, p)| keep(&self.doc["paths"][p][m]))
            .filter(|(m, p)| {
                let responses = &self.doc["paths"][p][m]["responses"];
                !self.seen.get(&(m.clone(), p.clone())).is_some_and(|s| {
                    s.iter()
                        .any(|c| *c < 400 && responses.get(c.to_string()).is_some())
                })
            })
            .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
            .collect()
    }
}

/// Whether an operation is under `tag`.
pub fn tagged(op: &Value, tag: &str) -> bool {
    op["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|x| x == tag))
}
