// Run history (`#/runs`): filters in the URL drive GET /runs; sort, cursor paging, live running rows.
import { html } from "htm/preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { get } from "../api.js";
import { formatRelative, formatTime, formatTrigger } from "../lib/format.js";
import {
  TRIGGERS, filtersFrom, filtersQuery, historyPath, isoToLocalInput, localInputToIso, nextSort,
} from "../lib/history.js";
import { RUN_STATUSES, isTerminalRun, statusInfo } from "../lib/status.js";
import { navigate, showError } from "../store.js";
import { Duration, Money, RunLink } from "./common.js";
import { StatusBadge } from "./run/status.js";

// Running rows refresh this often (GET /runs/{id}); a WebSocket per row would replay every log line.
const LIVE_ROW_MS = 2000;
const SORT_LABELS = { started_at: "Started", duration: "Duration", cost: "Cost" };

function SortHeader({ column, filters, className = "" }) {
  const active = filters.sort === column;
  const direction = filters.order === "asc" ? "ascending" : "descending";
  const change = () => navigate("/runs", filtersQuery({ ...filters, ...nextSort(filters, column), cursor: "" }));
  return html`
    <th class=${className} aria-sort=${active ? direction : "none"}>
      <button type="button" class="link" onClick=${change}>
        Sort by ${SORT_LABELS[column]}${active ? (filters.order === "asc" ? " ↑" : " ↓") : ""}
      </button>
    </th>
  `;
}

function Filters({ filters, workflows }) {
  const set = (changes) => navigate("/runs", filtersQuery({ ...filters, ...changes, cursor: "" }));
  const [user, setUser] = useState(filters.user);
  useEffect(() => setUser(filters.user), [filters.user]);
  const select = (id, label, value, options, key) => html`
    <div>
      <label for=${id}>${label}</label>
      <select id=${id} value=${value} onChange=${(e) => set({ [key]: e.currentTarget.value })}>
        ${options.map(([v, text]) => html`<option key=${v} value=${v}>${text}</option>`)}
      </select>
    </div>
  `;
  return html`
    <form class="filters" aria-label="Filter runs" onSubmit=${(e) => { e.preventDefault(); set({ user: user.trim() }); }}>
      ${select("filter-status", "Status", filters.status, [["", "Any status"], ...RUN_STATUSES.map((s) => [s, statusInfo(s).word])], "status")}
      ${select("filter-trigger", "Trigger", filters.trigger, [["", "Any trigger"], ...TRIGGERS.map((t) => [t, t])], "trigger")}
      ${select("filter-workflow", "Workflow", filters.workflow, [["", "Any workflow"], ...workflows.map((w) => [w, w])], "workflow")}
      <div>
        <label for="filter-user">Started by</label>
        <input id="filter-user" type="search" value=${user} placeholder="anyone"
          onInput=${(e) => setUser(e.currentTarget.value)} onChange=${(e) => set({ user: e.currentTarget.value.trim() })} />
      </div>
      ${select("filter-range", "Date range", filters.range, [["", "Any time"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"], ["custom", "Custom range"]], "range")}
      ${filters.range === "custom"
        ? html`
            <div>
              <label for="filter-since">From</label>
              <input id="filter-since" type="datetime-local" value=${isoToLocalInput(filters.since)}
                onChange=${(e) => set({ since: localInputToIso(e.currentTarget.value) })} />
            </div>
            <div>
              <label for="filter-until">To</label>
              <input id="filter-until" type="datetime-local" value=${isoToLocalInput(filters.until)}
                onChange=${(e) => set({ until: localInputToIso(e.currentTarget.value) })} />
            </div>
          `
        : null}
    </form>
  `;
}

function RunRow({ run, retriedBy }) {
  const open = (event) => {
    // Links inside the row (run id, retry links) do their own navigation.
    if (event.target.closest("a, button")) return;
    navigate(`/runs/${encodeURIComponent(run.run_id)}`);
  };
  const started = run.status === "queued" ? null : run.started_at;
  return html`
    <tr data-run=${run.run_id} data-status=${run.status} onClick=${open}>
      <td>
        <${RunLink} id=${run.run_id} />
        ${run.retry_of ? html`<div class="muted">retry of <${RunLink} id=${run.retry_of} /></div>` : null}
        ${retriedBy.length
          ? html`<div class="muted">retried by ${retriedBy.map((id, i) => html`${i ? ", " : ""}<${RunLink} id=${id} />`)}</div>`
          : null}
      </td>
      <td><a href=${`#/workflows/${encodeURIComponent(run.workflow)}`}>${run.workflow}</a></td>
      <td>${formatTrigger(run)}</td>
      <td>
        <${StatusBadge} status=${run.status} />
        ${run.cancel_requested_at && !isTerminalRun(run.status) ? html` <span class="badge warn">Cancelling…</span>` : null}
      </td>
      <td class="num">${started ? html`<${Duration} startedAt=${started} endedAt=${run.ended_at} />` : "—"}</td>
      <td class="num"><${Money} value=${run.cost_usd} /></td>
      <td>${run.started_by ?? "—"}</td>
      <td title=${formatTime(run.started_at)}><time datetime=${run.started_at}>${formatRelative(run.started_at)}</time></td>
    </tr>
  `;
}

export default function RunsView({ query }) {
  const filters = useMemo(() => filtersFrom(query), [query.toString()]);
  const [page, setPage] = useState(null);
  const [loading, setLoading] = useState(true);
  const [workflows, setWorkflows] = useState([]);
  // Cursors of the pages before this one, so Previous goes back without the server keeping state.
  const previous = useRef([]);
  const filterKey = JSON.stringify({ ...filters, cursor: "" });
  const lastFilterKey = useRef(filterKey);
  if (lastFilterKey.current !== filterKey) {
    previous.current = [];
    lastFilterKey.current = filterKey;
  }

  useEffect(() => {
    get("/workflows")
      .then((answer) => setWorkflows((answer.workflows ?? answer).map((w) => w.name).sort()))
      .catch((error) => showError(error, "workflows"));
  }, []);

  useEffect(() => {
    let current = true;
    setLoading(true);
    get(historyPath(filters))
      .then((answer) => current && setPage(answer))
      .catch((error) => current && (showError(error, "runs"), setPage({ runs: [], next_cursor: null })))
      .finally(() => current && setLoading(false));
    return () => {
      current = false;
    };
  }, [filterKey, filters.cursor]);

  // Live rows: refresh every run that has not finished, merge what the API says now.
  const pending = (page?.runs ?? []).filter((r) => !isTerminalRun(r.status)).map((r) => r.run_id);
  const refresh = useCallback(async () => {
    const fresh = await Promise.all(
      pending.map((id) => get(`/runs/${encodeURIComponent(id)}`).catch((error) => (showError(error, id), null))),
    );
    const byId = new Map(fresh.filter(Boolean).map((r) => [r.run_id, r]));
    setPage((old) => old && { ...old, runs: old.runs.map((r) => (byId.has(r.run_id) ? { ...r, ...rowOf(byId.get(r.run_id)) } : r)) });
  }, [pending.join(",")]);
  useEffect(() => {
    if (pending.length === 0) return undefined;
    const timer = setInterval(refresh, LIVE_ROW_MS);
    return () => clearInterval(timer);
  }, [refresh, pending.length]);

  const goNext = () => {
    previous.current = [...previous.current, filters.cursor];
    navigate("/runs", filtersQuery({ ...filters, cursor: page.next_cursor }));
  };
  const goPrevious = () => {
    const stack = previous.current;
    const cursor = stack.length ? stack[stack.length - 1] : "";
    previous.current = stack.slice(0, -1);
    navigate("/runs", filtersQuery({ ...filters, cursor }));
  };
  const runs = page?.runs ?? [];
  return html`
    <section>
      <h1>Runs</h1>
      <${Filters} filters=${filters} workflows=${workflows} />
      <table class="grid" aria-busy=${loading ? "true" : "false"} aria-label="Run history">
        <thead>
          <tr>
            <th>Run ID</th>
            <th>Workflow</th>
            <th>Trigger</th>
            <th>Status</th>
            <${SortHeader} column="duration" filters=${filters} className="num" />
            <${SortHeader} column="cost" filters=${filters} className="num" />
            <th>Started by</th>
            <${SortHeader} column="started_at" filters=${filters} />
          </tr>
        </thead>
        <tbody>
          ${runs.map((run) => html`<${RunRow} key=${run.run_id} run=${run} retriedBy=${retriedBy(run, runs)} />`)}
        </tbody>
      </table>
      ${!loading && runs.length === 0 ? html`<p class="muted">No runs match these filters.</p>` : null}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled=${!filters.cursor} onClick=${goPrevious}>Previous page</button>
        <button type="button" disabled=${!page?.next_cursor} onClick=${goNext}>Next page</button>
      </nav>
    </section>
  `;
}

/** Runs that retried this one: the API's `retries` (a full run has them; the history index does not
 * carry that growing set) and the rows of this page that say they retry it. */
function retriedBy(run, rows) {
  const ids = new Set(run.retries ?? []);
  for (const other of rows) if (other.retry_of === run.run_id) ids.add(other.run_id);
  return [...ids].sort();
}

/** The history-row fields of a full run (GET /runs/{id} answers a superset of a row). */
function rowOf(run) {
  const { steps: _steps, ...row } = run;
  return row;
}
