import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const web = new URL("..", import.meta.url).pathname;

/** Every page module (not tests, not node_modules), as index.html names it. */
function pageModules(dir = "", found = []) {
  for (const entry of readdirSync(join(web, dir), { withFileTypes: true })) {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (!["tests", "node_modules"].includes(entry.name)) pageModules(path, found);
    } else if (entry.name.endsWith(".js") && path !== "app.js") {
      found.push(`./${path}`);
    }
  }
  return found;
}

test("index.html preloads every module and every import-map entry, so none waits for its importer", () => {
  const index = readFileSync(join(web, "index.html"), "utf8");
  const preloaded = new Set([...index.matchAll(/rel="modulepreload" href="([^"]+)"/g)].map((m) => m[1]));
  const mapped = Object.values(JSON.parse(index.match(/<script type="importmap">([\s\S]*?)<\/script>/)[1]).imports);
  for (const module of [...pageModules(), ...mapped]) assert.ok(preloaded.has(module), `${module} is not preloaded`);
  for (const href of preloaded) assert.ok(readFileSync(join(web, href)), `${href} does not exist`);
});
