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
//     close() stops it for good. Each subscription has its own socket (a connection follows one run).
//   currentUser() -> string | null; setUser(email | null); onUserChange(fn) -> unsubscribe
//     Locally `?user=EMAIL` in the page URL sets the identity (kept in localStorage); it is sent as
//     X-Flowdeck-User on REST and as `?user=` on the WebSocket (both trusted on the local stack only).
//   apiUrl(path) -> absolute URL of an API path (for links such as downloads; adds no identity).
//   start() -> Promise<boolean>  reads config.json; in "cognito" mode (AWS) finishes or starts the
//     sign-in (false: the browser is on its way to the sign-in page). Call once before any request.
//   signedIn() -> boolean (cognito mode); signOut()
//   send(path, init) -> Promise<Response>  a raw call with the identity (signed on AWS), e.g. paged text
//   openLink(path) -> opens an artifact/ZIP download: asks the API for the presigned URL as JSON
//     (`link=true`) and navigates to it, so no SigV4 header goes to S3 with the redirect
//     In cognito mode REST calls are SigV4-signed with the identity pool's credentials, the WebSocket
//     handshake URL is signed on every (re)connect, and the identity is the signed-in person's e-mail.

import * as auth from "./auth.js";

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

let config = { mode: "local" };

export async function start() {
  config = await auth.loadConfig();
  if (config.mode !== "cognito") return true;
  return auth.startSession(config);
}

export const signedIn = () => config.mode === "cognito";
export const signOut = () => auth.signOut();

// The API lives where the page is served from (local stack), unless config.json names it (AWS) or
// the page says otherwise (<meta name="flowdeck-api" content="https://...">).
function apiBase() {
  const meta = globalThis.document?.querySelector('meta[name="flowdeck-api"]')?.content;
  return (config.apiUrl || meta || globalThis.location.origin).replace(/\/$/, "");
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
  if (signedIn()) return auth.signedInEmail();
  return globalThis.localStorage.getItem(USER_KEY) || null;
}

export function setUser(email) {
  if (signedIn()) return; // the signed-in person is who the API sees; there is nothing to pick
  const value = (email || "").trim();
  if (value === (currentUser() || "")) return;
  if (value) globalThis.localStorage.setItem(USER_KEY, value);
  else globalThis.localStorage.removeItem(USER_KEY);
  for (const listener of userListeners) listener(value || null);
  // The WebSocket identity is fixed at connect: reconnect under the new one.
  for (const subscription of live) subscription.restart();
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
  // On AWS the API reads the person from the signature; the header is for the local stack only.
  if (user && !signedIn()) headers[USER_HEADER] = user;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
  let response;
  try {
    response = await (signedIn() ? auth.signedFetch(apiUrl(path), init) : fetch(apiUrl(path), init));
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

export function send(path, init = {}) {
  const headers = { ...(init.headers || {}) };
  const user = currentUser();
  if (user && !signedIn()) headers[USER_HEADER] = user;
  const call = { ...init, headers };
  return signedIn() ? auth.signedFetch(apiUrl(path), call) : fetch(apiUrl(path), call);
}

export async function openLink(path) {
  const { url } = await request("GET", `${path}${path.includes("?") ? "&" : "?"}link=true`);
  globalThis.location.assign(url);
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

/** One socket per subscription (the server points a connection at one run); it resumes from its last seq. */
class LiveSubscription {
  constructor(runId, sinceSeq, onFrame, onState) {
    this.runId = runId;
    this.lastSeq = sinceSeq;
    this.onFrame = onFrame;
    this.onState = onState;
    this.ws = null;
    this.delay = BACKOFF_FIRST_MS;
    this.timer = null;
    this.closed = false;
  }

  connect() {
    this.timer = null;
    if (!signedIn()) return this.open(wsUrl());
    // On AWS the handshake is signed afresh on every connect (short-lived URL, renewed credentials).
    const attempt = {};
    this.attempt = attempt;
    const current = () => !this.closed && this.attempt === attempt; // not closed or restarted meanwhile
    auth.signedSocketUrl(config.websocketUrl).then(
      (url) => current() && this.open(url),
      () => current() && this.retry(), // credentials could not be renewed: back off like a drop
    );
  }

  open(url) {
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.delay = BACKOFF_FIRST_MS;
      this.onState?.("open");
      ws.send(JSON.stringify({ action: "subscribe", run_id: this.runId, since_seq: this.lastSeq }));
    };
    ws.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return; // not a frame of SPEC §4
      }
      if (frame.run_id && frame.run_id !== this.runId) return;
      if (frame.type === "log" && typeof frame.seq === "number") this.lastSeq = Math.max(this.lastSeq, frame.seq);
      this.onFrame(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws || this.closed) return; // replaced on purpose, or closed by the view
      this.ws = null;
      this.retry();
    };
    // An error is followed by close, which schedules the reconnect.
    ws.onerror = () => {};
  }

  retry() {
    this.onState?.("reconnecting");
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, BACKOFF_MAX_MS);
  }

  /** Reconnect now (the identity changed: the WebSocket's is fixed at connect). */
  restart() {
    if (this.closed) return;
    clearTimeout(this.timer);
    const old = this.ws;
    this.ws = null;
    old?.close();
    this.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    const old = this.ws;
    this.ws = null;
    old?.close();
    live.delete(this);
    this.onState?.("closed");
  }
}

const live = new Set();

export function subscribe(runId, { sinceSeq = 0, onFrame, onState } = {}) {
  const subscription = new LiveSubscription(runId, sinceSeq, onFrame, onState);
  live.add(subscription);
  subscription.connect();
  return () => subscription.close();
}
