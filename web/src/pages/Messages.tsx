// The chat's message list, on the watch page and in the embed.
import type { ComponentChildren } from 'preact';
import { useLayoutEffect, useRef } from 'preact/hooks';
import { avatarUrl } from '../api';
import type { ChatMessage } from '../chat';

/// Within this many pixels of the bottom, the list follows new messages;
/// further up, the reader is reading back and it stays put.
const FOLLOW_PX = 120;

export function Messages({ messages, actions }: {
  messages: ChatMessage[];
  /// Buttons beside a message (moderation), if any.
  actions?: (m: ChatMessage) => ComponentChildren;
}) {
  const list = useRef<HTMLOListElement>(null);
  useLayoutEffect(() => {
    const el = list.current;
    if (el && el.scrollHeight - el.scrollTop - el.clientHeight < FOLLOW_PX) el.scrollTop = el.scrollHeight;
  }, [messages]);
  return (
    <ol ref={list} class="messages" aria-live="polite" aria-relevant="additions" data-testid="messages">
      {messages.map((m) => (
        <li key={m.id} data-id={m.id}>
          {/* Text only: JSX text nodes, never innerHTML. */}
          <img class="avatar" src={avatarUrl(m.user)} alt="" width={20} height={20} loading="lazy" />
          <strong class="who">{m.user}</strong> <span class="text">{m.text}</span>
          {actions?.(m)}
        </li>
      ))}
    </ol>
  );
}
