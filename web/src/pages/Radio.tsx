// The listening page's card: what an audio-only channel (a radio show)
// shows instead of a picture.

/// The bar spans this many dB below full scale: a quiet passage still moves it.
const METER_FLOOR_DB = 60;

export function RadioCard(props: {
  channel: string; title: string; nowPlaying: string; listeners: number; level: number;
  paused: boolean; playing: boolean; onToggle: () => void;
}) {
  const { channel, title, nowPlaying, listeners, level, paused, playing } = props;
  const db = level > 0 ? 20 * Math.log10(level) : -Infinity;
  const pct = Math.max(0, Math.min(100, ((db + METER_FLOOR_DB) / METER_FLOOR_DB) * 100));
  return (
    <div class="radio" data-testid="radio">
      <div class="cover" aria-hidden="true">{(title || channel).trim().charAt(0).toUpperCase() || '♪'}</div>
      <div class="radio-text">
        <strong class="radio-title">{title || channel}</strong>
        <p class="now-playing" aria-live="polite" data-testid="now-playing">
          {nowPlaying ? <>Now playing: <span class="song">{nowPlaying}</span></> : 'Live radio'}
        </p>
        <p class="muted" data-testid="listeners">{listeners} listening</p>
        <div class="meter" role="meter" aria-label="Sound level" aria-valuemin={0} aria-valuemax={100}
          aria-valuenow={Math.round(pct)} data-testid="level" data-level={level.toFixed(4)}>
          <span style={{ width: `${pct}%` }} />
        </div>
        <button type="button" class="primary play" onClick={props.onToggle} disabled={!playing}
          aria-label={paused ? 'Play' : 'Pause'}>{paused ? '▶ Play' : '❚❚ Pause'}</button>
      </div>
    </div>
  );
}
