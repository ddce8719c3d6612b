import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ComponentType } from 'preact';
import { api, channelPath, get, prefetch, type Me } from './api';
import { getIceServers } from './player';
import { Link, navigate, usePath } from './router';
import { Directory } from './pages/Directory';
import { Watch } from './pages/Watch';
import { Embed, embedOptions } from './pages/Embed';
import { ForgotPassword, Login, Register, ResetPassword, VerifyEmail } from './pages/Auth';
import { OidcSignup } from './pages/Providers';
import './style.css';

export interface PageProps {
  me: Me | null;
  setMe: (m: Me | null) => void;
}

// The dashboard (forms, health, WHIP publishing) is its own chunk, so the
// directory and watch pages never download it.
type DashProps = PageProps & { me: Me };
let Dashboard: ComponentType<DashProps> | null = null;
function LazyDashboard(props: DashProps) {
  const [, setLoaded] = useState(0);
  useEffect(() => {
    if (!Dashboard) import('./pages/Dashboard').then((m) => { Dashboard = m.Dashboard; setLoaded(1); });
  }, []);
  return Dashboard ? <Dashboard {...props} /> : <p class="muted">Loading…</p>;
}

// The admin console: its own chunk, for admins only.
let Admin: ComponentType | null = null;
function LazyAdmin() {
  const [, setLoaded] = useState(0);
  useEffect(() => {
    if (!Admin) import('./pages/Admin').then((m) => { Admin = m.Admin; setLoaded(1); });
  }, []);
  return Admin ? <Admin /> : <p class="muted">Loading…</p>;
}

// The API reference is its own chunk too: only its readers download it.
let ApiDocs: ComponentType | null = null;
function LazyApiDocs() {
  const [, setLoaded] = useState(0);
  useEffect(() => {
    if (!ApiDocs) import('./pages/ApiDocs').then((m) => { ApiDocs = m.ApiDocs; setLoaded(1); });
  }, []);
  return ApiDocs ? <ApiDocs /> : <p class="muted">Loading…</p>;
}

function App() {
  const path = usePath();
  const [me, setMe] = useState<Me | null>(null);
  const [checked, setChecked] = useState(false);
  useEffect(() => {
    get<Me>('/api/me').then(setMe, () => setMe(null)).finally(() => setChecked(true));
  }, []);

  const logout = async () => {
    await api('POST', '/api/auth/logout').catch(() => {});
    setMe(null);
    navigate('/');
  };

  let page;
  const watch = path.match(/^\/c\/([^/]+)$/);
  if (path === '/') page = <Directory />;
  else if (watch) page = <Watch channel={decodeURIComponent(watch[1])} me={me} />;
  else if (path === '/login') page = <Login setMe={setMe} />;
  else if (path === '/register') page = <Register setMe={setMe} />;
  else if (path === '/forgot-password') page = <ForgotPassword />;
  else if (path === '/reset-password') page = <ResetPassword />;
  else if (path === '/verify-email') page = <VerifyEmail />;
  else if (path === '/oidc/signup') page = <OidcSignup setMe={setMe} />;
  else if (path === '/api/docs') page = <LazyApiDocs />;
  else if (path === '/dashboard') {
    page = !checked ? <p class="muted">Loading…</p> : me ? <LazyDashboard me={me} setMe={setMe} /> : <Login setMe={setMe} next="/dashboard" />;
  } else if (path === '/admin') {
    page = !checked ? <p class="muted">Loading…</p>
      : !me ? <Login setMe={setMe} next="/admin" />
      : me.user.role === 'admin' ? <LazyAdmin />
      : <p>Admins only.</p>;
  } else page = <p>No such page. <Link href="/">Back to the directory</Link></p>;

  useEffect(() => {
    document.title = watch ? `${decodeURIComponent(watch[1])} · onair`
      : path === '/dashboard' ? 'Dashboard · onair'
      : path === '/admin' ? 'Admin · onair'
      : path === '/api/docs' ? 'API · onair'
      : 'onair';
  }, [path]);

  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <Link href="/" class="brand" aria-label="onair home">
          <span class="dot" aria-hidden="true" /> onair
        </Link>
        <nav aria-label="Account">
          {me ? (
            <>
              <Link href={`/c/${me.user.username}`}>My channel</Link>
              <Link href="/dashboard">Dashboard</Link>
              {me.user.role === 'admin' && <Link href="/admin">Admin</Link>}
              <button type="button" class="link" onClick={logout}>Sign out ({me.user.username})</button>
            </>
          ) : (
            <>
              <Link href="/login">Sign in</Link>
              <Link href="/register" class="button">Register</Link>
            </>
          )}
        </nav>
      </header>
      <main id="main" tabIndex={-1}>{page}</main>
      <footer class="foot">
        <Link href="/api/docs">API</Link>
      </footer>
    </>
  );
}

// A watch page (or an embed) starts playing as soon as it knows the
// channel: ask for it (and for the ICE servers) while the page renders.
const watching = location.pathname.match(/^\/(?:c|embed)\/([^/]+)$/);
if (watching) {
  try {
    prefetch(channelPath(decodeURIComponent(watching[1])));
    void getIceServers();
  } catch {
    // A malformed name: the page itself says there is no such channel.
  }
}

// /embed/NAME is the player alone, in other sites' iframes: no header,
// footer or account (a third-party frame has no session cookie).
const embedded = location.pathname.match(/^\/embed\/([^/]+)$/);
const root = document.getElementById('app')!;
if (embedded) {
  let channel = embedded[1];
  try { channel = decodeURIComponent(channel); } catch { /* the page says no such channel */ }
  document.title = `${channel} · onair`;
  render(<Embed channel={channel} options={embedOptions(location.search)} />, root);
} else {
  render(<App />, root);
}
