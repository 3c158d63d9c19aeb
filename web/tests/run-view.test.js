import assert from "node:assert/strict";
import { test } from "node:test";

import { channelState } from "../views/run/approval.js";
import { graphOf } from "../views/run/dag.js";
import { stepRequest } from "../views/run/steps.js";

const run = { run_id: "r 1", status: "failed" };

test("each step action sends the request of SPEC §3", () => {
  assert.deepEqual(stepRequest(run, { id: "apply", status: "waiting" }, "retry_step"), [
    "/runs/r%201/steps/apply/retry",
    {},
  ]);
  assert.deepEqual(stepRequest(run, { id: "apply", status: "failed" }, "retry_step"), [
    "/runs/r%201/retry",
    { from_step: "apply" },
  ]);
  assert.deepEqual(stepRequest(run, { id: "plan", status: "succeeded" }, "retry_from_here"), [
    "/runs/r%201/retry",
    { from_step: "plan" },
  ]);
  assert.deepEqual(stepRequest(run, { id: "warm", status: "waiting" }, "skip"), ["/runs/r%201/steps/warm/skip", {}]);
  assert.equal(stepRequest(run, { id: "x" }, "approve"), null);
});

test("channels read the notifier's record, failures with their error", () => {
  const approval = {
    delivered: { email: false, email_to: ["jane@example.com"], slack: true },
    delivery_errors: [{ channel: "slack", error: "Slack is not configured" }],
  };
  assert.equal(channelState(approval, "inbox"), "in the inbox");
  assert.equal(channelState(approval, "email"), "sent to 1 (not all yet)");
  assert.equal(channelState(approval, "slack"), "not delivered (Slack is not configured)");
  assert.equal(channelState({ slack: { ts: "1" } }, "slack"), "posted");
  assert.equal(channelState({}, "email"), "pending");
});

test("the graph is the workflow's, else the run's steps in a chain", () => {
  const workflow = { graph: { nodes: [{ id: "a" }, { id: "b", name: "Bee" }], edges: [["a", "b"]] } };
  assert.deepEqual(graphOf({ steps: [] }, workflow), {
    nodes: [
      { id: "a", name: "a" },
      { id: "b", name: "Bee" },
    ],
    edges: [["a", "b"]],
  });
  assert.deepEqual(graphOf({ steps: [{ id: "x" }, { id: "y" }] }, null).edges, [["x", "y"]]);
});
