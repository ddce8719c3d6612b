import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, avatarUrl, channelPath, errorText, get, fmtDuration, fmtWhen, type Broadcast, type Me, type Scheduled } from '../api';
import { useChannel, useGet, type ChannelView } from '../channel';
import { LevelMeter } from '../meter';
import { playVod, type Mode } from '../player';
import { Link } from '../router';
import { usePlayer } from '../usePlayer';
import { Messages } from './Messages';
import { RadioCard } from './Radio';
import { ShareButton, SharePanel } from './Share';

export function Watch({ channel, me }: { channel: string; me: Me | null }) {
  const view = useChannel(channel, { me: me?.user.username });
  const { info, missing, live, viewers, likes, audioOnly, nowPlaying } = view.state;
  const [likeError, setLikeError] = useState('');
  const [preferred, setPreferred] = useState<Mode | undefined>(undefined);
  const [vod, setVod] = useState<Broadcast | null>(null);
  const [gone, setGone] = useState(false);
  const [level, setLevel] = useState(0);
  const [sharing, setSharing] = useState(false);
  const meter = useRef<LevelMeter | null>(null);
  const { video, player, ps } = usePlayer(channel, { play: vod ? null : live, mode: preferred, audioOnly }, (p) => {
    const m = new LevelMeter(setLevel);
    meter.current = m;
    // Only the listening page shows a meter; a video page makes no AudioContext.
    p.onAudio = (s) => m.attach(p.audioOnly ? s : null);
    return () => m.close();
  });
  const watch = useRef<HTMLDivElement>(null);
  useChatFillsPhone(watch, !missing);
  // A link to a past broadcast (`?b=ID`, what the share panel gives while
  // one plays) opens it once the list has it.
  const wanted = useRef<string | null>(null);
  useEffect(() => {
    wanted.current = new URLSearchParams(location.search).get('b');
    setVod(null);
    setGone(false);
    setLikeError('');
  }, [channel]);
  useEffect(() => {
    if (vod) setGone(false);
    if (!vod && wanted.current) return;
    const url = vod ? `${location.pathname}?b=${encodeURIComponent(vod.id)}` : location.pathname;
    if (url !== location.pathname + location.search) history.replaceState(history.state, '', url);
  }, [vod, gone]);

  const like = async () => {
    setLikeError('');
    try {
      const r = await api<{ likes: number }>('POST', channelPath(channel, '/like'));
      view.dispatch({ type: 'likes', count: r.likes });
    } catch (e) {
      setLikeError(errorText(e));
    }
  };

  if (missing) {
    return <p class="error" role="alert">{missing}. <Link href="/">Back to the directory</Link></p>;
  }
  const moderator = !!me && (me.user.role === 'admin' || me.user.role === 'moderator' || info?.owner === me.user.username);

  return (
    <div class="watch" ref={watch}>
      <section class="stage" aria-label="Player">
        <div class={`video-wrap${audioOnly && !vod ? ' audio-only' : ''}`}>
          <video ref={video} id="player" playsInline autoPlay controls aria-label={`${channel} live ${audioOnly ? 'audio' : 'video'}`} />
          {audioOnly && !vod && live && (
            <RadioCard channel={channel} title={info?.title || ''} nowPlaying={nowPlaying} listeners={viewers} level={level}
              paused={!!ps?.paused} playing={ps?.status === 'playing'} onToggle={() => { meter.current?.resume(); player.current?.togglePause(); }} />
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
            <button type="button" class="unmute primary" onClick={() => { meter.current?.resume(); player.current?.unmute(); }}>Unmute</button>
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
        {sharing && <SharePanel channel={channel} title={info?.title || ''} broadcast={vod?.id} onClose={() => setSharing(false)} />}
        {ps?.message && ps.status !== 'connecting' && ps.status !== 'waiting' && !vod && <p class="muted" role="status">{ps.message}</p>}
        {likeError && <p class="error" role="alert">{likeError}</p>}
        {gone && <p class="muted" role="status" data-testid="vod-gone">That past broadcast is not available: it was deleted or hidden by its owner.</p>}
      </section>
      <Chat channel={channel} me={me} moderator={moderator} view={view} />
      <section class="about" aria-label="About the channel">
        <h1 class="channel-title" data-testid="channel-title">{info?.title || channel}</h1>
        <p class="muted owner-line">
          <img class="avatar" src={avatarUrl(info?.owner || channel)} alt="" width={32} height={32} data-testid="owner-avatar" />
          <Link href={`/c/${channel}`}>{channel}</Link>
          {info?.category ? ` · ${info.category}` : ''}
        </p>
        {info?.description && <p class="description">{info.description}</p>}
        <Upcoming channel={channel} />
        <PastBroadcasts channel={channel} video={video} vod={vod} wanted={wanted} setGone={setGone}
          setVod={(b) => { player.current?.stop(); setVod(b); }} />
      </section>
    </div>
  );
}

/// Where the chat starts on the page, as `--chat-top` on the watch page: on
/// phones the chat is sized to end at the bottom of the screen, its input in
/// view without scrolling, whatever the header and player bar measure.
function useChatFillsPhone(watch: { current: HTMLDivElement | null }, shown: boolean) {
  useLayoutEffect(() => {
    const el = watch.current;
    const chat = el?.querySelector<HTMLElement>('.chat');
    const stage = el?.querySelector<HTMLElement>('.stage');
    if (!el || !chat || !stage) return;
    const measure = () => el.style.setProperty('--chat-top', `${chat.getBoundingClientRect().top + window.scrollY}px`);
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(stage);
    ro.observe(document.body);
    return () => ro.disconnect();
  }, [shown]);
}

function Upcoming({ channel }: { channel: string }) {
  const items = useGet<{ items: Scheduled[] }>(channelPath(channel, '/schedule'))?.items ?? [];
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

function PastBroadcasts({ channel, video, vod, wanted, setVod, setGone }: {
  channel: string; video: { current: HTMLVideoElement | null }; vod: Broadcast | null;
  wanted: { current: string | null }; setVod: (b: Broadcast | null) => void;
  /// The linked broadcast (`?b=ID`) is not there to play.
  setGone: (gone: boolean) => void;
}) {
  const list = useGet<{ items: Broadcast[] }>(channelPath(channel, '/broadcasts'));
  const items = (list?.items ?? []).filter((b) => !b.live && b.playlist);
  useEffect(() => {
    if (!list) return;
    const id = wanted.current;
    if (!id) return;
    const b = items.find((x) => x.id === id);
    if (b) {
      wanted.current = null;
      setVod(b);
      return;
    }
    // Further back than the first page, or gone: ask for that one.
    const stop = new AbortController();
    get<Broadcast>(channelPath(channel, `/broadcasts/${encodeURIComponent(id)}`), stop.signal).then(
      (one) => {
        if (stop.signal.aborted) return;
        wanted.current = null;
        if (!one.live && one.playlist) setVod(one); else setGone(true);
      },
      () => { if (!stop.signal.aborted) { wanted.current = null; setGone(true); } },
    );
    return () => stop.abort();
  }, [list]);
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

function Chat({ channel, me, moderator, view }: { channel: string; me: Me | null; moderator: boolean; view: ChannelView }) {
  const { messages, slowMode, error } = view.state;
  const setError = (e: string) => view.dispatch({ type: 'error', error: e });
  const [text, setText] = useState('');

  const submit = (e: Event) => {
    e.preventDefault();
    const t = text.trim();
    if (!t) return;
    setError('');
    if (view.send(t)) setText('');
    else setError('Not connected to the chat; retrying…');
  };
  const mod = async (what: string, fn: () => Promise<unknown>) => {
    try { await fn(); setError(''); } catch (e) { setError(`${what}: ${errorText(e)}`); }
  };

  return (
    <aside class="chat" aria-label="Chat">
      <div class="row between">
        <h2>Chat</h2>
        <span class={view.connected ? 'muted' : 'error'} role="status">{view.connected ? '' : 'connecting…'}</span>
      </div>
      {moderator && (
        <div class="field-inline">
          <label for="slow">Slow mode</label>
          <select id="slow" value={String(slowMode)} onChange={(e) => {
            const seconds = Number(e.currentTarget.value);
            view.dispatch({ type: 'slow_mode', seconds });
            void mod('Slow mode', () => api('POST', channelPath(channel, '/slow_mode'), { seconds }));
          }}>
            {[0, 5, 30, 60, 300].map((s) => <option key={s} value={String(s)}>{s ? `${s} s` : 'off'}</option>)}
          </select>
        </div>
      )}
      {!moderator && slowMode > 0 && <p class="muted" data-testid="slow-mode">Slow mode: one message every {slowMode} s.</p>}
      {messages.length === 0 && <p class="muted">No messages yet.</p>}
      <Messages messages={messages} actions={(m) => moderator && m.user !== me?.user.username && (
        <span class="mod">
          <button type="button" class="tiny" aria-label={`Delete message from ${m.user}`}
            onClick={() => mod('Delete', () => api('DELETE', channelPath(channel, `/chat/${encodeURIComponent(m.id)}`)))}>Delete</button>
          <button type="button" class="tiny" aria-label={`Time out ${m.user} for 10 minutes`}
            onClick={() => mod('Time out', () => api('POST', channelPath(channel, '/bans'), { username: m.user, seconds: 600 }))}>Time out</button>
          <button type="button" class="tiny danger" aria-label={`Ban ${m.user}`}
            onClick={() => mod('Ban', () => api('POST', channelPath(channel, '/bans'), { username: m.user }))}>Ban</button>
        </span>
      )} />
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
