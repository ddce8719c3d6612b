import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, channelPath, errorText, fmtDuration, fmtWhen, get, type Broadcast, type Channel, type Me, type Scheduled } from '../api';
import { ChatSocket, type ChatEvent, type ChatMessage } from '../chat';
import { LevelMeter } from '../meter';
import { Player, playVod, type Mode, type PlayerState } from '../player';
import { Link } from '../router';
import { RadioCard } from './Radio';
import { ShareButton, SharePanel } from './Share';

/// Messages kept on the page; older ones scroll away for good.
const CHAT_KEEP = 200;

declare global {
  interface Window {
    /// The live player, for the browser tests' getStats() (tests/e2e).
    __onairPlayer?: Player;
  }
}

export function Watch({ channel, me }: { channel: string; me: Me | null }) {
  const [info, setInfo] = useState<Channel | null>(null);
  const [missing, setMissing] = useState('');
  const [live, setLive] = useState<boolean | null>(null);
  const [viewers, setViewers] = useState(0);
  const [likes, setLikes] = useState(0);
  const [likeError, setLikeError] = useState('');
  const [ps, setPs] = useState<PlayerState | null>(null);
  const [preferred, setPreferred] = useState<Mode | undefined>(undefined);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [chatError, setChatError] = useState('');
  const [connected, setConnected] = useState(false);
  const [slowMode, setSlowMode] = useState(0);
  const [vod, setVod] = useState<Broadcast | null>(null);
  // A live stream with no video: the page is a listening page.
  const [audioOnly, setAudioOnly] = useState(false);
  const [nowPlaying, setNowPlaying] = useState('');
  const [level, setLevel] = useState(0);
  const [sharing, setSharing] = useState(false);
  const video = useRef<HTMLVideoElement>(null);
  const player = useRef<Player | null>(null);
  const socket = useRef<ChatSocket | null>(null);
  const meterRef = useRef<LevelMeter | null>(null);
  // The chat handler lives as long as the channel; it reads who is signed
  // in from here rather than reconnecting when that changes.
  const meRef = useRef(me);
  meRef.current = me;

  // Layout effects, here and for starting the player: they run as soon as
  // the page is rendered, where a plain effect waits for the browser to
  // paint, twice on the way to the first sound.
  useLayoutEffect(() => {
    setInfo(null);
    setMissing('');
    setMessages([]);
    const load = () => get<Channel>(channelPath(channel)).then(
      (c) => {
        setInfo(c); setViewers(c.viewers); setLikes(c.likes); setSlowMode(c.slow_mode_secs);
        setAudioOnly(c.live && c.video === false); setNowPlaying(c.now_playing || '');
        setLive((l) => l ?? c.live);
      },
      (e) => setMissing(errorText(e)),
    );
    void load();
    const p = new Player(video.current!, { whep: `/whep/${encodeURIComponent(channel)}`, hls: `/hls/${encodeURIComponent(channel)}/index.m3u8` }, setPs);
    const meter = new LevelMeter(setLevel);
    meterRef.current = meter;
    // Only the listening page shows a meter; a video page makes no AudioContext.
    p.onAudio = (s) => meter.attach(p.audioOnly ? s : null);
    player.current = p;
    window.__onairPlayer = p;
    const onEvent = (e: ChatEvent) => {
      switch (e.type) {
        case 'chat':
          setMessages((m) => (m.some((x) => x.id === e.id) ? m : [...m, e].slice(-CHAT_KEEP)));
          break;
        case 'delete':
          setMessages((m) => m.filter((x) => x.id !== e.id));
          break;
        // A new broadcast may have video or not: ask before playing it.
        case 'live': void load().then(() => setLive(true)); break;
        case 'offline': setLive(false); setNowPlaying(''); break;
        case 'now_playing': setNowPlaying(e.title); break;
        case 'viewers': setViewers(e.count); break;
        case 'likes': setLikes(e.count); break;
        case 'slow_mode': setSlowMode(e.seconds); break;
        case 'timeout':
        case 'ban':
          // Said to the room; only its target needs to read it.
          if (e.user === meRef.current?.user.username) {
            setChatError(e.type === 'ban' ? 'A moderator banned you from this chat.'
              : `A moderator timed you out: you can chat again in ${e.seconds} s.`);
          }
          break;
        case 'error': setChatError(e.error); break;
      }
    };
    socket.current = new ChatSocket(channel, onEvent, setConnected);
    // Leaving the page ends the WHEP session at once (a keepalive DELETE)
    // instead of leaving the server to time it out.
    const leave = () => p.stop();
    window.addEventListener('pagehide', leave);
    return () => {
      window.removeEventListener('pagehide', leave);
      socket.current?.close();
      p.stop();
      meter.close();
      if (window.__onairPlayer === p) delete window.__onairPlayer;
    };
  }, [channel]);

  // The player follows the channel: it starts when the channel goes live
  // (the chat tells, no reload needed) and stops when it ends.
  useLayoutEffect(() => {
    const p = player.current;
    if (!p || live === null || vod) return;
    p.audioOnly = audioOnly;
    if (live) p.start(preferred);
    else p.stop();
  }, [live, preferred, vod, audioOnly]);

  const like = async () => {
    setLikeError('');
    try {
      const r = await api<{ likes: number }>('POST', channelPath(channel, '/like'));
      setLikes(r.likes);
    } catch (e) {
      setLikeError(errorText(e));
    }
  };

  if (missing) {
    return <p class="error" role="alert">{missing}. <Link href="/">Back to the directory</Link></p>;
  }
  const moderator = !!me && (me.user.role === 'admin' || me.user.role === 'moderator' || info?.owner === me.user.username);

  return (
    <div class="watch">
      <section class="stage" aria-label="Player">
        <div class={`video-wrap${audioOnly && !vod ? ' audio-only' : ''}`}>
          <video ref={video} id="player" playsInline autoPlay controls aria-label={`${channel} live ${audioOnly ? 'audio' : 'video'}`} />
          {audioOnly && !vod && live && (
            <RadioCard channel={channel} title={info?.title || ''} nowPlaying={nowPlaying} listeners={viewers} level={level}
              paused={!!ps?.paused} playing={ps?.status === 'playing'} onToggle={() => { meterRef.current?.resume(); player.current?.togglePause(); }} />
          )}
          {vod ? null : live === false ? (
            <div class="overlay" data-testid="offline">
              <p><strong>{channel}</strong> is offline.</p>
              {info?.next_broadcast && <p>Next: {info.next_broadcast.title || 'a broadcast'} at {fmtWhen(info.next_broadcast.starts_at)}</p>}
              <p class="muted">The player starts by itself when the channel goes live.</p>
            </div>
          ) : ps?.status === 'connecting' || ps?.status === 'waiting' ? (
            <div class="overlay subtle" aria-live="polite" data-testid={ps.status}>{ps.message}</div>
          ) : null}
          {ps?.needsUnmute && !vod && (
            <button type="button" class="unmute primary" onClick={() => { meterRef.current?.resume(); player.current?.unmute(); }}>Unmute</button>
          )}
        </div>
        <div class="row between wrap player-bar">
          <div class="row wrap">
            {vod ? (
              <>
                <span class="badge">Replay</span>
                <button type="button" onClick={() => setVod(null)}>Back to live</button>
              </>
            ) : (
              <>
                {live && <span class="badge live">LIVE</span>}
                <span data-testid="viewers">{viewers} {audioOnly ? 'listening' : 'watching'}</span>
                <fieldset class="switch">
                  <legend class="sr-only">Playback</legend>
                  {(['webrtc', 'hls'] as Mode[]).map((m) => (
                    <label key={m}>
                      <input type="radio" name="mode" value={m} checked={ps?.mode === m}
                        onChange={() => setPreferred(m)} disabled={!live} />
                      {m === 'webrtc' ? 'WebRTC' : 'LL-HLS'}
                    </label>
                  ))}
                </fieldset>
              </>
            )}
          </div>
          <div class="row">
            <button type="button" onClick={like} disabled={!me} title={me ? 'Like this channel' : 'Sign in to like'}
              aria-label={`Like (${likes} likes)`}>♥ <span data-testid="likes">{likes}</span></button>
            <ShareButton open={sharing} onToggle={() => setSharing((x) => !x)} />
          </div>
        </div>
        {sharing && <SharePanel channel={channel} title={info?.title || ''} onClose={() => setSharing(false)} />}
        {ps?.message && ps.status !== 'connecting' && ps.status !== 'waiting' && !vod && <p class="muted" role="status">{ps.message}</p>}
        {likeError && <p class="error" role="alert">{likeError}</p>}
        <h1 class="channel-title">{info?.title || channel}</h1>
        <p class="muted">
          <Link href={`/c/${channel}`}>{channel}</Link>
          {info?.category ? ` · ${info.category}` : ''}
        </p>
        {info?.description && <p class="description">{info.description}</p>}
        <Upcoming channel={channel} />
        <PastBroadcasts channel={channel} video={video} vod={vod} setVod={(b) => { player.current?.stop(); setVod(b); }} />
      </section>
      <Chat channel={channel} me={me} moderator={moderator} messages={messages} connected={connected}
        error={chatError} setError={setChatError} send={(t) => socket.current?.send(t) ?? false} slowMode={slowMode} />
    </div>
  );
}

function Upcoming({ channel }: { channel: string }) {
  const [items, setItems] = useState<Scheduled[]>([]);
  useEffect(() => {
    get<{ items: Scheduled[] }>(channelPath(channel, '/schedule')).then((r) => setItems(r.items), () => {});
  }, [channel]);
  if (items.length === 0) return null;
  return (
    <section aria-labelledby="upcoming-h" data-testid="upcoming">
      <h2 id="upcoming-h">Upcoming</h2>
      <ul class="list">
        {items.map((s) => (
          <li key={s.id}><time dateTime={s.starts_at}>{fmtWhen(s.starts_at)}</time> – {s.title || 'Untitled'}</li>
        ))}
      </ul>
    </section>
  );
}

function PastBroadcasts({ channel, video, vod, setVod }: {
  channel: string; video: { current: HTMLVideoElement | null }; vod: Broadcast | null; setVod: (b: Broadcast | null) => void;
}) {
  const [items, setItems] = useState<Broadcast[]>([]);
  useEffect(() => {
    get<{ items: Broadcast[] }>(channelPath(channel, '/broadcasts')).then((r) => setItems(r.items.filter((b) => !b.live && b.playlist)), () => {});
  }, [channel]);
  useEffect(() => {
    if (!vod?.playlist || !video.current) return;
    let hls: { destroy(): void } | null = null;
    let gone = false;
    playVod(video.current, vod.playlist).then((h) => { if (gone) h?.destroy(); else hls = h; video.current?.play().catch(() => {}); });
    return () => { gone = true; hls?.destroy(); video.current?.removeAttribute('src'); };
  }, [vod]);
  if (items.length === 0) return null;
  return (
    <section aria-label="Past broadcasts">
      <h2>Past broadcasts</h2>
      <ul class="grid small">
        {items.map((b) => (
          <li key={b.id} class={`tile${vod?.id === b.id ? ' current' : ''}`}>
            <button type="button" class="tile-link" onClick={() => setVod(b)} aria-label={`Play ${b.title || 'broadcast'} from ${fmtWhen(b.started_at)}`}>
              <div class="thumb">
                {b.poster && <img src={b.poster} alt="" loading="lazy" width={320} height={180} />}
                <span class="badge viewers">{fmtDuration(b.duration_ms)}</span>
              </div>
              <div class="tile-text">
                <strong class="title">{b.title || 'Untitled broadcast'}</strong>
                <span class="muted">{fmtWhen(b.started_at)}</span>
              </div>
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

function Chat(props: {
  channel: string; me: Me | null; moderator: boolean; messages: ChatMessage[]; connected: boolean;
  error: string; setError: (e: string) => void; send: (t: string) => boolean; slowMode: number;
}) {
  const { channel, me, moderator, messages, connected, error, setError } = props;
  const [text, setText] = useState('');
  const [slow, setSlow] = useState(props.slowMode);
  const list = useRef<HTMLOListElement>(null);
  useEffect(() => setSlow(props.slowMode), [props.slowMode]);
  useEffect(() => {
    // Follow new messages unless the reader scrolled up.
    const el = list.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 120) el.scrollTop = el.scrollHeight;
  }, [messages]);

  const submit = (e: Event) => {
    e.preventDefault();
    const t = text.trim();
    if (!t) return;
    setError('');
    if (props.send(t)) setText('');
    else setError('Not connected to the chat; retrying…');
  };
  const mod = async (what: string, fn: () => Promise<unknown>) => {
    try { await fn(); setError(''); } catch (e) { setError(`${what}: ${errorText(e)}`); }
  };

  return (
    <aside class="chat" aria-label="Chat">
      <div class="row between">
        <h2>Chat</h2>
        <span class={connected ? 'muted' : 'error'} role="status">{connected ? '' : 'connecting…'}</span>
      </div>
      {moderator && (
        <div class="field-inline">
          <label for="slow">Slow mode</label>
          <select id="slow" value={String(slow)} onChange={(e) => {
            const seconds = Number(e.currentTarget.value);
            setSlow(seconds);
            void mod('Slow mode', () => api('POST', channelPath(channel, '/slow_mode'), { seconds }));
          }}>
            {[0, 5, 30, 60, 300].map((s) => <option key={s} value={String(s)}>{s ? `${s} s` : 'off'}</option>)}
          </select>
        </div>
      )}
      {!moderator && slow > 0 && <p class="muted" data-testid="slow-mode">Slow mode: one message every {slow} s.</p>}
      {messages.length === 0 && <p class="muted">No messages yet.</p>}
      <ol ref={list} class="messages" aria-live="polite" aria-relevant="additions" data-testid="messages">
        {messages.map((m) => (
          <li key={m.id} data-id={m.id}>
            {/* Text only: JSX text nodes, never innerHTML. */}
            <strong class="who">{m.user}</strong> <span class="text">{m.text}</span>
            {moderator && m.user !== me?.user.username && (
              <span class="mod">
                <button type="button" class="tiny" aria-label={`Delete message from ${m.user}`}
                  onClick={() => mod('Delete', () => api('DELETE', channelPath(channel, `/chat/${m.id}`)))}>Delete</button>
                <button type="button" class="tiny" aria-label={`Time out ${m.user} for 10 minutes`}
                  onClick={() => mod('Time out', () => api('POST', channelPath(channel, '/bans'), { username: m.user, seconds: 600 }))}>Time out</button>
                <button type="button" class="tiny danger" aria-label={`Ban ${m.user}`}
                  onClick={() => mod('Ban', () => api('POST', channelPath(channel, '/bans'), { username: m.user }))}>Ban</button>
              </span>
            )}
          </li>
        ))}
      </ol>
      {error && <p class="error" role="alert">{error}</p>}
      {me ? (
        <form class="send" onSubmit={submit}>
          <label for="chat-input" class="sr-only">Message</label>
          <input id="chat-input" maxLength={500} autoComplete="off" placeholder="Say something" value={text}
            onInput={(e) => setText(e.currentTarget.value)} />
          <button type="submit" class="primary">Send</button>
        </form>
      ) : (
        <p class="muted"><Link href={`/login?next=/c/${channel}`}>Sign in</Link> to chat.</p>
      )}
    </aside>
  );
}
