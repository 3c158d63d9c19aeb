// Run history filters (SPEC §3 GET /runs, SPEC §6 `#/runs?...`): URL query <-> API query, no DOM.

export const RANGES = { "24h": 24 * 3600_000, "7d": 7 * 86400_000, "30d": 30 * 86400_000 };
export const SORTS = ["started_at", "duration", "cost"];
export const TRIGGERS = ["manual", "schedule", "webhook", "git", "event", "incident", "retry"];
export const PAGE_SIZE = 25;
const MAX_PAGE_SIZE = 200; // the API's own limit
// The page's filter names (in the URL) and the API's names for them.
const FILTERS = { status: "status", trigger: "trigger", workflow: "workflow", user: "started_by" };

/** The filters a page URL holds, with defaults filled in. */
export function filtersFrom(query) {
  const get = (key) => query.get(key) || "";
  const sort = SORTS.includes(get("sort")) ? get("sort") : "started_at";
  return {
    status: get("status"),
    trigger: get("trigger"),
    workflow: get("workflow"),
    user: get("user"),
    range: get("range") in RANGES || get("range") === "custom" ? get("range") : "",
    since: get("since"),
    until: get("until"),
    sort,
    order: get("order") === "asc" ? "asc" : "desc",
    cursor: get("cursor"),
    limit: pageSize(get("limit")),
  };
}

/** Rows per page from the URL's `limit` (1-200), else the default. */
function pageSize(text) {
  const size = Number.parseInt(text, 10);
  return Number.isInteger(size) && size >= 1 && size <= MAX_PAGE_SIZE ? size : PAGE_SIZE;
}

/** The `GET /runs?...` path for these filters; a relative range counts back from `now`. */
export function historyPath(filters, now = Date.now()) {
  const params = new URLSearchParams();
  for (const [name, apiName] of Object.entries(FILTERS)) {
    if (filters[name]) params.set(apiName, filters[name]);
  }
  if (filters.range in RANGES) {
    params.set("since", new Date(now - RANGES[filters.range]).toISOString());
  } else if (filters.range === "custom") {
    if (filters.since) params.set("since", filters.since);
    if (filters.until) params.set("until", filters.until);
  }
  params.set("sort", filters.sort);
  params.set("order", filters.order);
  params.set("limit", String(filters.limit ?? PAGE_SIZE));
  if (filters.cursor) params.set("cursor", filters.cursor);
  return `/runs?${params}`;
}

/** The URL query for these filters: defaults and empty values left out, so links stay short. */
export function filtersQuery(filters) {
  const query = {};
  for (const key of ["status", "trigger", "workflow", "user", "range"]) if (filters[key]) query[key] = filters[key];
  if (filters.range === "custom") {
    if (filters.since) query.since = filters.since;
    if (filters.until) query.until = filters.until;
  }
  if (filters.sort !== "started_at") query.sort = filters.sort;
  if (filters.order !== "desc") query.order = filters.order;
  if (filters.limit && filters.limit !== PAGE_SIZE) query.limit = filters.limit;
  if (filters.cursor) query.cursor = filters.cursor;
  return query;
}

/** Clicking a sortable column: the same column flips the order, another one sorts descending. */
export function nextSort(filters, column) {
  if (filters.sort === column) return { sort: column, order: filters.order === "desc" ? "asc" : "desc" };
  return { sort: column, order: "desc" };
}

/** `2026-12-06T03:40` (a datetime-local input, local time) -> ISO UTC; "" when empty or invalid. */
export function localInputToIso(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

/** ISO -> the local `YYYY-MM-DDTHH:MM` a datetime-local input shows. */
export function isoToLocalInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}
