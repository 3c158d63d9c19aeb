"""ZIP of a 200 MB run on the local stack: the API's streaming writer, its memory and its time.

A step uploads 20 x 10 MB random files; the ZIP is then built by the same code the API runs
(ArtifactService.zip_link -> multipart upload in 8 MiB parts) in a fresh process, whose resident
memory is sampled while it zips. Prints figures, not pass/fail:
  zip_peak_rss_mb   = peak RSS while zipping - RSS just before (what the ZIP itself costs)
  zip_size_mb, zip_seconds, artifacts_mb
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}
MB = 1024 * 1024


def write_workflow(folder: Path, files: int, size_mb: int) -> None:
    (folder / "artifacts-bench.yaml").write_text(
        "name: artifacts-bench\n"
        "description: one step producing many large artifacts\n"
        "steps:\n"
        "  - id: build\n"
        f"    run: mkdir -p out && for i in $(seq 1 {files}); do "
        f"head -c {size_mb}M /dev/urandom > out/blob-$i.bin; done\n"
        '    artifacts: {upload: ["out/*.bin"]}\n'
    )


def rss_mb() -> float:
    """This process's resident set now (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def zip_in_this_process(endpoint: str, run_id: str) -> None:
    """The measured part: build the ZIP through ArtifactService, sampling RSS every 10 ms."""
    os.environ["FLOWDECK_AWS_ENDPOINT_URL"] = endpoint
    from flowdeck.constants import ARTIFACTS_BUCKET, RUNS_TABLE
    from flowdeck.runs.artifacts import ArtifactService
    from flowdeck.stores.artifacts import ArtifactStore, s3_client
    from flowdeck.stores.runs import RunStore

    store = ArtifactStore(ARTIFACTS_BUCKET, s3_client())
    service = ArtifactService(RunStore(RUNS_TABLE), store)
    service.list_artifacts(run_id)  # warm: clients, connections, imports
    baseline = rss_mb()
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.01):
            peak = max(peak, rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    url = service.zip_link(run_id)
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    peak = max(peak, rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "seconds": seconds, "url": url}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--size-mb", type=int, default=10)
    parser.add_argument("--zip-only", nargs=2, metavar=("ENDPOINT", "RUN_ID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.zip_only:
        zip_in_this_process(*args.zip_only)
        return
    from flowdeck.local.stack import LocalStack, free_port

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        write_workflow(folder, args.files, args.size_mb)
        with (
            LocalStack(
                folder, port=free_port(), workers=1, data_dir=Path(tmp) / "data", keep_state=False
            ) as stack,
            httpx.Client(base_url=stack.api_url, timeout=60) as api,
        ):
            run_id = api.post("/workflows/artifacts-bench/runs", json={}).json()["run_id"]
            while (run := api.get(f"/runs/{run_id}").json()).get("status") not in FINISHED:
                time.sleep(0.5)
            assert run["status"] == "succeeded", run
            artifacts = api.get(f"/runs/{run_id}/artifacts").json()["artifacts"]
            total = sum(a["size"] for a in artifacts)
            measured = subprocess.run(
                [sys.executable, __file__, "--zip-only", stack.endpoint_url, run_id],
                capture_output=True,
                text=True,
                check=True,
                env=os.environ | stack.env,
            )
            figures = json.loads(measured.stdout.strip().splitlines()[-1])
            size = 0
            with httpx.stream("GET", figures["url"], timeout=120) as response:
                for chunk in response.iter_bytes(MB):
                    size += len(chunk)
    print(f"run {run_id}: {len(artifacts)} artifacts, {total / MB:.0f} MiB")
    print(
        f"zip built in {figures['seconds']:.1f}s; RSS {figures['baseline_mb']:.0f} MiB before, "
        f"{figures['peak_mb']:.0f} MiB at peak"
    )
    print(f"artifacts_mb={total / MB:.0f}")
    print(f"zip_size_mb={size / MB:.0f}")
    print(f"zip_seconds={figures['seconds']:.1f}")
    print(f"zip_peak_rss_mb={figures['peak_mb'] - figures['baseline_mb']:.1f}")


if __name__ == "__main__":
    main()
