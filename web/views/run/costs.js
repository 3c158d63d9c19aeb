// The run's cost: per step (tokens and compute), by model, by compute class and the total; re-read
// while the run runs.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import * as api from "../../api.js";
import { formatMoney } from "../../lib/format.js";
import { isTerminalRun } from "../../lib/status.js";
import { showError } from "../../store.js";

const LIVE_MS = 3000;
const count = (n) => Number(n ?? 0).toLocaleString("en-US");

export function CostsTab({ run }) {
  const [costs, setCosts] = useState(null);
  const live = !isTerminalRun(run.status);
  useEffect(() => {
    let current = true;
    const load = () =>
      api
        .get(`/runs/${encodeURIComponent(run.run_id)}/costs`)
        .then((answer) => current && setCosts(answer))
        .catch((error) => current && showError(error, "costs"));
    load();
    const timer = live ? setInterval(load, LIVE_MS) : null;
    return () => {
      current = false;
      clearInterval(timer);
    };
  }, [run.run_id, live, run.status]);
  if (!costs) return html`<p class="loading">Loading costs…</p>`;
  return html`<div class="costs">
    <p class="costs-total">Total: <strong>${formatMoney(costs.total_usd)}</strong>${live ? " so far" : ""}
      <span class="muted"> (${costs.calculator})</span></p>
    <table>
      <caption>Per step</caption>
      <thead><tr><th scope="col">Step</th><th scope="col">Compute</th><th scope="col">Tokens in / out</th><th scope="col">Cost</th></tr></thead>
      <tbody>
        ${costs.steps.map(
          (s) => html`<tr key=${s.step}>
            <th scope="row">${s.step}</th>
            <td>${Number(s.compute_seconds ?? 0).toFixed(1)} s${s.resource_class ? ` (${s.resource_class})` : ""}</td>
            <td>${count(s.models.reduce((n, m) => n + m.input_tokens, 0))} / ${count(s.models.reduce((n, m) => n + m.output_tokens, 0))}</td>
            <td>${formatMoney(s.cost_usd)}</td>
          </tr>`,
        )}
      </tbody>
    </table>
    <table>
      <caption>By model</caption>
      <thead><tr><th scope="col">Model</th><th scope="col">Tokens in / out</th><th scope="col">Cost</th></tr></thead>
      <tbody>
        ${costs.by_model.length === 0 && html`<tr><td colspan="3">No model usage.</td></tr>`}
        ${costs.by_model.map(
          (m) => html`<tr key=${m.model}><th scope="row">${m.model}</th><td>${count(m.input_tokens)} / ${count(m.output_tokens)}</td><td>${formatMoney(m.cost_usd)}</td></tr>`,
        )}
      </tbody>
    </table>
    <table>
      <caption>By compute</caption>
      <thead><tr><th scope="col">Resource class</th><th scope="col">Seconds</th><th scope="col">Cost</th></tr></thead>
      <tbody>
        ${costs.by_compute.map(
          (c) => html`<tr key=${c.resource_class}><th scope="row">${c.resource_class}</th><td>${Number(c.seconds).toFixed(1)}</td><td>${formatMoney(c.cost_usd)}</td></tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}
