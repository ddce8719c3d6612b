//! Two servers on one Postgres database (`--node-id`): a node starting
//! finalizes only the broadcasts its own crash left open, never another
//! node's live one, and its retention deletes only its own recordings.
//! The first node also takes the broadcasts from before nodes had ids, and
//! two processes of one node never sweep at once.
//! Chat messages posted on both at once are all kept: each node's ids
//! carry its own tag.

mod common;

use common::{ffmpeg_publish_sized, fresh_postgres_db, wait_for_live, TestServer};
use onair::db::Db;
use std::time::Duration;

/// A finished, recorded broadcast of `db`'s node, started at `at_ms`.
async fn finished_hour_ago(db: &Db, title: &str, at_ms: i64) -> onair::db::BroadcastRow {
    let b = db
        .create_broadcast("demo", Some(title), at_ms, true)
        .await
        .unwrap();
    db.finish_broadcast(b.id, at_ms + 1000, 1000, 10)
        .await
        .unwrap();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_node_leaves_the_other_nodes_broadcasts_alone() {
    let Some(url) = fresh_postgres_db().await else {
        return;
    };
    let db = Db::open(&url).await.unwrap();
    let (a, b) = (db.clone().for_node("node-a"), db.clone().for_node("node-b"));
    let hour_ago = (onair::chat::unix_secs() - 3600) * 1000;
    // From before node ids: a row of the single server this was.
    let legacy = finished_hour_ago(&db, "legacy", hour_ago - 10_000).await;

    let u = url.clone();
    let node_a = TestServer::start_with(move |c| {
        c.database_url = u;
        c.node_id = Some("node-a".into());
    })
    .await;
    // The server starts in the background: the claim is among its first
    // steps.
    let owner = || async {
        let row: (String,) = sqlx::query_as("SELECT node_id FROM broadcasts WHERE id = $1")
            .bind(legacy.id)
            .fetch_one(db.pool())
            .await
            .unwrap();
        row.0
    };
    let start = std::time::Instant::now();
    while owner().await != "node-a" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the first node takes the old rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ff = ffmpeg_publish_sized(&node_a.rtmp_url(&node_a.key), 40, "320x180", &["-bf", "0"]);
    wait_for_live(node_a.http, "demo").await;
    // The recorder opens the broadcast's row at the first keyframe.
    let start = std::time::Instant::now();
    let live = loop {
        let open = a.unfinished_broadcasts().await.unwrap();
        if let [one] = &open[..] {
            break one.id;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "node a's broadcast: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Node b's own leftovers: an open broadcast (its crash), and finished
    // recordings older than its retention; node a's old finished one too.
    // (Recent: once finalized, retention would take an old one too.)
    let crashed = b
        .create_broadcast("demo", Some("b crashed"), hour_ago + 3_590_000, true)
        .await
        .unwrap();
    let b_old = finished_hour_ago(&b, "b old", hour_ago).await;
    let a_old = finished_hour_ago(&a, "a old", hour_ago).await;

    let u = url.clone();
    let node_b = TestServer::start_with(move |c| {
        c.database_url = u;
        c.node_id = Some("node-b".into());
        c.hls.retention_max_age = Some(Duration::from_secs(60));
    })
    .await;
    // Retention runs at start; give its first sweep time to finish.
    let start = std::time::Instant::now();
    while db.broadcast(b_old.id).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "node b's own old recording was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let crashed = db.broadcast(crashed.id).await.unwrap().unwrap();
    assert!(
        crashed.ended_at.is_some(),
        "node b finalized its own: {crashed:?}"
    );
    let still = db.broadcast(live).await.unwrap().unwrap();
    assert!(
        still.ended_at.is_none(),
        "node a's live broadcast goes on: {still:?}"
    );
    assert!(
        db.broadcast(a_old.id).await.unwrap().is_some(),
        "node b's retention left node a's recording"
    );
    assert!(db.broadcast(legacy.id).await.unwrap().is_some());
    // Chat on both: each node mints ids with its own tag, so messages
    // posted at once on the two never collide, and both are kept.
    let tags: Vec<(i64, String)> = sqlx::query_as("SELECT tag, node_id FROM nodes ORDER BY tag")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(
        tags,
        [(0, "node-a".to_string()), (1, "node-b".to_string())],
        "one tag each"
    );
    let ann = common::signup(node_a.http, "ann").await;
    let say = |addr, text: &'static str| {
        let ann = ann.clone();
        async move {
            let body = serde_json::json!({ "text": text });
            common::api_as(addr, &ann, "POST", "/api/channels/demo/chat", Some(&body)).await
        }
    };
    let mut posts = Vec::new();
    // Within one user's burst on each node.
    for i in 0..onair::chat::limits::BURST {
        let (x, y) = tokio::join!(say(node_a.http, "from a"), say(node_b.http, "from b"));
        assert_eq!(
            (x.status, y.status, i),
            (201, 201, i),
            "{} {}",
            x.text(),
            y.text()
        );
        posts.push(common::json_id(&x.json()["id"]));
        posts.push(common::json_id(&y.json()["id"]));
    }
    let start = std::time::Instant::now();
    loop {
        let stored: Vec<(i64,)> = sqlx::query_as("SELECT id FROM chat_messages ORDER BY id")
            .fetch_all(db.pool())
            .await
            .unwrap();
        if stored.len() == posts.len() {
            let mut ids: Vec<i64> = stored.into_iter().map(|r| r.0).collect();
            posts.sort();
            ids.sort();
            assert_eq!(ids, posts, "every message kept under the id its node gave");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} of {} stored",
            stored.len(),
            posts.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Node a still serves its stream.
    let playlist = common::get(node_a.http, "/hls/demo/index.m3u8").await;
    assert_eq!(playlist.status, 200);
    node_b.stop().await;
    node_a.stop().await;
}

/// Retention's lock: two processes of one node (a restart overlapping the
/// old one) never sweep at once; a process that dies frees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_of_a_node_sweeps_at_a_time() {
    let Some(url) = fresh_postgres_db().await else {
        return;
    };
    let first = Db::open(&url).await.unwrap().for_node("n1");
    let second = Db::open(&url).await.unwrap().for_node("n1");
    let other = Db::open(&url).await.unwrap().for_node("n2");
    let held = first.try_lock("retention").await.unwrap().expect("free");
    assert!(second.try_lock("retention").await.unwrap().is_none());
    // Another node's retention is its own business.
    let theirs = other
        .try_lock("retention")
        .await
        .unwrap()
        .expect("n2's own");
    theirs.release().await;
    held.release().await;
    let again = second
        .try_lock("retention")
        .await
        .unwrap()
        .expect("released");
    // Dropped unreleased (a panic mid-sweep): its connection closes, and
    // the lock is free again.
    drop(again);
    let t = std::time::Instant::now();
    while first.try_lock("retention").await.unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the lock outlived its connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
