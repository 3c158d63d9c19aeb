// api.js in node with fakes for the browser's fetch, WebSocket, localStorage and location.
import { afterEach, beforeEach, mock, test } from "node:test";
import assert from "node:assert/strict";

class FakeSocket {
  static instances = [];
  static OPEN = 1;
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.readyState = 0;
    FakeSocket.instances.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
    this.onclose?.({});
  }
  // What the server does:
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  frame(data) {
    this.onmessage?.({ data: JSON.stringify(data) });
  }
  drop() {
    this.readyState = 3;
    this.onclose?.({});
  }
}

const storage = new Map();
globalThis.localStorage = {
  getItem: (k) => (storage.has(k) ? storage.get(k) : null),
  setItem: (k, v) => storage.set(k, String(v)),
  removeItem: (k) => storage.delete(k),
};
globalThis.location = { origin: "http://127.0.0.1:8765", search: "", hash: "#/runs" };
globalThis.WebSocket = FakeSocket;

const api = await import("../api.js");

beforeEach(() => {
  storage.clear();
  FakeSocket.instances = [];
  mock.timers.enable({ apis: ["setTimeout"] });
});
afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
});

function answer(status, body) {
  return async () => new Response(typeof body === "string" ? body : JSON.stringify(body), { status });
}

test("a refusal carries the API's code and message", async () => {
  globalThis.fetch = answer(409, { error: "ApprovalNotWaiting", message: "step approval is failed" });
  await assert.rejects(api.post("/runs/r/steps/approval/approve", {}), (error) => {
    assert.equal(error.name, "ApiError");
    assert.equal(error.status, 409);
    assert.equal(error.error, "ApprovalNotWaiting");
    assert.equal(error.message, "step approval is failed");
    return true;
  });
});

test("a non-JSON failure and a network failure still say what happened", async () => {
  globalThis.fetch = answer(502, "Bad gateway");
  await assert.rejects(api.get("/runs"), { status: 502, error: "HTTP502", message: "Bad gateway" });
  globalThis.fetch = async () => {
    throw new TypeError("Failed to fetch");
  };
  await assert.rejects(api.get("/runs"), { status: 0, error: "NetworkError" });
});

test("requests carry the identity and JSON; answers are parsed", async () => {
  const seen = [];
  globalThis.fetch = async (url, init) => {
    seen.push({ url, init });
    return new Response(JSON.stringify({ run_id: "r-1" }), { status: 202 });
  };
  api.setUser("jane@example.com");
  assert.deepEqual(await api.post("/workflows/w/runs", { inputs: { a: 1 } }), { run_id: "r-1" });
  assert.equal(seen[0].url, "http://127.0.0.1:8765/workflows/w/runs");
  assert.equal(seen[0].init.method, "POST");
  assert.equal(seen[0].init.headers["X-Flowdeck-User"], "jane@example.com");
  assert.equal(seen[0].init.body, JSON.stringify({ inputs: { a: 1 } }));
  api.setUser("");
  await api.get("/runs");
  assert.equal(seen[1].init.headers["X-Flowdeck-User"], undefined);
});

test("?user= in the page URL sets the identity and keeps it", () => {
  globalThis.location.search = "?user=rita@example.com";
  api.adoptUserFromUrl();
  globalThis.location.search = "";
  assert.equal(api.currentUser(), "rita@example.com");
  api.adoptUserFromUrl(); // no ?user= now: kept until changed
  assert.equal(api.currentUser(), "rita@example.com");
});

test("a subscription replays from sinceSeq and resumes from the last seq after a drop", () => {
  api.setUser("jane@example.com");
  const frames = [];
  const states = [];
  const close = api.subscribe("r-1", { sinceSeq: 2, onFrame: (f) => frames.push(f), onState: (s) => states.push(s) });
  const first = FakeSocket.instances[0];
  assert.equal(first.url, "ws://127.0.0.1:8765/ws?user=jane%40example.com");
  first.open();
  assert.deepEqual(first.sent, [{ action: "subscribe", run_id: "r-1", since_seq: 2 }]);
  first.frame({ type: "run", run_id: "r-1", status: "running" });
  first.frame({ type: "log", run_id: "r-1", step: "a", seq: 3, lines: [] });
  first.frame({ type: "log", run_id: "r-1", step: "a", seq: 5, lines: [] });
  first.frame({ type: "log", run_id: "other", step: "a", seq: 9, lines: [] });
  assert.deepEqual(frames.map((f) => f.seq ?? f.type), ["run", 3, 5]);

  first.drop();
  assert.equal(FakeSocket.instances.length, 1); // waits before reconnecting
  mock.timers.tick(500);
  const second = FakeSocket.instances[1];
  second.open();
  assert.deepEqual(second.sent, [{ action: "subscribe", run_id: "r-1", since_seq: 5 }]);

  // Backoff doubles while the server stays away, and resets once a connection opens.
  second.drop();
  mock.timers.tick(499);
  assert.equal(FakeSocket.instances.length, 2);
  mock.timers.tick(1);
  FakeSocket.instances[2].drop();
  mock.timers.tick(999);
  assert.equal(FakeSocket.instances.length, 3);
  mock.timers.tick(1);
  assert.equal(FakeSocket.instances.length, 4);

  close();
  assert.deepEqual(states, ["open", "reconnecting", "open", "reconnecting", "reconnecting", "closed"]);
  mock.timers.tick(20_000);
  assert.equal(FakeSocket.instances.length, 4); // closed for good
});

test("a new identity reconnects the live subscriptions under it", () => {
  const close = api.subscribe("r-2", { onFrame: () => {} });
  FakeSocket.instances[0].open();
  api.setUser("sam@example.com");
  const again = FakeSocket.instances[1];
  assert.equal(again.url, "ws://127.0.0.1:8765/ws?user=sam%40example.com");
  again.open();
  assert.deepEqual(again.sent, [{ action: "subscribe", run_id: "r-2", since_seq: 0 }]);
  close();
});
