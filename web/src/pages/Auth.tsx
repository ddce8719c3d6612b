import { useState } from 'preact/hooks';
import { api, errorText, get, type Me } from '../api';
import { Link, navigate } from '../router';

interface Props {
  setMe: (m: Me | null) => void;
  next?: string;
}

function nextFromQuery(fallback: string): string {
  const n = new URLSearchParams(location.search).get('next');
  // Only paths on this site: never an open redirect.
  return n && n.startsWith('/') && !n.startsWith('//') ? n : fallback;
}

function AuthForm({ mode, setMe, next }: Props & { mode: 'login' | 'register' }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [email, setEmail] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      if (mode === 'register') {
        await api('POST', '/api/auth/register', email ? { username, password, email } : { username, password });
      }
      await api('POST', '/api/auth/login', { username, password });
      setMe(await get<Me>('/api/me'));
      navigate(next || nextFromQuery(mode === 'register' ? '/dashboard' : '/'), true);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const title = mode === 'login' ? 'Sign in' : 'Create an account';
  return (
    <section class="card narrow">
      <h1>{title}</h1>
      <form onSubmit={submit}>
        <label for="username">Username</label>
        <input id="username" name="username" autoComplete="username" required value={username}
          pattern={mode === 'register' ? '[a-z0-9_\\-]{1,32}' : undefined}
          title={mode === 'register' ? 'a-z, 0-9, _ and -, up to 32 characters; it is also your channel name' : undefined}
          onInput={(e) => setUsername(e.currentTarget.value)} />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" required minLength={mode === 'register' ? 8 : undefined}
          autoComplete={mode === 'login' ? 'current-password' : 'new-password'} value={password}
          onInput={(e) => setPassword(e.currentTarget.value)} />
        {mode === 'register' && (
          <>
            <label for="email">Email (optional, for password resets)</label>
            <input id="email" name="email" type="email" autoComplete="email" value={email}
              onInput={(e) => setEmail(e.currentTarget.value)} />
          </>
        )}
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={busy}>{title}</button>
      </form>
      <p class="muted">
        {mode === 'login' ? <>No account? <Link href="/register">Register</Link></> : <>Have an account? <Link href="/login">Sign in</Link></>}
      </p>
    </section>
  );
}

export const Login = (p: Props) => <AuthForm mode="login" {...p} />;
export const Register = (p: Props) => <AuthForm mode="register" {...p} />;
