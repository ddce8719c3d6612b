// The dashboard's profile picture: upload, preview, remove. The server
// decodes and crops; the page only checks what it cheaply can first.
import { useState } from 'preact/hooks';
import { api, errorText, type Me } from '../api';
import type { PageProps } from '../main';

/// The server's upload limit (src/avatar.rs MAX_UPLOAD_BYTES).
const MAX_BYTES = 2 * 1024 * 1024;
const TYPES = ['image/png', 'image/jpeg', 'image/webp'];

export function AvatarCard({ me, setMe }: PageProps & { me: Me }) {
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState('');
  const [error, setError] = useState('');
  const uploaded = me.avatar.includes('?v=');

  const upload = async (file: File | undefined) => {
    setMsg('');
    setError('');
    if (!file) return;
    if (file.size > MAX_BYTES) { setError('That picture is over 2 MiB: pick a smaller one.'); return; }
    if (file.type && !TYPES.includes(file.type)) { setError('Pick a PNG, JPEG or WebP picture.'); return; }
    setBusy(true);
    try {
      const r = await api<{ avatar: string }>('PUT', '/api/me/avatar', file);
      setMe({ ...me, avatar: r.avatar });
      setMsg('Picture changed. It shows in chat and on your channel within a few minutes.');
    } catch (e) { setError(errorText(e)); }
    setBusy(false);
  };
  const remove = async () => {
    setMsg('');
    setError('');
    try {
      await api('DELETE', '/api/me/avatar');
      setMe({ ...me, avatar: `/avatars/${encodeURIComponent(me.user.username)}/256?removed=${Date.now()}` });
      setMsg('Picture removed.');
    } catch (e) { setError(errorText(e)); }
  };

  return (
    <section class="card" aria-labelledby="avatar-h" data-testid="avatar">
      <h2 id="avatar-h">Profile picture</h2>
      <div class="row wrap avatar-edit">
        <img class="avatar big" src={me.avatar} alt="Your profile picture" width={96} height={96} data-testid="my-avatar" />
        <div>
          <label for="avatar-file">Upload a picture</label>
          <input id="avatar-file" type="file" accept={TYPES.join(',')} disabled={busy}
            onChange={(e) => { void upload(e.currentTarget.files?.[0]); e.currentTarget.value = ''; }} />
          <p class="muted">PNG, JPEG or WebP, up to 2 MiB. It is cropped to a square.</p>
          {uploaded && <button type="button" onClick={remove}>Remove picture</button>}
        </div>
      </div>
      {busy && <p class="muted" role="status">Uploading…</p>}
      {msg && <p role="status">{msg}</p>}
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}
