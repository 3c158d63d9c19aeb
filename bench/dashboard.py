"""The execution view in headless Chromium against the local stack; prints figures (name=value lines).

1. a finished run whose step printed 200,000 lines, opened cold in a fresh browser context:
     dashboard_first_lines_ms   page opened -> its first log lines visible                  (goal <= 1000)
     dashboard_dom_log_rows     log rows in the DOM once every line is loaded, scrolled mid-log (goal <= 300)
     dashboard_search_ms        a search over that log -> its match count shown, median of --searches
                                                                                            (goal <= 500)
     dashboard_search_first_ms  the first of those searches
     dashboard_search_matches   the count shown (the search matches exactly 2,000 lines)
     dashboard_search_api_ms    the same search as one API call, no page (where the time goes), median
                                (bench/log_search.py splits it into Query pages and CPU per process)
2. a running step printing its own timestamp 10 times a second, watched live:
     dashboard_live_p95_ms      line printed -> row in the page (same machine clock)        (goal <= 400)
3. dashboard_js_kb_gzip         all the page loaded (HTML, JS, CSS; not API answers), gzipped (goal <= 150)
4. dashboard_axe_serious        axe-core's serious and critical violations on both views     (goal 0)
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

from flowdeck.local.stack import LocalStack, free_port

REPO = Path(__file__).resolve().parent.parent
AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FLOOD = """import sys
out = sys.stdout
for i in range(int(sys.argv[1])):
    out.write(f"{i:07d} the quick brown fox jumps over the lazy dog\\n")
"""
TICKER = """import sys, time
count, every = int(sys.argv[1]), float(sys.argv[2])
time.sleep(float(sys.argv[3]))  # the viewer subscribes first: every line is then a live one
start = time.time()
for i in range(count):
    time.sleep(max(0.0, start + i * every - time.time()))
    print(f"{time.time():.6f} {i}", flush=True)
"""
# Lines ending in "99 the": one in a hundred of the flood's numbered lines.
NEEDLE = "99 the"
# Rows as they enter the DOM, first appearance only (scrolling re-adds rows): line -> arrival epoch s.
OBSERVE_JS = """() => {
  window.__arrivals = new Map();
  const seen = (node) => {
    if (!(node instanceof HTMLElement) || !node.classList.contains("log-row")) return;
    const line = node.dataset.line;
    if (!window.__arrivals.has(line)) {
      window.__arrivals.set(line, [Date.now() / 1000, node.querySelector(".log-text").textContent]);
    }
  };
  new MutationObserver((records) => records.forEach((r) => r.addedNodes.forEach(seen)))
    .observe(document.querySelector(".log-scroll"), { childList: true });
}"""


def write_workflows(folder: Path, lines: int, live_lines: int) -> None:
    (folder / "flood.py").write_text(FLOOD)
    (folder / "ticker.py").write_text(TICKER)
    (folder / "bench-dash-volume.yaml").write_text(
        f"name: bench-dash-volume\nsteps:\n  - id: flood\n    run: python3 flood.py {lines}\n"
    )
    (folder / "bench-dash-live.yaml").write_text(
        f"name: bench-dash-live\nsteps:\n  - id: tick\n    run: python3 ticker.py {live_lines} 0.1 4\n"
    )


def start(api: httpx.Client, workflow: str) -> str:
    answer = api.post(f"/workflows/{workflow}/runs", json={"inputs": {}})
    answer.raise_for_status()
    return str(answer.json()["run_id"])


def wait(api: httpx.Client, run_id: str, statuses: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = api.get(f"/runs/{run_id}")
        if answer.status_code == 200 and answer.json().get("status") in statuses:
            return
        time.sleep(0.2)
    raise SystemExit(f"run {run_id} not {statuses} within {timeout}s")


def axe_serious(page: Page) -> int:
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("async () => (await window.axe.run(document)).violations")
    return sum(len(v["nodes"]) for v in violations if v.get("impact") in ("serious", "critical"))


def search_once(page: Page) -> float:
    """Search for NEEDLE from an empty search box; ms until the match count shows."""
    search = page.get_by_role("searchbox", name="Search")
    search.fill("")
    search.press("Enter")
    page.locator(".search-count:not([data-search-count])").wait_for(state="attached")
    search.fill(NEEDLE)
    began = time.perf_counter()
    search.press("Enter")
    page.locator(".search-count[data-search-count]").wait_for(timeout=120_000)
    return (time.perf_counter() - began) * 1000


def measure_api_search(api: httpx.Client, run_id: str, runs: int) -> float:
    """The search as one API call, no page, `runs` times: the median ms."""
    walls = []
    for _ in range(runs):
        began = time.perf_counter()
        answer = api.get(f"/runs/{run_id}/logs", params={"q": NEEDLE})
        walls.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
        if len(answer.json()["lines"]) != 2000:
            raise SystemExit(f"the API search found {len(answer.json()['lines'])} lines, not 2000")
    return statistics.median(walls)


def measure_volume(page: Page, url: str, total: int, searches: int) -> dict[str, Any]:
    loaded: dict[str, bytes] = {}

    def keep(response: Any) -> None:
        kind = response.request.resource_type
        if kind in ("document", "script", "stylesheet") and response.ok:
            loaded[response.url] = response.body()

    page.on("response", keep)
    began = time.perf_counter()
    page.goto(url)
    page.locator(".log-row").first.wait_for(state="visible")
    first_ms = (time.perf_counter() - began) * 1000
    page.wait_for_function(
        f"() => Number(document.querySelector('.log-status')?.dataset.lines) === {total}", timeout=300_000
    )
    page.locator(".log-scroll").evaluate("(el) => { el.scrollTop = el.scrollHeight / 2; }")
    page.wait_for_timeout(200)
    rows = page.locator(".log-row").count()
    # Each search reads the whole stored log again (nothing is cached): a median of several.
    search_ms = [search_once(page) for _ in range(searches)]
    matches = int(page.locator(".search-count").get_attribute("data-search-count") or -1)
    page.remove_listener("response", keep)
    gzip_kb = sum(len(gzip.compress(body)) for body in loaded.values()) / 1024
    return {
        "first_ms": first_ms,
        "rows": rows,
        "search_ms": statistics.median(search_ms),
        "search_first_ms": search_ms[0],
        "matches": matches,
        "gzip_kb": gzip_kb,
        "files": len(loaded),
        "axe": axe_serious(page),
    }


def measure_live(page: Page, url: str, api: httpx.Client, run_id: str, timeout: float) -> dict[str, Any]:
    page.goto(url)
    page.locator(".log-status", has_text="live").wait_for(timeout=60_000)
    page.evaluate(OBSERVE_JS)
    wait(api, run_id, FINISHED, timeout)
    page.wait_for_timeout(1000)
    arrivals = page.evaluate("() => [...window.__arrivals.values()]")
    latencies = sorted((arrived - float(text.split()[0])) * 1000 for arrived, text in arrivals)
    return {
        "p95": statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 20 else float("nan"),
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "lines": len(latencies),
        "axe": axe_serious(page),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--live-lines", type=int, default=100)
    parser.add_argument("--searches", type=int, default=7, help="searches timed, in the page and by API")
    args = parser.parse_args()
    if not AXE.exists():
        raise SystemExit(f"{AXE} is missing: run `make setup`")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        write_workflows(folder, args.lines, args.live_lines)
        with (
            LocalStack(
                folder, port=free_port(), workers=1, data_dir=Path(tmp) / "data", keep_state=False
            ) as stack,
            httpx.Client(base_url=stack.api_url, timeout=60) as api,
            sync_playwright() as playwright,
        ):
            volume_run = start(api, "bench-dash-volume")
            wait(api, volume_run, FINISHED, 600)
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            viewport = {"width": 1400, "height": 900}
            # A fresh context: nothing cached, as a first visit.
            with browser.new_context(viewport=viewport) as context:
                volume = measure_volume(
                    context.new_page(), f"{stack.dashboard_url}#/runs/{volume_run}", args.lines, args.searches
                )
            search_api_ms = measure_api_search(api, volume_run, args.searches)
            live_run = start(api, "bench-dash-live")
            with browser.new_context(viewport=viewport) as context:
                live = measure_live(
                    context.new_page(), f"{stack.dashboard_url}#/runs/{live_run}", api, live_run, 120
                )
            browser.close()
    print(f"dashboard_first_lines_ms={volume['first_ms']:.0f}")
    print(f"dashboard_dom_log_rows={volume['rows']}")
    print(f"dashboard_search_ms={volume['search_ms']:.0f}")
    print(f"dashboard_search_first_ms={volume['search_first_ms']:.0f}")
    print(f"dashboard_search_matches={volume['matches']}")
    print(f"dashboard_search_api_ms={search_api_ms:.0f}")
    print(f"dashboard_live_p50_ms={live['p50']:.0f}")
    print(f"dashboard_live_p95_ms={live['p95']:.0f}")
    print(f"dashboard_live_lines_seen={live['lines']}")
    print(f"dashboard_js_kb_gzip={volume['gzip_kb']:.1f}")
    print(f"dashboard_files_loaded={volume['files']}")
    print(f"dashboard_axe_serious={volume['axe'] + live['axe']}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
