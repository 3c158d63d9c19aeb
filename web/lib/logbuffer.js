// Everything the page knows of a run's log, as rows numbered per step, with filtered views that
// grow as lines arrive (a 200,000-line step is filtered once, then only its new rows).

import { collapseCR } from "./lines.js";
import { SeqMerger } from "./seqmerge.js";

/** The stream a log filter keeps: All, Output (stdout) or Errors (stderr). */
export const FILTERS = { all: null, output: "stdout", errors: "stderr" };

/** A run's log rows `{seq, step, line, t, stream, text, raw}` in seq order. */
export class LogBuffer {
  constructor() {
    this.rows = [];
    this.merger = new SeqMerger();
    this.lineCount = new Map(); // step -> lines so far (the next line's number - 1)
    this.lastRow = new Map(); // step -> index of its latest row (a `cont` part extends it)
    this.seqRows = new Map(); // seq -> [first row, end row)
    this.views = new Map();
    this.version = 0;
  }

  get lastSeq() {
    return this.merger.last;
  }

  get steps() {
    return [...this.lineCount.keys()];
  }

  /** Takes one WebSocket log frame; returns how many rows it added (0 for a repeat or an early one). */
  addFrame(frame) {
    return this.merger.push(frame).reduce((n, batch) => n + this.append(batch), 0);
  }

  /** Takes one REST page `{lines: [{seq, step, ...}], next_since_seq}` of the unfiltered log (whole batches). */
  addPage(page) {
    let added = 0;
    let batch = null;
    const flush = () => {
      if (batch) added += this.merger.push(batch, true).reduce((n, b) => n + this.append(b), 0);
    };
    for (const line of page.lines) {
      if (!batch || batch.seq !== line.seq) {
        flush();
        batch = { seq: line.seq, step: line.step, lines: [] };
      }
      batch.lines.push(line);
    }
    flush();
    return added;
  }

  append(batch) {
    const start = this.rows.length;
    for (const line of batch.lines) {
      const text = String(line.text ?? "");
      const previous = this.lastRow.get(batch.step);
      if (line.cont && previous !== undefined) {
        // The stored log cut a long line into parts; the reader sees it whole.
        const row = this.rows[previous];
        row.raw += text;
        row.text = collapseCR(row.raw);
        continue;
      }
      const line_no = (this.lineCount.get(batch.step) || 0) + 1;
      this.lineCount.set(batch.step, line_no);
      this.lastRow.set(batch.step, this.rows.length);
      this.rows.push({
        seq: batch.seq,
        step: batch.step,
        line: line_no,
        t: line.t,
        stream: line.stream,
        text: collapseCR(text),
        raw: text,
      });
    }
    this.seqRows.set(batch.seq, [start, this.rows.length]);
    this.version += 1;
    return this.rows.length - start;
  }

  /** Row indices for one step (null: all) and filter, kept up to date incrementally. */
  view(step = null, filter = "all") {
    const key = `${step ?? ""}\u0000${filter}`;
    let view = this.views.get(key);
    if (!view) {
      view = { indices: [], scanned: 0 };
      this.views.set(key, view);
    }
    const stream = FILTERS[filter] ?? null;
    for (let i = view.scanned; i < this.rows.length; i += 1) {
      const row = this.rows[i];
      if ((step === null || row.step === step) && (stream === null || row.stream === stream)) {
        view.indices.push(i);
      }
    }
    view.scanned = this.rows.length;
    return view.indices;
  }

  /** Index of line `line` of `step` in the rows, or -1 when it is not loaded (yet). */
  findLine(step, line) {
    const indices = this.view(step, "all");
    // Line numbers grow by one per row of a step, so the row of line N is the step's N-th row.
    const index = indices[line - 1];
    return index === undefined ? -1 : index;
  }

  /**
   * Rows of server-side search matches `[{seq, step, stream, text}]` (case-insensitive `needle`),
   * each match mapped to its row, repeats (parts of one long line) once; unmapped ones skipped.
   */
  matchRows(matches, needle) {
    const lower = needle.toLowerCase();
    const rows = [];
    const seen = new Set();
    const taken = new Map(); // seq -> next row to look at in that batch
    for (const match of matches) {
      const range = this.seqRows.get(match.seq);
      if (!range) continue;
      let i = Math.max(taken.get(match.seq) ?? range[0], range[0]);
      for (; i < range[1]; i += 1) {
        const row = this.rows[i];
        if (row.stream === match.stream && row.raw.toLowerCase().includes(lower)) break;
      }
      if (i >= range[1]) continue;
      taken.set(match.seq, match.cont ? i : i + 1);
      if (!seen.has(i)) {
        seen.add(i);
        rows.push(i);
      }
    }
    return rows;
  }
}
