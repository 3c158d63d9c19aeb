// Workflows (`#/workflows`, `#/workflows/{wf}`): definitions with their graph, inputs, triggers and
// deliveries, concurrency, active or paused, a Run form from the typed inputs, and the cost trend.
import { html } from "htm/preact";
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { get, post, put } from "../api.js";
import { trendBars } from "../lib/chart.js";
import { formatMoney, formatRelative, formatTime } from "../lib/format.js";
import { formFields, parseInputs } from "../lib/inputs.js";
import { navigate, showError } from "../store.js";
import { RunLink } from "./common.js";
import { Dag } from "./run/dag.js";

const OUTCOME_CLASS = { started: "", duplicate: "", refused: "warn", ignored: "warn" };
const TREND_RUNS = 30;

function triggerKind(trigger) {
  return ["schedule", "webhook", "git", "event"].find((kind) => trigger[kind]) ?? "manual";
}

function triggerDetail(trigger) {
  if (trigger.schedule) return `${trigger.schedule.cron} (${trigger.schedule.timezone ?? "UTC"})`;
  if (trigger.webhook) return `secret ${trigger.webhook.secret}${trigger.webhook.require_timestamp ? ", timestamped signatures only" : ""}`;
  if (trigger.git) return `${trigger.git.repo} on ${(trigger.git.branches ?? []).join(", ") || "any branch"}`;
  if (trigger.event) return JSON.stringify(trigger.event.pattern ?? trigger.event);
  return "";
}

function ActiveBadge({ workflow }) {
  // `active` and the pause fields come with PUT /workflows/{wf}/state; without them a workflow is active.
  const paused = workflow.active === false;
  return html`<span class=${`badge${paused ? " warn" : ""}`}>${paused ? "paused" : "active"}</span>`;
}

function WorkflowList() {
  const [workflows, setWorkflows] = useState(null);
  useEffect(() => {
    get("/workflows")
      .then((answer) => setWorkflows(answer.workflows ?? []))
      .catch((error) => (showError(error, "workflows"), setWorkflows([])));
  }, []);
  if (workflows === null) return html`<p class="loading">Loading…</p>`;
  return html`
    <section>
      <h1>Workflows</h1>
      <table class="grid" aria-label="Workflows">
        <thead><tr><th>Workflow</th><th>Description</th><th>Steps</th><th>Triggers</th><th>State</th></tr></thead>
        <tbody>
          ${workflows.map(
            (w) => html`
              <tr key=${w.name} data-workflow=${w.name}>
                <td><a href=${`#/workflows/${encodeURIComponent(w.name)}`}>${w.name}</a></td>
                <td>${w.description || html`<span class="muted">—</span>`}</td>
                <td class="num">${(w.steps ?? []).length}</td>
                <td>${["manual", ...(w.triggers ?? []).map(triggerKind)].join(", ")}</td>
                <td><${ActiveBadge} workflow=${w} /></td>
              </tr>
            `,
          )}
        </tbody>
      </table>
      ${workflows.length === 0 ? html`<p class="muted">No workflows are defined.</p>` : null}
    </section>
  `;
}

function PauseControl({ workflow, onChanged }) {
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const paused = workflow.active === false;
  // The API lists `pause` only for callers the workflow's permissions let pause and resume it.
  const allowed = (workflow.actions ?? []).includes("pause");
  const change = async () => {
    setBusy(true);
    try {
      const body = paused ? { active: true } : { active: false, ...(reason.trim() ? { reason: reason.trim() } : {}) };
      await put(`/workflows/${encodeURIComponent(workflow.name)}/state`, body);
      setReason("");
      onChanged();
    } catch (error) {
      showError(error, paused ? "resume" : "pause");
    } finally {
      setBusy(false);
    }
  };
  return html`
    <div class="row">
      <${ActiveBadge} workflow=${workflow} />
      ${paused
        ? html`<span class="muted">
            paused${workflow.paused_by ? ` by ${workflow.paused_by}` : ""}${workflow.paused_at ? ` ${formatRelative(workflow.paused_at)}` : ""}${workflow.pause_reason ? `: ${workflow.pause_reason}` : ""}
          </span>`
        : allowed
          ? html`
            <label for="pause-reason">Reason</label>
            <input id="pause-reason" type="text" value=${reason} placeholder="why pause (optional)"
              onInput=${(e) => setReason(e.currentTarget.value)} />
          `
          : null}
      ${allowed
        ? html`<button type="button" disabled=${busy} onClick=${change}>${paused ? "Resume" : "Pause"}</button>`
        : html`<span class="muted">Its permissions do not let you ${paused ? "resume" : "pause"} it.</span>`}
    </div>
  `;
}

function RunForm({ workflow }) {
  const fields = useMemo(() => formFields(workflow.inputs), [workflow.name]);
  const [values, setValues] = useState(() => Object.fromEntries(fields.map((f) => [f.name, f.initial])));
  const [errors, setErrors] = useState({});
  const [busy, setBusy] = useState(false);
  const set = (name, value) => setValues((old) => ({ ...old, [name]: value }));
  const submit = async (event) => {
    event.preventDefault();
    const parsed = parseInputs(fields, values);
    setErrors(parsed.errors);
    if (Object.keys(parsed.errors).length) return;
    setBusy(true);
    try {
      const answer = await post(`/workflows/${encodeURIComponent(workflow.name)}/runs`, { inputs: parsed.inputs });
      navigate(`/runs/${encodeURIComponent(answer.run_id)}`);
    } catch (error) {
      showError(error, `run ${workflow.name}`);
      setBusy(false);
    }
  };
  const control = (field) => {
    const id = `input-${field.name}`;
    const described = [field.description ? `${id}-help` : "", errors[field.name] ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;
    const common = { id, name: field.name, "aria-describedby": described, "aria-invalid": errors[field.name] ? "true" : undefined };
    switch (field.control) {
      case "select":
        return html`<select ...${common} value=${values[field.name]} onChange=${(e) => set(field.name, e.currentTarget.value)}>
          ${field.options.map((o) => html`<option key=${String(o)} value=${String(o)}>${String(o)}</option>`)}
        </select>`;
      case "checkbox":
        return html`<input ...${common} type="checkbox" checked=${values[field.name]} onChange=${(e) => set(field.name, e.currentTarget.checked)} />`;
      case "number":
        return html`<input ...${common} type="text" inputmode=${field.type === "integer" ? "numeric" : "decimal"} value=${values[field.name]}
          required=${field.required} onInput=${(e) => set(field.name, e.currentTarget.value)} />`;
      case "json":
        return html`<textarea ...${common} rows="2" cols="40" value=${values[field.name]} onInput=${(e) => set(field.name, e.currentTarget.value)} />`;
      default:
        return html`<input ...${common} type="text" value=${values[field.name]} required=${field.required}
          onInput=${(e) => set(field.name, e.currentTarget.value)} />`;
    }
  };
  return html`
    <form class="stack" aria-label=${`Run ${workflow.name}`} onSubmit=${submit} noValidate>
      ${fields.length === 0 ? html`<p class="muted">This workflow takes no inputs.</p>` : null}
      ${fields.map(
        (field) => html`
          <div class="field" key=${field.name}>
            <label for=${`input-${field.name}`}>${field.name}${field.required ? " (required)" : ""} <span class="muted">${field.type}</span></label>
            ${control(field)}
            ${field.description ? html`<div id=${`input-${field.name}-help`} class="muted">${field.description}</div>` : null}
            ${errors[field.name] ? html`<div id=${`input-${field.name}-error`} class="field-error" role="alert">${field.name} ${errors[field.name]}</div>` : null}
          </div>
        `,
      )}
      <button type="submit" class="primary" disabled=${busy}>Run ${workflow.name}</button>
    </form>
  `;
}

function Triggers({ name }) {
  const [answer, setAnswer] = useState(null);
  useEffect(() => {
    get(`/workflows/${encodeURIComponent(name)}/triggers?limit=20`)
      .then(setAnswer)
      .catch((error) => showError(error, "triggers"));
  }, [name]);
  if (!answer) return html`<p class="loading">Loading triggers…</p>`;
  return html`
    <ul class="plain" aria-label="Triggers">
      <li>manual <span class="muted">(always allowed)</span></li>
      ${answer.triggers.map(
        (t, i) => html`<li key=${i}><strong>${triggerKind(t)}</strong> ${triggerDetail(t)}${t.endpoint ? html` <code>POST ${t.endpoint}</code>` : null}</li>`,
      )}
    </ul>
    ${(answer.next_fire_times ?? []).length
      ? html`<h3>Next fire times</h3>
          <ul aria-label="Next fire times">
            ${answer.next_fire_times.map((t) => html`<li key=${t}><time datetime=${t}>${formatTime(t)}</time> (${formatRelative(t)})</li>`)}
          </ul>`
      : null}
    <h3>Recent deliveries</h3>
    ${answer.deliveries.length === 0
      ? html`<p class="muted">No deliveries yet.</p>`
      : html`
          <table class="grid" aria-label="Recent deliveries">
            <thead><tr><th>Received</th><th>Trigger</th><th>Delivery</th><th>Outcome</th><th>Run</th><th>Reason</th></tr></thead>
            <tbody>
              ${answer.deliveries.map(
                (d) => html`
                  <tr key=${`${d.trigger}-${d.delivery_id}-${d.received_at}`} data-outcome=${d.outcome}>
                    <td>${formatTime(d.received_at)}</td>
                    <td>${d.trigger}</td>
                    <td class="mono">${d.delivery_id}</td>
                    <td><span class=${`badge ${OUTCOME_CLASS[d.outcome] ?? ""}`}>${d.outcome}</span></td>
                    <td>${d.run_id ? html`<${RunLink} id=${d.run_id} />` : "—"}</td>
                    <td>${d.reason ?? ""}</td>
                  </tr>
                `,
              )}
            </tbody>
          </table>
        `}
  `;
}

function CostTrend({ name }) {
  const [trend, setTrend] = useState(null);
  useEffect(() => {
    get(`/workflows/${encodeURIComponent(name)}/costs?last=${TREND_RUNS}`)
      .then(setTrend)
      .catch((error) => showError(error, "costs"));
  }, [name]);
  if (!trend) return html`<p class="loading">Loading costs…</p>`;
  if (trend.runs.length === 0) return html`<p class="muted">No runs yet.</p>`;
  const width = 520;
  const height = 160;
  const threshold = trend.baseline?.threshold_usd ?? null;
  const chart = trendBars(trend.runs, { width, height, threshold });
  const regressions = trend.runs.filter((r) => r.regression);
  const label = `Cost of the last ${trend.runs.length} runs, oldest first; highest ${formatMoney(chart.top)}; ${regressions.length} flagged as regressions.`;
  return html`
    <figure class="chart">
      <svg width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`} role="img" aria-label=${label}>
        <line x1="24" x2=${width - 24} y1=${chart.baseY} y2=${chart.baseY} stroke="#8c959f" />
        ${chart.bars.map(
          (b) => html`<rect key=${b.run_id} x=${b.x} y=${b.y} width=${b.width} height=${Math.max(b.height, 1)}
            class=${b.regression ? "regression" : "bar"} fill=${b.regression ? "#b42318" : "#1f5fbf"} data-run=${b.run_id}
            data-regression=${b.regression ? "true" : "false"}><title>${b.run_id}: ${formatMoney(b.cost)}${b.regression ? " (regression)" : ""}</title></rect>`,
        )}
        ${chart.thresholdY === null
          ? null
          : html`<line x1="24" x2=${width - 24} y1=${chart.thresholdY} y2=${chart.thresholdY} stroke="#b42318" stroke-dasharray="4 3" />`}
        <text x="24" y="14" font-size="11" fill="#4f5b6a">${formatMoney(chart.top)}</text>
      </svg>
      <figcaption>
        ${trend.baseline
          ? html`Median ${formatMoney(trend.baseline.median_usd)}; a run above ${formatMoney(threshold)} (dashed line) is flagged. `
          : null}
        ${regressions.length === 0
          ? "No regression."
          : html`<span>Regressions:</span>
              <ul aria-label="Cost regressions">
                ${regressions.map(
                  (r) => html`<li key=${r.run_id}><${RunLink} id=${r.run_id} /> ${formatMoney(r.cost_usd)}${r.grew_most ? ` (grew most: ${r.grew_most})` : ""}</li>`,
                )}
              </ul>`}
      </figcaption>
    </figure>
  `;
}

function Concurrency({ definition }) {
  const config = definition?.runtime_config ?? {};
  const concurrency = config.concurrency;
  return html`
    <dl class="facts">
      <dt>Concurrency</dt>
      <dd>${concurrency ? `at most ${concurrency.max_runs} at once; then ${concurrency.on_limit === "reject" ? "refuse" : "queue"}` : "no limit"}</dd>
      <dt>Mode</dt>
      <dd>${config.mode ?? "pool"}</dd>
      <dt>Retention</dt>
      <dd>${config.retention_hours ?? 24} h</dd>
      <dt>Budget</dt>
      <dd>${config.max_cost_usd !== undefined && config.max_cost_usd !== null ? formatMoney(config.max_cost_usd) : "none"}</dd>
    </dl>
  `;
}

// The graph of a definition, not of a run: every step is drawn as not started.
const NO_RUN = { steps: [] };

/** One step as defined: what it runs, what it needs, and its limits. */
function StepDefinition({ step, needs }) {
  if (!step) return null;
  const kind = step.approval ? "approval" : step.notify ? "notify" : "run";
  const what = step.run ?? (step.command ? step.command.join(" ") : step.approval?.message ?? step.notify?.message ?? "");
  return html`
    <section class="card" aria-label=${`Step ${step.id}`} data-step-definition=${step.id}>
      <h3>${step.name || step.id} <span class="muted">(${kind})</span></h3>
      <dl class="facts">
        <dt>${kind === "run" ? "Runs" : "Message"}</dt>
        <dd><code>${what}</code></dd>
        <dt>Needs</dt>
        <dd>${needs.join(", ") || "nothing (it starts the run)"}</dd>
        ${step.if ? html`<dt>Runs if</dt><dd><code>${step.if}</code></dd>` : null}
        ${step.timeout ? html`<dt>Timeout</dt><dd>${step.timeout} s</dd>` : null}
        ${step.retries?.max ? html`<dt>Retries</dt><dd>${step.retries.max}</dd>` : null}
        ${step.on_failure ? html`<dt>On failure</dt><dd>${step.on_failure}</dd>` : null}
      </dl>
    </section>
  `;
}

function WorkflowDetail({ name }) {
  const [workflow, setWorkflow] = useState(null);
  const [step, setStep] = useState(null);
  const [missing, setMissing] = useState(false);
  const load = useCallback(
    () =>
      get(`/workflows/${encodeURIComponent(name)}`)
        .then(setWorkflow)
        .catch((error) => {
          showError(error, name);
          setMissing(true);
        }),
    [name],
  );
  useEffect(() => {
    load();
  }, [load]);
  if (missing && !workflow) return html`<section><h1>${name}</h1><p>This workflow could not be loaded.</p></section>`;
  if (!workflow) return html`<p class="loading">Loading…</p>`;
  const inputs = Object.entries(workflow.inputs ?? {});
  return html`
    <section data-workflow=${workflow.name}>
      <p><a href="#/workflows">Workflows</a> /</p>
      <h1>${workflow.name}</h1>
      ${workflow.description ? html`<p>${workflow.description}</p>` : null}
      <${PauseControl} workflow=${workflow} onChanged=${load} />
      <p><a href=${`#/runs?workflow=${encodeURIComponent(workflow.name)}`}>Runs of ${workflow.name}</a></p>
      <h2>Graph</h2>
      <${Dag} run=${NO_RUN} workflow=${workflow} selected=${step} onSelect=${setStep} />
      ${step ? html`<${StepDefinition}
            step=${(workflow.definition?.steps ?? []).find((s) => s.id === step)}
            needs=${(workflow.graph?.edges ?? []).filter(([, to]) => to === step).map(([from]) => from)}
          />` : html`<p class="muted">Select a step to see its definition.</p>`}
      <div class="two-col">
        <div>
          <h2>Run it</h2>
          ${(workflow.actions ?? []).includes("start")
            ? html`<${RunForm} workflow=${workflow} />`
            : html`<p class="muted">Its permissions do not let you start it by hand.</p>`}
          <h2>Inputs</h2>
          ${inputs.length === 0
            ? html`<p class="muted">None.</p>`
            : html`<table class="grid" aria-label="Inputs">
                <thead><tr><th>Name</th><th>Type</th><th>Default</th><th>Required</th><th>Description</th></tr></thead>
                <tbody>
                  ${inputs.map(
                    ([key, spec]) => html`<tr key=${key}>
                      <td><code>${key}</code></td>
                      <td>${spec.type}${spec.enum ? ` (${spec.enum.join(" | ")})` : ""}</td>
                      <td>${spec.default === undefined ? "—" : JSON.stringify(spec.default)}</td>
                      <td>${spec.required ? "yes" : "no"}</td>
                      <td>${spec.description ?? ""}</td>
                    </tr>`,
                  )}
                </tbody>
              </table>`}
          <h2>Runtime</h2>
          <${Concurrency} definition=${workflow.definition} />
        </div>
        <div>
          <h2>Triggers</h2>
          <${Triggers} name=${workflow.name} />
          <h2>Cost trend</h2>
          <${CostTrend} name=${workflow.name} />
        </div>
      </div>
    </section>
  `;
}

export default function WorkflowsView({ params }) {
  return params.workflow ? html`<${WorkflowDetail} name=${params.workflow} />` : html`<${WorkflowList} />`;
}
