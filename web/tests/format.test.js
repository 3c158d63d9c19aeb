import { test } from "node:test";
import assert from "node:assert/strict";
import {
  elapsedMs, formatDuration, formatMoney, moneyValue, runCost, formatTrigger, formatRelative, formatTime,
} from "../lib/format.js";

test("durations read at a glance", () => {
  assert.equal(formatDuration(null), "—");
  assert.equal(formatDuration(850), "850ms");
  assert.equal(formatDuration(12_400), "12s");
  assert.equal(formatDuration(184_000), "3m 04s");
  assert.equal(formatDuration(7_500_000), "2h 05m");
});

test("elapsed runs to now while a run runs and stops at ended_at", () => {
  const start = "2026-01-01T00:00:00Z";
  assert.equal(elapsedMs(start, "2026-01-01T00:00:05Z"), 5000);
  assert.equal(elapsedMs(start, null, Date.parse("2026-01-01T00:01:00Z")), 60_000);
  assert.equal(elapsedMs(null, null), null);
});

test("money accepts decimal strings and numbers and keeps small costs visible", () => {
  assert.equal(moneyValue("0.012345"), 0.012345);
  assert.equal(moneyValue(""), null);
  assert.equal(moneyValue("abc"), null);
  assert.equal(formatMoney("0.012345"), "$0.012");
  assert.equal(formatMoney("0.0012"), "$0.0012");
  assert.equal(formatMoney(12.345), "$12.35");
  assert.equal(formatMoney("0"), "$0.00");
  assert.equal(formatMoney(undefined), "—");
});

test("a run's cost comes from any of the API's shapes", () => {
  assert.equal(runCost({ cost: { total_usd: "0.5" } }), 0.5);
  assert.equal(runCost({ cost_usd: "0.25" }), 0.25);
  assert.equal(runCost({ cost: 1 }), 1);
  assert.equal(runCost({}), null);
});

test("triggers carry their detail", () => {
  assert.equal(formatTrigger({ trigger: "git", trigger_detail: "main @ abc1234" }), "Git push main @ abc1234");
  assert.equal(
    formatTrigger({ trigger: "git", inputs: { ref: "refs/heads/main", commit: "abc1234def" } }),
    "Git push main @ abc1234",
  );
  assert.equal(
    formatTrigger({ trigger: "git", inputs: { branch: "main", commit: "abc1234def" } }),
    "Git push main @ abc1234",
  );
  assert.equal(formatTrigger({ trigger: "git" }), "Git push");
  assert.equal(formatTrigger({ trigger: "webhook", started_by: "webhook:deploy-hook" }), "webhook: deploy-hook");
  assert.equal(formatTrigger({ trigger: "schedule" }), "schedule");
  assert.equal(formatTrigger({ trigger: "retry", retry_of: "r-1" }), "retry of r-1");
  assert.equal(formatTrigger({}), "manual");
});

test("relative and absolute times", () => {
  const now = Date.parse("2026-01-01T01:00:00Z");
  assert.equal(formatRelative("2026-01-01T00:57:00Z", now), "3 min ago");
  assert.equal(formatRelative("2026-01-01T01:04:00Z", now), "in 4 min");
  assert.equal(formatTime(null), "—");
  assert.match(formatTime("2026-01-01T00:00:00Z"), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
});
