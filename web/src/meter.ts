// A level meter for the audio-only page: the RMS of what is playing, read
// from an AnalyserNode on the player's stream (never rerouting the
// element's own output, so a suspended AudioContext costs the meter, not
// the sound).

/// How often the level is read. 20 a second looks continuous on a bar.
const TICK_MS = 50;

export class LevelMeter {
  private ctx: AudioContext | null = null;
  private source: MediaStreamAudioSourceNode | null = null;
  private analyser: AnalyserNode | null = null;
  private buf: Float32Array<ArrayBuffer> = new Float32Array(2048);
  private timer: number | undefined;

  constructor(private onLevel: (rms: number) => void) {}

  /// Follows `stream` (null: silence until the next one).
  attach(stream: MediaStream | null) {
    this.source?.disconnect();
    this.source = null;
    clearInterval(this.timer);
    this.onLevel(0);
    if (!stream || stream.getAudioTracks().length === 0 || !('AudioContext' in window)) return;
    this.ctx ??= new AudioContext();
    // Suspended until the page has had a gesture, in most browsers; the
    // play and unmute buttons call resume().
    void this.ctx.resume().catch(() => {});
    this.analyser ??= this.ctx.createAnalyser();
    this.analyser.fftSize = this.buf.length;
    this.source = this.ctx.createMediaStreamSource(stream);
    this.source.connect(this.analyser);
    this.timer = window.setInterval(() => this.read(), TICK_MS);
  }

  resume() {
    void this.ctx?.resume().catch(() => {});
  }

  private read() {
    if (!this.analyser) return;
    this.analyser.getFloatTimeDomainData(this.buf);
    let sum = 0;
    for (const x of this.buf) sum += x * x;
    this.onLevel(Math.sqrt(sum / this.buf.length));
  }

  close() {
    clearInterval(this.timer);
    this.source?.disconnect();
    void this.ctx?.close().catch(() => {});
    this.ctx = null;
    this.analyser = null;
    this.source = null;
  }
}
