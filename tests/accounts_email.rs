//! Email verification and password reset against a real local SMTP server
//! (aiosmtpd, Debian's python3-aiosmtpd); and both flows saying they are off
//! without `--smtp-url`.

#[macro_use]
mod common;

use common::smtp::{token_in, Smtp};
use common::{
    api, api_as, api_post, assert_error, bearer, login, password_of, signup, Backend, TestServer,
};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_and_password_reset_by_mail() {
    let Some(mut smtp) = Smtp::start().await else {
        return;
    };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let srv = TestServer::start_with(move |c| {
        c.mail.smtp_url = Some(url);
        c.mail.from = Some("onair <noreply@onair.test>".into());
        c.hooks.public_url = Some("https://tv.example.com".into());
    })
    .await;
    let a = srv.http;
    // Registering with an address mails a verification token.
    let r = api_post(
        a,
        "/api/auth/register",
        json!({"username": "mia", "password": password_of("mia"), "email": "mia@example.com"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let mail = smtp.next_mail().await;
    assert!(mail.contains("mia@example.com"), "{mail}");
    assert!(mail.contains("noreply@onair.test"), "{mail}");
    // A link on the public URL, in plain text and in HTML; the token only
    // in the link.
    assert!(
        mail.contains("https://tv.example.com/verify-email#token="),
        "{mail}"
    );
    assert!(
        mail.contains("multipart/alternative") && mail.contains("text/html"),
        "{mail}"
    );
    assert!(
        mail.contains("<a href=\"https://tv.example.com/verify-email#token="),
        "{mail}"
    );
    let token = token_in(&mail);
    let t = login(a, "mia", &password_of("mia")).await;
    let me = api_as(a, &t, "GET", "/api/me", None).await.json();
    assert_eq!(me["user"]["email_verified"], false);
    let wrong = api_post(a, "/api/auth/email/verify", json!({"token": "wrong"})).await;
    assert_eq!(wrong.status, 400);
    let r = api_post(a, "/api/auth/email/verify", json!({"token": token})).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = api_post(a, "/api/auth/email/verify", json!({"token": token})).await;
    assert_eq!(r.status, 400, "a token works once");
    assert_eq!(
        r.body, wrong.body,
        "a spent token and a made-up one answer alike"
    );
    let me = api_as(a, &t, "GET", "/api/me", None).await.json();
    assert_eq!(me["user"]["email_verified"], true);
    let r = api_as(a, &t, "POST", "/api/auth/email/send", None).await;
    assert_eq!(r.status, 409, "already verified");

    // Password reset: 202 for any name; only real accounts get mail.
    let r = api_post(a, "/api/auth/password/reset", json!({"username": "nobody"})).await;
    assert_eq!(r.status, 202);
    let r = api_post(a, "/api/auth/password/reset", json!({"username": "mia"})).await;
    assert_eq!(r.status, 202);
    let mail = smtp.next_mail().await;
    assert!(mail.contains("Reset your onair password"), "{mail}");
    let reset = token_in(&mail);
    let r = api_post(
        a,
        "/api/auth/password/reset/confirm",
        json!({"token": reset, "new_password": "short"}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = api_post(
        a,
        "/api/auth/password/reset/confirm",
        json!({"token": reset, "new_password": "a fresh password"}),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    // Old sessions end; the new password works; the token is spent.
    assert_eq!(api_as(a, &t, "GET", "/api/me", None).await.status, 401);
    login(a, "mia", "a fresh password").await;
    let r = api_post(
        a,
        "/api/auth/password/reset/confirm",
        json!({"token": reset, "new_password": "another password"}),
    )
    .await;
    assert_eq!(r.status, 400);
    srv.stop().await;
    smtp.child.kill().await.ok();
}

/// Mail over STARTTLS to a server that takes none without it: refused
/// while its certificate is not trusted (nothing goes out in the clear
/// instead), delivered over TLS once `--smtp-ca-root` names its CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_starttls_to_a_checked_server() {
    let certs = tempfile::tempdir().unwrap();
    let tls = common::tls::self_signed("localhost");
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    common::tls::write_pair(&tls, &cert, &key);
    let Some(mut smtp) = Smtp::start_with(None, Some((&cert, &key))).await else {
        return;
    };
    let url = format!("smtp://localhost:{}?tls=required", smtp.port);
    let register = |a, name: &str| {
        let body = json!({"username": name, "password": password_of(name), "email": format!("{name}@example.com")});
        async move { api_post(a, "/api/auth/register", body).await }
    };

    let untrusted = url.clone();
    let srv = TestServer::start_with(move |c| c.mail.smtp_url = Some(untrusted)).await;
    assert_eq!(register(srv.http, "ivy").await.status, 201);
    let nothing = tokio::time::timeout(Duration::from_secs(3), smtp.next_mail()).await;
    assert!(
        nothing.is_err(),
        "mail went to a server whose certificate nobody checked"
    );
    srv.stop().await;

    let ca = cert.clone();
    let srv = TestServer::start_with(move |c| {
        c.mail.smtp_url = Some(url);
        c.mail.ca_root = Some(ca);
    })
    .await;
    assert_eq!(register(srv.http, "ada").await.status, 201);
    let mail = smtp.next_mail().await;
    assert!(mail.contains("over-tls: True"), "{mail}");
    assert!(mail.contains("ada@example.com"), "{mail}");
    token_in(&mail);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_email_flows_are_off_and_say_so() {
    let srv = TestServer::start().await;
    let a = srv.http;
    let t = signup(a, "noah").await;
    for (path, auth, body) in [
        ("/api/auth/email/send", true, None),
        ("/api/auth/email/verify", false, Some(json!({"token": "x"}))),
        (
            "/api/auth/password/reset",
            false,
            Some(json!({"username": "noah"})),
        ),
        (
            "/api/auth/password/reset/confirm",
            false,
            Some(json!({"token": "x", "new_password": "long enough"})),
        ),
    ] {
        let h = bearer(&t);
        let headers: Vec<(&str, &str)> = if auth {
            vec![("Authorization", &h)]
        } else {
            vec![]
        };
        let r = api(a, "POST", path, &headers, body.as_ref()).await;
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().contains("--smtp-url"),
            "{}",
            r.text()
        );
    }
    // Nothing can confirm an address: a change takes effect at once, as
    // unverified, and still needs the password.
    let change = |password: String| json!({"email": "noah@example.org", "password": password});
    let r = api_as(
        a,
        &t,
        "POST",
        "/api/me/email",
        Some(&change("wrong".into())),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = api_as(
        a,
        &t,
        "POST",
        "/api/me/email",
        Some(&change(password_of("noah"))),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let me = api_as(a, &t, "GET", "/api/me", None).await.json();
    assert_eq!(me["user"]["email"], "noah@example.org");
    assert_eq!(me["user"]["email_verified"], false);
    srv.stop().await;
}

both!(a_new_address_takes_effect_once_it_confirms);

/// A new address replaces the old one only once the mail sent to it is
/// answered; the old address is told; the link works once, and links
/// still out for the old address stop working.
async fn a_new_address_takes_effect_once_it_confirms(b: Backend) {
    let Some(mut smtp) = Smtp::start().await else {
        return;
    };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let Some(srv) = TestServer::on_with(b, move |c| {
        c.mail.smtp_url = Some(url);
        c.hooks.public_url = Some("https://tv.example.com".into());
    })
    .await
    else {
        return;
    };
    let a = srv.http;
    let r = api_post(
        a,
        "/api/auth/register",
        json!({"username": "ivy", "password": password_of("ivy"), "email": "ivy@old.example"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let old_link = token_in(&smtp.next_mail().await);
    let t = login(a, "ivy", &password_of("ivy")).await;
    let change = |email: &str, password: String| json!({"email": email, "password": password});

    for (body, status) in [
        (change("not an address", password_of("ivy")), 400),
        (change("ivy@new.example", "wrong".into()), 403),
    ] {
        let r = api_as(a, &t, "POST", "/api/me/email", Some(&body)).await;
        assert_eq!(r.status, status, "{}", r.text());
    }
    let r = api_as(
        a,
        &t,
        "POST",
        "/api/me/email",
        Some(&change("ivy@new.example", password_of("ivy"))),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let mut mails = [smtp.next_mail().await, smtp.next_mail().await];
    mails.sort_by_key(|m| !m.contains("Confirm your new email"));
    let [confirm, notice] = mails;
    assert!(confirm.contains("To: ivy@new.example"), "{confirm}");
    assert!(
        confirm.contains("https://tv.example.com/verify-email#token="),
        "{confirm}"
    );
    assert!(notice.contains("To: ivy@old.example"), "{notice}");
    assert!(
        notice.contains("ivy@new.example") && !notice.contains("#token="),
        "the old address is told, with no link: {notice}"
    );
    // Nothing changes until the new address answers.
    let me = api_as(a, &t, "GET", "/api/me", None).await.json();
    assert_eq!(me["user"]["email"], "ivy@old.example");
    assert_eq!(me["user"]["email_verified"], false);

    let token = token_in(&confirm);
    let r = api_post(a, "/api/auth/email/verify", json!({"token": token})).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let me = api_as(a, &t, "GET", "/api/me", None).await.json();
    assert_eq!(me["user"]["email"], "ivy@new.example");
    assert_eq!(me["user"]["email_verified"], true);
    let r = api_post(a, "/api/auth/email/verify", json!({"token": token})).await;
    assert_eq!(r.status, 400, "a link works once");
    let r = api_post(a, "/api/auth/email/verify", json!({"token": old_link})).await;
    assert_eq!(r.status, 400, "the old address's link is void");
    // Resets now go to the new address.
    let r = api_post(a, "/api/auth/password/reset", json!({"username": "ivy"})).await;
    assert_eq!(r.status, 202);
    let mail = smtp.next_mail().await;
    assert!(
        mail.contains("To: ivy@new.example") && mail.contains("Reset your onair password"),
        "{mail}"
    );
    srv.stop().await;
    smtp.child.kill().await.ok();
}

/// Medians, in ms, of interleaved samples.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The timing a stranger can measure tells nothing: resets for existing
/// accounts (with an address), for accounts without one and for names
/// nobody has get the same status and body, and medians within
/// [`TIMING_TOLERANCE`] of each other, although the mail server takes
/// [`SMTP_DELAY`] per message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_answers_alike_and_as_fast_whether_the_account_exists() {
    /// Each reset mail takes this long to deliver: on the request path it
    /// would show many times over the tolerance.
    const SMTP_DELAY: Duration = Duration::from_millis(400);
    /// Both request paths do one lookup by name and then answer; the only
    /// extra step for a real account is handing the mail to a background
    /// task (microseconds). 25 ms on medians of 12 interleaved requests
    /// absorbs scheduling noise on a busy two-core machine, and is 16x
    /// smaller than one mail delivery.
    const TIMING_TOLERANCE: Duration = Duration::from_millis(25);
    const N: usize = 12;
    use common::accounts::{api_from, behind_proxy};
    let Some(mut smtp) = Smtp::start_with_delay(Some(SMTP_DELAY)).await else {
        return;
    };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let srv = TestServer::start_with(move |c| {
        behind_proxy(c);
        c.mail.smtp_url = Some(url);
    })
    .await;
    let a = srv.http;
    for i in 0..N {
        // Registered from addresses of their own: the test is not about
        // the registration limit.
        let ip = format!("198.51.100.{}", i + 1);
        for (name, email) in [
            (format!("mail{i}"), Some(format!("mail{i}@example.com"))),
            (format!("bare{i}"), None),
        ] {
            let mut body = json!({"username": name, "password": password_of(&name)});
            if let Some(e) = email {
                body["email"] = json!(e);
            }
            let r = api_from(a, &ip, "POST", "/api/auth/register", &[], Some(&body)).await;
            assert_eq!(r.status, 201, "{}", r.text());
        }
    }
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut answers = std::collections::BTreeSet::new();
    for i in 0..N {
        let names = [format!("mail{i}"), format!("bare{i}"), format!("ghost{i}")];
        // A different order each round, so drift cannot favour one kind.
        for k in 0..3 {
            let which = (i + k) % 3;
            let ip = format!("203.0.113.{}", 3 * i + which + 1);
            let body = json!({"username": names[which]});
            let t = std::time::Instant::now();
            let r = api_from(a, &ip, "POST", "/api/auth/password/reset", &[], Some(&body)).await;
            times[which].push(t.elapsed());
            answers.insert((r.status, r.body.clone()));
        }
    }
    assert_eq!(answers.len(), 1, "one answer for all: {answers:?}");
    assert_eq!(answers.first().unwrap().0, 202);
    let [with_mail, bare, ghost] = times.map(median);
    println!(
        "reset timing, medians of {N}: account with mail {with_mail:?}, without {bare:?}, no account {ghost:?} (SMTP takes {SMTP_DELAY:?} a message)"
    );
    for (what, t) in [("an account with mail", with_mail), ("one without", bare)] {
        let d = t.abs_diff(ghost);
        assert!(
            d <= TIMING_TOLERANCE,
            "{what} answered {t:?}, no account {ghost:?}: {d:?} apart"
        );
    }
    // The mail is sent all the same, after the answer.
    let mut resets = 0;
    while resets < 1 {
        if smtp.next_mail().await.contains("Reset your onair password") {
            resets += 1;
        }
    }
    srv.stop().await;
    smtp.child.kill().await.ok();
}

/// Mail a stranger can trigger is limited per client address and per
/// account asked about, with 429 and Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_verification_mail_are_rate_limited() {
    use common::accounts::{api_from, behind_proxy};
    use onair::http::auth::{MAIL_PER_ACCOUNT, MAIL_PER_HOST};
    let Some(smtp) = Smtp::start().await else {
        return;
    };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let srv = TestServer::start_with(move |c| {
        behind_proxy(c);
        c.mail.smtp_url = Some(url);
    })
    .await;
    let a = srv.http;
    let reset = |ip: String, name: String| async move {
        let body = json!({"username": name});
        api_from(a, &ip, "POST", "/api/auth/password/reset", &[], Some(&body)).await
    };
    // Per host: any names.
    for i in 0..MAIL_PER_HOST.burst {
        let r = reset("203.0.113.1".into(), format!("name{i}")).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let r = reset("203.0.113.1".into(), "one-more".into()).await;
    assert_error(&r, 429);
    assert_eq!(
        r.header("retry-after"),
        Some(MAIL_PER_HOST.every.as_secs().to_string().as_str())
    );
    // Per account: from many hosts.
    for i in 0..MAIL_PER_ACCOUNT.burst {
        let r = reset(format!("198.51.100.{}", i + 1), "victim".into()).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let r = reset("192.0.2.200".into(), "victim".into()).await;
    assert_error(&r, 429);
    // Verification resends count the same way.
    let body =
        json!({"username": "vera", "password": password_of("vera"), "email": "v@example.com"});
    let r = api_from(
        a,
        "192.0.2.1",
        "POST",
        "/api/auth/register",
        &[],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let t = login(a, "vera", &password_of("vera")).await;
    let auth = bearer(&t);
    let mut statuses = Vec::new();
    for i in 0..=MAIL_PER_ACCOUNT.burst {
        let ip = format!("192.0.2.{}", 10 + i);
        let r = api_from(
            a,
            &ip,
            "POST",
            "/api/auth/email/send",
            &[("Authorization", &auth)],
            None,
        )
        .await;
        statuses.push(r.status);
    }
    let mut want = vec![202; MAIL_PER_ACCOUNT.burst as usize];
    want.push(429);
    assert_eq!(statuses, want);
    srv.stop().await;
    drop(smtp);
}
