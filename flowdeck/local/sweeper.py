"""The local stack's stand-in for S3 lifecycle rules: delete run artifacts past their workflow's retention."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.catalog import Catalog
from flowdeck.constants import ARTIFACT_KEY_PREFIX, ARTIFACTS_BUCKET
from flowdeck.stores.artifacts import ArtifactStore
from flowdeck.stores.runs import RunStore

log = logging.getLogger("flowdeck.sweeper")

SWEEP_EVERY_SECONDS = 60.0
DEFAULT_RETENTION_HOURS = 24


class ArtifactSweeper:
    """Every minute, delete objects under runs/<workflow>/ older than that workflow's retention.

    By LastModified, like a lifecycle rule (but in hours: AWS rounds up to whole days; the API
    already answers 410 from each artifact's own expiry, so only storage differs).
    """

    def __init__(
        self,
        store: ArtifactStore,
        retention_hours: Mapping[str, int],
        stop: threading.Event,
        every: float = SWEEP_EVERY_SECONDS,
        uploaded_at: Mapping[str, datetime] | None = None,
        scratch: ScratchSweeper | None = None,
    ) -> None:
        self.store = store
        self.retention_hours = dict(retention_hours)
        self.stop = stop
        self.every = every
        # Objects restored from a saved local state: their LastModified is the restore, not the upload.
        self.uploaded_at = dict(uploaded_at or {})
        self.scratch = scratch

    @classmethod
    def over(
        cls,
        s3: Any,
        catalog: Catalog,
        stop: threading.Event,
        uploaded_at: Mapping[str, datetime] | None = None,
        scratch: ScratchSweeper | None = None,
    ) -> ArtifactSweeper:
        """A sweeper of the local artifacts bucket with the catalog's retention per workflow."""
        retention = {name: d.runtime_config.retention_hours for name, d in catalog.definitions.items()}
        return cls(
            ArtifactStore(ARTIFACTS_BUCKET, s3), retention, stop, uploaded_at=uploaded_at, scratch=scratch
        )

    def start(self) -> ArtifactSweeper:
        threading.Thread(target=self._loop, daemon=True, name="artifact-sweeper").start()
        return self

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.sweep()
                if self.scratch is not None:
                    self.scratch.sweep()
            except (BotoCoreError, ClientError, OSError) as exc:
                log.warning("artifact sweep failed: %s", exc)

    def sweep(self, now: datetime | None = None) -> list[str]:
        """Delete what is past retention; the keys deleted."""
        moment = now or datetime.now(UTC)
        expired = []
        for entry in self.store.list_keys(ARTIFACT_KEY_PREFIX):
            key = str(entry["Key"])
            workflow = key.removeprefix(ARTIFACT_KEY_PREFIX).split("/", 1)[0]
            hours = self.retention_hours.get(workflow, DEFAULT_RETENTION_HOURS)
            uploaded = min(entry["LastModified"], self.uploaded_at.get(key, entry["LastModified"]))
            if uploaded + timedelta(hours=hours) <= moment:
                expired.append(key)
        if expired:
            self.store.delete_keys(expired)
            log.info("deleted %d expired artifacts", len(expired))
        return expired


class ScratchSweeper:
    """Removes a run's scratch folders (`<scratch>/<run id>/`) once its workflow's retention has passed.

    Counted from the run's end (from the folder's last change when the run is unknown or never ended).
    """

    def __init__(self, root: Path, runs: RunStore, retention_hours: Mapping[str, int]) -> None:
        self.root = root
        self.runs = runs
        self.retention_hours = dict(retention_hours)

    @classmethod
    def over(cls, root: Path, runs: RunStore, catalog: Catalog) -> ScratchSweeper:
        retention = {name: d.runtime_config.retention_hours for name, d in catalog.definitions.items()}
        return cls(root, runs, retention)

    def sweep(self, now: datetime | None = None) -> list[str]:
        """Remove the folders past retention; the run ids removed."""
        if not self.root.is_dir():
            return []
        moment = now or datetime.now(UTC)
        removed = []
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            run, _, _ = self.runs.get_run_items(folder.name)
            run = run or {}
            if run.get("status") in ("queued", "running", "waiting"):
                continue
            hours = self.retention_hours.get(str(run.get("workflow")), DEFAULT_RETENTION_HOURS)
            ended = run.get("ended_at")
            since = (
                datetime.fromisoformat(str(ended).replace("Z", "+00:00"))
                if ended
                else datetime.fromtimestamp(folder.stat().st_mtime, UTC)
            )
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            if since + timedelta(hours=hours) <= moment:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        if removed:
            log.info("removed the scratch folders of %d runs past retention", len(removed))
        return removed
