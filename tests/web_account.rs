//! The account pages in Chromium (`tests/e2e/web_account.mjs`): the pages
//! mailed links open, the dashboard's signed-in devices, email address,
//! password and account deletion; the sign-up policy on the sign-up page,
//! the dashboard and the admin console's invites.
//!
//! Needs what tests/web_app.rs needs: the built app, node and Debian's
//! `chromium`; and aiosmtpd for the mail.

mod common;

use common::accounts::user_with_role;
use common::node::{page_scenario, require_built_app, shots};
use common::smtp::{token_in, Smtp};
use common::{api, api_as, signup, TestServer};
use onair::auth::Registration;
use onair::db::{EmailPurpose, Role};

/// One browser scenario at a time, as in tests/web_app.rs.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The pages a mailed link opens: the address is verified on opening, a new
/// password is set from the reset link (whose token never leaves the
/// fragment), and the sign-in page leads to asking for a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailed_links_open_pages_that_verify_and_reset() {
    require_built_app();
    let _serial = SERIAL.lock().await;
    // Mail on (the routes need it); this relay takes nothing, and the test
    // makes the tokens itself, as the mail would carry them.
    let srv = TestServer::start_with(|c| c.mail.smtp_url = Some("smtp://127.0.0.1:9".into())).await;
    let token = signup(srv.http, "nia").await;
    let me = api_as(srv.http, &token, "GET", "/api/me", None)
        .await
        .json();
    let id = common::json_id(&me["user"]["id"]);
    let expires = onair::chat::unix_secs() + 600;
    let (verify, verify_hash) = onair::auth::new_session_token();
    let (reset, reset_hash) = onair::auth::new_session_token();
    srv.db
        .insert_email_token(&verify_hash, id, EmailPurpose::Verify, None, expires)
        .await
        .unwrap();
    srv.db
        .insert_email_token(&reset_hash, id, EmailPurpose::Reset, None, expires)
        .await
        .unwrap();
    let base = format!("http://{}", srv.http);
    let r = page_scenario(
        "web_account.mjs",
        srv.http,
        &[
            "mailLinks",
            &format!("{base}/verify-email#token={verify}"),
            &format!("{base}/reset-password#token={reset}"),
            "a brand new password",
            "nia",
        ],
    )
    .await;
    assert_eq!(
        r["hashAfterReset"], "",
        "the spent token leaves the address bar: {r}"
    );
    let r = common::login(srv.http, "nia", "a brand new password").await;
    let me = api_as(srv.http, &r, "GET", "/api/me", None).await.json();
    assert_eq!(me["user"]["email_verified"], true, "{me}");
    srv.stop().await;
}

/// The dashboard's signed-in devices: another device (signed in through
/// the API) is listed beside this one, signed out from here, and "Sign out
/// everywhere" ends this page's session too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_lists_devices_and_signs_them_out() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    let other = signup(srv.http, "alice").await;
    let r = page_scenario(
        "web_account.mjs",
        srv.http,
        &["sessions", "alice", &shots()],
    )
    .await;
    let listed = r["listed"].as_array().expect("listed");
    assert_eq!(listed.len(), 2, "{r}");
    assert_eq!(
        listed
            .iter()
            .filter(|t| t.as_str().unwrap_or("").contains("(this device)"))
            .count(),
        1,
        "{r}"
    );
    assert_eq!(r["afterOne"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["me"], 401, "the page's own session ended: {r}");
    let gone = api_as(srv.http, &other, "GET", "/api/me", None).await;
    assert_eq!(gone.status, 401, "the other device was signed out");
    srv.stop().await;
}

/// The dashboard's account section: a wrong current password is refused
/// and says so; the right one changes it (another device is signed out,
/// the new password signs in); deleting needs the username typed, then
/// the account is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_changes_the_password_and_deletes_the_account() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    let other = signup(srv.http, "alice").await;
    let new_password = "a-brand-new-password";
    let r = page_scenario(
        "web_account.mjs",
        srv.http,
        &["account", "alice", new_password],
    )
    .await;
    assert!(
        r["wrong"].as_str().unwrap_or("").contains("wrong"),
        "a wrong current password says so: {r}"
    );
    assert_eq!(r["disabledBefore"], true, "delete waits for the name: {r}");
    assert_eq!(r["me"], 401, "signed out after deleting: {r}");
    let gone = api_as(srv.http, &other, "GET", "/api/me", None).await;
    assert_eq!(gone.status, 401, "the other device was signed out");
    let body = serde_json::json!({"username": "alice", "password": new_password});
    let login = api(srv.http, "POST", "/api/auth/login", &[], Some(&body)).await;
    assert_eq!(login.status, 403, "a deleted account cannot sign in");
    assert!(login.text().contains("deleted"), "{}", login.text());
    srv.stop().await;
}

/// The dashboard changes the address: a wrong password is refused; the
/// right one mails a link to the new address and changes nothing yet; the
/// link, opened in the browser, makes it the account's verified address,
/// which the dashboard then shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_changes_the_email_once_the_new_address_confirms() {
    let _serial = SERIAL.lock().await;
    let Some(mut smtp) = Smtp::start().await else {
        return;
    };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let srv = TestServer::start_with(move |c| c.mail.smtp_url = Some(url)).await;
    let token = signup(srv.http, "ada").await;
    let r = page_scenario(
        "web_account.mjs",
        srv.http,
        &["email", "ada", "ada@new.example"],
    )
    .await;
    assert!(
        r["before"].as_str().unwrap_or("").contains("No address"),
        "{r}"
    );
    assert!(r["wrong"].as_str().unwrap_or("").contains("wrong"), "{r}");
    assert!(
        r["sent"].as_str().unwrap_or("").contains("ada@new.example"),
        "{r}"
    );
    let me = api_as(srv.http, &token, "GET", "/api/me", None)
        .await
        .json();
    assert!(
        me["user"]["email"].is_null(),
        "nothing changes before the link: {me}"
    );

    let mail = smtp.next_mail().await;
    assert!(mail.contains("To: ada@new.example"), "{mail}");
    // No public URL: the mail names the page and carries the code.
    let link = format!("http://{}/verify-email#token={}", srv.http, token_in(&mail));
    let r = page_scenario(
        "web_account.mjs",
        srv.http,
        &["emailConfirmed", "ada", &link, &shots()],
    )
    .await;
    let after = r["after"].as_str().unwrap_or("");
    assert!(
        after.contains("ada@new.example") && after.contains("(verified)"),
        "{r}"
    );
    srv.stop().await;
    smtp.child.kill().await.ok();
}

/// Invite-only: an admin makes a broadcaster's invite in the console; its
/// link, opened in another browser, registers an account whose dashboard
/// has a stream key; the console then lists the invite as used by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_invites_a_broadcaster_from_the_console() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start_with(|c| {
        c.accounts.registration = Registration::Invite;
        c.accounts.open_streaming = false;
    })
    .await;
    user_with_role(&srv, "root", Role::Admin).await;
    let r = page_scenario(
        "web_account.mjs",
        srv.http,
        &["invite", "root", "newbie", &shots()],
    )
    .await;
    let link = r["link"].as_str().unwrap_or("");
    assert!(
        link.starts_with(&format!("http://{}/register#invite=", srv.http)),
        "{r}"
    );
    let listed = r["listed"].to_string();
    assert!(listed.contains("used by newbie"), "{r}");
    let me = srv.db.credentials("newbie").await.unwrap().unwrap().user;
    assert_eq!(me.role, Role::Broadcaster);
    srv.stop().await;
}

/// Without `--open-streaming` a new account's dashboard has no stream key
/// and says how streaming comes; with registration closed the sign-up
/// page says so and has no form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_up_page_and_dashboard_follow_the_policy() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start_with(|c| c.accounts.open_streaming = false).await;
    let r = page_scenario("web_account.mjs", srv.http, &["viewer", "vic"]).await;
    assert!(
        r["note"]
            .as_str()
            .unwrap_or("")
            .contains("broadcaster role"),
        "{r}"
    );
    assert_eq!(r["keys"], 0, "{r}");
    srv.stop().await;
    let srv = TestServer::start_with(|c| c.accounts.registration = Registration::Closed).await;
    let r = page_scenario("web_account.mjs", srv.http, &["closed"]).await;
    assert!(r["text"].as_str().unwrap_or("").contains("closed"), "{r}");
    assert_eq!(r["forms"], 0, "{r}");
    srv.stop().await;
}

/// The admin console finds a user by the start of their name, gives them
/// the broadcaster role and suspends them, and its audit log shows who did
/// it; categories are added, renamed and deleted there; on a phone the
/// console does not scroll sideways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_console_sets_a_role_and_the_audit_log_shows_it() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start_with(|c| c.accounts.open_streaming = false).await;
    user_with_role(&srv, "root", Role::Admin).await;
    signup(srv.http, "vic").await;
    let r = page_scenario(
        "web_account.mjs",
        srv.http,
        &["console", "root", "vic", &shots()],
    )
    .await;
    let entries = r["entries"].to_string();
    assert!(
        entries.contains("root")
            && entries.contains("user.role")
            && entries.contains("viewer -> broadcaster"),
        "{r}"
    );
    assert_eq!(r["sideways"], false, "{r}");
    assert!(
        r["banned"].as_str().unwrap_or("").contains("until lifted"),
        "{r}"
    );
    assert!(
        entries.contains("site.ban") && entries.contains("site.unban"),
        "{r}"
    );
    let vic = srv.db.credentials("vic").await.unwrap().unwrap().user;
    assert_eq!(vic.role, Role::Broadcaster);
    assert!(vic.suspended);
    let row = r["suspendedRow"].as_str().unwrap_or("");
    assert!(
        row.contains("(suspended)") && row.contains("Lift suspension"),
        "{r}"
    );
    let cats = srv.db.categories().await.unwrap();
    let cats: Vec<(&str, &str)> = cats
        .iter()
        .map(|c| (c.slug.as_str(), c.name.as_str()))
        .collect();
    assert!(cats.contains(&("music", "Music & Talk")), "{cats:?}");
    assert!(!cats.iter().any(|c| c.0 == "gone"), "{cats:?}");
    srv.stop().await;
}

/// The console lists a channel ffmpeg is live on; rotating its key there
/// ends the stream, gives the owner a key the admin never saw, and the
/// audit log records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_console_rotates_a_live_channels_key() {
    let _serial = SERIAL.lock().await;
    let srv = TestServer::start().await;
    let root = user_with_role(&srv, "root", Role::Admin).await;
    let alice = signup(srv.http, "alice").await;
    let key = |token: String| async move {
        api_as(srv.http, &token, "GET", "/api/me", None)
            .await
            .json()["channel"]["stream_key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = key(alice.clone()).await;
    let mut ff = common::ffmpeg_publish(&srv.rtmp_url(&before), 60);
    common::wait_for_live(srv.http, "alice").await;
    let r = page_scenario("web_account.mjs", srv.http, &["liveNow", "root", "alice"]).await;
    assert!(r["listed"].as_str().unwrap_or("").contains("alice"), "{r}");
    let start = std::time::Instant::now();
    while common::refusal::is_live(&srv, "alice").await {
        assert!(
            start.elapsed().as_secs() < 10,
            "still live after the rotation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = ff.kill().await;
    assert_ne!(key(alice).await, before);
    let log = api_as(srv.http, &root, "GET", "/api/audit", None)
        .await
        .json();
    assert_eq!(log["items"][0]["action"], "stream.rotate_key", "{log}");
    srv.stop().await;
}
