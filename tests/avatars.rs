//! Profile pictures over HTTP, on SQLite and Postgres: upload in each
//! format (a JPEG from ffmpeg, PNG and WebP from the image crate), the
//! pictures served at both sizes with cache validators, hostile uploads
//! refused with their 4xx and nothing half-stored, the per-account limit,
//! removal, and an account's deletion taking its pictures along.

#[macro_use]
mod common;

use common::openapi::{tagged, Body, Checker};
use common::{api_as, assert_error, bearer, signup, Backend, TestServer};
use image::{ImageEncoder, ImageFormat, RgbaImage};
use onair_loadtest::http::{http, HttpResponse};
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;

both!(upload_serve_and_remove, hostile_uploads_change_nothing);

/// Accounts each uploading the largest picture the limits let through (a
/// few hundred KB of PNG that decodes to 64 MiB) all at once: the decoders are
/// bounded, so the rest of the server keeps answering. The victim signs
/// in, posts to chat and fetches pictures while they run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_heavy_pictures_leaves_the_site_answering() {
    let srv = TestServer::start().await;
    let a = srv.http;
    let heavy = encoded_solid(4096);
    assert!(heavy.len() < 2 << 20, "{} bytes", heavy.len());
    let mut uploads = Vec::new();
    for i in 0..6 {
        let token = signup(a, &format!("heavy{i}")).await;
        let body = heavy.clone();
        uploads.push(tokio::spawn(
            async move { put(a, &token, &body).await.status },
        ));
    }
    let victim = signup(a, "victim").await;
    let mut chat = common::ws_connect(a, &format!("/ws/victim?token={victim}"), &[]).await;
    common::ws_send(
        &mut chat,
        &serde_json::json!({"type": "chat", "text": "still here"}),
    )
    .await;
    let echoed = common::ws_until(&mut chat, |m| m["type"] == "chat").await;
    assert_eq!(echoed["text"], "still here");
    assert_eq!(
        http(a, "GET", "/avatars/victim/64", &[], b"").await.status,
        200
    );
    assert_eq!(api_as(a, &victim, "GET", "/api/me", None).await.status, 200);
    let mut statuses = Vec::new();
    for u in uploads {
        statuses.push(u.await.unwrap());
    }
    // Each is taken (200) or, when the queue waited too long, told to come
    // back (503); none fails the server.
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}

async fn upload_serve_and_remove(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let token = signup(a, "alice").await;

    // Before any upload: a generated picture, for known and unknown names.
    let r = http(a, "GET", "/avatars/alice/64", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert!(r.text().contains(">A</text>"), "{}", r.text());
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    let unknown = http(a, "GET", "/avatars/nobody/64", &[], b"").await;
    assert_eq!(unknown.status, 200, "an unknown name is not told apart");
    let me = api_as(a, &token, "GET", "/api/me", None).await.json();
    assert_eq!(me["avatar"], "/avatars/alice/256");

    let mut versions = Vec::new();
    for (name, bytes) in [
        ("jpeg", common::media::jpeg_picture("640x360")),
        ("png", encoded(ImageFormat::Png, 500, 300)),
        ("webp", encoded(ImageFormat::WebP, 200, 420)),
    ] {
        let r = put(a, &token, &bytes).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let url = r.json()["avatar"].as_str().unwrap().to_string();
        assert!(url.starts_with("/avatars/alice/256?v="), "{url}");
        versions.push(url.clone());
        for (path, size) in [(url.clone(), 256), ("/avatars/alice/64".to_string(), 64)] {
            let got = http(a, "GET", &path, &[], b"").await;
            assert_eq!(got.status, 200, "{name} {path}");
            assert_eq!(got.header("content-type"), Some("image/png"));
            let img = image::load_from_memory_with_format(&got.body, ImageFormat::Png).unwrap();
            assert_eq!((img.width(), img.height()), (size, size), "{name}");
        }
        let me = api_as(a, &token, "GET", "/api/me", None).await.json();
        assert_eq!(me["avatar"], url.as_str());
    }
    assert_eq!(
        stored(&srv),
        2,
        "only the current picture's two sizes are kept"
    );

    // A cache revalidates with the validator it was given.
    let got = http(a, "GET", "/avatars/alice/64", &[], b"").await;
    let etag = got.header("etag").unwrap().to_string();
    assert!(got.header("cache-control").unwrap().contains("max-age="));
    let again = http(
        a,
        "GET",
        "/avatars/alice/64",
        &[("If-None-Match", &etag)],
        b"",
    )
    .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    // Sizes and names outside the set.
    assert_error(&http(a, "GET", "/avatars/alice/65", &[], b"").await, 404);
    assert_error(&http(a, "GET", "/avatars/Alice!/64", &[], b"").await, 404);

    // Removal: the generated picture again, the files gone.
    let r = api_as(a, &token, "DELETE", "/api/me/avatar", None).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let got = http(a, "GET", "/avatars/alice/64", &[], b"").await;
    assert_eq!(got.header("content-type"), Some("image/svg+xml"));
    assert_ne!(
        got.header("etag").unwrap(),
        etag,
        "a cached upload is not revalidated"
    );
    assert_eq!(stored(&srv), 0);

    // Deleting the account takes its picture along.
    let bob = signup(a, "bob").await;
    assert_eq!(
        put(a, &bob, &encoded(ImageFormat::Png, 64, 64))
            .await
            .status,
        200
    );
    assert_eq!(stored(&srv), 2);
    assert_eq!(api_as(a, &bob, "DELETE", "/api/me", None).await.status, 204);
    assert_eq!(stored(&srv), 0);
    let got = http(a, "GET", "/avatars/bob/256", &[], b"").await;
    assert_eq!(got.header("content-type"), Some("image/svg+xml"));
}

async fn hostile_uploads_change_nothing(b: Backend) {
    let Some(srv) = TestServer::on(b).await else {
        return;
    };
    let a = srv.http;
    let token = signup(a, "carol").await;
    let good = put(a, &token, &encoded(ImageFormat::Png, 80, 80)).await;
    assert_eq!(good.status, 200, "{}", good.text());
    let before = http(a, "GET", "/avatars/carol/256", &[], b"").await.body;

    // Signed out: no upload.
    assert_error(&http(a, "PUT", "/api/me/avatar", &[], &before).await, 401);
    // Over the byte limit: refused before anything is decoded (and before
    // the per-account limit is spent).
    let big = vec![0u8; 2 * 1024 * 1024 + 1];
    assert_error(&put(a, &token, &big).await, 413);
    // Not a picture we take, whatever the Content-Type claims.
    assert_error(
        &put(a, &token, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").await,
        415,
    );
    // A decompression bomb's header: 60000x60000 pixels.
    assert_error(&put(a, &token, &claimed_size_png(60_000)).await, 422);
    // Cut short.
    let png = encoded(ImageFormat::Png, 300, 300);
    assert_error(&put(a, &token, &png[..png.len() / 3]).await, 422);

    // Each refusal left the picture and the store as they were.
    let after = http(a, "GET", "/avatars/carol/256", &[], b"").await;
    assert_eq!(after.body, before);
    assert_eq!(stored(&srv), 2);
    let tmp = walk(&srv.dir.path().join("avatars"))
        .into_iter()
        .filter(|p| p.ends_with(".tmp"))
        .count();
    assert_eq!(tmp, 0, "no temporary file left behind");

    // Five changes a minute per account (four spent above, the 413 was
    // not one): the next two are refused with a wait, and carol's picture
    // is still served to everyone.
    assert_error(&put(a, &token, b"not a picture").await, 415);
    let r = put(a, &token, &png).await;
    assert_error(&r, 429);
    assert!(r.header("retry-after").is_some());
    assert_error(
        &api_as(a, &token, "DELETE", "/api/me/avatar", None).await,
        429,
    );
    assert_eq!(
        http(a, "GET", "/avatars/carol/256", &[], b"").await.body,
        before
    );
    // Another account is not held back by carol's limit.
    let dave = signup(a, "dave").await;
    assert_eq!(put(a, &dave, &png).await.status, 200);
}

/// Every avatar operation's answers, successes and refusals, are the
/// ones /api/openapi.json documents, with their content types and schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_the_document() {
    let srv = TestServer::start().await;
    let a = srv.http;
    let mut c = Checker::new(onair::http::openapi_document());
    let token = bearer(&signup(a, "erin").await);
    let me = [("Authorization", token.as_str())];
    let mine = ("/api/me/avatar", "/api/me/avatar");
    let pic = |path| ("/avatars/{username}/{size}", path);
    let png = encoded(ImageFormat::Png, 90, 90);
    let r = c
        .call(a, "GET", pic("/avatars/erin/64"), &[], Body::None)
        .await;
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    for (body, status) in [
        (&png[..], 200),
        (&b"BM a bitmap"[..], 415),
        (&png[..png.len() / 2], 422),
        (&vec![1u8; 3 << 20][..], 413),
    ] {
        let r = c
            .call(a, "PUT", mine, &me, Body::Raw("image/png", body))
            .await;
        assert_eq!(r.status, status, "{}", r.text());
    }
    assert_eq!(
        c.call(a, "PUT", mine, &[], Body::Raw("image/png", &png))
            .await
            .status,
        401
    );
    let r = c
        .call(a, "GET", pic("/avatars/erin/256"), &[], Body::None)
        .await;
    assert_eq!(r.header("content-type"), Some("image/png"));
    let etag = r.header("etag").unwrap().to_string();
    let r = c
        .call(
            a,
            "GET",
            pic("/avatars/erin/256"),
            &[("If-None-Match", &etag)],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 304);
    assert_eq!(
        c.call(a, "GET", pic("/avatars/erin/1"), &[], Body::None)
            .await
            .status,
        404
    );
    assert_eq!(c.call(a, "DELETE", mine, &me, Body::None).await.status, 204);
    assert_eq!(c.call(a, "DELETE", mine, &[], Body::None).await.status, 401);
    // Four changes so far: the fifth is the last the minute allows.
    assert_eq!(c.call(a, "DELETE", mine, &me, Body::None).await.status, 204);
    assert_eq!(c.call(a, "DELETE", mine, &me, Body::None).await.status, 429);
    let unreached = c.unreached(|op| tagged(op, "avatars"));
    assert!(unreached.is_empty(), "never reached: {unreached:?}");
}

async fn put(a: SocketAddr, token: &str, body: &[u8]) -> HttpResponse {
    http(
        a,
        "PUT",
        "/api/me/avatar",
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "image/png"),
        ],
        body,
    )
    .await
}

fn encoded(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| image::Rgba([x as u8, y as u8, 120, 255]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .to_rgb8()
        .write_to(&mut Cursor::new(&mut out), format)
        .unwrap();
    out
}

/// A `side` x `side` picture of one colour: tiny as PNG, large decoded.
fn encoded_solid(side: u32) -> Vec<u8> {
    let img = RgbaImage::from_pixel(side, side, image::Rgba([200, 30, 60, 255]));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), side, side, image::ExtendedColorType::Rgba8)
        .unwrap();
    out
}

/// A valid 1x1 PNG whose header then claims `side` x `side` pixels.
fn claimed_size_png(side: u32) -> Vec<u8> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&[0, 0, 0, 255], 1, 1, image::ExtendedColorType::Rgba8)
        .unwrap();
    png[16..20].copy_from_slice(&side.to_be_bytes());
    png[20..24].copy_from_slice(&side.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// Stored pictures (PNG files) under the data directory's avatars/.
fn stored(srv: &TestServer) -> usize {
    walk(&srv.dir.path().join("avatars"))
        .into_iter()
        .filter(|p| p.ends_with(".png"))
        .count()
}

fn walk(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
