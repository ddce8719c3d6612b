// The channel's WebSocket: chat plus live/offline/viewers/likes events.
// Reconnects with backoff; the server replays the last messages on join.

export interface ChatMessage {
  /// A decimal string: ids pass 2^53.
  id: string;
  user: string;
  text: string;
  at: string;
}

export type ChatEvent =
  | ({ type: 'chat' } & ChatMessage)
  | { type: 'delete'; id: string }
  | { type: 'live' }
  | { type: 'offline' }
  | { type: 'viewers'; count: number }
  | { type: 'likes'; count: number }
  | { type: 'slow_mode'; seconds: number }
  | { type: 'now_playing'; title: string }
  | { type: 'timeout' | 'ban'; user: string; seconds: number | null }
  | { type: 'error'; error: string };

export class ChatSocket {
  private ws: WebSocket | null = null;
  private closed = false;
  private backoff = 500;
  private timer: number | undefined;

  constructor(private channel: string, private onEvent: (e: ChatEvent) => void, private onOpen: (open: boolean) => void) {
    this.connect();
  }

  private connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws/${encodeURIComponent(this.channel)}`);
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 500;
      this.onOpen(true);
    };
    ws.onmessage = (m) => {
      // Frames already received when the page closed the socket belong to
      // the channel it left.
      if (this.closed) return;
      try {
        // Unknown types are ignored by the page (the contract may add some).
        this.onEvent(JSON.parse(m.data as string) as ChatEvent);
      } catch {
        // Not JSON: nothing to show.
      }
    };
    ws.onclose = () => {
      this.onOpen(false);
      if (this.closed) return;
      this.timer = window.setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10_000);
    };
  }

  send(text: string): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ type: 'chat', text }));
    return true;
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close();
  }
}
