"""The local stack's state on disk: saved while it runs and when it stops, restored when it starts.

What is kept is the data, not the emulator: every DynamoDB table but the WebSocket connections
(runs, steps, outputs, logs, deliveries, approvals, slots), the artifacts bucket and the secrets,
read and written through the same AWS APIs the stack uses. Step Functions executions and queue
messages are not kept (an execution cannot be resumed in a new emulator); runs they carried are
recorded failed at the next start (`fail_interrupted`), so they are retryable and never stay running.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck import constants
from flowdeck.constants import PK, RUN_SK, SK, STEP_SK_PREFIX
from flowdeck.stores.conditions import conditional
from flowdeck.stores.schema import WORKFLOW_STATUS, workflow_status

log = logging.getLogger("flowdeck.local.state")

STOPPED_ERROR: Final = "LocalStackStopped"
IN_FLIGHT_RUN: Final = ("running", "waiting")
IN_FLIGHT_STEP: Final = ("running", "waiting")
# WebSocket connections do not outlive the server that held them.
NOT_KEPT_TABLES: Final = frozenset({constants.CONNECTIONS_TABLE})
SAVE_EVERY_SECONDS: Final = 15.0

Clients = Callable[[str], Any]


def stopped_cause(run_id: str) -> str:
    return f"the local stack stopped while this run was in flight; retry it: flowdeck retry {run_id}"


def _write_atomically(path: Path, text: str) -> None:
    """Write a file whole or not at all (a stack killed mid-save keeps the previous copy)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _base64(value: object) -> str:
    """A binary attribute's bytes as DynamoDB JSON writes them (base64 text): what json.dumps cannot."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not a DynamoDB attribute value")


def _binary_back(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value read back from DynamoDB JSON, its binary members bytes again."""
    # boto3 takes text for a binary as the bytes themselves: base64 text would be stored as is.
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in inner]}
    if kind == "L":
        return {"L": [_binary_back(v) for v in inner]}
    if kind == "M":
        return {"M": {k: _binary_back(v) for k, v in inner.items()}}
    return value


@dataclass
class Restored:
    """What a start found on disk: counts, and the runs that were in flight."""

    items: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    objects: int = 0
    secrets: int = 0
    in_flight: list[dict[str, Any]] = field(default_factory=list)


class LocalState:
    """Save and restore the local stack's data under `folder` (`<data dir>/state`)."""

    def __init__(self, folder: Path, clients: Clients) -> None:
        self.folder = folder
        self.clients = clients
        self._lock = threading.Lock()  # one save at a time (the timer and stop() may meet)

    @property
    def tables_dir(self) -> Path:
        return self.folder / "tables"

    @property
    def objects_dir(self) -> Path:
        return self.folder / "s3"

    # -- save -------------------------------------------------------------------------------
    def save(self) -> None:
        """Write every kept table, the bucket's new objects and the secrets to disk."""
        with self._lock:
            self.tables_dir.mkdir(parents=True, exist_ok=True)
            self.objects_dir.mkdir(parents=True, exist_ok=True)
            self._save_tables()
            self._save_objects()
            self._save_secrets()
            # When the stack was last seen alive: a run it left in flight ended then, not at the next start.
            _write_atomically(self.folder / "saved_at", datetime.now(UTC).isoformat())

    def _save_tables(self) -> None:
        ddb = self.clients("dynamodb")
        for table in ddb.list_tables()["TableNames"]:
            if table in NOT_KEPT_TABLES:
                continue
            lines = [
                json.dumps(item, separators=(",", ":"), default=_base64) for item in self._scan(ddb, table)
            ]
            _write_atomically(self.tables_dir / f"{table}.jsonl", "\n".join(lines))

    @staticmethod
    def _scan(ddb: Any, table: str) -> Iterable[dict[str, Any]]:
        for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            yield from page["Items"]

    def _save_objects(self) -> None:
        """Objects are files named by key and ETag: an unchanged object is not read or written again."""
        s3 = self.clients("s3")
        manifest_path = self.objects_dir / "manifest.json"
        before = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        manifest: dict[str, dict[str, Any]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=constants.ARTIFACTS_BUCKET):
            for entry in page.get("Contents", []):
                key, etag = entry["Key"], entry["ETag"]
                kept = before.get(key)
                if kept and kept["etag"] == etag and (self.objects_dir / kept["file"]).exists():
                    manifest[key] = kept
                    continue
                name = hashlib.sha256(f"{key}\0{etag}".encode()).hexdigest()
                try:
                    answer = s3.get_object(Bucket=constants.ARTIFACTS_BUCKET, Key=key)
                except ClientError:
                    continue  # deleted since it was listed (the sweeper)
                with open(self.objects_dir / name, "wb") as out:
                    shutil.copyfileobj(answer["Body"], out, 1 << 20)
                manifest[key] = {
                    "file": name,
                    "etag": etag,
                    "content_type": answer.get("ContentType", "binary/octet-stream"),
                    "metadata": answer.get("Metadata", {}),
                    # Kept from the first sighting: retention counts from the upload, not the restore.
                    "last_modified": (kept or {}).get("last_modified") or entry["LastModified"].isoformat(),
                }
        _write_atomically(manifest_path, json.dumps(manifest))
        live = {entry["file"] for entry in manifest.values()} | {"manifest.json"}
        for path in self.objects_dir.iterdir():
            if path.name not in live:
                path.unlink(missing_ok=True)

    def _save_secrets(self) -> None:
        sm = self.clients("secretsmanager")
        secrets = []
        for page in sm.get_paginator("list_secrets").paginate():
            for entry in page["SecretList"]:
                value = sm.get_secret_value(SecretId=entry["ARN"])
                kept: dict[str, Any] = {"name": entry["Name"]}
                if "SecretString" in value:
                    kept["string"] = value["SecretString"]
                else:
                    kept["binary"] = base64.b64encode(value["SecretBinary"]).decode()
                secrets.append(kept)
        path = self.folder / "secrets.json"
        _write_atomically(path, json.dumps(secrets))
        path.chmod(0o600)  # secrets in plain text: this user's eyes only

    # -- restore ----------------------------------------------------------------------------
    def restore(self) -> Restored:
        """Load what a previous stack saved into the (new, empty) emulator; nothing saved: nothing done."""
        restored = Restored()
        if not self.folder.is_dir():
            return restored
        self._restore_tables(restored)
        self._restore_objects(restored)
        self._restore_secrets(restored)
        return restored

    def _restore_tables(self, restored: Restored) -> None:
        ddb = self.clients("dynamodb")
        existing = set(ddb.list_tables()["TableNames"])
        for path in sorted(self.tables_dir.glob("*.jsonl")):
            table = path.stem
            if table not in existing or table in NOT_KEPT_TABLES:
                continue
            items = [
                {name: _binary_back(value) for name, value in json.loads(line).items()}
                for line in path.read_text(encoding="utf-8").splitlines()
                if line
            ]
            for start in range(0, len(items), 25):
                batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
                pending: dict[str, Any] = {table: batch}
                while pending:
                    pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            restored.items[table] = len(items)
            if table == constants.RUNS_TABLE:
                restored.runs = sum(1 for i in items if i.get(SK, {}).get("S") == RUN_SK)
                restored.in_flight = [
                    {"run_id": i[PK]["S"], "workflow": i.get("workflow", {}).get("S", "")}
                    for i in items
                    if i.get(SK, {}).get("S") == RUN_SK and i.get("status", {}).get("S") in IN_FLIGHT_RUN
                ]

    def _restore_objects(self, restored: Restored) -> None:
        manifest_path = self.objects_dir / "manifest.json"
        if not manifest_path.exists():
            return
        s3 = self.clients("s3")
        for key, entry in json.loads(manifest_path.read_text()).items():
            source = self.objects_dir / entry["file"]
            if not source.exists():
                continue
            with open(source, "rb") as body:
                s3.put_object(
                    Bucket=constants.ARTIFACTS_BUCKET,
                    Key=key,
                    Body=body,
                    ContentType=entry["content_type"],
                    Metadata=entry["metadata"],
                )
            restored.objects += 1

    def _restore_secrets(self, restored: Restored) -> None:
        path = self.folder / "secrets.json"
        if not path.exists():
            return
        sm = self.clients("secretsmanager")
        for secret in json.loads(path.read_text()):
            value = (
                {"SecretString": secret["string"]}
                if "string" in secret
                else {"SecretBinary": base64.b64decode(secret["binary"])}
            )
            try:
                sm.create_secret(Name=secret["name"], **value)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceExistsException":
                    raise
                # Created by the bootstrap (the approval link key): the saved value wins, so old links verify.
                sm.put_secret_value(SecretId=secret["name"], **value)
            restored.secrets += 1

    def uploaded_at(self) -> dict[str, datetime]:
        """When each restored object was first uploaded (the restore itself sets a new LastModified)."""
        manifest_path = self.objects_dir / "manifest.json"
        if not manifest_path.exists():
            return {}
        manifest = json.loads(manifest_path.read_text())
        return {key: datetime.fromisoformat(entry["last_modified"]) for key, entry in manifest.items()}

    # -- runs the previous stack left in flight -------------------------------------------
    def fail_interrupted(self, runs: list[dict[str, Any]]) -> list[str]:
        """Record each run that was in flight failed (LocalStackStopped), with its running or waiting
        steps; the runs' ends then reach the run-events reactions as any end does. The run ids failed."""
        ddb = self.clients("dynamodb")
        saved_at = self.folder / "saved_at"
        now = saved_at.read_text().strip() if saved_at.exists() else datetime.now(UTC).isoformat()
        failed = []
        for run in runs:
            run_id, cause = run["run_id"], stopped_cause(run["run_id"])
            for step in self._steps(ddb, run_id):
                with conditional():  # a step that ended meanwhile keeps its record
                    ddb.update_item(
                        TableName=constants.RUNS_TABLE,
                        Key={PK: step[PK], SK: step[SK]},
                        UpdateExpression="SET #status = :failed, #error = :error, #cause = :cause, "
                        "ended_at = :now REMOVE wait_token",
                        ConditionExpression="#status IN (:running, :waiting)",
                        ExpressionAttributeNames={"#status": "status", "#error": "error", "#cause": "cause"},
                        ExpressionAttributeValues={
                            ":failed": {"S": "failed"},
                            ":running": {"S": "running"},
                            ":waiting": {"S": "waiting"},
                            ":error": {"S": STOPPED_ERROR},
                            ":cause": {"S": cause},
                            ":now": {"S": now},
                        },
                    )
            with conditional() as write:
                ddb.update_item(
                    TableName=constants.RUNS_TABLE,
                    Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                    UpdateExpression="SET #status = :failed, ended_at = :now, #error = :error, "
                    "error_json = :json, #ws = :ws",
                    ConditionExpression="#status IN (:running, :waiting)",
                    ExpressionAttributeNames={
                        "#status": "status",
                        "#error": "error",
                        "#ws": WORKFLOW_STATUS,
                    },
                    ExpressionAttributeValues={
                        ":failed": {"S": "failed"},
                        ":running": {"S": "running"},
                        ":waiting": {"S": "waiting"},
                        ":now": {"S": now},
                        ":error": {"S": STOPPED_ERROR},
                        ":json": {"S": json.dumps({"Error": STOPPED_ERROR, "Cause": cause})},
                        ":ws": {"S": workflow_status(run["workflow"], "failed")},
                    },
                )
            if write.held:
                failed.append(run_id)
        return failed

    @staticmethod
    def _steps(ddb: Any, run_id: str) -> list[dict[str, Any]]:
        answer = ddb.query(
            TableName=constants.RUNS_TABLE,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :step)",
            ExpressionAttributeNames={"#pk": PK, "#sk": SK},
            ExpressionAttributeValues={":pk": {"S": run_id}, ":step": {"S": STEP_SK_PREFIX}},
            ConsistentRead=True,
        )
        return [i for i in answer["Items"] if i.get("status", {}).get("S") in IN_FLIGHT_STEP]


class PeriodicSave:
    """Saves the state every SAVE_EVERY_SECONDS until `stop` is set (a crash loses at most that much)."""

    def __init__(self, state: LocalState, stop: threading.Event, every: float = SAVE_EVERY_SECONDS) -> None:
        self.state, self.stop, self.every = state, stop, every

    def start(self) -> PeriodicSave:
        threading.Thread(target=self._loop, daemon=True, name="state-saver").start()
        return self

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.state.save()
            except (BotoCoreError, ClientError, OSError) as exc:
                log.warning("saving the local state failed: %s", exc)
