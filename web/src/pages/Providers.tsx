import { useEffect, useState } from 'preact/hooks';
import { api, errorText, get, type Me, type RegistrationPolicy } from '../api';
import { navigate } from '../router';

export interface Provider {
  id: string;
  name: string;
}

interface Linked {
  provider: string;
  name: string;
  email?: string | null;
  linked_at: number;
}

function useProviders(): Provider[] {
  const [list, setList] = useState<Provider[]>([]);
  useEffect(() => {
    get<{ providers: Provider[] }>('/api/auth/providers').then((r) => setList(r.providers), () => {});
  }, []);
  return list;
}

/// Values carried in the URL fragment (`#a=1&b=2`), which no request or
/// log sees.
function fragment(): URLSearchParams {
  return new URLSearchParams(location.hash.replace(/^#/, ''));
}

/// "Sign in with …" buttons: whole-page navigations to the server, which
/// sends the browser on to the provider.
export function ProviderButtons({ next }: { next: string }) {
  const providers = useProviders();
  const [error] = useState(() => fragment().get('oidc-error') ?? '');
  if (!providers.length && !error) return null;
  return (
    <div class="providers" data-testid="providers">
      {error && <p class="error" role="alert" data-testid="oidc-error">Sign-in failed: {error}</p>}
      {providers.map((p) => (
        <a key={p.id} class="button provider" data-provider={p.id}
          href={`/auth/oidc/${encodeURIComponent(p.id)}/start?next=${encodeURIComponent(next)}`}>
          Sign in with {p.name}
        </a>
      ))}
      {providers.length > 0 && <p class="muted or">or with a password</p>}
    </div>
  );
}

/// Where a provider's new user lands: they choose a username (also their
/// channel's name) and the account is made.
export function OidcSignup({ setMe }: { setMe: (m: Me | null) => void }) {
  const [link] = useState(fragment);
  const token = link.get('token') ?? '';
  const providers = useProviders();
  const provider = providers.find((p) => p.id === link.get('provider'));
  const [username, setUsername] = useState(link.get('name') ?? '');
  const [invite, setInvite] = useState('');
  const [policy, setPolicy] = useState<RegistrationPolicy | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    get<RegistrationPolicy>('/api/auth/registration').then(setPolicy, () => {});
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await api('POST', '/api/auth/providers/signup', {
        token, username, ...(invite ? { invite: invite.trim() } : {}),
      });
      setMe(await get<Me>('/api/me'));
      navigate('/dashboard', true);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  if (!token) {
    return (
      <section class="card narrow">
        <h1>Choose a username</h1>
        <p>This page is reached by signing in with a provider. <a href="/login">Sign in</a></p>
      </section>
    );
  }
  return (
    <section class="card narrow" data-testid="oidc-signup">
      <h1>Choose a username</h1>
      <p>
        You signed in with {provider?.name ?? 'your provider'} for the first time here. Pick the name
        people see in chat; it is also your channel's address.
      </p>
      <form onSubmit={submit}>
        <label for="username">Username</label>
        <input id="username" name="username" autoComplete="username" required value={username}
          pattern="[a-z0-9_\-]{1,32}" title="a-z, 0-9, _ and -, up to 32 characters"
          onInput={(e) => setUsername(e.currentTarget.value)} />
        {policy?.registration === 'invite' && (
          <>
            <label for="invite">Invite code</label>
            <input id="invite" name="invite" required autoComplete="off" value={invite}
              onInput={(e) => setInvite(e.currentTarget.value)} />
          </>
        )}
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={busy}>Create my account</button>
      </form>
    </section>
  );
}

/// The account page's list of linked providers, with link and unlink.
export function LinkedProviders() {
  const providers = useProviders();
  const [linked, setLinked] = useState<Linked[] | null>(null);
  const [error, setError] = useState('');
  const load = () =>
    get<{ identities: Linked[] }>('/api/me/identities').then((r) => setLinked(r.identities), (e) => setError(errorText(e)));
  useEffect(() => {
    load();
  }, []);
  if (!providers.length) return null;

  const link = async (id: string) => {
    setError('');
    try {
      const r = await api<{ url: string }>('POST', `/api/auth/providers/${encodeURIComponent(id)}/link`);
      location.assign(r.url);
    } catch (e) {
      setError(errorText(e));
    }
  };
  const unlink = async (id: string) => {
    setError('');
    try {
      await api('DELETE', `/api/me/identities/${encodeURIComponent(id)}`);
      await load();
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <section class="card" aria-labelledby="providers-h" data-testid="linked-providers">
      <h2 id="providers-h">Sign-in providers</h2>
      <ul class="plain">
        {providers.map((p) => {
          const l = linked?.find((x) => x.provider === p.id);
          return (
            <li key={p.id} data-provider={p.id}>
              <span>{p.name}</span>{' '}
              {l ? (
                <>
                  <span class="muted" data-testid="linked">linked{l.email ? ` (${l.email})` : ''}</span>{' '}
                  <button type="button" onClick={() => unlink(p.id)}>Unlink</button>
                </>
              ) : (
                <button type="button" onClick={() => link(p.id)} disabled={linked === null}>Link {p.name}</button>
              )}
            </li>
          );
        })}
      </ul>
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}
