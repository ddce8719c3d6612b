// Dashboard sections that manage lists: recordings and the schedule.
import { useEffect, useState } from 'preact/hooks';
import { api, channelPath, errorText, fmtDuration, fmtWhen, get, type Broadcast, type Scheduled } from '../api';

export function Recordings({ channel }: { channel: string }) {
  const [items, setItems] = useState<Broadcast[]>([]);
  const [error, setError] = useState('');
  const load = () => get<{ items: Broadcast[] }>(channelPath(channel, '/broadcasts?limit=50')).then((r) => setItems(r.items), (e) => setError(errorText(e)));
  useEffect(() => { void load(); }, [channel]);
  const edit = async (b: Broadcast, patch: { title?: string; published?: boolean }) => {
    setError('');
    try {
      const meta = await api<{ published: boolean; title: string | null }>('PATCH', channelPath(channel, `/broadcasts/${b.id}`), patch);
      setItems((list) => list.map((x) => (x.id === b.id ? { ...x, title: meta.title, hidden: !meta.published } : x)));
    } catch (e) {
      setError(errorText(e));
    }
  };
  const remove = async (b: Broadcast) => {
    const what = `${b.title || 'Untitled broadcast'} (${fmtWhen(b.started_at)})`;
    if (!window.confirm(`Delete "${what}" and its recording? This cannot be undone.`)) return;
    setError('');
    try {
      await api<void>('DELETE', channelPath(channel, `/broadcasts/${b.id}`));
      setItems((list) => list.filter((x) => x.id !== b.id));
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <section class="card wide" aria-labelledby="rec-h">
      <h2 id="rec-h">Recordings</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {items.length === 0 ? <p class="muted">No broadcasts yet.</p> : (
        <ul class="list">
          {items.map((b) => (
            <li key={b.id} class="row wrap">
              <span class="grow">
                <TitleEdit value={b.title || ''} label={`Title of the broadcast from ${fmtWhen(b.started_at)}`} onSave={(title) => edit(b, { title })} />
                <span class="muted"> {fmtWhen(b.started_at)} · {b.live ? 'live now' : fmtDuration(b.duration_ms)}{b.recorded ? '' : ' · not recorded'}</span>
                {' '}<span class={`badge${b.hidden ? ' hidden' : ''}`} data-testid="visibility">{b.hidden ? 'hidden' : 'published'}</span>
              </span>
              <button type="button" onClick={() => edit(b, { published: !!b.hidden })}
                aria-label={`${b.hidden ? 'Publish' : 'Hide'} the broadcast from ${fmtWhen(b.started_at)}`}>{b.hidden ? 'Publish' : 'Hide'}</button>
              {b.download && (
                <a class="button" href={b.download} download
                  aria-label={`Download the broadcast from ${fmtWhen(b.started_at)}`}>Download</a>
              )}
              {!b.live && (
                <button type="button" class="danger" onClick={() => void remove(b)}
                  aria-label={`Delete the broadcast from ${fmtWhen(b.started_at)}`}>Delete</button>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function TitleEdit({ value, label, onSave }: { value: string; label: string; onSave: (v: string) => void }) {
  const [v, setV] = useState(value);
  useEffect(() => setV(value), [value]);
  return (
    <form class="inline" onSubmit={(e) => { e.preventDefault(); onSave(v); }}>
      <input aria-label={label} value={v} maxLength={140} placeholder="Untitled broadcast" onInput={(e) => setV(e.currentTarget.value)} />
      <button type="submit" class="tiny">Save</button>
    </form>
  );
}

/// `<input type="datetime-local">` speaks local time without a zone.
const toLocalInput = (iso: string) => {
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
};
const fromLocalInput = (v: string) => new Date(v).toISOString();

export function Schedule({ channel }: { channel: string }) {
  const [items, setItems] = useState<Scheduled[]>([]);
  const [editing, setEditing] = useState<string | null>(null);
  const [title, setTitle] = useState('');
  const [starts, setStarts] = useState('');
  const [ends, setEnds] = useState('');
  const [error, setError] = useState('');
  const load = () => get<{ items: Scheduled[] }>(channelPath(channel, '/schedule')).then((r) => setItems(r.items), (e) => setError(errorText(e)));
  useEffect(() => { void load(); }, [channel]);
  const reset = () => { setEditing(null); setTitle(''); setStarts(''); setEnds(''); };
  const save = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const body = { title, starts_at: fromLocalInput(starts), ends_at: fromLocalInput(ends) };
      if (editing === null) await api('POST', channelPath(channel, '/schedule'), body);
      else await api('PATCH', channelPath(channel, `/schedule/${editing}`), body);
      reset();
      await load();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const remove = async (id: string) => {
    try { await api('DELETE', channelPath(channel, `/schedule/${id}`)); await load(); } catch (e) { setError(errorText(e)); }
  };
  return (
    <section class="card wide" aria-labelledby="sched-h">
      <h2 id="sched-h">Schedule</h2>
      {items.length === 0 ? <p class="muted">Nothing scheduled.</p> : (
        <ul class="list">
          {items.map((s) => (
            <li key={s.id} class="row wrap">
              <span class="grow"><time dateTime={s.starts_at}>{fmtWhen(s.starts_at)}</time> – {s.title || 'Untitled'}</span>
              <button type="button" onClick={() => { setEditing(s.id); setTitle(s.title); setStarts(toLocalInput(s.starts_at)); setEnds(toLocalInput(s.ends_at)); }}>Edit</button>
              <button type="button" class="danger" onClick={() => remove(s.id)}>Delete</button>
            </li>
          ))}
        </ul>
      )}
      <form onSubmit={save} class="grid-form">
        <h3>{editing === null ? 'Announce a broadcast' : 'Edit the broadcast'}</h3>
        <label for="s-title">Title</label>
        <input id="s-title" maxLength={140} required value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
        <label for="s-start">Starts</label>
        <input id="s-start" type="datetime-local" required value={starts} onInput={(e) => setStarts(e.currentTarget.value)} />
        <label for="s-end">Ends</label>
        <input id="s-end" type="datetime-local" required value={ends} onInput={(e) => setEnds(e.currentTarget.value)} />
        <div class="row">
          <button type="submit" class="primary">{editing === null ? 'Add' : 'Save'}</button>
          {editing !== null && <button type="button" onClick={reset}>Cancel</button>}
        </div>
        {error && <p class="error" role="alert">{error}</p>}
      </form>
    </section>
  );
}
