// Hash routes of SPEC §6 (`#/runs?status=failed`, `#/runs/{id}?step=S&line=N`): parse and build, no DOM.

/** `{path: "/runs/r-1", segments: ["runs", "r-1"], query: URLSearchParams}` for a location hash. */
export function parseHash(hash) {
  const raw = (hash || "").replace(/^#/, "") || "/runs";
  const mark = raw.indexOf("?");
  const path = mark === -1 ? raw : raw.slice(0, mark);
  const query = new URLSearchParams(mark === -1 ? "" : raw.slice(mark + 1));
  const segments = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { path: `/${segments.map(encodeURIComponent).join("/")}`, segments, query };
}

/** `#/runs?status=failed` from a path and query values; empty values are left out. */
export function hrefFor(path, query = {}) {
  const params = new URLSearchParams();
  const entries = query instanceof URLSearchParams ? [...query.entries()] : Object.entries(query);
  for (const [key, value] of entries) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

/** Which view a route shows: `{view, params}`, or null for an unknown route. */
export function matchRoute(segments) {
  const [first, second, ...rest] = segments;
  if (rest.length > 0) return null;
  if (first === "runs") return second ? { view: "run", params: { id: second } } : { view: "runs", params: {} };
  if (first === "inbox" && !second) return { view: "inbox", params: {} };
  if (first === "workflows") return { view: "workflows", params: second ? { workflow: second } : {} };
  return null;
}
