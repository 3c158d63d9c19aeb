// Small components the list views share: durations that tick, money, run links.
// (The status badge is views/run/status.js, shared with the execution view.)
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { elapsedMs, formatDuration, formatMoney } from "../lib/format.js";

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
