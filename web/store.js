// What the page knows, shared by every view: errors to show, the identity, navigation helpers.
import { useEffect, useState } from "preact/hooks";
import { currentUser, onUserChange } from "./api.js";
import { hrefFor } from "./lib/route.js";

/** A tiny observable value: get(), set(next | fn), subscribe(fn) -> unsubscribe. */
export function createStore(initial) {
  let value = initial;
  const listeners = new Set();
  return {
    get: () => value,
    set(next) {
      value = typeof next === "function" ? next(value) : next;
      for (const listener of listeners) listener(value);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** Re-render a component when a store changes. */
export function useStore(store) {
  const [value, setValue] = useState(store.get());
  useEffect(() => {
    setValue(store.get());
    return store.subscribe(setValue);
  }, [store]);
  return value;
}

// -- errors: shown in the banner with the API's own message, never swallowed -----------------
export const errors = createStore([]);
let nextErrorId = 1;

/** Show an error (an ApiError keeps its code and message); returns its id. */
export function showError(error, context = "") {
  const id = nextErrorId++;
  const code = error?.error ?? error?.name ?? "Error";
  const message = error?.message ?? String(error);
  errors.set((list) => [...list.filter((e) => e.message !== message), { id, code, message, context }]);
  return id;
}

export function dismissError(id) {
  errors.set((list) => list.filter((e) => e.id !== id));
}

export function clearErrors() {
  errors.set([]);
}

// -- identity ---------------------------------------------------------------------------------
export const user = createStore(currentUser());
onUserChange((email) => user.set(email));

// -- navigation -------------------------------------------------------------------------------
/** Go to a route: `navigate("/runs", {status: "failed"})`; `replace` keeps history clean for filters. */
export function navigate(path, query = {}, { replace = false } = {}) {
  const href = hrefFor(path, query);
  if (replace) globalThis.history.replaceState(null, "", href);
  else globalThis.history.pushState(null, "", href);
  // pushState fires no hashchange: tell the router ourselves.
  globalThis.dispatchEvent(new HashChangeEvent("hashchange"));
}

/** Call `callback` every `ms` while `active` (live tickers: durations, running rows). */
export function useInterval(callback, ms, active = true) {
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(callback, ms);
    return () => clearInterval(timer);
  }, [callback, ms, active]);
}
