// The watch page's player: WHEP (plain RTCPeerConnection) first, LL-HLS
// when WebRTC shows no frame in time. hls.js is imported only then.
// An audio-only channel (a radio show) asks for audio alone and counts as
// playing at its first sound, with no picture to wait for.

// hls.js settings for live channels, shared with the test harness
// (tests/e2e/hls_lib.mjs) so the browser tests judge what viewers get. A
// player that stalled at start plays up to 1.5x until it is back at the
// target latency instead of staying behind for good.
import hlsLive from './hls-live.json';

export type Mode = 'webrtc' | 'hls';

export interface PlayerState {
  mode: Mode | null;
  /// 'waiting': connected, sound may play, the picture has not come yet
  /// (the server is asking the publisher for a keyframe).
  status: 'idle' | 'connecting' | 'waiting' | 'playing' | 'error';
  message: string;
  /// Milliseconds from navigation start to the first decoded WebRTC frame.
  firstFrameMs: number | null;
  /// The browser blocked autoplay with sound: the page shows an unmute button.
  needsUnmute: boolean;
  /// Paused by the listener (audio-only page).
  paused: boolean;
}

/// How often an audio-only session's stats are read for its first sound.
const AUDIO_POLL_MS = 50;

/// WebRTC gets this long to show a first frame before LL-HLS takes over.
/// Waiting for ICE to report 'failed' would take ~15 s.
export const FIRST_FRAME_TIMEOUT_MS = 4000;
/// A session that did connect gets this much longer: the transport works,
/// and the picture waits only for a keyframe (a screen share's may be
/// seconds apart) or a busy decoder, which LL-HLS would not show sooner.
const CONNECTED_GRACE_MS = 6000;
/// With STUN/TURN servers the offer waits for their candidates, this long at
/// most (non-trickle WHEP); without them the server finds the browser by its
/// checks (peer-reflexive), and the offer goes at once.
const GATHER_TIMEOUT_MS = 1500;

type HlsLike = { destroy(): void };

let iceServers: Promise<RTCIceServer[]> | null = null;
export function getIceServers(): Promise<RTCIceServer[]> {
  iceServers ??= fetch('/api/ice-servers')
    .then((r) => (r.ok ? r.json() : { ice_servers: [] }))
    .then((v: { ice_servers?: RTCIceServer[] }) => v.ice_servers || [])
    .catch(() => []);
  return iceServers;
}

function prefersNativeHls(video: HTMLVideoElement): boolean {
  // Safari and iOS: their own HLS is the better one (and iOS before 17.1
  // has no MediaSource for hls.js at all).
  const canNative = video.canPlayType('application/vnd.apple.mpegurl') !== '';
  const ua = navigator.userAgent;
  const safari = /Safari\//.test(ua) && !/Chrom(e|ium)\/|Android/.test(ua);
  const mse = 'MediaSource' in window || 'ManagedMediaSource' in window;
  return canNative && (safari || !mse);
}

/// Drops `.local` (mDNS) host candidates from an offer: the server cannot
/// resolve them (it logs a warning for each) and learns the browser's
/// address from its connectivity checks anyway.
export function withoutMdnsCandidates(sdp: string): string {
  return sdp
    .split('\r\n')
    .filter((l) => !(l.startsWith('a=candidate:') && /\s\S+\.local\s/.test(l)))
    .join('\r\n');
}

export class Player {
  state: PlayerState = { mode: null, status: 'idle', message: '', firstFrameMs: null, needsUnmute: false, paused: false };
  /// Ask for audio only and play at the first sound (a channel with no video).
  audioOnly = false;
  /// Start without sound (an embed's `?muted=1`); the viewer unmutes.
  startMuted = false;
  /// The sound being played, for a level meter: the WebRTC stream, or the
  /// element's own capture under HLS.
  onAudio: ((s: MediaStream | null) => void) | null = null;
  pc: RTCPeerConnection | null = null;
  private hls: HlsLike | null = null;
  private session: string | null = null;
  private timer: number | undefined;
  private generation = 0;
  private retry: number | undefined;

  constructor(
    private video: HTMLVideoElement,
    private source: { whep?: string; hls: string },
    private onChange: (s: PlayerState) => void,
  ) {}

  private set(p: Partial<PlayerState>) {
    this.state = { ...this.state, ...p };
    this.video.dataset.mode = this.state.mode || '';
    this.video.dataset.status = this.state.status;
    this.onChange(this.state);
  }

  /// Starts playing: WebRTC with HLS fallback, or the given mode only.
  start(mode?: Mode) {
    performance.mark('onair:player-start');
    this.stop();
    const gen = this.generation;
    if (mode === 'hls' || !this.source.whep || !('RTCPeerConnection' in window)) {
      void this.startHls(gen);
    } else {
      void this.startWebrtc(gen, mode !== 'webrtc');
    }
  }

  stop() {
    this.generation += 1;
    clearTimeout(this.timer);
    clearTimeout(this.retry);
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
    if (this.session) {
      // End the WHEP session now instead of waiting for the server's timeout.
      fetch(this.session, { method: 'DELETE', keepalive: true }).catch(() => {});
      this.session = null;
    }
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    this.video.removeAttribute('src');
    this.video.srcObject = null;
    this.onAudio?.(null);
    this.set({ mode: null, status: 'idle', message: '', paused: false });
  }

  /// Pause or resume (the audio-only page's button). Live audio resumes
  /// at the live edge: WebRTC has no backlog, and HLS seeks there itself.
  togglePause() {
    if (this.video.paused) {
      this.video.play().catch(() => {});
      this.set({ paused: false });
    } else {
      this.video.pause();
      this.set({ paused: true });
    }
  }

  unmute() {
    this.video.muted = this.startMuted;
    this.video.play().catch(() => {});
    this.set({ needsUnmute: false });
  }

  private async play() {
    // Sound first (unless asked not to); a browser that refuses autoplay
    // with sound gets a muted start and an unmute button.
    this.video.muted = this.startMuted;
    try {
      await this.video.play();
      this.set({ needsUnmute: false });
    } catch (e) {
      if ((e as DOMException).name !== 'NotAllowedError') return;
      this.video.muted = true;
      this.set({ needsUnmute: true });
      await this.video.play().catch(() => {});
    }
  }

  private fallback(gen: number, why: string, allowed: boolean) {
    if (gen !== this.generation) return;
    if (!allowed) {
      this.set({ status: 'error', message: why });
      return;
    }
    console.info(`onair: WebRTC ${why}; switching to LL-HLS`);
    this.stop();
    void this.startHls(this.generation, `WebRTC ${why}; playing LL-HLS instead.`);
  }

  private async startWebrtc(gen: number, fallbackAllowed: boolean) {
    this.set({ mode: 'webrtc', status: 'connecting', message: 'Connecting…' });
    const what = this.audioOnly ? 'played no sound' : 'showed no picture';
    const giveUp = (ms: number) => this.fallback(gen, `${what} within ${ms / 1000} s`, fallbackAllowed);
    this.timer = window.setTimeout(() => {
      if (gen !== this.generation) return;
      if (this.pc?.connectionState === 'connected') {
        this.timer = window.setTimeout(() => giveUp(FIRST_FRAME_TIMEOUT_MS + CONNECTED_GRACE_MS), CONNECTED_GRACE_MS);
        return;
      }
      giveUp(FIRST_FRAME_TIMEOUT_MS);
    }, FIRST_FRAME_TIMEOUT_MS);
    try {
      const servers = await getIceServers();
      if (gen !== this.generation) return;
      const pc = new RTCPeerConnection({ iceServers: servers });
      this.pc = pc;
      if (!this.audioOnly) pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      const stream = new MediaStream();
      pc.ontrack = (e) => {
        stream.addTrack(e.track);
        if (this.video.srcObject !== stream) {
          this.video.srcObject = stream;
          void this.play();
        }
        if (e.track.kind === 'audio') this.onAudio?.(stream);
      };
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === 'failed') this.fallback(gen, 'could not connect', fallbackAllowed);
        // Never a silent black box: say what is missing.
        if (pc.connectionState === 'connected' && gen === this.generation && this.state.status === 'connecting') {
          this.set({ status: 'waiting', message: 'Connected, waiting for the picture…' });
        }
      };
      const onFrame = () => {
        if (gen !== this.generation) return;
        clearTimeout(this.timer);
        performance.mark('onair:first-frame');
        if (this.state.firstFrameMs === null) this.set({ firstFrameMs: Math.round(performance.now()) });
        this.set({ status: 'playing', message: '' });
      };
      const v: HTMLVideoElement = this.video;
      if (this.audioOnly) {
        // No picture will come: the first decoded samples are the start.
        const poll = async () => {
          if (gen !== this.generation) return;
          let heard = false;
          (await pc.getStats().catch(() => new Map())).forEach((s: { type: string; kind?: string; totalSamplesReceived?: number }) => {
            if (s.type === 'inbound-rtp' && s.kind === 'audio' && (s.totalSamplesReceived || 0) > 0) heard = true;
          });
          if (heard) onFrame();
          else window.setTimeout(poll, AUDIO_POLL_MS);
        };
        window.setTimeout(poll, AUDIO_POLL_MS);
      } else if (typeof v.requestVideoFrameCallback === 'function') v.requestVideoFrameCallback(onFrame);
      else v.addEventListener('loadeddata', onFrame, { once: true });

      performance.mark('onair:whep-offer');
      await pc.setLocalDescription(await pc.createOffer());
      performance.mark('onair:whep-local-description');
      if (servers.length > 0 && pc.iceGatheringState !== 'complete') {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, GATHER_TIMEOUT_MS);
          pc.addEventListener('icegatheringstatechange', () => {
            if (pc.iceGatheringState === 'complete') { clearTimeout(t); resolve(); }
          });
        });
      }
      performance.mark('onair:whep-gathered');
      if (gen !== this.generation) return;
      const r = await fetch(this.source.whep!, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp' },
        body: withoutMdnsCandidates(pc.localDescription!.sdp),
      });
      const answer = await r.text();
      if (gen !== this.generation) return;
      if (r.status !== 201) {
        let why = `answered ${r.status}`;
        try { why = JSON.parse(answer).error || why; } catch { /* plain text */ }
        this.fallback(gen, why, fallbackAllowed);
        return;
      }
      const loc = r.headers.get('Location');
      if (loc) this.session = new URL(loc, location.href).toString();
      performance.mark('onair:whep-answer');
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    } catch (e) {
      this.fallback(gen, `failed (${(e as Error).message})`, fallbackAllowed);
    }
  }

  private async startHls(gen: number, message = '') {
    this.set({ mode: 'hls', status: 'connecting', message: message || 'Loading…' });
    const url = this.source.hls;
    const onPlaying = () => {
      if (gen !== this.generation) return;
      this.set({ status: 'playing', message });
      this.onAudio?.(captureAudio(this.video));
    };
    this.video.addEventListener('playing', onPlaying, { once: true });
    if (prefersNativeHls(this.video)) {
      this.video.src = url;
      void this.play();
      return;
    }
    const { default: Hls } = await import('hls.js/light');
    if (gen !== this.generation) return;
    if (!Hls.isSupported()) {
      this.set({ status: 'error', message: 'This browser can play neither WebRTC nor HLS.' });
      return;
    }
    const hls = new Hls(hlsLive);
    this.hls = hls;
    hls.on(Hls.Events.ERROR, (_e, d) => {
      if (!d.fatal || gen !== this.generation) return;
      // A stream that just went live may not have its playlist yet: retry
      // from scratch a moment later.
      hls.destroy();
      this.hls = null;
      this.set({ status: 'connecting', message: 'Waiting for the stream…' });
      this.retry = window.setTimeout(() => {
        if (gen === this.generation) void this.startHls(gen, message);
      }, 1500);
    });
    hls.loadSource(url);
    hls.attachMedia(this.video);
    void this.play();
  }
}

/// The sound an element plays, as a stream a meter can read without
/// rerouting the element's own output; null where the browser cannot
/// (Safari), which only costs the meter.
function captureAudio(el: HTMLVideoElement): MediaStream | null {
  const m = el as HTMLVideoElement & { captureStream?: () => MediaStream; mozCaptureStream?: () => MediaStream };
  try {
    const s = m.captureStream?.() ?? m.mozCaptureStream?.() ?? null;
    return s && s.getAudioTracks().length > 0 ? s : null;
  } catch {
    return null;
  }
}

/// Plays a VOD playlist (a past broadcast): native HLS or hls.js.
export async function playVod(video: HTMLVideoElement, url: string): Promise<HlsLike | null> {
  if (prefersNativeHls(video)) {
    video.src = url;
    return null;
  }
  const { default: Hls } = await import('hls.js/light');
  const hls = new Hls();
  hls.loadSource(url);
  hls.attachMedia(video);
  return hls;
}
