// Text of one stored log line as a terminal would leave it.

/** A carriage-return progress line ("10%\r20%\r30%") as its last state ("30%"). */
export function collapseCR(text) {
  if (!text.includes("\r")) return text;
  const parts = text.split("\r");
  for (let i = parts.length - 1; i >= 0; i -= 1) if (parts[i] !== "") return parts[i];
  return "";
}

/** The `#/runs/{id}?step=S&line=N` deep link of a line. */
export function lineLink(runId, step, line) {
  const query = new URLSearchParams({ step, line: String(line) });
  return `#/runs/${encodeURIComponent(runId)}?${query}`;
}
