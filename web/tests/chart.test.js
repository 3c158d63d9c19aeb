import { test } from "node:test";
import assert from "node:assert/strict";
import { trendBars } from "../lib/chart.js";

test("bars scale from zero to the largest cost, regressions kept", () => {
  const runs = [
    { run_id: "a", cost_usd: "0.010" },
    { run_id: "b", cost_usd: "0.020" },
    { run_id: "c", cost_usd: "0.040", regression: true },
  ];
  const { bars, top, baseY } = trendBars(runs, { width: 300, height: 140, pad: 20 });
  assert.equal(top, 0.04);
  assert.equal(bars.length, 3);
  assert.equal(bars[2].y, 20); // the largest bar reaches the top of the inner box
  assert.equal(bars[2].height, 100);
  assert.equal(bars[0].height, 25);
  assert.equal(bars[0].y + bars[0].height, baseY);
  assert.deepEqual(bars.map((b) => b.regression), [false, false, true]);
  assert.ok(bars[0].x < bars[1].x && bars[1].x < bars[2].x);
});

test("the threshold is on the scale even above every bar", () => {
  const { top, thresholdY } = trendBars([{ run_id: "a", cost_usd: 1 }], { height: 140, pad: 20, threshold: "2" });
  assert.equal(top, 2);
  assert.equal(thresholdY, 20);
});

test("no runs and zero costs draw nothing tall", () => {
  assert.deepEqual(trendBars([]).bars, []);
  const { bars } = trendBars([{ run_id: "a", cost_usd: "0" }], { height: 140, pad: 20 });
  assert.equal(bars[0].height, 0);
});
