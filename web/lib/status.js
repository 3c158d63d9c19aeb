// Status vocabulary of SPEC §2 with the documents' icons and colours, as inline SVG (no emoji font needed).

export const STEP_STATUSES = ["pending", "waiting", "running", "succeeded", "failed", "skipped", "cancelled"];
export const RUN_STATUSES = ["queued", "running", "waiting", "succeeded", "failed", "cancelled", "timed_out"];
export const TERMINAL_RUN_STATUSES = new Set(["succeeded", "failed", "cancelled", "timed_out"]);

const GRAY = "#5f6b7a";
const YELLOW = "#8a6d00";
const BLUE = "#1f5fbf";
const GREEN = "#1a7f37";
const RED = "#c62828";

// SVG bodies drawn in a 16x16 box; `currentColor` so the icon follows the status colour.
const SHAPES = {
  circle: '<circle cx="8" cy="8" r="5.5" fill="none" stroke="currentColor" stroke-width="1.8"/>',
  hourglass:
    '<path d="M4 2h8M4 14h8M5 2c0 4 6 4 6 6s-6 2-6 6M11 2c0 4-6 4-6 6s6 2 6 6" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round"/>',
  play: '<path d="M5 3l8 5-8 5z" fill="currentColor"/>',
  check: '<path d="M3 8.5l3.2 3.2L13 4.5" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"/>',
  cross: '<path d="M4 4l8 8M12 4l-8 8" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"/>',
  slashed:
    '<circle cx="8" cy="8" r="5.5" fill="none" stroke="currentColor" stroke-width="1.6"/><path d="M4.2 11.8l7.6-7.6" stroke="currentColor" stroke-width="1.6"/>',
  crossed:
    '<circle cx="8" cy="8" r="5.5" fill="none" stroke="currentColor" stroke-width="1.6"/><path d="M5.6 5.6l4.8 4.8M10.4 5.6l-4.8 4.8" stroke="currentColor" stroke-width="1.6"/>',
  clock:
    '<circle cx="8" cy="8" r="5.5" fill="none" stroke="currentColor" stroke-width="1.6"/><path d="M8 5v3.2l2.2 1.4" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round"/>',
};

// One entry per status: the documents' glyph (for text contexts), the SVG shape, the colour and the word.
const STATUS_INFO = {
  pending: { glyph: "○", shape: "circle", color: GRAY, word: "pending" },
  queued: { glyph: "○", shape: "circle", color: GRAY, word: "queued" },
  waiting: { glyph: "⏳", shape: "hourglass", color: YELLOW, word: "waiting" },
  running: { glyph: "▶", shape: "play", color: BLUE, word: "running" },
  succeeded: { glyph: "✓", shape: "check", color: GREEN, word: "succeeded" },
  failed: { glyph: "✗", shape: "cross", color: RED, word: "failed" },
  skipped: { glyph: "⊘", shape: "slashed", color: GRAY, word: "skipped" },
  cancelled: { glyph: "⊗", shape: "crossed", color: GRAY, word: "cancelled" },
  timed_out: { glyph: "✗", shape: "clock", color: RED, word: "timed out" },
};

const UNKNOWN = { glyph: "?", shape: "circle", color: GRAY };

/** Glyph, shape, colour and word for a run or step status (unknown statuses keep their own word). */
export function statusInfo(status) {
  const info = STATUS_INFO[status];
  return info ? { ...info } : { ...UNKNOWN, word: String(status ?? "unknown") };
}

/** The icon as an SVG string (decorative: the word beside it carries the meaning). The colour is SVG's
 *  presentation attribute, not a style attribute, which the CSP on AWS (style-src 'self') would block. */
export function statusIconSvg(status, size = 16) {
  const info = statusInfo(status);
  return (
    `<svg class="status-icon" width="${size}" height="${size}" viewBox="0 0 16 16" ` +
    `aria-hidden="true" focusable="false" color="${info.color}">${SHAPES[info.shape]}</svg>`
  );
}

/** True once a run can no longer change (SPEC §2). */
export function isTerminalRun(status) {
  return TERMINAL_RUN_STATUSES.has(status);
}
