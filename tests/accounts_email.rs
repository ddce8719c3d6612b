//! Email verification and password reset against a real local SMTP server
//! (aiosmtpd, Debian's python3-aiosmtpd); and both flows saying they are off
//! without `--smtp-url`.

mod common;

use common::{api, api_as, api_post, bearer, login, password_of, signup, TestServer};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// aiosmtpd printing every message it gets (the Debugging handler).
struct Smtp {
    port: u16,
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Smtp {
    async fn start() -> Option<Smtp> {
        let python = "/usr/bin/python3";
        let has = std::process::Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has {
            common::missing_service(
                "aiosmtpd",
                "scripts/setup.sh --test installs python3-aiosmtpd",
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = tokio::process::Command::new(python)
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Debugging",
                "stdout",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait until it accepts connections.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(Smtp { port, child, lines });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("aiosmtpd did not start");
    }

    /// The next mail's text (headers and body), up to its end marker.
    async fn next_mail(&mut self) -> String {
        let mut text = String::new();
        let read = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                if line.contains("END MESSAGE") {
                    return;
                }
                text.push_str(&line);
                text.push('\n');
            }
        };
        tokio::time::timeout(Duration::from_secs(15), read)
            .await
            .expect("a mail within 15 s");
        text
    }
}

/// The 43-character token on a line of its own.
fn token_in(mail: &str) -> String {
    mail.lines()
        .map(str::trim)
        .find(|l| {
            l.len() == 43
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .unwrap_or_else(|| panic!("no token in {mail}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_and_password_reset_by_mail() {
    let Some(mut smtp) = Smtp::start().await else {
        return;
    };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let srv = TestServer::start_with(move |c| {
        c.mail.smtp_url = Some(url);
        c.mail.from = Some("onair <noreply@onair.test>".into());
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
    let token = token_in(&mail);
    let t = login(a, "mia", &password_of("mia")).await;
    let me = api_as(a, &t, "GET", "/api/me", None).await.json();
    assert_eq!(me["user"]["email_verified"], false);
    let r = api_post(a, "/api/auth/email/verify", json!({"token": "wrong"})).await;
    assert_eq!(r.status, 400);
    let r = api_post(a, "/api/auth/email/verify", json!({"token": token})).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = api_post(a, "/api/auth/email/verify", json!({"token": token})).await;
    assert_eq!(r.status, 400, "a token works once");
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
    srv.stop().await;
}
