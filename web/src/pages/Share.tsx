// The watch page's Share button and panel: the channel's link and the
// code that embeds its player on another site, each with a Copy button.
import { useEffect, useRef, useState } from 'preact/hooks';
import './share.css';

/// Text safe inside a double-quoted HTML attribute (as the server escapes
/// it in its oEmbed answer).
function attr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/// The iframe that embeds `channel`'s player: the same HTML as
/// /api/oembed gives, for when that cannot be asked.
export function embedCode(origin: string, channel: string, title: string): string {
  const src = `${origin}/embed/${encodeURIComponent(channel)}`;
  return `<iframe src="${attr(src)}" width="640" height="360" title="${attr(title)}" frameborder="0" `
    + 'allow="autoplay; fullscreen; picture-in-picture" allowfullscreen></iframe>';
}

/// Copies a field's text; where the clipboard API is missing (a page not
/// served over https) or refused, selects the text for the viewer to copy.
async function copy(field: HTMLInputElement | HTMLTextAreaElement | null): Promise<boolean> {
  if (!field) return false;
  try {
    await navigator.clipboard.writeText(field.value);
    return true;
  } catch {
    field.focus();
    field.select();
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
}

export function ShareButton({ open, onToggle }: { open: boolean; onToggle: () => void }) {
  return (
    <button type="button" class="share-button" aria-expanded={open} aria-controls={open ? 'share-panel' : undefined} onClick={onToggle}>
      Share
    </button>
  );
}

/// `broadcast`: a past broadcast playing, whose link (`?b=ID`) opens it.
export function SharePanel({ channel, title, broadcast, onClose }: {
  channel: string; title: string; broadcast?: string; onClose: () => void;
}) {
  const page = `${location.origin}/c/${encodeURIComponent(channel)}`;
  const [link, setLink] = useState(page);
  const [code, setCode] = useState(embedCode(location.origin, channel, title || channel));
  const [status, setStatus] = useState('');
  const linkField = useRef<HTMLInputElement>(null);
  const codeField = useRef<HTMLTextAreaElement>(null);

  // The server's own answer: its public URL (--public-url) and the
  // channel's current title.
  useEffect(() => {
    const ctl = new AbortController();
    fetch(`/api/oembed?url=${encodeURIComponent(page)}`, { signal: ctl.signal })
      .then((r) => (r.ok ? r.json() : null))
      .then((v: { author_url?: string; html?: string } | null) => {
        if (v?.author_url) setLink(v.author_url);
        if (v?.html) setCode(v.html);
      })
      .catch(() => {});
    return () => ctl.abort();
  }, [page]);

  const copied = async (what: string, field: HTMLInputElement | HTMLTextAreaElement | null) => {
    setStatus((await copy(field)) ? `${what} copied.` : `${what} selected: press Ctrl+C (⌘C on a Mac) to copy it.`);
  };

  return (
    <section id="share-panel" class="share-panel" aria-labelledby="share-h"
      onKeyDown={(e) => { if (e.key === 'Escape') onClose(); }}>
      <div class="row between">
        <h2 id="share-h">Share</h2>
        <button type="button" onClick={onClose} aria-label="Close the share panel">Close</button>
      </div>
      <label for="share-link">{broadcast ? 'Link to this broadcast' : 'Link to this channel'}</label>
      <div class="share-row">
        <input id="share-link" ref={linkField} readOnly value={broadcast ? `${link}?b=${encodeURIComponent(broadcast)}` : link}
          onFocus={(e) => e.currentTarget.select()} />
        <button type="button" onClick={() => copied('Link', linkField.current)} aria-label="Copy the link">Copy</button>
      </div>
      <label for="share-embed">Embed on your site</label>
      <div class="share-row">
        <textarea id="share-embed" ref={codeField} readOnly rows={3} value={code} onFocus={(e) => e.currentTarget.select()} />
        <button type="button" onClick={() => copied('Embed code', codeField.current)} aria-label="Copy the embed code">Copy</button>
      </div>
      <p class="muted share-hint">
        Options for the player's address, joined with <code>&amp;</code> after a <code>?</code>: <code>autoplay=1</code> starts
        it by itself, <code>muted=1</code> without sound, <code>chat=1</code> with the chat beside it.
      </p>
      <p role="status" class="share-status" data-testid="share-status">{status}</p>
    </section>
  );
}
