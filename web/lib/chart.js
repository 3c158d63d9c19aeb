// Geometry of the cost trend chart (no DOM): one bar per run, oldest first, and the baseline threshold.
import { moneyValue } from "./format.js";

/**
 * Bars for `runs` ([{run_id, cost_usd, regression}]) in a `width` x `height` box with `pad` around.
 * Money may be a decimal string; the scale starts at zero and includes the threshold when there is one.
 */
export function trendBars(runs, { width = 480, height = 140, pad = 24, threshold = null } = {}) {
  const costs = runs.map((r) => moneyValue(r.cost_usd) ?? 0);
  const limit = moneyValue(threshold);
  const top = Math.max(...costs, limit ?? 0, 0) || 1;
  const innerWidth = width - 2 * pad;
  const innerHeight = height - 2 * pad;
  const slot = runs.length ? innerWidth / runs.length : innerWidth;
  const barWidth = Math.max(2, Math.min(32, slot * 0.7));
  const yOf = (value) => pad + innerHeight - (value / top) * innerHeight;
  const bars = runs.map((run, i) => {
    const y = yOf(costs[i]);
    return {
      run_id: run.run_id,
      cost: costs[i],
      regression: Boolean(run.regression),
      x: pad + i * slot + (slot - barWidth) / 2,
      y,
      width: barWidth,
      height: pad + innerHeight - y,
    };
  });
  return { bars, top, thresholdY: limit === null ? null : yOf(limit), baseY: pad + innerHeight };
}
