import { test } from "node:test";
import assert from "node:assert/strict";
import { hrefFor, matchRoute, parseHash } from "../lib/route.js";

test("hash routes parse into segments and a query", () => {
  const route = parseHash("#/runs/r-1?step=apply&line=120");
  assert.deepEqual(route.segments, ["runs", "r-1"]);
  assert.equal(route.query.get("step"), "apply");
  assert.equal(route.query.get("line"), "120");
  assert.deepEqual(parseHash("").segments, ["runs"]);
});

test("SPEC §6 routes pick their view", () => {
  assert.deepEqual(matchRoute(["runs"]), { view: "runs", params: {} });
  assert.deepEqual(matchRoute(["runs", "r-1"]), { view: "run", params: { id: "r-1" } });
  assert.deepEqual(matchRoute(["inbox"]), { view: "inbox", params: {} });
  assert.deepEqual(matchRoute(["workflows", "deploy"]), { view: "workflows", params: { workflow: "deploy" } });
  assert.equal(matchRoute(["nope"]), null);
  assert.equal(matchRoute(["runs", "a", "b"]), null);
});

test("hrefs leave empty filters out and round-trip", () => {
  const href = hrefFor("/runs", { status: "failed", trigger: "", workflow: null, sort: "cost" });
  assert.equal(href, "#/runs?status=failed&sort=cost");
  assert.equal(parseHash(href).query.get("sort"), "cost");
  assert.equal(hrefFor("/inbox"), "#/inbox");
});
