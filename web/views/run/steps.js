// The step list: status, duration, attempts, summary, why a step of an ended run never ran, and the
// buttons for what each step allows now (the run view's `actions`, from the API); a waiting approval
// opens its request with Approve/Reject.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { elapsedMs, formatDuration } from "../../lib/format.js";
import { ApprovalPanel } from "./approval.js";
import { StatusBadge } from "./status.js";

/** The request each step action sends (SPEC §3). */
export function stepRequest(run, step, action) {
  const runPath = `/runs/${encodeURIComponent(run.run_id)}`;
  const stepPath = `${runPath}/steps/${encodeURIComponent(step.id)}`;
  switch (action) {
    case "retry_step":
      // Paused on failure: retry in place. In a finished run: a new run from the failed step.
      return step.status === "waiting" ? [`${stepPath}/retry`, {}] : [`${runPath}/retry`, { from_step: step.id }];
    case "retry_from_here":
      return [`${runPath}/retry`, { from_step: step.id }];
    case "skip":
      return [`${stepPath}/skip`, {}];
    default:
      return null;
  }
}

const LABELS = { retry_step: "Retry step", retry_from_here: "Retry from here", skip: "Skip step" };

function attemptsText(step) {
  const count = step.attempts?.length || step.attempt || 0;
  return count > 1 ? `${count} attempts` : "";
}

/** Buttons for the step's allowed actions; a retry that made a new run goes there. */
export function StepActions({ run, step, act, only }) {
  const [busy, setBusy] = useState(false);
  const actions = (step.actions ?? []).filter((a) => LABELS[a] && (!only || only.includes(a)));
  if (actions.length === 0) return null;
  const run_ = async (action) => {
    const [path, body] = stepRequest(run, step, action);
    setBusy(true);
    const answer = await act(`${LABELS[action]} ${step.id}`, path, body);
    setBusy(false);
    // POST /runs/{id}/retry answers the new run: follow it.
    if (answer?.run_id && answer.run_id !== run.run_id) globalThis.location.hash = `#/runs/${encodeURIComponent(answer.run_id)}`;
  };
  return html`<span class="step-actions">
    ${actions.map(
      (action) => html`<button
        type="button"
        key=${action}
        disabled=${busy}
        aria-label=${`${LABELS[action]} ${step.id}`}
        onClick=${() => run_(action)}
      >
        ${LABELS[action]}
      </button>`,
    )}
  </span>`;
}

export function StepList({ run, workflow, selected, onSelect, act }) {
  const steps = run.steps ?? [];
  const definitions = new Map((workflow?.definition?.steps ?? []).map((s) => [s.id, s]));
  return html`
    <section class="step-list" aria-labelledby="steps-title">
      <h2 id="steps-title">Steps</h2>
      <ol>
        ${steps.map((step) => {
          const duration = step.started_at ? formatDuration(elapsedMs(step.started_at, step.ended_at)) : "—";
          const approving = step.approval && (step.actions ?? []).includes("approve");
          return html`<li
            key=${step.id}
            class=${`step-row status-${step.status}${selected === step.id ? " selected" : ""}`}
            data-step=${step.id}
            data-status=${step.status}
          >
            <div class="step-line">
              <${StatusBadge} status=${step.status} />
              <button
                type="button"
                class="link step-name"
                aria-pressed=${selected === step.id ? "true" : "false"}
                onClick=${() => onSelect(selected === step.id ? null : step.id)}
              >
                ${step.id}
              </button>
              <span class="step-duration">${duration}</span>
              ${attemptsText(step) && html`<span class="step-attempts">${attemptsText(step)}</span>`}
              ${step.reused_from && html`<span class="step-reused">reused from ${step.reused_from}</span>`}
              <${StepActions} run=${run} step=${step} act=${act} />
            </div>
            ${step.summary && html`<p class="step-summary">${step.summary}</p>`}
            ${step.not_run && html`<p class="step-summary step-not-run">not run: ${step.not_run}</p>`}
            ${step.error && step.status !== "succeeded" && html`<p class="step-error">${step.error}</p>`}
            ${(approving || (step.approval && step.status === "waiting")) &&
            html`<${ApprovalPanel} run=${run} step=${step} definition=${definitions.get(step.id)} act=${act} />`}
          </li>`;
        })}
      </ol>
    </section>
  `;
}
