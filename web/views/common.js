// Small components every view shares: status badges, durations that tick, money, run links.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { elapsedMs, formatDuration, formatMoney } from "../lib/format.js";
import { statusIconSvg, statusInfo } from "../lib/status.js";

/** Icon and word (colour is never the only signal); the SVG comes from fixed shapes only. */
export function StatusBadge({ status, cancelling = false }) {
  const info = statusInfo(status);
  return html`
    <span class="status" style=${`color:${info.color}`}>
      <span dangerouslySetInnerHTML=${{ __html: statusIconSvg(status) }} />
      <span class="status-word">${info.word}</span>
      ${cancelling ? html`<span class="badge warn">Cancelling…</span>` : null}
    </span>
  `;
}

/** The time between start and end; while there is no end it ticks every second. */
export function Duration({ startedAt, endedAt }) {
  const [now, setNow] = useState(Date.now());
  const running = Boolean(startedAt && !endedAt);
  useEffect(() => {
    if (!running) return undefined;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [running]);
  return html`<span>${formatDuration(elapsedMs(startedAt, endedAt, now))}</span>`;
}

export function Money({ value }) {
  return html`<span>${formatMoney(value)}</span>`;
}

export function RunLink({ id }) {
  return html`<a href=${`#/runs/${encodeURIComponent(id)}`} class="mono">${id}</a>`;
}
