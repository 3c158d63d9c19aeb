"""Use cases behind the artifact endpoints: list a run's artifacts, link one, preview one, ZIP them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowdeck.errors import ArtifactExpired, ArtifactNotFound, NotText
from flowdeck.stores.artifacts import ArtifactStore, is_expired, is_text, zip_key
from flowdeck.stores.run_lookup import load_run
from flowdeck.stores.runs import RunStore

PREVIEW_BYTES = 1024


class ArtifactService:
    def __init__(self, runs: RunStore, store: ArtifactStore) -> None:
        self.runs = runs
        self.store = store

    def _run(self, run_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        run, steps, _ = load_run(self.runs, run_id)
        return run, steps

    def list_artifacts(self, run_id: str, now: datetime | None = None) -> dict[str, Any]:
        """Every artifact of the run, by step, with an `expired` flag."""
        _, steps = self._run(run_id)
        moment = now or datetime.now(UTC)
        rows = [
            {
                "step": step_id,
                "path": record["path"],
                "size": record.get("size"),
                "content_type": record.get("content_type"),
                "sha256": record.get("sha256"),
                "expires_at": record.get("expires_at"),
                "expired": is_expired(record, moment),
            }
            for step_id, item in sorted(steps.items())
            for record in item.get("artifacts") or []
        ]
        warnings = {s: list(i["artifact_warnings"]) for s, i in steps.items() if i.get("artifact_warnings")}
        return {"run_id": run_id, "artifacts": rows, "warnings": warnings}

    def find(self, run_id: str, step: str, path: str) -> dict[str, Any]:
        """One live artifact's record; ArtifactNotFound or ArtifactExpired otherwise."""
        _, steps = self._run(run_id)
        record = next(
            (r for r in steps.get(step, {}).get("artifacts") or [] if r.get("path") == path),
            None,
        )
        if record is None:
            raise ArtifactNotFound(f"run {run_id} has no artifact {step}:{path}")
        if is_expired(record):
            raise ArtifactExpired(f"artifact {step}:{path} expired at {record['expires_at']}")
        return dict(record)

    def link(self, run_id: str, step: str, path: str) -> str:
        """A presigned GET URL of one artifact (valid for five minutes)."""
        record = self.find(run_id, step, path)
        return self.store.presign(record["key"], filename=path.rsplit("/", 1)[-1])

    def preview(self, run_id: str, step: str, path: str) -> dict[str, Any]:
        """The first KiB of a text artifact, decoded; NotText for a binary one."""
        record = self.find(run_id, step, path)
        size = int(record.get("size") or 0)
        head = self.store.read_head(record["key"], PREVIEW_BYTES) if size else b""
        kind = str(record.get("content_type") or "application/octet-stream")
        if not is_text(kind, head):
            raise NotText(f"{step}:{path} is {kind}, not text: download it instead")
        return {
            "path": path,
            "step": step,
            "content_type": kind,
            "size": size,
            "preview": head.decode("utf-8", errors="replace"),
            "truncated": size > PREVIEW_BYTES,
        }

    def zip_link(self, run_id: str, step: str | None = None) -> str:
        """Build (once) a ZIP of the run's live artifacts, or one step's, in S3; its presigned URL."""
        run, steps = self._run(run_id)
        if step is not None and step not in steps:
            raise ArtifactNotFound(f"run {run_id} has no step {step!r} with artifacts")
        entries = [
            (f"{step_id}/{record['path']}", str(record["key"]))
            for step_id, item in sorted(steps.items())
            if step is None or step_id == step
            for record in item.get("artifacts") or []
            if not is_expired(record)
        ]
        if not entries:
            raise ArtifactNotFound(
                f"run {run_id} has no artifacts to download" + (f" in {step}" if step else "")
            )
        key = zip_key(str(run.get("workflow") or "unknown"), run_id, [source for _, source in entries])
        if self.store.head(key) is None:
            self.store.build_zip(key, entries)
        name = f"{run_id}-{step}.zip" if step else f"{run_id}.zip"
        return self.store.presign(key, filename=name)
