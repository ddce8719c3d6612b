import { useEffect, useState } from 'preact/hooks';
import { avatarUrl, errorText, fmtWhen, get, type Category, type Channel, type Scheduled } from '../api';
import { Link } from '../router';

interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/// How often the directory refreshes live state and viewer counts.
const REFRESH_MS = 10_000;

export function Directory() {
  const [category, setCategory] = useState(() => new URLSearchParams(location.search).get('category') || '');
  const [categories, setCategories] = useState<Category[]>([]);
  const [live, setLive] = useState<Channel[] | null>(null);
  const [upcoming, setUpcoming] = useState<Scheduled[]>([]);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);

  useEffect(() => {
    get<{ items: Category[] }>('/api/categories').then((r) => setCategories(r.items), () => {});
    const t = setInterval(() => setTick((n) => n + 1), REFRESH_MS);
    return () => clearInterval(t);
  }, []);

  useEffect(() => {
    const q = new URLSearchParams({ live: 'true', limit: '100' });
    if (category) q.set('category', category);
    get<Page<Channel>>(`/api/channels?${q}`).then(
      (r) => { setLive(r.items); setError(''); },
      (e) => setError(errorText(e)),
    );
    // Upcoming broadcasts: every channel's next one, soonest first.
    const all = new URLSearchParams({ limit: '100' });
    if (category) all.set('category', category);
    get<Page<Channel>>(`/api/channels?${all}`).then((r) => {
      const next = r.items.map((c) => c.next_broadcast).filter((s): s is Scheduled => !!s);
      next.sort((a, b) => a.starts_at.localeCompare(b.starts_at));
      setUpcoming(next.slice(0, 12));
    }, () => {});
  }, [category, tick]);

  const pick = (slug: string) => {
    setCategory(slug);
    history.replaceState(null, '', slug ? `/?category=${encodeURIComponent(slug)}` : '/');
  };
  const catName = (slug: string | null) => categories.find((c) => c.slug === slug)?.name || slug;

  return (
    <>
      <div class="row between">
        <h1>Live now</h1>
        <div class="field-inline">
          <label for="category">Category</label>
          <select id="category" value={category} onChange={(e) => pick(e.currentTarget.value)}>
            <option value="">All categories</option>
            {categories.map((c) => <option key={c.slug} value={c.slug}>{c.name}</option>)}
          </select>
        </div>
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      {live === null ? (
        <p class="muted">Loading…</p>
      ) : live.length === 0 ? (
        <p class="muted" data-testid="no-live">Nobody is live{category ? ' in this category' : ''} right now.</p>
      ) : (
        <ul class="grid" aria-label="Live channels">
          {live.map((c) => (
            <li key={c.name} class="tile" data-channel={c.name}>
              <Link href={`/c/${c.name}`} class="tile-link">
                <div class="thumb">
                  {/* The thumbnail changes every few seconds; tick busts the cache. */}
                  {c.video === false ? (
                    // A radio show has no picture to take a thumbnail from.
                    <span class="cover-note" aria-hidden="true">♪</span>
                  ) : (
                    <img src={`/api/channels/${encodeURIComponent(c.name)}/thumbnail.jpg?t=${tick}`} alt="" loading="lazy"
                      width={320} height={180} onError={(e) => { e.currentTarget.style.visibility = 'hidden'; }} />
                  )}
                  <span class="badge live">LIVE</span>
                  <span class="badge viewers" aria-label={`${c.viewers} watching`}>{c.viewers} watching</span>
                </div>
                <div class="tile-row">
                  <img class="avatar" src={avatarUrl(c.owner || c.name)} alt="" width={36} height={36} loading="lazy" />
                  <div class="tile-text">
                    <strong class="title">{c.title || c.name}</strong>
                    <span class="muted">{c.name}{c.category ? ` · ${catName(c.category)}` : ''}</span>
                  </div>
                </div>
              </Link>
            </li>
          ))}
        </ul>
      )}
      <h2>Upcoming</h2>
      {upcoming.length === 0 ? (
        <p class="muted">No broadcasts are scheduled.</p>
      ) : (
        <ul class="list" aria-label="Upcoming broadcasts">
          {upcoming.map((s) => (
            <li key={s.id}>
              <time dateTime={s.starts_at}>{fmtWhen(s.starts_at)}</time>{' '}
              <Link href={`/c/${s.channel}`}>{s.channel}</Link>: {s.title || 'Untitled broadcast'}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
