import { useEffect, useState } from 'preact/hooks';
import { api, errorText, get, type Me, type RegistrationPolicy } from '../api';
import { Link, navigate } from '../router';
import { ProviderButtons } from './Providers';

interface Props {
  setMe: (m: Me | null) => void;
  next?: string;
}

function nextFromQuery(fallback: string): string {
  const n = new URLSearchParams(location.search).get('next');
  // Only paths on this site: never an open redirect.
  return n && n.startsWith('/') && !n.startsWith('//') ? n : fallback;
}

/// An invite link's token (`/register#invite=…`: a fragment, which no
/// request or log carries).
function inviteFromLink(): string {
  return new URLSearchParams(location.hash.replace(/^#/, '')).get('invite') ?? '';
}

function AuthForm({ mode, setMe, next }: Props & { mode: 'login' | 'register' }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [email, setEmail] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [linked] = useState(inviteFromLink);
  const [invite, setInvite] = useState(linked);
  const [policy, setPolicy] = useState<RegistrationPolicy | null>(null);
  useEffect(() => {
    if (mode === 'register') get<RegistrationPolicy>('/api/auth/registration').then(setPolicy, () => {});
  }, [mode]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      if (mode === 'register') {
        await api('POST', '/api/auth/register', {
          username, password, ...(email ? { email } : {}), ...(invite ? { invite: invite.trim() } : {}),
        });
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
  if (mode === 'register' && policy?.registration === 'closed') {
    return (
      <section class="card narrow" data-testid="registration-closed">
        <h1>{title}</h1>
        <p>Registration is closed on this server: accounts are made by its operator.</p>
        <p class="muted">Have an account? <Link href="/login">Sign in</Link></p>
      </section>
    );
  }
  return (
    <section class="card narrow">
      <h1>{title}</h1>
      {mode === 'register' && linked && <p data-testid="invited">You were invited: choose a name and a password.</p>}
      {mode === 'register' && !linked && policy?.registration === 'invite' && (
        <p>Registration here is by invitation: open the link you were given, or paste its code below.</p>
      )}
      {(mode === 'login' || policy?.registration !== 'invite' || linked) && (
        <ProviderButtons next={next || nextFromQuery(mode === 'register' ? '/dashboard' : '/')} />
      )}
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
            {!linked && policy?.registration === 'invite' && (
              <>
                <label for="invite">Invite code</label>
                <input id="invite" name="invite" required autoComplete="off" value={invite}
                  onInput={(e) => setInvite(e.currentTarget.value)} />
              </>
            )}
          </>
        )}
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={busy}>{title}</button>
      </form>
      <p class="muted">
        {mode === 'login'
          ? <>No account? <Link href="/register">Register</Link> · <Link href="/forgot-password">Forgot your password?</Link></>
          : <>Have an account? <Link href="/login">Sign in</Link></>}
      </p>
    </section>
  );
}

export const Login = (p: Props) => <AuthForm mode="login" {...p} />;
export const Register = (p: Props) => <AuthForm mode="register" {...p} />;

/// The token of a mailed link (`#token=…`: a fragment, which no request
/// carries), or none when the mail gave a code to type in.
function tokenFromLink(): string {
  return new URLSearchParams(location.hash.replace(/^#/, '')).get('token') ?? '';
}

export function ForgotPassword() {
  const [username, setUsername] = useState('');
  const [error, setError] = useState('');
  const [sent, setSent] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      await api('POST', '/api/auth/password/reset', { username });
      setSent(true);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <section class="card narrow">
      <h1>Forgot your password?</h1>
      {sent ? (
        <p role="status" data-testid="reset-sent">If that account has an email address, a link to choose a new password is on its way.</p>
      ) : (
        <form onSubmit={submit}>
          <label for="username">Username</label>
          <input id="username" name="username" autoComplete="username" required value={username}
            onInput={(e) => setUsername(e.currentTarget.value)} />
          {error && <p class="error" role="alert">{error}</p>}
          <button type="submit" class="primary">Send me a link</button>
        </form>
      )}
    </section>
  );
}

export function ResetPassword() {
  const [token, setToken] = useState(tokenFromLink);
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [done, setDone] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      await api('POST', '/api/auth/password/reset/confirm', { token: token.trim(), new_password: password });
      setDone(true);
      // The token is spent; keep it out of the history.
      history.replaceState(null, '', location.pathname);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <section class="card narrow">
      <h1>Choose a new password</h1>
      {done ? (
        <p role="status" data-testid="reset-done">Your password is changed, and every session signed out. <Link href="/login">Sign in</Link></p>
      ) : (
        <form onSubmit={submit}>
          {!tokenFromLink() && (
            <>
              <label for="token">Code from the mail</label>
              <input id="token" name="token" required autoComplete="one-time-code" value={token}
                onInput={(e) => setToken(e.currentTarget.value)} />
            </>
          )}
          <label for="password">New password</label>
          <input id="password" name="password" type="password" required minLength={8} autoComplete="new-password"
            value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
          {error && <p class="error" role="alert">{error}</p>}
          <button type="submit" class="primary">Set the password</button>
        </form>
      )}
    </section>
  );
}

export function VerifyEmail() {
  const [token, setToken] = useState(tokenFromLink);
  const [state, setState] = useState<'idle' | 'done' | string>('idle');
  const confirm = async (t: string) => {
    try {
      await api('POST', '/api/auth/email/verify', { token: t.trim() });
      setState('done');
      history.replaceState(null, '', location.pathname);
    } catch (err) {
      setState(errorText(err));
    }
  };
  // A link confirms on opening; a typed code on submit.
  useEffect(() => {
    const t = tokenFromLink();
    if (t) confirm(t);
  }, []);
  return (
    <section class="card narrow">
      <h1>Verify your email</h1>
      {state === 'done' ? (
        <p role="status" data-testid="verify-done">Your email address is verified.</p>
      ) : (
        <form onSubmit={(e) => { e.preventDefault(); confirm(token); }}>
          <label for="token">Code from the mail</label>
          <input id="token" name="token" required autoComplete="one-time-code" value={token}
            onInput={(e) => setToken(e.currentTarget.value)} />
          {state !== 'idle' && <p class="error" role="alert">{state}</p>}
          <button type="submit" class="primary">Verify</button>
        </form>
      )}
    </section>
  );
}
