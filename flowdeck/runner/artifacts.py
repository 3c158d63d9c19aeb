"""Step artifacts on the worker: collect what a step produced, upload it, fetch what a step needs."""

from __future__ import annotations

import hashlib
import json
import mimetypes
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.messages import StepMessage
from flowdeck.runner.process import LineSink
from flowdeck.stores.artifacts import OUTPUTS_REF, ArtifactStore, artifact_key, is_expired, outputs_key

# Outputs above this size go to S3 and the runs table holds a reference (DynamoDB items stop at 400 KB).
OUTPUTS_INLINE_LIMIT = 64 * 1024
_HASH_CHUNK = 1024 * 1024
# Each artifact's record lives on the step item (DynamoDB caps an item at 400 KB): zip folders beyond this.
MAX_ARTIFACTS_PER_STEP = 1000


@dataclass
class Collected:
    """Files a step's upload globs matched, and what did not go as declared."""

    files: list[tuple[Path, str]] = field(default_factory=list)  # (file on disk, path relative to work)
    warnings: list[str] = field(default_factory=list)


def content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or "application/octet-stream"


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def collect(work_dir: Path, patterns: list[str], workspace: Path | None = None) -> Collected:
    """Files matching the upload globs, relative to the work dir.

    A pattern or match escaping the work dir is refused; a file reached only through the
    workspace links (see process.link_workspace) is an input of the step, not a product.
    """
    found = Collected()
    root = work_dir.resolve()
    inputs = workspace.resolve() if workspace is not None else None
    seen: set[str] = set()
    for pattern in patterns:
        pure = PurePosixPath(pattern)
        if pure.is_absolute() or ".." in pure.parts:
            found.warnings.append(f"refused {pattern!r}: it points outside the work dir")
            continue
        matches = sorted(work_dir.glob(pattern))
        files: list[Path] = []
        for match in matches:
            if match.is_dir():
                files += sorted(p for p in match.rglob("*") if p.is_file())
            elif match.is_file():
                files.append(match)
        produced = refused = 0
        for file in files:
            relative = file.relative_to(work_dir).as_posix()
            real = file.resolve()
            if not _inside(real, root):
                if inputs is not None and _inside(real, inputs):
                    continue  # a workspace file the step was given, not one it made
                found.warnings.append(f"refused {relative!r}: it resolves outside the work dir")
                refused += 1
                continue
            produced += 1
            if relative not in seen and len(seen) >= MAX_ARTIFACTS_PER_STEP:
                found.warnings.append(
                    f"skipped {relative!r}: over {MAX_ARTIFACTS_PER_STEP} artifacts in one step"
                )
                break
            if relative not in seen:
                seen.add(relative)
                found.files.append((file, relative))
        if not produced and not refused:
            found.warnings.append(f"no file matches {pattern!r}")
    return found


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def upload(
    store: ArtifactStore,
    message: StepMessage,
    work_dir: Path,
    ended_at: datetime,
    sink: LineSink,
    workspace: Path | None = None,
) -> dict[str, Any]:
    """Upload the step's declared artifacts; the metadata for its step item (artifacts, warnings)."""
    patterns = (message.spec.artifacts or {}).get("upload", [])
    if not patterns:
        return {}
    found = collect(work_dir, patterns, workspace)
    expires_at = (ended_at + timedelta(hours=message.retention_hours)).isoformat()
    records = []
    for file, relative in found.files:
        key = artifact_key(message.workflow, message.run_id, message.step, relative)
        kind = content_type(relative)
        try:
            store.upload_file(str(file), key, kind)
        # boto3's transfer manager wraps the client error it gave up on in S3UploadFailedError.
        except (BotoCoreError, ClientError, S3TransferFailedError, S3UploadFailedError, OSError) as exc:
            # A lost artifact is reported on the step; it does not turn the step's outcome around.
            found.warnings.append(f"upload of {relative!r} failed: {exc.__class__.__name__}")
            continue
        records.append(
            {
                "path": relative,
                "size": file.stat().st_size,
                "content_type": kind,
                "sha256": sha256_of(file),
                "key": key,
                "expires_at": expires_at,
            }
        )
    for warning in found.warnings:
        sink("stderr", f"flowdeck: artifacts: {warning}")
    return {"artifacts": records, "artifact_warnings": found.warnings}


def wanted(records: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    """The artifacts `path` names: one file, or every file under a folder."""
    folder = path.rstrip("/") + "/"
    return [r for r in records if r.get("path") == path or str(r.get("path", "")).startswith(folder)]


def download(
    store: ArtifactStore,
    message: StepMessage,
    step_items: dict[str, dict[str, Any]],
    target: Path,
    sink: LineSink,
) -> list[str]:
    """Fetch `artifacts.download` entries into target/<step>/<path>; the problems, as warnings.

    Reads the keys recorded on the earlier steps' items, so a run that reuses another run's
    steps (a retry) finds the artifacts where that run stored them.
    """
    problems = []
    root = target.resolve()
    for item in (message.spec.artifacts or {}).get("download", []):
        step, _, path = item.partition(":")
        records = wanted(list(step_items.get(step, {}).get("artifacts") or []), path)
        live = [r for r in records if not is_expired(r)]
        if not live:
            problems.append(f"{item}: {'expired' if records else 'no such artifact'}")
            continue
        for record in live:
            destination = (target / step / record["path"]).resolve()
            if not _inside(destination, root):
                problems.append(f"{item}: {record['path']!r} points outside the artifacts dir")
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                store.download_file(record["key"], str(destination))
            except (BotoCoreError, ClientError, OSError) as exc:
                problems.append(f"{item}: download of {record['path']!r} failed: {exc.__class__.__name__}")
    for problem in problems:
        sink("stderr", f"flowdeck: artifacts: {problem}")
    return problems


def offload_outputs(store: ArtifactStore, message: StepMessage, outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs as the runs table keeps them: inline, or a reference to S3 when they are large."""
    if len(json.dumps(outputs, separators=(",", ":"))) <= OUTPUTS_INLINE_LIMIT:
        return outputs
    key = outputs_key(message.workflow, message.run_id, message.step)
    store.put_json(key, outputs)
    return {OUTPUTS_REF: store.ref(key)}


def now() -> datetime:
    return datetime.now(UTC)
