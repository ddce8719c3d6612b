//! Profile pictures in Chromium (`tests/e2e/avatar.mjs`): uploaded from
//! the dashboard, then shown where people are named: beside their chat
//! messages (desktop and phone), on their channel page and on the
//! directory's tile while they are live. A broken file is refused with
//! the server's reason, and the picture stays.
//!
//! Needs what tests/web_app.rs needs: the built app, node and Debian's
//! `chromium`; and ffmpeg for the picture and the live stream.

mod common;

use base64::Engine;
use common::node::{page_scenario, shots};
use common::{api_as, ffmpeg_publish_sized, signup, wait_for_live, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_picture_shows_in_chat_the_channel_and_the_directory() {
    let srv = TestServer::start().await;
    let token = signup(srv.http, "pia").await;
    let me = api_as(srv.http, &token, "GET", "/api/me", None)
        .await
        .json();
    let key = me["channel"]["stream_key"].as_str().unwrap().to_string();
    let _ff = ffmpeg_publish_sized(&srv.rtmp_url(&key), 60, "320x180", &["-bf", "0"]);
    wait_for_live(srv.http, "pia").await;

    // A photo-like JPEG, wider than tall: the server crops it square.
    let picture = srv.dir.path().join("me.jpg");
    std::fs::write(&picture, common::media::jpeg_picture("800x500")).unwrap();
    // A PNG cut short (a JPEG decoder makes grey of a missing end, as
    // browsers do; PNG's checksums make the cut an error).
    let img = image::RgbaImage::from_pixel(200, 200, image::Rgba([9, 99, 199, 255]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let broken = base64::engine::general_purpose::STANDARD.encode(&png[..png.len() / 3]);
    let r = page_scenario(
        "avatar.mjs",
        srv.http,
        &[
            "upload",
            "pia",
            &picture.display().to_string(),
            &broken,
            &shots(),
        ],
    )
    .await;

    // Before: the generated picture; after: the upload, cache-busted.
    assert_eq!(r["before"]["src"], "/avatars/pia/256", "{r}");
    let mine = r["dashboard"]["src"].as_str().unwrap();
    assert!(mine.starts_with("/avatars/pia/256?v="), "{r}");
    assert_eq!(r["dashboard"]["natural"], 256, "{r}");
    // The cut PNG is refused in words, not a status code, and the
    // picture stays.
    let refusal = r["refusal"].as_str().unwrap();
    assert!(refusal.contains("cannot be decoded"), "{refusal}");
    assert_eq!(r["afterRefusal"]["src"], mine, "{r}");
    // Every place draws the picture at the small size, and that address
    // now serves the upload.
    for (place, natural) in [("chat", 64), ("phoneChat", 64), ("owner", 64), ("tile", 64)] {
        assert_eq!(r[place]["src"], "/avatars/pia/64", "{place}: {r}");
        assert_eq!(r[place]["natural"], natural, "{place}: {r}");
        assert!(r[place]["drawn"].as_u64().unwrap() >= 20, "{place}: {r}");
    }
    let served = common::http(srv.http, "GET", "/avatars/pia/64", &[], b"").await;
    assert_eq!(served.header("content-type"), Some("image/png"));
    srv.stop().await;
}
