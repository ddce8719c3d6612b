// /embed/NAME: the player alone, for other sites' iframes. No header or
// footer; the frame is the player (and the chat with ?chat=1).
//
// ?muted=1     starts without sound
// ?autoplay=1  plays when the channel is live, without a click (browsers
//              allow that muted; unmuted, it may need the Unmute button)
// ?chat=1      the chat beside the player (below it in narrow frames),
//              read-only: a third-party iframe gets no session cookie.
import { useState } from 'preact/hooks';
import { useChannel } from '../channel';
import { usePlayer } from '../usePlayer';
import { Messages } from './Messages';
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
  const { state } = useChannel(channel, { keep: CHAT_KEEP });
  const { live, missing, audioOnly, messages } = state;
  const title = state.info?.title || '';
  // Autoplay, or the viewer pressed play: from then on the player follows
  // the channel, starting whenever it goes live.
  const [wanted, setWanted] = useState(options.autoplay);
  // The element's own state, followed by its events.
  const [muted, setMuted] = useState(false);
  const { video, player, ps } = usePlayer(channel, { play: live === null ? null : live && wanted, audioOnly }, (p, v) => {
    p.startMuted = options.muted;
    // Once the viewer unmutes, a restart (the channel back on the air)
    // keeps the sound.
    const onVolume = () => {
      setMuted(v.muted);
      if (!v.muted) p.startMuted = false;
    };
    v.addEventListener('volumechange', onVolume);
    v.addEventListener('playing', onVolume);
    return () => {
      v.removeEventListener('volumechange', onVolume);
      v.removeEventListener('playing', onVolume);
    };
  });

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
          <Messages messages={messages} />
        </aside>
      )}
    </div>
  );
}
