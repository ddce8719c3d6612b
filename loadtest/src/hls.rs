//! An LL-HLS viewer as a low-latency player behaves on the network: it
//! joins at the live edge, then loops on blocking playlist reloads
//! (`_HLS_msn`/`_HLS_part`) and fetches each new part as it is announced.
//! It does not decode; it counts, and reads the send-time stamps in the
//! parts for latency.

use crate::http::KeepAlive;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A pause between parts a viewer would notice (a player stalls once its
/// small low-latency buffer runs dry).
pub const STALL_MS: u64 = 1000;

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct HlsResult {
    /// Until the first playlist answered 200.
    pub joined_after: Option<Duration>,
    /// Until the first media part arrived.
    pub first_part_after: Option<Duration>,
    pub playlists: u64,
    pub parts: u64,
    pub bytes: u64,
    /// Requests that failed or answered an error.
    pub errors: u64,
    pub stalls: u64,
    pub longest_gap_ms: u64,
    /// Send time of a stamped frame to the arrival of the part holding it.
    pub latency_us: Vec<u32>,
    pub first_error: Option<String>,
}

/// One media part or segment in a playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub msn: u64,
    /// `None` for a whole segment.
    pub part: Option<u32>,
    pub uri: String,
}

#[derive(Debug, Default)]
pub struct Playlist {
    pub map: Option<String>,
    pub entries: Vec<Entry>,
    /// The msn after the last complete segment.
    pub next_msn: u64,
    pub part_target: f64,
    pub target_duration: f64,
    pub ended: bool,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let i = line.find(&format!("{name}="))? + name.len() + 1;
    let v = &line[i..];
    if let Some(q) = v.strip_prefix('"') {
        q.split('"').next()
    } else {
        v.split(',').next()
    }
}

/// Parses a media playlist, numbering parts by their position: parts
/// listed before a segment's URI belong to that segment.
pub fn parse(text: &str) -> Playlist {
    let mut p = Playlist::default();
    let mut msn = 0u64;
    let mut part = 0u32;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.trim().parse().unwrap_or(0);
        } else if line.starts_with("#EXT-X-MAP:") {
            p.map = attr(line, "URI").map(str::to_string);
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target_duration = v.trim().parse().unwrap_or(0.0);
        } else if line.starts_with("#EXT-X-PART-INF:") {
            p.part_target = attr(line, "PART-TARGET")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
        } else if line.starts_with("#EXT-X-PART:") {
            if let Some(uri) = attr(line, "URI") {
                p.entries.push(Entry {
                    msn,
                    part: Some(part),
                    uri: uri.to_string(),
                });
            }
            part += 1;
        } else if line.starts_with("#EXT-X-ENDLIST") {
            p.ended = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            p.entries.push(Entry {
                msn,
                part: None,
                uri: line.to_string(),
            });
            msn += 1;
            part = 0;
        }
    }
    p.next_msn = msn;
    p
}

/// Watches the playlist at `playlist` (e.g. `/hls/demo/index.m3u8`) until
/// `dur` has passed: LL-HLS with blocking reloads when the playlist has
/// parts, else (other servers' plain HLS) polling every half target
/// duration and fetching whole segments.
pub async fn watch(
    http: SocketAddr,
    playlist: &str,
    dur: Duration,
    user_agent: String,
    measure_from: Option<Instant>,
) -> HlsResult {
    let started = Instant::now();
    let deadline = started + dur;
    let mut out = HlsResult::default();
    let mut c = KeepAlive::new(http, user_agent);
    let base = match playlist.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/"),
        None => "/".to_string(),
    };
    let playlist_name = playlist.rsplit('/').next().unwrap_or(playlist).to_string();
    let url = |uri: &str| {
        if uri.starts_with('/') {
            uri.to_string()
        } else {
            format!("{base}{uri}")
        }
    };
    let fail = |out: &mut HlsResult, e: String| {
        out.errors += 1;
        out.first_error.get_or_insert(e);
    };
    // Join: the playlist exists once the channel is live.
    let first = loop {
        if Instant::now() >= deadline {
            return out;
        }
        match tokio::time::timeout_at(deadline.into(), c.get(&url(&playlist_name))).await {
            Ok(Ok(r)) if r.status == 200 => break parse(&r.text()),
            Ok(Ok(r)) if r.status == 404 => {}
            Ok(Ok(r)) => fail(&mut out, format!("playlist answered {}", r.status)),
            Ok(Err(e)) => fail(&mut out, e.to_string()),
            Err(_) => return out,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    out.joined_after = Some(started.elapsed());
    out.playlists += 1;
    if let Some(map) = &first.map {
        match c.get(&url(map)).await {
            Ok(r) if r.status == 200 => out.bytes += r.body.len() as u64,
            Ok(r) => fail(&mut out, format!("init answered {}", r.status)),
            Err(e) => fail(&mut out, e.to_string()),
        }
    }
    if first.part_target == 0.0 {
        segments(
            &mut c,
            &url(&playlist_name),
            &base,
            first,
            deadline,
            measure_from,
            started,
            &mut out,
        )
        .await;
        return out;
    }
    // Start at the newest part: the lowest latency a player can have.
    let mut pl = first;
    let mut next: (u64, u32) = match pl.entries.iter().rev().find(|e| e.part.is_some()) {
        Some(e) => (e.msn, e.part.unwrap_or(0)),
        None => (pl.next_msn, 0),
    };
    let mut last_part: Option<Instant> = None;
    loop {
        // Fetch every announced part from `next` on, in order.
        for e in &pl.entries {
            let Some(part) = e.part else { continue };
            if (e.msn, part) < next {
                continue;
            }
            match c.get(&url(&e.uri)).await {
                Ok(r) if r.status == 200 => got_media(
                    &mut out,
                    &r.body,
                    started,
                    &mut last_part,
                    measure_from,
                    STALL_MS,
                ),
                Ok(r) => fail(&mut out, format!("part {} answered {}", e.uri, r.status)),
                Err(err) => fail(&mut out, err.to_string()),
            }
            next = (e.msn, part + 1);
        }
        // A segment the playlist shows complete ends its parts.
        if next.0 < pl.next_msn {
            next = (pl.next_msn, 0);
        }
        if pl.ended || Instant::now() >= deadline {
            break;
        }
        let path = format!(
            "{}?_HLS_msn={}&_HLS_part={}",
            url(&playlist_name),
            next.0,
            next.1
        );
        match tokio::time::timeout_at(deadline.into(), c.get(&path)).await {
            Ok(Ok(r)) if r.status == 200 => {
                out.playlists += 1;
                pl = parse(&r.text());
            }
            Ok(Ok(r)) => {
                fail(&mut out, format!("blocking reload answered {}", r.status));
                if r.status == 404 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Err(e)) => {
                fail(&mut out, e.to_string());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => break,
        }
    }
    out
}

/// Records one fetched media object: bytes, stalls and stamps.
fn got_media(
    out: &mut HlsResult,
    body: &[u8],
    started: Instant,
    last: &mut Option<Instant>,
    measure_from: Option<Instant>,
    stall_ms: u64,
) {
    let now = Instant::now();
    out.parts += 1;
    out.bytes += body.len() as u64;
    out.first_part_after.get_or_insert(started.elapsed());
    let measuring = measure_from.is_none_or(|t| now >= t);
    if let Some(t) = last.filter(|_| measuring) {
        let gap = now.duration_since(t).as_millis() as u64;
        out.longest_gap_ms = out.longest_gap_ms.max(gap);
        out.stalls += u64::from(gap > stall_ms);
    }
    *last = Some(now);
    let now_us = crate::stamp::now_us();
    for sent in crate::stamp::find_all(body) {
        if measuring && out.latency_us.len() < crate::whep::MAX_LATENCY_SAMPLES {
            let d = now_us.saturating_sub(sent).min(u64::from(u32::MAX));
            out.latency_us.push(d as u32);
        }
    }
}

/// Plain HLS: poll the playlist every half target duration and fetch each
/// new segment, starting with the newest.
#[allow(clippy::too_many_arguments)]
async fn segments(
    c: &mut KeepAlive,
    playlist: &str,
    base: &str,
    mut pl: Playlist,
    deadline: Instant,
    measure_from: Option<Instant>,
    started: Instant,
    out: &mut HlsResult,
) {
    let url = |uri: &str| {
        if uri.starts_with('/') {
            uri.to_string()
        } else {
            format!("{base}{uri}")
        }
    };
    let poll = Duration::from_secs_f64((pl.target_duration / 2.0).clamp(0.1, 5.0));
    // Segments arrive a target duration apart; a player with the usual
    // three segments of buffer stalls only when one is very late.
    let stall_ms = STALL_MS.max((pl.target_duration * 2000.0) as u64);
    let mut next = pl.entries.last().map_or(0, |e| e.msn);
    let mut last = None;
    loop {
        for e in &pl.entries {
            if e.part.is_some() || e.msn < next {
                continue;
            }
            match c.get(&url(&e.uri)).await {
                Ok(r) if r.status == 200 => {
                    got_media(out, &r.body, started, &mut last, measure_from, stall_ms)
                }
                Ok(r) => {
                    out.errors += 1;
                    out.first_error
                        .get_or_insert(format!("segment {} answered {}", e.uri, r.status));
                }
                Err(err) => {
                    out.errors += 1;
                    out.first_error.get_or_insert(err.to_string());
                }
            }
            next = e.msn + 1;
        }
        if pl.ended || Instant::now() + poll >= deadline {
            break;
        }
        tokio::time::sleep(poll).await;
        match c.get(playlist).await {
            Ok(r) if r.status == 200 => {
                out.playlists += 1;
                pl = parse(&r.text());
            }
            Ok(r) => {
                out.errors += 1;
                out.first_error
                    .get_or_insert(format!("playlist answered {}", r.status));
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_numbered_by_segment() {
        let p = parse(
            "#EXTM3U\n#EXT-X-PART-INF:PART-TARGET=0.2\n#EXT-X-MEDIA-SEQUENCE:7\n\
             #EXT-X-MAP:URI=\"init0.mp4\"\n#EXT-X-PART:DURATION=0.2,URI=\"s7.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.2,URI=\"s7.1.m4s\"\n#EXTINF:0.4,\ns7.m4s\n\
             #EXT-X-PART:DURATION=0.2,URI=\"s8.0.m4s\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s8.1.m4s\"\n",
        );
        assert_eq!(p.map.as_deref(), Some("init0.mp4"));
        assert_eq!(p.part_target, 0.2);
        assert_eq!(p.next_msn, 8);
        let got: Vec<(u64, Option<u32>)> = p.entries.iter().map(|e| (e.msn, e.part)).collect();
        assert_eq!(got, [(7, Some(0)), (7, Some(1)), (7, None), (8, Some(0))]);
    }
}
