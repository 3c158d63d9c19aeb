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
