// The server's JSON API (see /api/openapi.json). Same origin: the session
// cookie goes along, and the server accepts state changes from this origin.

// Ids are decimal strings: they pass 2^53, past what a JS number holds
// exactly, and only ever go back in URLs or comparisons.

export interface User {
  id: string;
  username: string;
  role: 'admin' | 'moderator' | 'broadcaster' | 'viewer';
  email?: string | null;
  email_verified?: boolean;
}

export interface Scheduled {
  id: string;
  channel: string;
  title: string;
  starts_at: string;
  ends_at: string;
}

export interface Channel {
  name: string;
  owner: string | null;
  title: string;
  description: string;
  category: string | null;
  tags: string[];
  likes: number;
  slow_mode_secs: number;
  live: boolean;
  started_at: string | null;
  viewers: number;
  /// While live: whether the stream has video (false: a listening page).
  video: boolean | null;
  /// While live: the track on the air, as the source last said.
  now_playing: string | null;
  next_broadcast: Scheduled | null;
  schedule?: Scheduled[];
}

/// Who may register here (`GET /api/auth/registration`).
export interface RegistrationPolicy {
  registration: 'open' | 'invite' | 'closed';
  open_streaming: boolean;
}

export interface Me {
  user: User;
  /// The account's picture at 256 px (a generated one until an upload).
  avatar: string;
  channel: {
    /// None until the account may stream (an admin grants the role).
    name: string; stream_key: string | null; title: string; description: string; category: string | null;
    /// The port the server's RTMP ingest listens on.
    rtmp_port?: number;
    rtmps_port?: number | null;
    /// The port Icecast sources (DJ software) connect to.
    icecast_port?: number;
    /// The server's public origin (`--public-url`), if it has one: encoders
    /// connect to its host.
    public_url?: string | null;
  } | null;
}

export interface Category {
  slug: string;
  name: string;
}

export interface Broadcast {
  id: string;
  channel: string;
  title: string | null;
  started_at: number;
  ended_at: number | null;
  duration_ms: number;
  recorded: boolean;
  live: boolean;
  /// Hidden by the owner (only the owner's own list has such items).
  hidden?: boolean;
  playlist: string | null;
  poster: string | null;
  /// The whole recording as one MP4, once it has ended.
  download?: string | null;
}

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: {}, signal };
  if (body instanceof Blob) {
    // A file as it is (a picture upload), not as JSON.
    (init.headers as Record<string, string>)['Content-Type'] = body.type || 'application/octet-stream';
    init.body = body;
  } else if (body !== undefined) {
    (init.headers as Record<string, string>)['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 204) return undefined as T;
  const text = await r.text();
  let v: unknown = null;
  try {
    v = text ? JSON.parse(text) : null;
  } catch {
    // A non-JSON answer (a proxy's error page): reported below by status.
  }
  if (!r.ok) {
    const msg = (v as { error?: string } | null)?.error || `${r.status} ${r.statusText}`;
    throw new ApiError(r.status, msg);
  }
  return v as T;
}

// GETs started before the first render (main.tsx), each handed to the
// first get() of its path: the watch page's player waits on the channel's
// details, and effects run only after the page has painted.
const early = new Map<string, Promise<unknown>>();
export function prefetch(path: string) {
  if (early.has(path)) return;
  const p = api('GET', path);
  p.catch(() => {}); // its taker sees the error; unclaimed, it is dropped
  early.set(path, p);
}

/// A GET; `signal` cancels it (a prefetched answer cannot be cancelled, so
/// callers check `signal.aborted` before using what comes back).
export function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  const p = early.get(path);
  if (p) {
    early.delete(path);
    return p as Promise<T>;
  }
  return api<T>('GET', path, undefined, signal);
}

/// A user's picture: an upload, or their initial on a colour. Sizes are
/// the server's (64 or 256); the page scales them down.
export function avatarUrl(username: string, size: 64 | 256 = 64): string {
  return `/avatars/${encodeURIComponent(username)}/${size}`;
}

export function channelPath(name: string, rest = ''): string {
  return `/api/channels/${encodeURIComponent(name)}${rest}`;
}

export function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export function fmtWhen(iso: string | number): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
