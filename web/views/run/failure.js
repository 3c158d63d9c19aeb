// The failed step at a glance, like the product documents' failed deploy: step, exit code, duration,
// error and its last lines, with View full log, Retry step and Cancel.
import { html } from "htm/preact";
import { AnsiCache } from "../../lib/ansi.js";
import { elapsedMs, formatDuration } from "../../lib/format.js";
import { StepActions } from "./steps.js";

const LAST_LINES = 12;
const ansi = new AnsiCache(200);

/** The step to explain: the failed one, else one paused on its failure. */
function failedStep(run) {
  const steps = run.steps ?? [];
  return (
    steps.find((s) => s.status === "failed") ??
    steps.find((s) => s.status === "waiting" && s.error && !s.approval) ??
    null
  );
}

export function FailurePanel({ run, log, act, onViewLog }) {
  const step = failedStep(run);
  if (!step) return null;
  const rows = log.buffer.view(step.id, "all");
  const last = rows.slice(-LAST_LINES).map((i) => log.buffer.rows[i]);
  const cancellable = (run.actions ?? []).includes("cancel");
  const cancel = () => act("Cancel", `/runs/${encodeURIComponent(run.run_id)}/cancel`, { mode: "graceful" });
  return html`<section class="failure" aria-labelledby="failure-title" data-failed-step=${step.id}>
    <h2 id="failure-title">${step.status === "waiting" ? "Paused after a failure" : "Failed"}: ${step.id}</h2>
    <dl class="failure-facts">
      <div><dt>Step</dt><dd>${step.id}</dd></div>
      <div><dt>Exit code</dt><dd>${step.exit_code ?? "—"}</dd></div>
      <div><dt>Duration</dt><dd>${formatDuration(elapsedMs(step.started_at, step.ended_at))}</dd></div>
      <div><dt>Error</dt><dd class="failure-error">${step.error ?? "—"}</dd></div>
    </dl>
    ${step.cause && html`<pre class="failure-cause">${step.cause}</pre>`}
    ${last.length > 0 &&
    html`<div class="failure-lines" aria-label=${`Last lines of ${step.id}`} role="region" tabindex="0">
      ${last.map(
        (row) => html`<div key=${`${row.seq}-${row.line}`} class=${`log-text stream-${row.stream}`}
          dangerouslySetInnerHTML=${{ __html: ansi.html(row.text) }}></div>`,
      )}
    </div>`}
    <div class="failure-actions">
      <button type="button" onClick=${() => onViewLog(step.id)}>View full log</button>
      <${StepActions} run=${run} step=${step} act=${act} only=${["retry_step"]} />
      ${cancellable && html`<button type="button" onClick=${cancel}>Cancel</button>`}
    </div>
  </section>`;
}
