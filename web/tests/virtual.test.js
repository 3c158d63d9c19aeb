import assert from "node:assert/strict";
import { test } from "node:test";

import { AnsiCache } from "../lib/ansi.js";
import { atBottom, rowWindow, scrollTopFor } from "../lib/virtual.js";

test("the window holds the visible rows and the overscan, spacers the rest", () => {
  const w = rowWindow({ scrollTop: 18_000, viewport: 360, rowHeight: 18, total: 200_000, overscan: 10 });
  assert.equal(w.start, 990);
  assert.equal(w.end, 1031);
  assert.equal(w.top, 990 * 18);
  assert.equal(w.bottom, (200_000 - 1031) * 18);
  assert.ok(w.end - w.start <= 300);
});

test("the window is clamped at both ends", () => {
  assert.deepEqual(rowWindow({ scrollTop: 0, viewport: 100, rowHeight: 20, total: 3 }), {
    start: 0,
    end: 3,
    top: 0,
    bottom: 0,
  });
  const w = rowWindow({ scrollTop: 1e9, viewport: 100, rowHeight: 20, total: 50, overscan: 5 });
  assert.equal(w.end, 50);
  assert.ok(w.start <= w.end);
});

test("at bottom within the slack, not above it", () => {
  assert.ok(atBottom({ scrollTop: 640, viewport: 360, scrollHeight: 1000 }));
  assert.ok(!atBottom({ scrollTop: 500, viewport: 360, scrollHeight: 1000 }));
});

test("a row scrolled to sits mid-viewport", () => {
  assert.equal(scrollTopFor({ index: 100, viewport: 200, rowHeight: 20 }), 1920);
  assert.equal(scrollTopFor({ index: 0, viewport: 200, rowHeight: 20 }), 0);
});

test("ANSI colours become classes and markup in a line stays text", () => {
  const ansi = new AnsiCache();
  const red = ansi.html("\u001b[31mred\u001b[0m plain");
  assert.match(red, /<span class="ansi-red-fg">red<\/span> plain/);
  assert.ok(!red.includes("\u001b"));
  const evil = ansi.html("<img src=x onerror=alert(1)>");
  assert.equal(evil, "&lt;img src=x onerror=alert(1)&gt;");
});

test("each line starts with default colours, cached or not", () => {
  const ansi = new AnsiCache(2);
  ansi.html("\u001b[32mgreen never reset");
  assert.equal(ansi.html("next"), "next");
  ansi.html("a");
  ansi.html("b");
  assert.equal(ansi.cache.size, 2);
});
