// The shell: header nav, user picker, error banner, hash router loading one view module at a time.
//
// A view module (web/views/<name>.js) exports a default Preact component that receives
// `{params, query}`: params from the route (`{id}` for #/runs/{id}, `{workflow}` for #/workflows/{wf}),
// query a URLSearchParams of the hash's query. It reports failures with store.showError(error).
import { html, render } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { adoptUserFromUrl, currentUser, setUser, signedIn, signOut, start } from "./api.js";
import { clearErrors, dismissError, errors, useStore, user } from "./store.js";
import { matchRoute, parseHash } from "./lib/route.js";

const NAV = [
  { view: "runs", href: "#/runs", label: "Runs", also: ["run"] },
  { view: "inbox", href: "#/inbox", label: "Inbox", also: [] },
  { view: "workflows", href: "#/workflows", label: "Workflows", also: [] },
];
const TITLES = { runs: "Runs", run: "Run", inbox: "Inbox", workflows: "Workflows" };

// Views load on first use; each import is kept so a view's module is fetched once.
const loaders = {
  runs: () => import("./views/runs.js"),
  run: () => import("./views/run.js"),
  inbox: () => import("./views/inbox.js"),
  workflows: () => import("./views/workflows.js"),
};

function useRoute() {
  const [route, setRoute] = useState(() => parseHash(globalThis.location.hash));
  useEffect(() => {
    const update = () => setRoute(parseHash(globalThis.location.hash));
    globalThis.addEventListener("hashchange", update);
    globalThis.addEventListener("popstate", update);
    return () => {
      globalThis.removeEventListener("hashchange", update);
      globalThis.removeEventListener("popstate", update);
    };
  }, []);
  return route;
}

/** On AWS: who signed in, and the way out (the identity comes from the sign-in, not a picker). */
function SignedIn() {
  const email = useStore(user);
  return html`
    <div class="user-picker">
      <span>Signed in as <strong>${email}</strong></span>
      <button type="button" onClick=${signOut}>Sign out</button>
    </div>
  `;
}

function UserPicker() {
  const email = useStore(user);
  const [draft, setDraft] = useState(email ?? "");
  useEffect(() => setDraft(email ?? ""), [email]);
  const submit = (event) => {
    event.preventDefault();
    setUser(draft);
  };
  return html`
    <form class="user-picker" onSubmit=${submit}>
      <label for="user-picker-email">Signed in as</label>
      <input
        id="user-picker-email"
        type="email"
        placeholder="you@example.com"
        autocomplete="email"
        value=${draft}
        onInput=${(e) => setDraft(e.currentTarget.value)}
      />
      <button type="submit">Switch user</button>
    </form>
  `;
}

function ErrorBanner() {
  const list = useStore(errors);
  if (list.length === 0) return null;
  return html`
    <div class="error-banner" role="alert">
      ${list.map(
        (e) => html`
          <p key=${e.id} class="error">
            <strong>${e.code}</strong>${e.context ? ` (${e.context})` : ""}: ${e.message}
            <button type="button" class="link" onClick=${() => dismissError(e.id)} aria-label=${`Dismiss ${e.code}`}>
              Dismiss
            </button>
          </p>
        `,
      )}
    </div>
  `;
}

function View({ route }) {
  const match = matchRoute(route.segments);
  const [loaded, setLoaded] = useState(null);
  const [failure, setFailure] = useState(null);
  const name = match?.view;
  useEffect(() => {
    if (!name) return undefined;
    let current = true;
    setFailure(null);
    loaders[name]()
      .then((module) => current && setLoaded({ name, Component: module.default }))
      .catch((error) => current && setFailure(error));
    return () => {
      current = false;
    };
  }, [name]);
  useEffect(() => {
    document.title = `${TITLES[name] ?? "Not found"} · Flowdeck`;
  }, [name]);
  if (!match) {
    return html`<section><h1>Not found</h1><p>No page at <code>#${route.path}</code>. <a href="#/runs">Go to runs</a>.</p></section>`;
  }
  if (failure) {
    return html`<section><h1>${TITLES[name]}</h1><p role="alert">This view failed to load: ${failure.message}</p></section>`;
  }
  if (!loaded || loaded.name !== name) return html`<p class="loading">Loading…</p>`;
  const { Component } = loaded;
  // Keyed by path: moving between two runs starts the view afresh (its own subscriptions, state).
  return html`<${Component} key=${route.path} params=${match.params} query=${route.query} />`;
}

function App() {
  const route = useRoute();
  const active = matchRoute(route.segments)?.view;
  // A new page starts with a clean banner: an old page's refusal would read as this page's.
  useEffect(() => clearErrors(), [route.path]);
  return html`
    <a class="skip-link" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/runs">Flowdeck</a>
      <nav aria-label="Main">
        <ul>
          ${NAV.map(
            (item) => html`
              <li key=${item.view}>
                <a href=${item.href} aria-current=${item.view === active || item.also.includes(active) ? "page" : undefined}>
                  ${item.label}
                </a>
              </li>
            `,
          )}
        </ul>
      </nav>
      ${signedIn() ? html`<${SignedIn} />` : html`<${UserPicker} />`}
    </header>
    <${ErrorBanner} />
    <main id="main" tabindex="-1">
      <${View} route=${route} />
    </main>
  `;
}

// config.json first: on AWS the page signs in (or is sent to the sign-in page) before any request.
start().then(
  (ready) => {
    if (!ready) return;
    if (signedIn()) user.set(currentUser());
    else adoptUserFromUrl();
    const root = document.getElementById("app");
    root.replaceChildren(); // the "Loading Flowdeck…" placeholder goes once the app draws
    render(html`<${App} />`, root);
  },
  (error) => {
    const message = document.createElement("p");
    message.setAttribute("role", "alert");
    message.textContent = `Flowdeck could not start: ${error.message}`;
    document.getElementById("app").replaceChildren(message);
  },
);
