import assert from "node:assert/strict";
import { test } from "node:test";

import { collapseCR, lineLink } from "../lib/lines.js";
import { LogBuffer } from "../lib/logbuffer.js";
import { SeqMerger } from "../lib/seqmerge.js";

const line = (text, stream = "stdout", extra = {}) => ({ t: 1, stream, text, ...extra });

test("seq merger drops repeats and holds early batches until the gap fills", () => {
  const merger = new SeqMerger();
  assert.deepEqual(merger.push({ seq: 2, step: "a", lines: [line("two")] }), []);
  const ready = merger.push({ seq: 1, step: "a", lines: [line("one")] });
  assert.deepEqual(
    ready.map((b) => b.seq),
    [1, 2],
  );
  assert.deepEqual(merger.push({ seq: 1, step: "a", lines: [line("one")] }), []);
  assert.equal(merger.last, 2);
});

test("seq merger joins a batch's frame parts in part order", () => {
  const merger = new SeqMerger();
  assert.deepEqual(merger.push({ seq: 1, step: "a", part: 2, parts: 2, lines: [line("b")] }), []);
  const [batch] = merger.push({ seq: 1, step: "a", part: 1, parts: 2, lines: [line("a")] });
  assert.deepEqual(
    batch.lines.map((l) => l.text),
    ["a", "b"],
  );
});

test("seq merger advanced by a REST page drops what the page already held", () => {
  const merger = new SeqMerger();
  merger.push({ seq: 3, step: "a", lines: [line("3")] });
  merger.push({ seq: 5, step: "a", lines: [line("5")] });
  const ready = merger.advanceTo(4);
  assert.deepEqual(
    ready.map((b) => b.seq),
    [5],
  );
});

test("rows are numbered per step, and cont parts join the line they continue", () => {
  const buffer = new LogBuffer();
  buffer.addPage({
    lines: [
      { seq: 1, step: "build", ...line("b1") },
      { seq: 1, step: "build", ...line("b2") },
      { seq: 2, step: "test", ...line("t1") },
      { seq: 3, step: "build", ...line("b3-") },
      { seq: 4, step: "build", ...line("rest", "stdout", { cont: true }) },
    ],
  });
  assert.deepEqual(
    buffer.rows.map((r) => [r.step, r.line, r.text]),
    [
      ["build", 1, "b1"],
      ["build", 2, "b2"],
      ["test", 1, "t1"],
      ["build", 3, "b3-rest"],
    ],
  );
  assert.equal(buffer.lastSeq, 4);
  assert.equal(buffer.rows[buffer.findLine("build", 3)].text, "b3-rest");
  assert.equal(buffer.findLine("build", 4), -1);
});

test("a live frame repeating a stored batch adds nothing; the next one appends", () => {
  const buffer = new LogBuffer();
  buffer.addPage({ lines: [{ seq: 1, step: "a", ...line("one") }] });
  assert.equal(buffer.addFrame({ seq: 1, step: "a", lines: [line("one")] }), 0);
  assert.equal(buffer.addFrame({ seq: 2, step: "a", lines: [line("two"), line("three")] }), 2);
  assert.deepEqual(
    buffer.rows.map((r) => r.line),
    [1, 2, 3],
  );
});

test("views keep one step and one stream, and grow with new rows", () => {
  const buffer = new LogBuffer();
  buffer.addFrame({ seq: 1, step: "a", lines: [line("out"), line("err", "stderr")] });
  assert.deepEqual(buffer.view(null, "errors"), [1]);
  buffer.addFrame({ seq: 2, step: "b", lines: [line("err b", "stderr")] });
  assert.deepEqual(buffer.view(null, "errors"), [1, 2]);
  assert.deepEqual(buffer.view("a", "output"), [0]);
  assert.deepEqual(buffer.view("b", "all"), [2]);
});

test("search matches map to their rows, a long line's parts once", () => {
  const buffer = new LogBuffer();
  buffer.addFrame({
    seq: 1,
    step: "a",
    lines: [line("Error one"), line("fine"), line("error two", "stderr")],
  });
  const rows = buffer.matchRows(
    [
      { seq: 1, stream: "stdout", text: "Error one" },
      { seq: 1, stream: "stderr", text: "error two" },
    ],
    "ERROR",
  );
  assert.deepEqual(rows, [0, 2]);
});

test("carriage-return progress collapses to its last state", () => {
  assert.equal(collapseCR("10%\r20%\r30%"), "30%");
  assert.equal(collapseCR("done\r"), "done");
  assert.equal(collapseCR("plain"), "plain");
});

test("line links are the SPEC deep links", () => {
  assert.equal(lineLink("r-1", "apply", 120), "#/runs/r-1?step=apply&line=120");
});

test("a stored batch completes one whose frame part was lost, and what waited on it follows", () => {
  const buffer = new LogBuffer();
  // Part 1 of 2 of seq 1 arrived, then the connection dropped; the replay went on from seq 2.
  buffer.addFrame({ seq: 1, step: "a", part: 1, parts: 2, lines: [line("one")] });
  buffer.addFrame({ seq: 2, step: "a", lines: [line("three")] });
  assert.equal(buffer.rows.length, 0);
  assert.ok(buffer.merger.stalled);
  buffer.addPage({ lines: [{ seq: 1, step: "a", ...line("one") }, { seq: 1, step: "a", ...line("two") }] });
  assert.deepEqual(
    buffer.rows.map((r) => r.text),
    ["one", "two", "three"],
  );
  assert.ok(!buffer.merger.stalled);
});

// One run's stored log: six batches of two steps, both streams; seq 5 crosses the socket in two parts.
const STORED = [
  { seq: 1, step: "build", lines: [line("warning 50", "stderr"), line("compiled ok")] },
  { seq: 2, step: "build", lines: [line("build line 1"), line("build line 2")] },
  { seq: 3, step: "test", lines: [line("test line 1")] },
  { seq: 4, step: "build", lines: [line("build line 3"), line("warning 100", "stderr")] },
  { seq: 5, step: "build", lines: [line("build line 4"), line("build line 5"), line("build line 6")] },
  { seq: 6, step: "test", lines: [line("test line 2")] },
];
const restPage = (batches) => ({
  lines: batches.flatMap((b) => b.lines.map((l) => ({ seq: b.seq, step: b.step, ...l }))),
  next_since_seq: batches.at(-1).seq,
});
const liveFrames = (batches) =>
  batches.flatMap((b) =>
    b.seq === 5
      ? [
          { ...b, part: 1, parts: 2, lines: b.lines.slice(0, 2) },
          { ...b, part: 2, parts: 2, lines: b.lines.slice(2) },
        ]
      : [b],
  );

/** Every way to interleave two ordered lists (each keeps its own order). */
function* interleavings(a, b) {
  if (a.length === 0 || b.length === 0) {
    yield [...a, ...b];
    return;
  }
  for (const rest of interleavings(a.slice(1), b)) yield [a[0], ...rest];
  for (const rest of interleavings(a, b.slice(1))) yield [b[0], ...rest];
}

test("the stored pages and the live replay give the same numbered rows in every arrival order", () => {
  // The view's two sources: REST pages (each then advances the merger, as useRunLog does) and the
  // socket's replay-then-live frames from seq 2, which overlap the pages.
  const pages = [STORED.slice(0, 3), STORED.slice(3)].map((batches) => (buffer) => {
    buffer.addPage(restPage(batches));
    buffer.merger.advanceTo(batches.at(-1).seq);
  });
  const frames = liveFrames(STORED.slice(1)).map((frame) => (buffer) => buffer.addFrame(frame));
  const expected = [
    ["build", 1, "warning 50"],
    ["build", 2, "compiled ok"],
    ["build", 3, "build line 1"],
    ["build", 4, "build line 2"],
    ["test", 1, "test line 1"],
    ["build", 5, "build line 3"],
    ["build", 6, "warning 100"],
    ["build", 7, "build line 4"],
    ["build", 8, "build line 5"],
    ["build", 9, "build line 6"],
    ["test", 2, "test line 2"],
  ];
  let orders = 0;
  for (const order of interleavings(pages, frames)) {
    const buffer = new LogBuffer();
    for (const arrive of order) arrive(buffer);
    assert.deepEqual(
      buffer.rows.map((r) => [r.step, r.line, r.text]),
      expected,
    );
    assert.equal(buffer.rows[buffer.findLine("build", 1)].text, "warning 50");
    assert.ok(!buffer.merger.stalled);
    orders += 1;
  }
  assert.equal(orders, 28); // C(8, 2): two pages among six frames
});

test("a reconnect's replay repeating frames the view has adds nothing and keeps the numbering", () => {
  const buffer = new LogBuffer();
  buffer.addPage(restPage(STORED.slice(0, 2)));
  buffer.merger.advanceTo(2);
  // Live from seq 3; the socket dropped after part 1 of seq 5 and the replay resumes from seq 4.
  const [p1, p2] = liveFrames([STORED[4]]);
  for (const frame of [STORED[2], STORED[3], p1, STORED[3], p1, p2, STORED[5]]) buffer.addFrame(frame);
  assert.deepEqual(
    buffer.view("build", "all").map((i) => [buffer.rows[i].line, buffer.rows[i].text]),
    [
      [1, "warning 50"],
      [2, "compiled ok"],
      [3, "build line 1"],
      [4, "build line 2"],
      [5, "build line 3"],
      [6, "warning 100"],
      [7, "build line 4"],
      [8, "build line 5"],
      [9, "build line 6"],
    ],
  );
});
