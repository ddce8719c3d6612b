//! `/api/openapi.json` itself: every route in `src/http` (but the web
//! app's pages and ACME's challenge) is documented and every documented
//! operation routed, each with a summary and a unique operation id; and
//! the strict form of its schemas (tests/common/openapi.rs) refuses what
//! the document does not say. Answers are checked against it by the
//! scenarios: tests/accounts_openapi.rs, tests/oidc.rs, tests/avatars.rs.

mod common;

use common::openapi::{documented_operations, routes_in_source, strict};
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let doc = onair::http::openapi_document();
    assert_eq!(doc["openapi"], "3.1.0");
    let routed: BTreeSet<_> = routes_in_source().into_iter().collect();
    assert!(
        routed.len() >= 40,
        "the parser finds the routes: {routed:?}"
    );
    let documented = documented_operations(&doc);
    for (method, path) in &routed {
        assert!(
            documented.contains(&(method.clone(), path.clone())),
            "{} {path} is routed but not in /api/openapi.json",
            method.to_uppercase()
        );
    }
    for (method, path) in &documented {
        assert!(
            routed.contains(&(method.clone(), path.clone())),
            "{} {path} is documented but not routed",
            method.to_uppercase()
        );
    }
    let mut ids = BTreeSet::new();
    for (method, path) in &documented {
        let op = &doc["paths"][path][method];
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary"
        );
        let id = op["operationId"].as_str().unwrap_or("");
        assert!(ids.insert(id.to_string()), "operationId {id:?} twice");
        for (code, response) in op["responses"].as_object().unwrap() {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{method} {path} {code} has no description"
            );
        }
        for param in path.split('/').filter(|s| s.starts_with('{')) {
            let name = param.trim_matches(|c| c == '{' || c == '}');
            assert!(
                op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path")),
                "{method} {path}: path parameter {name} is not documented"
            );
        }
    }
}

/// The check itself can fail: an undocumented field, a missing required
/// one, a wrong type or a malformed date is refused, through `$ref`,
/// `allOf` (flattened rows) and nullable `oneOf`.
#[test]
fn strict_schemas_refuse_what_the_document_does_not_say() {
    let doc = onair::http::openapi_document();
    let valid = |name: &str, v: Value| {
        let schema = strict(
            &doc,
            &json!({"$ref": format!("#/components/schemas/{name}")}),
        );
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap()
            .is_valid(&v)
    };
    assert!(valid("ErrorBody", json!({"error": "x"})));
    assert!(!valid("ErrorBody", json!({"error": "x", "detail": 1})));
    assert!(!valid("ErrorBody", json!({})));
    let item = json!({"id": "1", "channel": "a", "title": null, "started_at": 1, "ended_at": null,
        "duration_ms": 0, "size_bytes": 0, "recorded": true, "live": true, "hidden": false,
        "playlist": null, "poster": null, "download": null});
    assert!(valid("BroadcastItem", item.clone()));
    let mut extra = item.clone();
    extra["secret"] = json!("x");
    assert!(!valid("BroadcastItem", extra));
    let mut wrong = item.clone();
    wrong["recorded"] = json!("yes");
    assert!(!valid("BroadcastItem", wrong));
    // Ids are strings: a number past 2^53 would not survive a browser.
    let mut numeric = item;
    numeric["id"] = json!(1);
    assert!(!valid("BroadcastItem", numeric));
    let scheduled = json!({"id": "1", "channel": "a", "title": "t",
        "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z"});
    assert!(valid("ScheduledView", scheduled.clone()));
    let mut bad_time = scheduled.clone();
    bad_time["starts_at"] = json!("tomorrow");
    assert!(!valid("ScheduledView", bad_time));
    let mut nested = scheduled;
    nested["extra"] = json!(1);
    let mut page = json!({"items": [], "next_cursor": null});
    assert!(valid("ChannelPage", page.clone()));
    page["items"] = json!([{"name": "a", "title": "", "description": "", "tags": [], "likes": 0,
        "slow_mode_secs": 0, "live": false, "viewers": 0, "next_broadcast": nested}]);
    assert!(!valid("ChannelPage", page));
}
