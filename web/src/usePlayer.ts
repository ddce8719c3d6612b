// The live player of a page (watch page, embed): one Player per channel,
// started while `play` says so. WebRTC with LL-HLS fallback: see player.ts.
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { Player, type Mode, type PlayerState } from './player';

declare global {
  interface Window {
    /// The live player, for the browser tests' getStats() (tests/e2e).
    __onairPlayer?: Player;
  }
}

export interface PlayerWish {
  /// Play (true), stop (false), or leave the player alone (null: not known
  /// yet, or the element is busy with something else, like a replay).
  play: boolean | null;
  mode?: Mode;
  /// No video: ask for sound alone. `null` while not known: a player that
  /// should play waits, since what it offers depends on it.
  audioOnly: boolean | null;
}

/// `setup` runs once per player, before it starts (page-specific wiring:
/// a level meter, muted starts); what it returns runs when the player goes.
export function usePlayer(channel: string, wish: PlayerWish, setup?: (p: Player, v: HTMLVideoElement) => (() => void) | void) {
  const video = useRef<HTMLVideoElement>(null);
  const player = useRef<Player | null>(null);
  const [ps, setPs] = useState<PlayerState | null>(null);
  const setupNow = useRef(setup);
  setupNow.current = setup;

  // Layout effects, here and for starting: a plain effect waits for the
  // browser to paint, twice on the way to the first sound.
  useLayoutEffect(() => {
    const v = video.current!;
    const p = new Player(v, { whep: `/whep/${encodeURIComponent(channel)}`, hls: `/hls/${encodeURIComponent(channel)}/index.m3u8` }, setPs);
    player.current = p;
    window.__onairPlayer = p;
    const undo = setupNow.current?.(p, v);
    // Leaving the page ends the WHEP session at once (a keepalive DELETE)
    // instead of leaving the server to time it out.
    const leave = () => p.stop();
    window.addEventListener('pagehide', leave);
    return () => {
      window.removeEventListener('pagehide', leave);
      p.stop();
      undo?.();
      player.current = null;
      if (window.__onairPlayer === p) delete window.__onairPlayer;
    };
  }, [channel]);

  // The player follows the channel: it starts when the channel goes live
  // (the chat tells, no reload needed) and stops when it ends.
  useLayoutEffect(() => {
    const p = player.current;
    if (!p || wish.play === null || (wish.play && wish.audioOnly === null)) return;
    p.audioOnly = wish.audioOnly === true;
    if (wish.play) p.start(wish.mode);
    else p.stop();
  }, [channel, wish.play, wish.mode, wish.audioOnly]);

  return { video, player, ps };
}
