// A window of fixed-height rows: only the rows in view (and a few either side) are drawn.

/** Rows [start, end) to draw and the spacer heights above and below them. */
export function rowWindow({ scrollTop, viewport, rowHeight, total, overscan = 20 }) {
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const start = Math.max(0, Math.min(total, first - overscan));
  const visible = Math.ceil(Math.max(0, viewport) / rowHeight) + 1;
  const end = Math.min(total, first + visible + overscan);
  return {
    start,
    end: Math.max(start, end),
    top: start * rowHeight,
    bottom: Math.max(0, total - Math.max(start, end)) * rowHeight,
  };
}

/** Whether a scroller shows its last row (a follower keeps following from here). */
export function atBottom({ scrollTop, viewport, scrollHeight, slack = 4 }) {
  return scrollTop + viewport >= scrollHeight - slack;
}

/** The scrollTop that puts row `index` in the middle of the viewport. */
export function scrollTopFor({ index, viewport, rowHeight }) {
  return Math.max(0, index * rowHeight - Math.floor(viewport / 2) + rowHeight);
}
