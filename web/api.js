// The page's one API client: REST, the live WebSocket and the identity (STYLE §13).
//
// Interface (every view uses only this):
//   get(path)            -> Promise<parsed JSON>; path is relative to the API, e.g. "/runs?status=failed"
//   post(path, body)     -> Promise<parsed JSON | null>     (JSON body; null for an empty answer)
//   put(path, body)      -> Promise<parsed JSON | null>
//   getText(path)        -> Promise<string>                 (e.g. logs with format=text)
//   All throw ApiError {status, error, message} on a non-2xx answer: `error` is the SPEC §3 code
//   ("RunNotFound", "NotAllowed"...) and `message` the API's own words, to show as they are.
//   A network failure throws ApiError {status: 0, error: "NetworkError"}.
//   subscribe(runId, {sinceSeq = 0, onFrame, onState}) -> close()
//     Subscribes over the WebSocket (SPEC §4); the server replays frames after sinceSeq, then live.
//     onFrame(frame) gets every run/step/log/error frame. On a dropped connection it reconnects with
//     backoff (0.5 s doubling to 10 s) and resubscribes from the highest log seq it delivered for that
//     run, so a view sees every line at least once (merge by seq). onState("open"|"reconnecting"|"closed").
//     close() stops it for good. One socket is shared by every subscription of the page.
//   currentUser() -> string | null; setUser(email | null); onUserChange(fn) -> unsubscribe
//     Locally `?user=EMAIL` in the page URL sets the identity (kept in localStorage); it is sent as
//     X-Flowdeck-User on REST and as `?user=` on the WebSocket (both trusted on the local stack only).
//   apiUrl(path) -> absolute URL of an API path (for links such as downloads; adds no identity).

const USER_KEY = "flowdeck.user";
const USER_HEADER = "X-Flowdeck-User";
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10_000;

/** An API refusal or failure, carrying the API's code and message. */
export class ApiError extends Error {
  constructor(status, error, message) {
    super(message || error || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.error = error;
  }
}

// The API lives where the page is served from (local stack), unless the page says otherwise
// (<meta name="flowdeck-api" content="https://..."> for CloudFront in front of API Gateway).
function apiBase() {
  const meta = globalThis.document?.querySelector('meta[name="flowdeck-api"]')?.content;
  return (meta || globalThis.location.origin).replace(/\/$/, "");
}

export function apiUrl(path) {
  return `${apiBase()}${path.startsWith("/") ? path : `/${path}`}`;
}

// -- identity ---------------------------------------------------------------------------------
const userListeners = new Set();

function userFromUrl() {
  const fromSearch = new URLSearchParams(globalThis.location.search).get("user");
  if (fromSearch !== null) return fromSearch;
  const hash = globalThis.location.hash;
  const query = hash.includes("?") ? hash.slice(hash.indexOf("?") + 1) : "";
  return new URLSearchParams(query).get("user");
}

export function currentUser() {
  return globalThis.localStorage.getItem(USER_KEY) || null;
}

export function setUser(email) {
  const value = (email || "").trim();
  if (value === (currentUser() || "")) return;
  if (value) globalThis.localStorage.setItem(USER_KEY, value);
  else globalThis.localStorage.removeItem(USER_KEY);
  for (const listener of userListeners) listener(value || null);
  // The WebSocket identity is fixed at connect: reconnect under the new one.
  socket?.restart();
}

export function onUserChange(listener) {
  userListeners.add(listener);
  return () => userListeners.delete(listener);
}

/** Take `?user=` from the page URL once at start (kept until changed). */
export function adoptUserFromUrl() {
  const fromUrl = userFromUrl();
  if (fromUrl !== null) setUser(fromUrl);
}

// -- REST -------------------------------------------------------------------------------------
async function request(method, path, body, accept = "json") {
  const headers = { Accept: accept === "json" ? "application/json" : "text/plain" };
  const user = currentUser();
  if (user) headers[USER_HEADER] = user;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(apiUrl(path), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (cause) {
    throw new ApiError(0, "NetworkError", `The API did not answer (${cause.message}).`);
  }
  const text = await response.text();
  if (!response.ok) {
    let payload = null;
    try {
      payload = JSON.parse(text);
    } catch {
      // Not JSON (a proxy's page): show the status and the start of the body.
    }
    throw new ApiError(
      response.status,
      payload?.error ?? `HTTP${response.status}`,
      payload?.message ?? (text.slice(0, 200) || `${method} ${path} answered ${response.status}`),
    );
  }
  if (accept !== "json") return text;
  return text ? JSON.parse(text) : null;
}

export const get = (path) => request("GET", path);
export const post = (path, body = {}) => request("POST", path, body);
export const put = (path, body = {}) => request("PUT", path, body);
export const getText = (path) => request("GET", path, undefined, "text");

// -- WebSocket --------------------------------------------------------------------------------
function wsUrl() {
  const url = new URL(apiUrl("/ws"));
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const user = currentUser();
  if (user) url.searchParams.set("user", user);
  return url.toString();
}

/** One socket for the page; subscriptions survive reconnects and resume from their last seq. */
class LiveSocket {
  constructor() {
    this.subscriptions = new Set();
    this.ws = null;
    this.delay = BACKOFF_FIRST_MS;
    this.timer = null;
  }

  add(subscription) {
    this.subscriptions.add(subscription);
    if (this.ws?.readyState === WebSocket.OPEN) this.send(subscription);
    else if (!this.ws && !this.timer) this.connect();
  }

  remove(subscription) {
    this.subscriptions.delete(subscription);
    if (this.subscriptions.size === 0) this.shutdown();
  }

  connect() {
    this.timer = null;
    const ws = new WebSocket(wsUrl());
    this.ws = ws;
    ws.onopen = () => {
      this.delay = BACKOFF_FIRST_MS;
      for (const subscription of this.subscriptions) {
        subscription.onState?.("open");
        this.send(subscription);
      }
    };
    ws.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return; // not a frame of SPEC §4
      }
      for (const subscription of this.subscriptions) {
        if (frame.run_id && frame.run_id !== subscription.runId) continue;
        if (frame.type === "log" && typeof frame.seq === "number") {
          subscription.lastSeq = Math.max(subscription.lastSeq, frame.seq);
        }
        subscription.onFrame(frame);
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return; // replaced on purpose
      this.ws = null;
      if (this.subscriptions.size === 0) return;
      for (const subscription of this.subscriptions) subscription.onState?.("reconnecting");
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, BACKOFF_MAX_MS);
    };
    // Errors are followed by close, which schedules the reconnect.
    ws.onerror = () => {};
  }

  send(subscription) {
    this.ws.send(
      JSON.stringify({ action: "subscribe", run_id: subscription.runId, since_seq: subscription.lastSeq }),
    );
  }

  restart() {
    if (!this.ws) return;
    const old = this.ws;
    this.ws = null;
    old.close();
    this.connect();
  }

  shutdown() {
    clearTimeout(this.timer);
    this.timer = null;
    const old = this.ws;
    this.ws = null;
    old?.close();
    socket = null;
  }
}

let socket = null;

export function subscribe(runId, { sinceSeq = 0, onFrame, onState } = {}) {
  const subscription = { runId, lastSeq: sinceSeq, onFrame, onState };
  socket ??= new LiveSocket();
  const owner = socket;
  owner.add(subscription);
  return function close() {
    owner.remove(subscription);
    subscription.onState?.("closed");
  };
}
