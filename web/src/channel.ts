// A channel as a page sees it: its details (fetched) and what its chat
// events say since (messages, live or not, counts). The watch page and the
// embed share it; one reducer holds it, so an event changes it in one place.
import { useLayoutEffect, useReducer, useRef, useState } from 'preact/hooks';
import { channelPath, errorText, get, type Channel } from './api';
import { ChatSocket, type ChatEvent, type ChatMessage } from './chat';

export interface ChannelState {
  /// The channel this state describes: a page that switched channels shows
  /// nothing of the old one, even for the render before its effects run.
  channel: string;
  info: Channel | null;
  /// Why the details could not be had (no such channel, say).
  missing: string;
  /// `null` until the details or an event say.
  live: boolean | null;
  /// A live stream with no video: the page is a listening page. `null`
  /// while the stream is live and that is not known yet (the first
  /// milliseconds of a publish): a player waits rather than guess.
  audioOnly: boolean | null;
  nowPlaying: string;
  viewers: number;
  likes: number;
  slowMode: number;
  messages: ChatMessage[];
  /// What the chat refused or a moderator did to this reader.
  error: string;
}

export type ChannelAction =
  | ChatEvent
  /// Details fetched; `live` when a `live` event asked for them.
  | { type: 'info'; info: Channel; live?: boolean }
  | { type: 'missing'; error: string }
  /// The details never said whether the stream has video: play it as video.
  | { type: 'unknown_video' }
  | { type: 'reset'; channel: string };

export function initialChannelState(channel: string): ChannelState {
  return {
    channel, info: null, missing: '', live: null, audioOnly: false, nowPlaying: '',
    viewers: 0, likes: 0, slowMode: 0, messages: [], error: '',
  };
}

/// Messages kept by the reducer's default; older ones scroll away for good.
const CHAT_KEEP = 200;

/// Whether the details say all this server will say of a live stream's
/// video. The server the stream is on knows from the publisher's first
/// metadata or track, a few milliseconds after the publish starts (2 s of
/// sound alone, from a publisher that sends no metadata); a page that asked
/// in between asks again. Another server of the site (an edge that has not
/// pulled the stream yet: no `started_at`) cannot tell, and only a viewer
/// makes it pull: there the stream plays as video.
function videoKnown(c: Channel): boolean {
  return c.live && ((c.video !== null && c.video !== undefined) || !c.started_at);
}

/// Asking again until the details say whether the stream has video: every
/// 500 ms for the first 5 s, then every 2 s, for under a minute in all;
/// after that the stream is played as video (a publisher that sends
/// nothing). Every open page asks, so not faster.
const VIDEO_ASK_FAST = 10;
const VIDEO_ASK_TOTAL = 35;
function videoAskDelay(asked: number): number | null {
  if (asked >= VIDEO_ASK_TOTAL) return null;
  return asked < VIDEO_ASK_FAST ? 500 : 2000;
}

export function channelReducer(s: ChannelState, a: ChannelAction, keep = CHAT_KEEP): ChannelState {
  switch (a.type) {
    case 'reset': return initialChannelState(a.channel);
    case 'info': {
      const c = a.info;
      // An event that came first knows better than the details it raced.
      const live = a.live ?? s.live ?? c.live;
      return {
        ...s, info: c, missing: '', viewers: c.viewers, likes: c.likes, slowMode: c.slow_mode_secs,
        audioOnly: !live ? false : videoKnown(c) ? c.video === false : null,
        nowPlaying: c.now_playing || '', live,
      };
    }
    case 'unknown_video': return s.audioOnly === null ? { ...s, audioOnly: false } : s;
    case 'missing': return { ...s, missing: a.error };
    case 'chat':
      if (s.messages.some((m) => m.id === a.id)) return s;
      return { ...s, messages: [...s.messages, { id: a.id, user: a.user, text: a.text, at: a.at }].slice(-keep) };
    case 'delete': return { ...s, messages: s.messages.filter((m) => m.id !== a.id) };
    // Whether the new broadcast has video is for its details to say.
    case 'live': return { ...s, live: true, audioOnly: null };
    case 'offline': return { ...s, live: false, audioOnly: false, nowPlaying: '' };
    case 'now_playing': return { ...s, nowPlaying: a.title };
    case 'viewers': return { ...s, viewers: a.count };
    case 'likes': return { ...s, likes: a.count };
    case 'slow_mode': return { ...s, slowMode: a.seconds };
    case 'error': return { ...s, error: a.error };
    // Said to the room; the hook turns the reader's own into an error.
    case 'timeout': case 'ban': return s;
    default: return s;
  }
}

export interface ChannelView {
  state: ChannelState;
  dispatch: (a: ChannelAction) => void;
  connected: boolean;
  /// Sends a chat message; false when the socket is not open.
  send: (text: string) => boolean;
}

/// The channel's details and its chat events, in one reducer. `me` is the
/// signed-in username: a time-out or ban of that user becomes `error`.
/// Everything in flight for a channel is cancelled when it changes, and
/// nothing that answers late for it reaches the new one's state.
export function useChannel(channel: string, opts: { keep?: number; me?: string | null } = {}): ChannelView {
  const keep = opts.keep ?? CHAT_KEEP;
  const [state, dispatch] = useReducer(
    (s: ChannelState, a: ChannelAction) => channelReducer(s, a, keep), channel, initialChannelState);
  const [connected, setConnected] = useState(false);
  const socket = useRef<ChatSocket | null>(null);
  // The socket lives as long as the channel; it reads who is signed in from
  // here rather than reconnecting when that changes.
  const me = useRef(opts.me);
  me.current = opts.me;

  // A layout effect: it runs as soon as the page is rendered, where a plain
  // effect waits for the browser to paint; the player waits on the details.
  useLayoutEffect(() => {
    dispatch({ type: 'reset', channel });
    let loading: AbortController | null = null;
    let again: number | undefined;
    // Asks since the last `live` event, for whether the stream has video.
    let asked = 0;
    // `offline` events so far: a `live` event's ask that an `offline`
    // overtook says nothing of being live.
    let offlines = 0;
    const askAgain = (live?: boolean) => {
      const delay = videoAskDelay(asked++);
      if (delay === null) dispatch({ type: 'unknown_video' });
      else again = window.setTimeout(() => load(live), delay);
    };
    const load = (live?: boolean) => {
      loading?.abort();
      clearTimeout(again);
      const mine = new AbortController();
      loading = mine;
      const era = offlines;
      const reasking = asked > 0;
      get<Channel>(channelPath(channel), mine.signal).then(
        (info) => {
          if (mine.signal.aborted) return;
          const still = era === offlines ? live : undefined;
          dispatch({ type: 'info', info, live: still });
          // Live by the event or the details, and not yet known to have
          // video or not: ask again, so the page neither offers video to
          // a radio show nor takes a video stream for radio.
          if ((still || info.live) && !videoKnown(info)) askAgain(still);
        },
        (e) => {
          if (mine.signal.aborted) return;
          // A failed ask again is asked again: the page already has the
          // details it shows.
          if (reasking && era === offlines) askAgain(live);
          else if (!reasking) dispatch({ type: 'missing', error: errorText(e) });
        },
      );
    };
    load();
    const onEvent = (e: ChatEvent) => {
      // A new broadcast may have video or not: ask before playing it.
      if (e.type === 'live') {
        asked = 0;
        load(true);
      } else if (e.type === 'offline') {
        // Nothing more to learn about a stream that ended. A first ask
        // still under way goes on: the page needs its details.
        offlines += 1;
        clearTimeout(again);
        dispatch(e);
      } else if ((e.type === 'timeout' || e.type === 'ban') && e.user === me.current) {
        dispatch({ type: 'error', error: e.type === 'ban' ? 'A moderator banned you from this chat.'
          : `A moderator timed you out: you can chat again in ${e.seconds} s.` });
      } else dispatch(e);
    };
    const s = new ChatSocket(channel, onEvent, setConnected);
    socket.current = s;
    return () => {
      loading?.abort();
      clearTimeout(again);
      s.close();
      socket.current = null;
      setConnected(false);
    };
  }, [channel]);

  return {
    state: state.channel === channel ? state : initialChannelState(channel),
    dispatch,
    connected,
    send: (text) => socket.current?.send(text) ?? false,
  };
}

/// A GET that follows `path`: the answer for an old path is cancelled and
/// never returned for a new one. `null` until it answers (or if it fails).
export function useGet<T>(path: string): T | null {
  const [got, setGot] = useState<{ path: string; value: T } | null>(null);
  useLayoutEffect(() => {
    const ctl = new AbortController();
    get<T>(path, ctl.signal).then((value) => { if (!ctl.signal.aborted) setGot({ path, value }); }, () => {});
    return () => ctl.abort();
  }, [path]);
  return got?.path === path ? got.value : null;
}
