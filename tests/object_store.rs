//! `--object-store s3://...` against a real S3-compatible server (moto's
//! server mode, started here): profile pictures are written to the
//! bucket, under the URL's prefix and nowhere on local disk, replaced and
//! removed there; while the bucket is unreachable an upload is a 503 that
//! changes nothing, and the server keeps answering.

mod common;

use common::s3::S3Server;
use common::{api_as, signup, TestServer};
use image::ImageFormat;
use onair::store::StoreUrl;
use onair_loadtest::http::http;
use std::io::Cursor;

const BUCKET: &str = "onair-test";

fn png(side: u32, shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(side, side, image::Rgb([shade, 90, 200]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avatars_live_in_the_bucket() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    s3.create_bucket(BUCKET).await;
    // Any credentials do for moto; the server reads the usual variables.
    std::env::set_var("AWS_ACCESS_KEY_ID", "onair-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "onair-test-secret");
    let url = format!(
        "s3://{BUCKET}/site-a?endpoint={}&region=us-east-1",
        s3.endpoint()
    );
    let store = StoreUrl::parse(&url).unwrap();
    let srv = TestServer::start_with(move |c| c.object_store = store).await;
    let a = srv.http;
    let token = signup(a, "gus").await;
    let put = |body: Vec<u8>| {
        let token = token.clone();
        async move {
            let auth = common::bearer(&token);
            http(
                a,
                "PUT",
                "/api/me/avatar",
                &[("Authorization", auth.as_str())],
                &body,
            )
            .await
        }
    };

    let r = put(png(120, 10)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let keys = s3.keys(BUCKET, "").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("site-a/avatars/") && k.ends_with(".png")),
        "{keys:?}"
    );
    assert!(
        !srv.dir.path().join("avatars").exists(),
        "nothing on local disk"
    );
    let got = http(a, "GET", "/avatars/gus/64", &[], b"").await;
    assert_eq!(got.header("content-type"), Some("image/png"));
    let first = got.body;

    // A new picture replaces the old objects.
    assert_eq!(put(png(90, 250)).await.status, 200);
    let replaced = s3.keys(BUCKET, "").await;
    assert_eq!(replaced.len(), 2, "{replaced:?}");
    assert!(replaced.iter().all(|k| !keys.contains(k)), "{replaced:?}");
    let second = http(a, "GET", "/avatars/gus/64", &[], b"").await.body;
    assert_ne!(second, first);

    // Removal empties the bucket.
    let r = api_as(a, &token, "DELETE", "/api/me/avatar", None).await;
    assert_eq!(r.status, 204);
    assert!(s3.keys(BUCKET, "").await.is_empty());
    assert_eq!(put(png(70, 128)).await.status, 200);
    let kept = http(a, "GET", "/avatars/gus/256", &[], b"").await;
    let me_before = api_as(a, &token, "GET", "/api/me", None).await.json();

    // The bucket goes away: uploads and reads of stored pictures are 503s
    // in words, the account still points at its picture, and the rest of
    // the site answers.
    s3.stop().await;
    let r = put(png(60, 30)).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("unavailable"));
    let r = http(a, "GET", "/avatars/gus/256", &[], b"").await;
    assert_eq!(r.status, 503);
    let me_after = api_as(a, &token, "GET", "/api/me", None).await.json();
    assert_eq!(me_after["avatar"], me_before["avatar"]);
    assert_eq!(kept.status, 200);
    let r = http(a, "GET", "/avatars/nobody/64", &[], b"").await;
    assert_eq!(r.status, 200, "a generated picture needs no store");
    srv.stop().await;
}
