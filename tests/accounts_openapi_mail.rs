//! The operations that send mail stay true to `/api/openapi.json`, through
//! a real SMTP server: verification, a change of address, a password reset
//! asked for by the user and one sent by an admin, and the sessions a reset
//! ends. The checks are tests/accounts_openapi.rs's; the rest of the API's
//! scenario is there.

mod common;

use common::accounts::user_with_role;
use common::openapi::{tagged, Body, Checker};
use common::smtp::{token_in, Smtp};
use common::{password_of, TestServer};
use onair::db::Role;
use onair_loadtest::http::http;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_answers_match_their_documented_schema() {
    let Some(mut smtp) = Smtp::start().await else {
        return;
    };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let srv = TestServer::start_with(move |c| c.mail.smtp_url = Some(url)).await;
    let a = srv.http;
    let doc = http(a, "GET", "/api/openapi.json", &[], b"").await.json();
    let mut c = Checker::new(doc);
    let admin_token = user_with_role(&srv, "root", Role::Admin).await;
    let admin = format!("Bearer {admin_token}");
    let admin = [("Authorization", admin.as_str())];
    let reg = ("/api/auth/register", "/api/auth/register");

    let carol = json!({"username": "carol", "password": password_of("carol"), "email": "carol@example.com"});
    assert_eq!(
        c.call(a, "POST", reg, &[], Body::Json(carol)).await.status,
        201
    );
    let _first = smtp.next_mail().await;
    let carol_token = common::login(a, "carol", &password_of("carol")).await;
    let carol = format!("Bearer {carol_token}");
    let carol = [("Authorization", carol.as_str())];
    let send = ("/api/auth/email/send", "/api/auth/email/send");
    assert_eq!(
        c.call(a, "POST", send, &carol, Body::None).await.status,
        202
    );
    let token = token_in(&smtp.next_mail().await);
    let verify = ("/api/auth/email/verify", "/api/auth/email/verify");
    let r = c
        .call(a, "POST", verify, &[], Body::Json(json!({"token": token})))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        c.call(a, "POST", send, &carol, Body::None).await.status,
        409
    );
    let change = ("/api/me/email", "/api/me/email");
    let body = json!({"email": "carol@example.com", "password": password_of("carol")});
    let r = c.call(a, "POST", change, &carol, Body::Json(body)).await;
    assert_eq!(r.status, 409, "already the verified address");
    let body = json!({"email": "carol@example.net", "password": "not hers"});
    let r = c.call(a, "POST", change, &carol, Body::Json(body)).await;
    assert_eq!(r.status, 403);
    let body = json!({"email": "carol@example.net", "password": password_of("carol")});
    let r = c.call(a, "POST", change, &carol, Body::Json(body)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let mails = [smtp.next_mail().await, smtp.next_mail().await];
    let link = mails
        .iter()
        .find(|m| m.contains("Confirm your new email"))
        .expect("the confirmation mail");
    let r = c
        .call(
            a,
            "POST",
            verify,
            &[],
            Body::Json(json!({"token": token_in(link)})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let reset = ("/api/auth/password/reset", "/api/auth/password/reset");
    let r = c
        .call(
            a,
            "POST",
            reset,
            &[],
            Body::Json(json!({"username": "carol"})),
        )
        .await;
    assert_eq!(r.status, 202);
    let token = token_in(&smtp.next_mail().await);
    let confirm = (
        "/api/auth/password/reset/confirm",
        "/api/auth/password/reset/confirm",
    );
    let body = json!({"token": token, "new_password": "a-new-password"});
    assert_eq!(
        c.call(a, "POST", confirm, &[], Body::Json(body.clone()))
            .await
            .status,
        204
    );
    assert_eq!(
        c.call(a, "POST", confirm, &[], Body::Json(body))
            .await
            .status,
        400
    );

    // An admin mails carol a reset link; her sessions end with the reset
    // she made herself above.
    let reset_link = (
        "/api/users/{username}/password-reset",
        "/api/users/carol/password-reset",
    );
    let r = c.call(a, "POST", reset_link, &admin, Body::None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let mail = smtp.next_mail().await;
    assert!(!token_in(&mail).is_empty(), "a reset link: {mail}");
    let out = ("/api/auth/logout", "/api/auth/logout");
    assert_eq!(c.call(a, "POST", out, &carol, Body::None).await.status, 401);

    let unreached = c.unreached(|op| tagged(op, "mail"));
    assert!(
        unreached.is_empty(),
        "never answered with success in the scenario: {unreached:?}"
    );
    srv.stop().await;
}
