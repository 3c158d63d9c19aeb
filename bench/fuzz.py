"""The API fuzzed at length: schemathesis (`st run`) against /openapi.json of a local stack of its own.

Every operation, its coverage, fuzzing and stateful (links) phases, generated bodies, paths, query strings and
content types; the checks of tests/e2e/test_fuzz_api.py. The stack holds only `fuzz-target` (one no-op step),
so whatever the fuzzer starts, cancels or pauses harms nothing; one run of it is seeded for it to read.

Prints figures, not pass/fail (name=value lines):
  fuzz_operations        = operations tested (of /openapi.json)
  fuzz_cases             = test cases generated and sent (goal >= 2,000)
  fuzz_5xx               = distinct failing cases answered with a server error (goal 0)
  fuzz_schema_mismatches = distinct failing cases whose status, content type, headers or body the document
                           does not describe (goal 0)
  fuzz_seconds           = wall time of the run
Each failure is also printed (`finding=CODE operation`); `st replay` needs the report left in --keep.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from flowdeck.local.stack import LocalStack, free_port
from flowdeck.runs.service import idempotent_run_id

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_FILE = REPO / "tests" / "e2e" / "workflows" / "fuzz-target.yaml"
WORKFLOW = "fuzz-target"
STEP = "only"
SEED_KEY = "fuzz-seed"
USER = "fuzz@example.com"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)
# Failure codes of schemathesis' server-error checks; every other failure of CHECKS is a mismatch.
SERVER_ERRORS = {"ST101", "ST102"}


def config_toml(run_id: str) -> str:
    """The fuzzer's settings: its own workflow, run and step half the time, generated values otherwise."""
    return f"""
headers = {{ "X-Flowdeck-User" = "{USER}" }}

[generation]
database = "none"

[dictionaries.workflows]
values = ["{WORKFLOW}"]
[dictionaries.runs]
values = ["{run_id}"]
[dictionaries.steps]
values = ["{STEP}"]

[parameters]
"path.wf" = {{ dictionary = "workflows", probability = 0.5 }}
"path.run_id" = {{ dictionary = "runs", probability = 0.5 }}
"path.step" = {{ dictionary = "steps", probability = 0.5 }}
"""


def seed_run(api_url: str) -> str:
    """One finished run of the fuzzer's workflow, for the operations on a run."""
    with httpx.Client(base_url=api_url, headers={"X-Flowdeck-User": USER}, timeout=30) as client:
        started = client.post(f"/workflows/{WORKFLOW}/runs", json={"idempotency_key": SEED_KEY})
        started.raise_for_status()
        run_id = str(started.json()["run_id"])
        deadline = time.monotonic() + 60
        while client.get(f"/runs/{run_id}").json()["status"] not in ("succeeded", "failed"):
            if time.monotonic() > deadline:
                raise SystemExit(f"the seed run {run_id} did not finish")
            time.sleep(0.2)
    assert run_id == idempotent_run_id(WORKFLOW, SEED_KEY)
    return run_id


def fuzz(api_url: str, folder: Path, examples: int, seed: int, workers: int) -> tuple[dict[str, Any], float]:
    """`st run` with a JSON report; its report and the wall time."""
    config = folder / "schemathesis.toml"
    config.write_text(config_toml(seed_run(api_url)))
    report = folder / "report.json"
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(config),
        "run",
        f"{api_url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        str(workers),
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--report-dir",
        str(folder),
    ]
    began = time.perf_counter()
    # Exit status 1 means findings: the report says which.
    subprocess.run(command, cwd=folder, stdout=subprocess.DEVNULL, check=False)
    return json.loads(report.read_text()), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=100, help="generated cases per operation and phase")
    parser.add_argument("--seed", type=int, default=18)
    # One: hypothesis describes lambdas by parsing source with `ast`, which fails in two threads at once.
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the config and report in this folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workflows = Path(tmp) / "workflows"
        workflows.mkdir()
        shutil.copy(WORKFLOW_FILE, workflows / WORKFLOW_FILE.name)
        folder = args.keep or Path(tmp) / "fuzz"
        folder.mkdir(parents=True, exist_ok=True)
        with LocalStack(
            workflows, port=free_port(), workers=1, data_dir=Path(tmp) / "data", keep_state=False
        ) as stack:
            report, seconds = fuzz(stack.api_url, folder, args.examples, args.seed, args.workers)

    failures = report.get("failures", [])
    for failure in failures:
        for operation in failure["operations"]:
            print(f"finding={failure['code']} {failure['title']}: {operation}")
    for error in report.get("errors", []):
        print(f"fuzz_error={error['title']} x{error['count']}")
    print(f"fuzz_operations={report['operations']['tested']}")
    print(f"fuzz_cases={report['test_cases']['generated']}")
    print(f"fuzz_5xx={sum(f['count'] for f in failures if f['code'] in SERVER_ERRORS)}")
    print(f"fuzz_schema_mismatches={sum(f['count'] for f in failures if f['code'] not in SERVER_ERRORS)}")
    print(f"fuzz_seconds={seconds:.0f}")


if __name__ == "__main__":
    main()
