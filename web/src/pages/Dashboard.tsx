import { useEffect, useRef, useState } from 'preact/hooks';
import { api, channelPath, errorText, fmtWhen, get, type Category, type Me } from '../api';
import type { PageProps } from '../main';
import { Link } from '../router';
import { GoLive } from './GoLive';
import { Recordings, Schedule } from './Manage';
import { AvatarCard } from './Avatar';
import { LinkedProviders } from './Providers';

export function Dashboard({ me, setMe }: PageProps & { me: Me }) {
  const ch = me.channel;
  if (!ch) return <p>This account has no channel.</p>;
  const setKey = (stream_key: string) => setMe({ ...me, channel: { ...ch, stream_key } });
  const key = ch.stream_key;
  return (
    <>
      <div class="row between wrap">
        <h1>Dashboard</h1>
        <Link href={`/c/${ch.name}`}>Open your channel page</Link>
      </div>
      <div class="dash">
        {key ? (
          <>
            <StreamKey channel={ch.name} streamKey={key} rtmpPort={ch.rtmp_port} rtmpsPort={ch.rtmps_port} icecastPort={ch.icecast_port} publicUrl={ch.public_url} setKey={setKey} />
            <Health channel={ch.name} />
          </>
        ) : (
          <section class="card" aria-labelledby="no-stream-h" data-testid="not-streaming">
            <h2 id="no-stream-h">Streaming</h2>
            <p>Your account can watch, chat and like. It can stream once an admin gives it the broadcaster role: then your stream key appears here.</p>
          </section>
        )}
        <ChannelForm me={me} setMe={setMe} />
        {key && <GoLive streamKey={key} channel={ch.name} />}
        <Recordings channel={ch.name} />
        <Schedule channel={ch.name} />
        <AvatarCard me={me} setMe={setMe} />
        <Sessions setMe={setMe} />
        <Email me={me} setMe={setMe} />
        <Account username={me.user.username} setMe={setMe} />
        <LinkedProviders />
      </div>
    </>
  );
}

interface SessionItem { id: string; created_at: string; expires_at: string; current: boolean }

/// Where this account is signed in; one device, or every one, signed out.
function Sessions({ setMe }: Pick<PageProps, 'setMe'>) {
  const [items, setItems] = useState<SessionItem[] | null>(null);
  const [error, setError] = useState('');
  const load = () => get<{ items: SessionItem[] }>('/api/me/sessions').then((r) => setItems(r.items), (e) => setError(errorText(e)));
  useEffect(() => { void load(); }, []);
  const end = async (id: string) => {
    setError('');
    try {
      await api('DELETE', `/api/me/sessions/${encodeURIComponent(id)}`);
      await load();
    } catch (e) { setError(errorText(e)); }
  };
  const everywhere = async () => {
    setError('');
    try {
      await api('POST', '/api/auth/logout-all');
      setMe(null);
    } catch (e) { setError(errorText(e)); }
  };
  return (
    <section class="card" aria-labelledby="sessions-h" data-testid="sessions">
      <h2 id="sessions-h">Signed-in devices</h2>
      {items === null ? <p class="muted">Loading…</p> : (
        <ul class="list">
          {items.map((s) => (
            <li key={s.id} class="row between wrap">
              <span>Signed in {fmtWhen(s.created_at)}{s.current ? ' (this device)' : ''}</span>
              {!s.current && <button type="button" onClick={() => end(s.id)}>Sign out</button>}
            </li>
          ))}
        </ul>
      )}
      <button type="button" onClick={everywhere}>Sign out everywhere</button>
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}

/// The account's address: where resets and notices go. A new one takes
/// effect once the link mailed to it is followed (at once, unverified, on
/// a server that sends no mail).
function Email({ me, setMe }: { me: Me } & Pick<PageProps, 'setMe'>) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [msg, setMsg] = useState('');
  const [error, setError] = useState('');
  const { email: current, email_verified: verified } = me.user;
  const change = async (e: Event) => {
    e.preventDefault();
    setMsg('');
    setError('');
    try {
      await api('POST', '/api/me/email', { email, password });
      const fresh = await api<Me>('GET', '/api/me');
      setMe(fresh);
      setMsg(fresh.user.email === email.trim()
        ? 'Address changed. It is not verified: this server sends no mail.'
        : `Check ${email.trim()} for a link: the address changes once you follow it.`);
      setEmail('');
      setPassword('');
    } catch (err) { setError(errorText(err)); }
  };
  const resend = async () => {
    setMsg('');
    setError('');
    try {
      await api('POST', '/api/auth/email/send');
      setMsg(`A new link is on its way to ${current}.`);
    } catch (err) { setError(errorText(err)); }
  };
  return (
    <section class="card" aria-labelledby="email-h" data-testid="email">
      <h2 id="email-h">Email</h2>
      <p>
        {current ? <><span class="mono">{current}</span> {verified ? '(verified)' : '(not verified)'}</> : 'No address: password resets need one.'}
        {current && !verified && <> <button type="button" onClick={resend}>Send the link again</button></>}
      </p>
      <form onSubmit={change}>
        <label for="email-new">New address</label>
        <input id="email-new" type="email" autoComplete="email" required maxLength={254} value={email}
          onInput={(e) => setEmail(e.currentTarget.value)} />
        <label for="email-pw">Password</label>
        <input id="email-pw" type="password" autoComplete="current-password" required value={password}
          onInput={(e) => setPassword(e.currentTarget.value)} />
        <div class="row">
          <button type="submit">Change email</button>
        </div>
      </form>
      <p role="status">{msg}</p>
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}

/// The password, and the account itself.
function Account({ username, setMe }: { username: string } & Pick<PageProps, 'setMe'>) {
  const [old, setOld] = useState('');
  const [next, setNext] = useState('');
  const [msg, setMsg] = useState('');
  const [error, setError] = useState('');
  const [confirming, setConfirming] = useState(false);
  const [typed, setTyped] = useState('');
  // Accounts made through a provider have no password to confirm with:
  // a recent sign-in there stands in for it.
  const [hasPassword, setHasPassword] = useState(true);
  useEffect(() => {
    get<{ password: boolean }>('/api/me/identities').then((r) => setHasPassword(r.password), () => {});
  }, []);
  const change = async (e: Event) => {
    e.preventDefault();
    setMsg('');
    setError('');
    try {
      await api('POST', '/api/auth/password', { old_password: hasPassword ? old : '', new_password: next });
      setOld('');
      setNext('');
      setHasPassword(true);
      setMsg('Password changed. Your other devices are signed out.');
    } catch (err) { setError(errorText(err)); }
  };
  const remove = async () => {
    setError('');
    try {
      await api('DELETE', '/api/me');
      setMe(null);
    } catch (err) { setError(errorText(err)); }
  };
  return (
    <section class="card" aria-labelledby="account-h" data-testid="account">
      <h2 id="account-h">Account</h2>
      <form onSubmit={change}>
        {hasPassword ? (
          <>
            <label for="pw-old">Current password</label>
            <input id="pw-old" type="password" autoComplete="current-password" required value={old}
              onInput={(e) => setOld(e.currentTarget.value)} />
          </>
        ) : <p class="muted" data-testid="no-password">You sign in with a provider. You may also set a password.</p>}
        <label for="pw-new">New password (8 characters or more)</label>
        <input id="pw-new" type="password" autoComplete="new-password" required minLength={8} maxLength={256} value={next}
          onInput={(e) => setNext(e.currentTarget.value)} />
        <div class="row">
          <button type="submit">{hasPassword ? 'Change password' : 'Set a password'}</button>
          <span role="status">{msg}</span>
        </div>
      </form>
      {!confirming ? (
        <button type="button" class="danger" onClick={() => setConfirming(true)}>Delete account…</button>
      ) : (
        <div role="group" aria-labelledby="del-h">
          <p id="del-h">Deleting signs you out everywhere and ends a live broadcast. Type <strong>{username}</strong> to confirm.</p>
          <label for="del-name" class="sr-only">Your username</label>
          <input id="del-name" value={typed} onInput={(e) => setTyped(e.currentTarget.value)} autoComplete="off" />
          <div class="row">
            <button type="button" class="danger" disabled={typed !== username} onClick={remove}>Delete my account</button>
            <button type="button" onClick={() => { setConfirming(false); setTyped(''); }}>Cancel</button>
          </div>
        </div>
      )}
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}

function Copy({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch {
      // No clipboard permission (plain http on another host): the value is
      // on the page to select by hand.
      setDone(false);
    }
  };
  return <button type="button" onClick={copy} aria-label={`Copy ${label}`}>{done ? 'Copied' : 'Copy'}</button>;
}

function StreamKey({ channel, streamKey, rtmpPort, rtmpsPort, icecastPort, publicUrl, setKey }: {
  channel: string; streamKey: string; rtmpPort?: number; rtmpsPort?: number | null; icecastPort?: number;
  publicUrl?: string | null; setKey: (k: string) => void;
}) {
  const [shown, setShown] = useState(false);
  const [confirm, setConfirm] = useState(false);
  const [error, setError] = useState('');
  // The public URL's host when the server has one (behind a proxy or a
  // CDN the page's own host may not take RTMP), else the host the browser
  // reached this page by (an IPv6 one comes with its brackets); and the
  // port the server says RTMP listens on.
  const publicOrigin = publicUrl ? new URL(publicUrl) : null;
  const host = publicOrigin ? publicOrigin.hostname : location.hostname;
  const origin = publicOrigin ? publicOrigin.origin : location.origin;
  const rtmpUrl = `rtmp://${host}:${rtmpPort ?? 1935}/live`;
  // With RTMPS on, the key never crosses the network in the clear.
  const rtmpsUrl = rtmpsPort ? `rtmps://${host}:${rtmpsPort}/live` : null;
  const rotate = async () => {
    setError('');
    try {
      const r = await api<{ stream_key: string | null }>('POST', channelPath(channel, '/key'));
      if (r.stream_key) setKey(r.stream_key);
      setShown(true);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setConfirm(false);
    }
  };
  const masked = shown ? streamKey : '•'.repeat(Math.min(streamKey.length, 24));
  return (
    <section class="card" aria-labelledby="key-h">
      <h2 id="key-h">Stream key and OBS settings</h2>
      <label for="stream-key">Stream key</label>
      <div class="row">
        <input id="stream-key" readOnly value={masked} class="mono grow" data-testid="stream-key" />
        <button type="button" onClick={() => setShown(!shown)} aria-pressed={shown}>{shown ? 'Hide' : 'Reveal'}</button>
        <Copy text={streamKey} label="stream key" />
      </div>
      {confirm ? (
        <div class="row wrap warn-box" role="alertdialog" aria-label="Confirm key rotation">
          <span>A new key ends a stream that is live now. Rotate?</span>
          <button type="button" class="danger" onClick={rotate}>Yes, rotate the key</button>
          <button type="button" onClick={() => setConfirm(false)}>Cancel</button>
        </div>
      ) : (
        <button type="button" onClick={() => setConfirm(true)}>Rotate key…</button>
      )}
      {error && <p class="error" role="alert">{error}</p>}
      {rtmpsUrl && (
        <>
          <h3>OBS over RTMPS (encrypted)</h3>
          <dl class="kv">
            <dt>Service</dt><dd>Custom…</dd>
            <dt>Server</dt><dd><span class="mono" data-testid="rtmps-url">{rtmpsUrl}</span> <Copy text={rtmpsUrl} label="RTMPS server" /></dd>
            <dt>Stream key</dt><dd>the key above</dd>
          </dl>
        </>
      )}
      <h3>OBS over RTMP</h3>
      <dl class="kv">
        <dt>Service</dt><dd>Custom…</dd>
        <dt>Server</dt><dd><span class="mono" data-testid="rtmp-url">{rtmpUrl}</span> <Copy text={rtmpUrl} label="RTMP server" /></dd>
        <dt>Stream key</dt><dd>the key above</dd>
      </dl>
      <h3>OBS 30+ over WHIP</h3>
      <dl class="kv">
        <dt>Service</dt><dd>WHIP</dd>
        <dt>Server</dt><dd><span class="mono" data-testid="whip-url">{origin}/whip</span> <Copy text={`${origin}/whip`} label="WHIP server" /></dd>
        <dt>Bearer token</dt><dd>the key above</dd>
      </dl>
      <h3>Radio (audio only): BUTT, Mixxx, ffmpeg over Icecast</h3>
      <dl class="kv">
        <dt>Server, port</dt><dd><span class="mono" data-testid="icecast-server">{host}</span>, <span class="mono">{icecastPort ?? 8000}</span></dd>
        <dt>Mount</dt><dd><span class="mono">/{channel}</span></dd>
        <dt>User, password</dt><dd><span class="mono">source</span>, the key above</dd>
        <dt>Audio</dt><dd>MP3, AAC or Opus (Ogg); track titles show as now playing</dd>
      </dl>
      <h3>Recommended encoder settings</h3>
      <ul>
        <li>Keyframe interval <strong>1 s</strong> (viewers start at a keyframe).</li>
        <li><strong>B-frames 0</strong>: WebRTC cannot reorder frames.</li>
        <li>H.264 profile baseline, main or high; x264 preset veryfast, tune zerolatency.</li>
        <li>Audio AAC 48 kHz (RTMP) or Opus (WHIP).</li>
      </ul>
    </section>
  );
}

function ChannelForm({ me, setMe }: PageProps & { me: Me }) {
  const ch = me.channel!;
  const [title, setTitle] = useState(ch.title || '');
  const [category, setCategory] = useState(ch.category || '');
  const [description, setDescription] = useState(ch.description || '');
  const [categories, setCategories] = useState<Category[]>([]);
  const [msg, setMsg] = useState('');
  const [error, setError] = useState('');
  useEffect(() => {
    get<{ items: Category[] }>('/api/categories').then((r) => setCategories(r.items), () => {});
  }, []);
  const save = async (e: Event) => {
    e.preventDefault();
    setMsg('');
    setError('');
    try {
      await api('PATCH', channelPath(ch.name), { title, description, category: category || null });
      setMe({ ...me, channel: { ...ch, title, description, category: category || null } });
      setMsg('Saved.');
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <section class="card" aria-labelledby="ch-h">
      <h2 id="ch-h">Channel</h2>
      <form onSubmit={save}>
        <label for="ch-title">Title</label>
        <input id="ch-title" maxLength={140} value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
        <label for="ch-category">Category</label>
        <select id="ch-category" value={category} onChange={(e) => setCategory(e.currentTarget.value)}>
          <option value="">None</option>
          {categories.map((c) => <option key={c.slug} value={c.slug}>{c.name}</option>)}
        </select>
        <label for="ch-description">Description</label>
        <textarea id="ch-description" rows={4} maxLength={5000} value={description}
          onInput={(e) => setDescription(e.currentTarget.value)} />
        <div class="row">
          <button type="submit" class="primary">Save</button>
          <span role="status">{msg}</span>
        </div>
        {error && <p class="error" role="alert">{error}</p>}
      </form>
    </section>
  );
}

interface HealthJson {
  live: boolean;
  uptime_secs?: number;
  video_codec?: string | null;
  audio_codec?: string | null;
  width?: number | null;
  height?: number | null;
  bframes?: boolean;
  bytes?: number;
  video_frames?: number;
  keyframes?: number;
  avg_bitrate_bps?: number | null;
  avg_fps?: number | null;
  avg_keyframe_interval_secs?: number | null;
  warnings?: string[];
  viewers: { webrtc: number; hls: number };
}

/// The dashboard polls the stream's health this often.
const HEALTH_POLL_MS = 2000;

function Health({ channel }: { channel: string }) {
  const [h, setH] = useState<HealthJson | null>(null);
  const [rates, setRates] = useState<{ bitrate: number; fps: number; gop: number | null } | null>(null);
  const prev = useRef<{ at: number; h: HealthJson } | null>(null);
  useEffect(() => {
    let stop = false;
    const poll = async () => {
      try {
        const v = await get<HealthJson>(channelPath(channel, '/health'));
        if (stop) return;
        const now = performance.now();
        const p = prev.current;
        // Current rates: the difference between two polls of one publish.
        if (v.live && p?.h.live && (v.uptime_secs ?? 0) > (p.h.uptime_secs ?? 0)) {
          const dt = (now - p.at) / 1000;
          const dk = (v.keyframes ?? 0) - (p.h.keyframes ?? 0);
          setRates({
            bitrate: (((v.bytes ?? 0) - (p.h.bytes ?? 0)) * 8) / dt,
            fps: ((v.video_frames ?? 0) - (p.h.video_frames ?? 0)) / dt,
            gop: dk > 0 ? dt / dk : null,
          });
        } else if (v.live) {
          setRates({ bitrate: v.avg_bitrate_bps ?? 0, fps: v.avg_fps ?? 0, gop: v.avg_keyframe_interval_secs ?? null });
        } else setRates(null);
        prev.current = { at: now, h: v };
        setH(v);
      } catch {
        // Keep the last numbers; the next poll tries again.
      }
    };
    void poll();
    const t = setInterval(poll, HEALTH_POLL_MS);
    return () => { stop = true; clearInterval(t); };
  }, [channel]);
  const gop = rates?.gop ?? h?.avg_keyframe_interval_secs ?? null;
  return (
    <section class="card" aria-labelledby="health-h" data-testid="health">
      <h2 id="health-h">Stream health {h?.live ? <span class="badge live">LIVE</span> : <span class="badge">offline</span>}</h2>
      {!h ? <p class="muted">Loading…</p> : !h.live ? (
        <p class="muted">Not live. Start streaming from OBS, ffmpeg or this page.</p>
      ) : (
        <>
          <dl class="kv">
            <dt>Bitrate</dt><dd data-testid="bitrate">{rates ? `${(rates.bitrate / 1000).toFixed(0)} kbit/s` : '–'}</dd>
            <dt>Frame rate</dt><dd>{rates ? `${rates.fps.toFixed(1)} fps` : '–'}</dd>
            <dt>Resolution</dt><dd data-testid="resolution">{h.width && h.height ? `${h.width}×${h.height}` : '–'}</dd>
            <dt>Keyframe interval</dt><dd>{gop !== null ? `${gop.toFixed(1)} s` : '–'}</dd>
            <dt>Video codec</dt><dd>{h.video_codec || '–'}</dd>
            <dt>Audio codec</dt><dd>{h.audio_codec || 'none'}</dd>
            <dt>Viewers</dt><dd data-testid="dash-viewers">{h.viewers.webrtc + h.viewers.hls} ({h.viewers.webrtc} WebRTC, {h.viewers.hls} HLS)</dd>
          </dl>
          {h.bframes && <p class="warn-box" role="alert">The encoder sends B-frames: WebRTC viewers may stutter. Set B-frames to 0.</p>}
          {gop !== null && gop > 2.5 && <p class="warn-box">Keyframes are {gop.toFixed(1)} s apart: viewers wait that long to start. Set the keyframe interval to 1 s.</p>}
          {(h.warnings || []).map((w) => <p key={w} class="warn-box">{w}</p>)}
        </>
      )}
    </section>
  );
}
