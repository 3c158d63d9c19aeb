"""Faults injected on purpose into the local stack (flowdeck.local.faults); each must end in a truthful
record with nothing lost. Prints one `fault_<name>=ok` (or `=lost: <what>`) line per fault, then:
  faults_tried=             faults injected
  faults_lost=              faults whose record was not truthful or lost something (goal 0)
  worker_lost_detect_s_max= a worker SIGKILLed -> its step reads failed WorkerLost, worst case (goal <= 30)

One stack carries every fault at once (they must not hide each other): DynamoDB throttling on every
other log write and every fourth update of the runs table (the state machine's own writes included),
S3 errors on one artifact, SES down, Slack unreachable, a fan-out batch carrying log
lines failed 3 times, the run-events batch carrying a limited run's end failed 3 times. Workers are
SIGKILLed mid-step and while a step prints as fast as it can (log flushes under way). A second stack
with kept state is stopped while a run waits for approval and started again. Runs take ~2-4 minutes
(a lost worker is found by its heartbeat timeout, 30 s by default; two kills, one after the other).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from flowdeck import constants
from flowdeck.local.faults import AwsFault, Fault, HandlerFault
from flowdeck.local.stack import LocalStack, free_port

JANE = "jane@example.com"
FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}

WORKFLOWS = {
    "fault-kill": """\
name: fault-kill
inputs:
  folder: {type: string, required: true}
  flood: {type: boolean, default: false}
steps:
  - id: victim
    command:
      - python3
      - -c
      - |
        import json, os, pathlib, time
        inputs = json.loads(os.environ["FLOWDECK_INPUTS"])
        folder = pathlib.Path(inputs["folder"])
        (folder / "step.pid").write_text(str(os.getpid()))
        if inputs["flood"]:  # print as fast as it can: the log writer is always mid-flush
            n = 0
            while True:
                print(f"line {n}", flush=True)
                n += 1
                if n == 2000:
                    (folder / "worker.pid").write_text(str(os.getppid()))
        for n in range(3):
            print(f"line {n}", flush=True)
        time.sleep(0.5)  # longer than the log writer's flush interval: these lines are stored
        (folder / "worker.pid").write_text(str(os.getppid()))
        time.sleep(120)
""",
    "fault-chatty": """\
name: fault-chatty
steps:
  - id: talk
    command:
      - python3
      - -c
      - |
        import time
        for n in range(400):
            print(f"line {n}", flush=True)
            time.sleep(0.005)
  - id: report
    command:
      - sh
      - -c
      - mkdir -p reports && echo '<ok/>' > reports/ok.xml && echo '<lost/>' > reports/lost.xml
    artifacts: {upload: ["reports/*.xml"]}
""",
    "fault-one": """\
name: fault-one
runtime_config:
  concurrency: {max_runs: 1, on_limit: queue}
steps:
  - id: work
    command: [python3, -c, "import time; time.sleep(1)"]
""",
    "fault-gate": """\
name: fault-gate
steps:
  - id: approval
    approval:
      approvers: {users: [jane@example.com]}
      channels: [email, slack]
      timeout: 1h
      message: "Go?"
  - id: after
    command: [python3, -c, "print('after')"]
""",
}

FAULTS: list[Fault] = [
    AwsFault(
        request="dynamodb:PutItem",
        match=constants.LOGS_TABLE,
        error="ProvisionedThroughputExceededException",
        every=2,
    ),
    # Every fourth update of a run's or step's record, the state machine's own writes included.
    AwsFault(
        request="dynamodb:UpdateItem",
        match=constants.RUNS_TABLE,
        error="ProvisionedThroughputExceededException",
        every=4,
    ),
    AwsFault(request="s3:PUT", match="reports/lost.xml", error="InternalError", status=500),
    AwsFault(request="ses:POST", match="Action=SendEmail", error="ServiceUnavailable", status=503),
    HandlerFault(handler="fanout", match='"lines"', times=3),
    HandlerFault(
        handler="run_events", match='"workflow": {"S": "fault-one"}, "status": {"S": "succeeded"}', times=3
    ),
]


class Bench:
    def __init__(self, api: httpx.Client, stack: LocalStack, folder: Path) -> None:
        self.api, self.stack, self.folder = api, stack, folder
        self.results: dict[str, str] = {}
        self.detect: list[float] = []
        self.lock = threading.Lock()

    def record(self, name: str, problems: list[str]) -> None:
        with self.lock:
            self.results[name] = "ok" if not problems else "lost: " + "; ".join(problems)

    def start(self, workflow: str, **inputs: Any) -> str:
        answer = self.api.post(f"/workflows/{workflow}/runs", json={"inputs": inputs})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["run_id"])

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self.api.get(f"/runs/{run_id}").json())

    def wait(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run.get("status") in FINISHED:
                return run
            time.sleep(0.2)
        raise TimeoutError(f"run {run_id} did not finish in {timeout:.0f}s")

    def lines(self, run_id: str) -> list[str]:
        text = self.api.get(f"/runs/{run_id}/logs", params={"format": "jsonl"}).text
        return [json.loads(row)["text"] for row in text.splitlines() if row.strip()]

    # -- faults --------------------------------------------------------------------------------
    def worker_kill(self, name: str, flood: bool) -> None:
        folder = self.folder / name
        folder.mkdir()
        run_id = self.start("fault-kill", folder=str(folder), flood=flood)
        pidfile = folder / "worker.pid"
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()):
            if time.monotonic() > deadline:
                return self.record(name, ["the step never started"])
            time.sleep(0.02)
        if flood:
            time.sleep(1.0)  # well into the flood: batches are being stored all along
        else:  # killed once its lines are stored (throttled writes may take a second): they must stay
            while len(self.lines(run_id)) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        killed = time.monotonic()
        problems: list[str] = []
        while True:
            step = self.run(run_id)["steps"][0]
            if step["status"] != "running":
                break
            if time.monotonic() - killed > 120:
                problems.append("the step still runs 120 s after its worker died")
                break
            time.sleep(0.2)
        self.detect.append(time.monotonic() - killed)
        run = self.wait(run_id)
        step = run["steps"][0]
        if (run["status"], step["status"], step.get("error")) != ("failed", "failed", "WorkerLost"):
            problems.append(f"run {run['status']}, step {step['status']} {step.get('error')}")
        lines = self.lines(run_id)
        if not flood and lines != ["line 0", "line 1", "line 2"]:
            problems.append(f"kept {len(lines)} of the 3 lines stored before the kill")
        if flood and (not lines or lines != [f"line {n}" for n in range(len(lines))]):
            problems.append(f"the {len(lines)} lines kept are not 0..n in order, once each")
        self._stop_orphan(folder)
        self.record(name, problems)

    def _stop_orphan(self, folder: Path) -> None:
        """The step's process outlives its SIGKILLed worker (as on a lost Fargate task it would not)."""
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((folder / "step.pid").read_text()), signal.SIGKILL)

    def viewer_and_aws_errors(self) -> None:
        """Fan-out batches failing, log writes throttled, one artifact S3 refuses: a viewer gets every
        line once in order, every line is stored once, the step claims only the artifact S3 stored."""
        run_id = self.start("fault-chatty")
        seen: list[str] = []
        status = None
        with connect(
            f"ws://127.0.0.1:{self.stack.port}/ws", additional_headers={"X-Flowdeck-User": JANE}
        ) as ws:
            ws.send(json.dumps({"action": "subscribe", "run_id": run_id, "since_seq": 0}))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and status not in FINISHED:
                try:
                    frame = json.loads(ws.recv(timeout=1))
                except TimeoutError:
                    continue
                if frame.get("type") == "log":
                    seen += [line["text"] for line in frame["lines"]]
                elif frame.get("type") == "run":
                    status = frame.get("status")
            # The run's end may overtake the last log frame by a few ms.
            end = time.monotonic() + 2
            while time.monotonic() < end:
                try:
                    frame = json.loads(ws.recv(timeout=0.5))
                except TimeoutError:
                    break
                if frame.get("type") == "log":
                    seen += [line["text"] for line in frame["lines"]]
        run = self.wait(run_id)
        expected = [f"line {n}" for n in range(400)]
        stored = self.lines(run_id)
        viewer_problems = (
            [] if seen[:400] == expected else [f"the viewer got {len(seen)} lines, not 0..399 once"]
        )
        self.record("fault_fanout_batch_fails", viewer_problems)
        throttle = [] if stored[:400] == expected else [f"{len(stored)} lines stored, not 0..399 once"]
        if run["status"] != "succeeded":
            throttle.append(f"run {run['status']}")
        self.record("fault_dynamodb_throttled_log_writes", throttle)
        records = [f"step {s['id']} {s['status']}" for s in run["steps"] if s["status"] != "succeeded"]
        if run["status"] != "succeeded" or not run.get("ended_at"):
            records.append(f"run {run['status']} {run.get('error')}")
        self.record("fault_dynamodb_throttled_run_records", records)
        report = {s["id"]: s for s in run["steps"]}["report"]
        listed = [a["path"] for a in self.api.get(f"/runs/{run_id}/artifacts").json()["artifacts"]]
        problems = []
        if listed != ["reports/ok.xml"]:
            problems.append(f"artifacts listed: {listed}")
        if not any("lost.xml" in w for w in report.get("artifact_warnings") or []):
            problems.append("the step does not say lost.xml was not stored")
        self.record("fault_s3_artifact_upload_fails", problems)

    def slots_with_run_events_failing(self) -> None:
        """The run-events batch carrying a limited run's end fails 3 times: the slot is still freed."""
        first, second = self.start("fault-one"), self.start("fault-one")
        runs = [self.wait(first), self.wait(second)]
        problems = [f"run {r['run_id']} {r['status']}" for r in runs if r["status"] != "succeeded"]
        self.record("fault_run_events_batch_fails", problems)

    def notifications_down(self) -> None:
        """SES and Slack down: the inbox shows the approval, deliveries are retried, then recorded failed."""
        run_id = self.start("fault-gate")
        problems: list[str] = []
        final: list[dict[str, Any]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            inbox = self.api.get("/inbox", headers={"X-Flowdeck-User": JANE}).json()["approvals"]
            mine = [a for a in inbox if a["run_id"] == run_id]
            errors = mine[0].get("delivery_errors", []) if mine else []
            final = [e for e in errors if e.get("final")]
            if {e["channel"] for e in final} == {"email", "slack"}:
                break
            time.sleep(0.5)
        else:
            problems.append(f"deliveries not recorded failed in 90 s: {final}")
        tries = len([e for e in errors if e["channel"] == "slack" and not e.get("final")])
        if tries < 2:
            problems.append(f"Slack tried {tries} times")
        decided = self.api.post(
            f"/runs/{run_id}/steps/approval/approve",
            json={"comment": "ok"},
            headers={"X-Flowdeck-User": JANE},
        )
        if decided.status_code not in (200, 202):
            problems.append(f"approve answered {decided.status_code}")
        if self.wait(run_id)["status"] != "succeeded":
            problems.append("the approved run did not succeed")
        self.record("fault_slack_and_ses_down", problems)


def stopped_with_approval_waiting(workflows: Path, data: Path) -> list[str]:
    """A stack stopped while a run waits for approval: the next start says what was lost."""
    problems: list[str] = []
    port = free_port()
    with LocalStack(workflows, port=port, workers=1, data_dir=data) as stack, _client(stack) as api:
        run_id = api.post("/workflows/fault-gate/runs", json={"inputs": {}}).json()["run_id"]
        deadline = time.monotonic() + 30
        while api.get(f"/runs/{run_id}").json().get("status") != "waiting":
            if time.monotonic() > deadline:
                return ["the run never waited"]
            time.sleep(0.2)
    with LocalStack(workflows, port=port, workers=1, data_dir=data) as stack, _client(stack) as api:
        run = api.get(f"/runs/{run_id}").json()
        approval = run["steps"][0]
        if stack.interrupted != [run_id]:
            problems.append(f"interrupted runs: {stack.interrupted}")
        if (run["status"], run.get("error"), approval["status"], approval.get("error")) != (
            "failed",
            "LocalStackStopped",
            "failed",
            "LocalStackStopped",
        ):
            problems.append(f"run {run['status']} {run.get('error')}, approval {approval['status']}")
        if f"flowdeck retry {run_id}" not in str(run.get("cause") or approval.get("cause")):
            problems.append(f"the record does not say how to run it again: {run.get('cause')}")
        inbox = api.get("/inbox", headers={"X-Flowdeck-User": JANE}).json()["approvals"]
        if any(a["run_id"] == run_id for a in inbox):
            problems.append("the lost approval is still in the inbox")
    return problems


def _client(stack: LocalStack) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, headers={"X-Flowdeck-User": "bench@example.com"}, timeout=30)


def _unreachable_slack() -> None:
    """Slack's API at a port nothing listens on; the notifier reads it from the environment."""
    os.environ["FLOWDECK_SLACK_API_URL"] = f"http://127.0.0.1:{free_port()}/api/"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        workflows = root / "workflows"
        workflows.mkdir()
        for name, text in WORKFLOWS.items():
            (workflows / f"{name}.yaml").write_text(text)
        saved = dict(os.environ)
        _unreachable_slack()
        try:
            with LocalStack(
                workflows, port=free_port(), workers=2, data_dir=root / "a", keep_state=False, faults=FAULTS
            ) as stack:
                stack.client("secretsmanager").create_secret(
                    Name=constants.SLACK_SECRET,
                    SecretString=json.dumps({"bot_token": "xoxb-bench", "signing_secret": "s" * 32}),
                )
                with _client(stack) as api:
                    bench = Bench(api, stack, root)
                    # Killing a worker fails every step it runs: the kills come after the rest, one by one.
                    work = [
                        threading.Thread(target=bench.viewer_and_aws_errors),
                        threading.Thread(target=bench.slots_with_run_events_failing),
                        threading.Thread(target=bench.notifications_down),
                    ]
                    for thread in work:
                        thread.start()
                    for thread in work:
                        thread.join()
                    bench.worker_kill("fault_worker_kill_mid_step", flood=False)
                    bench.worker_kill("fault_worker_kill_during_log_flush", flood=True)
            restart = stopped_with_approval_waiting(workflows, root / "b")
            bench.record("fault_stopped_with_approval_waiting", restart)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    for name, outcome in sorted(bench.results.items()):
        print(f"{name}={outcome}")
    print(f"faults_tried={len(bench.results)}")
    print(f"faults_lost={sum(1 for outcome in bench.results.values() if outcome != 'ok')}")
    print(
        f"worker_lost_detect_s_max={max(bench.detect):.1f}" if bench.detect else "worker_lost_detect_s_max="
    )


if __name__ == "__main__":
    main()
