"""Screenshots of the execution view for the README: running, waiting for approval, failed.

Starts a local stack on a small deploy workflow of its own, drives three runs into those states and
saves docs/img/run-running.png, run-waiting.png and run-failed.png from headless Chromium.
Rerun with `.venv/bin/python scripts/screenshots.py` (about a minute).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

from flowdeck.local.stack import LocalStack, free_port

REPO = Path(__file__).resolve().parent.parent
APPROVERS = ("jane@example.com", "sam@example.com")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
WORKFLOW = """name: production-deploy
description: Plan and apply infrastructure changes, then check health and notify
inputs:
  environment: {type: string, default: production}
  break_password: {type: boolean, default: false}
steps:
  - id: plan
    command:
      - python3
      - -c
      - |
        import json, os, time
        print("Planning changes for production")
        add, change = "\\x1b[32m+\\x1b[0m", "\\x1b[33m~\\x1b[0m"
        for sign, name in [(add, "aws_db_instance.main"), (add, "aws_ecs_service.web"),
                           (add, "aws_lb_target_group.web"), (change, "aws_ecs_task_definition.web")]:
            print(f"  {sign} {name}", flush=True)
            time.sleep(0.2)
        print("Plan: 3 to add, 1 to change, 0 to destroy.")
        json.dump({"add": 3, "change": 1, "destroy": 0}, open(os.environ["FLOWDECK_OUTPUTS"], "w"))
  - id: approval
    needs: [plan]
    approval:
      approvers: {users: [jane@example.com, sam@example.com]}
      min_approvals: 2
      channels: [inbox]
      timeout: 24h
      message: >-
        Apply {{ steps.plan.outputs.add }} additions and {{ steps.plan.outputs.change }} change
        to {{ inputs.environment }}?
  - id: apply
    needs: [approval]
    command:
      - python3
      - -u
      - -c
      - |
        import json, os, sys, time
        inputs = json.loads(os.environ["FLOWDECK_INPUTS"])
        print("aws_ecs_task_definition.web: Modifying...")
        if inputs["break_password"]:
            time.sleep(1)
            print("aws_db_instance.main: Creating...")
            print("\\x1b[31mError creating RDS instance: InvalidParameterValue\\x1b[0m", file=sys.stderr)
            print("The parameter MasterUserPassword is not a valid password.", file=sys.stderr)
            print("Password must be at least 8 characters.", file=sys.stderr)
            sys.exit(1)
        for i in range(1, 200):
            print(f"aws_db_instance.main: Still creating... [{i * 10}s elapsed]")
            time.sleep(0.3)
  - id: health
    needs: [apply]
    run: echo "HTTP 200 OK"
  - id: notify
    needs: [health]
    run: echo "Slack message sent"
"""


def step_status(api: httpx.Client, run_id: str, step: str) -> str | None:
    steps = api.get(f"/runs/{run_id}").json().get("steps", [])
    return next((s["status"] for s in steps if s["id"] == step), None)


def wait_step(api: httpx.Client, run_id: str, step: str, statuses: set[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while step_status(api, run_id, step) not in statuses:
        if time.monotonic() > deadline:
            raise SystemExit(f"step {step} of {run_id} not {statuses} within {timeout}s")
        time.sleep(0.2)


def start(api: httpx.Client, approve: bool, break_password: bool = False) -> str:
    answer = api.post(
        "/workflows/production-deploy/runs", json={"inputs": {"break_password": break_password}}
    )
    answer.raise_for_status()
    run_id = str(answer.json()["run_id"])
    wait_step(api, run_id, "approval", {"waiting"})
    if approve:
        for user in APPROVERS:
            api.post(
                f"/runs/{run_id}/steps/approval/approve",
                json={"comment": "plan reviewed"},
                headers={"X-Flowdeck-User": user},
            ).raise_for_status()
    return run_id


def shoot(page: Page, url: str, path: Path, ready: str) -> None:
    page.goto(url)
    page.locator(ready).first.wait_for()
    page.wait_for_timeout(1500)  # the live lines and the ticking duration settle
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path.relative_to(REPO)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        (folder / "production-deploy.yaml").write_text(WORKFLOW)
        with (
            LocalStack(
                folder, port=free_port(), workers=2, data_dir=Path(tmp) / "data", keep_state=False
            ) as stack,
            httpx.Client(
                base_url=stack.api_url, headers={"X-Flowdeck-User": APPROVERS[0]}, timeout=60
            ) as api,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            base = f"{stack.dashboard_url}?user={APPROVERS[0]}"

            waiting = start(api, approve=False)
            shoot(page, f"{base}#/runs/{waiting}", args.out / "run-waiting.png", ".approval")

            failed = start(api, approve=True, break_password=True)
            wait_step(api, failed, "apply", {"failed"})
            shoot(page, f"{base}#/runs/{failed}", args.out / "run-failed.png", ".failure")

            running = start(api, approve=True)
            wait_step(api, running, "apply", {"running"})
            time.sleep(3)
            shoot(page, f"{base}#/runs/{running}", args.out / "run-running.png", "[data-status='running']")
            api.post(f"/runs/{running}/cancel", json={"mode": "force"})
            api.post(f"/runs/{waiting}/cancel", json={"mode": "force"})
            browser.close()


if __name__ == "__main__":
    main()
