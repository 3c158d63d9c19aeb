// The execution view (#/runs/{id}): header, graph, steps with their actions, failure, log and tabs.
// Everything shown comes from the API (GET /runs/{id} and friends); the WebSocket says when to re-read.
import { html } from "htm/preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import * as api from "../api.js";
import { isTerminalRun } from "../lib/status.js";
import { showError } from "../store.js";
import { ArtifactsTab } from "./run/artifacts.js";
import { CostsTab } from "./run/costs.js";
import { Dag } from "./run/dag.js";
import { FailurePanel } from "./run/failure.js";
import { RunHeader } from "./run/header.js";
import { LogPanel, useRunLog } from "./run/logs.js";
import { OutputsTab } from "./run/outputs.js";
import { StepList } from "./run/steps.js";
import { Tabs } from "./run/tabs.js";

// The view's own styles, unless the page links them already (no bundler to import CSS with).
if (!document.querySelector('link[href$="styles-run.css"]')) {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = new URL("../styles-run.css", import.meta.url).href;
  document.head.append(link);
}

// A status frame may come in bursts (every step of a snapshot): read the run once per burst.
const REFRESH_DEBOUNCE_MS = 150;
// Costs and durations grow while a run runs even when no status changes.
const LIVE_REFRESH_MS = 5000;
const NEW_RUN_GRACE_MS = 5000;
const NEW_RUN_RETRY_MS = 300;

/** The run as the API has it now, re-read on live status frames (and every few seconds while it runs). */
function useRun(runId) {
  const [run, setRun] = useState(null);
  const [failure, setFailure] = useState(null);
  const timer = useRef(null);
  const opened = useRef(Date.now());
  const reload = useCallback(async () => {
    try {
      setRun(await api.get(`/runs/${encodeURIComponent(runId)}`));
      setFailure(null);
    } catch (error) {
      // A run started a moment ago may not be readable yet (an older API): ask again for a few seconds.
      if (error.status === 404 && Date.now() - opened.current < NEW_RUN_GRACE_MS) {
        clearTimeout(timer.current);
        timer.current = setTimeout(reload, NEW_RUN_RETRY_MS);
        return;
      }
      setFailure(error);
    }
  }, [runId]);
  const soon = useCallback(() => {
    clearTimeout(timer.current);
    timer.current = setTimeout(reload, REFRESH_DEBOUNCE_MS);
  }, [reload]);
  useEffect(() => {
    reload();
    return () => clearTimeout(timer.current);
  }, [reload]);
  const running = run && !isTerminalRun(run.status);
  useEffect(() => {
    if (!running) return undefined;
    const every = setInterval(reload, LIVE_REFRESH_MS);
    return () => clearInterval(every);
  }, [running, reload]);
  return { run, failure, reload, soon };
}

function useWorkflow(name) {
  const [workflow, setWorkflow] = useState(null);
  useEffect(() => {
    if (!name) return;
    api
      .get(`/workflows/${encodeURIComponent(name)}`)
      .then(setWorkflow)
      .catch((error) => showError(error, `workflow ${name}`));
  }, [name]);
  return workflow;
}

/** `{step, line}` of a deep link (`?step=apply&line=120`); line is null when absent or not a number. */
function deepLink(query) {
  const step = query?.get("step") || null;
  const line = Number.parseInt(query?.get("line") ?? "", 10);
  return { step, line: Number.isInteger(line) && line > 0 ? line : null };
}

export default function RunView({ params, query }) {
  const runId = params.id;
  const { run, failure, reload, soon } = useRun(runId);
  const workflow = useWorkflow(run?.workflow);
  const link = deepLink(query);
  const [selected, setSelected] = useState(link.step);
  const [tab, setTab] = useState("logs");
  const log = useRunLog(runId, run, soon);
  // Bumped by "View full log": the log panel then shows the step's latest lines and takes focus.
  const [jump, setJump] = useState(0);

  // A new deep link (the query changed) selects its step.
  useEffect(() => {
    if (link.step) setSelected(link.step);
  }, [link.step, link.line]);

  // Every action answers with the API's word: a refusal is shown as the API put it.
  const act = useCallback(
    async (label, path, body) => {
      try {
        const answer = await api.post(path, body);
        reload();
        return answer;
      } catch (error) {
        showError(error, label);
        return null;
      }
    },
    [reload],
  );

  const viewLog = useCallback((step) => {
    setSelected(step);
    setTab("logs");
    setJump((n) => n + 1);
  }, []);

  if (failure && !run) {
    return html`<section class="run-view">
      <h1>Run ${runId}</h1>
      <p role="alert">${failure.status === 404 ? `No run with id ${runId}.` : failure.message}</p>
      <p><a href="#/runs">Back to runs</a></p>
    </section>`;
  }
  if (!run) return html`<p class="loading">Loading run ${runId}…</p>`;

  const tabs = [
    { id: "logs", label: "Logs" },
    { id: "outputs", label: "Outputs" },
    { id: "artifacts", label: "Artifacts" },
    { id: "costs", label: "Costs" },
  ];
  return html`
    <section class="run-view" aria-labelledby="run-title">
      <${RunHeader} run=${run} act=${act} />
      <${FailurePanel} run=${run} log=${log} act=${act} onViewLog=${viewLog} />
      <div class="run-body">
        <${Dag} run=${run} workflow=${workflow} selected=${selected} onSelect=${setSelected} />
        <${StepList} run=${run} workflow=${workflow} selected=${selected} onSelect=${setSelected} act=${act} />
      </div>
      <${Tabs} tabs=${tabs} current=${tab} onChange=${setTab} label="Run details">
        ${tab === "logs" &&
        html`<${LogPanel}
          jump=${jump}
          runId=${runId}
          run=${run}
          log=${log}
          step=${selected}
          onStep=${setSelected}
          target=${link}
        />`}
        ${tab === "outputs" && html`<${OutputsTab} run=${run} />`}
        ${tab === "artifacts" && html`<${ArtifactsTab} run=${run} />`}
        ${tab === "costs" && html`<${CostsTab} run=${run} />`}
      <//>
    </section>
  `;
}
