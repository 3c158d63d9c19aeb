// The run header: what ran, its status, time and cost (ticking while it runs), inputs, retry links
// and the cancel buttons the API offers.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { elapsedMs, formatDuration, formatMoney, formatTime, formatTrigger, runCost } from "../../lib/format.js";
import { isTerminalRun } from "../../lib/status.js";
import { StatusBadge } from "./status.js";

const CANCELS = [
  { action: "cancel", label: "Cancel", mode: "graceful" },
  { action: "cancel_cleanup", label: "Cancel with cleanup", mode: "cleanup" },
  { action: "force_cancel", label: "Force cancel", mode: "force" },
];

/** Re-render every second while `active` (a ticking duration). */
export function useNow(active) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [active]);
  return now;
}

function runLink(id) {
  return html`<a href=${`#/runs/${encodeURIComponent(id)}`}>${id}</a>`;
}

export function RunHeader({ run, act }) {
  const live = !isTerminalRun(run.status);
  const now = useNow(live);
  const [busy, setBusy] = useState(false);
  const cancelling = Boolean(run.cancel_requested_at);
  const actions = run.actions ?? [];
  const cancel = async (label, mode) => {
    setBusy(true);
    await act(label, `/runs/${encodeURIComponent(run.run_id)}/cancel`, { mode });
    setBusy(false);
  };
  const inputs = Object.entries(run.inputs ?? {});
  return html`
    <header class="run-header" data-run-status=${run.status}>
      <div class="run-title-line">
        <h1 id="run-title">
          <a href=${`#/workflows/${encodeURIComponent(run.workflow)}`}>${run.workflow}</a>
          <span class="run-id">${run.run_id}</span>
        </h1>
        <span class="run-status"><${StatusBadge} status=${run.status} size=${20} /></span>
        ${cancelling &&
        html`<span class="cancelling" role="status">
          Cancelling… (${run.cancel_mode ?? "graceful"}${run.cancel_requested_by ? ` by ${run.cancel_requested_by}` : ""})
        </span>`}
      </div>
      <dl class="run-facts">
        <div><dt>Duration</dt><dd class="run-duration">${formatDuration(elapsedMs(run.started_at, run.ended_at, now))}</dd></div>
        <div><dt>Trigger</dt><dd>${formatTrigger(run)}</dd></div>
        <div><dt>Started by</dt><dd>${run.started_by ?? "—"}</dd></div>
        <div><dt>Started</dt><dd>${formatTime(run.started_at)}</dd></div>
        <div><dt>Cost</dt><dd class="run-cost">${formatMoney(runCost(run))}${live ? " so far" : ""}</dd></div>
        ${run.retry_of && html`<div><dt>Retry of</dt><dd>${runLink(run.retry_of)}</dd></div>`}
        ${run.retries?.length > 0 &&
        html`<div><dt>Retried by</dt><dd>${run.retries.map((id, i) => html`${i > 0 && ", "}${runLink(id)}`)}</dd></div>`}
        ${run.cancel_reason && html`<div><dt>Cancel reason</dt><dd>${run.cancel_reason}</dd></div>`}
      </dl>
      ${inputs.length > 0 &&
      html`<details class="run-inputs">
        <summary>Inputs (${inputs.length})</summary>
        <dl>${inputs.map(([k, v]) => html`<div key=${k}><dt>${k}</dt><dd><code>${JSON.stringify(v)}</code></dd></div>`)}</dl>
      </details>`}
      <div class="run-actions">
        ${CANCELS.filter((c) => actions.includes(c.action)).map(
          (c) => html`<button
            type="button"
            key=${c.action}
            class=${c.mode === "force" ? "danger" : ""}
            disabled=${busy}
            onClick=${() => cancel(c.label, c.mode)}
          >
            ${c.label}
          </button>`,
        )}
      </div>
    </header>
  `;
}
