import { useEffect, useState } from 'preact/hooks';
import { api, channelPath, errorText, fmtWhen, get, type Category } from '../api';

interface Invite {
  id: string;
  role: 'viewer' | 'broadcaster';
  created_by: string | null;
  created_at: string;
  expires_at: string;
  used_by: string | null;
  state: 'open' | 'used' | 'expired';
}

/// The admin console: every action here is checked again on the server.
export function Admin() {
  return (
    <>
      <h1>Admin</h1>
      <div class="dash">
        <Users />
        <LiveNow />
        <Categories />
        <Invites />
        <SiteBans />
        <Audit />
      </div>
    </>
  );
}

/// A section's calls: each clears the last word, runs, reloads the
/// section and says `done`; a refusal shows as the section's error.
function useCalls(reload: () => Promise<unknown>) {
  const [msg, setMsg] = useState('');
  const [error, setError] = useState('');
  const call = async <T,>(method: string, path: string, body?: unknown, done = ''): Promise<T | undefined> => {
    setMsg('');
    setError('');
    try {
      const r = await api<T>(method, path, body);
      setMsg(done);
      await reload();
      return r;
    } catch (err) {
      setError(errorText(err));
      return undefined;
    }
  };
  return { msg, error, setError, call };
}

/// What a section's last action came to.
function Outcome({ msg, error }: { msg?: string; error: string }) {
  return (
    <>
      {msg !== undefined && <p role="status">{msg}</p>}
      {error && <p class="error" role="alert">{error}</p>}
    </>
  );
}

type Role = 'admin' | 'moderator' | 'broadcaster' | 'viewer';
const ROLES: Role[] = ['viewer', 'broadcaster', 'moderator', 'admin'];

interface AdminUser {
  username: string;
  role: Role;
  email: string | null;
  email_verified: boolean;
  created_at: string;
  deleted: boolean;
  suspended: boolean;
}

/// Find accounts by the start of their name; set a role, mail a reset
/// link, delete (after a second click).
function Users() {
  const [q, setQ] = useState('');
  const [items, setItems] = useState<AdminUser[] | null>(null);
  const [deleting, setDeleting] = useState('');
  const load = () => api<{ items: AdminUser[] }>('GET', `/api/users?q=${encodeURIComponent(q.trim().toLowerCase())}&limit=50`)
    .then((r) => setItems(r.items), (e) => setError(errorText(e)));
  const { msg, error, setError, call } = useCalls(load);
  const search = (e?: Event) => {
    e?.preventDefault();
    setError('');
    return load();
  };
  useEffect(() => { void search(); }, []);
  const path = (u: AdminUser) => `/api/users/${encodeURIComponent(u.username)}`;
  return (
    <section class="card" aria-labelledby="users-h" data-testid="users">
      <h2 id="users-h">Users</h2>
      <form role="search" onSubmit={search} class="row">
        <label for="user-q" class="sr-only">Name starts with</label>
        <input id="user-q" placeholder="Name starts with…" value={q} maxLength={32} autoComplete="off"
          onInput={(e) => setQ(e.currentTarget.value)} />
        <button type="submit">Search</button>
      </form>
      {items === null ? <p class="muted">Loading…</p> : items.length === 0 ? <p class="muted">Nobody by that name.</p> : (
        <ul class="list">
          {items.map((u) => (
            <li key={u.username} class="row between wrap" data-user={u.username}>
              <span>
                <strong>{u.username}</strong>{u.deleted ? ' (deleted)' : u.suspended ? ' (suspended)' : ''}
                {u.email && <span class="muted"> · {u.email}{u.email_verified ? '' : ' (not verified)'}</span>}
              </span>
              {!u.deleted && (
                <span class="row wrap">
                  <label class="sr-only" for={`role-${u.username}`}>Role of {u.username}</label>
                  <select id={`role-${u.username}`} value={u.role} style={{ width: 'auto' }}
                    onChange={(e) => {
                      const role = e.currentTarget.value;
                      void call('PATCH', path(u), { role }, `${u.username} is now ${role}.`);
                    }}>
                    {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
                  </select>
                  {u.email && (
                    <button type="button" onClick={() => call('POST', `${path(u)}/password-reset`, undefined, `A reset link is on its way to ${u.username}.`)}>
                      Send reset link
                    </button>
                  )}
                  <button type="button" onClick={() => call('PATCH', path(u), { suspended: !u.suspended },
                    u.suspended ? `${u.username} may sign in again.` : `${u.username} is suspended.`)}>
                    {u.suspended ? 'Lift suspension' : 'Suspend'}
                  </button>
                  {deleting === u.username ? (
                    <button type="button" class="danger" onClick={() => { setDeleting(''); void call('DELETE', path(u), undefined, `${u.username} is deleted.`); }}>
                      Yes, delete {u.username}
                    </button>
                  ) : (
                    <button type="button" onClick={() => setDeleting(u.username)}>Delete…</button>
                  )}
                </span>
              )}
            </li>
          ))}
        </ul>
      )}
      <Outcome msg={msg} error={error} />
    </section>
  );
}

interface LiveChannel { name: string; title: string; viewers: number; started_at: string | null }

/// Channels live now: end one, or rotate its key (which also ends it and
/// keeps its encoder from coming back).
function LiveNow() {
  const [items, setItems] = useState<LiveChannel[] | null>(null);
  const load = () => api<{ items: LiveChannel[] }>('GET', '/api/channels?live=true&limit=100')
    .then((r) => setItems(r.items), (e) => setError(errorText(e)));
  const { msg, error, setError, call } = useCalls(load);
  useEffect(() => { void load(); }, []);
  return (
    <section class="card" aria-labelledby="live-h" data-testid="live-now">
      <div class="row between">
        <h2 id="live-h">Live now</h2>
        <button type="button" onClick={() => load()}>Refresh</button>
      </div>
      {items === null ? <p class="muted">Loading…</p> : items.length === 0 ? <p class="muted">Nobody is live.</p> : (
        <ul class="list">
          {items.map((c) => (
            <li key={c.name} class="row between wrap" data-channel={c.name}>
              <span><strong>{c.name}</strong> {c.title} <span class="muted">· {c.viewers} watching{c.started_at ? ` · since ${fmtWhen(c.started_at)}` : ''}</span></span>
              <span class="row wrap">
                <button type="button" onClick={() => call('DELETE', channelPath(c.name, '/live'), undefined, `${c.name}'s stream ended.`)}>End</button>
                <button type="button" onClick={() => call('POST', channelPath(c.name, '/key'), undefined, `${c.name}'s key is replaced; the stream ended.`)}>Rotate key</button>
              </span>
            </li>
          ))}
        </ul>
      )}
      <Outcome msg={msg} error={error} />
    </section>
  );
}

/// Create, rename and delete categories.
function Categories() {
  const [items, setItems] = useState<Category[] | null>(null);
  const [slug, setSlug] = useState('');
  const [name, setName] = useState('');
  const [names, setNames] = useState<Record<string, string>>({});
  const load = () => api<{ items: Category[] }>('GET', '/api/categories')
    .then((r) => { setItems(r.items); setNames({}); }, (e) => setError(errorText(e)));
  const { error, setError, call } = useCalls(load);
  useEffect(() => { void load(); }, []);
  const put = (s: string, n: string) => call('PUT', `/api/categories/${encodeURIComponent(s)}`, { name: n });
  const remove = (s: string) => call('DELETE', `/api/categories/${encodeURIComponent(s)}`);
  return (
    <section class="card" aria-labelledby="cat-h" data-testid="categories">
      <h2 id="cat-h">Categories</h2>
      <form onSubmit={(e) => { e.preventDefault(); void put(slug.trim(), name.trim()).then(() => { setSlug(''); setName(''); }); }}>
        <label for="cat-slug">Slug (a-z, 0-9, _ and -)</label>
        <input id="cat-slug" required pattern="[a-z0-9][a-z0-9_\-]{0,31}" value={slug} onInput={(e) => setSlug(e.currentTarget.value)} />
        <label for="cat-name">Name</label>
        <input id="cat-name" required maxLength={64} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <div class="row"><button type="submit">Add category</button></div>
      </form>
      {items && (
        <ul class="list">
          {items.map((c) => (
            <li key={c.slug} class="row between wrap" data-category={c.slug}>
              <label class="sr-only" for={`cat-${c.slug}`}>Name of {c.slug}</label>
              <input id={`cat-${c.slug}`} style={{ width: 'auto', flex: 1 }} maxLength={64} value={names[c.slug] ?? c.name}
                onInput={(e) => { const v = e.currentTarget.value; setNames((n) => ({ ...n, [c.slug]: v })); }} />
              <span class="row">
                <button type="button" disabled={(names[c.slug] ?? c.name) === c.name} onClick={() => put(c.slug, names[c.slug] ?? c.name)}>Rename</button>
                <button type="button" onClick={() => remove(c.slug)}>Delete</button>
              </span>
            </li>
          ))}
        </ul>
      )}
      <Outcome error={error} />
    </section>
  );
}

interface SiteBan { username: string; until: string | null }

/// Chat bans that reach every channel (the user's own too).
function SiteBans() {
  const [items, setItems] = useState<SiteBan[] | null>(null);
  const [username, setUsername] = useState('');
  const [seconds, setSeconds] = useState('');
  const load = () => api<{ items: SiteBan[] }>('GET', '/api/bans').then((r) => setItems(r.items), (e) => setError(errorText(e)));
  const { msg, error, setError, call } = useCalls(load);
  useEffect(() => { void load(); }, []);
  const ban = async (e: Event) => {
    e.preventDefault();
    const name = username.trim().toLowerCase();
    const body = seconds ? { username: name, seconds: Number(seconds) } : { username: name };
    const done = await call('POST', '/api/bans', body, seconds ? `${name} is timed out everywhere.` : `${name} is banned everywhere.`);
    if (done !== undefined) setUsername('');
  };
  return (
    <section class="card" aria-labelledby="bans-h" data-testid="site-bans">
      <h2 id="bans-h">Site bans</h2>
      <form onSubmit={ban}>
        <label for="ban-user">Username</label>
        <input id="ban-user" required maxLength={32} autoComplete="off" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        <label for="ban-len">For</label>
        <select id="ban-len" value={seconds} onChange={(e) => setSeconds(e.currentTarget.value)}>
          <option value="">until lifted</option>
          <option value="3600">1 hour</option>
          <option value="86400">1 day</option>
          <option value="604800">7 days</option>
        </select>
        <div class="row"><button type="submit">Ban from every chat</button></div>
      </form>
      {items && items.length > 0 && (
        <ul class="list">
          {items.map((b) => (
            <li key={b.username} class="row between wrap" data-banned={b.username}>
              <span><strong>{b.username}</strong> <span class="muted">{b.until ? `until ${fmtWhen(b.until)}` : 'until lifted'}</span></span>
              <button type="button" onClick={() => call('DELETE', `/api/bans/${encodeURIComponent(b.username)}`, undefined, `${b.username} may chat again.`)}>Lift</button>
            </li>
          ))}
        </ul>
      )}
      <Outcome msg={msg} error={error} />
    </section>
  );
}

interface AuditEntry { id: string; at: string; actor: string; action: string; target: string; detail: string }

/// What moderators and admins did, newest first.
function Audit() {
  const [items, setItems] = useState<AuditEntry[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState('');
  const load = async (cursor: string | null) => {
    setError('');
    try {
      const r = await api<{ items: AuditEntry[]; next_cursor: string | null }>(
        'GET', `/api/audit?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      setItems((old) => (cursor ? [...old, ...r.items] : r.items));
      setNext(r.next_cursor);
      setLoaded(true);
    } catch (err) { setError(errorText(err)); }
  };
  useEffect(() => { void load(null); }, []);
  return (
    <section class="card" aria-labelledby="audit-h" data-testid="audit">
      <div class="row between">
        <h2 id="audit-h">Audit log</h2>
        <button type="button" onClick={() => load(null)}>Refresh</button>
      </div>
      {!loaded ? <p class="muted">Loading…</p> : items.length === 0 ? <p class="muted">Nothing yet.</p> : (
        <ul class="list">
          {items.map((e) => (
            <li key={e.id}>
              <span class="muted">{fmtWhen(e.at)}</span> <strong>{e.actor}</strong> <span class="mono">{e.action}</span> {e.target}
              {e.detail && <span class="muted"> ({e.detail})</span>}
            </li>
          ))}
        </ul>
      )}
      {next && <button type="button" onClick={() => load(next)}>Older</button>}
      <Outcome error={error} />
    </section>
  );
}

/// Single-use links to register (`--registration invite`; elsewhere they
/// can still grant the broadcaster role).
function Invites() {
  const [items, setItems] = useState<Invite[] | null>(null);
  const [broadcaster, setBroadcaster] = useState(false);
  const [hours, setHours] = useState('168');
  const [link, setLink] = useState('');
  const [copied, setCopied] = useState(false);
  const load = () => get<{ items: Invite[] }>('/api/invites').then((r) => setItems(r.items), (e) => setError(errorText(e)));
  const { error, setError, call } = useCalls(load);
  useEffect(() => { void load(); }, []);
  const make = async (e: Event) => {
    e.preventDefault();
    setCopied(false);
    const r = await call<{ link: string }>('POST', '/api/invites', { broadcaster, hours: Number(hours) });
    // A path when the server has no public URL: made absolute on the
    // origin this page came from.
    if (r) setLink(new URL(r.link, location.origin).href);
  };
  const withdraw = (id: string) => call('DELETE', `/api/invites/${encodeURIComponent(id)}`);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(link);
      setCopied(true);
    } catch {
      // No clipboard permission: the link is on the page to select.
    }
  };
  return (
    <section class="card" aria-labelledby="invites-h" data-testid="invites">
      <h2 id="invites-h">Invites</h2>
      <form onSubmit={make}>
        <label class="check">
          <input type="checkbox" checked={broadcaster} onChange={(e) => setBroadcaster(e.currentTarget.checked)} />
          May stream (broadcaster)
        </label>
        <label for="invite-hours">Expires after</label>
        <select id="invite-hours" value={hours} onChange={(e) => setHours(e.currentTarget.value)}>
          <option value="24">1 day</option>
          <option value="168">7 days</option>
          <option value="720">30 days</option>
        </select>
        <div class="row">
          <button type="submit">Make an invite link</button>
        </div>
      </form>
      {link && (
        <div role="group" aria-label="New invite link">
          <p>Send this link to one person; it works once. It is shown only now.</p>
          <div class="row">
            <input class="mono" readOnly value={link} aria-label="Invite link" data-testid="invite-link" />
            <button type="button" onClick={copy}>{copied ? 'Copied' : 'Copy'}</button>
          </div>
        </div>
      )}
      {items === null ? <p class="muted">Loading…</p> : items.length === 0 ? <p class="muted">No invites yet.</p> : (
        <ul class="list">
          {items.map((i) => (
            <li key={i.id} class="row between wrap">
              <span>
                {i.role === 'broadcaster' ? 'Broadcaster' : 'Viewer'}, made {fmtWhen(i.created_at)}{i.created_by ? ` by ${i.created_by}` : ''}:{' '}
                {i.state === 'used' ? `used by ${i.used_by}` : i.state === 'expired' ? 'expired' : `open until ${fmtWhen(i.expires_at)}`}
              </span>
              {i.state === 'open' && <button type="button" onClick={() => withdraw(i.id)}>Withdraw</button>}
            </li>
          ))}
        </ul>
      )}
      <Outcome error={error} />
    </section>
  );
}
