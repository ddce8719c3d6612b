// Going live from the browser: camera+mic or a screen share, sent over WHIP
// (POST /whip with the stream key as Bearer token) as H.264 + Opus.

export type SourceKind = 'camera' | 'screen';

export async function capture(kind: SourceKind, videoDevice: string, audioDevice: string): Promise<MediaStream> {
  const audio: MediaTrackConstraints | boolean = audioDevice ? { deviceId: { exact: audioDevice } } : true;
  if (kind === 'screen') {
    const screen = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 30 }, audio: false });
    // The microphone goes along with the screen, so the stream has a voice.
    try {
      const mic = await navigator.mediaDevices.getUserMedia({ audio });
      mic.getAudioTracks().forEach((t) => screen.addTrack(t));
    } catch {
      // No microphone (or refused): a silent screen share is still a stream.
    }
    return screen;
  }
  return navigator.mediaDevices.getUserMedia({
    video: {
      ...(videoDevice ? { deviceId: { exact: videoDevice } } : {}),
      width: { ideal: 1280 },
      height: { ideal: 720 },
      frameRate: { ideal: 30 },
    },
    audio,
  });
}

export class WhipPublisher {
  pc: RTCPeerConnection | null = null;
  private location: string | null = null;

  async start(stream: MediaStream, key: string, onState: (s: RTCPeerConnectionState) => void): Promise<void> {
    const pc = new RTCPeerConnection();
    this.pc = pc;
    pc.onconnectionstatechange = () => onState(pc.connectionState);
    for (const track of stream.getTracks()) {
      const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      if (track.kind === 'video') {
        // H.264 first: it goes to WebRTC viewers as it is and to HLS and the
        // recorder without a transcode.
        const codecs = RTCRtpSender.getCapabilities?.('video')?.codecs || [];
        const h264 = codecs.filter((c) => c.mimeType.toLowerCase() === 'video/h264');
        if (h264.length && 'setCodecPreferences' in t) {
          t.setCodecPreferences([...h264, ...codecs.filter((c) => c.mimeType.toLowerCase() !== 'video/h264')]);
        }
      }
    }
    await pc.setLocalDescription(await pc.createOffer());
    const r = await fetch('/whip', {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${key}` },
      body: pc.localDescription!.sdp,
    });
    const body = await r.text();
    if (r.status !== 201) {
      this.stop();
      let why = `${r.status}`;
      try { why = JSON.parse(body).error || why; } catch { /* plain text */ }
      throw new Error(`the server refused the stream: ${why}`);
    }
    const loc = r.headers.get('Location');
    this.location = loc ? new URL(loc, location.href).toString() : null;
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
  }

  stop() {
    if (this.location) {
      fetch(this.location, { method: 'DELETE', keepalive: true }).catch(() => {});
      this.location = null;
    }
    this.pc?.close();
    this.pc = null;
  }
}
