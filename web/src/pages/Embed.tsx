// /embed/NAME: the player alone, for other sites' iframes. No header or
// footer; the frame is the player (and the chat with ?chat=1).
//
// ?muted=1     starts without sound
// ?autoplay=1  plays when the channel is live, without a click (browsers
//              allow that muted; unmuted, it may need the Unmute button)
// ?chat=1      the chat beside the player (below it in narrow frames),
//              read-only: a third-party iframe gets no session cookie.
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { channelPath, errorText, get, type Channel } from '../api';
import { ChatSocket, type ChatEvent, type ChatMessage } from '../chat';
import { Player, type PlayerState } from '../player';
import './embed.css';

/// Messages kept in the frame; older ones scroll away for good.
const CHAT_KEEP = 100;

export interface EmbedOptions {
  muted: boolean;
  autoplay: boolean;
  chat: boolean;
}

/// The embed's switches from its address: `1` or `true` turns one on.
export function embedOptions(search: string): EmbedOptions {
  const q = new URLSearchParams(search);
  const on = (k: string) => q.get(k) === '1' || q.get(k) === 'true';
  return { muted: on('muted'), autoplay: on('autoplay'), chat: on('chat') };
}

export function Embed({ channel, options }: { channel: string; options: EmbedOptions }) {
  const [live, setLive] = useState<boolean | null>(null);
  const [missing, setMissing] = useState('');
  const [title, setTitle] = useState('');
  const [audioOnly, setAudioOnly] = useState(false);
  // Autoplay, or the viewer pressed play: from then on the player follows
  // the channel, starting whenever it goes live.
  const [wanted, setWanted] = useState(options.autoplay);
  // The element's own state, followed by its events.
  const [muted, setMuted] = useState(false);
  const [ps, setPs] = useState<PlayerState | null>(null);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const video = useRef<HTMLVideoElement>(null);
  const player = useRef<Player | null>(null);
  const list = useRef<HTMLOListElement>(null);

  useLayoutEffect(() => {
    setLive(null);
    setMissing('');
    setMessages([]);
    const v = video.current!;
    const p = new Player(v, { whep: `/whep/${encodeURIComponent(channel)}`, hls: `/hls/${encodeURIComponent(channel)}/index.m3u8` }, setPs);
    p.startMuted = options.muted;
    player.current = p;
    window.__onairPlayer = p;
    // Once the viewer unmutes, a restart (the channel back on the air)
    // keeps the sound.
    const onVolume = () => {
      setMuted(v.muted);
      if (!v.muted) p.startMuted = false;
    };
    v.addEventListener('volumechange', onVolume);
    v.addEventListener('playing', onVolume);
    const load = () => get<Channel>(channelPath(channel)).then(
      (c) => {
        setTitle(c.title);
        setAudioOnly(c.live && c.video === false);
        setLive((l) => l ?? c.live);
      },
      (e) => setMissing(errorText(e)),
    );
    void load();
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
        case 'offline': setLive(false); break;
      }
    };
    const socket = new ChatSocket(channel, onEvent, () => {});
    const leave = () => p.stop();
    window.addEventListener('pagehide', leave);
    return () => {
      window.removeEventListener('pagehide', leave);
      v.removeEventListener('volumechange', onVolume);
      v.removeEventListener('playing', onVolume);
      socket.close();
      p.stop();
      if (window.__onairPlayer === p) delete window.__onairPlayer;
    };
  }, [channel]);

  useLayoutEffect(() => {
    const p = player.current;
    if (!p || live === null) return;
    p.audioOnly = audioOnly;
    if (live && wanted) p.start();
    else p.stop();
  }, [live, wanted, audioOnly]);

  useLayoutEffect(() => {
    // Follow new messages unless the reader scrolled up.
    const el = list.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < 120) el.scrollTop = el.scrollHeight;
  }, [messages]);

  const page = `/c/${encodeURIComponent(channel)}`;
  const sounding = ps?.status === 'playing' || ps?.status === 'waiting';
  let overlay = null;
  if (missing) {
    overlay = <div class="overlay" role="alert">{missing}</div>;
  } else if (live === false) {
    overlay = (
      <div class="overlay" data-testid="offline">
        <p><strong>{channel}</strong> is offline.</p>
        <p class="muted">{wanted ? 'The player starts by itself when the channel goes live.' : 'A play button shows here when the channel goes live.'}</p>
      </div>
    );
  } else if (live && !wanted) {
    overlay = (
      <div class="overlay">
        <button type="button" class="primary embed-play" onClick={() => setWanted(true)} aria-label={`Play ${channel} live`}>
          ▶ Play
        </button>
        {title && <p class="embed-title">{title}</p>}
      </div>
    );
  } else if (ps?.status === 'connecting' || ps?.status === 'waiting') {
    overlay = <div class="overlay subtle" aria-live="polite" data-testid={ps.status}>{ps.message}</div>;
  } else if (ps?.status === 'error') {
    overlay = <div class="overlay" role="alert">{ps.message}</div>;
  }

  return (
    <div class={`embed${options.chat ? ' with-chat' : ''}`}>
      <section class={`embed-stage${audioOnly ? ' audio-only' : ''}`} aria-label="Player">
        <video ref={video} id="player" playsInline controls aria-label={`${channel} live ${audioOnly ? 'audio' : 'video'}`} />
        {audioOnly && live && sounding && (
          <div class="embed-radio" aria-hidden="true"><strong>{title || channel}</strong></div>
        )}
        {overlay}
        {sounding && muted && (
          <button type="button" class="unmute primary" onClick={() => player.current?.unmute()}>Unmute</button>
        )}
        <a class="embed-watch" href={page} target="_blank" rel="noopener">Watch on onair</a>
      </section>
      {options.chat && (
        <aside class="embed-chat" aria-label="Chat">
          <div class="embed-chat-head">
            <h2>Chat</h2>
            <a href={page} target="_blank" rel="noopener">Chat on onair</a>
          </div>
          {messages.length === 0 && <p class="muted embed-empty">No messages yet.</p>}
          <ol ref={list} class="messages" aria-live="polite" aria-relevant="additions" data-testid="messages">
            {messages.map((m) => (
              <li key={m.id} data-id={m.id}>
                {/* Text only: JSX text nodes, never innerHTML. */}
                <strong class="who">{m.user}</strong> <span class="text">{m.text}</span>
              </li>
            ))}
          </ol>
        </aside>
      )}
    </div>
  );
}
