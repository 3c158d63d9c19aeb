import { test } from "node:test";
import assert from "node:assert/strict";
import {
  filtersFrom, filtersQuery, historyPath, isoToLocalInput, localInputToIso, nextSort,
} from "../lib/history.js";

const query = (text) => new URLSearchParams(text);

test("URL filters become the API's query, user as started_by", () => {
  const filters = filtersFrom(query("status=failed&trigger=git&workflow=deploy&user=jane@example.com"));
  const path = historyPath(filters);
  const params = new URLSearchParams(path.split("?")[1]);
  assert.equal(params.get("status"), "failed");
  assert.equal(params.get("trigger"), "git");
  assert.equal(params.get("workflow"), "deploy");
  assert.equal(params.get("started_by"), "jane@example.com");
  assert.equal(params.get("sort"), "started_at");
  assert.equal(params.get("order"), "desc");
  assert.equal(params.get("limit"), "25");
  assert.equal(params.has("since"), false);
});

test("a relative range counts back from now; custom passes its bounds", () => {
  const now = Date.parse("2026-12-06T12:00:00Z");
  const week = new URLSearchParams(historyPath(filtersFrom(query("range=7d")), now).split("?")[1]);
  assert.equal(week.get("since"), "2026-11-29T12:00:00.000Z");
  const custom = filtersFrom(query("range=custom&since=2026-12-01T00:00:00.000Z&until=2026-12-02T00:00:00.000Z"));
  const params = new URLSearchParams(historyPath(custom, now).split("?")[1]);
  assert.equal(params.get("since"), "2026-12-01T00:00:00.000Z");
  assert.equal(params.get("until"), "2026-12-02T00:00:00.000Z");
});

test("unknown values fall back to defaults and defaults stay out of the URL", () => {
  const filters = filtersFrom(query("sort=bogus&order=sideways&range=99y"));
  assert.equal(filters.sort, "started_at");
  assert.equal(filters.order, "desc");
  assert.equal(filters.range, "");
  assert.deepEqual(filtersQuery(filters), {});
  assert.deepEqual(filtersQuery({ ...filters, sort: "cost", status: "failed" }), { status: "failed", sort: "cost" });
});

test("the page size comes from the URL within the API's limit", () => {
  assert.equal(filtersFrom(query("limit=2")).limit, 2);
  assert.equal(filtersFrom(query("limit=500")).limit, 25);
  assert.equal(filtersFrom(query("limit=x")).limit, 25);
  const filters = filtersFrom(query("limit=2"));
  assert.equal(new URLSearchParams(historyPath(filters).split("?")[1]).get("limit"), "2");
  assert.deepEqual(filtersQuery(filters), { limit: 2 });
});

test("clicking a column sorts by it, clicking again flips the order", () => {
  const filters = filtersFrom(query(""));
  assert.deepEqual(nextSort(filters, "cost"), { sort: "cost", order: "desc" });
  assert.deepEqual(nextSort({ ...filters, sort: "cost" }, "cost"), { sort: "cost", order: "asc" });
});

test("datetime-local values round-trip through ISO", () => {
  const iso = localInputToIso("2026-12-01T08:30");
  assert.equal(isoToLocalInput(iso), "2026-12-01T08:30");
  assert.equal(localInputToIso(""), "");
  assert.equal(localInputToIso("nope"), "");
});
