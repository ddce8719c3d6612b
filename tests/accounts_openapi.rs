//! `/api/openapi.json` stays true: every documented operation is routed,
//! and every `/api` and `/ws` route in `src/http` is documented.

mod common;

use common::{api, bearer, signup, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers() {
    let srv = TestServer::start().await;
    let a = srv.http;
    let r = api(a, "GET", "/api/openapi.json", &[], None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let token = signup(a, "tester").await;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{}", paths.len());
    let mut ops = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path}"
            );
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            ops.push((method.to_uppercase(), path.clone()));
        }
    }
    // Deleting the account last, so the other calls run signed in.
    ops.sort_by_key(|(m, p)| (p == "/api/me" && m == "DELETE", p.clone()));
    for (method, path) in ops {
        let concrete = path
            .replace("{name}", "demo")
            .replace("{channel}", "demo")
            .replace("{username}", "nobody")
            .replace("{id}", "1")
            .replace("{slug}", "x");
        let body = serde_json::json!({});
        let with_body = matches!(method.as_str(), "POST" | "PATCH" | "PUT");
        let r = api(
            a,
            &method,
            &concrete,
            &[("Authorization", &bearer(&token))],
            with_body.then_some(&body),
        )
        .await;
        assert_ne!(r.status, 405, "{method} {path} is not routed: {}", r.text());
        assert!(
            !(r.status == 404 && r.text().contains("no such resource")),
            "{method} {path} is not routed"
        );
        // The answer is one the document lists for this operation.
        let documented = &paths[&path][method.to_lowercase()]["responses"];
        assert!(
            documented.get(r.status.to_string()).is_some(),
            "{method} {path}: {} is not documented: {}",
            r.status,
            r.text()
        );
    }
    srv.stop().await;
}

/// `.route("PATH", get(..).post(..))` calls in src/http, for paths under
/// /api and /ws: (METHOD, PATH) pairs.
fn routes_in_source() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
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
            if !(path.starts_with("/api") || path.starts_with("/ws")) {
                continue;
            }
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

#[test]
fn every_api_route_is_documented() {
    let doc = onair_openapi();
    let routes = routes_in_source();
    assert!(routes.len() >= 20, "parser finds the routes: {routes:?}");
    for (method, path) in routes {
        assert!(
            doc["paths"][&path][&method].is_object(),
            "{} {path} is routed but not in /api/openapi.json",
            method.to_uppercase()
        );
    }
}

fn onair_openapi() -> serde_json::Value {
    onair::http::openapi_document()
}
