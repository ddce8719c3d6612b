import { useEffect, useState } from 'preact/hooks';
import { api, errorText, fmtWhen, get } from '../api';

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
        <Invites />
        <Audit />
      </div>
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
}

/// Find accounts by the start of their name; set a role, mail a reset
/// link, delete (after a second click).
function Users() {
  const [q, setQ] = useState('');
  const [items, setItems] = useState<AdminUser[] | null>(null);
  const [msg, setMsg] = useState('');
  const [error, setError] = useState('');
  const [deleting, setDeleting] = useState('');
  const search = async (e?: Event) => {
    e?.preventDefault();
    setError('');
    try {
      const r = await api<{ items: AdminUser[] }>('GET', `/api/users?q=${encodeURIComponent(q.trim().toLowerCase())}&limit=50`);
      setItems(r.items);
    } catch (err) { setError(errorText(err)); }
  };
  useEffect(() => { void search(); }, []);
  const act = async (what: () => Promise<unknown>, done: string) => {
    setMsg('');
    setError('');
    try {
      await what();
      setMsg(done);
      await search();
    } catch (err) { setError(errorText(err)); }
  };
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
                <strong>{u.username}</strong>{u.deleted ? ' (deleted)' : ''}
                {u.email && <span class="muted"> · {u.email}{u.email_verified ? '' : ' (not verified)'}</span>}
              </span>
              {!u.deleted && (
                <span class="row wrap">
                  <label class="sr-only" for={`role-${u.username}`}>Role of {u.username}</label>
                  <select id={`role-${u.username}`} value={u.role} style={{ width: 'auto' }}
                    onChange={(e) => {
                      const role = e.currentTarget.value;
                      void act(() => api('PATCH', path(u), { role }), `${u.username} is now ${role}.`);
                    }}>
                    {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
                  </select>
                  {u.email && (
                    <button type="button" onClick={() => act(() => api('POST', `${path(u)}/password-reset`), `A reset link is on its way to ${u.username}.`)}>
                      Send reset link
                    </button>
                  )}
                  {deleting === u.username ? (
                    <button type="button" class="danger" onClick={() => { setDeleting(''); void act(() => api('DELETE', path(u)), `${u.username} is deleted.`); }}>
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
      <p role="status">{msg}</p>
      {error && <p class="error" role="alert">{error}</p>}
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
      {error && <p class="error" role="alert">{error}</p>}
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
  const [error, setError] = useState('');
  const load = () => get<{ items: Invite[] }>('/api/invites').then((r) => setItems(r.items), (e) => setError(errorText(e)));
  useEffect(() => { void load(); }, []);
  const make = async (e: Event) => {
    e.preventDefault();
    setError('');
    setCopied(false);
    try {
      const r = await api<{ link: string }>('POST', '/api/invites', { broadcaster, hours: Number(hours) });
      // A path when the server has no public URL: made absolute on the
      // origin this page came from.
      setLink(new URL(r.link, location.origin).href);
      await load();
    } catch (err) { setError(errorText(err)); }
  };
  const withdraw = async (id: string) => {
    setError('');
    try {
      await api('DELETE', `/api/invites/${encodeURIComponent(id)}`);
      await load();
    } catch (err) { setError(errorText(err)); }
  };
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
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}
