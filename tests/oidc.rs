//! "Sign in with ..." over OpenID Connect, against a real provider: node
//! `oidc-provider` (tests/e2e/oidc_provider.mjs) on a free port, its
//! development sign-in pages driven by Chromium (tests/e2e/oidc.mjs).
//!
//! Needs node with tests/e2e's packages, Debian's `chromium` and the built
//! web app.

mod common;

use common::node::{page_scenario, require_built_app, shots};
use common::oidc::start;
use common::openapi::{tagged, Body, Checker};
use common::{api, api_as, get, signup, TestServer};
use serde_json::json;

async fn user_id(srv: &TestServer, token: &str) -> i64 {
    let me = api_as(srv.http, token, "GET", "/api/me", None).await.json();
    common::json_id(&me["user"]["id"])
}

/// Every browser scenario against one server and provider: first sign-in
/// and username, a second sign-in, a forged state and another browser's
/// callback, replayed codes, an unverified address that must not take over
/// an account, a verified one that signs in to it, and linking while
/// signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_a_provider_in_chromium() {
    require_built_app();
    let (srv, _idp) = start().await;
    let dave = signup(srv.http, "dave").await;
    let dave_id = user_id(&srv, &dave).await;
    srv.db
        .set_verified_email(dave_id, "dave@example.test")
        .await
        .unwrap();
    signup(srv.http, "erin").await;
    let dir = shots();

    let r = page_scenario("oidc.mjs", srv.http, &["signup", "carol", "carol-tv", &dir]).await;
    assert_eq!(r["landed"], "/oidc/signup", "{r}");
    assert_eq!(
        r["suggested"], "carol",
        "the provider's name is offered: {r}"
    );
    assert_eq!(
        r["before"], 401,
        "no account before a username is chosen: {r}"
    );
    assert_eq!(r["after"], "carol-tv", "{r}");
    assert!(
        r["linked"].as_str().unwrap().contains("carol@example.test"),
        "{r}"
    );
    assert_eq!(r["noPassword"], true, "{r}");
    let carol = srv
        .db
        .identity_user("test", "carol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carol.username, "carol-tv");
    assert!(carol.email_verified, "the provider vouched for the address");
    assert!(!srv.db.has_password(carol.id).await.unwrap());
    let pw = serde_json::json!({"username": "carol-tv", "password": ""});
    let r = api(srv.http, "POST", "/api/auth/login", &[], Some(&pw)).await;
    assert_eq!(r.status, 401, "no password signs in to it: {}", r.text());

    let r = page_scenario("oidc.mjs", srv.http, &["again", "carol"]).await;
    assert_eq!(r["me"], "carol-tv", "{r}");
    assert_eq!(r["landed"], "/", "{r}");

    let r = page_scenario("oidc.mjs", srv.http, &["refused", "ray"]).await;
    assert!(
        r["wrongState"]
            .as_str()
            .unwrap()
            .contains("unknown, used or expired"),
        "{r}"
    );
    assert_eq!(r["wrongStateMe"], 401, "{r}");
    assert!(
        r["otherBrowser"]
            .as_str()
            .unwrap()
            .contains("another browser"),
        "{r}"
    );
    assert_eq!(r["otherBrowserMe"], 401, "{r}");
    assert!(srv.db.identity_user("test", "ray").await.unwrap().is_none());

    let r = page_scenario("oidc.mjs", srv.http, &["replay", "carol"]).await;
    assert_eq!(r["firstMe"], "carol-tv", "{r}");
    assert!(
        r["sameAgain"]
            .as_str()
            .unwrap()
            .contains("unknown, used or expired"),
        "{r}"
    );
    assert!(
        r["oldCode"].as_str().unwrap().contains("refused the code"),
        "{r}"
    );
    assert_eq!(r["oldCodeMe"], 401, "{r}");

    let r = page_scenario("oidc.mjs", srv.http, &["unlinked", "mallory"]).await;
    assert_eq!(
        r["landed"], "/oidc/signup",
        "a new account is offered, not dave's: {r}"
    );
    assert_eq!(r["me"], 401, "{r}");
    assert!(srv
        .db
        .identity_user("test", "mallory")
        .await
        .unwrap()
        .is_none());
    assert!(srv.db.identities(dave_id).await.unwrap().is_empty());

    let r = page_scenario("oidc.mjs", srv.http, &["verified", "dave-idp"]).await;
    assert_eq!(
        r["me"], "dave",
        "a verified address on both sides links: {r}"
    );
    let linked = srv
        .db
        .identity_user("test", "dave-idp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(linked.id, dave_id);

    let r = page_scenario("oidc.mjs", srv.http, &["link", "erin", "erin-idp", &dir]).await;
    assert!(r["linked"].as_str().unwrap().contains("linked"), "{r}");
    assert_eq!(r["laterMe"], "erin", "{r}");
    srv.stop().await;
}

fn cookies(r: &common::HttpResponse) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .collect()
}

/// The sign-in's start and callback over plain HTTP: the redirect carries
/// PKCE, state and nonce; the state cookie is HttpOnly and Lax; a callback
/// without it, or with an unknown state, signs nobody in; starts are rate
/// limited per address; an unknown provider is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_callback_over_http() {
    let (srv, _idp) = start().await;
    let list = get(srv.http, "/api/auth/providers").await.json();
    assert_eq!(
        list,
        serde_json::json!({"providers": [{"id": "test", "name": "Test ID"}]})
    );
    let r = get(srv.http, "/auth/oidc/test/start?next=%2Fc%2Fdemo").await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.header("location").expect("location").to_string();
    for part in [
        "code_challenge=",
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "client_id=onair",
        "scope=openid",
        &format!(
            "redirect_uri=http%3A%2F%2F{}%2Fauth%2Foidc%2Ftest%2Fcallback",
            srv.http.to_string().replace(':', "%3A")
        ),
    ] {
        assert!(to.contains(part), "{part} in {to}");
    }
    let set = cookies(&r);
    assert_eq!(set.len(), 1, "{set:?}");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/auth/oidc", "Max-Age=600"] {
        assert!(set[0].contains(flag), "{flag} in {set:?}");
    }
    let state = to
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("state="))
        .expect("state");
    // The right state without the browser's cookie.
    let cb = format!("/auth/oidc/test/callback?code=x&state={state}");
    let r = get(srv.http, &cb).await;
    assert_eq!(r.status, 303);
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("/login#oidc-error="));
    assert!(cookies(&r).iter().all(|c| !c.starts_with("onair_session=")));
    // ...and it was spent by that attempt.
    let cookie = format!("onair_oidc={state}");
    let r = api(srv.http, "GET", &cb, &[("Cookie", &cookie)], None).await;
    assert!(
        r.header("location")
            .unwrap()
            .contains("unknown%2C+used+or+expired"),
        "{:?}",
        r.header("location")
    );
    assert_eq!(get(srv.http, "/auth/oidc/nope/start").await.status, 404);
    // An open redirect through `next` is not possible.
    let r = get(srv.http, "/auth/oidc/test/start?next=%2F%2Fevil.example").await;
    assert_eq!(r.status, 303);
    let mut limited = false;
    for _ in 0..30 {
        let r = get(srv.http, "/auth/oidc/test/start").await;
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
            limited = true;
            break;
        }
        assert_eq!(r.status, 303);
    }
    assert!(limited, "starts from one address are rate limited");
    srv.stop().await;
}

/// The state from one `start`'s redirect to the provider.
fn state_of(r: &common::HttpResponse) -> String {
    let to = r.header("location").expect("location");
    to.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("state="))
        .expect("state")
        .to_string()
}

/// Where a callback sent the browser, and the reason when it is the
/// sign-in page's.
fn landed(r: &common::HttpResponse) -> String {
    assert_eq!(r.status, 303, "{}", r.text());
    r.header("location").unwrap().to_string()
}

/// Two sign-ins in flight in one browser (two tabs): each finishes, in
/// either order, the other still waiting meanwhile. A provider's refusal
/// (`error=access_denied`) and a callback without a code land on the
/// sign-in page with the reason, and spend only their own state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_in_two_tabs_and_provider_refusals() {
    let (srv, idp) = start().await;
    let a = srv.http;
    let mut jar = common::oidc::Jar::default();
    let mut starts = Vec::new();
    for _ in 0..2 {
        let cookie = jar.header();
        let r = api(
            a,
            "GET",
            "/auth/oidc/test/start?next=%2Fdashboard",
            &[("Cookie", &cookie)],
            None,
        )
        .await;
        assert_eq!(r.status, 303);
        jar.take(&r);
        starts.push(r);
    }
    let (first, second) = (state_of(&starts[0]), state_of(&starts[1]));
    assert!(
        jar.header().contains(&first) && jar.header().contains(&second),
        "{}",
        jar.header()
    );
    // The first tab finishes: signed in, the second's state kept.
    let back = idp
        .sign_in(starts[0].header("location").unwrap(), "tab")
        .await;
    assert!(back.contains(&format!("state={first}")), "{back}");
    let path = &back[back.find("/auth/oidc/").unwrap()..];
    let cookie = jar.header();
    let r = api(a, "GET", path, &[("Cookie", &cookie)], None).await;
    jar.take(&r);
    assert!(
        landed(&r).starts_with("/oidc/signup#token="),
        "{}",
        landed(&r)
    );
    assert!(!jar.header().contains(&first), "{}", jar.header());
    assert!(jar.header().contains(&second), "{}", jar.header());
    // The second tab: the user said no at the provider.
    let cookie = jar.header();
    let refused = format!(
        "/auth/oidc/test/callback?error=access_denied&error_description=The+user+said+no&state={second}"
    );
    let r = api(a, "GET", &refused, &[("Cookie", &cookie)], None).await;
    jar.take(&r);
    let to = landed(&r);
    assert!(to.starts_with("/login#oidc-error="), "{to}");
    assert!(
        to.contains("access_denied") && to.contains("The+user+said+no"),
        "{to}"
    );
    assert!(
        !jar.header().contains("onair_oidc"),
        "every state spent: {}",
        jar.header()
    );
    // A callback with a known state but no code.
    let r = api(a, "GET", "/auth/oidc/test/start", &[], None).await;
    let third = state_of(&r);
    jar.take(&r);
    let cookie = jar.header();
    let r = api(
        a,
        "GET",
        &format!("/auth/oidc/test/callback?state={third}"),
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    let to = landed(&r);
    assert!(to.contains("no+code"), "{to}");
    assert!(cookies(&r).iter().all(|c| !c.starts_with("onair_session=")));
    // A browser holds at most four sign-ins in flight.
    let mut jar = common::oidc::Jar::default();
    for _ in 0..6 {
        let cookie = jar.header();
        let r = api(
            a,
            "GET",
            "/auth/oidc/test/start",
            &[("Cookie", &cookie)],
            None,
        )
        .await;
        jar.take(&r);
    }
    let held = jar.header().split('=').nth(1).unwrap().split('.').count();
    assert_eq!(held, 4, "{}", jar.header());
    srv.stop().await;
}

/// An account made through a provider has no password: a fresh session
/// may set one, an old one may not; its only identity cannot be unlinked
/// until it has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_account_without_a_password() {
    let (srv, _idp) = start().await;
    let (user, _) = srv
        .db
        .create_user_with(onair::db::NewUser {
            username: "pia",
            password_hash: "",
            email: Some("pia@example.test"),
            email_verified: true,
            role: onair::db::Role::Viewer,
            adopt_channel: false,
            identity: Some(onair::db::NewIdentity {
                provider: "test",
                subject: "pia",
                email: Some("pia@example.test"),
            }),
        })
        .await
        .unwrap();
    let (token, hash) = onair::auth::new_session_token();
    srv.db
        .insert_session(&hash, user.id, onair::chat::unix_secs() + 3600, 100)
        .await
        .unwrap();
    let ids = api_as(srv.http, &token, "GET", "/api/me/identities", None)
        .await
        .json();
    assert_eq!(ids["password"], false, "{ids}");
    assert_eq!(ids["identities"][0]["provider"], "test", "{ids}");
    assert_eq!(ids["identities"][0]["name"], "Test ID", "{ids}");
    let r = api_as(srv.http, &token, "DELETE", "/api/me/identities/test", None).await;
    assert_eq!(r.status, 409, "the only way in: {}", r.text());
    // A session older than the recent-sign-in window cannot set a password.
    sqlx::query("UPDATE sessions SET created_at = created_at - 3600 WHERE token_hash = $1")
        .bind(&hash)
        .execute(srv.db.pool())
        .await
        .unwrap();
    let body = serde_json::json!({"old_password": "", "new_password": "a new password"});
    let r = api_as(srv.http, &token, "POST", "/api/auth/password", Some(&body)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("sign out and in again"), "{}", r.text());
    sqlx::query("UPDATE sessions SET created_at = $2 WHERE token_hash = $1")
        .bind(&hash)
        .bind(onair::chat::unix_secs())
        .execute(srv.db.pool())
        .await
        .unwrap();
    let r = api_as(srv.http, &token, "POST", "/api/auth/password", Some(&body)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    common::login(srv.http, "pia", "a new password").await;
    let r = api_as(srv.http, &token, "DELETE", "/api/me/identities/test", None).await;
    assert_eq!(
        r.status,
        204,
        "a password is another way in now: {}",
        r.text()
    );
    assert!(srv.db.identity_user("test", "pia").await.unwrap().is_none());
    srv.stop().await;
}

/// The providers' operations (tag `providers`) against their documented
/// schema, made strict, each reaching its success: the list, a sign-in
/// from start to callback and a new account, the identities, a link while
/// signed in, and an unlink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_operations_match_their_documented_schema() {
    let (srv, idp) = start().await;
    let a = srv.http;
    let mut c = Checker::new(onair::http::openapi_document());
    let none: &[(&str, &str)] = &[];
    let r = c
        .call(
            a,
            "GET",
            ("/api/auth/providers", "/api/auth/providers"),
            none,
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200);
    let start_op = (
        "/auth/oidc/{id}/start",
        "/auth/oidc/test/start?next=%2Fdashboard",
    );
    let r = c.call(a, "GET", start_op, none, Body::None).await;
    assert_eq!(r.status, 303);
    let mut jar = common::oidc::Jar::default();
    jar.take(&r);
    let back = idp.sign_in(r.header("location").unwrap(), "olga").await;
    let path = back.split_once(&a.to_string()).unwrap().1.to_string();
    let cookie = jar.header();
    let cb = ("/auth/oidc/{id}/callback", path.as_str());
    let r = c
        .call(a, "GET", cb, &[("Cookie", &cookie)], Body::None)
        .await;
    assert_eq!(r.status, 303);
    let to = r.header("location").unwrap().to_string();
    assert!(to.starts_with("/oidc/signup#token="), "{to}");
    let token = to
        .split(['#', '&'])
        .find_map(|kv| kv.strip_prefix("token="))
        .unwrap()
        .to_string();
    assert!(to.contains("&name=olga"), "{to}");
    let su = ("/api/auth/providers/signup", "/api/auth/providers/signup");
    let bad = json!({"token": "nope", "username": "olga"});
    assert_eq!(
        c.call(a, "POST", su, none, Body::Json(bad)).await.status,
        403
    );
    for malformed in ["Olga!", "", "a/b", "-olga", &"o".repeat(40)] {
        let body = json!({"token": token, "username": malformed});
        let r = c.call(a, "POST", su, none, Body::Json(body)).await;
        assert_eq!(r.status, 400, "{malformed:?}: {}", r.text());
    }
    let taken = json!({"token": token, "username": "demo"});
    assert_eq!(
        c.call(a, "POST", su, none, Body::Json(taken)).await.status,
        409
    );
    let body = json!({"token": token, "username": "olga"});
    let r = c.call(a, "POST", su, none, Body::Json(body.clone())).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(r.json()["user"]["email_verified"], true);
    let again = c.call(a, "POST", su, none, Body::Json(body)).await;
    assert_eq!(again.status, 403, "a pending sign-up makes one account");
    let auth = format!("Bearer {session}");
    let me = &[("Authorization", auth.as_str())];
    let ids = ("/api/me/identities", "/api/me/identities");
    let r = c.call(a, "GET", ids, me, Body::None).await;
    assert_eq!(r.json()["password"], false);
    let unlink = ("/api/me/identities/{id}", "/api/me/identities/test");
    assert_eq!(
        c.call(a, "DELETE", unlink, me, Body::None).await.status,
        409
    );
    let pw = json!({"old_password": "", "new_password": "olga's password"});
    let r = api(a, "POST", "/api/auth/password", me, Some(&pw)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        c.call(a, "DELETE", unlink, me, Body::None).await.status,
        204
    );
    let nope = ("/api/me/identities/{id}", "/api/me/identities/test");
    assert_eq!(c.call(a, "DELETE", nope, me, Body::None).await.status, 404);
    // Linked again while signed in.
    let link = (
        "/api/auth/providers/{id}/link",
        "/api/auth/providers/test/link",
    );
    let r = c.call(a, "POST", link, me, Body::None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut jar = common::oidc::Jar::default();
    jar.take(&r);
    let back = idp.sign_in(r.json()["url"].as_str().unwrap(), "olga").await;
    let path = back.split_once(&a.to_string()).unwrap().1.to_string();
    let cookie = jar.header();
    let cb = ("/auth/oidc/{id}/callback", path.as_str());
    let r = c
        .call(a, "GET", cb, &[("Cookie", &cookie)], Body::None)
        .await;
    assert_eq!(r.header("location"), Some("/dashboard"));
    let olga = srv.db.identity_user("test", "olga").await.unwrap().unwrap();
    assert_eq!(olga.username, "olga");
    let unknown = (
        "/api/auth/providers/{id}/link",
        "/api/auth/providers/nope/link",
    );
    assert_eq!(c.call(a, "POST", unknown, me, Body::None).await.status, 404);
    let unreached = c.unreached(|op| tagged(op, "providers"));
    assert!(unreached.is_empty(), "never reached: {unreached:?}");
    srv.stop().await;
}
