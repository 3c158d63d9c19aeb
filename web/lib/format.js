// Pure formatting helpers for the page (no DOM): durations, money, times, triggers.

/** Milliseconds between two ISO timestamps (end defaults to now); null when start is missing. */
export function elapsedMs(startedAt, endedAt, now = Date.now()) {
  if (!startedAt) return null;
  const start = Date.parse(startedAt);
  const end = endedAt ? Date.parse(endedAt) : now;
  if (Number.isNaN(start) || Number.isNaN(end)) return null;
  return Math.max(0, end - start);
}

/** "850ms", "12s", "3m 04s", "2h 05m"; "—" for null. */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const total = Math.floor(ms / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (hours > 0) return `${hours}h ${String(minutes).padStart(2, "0")}m`;
  if (minutes > 0) return `${minutes}m ${String(seconds).padStart(2, "0")}s`;
  return `${seconds}s`;
}

/** Money arrives as a decimal string ("0.012345") or, from older servers, a number. */
export function moneyValue(value) {
  if (value === null || value === undefined || value === "") return null;
  const number = typeof value === "number" ? value : Number(value);
  return Number.isFinite(number) ? number : null;
}

/** "$0.0123" below a dollar (small costs stay visible), "$12.35" above; "—" when unknown. */
export function formatMoney(value) {
  const number = moneyValue(value);
  if (number === null) return "—";
  if (number === 0) return "$0.00";
  if (Math.abs(number) < 0.01) return `$${number.toFixed(4)}`;
  if (Math.abs(number) < 1) return `$${number.toFixed(3)}`;
  return `$${number.toFixed(2)}`;
}

/** A run's total cost from whatever shape the API gives (`cost.total_usd`, `cost_usd`, `cost`). */
export function runCost(run) {
  if (!run) return null;
  const cost = run.cost;
  if (cost && typeof cost === "object") return moneyValue(cost.total_usd ?? cost.total);
  return moneyValue(run.cost_usd ?? cost);
}

/** "2026-12-06 03:40:12" in the viewer's time zone; "—" when missing. */
export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "—";
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** "3 min ago", "2 h ago", "5 d ago"; future times read "in 4 min". */
export function formatRelative(iso, now = Date.now()) {
  if (!iso) return "—";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "—";
  const delta = now - then;
  const future = delta < 0;
  const seconds = Math.round(Math.abs(delta) / 1000);
  let text;
  if (seconds < 60) text = `${seconds} s`;
  else if (seconds < 3600) text = `${Math.round(seconds / 60)} min`;
  else if (seconds < 86400) text = `${Math.round(seconds / 3600)} h`;
  else text = `${Math.round(seconds / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** The trigger with its detail: "Git push main @ abc1234", "schedule", "webhook: deploy-hook". */
export function formatTrigger(run) {
  const trigger = run?.trigger ?? "manual";
  // The API's own words for what started it (a git push's "main @ abc1234") win.
  if (typeof run?.trigger_detail === "string" && run.trigger_detail) {
    return trigger === "git" ? `Git push ${run.trigger_detail}` : `${trigger}: ${run.trigger_detail}`;
  }
  switch (trigger) {
    case "git": {
      // Older runs: the push's ref and commit are in the inputs when the workflow declares them.
      const inputs = run?.inputs ?? {};
      const branch = inputs.branch || (inputs.ref ? String(inputs.ref).replace(/^refs\/heads\//, "") : "");
      const parts = ["Git push"];
      if (branch) parts.push(branch);
      if (inputs.commit) parts.push(`@ ${String(inputs.commit).slice(0, 7)}`);
      return parts.join(" ");
    }
    case "webhook": {
      // Webhook runs are started by "webhook:<secret name>" (the hook that signed the delivery).
      const hook = String(run?.started_by ?? "").match(/^webhook:(.+)$/)?.[1];
      return hook ? `webhook: ${hook}` : "webhook";
    }
    case "retry":
      return run?.retry_of ? `retry of ${run.retry_of}` : "retry";
    default:
      return String(trigger);
  }
}
