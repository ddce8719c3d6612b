import { useEffect, useRef, useState } from 'preact/hooks';
import { errorText } from '../api';
import { capture, WhipPublisher, type SourceKind } from '../whip';

declare global {
  interface Window {
    /// The browser publisher, for the browser tests (tests/e2e).
    __onairPublisher?: WhipPublisher;
  }
}

export function GoLive({ streamKey }: { streamKey: string; channel: string }) {
  const [kind, setKind] = useState<SourceKind>('camera');
  const [cams, setCams] = useState<MediaDeviceInfo[]>([]);
  const [mics, setMics] = useState<MediaDeviceInfo[]>([]);
  const [cam, setCam] = useState('');
  const [mic, setMic] = useState('');
  const [stream, setStream] = useState<MediaStream | null>(null);
  const [state, setState] = useState<string>('');
  const [error, setError] = useState('');
  const preview = useRef<HTMLVideoElement>(null);
  const publisher = useRef<WhipPublisher | null>(null);

  const listDevices = async () => {
    const all = await navigator.mediaDevices?.enumerateDevices().catch(() => []) ?? [];
    setCams(all.filter((d) => d.kind === 'videoinput'));
    setMics(all.filter((d) => d.kind === 'audioinput'));
  };
  useEffect(() => {
    void listDevices();
    return () => {
      publisher.current?.stop();
    };
  }, []);
  useEffect(() => {
    if (preview.current) preview.current.srcObject = stream;
    return () => stream?.getTracks().forEach((t) => t.stop());
  }, [stream]);

  const startPreview = async () => {
    setError('');
    try {
      const s = await capture(kind, cam, mic);
      setStream(s);
      // Device names are hidden until the page may use them.
      void listDevices();
      return s;
    } catch (e) {
      setError(`Could not open the ${kind === 'camera' ? 'camera' : 'screen'}: ${errorText(e)}`);
      return null;
    }
  };
  const goLive = async () => {
    setError('');
    const s = stream ?? (await startPreview());
    if (!s) return;
    const p = new WhipPublisher();
    publisher.current = p;
    window.__onairPublisher = p;
    setState('connecting');
    try {
      await p.start(s, streamKey, setState);
    } catch (e) {
      setState('');
      setError(errorText(e));
    }
  };
  const stop = () => {
    publisher.current?.stop();
    publisher.current = null;
    setState('');
  };
  const live = state === 'connected' || state === 'connecting' || state === 'new';
  const noMedia = !navigator.mediaDevices;

  return (
    <section class="card" aria-labelledby="golive-h">
      <h2 id="golive-h">Go live from this browser</h2>
      {noMedia && <p class="error">This page needs a secure context (https, or localhost) for the camera.</p>}
      <fieldset class="switch">
        <legend>Source</legend>
        <label><input type="radio" name="source" value="camera" checked={kind === 'camera'} onChange={() => { setKind('camera'); setStream(null); }} disabled={live} /> Camera and microphone</label>
        <label><input type="radio" name="source" value="screen" checked={kind === 'screen'} onChange={() => { setKind('screen'); setStream(null); }} disabled={live} /> Screen share</label>
      </fieldset>
      {kind === 'camera' && (
        <>
          <label for="cam">Camera</label>
          <select id="cam" value={cam} disabled={live} onChange={(e) => { setCam(e.currentTarget.value); setStream(null); }}>
            <option value="">Default camera</option>
            {cams.filter((d) => d.deviceId).map((d, i) => <option key={d.deviceId} value={d.deviceId}>{d.label || `Camera ${i + 1}`}</option>)}
          </select>
        </>
      )}
      <label for="mic">Microphone</label>
      <select id="mic" value={mic} disabled={live} onChange={(e) => { setMic(e.currentTarget.value); setStream(null); }}>
        <option value="">Default microphone</option>
        {mics.filter((d) => d.deviceId).map((d, i) => <option key={d.deviceId} value={d.deviceId}>{d.label || `Microphone ${i + 1}`}</option>)}
      </select>
      <video ref={preview} class="preview" muted autoPlay playsInline aria-label="Preview of what you send" />
      <div class="row wrap">
        <button type="button" onClick={startPreview} disabled={live || noMedia}>Preview</button>
        {live ? (
          <button type="button" class="danger" onClick={stop}>Stop streaming</button>
        ) : (
          <button type="button" class="primary" onClick={goLive} disabled={noMedia}>Go live</button>
        )}
        <span role="status" data-testid="publish-state">{state === 'connected' ? 'You are live.' : state ? `WebRTC: ${state}` : ''}</span>
      </div>
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}
