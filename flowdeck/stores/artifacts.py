"""The artifacts bucket: run artifacts, offloaded step outputs and built ZIPs (an S3 adapter)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from flowdeck.config import Settings, get_settings
from flowdeck.constants import ARTIFACT_KEY_PREFIX

# Where Flowdeck keeps its own objects beside a run's artifacts (offloaded outputs, built ZIPs).
INTERNAL_DIR = ".flowdeck"
OUTPUTS_REF = "$ref"
PART_SIZE = 8 * 1024 * 1024  # S3 multipart: >= 5 MiB per part (but the last); bounds the ZIP's memory
READ_CHUNK = 1024 * 1024
PRESIGN_SECONDS = 300
_TEXT_TYPES = ("application/json", "application/xml", "application/yaml", "application/x-sh")


def is_text(kind: str, sample: bytes) -> bool:
    """Text that can be previewed: a textual content type, or bytes that are clearly UTF-8 text."""
    if kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml")):
        return True
    if kind != "application/octet-stream" or b"\0" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(sample) - 3  # a multi-byte character cut by the sample's end
    return True


def run_prefix(workflow: str, run_id: str) -> str:
    """runs/<workflow>/<run_id>/ — under the workflow's lifecycle rule."""
    return f"{ARTIFACT_KEY_PREFIX}{workflow}/{run_id}/"


def artifact_key(workflow: str, run_id: str, step: str, path: str) -> str:
    """runs/<workflow>/<run_id>/<step>/<relative path>."""
    return f"{run_prefix(workflow, run_id)}{step}/{path}"


def outputs_key(workflow: str, run_id: str, step: str) -> str:
    return artifact_key(workflow, run_id, step, f"{INTERNAL_DIR}/outputs.json")


def zip_key(workflow: str, run_id: str, keys: Iterable[str]) -> str:
    """One ZIP per set of artifacts: the same request reuses a ZIP built before."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:24]
    return f"{run_prefix(workflow, run_id)}{INTERNAL_DIR}/zips/{digest}.zip"


def is_expired(artifact: dict[str, Any], now: datetime | None = None) -> bool:
    """An artifact past its `expires_at` is gone for the API, even before S3 deletes it."""
    expires = artifact.get("expires_at")
    if not expires:
        return False
    moment = datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
    return (now or datetime.now(UTC)) >= moment


class MultipartSink:
    """A write-only binary stream that becomes one S3 object, uploaded in parts as it fills."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int = PART_SIZE) -> None:
        self.client, self.bucket, self.key, self.part_size = client, bucket, key, part_size
        self.buffer = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.position = 0
        self.upload_id = client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType="application/zip"
        )["UploadId"]

    # zipfile needs only write/tell/flush on a non-seekable stream.
    def write(self, data: bytes) -> int:
        self.buffer += data
        self.position += len(data)
        while len(self.buffer) >= self.part_size:
            self._send(bytes(self.buffer[: self.part_size]))
            del self.buffer[: self.part_size]
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        """Parts go out when full; S3 refuses parts under 5 MiB but the last."""

    def seekable(self) -> bool:
        return False

    def _send(self, data: bytes) -> None:
        number = len(self.parts) + 1
        answer = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def complete(self) -> None:
        if self.buffer or not self.parts:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)


def write_zip(sink: IO[bytes] | MultipartSink, entries: Iterable[tuple[str, Iterator[bytes]]]) -> None:
    """Stream (name, chunks) entries into a ZIP on `sink`: one chunk in memory at a time."""
    # A non-seekable sink: zipfile writes data descriptors after each entry instead of seeking back.
    stream = cast(IO[bytes], sink)
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, chunks in entries:
            info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            # force_zip64: sizes are unknown up front and may pass 2 GiB.
            with archive.open(info, "w", force_zip64=True) as entry:
                for chunk in chunks:
                    entry.write(chunk)


def s3_client(settings: Settings | None = None) -> Any:
    """An S3 client that presigns with SigV4 (SSE-KMS buckets and newer regions accept nothing else)."""
    settings = settings or get_settings()
    return boto3.client(
        "s3",
        region_name=settings.region,
        endpoint_url=settings.aws_endpoint_url,
        config=Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"}),
    )


class ArtifactStore:
    """Upload, read, sign and zip run artifacts in the artifacts bucket."""

    def __init__(self, bucket: str, client: Any = None) -> None:
        self.bucket = bucket
        self.client = client or s3_client()

    def upload_file(self, path: str, key: str, content_type: str) -> None:
        # upload_file switches to multipart for large files and streams from disk.
        self.client.upload_file(path, self.bucket, key, ExtraArgs={"ContentType": content_type})

    def download_file(self, key: str, path: str) -> None:
        self.client.download_file(self.bucket, key, path)

    def put_json(self, key: str, value: Any) -> None:
        body = json.dumps(value, separators=(",", ":")).encode()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def ref(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def resolve(self, value: Any) -> Any:
        """An offloaded value ({"$ref": "s3://bucket/key"}) read back; anything else as is."""
        if isinstance(value, dict) and set(value) == {OUTPUTS_REF}:
            _, _, rest = str(value[OUTPUTS_REF]).partition("s3://")
            bucket, _, key = rest.partition("/")
            try:
                answer = self.client.get_object(Bucket=bucket or self.bucket, Key=key)
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                    raise
                # Past retention (the lifecycle rule deleted it): the reference stays, marked.
                return value | {"expired": True}
            return json.loads(answer["Body"].read())
        return value

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def read_head(self, key: str, size: int) -> bytes:
        """The first `size` bytes of an object (a ranged GET)."""
        answer = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{size - 1}")
        return bytes(answer["Body"].read())

    def chunks(self, key: str, chunk: int = READ_CHUNK) -> Iterator[bytes]:
        """An object's bytes, one chunk at a time."""
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            while data := body.read(chunk):
                yield data
        finally:
            body.close()

    def presign(self, key: str, filename: str | None = None, seconds: int = PRESIGN_SECONDS) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))

    def build_zip(self, key: str, entries: Iterable[tuple[str, str]], part_size: int = PART_SIZE) -> None:
        """Write a ZIP of (name in zip, source key) to `key`, streamed: memory bounded by the part size."""
        sink = MultipartSink(self.client, self.bucket, key, part_size)
        try:
            write_zip(sink, ((name, self.chunks(source)) for name, source in entries))
            sink.complete()
        except BaseException:
            sink.abort()
            raise

    def list_keys(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object under `prefix` (Key, Size, LastModified)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
