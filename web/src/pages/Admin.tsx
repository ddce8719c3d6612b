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
        <Invites />
      </div>
    </>
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
