import { test } from "node:test";
import assert from "node:assert/strict";
import { STEP_STATUSES, RUN_STATUSES, statusInfo, statusIconSvg, isTerminalRun } from "../lib/status.js";

test("every step and run status has the documents' glyph, a colour and a word", () => {
  const expected = {
    pending: ["○", "#5f6b7a"], waiting: ["⏳", "#8a6d00"], running: ["▶", "#1f5fbf"],
    succeeded: ["✓", "#1a7f37"], failed: ["✗", "#c62828"], skipped: ["⊘", "#5f6b7a"], cancelled: ["⊗", "#5f6b7a"],
  };
  for (const status of STEP_STATUSES) {
    const info = statusInfo(status);
    assert.deepEqual([info.glyph, info.color], expected[status], status);
    assert.equal(info.word, status);
  }
  for (const status of RUN_STATUSES) assert.ok(statusInfo(status).word.length > 0);
  assert.equal(statusInfo("timed_out").word, "timed out");
});

test("icons are decorative inline SVG in the status colour", () => {
  const svg = statusIconSvg("failed");
  assert.match(svg, /^<svg [^>]*aria-hidden="true"/);
  assert.match(svg, / color="#c62828"/);
  assert.doesNotMatch(svg, /style=/); // no inline style: CSP style-src 'self' on AWS
  assert.notEqual(statusIconSvg("succeeded"), statusIconSvg("failed"));
});

test("unknown statuses keep their own word", () => {
  assert.equal(statusInfo("exploded").word, "exploded");
});

test("terminal run statuses", () => {
  assert.ok(isTerminalRun("timed_out"));
  assert.ok(!isTerminalRun("waiting"));
});
