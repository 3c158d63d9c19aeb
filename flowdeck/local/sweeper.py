"""The local stack's stand-in for S3 lifecycle rules: delete run artifacts past their workflow's retention."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.catalog import Catalog
from flowdeck.constants import ARTIFACT_KEY_PREFIX, ARTIFACTS_BUCKET
from flowdeck.stores.artifacts import ArtifactStore

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
    ) -> None:
        self.store = store
        self.retention_hours = dict(retention_hours)
        self.stop = stop
        self.every = every

    @classmethod
    def over(cls, s3: Any, catalog: Catalog, stop: threading.Event) -> ArtifactSweeper:
        """A sweeper of the local artifacts bucket with the catalog's retention per workflow."""
        retention = {name: d.runtime_config.retention_hours for name, d in catalog.definitions.items()}
        return cls(ArtifactStore(ARTIFACTS_BUCKET, s3), retention, stop)

    def start(self) -> ArtifactSweeper:
        threading.Thread(target=self._loop, daemon=True, name="artifact-sweeper").start()
        return self

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.sweep()
            except (BotoCoreError, ClientError) as exc:
                log.warning("artifact sweep failed: %s", exc)

    def sweep(self, now: datetime | None = None) -> list[str]:
        """Delete what is past retention; the keys deleted."""
        moment = now or datetime.now(UTC)
        expired = []
        for entry in self.store.list_keys(ARTIFACT_KEY_PREFIX):
            key = str(entry["Key"])
            workflow = key.removeprefix(ARTIFACT_KEY_PREFIX).split("/", 1)[0]
            hours = self.retention_hours.get(workflow, DEFAULT_RETENTION_HOURS)
            if entry["LastModified"] + timedelta(hours=hours) <= moment:
                expired.append(key)
        if expired:
            self.store.delete_keys(expired)
            log.info("deleted %d expired artifacts", len(expired))
        return expired
