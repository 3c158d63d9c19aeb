"""AWS cost of Flowdeck itself per 1,000 runs, from a measured run on the local stack (step compute excluded).

Runs N runs each of a 5-step workflow (`five-steps`) and of `production-deploy` through the REST API,
each watched by one viewer as `flowdeck run --follow` does (POST the run, one WebSocket subscription
until the run ends, one GET /runs/{id} for the summary). Counted, not estimated:
  - state transitions: `*StateEntered` events of each execution's history;
  - DynamoDB WRU/RRU and every AWS request, per (service, action): the emulator's counter
    (FLOWDECK_EMULATOR_COUNT=1, `flowdeck/local/metering.py`);
  - Lambda invocations and wall time (API, WebSocket, fan-out), API requests, WebSocket messages and
    connection minutes: the local stack's own counters (`metering.METER`).
Estimated (stated in ESTIMATES): CloudWatch Logs bytes besides Step Functions' own, X-Ray traces.
Prints a per-run table by service, then `name=value` lines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from flowdeck.config import Settings
from flowdeck.local import metering
from flowdeck.local.stack import LocalStack, free_port

REPO = Path(__file__).resolve().parent.parent
FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}
GOAL_USD_PER_1000_RUNS = Decimal("0.50")

# List prices, us-east-1, on-demand, no free tier. Taken 2026-11-21 from the AWS pricing pages as last
# known (DynamoDB on-demand after the November 2024 price cut); check before quoting.
PRICES_TAKEN = "2026-11-21"
PRICES: dict[str, Decimal] = {
    "sfn_transition": Decimal("0.025") / 1000,  # Step Functions Standard, per state transition
    "ddb_wru": Decimal("0.625") / 10**6,  # DynamoDB on-demand, per write request unit
    "ddb_rru": Decimal("0.125") / 10**6,  # DynamoDB on-demand, per read request unit
    "sqs_request": Decimal("0.40") / 10**6,  # SQS standard queue, per request (64 KB chunk)
    "lambda_request": Decimal("0.20") / 10**6,  # Lambda, per invocation
    "lambda_gb_second": Decimal("0.0000166667"),  # Lambda x86, per GB-second
    "apigw_rest_request": Decimal("3.50") / 10**6,  # API Gateway REST API, first 333 M a month
    "ws_message": Decimal("1.00") / 10**6,  # API Gateway WebSocket, per message (32 KB increments)
    "ws_connection_minute": Decimal("0.25") / 10**6,  # API Gateway WebSocket, per connection minute
    "logs_ingested_gb": Decimal("0.50"),  # CloudWatch Logs ingestion (standard and vended), per GB
    "xray_trace": Decimal("5.00") / 10**6,  # X-Ray, per trace recorded
    "s3_write_request": Decimal("0.005") / 1000,  # S3 Standard PUT/POST/LIST, per request
    "s3_read_request": Decimal("0.0004") / 1000,  # S3 Standard GET and others, per request
}
# Deployed Lambda memory (stacks/api.py and stacks/live.py: memory_size=512 for API, WebSocket, fan-out).
LAMBDA_MEMORY_GB = {"api": Decimal("0.5"), "ws": Decimal("0.5"), "fanout": Decimal("0.5")}
# Billed duration per invocation is the measured local handler wall time, but never under this.
MIN_BILLED_SECONDS = Decimal("0.1")
# Estimates, not counts (bytes of CloudWatch Logs per event; see the README's Benchmarks section):
ESTIMATES = {
    "lambda_log_bytes_per_invocation": 400,  # START/END/REPORT lines and one Powertools line
    "rest_access_log_bytes_per_request": 500,  # the REST stage's JSON access log line
    "ws_log_bytes_per_message": 1200,  # WebSocket stage: access log line + INFO execution log lines
    "cloudwatch_event_overhead_bytes": 26,  # what CloudWatch Logs adds to each event it ingests
}
# Workers long-poll the steps queue (Settings.worker_poll_seconds, WaitTimeSeconds on AWS): an idle
# worker makes 3600/wait receives an hour, whatever the run rate; a fixed monthly cost per worker.
WORKER_WAIT_SECONDS = Settings.model_fields["worker_poll_seconds"].default
HOURS_PER_MONTH = 730

FIVE_STEPS = """\
name: five-steps
description: Five sequential steps with small outputs and a few log lines
steps:
  - id: plan
    run: |
      echo planning; sleep 0.2; echo "3 to add"
      printf '{"summary": "3 to add"}' > "$FLOWDECK_OUTPUTS"
  - id: apply
    run: |
      echo applying; sleep 0.2; echo done
      printf '{"endpoint": "https://example.test"}' > "$FLOWDECK_OUTPUTS"
  - id: health
    run: |
      sleep 0.2; echo "200 OK"
      printf '{"status": 200}' > "$FLOWDECK_OUTPUTS"
  - id: verify
    run: |
      echo verifying; sleep 0.2; echo "all checks passed"
      printf '{"checks": 12}' > "$FLOWDECK_OUTPUTS"
  - id: notify
    notify: {slack: "#deploys", message: "Deployed in {{ run.id }}"}
"""


def bill(usage: Mapping[str, float]) -> dict[str, Decimal]:
    """Dollars per service for some usage (keys as in `usage_per_run`), unrounded Decimals.

    Keys: transitions, ddb_wru, ddb_rru, sqs_requests, lambda_requests, lambda_gb_seconds,
    api_requests, ws_messages, ws_connection_minutes, logs_bytes, xray_traces, s3_writes, s3_reads.
    DynamoDB Streams reads by Lambda triggers are free and so are not priced.
    """

    def cost(key: str, price: str) -> Decimal:
        return Decimal(str(usage.get(key, 0))) * PRICES[price]

    return {
        "Step Functions": cost("transitions", "sfn_transition"),
        "DynamoDB": cost("ddb_wru", "ddb_wru") + cost("ddb_rru", "ddb_rru"),
        "SQS": cost("sqs_requests", "sqs_request"),
        "Lambda": cost("lambda_requests", "lambda_request") + cost("lambda_gb_seconds", "lambda_gb_second"),
        "API Gateway REST": cost("api_requests", "apigw_rest_request"),
        "API Gateway WebSocket": cost("ws_messages", "ws_message")
        + cost("ws_connection_minutes", "ws_connection_minute"),
        "CloudWatch Logs": Decimal(str(usage.get("logs_bytes", 0))) / 2**30 * PRICES["logs_ingested_gb"],
        "X-Ray": cost("xray_traces", "xray_trace"),
        "S3": cost("s3_writes", "s3_write_request") + cost("s3_reads", "s3_read_request"),
    }


def per_1000_runs(dollars_per_run: Decimal) -> Decimal:
    """Dollars per 1,000 runs, rounded half up to a hundredth of a cent."""
    return (dollars_per_run * 1000).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def idle_worker_usd_per_month() -> Decimal:
    """SQS cost of one worker long-polling an empty queue all month."""
    receives = Decimal(3600 // WORKER_WAIT_SECONDS * HOURS_PER_MONTH)
    return (receives * PRICES["sqs_request"]).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _sum(counts: Mapping[str, float], prefix: str) -> float:
    return sum(value for name, value in counts.items() if name.startswith(prefix))


def usage_per_run(
    emulator: Mapping[str, float], local: Mapping[str, float], histories: list[list[dict[str, Any]]]
) -> dict[str, float]:
    """Billable usage of one run, averaged over the runs whose counts and histories are given."""
    runs = len(histories)
    transitions = sum(1 for h in histories for e in h if e["type"].endswith("StateEntered"))
    sfn_log_bytes = sum(_sfn_log_bytes(h) for h in histories)
    # SQS: every request except the long polls that came back empty (an idle worker's cost, below).
    sqs = _sum(emulator, "requests.sqs:") - emulator.get("sqs.receives_empty", 0)
    invocations = {f: local.get(f"lambda.{f}.invocations", 0) for f in LAMBDA_MEMORY_GB}
    gb_seconds = sum(
        float(
            LAMBDA_MEMORY_GB[f]
            * max(Decimal(str(local.get(f"lambda.{f}.seconds", 0))), MIN_BILLED_SECONDS * Decimal(str(n)))
        )
        for f, n in invocations.items()
    )
    ws_messages = local.get("ws.messages_out", 0) + local.get("ws.messages_in", 0)
    other_log_bytes = (
        sum(invocations.values()) * ESTIMATES["lambda_log_bytes_per_invocation"]
        + invocations["api"] * ESTIMATES["rest_access_log_bytes_per_request"]
        + ws_messages * ESTIMATES["ws_log_bytes_per_message"]
    )
    total = {
        "transitions": transitions,
        "ddb_wru": emulator.get("dynamodb.wru", 0),
        "ddb_rru": emulator.get("dynamodb.rru", 0),
        "sqs_requests": sqs,
        "lambda_requests": sum(invocations.values()),
        "lambda_gb_seconds": gb_seconds,
        "api_requests": invocations["api"],
        "ws_messages": ws_messages,
        "ws_connection_minutes": local.get("ws.connection_minutes", 0),
        "logs_bytes": sfn_log_bytes + other_log_bytes,
        "sfn_log_bytes": sfn_log_bytes,
        # Upper bound: every trace recorded (the default sampling rule records the first request each
        # second and 5% beyond): one per execution and one per Lambda invocation.
        # The fan-out Lambda runs without active tracing (stacks/live.py).
        "xray_traces": runs + sum(n for name, n in invocations.items() if name != "fanout"),
        "s3_writes": sum(emulator.get(f"requests.s3:{m}", 0) for m in ("PUT", "POST")),
        "s3_reads": sum(emulator.get(f"requests.s3:{m}", 0) for m in ("GET", "HEAD")),
        "stream_reads_free": _sum(emulator, "requests.dynamodbstreams:"),
        "fanout_records": local.get("lambda.fanout.records", 0),
    }
    return {name: value / runs for name, value in total.items()}


EXAMPLE_EXECUTION_ARN = (
    "arn:aws:states:us-east-1:123456789012:execution:flowdeck-five-steps:20261121-000000-abcdef12"
)


def _sfn_log_bytes(history: list[dict[str, Any]]) -> int:
    """CloudWatch Logs bytes of one execution at level ALL without execution data: one log event per
    history event ({id, type, details, previous_event_id, event_timestamp, execution_arn}), with the
    input, output and parameters left out."""
    data = {"input", "output", "parameters", "result", "inputDetails", "outputDetails"}
    total = 0
    for event in history:
        details = {
            k: {kk: vv for kk, vv in v.items() if kk not in data} if isinstance(v, dict) else v
            for k, v in event.items()
            if k.endswith("EventDetails")
        }
        record = {
            "id": str(event["id"]),
            "type": event["type"],
            "details": details,
            "previous_event_id": str(event.get("previousEventId", 0)),
            "event_timestamp": "1763750000000",
            "execution_arn": EXAMPLE_EXECUTION_ARN,
        }
        total += len(json.dumps(record, default=str)) + ESTIMATES["cloudwatch_event_overhead_bytes"]
    return total


# -- measuring on the local stack -------------------------------------------------------------------
def watch_run(api: httpx.Client, ws_url: str, workflow: str, timeout: float = 120) -> str:
    """Start a run and follow it as `flowdeck run --follow` does; return the run id."""
    response = api.post(f"/workflows/{workflow}/runs", json={})
    response.raise_for_status()
    run_id = str(response.json()["run_id"])
    if workflow == "production-deploy":
        # Its approval step waits for two people: approve as them, as `flowdeck up --demo` does.
        from rich.console import Console

        from flowdeck.cli.demo_approvals import approve_when_waiting

        args = (str(api.base_url), run_id, Console(quiet=True))
        threading.Thread(target=approve_when_waiting, args=args, daemon=True).start()
    deadline = time.monotonic() + timeout
    with connect(ws_url, max_size=2**20) as ws:
        ws.send(json.dumps({"action": "subscribe", "run_id": run_id, "since_seq": 0}))
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=timeout))
            if message.get("type") == "run" and message.get("status") in FINISHED:
                break
    run = api.get(f"/runs/{run_id}").json()  # the summary printed at the end
    if run["status"] != "succeeded":
        failed = [(s["id"], s["status"], s["error"]) for s in run["steps"] if s["status"] != "succeeded"]
        print(f"warning: run {run_id} of {workflow} {run['status']}: {run.get('error')} {failed}")
    return run_id


def measure(stack: LocalStack, api: httpx.Client, workflow: str, runs: int) -> dict[str, float]:
    counts_url = stack.endpoint_url + metering.COUNTS_PATH
    ws_url = stack.api_url.replace("http://", "ws://") + "/ws"
    time.sleep(1)  # the warm-up's trailing stream records
    httpx.delete(counts_url).raise_for_status()
    metering.METER.reset()
    run_ids = [watch_run(api, ws_url, workflow) for _ in range(runs)]
    time.sleep(2)  # the last records through the streams and the fan-out, the viewers' disconnects
    emulator = httpx.get(counts_url).json()
    local = metering.METER.snapshot()
    sfn = stack.client("stepfunctions")
    histories = []
    for run_id in run_ids:
        arn = api.get(f"/runs/{run_id}").json()["execution_arn"]
        histories.append(sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"])
    usage = usage_per_run(emulator, local, histories)
    wru = {k: v / runs for k, v in emulator.items() if k.startswith("dynamodb.wru.")}
    usage["_wru_by_table"] = wru  # type: ignore[assignment]
    usage["_sqs_receives_empty"] = emulator.get("sqs.receives_empty", 0)
    usage["_requests"] = {
        k[len("requests.") :]: v / runs for k, v in emulator.items() if k.startswith("requests.")
    }  # type: ignore[assignment]
    usage["_local"] = {k: v / runs for k, v in local.items()}  # type: ignore[assignment]
    return usage


def report(workflow: str, usage: dict[str, Any]) -> Decimal:
    dollars = bill(usage)
    total = sum(dollars.values(), Decimal(0))
    print(f"\n== {workflow}: per run (averaged), list prices us-east-1 taken {PRICES_TAKEN}")
    print(f"{'service':<24}{'usage per run':<64}{'$ per 1,000 runs':>18}")
    detail = {
        "Step Functions": f"{usage['transitions']:.1f} state transitions",
        "DynamoDB": f"{usage['ddb_wru']:.1f} WRU, {usage['ddb_rru']:.1f} RRU",
        "SQS": f"{usage['sqs_requests']:.1f} requests (idle long polls excluded)",
        "Lambda": f"{usage['lambda_requests']:.1f} invocations, {usage['lambda_gb_seconds']:.3f} GB-s",
        "API Gateway REST": f"{usage['api_requests']:.1f} requests",
        "API Gateway WebSocket": f"{usage['ws_messages']:.1f} messages, {usage['ws_connection_minutes']:.1f} "
        "connection min",
        "CloudWatch Logs": f"{usage['logs_bytes'] / 1024:.1f} KB ({usage['sfn_log_bytes'] / 1024:.1f} KB "
        "Step Functions)",
        "X-Ray": f"{usage['xray_traces']:.1f} traces (upper bound: all sampled)",
        "S3": f"{usage['s3_writes']:.1f} writes, {usage['s3_reads']:.1f} reads",
    }
    for service, cost in sorted(dollars.items(), key=lambda item: -item[1]):
        print(f"{service:<24}{detail[service]:<64}{per_1000_runs(cost):>18}")
    print(f"{'total':<88}{per_1000_runs(total):>18}")
    print(
        f"DynamoDB Streams: {usage['stream_reads_free']:.1f} GetRecords per run (free when read by a Lambda "
        f"trigger); fan-out records {usage['fanout_records']:.1f}"
    )
    print(
        "AWS requests per run:", json.dumps({k: round(v, 1) for k, v in sorted(usage["_requests"].items())})
    )
    by_table = {k[len("dynamodb.wru.") :]: round(v, 1) for k, v in usage["_wru_by_table"].items()}
    print("DynamoDB WRU per run by table (global secondary index writes included):", json.dumps(by_table))
    print("local handlers per run:", json.dumps({k: round(v, 3) for k, v in sorted(usage["_local"].items())}))
    return per_1000_runs(total)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="measured runs of each workflow (after a warm-up)"
    )
    args = parser.parse_args()
    os.environ[metering.COUNT_ENV] = "1"  # the emulator process inherits it
    results: dict[str, tuple[Decimal, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "workflows"
        shutil.copytree(REPO / "workflows" / "scripts", folder / "scripts")
        shutil.copy(REPO / "workflows" / "production-deploy.yaml", folder)
        (folder / "five-steps.yaml").write_text(FIVE_STEPS)
        with (
            LocalStack(
                folder, port=free_port(), workers=1, data_dir=Path(tmp) / "data", keep_state=False
            ) as stack,
            httpx.Client(base_url=stack.api_url, timeout=60) as api,
        ):
            ws_url = stack.api_url.replace("http://", "ws://") + "/ws"
            for workflow in ("five-steps", "production-deploy"):
                watch_run(api, ws_url, workflow)  # warm-up: imports, first connections
            for workflow in ("five-steps", "production-deploy"):
                usage = measure(stack, api, workflow, args.runs)
                results[workflow] = (report(workflow, usage), usage)
    five, five_usage = results["five-steps"]
    deploy, _ = results["production-deploy"]
    print(
        f"\nfixed, not per run: one idle worker long-polling (WaitTimeSeconds={WORKER_WAIT_SECONDS}) makes "
        f"{3600 // WORKER_WAIT_SECONDS * HOURS_PER_MONTH:,} receives a month = "
        f"${idle_worker_usd_per_month()} per worker-month"
    )
    print(f"runs measured per workflow: {args.runs}; viewer: one WebSocket subscription + one GET per run")
    print(f"goal: under ${GOAL_USD_PER_1000_RUNS} per 1,000 runs of a 5-step workflow")
    print(f"aws_cost_per_1000_runs_usd={five}")
    print(f"aws_cost_per_1000_runs_usd_production_deploy={deploy}")
    print(f"state_transitions_per_run={five_usage['transitions']:.1f}")
    print(f"dynamodb_wru_per_run={five_usage['ddb_wru']:.1f}")
    print(f"sqs_requests_per_run={five_usage['sqs_requests']:.1f}")
    print(f"idle_worker_sqs_usd_per_month={idle_worker_usd_per_month()}")
    print(f"lambda_min_billed_ms={int(MIN_BILLED_SECONDS * 1000)} (measured local wall time when higher)")


if __name__ == "__main__":
    main()
