// Headless Chromium plays an HLS playlist (live LL-HLS or a VOD recording)
// with hls.js (lowLatencyMode) and reports what it decoded of each track:
// video frames from getVideoPlaybackQuality(), audio bytes from Chromium's
// webkitAudioDecodedByteCount, and the SourceBuffers (kind:codecs) hls.js
// made: one muxed "audiovideo" buffer for a media playlist without CODECS.
//
//   node hls_av_watch.mjs <playlist-url> <seconds>
//
// Prints ONE JSON line on stdout, e.g.
//   {"framesDecoded":240,"audioDecodedBytes":51200,
//    "bufferTracks":["audiovideo:avc1.42c01e,mp4a.40.2"],"width":640,"height":360,
//    "latencyMedian":1.1,"lowLatencyMode":true,"canBlockReload":true,"live":true,
//    "fatalErrors":[],"recoveredErrors":[],"currentTime":9.8}
// and exits 0. On failure: a message on stderr and a non-zero exit.

import { run } from './browser.mjs';
import { hlsArgs, hlsPage } from './hls_lib.mjs';

const { url, seconds } = hlsArgs('hls_av_watch.mjs');

async function watchInPage({ url, seconds }) {
  // Not muted: the audio is decoded and played (autoplay is allowed by the
  // launch flags), so the decoded-bytes counter measures real sound.
  const video = newVideo({ muted: false });
  const fatalErrors = [];
  const errors = [];
  let bufferTracks = [];
  const hls = new Hls({ ...hlsLive, debug: false });
  // A fatal media error gets one hls.recoverMediaError(), as players do
  // (hls.js's documented recovery; onair's web player restarts hls.js).
  // It is reported, and a second one is a failure.
  const recoveredErrors = [];
  hls.on(Hls.Events.ERROR, (_e, d) => {
    if (errors.length < 10) errors.push(`${d.type}/${d.details}: ${d.error?.message ?? d.reason ?? ''}`);
    if (!d.fatal) return;
    if (d.type === Hls.ErrorTypes.MEDIA_ERROR && recoveredErrors.length === 0) {
      recoveredErrors.push(`${d.type}/${d.details}`);
      hls.recoverMediaError();
      return;
    }
    fatalErrors.push(`${d.type}/${d.details}`);
  });
  hls.on(Hls.Events.BUFFER_CREATED, (_e, d) => {
    bufferTracks = Object.entries(d.tracks)
      .map(([kind, t]) => `${kind}:${t.codec ?? t.levelCodec ?? '?'}`)
      .sort();
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  video.play().catch(() => {});
  const t0 = performance.now();
  const latencies = [];
  while (performance.now() - t0 < seconds * 1000) {
    await sleep(250);
    if ((performance.now() - t0) / 1000 >= seconds / 2 && Number.isFinite(hls.latency)) {
      latencies.push(hls.latency);
    }
  }
  const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
  const details = hls.levels?.[0]?.details;
  latencies.sort((a, b) => a - b);
  const report = {
    framesDecoded: q ? q.totalVideoFrames : 0,
    audioDecodedBytes: video.webkitAudioDecodedByteCount ?? null,
    videoDecodedBytes: video.webkitVideoDecodedByteCount ?? null,
    bufferTracks,
    width: video.videoWidth,
    height: video.videoHeight,
    currentTime: video.currentTime,
    paused: video.paused,
    latencyMedian: latencies.length ? latencies[Math.floor(latencies.length / 2)] : null,
    lowLatencyMode: hls.lowLatencyMode,
    canBlockReload: details?.canBlockReload ?? null,
    live: details?.live ?? null,
    fatalErrors,
    recoveredErrors,
    errors,
    mediaError: video.error ? `${video.error.code}: ${video.error.message}` : null,
  };
  hls.destroy();
  return report;
}

await run('hls_av_watch', (seconds + 45) * 1000, async (track) => {
  const page = await hlsPage(track, url);
  return page.evaluate(watchInPage, { url, seconds });
});
