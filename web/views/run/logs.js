// The log panel: the stored log in pages (first lines at once), then live over the WebSocket from the
// last seq; per step or all, All / Output / Errors, server-side search with a true count, follow that
// pauses when the reader scrolls up, timestamps, ANSI colours, deep links and Download. Only the rows
// in view are in the DOM (a fixed row height, spacers, a window of rows).
import { html } from "htm/preact";
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import * as api from "../../api.js";
import { AnsiCache } from "../../lib/ansi.js";
import { lineLink } from "../../lib/lines.js";
import { LogBuffer } from "../../lib/logbuffer.js";
import { isTerminalRun } from "../../lib/status.js";
import { atBottom, rowWindow, scrollTopFor } from "../../lib/virtual.js";
import { showError } from "../../store.js";

export const ROW_HEIGHT = 18;
// The first page is small so the first lines show at once; the rest comes in the API's largest pages.
const FIRST_PAGE = 500;
const NEXT_PAGE = 50000;
// How long a gap in the live seqs may last before the missing batch is read from the store.
const GAP_WAIT_MS = 1000;
const NEW_RUN_GRACE_MS = 5000;
const NEW_RUN_RETRY_MS = 300;
const ansi = new AnsiCache();

const logsPath = (runId, params) =>
  `/runs/${encodeURIComponent(runId)}/logs?${new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""),
  )}`;

/**
 * The run's whole log in a LogBuffer: stored pages first, then live frames from the last stored seq
 * (SPEC §4 replay-then-live; api.js resumes from the last seq after a reconnect). `onStatus` is
 * called on run and step frames (the view re-reads the run).
 */
export function useRunLog(runId, run, onStatus) {
  const [buffer] = useState(() => new LogBuffer());
  const [version, setVersion] = useState(0);
  const [state, setState] = useState({ loading: true, live: "idle" });
  const statusRef = useRef(onStatus);
  statusRef.current = onStatus;
  // The stored pages load at once, alongside the run; whether to go live waits for the run's status.
  const [runKnown] = useState(() => {
    let resolve;
    const promise = new Promise((r) => {
      resolve = r;
    });
    return { promise, resolve };
  });
  useEffect(() => {
    if (run) runKnown.resolve(isTerminalRun(run.status));
  }, [run, runKnown]);

  useEffect(() => {
    let closed = false;
    let close = null;
    let frame = 0;
    // Many frames a second re-render once per animation frame.
    const bump = () => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        setVersion(buffer.version);
      });
    };
    // A later batch waiting on a missing one (a frame part lost when the socket dropped): read the
    // missing batch back from the store, whole.
    let fill = 0;
    const refill = async () => {
      while (!closed && buffer.merger.stalled) {
        const before = buffer.lastSeq;
        try {
          buffer.addPage(await api.get(logsPath(runId, { since_seq: before, limit: 1 })));
        } catch (error) {
          showError(error, "logs");
          break;
        }
        if (buffer.lastSeq === before) break; // not stored yet: the next frame tries again
        bump();
      }
      fill = 0;
    };
    (async () => {
      let limit = FIRST_PAGE;
      const opened = Date.now();
      for (;;) {
        let page;
        try {
          page = await api.get(logsPath(runId, { since_seq: buffer.lastSeq, limit }));
        } catch (error) {
          // A run started a moment ago may not be readable yet (an older API): ask again shortly.
          if (error.status === 404 && Date.now() - opened < NEW_RUN_GRACE_MS) {
            await new Promise((resolve) => setTimeout(resolve, NEW_RUN_RETRY_MS));
            if (closed) return;
            continue;
          }
          // The view says why (its own read of the run failed the same way); other failures are shown.
          if (error.status !== 404) showError(error, "logs");
          break;
        }
        if (closed) return;
        buffer.addPage(page);
        buffer.merger.advanceTo(page.next_since_seq);
        bump();
        if (!page.more) break;
        limit = NEXT_PAGE;
      }
      setState((s) => ({ ...s, loading: false }));
      const finished = await runKnown.promise;
      // A finished run's log is whole: nothing to follow.
      if (closed || finished) return;
      close = api.subscribe(runId, {
        sinceSeq: buffer.lastSeq,
        onFrame(message) {
          if (message.type === "log") {
            if (buffer.addFrame(message) > 0) bump();
            if (buffer.merger.stalled && !fill) fill = setTimeout(refill, GAP_WAIT_MS);
          } else if (message.type === "run" || message.type === "step") {
            statusRef.current?.();
          } else if (message.type === "error") {
            showError({ error: message.error, message: message.message }, "live");
          }
        },
        onState: (live) => setState((s) => ({ ...s, live })),
      });
    })();
    return () => {
      closed = true;
      clearTimeout(fill);
      cancelAnimationFrame(frame);
      close?.();
    };
  }, [runId, buffer, runKnown]);
  return { buffer, version, ...state };
}

/** All server-side matches of `q` (every page: the count is true), for one step and filter. */
async function searchAll(runId, q, step, stream) {
  const matches = [];
  let since = 0;
  for (;;) {
    const page = await api.get(logsPath(runId, { q, step, stream: stream ?? "all", since_seq: since }));
    for (const line of page.lines) matches.push(line);
    if (!page.more) return matches;
    since = page.next_since_seq;
  }
}

/** Every page of the text download (`format=text`), joined; the API caps one answer. */
async function downloadText(runId, step) {
  const parts = [];
  let since = 0;
  for (;;) {
    const response = await api.send(logsPath(runId, { format: "text", step, since_seq: since }), {
      headers: { Accept: "text/plain" },
    });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      throw new api.ApiError(response.status, problem.error ?? `HTTP${response.status}`, problem.message);
    }
    parts.push(await response.text());
    if (response.headers.get("X-Flowdeck-More") !== "true") break;
    since = Number(response.headers.get("X-Flowdeck-Next-Since-Seq"));
  }
  const blob = new Blob(parts, { type: "text/plain" });
  const anchor = document.createElement("a");
  anchor.href = URL.createObjectURL(blob);
  anchor.download = `${runId}${step ? `-${step}` : ""}-logs.txt`;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(anchor.href), 10_000);
}

const STREAMS = { all: null, output: "stdout", errors: "stderr" };
const FILTER_LABELS = [
  ["all", "All"],
  ["output", "Output"],
  ["errors", "Errors"],
];

function formatStamp(t) {
  const date = new Date(t * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export function LogPanel({ runId, run, log, step, onStep, target, jump }) {
  const { buffer } = log;
  const [filter, setFilter] = useState("all");
  // Follow the newest line, unless a deep link asks for one line (no first jump to the bottom then).
  const [follow, setFollow] = useState(() => !target?.line);
  const [stamps, setStamps] = useState(false);
  const [scroll, setScroll] = useState({ top: 0, height: 400 });
  const [query, setQuery] = useState("");
  const [search, setSearch] = useState(null); // {q, step, filter, matches, rows, current, busy}
  const [highlight, setHighlight] = useState(null); // a row index
  const scroller = useRef(null);
  const pendingTarget = useRef(null);
  const programmatic = useRef(-1); // the scrollTop the page itself set last
  const lastTop = useRef(0);
  const searches = useRef(0); // searches asked so far

  const indices = buffer.view(step, filter);
  const total = indices.length;
  const win = rowWindow({ scrollTop: scroll.top, viewport: scroll.height, rowHeight: ROW_HEIGHT, total });

  const scrollTo = useCallback((top) => {
    const el = scroller.current;
    if (!el) return;
    el.scrollTop = top;
    // The scroll event this causes (maybe merged with others) is the page's, not the reader's.
    programmatic.current = el.scrollTop;
    lastTop.current = el.scrollTop;
    setScroll({ top: el.scrollTop, height: el.clientHeight });
  }, []);

  // Follow: after each render with new rows, keep the newest line in view.
  useLayoutEffect(() => {
    if (follow && scroller.current) scrollTo(scroller.current.scrollHeight);
  }, [follow, total, step, filter, scrollTo]);

  // A deep link (`?step=S&line=N`): show all of S's lines, stop following, scroll to N once loaded.
  useLayoutEffect(() => {
    if (!target?.line) return;
    pendingTarget.current = { step: target.step, line: target.line };
    setFilter("all");
    setFollow(false);
  }, [target?.step, target?.line]);
  useLayoutEffect(() => {
    const wanted = pendingTarget.current;
    // Wait for the render that shows the step's whole log (the link's step, filter All).
    if (!wanted || (wanted.step && wanted.step !== step) || filter !== "all") return;
    const row = buffer.findLine(wanted.step ?? step, wanted.line);
    if (row === -1) return; // not loaded yet: the next page's render tries again
    pendingTarget.current = null;
    const at = buffer.view(step, "all").indexOf(row);
    setHighlight(row);
    scrollTo(scrollTopFor({ index: at, viewport: scroller.current?.clientHeight ?? 400, rowHeight: ROW_HEIGHT }));
    scroller.current?.scrollIntoView({ block: "nearest" });
  }, [log.version, step, filter, follow, buffer, scrollTo]);

  // "View full log": the step's latest lines, following, with focus in the log.
  useEffect(() => {
    if (!jump) return;
    setFollow(true);
    scroller.current?.focus();
  }, [jump]);

  const onScroll = () => {
    const el = scroller.current;
    const top = el.scrollTop;
    setScroll({ top, height: el.clientHeight });
    const before = lastTop.current;
    lastTop.current = top;
    if (top === programmatic.current) return;
    // The reader scrolled up: stop following; down to the bottom again: follow again.
    if (follow && top < before) setFollow(false);
    else if (!follow && top > before && atBottom({ scrollTop: top, viewport: el.clientHeight, scrollHeight: el.scrollHeight })) {
      setFollow(true);
    }
  };

  const runSearch = async (event) => {
    event?.preventDefault();
    const q = query.trim();
    const asked = ++searches.current;
    if (!q) {
      setSearch(null);
      return;
    }
    setSearch({ q, busy: true, matches: [], current: -1 });
    try {
      const matches = await searchAll(runId, q, step, STREAMS[filter]);
      // Only the latest search's answer counts (an earlier, slower one may answer after it).
      if (asked === searches.current) setSearch({ q, step, filter, busy: false, matches, current: -1 });
    } catch (error) {
      showError(error, "search");
      if (asked === searches.current) setSearch(null);
    }
  };

  // Another step or filter: the same search over what is now shown.
  useEffect(() => {
    if (search) runSearch();
  }, [step, filter]);

  const goMatch = (delta) => {
    if (!search || search.matches.length === 0) return;
    const rows = buffer.matchRows(search.matches, search.q);
    if (rows.length === 0) return;
    const current = (search.current + delta + rows.length) % rows.length;
    setSearch({ ...search, current });
    const row = rows[current];
    const at = buffer.view(step, filter).indexOf(row);
    setFollow(false);
    setHighlight(row);
    if (at !== -1) scrollTo(scrollTopFor({ index: at, viewport: scroller.current.clientHeight, rowHeight: ROW_HEIGHT }));
  };

  const download = async () => {
    try {
      await downloadText(runId, step);
    } catch (error) {
      showError(error, "download");
    }
  };

  const steps = (run.steps ?? []).map((s) => s.id);
  const shown = [];
  for (let i = win.start; i < win.end; i += 1) {
    const index = indices[i];
    const row = buffer.rows[index];
    shown.push(html`<div
      key=${index}
      class=${`log-row stream-${row.stream}${highlight === index ? " target" : ""}`}
      data-seq=${row.seq}
      data-line=${row.line}
      aria-current=${highlight === index ? "true" : undefined}
    >
      <a class="log-no" href=${lineLink(runId, row.step, row.line)} tabindex="-1" aria-label=${`${row.step} line ${row.line}`}>${row.line}</a>
      ${stamps && html`<span class="log-ts">${formatStamp(row.t)}</span>`}
      ${!step && html`<span class="log-step">${row.step}</span>`}
      <span class="log-text" dangerouslySetInnerHTML=${{ __html: ansi.html(row.text) }}></span>
    </div>`);
  }
  const count = search && !search.busy ? search.matches.length : null;
  return html`<section class="log-panel" aria-label="Log">
    <div class="log-controls">
      <label for="log-step">Step</label>
      <select id="log-step" value=${step ?? ""} onChange=${(e) => onStep(e.currentTarget.value || null)}>
        <option value="">All steps</option>
        ${steps.map((s) => html`<option key=${s} value=${s}>${s}</option>`)}
      </select>
      <span role="group" aria-label="Filter" class="log-filters">
        ${FILTER_LABELS.map(
          ([id, label]) => html`<button type="button" key=${id} aria-pressed=${filter === id ? "true" : "false"} onClick=${() => setFilter(id)}>${label}</button>`,
        )}
      </span>
      <form class="log-search" role="search" onSubmit=${runSearch}>
        <input
          type="search"
          aria-label="Search the whole log"
          placeholder="Search the whole log"
          value=${query}
          onInput=${(e) => setQuery(e.currentTarget.value)}
        />
        <button type="submit">Find</button>
        <span class="search-count" role="status" aria-live="polite" data-search-count=${count ?? undefined}>
          ${search?.busy ? "Searching…" : count !== null ? `${count.toLocaleString("en-US")} match${count === 1 ? "" : "es"}` : ""}
        </span>
        <button type="button" disabled=${!count} onClick=${() => goMatch(-1)}>Previous match</button>
        <button type="button" disabled=${!count} onClick=${() => goMatch(1)}>Next match</button>
      </form>
      ${follow
        ? html`<button type="button" onClick=${() => setFollow(false)}>Pause</button>`
        : html`<button type="button" onClick=${() => setFollow(true)}>Resume</button>`}
      <label class="log-stamps"><input type="checkbox" checked=${stamps} onChange=${(e) => setStamps(e.currentTarget.checked)} /> Timestamps</label>
      <button type="button" onClick=${download}>Download</button>
    </div>
    <div class="log-status" aria-live="polite" data-lines=${total}>
      ${log.loading ? "Loading stored lines… " : ""}${total.toLocaleString("en-US")} line${total === 1 ? "" : "s"}${
        log.live === "reconnecting" ? " · reconnecting…" : log.live === "open" ? " · live" : ""
      }${follow ? "" : " · paused"}
    </div>
    <div
      class="log-scroll"
      ref=${scroller}
      tabindex="0"
      role="region"
      aria-label=${`Log lines${step ? ` of ${step}` : ""}`}
      onScroll=${onScroll}
    >
      <div style=${`height:${win.top}px`}></div>
      ${shown}
      <div style=${`height:${win.bottom}px`}></div>
    </div>
    ${!follow && total > 0 && html`<button type="button" class="jump-latest" onClick=${() => setFollow(true)}>Jump to latest</button>`}
  </section>`;
}
